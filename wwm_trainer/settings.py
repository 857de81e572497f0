"""What a training run is asked to do (the ``wwm train`` flags), checked before anything starts.

Settings a recipe can give (model, init, optimizer, and per phase steps, batch, learning rate and
warmup) are None here when the flag was not given: ``wwm_trainer.presets`` fills them in and says
where each value came from. The per-phase ones are tuples: one value for every phase, or one per
phase (``--num_train_steps 100000,100000``).
"""
import dataclasses

from wwm_trainer.errors import TrainerUsageError
from wwm_trainer.integrity import VERIFY_LEVELS
from wwm_trainer.presets import OPTIMIZERS

MIXED_PRECISION = ("auto", "bf16", "fp32")
PER_PHASE = ("num_train_steps", "train_batch_size", "learning_rate", "num_warmup_steps", "masking_rate")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    manifest: str | None  # None only until `wwm run --then_train` knows its output (``for_output``)
    model_dir: str
    then: tuple = ()  # further phases' manifests, in order
    recipe: str | None = None
    # base | large | rbt3 | rbtl3 | tiny | a bert_config.json / config.json; None: the recipe's,
    # else the config beside --init_checkpoint, else base.
    model_config: str | None = None
    init_checkpoint: str | None = None  # a Google checkpoint, a Hugging Face folder, a hub id, or "none"
    optimizer: str | None = None
    num_train_steps: tuple | None = None
    train_batch_size: tuple | None = None
    learning_rate: tuple | None = None
    num_warmup_steps: tuple | None = None
    masking_rate: tuple | None = None  # dynamic data: the share of tokens masked in each phase (30% then 15%)
    tpu: str | None = None
    gradient_accumulation_steps: int = 1
    save_checkpoints_steps: int = 1000
    steps_per_loop: int = 100
    max_checkpoints_to_keep: int = 5
    mixed_precision: str = "auto"
    seed: int = 12345
    eval_manifest: str | None = None
    eval_share: float = 0.0
    eval_every: int | None = None  # None: at every checkpoint
    eval_batch_size: int | None = None  # None: the phase's batch (at most the eval set's size)
    eval_max_batches: int | None = None  # None: the whole eval set
    verify_shards: str = "crc32c"  # crc32c | size | none: the shards against their manifest, before training

    def __post_init__(self):
        problems = []
        for name in ("gradient_accumulation_steps", "save_checkpoints_steps", "steps_per_loop",
                     "max_checkpoints_to_keep"):
            if getattr(self, name) < 1:
                problems.append(f"--{name} must be at least 1")
        for name in ("eval_every", "eval_batch_size", "eval_max_batches"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"--{name} must be at least 1")
        for name in ("num_train_steps", "num_warmup_steps"):
            if any(value < 0 for value in getattr(self, name) or ()):
                problems.append(f"--{name} must not be negative")
        if any(value < 1 for value in self.train_batch_size or ()):
            problems.append("--train_batch_size must be at least 1")
        if any(not 0 < value < 1 for value in self.masking_rate or ()):
            problems.append("--masking_rate must be in (0, 1)")
        if any(value <= 0 for value in self.learning_rate or ()):
            problems.append("--learning_rate must be positive")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            problems.append(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.verify_shards not in VERIFY_LEVELS:
            problems.append(f"--verify_shards must be one of {', '.join(VERIFY_LEVELS)}")
        if self.mixed_precision not in MIXED_PRECISION:
            problems.append(f"--mixed_precision must be one of {', '.join(MIXED_PRECISION)}")
        if not 0 <= self.eval_share < 1:
            problems.append("--eval_share must be at least 0 and below 1")
        if self.eval_share and self.eval_manifest:
            problems.append("give --eval_manifest or --eval_share, not both")
        if self.gradient_accumulation_steps >= 1:
            for batch in self.train_batch_size or ():
                if batch % self.gradient_accumulation_steps:
                    problems.append(f"--train_batch_size {batch} is not a multiple of --gradient_accumulation_steps "
                                    f"{self.gradient_accumulation_steps}")
        if not self.model_dir:
            problems.append("--model_dir is required")
        if problems:
            raise TrainerUsageError("; ".join(problems))

    def for_output(self, manifest: str) -> "TrainSettings":
        """These settings for the data at ``manifest`` (``wwm run --then_train``: the run's output)."""
        return dataclasses.replace(self, manifest=manifest)

    @property
    def evaluates(self) -> bool:
        return bool(self.eval_manifest or self.eval_share)

    def per_phase_flags(self) -> dict:
        return {name: getattr(self, name) for name in PER_PHASE}
