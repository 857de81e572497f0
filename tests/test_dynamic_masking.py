"""Property tests of the numpy whole-word masking rule (``wwm_core.dynamic_masking``, what
wwm_torch's collator runs), and its agreement with the static path's compiled kernel."""
import collections

import numpy as np
from hypothesis import given, settings, strategies as st

from wwm_core import dynamic_masking as dm
from wwm_core.instances import SpecialIds, mask_whole_words

SPECIAL = SpecialIds(cls=101, sep=102, mask=103, vocab_size=21128)


def row_of(word_sizes, *, width=None):
    """([CLS] words [SEP] padding) ids and word ids; ids distinct and never special."""
    tokens = sum(word_sizes)
    width = width or tokens + 2
    ids = np.zeros(width, np.int64)
    ids[:tokens + 2] = [SPECIAL.cls] + list(range(1000, 1000 + tokens)) + [SPECIAL.sep]
    word_ids = np.zeros(width, np.int64)
    word_ids[1:tokens + 1] = np.repeat(np.arange(1, len(word_sizes) + 1), word_sizes)
    return ids, word_ids


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=60), budget=st.integers(1, 40),
       seed=st.integers(0, 2**32))
def test_chosen_words_are_whole_within_budget_and_none_left_out_would_fit(sizes, budget, seed):
    _, word_ids = row_of(sizes, width=sum(sizes) + 10)
    chosen = dm.choose_whole_words(word_ids, budget=budget, rng=np.random.default_rng(seed))
    assert not chosen[word_ids == 0].any(), "[CLS], [SEP] and padding are never chosen"
    taken = int(chosen.sum())
    assert taken <= budget
    for word, size in enumerate(sizes, start=1):
        members = chosen[word_ids == word]
        assert members.all() or not members.any(), "a word is chosen whole or not at all"
        if not members.any():
            assert size > budget - taken, "a word left out would not have fitted in what was left"


def test_a_word_that_would_overflow_is_skipped_and_later_ones_still_taken():
    # A 6-token word and 40 one-token words, budget 3: the long word never; always 3 tokens.
    _, word_ids = row_of([6] + [1] * 40)
    for seed in range(300):
        chosen = dm.choose_whole_words(word_ids, budget=3, rng=np.random.default_rng(seed))
        assert chosen.sum() == 3 and not chosen[word_ids == 1].any()


def test_words_are_chosen_uniformly():
    _, word_ids = row_of([1] * 10)
    picks = collections.Counter()
    for seed in range(20000):
        chosen = dm.choose_whole_words(word_ids, budget=1, rng=np.random.default_rng(seed))
        picks[int(word_ids[chosen][0])] += 1
    shares = np.array([picks[word] for word in range(1, 11)]) / 20000
    assert np.all(np.abs(shares - 0.1) < 0.01), shares


def test_replacement_is_80_10_10_and_touches_only_chosen_tokens():
    ids, word_ids = row_of([1, 2, 3] * 30)
    chosen = word_ids > 0
    outcome = collections.Counter()
    for seed in range(300):
        fed = dm.replace_chosen_tokens(ids, chosen, rng=np.random.default_rng(seed), mask_id=SPECIAL.mask,
                                       vocab_size=SPECIAL.vocab_size)
        assert np.array_equal(fed[~chosen], ids[~chosen])
        assert ((fed >= 0) & (fed < SPECIAL.vocab_size)).all()
        outcome.update("mask" if f == SPECIAL.mask else "kept" if f == o else "random"
                       for f, o in zip(fed[chosen], ids[chosen]))
    total = sum(outcome.values())
    assert abs(outcome["mask"] / total - 0.8) < 0.01
    assert abs(outcome["kept"] / total - 0.1) < 0.01 and abs(outcome["random"] / total - 0.1) < 0.01


def test_budget_is_googles_rounded_half_to_even():
    # Google: min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob)))), Python 3's round.
    assert dm.masking_budget(50, masked_lm_prob=0.05, max_predictions_per_seq=20) == 2  # round(2.5) = 2
    assert dm.masking_budget(70, masked_lm_prob=0.05, max_predictions_per_seq=20) == 4  # round(3.5) = 4
    assert dm.masking_budget(3, masked_lm_prob=0.15, max_predictions_per_seq=20) == 1
    assert dm.masking_budget(512, masked_lm_prob=0.15, max_predictions_per_seq=80) == 77
    assert dm.masking_budget(512, masked_lm_prob=0.15, max_predictions_per_seq=20) == 20


def test_an_instances_generator_depends_on_seed_epoch_and_id_only():
    draw = lambda **key: dm.instance_generator(**key).integers(2**62, size=4).tolist()  # noqa: E731
    assert draw(seed=0, epoch=1, instance_id=5) == draw(seed=0, epoch=1, instance_id=5)
    assert len({tuple(draw(seed=s, epoch=e, instance_id=i)) for s, e, i in
                [(0, 1, 5), (1, 1, 5), (0, 2, 5), (0, 1, 6), (0, 5, 1)]}) == 5


def test_static_labels_are_the_stored_ids_at_the_stored_positions():
    positions = np.array([[1, 4, 0], [2, 0, 0]])
    ids = np.array([[7, 9, 0], [8, 0, 0]])
    weights = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    labels = dm.labels_of_static_masks(positions, ids, weights, width=6, ignored=-100)
    assert labels.tolist() == [[-100, 7, -100, -100, 9, -100], [-100, -100, 8, -100, -100, -100]]


def test_the_same_rule_as_the_static_paths_compiled_kernel():
    """Two implementations of one rule (``instances.mask_whole_words``, numba; and this module):
    over many draws on the same rows, the same distribution of masked tokens per row, of masked
    word sizes, and of each word's chance to be masked."""
    sizes = [2, 3, 2, 4, 3, 2, 5, 3, 2, 2, 3, 4, 2, 3, 1, 6, 3, 2, 4, 2]  # 58 tokens: budget 9, often not filled
    ids, word_ids = row_of(sizes)
    draws = 20000
    counts = {"kernel": collections.Counter(), "numpy": collections.Counter()}
    words = {"kernel": np.zeros(len(sizes) + 1), "numpy": np.zeros(len(sizes) + 1)}
    group_start = np.zeros(len(ids), bool)
    group_start[np.flatnonzero(np.diff(word_ids, prepend=-1))] = True
    rows = np.repeat(ids[None, :].astype(np.int32), draws, axis=0)
    _, positions, _, masked, _ = mask_whole_words(
        rows, np.repeat(group_start[None, :], draws, axis=0), np.full(draws, len(ids)),
        np.arange(draws, dtype=np.uint64) * np.uint64(2654435761), special=SPECIAL, masked_lm_prob=0.15,
        max_predictions_per_seq=20)
    budget = dm.masking_budget(len(ids), masked_lm_prob=0.15, max_predictions_per_seq=20)
    for row in range(draws):
        counts["kernel"][int(masked[row])] += 1
        np.add.at(words["kernel"], np.unique(word_ids[positions[row, :masked[row]]]), 1)
        chosen = dm.choose_whole_words(word_ids, budget=budget, rng=np.random.default_rng([7, row]))
        counts["numpy"][int(chosen.sum())] += 1
        np.add.at(words["numpy"], np.unique(word_ids[chosen]), 1)
    print("masked tokens per row:", {name: sorted(c.items()) for name, c in counts.items()})
    for value in set(counts["kernel"]) | set(counts["numpy"]):
        a, b = counts["kernel"][value] / draws, counts["numpy"][value] / draws
        assert abs(a - b) < 4.5 * np.sqrt(2 * max(a * (1 - a), 1e-4) / draws), (value, a, b)
    share = {name: value[1:] / draws for name, value in words.items()}
    stderr = np.sqrt(2 * share["kernel"] * (1 - share["kernel"]) / draws)
    assert np.all(np.abs(share["kernel"] - share["numpy"]) < 4.5 * stderr + 1e-3), share
