"""Builds ``wwm_core/data/default_vocab.txt``, the vocabulary used when no ``--vocab_file`` is given.

Run ``python -m wwm_core.default_vocab`` to regenerate it. It is made from jieba's bundled
dictionary (characters ranked by the summed frequency of the words they occur in) plus ASCII
letters, digits and punctuation with their ``##`` forms, so every common character has an id and
English words fall back to letter pieces instead of ``[UNK]``. Its ids do NOT match the released
BERT-wwm / RoBERTa-wwm-ext checkpoints: for continued pretraining pass their ``vocab.txt``.
"""
import collections
import pathlib
import string
import unicodedata

NUM_CJK_CHARACTERS = 8000
OUTPUT = pathlib.Path(__file__).parent / "data" / "default_vocab.txt"


def _is_cjk(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK UNIFIED IDEOGRAPH")


def _jieba_character_frequencies() -> collections.Counter:
    import jieba  # only needed to regenerate the file

    dictionary = pathlib.Path(jieba.__file__).parent / "dict.txt"
    counts = collections.Counter()
    for line in dictionary.read_text(encoding="utf-8").splitlines():
        word, frequency = line.split(" ")[:2]
        for char in word:
            if _is_cjk(char):
                counts[char] += int(frequency)
    return counts


def build_tokens() -> list:
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ascii_pieces = string.digits + string.ascii_lowercase + string.punctuation
    tokens += list(ascii_pieces)
    tokens += ["##" + c for c in string.digits + string.ascii_lowercase]
    tokens += list("，。、；：？！“”‘’（）《》〈〉【】「」『』…—～·¥")
    ranked = _jieba_character_frequencies().most_common(NUM_CJK_CHARACTERS)
    tokens += sorted(char for char, _ in ranked)  # sorted so ids are stable across jieba's ties
    return tokens


if __name__ == "__main__":
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text("\n".join(build_tokens()) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT}")
