"""Dynamic whole-word masking in ``tf.data``: new masks on every pass over ``masking: dynamic`` data.

The rules are the static path's (``wwm_core.masking``): candidates are the tokens with a word id
(``word_ids`` > 0; [CLS], [SEP] and padding have 0), the budget is
min(max_predictions_per_seq, max(1, round(length * masked_lm_prob))) with length counting [CLS]
and [SEP] (rounded half to even, in float64, as numpy does), and whole words are taken in a
uniformly random order while they fit (one that would overflow is skipped, not cut).

- ``ngram_weights`` (N-gram masking): the word visited starts a span of 1..N words, its length
  drawn from the weights of the lengths that fit before the next word id 0 ([SEP]); a span that
  overlaps a chosen one or overflows the budget is skipped.
- ``replacement`` "bert": each chosen token becomes [MASK] 80%, stays 10%, becomes a random id in
  [0, vocab_size) 10%. "macbert": per chosen word, a similar word with as many tokens 80% (from
  the data's ``similar_words.npz``; none: random tokens), random tokens 10% (never [MASK]), kept 10%.

Everything is TensorFlow ops on a batch with static shapes (no ``tf.py_function``), drawn with
stateless random ops from (seed, batch number): it runs in the input pipeline of any strategy,
TPUStrategy included, and the same seed gives the same masks. The draws are TensorFlow's, not the
static path's SplitMix64: the same rules, other masks.
"""
import numpy as np
import tensorflow as tf

MASK_SHARE, KEEP_SHARE = 0.8, 0.1  # the rest (0.1) becomes a random token
SIMILAR_SHARE, RANDOM_SHARE = 0.8, 0.1  # MacBERT, per word; the rest (0.1) is kept


class SimilarWordsTable:
    """``wwm_core.masking.SimilarWords`` as TensorFlow lookups: a word's token ids joined by spaces
    -> its entry; each entry's candidates, all of the word's length, side by side."""

    def __init__(self, similar):
        words = [" ".join(map(str, similar.word_tokens[a:b].tolist()))
                 for a, b in zip(similar.word_offsets[:-1].tolist(), similar.word_offsets[1:].tolist())]
        keys = tf.constant(words or [""], tf.string)
        values = tf.range(len(words) or 1, dtype=tf.int64)
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=-1)
        self.candidate_offsets = tf.constant(similar.candidate_offsets, tf.int64)
        self.candidate_tokens = tf.constant(np.concatenate([similar.candidate_tokens, [0]]), tf.int32)


class WholeWordMasker:
    def __init__(self, *, max_predictions_per_seq: int, masked_lm_prob: float, mask_id: int, vocab_size: int,
                 seed: int, ngram_weights=(1.0,), replacement: str = "bert", similar=None):
        self.max_predictions_per_seq = max_predictions_per_seq
        self.masked_lm_prob = masked_lm_prob
        self.mask_id = mask_id
        self.vocab_size = vocab_size
        self.seed = seed
        self.cumulative = np.cumsum(np.asarray(ngram_weights, np.float64))
        self.replacement = replacement
        self.similar = SimilarWordsTable(similar) if replacement == "macbert" else None

    def mask_batch(self, features: dict, batch_number) -> dict:
        """Parsed dynamic records [batch, seq] -> the static schema's features, masked."""
        input_ids, word_ids = features["input_ids"], features["word_ids"]
        batch, width = input_ids.shape  # static: batches are drawn with drop_remainder
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(batch_number, tf.int64)])
        group_seed, decision_seed, token_seed, span_seed, pick_seed = (
            tf.random.experimental.stateless_fold_in(seed, salt) for salt in (1, 2, 3, 4, 5))
        lengths = tf.reduce_sum(features["input_mask"], axis=1)
        budget = tf.minimum(self.max_predictions_per_seq, tf.maximum(1, tf.cast(
            tf.round(tf.cast(lengths, tf.float64) * self.masked_lm_prob), tf.int32)))

        # Group k of a row is the tokens with word id k (1..width); slot 0 holds the non-candidates.
        sizes = tf.math.bincount(word_ids, minlength=width + 1, maxlength=width + 1, axis=-1, dtype=tf.int32)
        sizes = tf.concat([tf.zeros([batch, 1], tf.int32), sizes[:, 1:]], axis=1)
        present = sizes > 0
        priority = tf.where(present, tf.random.stateless_uniform([batch, width + 1], seed=group_seed), 2.0)
        order = tf.argsort(priority, axis=1, stable=True)  # groups in random order, absent ones last
        if len(self.cumulative) > 1:
            masked = self._choose_spans(word_ids, sizes, present, order, budget, span_seed)
        else:
            masked = self._choose_words(word_ids, sizes, present, order, budget)

        if self.replacement == "macbert":
            output_ids = self._macbert(input_ids, word_ids, sizes, masked, decision_seed, token_seed, pick_seed)
        else:
            decision = tf.random.stateless_uniform([batch, width], seed=decision_seed)
            random_ids = tf.random.stateless_uniform([batch, width], seed=token_seed, minval=0,
                                                     maxval=self.vocab_size, dtype=tf.int32)
            output_ids = tf.where(masked & (decision < MASK_SHARE), self.mask_id,
                                  tf.where(masked & (decision >= MASK_SHARE + KEEP_SHARE), random_ids, input_ids))

        # The masked positions in ascending order, then padding (position 0, label 0, weight 0).
        columns = tf.range(width)[None, :]
        sort_key = tf.where(masked, columns, columns + width)
        _, selected = tf.math.top_k(-sort_key, k=self.max_predictions_per_seq, sorted=True)
        is_prediction = tf.gather(masked, selected, batch_dims=1)
        positions = tf.where(is_prediction, selected, 0)
        labels = tf.where(is_prediction, tf.gather(input_ids, selected, batch_dims=1), 0)
        predictions = [batch, self.max_predictions_per_seq]
        return {
            "input_ids": tf.ensure_shape(output_ids, [batch, width]),
            "input_mask": features["input_mask"],
            "segment_ids": features["segment_ids"],
            "masked_lm_positions": tf.ensure_shape(positions, predictions),
            "masked_lm_ids": tf.ensure_shape(labels, predictions),
            "masked_lm_weights": tf.ensure_shape(tf.cast(is_prediction, tf.float32), predictions),
            "next_sentence_labels": features["next_sentence_labels"],
        }

    @staticmethod
    def _choose_words(word_ids, sizes, present, order, budget):
        """One whole word at a time: [batch, width] bool of the chosen tokens."""
        ordered_sizes = tf.gather(sizes, order, batch_dims=1)
        ordered_present = tf.gather(present, order, batch_dims=1)

        def take_if_it_fits(state, group):
            taken, _ = state
            size, valid = group
            fits = valid & (taken + size <= budget)
            return taken + tf.where(fits, size, 0), fits

        batch = tf.shape(word_ids)[0]
        _, accepted = tf.scan(take_if_it_fits, (tf.transpose(ordered_sizes), tf.transpose(ordered_present)),
                              initializer=(tf.zeros([batch], tf.int32), tf.zeros([batch], tf.bool)))
        accepted_in_order = tf.transpose(accepted)  # [batch, groups], in the drawn order
        accepted_by_group = tf.gather(accepted_in_order, tf.argsort(order, axis=1), batch_dims=1)
        return tf.gather(accepted_by_group, word_ids, batch_dims=1) & (word_ids > 0)

    def _choose_spans(self, word_ids, sizes, present, order, budget, span_seed):
        """N-gram spans of whole words: [batch, width] bool of the chosen tokens."""
        batch, width = word_ids.shape
        groups = width + 1
        longest = len(self.cumulative)
        # Word k+1 follows word k without a gap (no [SEP] between) when no token with word id 0
        # lies between them: the count of such tokens before a word is the same for both.
        zeros_before = tf.cumsum(tf.cast(word_ids == 0, tf.int32), axis=1)
        flat_word = word_ids + tf.range(batch)[:, None] * groups
        run_of = tf.reshape(tf.math.unsorted_segment_max(tf.reshape(zeros_before, [-1]), tf.reshape(flat_word, [-1]),
                                                         batch * groups), [batch, groups])
        shifted_present = tf.concat([present[:, 1:], tf.zeros([batch, 1], tf.bool)], axis=1)
        shifted_run = tf.concat([run_of[:, 1:], tf.fill([batch, 1], -1)], axis=1)
        continues = present & shifted_present & tf.equal(run_of, shifted_run)  # word k+1 adjoins word k
        available = tf.ones([batch, groups], tf.int32)
        still = tf.ones([batch, groups], tf.bool)
        padded_sizes = tf.concat([sizes, tf.zeros([batch, longest], tf.int32)], axis=1)
        span_sizes = [sizes]
        for n in range(1, longest):
            step = tf.concat([continues[:, n - 1:], tf.zeros([batch, n - 1], tf.bool)], axis=1)
            still = still & step
            available += tf.cast(still, tf.int32)
            span_sizes.append(span_sizes[-1] + padded_sizes[:, n:n + groups])
        cumulative = tf.constant(self.cumulative, tf.float64)
        draw = tf.cast(tf.random.stateless_uniform([batch, groups], seed=span_seed), tf.float64)
        draw *= tf.gather(cumulative, available - 1)
        span = 1 + tf.add_n([tf.cast((n < available) & (draw >= cumulative[n - 1]), tf.int32)
                             for n in range(1, longest)])
        span_size = tf.gather(tf.stack(span_sizes, axis=-1), span[..., None] - 1, batch_dims=2)[..., 0]
        positions = tf.range(groups + longest)[None, :]

        def take_span_if_it_fits(state, step):
            taken, covered = state
            group, valid = step  # [batch] each
            length = tf.gather(span, group[:, None], batch_dims=1)[:, 0]
            size = tf.gather(span_size, group[:, None], batch_dims=1)[:, 0]
            inside = (positions >= group[:, None]) & (positions < (group + length)[:, None])
            overlaps = tf.reduce_any(covered & inside, axis=1)
            fits = valid & ~overlaps & (taken + size <= budget)
            return taken + tf.where(fits, size, 0), covered | (inside & fits[:, None])

        ordered_present = tf.gather(present, order, batch_dims=1)
        _, covered = tf.scan(take_span_if_it_fits, (tf.transpose(order), tf.transpose(ordered_present)),
                             initializer=(tf.zeros([batch], tf.int32), tf.zeros([batch, groups + longest], tf.bool)))
        chosen_words = covered[-1][:, :groups]
        return tf.gather(chosen_words, word_ids, batch_dims=1) & (word_ids > 0)

    def _macbert(self, input_ids, word_ids, sizes, masked, decision_seed, token_seed, pick_seed):
        """MacBERT's replacement of the chosen words."""
        batch, width = input_ids.shape
        groups = width + 1
        decision = tf.gather(tf.random.stateless_uniform([batch, groups], seed=decision_seed), word_ids, batch_dims=1)
        random_ids = tf.random.stateless_uniform([batch, width], seed=token_seed, minval=0, maxval=self.vocab_size - 1,
                                                 dtype=tf.int32)
        random_ids += tf.cast(random_ids >= self.mask_id, tf.int32)  # never [MASK]
        flat_word = tf.reshape(word_ids + tf.range(batch)[:, None] * groups, [-1])
        words = tf.strings.unsorted_segment_join(tf.strings.as_string(tf.reshape(input_ids, [-1])), flat_word,
                                              batch * groups, separator=" ")
        entry = tf.reshape(self.similar.table.lookup(words), [batch, groups])
        entry = tf.where(tf.range(groups)[None, :] > 0, entry, -1)
        length = tf.cast(sizes, tf.int64)
        safe_entry = tf.maximum(entry, 0)
        first = tf.gather(self.similar.candidate_offsets, safe_entry)
        count = tf.where(entry >= 0, (tf.gather(self.similar.candidate_offsets, safe_entry + 1) - first)
                         // tf.maximum(length, 1), 0)
        pick = tf.minimum(count - 1, tf.cast(tf.random.stateless_uniform([batch, groups], seed=pick_seed)
                                             * tf.cast(count, tf.float32), tf.int64))
        word_start = tf.reshape(tf.math.unsorted_segment_min(tf.reshape(tf.tile(tf.range(width)[None, :], [batch, 1]),
                                                                        [-1]), flat_word, batch * groups),
                                [batch, groups])
        offset_in_word = tf.cast(tf.range(width)[None, :] - tf.gather(word_start, word_ids, batch_dims=1), tf.int64)
        token_first = tf.gather(first + pick * length, word_ids, batch_dims=1)
        candidate = tf.gather(self.similar.candidate_tokens,
                              tf.where(tf.gather(count, word_ids, batch_dims=1) > 0, token_first + offset_in_word,
                                       tf.cast(tf.shape(self.similar.candidate_tokens)[0] - 1, tf.int64)))
        has_candidate = tf.gather(count, word_ids, batch_dims=1) > 0
        similar = masked & (decision < SIMILAR_SHARE) & has_candidate
        random = masked & ((decision < SIMILAR_SHARE) & ~has_candidate
                           | (decision >= SIMILAR_SHARE) & (decision < SIMILAR_SHARE + RANDOM_SHARE))
        return tf.where(similar, candidate, tf.where(random, random_ids, input_ids))
