"""The ``wwm run`` pipeline: documents to whole-word-masked shards for every phase, and manifests.

    PrepareDocuments (read, clean, dedup) -> WriteShards (key by seeded hash, GroupByKey, make + write
         \\-> dead letters (read errors, segmenter errors) ------------------- every phase) -> WriteManifests

Each bucket is one shard of every phase: its DoFn segments and tokenizes the bucket once, then
makes, encodes and streams each phase's instances into that phase's files (temporary names, then
renamed), so shard bytes depend only on the documents hashed into the bucket and the seed, not on
workers, bundles or retries. Only documents go through the shuffle, never the (dupe_factor times
larger) instances. Manifests are written last: one per phase, and for several phases one more at
the top that lists them.
"""
import base64
import collections
import logging
import math
import uuid

import apache_beam as beam
import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.common import (DEAD_LETTER, STATS, RunInfo, check_worker_versions, count, dead_letter_names,
                              launcher_versions, sum_counters, write_dead_letters, write_manifest)
from pipelines.io_utils import join
from pipelines.output import write_atomically
from pipelines.read_pipeline import PrepareDocuments
from pipelines.word_cache import read_word_cache
from wwm_core.generate import ShardMaker
from wwm_core.hashing import bucket_of
from wwm_core.manifest import MANIFEST, FileInfo, Manifest
from wwm_core.records import schema
from wwm_core.vocab import Vocab
from wwm_core.word_boundaries import cache_entries

VOCAB = "vocab.txt"
STATISTICS_PREFIX = "phase."


def shard_name(index: int, num_shards: int, suffix: str) -> str:
    return f"part-{index:05d}-of-{num_shards:05d}{suffix}"


def phase_folder(config, phase) -> str:
    """OUTPUT for a run of one length; OUTPUT/seq128, OUTPUT/seq512, ... for several."""
    output = config.output.path
    return output if len(config.instances.phases) == 1 else join(output, phase.folder)


class ShardFile:
    """One output file written as a stream under a temporary name, its size and crc32c counted
    on the way, renamed to its final name when complete."""

    def __init__(self, path: str):
        self.path = path
        self.temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        self.handle = FileSystems.create(self.temporary)
        self.checksum = google_crc32c.Checksum()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.checksum.update(data)
        self.size += len(data)

    def finish(self, records: int) -> FileInfo:
        self.handle.close()
        FileSystems.rename([self.temporary], [self.path])
        return FileInfo(bytes=self.size, crc32c=base64.b64encode(self.checksum.digest()).decode(), records=records)

    def abandon(self) -> None:
        self.handle.close()
        FileSystems.delete([self.temporary])


class ParquetShard:
    """Instances as a Parquet file streamed into a ShardFile, one row group per batch. Columns
    are the schema's features under their Parquet names: lists of int32 (float32 for weights);
    one-value features (the sentence label) are plain int8 columns."""

    closed = False  # pyarrow writes to any object with write, flush, tell, close and closed

    def __init__(self, shard_file: ShardFile, features):
        self.shard_file = shard_file
        self.features = features
        self.schema = pa.schema([(f.parquet_name, pa.int8() if f.length == 1 else
                                  pa.list_(pa.float32() if f.dtype == "float" else pa.int32())) for f in features])
        self._writer = pq.ParquetWriter(self, self.schema, compression="zstd")

    def write(self, data) -> int:
        self.shard_file.write(bytes(data))
        return len(data)

    def tell(self) -> int:
        return self.shard_file.size

    def flush(self) -> None:
        pass

    def write_batch(self, columns: dict) -> None:
        arrays = []
        for field in self.schema:
            values = np.asarray(columns[field.name])
            if pa.types.is_list(field.type):
                rows, width = values.shape
                arrays.append(pa.ListArray.from_arrays(
                    pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32)),
                    pa.array(values.ravel().astype(np.float32 if pa.types.is_floating(field.type.value_type)
                                                   else np.int32))))
            else:
                arrays.append(pa.array(values.ravel().astype(np.int8)))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self._writer.close()


class WriteShard(beam.DoFn):
    """(bucket, {"documents": [...], "words": [cache rows]}) -> the bucket's shard of every phase
    and format, written as streams, then renamed; yields one description per file."""

    def __init__(self, *, config, vocab_bytes: bytes, num_shards: int, use_word_cache: bool, segmenter,
                 expected_versions=None):
        self._expected_versions = launcher_versions(expected_versions)
        self._config = config
        self._segmenter = segmenter
        self._vocab_bytes = vocab_bytes
        self._num_shards = num_shards
        self._use_word_cache = use_word_cache

    def setup(self):
        check_worker_versions(self._expected_versions)
        self._maker = ShardMaker(
            instances=self._config.instances, output=self._config.output,
            vocab=Vocab.from_bytes(self._vocab_bytes), segmenter=self._segmenter.load(),
            max_document_chars=self._config.cleaning.max_document_chars)

    def _open(self, phase, bucket: int) -> dict:
        folder, output = phase_folder(self._config, phase), self._config.output
        files = {}
        if output.tfrecord:
            files["tfrecord"] = ShardFile(join(folder, shard_name(bucket, self._num_shards, ".tfrecord")))
        if output.parquet:
            shard = ShardFile(join(folder, shard_name(bucket, self._num_shards, ".parquet")))
            files["parquet"] = ParquetShard(shard, self._maker.parquet_features)
        return files

    def process(self, bucket_and_inputs):
        bucket, inputs = bucket_and_inputs
        stats, dead_letters = collections.Counter(), []
        word_cache = cache_entries(inputs["words"]) if self._use_word_cache else None
        maker, phases = self._maker, self._config.instances.phases
        opened = {phase: self._open(phase, bucket) for phase in phases}
        written = collections.Counter()
        try:
            for phase, batch in maker.instance_batches(list(inputs["documents"]), shard_index=bucket, stats=stats,
                                                       dead_letters=dead_letters, word_cache=word_cache):
                files = opened[phase]
                if "tfrecord" in files:
                    files["tfrecord"].write(maker.tfrecord_bytes(batch, phase))
                if "parquet" in files:
                    files["parquet"].write_batch(maker.parquet_columns(batch, phase))
                written[phase] += len(batch)
        except BaseException:
            for files in opened.values():
                for stream in files.values():
                    (stream if isinstance(stream, ShardFile) else stream.shard_file).abandon()
            raise
        for phase, files in opened.items():
            for kind, stream in files.items():
                if kind == "parquet":
                    stream.close()
                    stream = stream.shard_file
                info = stream.finish(written[phase])
                yield {"phase": phase.max_seq_length, "kind": kind, "file": FileSystems.split(stream.path)[1],
                       "info": info}
        stats["shards_written"] += 1
        count(stats)
        logging.info("wrote shard %d: %s instances from %d documents", bucket,
                     ", ".join(f"{written[p]} at {p.max_seq_length}" for p in phases), stats["documents_out"])
        yield beam.pvalue.TaggedOutput(STATS, stats)
        for record in dead_letters:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, record)


def _has_documents(bucket_and_inputs) -> bool:
    return next(iter(bucket_and_inputs[1]["documents"]), None) is not None


class WriteShards(beam.PTransform):
    """Documents (and cached word boundaries, if any) -> descriptions of the written files, with
    STATS and DEAD_LETTER outputs. Cache rows travel to the bucket of their document."""

    def __init__(self, *, config, vocab_bytes: bytes, num_shards: int, segmenter, word_cache_rows=None):
        super().__init__()
        self._config = config
        self._write = WriteShard(config=config, vocab_bytes=vocab_bytes, num_shards=num_shards,
                                 use_word_cache=word_cache_rows is not None, segmenter=segmenter)
        self._num_shards = num_shards
        self._word_cache_rows = word_cache_rows

    def expand(self, documents):
        seed, num_shards = self._config.instances.random_seed, self._num_shards

        def bucket(document_id):
            return bucket_of(document_id, seed=seed, num_buckets=num_shards)

        keyed = {"documents": documents | "KeyByBucket" >> beam.Map(lambda d: (bucket(d.id), d))}
        if self._word_cache_rows is not None:
            keyed["words"] = self._word_cache_rows | "KeyCacheByBucket" >> beam.Map(lambda r: (bucket(r["id"]), r))
        return (
            keyed
            | "GroupByBucket" >> beam.CoGroupByKey()
            | "SkipCacheOnlyBuckets" >> beam.Filter(_has_documents)
            | "MakeAndWrite" >> beam.ParDo(self._write).with_outputs(STATS, DEAD_LETTER, main="files")
        )


# ---------------------------------------------------------------- manifests

def phase_statistics(counters: dict, instances, phase) -> dict:
    """What the manifest reports of a phase beyond its counters: masked and padding shares."""
    prefix = f"{STATISTICS_PREFIX}{phase.max_seq_length}."
    count_of = collections.Counter({k[len(prefix):]: v for k, v in counters.items() if k.startswith(prefix)})
    n, length = count_of["instances"], phase.max_seq_length
    statistics = {"instances": n, "label_1_share": count_of["label_1"] / n if n else None}
    if n:
        statistics["padding_share"] = count_of["padding_tokens"] / (n * length)
        if count_of["masked_tokens"] or instances.masking == "static":
            statistics["masked_share"] = {
                "expected": instances.masked_lm_prob,
                "measured": count_of["masked_tokens"] / count_of["instance_tokens"],
                "note": "masked tokens / real tokens ([CLS] and [SEP] included, as in Google's budget)"}
        for other in ("packed", "unpacked"):  # what the other layout would have padded
            if count_of[f"{other}_instances"]:
                statistics[f"padding_share_{other}_estimate"] = 1 - count_of[f"{other}_tokens"] / (
                    count_of[f"{other}_instances"] * length)
    if instances.pairs and counters.get("random_next_from_same_document"):
        statistics["random_next_from_same_document"] = counters["random_next_from_same_document"]
    return statistics


def _phase_counters(counters: dict, phase) -> dict:
    """The run's counters with this phase's (``phase.<length>.*``) unprefixed and the other
    phases' left out."""
    own = f"{STATISTICS_PREFIX}{phase.max_seq_length}."
    result = {}
    for name, value in counters.items():
        if name.startswith(own):
            result[name[len(own):]] = value
        elif name.startswith(f"hist.{own}"):
            result["hist." + name[len("hist.") + len(own):]] = value
        elif not (name.startswith(STATISTICS_PREFIX) or name.startswith(f"hist.{STATISTICS_PREFIX}")):
            result[name] = value
    return dict(sorted(result.items()))


def write_manifests(_, *, config, vocab, run_info, files, counters, dead_letter_files, word_cache_folders=(),
                    prepared=None):
    """Runs once, after every shard and the dead letters are written: per phase vocab.txt and its
    manifest, then (several phases) the top manifest that lists them."""
    from pipelines.common import accounting

    instances = config.instances
    balance = accounting(counters)
    config_json = config.to_json()
    phases_listed = []
    several = len(instances.phases) > 1
    for phase in instances.phases:
        folder = phase_folder(config, phase)
        own = sorted((f for f in files if f["phase"] == phase.max_seq_length), key=lambda f: f["file"])
        write_atomically(join(folder, VOCAB), vocab.to_bytes())
        phase_counters = _phase_counters(counters, phase)
        manifest = Manifest(
            kind="instances", **run_info.fields(), prepared=prepared, config=config_json,
            files=tuple(f["file"] for f in own if f["kind"] == "tfrecord"),
            parquet_files=tuple(f["file"] for f in own if f["kind"] == "parquet"),
            file_info={f["file"]: f["info"] for f in own},
            dead_letter_files=tuple(("../" if several else "") + name for name in dead_letter_names(dead_letter_files)),
            counters=phase_counters, accounting=balance,
            num_instances=phase_counters.get("instances", 0), recipe=instances.recipe,
            max_seq_length=phase.max_seq_length, max_predictions_per_seq=phase.max_predictions_per_seq,
            sentence_task=instances.sentence_task, next_sentence_prediction=instances.trains_sentence_task,
            masking=instances.masking, features=tuple(f.name for f in schema(instances.masking)),
            vocab_file=VOCAB, vocab_size=vocab.size, vocab_sha256=vocab.sha256,
            statistics=phase_statistics(counters, instances, phase),
            word_cache_folders=tuple(word_cache_folders))
        write_manifest(folder, manifest)
        phases_listed.append({"max_seq_length": phase.max_seq_length, "manifest": f"{phase.folder}/{MANIFEST}"})
        if not several:
            return manifest
    top = Manifest(
        kind="phases", **run_info.fields(), prepared=prepared, config=config_json,
        files=tuple(f"seq{f['phase']}/{f['file']}" for f in sorted(files, key=lambda f: (f["phase"], f["file"]))
                    if f["kind"] == "tfrecord"),
        file_info={f"seq{f['phase']}/{f['file']}": f["info"] for f in files},
        dead_letter_files=dead_letter_names(dead_letter_files), counters=dict(sorted(counters.items())),
        accounting=balance, recipe=instances.recipe, phases=tuple(phases_listed))
    return write_manifest(config.output.path, top)


def build_pipeline(pipeline, *, config, vocab, segmenter, run_info, word_cache_folders=(), prepared=None):
    """``segmenter``: the launcher's (checked) SegmenterChoice; ``word_cache_folders``: finished
    segmentation caches (``wwm segment``) of that segmenter."""
    num_shards = config.output.num_shards
    documents = pipeline | "PrepareDocuments" >> PrepareDocuments(config.sources, cleaning=config.cleaning)
    word_cache_rows = read_word_cache(pipeline, word_cache_folders) if word_cache_folders else None
    shards = documents["documents"] | "WriteShards" >> WriteShards(
        config=config, vocab_bytes=vocab.to_bytes(), num_shards=num_shards,
        segmenter=segmenter, word_cache_rows=word_cache_rows)
    dead_letter_files = write_dead_letters((documents[DEAD_LETTER], shards[DEAD_LETTER]), config.output.path)
    counters = sum_counters((documents[STATS], shards[STATS]))
    file_list = shards.files | "ListFiles" >> beam.combiners.ToList()
    return (
        pipeline
        | "ManifestTrigger" >> beam.Create([None])
        | "WriteManifests" >> beam.Map(
            write_manifests, config=config, vocab=vocab, run_info=run_info, prepared=prepared,
            word_cache_folders=word_cache_folders,
            files=beam.pvalue.AsSingleton(file_list),
            counters=beam.pvalue.AsSingleton(counters),
            dead_letter_files=beam.pvalue.AsList(dead_letter_files))
    )


def automatic_shards(input_bytes: int, *, bytes_per_shard: int) -> int:
    return max(1, math.ceil(input_bytes / bytes_per_shard))
