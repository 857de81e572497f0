"""Property tests of whole-word masking and instance planning (pure functions, explicit seeds)."""
import collections
import random

import numpy as np
from hypothesis import given, settings, strategies as st

from wwm_core.config import Phase
from wwm_core.instances import (SpecialIds, TokenPool, drop_leading_separators, make_batch, mask_whole_words,
                                packed_pool, pair_plans, single_segment_plans, truncated_lengths, word_ids_of)

SPECIAL = SpecialIds(cls=101, sep=102, mask=103, vocab_size=21128)
WIDTH = 256  # room for 50 words of 5 tokens, the largest rows Hypothesis draws


def _rows(word_sizes_per_row):
    """Padded rows [CLS] words [SEP]; ids distinct and never special; group starts per word."""
    n = len(word_sizes_per_row)
    ids = np.zeros((n, WIDTH), np.int32)
    group_start = np.ones((n, WIDTH), bool)
    lengths = np.zeros(n, np.int64)
    for row, sizes in enumerate(word_sizes_per_row):
        length = sum(sizes) + 2
        ids[row, :length] = [SPECIAL.cls] + list(range(1000, 1000 + sum(sizes))) + [SPECIAL.sep]
        starts = np.zeros(sum(sizes), bool)
        starts[np.cumsum([0] + list(sizes[:-1]))] = True
        group_start[row, 1:length - 1] = starts
        lengths[row] = length
    return ids, group_start, lengths


def _word_ranges(sizes):
    first = np.cumsum([1] + list(sizes[:-1]))
    return [range(a, a + s) for a, s in zip(first, sizes)]


row_words = st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=50)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(row_words, min_size=1, max_size=8), seed=st.integers(0, 2**63 - 1),
       max_predictions=st.integers(1, 30), prob=st.floats(0.05, 0.5))
def test_words_are_masked_all_or_none_within_budget(rows, seed, max_predictions, prob):
    ids, group_start, lengths = _rows(rows)
    seeds = np.arange(len(rows), dtype=np.uint64) + np.uint64(seed)
    output, positions, labels, counts, _ = mask_whole_words(
        ids, group_start, lengths, seeds, special=SPECIAL, masked_lm_prob=prob,
        max_predictions_per_seq=max_predictions)
    for row, sizes in enumerate(rows):
        chosen = positions[row, :counts[row]].tolist()
        assert chosen == sorted(set(chosen)), "positions must be sorted and unique"
        assert not positions[row, counts[row]:].any() and not labels[row, counts[row]:].any()
        for word in _word_ranges(sizes):
            covered = [p in chosen for p in word]
            assert all(covered) or not any(covered), f"word {list(word)} partly masked"
        budget = min(max_predictions, max(1, int(round(lengths[row] * prob))))
        assert counts[row] <= budget
        # Greedy with skipping: if a one-token word was left out, the budget was full.
        if counts[row] < budget:
            assert all(any(p in chosen for p in w) for w in _word_ranges(sizes) if len(w) <= budget - counts[row])
        # The original row is rebuilt from the instance: put the labels back.
        rebuilt = output[row].copy()
        rebuilt[chosen] = labels[row, :counts[row]]
        assert np.array_equal(rebuilt, ids[row])
        assert SPECIAL.cls not in labels[row, :counts[row]] and SPECIAL.sep not in labels[row, :counts[row]]


def test_a_word_that_would_overflow_the_budget_is_skipped_never_cut():
    # One 6-token word and 40 one-token words (48 tokens): budget min(3, round(4.8)) = 3.
    ids, group_start, lengths = _rows([[6] + [1] * 40] * 300)
    _, positions, _, counts, _ = mask_whole_words(ids, group_start, lengths, np.arange(300, dtype=np.uint64),
                                               special=SPECIAL, masked_lm_prob=0.1, max_predictions_per_seq=3)
    assert (counts == 3).all()
    assert not np.isin(positions, np.arange(1, 7)).any()


def test_replacement_shares_are_80_10_10():
    ids, group_start, lengths = _rows([[1, 2, 3, 1, 2] * 14] * 4000)
    output, positions, labels, counts, _ = mask_whole_words(
        ids, group_start, lengths, np.arange(4000, dtype=np.uint64) * np.uint64(7919),
        special=SPECIAL, masked_lm_prob=0.15, max_predictions_per_seq=20)
    real = np.arange(positions.shape[1])[None, :] < counts[:, None]
    fed = np.take_along_axis(output, positions, axis=1)[real]
    original = labels[real]
    shares = {"mask": np.mean(fed == SPECIAL.mask), "same": np.mean(fed == original),
              "random": np.mean((fed != SPECIAL.mask) & (fed != original))}
    print("replacement shares over", real.sum(), "masked tokens:", shares)
    assert abs(shares["mask"] - 0.8) < 0.01
    assert abs(shares["same"] - 0.1) < 0.01  # a random id equal to the original: 1/21128 of 10%
    assert abs(shares["random"] - 0.1) < 0.01


def test_words_are_chosen_uniformly():
    # Ten one-token words, budget 1: each is picked about a tenth of the time.
    ids, group_start, lengths = _rows([[1] * 10] * 20000)
    _, positions, _, _, _ = mask_whole_words(ids, group_start, lengths, np.arange(20000, dtype=np.uint64),
                                          special=SPECIAL, masked_lm_prob=0.01, max_predictions_per_seq=5)
    shares = np.bincount(positions[:, 0], minlength=12)[1:11] / 20000
    assert np.all(np.abs(shares - 0.1) < 0.01), shares


@settings(max_examples=300, deadline=None)
@given(len_a=st.integers(1, 300), len_b=st.integers(1, 300), max_tokens=st.integers(2, 300))
def test_truncated_lengths_match_googles_loop(len_a, len_b, max_tokens):
    a, b = len_a, len_b
    while a + b > max_tokens:
        if a > b:
            a -= 1
        else:
            b -= 1
    assert truncated_lengths(len_a, len_b, max_tokens) == (len_a - a, len_b - b)


PHASE = Phase(max_seq_length=64, max_predictions_per_seq=10)
PROB, SHORT = 0.15, 0.1


def batch_of(plans, pool, phase=PHASE):
    return make_batch(plans, pool, special=SPECIAL, phase=phase, masked_lm_prob=PROB)


def _pool(rng, count):
    """Documents of random sentences; token ids are distinct so ranges can be traced back."""
    documents = [[rng.randint(1, 40) for _ in range(rng.randint(1, 8))] for _ in range(count)]
    total = sum(map(sum, documents))
    group_start = np.array([rng.random() < 0.6 for _ in range(total)])
    pool = TokenPool(ids=np.arange(1000, 1000 + total, dtype=np.int32), group_start=group_start,
                     doc_offsets=np.cumsum([0] + [sum(d) for d in documents]))
    return documents, pool


def _originals(batch, row):
    ids = batch.input_ids[row, :batch.lengths[row]].copy()
    count = batch.num_masked[row]
    ids[batch.masked_positions[row, :count]] = batch.masked_ids[row, :count]
    return ids


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_bert_wwm_instances_are_well_formed(seed):
    rng = random.Random(seed)
    documents, pool = _pool(rng, 6)
    plans = [p for d in range(len(documents))
             for p in pair_plans(documents, d, seed=rng.getrandbits(64), phase=PHASE, short_seq_prob=SHORT)]
    batch = batch_of(plans, pool)
    for row, plan in enumerate(plans):
        ids = _originals(batch, row)
        assert len(ids) <= PHASE.max_seq_length
        a = np.arange(plan.a_start, plan.a_end) + 1000 + pool.doc_offsets[plan.a_doc]
        b = np.arange(plan.b_start, plan.b_end) + 1000 + pool.doc_offsets[plan.b_doc]
        assert ids.tolist() == [SPECIAL.cls] + a.tolist() + [SPECIAL.sep] + b.tolist() + [SPECIAL.sep]
        assert len(a) >= 1 and len(b) >= 1, "both segments non-empty"
        segments = batch.segment_ids[row, :batch.lengths[row]]
        assert segments.tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        assert not batch.segment_ids[row, batch.lengths[row]:].any()
        assert batch.labels[row] == plan.label
        if not plan.label:
            assert plan.b_doc == plan.a_doc and plan.b_start >= plan.a_end, "the actual next segment follows A"
        assert batch.num_masked[row] <= PHASE.max_predictions_per_seq


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_roberta_instances_pack_one_document_without_nsp(seed):
    rng = random.Random(seed)
    documents, pool = _pool(rng, 3)
    phase = Phase(max_seq_length=24, max_predictions_per_seq=4)
    for d in range(len(documents)):
        plans = single_segment_plans(documents, d, rng=rng, phase=phase)
        batch = batch_of(plans, pool, phase)
        rebuilt = []
        for row in range(len(plans)):
            ids = _originals(batch, row)
            assert ids[0] == SPECIAL.cls and ids[-1] == SPECIAL.sep and SPECIAL.sep not in ids[1:-1]
            assert len(ids) <= phase.max_seq_length
            assert not batch.labels[row] and not batch.segment_ids[row].any()
            rebuilt.extend(ids[1:-1].tolist())
        # Every token of the document, in order, exactly once: nothing lost at boundaries.
        first, last = pool.doc_offsets[d], pool.doc_offsets[d + 1]
        assert rebuilt == pool.ids[first:last].tolist()


def test_masks_depend_on_the_row_seed_not_the_batch():
    rng = random.Random(5)
    documents, pool = _pool(rng, 8)
    plans = [p for d in range(len(documents))
             for p in pair_plans(documents, d, seed=rng.getrandbits(64), phase=PHASE, short_seq_prob=SHORT)]
    whole = batch_of(plans, pool)
    halves = [batch_of(plans[i::2], pool) for i in (0, 1)]
    for row in range(len(plans)):
        half, index = halves[row % 2], row // 2
        assert np.array_equal(whole.input_ids[row], half.input_ids[index])
        assert np.array_equal(whole.masked_positions[row], half.masked_positions[index])


def _plans_of(documents, task, seed, phase=PHASE):
    rng = random.Random(seed)
    return [p for d in range(len(documents))
            for p in pair_plans(documents, d, seed=rng.getrandbits(64), phase=phase, short_seq_prob=SHORT, task=task)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_sop_pairs_are_consecutive_segments_of_one_document_swapped_by_the_label(seed):
    documents, pool = _pool(random.Random(seed), 6)
    plans = _plans_of(documents, "sop", seed)
    batch = batch_of(plans, pool)
    for row, plan in enumerate(plans):
        if plan.b_doc < 0:  # a one-token sentence alone: nothing to pair
            assert documents[plan.a_doc].count(1) and plan.a_end - plan.a_start == 1
            continue
        assert plan.a_doc == plan.b_doc, "both segments come from one document"
        first, second = ((plan.a_start, plan.a_end), (plan.b_start, plan.b_end))
        if plan.label:
            first, second = second, first
        assert first[1] <= second[0], "in order for label 0, swapped for label 1"
        assert batch.labels[row] == plan.label
    n = len(plans)
    share = sum(p.label for p in plans) / n
    assert abs(share - 0.5) <= 4 * (0.25 / n) ** 0.5 + 1e-9, (share, n)


def test_sop_label_share_is_one_half():
    documents, _ = _pool(random.Random(11), 40)
    plans = [p for seed in range(10) for p in _plans_of(documents, "sop", seed) if p.b_doc >= 0]
    share = sum(p.label for p in plans) / len(plans)
    print(f"SOP swapped share {share:.3f} over {len(plans)} pairs")
    assert abs(share - 0.5) <= 4 * (0.25 / len(plans)) ** 0.5


def test_paired_input_without_a_task_is_nsp_pairs_with_label_0():
    documents, _ = _pool(random.Random(5), 8)
    nsp, none = _plans_of(documents, "nsp", 9), _plans_of(documents, "none", 9)
    assert [p._replace(label=0) for p in nsp] == none
    assert any(p.label for p in nsp) and not any(p.label for p in none)


def test_random_next_never_comes_from_a_documents_own_text_unless_it_is_alone():
    documents, _ = _pool(random.Random(2), 12)
    stats = collections.Counter()
    rng = random.Random(4)
    for d in range(len(documents)):
        for plan in pair_plans(documents, d, seed=rng.getrandbits(64), phase=PHASE, short_seq_prob=SHORT, stats=stats):
            if plan.label:
                assert plan.b_doc != plan.a_doc
    assert stats["random_next_from_same_document"] == 0
    alone = pair_plans(documents[:1], 0, seed=rng.getrandbits(64), phase=PHASE, short_seq_prob=SHORT, stats=stats)
    assert any(p.label for p in alone) and stats["random_next_from_same_document"] == sum(p.label for p in alone)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_packed_instances_hold_every_document_in_order_with_a_separator_between(seed):
    rng = random.Random(seed)
    documents, pool = _pool(rng, 5)
    order = list(range(len(documents)))
    rng.shuffle(order)
    phase = Phase(max_seq_length=40, max_predictions_per_seq=6)
    stream, lengths = packed_pool(pool, documents, order, special=SPECIAL)
    plans = drop_leading_separators(single_segment_plans([lengths], 0, rng=rng, phase=phase), stream, special=SPECIAL)
    batch = batch_of(plans, stream, phase)
    content, separators = [], 0
    for row in range(len(plans)):
        ids = _originals(batch, row)
        assert len(ids) <= phase.max_seq_length and ids[0] == SPECIAL.cls and ids[-1] == SPECIAL.sep
        assert ids[1] != SPECIAL.sep, "an instance never starts with a separator"
        assert SPECIAL.sep not in batch.masked_ids[row, :batch.num_masked[row]]
        separators += ids[1:-1].tolist().count(SPECIAL.sep)
        content.extend(t for t in ids[1:-1].tolist() if t != SPECIAL.sep)
    expected = [t for d in order for t in pool.ids[pool.doc_offsets[d]:pool.doc_offsets[d + 1]].tolist()]
    assert content == expected, "every document, in the stream's order, each token once"
    # A separator between two documents, except where an instance begins with the second.
    starts = {p.a_start for p in plans}
    boundaries = np.cumsum([sum(documents[d]) + 1 for d in order])[:-1] - 1  # separator positions in the stream
    assert separators == sum(1 for b in boundaries if b + 1 not in starts)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(row_words, min_size=1, max_size=6), seed=st.integers(0, 2**63 - 1))
def test_word_ids_are_the_groups_masking_takes_whole(rows, seed):
    ids, group_start, lengths = _rows(rows)
    word_ids = word_ids_of(ids, group_start, lengths, special=SPECIAL)
    for row, sizes in enumerate(rows):
        expected = [0] + [k + 1 for k, size in enumerate(sizes) for _ in range(size)] + [0]
        assert word_ids[row, :lengths[row]].tolist() == expected
        assert not word_ids[row, lengths[row]:].any()
