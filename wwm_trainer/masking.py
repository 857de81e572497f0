"""Dynamic whole-word masking in ``tf.data``: new masks on every pass over ``masking: dynamic`` data.

The rule is the static path's (``wwm_core.instances.mask_whole_words``, Google's
``create_masked_lm_predictions`` with whole-word masking): candidates are the tokens with a word
id (``word_ids`` > 0; [CLS], [SEP] and padding have 0), the budget is
min(max_predictions_per_seq, max(1, round(length * masked_lm_prob))) with length counting [CLS]
and [SEP] (rounded half to even, in float64, as numpy does), whole groups are taken in a uniformly
random order while they fit (one that would overflow is skipped, not cut), and each chosen token
becomes [MASK] 80%, stays 10%, becomes a random id in [0, vocab_size) 10%.

Everything is TensorFlow ops on a batch with static shapes (no ``tf.py_function``), drawn with
stateless random ops from (seed, batch number): it runs in the input pipeline of any strategy,
TPUStrategy included, and the same seed gives the same masks.
"""
import tensorflow as tf

MASK_SHARE, KEEP_SHARE = 0.8, 0.1  # the rest (0.1) becomes a random token


class WholeWordMasker:
    def __init__(self, *, max_predictions_per_seq: int, masked_lm_prob: float, mask_id: int, vocab_size: int,
                 seed: int):
        self.max_predictions_per_seq = max_predictions_per_seq
        self.masked_lm_prob = masked_lm_prob
        self.mask_id = mask_id
        self.vocab_size = vocab_size
        self.seed = seed

    def mask_batch(self, features: dict, batch_number) -> dict:
        """Parsed dynamic records [batch, seq] -> the static schema's features, masked."""
        input_ids, word_ids = features["input_ids"], features["word_ids"]
        batch, width = input_ids.shape  # static: batches are drawn with drop_remainder
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(batch_number, tf.int64)])
        group_seed, decision_seed, token_seed = (
            tf.random.experimental.stateless_fold_in(seed, salt) for salt in (1, 2, 3))
        lengths = tf.reduce_sum(features["input_mask"], axis=1)
        budget = tf.minimum(self.max_predictions_per_seq, tf.maximum(1, tf.cast(
            tf.round(tf.cast(lengths, tf.float64) * self.masked_lm_prob), tf.int32)))

        # Group k of a row is the tokens with word id k (1..width); slot 0 holds the non-candidates.
        sizes = tf.math.bincount(word_ids, minlength=width + 1, maxlength=width + 1, axis=-1, dtype=tf.int32)
        sizes = tf.concat([tf.zeros([batch, 1], tf.int32), sizes[:, 1:]], axis=1)
        present = sizes > 0
        priority = tf.where(present, tf.random.stateless_uniform([batch, width + 1], seed=group_seed), 2.0)
        order = tf.argsort(priority, axis=1, stable=True)  # groups in random order, absent ones last
        ordered_sizes = tf.gather(sizes, order, batch_dims=1)
        ordered_present = tf.gather(present, order, batch_dims=1)

        def take_if_it_fits(state, group):
            taken, _ = state
            size, valid = group
            fits = valid & (taken + size <= budget)
            return taken + tf.where(fits, size, 0), fits

        _, accepted = tf.scan(take_if_it_fits, (tf.transpose(ordered_sizes), tf.transpose(ordered_present)),
                              initializer=(tf.zeros([batch], tf.int32), tf.zeros([batch], tf.bool)))
        accepted_in_order = tf.transpose(accepted)  # [batch, groups], in the drawn order
        accepted_by_group = tf.gather(accepted_in_order, tf.argsort(order, axis=1), batch_dims=1)
        masked = tf.gather(accepted_by_group, word_ids, batch_dims=1) & (word_ids > 0)

        decision = tf.random.stateless_uniform([batch, width], seed=decision_seed)
        random_ids = tf.random.stateless_uniform([batch, width], seed=token_seed, minval=0, maxval=self.vocab_size,
                                                 dtype=tf.int32)
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
