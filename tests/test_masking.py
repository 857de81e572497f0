"""Property tests of whole-word masking and instance creation (pure functions, seeded generators)."""
import collections
import random

import numpy as np
from hypothesis import given, settings, strategies as st

from wwm_core.instances import (MaskingConfig, SpecialIds, bert_wwm_instances, mask_whole_words,
                                roberta_wwm_ext_instances)

SPECIAL = SpecialIds(cls=101, sep=102, mask=103, vocab_size=21128)


def _sentence(word_sizes, first_id=1000):
    """A sentence whose words have the given token counts; ids are distinct and never special."""
    ids = np.arange(first_id, first_id + sum(word_sizes), dtype=np.int32)
    group_start = np.zeros(len(ids), dtype=bool)
    group_start[np.cumsum([0] + list(word_sizes[:-1]))] = True
    return ids, group_start


def _with_specials(word_sizes):
    ids, group_start = _sentence(word_sizes)
    ids = np.concatenate([[SPECIAL.cls], ids, [SPECIAL.sep]]).astype(np.int32)
    group_start = np.concatenate([[True], group_start, [True]])
    return ids, group_start


def _groups(group_start, ids):
    """Position ranges of the word groups (special tokens excluded)."""
    starts = [i for i, s in enumerate(group_start) if s] + [len(ids)]
    return [range(a, b) for a, b in zip(starts, starts[1:]) if ids[a] not in (SPECIAL.cls, SPECIAL.sep)]


word_sizes = st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(sizes=word_sizes, seed=st.integers(0, 2**32), max_predictions=st.integers(1, 30),
       prob=st.floats(0.05, 0.5))
def test_words_are_masked_all_or_none_within_budget(sizes, seed, max_predictions, prob):
    ids, group_start = _with_specials(sizes)
    output, positions, labels = mask_whole_words(
        ids, group_start, rng=random.Random(seed), special=SPECIAL,
        masked_lm_prob=prob, max_predictions_per_seq=max_predictions)
    chosen = set(positions.tolist())
    for group in _groups(group_start, ids):
        covered = [p in chosen for p in group]
        assert all(covered) or not any(covered), f"word {list(group)} partly masked"
    assert positions.tolist() == sorted(chosen), "positions must be sorted and unique"
    budget = min(max_predictions, max(1, int(round(len(ids) * prob))))
    assert len(positions) <= budget
    assert SPECIAL.cls not in labels and SPECIAL.sep not in labels
    # The original sequence is rebuilt from the instance: put the labels back.
    rebuilt = output.copy()
    rebuilt[positions] = labels
    assert np.array_equal(rebuilt, ids)
    # Outside the masked positions nothing changed.
    unmasked = np.setdiff1d(np.arange(len(ids)), positions)
    assert np.array_equal(output[unmasked], ids[unmasked])


def test_a_word_that_would_overflow_the_budget_is_skipped_never_cut():
    # One 6-token word and many 1-token words, budget 3: the long word can never be chosen.
    ids, group_start = _with_specials([6] + [1] * 40)
    for seed in range(200):
        _, positions, _ = mask_whole_words(ids, group_start, rng=random.Random(seed), special=SPECIAL,
                                           masked_lm_prob=0.1, max_predictions_per_seq=3)
        assert len(positions) == 3
        assert not set(range(1, 7)) & set(positions.tolist())


def test_replacement_shares_are_80_10_10():
    ids, group_start = _with_specials([1, 2, 3, 1, 2] * 20)
    outcome = collections.Counter()
    rng = random.Random(7)
    for _ in range(4000):
        output, positions, labels = mask_whole_words(ids, group_start, rng=rng, special=SPECIAL,
                                                     masked_lm_prob=0.15, max_predictions_per_seq=20)
        fed = output[positions]
        outcome["mask"] += int(np.sum(fed == SPECIAL.mask))
        outcome["same"] += int(np.sum(fed == labels))
        outcome["random"] += int(np.sum((fed != SPECIAL.mask) & (fed != labels)))
    total = sum(outcome.values())
    shares = {k: v / total for k, v in outcome.items()}
    print("replacement shares over", total, "masked tokens:", shares)
    assert abs(shares["mask"] - 0.8) < 0.01
    # A random id equal to the original counts as "same": 1/21128 of the 10%, negligible.
    assert abs(shares["same"] - 0.1) < 0.01
    assert abs(shares["random"] - 0.1) < 0.01


def test_the_budget_is_filled_when_one_token_words_remain():
    ids, group_start = _with_specials([1, 2, 1, 3, 2, 1] * 7)  # 70 words, 70 + 2 tokens
    counts = {len(mask_whole_words(ids, group_start, rng=random.Random(s), special=SPECIAL,
                                   masked_lm_prob=0.15, max_predictions_per_seq=20)[1])
              for s in range(500)}
    assert counts == {11}  # round(72 * 0.15); one-token words can always top it up


CONFIG = MaskingConfig(max_seq_length=64, max_predictions_per_seq=10, masked_lm_prob=0.15, short_seq_prob=0.1)


def _documents(rng, count):
    documents, first_id = [], 1000
    for _ in range(count):
        document = []
        for _ in range(rng.randint(1, 8)):
            sizes = [rng.randint(1, 4) for _ in range(rng.randint(1, 15))]
            document.append(_sentence(sizes, first_id))
            first_id += sum(sizes)
        documents.append(document)
    return documents


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_bert_wwm_instances_are_well_formed(seed):
    rng = random.Random(seed)
    documents = _documents(rng, 6)
    for index in range(len(documents)):
        for instance in bert_wwm_instances(documents, index, rng=rng, special=SPECIAL, config=CONFIG):
            ids = instance.input_ids.copy()
            ids[instance.masked_positions] = instance.masked_labels
            assert len(ids) <= CONFIG.max_seq_length
            assert ids[0] == SPECIAL.cls and ids[-1] == SPECIAL.sep
            seps = np.flatnonzero(ids == SPECIAL.sep)
            assert len(seps) == 2 and seps[0] >= 2 and seps[1] - seps[0] >= 2, "both segments non-empty"
            expected_segments = np.r_[np.zeros(seps[0] + 1), np.ones(len(ids) - seps[0] - 1)]
            assert np.array_equal(instance.segment_ids, expected_segments)
            # Zero is possible, as in Google's code: a short instance whose budget (1) is smaller
            # than every word in it.
            assert len(instance.masked_positions) <= CONFIG.max_predictions_per_seq


def test_bert_wwm_draws_random_next_about_half_the_time():
    rng = random.Random(3)
    documents = _documents(rng, 20)
    labels = [i.is_random_next for _ in range(20) for d in range(len(documents))
              for i in bert_wwm_instances(documents, d, rng=rng, special=SPECIAL, config=CONFIG)]
    share = sum(labels) / len(labels)
    print(f"random-next share {share:.3f} over {len(labels)} instances")
    # Above one half: single-segment chunks always take a random next, as in Google's code.
    assert 0.45 < share < 0.75


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_roberta_instances_pack_one_document_without_nsp(seed):
    rng = random.Random(seed)
    (document,) = _documents(rng, 1)
    instances = roberta_wwm_ext_instances(document, rng=rng, special=SPECIAL, config=CONFIG)
    rebuilt = []
    for instance in instances:
        ids = instance.input_ids.copy()
        ids[instance.masked_positions] = instance.masked_labels
        assert ids[0] == SPECIAL.cls and ids[-1] == SPECIAL.sep and SPECIAL.sep not in ids[1:-1]
        assert len(ids) <= CONFIG.max_seq_length
        assert not instance.is_random_next and not instance.segment_ids.any()
        rebuilt.extend(ids[1:-1].tolist())
    # Every token of the document, in order, exactly once: nothing lost at boundaries.
    assert rebuilt == np.concatenate([ids for ids, _ in document]).tolist()


def test_same_seed_same_instances():
    documents = _documents(random.Random(1), 5)
    make = lambda: bert_wwm_instances(documents, 2, rng=random.Random(99), special=SPECIAL, config=CONFIG)
    first, second = make(), make()
    assert [i.input_ids.tolist() for i in first] == [i.input_ids.tolist() for i in second]
