"""From a bucket of raw documents to the TFRecord bytes of one shard: the whole per-shard work.

The pipeline hashes documents into buckets; everything a bucket needs (its documents, the seed,
the configuration) is an explicit input here, so a shard's bytes depend on nothing else: not on
the runner, the number of workers, bundle order or retries.
"""
import collections
import random

import numpy as np

from wwm_core.hashing import stable_hash
from wwm_core.instances import (SpecialIds, TokenPool, bert_wwm_plans, masked_batch, roberta_wwm_ext_plans,
                                sentence_offsets)
from wwm_core.records import ExampleEncoder, tfrecord_frames
from wwm_core.tokenization import group_starts, make_wordpiece_tokenizer, tokenize_sentences
from wwm_core.word_boundaries import segment_documents

BATCH_ROWS = 2048  # instances masked and encoded together: big enough to amortize numpy calls


class ShardMaker:
    """Holds what is loaded once per worker: tokenizer, segmenter, encoder."""

    def __init__(self, *, config, vocab, segmenter):
        self.config = config
        self.segmenter = segmenter
        self.tokenizer = make_wordpiece_tokenizer(vocab, do_lower_case=config.do_lower_case)
        self.special = SpecialIds(cls=vocab.id_of("[CLS]"), sep=vocab.id_of("[SEP]"),
                                  mask=vocab.id_of("[MASK]"), vocab_size=vocab.size)
        self.encoder = ExampleEncoder(max_seq_length=config.max_seq_length,
                                      max_predictions_per_seq=config.max_predictions_per_seq,
                                      vocab_size=vocab.size)

    def prepare(self, documents, stats: collections.Counter, dead_letters: list, *, word_cache=None):
        """Documents -> (kept document ids, sentence token counts per document, TokenPool),
        filtering with counted reasons; documents the segmenter fails on go to ``dead_letters``.
        ``word_cache`` ({sentence key: word lengths}) spares segmenting sentences it holds."""
        kept = []
        for document in documents:
            num_chars = sum(map(len, document.sentences))
            if num_chars == 0:
                stats["documents_filtered.empty"] += 1
            elif num_chars > self.config.max_document_chars:
                stats["documents_filtered.too_long"] += 1
            else:
                kept.append(document)
        # One batched call per stage for the whole bucket: the segmenter and the tokenizer both
        # pay a per-call cost that would dominate short sentences.
        kept, sentences, words = segment_documents(self.segmenter, kept, stats=stats, dead_letters=dead_letters,
                                                   cache=word_cache)
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

        doc_ids, doc_lengths, cursor = [], [], 0
        for document in kept:
            counts = tokenized.sentence_tokens[cursor:cursor + len(document.sentences)].tolist()
            cursor += len(document.sentences)
            lengths = [count for count in counts if count]
            if lengths:
                doc_ids.append(document.id)
                doc_lengths.append(lengths)
            else:
                stats["documents_filtered.no_tokens"] += 1
        stats["tokens"] += len(tokenized.ids)
        # Sentences and documents without tokens contribute no tokens, so the flat arrays are
        # exactly the kept documents' tokens, in order.
        pool = TokenPool(
            ids=tokenized.ids,
            group_start=grouping.group_start,
            doc_offsets=np.cumsum([0] + [sum(lengths) for lengths in doc_lengths], dtype=np.int64),
        )
        return doc_ids, doc_lengths, pool

    def plans(self, doc_ids, doc_lengths):
        """Every instance plan of a bucket, dupe by dupe, each document with its own seeded generator."""
        config = self.config
        make_plans = bert_wwm_plans if config.recipe == "bert-wwm" else roberta_wwm_ext_plans
        offsets = [sentence_offsets(lengths) for lengths in doc_lengths]
        for dupe in range(config.dupe_factor):
            for index, doc_id in enumerate(doc_ids):
                rng = random.Random(stable_hash(config.random_seed, doc_id, dupe))
                yield from make_plans(doc_lengths, index, rng=rng, config=config.masking, offsets=offsets)

    def shard_records(self, documents, *, shard_index: int, word_cache=None):
        """Returns (framed TFRecord bytes in shard order, stats, dead letters) for one bucket."""
        stats, dead_letters = collections.Counter(), []
        documents = sorted(documents, key=lambda d: d.id)  # GroupByKey order is not stable
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate document ids in shard {shard_index}; are input files listed twice?")
        doc_ids, doc_lengths, pool = self.prepare(documents, stats, dead_letters, word_cache=word_cache)
        stats["documents_out"] += len(doc_ids)
        records, plans = [], list(self.plans(doc_ids, doc_lengths))
        for first in range(0, len(plans), BATCH_ROWS):
            batch = masked_batch(plans[first:first + BATCH_ROWS], pool, special=self.special,
                                 config=self.config.masking)
            stats["masked_tokens"] += int(batch.num_masked.sum())
            records.extend(tfrecord_frames(self.encoder.encode_batch(batch)))
        # Google shuffles all instances; we shuffle within the shard, seeded by the shard.
        order = np.random.default_rng(stable_hash(self.config.random_seed, "shard", shard_index)).permutation(len(records))
        records = [records[i] for i in order.tolist()]
        stats["instances"] += len(records)
        return records, stats, dead_letters
