"""Reading documents out of raw bytes, Chinese conversion and sentence splitting."""
import codecs
import dataclasses
import itertools
import json
import re

from wwm_core.normalize import join_fields

INPUT_FORMATS = ("text", "jsonl", "wiki", "parquet")

# How a raw document's text is laid out, which decides how it becomes sentences.
LINES = "lines"  # Google's layout: every line is a sentence
PROSE = "prose"  # paragraphs: split into sentences at Chinese and English sentence ends
WIKITEXT = "wikitext"  # MediaWiki markup: converted to plain lines first


@dataclasses.dataclass(frozen=True)
class RawDocument:
    """A document as read, before cleaning."""
    # stable, and the same wherever the corpus lies and however its files are cut for reading:
    # "<source>:<path under the input root>@<byte where the record begins>" (text, jsonl) or
    # "...#<page id>" (wiki)
    id: str
    text: str
    layout: str = PROSE
    source: str = ""
    title: str = ""
    changes: dict = dataclasses.field(default_factory=dict)  # what reading already changed (clean counts it)


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


@dataclasses.dataclass(frozen=True)
class Damage:
    """A marker in a stream of byte chunks where bytes could not be trusted: a compressed member
    whose checksum failed (``corrupt_compressed_data``), a file that ends inside a compressed
    stream (``truncated_compressed_file``), a line over the size limit (``record_too_large``), a
    file in an encoding that cannot be read (``utf16_without_bom``). Readers turn the record it
    falls in into one dead letter with this reason; nothing of it is ever read as text."""
    reason: str
    detail: str


# The most bytes one record (a line, a document, a page) may hold before it is refused: memory is
# bounded by one record, never by a file.
MAX_RECORD_BYTES = 64 * 1024 * 1024
# How much of a file's start is looked at to recognise UTF-16 without a byte-order mark.
ENCODING_SAMPLE_BYTES = 64 * 1024

BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
)


def _decodes(sample: bytes, encoding: str) -> bool:
    """Whether ``sample`` is valid in ``encoding``, but for a character cut at its end."""
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        return True
    except UnicodeDecodeError:
        return False


def looks_like_utf16(sample: bytes) -> bool:
    """UTF-16 without a byte-order mark, by the evidence of the whole sample: NUL bytes (one in
    every ASCII character, line breaks included) nearly all at odd offsets (little endian) or all
    at even ones (big endian), the sample valid UTF-16 in that byte order, and not text that is
    UTF-8: a UTF-8 file is never taken for UTF-16 for a few stray NUL bytes (they are control
    characters, removed and counted where they stand), unless NULs are a quarter of its bytes
    (ASCII in UTF-16, which is also valid UTF-8, is half NULs)."""
    odd = sample[1::2].count(0)
    even = sample[0::2].count(0)
    if odd + even < 2 or max(odd, even) < 0.9 * (odd + even):
        return False
    if not _decodes(sample, "utf-16-le" if odd > even else "utf-16-be"):
        return False
    return not _decodes(sample, "utf-8") or (odd + even) >= len(sample) / 4


def utf8_chunks(chunks, stats):
    """Byte chunks of a text file -> the same text as UTF-8 byte chunks (Damage markers pass).

    A UTF-8 byte-order mark is dropped; UTF-16 and UTF-32 with a byte-order mark are decoded
    (lone surrogates are kept as such and make their record a dead letter later, never a
    replacement character); UTF-16 without a byte-order mark cannot be told apart from other
    binaries with certainty and becomes one Damage ``utf16_without_bom`` for the whole file:
    read as bytes, its line breaks ("\\n\\0") would never be blank lines and every document would
    merge with the next."""
    chunks = iter(chunks)
    early, head = [], b""  # what came before the encoding was decided, in order
    for chunk in chunks:
        early.append(chunk)
        if isinstance(chunk, Damage):
            break
        head += chunk
        if len(head) >= ENCODING_SAMPLE_BYTES:
            break
    encoding = next((name for mark, name in BOMS if head.startswith(mark)), None)
    if encoding is None and looks_like_utf16(head[:ENCODING_SAMPLE_BYTES]):
        stats["files_refused_as_utf16_without_bom"] += 1
        yield Damage("utf16_without_bom", "NUL bytes at every other position: UTF-16 without a byte-order mark. "
                     "Convert it to UTF-8 (iconv -f UTF-16LE -t UTF-8) or add a byte-order mark")
        return
    if encoding is not None:
        mark = next(mark for mark, name in BOMS if name == encoding)
        first = next(i for i, chunk in enumerate(early) if not isinstance(chunk, Damage) and chunk)
        early[first:] = [b"".join(c for c in early[first:] if not isinstance(c, Damage))[len(mark):],
                         *[c for c in early[first:] if isinstance(c, Damage)]]
    chunks = itertools.chain(early, chunks)
    if encoding in (None, "utf-8"):
        if encoding:
            stats["files_with_utf8_bom"] += 1
        yield from chunks
        return
    stats[f"files_decoded_from_{encoding.replace('-', '_')}"] += 1
    decoder = codecs.getincrementaldecoder(encoding)(errors="surrogatepass")
    for chunk in chunks:
        if isinstance(chunk, Damage):
            yield chunk
        else:
            yield decoder.decode(chunk).encode("utf-8", "surrogatepass")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        yield Damage("invalid_utf16", f"the file ends inside a character: {error}")


def split_lines(chunks, stats, *, max_line_bytes: int = MAX_RECORD_BYTES, base: int = 0):
    """UTF-8 byte chunks -> (position, line) for every line, its end cut off, and (position,
    Damage) markers. ``position`` is where the line begins in the stream, plus ``base`` (a byte
    range of a file starts at ``base``): what ids are made of, so they do not depend on where a
    file was cut for reading.

    A line ends at "\n", "\r\n" or a lone "\r" (old Mac files, counted in
    ``files_with_cr_line_ends``: read line by line, never merged; a JSON line cannot hold a raw
    CR, so nothing valid is cut). A line cut by a Damage is part of it: the bytes since the last
    line end and up to the next one are dropped with it, so no half line is ever read. A line over
    ``max_line_bytes`` becomes a Damage ``record_too_large`` without being held in memory."""
    pending, size = [], 0  # the line being read, and its size so far
    line_start = position = base  # where the line being read began; where the next chunk begins
    skipping = too_long = False  # inside a line given up on (cut by a Damage, or too long)
    last_cr = cr_seen = False  # the previous chunk ended with "\r"; a lone CR was seen
    for chunk in chunks:
        if isinstance(chunk, Damage):
            pending, size, skipping, too_long = [], 0, True, False
            yield line_start, chunk
            continue
        if not chunk:
            continue
        lone_cr = chunk.count(b"\r") - chunk.count(b"\r\n") - chunk.endswith(b"\r")
        if last_cr:
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]  # the second half of a CRLF cut by the chunking
                position += 1
                line_start = position
            else:
                lone_cr += 1
        last_cr = chunk.endswith(b"\r")
        if lone_cr > 0 and not cr_seen:
            cr_seen = True
            stats["files_with_cr_line_ends"] += 1
        if not skipping and b"\r" not in chunk:  # the common case, at C speed: lines split at "\n" only
            lines = chunk.split(b"\n")
            tail = lines.pop()
            if lines:
                starts, at = [line_start], position + len(lines[0]) + 1  # the first may have begun earlier
                for line in lines[1:]:
                    starts.append(at)
                    at += len(line) + 1
                if pending:
                    pending.append(lines[0])
                    lines[0] = b"".join(pending)
                    pending, size = [], 0
                for start, line in zip(starts, lines):
                    if len(line) > max_line_bytes:
                        yield start, Damage("record_too_large", f"a line of {len(line)} bytes (over {max_line_bytes})")
                    else:
                        yield start, line
                line_start = at
            position += len(chunk)
            if tail:
                size += len(tail)
                if size > max_line_bytes:
                    pending, skipping, too_long = [], True, True
                else:
                    pending.append(tail)
            continue
        for piece in chunk.splitlines(keepends=True):  # at \n, \r\n and \r only: bytes know no other
            ended = piece.endswith((b"\n", b"\r"))
            content = piece[:-2] if piece.endswith(b"\r\n") else piece[:-1] if ended else piece
            size += len(content)
            if not skipping and size > max_line_bytes:
                pending, skipping, too_long = [], True, True
            if not skipping:
                pending.append(content)
            position += len(piece)
            if ended:
                if too_long:
                    yield line_start, Damage("record_too_large", f"a line of {size} bytes (over {max_line_bytes})")
                elif not skipping:
                    yield line_start, b"".join(pending) if len(pending) > 1 else pending[0]
                pending, size, skipping, too_long = [], 0, False, False
                line_start = position
    if too_long:
        yield line_start, Damage("record_too_large", f"a line of {size} bytes (over {max_line_bytes})")
    elif pending and not skipping:
        yield line_start, b"".join(pending)


def _escaped_head(raw: bytes, limit: int = 200) -> str:
    return raw[:limit].decode("utf-8", errors="backslashreplace")


def documents_from_text_lines(name: str, lines, *, source: str = "text",
                              max_document_bytes: int = MAX_RECORD_BYTES):
    """Google's layout: one sentence a line, a blank line between documents.

    ``lines`` are (position, raw ``bytes`` line or Damage marker), as ``split_lines`` yields them;
    a document's id is ``name@position`` of its first line, so it does not depend on how the file
    was cut for reading. A document with a line that is not UTF-8, or that a Damage falls in,
    becomes one BadRecord (the whole document, not just the line, so no half-document is trained
    on); so does a document over ``max_document_bytes``. Yields RawDocument or BadRecord.
    """
    sentences, bad, first, size = [], None, None, 0
    for position, raw in lines:
        if isinstance(raw, Damage):
            if bad is None:
                bad = (raw.reason, f"byte {position}: {raw.detail}", "")
            if first is None:
                first = position
            continue
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            line = ""
            if bad is None:
                bad = ("invalid_utf8", f"byte {position}: {error}", _escaped_head(raw))
            if first is None:
                first = position
            continue
        if line:
            if first is None:
                first = position
            size += len(raw)
            if size > max_document_bytes and bad is None:
                bad = ("record_too_large", f"a document of over {max_document_bytes} bytes", _escaped_head(raw))
            if bad is None:
                sentences.append(line)
            continue
        if first is not None:
            yield _text_document(f"{name}@{first}", sentences, bad, source)
        sentences, bad, first, size = [], None, None, 0
    if first is not None:
        yield _text_document(f"{name}@{first}", sentences, bad, source)


def _text_document(doc_id, sentences, bad, source):
    if bad is not None:
        reason, detail, raw = bad
        return BadRecord(doc_id, reason, detail, raw)
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


def _unencodable(text: str) -> bool:
    """A lone surrogate ("\\ud800" in JSON) is a str that no UTF-8 writer can write."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def document_from_json_line(name: str, position: int, raw, *, preset: JsonlPreset, source: str = "jsonl"):
    """One JSON object a line, its text in the preset's fields. Returns RawDocument, BadRecord or
    None (blank). ``raw`` is the line's bytes or a Damage; the id is ``name@position``, where the
    line begins in the file. Every way a line can fail is a BadRecord with its reason, never an
    exception."""
    doc_id = f"{name}@{position}"
    if isinstance(raw, Damage):
        return BadRecord(doc_id, raw.reason, raw.detail, "")
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
    except RecursionError:
        return BadRecord(doc_id, "json_nesting_too_deep", "nested deeper than Python's JSON parser goes",
                         _escaped_head(raw))
    except ValueError as error:  # an integer of more digits than int() converts (sys.get_int_max_str_digits)
        return BadRecord(doc_id, "json_number_too_long", str(error)[:300], _escaped_head(raw))
    if not isinstance(record, dict):
        return BadRecord(doc_id, "not_a_json_object", type(record).__name__, _escaped_head(raw))
    present = [f for f in preset.text_fields if f in record]
    if not present:
        return BadRecord(doc_id, "missing_text_field", f"none of the fields {list(preset.text_fields)}",
                         _escaped_head(raw))
    fields = present + ([preset.title_field] if preset.title_field in record else [])
    wrong = [f for f in fields if not isinstance(record[f], str)]
    if wrong:
        return BadRecord(doc_id, "text_field_not_a_string",
                         ", ".join(f"{f}: {type(record[f]).__name__}" for f in wrong), _escaped_head(raw))
    surrogates = [f for f in fields if _unencodable(record[f])]
    if surrogates:
        return BadRecord(doc_id, "lone_surrogate", f"{', '.join(surrogates)}: a \\ud800-\\udfff escape that is not "
                         "half of a pair, which is no character", _escaped_head(raw))
    text, repeated_leads = join_fields(record[f] for f in present)
    return RawDocument(doc_id, text, PROSE, source=source, title=record.get(preset.title_field, "") or "",
                       changes={"repeated_lead_dropped": repeated_leads} if repeated_leads else {})


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
