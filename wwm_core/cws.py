"""Chinese word segmentation data: gold corpora, the usual span scoring, user dictionaries.

Pure functions over text; the segmenters themselves are in ``segmentation.py``.
"""
import dataclasses
import re


class CorpusFormatError(ValueError):
    pass


def _conllu_sentences(lines):
    """Word forms of each CoNLL-U sentence. Multiword-token ranges (``3-4``) and empty nodes
    (``5.1``) are skipped: their forms are not words of the surface text."""
    words = []
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            if words:
                yield words
            words = []
            continue
        if line.startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) != 10:
            raise CorpusFormatError(f"line {number}: a CoNLL-U token line has 10 tab-separated columns, "
                                    f"this one has {len(columns)}")
        if "-" in columns[0] or "." in columns[0]:
            continue
        words.append(columns[1])
    if words:
        yield words


def read_segmented(text: str) -> list:
    """Sentences as word lists, from CoNLL-U (detected by its tab-separated token lines) or from
    one sentence a line with words separated by spaces. Blank lines are skipped."""
    lines = text.splitlines()
    if any(line.count("\t") == 9 and not line.startswith("#") for line in lines[:200]):
        return list(_conllu_sentences(lines))
    return [line.split() for line in lines if line.strip()]


def to_space_separated(sentences) -> str:
    """The training-file form LTP's CWSTrainer reads: one sentence a line, words separated by spaces."""
    for words in sentences:
        for word in words:
            if any(c.isspace() for c in word):
                raise CorpusFormatError(f"the word {word!r} contains a space; it cannot be written as training data")
    return "".join(" ".join(words) + "\n" for words in sentences)


def word_spans(lengths) -> set:
    spans, start = set(), 0
    for length in lengths:
        spans.add((start, start + length))
        start += length
    return spans


@dataclasses.dataclass(frozen=True)
class SpanScore:
    """Precision, recall and F1 over word spans: a predicted word is correct when a gold word has
    exactly its start and end (the standard CWS measure, as in the SIGHAN bakeoff script)."""
    correct: int
    predicted: int
    gold: int
    sentences: int
    mismatched_sentences: int  # predicted words that do not spell the gold sentence (scored anyway)

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_json(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "correct": self.correct,
                "predicted_words": self.predicted, "gold_words": self.gold, "sentences": self.sentences,
                "mismatched_sentences": self.mismatched_sentences}


def score_spans(gold_word_lengths, predicted_word_lengths) -> SpanScore:
    """Scores per-sentence word lengths (as segmenters return them) against gold ones."""
    correct = predicted = gold = mismatched = 0
    for gold_lengths, predicted_lengths in zip(gold_word_lengths, predicted_word_lengths, strict=True):
        if sum(gold_lengths) != sum(predicted_lengths):
            mismatched += 1
        gold_set, predicted_set = word_spans(gold_lengths), word_spans(predicted_lengths)
        correct += len(gold_set & predicted_set)
        predicted += len(predicted_set)
        gold += len(gold_set)
    return SpanScore(correct, predicted, gold, len(gold_word_lengths), mismatched)


@dataclasses.dataclass(frozen=True)
class UserWord:
    word: str
    frequency: int = None  # None: the segmenter picks one that makes the word win


# jieba's own line pattern: the word (may contain spaces), then an optional frequency, then an
# optional part-of-speech tag.
_USER_DICT_LINE = re.compile(r"^(.+?)( [0-9]+)?( [a-z]+)?$")


def read_user_dict(text: str) -> list:
    """jieba's user dictionary format, which LTP's word lists also fit: one word a line, optionally
    followed by a frequency and a part-of-speech tag (ignored), separated by spaces. A leading byte
    order mark is dropped, as jieba does; ``#`` starts a comment line."""
    words = []
    for line in text.lstrip("\ufeff").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, frequency, _ = _USER_DICT_LINE.match(line).groups()
        words.append(UserWord(word.strip(), int(frequency) if frequency else None))
    return words
