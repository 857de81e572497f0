"""Model configurations: the built-in sizes, and Google's ``bert_config.json`` read and written.

The field names are those of Google's ``bert_config.json``, so a released model's config file is
used as is and the exported one is read by the ecosystem's tools (Hugging Face's conversion, ...).
"""
import dataclasses
import json

from wwm_trainer.errors import TrainerUsageError

# The sizes of the released Chinese models. vocab_size is absent: a built-in config takes the
# vocabulary size of the data it trains on (from the run's manifest).
PRESETS = {
    "base": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
    "large": {"num_hidden_layers": 24, "hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096},
    # RBT3 / RBTL3: the first 3 layers of a base / large model (initialised from its checkpoint).
    "rbt3": {"num_hidden_layers": 3, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072},
    "rbtl3": {"num_hidden_layers": 3, "hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096},
    # BERT-base with 8,192 positions: the chinese-modernbert recipe's stand-in (no RoPE, no local attention).
    "base-8k": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
                "max_position_embeddings": 8192},
    # For tests and smoke runs on a CPU.
    "tiny": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128},
}

# Activations of Google's modeling.py. Its "gelu" is the tanh approximation, which the released
# checkpoints were trained with.
ACTIVATIONS = ("gelu", "gelu_new", "relu", "tanh")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02

    def __post_init__(self):
        problems = []
        if self.hidden_size % self.num_attention_heads:
            problems.append(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                            f"{self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            problems.append(f"hidden_act {self.hidden_act!r} is not one of {', '.join(ACTIVATIONS)}")
        if self.type_vocab_size < 2:
            problems.append("type_vocab_size must be at least 2 (segment ids 0 and 1)")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be positive")
        if problems:
            raise TrainerUsageError("model config: " + "; ".join(problems))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict) -> "BertConfig":
        """Google's keys; others (Chinese releases add ``pooler_*`` and ``directionality``) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        if "vocab_size" not in values:
            raise TrainerUsageError("model config: bert_config.json has no vocab_size")
        return cls(**{key: value for key, value in values.items() if key in known})


def read_bert_config(path: str) -> BertConfig:
    import tensorflow as tf  # for gs:// paths

    try:
        with tf.io.gfile.GFile(path, "r") as file:
            values = json.load(file)
    except (tf.errors.NotFoundError, OSError) as error:
        raise TrainerUsageError(f"cannot read --model_config {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise TrainerUsageError(f"--model_config {path} is not JSON: {error}") from error
    if not isinstance(values, dict):
        raise TrainerUsageError(f"--model_config {path} is not a JSON object")
    return BertConfig.from_dict(values)


def write_bert_config(config: BertConfig, path: str) -> None:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "w") as file:
        file.write(config.to_json())


def resolve_model_config(name_or_path: str, *, vocab_size: int, max_seq_length: int) -> BertConfig:
    """The config to train: a built-in size with the data's vocabulary size, or a bert_config.json
    that must agree with the data (its embeddings are indexed by the data's token ids)."""
    if name_or_path in PRESETS:
        config = BertConfig(vocab_size=vocab_size, **PRESETS[name_or_path])
    else:
        config = read_bert_config(name_or_path)
        if config.vocab_size != vocab_size:
            raise TrainerUsageError(
                f"--model_config {name_or_path} has vocab_size {config.vocab_size} but the data's vocabulary has "
                f"{vocab_size} tokens: make the data with the model's vocab.txt (wwm run --vocab_file ...)")
    if max_seq_length > config.max_position_embeddings:
        raise TrainerUsageError(
            f"the data's max_seq_length {max_seq_length} exceeds the model's max_position_embeddings "
            f"{config.max_position_embeddings}")
    return config
