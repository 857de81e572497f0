"""Training a vocabulary on a corpus with the ``tokenizers`` library, and auditing a tokenizer on
held-out text: ``wwm tokenizer train`` and the tokenizer section of ``wwm report``.

Models:
- ``wordpiece``: BERT's layout (its normalizer and pre-tokenizer: one token per CJK character,
  ``##`` pieces of other words), [PAD] [UNK] [CLS] [SEP] [MASK], also written as a vocab.txt;
- ``bpe``: byte-level BPE as ModernBERT-style encoders use (GPT-2's pre-tokenizer keeps a run of
  Chinese characters together, so merges learn frequent words and affixes; every character is
  representable by bytes, so nothing is unknown), <s> <pad> </s> <unk> <mask>; ``byte_level``
  false gives a character BPE whose unknown characters become <unk>.

Character coverage (non-byte models): the most frequent characters that make up ``coverage`` of
the training text's characters form the alphabet; the rarer ones become the unknown token.
"""
import collections
import dataclasses
import re

import numpy as np

MODELS = ("wordpiece", "bpe")
WORDPIECE_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BPE_SPECIAL = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
ROLES_OF = {"[PAD]": "pad", "[UNK]": "unk", "[CLS]": "cls", "[SEP]": "sep", "[MASK]": "mask",
            "<s>": "cls", "<pad>": "pad", "</s>": "sep", "<unk>": "unk", "<mask>": "mask"}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")


@dataclasses.dataclass(frozen=True)
class TokenizerSettings:
    model: str = "bpe"
    vocab_size: int = 32_000
    byte_level: bool = True  # bpe only
    character_coverage: float = 0.9995  # non-byte models: the share of characters the alphabet covers
    min_frequency: int = 2
    lowercase: bool = False
    special_tokens: tuple = ()  # () = the model's usual ones

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}")
        if not 100 <= self.vocab_size <= 2_000_000:
            raise ValueError("vocab_size must be in 100..2,000,000")
        if not 0.5 <= self.character_coverage <= 1.0:
            raise ValueError("character_coverage must be in [0.5, 1]")

    @property
    def specials(self) -> tuple:
        return self.special_tokens or (WORDPIECE_SPECIAL if self.model == "wordpiece" else BPE_SPECIAL)

    @property
    def byte_level_bpe(self) -> bool:
        return self.model == "bpe" and self.byte_level


def alphabet(character_counts: collections.Counter, coverage: float) -> list:
    """The most frequent characters whose occurrences make up at least ``coverage`` of all."""
    counts = [(c, n) for c, n in character_counts.most_common() if not c.isspace()]  # spaces separate, never tokens
    total = sum(n for _, n in counts)
    chosen, covered = [], 0
    for character, count in counts:
        if covered >= coverage * total:
            break
        chosen.append(character)
        covered += count
    return chosen


def new_tokenizer(settings: TokenizerSettings):
    """An untrained tokenizer with the model's normalizer, pre-tokenizer and decoder."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    specials = settings.specials
    unknown = next((t for t in specials if ROLES_OF.get(t) == "unk"), None)
    if settings.model == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=unknown, max_input_chars_per_word=200))
        tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                          strip_accents=None, lowercase=settings.lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        return tokenizer
    tokenizer = Tokenizer(models.BPE(unk_token=None if settings.byte_level else unknown))
    steps = [normalizers.NFC()] + ([normalizers.Lowercase()] if settings.lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    if settings.byte_level:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                           pre_tokenizers.Punctuation(), pre_tokenizers.Digits()])
        tokenizer.decoder = decoders.BPEDecoder()
    return tokenizer


def train(texts, settings: TokenizerSettings, *, character_counts: collections.Counter = None):
    """A trained ``tokenizers.Tokenizer`` with its post-processor ([CLS] A [SEP] / <s> A </s>).
    ``texts``: an iterable of strings (read once); ``character_counts``: the training text's
    characters, for the alphabet of non-byte models."""
    from tokenizers import pre_tokenizers, processors, trainers

    tokenizer = new_tokenizer(settings)
    specials = list(settings.specials)
    options = dict(vocab_size=settings.vocab_size, min_frequency=settings.min_frequency, special_tokens=specials,
                   show_progress=False)
    if settings.byte_level_bpe:
        options["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    elif character_counts is not None:
        kept = alphabet(character_counts, settings.character_coverage)
        options.update(initial_alphabet=kept, limit_alphabet=len(kept))
    trainer = trainers.WordPieceTrainer(**options) if settings.model == "wordpiece" else trainers.BpeTrainer(**options)
    tokenizer.train_from_iterator(texts, trainer)
    role = {ROLES_OF.get(t, t): t for t in specials}
    cls, sep = role.get("cls", specials[0]), role.get("sep", specials[-1])
    cls_id, sep_id = tokenizer.token_to_id(cls), tokenizer.token_to_id(sep)
    if settings.byte_level_bpe:
        tokenizer.post_processor = processors.RobertaProcessing((sep, sep_id), (cls, cls_id), trim_offsets=True,
                                                                add_prefix_space=False)
    else:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1", special_tokens=[(cls, cls_id), (sep, sep_id)])
    return tokenizer


def tokenizer_config(settings: TokenizerSettings) -> dict:
    """tokenizer_config.json: the special tokens' roles, as transformers and ``--tokenizer`` read them."""
    config = {f"{ROLES_OF[t]}_token": t for t in settings.specials if t in ROLES_OF}
    config.update(model_max_length=None, tokenizer_class="PreTrainedTokenizerFast",
                  do_lower_case=settings.lowercase)
    return {k: v for k, v in config.items() if v is not None}


def audit(tokenized, sentences, *, unknown_id) -> dict:
    """What a tokenizer makes of held-out sentences (a ``tokenization.TokenizedBatch`` of them):
    unknown-token rate, characters per token, and the share of Chinese characters (by occurrence)
    it covers, i.e. tokenizes with whole-character tokens that are not the unknown token (a
    character split into byte pieces, or unknown, is not covered)."""
    characters = sum(len(s) for s in sentences)
    tokens = len(tokenized.ids)
    unknown = int(np.count_nonzero(tokenized.ids == unknown_id)) if unknown_id is not None else 0
    cjk, uncovered, distinct, distinct_uncovered = cjk_coverage(tokenized, sentences, unknown_id=unknown_id)
    return {"sentences": len(sentences), "characters": characters, "tokens": tokens, "unknown_tokens": unknown,
            "unknown_rate": unknown / tokens if tokens else None,
            "characters_per_token": characters / tokens if tokens else None,
            "cjk_characters": cjk, "cjk_uncovered": uncovered,
            "cjk_covered_share": (cjk - uncovered) / cjk if cjk else None,
            "cjk_distinct": distinct, "cjk_distinct_uncovered": distinct_uncovered}


def cjk_coverage(tokenized, sentences, *, unknown_id) -> tuple:
    """(CJK characters, of them not covered, distinct CJK characters, of them ever not covered):
    a character is covered when exactly one token spans it and that token is not unknown."""
    text = "\n".join(sentences)
    first = np.cumsum([0] + [len(s) + 1 for s in sentences[:-1]], dtype=np.int64)
    sentence = np.repeat(np.arange(len(sentences)), tokenized.sentence_tokens)
    starts, ends = first[sentence] + tokenized.starts, first[sentence] + tokenized.ends
    covering = np.zeros(len(text) + 1, np.int64)
    np.add.at(covering, starts, 1)
    np.add.at(covering, ends, -1)
    covering = np.cumsum(covering)[:len(text)]
    bad = np.zeros(len(text) + 1, np.int64)
    if unknown_id is not None:
        unknown = tokenized.ids == unknown_id
        np.add.at(bad, starts[unknown], 1)
        np.add.at(bad, ends[unknown], -1)
    bad = np.cumsum(bad)[:len(text)] > 0
    positions = np.array([m.start() for m in _CJK.finditer(text)], np.int64)
    if not len(positions):
        return 0, 0, 0, 0
    not_covered = (covering[positions] != 1) | bad[positions]
    characters = np.array([text[p] for p in positions.tolist()])
    distinct = set(characters.tolist())
    return (len(positions), int(not_covered.sum()), len(distinct), len(set(characters[not_covered].tolist())))
