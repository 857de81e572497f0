"""From a bucket of documents to the bytes of its shards: the whole per-shard work, for every phase.

The pipeline cuts the corpus into buckets (pipelines/buckets.py); everything a bucket needs (its documents, the seed,
the configuration) is an explicit input here, so a shard's bytes depend on nothing else: not on
the runner, the number of workers, bundle order or retries. A bucket is segmented and tokenized
once; each phase (sequence length) then plans, masks and encodes its instances from the same
tokens, batch by batch, so what a worker holds is the bucket's token arrays, its plans and one
batch, never a shard's worth of instances.
"""
import array
import collections
import dataclasses
import itertools
import random

import numpy as np

from wwm_core.hashing import stable_hash
from wwm_core.instances import (Plan, SpecialIds, TokenPool, drop_leading_separators, filled_plans, make_batch,
                                packed_pool, bucket_pair_plans, plan_matrix, single_segment_plans,
                                single_segment_ranges, with_documents)
from wwm_core.records import ExampleEncoder, feature_values, schema
from wwm_core.text import BadRecord
from wwm_core.tokenization import group_starts, make_tokenizer, tokenize_sentences
from wwm_core.tokenizer_training import cjk_coverage
from wwm_core.vocab import TOKENIZER_FILE
from wwm_core.word_boundaries import document_batches, segment_documents

# Instances masked and encoded together: enough to amortize numpy's per-call cost, few enough that
# a batch's (rows x length) matrices stay small; 2048 rows at length 128, 512 at 512.
BATCH_CELLS = 2048 * 128
CHUNK_SENTENCES = 1024  # sentences segmented and tokenized together
TOP_UNKNOWN_CHARACTERS = 50  # per shard, of the characters the vocabulary lacks


@dataclasses.dataclass(frozen=True)
class PreparedBucket:
    """A bucket's documents as tokens: what every phase makes its instances from."""
    doc_ids: list
    doc_lengths: list  # per document, its sentences' token counts (sentences without tokens left out)
    pool: TokenPool
    doc_sources: list = None  # per document, its source's name (the report's per-source counts)
    token_counts: np.ndarray = None  # per vocabulary id, its tokens in the bucket's text (each once)


def count_histogram(stats, name: str, values, *, width: int = 1, log2: bool = False) -> None:
    """Counts ``values`` into the histogram ``name`` of ``stats`` (wwm_core.stats.Stats), by the
    lower edge of their bin: bins of ``width``, or powers of two."""
    values = np.asarray(values, dtype=np.int64)
    if not len(values):
        return
    if log2:
        edges = np.where(values < 1, 0, 1 << np.floor(np.log2(np.maximum(values, 1))).astype(np.int64))
    else:
        edges = values // width * width
    stats.count_histogram(name, zip(*np.unique(edges, return_counts=True)))


def instance_ids(shard_index: int, first_row: int, count: int) -> np.ndarray:
    """The ids of rows ``first_row``, ... of a bucket's shard: the bucket in the high 32 bits, the
    row in the low; unique within a phase, and the same in every run of the same command."""
    if first_row + count > 1 << 32:
        raise ValueError(f"bucket {shard_index} makes more than 2**32 instances at one length")
    return (np.int64(shard_index) << 32) + np.arange(first_row, first_row + count, dtype=np.int64)


def batch_rows(max_seq_length: int) -> int:
    return max(1, BATCH_CELLS // max_seq_length)


class ShuffledRows:
    """A matrix read in a permuted row order, slice by slice: the permuted copy is never made
    whole (a bucket's plans are tens of MB)."""

    def __init__(self, rows: np.ndarray, order: np.ndarray):
        self.rows, self.order = rows, order

    def __len__(self):
        return len(self.order)

    def __getitem__(self, where: slice) -> np.ndarray:
        return self.rows[self.order[where]]


class ShardMaker:
    """Holds what is loaded once per worker: tokenizer, segmenter, encoders."""

    def __init__(self, *, instances, output, vocab, segmenter, max_document_chars: int, similar=None):
        """``similar``: MacBERT's similar words in token ids (``masking.SimilarWords``), for
        ``instances.replacement`` macbert."""
        self.instances = instances
        self.similar = similar
        self.output = output
        self.segmenter = segmenter
        self.max_document_chars = max_document_chars
        self.tokenizer = make_tokenizer(vocab, do_lower_case=instances.do_lower_case)
        self.vocab = vocab
        self.special = SpecialIds(cls=vocab.special_id("cls"), sep=vocab.special_id("sep"),
                                  mask=vocab.special_id("mask"), vocab_size=vocab.size)
        unknown = vocab.special_id("unk")
        self.unknown_id = -1 if unknown is None else unknown  # byte-level BPE has no unknown token
        self.token_dtype = np.uint16 if vocab.size <= 1 << 16 else np.int32
        packed = instances.pack_across_documents
        self.encoders = {phase: ExampleEncoder(schema(instances.masking, packed=packed),
                                               max_seq_length=phase.max_seq_length,
                                               max_predictions_per_seq=phase.max_predictions_per_seq,
                                               vocab_size=vocab.size)
                         for phase in instances.phases}
        self.parquet_features = schema(instances.masking, parquet=True, packed=packed)

    # ---------------------------------------------------------------- once per bucket

    def prepare(self, documents, stats: collections.Counter, dead_letters: list, *, word_cache=None) -> PreparedBucket:
        """Documents (any iterable, read once) -> their tokens and word groups, in document id
        order, filtering with counted reasons. A repeated id is a dead letter (the first kept);
        documents the segmenter fails on go to ``dead_letters``. ``word_cache`` ({sentence key:
        word lengths}) spares segmenting sentences it holds. Worked through in chunks of about
        CHUNK_SENTENCES sentences as the documents stream in, so what is held is the bucket's
        token arrays, never its text or the segmenter's and tokenizer's Python objects for all
        of it."""
        doc_ids, doc_lengths, doc_sources, doc_ids_arrays, doc_group_arrays = [], [], [], [], []
        token_counts = np.zeros(self.vocab.size, np.int64)
        for chunk in document_batches(self._usable(documents, stats, dead_letters), CHUNK_SENTENCES):
            first = len(doc_ids)
            chunk_ids, chunk_group_start = self._prepare_chunk(chunk, stats, dead_letters, doc_ids, doc_lengths,
                                                              doc_sources, word_cache=word_cache)
            token_counts += np.bincount(chunk_ids, minlength=self.vocab.size)[:self.vocab.size]
            # Sentences and documents without tokens contribute no tokens, so the chunk's arrays
            # are exactly its kept documents' tokens, in order: each document is a view of them.
            ends = np.cumsum([sum(lengths) for lengths in doc_lengths[first:]]).tolist()
            chunk_ids = chunk_ids.astype(self.token_dtype)
            for start, end in zip([0] + ends, ends):
                doc_ids_arrays.append(chunk_ids[start:end])
                doc_group_arrays.append(chunk_group_start[start:end])
        stats["documents_out"] += len(doc_ids)
        # Id order, not input order: the same documents in any order make the same shard.
        order = sorted(range(len(doc_ids)), key=doc_ids.__getitem__)
        doc_lengths = [doc_lengths[d] for d in order]
        pool = TokenPool(
            ids=np.concatenate([doc_ids_arrays[d] for d in order]) if order else np.zeros(0, self.token_dtype),
            group_start=np.concatenate([doc_group_arrays[d] for d in order]) if order else np.zeros(0, bool),
            doc_offsets=np.cumsum([0] + [sum(lengths) for lengths in doc_lengths], dtype=np.int64))
        return PreparedBucket([doc_ids[d] for d in order], doc_lengths, pool,
                              doc_sources=[doc_sources[d] for d in order], token_counts=token_counts)

    def _usable(self, documents, stats, dead_letters):
        """The documents worth segmenting: not a repeated id, not empty, not too long (counted)."""
        seen = set()
        for document in documents:
            num_chars = sum(map(len, document.sentences))
            if document.id in seen:
                stats["dead_lettered.duplicate_document_id"] += 1
                dead_letters.append(BadRecord(document.id, "duplicate_document_id", "another document of this "
                                              "bucket has this id; the first is kept", "\n".join(document.sentences)[:200]))
                continue
            seen.add(document.id)
            if num_chars == 0:
                stats["documents_filtered.empty"] += 1
            elif num_chars > self.max_document_chars:
                stats["documents_filtered.too_long"] += 1
            else:
                yield document

    def _prepare_chunk(self, documents, stats, dead_letters, doc_ids: list, doc_lengths: list, doc_sources: list, *,
                       word_cache):
        """One chunk of documents: segmented and tokenized in one batched call each (both pay a
        per-call cost that would dominate short sentences). Appends the documents that have
        tokens to ``doc_ids``, their sentences' token counts to ``doc_lengths`` and their sources
        to ``doc_sources`` (counting each source's documents and characters); returns the chunk's
        (token ids, group starts)."""
        kept, sentences, words = segment_documents(self.segmenter, documents, stats=stats,
                                                   dead_letters=dead_letters, cache=word_cache)
        sentence_lengths = [len(text) for text in sentences]
        for index, (length, word_lengths) in enumerate(zip(sentence_lengths, words)):
            if word_lengths is not None and sum(word_lengths) != length:
                stats["sentences.segmenter_text_mismatch"] += 1
                words[index] = [1] * length
        tokenized = tokenize_sentences(self.tokenizer, sentences)
        grouping = group_starts(tokenized, sentence_lengths, words)
        stats["segmenter_boundaries_overridden"] += grouping.boundaries_overridden
        stats["segmenter_words_split_at_space"] += grouping.words_split_at_space
        stats["sentences_dropped.no_tokens"] += int(np.count_nonzero(tokenized.sentence_tokens == 0))
        cursor = 0
        for document in kept:
            counts = tokenized.sentence_tokens[cursor:cursor + len(document.sentences)].tolist()
            cursor += len(document.sentences)
            lengths = [count for count in counts if count]
            if lengths:
                doc_ids.append(document.id)
                doc_lengths.append(lengths)
                doc_sources.append(document.source)
                stats[f"source.{document.source}.documents"] += 1
                stats[f"source.{document.source}.characters"] += sum(map(len, document.sentences))
            else:
                stats["documents_filtered.no_tokens"] += 1
        self._count_text(stats, kept, sentences, words, tokenized)
        return tokenized.ids, grouping.group_start

    def _count_text(self, stats, documents, sentences, words, tokenized) -> None:
        """What the report shows of the text: lengths, words, unknown characters."""
        sentence_lengths = [len(text) for text in sentences]
        stats["sentences"] += len(sentence_lengths)
        stats["characters"] += sum(sentence_lengths)
        stats["tokens"] += len(tokenized.ids)
        count_histogram(stats, "document_chars", [sum(map(len, d.sentences)) for d in documents], log2=True)
        count_histogram(stats, "sentence_chars", sentence_lengths, log2=True)
        word_lengths = np.fromiter(itertools.chain.from_iterable(w for w in words if w is not None), np.int64)
        count_histogram(stats, "word_chars", np.minimum(word_lengths, 16))
        unknown = np.flatnonzero(tokenized.ids == self.unknown_id)
        stats["tokens.unknown"] += len(unknown)
        if self.vocab.file_name == TOKENIZER_FILE:  # the tokenizer's audit (wwm report): Chinese characters covered
            cjk, uncovered, _, _ = cjk_coverage(tokenized, sentences, unknown_id=self.vocab.special_id("unk"))
            stats["characters.cjk"] += cjk
            stats["characters.cjk_uncovered"] += uncovered
        if len(unknown):
            sentence_of = np.repeat(np.arange(len(sentences)), tokenized.sentence_tokens)[unknown]
            texts = collections.Counter(sentences[s][a:b] for s, a, b in zip(
                sentence_of.tolist(), tokenized.starts[unknown].tolist(), tokenized.ends[unknown].tolist()))
            stats.texts["unknown_token"].update(dict(texts.most_common(TOP_UNKNOWN_CHARACTERS)))

    def instance_batches(self, documents, *, shard_index: int, stats, dead_letters: list, word_cache=None,
                         token_counts: list = None):
        """A bucket's documents -> (phase, InstanceBatch) for every phase in turn, in shard
        order, counted in ``stats``. Documents are sorted by id first (GroupByKey order is not
        stable); of documents that share an id one is kept, whatever their order, and the others
        are dead letters (``prepare``). ``token_counts``: a list that receives the bucket's tokens
        per vocabulary id (each sentence once, whatever the dupe factor)."""
        bucket = self.prepare(documents, stats, dead_letters, word_cache=word_cache)
        if token_counts is not None:
            token_counts.append(bucket.token_counts)
        for phase in self.instances.phases:
            if not self.instances.pairs:
                self.count_other_layout(bucket, phase, stats)
            for batch in self.phase_batches(bucket, phase, shard_index=shard_index, stats=stats):
                self.count_batch(stats, batch, phase)
                yield phase, batch

    # ---------------------------------------------------------------- once per phase

    def plans(self, bucket: PreparedBucket, phase, *, shard_index: int, stats) -> np.ndarray:
        """Every instance plan of a bucket for one phase, as one (n, 8) int64 matrix (Plan's
        fields) read in the shard's (shuffled) order: numbers, not a Python object per instance. Each
        document's plans, all dupes in turn, come from its own generator, seeded by (seed,
        document): the plans of one phase never depend on the other phases or on the bucket's
        other documents (except as the pool random-next segments are drawn from). The planner's
        counts (random nexts from A's own document) and each source's instances (by the document
        segment A comes from) are counted as this phase's, ``phase.<length>.*``."""
        config = self.instances
        seeds = [stable_hash(config.random_seed, doc_id) for doc_id in bucket.doc_ids]
        planner = collections.Counter()
        if config.pairs:
            plans = bucket_pair_plans(bucket.doc_lengths, seeds, dupe_factor=config.dupe_factor, phase=phase,
                                      short_seq_prob=config.short_seq_prob, task=config.sentence_task, stats=planner)
        else:
            fields = array.array("q")
            for index, seed in enumerate(seeds):
                rng = random.Random(seed)
                for _ in range(config.dupe_factor):
                    for plan in single_segment_plans(bucket.doc_lengths, index, rng=rng, phase=phase):
                        fields.extend(plan)
            plans = np.frombuffer(fields, dtype=np.int64).reshape(-1, len(Plan._fields))
        prefix = f"phase.{phase.max_seq_length}."
        for name, value in planner.items():
            stats[prefix + name] += value
        if bucket.doc_sources and len(plans):
            names, source_of_doc = np.unique(np.array(bucket.doc_sources, dtype=object), return_inverse=True)
            per_source = np.bincount(source_of_doc[plans[:, 0]], minlength=len(names))
            for name, count in zip(names.tolist(), per_source.tolist()):
                stats[f"{prefix}source.{name}.instances"] += count
        # Google shuffles all instances; we shuffle within the shard, seeded by the shard.
        order = np.random.default_rng(stable_hash(config.random_seed, "shard", shard_index)).permutation(len(plans))
        return ShuffledRows(plans, order)

    def _packed_plans(self, bucket: PreparedBucket, phase, *, shard_index: int):
        """FULL-SENTENCES: per dupe, the bucket's documents in a seeded order as one stream:
        (the stream's pool, its plan matrix), one dupe at a time (each stream copies the pool)."""
        config = self.instances
        for dupe in range(config.dupe_factor):
            seed = stable_hash(config.random_seed, "pack", shard_index, dupe)
            order = np.random.default_rng(seed).permutation(len(bucket.doc_ids))
            stream, lengths = packed_pool(bucket.pool, bucket.doc_lengths, order, special=self.special)
            if config.pack_fill == "tokens":
                yield stream, plan_matrix(filled_plans(stream, rng=random.Random(seed), phase=phase))
                continue
            dupe_plans = single_segment_plans([lengths], 0, rng=random.Random(seed), phase=phase)
            yield stream, plan_matrix(drop_leading_separators(dupe_plans, stream, special=self.special))

    def count_other_layout(self, bucket: PreparedBucket, phase, stats) -> None:
        """One segment per instance: what the other layout (packed across documents, or one
        document each) would have made of this bucket, so the manifest can show both padding
        shares. Counted as ``phase.<length>.{packed,unpacked}_{instances,tokens}``."""
        prefix = f"phase.{phase.max_seq_length}."
        content = int(bucket.pool.doc_offsets[-1])  # the bucket's tokens
        dupes = self.instances.dupe_factor
        budget = phase.max_seq_length - 2
        if self.instances.pack_across_documents:
            count = sum(len(single_segment_ranges(lengths, budget=budget)) for lengths in bucket.doc_lengths)
            stats[prefix + "unpacked_instances"] += dupes * count
            stats[prefix + "unpacked_tokens"] += dupes * (content + 2 * count)
        else:
            stream = [length + (rank > 0 and first) for rank, lengths in enumerate(bucket.doc_lengths)
                      for first, length in ((i == 0, length) for i, length in enumerate(lengths))]
            count = len(single_segment_ranges(stream, budget=budget))
            separators = max(0, len(bucket.doc_ids) - 1)
            stats[prefix + "packed_instances"] += dupes * count
            stats[prefix + "packed_tokens"] += dupes * (content + separators + 2 * count)

    def phase_batches(self, bucket: PreparedBucket, phase, *, shard_index: int, stats):
        """The phase's instances in shard order, as InstanceBatches of ``batch_rows`` rows."""
        config = self.instances
        rows = batch_rows(phase.max_seq_length)
        if config.pack_across_documents:  # one stream per dupe, each its own pool
            streams = self._packed_plans(bucket, phase, shard_index=shard_index)
        else:
            streams = [(bucket.pool, self.plans(bucket, phase, shard_index=shard_index, stats=stats))]
        written = 0
        for pool, plans in streams:
            for first in range(0, len(plans), rows):
                batch = make_batch(plans[first:first + rows], pool, special=self.special, phase=phase,
                                   masked_lm_prob=config.masked_lm_prob, masking=config.masking,
                                   with_word_ids=self.output.parquet, ngram_weights=config.ngram_weights,
                                   replacement=config.replacement, similar=self.similar)
                if config.pack_across_documents:
                    batch = with_documents(batch, plans[first:first + rows], pool)
                yield dataclasses.replace(batch, instance_ids=instance_ids(shard_index, written, len(batch)))
                written += len(batch)

    def count_batch(self, stats, batch, phase) -> None:
        """Per-phase counters (``phase.<length>.*``) of one batch: instances, tokens, padding,
        masks, labels, and the report's histograms."""
        prefix = f"phase.{phase.max_seq_length}."
        stats[prefix + "instances"] += len(batch)
        stats[prefix + "instance_tokens"] += int(batch.lengths.sum())
        stats[prefix + "padding_tokens"] += int(len(batch) * phase.max_seq_length - batch.lengths.sum())
        stats[prefix + "label_1"] += int(batch.labels.sum())
        count_histogram(stats, prefix + "instance_tokens", batch.lengths, width=max(1, phase.max_seq_length // 32))
        if batch.num_masked is not None:
            stats[prefix + "masked_tokens"] += int(batch.num_masked.sum())
            count_histogram(stats, prefix + "masked_per_instance", batch.num_masked)
            stats.count_histogram(prefix + "masked_word_tokens", ((min(size, 16), count) for size, count
                                                                  in enumerate(batch.masked_group_sizes.tolist())))
            stats.count_histogram(prefix + "masked_span_words", enumerate(batch.masked_span_words.tolist()))
            for name, count in batch.replacements.items():
                stats[f"{prefix}macbert.{name}"] += count

    def parquet_columns(self, batch, phase) -> dict:
        """{Parquet column: (n, length) values} of a batch, from the schema."""
        return {feature.parquet_name: feature_values(batch, feature, max_seq_length=phase.max_seq_length,
                                                     max_predictions_per_seq=phase.max_predictions_per_seq)
                for feature in self.parquet_features}

    def tfrecord_bytes(self, batch, phase):
        """The batch's rows as TFRecord file bytes, and each frame's end offset in them."""
        return self.encoders[phase].frames(batch)
