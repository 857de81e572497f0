"""Which words are masked, and what a masked word becomes: pure functions on a batch of rows.

Two steps, each a compiled row loop (``kernels``) behind a numpy front, shared by the static path
(``wwm run``: ``instances.make_batch``), the dynamic one of ``wwm train`` (its TensorFlow ops
follow the same rules) and collators that mask Parquet rows by their ``word_ids``:

1. ``choose_spans``: whole words, or spans of 1..N consecutive whole words (N-gram masking,
   ``ngram_weights``), in a uniformly random order while they fit the budget; a span that would
   overflow the budget, or overlap a span already chosen, is skipped, never cut; a span never
   crosses an unmaskable token ([CLS], [SEP]: segment and document boundaries).
2. ``replace_words``: Google's rule per token (``bert``: 80% [MASK], 10% kept, 10% a random id), or
   MacBERT's per word (``macbert``, "MLM as correction": 80% a similar word with the same number
   of tokens, 10% random tokens, 10% kept; a word without a similar word of its length gets
   random tokens; no [MASK] at all, random tokens included).

Randomness comes only from each row's 64-bit seed (a SplitMix64 stream drawn by column), so a
row's masks never depend on its batch. At training time (``wwm_torch``'s collator) a row's seed
is ``instance_seeds`` of (seed, epoch, its instance id): the same in every worker and rank, new
in every epoch.
"""
import dataclasses

import numpy as np

from wwm_core.hashing import stable_hash

REPLACEMENTS = ("bert", "macbert")
WORD_LEVEL = (1.0,)  # ngram_weights of plain whole-word masking
MACBERT_NGRAM_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
MACBERT_COUNTERS = ("words_similar", "words_random", "words_kept", "words_no_candidate")


def _kernels():
    """The compiled loops, imported on first use: the configuration imports this module's
    constants, and commands that mask nothing (wwm recipe, wwm train) need not load numba."""
    from wwm_core import kernels

    return kernels


def check_ngram_weights(weights) -> tuple:
    """``weights`` as a tuple of floats: the chances of spans of 1, 2, ... words (any positive
    scale), or ValueError."""
    weights = tuple(float(w) for w in weights)
    if not weights or len(weights) > 10 or any(not np.isfinite(w) or w < 0 for w in weights) or weights[0] <= 0 \
            or sum(weights) <= 0:
        raise ValueError(f"N-gram weights {weights} must be 1 to 10 non-negative numbers, the first (one word) "
                         "positive")
    return weights


def ngram_cumulative(weights) -> np.ndarray:
    """Cumulative weights of spans of 1..N words (not normalized: a span's draw is scaled to the
    lengths that fit where it starts)."""
    return np.cumsum(np.asarray(check_ngram_weights(weights), dtype=np.float64))


def budgets(lengths, *, masked_lm_prob: float, max_predictions: int) -> np.ndarray:
    """Google's budget per row: min(max_predictions, max(1, round(length * masked_lm_prob))),
    the length counting [CLS] and [SEP], rounded half to even."""
    return np.minimum(max_predictions, np.maximum(1, np.round(np.asarray(lengths) * masked_lm_prob))).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Spans:
    chosen: np.ndarray  # (n, width) bool: the tokens to predict
    span_words: np.ndarray  # bincount of the chosen spans' lengths in words (index 0 unused)
    word_sizes: np.ndarray  # bincount of the chosen words' lengths in tokens


def choose_spans(group_start, maskable, lengths, seeds, *, budgets, ngram_weights=WORD_LEVEL) -> Spans:
    """The tokens to predict in each row (see the module's step 1).

    ``group_start``: (n, width) bool, True where a whole word begins; ``maskable``: (n, width)
    bool, False on [CLS], [SEP] and padding; ``lengths``: real tokens per row; ``seeds``: one
    uint64 per row; ``budgets``: tokens to choose at most per row (``budgets()``)."""
    kernels = _kernels()
    group_start = np.ascontiguousarray(group_start, dtype=bool)
    if group_start.shape[1] > kernels.MAX_WIDTH:
        raise ValueError(f"rows of {group_start.shape[1]} tokens: at most {kernels.MAX_WIDTH} are supported")
    chosen, span_words, word_sizes = kernels.choose_span_rows(
        group_start, np.ascontiguousarray(maskable, dtype=bool), np.asarray(lengths, dtype=np.int64),
        np.asarray(seeds, dtype=np.uint64), np.asarray(budgets, dtype=np.int64), ngram_cumulative(ngram_weights))
    return Spans(chosen, span_words, word_sizes)


@dataclasses.dataclass(frozen=True)
class SimilarWords:
    """Similar words by token ids, for MacBERT's replacement: entry k is a word (its tokens
    ``word_tokens[word_offsets[k]:word_offsets[k + 1]]``, L of them) with its candidates, each of
    L tokens too, in ``candidate_tokens[candidate_offsets[k]:candidate_offsets[k + 1]]``. Entries
    are sorted by ``keys`` (a 64-bit key of the word's tokens) for lookup."""
    keys: np.ndarray  # uint64, sorted
    word_offsets: np.ndarray  # int64, len(keys) + 1
    word_tokens: np.ndarray  # int32
    candidate_offsets: np.ndarray  # int64, len(keys) + 1
    candidate_tokens: np.ndarray  # int32

    def __len__(self):
        return len(self.keys)

    @classmethod
    def empty(cls) -> "SimilarWords":
        zero = np.zeros(1, np.int64)
        return cls(np.zeros(0, np.uint64), zero, np.zeros(0, np.int32), zero, np.zeros(0, np.int32))

    @classmethod
    def from_token_ids(cls, pairs) -> "SimilarWords":
        """``pairs``: (word token ids, [candidate token ids, ...]) per word. Candidates of another
        length than the word (they would shift every later position), the word itself and repeats
        are left out; a word given twice has its candidates merged."""
        merged = {}
        for word, candidates in pairs:
            word = tuple(int(t) for t in word)
            if not word:
                continue
            kept = merged.setdefault(word, {})
            for candidate in candidates:
                candidate = tuple(int(t) for t in candidate)
                if len(candidate) == len(word) and candidate != word:
                    kept.setdefault(candidate, None)
        words = list(merged)
        word_offsets = np.cumsum([0] + [len(w) for w in words], dtype=np.int64)
        word_tokens = np.fromiter((t for w in words for t in w), np.int32, int(word_offsets[-1]))
        keys = _kernels().tokens_keys(word_tokens, word_offsets)
        order = np.argsort(keys, kind="stable")
        words = [words[i] for i in order.tolist()]
        word_offsets = np.cumsum([0] + [len(w) for w in words], dtype=np.int64)
        word_tokens = np.fromiter((t for w in words for t in w), np.int32, int(word_offsets[-1]))
        candidate_lists = [list(merged[w]) for w in words]
        candidate_offsets = np.cumsum([0] + [len(c) * len(w) for w, c in zip(words, candidate_lists)], dtype=np.int64)
        candidate_tokens = np.fromiter((t for c in candidate_lists for candidate in c for t in candidate), np.int32,
                                       int(candidate_offsets[-1]))
        return cls(keys[order], word_offsets, word_tokens, candidate_offsets, candidate_tokens)

    def candidates_of(self, word) -> list:
        """The candidates (tuples of ids) of a word given as token ids; [] when it has none."""
        entry = _kernels().similar_entry(np.asarray(word, np.int32), self.keys, self.word_offsets, self.word_tokens)
        if entry < 0:
            return []
        size = len(word)
        flat = self.candidate_tokens[self.candidate_offsets[entry]:self.candidate_offsets[entry + 1]]
        return [tuple(flat[i:i + size].tolist()) for i in range(0, len(flat), size)]

    def to_npz_bytes(self) -> bytes:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, **{field.name: getattr(self, field.name) for field in dataclasses.fields(self)})
        return buffer.getvalue()

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> "SimilarWords":
        import io

        with np.load(io.BytesIO(data)) as arrays:
            return cls(**{field.name: arrays[field.name] for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Replaced:
    input_ids: np.ndarray  # (n, width) int32, the masked rows
    positions: np.ndarray  # (n, max_predictions) int32, ascending, zero-padded
    labels: np.ndarray  # (n, max_predictions) int32, the original ids there
    counts: np.ndarray  # (n,) predictions per row
    macbert: dict  # MacBERT's per-word counts (MACBERT_COUNTERS); {} under Google's rule


def replace_words(ids, chosen, group_start, lengths, seeds, *, replacement: str = "bert", mask_id: int,
                  vocab_size: int, max_predictions: int, similar: SimilarWords = None) -> Replaced:
    """What each chosen token becomes (see the module's step 2); ``ids`` are the original rows."""
    if replacement not in REPLACEMENTS:
        raise ValueError(f"replacement {replacement!r} is not one of {', '.join(REPLACEMENTS)}")
    similar = similar if similar is not None else SimilarWords.empty()
    output, positions, labels, counts, decisions = _kernels().replace_rows(
        np.ascontiguousarray(ids, dtype=np.int32), np.ascontiguousarray(chosen, dtype=bool),
        np.ascontiguousarray(group_start, dtype=bool), np.asarray(lengths, dtype=np.int64),
        np.asarray(seeds, dtype=np.uint64), replacement == "macbert", mask_id, vocab_size, max_predictions,
        similar.keys, similar.word_offsets, similar.word_tokens, similar.candidate_offsets, similar.candidate_tokens)
    macbert = dict(zip(MACBERT_COUNTERS, decisions.tolist())) if replacement == "macbert" else {}
    return Replaced(output, positions, labels, counts, macbert)


def groups_of_word_ids(word_ids, lengths=None):
    """(group_start, maskable) from per-token word numbers (``word_ids``: 0 off words, as wwm
    writes them in Parquet and dynamic TFRecords)."""
    word_ids = np.asarray(word_ids)
    maskable = word_ids > 0
    if lengths is not None:
        maskable &= np.arange(word_ids.shape[1])[None, :] < np.asarray(lengths)[:, None]
    group_start = np.ones_like(maskable)
    group_start[:, 1:] = word_ids[:, 1:] != word_ids[:, :-1]
    return group_start, maskable


def instance_seeds(instance_ids, *, seed: int, epoch: int) -> np.ndarray:
    """One 64-bit row seed per instance id: a stable hash of (seed, epoch, the id), so an
    instance's masks depend on nothing else (not its batch, DataLoader worker, rank or the order
    rows arrive in) and are new in every epoch."""
    ids = [int(i) for i in np.asarray(instance_ids).reshape(-1)]
    if min([seed, epoch] + ids) < 0:
        raise ValueError(f"seed, epoch and instance ids must be non-negative: {seed}, {epoch}, {min(ids)}")
    return np.fromiter((stable_hash(seed, epoch, i) for i in ids), np.uint64, len(ids))


def mask_word_ids(input_ids, word_ids, attention_mask, *, seeds, masked_lm_prob: float, max_predictions: int = None,
                  mask_id: int, vocab_size: int, ngram_weights=WORD_LEVEL, replacement: str = "bert",
                  similar: SimilarWords = None) -> dict:
    """Rows of wwm output (``input_ids``, ``word_ids``, ``attention_mask``: (n, width) arrays) and
    one uint64 seed per row -> {"input_ids": masked, "labels": original ids at the predicted
    tokens and -100 elsewhere (the Hugging Face convention), "macbert": counts}: both steps, as
    the static path runs them on rows with those seeds."""
    input_ids = np.asarray(input_ids)
    lengths = np.asarray(attention_mask).sum(axis=1)
    width = input_ids.shape[1]
    max_predictions = max_predictions or width
    group_start, maskable = groups_of_word_ids(word_ids, lengths)
    spans = choose_spans(group_start, maskable, lengths, seeds, ngram_weights=ngram_weights,
                         budgets=budgets(lengths, masked_lm_prob=masked_lm_prob, max_predictions=max_predictions))
    replaced = replace_words(input_ids, spans.chosen, group_start, lengths, seeds, replacement=replacement,
                             mask_id=mask_id, vocab_size=vocab_size, max_predictions=max_predictions, similar=similar)
    labels = np.where(spans.chosen, input_ids, -100)
    return {"input_ids": replaced.input_ids, "labels": labels, "macbert": replaced.macbert}


def labels_of_static_masks(masked_lm_positions, masked_lm_ids, masked_lm_weights, *, width: int,
                           ignored: int) -> np.ndarray:
    """Rows of stored masks (Google's ``masked_lm_*`` features, weight 0 on padding) -> (rows,
    width) labels: the original id at each masked position, ``ignored`` everywhere else."""
    positions = np.asarray(masked_lm_positions, dtype=np.int64)
    weights = np.asarray(masked_lm_weights)
    labels = np.full((len(positions), width), ignored, dtype=np.int64)
    rows, slots = np.nonzero(weights > 0)
    labels[rows, positions[rows, slots]] = np.asarray(masked_lm_ids, dtype=np.int64)[rows, slots]
    return labels
