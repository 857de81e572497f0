"""The ``wwm run`` pipeline: raw text to whole-word-masked TFRecord shards and a manifest.

    files -> PrepareDocuments (read, clean, dedup) -> WriteShards (key by seeded hash, GroupByKey,
             \\-> dead letters (read errors, segmenter errors) -----> make + write) -> WriteManifest

Each bucket is one output shard: its DoFn tokenizes, segments, makes and writes that shard's
instances (temporary name, then rename), so shard bytes depend only on the documents hashed
into it and the seed, not on workers, bundles or retries. Only documents go through the shuffle,
never the (dupe_factor times larger) instances.
"""
import collections
import json
import logging

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines.accounting import SumCounters, accounting
from pipelines.io_utils import join
from pipelines.output import write_atomically
from pipelines.parquet_io import DOCUMENTS_FOLDER
from pipelines.read_pipeline import DEAD_LETTER, STATS, PrepareDocuments, count
from pipelines.word_cache import read_word_cache
from wwm_core.clean import CleanConfig
from wwm_core.generate import ShardMaker
from wwm_core.hashing import bucket_of
from wwm_core.text import BadRecord, split_duplicate_ids
from wwm_core.vocab import Vocab
from wwm_core.word_boundaries import cache_entries

MANIFEST = "manifest.json"
VOCAB = "vocab.txt"
SHARD_SUFFIX = ".tfrecord"


def shard_name(index: int, num_shards: int) -> str:
    return f"part-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


class WriteShard(beam.DoFn):
    """(bucket, {"documents": [...], "words": [cache rows]}) -> one TFRecord shard, written under a
    temporary name, then renamed."""

    def __init__(self, *, config, vocab_bytes: bytes, num_shards: int, use_word_cache: bool, segmenter):
        self._config = config
        self._segmenter = segmenter
        self._vocab_bytes = vocab_bytes
        self._num_shards = num_shards
        self._use_word_cache = use_word_cache

    def setup(self):
        self._maker = ShardMaker(
            config=self._config,
            vocab=Vocab.from_bytes(self._vocab_bytes),
            segmenter=self._segmenter.load(),
        )

    def process(self, bucket_and_inputs):
        bucket, inputs = bucket_and_inputs
        word_cache = cache_entries(inputs["words"]) if self._use_word_cache else None
        # Documents with one id meet in one bucket: the repeats are dead letters here (reliability hook).
        documents, duplicates = split_duplicate_ids(inputs["documents"])
        records, stats, dead_letters = self._maker.shard_records(documents, shard_index=bucket,
                                                                 word_cache=word_cache)
        if duplicates:
            stats["dead_lettered.duplicate_document_id"] += len(duplicates)
        dead_letters = duplicates + dead_letters
        name = shard_name(bucket, self._num_shards)
        write_atomically(join(self._config.output, name), b"".join(records))
        stats["shards_written"] += 1
        count(stats)
        logging.info("wrote %s: %d instances from %d documents", name, stats["instances"], stats["documents_out"])
        yield {"file": name, "num_instances": stats["instances"]}
        yield beam.pvalue.TaggedOutput(STATS, stats)
        for record in dead_letters:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, record)


def _has_documents(bucket_and_inputs) -> bool:
    return next(iter(bucket_and_inputs[1]["documents"]), None) is not None


class WriteShards(beam.PTransform):
    """Documents (and cached word boundaries, if any) -> written shard descriptions, with STATS
    and DEAD_LETTER outputs. Cache rows travel to the bucket of their document."""

    def __init__(self, *, config, vocab_bytes: bytes, num_shards: int, segmenter, word_cache_rows=None):
        super().__init__()
        self._config = config
        self._write = WriteShard(config=config, vocab_bytes=vocab_bytes, num_shards=num_shards,
                                 use_word_cache=word_cache_rows is not None, segmenter=segmenter)
        self._num_shards = num_shards
        self._word_cache_rows = word_cache_rows

    def expand(self, documents):
        seed, num_shards = self._config.random_seed, self._num_shards

        def bucket(document_id):
            return bucket_of(document_id, seed=seed, num_buckets=num_shards)

        keyed = {"documents": documents | "KeyByBucket" >> beam.Map(lambda d: (bucket(d.id), d))}
        if self._word_cache_rows is not None:
            keyed["words"] = self._word_cache_rows | "KeyCacheByBucket" >> beam.Map(lambda r: (bucket(r["id"]), r))
        return (
            keyed
            | "GroupByBucket" >> beam.CoGroupByKey()
            | "SkipCacheOnlyBuckets" >> beam.Filter(_has_documents)
            | "MakeAndWrite" >> beam.ParDo(self._write).with_outputs(STATS, DEAD_LETTER, main="shards")
        )


def _dead_letter_json(record: BadRecord) -> str:
    return json.dumps({"id": record.id, "reason": record.reason, "detail": record.detail, "raw": record.raw},
                      ensure_ascii=False)


def finish_manifest(fields: dict, *, path: str, config_json: dict, counters, dead_letter_files) -> dict:
    """Checks the accounting, adds what every manifest holds, and writes the manifest to ``path``
    (last: its presence means the job completed)."""
    balance = accounting(counters)
    if not balance["balanced"]:
        raise RuntimeError(f"records are unaccounted for: {balance}; refusing to write a manifest")
    manifest = {
        **fields,
        "dead_letter_files": sorted(FileSystems.split(f)[1] for f in dead_letter_files),
        "config": config_json,
        "counters": counters,
        "accounting": balance,
    }
    write_atomically(path, json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    return manifest


def write_manifest(_, *, config, vocab, shards, counters, dead_letter_files, word_cache_folders=()):
    """Runs once, after every shard and the dead letters are written: vocab.txt, then manifest.json."""
    shards = sorted(shards, key=lambda s: s["file"])
    write_atomically(join(config.output, VOCAB), vocab.to_bytes())
    return finish_manifest({
        "format": "wwm-tfrecord/1",
        "files": [s["file"] for s in shards],
        "instances_per_file": {s["file"]: s["num_instances"] for s in shards},
        "num_instances": sum(s["num_instances"] for s in shards),
        "recipe": config.recipe,
        "next_sentence_prediction": config.recipe == "bert-wwm",
        "max_seq_length": config.max_seq_length,
        "max_predictions_per_seq": config.max_predictions_per_seq,
        "vocab_file": VOCAB,
        "vocab_size": vocab.size,
        "vocab_sha256": vocab.sha256,
        "word_cache_folders": list(word_cache_folders),
    }, path=join(config.output, MANIFEST), config_json=config.to_json(), counters=counters,
        dead_letter_files=dead_letter_files)


def prepare_documents(config):
    clean = CleanConfig(full_width_to_half_width=config.full_width_to_half_width,
                        min_document_chars=config.min_document_chars, max_document_chars=config.max_document_chars,
                        min_cjk_share=config.min_cjk_share)
    return PrepareDocuments(config.all_sources, clean_config=clean, dedup=config.dedup == "exact",
                            near_duplicate_threshold=config.near_duplicate_threshold)


def write_dead_letters(bad_records, output: str):
    """Dead letters as JSON lines under OUTPUT/dead_letter/; returns the written file names."""
    return (bad_records
            | "AllDeadLetters" >> beam.Flatten()
            | "DeadLetterJson" >> beam.Map(_dead_letter_json)
            | "WriteDeadLetters" >> beam.io.WriteToText(
                join(output, DEAD_LETTER, "records"), file_name_suffix=".jsonl", num_shards=1))


def sum_counters(stats):
    return stats | "AllStats" >> beam.Flatten() | "SumStats" >> beam.CombineGlobally(SumCounters())


def build_pipeline(pipeline, *, config, vocab, num_shards: int, segmenter, word_cache_folders=()):
    """``segmenter``: the launcher's (checked) SegmenterChoice; ``word_cache_folders``: finished
    segmentation caches (``wwm segment``) of that segmenter."""
    documents = pipeline | "PrepareDocuments" >> prepare_documents(config)
    word_cache_rows = read_word_cache(pipeline, word_cache_folders) if word_cache_folders else None
    shards = documents["documents"] | "WriteShards" >> WriteShards(
        config=config, vocab_bytes=vocab.to_bytes(), num_shards=num_shards,
        segmenter=segmenter, word_cache_rows=word_cache_rows)
    dead_letter_files = write_dead_letters((documents[DEAD_LETTER], shards[DEAD_LETTER]), config.output)
    counters = sum_counters((documents[STATS], shards[STATS]))
    shard_list = shards.shards | "ListShards" >> beam.combiners.ToList()
    return (
        pipeline
        | "ManifestTrigger" >> beam.Create([None])
        | "WriteManifest" >> beam.Map(
            write_manifest, config=config, vocab=vocab, word_cache_folders=word_cache_folders,
            shards=beam.pvalue.AsSingleton(shard_list),
            counters=beam.pvalue.AsSingleton(counters),
            dead_letter_files=beam.pvalue.AsList(dead_letter_files))
    )




def write_prepare_manifest(_, *, config, files, counters, dead_letter_files):
    """Runs once, after the Parquet files and dead letters are written."""
    return finish_manifest({
        "format": "wwm-documents/1",
        "files": sorted(join(DOCUMENTS_FOLDER, FileSystems.split(f)[1]) for f in files),
        "num_documents": counters.get("documents_out", 0),
    }, path=join(config.output, MANIFEST), config_json=config.to_json(), counters=counters,
        dead_letter_files=dead_letter_files)


def build_prepare_pipeline(pipeline, *, config, num_shards: int):
    """``wwm prepare``: read, clean and deduplicate; write the documents as Parquet."""
    from pipelines.parquet_io import SCHEMA, document_row

    documents = pipeline | "PrepareDocuments" >> prepare_documents(config)
    out_stats = (documents["documents"]
                 | "CountOut" >> beam.Map(lambda d: collections.Counter({"documents_out": 1}))
                 | "SumOut" >> beam.CombineGlobally(SumCounters()))
    files = (documents["documents"]
             | "ToRows" >> beam.Map(document_row)
             | "WriteParquet" >> beam.io.WriteToParquet(
                 join(config.output, DOCUMENTS_FOLDER, "part"), SCHEMA, file_name_suffix=".parquet",
                 num_shards=num_shards))
    dead_letter_files = write_dead_letters((documents[DEAD_LETTER],), config.output)
    counters = sum_counters((documents[STATS], out_stats))
    return (
        pipeline
        | "ManifestTrigger" >> beam.Create([None])
        | "WriteManifest" >> beam.Map(
            write_prepare_manifest, config=config,
            files=beam.pvalue.AsList(files),
            counters=beam.pvalue.AsSingleton(counters),
            dead_letter_files=beam.pvalue.AsList(dead_letter_files))
    )
