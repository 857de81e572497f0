"""Reading documents out of raw bytes, Chinese conversion and sentence splitting."""
import dataclasses
import json
import re

INPUT_FORMATS = ("text", "jsonl")


@dataclasses.dataclass(frozen=True)
class Document:
    id: str  # stable: "<file>:<document number>" or "<file>:<line number>"; seeds derive from it
    sentences: tuple


@dataclasses.dataclass(frozen=True)
class BadRecord:
    id: str
    reason: str  # a short counter name, e.g. "invalid_utf8"
    detail: str
    raw: str  # the start of the record, escaped, so a user can find it


def _escaped_head(raw: bytes, limit: int = 200) -> str:
    return raw[:limit].decode("utf-8", errors="backslashreplace")


def documents_from_text_lines(path: str, lines):
    """Google's layout: one sentence a line, a blank line between documents.

    ``lines`` are raw ``bytes`` lines. A document with a line that is not UTF-8 becomes one
    BadRecord (the whole document, not just the line, so no half-document is trained on).
    Yields Document or BadRecord.
    """
    sentences, bad_line, first_line = [], None, None
    number = 0
    for line_number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            line = ""
            if bad_line is None:
                bad_line = (line_number, error, raw)
            if first_line is None:
                first_line = line_number
            continue
        if line:
            if first_line is None:
                first_line = line_number
            sentences.append(line)
            continue
        if first_line is not None:
            yield _text_document(path, number, sentences, bad_line)
            number += 1
        sentences, bad_line, first_line = [], None, None
    if first_line is not None:
        yield _text_document(path, number, sentences, bad_line)


def _text_document(path, number, sentences, bad_line):
    doc_id = f"{path}:{number}"
    if bad_line is not None:
        line_number, error, raw = bad_line
        return BadRecord(doc_id, "invalid_utf8", f"line {line_number}: {error}", _escaped_head(raw))
    return Document(doc_id, tuple(sentences))


def document_from_json_line(path: str, line_number: int, raw: bytes, *, text_field: str):
    """One JSON object a line; its ``text_field`` holds the document. Returns Document, BadRecord or None (blank)."""
    doc_id = f"{path}:{line_number}"
    if not raw.strip():
        return None
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return BadRecord(doc_id, "invalid_utf8", str(error), _escaped_head(raw))
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return BadRecord(doc_id, "malformed_json", str(error), _escaped_head(raw))
    if not isinstance(record, dict):
        return BadRecord(doc_id, "not_a_json_object", type(record).__name__, _escaped_head(raw))
    if text_field not in record:
        return BadRecord(doc_id, "missing_text_field", f"no field {text_field!r}", _escaped_head(raw))
    text = record[text_field]
    if not isinstance(text, str):
        return BadRecord(doc_id, "text_field_not_a_string", type(text).__name__, _escaped_head(raw))
    return Document(doc_id, tuple(split_sentences(text)))


# A sentence ends at 。！？；… (or ! ? ; and a following space), keeping closing quotes and brackets.
_SENTENCE_END = re.compile(r"""(?:[。！？；]|…+|[!?;](?=\s)|\.(?=\s))[”’」』）)\]》"']*""")


def split_sentences(text: str) -> list:
    sentences = []
    for paragraph in text.splitlines():
        start = 0
        for match in _SENTENCE_END.finditer(paragraph):
            sentences.append(paragraph[start : match.end()])
            start = match.end()
        sentences.append(paragraph[start:])
    return [s.strip() for s in sentences if s.strip()]


class ChineseConverter:
    """OpenCC conversion (``t2s``, ``tw2s``, ``hk2s``, ...); ``none`` leaves text as it is."""

    def __init__(self, config: str):
        self.config = config
        self._opencc = None
        if config != "none":
            import opencc

            self._opencc = opencc.OpenCC(config)

    def convert(self, text: str) -> str:
        return self._opencc.convert(text) if self._opencc else text
