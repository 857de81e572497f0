"""HFL's released models as recipes: how each model's data was made and how it was trained, with
the source of every number.

A recipe fixes the defaults of ``wwm run`` (lengths, sentence task, masking, segmenter, Chinese
conversion, vocabulary) and of ``wwm train`` (model size, initial checkpoint, optimizer, and the
steps, batch, learning rate and warmup of each phase). Any explicit flag overrides a value; the
manifest records the recipe and the overrides. ``wwm recipe show NAME`` prints this table.
"""
import dataclasses
import math

# Where the numbers come from. HFL = Yiming Cui et al., the authors of the released models.
HFL_TABLE = "HFL Chinese-BERT-wwm README, model comparison table (github.com/ymcui/Chinese-BERT-wwm)"
HFL_FAQ_ROBERTA = ("HFL Chinese-BERT-wwm README FAQ on RoBERTa-wwm-ext: 'no dynamic masking', 'simply remove the "
                   "NSP loss', 'directly use max_len=512'")
HFL_RBT = ("HFL Chinese-BERT-wwm README: 'RBT3: RoBERTa-wwm-ext 3 layers for initialization, then 1M more steps' "
           "(RBTL3 likewise from RoBERTa-wwm-ext-large)")
HFL_ISSUE_28 = ("HFL maintainer, github.com/ymcui/Chinese-BERT-wwm/issues/28: 'dupe_factor=5'; the tech report "
                "(arXiv 1906.08101v1): 'an initial learning rate of 1e-4 (with warm-up ratio 10%)'")
HFL_ISSUE_106 = ("HFL maintainer, github.com/ymcui/Chinese-BERT-wwm/issues/106: the schedule restarts for the 512 "
                 "phase (10k warmup steps to 1e-4, then linear decay, in each phase)")
HFL_ISSUE_141 = ("HFL maintainer, github.com/ymcui/Chinese-BERT-wwm/issues/141: 'RoBERTa-wwm-ext: 1e-4 / "
                 "RoBERTa-wwm-ext-large: 5e-5'")
HFL_ISSUE_72 = "HFL maintainer, github.com/ymcui/Chinese-BERT-wwm/issues/72: RoBERTa-wwm-ext 'lr=1e-4, warm up=10k steps'"
HFL_PAPER_DATA = ("Cui et al., Pre-Training with Whole Word Masking for Chinese BERT (TASLP 2021, arXiv 1906.08101v3) "
                  "§V-A: 'We use both Simplified and Traditional Chinese in this dump and do not convert the Traditional "
                  "Chinese portion into Simplified one'; HFL issue #132 says the same")
HFL_PAPER_PAIRS = ("Cui et al. (TASLP 2021) §III-A on RoBERTa-wwm: 'NSP task is not adopted. However, we still use a "
                   "paired input for pre-training', made with 'official create_pretraining_data.py' (§V-A)")
HFL_PAPER_EXT = ("Cui et al. (TASLP 2021) §V-B: for the 'ext' models 'the other parameters are the same as the one "
                 "that is not trained on extended data'")
HFL_PAPER_RBT = "Cui et al. (TASLP 2021) §III-C: RBT models use 'exactly the same training strategy as in training RoBERTa'"
HFL_LTP = "HFL README: '使用了哈工大LTP作为分词工具' (LTP for word segmentation); issue #153: LTP 3.4"
GOOGLE_README_PREDICTIONS = ("google-research/bert README: set max_predictions_per_seq 'to around max_seq_length * "
                             "masked_lm_prob'; its examples use 20 at 128 and 80 at 512 (NVIDIA's BERT recipe too)")
GOOGLE_DEFAULTS = "google-research/bert create_pretraining_data.py flag defaults (masked_lm_prob 0.15, short_seq_prob 0.1)"
GOOGLE_VOCAB = "every HFL model inherits Google's BERT-Base Chinese vocabulary (21,128 tokens): HFL README table, '~BERT'"
NOT_PUBLISHED = "not published by HFL"


@dataclasses.dataclass(frozen=True)
class TrainingPhase:
    max_seq_length: int
    num_train_steps: int
    train_batch_size: int
    learning_rate: float
    num_warmup_steps: int


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    model: str  # the released model's name
    # ---- data (wwm run)
    max_seq_lengths: tuple  # one per training phase
    sentence_task: str  # nsp | sop | none: the sentence-level objective the data is built for
    paired_input: bool  # with sentence_task none: Google's A/B pairs anyway (HFL's RoBERTa-wwm), else one segment
    dupe_factor: int
    masked_lm_prob: float
    short_seq_prob: float
    masking: str  # static | dynamic
    segmenter: str
    ltp_model: str  # a Hugging Face hub id or a path
    opencc_config: str
    # ---- training (wwm train)
    model_config: str  # base | large | rbt3 | rbtl3
    init_checkpoint: str | None  # a hub id (Google layout or Hugging Face folder), None: random
    optimizer: str  # lamb | adamw
    phases: tuple  # TrainingPhase per max_seq_length
    sources: dict = dataclasses.field(default_factory=dict)  # setting name -> where its value comes from
    ngram_weights: tuple = (1.0,)  # chances of masking spans of 1, 2, ... whole words; (1.0,): one word at a time
    replacement: str = "bert"  # bert: Google's 80/10/10 per token; macbert: similar words, 80/10/10 per word
    pack_across_documents: bool = False  # one segment filled across documents (RoBERTa's FULL-SENTENCES)
    pack_fill: str = "sentences"  # packed instances end between sentences, or "tokens": filled to the token

    def data_settings(self) -> dict:
        return {"max_seq_lengths": list(self.max_seq_lengths), "sentence_task": self.sentence_task,
                "paired_input": self.paired_input, "dupe_factor": self.dupe_factor,
                "masked_lm_prob": self.masked_lm_prob, "ngram_weights": list(self.ngram_weights),
                "replacement": self.replacement,
                "short_seq_prob": self.short_seq_prob,
                "max_predictions_per_seq": [default_max_predictions(length, self.masked_lm_prob)
                                            for length in self.max_seq_lengths],
                "masking": self.masking, "segmenter": self.segmenter, "ltp_model": self.ltp_model,
                "opencc_config": self.opencc_config, "vocab": "Google's bert-base-chinese vocab.txt (bundled)"}

    def training_settings(self) -> dict:
        return {"model_config": self.model_config, "init_checkpoint": self.init_checkpoint,
                "optimizer": self.optimizer, "phases": [dataclasses.asdict(phase) for phase in self.phases]}


def default_max_predictions(max_seq_length: int, masked_lm_prob: float) -> int:
    """Google's README values (20 at 128, 80 at 512): max_seq_length * masked_lm_prob rounded up to
    a multiple of 5, so the budget is never what limits the masked share."""
    return min(max_seq_length, 5 * math.ceil(max_seq_length * masked_lm_prob / 5 - 1e-9))


def minimum_max_predictions(max_seq_length: int, masked_lm_prob: float) -> int:
    """Fewer predictions than this cap full-length instances below masked_lm_prob."""
    return max(1, round(max_seq_length * masked_lm_prob))


_COMMON_SOURCES = {
    "dupe_factor": HFL_ISSUE_28,
    "masked_lm_prob": GOOGLE_DEFAULTS + "; HFL kept Google's masking rate (TASLP §III-A)",
    "short_seq_prob": GOOGLE_DEFAULTS,
    "ngram_weights": "HFL masks whole words one at a time (TASLP 2021 §III-A); N-gram masking is MacBERT's",
    "replacement": "Google's create_pretraining_data.py: [MASK] 80%, kept 10%, a random token 10%, per token",
    "max_predictions_per_seq": GOOGLE_README_PREDICTIONS + "; " + NOT_PUBLISHED,
    "masking": HFL_FAQ_ROBERTA + " (static: masks are fixed when the data is made)",
    "segmenter": HFL_LTP + ". LTP/legacy is LTP's released perceptron model, the nearest to LTP 3.4 that can be "
                 "loaded today",
    "opencc_config": HFL_PAPER_DATA + ": text is kept as written (none)",
    "vocab": GOOGLE_VOCAB,
}

_BERT_WWM_LAMB = HFL_ISSUE_28 + "; " + HFL_ISSUE_106
_DATA = dict(dupe_factor=5, masked_lm_prob=0.15, short_seq_prob=0.1, masking="static", segmenter="ltp",
             ltp_model="LTP/legacy", opencc_config="none")

RECIPES = {
    "bert-wwm": Recipe(
        name="bert-wwm", model="BERT-wwm", max_seq_lengths=(128, 512), sentence_task="nsp", paired_input=True,
        model_config="base", init_checkpoint="google-bert/bert-base-chinese", optimizer="lamb",
        phases=(TrainingPhase(128, 100_000, 2560, 1e-4, 10_000), TrainingPhase(512, 100_000, 384, 1e-4, 10_000)),
        sources={**_COMMON_SOURCES,
                 "max_seq_lengths": HFL_TABLE + ": 100K steps at 128, then 100K at 512",
                 "sentence_task": "BERT-wwm follows Google's BERT, NSP included (" + HFL_PAPER_PAIRS + ")",
                 "model_config": HFL_TABLE + ": base", "init_checkpoint": HFL_TABLE + ": ~BERT (Google's Chinese BERT)",
                 "optimizer": HFL_TABLE + ": LAMB", "steps_and_batch": HFL_TABLE + ": 100K + 100K, batch 2,560 / 384",
                 "learning_rate_and_warmup": _BERT_WWM_LAMB},
        **_DATA),
    "bert-wwm-ext": Recipe(
        name="bert-wwm-ext", model="BERT-wwm-ext", max_seq_lengths=(128, 512), sentence_task="nsp", paired_input=True,
        model_config="base", init_checkpoint="google-bert/bert-base-chinese", optimizer="lamb",
        phases=(TrainingPhase(128, 1_000_000, 2560, 1e-4, 100_000),
                TrainingPhase(512, 400_000, 384, 1e-4, 40_000)),
        sources={**_COMMON_SOURCES,
                 "max_seq_lengths": HFL_TABLE + ": 1M steps at 128, then 400K at 512",
                 "sentence_task": "HFL maintainer, github.com/ymcui/Chinese-BERT-wwm/issues/213: BERT-wwm-ext used NSP",
                 "model_config": HFL_TABLE + ": base", "init_checkpoint": HFL_TABLE + ": ~BERT (Google's Chinese BERT)",
                 "optimizer": HFL_TABLE + ": LAMB", "steps_and_batch": HFL_TABLE + ": 1M + 400K, batch 2,560 / 384",
                 "learning_rate_and_warmup": HFL_PAPER_EXT + ", i.e. BERT-wwm's: " + _BERT_WWM_LAMB
                 + " (warm-up ratio 10% of each phase)"},
        **_DATA),
    "roberta-wwm-ext": Recipe(
        name="roberta-wwm-ext", model="RoBERTa-wwm-ext", max_seq_lengths=(512,), sentence_task="none",
        paired_input=True, model_config="base", init_checkpoint="google-bert/bert-base-chinese", optimizer="adamw",
        phases=(TrainingPhase(512, 1_000_000, 384, 1e-4, 10_000),),
        sources={**_COMMON_SOURCES,
                 "max_seq_lengths": HFL_TABLE + ": 1M steps at 512; " + HFL_FAQ_ROBERTA,
                 "sentence_task": HFL_FAQ_ROBERTA + " (none)",
                 "paired_input": HFL_PAPER_PAIRS + ": segments A and B as Google's script makes them, the label unused",
                 "model_config": HFL_TABLE + ": base", "init_checkpoint": HFL_TABLE + ": ~BERT (Google's Chinese BERT)",
                 "optimizer": HFL_TABLE + ": AdamW", "steps_and_batch": HFL_TABLE + ": 1M steps, batch 384",
                 "learning_rate_and_warmup": HFL_ISSUE_141 + "; " + HFL_ISSUE_72},
        **_DATA),
    "roberta-wwm-ext-large": Recipe(
        name="roberta-wwm-ext-large", model="RoBERTa-wwm-ext-large", max_seq_lengths=(512,), sentence_task="none",
        paired_input=True, model_config="large", init_checkpoint=None, optimizer="adamw",
        phases=(TrainingPhase(512, 2_000_000, 512, 5e-5, 10_000),),
        sources={**_COMMON_SOURCES,
                 "max_seq_lengths": HFL_TABLE + ": 2M steps at 512",
                 "sentence_task": HFL_FAQ_ROBERTA + " (none)",
                 "paired_input": HFL_PAPER_PAIRS,
                 "model_config": HFL_TABLE + ": large", "init_checkpoint": HFL_TABLE + ": random initialization",
                 "optimizer": HFL_TABLE + ": AdamW", "steps_and_batch": HFL_TABLE + ": 2M steps, batch 512",
                 "learning_rate_and_warmup": HFL_ISSUE_141 + "; warmup: " + NOT_PUBLISHED
                 + ", RoBERTa-wwm-ext's 10k steps (" + HFL_ISSUE_72 + ")"},
        **_DATA),
    "rbt3": Recipe(
        name="rbt3", model="RBT3", max_seq_lengths=(512,), sentence_task="none", paired_input=True,
        model_config="rbt3", init_checkpoint="hfl/chinese-roberta-wwm-ext", optimizer="adamw",
        phases=(TrainingPhase(512, 1_000_000, 384, 1e-4, 10_000),),
        sources={**_COMMON_SOURCES,
                 "max_seq_lengths": HFL_PAPER_RBT + ": as RoBERTa-wwm-ext, 512",
                 "sentence_task": HFL_PAPER_RBT, "paired_input": HFL_PAPER_PAIRS,
                 "model_config": HFL_RBT + ": 3 layers of the base model",
                 "init_checkpoint": HFL_RBT + ": the first 3 layers of RoBERTa-wwm-ext",
                 "optimizer": "Cui et al. (TASLP 2021) Table III: RBT, AdamW",
                 "steps_and_batch": HFL_RBT + ": 1M steps; batch " + NOT_PUBLISHED + ", RoBERTa-wwm-ext's 384 ("
                 + HFL_PAPER_RBT + ")",
                 "learning_rate_and_warmup": NOT_PUBLISHED + "; RoBERTa-wwm-ext's (" + HFL_PAPER_RBT + "; "
                 + HFL_ISSUE_141 + ")"},
        **_DATA),
    "rbtl3": Recipe(
        name="rbtl3", model="RBTL3", max_seq_lengths=(512,), sentence_task="none", paired_input=True,
        model_config="rbtl3", init_checkpoint="hfl/chinese-roberta-wwm-ext-large", optimizer="adamw",
        phases=(TrainingPhase(512, 1_000_000, 512, 5e-5, 10_000),),
        sources={**_COMMON_SOURCES,
                 "max_seq_lengths": HFL_PAPER_RBT + ": as RoBERTa-wwm-ext-large, 512",
                 "sentence_task": HFL_PAPER_RBT, "paired_input": HFL_PAPER_PAIRS,
                 "model_config": HFL_RBT + ": 3 layers of the large model",
                 "init_checkpoint": HFL_RBT + ": the first 3 layers of RoBERTa-wwm-ext-large",
                 "optimizer": "Cui et al. (TASLP 2021) Table III: RBT, AdamW",
                 "steps_and_batch": HFL_RBT + ": 1M steps; batch " + NOT_PUBLISHED
                 + ", RoBERTa-wwm-ext-large's 512 (" + HFL_PAPER_RBT + ")",
                 "learning_rate_and_warmup": NOT_PUBLISHED + "; RoBERTa-wwm-ext-large's (" + HFL_PAPER_RBT + "; "
                 + HFL_ISSUE_141 + ")"},
        **_DATA),
}
DEFAULT_RECIPE = "bert-wwm"


def recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def describe(recipe: Recipe) -> str:
    """What ``wwm recipe show`` prints: every setting with where it comes from."""
    data, training = recipe.data_settings(), recipe.training_settings()
    sources = recipe.sources
    lines = [f"{recipe.name}: the data and training of HFL's {recipe.model}", "", "data (wwm run):"]
    for name, value in data.items():
        lines.append(f"  {name:24s} {value}")
        if name in sources or name == "max_predictions_per_seq":
            lines.append(f"  {'':24s}   source: {sources.get(name)}")
    if recipe.sentence_task == "none" and recipe.paired_input:
        lines.append(f"  {'':24s}   instances are Google's [CLS] A [SEP] B [SEP] pairs; next_sentence_labels are 0 "
                     "and not trained (--paired_input false: one segment, RoBERTa's DOC-SENTENCES)")
    lines += ["", "training (wwm train):"]
    for name in ("model_config", "init_checkpoint", "optimizer"):
        lines.append(f"  {name:24s} {training[name]}")
        lines.append(f"  {'':24s}   source: {sources.get(name)}")
    lines.append(f"  {'phases':24s} max_seq_length, steps, batch, learning rate, warmup steps")
    for phase in recipe.phases:
        lines.append(f"  {'':24s} {phase.max_seq_length}, {phase.num_train_steps:,}, {phase.train_batch_size:,}, "
                     f"{phase.learning_rate:g}, {phase.num_warmup_steps:,}")
    lines.append(f"  {'':24s}   steps and batch: {sources.get('steps_and_batch')}")
    lines.append(f"  {'':24s}   learning rate and warmup: {sources.get('learning_rate_and_warmup')}")
    if len(recipe.phases) > 1:
        lines.append(f"  {'':24s}   each phase starts from the previous one's weights with a fresh optimizer and "
                     "schedule (Google's and HFL's two-phase runs)")
    return "\n".join(lines)
