"""The ``wwm run`` pipeline: documents to whole-word-masked shards for every phase, and manifests.

    MakeBuckets (read, clean, dedup: pipelines/buckets.py) -> WriteShard (per bucket, every phase)
         \\-> dead letters (read errors, segmenter errors) --------------------------> WriteManifests

Each bucket is one shard of every phase: its DoFn segments and tokenizes the bucket once, then
makes, encodes and streams each phase's instances into that phase's files (temporary names, then
renamed), so shard bytes depend only on the bucket's documents and the seed, not on workers,
bundles or retries. Neither documents nor instances travel between workers. Manifests are
written last: one per phase, and for several phases one more at the top that lists them.
"""
import collections
import functools
import json
import logging

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipelines.common import DEAD_LETTER, STATS, AccountedDoFn, FinishStage, dead_letter_names, write_manifest
from pipelines.io_utils import join
from pipelines.output import ParquetShard, ShardFile, shard_name, write_atomically
from pipelines.balance import BalanceShards, record_sizes_bytes
from pipelines.buckets import WORK_FOLDER, MakeBuckets, bucket_documents
from pipelines.progress import counting_segmenter, tally
from pipelines.word_cache import read_cache_rows
from wwm_core.generate import ShardMaker
from wwm_core.config import SECTIONS
from wwm_core.manifest import MANIFEST, Manifest
from wwm_core.masking import SimilarWords
from wwm_core.records import schema
from wwm_core.word_boundaries import cache_entries

SIMILAR_WORDS_FILE = "similar_words.npz"  # MacBERT's similar words in token ids, beside vocab.txt
STATISTICS_PREFIX = "phase."
TOKEN_COUNTS = "token_counts"  # side output: per shard, its tokens per vocabulary id
TOKEN_COUNTS_FILE = "token_counts.json"  # beside the top manifest: the run's tokens per vocabulary id


def phase_folder(config, phase) -> str:
    """OUTPUT for a run of one length; OUTPUT/seq128, OUTPUT/seq512, ... for several."""
    output = config.output.path
    return output if len(config.instances.phases) == 1 else join(output, phase.folder)


class WriteShard(AccountedDoFn):
    """(order, {"bucket": [AssignedBucket], "drop": [Drops]}) -> the bucket's shard of every phase
    and format, written as streams under temporary names, then renamed; yields one description
    per file. With a segmentation cache, the bucket's cached word boundaries are in the cache
    file of the same name as its documents file (``wwm segment`` writes them so). ``progress``: a
    ProgressChannel that sentences segmented and shards written are counted into, or None."""

    def __init__(self, *, config, vocab, segmenter, word_cache_folder=None, progress=None,
                 expected_versions=None, similar_words_bytes: bytes = None):
        super().__init__(expected_versions=expected_versions)
        self._config = config
        self._progress = progress
        self._segmenter = segmenter
        self._vocab = vocab  # a Vocab: a vocab.txt or a tokenizer.json with its special tokens
        self._similar_words_bytes = similar_words_bytes  # masking.SimilarWords as .npz, for MacBERT
        self._word_cache_folder = word_cache_folder
        # --balance_shards: the buckets' shards go to the work folder, to be cut into equal files.
        self._balancing = config.output.balance_shards

    def start(self):
        self._maker = ShardMaker(
            instances=self._config.instances, output=self._config.output,
            vocab=self._vocab,
            segmenter=counting_segmenter(self._segmenter.load(), self._progress),
            max_document_chars=self._config.cleaning.max_document_chars,
            similar=SimilarWords.from_npz_bytes(self._similar_words_bytes) if self._similar_words_bytes else None)
        self._tally = tally(self._progress, "shards")

    def _open(self, phase, index: int, count: int) -> dict:
        output = self._config.output
        folder = (join(output.path, WORK_FOLDER, phase.folder) if self._balancing else phase_folder(self._config, phase))
        files = {}
        if output.tfrecord:
            files["tfrecord"] = ShardFile(join(folder, shard_name(index, count, ".tfrecord")))
        if output.parquet:
            shard = ShardFile(join(folder, shard_name(index, count, ".parquet")))
            files["parquet"] = ParquetShard(shard, self._maker.parquet_features)
        return files

    def work(self, order_and_inputs, stats, dead_letters):
        _, inputs = order_and_inputs
        (bucket,) = inputs["bucket"]
        documents = bucket_documents(bucket, inputs["drop"], stats, dead_letters)
        word_cache = self._word_cache(bucket, stats)
        maker, phases = self._maker, self._config.instances.phases
        opened = {phase: self._open(phase, bucket.index, bucket.count) for phase in phases}
        written, token_counts, record_sizes = collections.Counter(), [], collections.defaultdict(list)
        try:
            for phase, batch in maker.instance_batches(documents, shard_index=bucket.index, stats=stats,
                                                       dead_letters=dead_letters, word_cache=word_cache,
                                                       token_counts=token_counts):
                files = opened[phase]
                if "tfrecord" in files:
                    data, frame_ends = maker.tfrecord_bytes(batch, phase)
                    files["tfrecord"].write(data)
                    if self._balancing:
                        record_sizes[phase].extend(np.diff(frame_ends, prepend=0).tolist())
                if "parquet" in files:
                    files["parquet"].write_batch(maker.parquet_columns(batch, phase))
                written[phase] += len(batch)
        except BaseException:
            for files in opened.values():
                for stream in files.values():
                    stream.abandon()
            raise
        for phase, files in opened.items():
            for kind, stream in files.items():
                if kind == "parquet":
                    stream.close()
                    stream = stream.shard_file
                description = {"phase": phase.max_seq_length, "kind": kind, "file": FileSystems.split(stream.path)[1],
                               "info": stream.finish(written[phase]), "path": stream.path}
                if self._balancing and kind == "tfrecord":
                    description["index"] = f"{stream.path}.sizes.npy"
                    write_atomically(description["index"], record_sizes_bytes(record_sizes[phase]))
                yield description
        stats["shards_written"] += 1
        if self._tally is not None:
            self._tally.note(of=bucket.count)
            self._tally.add(n=1)
            self._tally.flush()
        logging.info("wrote shard %d of %d: %s instances from %d documents", bucket.index, bucket.count,
                     ", ".join(f"{written[p]} at {p.max_seq_length}" for p in phases), stats["documents_out"])
        for counts in token_counts:
            yield beam.pvalue.TaggedOutput(TOKEN_COUNTS, counts)

    def _word_cache(self, bucket, stats):
        """{sentence key: word lengths} of the bucket's cache file, or None without a cache."""
        if self._word_cache_folder is None:
            return None
        path = join(self._word_cache_folder, FileSystems.split(bucket.file.path)[1])
        return cache_entries(read_cache_rows(path, stats))


class SumArrays(beam.CombineFn):
    """Per-shard token counts -> the run's (None when no shard had any)."""

    def create_accumulator(self):
        return None

    def add_input(self, accumulator, counts):
        return counts.astype(np.int64) if accumulator is None else accumulator + counts

    def merge_accumulators(self, accumulators):
        total = None
        for accumulator in accumulators:
            if accumulator is not None:
                total = accumulator if total is None else total + accumulator
        return total

    def extract_output(self, accumulator):
        return accumulator


def token_counts_json(counts, vocab) -> bytes:
    """The run's tokens per vocabulary id (each bucket's text once, not per dupe): what the report's
    token-frequency plot and vocabulary coverage read."""
    values = [0] * vocab.size if counts is None else counts.tolist()
    return json.dumps({"vocab_size": vocab.size, "vocab_sha256": vocab.sha256, "tokens": sum(values),
                       "counts": values}, separators=(",", ":")).encode()


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
        spans = {int(words): value for words, value in counters.histograms.get(prefix + "masked_span_words", {}).items()
                 if value}
        if spans:
            total = sum(spans.values())
            statistics["masked_spans"] = {
                "spans": total, "mean_words": sum(words * n for words, n in spans.items()) / total,
                "share_by_words": {str(words): spans[words] / total for words in sorted(spans)},
                "weights": {str(k + 1): w / sum(instances.ngram_weights)
                                            for k, w in enumerate(instances.ngram_weights)}}
        words = sum(count_of[f"macbert.words_{kind}"] for kind in ("similar", "random", "kept"))
        if instances.replacement == "macbert" and words:
            statistics["macbert_replacement"] = {
                "words": words, **{f"{kind}_share": count_of[f"macbert.words_{kind}"] / words
                                   for kind in ("similar", "random", "kept", "no_candidate")},
                "note": "per masked word: similar 80%, random 10%, kept 10%; a word drawn for a similar word "
                        "without a candidate of its length gets random tokens (no_candidate, counted in random)"}
        for other in ("packed", "unpacked"):  # what the other layout would have padded
            if count_of[f"{other}_instances"]:
                statistics[f"padding_share_{other}_estimate"] = 1 - count_of[f"{other}_tokens"] / (
                    count_of[f"{other}_instances"] * length)
    if instances.pairs and count_of["random_next_from_same_document"]:
        statistics["random_next_from_same_document"] = count_of["random_next_from_same_document"]
    return statistics


def _phase_counters(counters, phase):
    """The run's stats with this phase's (``phase.<length>.*``) unprefixed and the other phases'
    left out."""
    return counters.of_phase(f"{STATISTICS_PREFIX}{phase.max_seq_length}.", STATISTICS_PREFIX)


def write_manifests(*, config, vocab, run_info, files, counters, dead_letter_files, word_cache_folders=(),
                    prepared=None, token_counts=None, similar_words=None, tokenizer_origin=None):
    """Runs once, after every shard and the dead letters are written: per phase vocab.txt and its
    manifest, then (several phases) the top manifest that lists them."""
    from pipelines.common import accounting

    instances = config.instances
    balance = accounting(counters)
    # Prepared documents were cleaned (and deduplicated) by `wwm prepare`, whose manifest ``prepared``
    # links: this run's cleaning settings did not apply, so its manifest does not list them.
    cleaned_here = any(source.input_format != "parquet" for source in config.sources)
    config_json = config.to_json(sections=tuple(s for s in SECTIONS if cleaned_here or s != "cleaning"))
    phases_listed = []
    several = len(instances.phases) > 1
    write_atomically(join(config.output.path, TOKEN_COUNTS_FILE), token_counts_json(token_counts, vocab))
    for phase in instances.phases:
        folder = phase_folder(config, phase)
        own = sorted((f for f in files if f["phase"] == phase.max_seq_length), key=lambda f: f["file"])
        write_atomically(join(folder, vocab.file_name), vocab.to_bytes())
        if similar_words is not None:
            write_atomically(join(folder, SIMILAR_WORDS_FILE), similar_words["npz"])
        phase_counters = _phase_counters(counters, phase)
        manifest = Manifest(
            kind="instances", **run_info.fields(), prepared=prepared, config=config_json,
            files=tuple(f["file"] for f in own if f["kind"] == "tfrecord"),
            parquet_files=tuple(f["file"] for f in own if f["kind"] == "parquet"),
            file_info={f["file"]: f["info"] for f in own},
            dead_letter_files=tuple(("../" if several else "") + name for name in dead_letter_names(dead_letter_files)),
            counters=dict(sorted(phase_counters.items())), histograms=phase_counters.histograms_json(),
            texts=phase_counters.texts_json(), accounting=balance,
            num_instances=phase_counters.get("instances", 0), recipe=instances.recipe,
            max_seq_length=phase.max_seq_length, max_predictions_per_seq=phase.max_predictions_per_seq,
            sentence_task=instances.sentence_task, next_sentence_prediction=instances.trains_sentence_task,
            masking=instances.masking,
            features=tuple(f.name for f in schema(instances.masking, packed=instances.pack_across_documents)),
            vocab_file=vocab.file_name, vocab_size=vocab.size, vocab_sha256=vocab.sha256,
            tokenizer=tokenizer_origin, special_tokens=vocab.special_tokens() if tokenizer_origin else None,
            statistics={**phase_statistics(counters, instances, phase),
                        "token_counts_file": ("../" if several else "") + TOKEN_COUNTS_FILE},
            word_cache_folders=tuple(word_cache_folders),
            similar_words=None if similar_words is None else {**similar_words["about"], "file": SIMILAR_WORDS_FILE})
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
        histograms=counters.histograms_json(), texts=counters.texts_json(),
        accounting=balance, recipe=instances.recipe, phases=tuple(phases_listed),
        statistics={"token_counts_file": TOKEN_COUNTS_FILE})
    return write_manifest(config.output.path, top)


def build_pipeline(pipeline, *, config, vocab, segmenter, run_info, inputs, unreadable=(),
                   word_cache_folders=(), prepared=None, progress=None, similar_words=None, tokenizer_origin=None):
    """``inputs``, ``unreadable``: the input files and the dead letters of paths that cannot be
    read, matched at launch (pipelines.inputs.match_sources); ``segmenter``: the launcher's
    (checked) SegmenterChoice; ``word_cache_folders``: the
    finished segmentation cache (``wwm segment``) of that segmenter, if the input is prepared
    documents that have one; ``progress``: a ProgressChannel the stages count into (local runs),
    or None."""
    buckets = pipeline | "MakeBuckets" >> MakeBuckets(
        config.sources, files=inputs, bad_records=unreadable, cleaning=config.cleaning,
        work_folder=join(config.output.path, WORK_FOLDER), bucket_bytes=config.output.bucket_bytes, progress=progress)
    shards = buckets["buckets"] | "WriteShards" >> beam.ParDo(WriteShard(
        config=config, vocab=vocab, segmenter=segmenter,
        word_cache_folder=word_cache_folders[0] if word_cache_folders else None, progress=progress,
        similar_words_bytes=similar_words["npz"] if similar_words else None)).with_outputs(
        STATS, DEAD_LETTER, TOKEN_COUNTS, main="files")
    files = shards.files
    if config.output.balance_shards:
        files = files | "BalanceShards" >> BalanceShards(
            folder_of={phase.max_seq_length: phase_folder(config, phase) for phase in config.instances.phases},
            num_files=config.output.num_shards, parquet_features=schema(
                config.instances.masking, parquet=True, packed=config.instances.pack_across_documents))
    token_counts = shards[TOKEN_COUNTS] | "SumTokenCounts" >> beam.CombineGlobally(SumArrays())
    return pipeline | "Finish" >> FinishStage(
        output=config.output.path, files=files, stats=(buckets[STATS], shards[STATS]),
        dead_letters=(buckets[DEAD_LETTER], shards[DEAD_LETTER]), work_folder=True,
        side={"token_counts": beam.pvalue.AsSingleton(token_counts)},
        write_manifest=functools.partial(
            write_manifests, config=config, vocab=vocab, run_info=run_info, prepared=prepared,
            similar_words=similar_words, tokenizer_origin=tokenizer_origin, word_cache_folders=word_cache_folders))
