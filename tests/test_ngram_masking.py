"""N-gram whole-word masking (``wwm_core.masking.choose_spans``): spans of 1..N whole words.

The kernel is checked against the rule written out again here in plain Python (an independent
reading of the spec: words in random order, a span length drawn from the weights of the lengths
that fit before the next [SEP], a span that overlaps a chosen one or overflows the budget skipped),
by comparing the distributions the two produce on the same rows with their own random streams.
"""
import collections
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from wwm_core import masking
from wwm_core.instances import SpecialIds, mask_whole_words, maskable_tokens

SPECIAL = SpecialIds(cls=101, sep=102, mask=103, vocab_size=21128)
MACBERT = (0.4, 0.3, 0.2, 0.1)


def pair_rows(segments_per_row, width=128):
    """Rows [CLS] A [SEP] B [SEP] from word sizes per segment: (ids, group_start, lengths)."""
    n = len(segments_per_row)
    ids = np.zeros((n, width), np.int32)
    group_start = np.ones((n, width), bool)
    lengths = np.zeros(n, np.int64)
    for row, segments in enumerate(segments_per_row):
        tokens, starts = [SPECIAL.cls], [True]
        for sizes in segments:
            for size in sizes:
                tokens += list(range(1000 + len(tokens), 1000 + len(tokens) + size))
                starts += [True] + [False] * (size - 1)
            tokens.append(SPECIAL.sep)
            starts.append(True)
        ids[row, :len(tokens)] = tokens
        group_start[row, :len(tokens)] = starts
        lengths[row] = len(tokens)
    return ids, group_start, lengths


def spans_of(chosen_row, group_start_row, ids_row, length):
    """The chosen tokens of a row cut into maximal runs of whole words: [[word sizes], ...]."""
    runs, current, column = [], [], 1
    while column < length:
        if ids_row[column] in (SPECIAL.cls, SPECIAL.sep) or not chosen_row[column]:
            if current:
                runs.append(current)
            current = []
            column += 1
            continue
        end = column + 1
        while end < length and not group_start_row[end] and ids_row[end] not in (SPECIAL.cls, SPECIAL.sep):
            end += 1
        current.append(end - column)
        column = end
    if current:
        runs.append(current)
    return runs


def choose(ids, group_start, lengths, seeds, weights, *, prob=0.15, max_predictions=20):
    return masking.choose_spans(group_start, maskable_tokens(ids, lengths, special=SPECIAL), lengths, seeds,
                                budgets=masking.budgets(lengths, masked_lm_prob=prob, max_predictions=max_predictions),
                                ngram_weights=weights)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=20), min_size=1, max_size=2),
                     min_size=1, max_size=6),
       seed=st.integers(0, 2**63 - 1), weights=st.sampled_from([(1.0,), MACBERT, (1, 1), (0.1, 0, 0, 1), (1, 2, 3, 4, 5)]),
       prob=st.floats(0.05, 0.6), max_predictions=st.integers(1, 40))
def test_spans_are_whole_words_within_the_budget_and_never_cross_a_separator(rows, seed, weights, prob,
                                                                           max_predictions):
    ids, group_start, lengths = pair_rows(rows)
    seeds = np.arange(len(rows), dtype=np.uint64) + np.uint64(seed)
    spans = choose(ids, group_start, lengths, seeds, weights, prob=prob, max_predictions=max_predictions)
    budget = masking.budgets(lengths, masked_lm_prob=prob, max_predictions=max_predictions)
    for row, segments in enumerate(rows):
        chosen = spans.chosen[row]
        assert not chosen[lengths[row]:].any() and not chosen[ids[row] == SPECIAL.sep].any() and not chosen[0]
        assert chosen.sum() <= budget[row]
        starts = np.flatnonzero(group_start[row, :lengths[row]])
        for first, end in zip(starts, list(starts[1:]) + [lengths[row]]):
            assert chosen[first:end].all() or not chosen[first:end].any(), "a word partly masked"
    assert spans.span_words[len(weights) + 1:].sum() == 0
    assert sum(k * n for k, n in enumerate(spans.span_words)) == spans.word_sizes.sum()
    assert sum(size * n for size, n in enumerate(spans.word_sizes)) == spans.chosen.sum()


def test_a_span_ends_at_the_segment_end():
    # Every segment has exactly two one-token words: spans of three and four words, which the
    # weights favour, cannot start anywhere; a span begun on a segment's first word takes the
    # weights of what fits there (0.01, 1), one begun on its second word is one word.
    ids, group_start, lengths = pair_rows([[[1, 1], [1, 1]]] * 2000)
    spans = choose(ids, group_start, lengths, np.arange(2000, dtype=np.uint64), (0.01, 1, 5, 5), prob=0.5,
                   max_predictions=6)
    assert spans.span_words[3:].sum() == 0
    assert spans.span_words[2] > 0.4 * spans.span_words.sum()


def test_one_weight_is_todays_word_level_masking():
    rng = np.random.default_rng(3)
    rows = [[list(rng.integers(1, 4, rng.integers(5, 30))), list(rng.integers(1, 4, rng.integers(5, 30)))]
            for _ in range(300)]
    ids, group_start, lengths = pair_rows(rows)
    seeds = rng.integers(0, 2**63, len(rows), dtype=np.uint64)
    word_level = mask_whole_words(ids, group_start, lengths, seeds, special=SPECIAL, masked_lm_prob=0.15,
                                  max_predictions_per_seq=20)
    spans = choose(ids, group_start, lengths, seeds, (2.5,))  # any single weight: one word at a time
    positions, counts = word_level[1], word_level[3]
    for row in range(len(rows)):
        assert np.flatnonzero(spans.chosen[row]).tolist() == positions[row, :counts[row]].tolist()
    assert spans.span_words[1] == spans.span_words.sum()


def reference_span_lengths(segments, *, budget: int, weights, rng: random.Random):
    """The N-gram rule written out plainly: (span lengths in words, tokens chosen)."""
    words = [(segment, position, size) for segment, sizes in enumerate(segments) for position, size in enumerate(sizes)]
    order = list(range(len(words)))
    rng.shuffle(order)
    taken, tokens, lengths = set(), 0, []
    for start in order:
        if start in taken:
            continue
        segment, position, _ = words[start]
        available = min(len(weights), len(segments[segment]) - position)
        span = rng.choices(range(1, available + 1), weights=weights[:available])[0]
        members = range(start, start + span)
        size = sum(words[w][2] for w in members)
        if any(w in taken for w in members) or tokens + size > budget:
            continue
        taken.update(members)
        tokens += size
        lengths.append(span)
    return lengths, tokens


@pytest.mark.parametrize("weights", [MACBERT, (0.5, 0.5), (0.25, 0.25, 0.25, 0.25)])
def test_span_lengths_follow_the_rule_written_out_by_hand(weights):
    rng = np.random.default_rng(11)
    rows = [[list(rng.integers(1, 3, rng.integers(8, 40))), list(rng.integers(1, 3, rng.integers(8, 40)))]
            for _ in range(6000)]
    ids, group_start, lengths = pair_rows(rows)
    spans = choose(ids, group_start, lengths, rng.integers(0, 2**63, len(rows), dtype=np.uint64), weights)
    budget = masking.budgets(lengths, masked_lm_prob=0.15, max_predictions=20)
    python = random.Random(5)
    reference, reference_tokens = collections.Counter(), 0
    for row, segments in enumerate(rows):
        spans_here, tokens = reference_span_lengths(segments, budget=int(budget[row]), weights=list(weights),
                                                    rng=python)
        reference.update(spans_here)
        reference_tokens += tokens
    ours = spans.span_words[1:]
    theirs = np.array([reference[k] for k in range(1, len(weights) + 1)])
    for k in range(len(weights)):
        p, q = ours[k] / ours.sum(), theirs[k] / theirs.sum()
        standard_error = np.sqrt(p * (1 - p) / ours.sum() + q * (1 - q) / theirs.sum())
        assert abs(p - q) < 5 * standard_error + 1e-9, (k + 1, p, q)
    print("span shares", (ours / ours.sum()).round(3), "reference", (theirs / theirs.sum()).round(3))
    assert abs(spans.chosen.sum() / reference_tokens - 1) < 0.01


def test_word_ids_front_masks_parquet_rows_like_the_static_path():
    # A collator has input_ids, word_ids and attention_mask: the same words are whole and the
    # labels are the originals at the chosen tokens.
    ids, group_start, lengths = pair_rows([[[2, 1, 3, 1, 2, 2, 1], [1, 1, 2, 3]]] * 400)
    word_ids = np.where(maskable_tokens(ids, lengths, special=SPECIAL), np.cumsum(group_start, axis=1), 0)
    attention = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
    seeds = np.random.default_rng(0).integers(0, 2**63, size=len(ids), dtype=np.uint64)
    batch = masking.mask_word_ids(ids, word_ids, attention, seeds=seeds, masked_lm_prob=0.15,
                                  max_predictions=20, mask_id=SPECIAL.mask, vocab_size=SPECIAL.vocab_size,
                                  ngram_weights=MACBERT)
    predicted = batch["labels"] != -100
    assert (batch["labels"][predicted] == ids[predicted]).all()
    for row in range(len(ids)):
        for word in np.unique(word_ids[row][word_ids[row] > 0]):
            members = predicted[row][word_ids[row] == word]
            assert members.all() or not members.any()
    assert predicted.sum(axis=1).max() <= 20 and predicted.any(axis=1).all()
    changed = batch["input_ids"] != ids
    assert not changed[~predicted].any()
    assert abs((batch["input_ids"][predicted] == SPECIAL.mask).mean() - 0.8) < 0.03


def test_wwm_run_masks_spans_of_whole_words(tmp_path):
    from tests.test_pipeline import run_wwm
    from wwm_cli.inspect import iter_instances

    manifest = run_wwm(tmp_path, "--ngram_weights=0.4,0.3,0.2,0.1", "--output_format=both", "--dupe_factor=20")
    assert manifest["config"]["instances"]["ngram_weights"] == [0.4, 0.3, 0.2, 0.1]
    assert "ngram_weights" in manifest["config"]["overrides"]
    spans = manifest["statistics"]["masked_spans"]
    assert spans["mean_words"] > 1.3 and set(spans["share_by_words"]) <= {"1", "2", "3", "4"}
    assert spans["weights"] == pytest.approx({"1": 0.4, "2": 0.3, "3": 0.2, "4": 0.1})
    instances = [instance for _, instance, _ in iter_instances(str(tmp_path / "out"), prefer_parquet=True)]
    assert len(instances) == manifest["num_instances"]
    for instance in instances:
        words = np.array(instance.word_ids)
        masked = np.zeros(len(words), bool)
        masked[instance.masked_positions] = True
        for word in np.unique(words[words > 0]):
            assert masked[words == word].all() or not masked[words == word].any()
