"""Checkpoints in the variable layout of Google's BERT: loaded (``--init_checkpoint``, which also
takes Hugging Face folders and hub ids through ``hf_io``) and exported.

Google's names (``bert/encoder/layer_3/attention/self/query/kernel``, ``cls/predictions/output_bias``,
...) are what the released Chinese models (BERT-wwm, RoBERTa-wwm-ext, RBT3, ...) use and what the
ecosystem's converters (Hugging Face's ``convert_bert_original_tf_checkpoint_to_pytorch``, ...)
read. The export is a name-based checkpoint written with ``SaveV2``: the keys are exactly those
names, with no object-graph prefix.
"""
import dataclasses
import os

import tensorflow as tf

from wwm_trainer.errors import TrainerUsageError

EXPORT_PREFIX = "bert_model.ckpt"
# Variables of Google's checkpoints that hold optimizer state or counters, not the model.
OPTIMIZER_STATE_MARKERS = ("adam_m", "adam_v", "lamb_m", "lamb_v", "AdamWeightDecayOptimizer", "global_step",
                           "LAMB", "Momentum", "good_steps", "loss_scale", "current_loss_scale")


def _dense(prefix: str, layer) -> dict:
    return {f"{prefix}/kernel": layer.kernel, f"{prefix}/bias": layer.bias}


def _layer_norm(prefix: str, layer) -> dict:
    return {f"{prefix}/gamma": layer.gamma, f"{prefix}/beta": layer.beta}


def google_variables(model) -> dict:
    """Google's checkpoint name -> the model's variable, for every weight of a built model."""
    embeddings = model.embeddings
    names = {
        "bert/embeddings/word_embeddings": embeddings.word_embeddings,
        "bert/embeddings/token_type_embeddings": embeddings.token_type_embeddings,
        "bert/embeddings/position_embeddings": embeddings.position_embeddings,
        **_layer_norm("bert/embeddings/LayerNorm", embeddings.layer_norm),
    }
    for index, layer in enumerate(model.encoder_layers):
        prefix = f"bert/encoder/layer_{index}"
        names.update({
            **_dense(f"{prefix}/attention/self/query", layer.query),
            **_dense(f"{prefix}/attention/self/key", layer.key),
            **_dense(f"{prefix}/attention/self/value", layer.value),
            **_dense(f"{prefix}/attention/output/dense", layer.attention_output),
            **_layer_norm(f"{prefix}/attention/output/LayerNorm", layer.attention_layer_norm),
            **_dense(f"{prefix}/intermediate/dense", layer.intermediate),
            **_dense(f"{prefix}/output/dense", layer.output_dense),
            **_layer_norm(f"{prefix}/output/LayerNorm", layer.output_layer_norm),
        })
    names.update({
        **_dense("bert/pooler/dense", model.pooler),
        **_dense("cls/predictions/transform/dense", model.mlm_head.transform),
        **_layer_norm("cls/predictions/transform/LayerNorm", model.mlm_head.layer_norm),
        "cls/predictions/output_bias": model.mlm_head.output_bias,
        "cls/seq_relationship/output_weights": model.nsp_head.output_weights,
        "cls/seq_relationship/output_bias": model.nsp_head.output_bias,
    })
    return names


@dataclasses.dataclass
class LoadReport:
    checkpoint: str
    loaded: list
    not_in_checkpoint: list  # model weights left at their initial values
    unused: list  # checkpoint variables the model has no place for
    optimizer_state_skipped: int

    def summary(self) -> str:
        text = (f"loaded {len(self.loaded)} weights from {self.checkpoint}; "
                f"{len(self.not_in_checkpoint)} model weights not in it (left initialised)"
                + (f": {', '.join(self.not_in_checkpoint[:8])}" if self.not_in_checkpoint else "")
                + f"; {len(self.unused)} checkpoint variables unused"
                + (f": {', '.join(self.unused[:8])}" if self.unused else "")
                + f"; {self.optimizer_state_skipped} optimizer-state variables skipped")
        return text


def resolve_checkpoint_prefix(path: str) -> str:
    """A checkpoint prefix from a prefix (``.../bert_model.ckpt``) or a folder: its latest
    checkpoint, or its one ``*.ckpt.index`` (Google's releases ship no ``checkpoint`` file)."""
    if tf.io.gfile.exists(path + ".index"):
        return path
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        indexes = sorted(tf.io.gfile.glob(os.path.join(path, "*.ckpt.index")))
        if len(indexes) == 1:
            return indexes[0][: -len(".index")]
        if len(indexes) > 1:
            raise TrainerUsageError(f"--init_checkpoint {path} holds several checkpoints "
                                    f"({', '.join(os.path.basename(i) for i in indexes)}): name one")
    raise TrainerUsageError(f"--init_checkpoint {path}: no TensorFlow checkpoint there "
                            "(give a prefix such as .../bert_model.ckpt, or its folder)")


def _is_optimizer_state(name: str) -> bool:
    return any(marker in name for marker in OPTIMIZER_STATE_MARKERS)


def _check_shapes(source: str, shapes: dict, targets: dict) -> None:
    mismatched = [f"{name}: checkpoint {list(shapes[name])}, model {list(targets[name].shape)}"
                  for name in targets if name in shapes and list(shapes[name]) != list(targets[name].shape)]
    if mismatched:
        raise TrainerUsageError(
            f"--init_checkpoint {source} does not fit the model ({len(mismatched)} shapes differ: "
            f"{'; '.join(mismatched[:4])}{' ...' if len(mismatched) > 4 else ''}); pass the checkpoint's own "
            "config as --model_config, and data made with its vocab.txt")


def assign_arrays(model, arrays: dict, *, source: str, skipped_state: int = 0) -> LoadReport:
    """Assigns Google-named arrays to a built model, every shape checked first. Names the model
    does not have (another model's layers 3-11 for an RBT3, a task head) are reported unused."""
    targets = google_variables(model)
    for name, value in list(arrays.items()):
        # transformers' TF weights stored some attention kernels as [H, heads, head size].
        if name in targets and value.shape != tuple(targets[name].shape) and value.size == targets[name].shape.num_elements():
            arrays[name] = value.reshape(targets[name].shape)
    _check_shapes(source, {name: value.shape for name, value in arrays.items()}, targets)
    present = [name for name in targets if name in arrays]
    for name in present:
        variable = targets[name]
        variable.assign(tf.cast(arrays[name], variable.dtype))
    return LoadReport(checkpoint=source, loaded=present, not_in_checkpoint=[n for n in targets if n not in arrays],
                      unused=sorted(name for name in arrays if name not in targets),
                      optimizer_state_skipped=skipped_state)


def load_google_checkpoint(model, path: str) -> LoadReport:
    """Assigns the weights of a Google-layout checkpoint to a built model.

    Every shape is checked before anything is assigned: a mismatch (most often a vocabulary of
    another size, or a config that is not the checkpoint's) fails with all of them listed."""
    prefix = resolve_checkpoint_prefix(path)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    targets = google_variables(model)
    _check_shapes(prefix, shapes, targets)
    state = [name for name in shapes if name not in targets and _is_optimizer_state(name)]
    arrays = {name: reader.get_tensor(name) for name in shapes if name not in state}
    return assign_arrays(model, arrays, source=prefix, skipped_state=len(state))


def load_init_checkpoint(model, source: str) -> LoadReport:
    """``--init_checkpoint``: a Hugging Face folder or hub id, else a Google-layout checkpoint."""
    from wwm_trainer import hf_io

    if hf_io.is_hf_source(source):
        arrays, path = hf_io.read_hf_weights(source)
        return assign_arrays(model, arrays, source=path)
    return load_google_checkpoint(model, source)


def model_arrays(model) -> dict:
    """Google name -> float32 numpy array of every weight. Read on the host: under a distribution
    strategy this is the (identical) first replica's copy."""
    return {name: variable.numpy().astype("float32") for name, variable in google_variables(model).items()}


def export_google_checkpoint(arrays: dict, export_dir: str) -> str:
    """Writes Google-named arrays as ``export_dir/bert_model.ckpt``; returns the prefix."""
    tf.io.gfile.makedirs(export_dir)
    prefix = os.path.join(export_dir, EXPORT_PREFIX)
    names = sorted(arrays)
    tensors = [tf.constant(arrays[name], dtype=tf.float32) for name in names]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
    return prefix
