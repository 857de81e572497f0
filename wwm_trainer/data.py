"""A ``wwm run`` output as training input: its manifests checked, its shards read with ``tf.data``.

Manifests are parsed by ``wwm_core.manifest`` (the one definition every command uses); the parsing
spec comes from ``wwm_core.records``, the schema the writer uses, so the two cannot drift apart.
Dynamic-masking data (``masking: dynamic``) is masked here, in ``tf.data``, with fresh masks on
every pass (``wwm_trainer.masking``).
"""
import dataclasses
import hashlib
import math
import os

import tensorflow as tf

from wwm_core.manifest import MANIFEST, ManifestError, parse_manifest
from wwm_core.records import feature_lengths, schema
from wwm_trainer import masking as dynamic_masking
from wwm_trainer.errors import TrainerUsageError
from wwm_trainer.integrity import verify_files

# Records are mixed across files by the interleave; this buffer mixes them within a file too.
# Google's run_pretraining.py uses 100; 1000 costs ~12 MB of memory at max_seq_length 512.
SHUFFLE_BUFFER = 1000
MAX_PARALLEL_FILES = 16
_TF_DTYPES = {"int64": tf.int64, "float": tf.float32}
MASK_TOKEN = "[MASK]"


@dataclasses.dataclass(frozen=True)
class PhaseData:
    """One phase's data: what the trainer needs from its manifest, with full paths."""
    path: str
    files: tuple
    num_instances: int
    recipe: str
    max_seq_length: int
    max_predictions_per_seq: int
    sentence_task: str  # nsp | sop | none
    masking: str  # static | dynamic
    masked_lm_prob: float | None  # what dynamic masking draws with (the data's; a phase plan may set another)
    vocab_path: str
    vocab_size: int
    vocab_sha256: str
    instances_per_file: dict  # file path -> records, where the manifest says (version 2)
    mask_id: int | None = None  # from the manifest's special_tokens (a tokenizer.json), else vocab.txt's [MASK]
    ngram_weights: tuple = (1.0,)  # dynamic masking's spans (the run's --ngram_weights)
    replacement: str = "bert"  # dynamic masking's replacement (the run's --replacement)
    similar_words_path: str | None = None  # MacBERT: the run's similar_words.npz
    packed: bool = False  # records hold document_starts, which this trainer does not use

    @property
    def trains_sentence_head(self) -> bool:
        return self.sentence_task in ("nsp", "sop")

    def with_files(self, files: tuple) -> "PhaseData":
        known = [self.instances_per_file.get(name) for name in files]
        count = sum(known) if all(n is not None for n in known) else None
        return dataclasses.replace(self, files=tuple(files), num_instances=count)


def _manifest_path(path: str) -> str:
    return os.path.join(path, MANIFEST) if tf.io.gfile.isdir(path) else path


def _read(path: str, kinds):
    if not tf.io.gfile.exists(path):
        raise TrainerUsageError(
            f"no manifest at {path}: `wwm run` writes manifest.json last, so either that run has not "
            "finished (or failed) or the path is wrong; give --manifest OUTPUT/manifest.json of a finished run")
    with tf.io.gfile.GFile(path, "rb") as file:
        data = file.read()
    try:
        return parse_manifest(data, path=path, kinds=kinds)
    except ManifestError as error:
        raise TrainerUsageError(str(error)) from error


def read_phases(manifest: str, then=(), *, verify: str = "crc32c") -> list:
    """The phases to train, in order: one manifest of kind "instances" (plus ``then``, each one
    too), or one of kind "phases" (``wwm run`` with several lengths: OUT/manifest.json). Each
    phase's shards are checked against its manifest at ``verify`` (crc32c | size | none)."""
    path = _manifest_path(manifest)
    first = _read(path, ("instances", "phases"))
    if first.kind == "phases":
        if then:
            raise TrainerUsageError(f"{path} already lists the run's phases; --then adds phases only to a one-phase "
                                    "manifest (such as OUT/seq128/manifest.json)")
        folder = os.path.dirname(path) or "."
        paths = [os.path.join(folder, phase["manifest"]) for phase in first.phases]
    else:
        paths = [path] + [_manifest_path(extra) for extra in then]
    phases = [read_phase(p, verify=verify) for p in paths]
    for phase in phases[1:]:
        if phase.vocab_sha256 != phases[0].vocab_sha256:
            raise TrainerUsageError(f"{phase.path} was made with another vocabulary than {phases[0].path}: every "
                                    "phase must use the same vocab.txt")
    return phases


def read_phase(path: str, *, verify: str = "crc32c") -> PhaseData:
    """Reads and checks one phase's manifest: the run finished, every file it lists is there, and
    its shards have the sizes and checksums it records (``verify``: crc32c | size | none)."""
    path = _manifest_path(path)
    manifest = _read(path, ("instances",))
    folder = os.path.dirname(path) or "."
    if not manifest.files and manifest.parquet_files:
        raise TrainerUsageError(f"{path} lists Parquet shards only (wwm run --output_format parquet); the trainer "
                                "reads the TFRecord shards: make the data with --output_format tfrecord or both")
    if not manifest.files or manifest.num_instances < 1:
        raise TrainerUsageError(f"manifest {path} lists {len(manifest.files)} shards with "
                                f"{manifest.num_instances} instances: nothing to train on")
    _check_files_present(path, folder, list(manifest.files) + [manifest.vocab_file])
    verify_files(folder=folder, names=manifest.files, file_info=manifest.file_info, level=verify, manifest_path=path)
    vocab_path = os.path.join(folder, manifest.vocab_file)
    _check_vocab(vocab_path, manifest.vocab_sha256)
    masked_lm_prob = None
    config = manifest.run_config()
    instances = config.instances if config else None
    if manifest.masking == "dynamic":
        masked_lm_prob = instances.masked_lm_prob if instances else None
        if masked_lm_prob is None:
            raise TrainerUsageError(f"manifest {path} is of dynamic-masking data but its config has no "
                                    "instances.masked_lm_prob to mask with")
    similar_words_path = None
    if manifest.similar_words:
        similar_words_path = os.path.join(folder, manifest.similar_words["file"])
        _check_files_present(path, folder, [manifest.similar_words["file"]])
    counts = {os.path.join(folder, name): info.records for name, info in manifest.file_info.items()}
    return PhaseData(
        path=path,
        files=tuple(os.path.join(folder, name) for name in manifest.files),
        num_instances=int(manifest.num_instances),
        recipe=manifest.recipe,
        max_seq_length=int(manifest.max_seq_length),
        max_predictions_per_seq=int(manifest.max_predictions_per_seq),
        sentence_task=manifest.sentence_task,
        masking=manifest.masking,
        masked_lm_prob=masked_lm_prob,
        vocab_path=vocab_path,
        vocab_size=int(manifest.vocab_size),
        vocab_sha256=manifest.vocab_sha256,
        instances_per_file=counts,
        mask_id=(manifest.special_tokens or {}).get("mask", {}).get("id"),
        ngram_weights=tuple(instances.ngram_weights) if instances else (1.0,),
        replacement=instances.replacement if instances else "bert",
        similar_words_path=similar_words_path,
        packed=bool(instances and instances.pack_across_documents),
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


def split_eval_share(phase: PhaseData, share: float) -> tuple:
    """(training data, held-out data): the last ceil(share x shards) shards, in the manifest's
    order, are held out. Whole shards, so no instance is in both."""
    count = len(phase.files)
    held = math.ceil(share * count)
    if count < 2 or held >= count:
        raise TrainerUsageError(f"--eval_share {share} of {phase.path}: it has {count} shard(s), so holding out "
                                f"{held} leaves nothing to train on; make the data with more shards "
                                "(wwm run --num_shards) or give --eval_manifest")
    return phase.with_files(phase.files[:-held]), phase.with_files(phase.files[-held:])


def mask_token_id(vocab_path: str) -> int:
    with tf.io.gfile.GFile(vocab_path, "r") as file:
        for index, line in enumerate(file):
            if line.strip() == MASK_TOKEN:
                return index
    raise TrainerUsageError(f"{vocab_path} has no {MASK_TOKEN} token, which dynamic masking needs")


def feature_spec(phase: PhaseData) -> dict:
    """The ``tf.io.parse_example`` spec of the phase's records, from the writer's schema."""
    features = schema(phase.masking)
    lengths = feature_lengths(features, max_seq_length=phase.max_seq_length,
                              max_predictions_per_seq=phase.max_predictions_per_seq)
    return {f.name: tf.io.FixedLenFeature([lengths[f.name]], _TF_DTYPES[f.dtype]) for f in features}


def _parse_batch(serialized, spec: dict) -> dict:
    features = tf.io.parse_example(serialized, spec)
    # TPUs have no int64 arithmetic: ids go in as int32, as in Google's run_pretraining.py.
    return {name: tf.cast(value, tf.int32) if value.dtype == tf.int64 else value for name, value in features.items()}


def _masker(phase: PhaseData, seed: int, masked_lm_prob: float = None):
    """Dynamic data's masker: the run's N-gram weights and replacement, at ``masked_lm_prob`` (a
    phase plan's rate, e.g. 30% then 15%) or else the data's."""
    if phase.masking != "dynamic":
        return None
    similar = None
    if phase.replacement == "macbert":
        from wwm_core.masking import SimilarWords

        with tf.io.gfile.GFile(phase.similar_words_path, "rb") as file:
            similar = SimilarWords.from_npz_bytes(file.read())
    return dynamic_masking.WholeWordMasker(
        max_predictions_per_seq=phase.max_predictions_per_seq, masked_lm_prob=masked_lm_prob or phase.masked_lm_prob,
        mask_id=phase.mask_id if phase.mask_id is not None else mask_token_id(phase.vocab_path),
        vocab_size=phase.vocab_size, seed=seed, ngram_weights=phase.ngram_weights, replacement=phase.replacement,
        similar=similar)


def make_dataset(phase: PhaseData, *, batch_size: int, seed: int, input_context=None,
                 masked_lm_prob: float = None) -> tf.data.Dataset:
    """An endless stream of parsed batches of ``batch_size`` (the batch of one replica), in the
    static schema (dynamic data is masked here, afresh on every pass).

    Files are shuffled and read several at a time, records shuffled in a bounded buffer: nothing
    is held in memory beyond that. With several input pipelines (hosts of a TPU pod) each reads
    its own share of the files (or of the records, when there are fewer files than pipelines).
    """
    files = tf.data.Dataset.from_tensor_slices(list(phase.files))
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    shard_files = pipelines > 1 and len(phase.files) >= pipelines
    if shard_files:
        files = files.shard(pipelines, pipeline_id)
    files = files.shuffle(len(phase.files), seed=seed, reshuffle_each_iteration=True).repeat()
    records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(phase.files), MAX_PARALLEL_FILES),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if pipelines > 1 and not shard_files:
        records = records.shard(pipelines, pipeline_id)
    spec = feature_spec(phase)
    batches = (records
               .shuffle(SHUFFLE_BUFFER, seed=seed + 1)
               .batch(batch_size, drop_remainder=True)  # fixed shapes: TPUs compile one program
               .map(lambda serialized: _parse_batch(serialized, spec), num_parallel_calls=tf.data.AUTOTUNE))
    masker = _masker(phase, seed=seed * 1009 + pipeline_id, masked_lm_prob=masked_lm_prob)
    if masker is not None:
        # Each batch's masks are drawn from (seed, batch number): new masks on every pass.
        batches = (tf.data.Dataset.zip(batches, tf.data.Dataset.counter())
                   .map(masker.mask_batch, num_parallel_calls=tf.data.AUTOTUNE))
    return batches.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(phase: PhaseData, *, batch_size: int, seed: int, max_batches=None,
                      input_context=None, masked_lm_prob: float = None) -> tf.data.Dataset:
    """One pass over held-out data in whole batches, in file order; dynamic data is masked with
    the same masks at every evaluation (fixed seed), so evaluations compare."""
    files = list(phase.files)
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    records = tf.data.TFRecordDataset(files)
    if pipelines > 1:
        records = records.shard(pipelines, pipeline_id)
    spec = feature_spec(phase)
    batches = (records.batch(batch_size, drop_remainder=True)
               .map(lambda serialized: _parse_batch(serialized, spec)))
    masker = _masker(phase, seed=seed, masked_lm_prob=masked_lm_prob)
    if masker is not None:
        batches = tf.data.Dataset.zip(batches, tf.data.Dataset.counter()).map(masker.mask_batch)
    if max_batches:
        batches = batches.take(max_batches)
    return batches.prefetch(tf.data.AUTOTUNE)
