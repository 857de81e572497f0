"""Whole-word masking of one instance at training time, in numpy: the rule PyTorch users get
(``wwm_torch``), the same as the static path's (``instances.mask_whole_words``) and the
TensorFlow trainer's ``tf.data`` masking (``wwm_trainer/masking.py``). Three steps, each its own
function so that another choice of words or another replacement can take its place:

    masking_budget          min(max_predictions, max(1, round(tokens x masked_lm_prob))); tokens
                            count [CLS] and [SEP], rounded half to even as numpy and Google do
    choose_whole_words      whole-word groups (``word_ids`` > 0) in a uniformly random order,
                            each taken whole while it fits the budget; one that would overflow is
                            skipped, never cut
    replace_chosen_tokens   each chosen token: [MASK] 80%, kept 10%, a random id 10%

Randomness comes from an explicit ``numpy.random.Generator``; ``instance_generator`` makes the
one of an instance from (seed, epoch, instance id), so an instance's masks depend on nothing else:
not on the batch, the worker, the rank or the order rows arrive in.
"""
import numpy as np

MASK_SHARE, KEEP_SHARE = 0.8, 0.1  # the rest (0.1) becomes a random id
NOT_A_WORD = 0  # records.NOT_A_WORD: [CLS], [SEP] and padding


def instance_generator(*, seed: int, epoch: int, instance_id: int) -> np.random.Generator:
    """The generator of one instance's masks in one epoch (numpy's SeedSequence of the three)."""
    if min(seed, epoch, instance_id) < 0:
        raise ValueError(f"seed, epoch and instance id must be non-negative: {seed}, {epoch}, {instance_id}")
    return np.random.default_rng([seed, epoch, instance_id])


def masking_budget(num_tokens: int, *, masked_lm_prob: float, max_predictions_per_seq: int) -> int:
    """How many tokens an instance of ``num_tokens`` real tokens ([CLS] and [SEP] included) masks
    at most: Google's ``min(max_predictions_per_seq, max(1, int(round(len(tokens) * prob))))``."""
    return int(min(max_predictions_per_seq, max(1, round(num_tokens * masked_lm_prob))))


def choose_whole_words(word_ids: np.ndarray, *, budget: int, rng: np.random.Generator) -> np.ndarray:
    """One row's ``word_ids`` -> a bool row, True on the tokens of the chosen words.

    The words in a uniformly random order, each taken whole while it fits in what is left of
    ``budget``; one that does not fit is skipped and the next one tried, so every word left out
    is longer than what remained when its turn came."""
    word_ids = np.asarray(word_ids)
    sizes = np.bincount(word_ids, minlength=1)
    sizes[NOT_A_WORD] = 0
    words = np.flatnonzero(sizes)
    order = words[rng.permutation(len(words))]
    ordered_sizes = sizes[order]
    # The words up to the first that overflows are all taken (a prefix sum); after it, one at a time.
    fitting = int(np.searchsorted(np.cumsum(ordered_sizes), budget, side="right"))
    chosen = list(order[:fitting])
    left = budget - int(ordered_sizes[:fitting].sum())
    rest, rest_sizes = order[fitting + 1:], ordered_sizes[fitting + 1:]
    while left > 0:
        fits = np.flatnonzero(rest_sizes <= left)
        if not len(fits):
            break
        chosen.append(rest[fits[0]])
        left -= int(rest_sizes[fits[0]])
        rest, rest_sizes = rest[fits[0] + 1:], rest_sizes[fits[0] + 1:]
    is_chosen = np.zeros(len(sizes), bool)
    is_chosen[chosen] = True
    return is_chosen[word_ids]


def replace_chosen_tokens(input_ids: np.ndarray, chosen: np.ndarray, *, rng: np.random.Generator, mask_id: int,
                          vocab_size: int) -> np.ndarray:
    """A copy of one row's ids in which each chosen token became [MASK] (80%), stayed (10%) or
    became a random id in [0, vocab_size) (10%), independently, as in Google's code."""
    output = np.array(input_ids, copy=True)
    positions = np.flatnonzero(chosen)
    decision = rng.random(len(positions))
    output[positions[decision < MASK_SHARE]] = mask_id
    randomized = positions[decision >= MASK_SHARE + KEEP_SHARE]
    output[randomized] = rng.integers(0, vocab_size, len(randomized))
    return output


def mask_instance(input_ids: np.ndarray, word_ids: np.ndarray, *, num_tokens: int, rng: np.random.Generator,
                  masked_lm_prob: float, max_predictions_per_seq: int, mask_id: int, vocab_size: int):
    """One unmasked row -> (the ids the model is fed, the bool row of the tokens it predicts)."""
    budget = masking_budget(num_tokens, masked_lm_prob=masked_lm_prob, max_predictions_per_seq=max_predictions_per_seq)
    chosen = choose_whole_words(word_ids, budget=budget, rng=rng)
    return replace_chosen_tokens(input_ids, chosen, rng=rng, mask_id=mask_id, vocab_size=vocab_size), chosen


def labels_of_static_masks(masked_lm_positions: np.ndarray, masked_lm_ids: np.ndarray, masked_lm_weights: np.ndarray,
                           *, width: int, ignored: int) -> np.ndarray:
    """Rows of stored masks (Google's ``masked_lm_*`` features, weight 0 on padding) -> (rows,
    width) labels: the original id at each masked position, ``ignored`` everywhere else."""
    positions = np.asarray(masked_lm_positions, dtype=np.int64)
    weights = np.asarray(masked_lm_weights)
    labels = np.full((len(positions), width), ignored, dtype=np.int64)
    rows, slots = np.nonzero(weights > 0)
    labels[rows, positions[rows, slots]] = np.asarray(masked_lm_ids, dtype=np.int64)[rows, slots]
    return labels
