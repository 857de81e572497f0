"""The configuration tree: one frozen object per command, built once from the flags (and the
recipe), then read everywhere else. Defaults live here and in the recipe, nowhere else.

    RunConfig
      sources        SourceSpec per corpus (files, format, fields, Chinese conversion)
      cleaning       CleaningConfig (normalization, filters, deduplication)
      segmentation   SegmentationConfig (segmenter, model, user dictionary, cache)
      instances      InstancesConfig (recipe, phases, sentence task, masking, vocabulary, seed)
      output         OutputConfig (where, which formats, shards)
      runner         RunnerConfig (Beam's own flags, progress display)

``wwm prepare`` uses sources, cleaning and output; ``wwm segment`` segmentation and output;
``wwm run`` all of them. The manifest holds the sections a command used (``to_json``), and the
trainer and the report read them back (``from_json``).
"""
import dataclasses
import json

from wwm_core.errors import UsageError
from wwm_core.masking import REPLACEMENTS, WORD_LEVEL, check_ngram_weights
from wwm_core.similar_words import DEFAULT_MAX_WORDS
from wwm_core.recipes import DEFAULT_RECIPE, RECIPES, default_max_predictions, minimum_max_predictions
from wwm_core.segmentation import SEGMENTERS
from wwm_core.text import INPUT_FORMATS, JSONL_PRESETS

SENTENCE_TASKS = ("nsp", "sop", "none")
MASKING = ("static", "dynamic")
OUTPUT_FORMATS = ("tfrecord", "parquet", "both")
PACK_FILLS = ("sentences", "tokens")
# Beyond these, a run is a mistake rather than a plan: BERT's position embeddings stop at 512 in
# every released model, and a worker's memory grows with the sequence length.
MAX_SEQ_LENGTH_LIMIT = 8192
MAX_DUPE_FACTOR = 1000
MAX_SHARDS = 1_000_000


def _check(conditions) -> None:
    for ok, message in conditions:
        if not ok:
            raise UsageError(message)


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One input corpus: its files, format, fields and Chinese conversion. Its name tags every
    document it yields (the Parquet ``source`` column) and starts every document id."""
    name: str
    input_format: str
    patterns: tuple
    opencc_config: str  # an OpenCC config (t2s, tw2s, hk2s, ...) or none; the recipe's unless given
    jsonl_preset: str = None
    text_field: str = "text"
    title_field: str = "title"

    def __post_init__(self):
        _check([
            (self.input_format in INPUT_FORMATS, f"source {self.name}: format must be one of {', '.join(INPUT_FORMATS)}"),
            (self.jsonl_preset is None or self.jsonl_preset in JSONL_PRESETS,
             f"source {self.name}: preset must be one of {', '.join(JSONL_PRESETS)}"),
            (bool(self.patterns), f"source {self.name}: no input"),
            (bool(self.name) and "/" not in self.name, f"source name {self.name!r} must be non-empty, without '/'"),
        ])


@dataclasses.dataclass(frozen=True)
class CleaningConfig:
    full_width_to_half_width: bool = True
    min_document_chars: int = 1
    max_document_chars: int = 1_000_000
    min_cjk_share: float = 0.0  # share of CJK characters among non-space characters; 0 keeps all
    dedup: str = "exact"  # or "none"
    near_duplicate_threshold: float = 0.0  # MinHash Jaccard; 0 turns near-duplicate removal off
    drop_boilerplate: bool = True
    vocab_equivalents: bool = False  # map characters the vocabulary lacks to ones it has (normalize.VOCAB_EQUIVALENTS)

    def __post_init__(self):
        _check([
            (0 < self.max_document_chars <= 100_000_000, "--max_document_chars must be in 1..100,000,000"),
            (0 <= self.min_document_chars <= self.max_document_chars,
             "--min_document_chars must be in 0..max_document_chars"),
            (0.0 <= self.min_cjk_share <= 1.0, "--min_cjk_share must be in [0, 1]"),
            (self.dedup in ("exact", "none"), "--dedup must be exact or none"),
            (0.0 <= self.near_duplicate_threshold < 1.0, "--near_duplicate_threshold must be in [0, 1)"),
        ])


@dataclasses.dataclass(frozen=True)
class SegmentationConfig:
    segmenter: str  # the recipe's unless given
    ltp_model: str = None  # local or gs:// file or folder, or a Hugging Face hub id (LTP/legacy)
    user_dict: str = None  # words the segmenter must keep whole (jieba's format); local or gs://
    cache: str = "auto"  # folder of `wwm segment` caches; "auto": beside parquet input; "none"
    fallback: str = None  # why the recipe's segmenter could not be used, when another one stood in

    def __post_init__(self):
        _check([(self.segmenter in SEGMENTERS, f"--segmenter must be one of {', '.join(SEGMENTERS)}")])


@dataclasses.dataclass(frozen=True)
class Phase:
    """One training phase's data: its sequence length and prediction budget."""
    max_seq_length: int
    max_predictions_per_seq: int

    @property
    def folder(self) -> str:
        return f"seq{self.max_seq_length}"


@dataclasses.dataclass(frozen=True)
class InstancesConfig:
    """Fields without a default come from the recipe (``instances_from_recipe``)."""
    phases: tuple  # Phase per training phase, shortest first
    recipe: str
    sentence_task: str
    paired_input: bool  # sentence_task none: Google's A/B pairs anyway (HFL's RoBERTa-wwm), else one segment
    masking: str
    masked_lm_prob: float
    short_seq_prob: float
    dupe_factor: int
    pack_across_documents: bool = False  # sentence_task none, one segment: RoBERTa's FULL-SENTENCES
    pack_fill: str = "sentences"  # packed instances end between sentences, or "tokens": filled to the token
    ngram_weights: tuple = WORD_LEVEL  # chances of masking spans of 1, 2, ... whole words (MacBERT: 0.4,0.3,0.2,0.1)
    replacement: str = "bert"  # what a masked word becomes: Google's 80/10/10 per token, or MacBERT's per word
    similar_words: str = None  # MacBERT: a table or word2vec vectors (local or gs://)
    similar_words_limit: int = DEFAULT_MAX_WORDS  # the first words of a vectors file used
    random_seed: int = 12345
    vocab_file: str = None  # None: Google's bert-base-chinese vocabulary, bundled
    tokenizer: str = None  # instead of vocab_file: a Hugging Face tokenizer.json, a folder with one, or a hub id
    special_tokens: tuple = ()  # (role, token) pairs naming the tokenizer's special tokens, where it declares none
    do_lower_case: bool = True
    allow_fewer_predictions: bool = False  # the user means a budget below the masked share

    def __post_init__(self):
        _check([
            (self.recipe in RECIPES, f"--recipe must be one of {', '.join(RECIPES)}"),
            (self.sentence_task in SENTENCE_TASKS, f"--sentence_task must be one of {', '.join(SENTENCE_TASKS)}"),
            (self.masking in MASKING, f"--masking must be one of {', '.join(MASKING)}"),
            (0.0 < self.masked_lm_prob < 1.0, "--masked_lm_prob must be in (0, 1)"),
            (0.0 <= self.short_seq_prob <= 1.0, "--short_seq_prob must be in [0, 1]"),
            (1 <= self.dupe_factor <= MAX_DUPE_FACTOR, f"--dupe_factor must be in 1..{MAX_DUPE_FACTOR}"),
            (bool(self.phases), "at least one --max_seq_length is needed"),
            (not self.pack_across_documents or (self.sentence_task == "none" and not self.paired_input),
             "--pack_across_documents packs single segments: it needs --sentence_task none --paired_input false "
             "(NSP and SOP pairs come from one document each)"),
        ])
        lengths = [phase.max_seq_length for phase in self.phases]
        _check([(len(set(lengths)) == len(lengths), f"--max_seq_length lists a length twice: {lengths}")])
        try:
            object.__setattr__(self, "ngram_weights", check_ngram_weights(self.ngram_weights))
        except ValueError as error:
            raise UsageError(f"--ngram_weights: {error}") from None
        _check([
            (self.replacement in REPLACEMENTS, f"--replacement must be one of {', '.join(REPLACEMENTS)}"),
            (self.replacement != "macbert" or self.similar_words,
             "--replacement macbert replaces masked words by similar words: give --similar_words PATH (a table "
             "'word<TAB>candidates' or word2vec vectors, text or binary)"),
            (self.replacement == "macbert" or not self.similar_words,
             "--similar_words is for --replacement macbert; Google's rule (bert) puts [MASK] and random tokens"),
            (self.similar_words_limit >= 2, "--similar_words_limit must be at least 2"),
            (not (self.tokenizer and self.vocab_file), "give --vocab_file (a BERT vocab.txt) or --tokenizer (a Hugging "
             "Face tokenizer), not both"),
            (not self.special_tokens or self.tokenizer, "--special_tokens names the special tokens of --tokenizer"),
            (self.pack_fill in PACK_FILLS, f"--pack_fill must be one of {', '.join(PACK_FILLS)}"),
            (self.pack_fill == "sentences" or self.pack_across_documents,
             "--pack_fill tokens fills instances packed across documents: it needs --pack_across_documents"),
        ])
        for phase in self.phases:
            length, predictions = phase.max_seq_length, phase.max_predictions_per_seq
            least = minimum_max_predictions(length, self.masked_lm_prob)
            _check([
                (8 <= length <= MAX_SEQ_LENGTH_LIMIT, f"--max_seq_length must be in 8..{MAX_SEQ_LENGTH_LIMIT}, "
                 f"not {length}"),
                (0 < predictions <= length, f"--max_predictions_per_seq {predictions} must be in 1..{length} "
                 f"(max_seq_length {length})"),
                (predictions >= least or self.allow_fewer_predictions,
                 f"--max_predictions_per_seq {predictions} caps masking below --masked_lm_prob "
                 f"{self.masked_lm_prob:g} at max_seq_length {length}: use at least {least} (Google's README value: "
                 f"{default_max_predictions(length, self.masked_lm_prob)}), or pass --allow_fewer_predictions "
                 "if you mean it"),
            ])

    @property
    def trains_sentence_task(self) -> bool:
        """Whether the data carries a sentence-level label the trainer should learn (NSP or SOP)."""
        return self.sentence_task in ("nsp", "sop")

    @property
    def pairs(self) -> bool:
        """Whether instances are [CLS] A [SEP] B [SEP] (NSP, SOP, or HFL's paired input without a task)."""
        return self.sentence_task != "none" or self.paired_input


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    path: str
    output_format: str = "tfrecord"
    num_shards: int = 0  # 0: chosen from the input size
    overwrite: bool = False
    balance_shards: bool = False
    # The clean text a bucket (a shard) holds, decided at launch from the input's sizes and
    # num_shards (wwm_core.sizing); it decides which documents share a shard, so the bytes. 0: not
    # yet decided.
    bucket_bytes: int = 0

    def __post_init__(self):
        _check([
            (self.output_format in OUTPUT_FORMATS, f"--output_format must be one of {', '.join(OUTPUT_FORMATS)}"),
            (0 <= self.num_shards <= MAX_SHARDS, f"--num_shards must be in 0 (automatic)..{MAX_SHARDS:,}"),
        ])

    @property
    def tfrecord(self) -> bool:
        return self.output_format in ("tfrecord", "both")

    @property
    def parquet(self) -> bool:
        return self.output_format in ("parquet", "both")


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    """Where the pipeline runs: Beam's flags, and what they come to, read once at launch
    (wwm_cli.launch) for everything that needs to know. None of it decides the output's bytes."""
    beam_args: tuple = ()  # flags for Beam's PipelineOptions (--runner, --project, ...)
    progress: str = "auto"  # auto | on | off
    runner: str = "FnApiRunner"  # the runner Beam is given (FnApiRunner: the local one, named so)
    local: bool = True  # the pipeline runs on this machine (its memory is what a worker has)
    worker_processes: bool = False  # local, with worker processes (--direct_running_mode multi_processing)
    handed_over_to: str = None  # written as a job to run later (a Dataflow template, a Dataproc jar), not run


SECTIONS = ("sources", "cleaning", "segmentation", "instances", "output", "runner")  # the tree, in order


@dataclasses.dataclass(frozen=True)
class RunConfig:
    sources: tuple
    output: OutputConfig
    cleaning: CleaningConfig = CleaningConfig()
    segmentation: SegmentationConfig = None  # None for commands that do not segment
    instances: InstancesConfig = None  # None for commands that make no instances
    runner: RunnerConfig = RunnerConfig()
    overrides: tuple = ()  # recipe settings the user set explicitly

    def __post_init__(self):
        names = [source.name for source in self.sources]
        _check([(bool(self.sources), "--input or --source is required"),
                (len(set(names)) == len(names), f"source names must be unique: {names}")])

    @property
    def patterns(self) -> list:
        return [pattern for source in self.sources for pattern in source.patterns]

    def to_json(self, *, sections=SECTIONS) -> dict:
        """The sections a command used, as plain JSON values (tuples become lists)."""
        values = {}
        for name in sections:
            value = getattr(self, name)
            if value is None:
                continue
            values[name] = ([dataclasses.asdict(source) for source in value] if name == "sources"
                            else dataclasses.asdict(value))
        if "instances" in sections and self.instances is not None:
            values["overrides"] = list(self.overrides)
        return json.loads(json.dumps(values))

    @classmethod
    def from_json(cls, values: dict) -> "RunConfig":
        """The tree back from a manifest's ``config`` (sections absent there take their defaults)."""
        sources = tuple(SourceSpec(**{**source, "patterns": tuple(source["patterns"])})
                        for source in values.get("sources", []))
        instances = values.get("instances")
        if instances is not None:
            instances = InstancesConfig(**{**instances, "phases": tuple(Phase(**p) for p in instances["phases"]),
                                           "ngram_weights": tuple(instances.get("ngram_weights", WORD_LEVEL)),
                                           "special_tokens": tuple(tuple(p) for p in instances.get("special_tokens", ()))})
        runner = values.get("runner") or {}
        segmentation = values.get("segmentation")
        return cls(sources=sources or (SourceSpec("unknown", "text", ("-",), "none"),),
                   output=OutputConfig(**values["output"]) if "output" in values else OutputConfig(path="-"),
                   cleaning=CleaningConfig(**values.get("cleaning", {})),
                   segmentation=SegmentationConfig(**segmentation) if segmentation else None,
                   instances=instances,
                   runner=RunnerConfig(**{**runner, "beam_args": tuple(runner.get("beam_args", ()))}),
                   overrides=tuple(values.get("overrides", ())))


def phases_for(max_seq_lengths, max_predictions=None, *, masked_lm_prob: float) -> tuple:
    """Phases from the lengths and, optionally, their prediction budgets (one for all, or one per
    length); a missing budget follows from the length (Google's README values)."""
    lengths = tuple(max_seq_lengths)
    if max_predictions is None or len(max_predictions) == 0:
        budgets = [default_max_predictions(length, masked_lm_prob) for length in lengths]
    elif len(max_predictions) == 1:
        budgets = list(max_predictions) * len(lengths)
    elif len(max_predictions) == len(lengths):
        budgets = list(max_predictions)
    else:
        raise UsageError(f"--max_predictions_per_seq gives {len(max_predictions)} values for {len(lengths)} lengths")
    return tuple(sorted((Phase(length, budget) for length, budget in zip(lengths, budgets)),
                        key=lambda phase: phase.max_seq_length))


def instances_from_recipe(name: str = DEFAULT_RECIPE, **overrides) -> InstancesConfig:
    """The recipe's instance settings, with ``overrides`` (InstancesConfig fields, or
    ``max_seq_lengths`` / ``max_predictions`` lists) applied."""
    recipe = RECIPES[name] if name in RECIPES else None
    if recipe is None:
        raise UsageError(f"--recipe must be one of {', '.join(RECIPES)}")
    masked_lm_prob = overrides.get("masked_lm_prob", recipe.masked_lm_prob)
    lengths = overrides.pop("max_seq_lengths", None) or recipe.max_seq_lengths
    predictions = overrides.pop("max_predictions", None)
    values = dict(recipe=name, sentence_task=recipe.sentence_task, paired_input=recipe.paired_input,
                  masking=recipe.masking, masked_lm_prob=recipe.masked_lm_prob, short_seq_prob=recipe.short_seq_prob,
                  dupe_factor=recipe.dupe_factor, ngram_weights=recipe.ngram_weights, replacement=recipe.replacement,
                  pack_across_documents=recipe.pack_across_documents, pack_fill=recipe.pack_fill)
    values.update(overrides)
    if "tokenizer" in recipe.needs and not (values.get("tokenizer") or values.get("vocab_file")):
        raise UsageError(f"--recipe {name} is made with its own BPE vocabulary, which cannot be downloaded here: give "
                         "--tokenizer (a tokenizer.json, a folder or a hub id; `wwm tokenizer train --model bpe "
                         "--vocab_size 32000` makes one from prepared documents)")
    if "sentence_task" in overrides and "paired_input" not in overrides:
        # A task chosen by hand: pairs for NSP and SOP, one segment without a task.
        values["paired_input"] = values["sentence_task"] != "none"
    return InstancesConfig(phases=phases_for(lengths, predictions, masked_lm_prob=masked_lm_prob), **values)
