"""Masking at training time (``wwm_core.masking.mask_word_ids`` with ``instance_seeds``, what
wwm_torch's collator runs): the static path's rule read from ``word_ids``, one row seed per
(seed, epoch, instance id)."""
import collections

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tests.test_ngram_masking import SPECIAL, pair_rows
from wwm_core import masking
from wwm_core.hashing import stable_hash
from wwm_core.instances import mask_whole_words, word_ids_of


def attention_of(lengths, width):
    return (np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)


def similar_words_of(ids, group_start, lengths) -> masking.SimilarWords:
    """Every third word of the rows gets two candidates of its length (ids shifted by 5000, 6000)."""
    pairs = []
    for row in range(len(ids)):
        starts = [c for c in range(1, lengths[row]) if group_start[row, c]] + [int(lengths[row])]
        for k, (first, end) in enumerate(zip(starts, starts[1:])):
            word = ids[row, first:end].tolist()
            if k % 3 == 0 and SPECIAL.sep not in word:
                pairs.append((word, [[t + 5000 for t in word], [t + 6000 for t in word]]))
    return masking.SimilarWords.from_token_ids(pairs)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=25), min_size=1, max_size=2),
                     min_size=1, max_size=6),
       seed=st.integers(0, 2**62), prob=st.floats(0.05, 0.5), max_predictions=st.integers(1, 40),
       weights=st.sampled_from([(1.0,), (0.4, 0.3, 0.2, 0.1), (1, 1)]), macbert=st.booleans())
def test_masks_from_word_ids_are_the_static_paths_masks_on_the_same_seeds(rows, seed, prob, max_predictions, weights,
                                                                          macbert):
    """One rule: the collator's front (word ids, attention mask) gives exactly the masks the static
    path's ``mask_whole_words`` draws from the same row seeds, N-gram spans and MacBERT included."""
    width = 4 * 2 * 25 + 3 + 7
    ids, group_start, lengths = pair_rows(rows, width)
    seeds = np.arange(len(rows), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
    similar = similar_words_of(ids, group_start, lengths) if macbert else None
    replacement = "macbert" if macbert else "bert"
    static_ids, positions, labels, counts, _ = mask_whole_words(
        ids, group_start, lengths, seeds, special=SPECIAL, masked_lm_prob=prob, max_predictions_per_seq=max_predictions,
        ngram_weights=weights, replacement=replacement, similar=similar)
    word_ids = word_ids_of(ids, group_start, lengths, special=SPECIAL)
    dynamic = masking.mask_word_ids(ids, word_ids, attention_of(lengths, width), seeds=seeds, masked_lm_prob=prob,
                                    max_predictions=max_predictions, mask_id=SPECIAL.mask,
                                    vocab_size=SPECIAL.vocab_size, ngram_weights=weights, replacement=replacement,
                                    similar=similar)
    assert np.array_equal(dynamic["input_ids"], static_ids)
    for row in range(len(rows)):
        predicted = np.flatnonzero(dynamic["labels"][row] != -100)
        assert predicted.tolist() == positions[row, :counts[row]].tolist()
        assert dynamic["labels"][row, predicted].tolist() == labels[row, :counts[row]].tolist()


def test_instance_seeds_depend_on_seed_epoch_and_id_only():
    seeds = lambda ids, **key: masking.instance_seeds(ids, **key).tolist()  # noqa: E731
    assert seeds([5, 6], seed=0, epoch=1) == [seeds([5], seed=0, epoch=1)[0], seeds([6], seed=0, epoch=1)[0]]
    assert seeds(np.array([[5]]), seed=0, epoch=1) == seeds([5], seed=0, epoch=1), "a column of ids too"
    drawn = {seeds([i], seed=s, epoch=e)[0] for s, e, i in [(0, 1, 5), (1, 1, 5), (0, 2, 5), (0, 1, 6), (0, 5, 1)]}
    assert len(drawn) == 5
    # A stable hash, not Python's salted hash: the same number in any process (fixed here).
    assert seeds([7], seed=0, epoch=0) == [stable_hash(0, 0, 7)]
    assert masking.instance_seeds([], seed=0, epoch=0).dtype == np.uint64
    for key in ({"seed": -1, "epoch": 0}, {"seed": 0, "epoch": -1}):
        with pytest.raises(ValueError, match="non-negative"):
            masking.instance_seeds([1], **key)


def test_hashed_seeds_choose_words_uniformly_and_replace_80_10_10():
    """Statistics over instance ids of one epoch: each of ten one-token words is the one masked
    10% of the time; the chosen tokens of longer rows become [MASK] / kept / random 80/10/10."""
    ids, group_start, lengths = pair_rows([[[1] * 10]] * 20000, 12)
    word_ids = word_ids_of(ids, group_start, lengths, special=SPECIAL)
    seeds = masking.instance_seeds(np.arange(20000), seed=3, epoch=2)
    masked = masking.mask_word_ids(ids, word_ids, attention_of(lengths, 12), seeds=seeds, masked_lm_prob=0.05,
                                   max_predictions=1, mask_id=SPECIAL.mask, vocab_size=SPECIAL.vocab_size)
    picks = collections.Counter(word_ids[masked["labels"] != -100].tolist())
    shares = np.array([picks[w] for w in range(1, 11)]) / 20000
    assert np.all(np.abs(shares - 0.1) < 0.01), shares

    ids, group_start, lengths = pair_rows([[[1, 2, 3] * 10, [2, 1] * 10]] * 2000, 95)
    word_ids = word_ids_of(ids, group_start, lengths, special=SPECIAL)
    masked = masking.mask_word_ids(ids, word_ids, attention_of(lengths, 95), seeds=masking.instance_seeds(
        np.arange(2000), seed=0, epoch=0), masked_lm_prob=0.15, max_predictions=20, mask_id=SPECIAL.mask,
        vocab_size=SPECIAL.vocab_size)
    predicted = masked["labels"] != -100
    assert not (masked["input_ids"] != ids)[~predicted].any()
    fed, original = masked["input_ids"][predicted], ids[predicted]
    total = len(fed)
    assert abs((fed == SPECIAL.mask).sum() / total - 0.8) < 0.01
    assert abs(((fed != SPECIAL.mask) & (fed == original)).sum() / total - 0.1) < 0.01


def test_budget_is_googles_rounded_half_to_even():
    # Google: min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob)))), Python 3's round.
    budget = lambda n, p, m: int(masking.budgets([n], masked_lm_prob=p, max_predictions=m)[0])  # noqa: E731
    assert budget(50, 0.05, 20) == 2  # round(2.5) = 2
    assert budget(70, 0.05, 20) == 4  # round(3.5) = 4
    assert budget(3, 0.15, 20) == 1
    assert budget(512, 0.15, 80) == 77
    assert budget(512, 0.15, 20) == 20


def test_static_labels_are_the_stored_ids_at_the_stored_positions():
    positions = np.array([[1, 4, 0], [2, 0, 0]])
    ids = np.array([[7, 9, 0], [8, 0, 0]])
    weights = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    labels = masking.labels_of_static_masks(positions, ids, weights, width=6, ignored=-100)
    assert labels.tolist() == [[-100, 7, -100, -100, 9, -100], [-100, -100, 8, -100, -100, -100]]
