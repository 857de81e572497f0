"""What a training run is asked to do (the ``wwm train`` flags), checked before anything starts."""
import dataclasses

from wwm_trainer.errors import TrainerUsageError

OPTIMIZERS = ("lamb", "adamw")
MIXED_PRECISION = ("auto", "bf16", "fp32")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    manifest: str
    model_dir: str
    # base | large | rbt3 | rbtl3 | tiny | a bert_config.json; None: the bert_config.json beside
    # --init_checkpoint if there is one, else base.
    model_config: str | None = None
    init_checkpoint: str | None = None
    tpu: str | None = None
    train_batch_size: int = 32
    learning_rate: float = 1e-4
    num_train_steps: int = 100_000
    num_warmup_steps: int | None = None  # None: Google's 10,000, or a tenth of a shorter run
    optimizer: str = "lamb"
    gradient_accumulation_steps: int = 1
    save_checkpoints_steps: int = 1000
    steps_per_loop: int = 100
    max_checkpoints_to_keep: int = 5
    mixed_precision: str = "auto"
    seed: int = 12345

    def __post_init__(self):
        problems = []
        for name in ("train_batch_size", "gradient_accumulation_steps", "save_checkpoints_steps", "steps_per_loop",
                     "max_checkpoints_to_keep"):
            if getattr(self, name) < 1:
                problems.append(f"--{name} must be at least 1")
        for name in ("num_train_steps", "num_warmup_steps"):
            if (getattr(self, name) or 0) < 0:
                problems.append(f"--{name} must not be negative")
        if self.learning_rate <= 0:
            problems.append("--learning_rate must be positive")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"--optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.mixed_precision not in MIXED_PRECISION:
            problems.append(f"--mixed_precision must be one of {', '.join(MIXED_PRECISION)}")
        if self.gradient_accumulation_steps >= 1 and self.train_batch_size % self.gradient_accumulation_steps:
            problems.append(f"--train_batch_size {self.train_batch_size} is not a multiple of "
                            f"--gradient_accumulation_steps {self.gradient_accumulation_steps}")
        if not self.model_dir:
            problems.append("--model_dir is required")
        if problems:
            raise TrainerUsageError("; ".join(problems))

    @property
    def warmup_steps(self) -> int:
        if self.num_warmup_steps is not None:
            return self.num_warmup_steps
        return min(10_000, self.num_train_steps // 10)
