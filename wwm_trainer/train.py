"""The training run: strategy, model, optimizer, checkpoints, the step loop, metrics and export.

A custom loop rather than ``model.fit``: several steps run inside one ``tf.function`` call
(``--steps_per_loop``, what keeps a TPU busy), gradients may be accumulated over micro-batches,
and the NSP loss is added only when the data has NSP labels.
"""
import collections
import dataclasses
import logging
import os
import time

import tensorflow as tf

from wwm_trainer import checkpoint_io
from wwm_trainer import strategy as strategies
from wwm_trainer.config import BertConfig, resolve_model_config, write_bert_config
from wwm_trainer.data import Manifest, make_dataset, read_manifest
from wwm_trainer.errors import TrainerUsageError
from wwm_trainer.model import BertPretrainer
from wwm_trainer.optimization import WarmupLinearDecay, create_optimizer
from wwm_trainer.settings import TrainSettings

log = logging.getLogger("wwm.train")
CLIP_NORM = 1.0  # Google's clip_by_global_norm
# Per step, summed over the global batch; rates and mean losses are formed on the host.
SUMS = ("mlm_loss_sum", "mlm_weight", "mlm_correct", "nsp_loss_sum", "nsp_correct", "nsp_count")
KEPT_STEPS = 10  # per-step records kept for the summary: the first and the last this many
EXPORT_FOLDER = "export"
CONFIG_FILE = "bert_config.json"


def pretraining_sums(outputs: dict, features: dict, use_nsp: bool) -> dict:
    """Weighted sums over one batch; padding predictions have weight 0."""
    labels, weights = features["masked_lm_ids"], features["masked_lm_weights"]
    logits = outputs["mlm_logits"]
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
    sums = {
        "mlm_loss_sum": tf.reduce_sum(xent * weights),
        "mlm_weight": tf.reduce_sum(weights),
        "mlm_correct": tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32) * weights),
        "nsp_loss_sum": tf.constant(0.0), "nsp_correct": tf.constant(0.0), "nsp_count": tf.constant(0.0),
    }
    if use_nsp:
        nsp_labels = tf.reshape(features["next_sentence_labels"], [-1])
        nsp_logits = outputs["nsp_logits"]
        nsp_xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=nsp_labels, logits=nsp_logits)
        nsp_predicted = tf.argmax(nsp_logits, axis=-1, output_type=tf.int32)
        sums.update(nsp_loss_sum=tf.reduce_sum(nsp_xent),
                    nsp_correct=tf.reduce_sum(tf.cast(tf.equal(nsp_predicted, nsp_labels), tf.float32)),
                    nsp_count=tf.cast(tf.size(nsp_labels), tf.float32))
    return sums


def normalizers(features: dict) -> dict:
    """What Google's loss divides by, for a whole (replica) batch: its number of real predictions
    and of examples. Micro-batches divide by the whole batch's, so accumulation gives exactly the
    gradient of the whole batch."""
    return {"mlm": tf.reduce_sum(features["masked_lm_weights"]) + 1e-5,
            "nsp": tf.cast(tf.shape(features["input_ids"])[0], tf.float32)}


def batch_loss(sums: dict, divide_by: dict) -> tf.Tensor:
    """Google's loss: MLM cross-entropy averaged over real predictions, plus mean NSP loss (0
    without NSP)."""
    return sums["mlm_loss_sum"] / divide_by["mlm"] + sums["nsp_loss_sum"] / divide_by["nsp"]


def build_train_loop(model, optimizer, strategy, *, variables: list, use_nsp: bool, accumulation_steps: int):
    """A ``tf.function(iterator, num_steps)`` running ``num_steps`` optimizer steps; returns each
    step's SUMS (summed over replicas) as vectors of length ``num_steps``."""
    replicas = strategy.num_replicas_in_sync

    def gradients(features, divide_by):
        with tf.GradientTape() as tape:
            sums = pretraining_sums(model(features, training=True), features, use_nsp)
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


def step_records(first_step: int, sums: dict, use_nsp: bool) -> list:
    """Host-side per-step metrics from the vectors of one loop."""
    values = {name: sums[name].numpy() for name in SUMS}
    records = []
    for offset in range(len(values["mlm_weight"])):
        at = {name: float(values[name][offset]) for name in SUMS}
        record = {"step": first_step + offset + 1,
                  "mlm_loss": at["mlm_loss_sum"] / max(at["mlm_weight"], 1e-5),
                  "mlm_accuracy": at["mlm_correct"] / max(at["mlm_weight"], 1e-5)}
        if use_nsp:
            record.update(nsp_loss=at["nsp_loss_sum"] / max(at["nsp_count"], 1.0),
                          nsp_accuracy=at["nsp_correct"] / max(at["nsp_count"], 1.0))
        records.append(record)
    return records


def _loop_average(records: list, name: str) -> float:
    return sum(r[name] for r in records) / len(records)


def log_loop(records: list, *, total_steps: int, learning_rate: float, examples_per_second: float) -> None:
    parts = [f"step {records[-1]['step']}/{total_steps}",
             f"mlm_loss {_loop_average(records, 'mlm_loss'):.4f}",
             f"mlm_accuracy {_loop_average(records, 'mlm_accuracy'):.4f}"]
    if "nsp_accuracy" in records[-1]:
        parts += [f"nsp_loss {_loop_average(records, 'nsp_loss'):.4f}",
                  f"nsp_accuracy {_loop_average(records, 'nsp_accuracy'):.4f}"]
    parts += [f"lr {learning_rate:.3g}", f"examples/s {examples_per_second:.1f}"]
    log.info("  ".join(parts))


def _scalars_metadata():
    # What tf.summary.scalar writes, without needing the tensorboard package (tensorflow-cpu does
    # not install it): a float32 scalar tagged for TensorBoard's scalars plugin.
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


def write_summaries(writer, records: list, schedule) -> None:
    """TensorBoard scalars of every step (model_dir/train)."""
    metadata = _scalars_metadata()
    with writer.as_default():
        for record in records:
            values = {name: value for name, value in record.items() if name != "step"}
            values["learning_rate"] = schedule(record["step"] - 1)
            for name, value in values.items():
                tf.summary.write(name, tf.cast(value, tf.float32), step=record["step"], metadata=metadata)
        writer.flush()


def default_model_config(settings: TrainSettings) -> str:
    """``--model_config`` left out: the checkpoint's own config when continuing from a release."""
    if settings.model_config:
        return settings.model_config
    if settings.init_checkpoint:
        folder = (settings.init_checkpoint if tf.io.gfile.isdir(settings.init_checkpoint)
                  else os.path.dirname(settings.init_checkpoint))
        candidate = os.path.join(folder, CONFIG_FILE)
        if tf.io.gfile.exists(candidate):
            log.info("model config: %s (beside --init_checkpoint)", candidate)
            return candidate
    return "base"


def check_model_dir(model_dir: str, config: BertConfig) -> None:
    """A model_dir holds one model: resuming it with another config would fail deep in the restore."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if tf.io.gfile.exists(path) and tf.train.latest_checkpoint(model_dir):
        from wwm_trainer.config import read_bert_config

        earlier = read_bert_config(path)
        if earlier != config:
            raise TrainerUsageError(f"--model_dir {model_dir} holds checkpoints of another model config ({path}); "
                                    "use a new --model_dir, or the same --model_config and data")
    tf.io.gfile.makedirs(model_dir)
    write_bert_config(config, path)


def check_batch(settings: TrainSettings, replicas: int) -> int:
    """The batch of one replica's one forward pass must be whole."""
    per_pass = replicas * settings.gradient_accumulation_steps
    if settings.train_batch_size % per_pass:
        raise TrainerUsageError(f"--train_batch_size {settings.train_batch_size} is not a multiple of {replicas} "
                                f"replicas x {settings.gradient_accumulation_steps} accumulation steps")
    return settings.train_batch_size // replicas


def export(model, model_dir: str, config: BertConfig, manifest: Manifest) -> str:
    """model_dir/export: bert_model.ckpt in Google's layout, bert_config.json, the run's vocab.txt."""
    export_dir = os.path.join(model_dir, EXPORT_FOLDER)
    checkpoint_io.export_google_checkpoint(model, export_dir)
    write_bert_config(config, os.path.join(export_dir, CONFIG_FILE))
    tf.io.gfile.copy(manifest.vocab_path, os.path.join(export_dir, "vocab.txt"), overwrite=True)
    return export_dir


def _next_stop(step: int, settings: TrainSettings) -> int:
    """The step the next loop ends at: a loop never runs past a checkpoint or the end."""
    next_checkpoint = (step // settings.save_checkpoints_steps + 1) * settings.save_checkpoints_steps
    return min(step + settings.steps_per_loop, next_checkpoint, settings.num_train_steps)


def train(settings: TrainSettings) -> dict:
    manifest = read_manifest(settings.manifest)
    strategy = strategies.pick_strategy(settings.tpu)
    replica_batch = check_batch(settings, strategy.num_replicas_in_sync)
    config = resolve_model_config(default_model_config(settings), vocab_size=manifest.vocab_size,
                                  max_seq_length=manifest.max_seq_length)
    check_model_dir(settings.model_dir, config)
    policy = strategies.dtype_policy(settings.mixed_precision, strategy)
    use_nsp = manifest.next_sentence_prediction
    log.info("training on %s: %s, %s, %d layers x %d, vocabulary %d, %s data (%d instances, NSP %s), batch %d",
             manifest.path, strategies.describe(strategy), policy, config.num_hidden_layers, config.hidden_size,
             config.vocab_size, manifest.recipe, manifest.num_instances, "on" if use_nsp else "off",
             settings.train_batch_size)

    schedule = WarmupLinearDecay(settings.learning_rate, settings.num_train_steps, settings.warmup_steps)
    with strategy.scope():
        model = BertPretrainer(config, seed=settings.seed, dtype=policy)
        model.build_all()
        nsp_only = {id(v) for v in model.nsp_variables()}
        # Without NSP labels the pooler and NSP head get no gradient: they are left out of the update.
        variables = [v for v in model.trainable_variables if use_nsp or id(v) not in nsp_only]
        optimizer = create_optimizer(settings.optimizer, schedule)
        optimizer.build(variables)  # now, so a restore finds every slot variable to fill
        # The weights are tracked by their Google names: a Keras 3 model's own object graph leaves
        # out nested layers' weights (they got saved only through the optimizer's references).
        checkpoint = tf.train.Checkpoint(model=checkpoint_io.google_variables(model), optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, settings.model_dir, max_to_keep=settings.max_checkpoints_to_keep,
                                         checkpoint_name="ckpt")
    summary = {"manifest": manifest.path, "model_dir": settings.model_dir, "strategy": strategies.describe(strategy),
               "dtype_policy": policy, "restored_from": None, "init_checkpoint": None}
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        summary["restored_from"] = manager.latest_checkpoint
        log.info("resuming from %s", manager.latest_checkpoint)
        if settings.init_checkpoint:
            log.info("--init_checkpoint ignored: %s already holds this run's checkpoints", settings.model_dir)
    elif settings.init_checkpoint:
        report = checkpoint_io.load_google_checkpoint(model, settings.init_checkpoint)
        log.info(report.summary())
        summary["init_checkpoint"] = dataclasses.asdict(report)
    start_step = int(optimizer.iterations.numpy())
    summary.update(start_step=start_step, **run_steps(
        settings, strategy=strategy, manifest=manifest, model=model, optimizer=optimizer, manager=manager,
        variables=variables, schedule=schedule, replica_batch=replica_batch, start_step=start_step))
    summary["export_dir"] = export(model, settings.model_dir, config, manifest)
    log.info("exported step %d to %s", summary["final_step"], summary["export_dir"])
    return summary


def run_steps(settings, *, strategy, manifest, model, optimizer, manager, variables, schedule, replica_batch,
              start_step) -> dict:
    """The loop from ``start_step`` to ``--num_train_steps``, a checkpoint every
    ``--save_checkpoints_steps``; returns what the summary reports of it."""
    use_nsp = manifest.next_sentence_prediction
    step = start_step
    first, last = [], collections.deque(maxlen=KEPT_STEPS)
    result = {"final_step": step, "first_steps": first, "last_steps": [], "steps_per_second": None,
              "examples_per_second": None, "steady_steps_per_second": None, "checkpoints": []}
    if step >= settings.num_train_steps:
        log.info("already at step %d of --num_train_steps %d: nothing to train", step, settings.num_train_steps)
        return result
    # Seeded by the start step too: a resumed run reads a fresh shuffle, not the first run's
    # opening batches again. (Model, optimizer and step resume exactly; the data order and the
    # dropout masks do not.)
    dataset = strategy.distribute_datasets_from_function(
        lambda context: make_dataset(manifest, batch_size=replica_batch, seed=settings.seed + start_step,
                                     input_context=context))
    iterator = iter(dataset)
    train_loop = build_train_loop(model, optimizer, strategy, variables=variables, use_nsp=use_nsp,
                                  accumulation_steps=settings.gradient_accumulation_steps)
    writer = tf.summary.create_file_writer(os.path.join(settings.model_dir, "train"))
    started = time.perf_counter()
    first_loop = None  # (steps, seconds): it includes tracing (and on TPU, compiling)
    while step < settings.num_train_steps:
        stop = _next_stop(step, settings)
        loop_start = time.perf_counter()
        sums = train_loop(iterator, tf.constant(stop - step, tf.int32))
        records = step_records(step, sums, use_nsp)  # reading the values waits for the loop
        seconds = time.perf_counter() - loop_start
        first_loop = first_loop or (len(records), seconds)
        step = stop
        first.extend(records[: KEPT_STEPS - len(first)])
        last.extend(records)
        write_summaries(writer, records, schedule)
        log_loop(records, total_steps=settings.num_train_steps, learning_rate=float(schedule(step - 1)),
                 examples_per_second=len(records) * settings.train_batch_size / seconds)
        if step % settings.save_checkpoints_steps == 0 or step == settings.num_train_steps:
            result["checkpoints"].append(manager.save(checkpoint_number=step))
    writer.close()
    elapsed = time.perf_counter() - started
    trained = step - start_step
    result.update(final_step=step, last_steps=list(last), steps_per_second=trained / elapsed,
                  examples_per_second=trained * settings.train_batch_size / elapsed)
    if trained > first_loop[0]:  # the rate to plan a long run by
        result["steady_steps_per_second"] = (trained - first_loop[0]) / (elapsed - first_loop[1])
    if int(optimizer.iterations.numpy()) != step:
        raise RuntimeError(f"optimizer at step {int(optimizer.iterations.numpy())}, loop at {step}")
    return result
