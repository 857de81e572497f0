"""Reading documents out of raw bytes, Chinese conversion and sentence splitting."""
import dataclasses
import json
import re

INPUT_FORMATS = ("text", "jsonl", "wiki", "parquet")

# How a raw document's text is laid out, which decides how it becomes sentences.
LINES = "lines"  # Google's layout: every line is a sentence
PROSE = "prose"  # paragraphs: split into sentences at Chinese and English sentence ends
WIKITEXT = "wikitext"  # MediaWiki markup: converted to plain lines first


@dataclasses.dataclass(frozen=True)
class RawDocument:
    """A document as read, before cleaning."""
    id: str  # stable: "<file>:<document number>", "<file>:<line number>" or "<file>#<page id>"
    text: str
    layout: str = PROSE
    source: str = ""
    title: str = ""


@dataclasses.dataclass(frozen=True)
class Document:
    """A cleaned document: what instances are made from (and what ``wwm prepare`` stores)."""
    id: str  # seeds derive from it
    sentences: tuple
    source: str = ""
    title: str = ""
    changes: str = "{}"  # JSON object: what cleaning changed, counted ({"html_entities_decoded": 2, ...})


@dataclasses.dataclass(frozen=True)
class BadRecord:
    id: str
    reason: str  # a short counter name, e.g. "invalid_utf8"
    detail: str
    raw: str  # the start of the record, escaped, so a user can find it


def _escaped_head(raw: bytes, limit: int = 200) -> str:
    return raw[:limit].decode("utf-8", errors="backslashreplace")


def documents_from_text_lines(path: str, lines, *, source: str = "text"):
    """Google's layout: one sentence a line, a blank line between documents.

    ``lines`` are raw ``bytes`` lines. A document with a line that is not UTF-8 becomes one
    BadRecord (the whole document, not just the line, so no half-document is trained on).
    Yields RawDocument or BadRecord.
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
            yield _text_document(path, number, sentences, bad_line, source)
            number += 1
        sentences, bad_line, first_line = [], None, None
    if first_line is not None:
        yield _text_document(path, number, sentences, bad_line, source)


def _text_document(path, number, sentences, bad_line, source):
    doc_id = f"{path}:{number}"
    if bad_line is not None:
        line_number, error, raw = bad_line
        return BadRecord(doc_id, "invalid_utf8", f"line {line_number}: {error}", _escaped_head(raw))
    return RawDocument(doc_id, "\n".join(sentences), LINES, source=source)


@dataclasses.dataclass(frozen=True)
class JsonlPreset:
    """Where a JSON-lines corpus keeps its title and text."""
    title_field: str
    text_fields: tuple  # joined with line breaks, in this order, skipping empty ones


# The public "ext" corpora (brightmart/nlp_chinese_corpus), with their real field names.
JSONL_PRESETS = {
    "wiki2019zh": JsonlPreset("title", ("text",)),
    "news2016zh": JsonlPreset("title", ("desc", "content")),
    "baike2019qa": JsonlPreset("title", ("desc", "answer")),
    "webtext2019zh": JsonlPreset("title", ("desc", "content")),
    "translation2019zh": JsonlPreset("", ("chinese",)),
}


def document_from_json_line(path: str, line_number: int, raw: bytes, *, preset: JsonlPreset, source: str = "jsonl"):
    """One JSON object a line, its text in the preset's fields. Returns RawDocument, BadRecord or None (blank)."""
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
    present = [f for f in preset.text_fields if f in record]
    if not present:
        return BadRecord(doc_id, "missing_text_field", f"none of the fields {list(preset.text_fields)}",
                         _escaped_head(raw))
    wrong = [f for f in present + ([preset.title_field] if preset.title_field in record else [])
             if not isinstance(record[f], str)]
    if wrong:
        return BadRecord(doc_id, "text_field_not_a_string",
                         ", ".join(f"{f}: {type(record[f]).__name__}" for f in wrong), _escaped_head(raw))
    text = "\n".join(record[f] for f in present if record[f].strip())
    return RawDocument(doc_id, text, PROSE, source=source, title=record.get(preset.title_field, "") or "")


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
