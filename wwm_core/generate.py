"""From a bucket of raw documents to the TFRecord bytes of one shard: the whole per-shard work.

The pipeline hashes documents into buckets; everything a bucket needs (its documents, the seed,
the configuration) is an explicit input here, so a shard's bytes depend on nothing else: not on
the runner, the number of workers, bundle order or retries.
"""
import collections
import random

from wwm_core.hashing import stable_hash
from wwm_core.instances import SpecialIds, bert_wwm_instances, roberta_wwm_ext_instances
from wwm_core.records import ExampleEncoder, tfrecord_frame
from wwm_core.tokenization import group_starts, make_wordpiece_tokenizer, tokenize_sentences


class ShardMaker:
    """Holds what is loaded once per worker: tokenizer, converter, segmenter, encoder."""

    def __init__(self, *, config, vocab, converter, segmenter):
        self.config = config
        self.converter = converter
        self.segmenter = segmenter
        self.tokenizer = make_wordpiece_tokenizer(vocab, do_lower_case=config.do_lower_case)
        self.special = SpecialIds(cls=vocab.id_of("[CLS]"), sep=vocab.id_of("[SEP]"),
                                  mask=vocab.id_of("[MASK]"), vocab_size=vocab.size)
        self.encoder = ExampleEncoder(max_seq_length=config.max_seq_length,
                                      max_predictions_per_seq=config.max_predictions_per_seq,
                                      vocab_size=vocab.size)

    def prepare(self, documents, stats: collections.Counter):
        """Documents -> [(id, [(ids, group_start), ...])], filtering with counted reasons."""
        kept = []
        for document in documents:
            num_chars = sum(map(len, document.sentences))
            if num_chars == 0:
                stats["documents_filtered.empty"] += 1
            elif num_chars > self.config.max_document_chars:
                stats["documents_filtered.too_long"] += 1
            else:
                kept.append(document)
        # One batched call per stage for the whole bucket: OpenCC, segmenter and tokenizer all
        # pay a per-call cost that would dominate short sentences.
        sentences = [s for d in kept for s in d.sentences]
        converted = self.converter.convert("\n".join(sentences)).split("\n") if sentences else []
        if len(converted) != len(sentences):  # a conversion never adds or removes line breaks
            raise RuntimeError("OpenCC changed the number of lines")
        words = self.segmenter.segment(converted)
        tokenized = tokenize_sentences(self.tokenizer, converted)

        prepared, cursor = [], 0
        for document in kept:
            doc_sentences = []
            for _ in document.sentences:
                text, word_lengths, sentence = converted[cursor], words[cursor], tokenized[cursor]
                cursor += 1
                if len(sentence.ids) == 0:
                    stats["sentences_dropped.no_tokens"] += 1
                    continue
                if word_lengths is not None and sum(word_lengths) != len(text):
                    stats["sentences.segmenter_text_mismatch"] += 1
                    word_lengths = [1] * len(text)
                grouping = group_starts(sentence, word_lengths)
                stats["segmenter_boundaries_overridden"] += grouping.boundaries_overridden
                stats["tokens"] += len(sentence.ids)
                doc_sentences.append((sentence.ids, grouping.group_start))
            if doc_sentences:
                prepared.append((document.id, doc_sentences))
            else:
                stats["documents_filtered.no_tokens"] += 1
        return prepared

    def instances(self, prepared):
        """Every instance of a bucket, dupe by dupe, each document with its own seeded generator."""
        config = self.config
        pool = [sentences for _, sentences in prepared]
        for dupe in range(config.dupe_factor):
            for index, (doc_id, sentences) in enumerate(prepared):
                rng = random.Random(stable_hash(config.random_seed, doc_id, dupe))
                if config.recipe == "bert-wwm":
                    yield from bert_wwm_instances(pool, index, rng=rng, special=self.special, config=config.masking)
                else:
                    yield from roberta_wwm_ext_instances(sentences, rng=rng, special=self.special,
                                                         config=config.masking)

    def shard_records(self, documents, *, shard_index: int):
        """Returns (framed TFRecord bytes in shard order, stats) for one bucket of documents."""
        stats = collections.Counter()
        documents = sorted(documents, key=lambda d: d.id)  # GroupByKey order is not stable
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate document ids in shard {shard_index}; are input files listed twice?")
        prepared = self.prepare(documents, stats)
        stats["documents_out"] += len(prepared)
        records = [tfrecord_frame(self.encoder.encode(instance)) for instance in self.instances(prepared)]
        # Google shuffles all instances; we shuffle within the shard, seeded by the shard.
        random.Random(stable_hash(self.config.random_seed, "shard", shard_index)).shuffle(records)
        stats["instances"] += len(records)
        return records, stats

