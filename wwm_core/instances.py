"""Training instances: Google's create_pretraining_data.py logic with whole-word masking, in two steps.

1. Planning (per document, plain Python on sentence lengths): Google's choice of segments, NSP
   partners and truncation, driven by a ``random.Random`` seeded from (seed, document, dupe).
   A plan is only token ranges: segment A is always a contiguous range of one document, and so is
   segment B (from the same document, or from a random one for NSP). The sentence tasks:
     nsp   Google's: B is A's continuation, or (label 1) a random segment of another document
     sop   ALBERT's: A and B are consecutive segments of one document, swapped (label 1) half the time
     none  one segment of consecutive sentences (RoBERTa's DOC-SENTENCES), or packed across
           documents with [SEP] between them (FULL-SENTENCES); or, with paired input, Google's
           NSP pairs with the label left at 0 (how HFL made RoBERTa-wwm's data)
2. Materializing and masking (per batch of plans, vectorized with numpy): the ranges are gathered
   into padded matrices and whole words are masked for all rows at once. Each row's random draws
   come from a SplitMix64 stream keyed by a 63-bit seed its plan drew from its document's
   ``random.Random``, so a row's masks depend only on (seed, document, dupe), never on batching.
   With dynamic masking nothing is masked here: each token's whole-word group (``word_ids``) is
   written instead, for the trainer to mask anew every epoch.
"""
import bisect
import dataclasses
import random
import typing

import numpy as np

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

def truncated_lengths(len_a: int, len_b: int, max_num_tokens: int):
    """How many tokens Google's truncate_seq_pair drops from A and from B.

    It drops one token at a time from the longer side (from B on a tie) until the pair fits, so
    the counts are fixed by the lengths: first the longer side down to the shorter, then
    alternately B, A, B, ...
    """
    excess = len_a + len_b - max_num_tokens
    if excess <= 0:
        return 0, 0
    if len_a > len_b:
        first_a, first_b = min(excess, len_a - len_b), 0
    else:
        first_a, first_b = 0, min(excess, len_b - len_a)
    rest = excess - first_a - first_b
    return first_a + rest // 2, first_b + rest - rest // 2


def _front_share(dropped: int, rng: random.Random) -> int:
    """Each dropped token comes off the front or the back with a fair coin, as in Google's code:
    the number from the front is the number of ones among ``dropped`` random bits."""
    return bin(rng.getrandbits(dropped)).count("1") if dropped else 0


def sentence_offsets(lengths):
    offsets = [0]
    for length in lengths:
        offsets.append(offsets[-1] + length)
    return offsets


def _uniform_int(rng: random.Random, low: int, high: int) -> int:
    """An int in [low, high], uniform like ``rng.randint`` (up to 2**-53), at a tenth of its cost."""
    return low + int(rng.random() * (high - low + 1))


def pair_plans(documents, document_index, *, rng: random.Random, phase, short_seq_prob: float, task: str = "nsp",
               offsets=None, stats=None):
    """Google's create_instances_from_document over sentence token counts: NSP pairs (``task``
    "nsp"; "none" writes the same pairs with label 0, HFL's paired input), or ALBERT's SOP pairs
    ("sop": B is always A's continuation, and the two are swapped half the time).

    ``documents`` is the pool random next segments come from, each a list of sentence lengths
    (in the pipeline: the documents of one bucket, so no worker holds the corpus); ``offsets``,
    if given, holds each document's sentence start offsets (``sentence_offsets``), computed once.
    ``stats`` counts random-next segments that had to come from A's own document.
    """
    if offsets is None:
        offsets = [sentence_offsets(d) for d in documents]
    document, starts = documents[document_index], offsets[document_index]
    num_sentences, last_document = len(document), len(documents) - 1
    max_num_tokens = phase.max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = _uniform_int(rng, 2, max_num_tokens)
    sop = task == "sop"

    plans = []
    chunk_start, chunk_size, current_length = 0, 0, 0
    i = 0
    while i < num_sentences:
        if chunk_size == 0:
            chunk_start = i
        chunk_size += 1
        current_length += document[i]
        if i == num_sentences - 1 or current_length >= target_seq_length:
            if sop and chunk_size == 1:
                plans.append(_single_sentence_sop_plan(document_index, starts[chunk_start],
                                                       starts[chunk_start + 1], rng=rng,
                                                       max_num_tokens=max_num_tokens))
                chunk_size, current_length = 0, 0
                i += 1
                continue
            a_end = _uniform_int(rng, 1, chunk_size - 1) if chunk_size >= 2 else 1
            a_first, a_last = starts[chunk_start], starts[chunk_start + a_end]
            is_random_next = not sop and (chunk_size == 1 or rng.random() < 0.5)
            if is_random_next:
                target_b_length = target_seq_length - (a_last - a_first)
                b_doc = document_index
                for _ in range(10):
                    b_doc = _uniform_int(rng, 0, last_document)
                    if b_doc != document_index:
                        break
                if b_doc == document_index and stats is not None:
                    stats["random_next_from_same_document"] += 1
                b_starts = offsets[b_doc]
                random_start = _uniform_int(rng, 0, len(b_starts) - 2)
                b_first = b_starts[random_start]
                # Whole sentences from random_start until at least target_b_length tokens.
                b_end = bisect.bisect_left(b_starts, b_first + target_b_length, random_start + 1)
                b_last = b_starts[min(b_end, len(b_starts) - 1)]
                # The segments we did not use go back into the document for the next chunk.
                i -= chunk_size - a_end
            else:
                b_doc = document_index
                b_first, b_last = starts[chunk_start + a_end], starts[chunk_start + chunk_size]
            drop_a = drop_b = a_front = b_front = 0
            if a_last - a_first + b_last - b_first > max_num_tokens:
                drop_a, drop_b = truncated_lengths(a_last - a_first, b_last - b_first, max_num_tokens)
                a_front, b_front = _front_share(drop_a, rng), _front_share(drop_b, rng)
            a = (document_index, a_first + a_front, a_last - drop_a + a_front)
            b = (b_doc, b_first + b_front, b_last - drop_b + b_front)
            label = int(is_random_next) if task == "nsp" else 0
            if sop and rng.random() < 0.5:
                a, b, label = b, a, 1
            plans.append(Plan(*a, *b, label, rng.getrandbits(63)))
            chunk_size, current_length = 0, 0
        i += 1
    return plans


def _single_sentence_sop_plan(document_index, first, last, *, rng, max_num_tokens):
    """SOP needs two consecutive segments; a chunk of one sentence is cut inside the sentence (at a
    uniformly random token), and a one-token sentence makes a single-segment instance."""
    length = last - first
    if length < 2:
        return Plan(document_index, first, last, -1, 0, 0, 0, rng.getrandbits(63))
    cut = first + _uniform_int(rng, 1, length - 1)
    drop_a, drop_b = truncated_lengths(cut - first, last - cut, max_num_tokens)
    a_front, b_front = _front_share(drop_a, rng), _front_share(drop_b, rng)
    a = (document_index, first + a_front, cut - drop_a + a_front)
    b = (document_index, cut + b_front, last - drop_b + b_front)
    label = 0
    if rng.random() < 0.5:
        a, b, label = b, a, 1
    return Plan(*a, *b, label, rng.getrandbits(63))


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


# ------------------------------------------------ step 2: gather and mask a batch (vectorized)

@dataclasses.dataclass(frozen=True)
class TokenPool:
    """The tokens of a pool of documents, flat: document d is [doc_offsets[d], doc_offsets[d+1])."""
    ids: np.ndarray  # uint16 where the vocabulary allows (a bucket's largest array), else int32
    group_start: np.ndarray  # bool, True where a whole-word group begins
    doc_offsets: np.ndarray  # int64


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

    def __len__(self):
        return len(self.lengths)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def uniforms(seeds, columns):
    """Floats in [0, 1), one per (seed, column) pair: column k of seed s is draw k+1 of the
    SplitMix64 stream of s (state s + (k + 1) * golden ratio, then SplitMix64's output mix). A
    pure function of (seed, column), so any subset of a row's draws can be computed alone."""
    state = np.asarray(seeds, dtype=np.uint64) + (np.asarray(columns, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
    state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    state ^= state >> np.uint64(31)
    return (state >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def plan_matrix(plans) -> np.ndarray:
    """Plans as one (n, 8) int64 matrix, columns in Plan's field order."""
    return np.array(plans, dtype=np.int64).reshape(len(plans), len(Plan._fields))


def gather(fields: np.ndarray, pool: TokenPool, *, special: SpecialIds, max_seq_length: int):
    """A plan matrix -> padded (ids, group_start, segment_ids, lengths) matrices."""
    n, width = len(fields), max_seq_length
    has_b = fields[:, 3] >= 0
    a_len = fields[:, 2] - fields[:, 1]
    b_len = np.where(has_b, fields[:, 5] - fields[:, 4], 0)
    a_first = pool.doc_offsets[fields[:, 0]] + fields[:, 1]
    b_first = pool.doc_offsets[np.maximum(fields[:, 3], 0)] + fields[:, 4]
    lengths = a_len + 2 + np.where(has_b, b_len + 1, 0)

    column = np.arange(width)[None, :]
    in_a = (column >= 1) & (column <= a_len[:, None])
    b_column = column - (a_len[:, None] + 2)
    in_b = (b_column >= 0) & (b_column < b_len[:, None])
    source = np.where(in_a, a_first[:, None] + column - 1, np.where(in_b, b_first[:, None] + b_column, 0))
    real = in_a | in_b
    ids = np.where(real, pool.ids[source], 0).astype(np.int32)
    group_start = np.where(real, pool.group_start[source], True)
    # A word cut by truncation still starts a (partial) group at the segment's first token.
    group_start[:, 1] = True
    rows = np.arange(n)
    group_start[rows[has_b], (a_len + 2)[has_b]] = True
    ids[:, 0] = special.cls
    ids[rows, a_len + 1] = special.sep
    ids[rows[has_b], (lengths - 1)[has_b]] = special.sep
    segment_ids = (in_b | (has_b[:, None] & (column == (lengths - 1)[:, None]))).astype(np.uint8)
    return ids, group_start, segment_ids, lengths


def mask_whole_words(ids, group_start, lengths, seeds, *, special: SpecialIds, masked_lm_prob: float,
                     max_predictions_per_seq: int):
    """Google's create_masked_lm_predictions with do_whole_word_mask=True, for a batch of rows.

    Per row: groups (words) in a uniformly random order are taken whole while they fit in the
    budget min(max_predictions, max(1, round(len * prob))); a group that would overflow is
    skipped, never cut. Each chosen token independently becomes [MASK] (80%), stays (10%) or
    becomes a random id (10%), as in Google's code. Returns (output_ids, positions, labels, counts,
    masked group sizes as a bincount).
    """
    n, width = ids.shape
    column = np.arange(width)[None, :]
    real = column < lengths[:, None]
    candidate = real & (ids != special.cls) & (ids != special.sep)
    starts = (group_start | ~candidate) & real
    group = np.cumsum(starts, axis=1) - 1  # group number of every token, per row
    group[~real] = width - 1  # padding shares the last slot; never a candidate start
    row_base = np.arange(n)[:, None] * width
    sizes = np.bincount((row_base + group)[candidate], minlength=n * width).reshape(n, width)
    # A group's priority is its first token's draw; non-candidate slots sort last. Each token has
    # three draws: columns [0, width) its group's priority, [width, 2 width) the replacement
    # choice, [2 width, 3 width) the random id; only those used are computed.
    priority = np.full((n, width), 2.0)
    first_rows, first_cols = np.nonzero(starts & candidate)
    priority[first_rows, group[first_rows, first_cols]] = uniforms(seeds[first_rows], first_cols)
    # Ties are only among the non-candidate slots, whose order does not matter.
    order = np.argsort(priority, axis=1, kind="quicksort")
    ordered_sizes = np.take_along_axis(sizes, order, axis=1)
    # The groups sort first (priorities < 2): a row's first k ranks are its k groups.
    ordered_valid = column < np.bincount(first_rows, minlength=n)[:, None]

    budget = np.minimum(max_predictions_per_seq, np.maximum(1, np.round(lengths * masked_lm_prob))).astype(np.int64)
    taken = np.zeros(n, dtype=np.int64)
    accepted = np.zeros((n, width), dtype=bool)
    for rank in range(width):  # greedy with skipping, one rank for all rows at a time
        fits = ordered_valid[:, rank] & (taken + ordered_sizes[:, rank] <= budget)
        accepted[:, rank] = fits
        taken += np.where(fits, ordered_sizes[:, rank], 0)
        if rank % 8 == 7 and not (ordered_valid[:, rank + 1:].any(axis=1) & (taken < budget)).any():
            break
    accepted_group = np.zeros((n, width), dtype=bool)
    np.put_along_axis(accepted_group, order, accepted, axis=1)
    masked = candidate & np.take_along_axis(accepted_group, group, axis=1)

    masked_rows, masked_cols = np.nonzero(masked)  # row-major: columns ascending within a row
    decision = uniforms(seeds[masked_rows], width + masked_cols)
    random_ids = (uniforms(seeds[masked_rows], 2 * width + masked_cols) * special.vocab_size).astype(np.int32)
    output = ids.copy()
    output[masked_rows[decision < 0.8], masked_cols[decision < 0.8]] = special.mask
    replace = decision >= 0.9
    output[masked_rows[replace], masked_cols[replace]] = random_ids[replace]

    counts = masked.sum(axis=1)
    positions = np.zeros((n, max_predictions_per_seq), dtype=np.int32)
    rank_in_row = np.arange(len(masked_rows)) - (np.cumsum(counts) - counts)[masked_rows]
    positions[masked_rows, rank_in_row] = masked_cols
    labels = np.where(np.arange(max_predictions_per_seq)[None, :] < counts[:, None],
                      np.take_along_axis(ids, positions, axis=1), 0).astype(np.int32)
    return output, positions, labels, counts, np.bincount(ordered_sizes[accepted])


def word_ids_of(ids, group_start, lengths, *, special: SpecialIds):
    """(n, width) whole-word group numbers (1, 2, ...) of the maskable tokens, 0 elsewhere: the
    same groups ``mask_whole_words`` masks as units."""
    width = ids.shape[1]
    real = np.arange(width)[None, :] < lengths[:, None]
    candidate = real & (ids != special.cls) & (ids != special.sep)
    numbers = np.cumsum(group_start & candidate, axis=1)
    return np.where(candidate, numbers, 0).astype(np.int32)


def make_batch(plans, pool: TokenPool, *, special: SpecialIds, phase, masked_lm_prob: float, masking: str = "static",
               with_word_ids: bool = False) -> InstanceBatch:
    """Plans (Plan tuples or their matrix) -> an InstanceBatch: whole words masked (static), or
    unmasked with word_ids (dynamic)."""
    fields = plans if isinstance(plans, np.ndarray) else plan_matrix(plans)
    ids, group_start, segment_ids, lengths = gather(fields, pool, special=special, max_seq_length=phase.max_seq_length)
    labels = fields[:, Plan._fields.index("label")].astype(np.uint8)
    word_ids = word_ids_of(ids, group_start, lengths, special=special) if with_word_ids or masking == "dynamic" else None
    if masking == "dynamic":
        return InstanceBatch(ids, lengths, segment_ids, labels, word_ids)
    seeds = fields[:, Plan._fields.index("seed")].astype(np.uint64)
    output, positions, masked_ids, counts, group_sizes = mask_whole_words(
        ids, group_start, lengths, seeds, special=special, masked_lm_prob=masked_lm_prob,
        max_predictions_per_seq=phase.max_predictions_per_seq)
    return InstanceBatch(output, lengths, segment_ids, labels, word_ids, positions, masked_ids, counts, group_sizes)


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
    stream = TokenPool(ids=ids, group_start=group_start, doc_offsets=np.array([0, len(ids)], dtype=np.int64))
    return stream, sentence_lengths


def drop_leading_separators(plans, stream: TokenPool, *, special: SpecialIds) -> list:
    """An instance that begins at a document boundary begins after its [SEP]."""
    return [p._replace(a_start=p.a_start + 1) if stream.ids[p.a_start] == special.sep else p for p in plans]
