"""The computation of one step: losses and metrics as sums, the training loop, the evaluation step.

Sums (not means) per batch, reduced over replicas and turned into means on the host, so that
micro-batches, replicas and evaluation batches all add up exactly.
"""
import tensorflow as tf

CLIP_NORM = 1.0  # Google's clip_by_global_norm
# Per step, summed over the global batch; rates and mean losses are formed on the host.
SUMS = ("mlm_loss_sum", "mlm_weight", "mlm_correct", "sentence_loss_sum", "sentence_correct", "sentence_count")


def pretraining_sums(outputs: dict, features: dict, use_sentence_head: bool) -> dict:
    """Weighted sums over one batch; padding predictions have weight 0. The sentence head (NSP or
    SOP: the same two-way classifier on [CLS]) counts only when ``use_sentence_head``."""
    labels, weights = features["masked_lm_ids"], features["masked_lm_weights"]
    logits = outputs["mlm_logits"]
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    sums = {
        "mlm_loss_sum": tf.reduce_sum(xent * weights),
        "mlm_weight": tf.reduce_sum(weights),
        "mlm_correct": tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32) * weights),
        "sentence_loss_sum": tf.constant(0.0), "sentence_correct": tf.constant(0.0),
        "sentence_count": tf.constant(0.0),
    }
    if use_sentence_head:
        sentence_labels = tf.reshape(features["next_sentence_labels"], [-1])
        sentence_logits = outputs["nsp_logits"]
        sentence_xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=sentence_labels, logits=sentence_logits)
        sentence_predicted = tf.argmax(sentence_logits, axis=-1, output_type=tf.int32)
        sums.update(sentence_loss_sum=tf.reduce_sum(sentence_xent),
                    sentence_correct=tf.reduce_sum(tf.cast(tf.equal(sentence_predicted, sentence_labels), tf.float32)),
                    sentence_count=tf.cast(tf.size(sentence_labels), tf.float32))
    return sums


def normalizers(features: dict) -> dict:
    """What Google's loss divides by, for a whole (replica) batch: its number of real predictions
    and of examples. Micro-batches divide by the whole batch's, so accumulation gives exactly the
    gradient of the whole batch."""
    return {"mlm": tf.reduce_sum(features["masked_lm_weights"]) + 1e-5,
            "sentence": tf.cast(tf.shape(features["input_ids"])[0], tf.float32)}


def batch_loss(sums: dict, divide_by: dict) -> tf.Tensor:
    """Google's loss: MLM cross-entropy averaged over real predictions, plus the mean sentence-head
    loss (0 without one)."""
    return sums["mlm_loss_sum"] / divide_by["mlm"] + sums["sentence_loss_sum"] / divide_by["sentence"]


def build_train_loop(model, optimizer, strategy, *, variables: list, use_sentence_head: bool,
                     accumulation_steps: int):
    """A ``tf.function(iterator, num_steps)`` running ``num_steps`` optimizer steps; returns each
    step's SUMS (summed over replicas) as vectors of length ``num_steps``."""
    replicas = strategy.num_replicas_in_sync

    def gradients(features, divide_by):
        with tf.GradientTape() as tape:
            sums = pretraining_sums(model(features, training=True), features, use_sentence_head)
            loss = batch_loss(sums, divide_by)
        grads = tape.gradient(loss, variables)
        return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables)], sums

    def accumulated_gradients(features, divide_by):
        # [replica batch, ...] -> [k, micro-batch, ...]: k forward/backward passes, one update.
        micro = {name: tf.reshape(t, [accumulation_steps, -1] + t.shape[1:].as_list()) for name, t in features.items()}
        total = [tf.zeros(v.shape, tf.float32) for v in variables]
        sums = {name: tf.constant(0.0) for name in SUMS}
        for index in tf.range(accumulation_steps):
            grads, micro_sums = gradients({name: t[index] for name, t in micro.items()}, divide_by)
            total = [a + tf.cast(g, tf.float32) for a, g in zip(total, grads)]
            sums = {name: sums[name] + micro_sums[name] for name in SUMS}
        return total, sums

    def replica_step(features):
        divide_by = normalizers(features)
        if accumulation_steps == 1:
            grads, sums = gradients(features, divide_by)
        else:
            grads, sums = accumulated_gradients(features, divide_by)
        # Clipped per replica, then averaged over replicas (the optimizer sums them): as Google's
        # run_pretraining.py does on TPU (clip, then CrossShardOptimizer's mean).
        grads, _ = tf.clip_by_global_norm(grads, CLIP_NORM)
        optimizer.apply_gradients(zip([g / replicas for g in grads], variables))
        return sums

    @tf.function
    def train_loop(iterator, num_steps):
        arrays = [tf.TensorArray(tf.float32, size=num_steps) for _ in SUMS]
        for step in tf.range(num_steps):
            sums = strategy.run(replica_step, args=(next(iterator),))
            reduced = [strategy.reduce(tf.distribute.ReduceOp.SUM, sums[name], axis=None) for name in SUMS]
            arrays = [array.write(step, value) for array, value in zip(arrays, reduced)]
        return {name: array.stack() for name, array in zip(SUMS, arrays)}

    return train_loop


def build_eval_step(model, strategy, *, use_sentence_head: bool):
    """A ``tf.function(batch)`` returning the batch's SUMS over all replicas (no dropout)."""

    @tf.function
    def eval_step(batch):
        sums = strategy.run(lambda features: pretraining_sums(model(features, training=False), features,
                                                              use_sentence_head), args=(batch,))
        return {name: strategy.reduce(tf.distribute.ReduceOp.SUM, sums[name], axis=None) for name in SUMS}

    return eval_step


def metrics_from_sums(sums: dict, *, sentence_task: str) -> dict:
    """Means from summed values: mlm_loss, mlm_accuracy, and {nsp|sop}_loss / _accuracy when the
    data has a sentence task."""
    weight = max(sums["mlm_weight"], 1e-5)
    metrics = {"mlm_loss": sums["mlm_loss_sum"] / weight, "mlm_accuracy": sums["mlm_correct"] / weight}
    if sentence_task in ("nsp", "sop"):
        count = max(sums["sentence_count"], 1.0)
        metrics[f"{sentence_task}_loss"] = sums["sentence_loss_sum"] / count
        metrics[f"{sentence_task}_accuracy"] = sums["sentence_correct"] / count
    return metrics


def scalars_metadata():
    # What tf.summary.scalar writes, without needing the tensorboard package (tensorflow-cpu does
    # not install it): a float32 scalar tagged for TensorBoard's scalars plugin.
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
