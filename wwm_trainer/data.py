"""A ``wwm run`` output as training input: its manifest checked, its shards read with ``tf.data``.

The manifest is read by ``wwm_core.manifest`` and the parsing spec derived from
``wwm_core.records.schema``, the schema the writer uses, so the two cannot drift apart.
"""
import dataclasses
import hashlib
import os

import tensorflow as tf

from wwm_core.manifest import ManifestError, parse_manifest
from wwm_core.records import feature_lengths, schema
from wwm_trainer.errors import TrainerUsageError

MANIFEST = "manifest.json"
# Records are mixed across files by the interleave; this buffer mixes them within a file too.
# Google's run_pretraining.py uses 100; 1000 costs ~12 MB of memory at max_seq_length 512.
SHUFFLE_BUFFER = 1000
MAX_PARALLEL_FILES = 16
_TF_DTYPES = {"int64": tf.int64, "float": tf.float32}


@dataclasses.dataclass(frozen=True)
class Manifest:
    """What the trainer needs from a run's manifest.json, with full paths."""
    path: str
    files: tuple
    num_instances: int
    recipe: str
    next_sentence_prediction: bool
    max_seq_length: int
    max_predictions_per_seq: int
    vocab_path: str
    vocab_size: int
    vocab_sha256: str
    masking: str = "static"


def read_manifest(path: str) -> Manifest:
    """Reads and checks a run's manifest: the run finished, and every file it lists is there.

    ``path`` is manifest.json or the run's output folder. Raises ``TrainerUsageError`` naming what
    is missing or wrong."""
    if tf.io.gfile.isdir(path):
        path = os.path.join(path, MANIFEST)
    if not tf.io.gfile.exists(path):
        raise TrainerUsageError(
            f"no manifest at {path}: `wwm run` writes manifest.json last, so either that run has not "
            "finished (or failed) or the path is wrong; give --manifest OUTPUT/manifest.json of a finished run")
    with tf.io.gfile.GFile(path, "rb") as file:
        data = file.read()
    try:
        values = parse_manifest(data, path=path, kinds=("instances",))
    except ManifestError as error:
        raise TrainerUsageError(str(error)) from error
    folder = os.path.dirname(path) or "."
    _check_files_present(path, folder, list(values.files) + [values.vocab_file])
    if not values.files or values.num_instances < 1:
        raise TrainerUsageError(f"manifest {path} lists {len(values.files)} shards with "
                                f"{values.num_instances} instances: nothing to train on")
    vocab_path = os.path.join(folder, values.vocab_file)
    _check_vocab(vocab_path, values.vocab_sha256)
    return Manifest(
        path=path,
        files=tuple(os.path.join(folder, name) for name in values.files),
        num_instances=int(values.num_instances),
        recipe=values.recipe,
        next_sentence_prediction=bool(values.next_sentence_prediction),
        max_seq_length=int(values.max_seq_length),
        max_predictions_per_seq=int(values.max_predictions_per_seq),
        vocab_path=vocab_path,
        vocab_size=int(values.vocab_size),
        vocab_sha256=values.vocab_sha256,
        masking=values.masking,
    )


def _check_files_present(manifest_path: str, folder: str, names: list) -> None:
    # One listing of the folder, not one request per shard: a run on gs:// may have thousands.
    present = set(tf.io.gfile.listdir(folder))
    absent = [name for name in names if name not in present]
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise TrainerUsageError(f"manifest {manifest_path} is incomplete: {len(absent)} of the files it lists are "
                                f"missing from {folder}: {shown}")


def _check_vocab(vocab_path: str, expected_sha256: str) -> None:
    with tf.io.gfile.GFile(vocab_path, "rb") as file:
        actual = hashlib.sha256(file.read()).hexdigest()
    if actual != expected_sha256:
        raise TrainerUsageError(f"{vocab_path} is not the vocabulary the run used (sha256 {actual[:12]}..., "
                                f"manifest says {expected_sha256[:12]}...)")


def feature_spec(manifest: Manifest) -> dict:
    """The ``tf.io.parse_example`` spec of the run's records, from the writer's schema."""
    features = schema(manifest.masking)
    lengths = feature_lengths(features, max_seq_length=manifest.max_seq_length,
                              max_predictions_per_seq=manifest.max_predictions_per_seq)
    return {f.name: tf.io.FixedLenFeature([lengths[f.name]], _TF_DTYPES[f.dtype]) for f in features}


def _parse_batch(serialized, spec: dict) -> dict:
    features = tf.io.parse_example(serialized, spec)
    # TPUs have no int64 arithmetic: ids go in as int32, as in Google's run_pretraining.py.
    return {name: tf.cast(value, tf.int32) if value.dtype == tf.int64 else value for name, value in features.items()}


def make_dataset(manifest: Manifest, *, batch_size: int, seed: int, input_context=None) -> tf.data.Dataset:
    """An endless stream of parsed batches of ``batch_size`` (the batch of one replica).

    Files are shuffled and read several at a time, records shuffled in a bounded buffer: nothing
    is held in memory beyond that. With several input pipelines (hosts of a TPU pod) each reads
    its own share of the files (or of the records, when there are fewer files than pipelines).
    """
    files = tf.data.Dataset.from_tensor_slices(list(manifest.files))
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    shard_files = pipelines > 1 and len(manifest.files) >= pipelines
    if shard_files:
        files = files.shard(pipelines, pipeline_id)
    files = files.shuffle(len(manifest.files), seed=seed, reshuffle_each_iteration=True).repeat()
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(manifest.files), MAX_PARALLEL_FILES),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if pipelines > 1 and not shard_files:
        records = records.shard(pipelines, pipeline_id)
    spec = feature_spec(manifest)
    return (records
            .shuffle(SHUFFLE_BUFFER, seed=seed + 1)
            .batch(batch_size, drop_remainder=True)  # fixed shapes: TPUs compile one program
            .map(lambda serialized: _parse_batch(serialized, spec), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))
