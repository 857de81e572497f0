"""Hugging Face BERT folders: exported (``config.json``, ``model.safetensors``, ``vocab.txt``) and read
(a local or ``gs://`` folder, or a hub id such as ``hfl/chinese-roberta-wwm-ext`` through
``huggingface_hub`` and its cache).

The tensor names are those of transformers' ``BertForPreTraining`` state dict
(``bert.encoder.layer.3.attention.self.query.weight``, ``cls.predictions.bias``, ...). The map is
the one of transformers' own converters (``load_tf_weights_in_bert`` and
``convert_bert_pytorch_checkpoint_to_original_tf.py``): Google's ``layer_N`` is ``layer.N``,
``gamma``/``beta`` are ``weight``/``bias``, ``kernel`` is ``weight`` transposed (PyTorch's Linear
stores [out, in]); embeddings and ``cls/seq_relationship/output_weights`` ([2, H]) keep their
orientation. As ``save_pretrained`` does, the tied decoder (``cls.predictions.decoder.weight`` /
``.bias``, the word embeddings and ``cls.predictions.bias``) is not written a second time.

A hub repository's ``tf_model.h5`` (transformers' TF weights) is read when it has no
``model.safetensors``: its names (``.../bert/encoder/layer_._3/attention/self/query/kernel:0``,
``mlm___cls/predictions/bias:0``, ...) are mapped to Google's, and kernels are reshaped to
Google's shapes (some transformers versions stored attention kernels as [H, heads, head size]).
"""
import io
import json
import os
import re

import numpy as np
import tensorflow as tf

from wwm_core import hub
from wwm_core.errors import UsageError
from wwm_trainer.config import BertConfig
from wwm_trainer.errors import TrainerUsageError

SAFETENSORS = "model.safetensors"
TF_H5 = "tf_model.h5"
CONFIG = "config.json"
VOCAB = "vocab.txt"
WEIGHT_FILES = (SAFETENSORS, TF_H5)
# In a state dict but not a separate weight of the model: the tied decoder, and buffers.
TIED_OR_BUFFERS = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "bert.embeddings.position_ids",
                   "bert.embeddings.token_type_ids")
LAYER_NORM_EPS = 1e-12


def hf_name(google_name: str) -> str:
    """Google's checkpoint name -> transformers' state-dict name."""
    if google_name == "cls/predictions/output_bias":
        return "cls.predictions.bias"
    if google_name == "cls/seq_relationship/output_weights":
        return "cls.seq_relationship.weight"
    if google_name == "cls/seq_relationship/output_bias":
        return "cls.seq_relationship.bias"
    name = re.sub(r"layer_(\d+)", r"layer.\1", google_name).replace("/", ".")
    if name.endswith("_embeddings"):
        return name + ".weight"
    for old, new in ((".gamma", ".weight"), (".beta", ".bias"), (".kernel", ".weight")):
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


def transposed(google_name: str) -> bool:
    """Dense kernels are [in, out] in Google's layout and [out, in] in PyTorch's."""
    return google_name.endswith("/kernel")


def hf_config(config: BertConfig) -> dict:
    """transformers' BertConfig keys (config.json of a BertForPreTraining)."""
    values = json.loads(config.to_json())
    values.update(architectures=["BertForPreTraining"], model_type="bert", layer_norm_eps=LAYER_NORM_EPS,
                  pad_token_id=0, position_embedding_type="absolute")
    return values


def export_hf_folder(named_arrays: dict, config: BertConfig, vocab_path: str, folder: str) -> str:
    """Writes ``folder``/config.json, model.safetensors (float32) and vocab.txt from Google-named arrays."""
    from safetensors.numpy import save

    tensors = {}
    for name, value in named_arrays.items():
        value = np.asarray(value, dtype=np.float32)
        tensors[hf_name(name)] = np.ascontiguousarray(value.T if transposed(name) else value)
    tf.io.gfile.makedirs(folder)
    # transformers refuses safetensors files without this metadata key.
    with tf.io.gfile.GFile(os.path.join(folder, SAFETENSORS), "wb") as file:
        file.write(save(tensors, metadata={"format": "pt"}))
    with tf.io.gfile.GFile(os.path.join(folder, CONFIG), "w") as file:
        file.write(json.dumps(hf_config(config), indent=2, sort_keys=True) + "\n")
    # vocab.txt, or a tokenizer.json (a run made with --tokenizer), under its own name.
    tf.io.gfile.copy(vocab_path, os.path.join(folder, os.path.basename(vocab_path) or VOCAB), overwrite=True)
    return folder


# ---- reading ----

def _exists(path: str) -> bool:
    return tf.io.gfile.exists(path)


def is_hf_folder(path: str) -> bool:
    return bool(path) and tf.io.gfile.isdir(path) and any(_exists(os.path.join(path, name)) for name in WEIGHT_FILES)


def is_hf_source(path: str) -> bool:
    """A Hugging Face folder or a hub id (what ``read_hf_weights`` reads)."""
    return hub.is_hub_id(path) or is_hf_folder(path)


def _hub_file(repo: str, filename: str) -> str:
    try:
        return hub.hub_file(repo, filename)
    except UsageError as error:
        raise TrainerUsageError(f"--init_checkpoint {repo}: {error}") from error


def _hub_weights_file(repo: str) -> str:
    """The repository's model.safetensors, else its tf_model.h5."""
    problems = []
    for name in WEIGHT_FILES:
        try:
            return hub.hub_file(repo, name)
        except UsageError as error:
            problems.append(str(error))
    raise TrainerUsageError(f"--init_checkpoint {repo}: neither {' nor '.join(WEIGHT_FILES)} could be had ("
                            + "; ".join(problems) + ")")


def config_file(source: str):
    """The config.json of a Hugging Face folder or hub id (None when it has none)."""
    if hub.is_hub_id(source):
        return _hub_file(source, CONFIG)
    path = os.path.join(source, CONFIG)
    return path if _exists(path) else None


def weights_file(source: str) -> str:
    if hub.is_hub_id(source):
        return _hub_weights_file(source)
    for name in WEIGHT_FILES:
        path = os.path.join(source, name)
        if _exists(path):
            return path
    raise TrainerUsageError(f"--init_checkpoint {source}: no {' or '.join(WEIGHT_FILES)} there")


def google_name_of_hf(name: str):
    """transformers' state-dict name -> Google's (None for tied copies and buffers)."""
    if not name.startswith(("bert.", "cls.")):
        name = "bert." + name  # a BertModel's state dict has no "bert." prefix
    if name in TIED_OR_BUFFERS:
        return None
    special = {"cls.predictions.bias": "cls/predictions/output_bias",
               "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
               "cls.seq_relationship.bias": "cls/seq_relationship/output_bias"}
    if name in special:
        return special[name]
    path = re.sub(r"layer\.(\d+)", r"layer_\1", name).replace(".", "/")
    if re.search(r"_embeddings/weight$", path):
        return path[: -len("/weight")]
    if "LayerNorm/" in path:
        return path.replace("LayerNorm/weight", "LayerNorm/gamma").replace("LayerNorm/bias", "LayerNorm/beta")
    if path.endswith("/weight"):
        return path[: -len("/weight")] + "/kernel"
    return path


def read_safetensors(path: str) -> dict:
    """Google name -> array, from a transformers BERT safetensors file."""
    from safetensors.numpy import load

    with tf.io.gfile.GFile(path, "rb") as file:
        data = file.read()
    try:
        tensors = load(data)
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types; one line for the user
        raise TrainerUsageError(f"cannot read {path} as safetensors: {error}") from error
    arrays = {}
    for name, value in tensors.items():
        google = google_name_of_hf(name)
        if google is not None:
            arrays[google] = value.T if transposed(google) else value
    return arrays


_H5_PATTERNS = (
    (re.compile(r"(?:^|/)bert/embeddings/(word|position|token_type)_embeddings/(?:weight|embeddings)$"),
     lambda m: f"bert/embeddings/{m[1]}_embeddings"),
    (re.compile(r"(?:^|/)bert/(embeddings/LayerNorm|pooler/dense)/(gamma|beta|kernel|bias)$"),
     lambda m: f"bert/{m[1]}/{m[2]}"),
    (re.compile(r"(?:^|/)bert/encoder/layer_(?:\._)?(\d+)/(.+)/(gamma|beta|kernel|bias)$"),
     lambda m: f"bert/encoder/layer_{m[1]}/{m[2]}/{m[3]}"),
    (re.compile(r"(?:^|/)(?:mlm___)?cls/predictions/transform/(dense|LayerNorm)/(gamma|beta|kernel|bias)$"),
     lambda m: f"cls/predictions/transform/{m[1]}/{m[2]}"),
    (re.compile(r"(?:^|/)(?:mlm___)?cls/predictions/bias$"), lambda m: "cls/predictions/output_bias"),
    (re.compile(r"(?:^|/)(?:nsp___)?cls/seq_relationship/kernel$"), lambda m: "cls/seq_relationship/output_weights"),
    (re.compile(r"(?:^|/)(?:nsp___)?cls/seq_relationship/bias$"), lambda m: "cls/seq_relationship/output_bias"),
)


def google_name_of_h5(path: str):
    path = path.split(":")[0]
    for pattern, name in _H5_PATTERNS:
        match = pattern.search(path)
        if match:
            return name(match)
    return None


def read_tf_h5(path: str) -> dict:
    """Google name -> array, from transformers' tf_model.h5 (Keras h5 weights)."""
    import h5py

    with tf.io.gfile.GFile(path, "rb") as file:
        data = io.BytesIO(file.read())
    arrays = {}
    with h5py.File(data, "r") as h5:
        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                google = google_name_of_h5(name)
                if google is not None:
                    value = np.asarray(item)
                    # Keras' [H, 2] kernel is the transpose of Google's [2, H] output_weights.
                    arrays[google] = value.T if google == "cls/seq_relationship/output_weights" else value
        h5.visititems(visit)
    return arrays


def read_hf_weights(source: str) -> tuple:
    """(Google name -> array, the file read) of a Hugging Face folder or hub id."""
    path = weights_file(source)
    arrays = read_safetensors(path) if path.endswith(".safetensors") else read_tf_h5(path)
    if not arrays:
        raise TrainerUsageError(f"--init_checkpoint {source}: {path} holds no BERT weights")
    return arrays, path
