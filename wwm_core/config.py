"""The run's configuration: one frozen object, built at the command line, read everywhere else."""
import dataclasses

from wwm_core.instances import RECIPES, MaskingConfig
from wwm_core.segmentation import SEGMENTERS
from wwm_core.text import INPUT_FORMATS, JSONL_PRESETS


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One input corpus: its files, format, fields and Chinese conversion. Its name tags every
    document it yields (the Parquet ``source`` column)."""
    name: str
    input_format: str
    patterns: tuple
    jsonl_preset: str = None
    text_field: str = "text"
    title_field: str = "title"
    opencc_config: str = "t2s"

    def __post_init__(self):
        if self.input_format not in INPUT_FORMATS:
            raise ValueError(f"source {self.name}: format must be one of {INPUT_FORMATS}")
        if self.jsonl_preset is not None and self.jsonl_preset not in JSONL_PRESETS:
            raise ValueError(f"source {self.name}: preset must be one of {', '.join(JSONL_PRESETS)}")
        if not self.patterns:
            raise ValueError(f"source {self.name}: no input")

    @classmethod
    def parse(cls, text: str) -> "SourceSpec":
        """``name=news,format=jsonl,preset=news2016zh,opencc=t2s,input=corpus/news*.json``."""
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        unknown = set(fields) - {"name", "format", "preset", "text_field", "title_field", "opencc", "input"}
        if unknown or "input" not in fields or "name" not in fields:
            raise ValueError(f"--source {text!r}: expected name=...,format=...,input=... "
                             f"[,preset=...][,opencc=...][,text_field=...][,title_field=...]")
        return cls(name=fields["name"], input_format=fields.get("format", "text"), patterns=(fields["input"],),
                   jsonl_preset=fields.get("preset"), text_field=fields.get("text_field", "text"),
                   title_field=fields.get("title_field", "title"), opencc_config=fields.get("opencc", "t2s"))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    input_patterns: tuple
    output: str
    input_format: str = "text"
    text_field: str = "text"
    title_field: str = "title"
    jsonl_preset: str = None  # one of text.JSONL_PRESETS: its fields instead of text_field/title_field
    vocab_file: str = None  # None: the bundled vocabulary
    do_lower_case: bool = True
    opencc_config: str = "t2s"
    segmenter: str = "jieba"
    ltp_model: str = None
    user_dict: str = None  # words the segmenter must keep whole (jieba's format); local or gs://
    segmentation_cache: str = "auto"  # folder of `wwm segment` caches; "auto": beside parquet input; "none"
    recipe: str = "bert-wwm"
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    random_seed: int = 12345
    num_shards: int = 0  # 0: chosen from the input size
    max_document_chars: int = 1_000_000
    min_document_chars: int = 1
    min_cjk_share: float = 0.0
    full_width_to_half_width: bool = True
    dedup: str = "exact"  # or "none"
    near_duplicate_threshold: float = 0.0  # MinHash Jaccard; 0 turns near-duplicate removal off
    sources: tuple = ()  # SourceSpecs from --source, besides the one --input describes

    def __post_init__(self):
        checks = [
            (self.input_format in INPUT_FORMATS, f"--input_format must be one of {INPUT_FORMATS}"),
            (self.segmenter in SEGMENTERS, f"--segmenter must be one of {SEGMENTERS}"),
            (self.recipe in RECIPES, f"--recipe must be one of {RECIPES}"),
            (self.max_seq_length >= 8, "--max_seq_length must be at least 8"),
            (0 < self.max_predictions_per_seq <= self.max_seq_length,
             "--max_predictions_per_seq must be in 1..max_seq_length"),
            (0.0 < self.masked_lm_prob < 1.0, "--masked_lm_prob must be in (0, 1)"),
            (0.0 <= self.short_seq_prob <= 1.0, "--short_seq_prob must be in [0, 1]"),
            (self.dupe_factor >= 1, "--dupe_factor must be at least 1"),
            (self.num_shards >= 0, "--num_shards must be 0 (automatic) or more"),
            (self.max_document_chars > 0, "--max_document_chars must be positive"),
            (0 <= self.min_document_chars <= self.max_document_chars,
             "--min_document_chars must be in 0..max_document_chars"),
            (0.0 <= self.min_cjk_share <= 1.0, "--min_cjk_share must be in [0, 1]"),
            (self.dedup in ("exact", "none"), "--dedup must be exact or none"),
            (0.0 <= self.near_duplicate_threshold < 1.0, "--near_duplicate_threshold must be in [0, 1)"),
            (self.jsonl_preset is None or self.jsonl_preset in JSONL_PRESETS,
             f"--jsonl_preset must be one of {', '.join(JSONL_PRESETS)}"),
            (bool(self.input_patterns or self.sources), "--input or --source is required"),
            (len({s.name for s in self.all_sources}) == len(self.all_sources), "source names must be unique"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def all_sources(self) -> tuple:
        """--input (with --input_format, --jsonl_preset, ...) as a source of its own, then --source ones."""
        own = ()
        if self.input_patterns:
            own = (SourceSpec(name=self.jsonl_preset or self.input_format, input_format=self.input_format,
                              patterns=tuple(self.input_patterns), jsonl_preset=self.jsonl_preset,
                              text_field=self.text_field, title_field=self.title_field,
                              opencc_config=self.opencc_config),)
        return own + tuple(self.sources)

    @property
    def masking(self) -> MaskingConfig:
        return MaskingConfig(
            max_seq_length=self.max_seq_length,
            max_predictions_per_seq=self.max_predictions_per_seq,
            masked_lm_prob=self.masked_lm_prob,
            short_seq_prob=self.short_seq_prob,
        )

    def to_json(self) -> dict:
        values = dataclasses.asdict(self)
        values["input_patterns"] = list(self.input_patterns)
        values["sources"] = [dataclasses.asdict(source) for source in self.sources]
        return values
