"""``wwm train`` and ``wwm run --then_train``: the flags, and the calls ``pipelines.cli`` makes.

TensorFlow is imported only when training starts, so adding these flags to a parser costs nothing.

    wwm train --manifest OUT/manifest.json --model_dir DIR [--model_config base|...|bert_config.json]
    wwm run ... --output OUT --then_train --model_dir DIR [trainer flags]
"""
import argparse
import dataclasses
import os

from wwm_trainer.settings import MIXED_PRECISION, OPTIMIZERS, TrainSettings

MODEL_CONFIGS = ("base", "large", "rbt3", "rbtl3", "tiny")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainSettings) if f.default is not dataclasses.MISSING}


def add_train_flags(parser: argparse.ArgumentParser, *, manifest_flag: bool = True) -> None:
    """The trainer's flags. ``manifest_flag=False`` for ``wwm run``, whose output is the manifest;
    there ``--model_dir`` is optional (needed only with ``--then_train``)."""
    add = parser.add_argument
    if manifest_flag:
        add("--manifest", required=True, help="manifest.json of a finished `wwm run` (or its folder), local or gs://")
    add("--model_dir", required=manifest_flag,
        help="checkpoints, TensorBoard logs and export/ (local or gs://); a run resumes from its latest checkpoint")
    add("--model_config", default=None,
        help=f"{'|'.join(MODEL_CONFIGS)} or a Google bert_config.json; default: the bert_config.json beside "
        "--init_checkpoint, else base. Built-in sizes take the data's vocabulary size")
    add("--init_checkpoint", help="TensorFlow checkpoint in Google's BERT layout (a released BERT-wwm, "
        "RoBERTa-wwm-ext, ... or an export of this trainer) to continue pretraining from")
    add("--tpu", help="Cloud TPU name, or 'local' on a TPU VM; without it: all GPUs, else the CPU")
    add("--train_batch_size", type=int, default=_DEFAULTS["train_batch_size"], help="global batch, all replicas")
    add("--learning_rate", type=float, default=_DEFAULTS["learning_rate"], help="peak learning rate")
    add("--num_train_steps", type=int, default=_DEFAULTS["num_train_steps"],
        help="total optimizer steps, counting those of earlier runs in --model_dir")
    add("--num_warmup_steps", type=int, default=None,
        help="linear warmup of the learning rate; default 10,000 (Google's), or a tenth of a shorter run")
    add("--optimizer", choices=OPTIMIZERS, default=_DEFAULTS["optimizer"],
        help="lamb: large-batch pretraining (BERT-wwm-ext, RoBERTa-wwm-ext); adamw: Google's original")
    add("--gradient_accumulation_steps", type=int, default=_DEFAULTS["gradient_accumulation_steps"],
        help="split each replica's batch into this many micro-batches (less memory, same update)")
    add("--save_checkpoints_steps", type=int, default=_DEFAULTS["save_checkpoints_steps"])
    add("--steps_per_loop", type=int, default=_DEFAULTS["steps_per_loop"],
        help="steps per device call; metrics are logged once per loop")
    add("--max_checkpoints_to_keep", type=int, default=_DEFAULTS["max_checkpoints_to_keep"])
    add("--mixed_precision", choices=MIXED_PRECISION, default=_DEFAULTS["mixed_precision"],
        help="auto: bfloat16 compute on TPUs and Ampere+ GPUs, float32 on CPUs")
    add("--seed", type=int, default=_DEFAULTS["seed"], help="initialization, dropout and data order")


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wwm train", description="Pretrain (or continue pretraining) BERT-wwm / RoBERTa-wwm-ext style "
        "models on the output of `wwm run`.")
    add_train_flags(parser)
    return parser


def settings_from_args(args, *, manifest: str | None = None) -> TrainSettings:
    """TrainSettings from parsed flags; ``manifest`` overrides ``args.manifest`` (``--then_train``)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings) if hasattr(args, f.name)}
    values["manifest"] = manifest or values.get("manifest")
    return TrainSettings(**values)  # checks every value, --model_dir given included


def train_from_args(args, *, manifest: str | None = None) -> dict:
    """Trains as the parsed flags say; returns the run's summary (see ``train_main``)."""
    settings = settings_from_args(args, manifest=manifest)
    from wwm_trainer.train import train  # TensorFlow from here on

    summary = train(settings)
    _print_summary(summary)
    return summary


def train_main(argv) -> dict:
    """``wwm train ARGV``. Returns a summary dict: start_step, final_step, first_steps and
    last_steps (per-step mlm_loss, mlm_accuracy, nsp_loss/nsp_accuracy with NSP data),
    steps_per_second and examples_per_second (first loop's tracing included),
    steady_steps_per_second (without it), checkpoints, restored_from, init_checkpoint (what was
    loaded), export_dir. Raises TrainerUsageError (a pipelines UsageError) for one-line errors."""
    return train_from_args(train_parser().parse_args(argv))


# ---- wwm run --then_train ----

def add_then_train_flags(parser: argparse.ArgumentParser) -> None:
    """``--then_train`` and the trainer's flags (without --manifest: the run's output is it)."""
    group = parser.add_argument_group("training on the output (--then_train)")
    group.add_argument("--then_train", action="store_true",
                       help="when the run has finished, train on its output (needs --model_dir)")
    add_train_flags(group, manifest_flag=False)


def check_then_train(args) -> None:
    """Before the pipeline runs: the training flags are usable, so a mistake fails in a second,
    not after hours of data generation."""
    if args.then_train:
        settings_from_args(args, manifest="-")


def then_train(args, output: str):
    """After ``wwm run`` wrote ``output``: trains on ``output/manifest.json`` when --then_train was
    given (returns the summary), else returns None."""
    if not args.then_train:
        return None
    return train_from_args(args, manifest=os.path.join(output, "manifest.json"))


def _print_summary(summary: dict) -> None:
    first, last = summary["first_steps"], summary["last_steps"]
    if first and last:
        print(f"trained steps {summary['start_step']} -> {summary['final_step']}: mlm_loss "
              f"{first[0]['mlm_loss']:.4f} (step {first[0]['step']}) -> {last[-1]['mlm_loss']:.4f} "
              f"(step {last[-1]['step']}), {summary['steps_per_second']:.2f} steps/s"
              + (f" ({summary['steady_steps_per_second']:.2f} after the first loop)"
                 if summary["steady_steps_per_second"] else ""))
    print(f"export: {summary['export_dir']}")
