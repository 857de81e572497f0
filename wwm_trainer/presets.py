"""The settings a training run uses, and where each one comes from: a flag, a recipe or a default.

Pure (no TensorFlow): ``wwm train`` resolves its plan here, prints it, and only then builds
anything. A recipe (``wwm_core.recipes``, HFL's published settings) is named by ``--recipe`` or
recorded in the data's manifest; explicit flags override it; what neither gives takes a default
whose source is printed with it.

Learning-rate defaults, when no recipe gives one (sources in ``LEARNING_RATE_SOURCES``):

- AdamW: 1e-4 for base-width models (Google's README: "The learning rate we used in the paper
  was 1e-4"), 5e-5 for large-width ones (HFL's RoBERTa-wwm-ext-large, issue #141).
- LAMB: NVIDIA's BERT recipe trains with LAMB at 6e-3 on a global batch of 65,536; the LAMB
  paper scales the learning rate with the square root of the batch. Default:
  6e-3 * sqrt(batch / 65536), e.g. 3.75e-4 at batch 256, 1.2e-3 at HFL's 2,560.
- LAMB on the ``tiny`` test size (hidden < 256), which no publication trains: 1e-2, measured
  here (docs/training.md, the learning-rate sweep), not taken from a paper. (AdamW's 1e-4 trains it.)
"""
import dataclasses
import math

from wwm_core.recipes import RECIPES, Recipe
from wwm_trainer.errors import TrainerUsageError

OPTIMIZERS = ("lamb", "adamw")
DEFAULT_OPTIMIZER = "adamw"
DEFAULT_MODEL_CONFIG = "base"
DEFAULT_NUM_TRAIN_STEPS = 100_000  # google-research/bert run_pretraining.py flag default
DEFAULT_TRAIN_BATCH_SIZE = 32
NO_RECIPE = "none"

SOURCE_FLAG = "flag"
GOOGLE_README_LR = "google-research/bert README: 'The learning rate we used in the paper was 1e-4' (AdamW)"
HFL_LARGE_LR = "HFL, github.com/ymcui/Chinese-BERT-wwm/issues/141: RoBERTa-wwm-ext-large 5e-5 (AdamW)"
NVIDIA_LAMB = ("NVIDIA DeepLearningExamples BERT run_pretraining.sh: LAMB 6e-3 at a global batch of 65,536; "
               "scaled by sqrt(batch / 65536), the LAMB paper's square-root rule (You et al., arXiv 1904.00962)")
TINY_MEASURED = ("measured on this project's tiny test size, which no publication trains: with it the MLM loss "
                 "falls below 0.85x its first value within 120 steps at batch 16 (tests/test_trainer.py)")
TINY_LAMB_RATE = 1e-2  # see TINY_MEASURED and docs/training.md's figures
LAMB_ANCHOR_RATE, LAMB_ANCHOR_BATCH = 6e-3, 65_536
GOOGLE_WARMUP = "Google's run_pretraining.py default 10,000 steps, at most a tenth of the phase (HFL: 'warm-up ratio 10%')"
GOOGLE_STEPS = "google-research/bert run_pretraining.py default"
DEFAULT_SOURCE = "default"


@dataclasses.dataclass(frozen=True)
class Setting:
    value: object
    source: str  # "flag", "recipe NAME: why", or "default: why"


@dataclasses.dataclass(frozen=True)
class PhasePlan:
    """One training phase: its data and schedule. The optimizer starts afresh in every phase."""
    number: int  # 1-based
    manifest: str
    max_seq_length: int
    num_train_steps: Setting
    train_batch_size: Setting
    learning_rate: Setting
    num_warmup_steps: Setting
    masked_lm_prob: Setting = Setting(None, "the data's")  # dynamic masking's rate; None: the data's


# The width class of each recipe's model_config (rbt3 / rbtl3 keep base / large width).
RECIPE_SIZE_CLASS = {"base": "base", "rbt3": "base", "large": "large", "rbtl3": "large", "base-8k": "base"}


def size_class(hidden_size: int) -> str:
    """Which defaults a model width takes: large (1024 and wider), base (768), tiny (narrower than 256)."""
    if hidden_size >= 1024:
        return "large"
    if hidden_size >= 256:
        return "base"
    return "tiny"


def default_learning_rate(*, optimizer: str, hidden_size: int, train_batch_size: int) -> Setting:
    size = size_class(hidden_size)
    if optimizer == "adamw":
        if size == "large":
            return Setting(5e-5, f"{DEFAULT_SOURCE}: {HFL_LARGE_LR}")
        return Setting(1e-4, f"{DEFAULT_SOURCE}: {GOOGLE_README_LR}")
    if size == "tiny":
        return Setting(TINY_LAMB_RATE, f"{DEFAULT_SOURCE}: LAMB, {TINY_MEASURED}")
    rate = LAMB_ANCHOR_RATE * math.sqrt(train_batch_size / LAMB_ANCHOR_BATCH)
    return Setting(float(f"{rate:.3g}"), f"{DEFAULT_SOURCE}: {NVIDIA_LAMB}")


def default_warmup(num_train_steps: int) -> int:
    return min(10_000, num_train_steps // 10)


def find_recipe(flag: str | None, manifest_recipe: str | None) -> tuple:
    """(Recipe or None, where it came from). ``--recipe none`` ignores the manifest's."""
    if flag == NO_RECIPE:
        return None, "--recipe none"
    if flag:
        if flag not in RECIPES:
            raise TrainerUsageError(f"--recipe {flag!r} is not one of {', '.join(RECIPES)} (or none)")
        return RECIPES[flag], "--recipe"
    if manifest_recipe in RECIPES:
        return RECIPES[manifest_recipe], "the data's manifest"
    return None, f"no recipe (the manifest's {manifest_recipe!r} is not one of {', '.join(RECIPES)})"


def _recipe_source(recipe: Recipe, key: str) -> str:
    return f"recipe {recipe.name}: {recipe.sources.get(key, 'its table')}"


def choose_model(*, model_config: str | None, init_checkpoint: str | None, optimizer: str | None,
                 recipe: Recipe | None, config_beside_checkpoint=None) -> dict:
    """model_config, init_checkpoint and optimizer as Settings.

    ``config_beside_checkpoint(path) -> str | None`` finds the config file of a checkpoint (its
    ``bert_config.json`` or Hugging Face ``config.json``), used when --model_config is not given.
    The recipe's init checkpoint belongs to the recipe's model size: with another --model_config
    and no --init_checkpoint the model starts from random weights (and the log says so)."""
    chosen = {}
    if model_config:
        chosen["model_config"] = Setting(model_config, SOURCE_FLAG)
    elif recipe:
        chosen["model_config"] = Setting(recipe.model_config, _recipe_source(recipe, "model_config"))
    if init_checkpoint:
        value = None if init_checkpoint.lower() == "none" else init_checkpoint
        chosen["init_checkpoint"] = Setting(value, SOURCE_FLAG)
    elif recipe and recipe.init_checkpoint and chosen["model_config"].value == recipe.model_config:
        chosen["init_checkpoint"] = Setting(recipe.init_checkpoint, _recipe_source(recipe, "init_checkpoint"))
    elif recipe and recipe.init_checkpoint:
        chosen["init_checkpoint"] = Setting(None, f"{DEFAULT_SOURCE}: random; the recipe's {recipe.init_checkpoint} is "
                                            f"a {recipe.model_config} model and --model_config is {model_config}")
    else:
        chosen["init_checkpoint"] = Setting(None, f"{DEFAULT_SOURCE}: random initialization"
                                            + (f" ({_recipe_source(recipe, 'init_checkpoint')})" if recipe else ""))
    if "model_config" not in chosen:
        beside = config_beside_checkpoint(chosen["init_checkpoint"].value) if (
            config_beside_checkpoint and chosen["init_checkpoint"].value) else None
        chosen["model_config"] = (Setting(beside, f"{DEFAULT_SOURCE}: the config beside --init_checkpoint") if beside
                                  else Setting(DEFAULT_MODEL_CONFIG, f"{DEFAULT_SOURCE}: BERT-base"))
    if optimizer:
        chosen["optimizer"] = Setting(optimizer, SOURCE_FLAG)
    elif recipe:
        chosen["optimizer"] = Setting(recipe.optimizer, _recipe_source(recipe, "optimizer"))
    else:
        chosen["optimizer"] = Setting(DEFAULT_OPTIMIZER, f"{DEFAULT_SOURCE}: Google's AdamW (HFL used AdamW below "
                                      "batch ~2,560 and LAMB above: Cui et al., TASLP 2021, §V-B)")
    return chosen


def _per_phase(values, index: int, name: str, count: int):
    """A flag's value for phase ``index``: one value serves every phase, else one per phase."""
    if values is None:
        return None
    if len(values) == 1:
        return values[0]
    if len(values) != count:
        raise TrainerUsageError(f"--{name} has {len(values)} values for {count} phases: give one, or one per phase")
    return values[index]


def _recipe_phase(recipe: Recipe | None, index: int, count: int, max_seq_length: int):
    """The recipe's phase for data phase ``index``: by position when the data has as many phases
    as the recipe, else the recipe's phase of the same max_seq_length (one seq512 folder of a
    bert-wwm run is its phase 2), else by position."""
    if recipe is None:
        return None
    if len(recipe.phases) == count:
        return recipe.phases[index]
    matching = [phase for phase in recipe.phases if phase.max_seq_length == max_seq_length]
    if len(matching) == 1:
        return matching[0]
    return recipe.phases[min(index, len(recipe.phases) - 1)]


def plan_phases(*, data_phases: list, flags: dict, recipe: Recipe | None, optimizer: str, hidden_size: int) -> list:
    """PhasePlans for ``data_phases`` [(manifest path, max_seq_length)], from the flags
    (``num_train_steps``, ``train_batch_size``, ``learning_rate``, ``num_warmup_steps``: a tuple
    or None), the recipe's phases and the defaults."""
    count = len(data_phases)
    plans = []
    for index, (manifest, max_seq_length) in enumerate(data_phases):
        given = {name: _per_phase(flags.get(name), index, name, count)
                 for name in ("num_train_steps", "train_batch_size", "learning_rate", "num_warmup_steps",
                              "masking_rate")}
        from_recipe = _recipe_phase(recipe, index, count, max_seq_length)
        steps_source = _recipe_source(recipe, "steps_and_batch") if recipe else None
        lr_source = _recipe_source(recipe, "learning_rate_and_warmup") if recipe else None

        def pick(name, recipe_value, recipe_source, default: Setting) -> Setting:
            if given[name] is not None:
                return Setting(given[name], SOURCE_FLAG)
            if from_recipe is not None:
                return Setting(recipe_value, recipe_source)
            return default

        steps = pick("num_train_steps", from_recipe and from_recipe.num_train_steps, steps_source,
                     Setting(DEFAULT_NUM_TRAIN_STEPS, f"{DEFAULT_SOURCE}: {GOOGLE_STEPS}"))
        batch = pick("train_batch_size", from_recipe and from_recipe.train_batch_size, steps_source,
                     Setting(DEFAULT_TRAIN_BATCH_SIZE, DEFAULT_SOURCE))
        # The recipe's learning rate is for the recipe's optimizer and model width: with another
        # optimizer, or another width (--model_config tiny on a base recipe), that one's default.
        recipe_lr_fits = (recipe is not None and recipe.optimizer == optimizer
                          and RECIPE_SIZE_CLASS.get(recipe.model_config) == size_class(hidden_size))
        if given["learning_rate"] is not None:
            rate = Setting(given["learning_rate"], SOURCE_FLAG)
        elif from_recipe is not None and recipe_lr_fits:
            rate = Setting(from_recipe.learning_rate, lr_source)
        else:
            rate = default_learning_rate(optimizer=optimizer, hidden_size=hidden_size, train_batch_size=batch.value)
        if given["num_warmup_steps"] is not None:
            warmup = Setting(given["num_warmup_steps"], SOURCE_FLAG)
        elif from_recipe is not None and steps.source != SOURCE_FLAG:
            warmup = Setting(from_recipe.num_warmup_steps, lr_source)
        else:
            warmup = Setting(default_warmup(steps.value), f"{DEFAULT_SOURCE}: {GOOGLE_WARMUP}")
        if given["masking_rate"] is not None:
            masking_rate = Setting(given["masking_rate"], SOURCE_FLAG)
        elif from_recipe is not None and from_recipe.masked_lm_prob:
            masking_rate = Setting(from_recipe.masked_lm_prob, _recipe_source(recipe, "masking_schedule"))
        else:
            masking_rate = Setting(None, f"{DEFAULT_SOURCE}: the data's (its wwm run --masked_lm_prob)")
        plans.append(PhasePlan(number=index + 1, manifest=manifest, max_seq_length=max_seq_length,
                               num_train_steps=steps, train_batch_size=batch, learning_rate=rate,
                               num_warmup_steps=warmup, masked_lm_prob=masking_rate))
    for plan in plans:
        if plan.learning_rate.value <= 0:
            raise TrainerUsageError(f"phase {plan.number}: the learning rate must be positive")
        if plan.train_batch_size.value < 1:
            raise TrainerUsageError(f"phase {plan.number}: the batch size must be at least 1")
    return plans


def describe_plan(*, recipe: Recipe | None, recipe_origin: str, chosen: dict, phases: list) -> list:
    """The log lines of the settings in force, each with its source."""
    lines = [f"recipe: {recipe.name if recipe else 'none'} ({recipe_origin})"]
    for name in ("model_config", "init_checkpoint", "optimizer"):
        setting = chosen[name]
        lines.append(f"{name}: {setting.value if setting.value is not None else 'none (random)'}  [{setting.source}]")
    for phase in phases:
        lines.append(f"phase {phase.number} of {len(phases)}: {phase.manifest} (max_seq_length {phase.max_seq_length})")
        for name in ("num_train_steps", "train_batch_size", "learning_rate", "num_warmup_steps", "masked_lm_prob"):
            setting = getattr(phase, name)
            if setting.value is None:
                lines.append(f"  {name}: the data's  [{setting.source}]")
                continue
            lines.append(f"  {name}: {setting.value:g}  [{setting.source}]" if isinstance(setting.value, float)
                         else f"  {name}: {setting.value:,}  [{setting.source}]")
    if len(phases) > 1:
        lines.append("each phase after the first starts from the previous phase's weights with a new optimizer "
                     "(moments reset) and its own warmup and decay, as in Google's and HFL's two-phase runs")
    return lines
