"""Training instances: Google's create_pretraining_data.py logic with whole-word masking, in two steps.

1. Planning (per document, on sentence lengths): Google's choice of segments, NSP partners and
   truncation, drawn exactly as Google's code draws them from a ``random.Random`` seeded by
   (seed, document); all dupes in turn. The loop runs compiled (``kernels.plan_pairs``).
   A plan is only token ranges: segment A is always a contiguous range of one document, and so is
   segment B (from the same document, or from a random one for NSP). The sentence tasks:
     nsp   Google's: B is A's continuation, or (label 1) a random segment of another document
     sop   ALBERT's: A and B are consecutive segments of one document, swapped (label 1) half the time
     none  one segment of consecutive sentences (RoBERTa's DOC-SENTENCES), or packed across
           documents with [SEP] between them (FULL-SENTENCES); or, with paired input, Google's
           NSP pairs with the label left at 0 (how HFL made RoBERTa-wwm's data)
2. Materializing and masking (per batch of plans, compiled row loops: ``kernels.gather_rows``,
   ``kernels.mask_rows``): the ranges are gathered into padded matrices and whole words are
   masked. Each row's random draws come from a SplitMix64 stream keyed by a 63-bit seed its plan
   drew from its document's ``random.Random``, so a row's masks depend only on (seed, document,
   dupe), never on batching.
   With dynamic masking nothing is masked here: each token's whole-word group (``word_ids``) is
   written instead, for the trainer to mask anew every epoch.
"""
import dataclasses
import itertools
import random
import typing

import numpy as np

from wwm_core import kernels, masking as masks

@dataclasses.dataclass(frozen=True)
class SpecialIds:
    cls: int
    sep: int
    mask: int
    vocab_size: int


class Plan(typing.NamedTuple):
    """[CLS] A [SEP] (B [SEP]): token ranges [start, end) into documents of the pool. A tuple, so
    a bucket's plans become one integer matrix for ``gather``."""
    a_doc: int
    a_start: int
    a_end: int
    b_doc: int  # -1: no segment B
    b_start: int
    b_end: int
    label: int  # next_sentence_labels: nsp 1 = B is random; sop 1 = swapped; none 0
    seed: int  # keys this row's masking draws


# ---------------------------------------------------------------- step 1: plans (Google's logic)

# Google's truncate_seq_pair drops one token at a time from the longer side (from B on a tie)
# until the pair fits, so the counts are fixed by the lengths: first the longer side down to the
# shorter, then alternately B, A, B, ... -> (dropped from A, dropped from B).
truncated_lengths = kernels.truncated_lengths


def sentence_start_table(documents):
    """Documents' sentence lengths -> (starts, first): document d's sentence start offsets, from 0
    to its token count, are ``starts[first[d]:first[d + 1]]``; flat arrays for ``kernels``."""
    counts = np.fromiter((len(d) for d in documents), np.int64, len(documents))
    first = np.zeros(len(documents) + 1, np.int64)
    np.cumsum(counts + 1, out=first[1:])
    steps = np.zeros(int(first[-1]), np.int64)  # each document: 0, then its sentence lengths
    is_length = np.ones(len(steps), bool)
    is_length[first[:-1]] = False
    steps[is_length] = np.fromiter(itertools.chain.from_iterable(documents), np.int64, int(counts.sum()))
    running = np.cumsum(steps)
    starts = running - np.repeat(running[first[:-1]], counts + 1)
    return starts, first


def bucket_pair_plans(documents, seeds, *, dupe_factor: int, phase, short_seq_prob: float, task: str = "nsp",
                      stats=None, planned=None) -> np.ndarray:
    """Google's create_instances_from_document for every document of a pool: NSP pairs (``task``
    "nsp"; "none" writes the same pairs with label 0, HFL's paired input), or ALBERT's SOP pairs
    ("sop": B is always A's continuation, and the two are swapped half the time). Document d's
    plans, all ``dupe_factor`` dupes in turn, are drawn from ``random.Random(seeds[d])``, exactly
    as Google's code draws from its generator, so they depend only on the document, its seed and
    the pool random-next segments come from (in the pipeline: the bucket's documents, so no worker
    holds the corpus). ``planned``: plan only these documents, with ``seeds`` in their order.
    Returns the plans as an (n, 8) matrix in Plan's field order.

    ``documents`` holds each document's sentence lengths in tokens. ``stats`` counts random-next
    segments that had to come from A's own document (a document alone in its pool). A one-sentence
    chunk under SOP is cut inside the sentence at a uniformly random token; a one-token sentence
    makes a single-segment instance. The loop itself is ``kernels.plan_pairs``.
    """
    starts, first = sentence_start_table(documents)
    max_num_tokens = phase.max_seq_length - 3
    expected = dupe_factor * (int(starts[first[1:] - 1].sum()) // max(1, max_num_tokens // 2) + len(documents))
    planned = np.arange(len(documents)) if planned is None else np.asarray(planned, np.int64)
    plans, same_document = kernels.plan_pairs(
        starts, first, planned, np.asarray(seeds, dtype=np.uint64), dupe_factor, max_num_tokens, short_seq_prob,
        task == "sop", task == "nsp", expected)
    if stats is not None and same_document:
        stats["random_next_from_same_document"] += same_document
    return plans


def pair_plans(documents, document_index, *, seed: int, phase, short_seq_prob: float, task: str = "nsp",
               dupe_factor: int = 1, stats=None) -> list:
    """One document's plans (``bucket_pair_plans``) as Plan tuples; its pool is ``documents``."""
    plans = bucket_pair_plans(documents, [seed], planned=[document_index], dupe_factor=dupe_factor, phase=phase,
                              short_seq_prob=short_seq_prob, task=task, stats=stats)
    return [Plan(*row) for row in plans.tolist()]


def single_segment_ranges(sentence_lengths, *, budget: int) -> list:
    """[start, end) token ranges of consecutive whole sentences, each at most ``budget`` tokens; a
    sentence longer than the budget is cut into budget-sized pieces."""
    ranges = []
    start = end = 0
    for length in sentence_lengths:
        sentence_start, sentence_end = end, end + length
        for piece_start in range(sentence_start, sentence_end, budget):
            piece_end = min(piece_start + budget, sentence_end)
            if piece_end - start > budget:
                ranges.append((start, end))
                start = piece_start
            end = piece_end
    if end > start:
        ranges.append((start, end))
    return ranges


def single_segment_plans(documents, document_index, *, rng: random.Random, phase, **_):
    """No sentence task: consecutive sentences of one document packed into [CLS] ... [SEP].

    Instances never cross a document boundary (RoBERTa's DOC-SENTENCES); a document's last
    instance may be short. (Packing across documents runs this over a stream of documents:
    ``packed_pool``.)
    """
    return [Plan(document_index, start, end, -1, 0, 0, 0, rng.getrandbits(63))
            for start, end in single_segment_ranges(documents[document_index], budget=phase.max_seq_length - 2)]


# ------------------------------------------------ step 2: gather and mask a batch (compiled row loops)

@dataclasses.dataclass(frozen=True)
class TokenPool:
    """The tokens of a pool of documents, flat: document d is [doc_offsets[d], doc_offsets[d+1])."""
    ids: np.ndarray  # uint16 where the vocabulary allows (a bucket's largest array), else int32
    group_start: np.ndarray  # bool, True where a whole-word group begins
    doc_offsets: np.ndarray  # int64
    separators: np.ndarray = None  # a packed stream's [SEP] positions between documents (int64, ascending)


@dataclasses.dataclass(frozen=True)
class InstanceBatch:
    """Rows of instances as the output schema (``records.SCHEMAS``) reads them."""
    input_ids: np.ndarray  # (n, max_seq_length) int32, masked (static) or not (dynamic), zero-padded
    lengths: np.ndarray  # (n,) real tokens per row
    segment_ids: np.ndarray  # (n, max_seq_length) uint8
    labels: np.ndarray  # (n,) uint8 next_sentence_labels
    word_ids: np.ndarray = None  # (n, max_seq_length) int32: whole-word group 1, 2, ...; 0 off words
    masked_positions: np.ndarray = None  # (n, max_predictions_per_seq) int32, sorted, zero-padded
    masked_ids: np.ndarray = None  # (n, max_predictions_per_seq) int32, the original ids
    num_masked: np.ndarray = None  # (n,)
    masked_group_sizes: np.ndarray = None  # bincount of the masked whole-word groups' sizes in tokens
    masked_span_words: np.ndarray = None  # bincount of the masked spans' lengths in words
    replacements: dict = None  # MacBERT's per-word counts (masking.MACBERT_COUNTERS)
    document_starts: np.ndarray = None  # packed: (n, max_seq_length // 2) int32, 0 then each next document's start
    document_ids: np.ndarray = None  # packed: (n, max_seq_length) int32, each token's document (1, 2, ...), 0 padding
    instance_ids: np.ndarray = None  # (n,) int64, unique within a phase (records.py: instance_id)

    def __len__(self):
        return len(self.lengths)


def plan_matrix(plans) -> np.ndarray:
    """Plans as one (n, 8) int64 matrix, columns in Plan's field order."""
    return np.array(plans, dtype=np.int64).reshape(len(plans), len(Plan._fields))


def gather(fields: np.ndarray, pool: TokenPool, *, special: SpecialIds, max_seq_length: int):
    """A plan matrix -> padded (ids, group_start, segment_ids, lengths) matrices."""
    return kernels.gather_rows(np.ascontiguousarray(fields, dtype=np.int64), pool.ids, pool.group_start,
                               pool.doc_offsets, special.cls, special.sep, max_seq_length)


def maskable_tokens(ids, lengths, *, special: SpecialIds) -> np.ndarray:
    """(n, width) bool: the tokens masking may choose: real tokens other than [CLS] and [SEP]."""
    real = np.arange(ids.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return real & (ids != special.cls) & (ids != special.sep)


def mask_whole_words(ids, group_start, lengths, seeds, *, special: SpecialIds, masked_lm_prob: float,
                     max_predictions_per_seq: int, ngram_weights=masks.WORD_LEVEL, replacement: str = "bert",
                     similar=None):
    """Google's create_masked_lm_predictions with do_whole_word_mask=True, for a batch of rows
    (``masking.choose_spans`` then ``masking.replace_words``).

    Per row: groups (words) in a uniformly random order are taken whole while they fit in the
    budget min(max_predictions, max(1, round(len * prob))); a group that would overflow is
    skipped, never cut. Each chosen token independently becomes [MASK] (80%), stays (10%) or
    becomes a random id (10%), as in Google's code. Returns (output_ids, positions, labels, counts,
    masked group sizes as a bincount). ``ngram_weights``: spans of several whole words;
    ``replacement`` "macbert": MacBERT's per-word rule with ``similar`` words.

    Each token has three draws from its row's SplitMix64 stream, by column c of a row of width w:
    draw c orders the groups (a group's draw is its first token's), draw w + c chooses the
    replacement and draw 2w + c the random id; so any token's draws can be computed alone.
    """
    spans, replaced = _mask(ids, group_start, lengths, seeds, special=special, masked_lm_prob=masked_lm_prob,
                            max_predictions_per_seq=max_predictions_per_seq, ngram_weights=ngram_weights,
                            replacement=replacement, similar=similar)
    return replaced.input_ids, replaced.positions, replaced.labels, replaced.counts, spans.word_sizes


def _mask(ids, group_start, lengths, seeds, *, special, masked_lm_prob, max_predictions_per_seq, ngram_weights,
          replacement, similar):
    spans = masks.choose_spans(group_start, maskable_tokens(ids, lengths, special=special), lengths, seeds,
                                 budgets=masks.budgets(lengths, masked_lm_prob=masked_lm_prob,
                                                         max_predictions=max_predictions_per_seq),
                                 ngram_weights=ngram_weights)
    replaced = masks.replace_words(ids, spans.chosen, group_start, lengths, seeds, replacement=replacement,
                                     mask_id=special.mask, vocab_size=special.vocab_size,
                                     max_predictions=max_predictions_per_seq, similar=similar)
    return spans, replaced


def word_ids_of(ids, group_start, lengths, *, special: SpecialIds):
    """(n, width) whole-word group numbers (1, 2, ...) of the maskable tokens, 0 elsewhere: the
    same groups ``mask_whole_words`` masks as units."""
    width = ids.shape[1]
    real = np.arange(width)[None, :] < lengths[:, None]
    candidate = real & (ids != special.cls) & (ids != special.sep)
    numbers = np.cumsum(group_start & candidate, axis=1)
    return np.where(candidate, numbers, 0).astype(np.int32)


def make_batch(plans, pool: TokenPool, *, special: SpecialIds, phase, masked_lm_prob: float, masking: str = "static",
               with_word_ids: bool = False, ngram_weights=masks.WORD_LEVEL, replacement: str = "bert",
               similar=None) -> InstanceBatch:
    """Plans (Plan tuples or their matrix) -> an InstanceBatch: whole words masked (static), or
    unmasked with word_ids (dynamic)."""
    fields = plans if isinstance(plans, np.ndarray) else plan_matrix(plans)
    ids, group_start, segment_ids, lengths = gather(fields, pool, special=special, max_seq_length=phase.max_seq_length)
    labels = fields[:, Plan._fields.index("label")].astype(np.uint8)
    word_ids = word_ids_of(ids, group_start, lengths, special=special) if with_word_ids or masking == "dynamic" else None
    if masking == "dynamic":
        return InstanceBatch(ids, lengths, segment_ids, labels, word_ids)
    seeds = fields[:, Plan._fields.index("seed")].astype(np.uint64)
    spans, replaced = _mask(ids, group_start, lengths, seeds, special=special, masked_lm_prob=masked_lm_prob,
                            max_predictions_per_seq=phase.max_predictions_per_seq, ngram_weights=ngram_weights,
                            replacement=replacement, similar=similar)
    return InstanceBatch(replaced.input_ids, lengths, segment_ids, labels, word_ids, replaced.positions,
                         replaced.labels, replaced.counts, spans.word_sizes, spans.span_words, replaced.macbert)


def with_documents(batch: InstanceBatch, fields: np.ndarray, stream: TokenPool) -> InstanceBatch:
    """A batch of instances cut from a packed stream (``packed_pool``), with where each of their
    documents starts: position 0 ([CLS]) and one past each separator inside the instance."""
    a_start = fields[:, Plan._fields.index("a_start")]
    a_end = fields[:, Plan._fields.index("a_end")]
    separators = stream.separators
    first, last = np.searchsorted(separators, a_start), np.searchsorted(separators, a_end)
    counts = last - first  # separators inside each instance
    n, width = batch.input_ids.shape
    starts = np.zeros((n, width // 2), np.int32)
    row = np.repeat(np.arange(n), counts)
    rank = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    inside = separators[np.repeat(first, counts) + rank]
    starts[row, rank + 1] = inside - a_start[row] + 2  # instance position of the separator (+1 for [CLS]) + 1
    marks = np.zeros((n, width + 1), np.int32)
    marks[row, starts[row, rank + 1]] = 1
    real = np.arange(width)[None, :] < batch.lengths[:, None]
    document_ids = np.where(real, 1 + np.cumsum(marks[:, :width], axis=1), 0).astype(np.int32)
    return dataclasses.replace(batch, document_starts=starts, document_ids=document_ids)


def packed_pool(pool: TokenPool, doc_lengths, order, *, special: SpecialIds):
    """Documents in ``order`` as one stream, a [SEP] between consecutive ones (RoBERTa's
    FULL-SENTENCES): (the stream as a one-document TokenPool, its sentence lengths). The [SEP]
    counts with the next document's first sentence, so instances split only at sentence ends;
    ``drop_leading_separators`` trims one that would start an instance."""
    order = np.asarray(order, dtype=np.int64)
    starts, ends = pool.doc_offsets[order], pool.doc_offsets[order + 1]
    sizes = ends - starts + 1  # each document behind its separator
    total = int(sizes.sum())
    position = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    source = np.repeat(starts, sizes) + position - 1
    is_separator = position == 0
    ids = np.where(is_separator, special.sep, pool.ids[np.maximum(source, 0)]).astype(np.int32)
    group_start = np.where(is_separator, True, pool.group_start[np.maximum(source, 0)])
    # The stream starts with the first document itself, not a separator.
    ids, group_start = ids[1:], group_start[1:]
    sentence_lengths = []
    for rank, document in enumerate(order.tolist()):
        lengths = list(doc_lengths[document])
        if rank:
            lengths[0] += 1
        sentence_lengths += lengths
    stream = TokenPool(ids=ids, group_start=group_start, doc_offsets=np.array([0, len(ids)], dtype=np.int64),
                       separators=np.flatnonzero(is_separator[1:]).astype(np.int64))
    return stream, sentence_lengths


def drop_leading_separators(plans, stream: TokenPool, *, special: SpecialIds) -> list:
    """An instance that begins at a document boundary begins after its [SEP]."""
    return [p._replace(a_start=p.a_start + 1) if stream.ids[p.a_start] == special.sep else p for p in plans]


def filled_plans(stream: TokenPool, *, rng: random.Random, phase) -> list:
    """A packed stream cut into instances of exactly max_seq_length - 2 tokens (the last one
    shorter), sentences and words cut where an instance ends (``--pack_fill tokens``): no padding
    but the stream's end. A cut just after a separator moves before it, so an instance never ends
    with its next document's [SEP]; one that starts with a separator starts after it."""
    budget, total = phase.max_seq_length - 2, len(stream.ids)
    separators = set(stream.separators.tolist())
    plans, start = [], 0
    while start < total:
        if start in separators:
            start += 1
            continue
        end = min(start + budget, total)
        if end - 1 in separators and end - 1 > start:
            end -= 1
        plans.append(Plan(0, start, end, -1, 0, 0, 0, rng.getrandbits(63)))
        start = end
    return plans
