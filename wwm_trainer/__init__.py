"""Pretraining BERT-wwm / RoBERTa-wwm-ext style models on the output of ``wwm run`` (TensorFlow 2, Keras 3).

Importing this package is cheap: TensorFlow is imported only by the modules that train
(``model``, ``data``, ``masking``, ``optimization``, ``steps``, ``evaluation``, ``checkpoint_io``,
``hf_io``, ``train``), so ``wwm`` commands that do not train never pay for it. ``presets`` and
``settings`` (what a run is asked to do, and where each setting comes from) are pure;
``integrity`` (shards against their manifest's sizes and crc32c) needs TensorFlow only for file
systems other than local disks and ``gs://``. Start at ``wwm_trainer.cli``.
"""
import os

# Keras 3 picks its backend when first imported; this package is TensorFlow code (tf.data,
# TPUStrategy), so TensorFlow unless the user chose otherwise (model.py then says so).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
