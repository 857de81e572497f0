"""Held-out evaluation: MLM loss and accuracy, NSP/SOP loss and accuracy, on data no step trains on.

The held-out data is ``--eval_manifest`` (one phase's manifest, used by every phase; or a run's
"phases" manifest, phase k evaluating on its phase k) or the last ``--eval_share`` of each
phase's shards. Results go to the log, TensorBoard (``model_dir/eval``) and
``model_dir/eval_results.json``.
"""
import json
import logging
import os

import tensorflow as tf

from wwm_trainer.data import make_eval_dataset, read_phases
from wwm_trainer.errors import TrainerUsageError
from wwm_trainer.steps import SUMS, build_eval_step, metrics_from_sums, scalars_metadata

log = logging.getLogger("wwm.train")
RESULTS_FILE = "eval_results.json"
EVAL_SEED = 20240101  # dynamic eval data: the same masks at every evaluation


def eval_phases(eval_manifest: str, count: int, *, verify: str = "crc32c") -> list:
    """The held-out data of each of ``count`` training phases (its shards checked at ``verify``)."""
    phases = read_phases(eval_manifest, verify=verify)
    if len(phases) == 1:
        return phases * count
    if len(phases) != count:
        raise TrainerUsageError(f"--eval_manifest {eval_manifest} has {len(phases)} phases, training has {count}")
    return phases


class Evaluator:
    """Evaluates one phase's model on its held-out data; each call appends to the results file."""

    def __init__(self, *, model, strategy, data, batch_size: int, max_batches, model_dir: str, writer,
                 results: list, masked_lm_prob: float = None):
        self.data, self.strategy, self.model_dir, self.writer, self.results = data, strategy, model_dir, writer, results
        replicas = strategy.num_replicas_in_sync
        known = data.num_instances
        if known is not None:
            batch_size = min(batch_size, known - known % replicas)
            if batch_size < replicas:
                raise TrainerUsageError(f"the held-out data {data.path} has {known} instances, fewer than one per "
                                        f"replica ({replicas})")
        batch_size -= batch_size % replicas
        self.batch_size = batch_size
        self.dataset = strategy.distribute_datasets_from_function(
            lambda context: make_eval_dataset(data, batch_size=batch_size // replicas, seed=EVAL_SEED,
                                              max_batches=max_batches, input_context=context,
                                              masked_lm_prob=masked_lm_prob))
        self.step = build_eval_step(model, strategy, use_sentence_head=data.trains_sentence_head)

    def __call__(self, *, phase: int, step: int, global_step: int) -> dict:
        totals = {name: 0.0 for name in SUMS}
        batches = 0
        for batch in self.dataset:
            sums = self.step(batch)
            for name in SUMS:
                totals[name] += float(sums[name])
            batches += 1
        if not batches:
            raise TrainerUsageError(f"the held-out data {self.data.path} holds less than one batch of "
                                    f"{self.batch_size}: give a smaller --eval_batch_size")
        metrics = metrics_from_sums(totals, sentence_task=self.data.sentence_task)
        result = {"phase": phase, "step": step, "global_step": global_step, "manifest": self.data.path,
                  "examples": batches * self.batch_size, **metrics}
        self.results.append(result)
        write_results(self.model_dir, self.results)
        _write_scalars(self.writer, metrics, global_step)
        log.info("eval phase %d step %d (%d held-out examples): %s", phase, step, result["examples"],
                 "  ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
        return result


def _write_scalars(writer, metrics: dict, step: int) -> None:

    metadata = scalars_metadata()
    with writer.as_default():
        for name, value in metrics.items():
            tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=metadata)
    writer.flush()


def read_results(model_dir: str, *, up_to_global_step: int) -> list:
    """Earlier evaluations of this model_dir, without those past the step the run resumes from
    (they belong to steps that will be trained again)."""
    path = os.path.join(model_dir, RESULTS_FILE)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path, "r") as file:
        earlier = json.load(file).get("evaluations", [])
    return [result for result in earlier if result["global_step"] <= up_to_global_step]


def write_results(model_dir: str, results: list) -> None:
    path = os.path.join(model_dir, RESULTS_FILE)
    with tf.io.gfile.GFile(path, "w") as file:
        file.write(json.dumps({"evaluations": results, "final": results[-1] if results else None}, indent=2) + "\n")
