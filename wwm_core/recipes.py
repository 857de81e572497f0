"""Released models as recipes: how each model's data was made and how it was trained, with the
source of every number (HFL's BERT-wwm family and MacBERT; Chinese ModernBERT).

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
# MacBERT (Cui et al., "Revisiting Pre-Trained Models for Chinese Natural Language Processing", Findings of
# EMNLP 2020, arXiv 2004.13922) and its README (github.com/ymcui/MacBERT).
MACBERT_README = ("HFL MacBERT README (github.com/ymcui/MacBERT): 'MLM as correction', similar words from the Synonyms "
                  "toolkit (word2vec), 'If an N-gram is selected to mask, we will find similar words individually', "
                  "random word when there is none; 'Whole Word Masking (WWM), N-gram masking, Sentence-Order "
                  "Prediction (SOP)'; MacBERT-base 12-layer 768-hidden, MacBERT-large 24-layer 1024-hidden")
MACBERT_PAPER_MASKING = ("Cui et al. 2020 (arXiv 2004.13922) §3, as its published summaries quote it: 'a percentage of "
                         "40%, 30%, 20%, 10% for word-level unigram to 4-gram', 'A percentage of 15% input words is "
                         "used for masking, where 80% will replace with similar words, 10% replace with a random word, "
                         "and keep with original words for the rest of 10%'")
MACBERT_CONFIG = ("hfl/chinese-macbert-base config.json on the hub: max_position_embeddings 512, vocab_size 21128 "
                  "(Google's vocabulary; the README: 'Please use BertTokenizer')")
OUR_CHOICE = "our choice (the sources read here do not state it)"
MACBERT_AS_ROBERTA = (OUR_CHOICE + ": RoBERTa-wwm-ext's, which MacBERT 'improves upon' (same authors, same 5.4B-word "
                      "data); the MacBERT paper's training table could not be read in this project, so its optimizer, "
                      "steps and batch are not quoted")
# Chinese ModernBERT (Zhao, Wang, Fu, Cheng; Ant Group; arXiv 2510.12285v1, abstract).
MODERNBERT_ABSTRACT = ("arXiv 2510.12285v1 (Chinese ModernBERT) abstract: 'a hardware-aware 32k BPE vocabulary', "
                       "'whole-word masking (WWM) with a dynamic masking curriculum (30%->15%)', 'a two-stage "
                       "pre-training pipeline that extends the native context from 1,024 to 8,192 tokens', "
                       "'~1.2T Chinese tokens'")
MODERNBERT_ISSUE = ("wwm-data issue 26's summary of arXiv 2510.12285 ('no sentence task, sequences packed across "
                    "documents'); the paper's body was not read in this project")


@dataclasses.dataclass(frozen=True)
class TrainingPhase:
    max_seq_length: int
    num_train_steps: int
    train_batch_size: int
    learning_rate: float
    num_warmup_steps: int
    masked_lm_prob: float = None  # dynamic masking's rate in this phase; None: the data's


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
    made_by: str = "HFL"
    vocab: str = "Google's bert-base-chinese vocab.txt (bundled)"
    needs: tuple = ()  # flags a run of this recipe must give: similar_words, tokenizer

    def data_settings(self) -> dict:
        return {"max_seq_lengths": list(self.max_seq_lengths), "sentence_task": self.sentence_task,
                "paired_input": self.paired_input, "dupe_factor": self.dupe_factor,
                "masked_lm_prob": self.masked_lm_prob, "ngram_weights": list(self.ngram_weights),
                "replacement": self.replacement,
                "short_seq_prob": self.short_seq_prob,
                "max_predictions_per_seq": [default_max_predictions(length, self.masked_lm_prob)
                                            for length in self.max_seq_lengths],
                "masking": self.masking, "segmenter": self.segmenter, "ltp_model": self.ltp_model,
                "opencc_config": self.opencc_config, "vocab": self.vocab,
                **({"pack_across_documents": True, "pack_fill": self.pack_fill} if self.pack_across_documents else {})}

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

# What both MacBERT recipes share: the data, and where its settings come from.
_MACBERT_DATA = dict(_DATA, max_seq_lengths=(512,), sentence_task="sop", paired_input=True,
                     ngram_weights=(0.4, 0.3, 0.2, 0.1), replacement="macbert", needs=("similar_words",),
                     optimizer="adamw")
_MACBERT_SOURCES = {
    **_COMMON_SOURCES,
    "sentence_task": MACBERT_README, "paired_input": "SOP pairs two consecutive segments",
    "masked_lm_prob": MACBERT_PAPER_MASKING, "ngram_weights": MACBERT_PAPER_MASKING,
    "replacement": MACBERT_PAPER_MASKING + "; " + MACBERT_README,
    "dupe_factor": OUR_CHOICE + ": HFL's 5 for its other models (" + HFL_ISSUE_28 + ")",
    "masking": OUR_CHOICE + ": static, as HFL's other models (" + HFL_FAQ_ROBERTA + ")",
    "segmenter": "Cui et al. 2020 use LTP for whole words, as for BERT-wwm (" + HFL_LTP + ")",
    "vocab": MACBERT_CONFIG,
    "similar_words": "MacBERT used the Synonyms toolkit's word2vec vectors (words.vector.gz: --similar_words takes "
                     "that file, or any word2vec file or table); none is bundled",
    "model_config": MACBERT_README,
}
_MACBERT_LARGE_TRAINING = MACBERT_AS_ROBERTA.replace("RoBERTa-wwm-ext's", "RoBERTa-wwm-ext-large's")

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
    "macbert-base": Recipe(
        name="macbert-base", model="MacBERT-base", model_config="base", init_checkpoint="google-bert/bert-base-chinese",
        phases=(TrainingPhase(512, 1_000_000, 384, 1e-4, 10_000),),
        sources={**_MACBERT_SOURCES,
                 "max_seq_lengths": MACBERT_CONFIG + "; one phase at 512 is " + OUR_CHOICE,
                 "init_checkpoint": "arXiv 2004.13922 as summarized (alphaxiv overview): base models inherited "
                                    "the vocabulary and weights of Google's Chinese BERT-base",
                 "optimizer": MACBERT_AS_ROBERTA, "steps_and_batch": MACBERT_AS_ROBERTA,
                 "learning_rate_and_warmup": MACBERT_AS_ROBERTA + " (" + HFL_ISSUE_141 + "; " + HFL_ISSUE_72 + ")"},
        **_MACBERT_DATA),
    "macbert-large": Recipe(
        name="macbert-large", model="MacBERT-large", model_config="large", init_checkpoint=None,
        phases=(TrainingPhase(512, 2_000_000, 512, 5e-5, 10_000),),
        sources={**_MACBERT_SOURCES,
                 "max_seq_lengths": MACBERT_CONFIG + " (the large model's too); one phase at 512 is " + OUR_CHOICE,
                 "init_checkpoint": OUR_CHOICE + ": random, as RoBERTa-wwm-ext-large (" + HFL_TABLE + ")",
                 "optimizer": _MACBERT_LARGE_TRAINING, "steps_and_batch": _MACBERT_LARGE_TRAINING,
                 "learning_rate_and_warmup": _MACBERT_LARGE_TRAINING + " (" + HFL_ISSUE_141 + ")"},
        **_MACBERT_DATA),
    "chinese-modernbert": Recipe(
        name="chinese-modernbert", model="Chinese ModernBERT", made_by="Ant Group", max_seq_lengths=(1024, 8192),
        sentence_task="none", paired_input=False, pack_across_documents=True, pack_fill="tokens",
        dupe_factor=1, masked_lm_prob=0.3, short_seq_prob=0.1, masking="dynamic", segmenter="ltp",
        ltp_model="LTP/legacy", opencc_config="none", needs=("tokenizer",),
        vocab="the user's --tokenizer: a 32k BPE (wwm tokenizer train --model bpe --vocab_size 32000)",
        model_config="base-8k", init_checkpoint=None, optimizer="adamw",
        phases=(TrainingPhase(1024, 100_000, 256, 5e-4, 10_000, masked_lm_prob=0.3),
                TrainingPhase(8192, 10_000, 32, 5e-4, 1_000, masked_lm_prob=0.15)),
        sources={**_COMMON_SOURCES,
                 "max_seq_lengths": MODERNBERT_ABSTRACT,
                 "sentence_task": MODERNBERT_ISSUE, "paired_input": MODERNBERT_ISSUE,
                 "pack_across_documents": MODERNBERT_ISSUE,
                 "pack_fill": OUR_CHOICE + ": instances filled to the token, as ModernBERT-style packers do",
                 "masked_lm_prob": MODERNBERT_ABSTRACT + ": the data is made for the first phase's 30% (its "
                                   "max_predictions_per_seq fit it); the trainer masks 30% then 15%",
                 "masking": MODERNBERT_ABSTRACT + ": dynamic (masked by the trainer, the rate per phase)",
                 "masking_schedule": MODERNBERT_ABSTRACT + "; read here as 30% in the 1,024 phase and 15% in the "
                                     "8,192 phase (" + OUR_CHOICE + " where within a phase the rate changes)",
                 "ngram_weights": MODERNBERT_ABSTRACT + ": whole words, one at a time",
                 "replacement": OUR_CHOICE + ": Google's 80/10/10, which the abstract does not change",
                 "dupe_factor": OUR_CHOICE + ": 1, since dynamic masking draws new masks every epoch",
                 "short_seq_prob": "unused: one segment per instance",
                 "segmenter": OUR_CHOICE + ": LTP, the recipes' segmenter (the abstract says whole words, not how "
                                           "they were found)",
                 "opencc_config": OUR_CHOICE + ": text kept as written",
                 "vocab": MODERNBERT_ABSTRACT + "; it cannot be downloaded here: give --tokenizer (a tokenizer.json, "
                          "a folder or a hub id)",
                 "tokenizer": "a 32k BPE vocabulary (" + MODERNBERT_ABSTRACT + "); `wwm tokenizer train --model bpe "
                              "--vocab_size 32000` makes one from your prepared corpus",
                 "model_config": OUR_CHOICE + ": base-8k, BERT-base with 8,192 positions; the TensorFlow trainer "
                                 "has no RoPE or alternating local/global attention, so it trains a BERT on the data",
                 "init_checkpoint": MODERNBERT_ABSTRACT.split(":")[0] + ": 'a from-scratch Chinese encoder'",
                 "optimizer": OUR_CHOICE + ": AdamW (the abstract names a damped-cosine schedule, which the trainer "
                              "does not have: linear decay)",
                 "steps_and_batch": OUR_CHOICE + ": a scale to start from, not the paper's (~1.2T tokens)",
                 "learning_rate_and_warmup": OUR_CHOICE},
        ngram_weights=(1.0,), replacement="bert"),
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
    lines = [f"{recipe.name}: the data and training of {recipe.made_by}'s {recipe.model}", "", "data (wwm run):"]
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
    lines.append(f"  {'phases':24s} max_seq_length, steps, batch, learning rate, warmup steps"
                 + (", masking rate" if any(p.masked_lm_prob for p in recipe.phases) else ""))
    for phase in recipe.phases:
        lines.append(f"  {'':24s} {phase.max_seq_length}, {phase.num_train_steps:,}, {phase.train_batch_size:,}, "
                     f"{phase.learning_rate:g}, {phase.num_warmup_steps:,}"
                     + (f", {phase.masked_lm_prob:g}" if phase.masked_lm_prob else ""))
    lines.append(f"  {'':24s}   steps and batch: {sources.get('steps_and_batch')}")
    lines.append(f"  {'':24s}   learning rate and warmup: {sources.get('learning_rate_and_warmup')}")
    if "masking_schedule" in sources:
        lines.append(f"  {'':24s}   masking rate per phase: {sources['masking_schedule']}")
    for need in recipe.needs:
        lines.append(f"  needs --{need}: {sources.get(need)}")
    if len(recipe.phases) > 1:
        lines.append(f"  {'':24s}   each phase starts from the previous one's weights with a fresh optimizer and "
                     "schedule (Google's and HFL's two-phase runs)")
    return "\n".join(lines)
