"""``wwm train`` and ``wwm run --then_train``: the flags, and the calls the `wwm` command makes.

TensorFlow is imported only when training is about to start (``wwm run --then_train``: when the
flags are checked, before the pipeline), so adding these flags to a parser costs nothing.

    wwm train --manifest OUT/manifest.json --model_dir DIR [--recipe NAME] [flags that override it]
    wwm train --manifest OUT/seq128/manifest.json --then OUT/seq512/manifest.json --model_dir DIR
    wwm run ... --output OUT --then_train --model_dir DIR [trainer flags]
"""
import argparse
import dataclasses
import importlib
import os

from wwm_core.helptext import HelpFormatter, Parser, finite_float
from wwm_core.manifest import MANIFEST
from wwm_core.recipes import RECIPES
from wwm_trainer.errors import TrainerUsageError
from wwm_trainer.integrity import VERIFY_LEVELS
from wwm_trainer.presets import NO_RECIPE, OPTIMIZERS
from wwm_trainer.settings import MIXED_PRECISION, TrainSettings

INSTALL_TRAINER = "pip install 'wwm-data[tf]'"
# What training imports at its start or end (safetensors: the Hugging Face export), all in the [tf] extra.
TRAINING_MODULES = ("tensorflow", "keras", "safetensors")

MODEL_CONFIGS = ("base", "large", "rbt3", "rbtl3", "tiny")
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainSettings) if f.default is not dataclasses.MISSING}


def _per_phase(kind):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(","))
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected a number or a comma-separated list, one per phase: {text!r}") \
                from error
    parse.__name__ = kind.__name__
    return parse


def add_train_flags(parser, *, manifest_flag: bool = True) -> None:
    """The trainer's flags. ``manifest_flag=False`` for ``wwm run``, whose output is the data (and
    whose own --recipe is recorded in its manifest); there ``--model_dir`` is optional (needed
    only with ``--then_train``)."""
    add = parser.add_argument
    if manifest_flag:
        add("--manifest", required=True,
            help="manifest.json of a finished `wwm run` (or its folder), local or gs://: one phase's "
            "(OUT/seq128/manifest.json) or a several-length run's (OUT/manifest.json: every phase in order)")
        add("--then", action="append", default=[], metavar="MANIFEST",
            help="a further phase's manifest, trained after the one before it from its weights "
            "(e.g. --then OUT/seq512/manifest.json); repeatable")
        add("--recipe", choices=list(RECIPES) + [NO_RECIPE],
            help="HFL's settings for a released model (wwm recipe show NAME): model size, init checkpoint, "
            "optimizer, and per phase steps, batch, learning rate and warmup; default: the recipe recorded in "
            "the manifest; none: only flags and defaults. Flags given override it")
    add("--model_dir", required=manifest_flag,
        help="checkpoints (phase1/, phase2/), TensorBoard logs, eval_results.json, export/ (Google's layout) "
        "and export_hf/ (Hugging Face's); local or gs://. A run resumes in the phase it was in")
    add("--model_config", default=None,
        help=f"{'|'.join(MODEL_CONFIGS)} or a bert_config.json / Hugging Face config.json; default: the recipe's, "
        "else the config beside --init_checkpoint, else base. Built-in sizes take the data's vocabulary size")
    add("--init_checkpoint",
        help="weights to start from: a TensorFlow checkpoint in Google's BERT layout (a released BERT-wwm, "
        "RoBERTa-wwm-ext, ... or an export of this trainer), a Hugging Face BERT folder (model.safetensors or "
        "tf_model.h5), or a hub id such as hfl/chinese-roberta-wwm-ext (read through the Hugging Face cache; "
        "HF_HUB_OFFLINE=1 uses only the cache); 'none' for random weights. Weights the model has no place for "
        "(layers 3-11 of a base model under --model_config rbt3) are reported and left out")
    add("--tpu", help="Cloud TPU name, or 'local' on a TPU VM; without it: all GPUs, else the CPU")
    add("--optimizer", choices=OPTIMIZERS, default=None,
        help="adamw: Google's AdamWeightDecayOptimizer (HFL's RoBERTa-wwm-ext and -large, batch 384-512); lamb: "
        "large batches (HFL's BERT-wwm and BERT-wwm-ext, batch 2,560). Default: the recipe's, else adamw")
    add("--train_batch_size", type=_per_phase(int), default=None,
        help="global batch, all replicas; one value, or one per phase (2560,384). Default: the recipe's, else 32")
    add("--learning_rate", type=_per_phase(finite_float), default=None,
        help="peak learning rate, one or one per phase. Default: the recipe's, else adamw 1e-4 (Google's; 5e-5 "
        "for large), lamb 6e-3 x sqrt(batch/65536) (NVIDIA's recipe, square-root scaling)")
    add("--num_train_steps", type=_per_phase(int), default=None,
        help="optimizer steps of each phase (one value, or one per phase). Default: the recipe's, else 100,000")
    add("--num_warmup_steps", type=_per_phase(int), default=None,
        help="linear warmup of each phase's learning rate; default: the recipe's, else a tenth of the phase, at "
        "most 10,000 (Google's)")
    add("--masking_rate", type=_per_phase(finite_float), default=None,
        help="dynamic-masking data: the share of tokens masked in each phase, one value or one per phase (0.3,0.15: "
        "Chinese ModernBERT's schedule). Default: the recipe's phases', else the data's (its wwm run "
        "--masked_lm_prob); static data's masks are fixed when it is made")
    add("--gradient_accumulation_steps", type=int, default=_DEFAULTS["gradient_accumulation_steps"],
        help="split each replica's batch into this many micro-batches (less memory, same update)")
    add("--save_checkpoints_steps", type=int, default=_DEFAULTS["save_checkpoints_steps"],
        help="steps between checkpoints (each phase keeps its own)")
    add("--steps_per_loop", type=int, default=_DEFAULTS["steps_per_loop"],
        help="steps per device call; metrics are logged once per loop")
    add("--max_checkpoints_to_keep", type=int, default=_DEFAULTS["max_checkpoints_to_keep"],
        help="older checkpoints are deleted")
    add("--mixed_precision", choices=MIXED_PRECISION, default=_DEFAULTS["mixed_precision"],
        help="auto: bfloat16 compute on TPUs and Ampere+ GPUs, float32 on CPUs")
    add("--seed", type=int, default=_DEFAULTS["seed"], help="initialization, dropout, data order, dynamic masks")
    add("--eval_manifest", help="held-out data (another `wwm run` output): MLM and NSP/SOP loss and accuracy every "
        "--eval_every steps and at the end of each phase, in the log, TensorBoard (model_dir/eval) and "
        "model_dir/eval_results.json")
    add("--eval_share", type=finite_float, default=_DEFAULTS["eval_share"],
        help="instead of --eval_manifest: hold out this share of each phase's shards (whole shards, the last "
        "ones) and evaluate on them")
    add("--eval_every", type=int, default=None, help="steps between evaluations; default: --save_checkpoints_steps")
    add("--eval_batch_size", type=int, default=None, help="default: the phase's batch (at most the held-out size)")
    add("--eval_max_batches", type=int, default=None, help="evaluate on at most this many batches; default: all")
    add("--verify_shards", choices=VERIFY_LEVELS, default=_DEFAULTS["verify_shards"],
        help="before training, check every shard against the sizes and crc32c checksums its manifest records, and "
        "name the ones that differ (truncated, corrupted) in one line: crc32c reads local shards once (gs://: GCS's "
        "own checksums, from one listing); size only stats them; none skips the check")


def train_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="wwm train", formatter_class=HelpFormatter,
        description="Pretrain (or continue pretraining) BERT-wwm / RoBERTa-wwm-ext style models on the output of "
        "`wwm run`, one or more phases, with HFL's recipes as presets.")
    add_train_flags(parser)
    return parser


def settings_from_args(args) -> TrainSettings:
    """TrainSettings from parsed flags (``wwm run``'s have no --manifest: its output is the data)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings) if hasattr(args, f.name)}
    values["manifest"] = values.get("manifest")
    values["then"] = tuple(values.get("then") or ())
    return TrainSettings(**values)  # checks every value, --model_dir given included


def require_training_libraries() -> None:
    """TensorFlow (and what the trainer imports with it) can be imported, or a one-line error
    with the install command, before any other work."""
    for name in TRAINING_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise TrainerUsageError(f"training needs {name}, which cannot be imported here ({error}); install the "
                                    f"trainer's dependencies: {INSTALL_TRAINER}") from error


def train_settings(settings: TrainSettings) -> dict:
    """Trains as ``settings`` say; returns the run's summary (see ``train_main``)."""
    require_training_libraries()
    from wwm_trainer.train import train  # TensorFlow from here on

    summary = train(settings)
    _print_summary(summary)
    return summary


def train_main(argv) -> dict:
    """``wwm train ARGV``. Returns a summary dict: plan (the settings in force, with sources),
    phases (per phase: start_step, final_step, first_steps and last_steps with per-step mlm_loss,
    mlm_accuracy and nsp_/sop_ loss and accuracy, steps_per_second, steady_steps_per_second,
    checkpoints, restored_from), init_checkpoint (what was loaded), eval_results, export_dir,
    hf_export_dir. Raises TrainerUsageError (a UsageError) for one-line errors."""
    settings = settings_from_args(train_parser().parse_args(argv))
    return train_settings(settings)


# ---- wwm run --then_train ----

def add_then_train_flags(parser: argparse.ArgumentParser) -> None:
    """``--then_train`` and the trainer's flags (without --manifest: the run's output is it)."""
    group = parser.add_argument_group("training on the output (--then_train)")
    group.add_argument("--then_train", action="store_true",
                       help="when the run has finished, train on its output (needs --model_dir)")
    add_train_flags(group, manifest_flag=False)


def check_then_train(args, *, output_format: str) -> TrainSettings | None:
    """Before the pipeline runs: with --then_train, the checked training settings (the run's
    output becomes their manifest later, in ``then_train``), else None. A training mistake, or no
    TensorFlow, fails in a second, not after hours of data generation. ``args``: the trainer's
    flags as `wwm run` parsed them; ``output_format``: the run's (its configuration's)."""
    if not args.then_train:
        return None
    if output_format == "parquet":
        raise TrainerUsageError("--then_train trains on the TFRecord shards, and --output_format parquet writes none: "
                                "use --output_format tfrecord or both")
    settings = settings_from_args(args)
    require_training_libraries()
    return settings


def then_train(settings: TrainSettings | None, output_folder: str):
    """After ``wwm run`` wrote ``output_folder``: trains on its manifest.json (every phase the run
    made) with the settings ``check_then_train`` returned, and returns the summary; None when
    there are none (no --then_train)."""
    if settings is None:
        return None
    return train_settings(settings.for_output(os.path.join(output_folder, MANIFEST)))


def _print_summary(summary: dict) -> None:
    for phase in summary["phases"]:
        first, last = phase["first_steps"], phase["last_steps"]
        if first and last:
            print(f"phase {phase['phase']}: trained steps {phase['start_step']} -> {phase['final_step']}: mlm_loss "
                  f"{first[0]['mlm_loss']:.4f} (step {first[0]['step']}) -> {last[-1]['mlm_loss']:.4f} "
                  f"(step {last[-1]['step']}), {phase['steps_per_second']:.2f} steps/s"
                  + (f" ({phase['steady_steps_per_second']:.2f} after the first loop)"
                     if phase["steady_steps_per_second"] else ""))
    if summary["eval_results"]:
        final = summary["eval_results"][-1]
        print("eval: " + ", ".join(f"{k} {v:.4f}" for k, v in final.items() if isinstance(v, float)))
    print(f"export: {summary['export_dir']} (Google's layout), {summary['hf_export_dir']} (Hugging Face's)")
