"""The compiled planner draws what Python's random.Random draws: checked against CPython's own
generator (the reference Google's create_pretraining_data.py runs on), draw by draw."""
import random

import numpy as np
from hypothesis import given, settings, strategies as st

from wwm_core import kernels
from wwm_core.config import Phase
from wwm_core.instances import bucket_pair_plans, pair_plans


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), bits=st.lists(st.integers(1, 200), min_size=1, max_size=30))
def test_the_twister_draws_what_cpythons_random_draws(seed, bits):
    state, reference = kernels.mt_seeded(np.uint64(seed)), random.Random(seed)
    for k in bits:  # every kind of draw the planner makes, interleaved, past the first twist
        assert kernels.mt_random(state) == reference.random()
        assert kernels.mt_uniform_int(state, 2, k + 2) == 2 + int(reference.random() * (k + 1))
        assert kernels.mt_getrandbits_popcount(state, k) == bin(reference.getrandbits(k)).count("1")
        assert kernels.mt_getrandbits63(state) == reference.getrandbits(63)


def test_the_twister_reseeds_past_624_words():
    state, reference = kernels.mt_seeded(np.uint64(2**63 + 7)), random.Random(2**63 + 7)
    assert [kernels.mt_random(state) for _ in range(2000)] == [reference.random() for _ in range(2000)]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_documents_plans_depend_on_its_seed_and_the_pool_only(seed):
    """Planning a bucket at once gives each document the plans it gets planned alone."""
    rng = random.Random(seed)
    documents = [[rng.randint(1, 40) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 8))]
    seeds = [rng.getrandbits(64) for _ in documents]
    phase = Phase(max_seq_length=rng.choice([16, 64, 128]), max_predictions_per_seq=5)
    for task in ("nsp", "sop", "none"):
        together = bucket_pair_plans(documents, seeds, dupe_factor=3, phase=phase, short_seq_prob=0.1, task=task)
        alone = [plan for d, s in enumerate(seeds)
                 for plan in pair_plans(documents, d, seed=s, dupe_factor=3, phase=phase, short_seq_prob=0.1, task=task)]
        assert [tuple(row) for row in together.tolist()] == [tuple(plan) for plan in alone]
        assert ((together[:, 2] - together[:, 1]) + np.where(together[:, 3] >= 0, together[:, 5] - together[:, 4], 0)
                <= phase.max_seq_length - 3).all()
