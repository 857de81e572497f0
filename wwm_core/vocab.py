"""BERT vocabularies (one token a line, the id is the line number)."""
import dataclasses
import hashlib
from importlib import resources

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclasses.dataclass(frozen=True)
class Vocab:
    tokens: tuple  # id -> token
    sha256: str  # of the file's bytes, so a manifest pins the exact vocabulary
    raw: bytes = dataclasses.field(repr=False, default=b"")  # the file as given, copied beside the output

    @classmethod
    def from_bytes(cls, data: bytes) -> "Vocab":
        text = data.decode("utf-8")
        # Google's loader reads "\n"-separated lines and strips each; str.splitlines() would also
        # split on the rare separators (U+2028, \x1c, ...) some vocabularies hold as tokens.
        tokens = tuple(line.strip() for line in text.split("\n"))
        while tokens and not tokens[-1]:
            tokens = tokens[:-1]
        missing = [t for t in SPECIAL_TOKENS if t not in tokens]
        if missing:
            raise ValueError(f"vocabulary lacks the special tokens {missing}; is this a BERT vocab.txt?")
        return cls(tokens=tokens, sha256=hashlib.sha256(data).hexdigest(), raw=data)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def id_of(self, token: str) -> int:
        return self.tokens.index(token)

    def to_bytes(self) -> bytes:
        return self.raw


BUNDLED_VOCAB = "data/bert_base_chinese_vocab.txt"  # Apache-2.0: see wwm_core/data/NOTICE


def bundled_vocab_bytes() -> bytes:
    """Google's BERT-Base Chinese vocabulary (21,128 tokens), used when no ``--vocab_file`` is
    given: the ids of every released BERT-wwm / RoBERTa-wwm-ext / RBT model."""
    return resources.files("wwm_core").joinpath(BUNDLED_VOCAB).read_bytes()
