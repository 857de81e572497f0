"""Vocabularies: a BERT ``vocab.txt`` (one token a line, the id is the line number), or a Hugging
Face ``tokenizer.json`` (any ``tokenizers`` model), with the special tokens instances need."""
import dataclasses
import hashlib
import json
from importlib import resources

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_FILE, TOKENIZER_FILE = "vocab.txt", "tokenizer.json"
# The roles instances need, and BERT's names for them (a vocab.txt's special tokens).
ROLES = ("cls", "sep", "mask", "pad")
BERT_SPECIAL = {"cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]", "pad": "[PAD]", "unk": "[UNK]"}
# Names a tokenizer's special tokens go by, per role, where it declares no role (RoBERTa's, BERT's).
KNOWN_NAMES = {"cls": ("[CLS]", "<s>", "<cls>"), "sep": ("[SEP]", "</s>", "<sep>"),
               "mask": ("[MASK]", "<mask>"), "pad": ("[PAD]", "<pad>"), "unk": ("[UNK]", "<unk>")}
SPECIAL_TOKENS_FLAG = "--special_tokens cls=<s>,sep=</s>,mask=<mask>,pad=<pad>"


class VocabError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Vocab:
    tokens: tuple  # id -> token
    sha256: str  # of the file's bytes, so a manifest pins the exact vocabulary
    raw: bytes = dataclasses.field(repr=False, default=b"")  # the file as given, copied beside the output
    file_name: str = VOCAB_FILE  # what it is written as beside the output
    special: tuple = ()  # ((role, token), ...) of a tokenizer.json; a vocab.txt uses BERT's names

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

    @classmethod
    def from_tokenizer_json(cls, data: bytes, *, config: bytes = None, special_tokens: dict = None) -> "Vocab":
        """A Hugging Face tokenizer.json. Special tokens: ``special_tokens`` ({role: token}, from
        --special_tokens), else the tokenizer's declaration: tokenizer_config.json's
        ``cls_token``/``sep_token``/``mask_token``/``pad_token`` (``config``), the post-processor's
        [CLS]/[SEP] (BERT, RoBERTa, template), the padding's token, then special added tokens by
        their usual names ([MASK]/<mask>, ...). A role nothing declares is an error naming the flag."""
        from tokenizers import Tokenizer

        try:
            library = Tokenizer.from_str(data.decode("utf-8"))
            declared = json.loads(data)
        except Exception as error:  # noqa: BLE001 - the library's parse errors have no common class
            raise VocabError(f"not a Hugging Face tokenizer.json: {str(error).splitlines()[0]}") from error
        by_id = library.get_vocab(with_added_tokens=True)
        tokens = [""] * (max(by_id.values()) + 1 if by_id else 0)
        for token, index in by_id.items():
            tokens[index] = token
        roles = _declared_roles(declared, json.loads(config) if config else {})
        roles.update(special_tokens or {})
        missing = [role for role in ROLES if role not in roles]
        if missing:
            raise VocabError(f"the tokenizer declares no {', '.join(missing)} token: name it with "
                             f"--special_tokens {','.join(f'{role}=TOKEN' for role in missing)} "
                             f"(e.g. {SPECIAL_TOKENS_FLAG})")
        for role, token in roles.items():
            if library.token_to_id(token) is None:
                raise VocabError(f"the {role} token {token!r} is not in the tokenizer's vocabulary")
        return cls(tokens=tuple(tokens), sha256=hashlib.sha256(data).hexdigest(), raw=data, file_name=TOKENIZER_FILE,
                   special=tuple(sorted(roles.items())))

    @classmethod
    def from_file_bytes(cls, name: str, data: bytes, *, special: dict = None) -> "Vocab":
        """A vocabulary file as written beside a run's output (``manifest.vocab_file``)."""
        if name.endswith(TOKENIZER_FILE):
            return cls.from_tokenizer_json(data, special_tokens=special)
        return cls.from_bytes(data)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def id_of(self, token: str) -> int:
        return self.tokens.index(token)

    def special_token(self, role: str):
        """The token of a role (cls, sep, mask, pad, unk), or None where it has none."""
        if self.file_name == VOCAB_FILE:
            return BERT_SPECIAL.get(role)
        return dict(self.special).get(role)

    def special_id(self, role: str):
        token = self.special_token(role)
        return None if token is None or token not in self.tokens else self.id_of(token)

    def special_tokens(self) -> dict:
        """{role: {"token", "id"}}: what a manifest records."""
        return {role: {"token": self.special_token(role), "id": self.special_id(role)}
                for role in ROLES + ("unk",) if self.special_id(role) is not None}

    def to_bytes(self) -> bytes:
        return self.raw


def _token_name(value):
    """A tokenizer_config.json token: a string, or an AddedToken written as {"content": ...}."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _declared_roles(tokenizer: dict, config: dict) -> dict:
    roles = {}
    for role in ROLES + ("unk",):
        token = _token_name(config.get(f"{role}_token"))
        if token:
            roles[role] = token
    for role, fallback in (("cls", "bos_token"), ("sep", "eos_token")):
        if role not in roles and _token_name(config.get(fallback)):
            roles[role] = _token_name(config.get(fallback))
    processors = [tokenizer.get("post_processor") or {}]
    processors += processors[0].get("processors", []) if processors[0].get("type") == "Sequence" else []
    for processor in processors:
        if processor.get("type") in ("BertProcessing", "RobertaProcessing"):
            roles.setdefault("cls", processor["cls"][0])
            roles.setdefault("sep", processor["sep"][0])
        elif processor.get("type") == "TemplateProcessing":
            specials = [piece["SpecialToken"]["id"] for piece in processor.get("single", []) if "SpecialToken" in piece]
            if specials:
                roles.setdefault("cls", specials[0])
                roles.setdefault("sep", specials[-1])
    padding = tokenizer.get("padding") or {}
    if padding.get("pad_token"):
        roles.setdefault("pad", padding["pad_token"])
    special_added = {token["content"] for token in tokenizer.get("added_tokens", []) if token.get("special")}
    for role, names in KNOWN_NAMES.items():
        if role not in roles:
            found = [name for name in names if name in special_added]
            if found:
                roles[role] = found[0]
    return roles


def vocab_of_manifest(manifest, data: bytes) -> Vocab:
    """The vocabulary of a run's manifest from its file's bytes (``manifest.vocab_file``), with the
    special tokens the manifest records (a tokenizer.json's may have come from --special_tokens)."""
    recorded = {role: info["token"] for role, info in (manifest.special_tokens or {}).items()}
    return Vocab.from_file_bytes(manifest.vocab_file, data, special=recorded or None)


BUNDLED_VOCAB = "data/bert_base_chinese_vocab.txt"  # Apache-2.0: see wwm_core/data/NOTICE


def bundled_vocab_bytes() -> bytes:
    """Google's BERT-Base Chinese vocabulary (21,128 tokens), used when no ``--vocab_file`` is
    given: the ids of every released BERT-wwm / RoBERTa-wwm-ext / RBT model."""
    return resources.files("wwm_core").joinpath(BUNDLED_VOCAB).read_bytes()
