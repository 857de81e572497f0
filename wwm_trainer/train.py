"""The training run: its plan, strategy, model, phases, checkpoints, evaluation and export.

A run has one or more phases (HFL's BERT-wwm: 128 tokens, then 512). Each phase has its own data,
steps, batch, warmup and decay, and its own optimizer: phase 2 starts from phase 1's weights with
the optimizer's moments reset, as Google's and HFL's two-phase runs do (HFL issue #106: the
schedule warms up again). Checkpoints live in ``model_dir/phase{k}``; a run started again resumes
in the phase it was in, at that phase's latest checkpoint.

A custom loop rather than ``model.fit``: several steps run inside one ``tf.function`` call
(``--steps_per_loop``, what keeps a TPU busy), gradients may be accumulated over micro-batches,
and the sentence-level loss (NSP or SOP) is added only when the data has one.
"""
import collections
import dataclasses
import datetime
import json
import logging
import os
import time

import tensorflow as tf

from wwm_trainer import checkpoint_io, hf_io
from wwm_trainer import strategy as strategies
from wwm_trainer.config import BertConfig, read_bert_config, resolve_model_config, write_bert_config
from wwm_trainer.data import make_dataset, read_phases, split_eval_share
from wwm_trainer.errors import TrainerUsageError
from wwm_trainer.evaluation import Evaluator, eval_phases, read_results
from wwm_trainer.model import BertPretrainer
from wwm_trainer.optimization import WarmupLinearDecay, create_optimizer
from wwm_trainer.presets import SOURCE_FLAG, choose_model, describe_plan, find_recipe, plan_phases
from wwm_trainer.settings import TrainSettings
from wwm_trainer.steps import SUMS, build_train_loop, metrics_from_sums, scalars_metadata

log = logging.getLogger("wwm.train")
KEPT_STEPS = 10  # per-step records kept for the summary: the first and the last this many
EXPORT_FOLDER = "export"  # Google's layout
HF_EXPORT_FOLDER = "export_hf"  # Hugging Face's
CONFIG_FILE = "bert_config.json"
PLAN_FILE = "train_plan.json"
LAMB_SMALL_BATCH = 1024


def phase_dir(model_dir: str, number: int) -> str:
    return os.path.join(model_dir, f"phase{number}")


def config_beside(init_checkpoint: str):
    """The model config that comes with a checkpoint: Google's bert_config.json beside it, or a
    Hugging Face folder's (or hub repository's) config.json."""
    if hf_io.is_hf_source(init_checkpoint):
        return hf_io.config_file(init_checkpoint)
    folder = init_checkpoint if tf.io.gfile.isdir(init_checkpoint) else os.path.dirname(init_checkpoint)
    candidate = os.path.join(folder, CONFIG_FILE)
    return candidate if tf.io.gfile.exists(candidate) else None


def check_model_dir(model_dir: str, config: BertConfig, phases: int) -> None:
    """A model_dir holds one model: resuming it with another config would fail deep in the restore."""
    path = os.path.join(model_dir, CONFIG_FILE)
    started = any(tf.train.latest_checkpoint(phase_dir(model_dir, k)) for k in range(1, phases + 1))
    if tf.io.gfile.exists(path) and started and read_bert_config(path) != config:
        raise TrainerUsageError(f"--model_dir {model_dir} holds checkpoints of another model config ({path}); "
                                "use a new --model_dir, or the same --model_config and data")
    tf.io.gfile.makedirs(model_dir)
    write_bert_config(config, path)


def check_batch(batch: int, replicas: int, accumulation: int, phase: int) -> int:
    """The batch of one replica's one forward pass must be whole."""
    if batch % (replicas * accumulation):
        raise TrainerUsageError(f"phase {phase}: batch {batch} is not a multiple of {replicas} replicas x "
                                f"{accumulation} accumulation steps")
    return batch // replicas


def step_records(first_step: int, sums: dict, sentence_task: str) -> list:
    """Host-side per-step metrics from the vectors of one loop."""
    values = {name: sums[name].numpy() for name in SUMS}
    return [{"step": first_step + offset + 1,
             **metrics_from_sums({name: float(values[name][offset]) for name in SUMS}, sentence_task=sentence_task)}
            for offset in range(len(values["mlm_weight"]))]


def write_summaries(writer, records: list, schedule, offset: int) -> None:
    """TensorBoard scalars of every step (model_dir/train), at the run's global step."""
    metadata = scalars_metadata()
    with writer.as_default():
        for record in records:
            values = {name: value for name, value in record.items() if name != "step"}
            values["learning_rate"] = schedule(record["step"] - 1)
            for name, value in values.items():
                tf.summary.write(name, tf.cast(value, tf.float32), step=offset + record["step"], metadata=metadata)
        writer.flush()


def log_loop(records: list, *, phase: int, total_steps: int, learning_rate: float, seconds: float, batch_size: int):
    """One line per loop: the step, the loop's mean metrics, and its rate with the phase's ETA at
    that rate (the first loop's includes tracing, so its ETA is high)."""
    averages = {name: sum(r[name] for r in records) / len(records) for name in records[-1] if name != "step"}
    steps_per_second = len(records) / seconds if seconds > 0 else float("inf")
    remaining = (total_steps - records[-1]["step"]) / steps_per_second
    log.info("phase %d step %d/%d  %s  lr %.3g  steps/s %.2f  examples/s %.1f  ETA %s", phase, records[-1]["step"],
             total_steps, "  ".join(f"{name} {value:.4f}" for name, value in averages.items()), learning_rate,
             steps_per_second, steps_per_second * batch_size, str(datetime.timedelta(seconds=round(remaining))))


@dataclasses.dataclass
class Run:
    """What every phase shares."""
    settings: TrainSettings
    optimizer_name: str  # lamb | adamw, the same in every phase (each phase gets a new one)
    strategy: object
    model: BertPretrainer
    train_writer: object
    eval_writer: object
    eval_results: list


def train(settings: TrainSettings) -> dict:
    data = read_phases(settings.manifest, settings.then, verify=settings.verify_shards)
    recipe, recipe_origin = find_recipe(settings.recipe, data[0].recipe)
    chosen = choose_model(model_config=settings.model_config, init_checkpoint=settings.init_checkpoint,
                          optimizer=settings.optimizer, recipe=recipe, config_beside_checkpoint=config_beside)
    config = resolve_model_config(chosen["model_config"].value, vocab_size=data[0].vocab_size,
                                  max_seq_length=max(phase.max_seq_length for phase in data))
    plans = plan_phases(data_phases=[(phase.path, phase.max_seq_length) for phase in data],
                        flags=settings.per_phase_flags(), recipe=recipe, optimizer=chosen["optimizer"].value,
                        hidden_size=config.hidden_size)
    for plan, phase in zip(plans, data):
        if phase.masking == "static" and plan.masked_lm_prob.source == SOURCE_FLAG:
            raise TrainerUsageError(f"--masking_rate: phase {plan.number}'s data ({phase.path}) has static masks, "
                                    "fixed when it was made; a masking rate applies to dynamic data (wwm run "
                                    "--masking dynamic)")
        if phase.packed:
            log.info("phase %d: its instances are packed across documents; this trainer attends across them and "
                     "does not use document_starts", plan.number)
    held_out = [None] * len(data)
    if settings.eval_share:
        data, held_out = map(list, zip(*(split_eval_share(phase, settings.eval_share) for phase in data)))
    elif settings.eval_manifest:
        held_out = eval_phases(settings.eval_manifest, len(data), verify=settings.verify_shards)

    strategy = strategies.pick_strategy(settings.tpu)
    replica_batches = [check_batch(plan.train_batch_size.value, strategy.num_replicas_in_sync,
                                   settings.gradient_accumulation_steps, plan.number) for plan in plans]
    policy = strategies.dtype_policy(settings.mixed_precision, strategy)
    plan_lines = describe_plan(recipe=recipe, recipe_origin=recipe_origin, chosen=chosen, phases=plans)
    log.info("settings in force (source in brackets):\n  %s", "\n  ".join(plan_lines))
    if chosen["optimizer"].value == "lamb" and any(p.train_batch_size.value < LAMB_SMALL_BATCH for p in plans):
        log.info("note: LAMB is made for large batches (HFL used it at 2,560, AdamW at 384-512); at this batch "
                 "AdamW (--optimizer adamw) is the usual choice")
    log.info("model: %d layers x %d, vocabulary %d; %s, %s", config.num_hidden_layers, config.hidden_size,
             config.vocab_size, strategies.describe(strategy), policy)
    check_model_dir(settings.model_dir, config, len(plans))
    _write_plan(settings.model_dir, recipe, chosen, plans)

    with strategy.scope():
        model = BertPretrainer(config, seed=settings.seed, dtype=policy)
        model.build_all()
    started = [k for k in range(1, len(plans) + 1) if tf.train.latest_checkpoint(phase_dir(settings.model_dir, k))]
    resume_phase = max(started) if started else 1
    offsets = [sum(p.num_train_steps.value for p in plans[:k]) for k in range(len(plans))]
    summary = {"manifest": data[0].path, "model_dir": settings.model_dir, "strategy": strategies.describe(strategy),
               "dtype_policy": policy, "recipe": recipe.name if recipe else None, "plan": plan_lines,
               "settings": {name: dataclasses.asdict(setting) for name, setting in chosen.items()},
               "init_checkpoint": None, "phases": []}
    if not started and chosen["init_checkpoint"].value:
        report = checkpoint_io.load_init_checkpoint(model, chosen["init_checkpoint"].value)
        log.info(report.summary())
        summary["init_checkpoint"] = dataclasses.asdict(report)
    elif started and settings.init_checkpoint:
        log.info("--init_checkpoint ignored: %s already holds this run's checkpoints", settings.model_dir)
    latest = tf.train.latest_checkpoint(phase_dir(settings.model_dir, resume_phase))
    run = Run(settings=settings, optimizer_name=chosen["optimizer"].value, strategy=strategy, model=model,
              train_writer=tf.summary.create_file_writer(os.path.join(settings.model_dir, "train")),
              eval_writer=tf.summary.create_file_writer(os.path.join(settings.model_dir, "eval")),
              eval_results=read_results(settings.model_dir, up_to_global_step=offsets[resume_phase - 1] + (
                  int(latest.rsplit("-", 1)[1]) if latest else 0)))
    # Phases before the latest one with a checkpoint are done; that one resumes from its checkpoint
    # (its own weights and optimizer), and each later one starts from the weights in memory.
    for plan, phase_data, held, replica_batch, offset in zip(plans, data, held_out, replica_batches, offsets):
        if plan.number < resume_phase:
            continue
        summary["phases"].append(run_phase(run, plan, phase_data, held, replica_batch=replica_batch, offset=offset))
    run.train_writer.close()
    run.eval_writer.close()

    arrays = checkpoint_io.model_arrays(model)
    summary["export_dir"] = export_google(arrays, settings.model_dir, config, data[-1].vocab_path)  # its own name
    summary["hf_export_dir"] = hf_io.export_hf_folder(arrays, config, data[-1].vocab_path,
                                                      os.path.join(settings.model_dir, HF_EXPORT_FOLDER))
    summary["eval_results"] = run.eval_results
    final = summary["phases"][-1] if summary["phases"] else None
    log.info("exported %s to %s (Google's layout) and %s (Hugging Face's)",
             f"phase {final['phase']} step {final['final_step']}" if final else "the model",
             summary["export_dir"], summary["hf_export_dir"])
    return summary


def _write_plan(model_dir: str, recipe, chosen: dict, plans: list) -> None:
    """model_dir/train_plan.json: the settings in force and where each came from, for the record."""
    values = {"recipe": recipe.name if recipe else None,
              **{name: dataclasses.asdict(setting) for name, setting in chosen.items()},
              "phases": [dataclasses.asdict(plan) for plan in plans]}
    with tf.io.gfile.GFile(os.path.join(model_dir, PLAN_FILE), "w") as file:
        file.write(json.dumps(values, indent=2) + "\n")


def export_google(arrays: dict, model_dir: str, config: BertConfig, vocab_path: str) -> str:
    """model_dir/export: bert_model.ckpt in Google's layout, bert_config.json, the run's vocab.txt."""
    export_dir = os.path.join(model_dir, EXPORT_FOLDER)
    checkpoint_io.export_google_checkpoint(arrays, export_dir)
    write_bert_config(config, os.path.join(export_dir, CONFIG_FILE))
    tf.io.gfile.copy(vocab_path, os.path.join(export_dir, os.path.basename(vocab_path)), overwrite=True)
    return export_dir


def _next_stop(step: int, *, total: int, settings: TrainSettings, eval_every) -> int:
    """The step the next loop ends at: a loop never runs past a checkpoint, an evaluation or the end."""
    stops = [step + settings.steps_per_loop, total,
             (step // settings.save_checkpoints_steps + 1) * settings.save_checkpoints_steps]
    if eval_every:
        stops.append((step // eval_every + 1) * eval_every)
    return min(stops)


def run_phase(run: Run, plan, data, held_out, *, replica_batch: int, offset: int) -> dict:
    """One phase from its latest checkpoint (or step 0) to its num_train_steps; returns what the
    summary reports of it."""
    settings, strategy, model = run.settings, run.strategy, run.model
    total = plan.num_train_steps.value
    use_sentence_head = data.trains_sentence_head
    schedule = WarmupLinearDecay(plan.learning_rate.value, total, plan.num_warmup_steps.value)
    with strategy.scope():
        sentence_only = {id(v) for v in model.nsp_variables()}
        # Without sentence labels the pooler and the NSP/SOP head get no gradient: left out of the update.
        variables = [v for v in model.trainable_variables if use_sentence_head or id(v) not in sentence_only]
        optimizer = create_optimizer(run.optimizer_name, schedule)
        optimizer.build(variables)  # now, so a restore finds every slot variable to fill
        # The weights are tracked by their Google names: a Keras 3 model's own object graph leaves
        # out nested layers' weights (they got saved only through the optimizer's references).
        checkpoint = tf.train.Checkpoint(model=checkpoint_io.google_variables(model), optimizer=optimizer)
    folder = phase_dir(settings.model_dir, plan.number)
    manager = tf.train.CheckpointManager(checkpoint, folder, max_to_keep=settings.max_checkpoints_to_keep,
                                         checkpoint_name="ckpt")
    result = {"phase": plan.number, "manifest": data.path, "sentence_task": data.sentence_task,
              "masking": data.masking, "restored_from": None, "checkpoints": [], "first_steps": [],
              "last_steps": [], "steps_per_second": None, "examples_per_second": None,
              "steady_steps_per_second": None}
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        result["restored_from"] = manager.latest_checkpoint
        log.info("phase %d: resuming from %s", plan.number, manager.latest_checkpoint)
    step = start_step = int(optimizer.iterations.numpy())
    result.update(start_step=start_step, final_step=step)
    # Dynamic data is masked at the phase's rate (a recipe's schedule, --masking_rate), else the data's.
    masking_rate = plan.masked_lm_prob.value if data.masking == "dynamic" else None
    evaluate = None
    if held_out is not None:
        evaluate = Evaluator(model=model, strategy=strategy, data=held_out,
                             batch_size=settings.eval_batch_size or plan.train_batch_size.value,
                             max_batches=settings.eval_max_batches, model_dir=settings.model_dir,
                             writer=run.eval_writer, results=run.eval_results, masked_lm_prob=masking_rate)
    eval_every = (settings.eval_every or settings.save_checkpoints_steps) if evaluate else None
    if step >= total:
        log.info("phase %d: already at step %d of %d: nothing to train", plan.number, step, total)
        return result
    log.info("phase %d: %s data (%s masking, sentence task %s), steps %d -> %d, batch %d, optimizer %s "
             "(new for this phase)", plan.number, data.path, data.masking, data.sentence_task, step, total,
             plan.train_batch_size.value, run.optimizer_name)
    # Seeded by the start step too: a resumed run reads a fresh shuffle, not the first run's
    # opening batches again. (Model, optimizer and step resume exactly; the data order, dynamic
    # masks and dropout masks do not.)
    seed = settings.seed + 7919 * plan.number + start_step
    dataset = strategy.distribute_datasets_from_function(
        lambda context: make_dataset(data, batch_size=replica_batch, seed=seed, input_context=context,
                                     masked_lm_prob=masking_rate))
    iterator = iter(dataset)
    train_loop = build_train_loop(model, optimizer, strategy, variables=variables, use_sentence_head=use_sentence_head,
                                  accumulation_steps=settings.gradient_accumulation_steps)
    first, last = [], collections.deque(maxlen=KEPT_STEPS)
    started = time.perf_counter()
    first_loop = None  # (steps, seconds): it includes tracing (and on TPU, compiling)
    eval_seconds = 0.0
    while step < total:
        stop = _next_stop(step, total=total, settings=settings, eval_every=eval_every)
        loop_start = time.perf_counter()
        sums = train_loop(iterator, tf.constant(stop - step, tf.int32))
        records = step_records(step, sums, data.sentence_task)  # reading the values waits for the loop
        seconds = time.perf_counter() - loop_start
        first_loop = first_loop or (len(records), seconds)
        step = stop
        first.extend(records[: KEPT_STEPS - len(first)])
        last.extend(records)
        write_summaries(run.train_writer, records, schedule, offset)
        log_loop(records, phase=plan.number, total_steps=total, learning_rate=float(schedule(step - 1)),
                 seconds=seconds, batch_size=plan.train_batch_size.value)
        if step % settings.save_checkpoints_steps == 0 or step == total:
            result["checkpoints"].append(manager.save(checkpoint_number=step))
        if evaluate and (step % eval_every == 0 or step == total):
            eval_start = time.perf_counter()
            evaluate(phase=plan.number, step=step, global_step=offset + step)
            eval_seconds += time.perf_counter() - eval_start
    elapsed = time.perf_counter() - started - eval_seconds
    trained = step - start_step
    result.update(final_step=step, first_steps=first, last_steps=list(last), steps_per_second=trained / elapsed,
                  examples_per_second=trained * plan.train_batch_size.value / elapsed)
    if trained > first_loop[0]:  # the rate to plan a long run by
        result["steady_steps_per_second"] = (trained - first_loop[0]) / (elapsed - first_loop[1])
    if int(optimizer.iterations.numpy()) != step:
        raise RuntimeError(f"optimizer at step {int(optimizer.iterations.numpy())}, loop at {step}")
    return result
