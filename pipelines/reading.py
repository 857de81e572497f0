"""Reading and cleaning: input files -> read units -> RawDocuments -> clean Documents.

    plan_group        files read together (pipelines.inputs matched them at launch; a group is
                      a large file, or small files gathered to fill a bucket) -> ReadUnits
    plan_units        a file -> ReadUnits: the whole file; byte ranges of a large uncompressed
                      text or jsonl file, cut where a record begins; ranges of whole bz2 streams of
                      a multistream wiki dump (from its index, checked against the stream headers)
    read_unit         a ReadUnit -> RawDocuments and BadRecords; the file must still be the one
                      launched with (pipelines.inputs.check_unchanged), before and after
    Cleaner           a RawDocument -> a clean Document, a filter reason, or a BadRecord

These are plain functions and objects: ``pipelines/buckets.py`` runs them inside its DoFns, one
unit at a time, so a worker holds one unit's documents and nothing of the corpus.

Every record read is counted in ``records_in`` and ends as a Document, a ``documents_filtered.*``
count or a dead letter (``dead_lettered.*``); an exception while reading or cleaning one record is
that record's dead letter, never the end of the run. Ids are ``<source>:<path under the input
root>`` and a position (the byte a text or jsonl record begins at, a wiki page's id), so they
depend neither on where the corpus lies nor on how its files were cut for reading; dead letters
name the full path in their detail.
"""
import collections
import dataclasses
import logging
import re

from apache_beam.io.filesystems import FileSystems

from pipelines.inputs import check_unchanged
from pipelines.io_utils import codec_of, first_member_at_or_after, open_raw, verified_chunks
from wwm_core.clean import clean_document
from wwm_core.text import (BOMS, JSONL_PRESETS, WIKITEXT, BadRecord, ChineseConverter, Damage, JsonlPreset, RawDocument,
                           document_from_json_line, documents_from_text_lines, looks_like_utf16, split_lines,
                           utf8_chunks)
from wwm_core.wiki import (BrokenPage, PageScan, PageTooComplex, UnsafeXmlError, header_declares_dtd,
                           multistream_offsets, page_elements, parse_page)

log = logging.getLogger("wwm")
STREAMS_PER_READ = 50  # bz2 streams (about 100 pages each) per parallel read of a multistream dump
# Without a usable index, a multistream dump is read in ranges of this many compressed bytes, each
# reader finding the streams that start in its range from their headers.
FALLBACK_RANGE_BYTES = 4 * 1024 * 1024
HEADER_STREAM_BYTES = 1024 * 1024  # how much of a dump's first stream is searched for a DTD
# How far past a range's nominal start a reader's planner looks for the next record start.
BOUNDARY_WINDOW_BYTES = 1 << 20


def dead(record: BadRecord, stats: collections.Counter, path: str = None, *, new: bool = True) -> BadRecord:
    """A dead letter, counted; ``new``: a record not counted in yet. Its detail names the full
    ``path``: the id holds only the path under the input root."""
    if new:
        stats["records_in"] += 1
    stats[f"dead_lettered.{record.reason}"] += 1
    if path and path not in record.detail:
        record = dataclasses.replace(record, detail=f"{path}: {record.detail}")
    return record


def _error_detail(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def jsonl_preset(name, *, text_field: str, title_field: str) -> JsonlPreset:
    return JSONL_PRESETS[name] if name else JsonlPreset(title_field, (text_field,))


# ---------------------------------------------------------------- read units

@dataclasses.dataclass(frozen=True)
class ReadUnit:
    """What one reader reads: a whole file (start None), a byte range [start, end) of an
    uncompressed text or jsonl file that begins where a record begins, or the bz2 streams of a
    multistream dump that start in [start, end), which its index says begin at ``expected``."""
    source: int  # the source's position in the configuration
    path: str
    relative: str  # the path under the input root: what ids and the shard order use
    start: int = None
    end: int = None
    expected: tuple = None  # multistream: the index's stream offsets in [start, end); None without a usable index
    index_problem: str = ""  # multistream: why the index was not used, for the range that reports it
    size: int = 0  # the file's size in bytes
    modified: float = None  # the file's modification time at launch (None: not checked)

    @property
    def covered_bytes(self) -> int:
        """The input bytes this unit reads: what progress counts as read once it is done."""
        return self.size if self.start is None else self.end - self.start

    @property
    def order(self) -> tuple:
        """The unit's place in the fixed order shards are numbered in."""
        return self.source, self.relative, self.start or 0


@dataclasses.dataclass(frozen=True)
class GatheredUnits:
    """Small files read one after another into the same buckets (sizing.read_groups): their
    ReadUnits, in order (a whole file each, or the stream ranges of a small multistream dump)."""
    units: tuple

    @property
    def covered_bytes(self) -> int:
        return sum(unit.covered_bytes for unit in self.units)

    @property
    def order(self) -> tuple:
        return self.units[0].order


def plan_group(files, *, sources, unit_bytes: int):
    """Files read together (pipelines.inputs.InputFiles) -> ReadUnits of a file read alone, or one
    GatheredUnits of small files."""
    units = [list(plan_units(file, input_format=sources[file.source].input_format, unit_bytes=unit_bytes))
             for file in files]
    if len(files) == 1:
        yield from units[0]
    else:
        yield GatheredUnits(tuple(unit for file_units in units for unit in file_units))


def plan_units(file, *, input_format: str, unit_bytes: int):
    """A file (pipelines.inputs.InputFile) -> its ReadUnits."""
    whole = ReadUnit(file.source, file.path, file.relative, size=file.bytes, modified=file.modified)
    if input_format == "wiki":
        yield from _wiki_units(whole)
    elif input_format in ("text", "jsonl") and file.bytes > 2 * unit_bytes and _splittable(file.path):
        starts = _record_starts(file.path, file.bytes, text=input_format == "text", every=unit_bytes)
        ends = starts[1:] + [file.bytes]
        for start, end in zip(starts, ends):
            yield dataclasses.replace(whole, start=start, end=end)
    else:
        yield whole


def _splittable(path: str) -> bool:
    """An uncompressed UTF-8 file with "\\n" line ends can be read in byte ranges; anything else
    (compressed, UTF-16 or -32, a byte-order mark, lone CR line ends) is read whole, from its
    start, where the readers detect and handle it."""
    if codec_of(path) is not None:
        return False
    with open_raw(path) as handle:
        head = handle.read(BOUNDARY_WINDOW_BYTES)
    if any(head.startswith(mark) for mark, _ in BOMS) or looks_like_utf16(head):
        return False
    return head.count(b"\r") == head.count(b"\r\n")


_RECORD_START = {True: re.compile(rb"\n[ \t\r\f\v]*\n(?=[^\n])"),  # text: after a blank line
                 False: re.compile(rb"\n(?=.)", re.S)}  # jsonl: after a line end


def _record_starts(path: str, size: int, *, text: bool, every: int) -> list:
    """Byte offsets where records begin, about ``every`` bytes apart: at each nominal cut, the
    first record start at or after it (text: a line after a blank line; jsonl: a line). Only a
    window is read at each cut."""
    starts = [0]
    pattern = _RECORD_START[text]
    with open_raw(path) as handle:
        for nominal in range(every, size, every):
            if nominal <= starts[-1]:
                continue
            handle.seek(nominal - 1)  # the byte before the cut, to see a line end there
            window = handle.read(BOUNDARY_WINDOW_BYTES)
            match = pattern.search(window)
            if match is not None:
                starts.append(nominal - 1 + match.end())
    return starts


def _index_offsets(index: str):
    """The index's stream offsets, or None when it cannot be read or holds a line that is not
    "offset:id:title" (a garbage index is not trusted at all)."""
    try:
        lines = [line for _, line in split_lines(verified_chunks(index), collections.Counter())]
    except OSError:
        return None
    if any(isinstance(line, Damage) for line in lines):
        return None
    return multistream_offsets(lines)


def multistream_index_path(path: str):
    """``x-multistream.xml.bz2`` -> ``x-multistream-index.txt.bz2`` when that file exists."""
    if path.endswith("multistream.xml.bz2"):
        index = path[: -len(".xml.bz2")] + "-index.txt.bz2"
        if FileSystems.exists(index):
            return index
    return None


def _wiki_units(whole: ReadUnit):
    """A dump (its whole-file ReadUnit) -> the whole file, or ranges of STREAMS_PER_READ whole bz2
    streams of a multistream dump as its index gives them; without a usable index, ranges of
    FALLBACK_RANGE_BYTES whose readers find the streams from their headers."""
    path, size = whole.path, whole.size
    index = multistream_index_path(path)
    if index is None:
        yield whole
        return
    offsets = _index_offsets(index)
    if offsets is None:
        problem = f"the index {index} is unreadable or holds lines that are not offset:id:title"
        for start in range(0, max(size, 1), FALLBACK_RANGE_BYTES):
            yield dataclasses.replace(whole, start=start, end=min(start + FALLBACK_RANGE_BYTES, size), expected=None,
                                      index_problem=problem if start == 0 else "")
        return
    # Offset 0 too: the first stream holds the dump's header (checked for DTDs), not pages.
    inside = sorted({0, *(offset for offset in offsets if offset < size)})
    beyond = sum(offset >= size for offset in offsets)
    problem = f"the index names {beyond} stream offsets past the end of the file (truncated?)" if beyond else ""
    for first in range(0, len(inside), STREAMS_PER_READ):
        group = inside[first:first + STREAMS_PER_READ]
        end = inside[first + STREAMS_PER_READ] if first + STREAMS_PER_READ < len(inside) else size
        yield dataclasses.replace(whole, start=group[0], end=end, expected=tuple(group),
                                  index_problem=problem if first == 0 else "")


# ---------------------------------------------------------------- reading a unit

def read_unit(unit: ReadUnit, spec, stats):
    """A ReadUnit of a raw source -> RawDocuments and BadRecords (dead letters, counted), with
    ``files_read`` and every record counted in ``stats``."""
    name = f"{spec.name}:{unit.relative}"
    if unit.modified is not None:
        check_unchanged(unit.path, size=unit.size, modified=unit.modified)
    try:
        if spec.input_format == "wiki":
            yield from _wiki_records(unit, name, spec.name, stats)
        else:
            yield from _line_records(unit, name, spec, stats)
    except OSError as error:  # the file cannot be read (any more): what was read before is kept
        yield dead(BadRecord(name, "unreadable_file", _error_detail(error), ""), stats, unit.path)
    if unit.modified is not None:
        check_unchanged(unit.path, size=unit.size, modified=unit.modified)
    if not unit.start:
        stats["files_read"] += 1


def _line_records(unit: ReadUnit, name: str, spec, stats):
    if unit.start is None:
        lines = split_lines(utf8_chunks(verified_chunks(unit.path), stats), stats)
    else:  # a range of an uncompressed UTF-8 file (see _splittable): no encoding to detect
        lines = split_lines(verified_chunks(unit.path, start=unit.start, end=unit.end), stats, base=unit.start)
    if spec.input_format == "text":
        records = documents_from_text_lines(name, lines, source=spec.name)
    else:
        preset = jsonl_preset(spec.jsonl_preset, text_field=spec.text_field, title_field=spec.title_field)
        records = (_json_record(name, position, line, preset, spec.name) for position, line in lines)
    for record in records:
        if record is None:
            stats["blank_lines_skipped"] += 1
        elif isinstance(record, BadRecord):
            yield dead(record, stats, unit.path)
        else:
            stats["records_in"] += 1
            yield record


def _json_record(name, position, line, preset, source):
    try:
        return document_from_json_line(name, position, line, preset=preset, source=source)
    except Exception as error:  # noqa: BLE001 - whatever one line does, it is that line's dead letter
        return BadRecord(f"{name}@{position}", "record_error", _error_detail(error),
                         line[:200].decode("utf-8", "backslashreplace") if isinstance(line, bytes) else "")


def _wiki_records(unit: ReadUnit, name: str, source: str, stats):
    """Main-namespace pages as RawDocuments. Every ``<page>`` seen is a record."""
    path, scan = unit.path, PageScan()
    if unit.start is None:
        dead_before = _dead_lettered(stats)  # ``stats`` may hold other files' counts (gathered files)
        chunks = utf8_chunks(verified_chunks(path), stats)
        yield from _pages(path, name, source, page_elements(chunks, scan=scan), stats)
        if scan.pages == 0 and _dead_lettered(stats) == dead_before:
            reason = "unsafe_xml" if scan.declaration else "no_pages_found"
            yield dead(BadRecord(name, reason, "no <page> element in the file: not a MediaWiki dump?", ""), stats, path)
        return
    # The streams that start in [start, end), found from their headers; the index's offsets are
    # checked against them, and any difference is counted in ``multistream_index_fallback`` (the
    # streams are then read in sequence from the first header at or after the range's start,
    # which is what a reader without an index does).
    if unit.index_problem:
        stats["multistream_index_fallback"] += 1
        log.warning("%s: %s; reading its bz2 streams in sequence", path, unit.index_problem)
    first = first_member_at_or_after(path, unit.start)
    if first is None or first >= unit.end:
        if unit.expected:
            stats["multistream_index_fallback"] += 1
        return
    found = []
    chunks = verified_chunks(path, start=first, end=unit.end,
                             on_segments=lambda segments: found.extend(s.start for s in segments))
    unsafe = unit.start > 0 and _header_declares_dtd(path)
    yield from _pages(f"{path}@{first}", name, source, page_elements(chunks, scan=scan, unsafe=unsafe), stats,
                      at=f"@{first}")
    # Every offset the index names must be a stream's start; streams it does not name (the
    # footer's) are read all the same.
    if unit.expected is not None and not unit.index_problem and not set(unit.expected) <= set(found):
        stats["multistream_index_fallback"] += 1
        log.warning("%s: the index's stream offsets in bytes %d-%d do not match the bz2 stream headers; "
                    "read the streams in sequence instead", path, unit.start, unit.end)


def _dead_lettered(stats) -> int:
    return sum(value for name, value in stats.items() if name.startswith("dead_lettered."))


def _header_declares_dtd(path: str) -> bool:
    """Whether a multistream dump's first stream (its header) declares a DTD or entities."""
    head = b""
    for chunk in verified_chunks(path, start=0, end=1):
        if isinstance(chunk, bytes):
            head += chunk
        if len(head) > HEADER_STREAM_BYTES:
            break
    return header_declares_dtd(head)


def _pages(where_read: str, name: str, source: str, elements, stats, at: str = ""):
    """``where_read``: the file (and range) for dead letters' details; ``at``: the range, for
    the ids of dead letters that have no page id."""
    seen_ids = set()
    for element in elements:
        if isinstance(element, BrokenPage):
            yield dead(BadRecord(f"{name}{at}@{element.where}", element.reason, element.detail, element.raw),
                       stats, f"{where_read} {element.where}")
            continue
        offset, chunk = element
        where = f"{where_read} byte {offset}"
        try:
            page = parse_page(chunk)
        except UnsafeXmlError as error:
            yield dead(BadRecord(f"{name}{at}@byte {offset}", "unsafe_xml", str(error), _head(chunk)), stats, where)
            continue
        except Exception as error:  # noqa: BLE001 - any XML error: this page only
            yield dead(BadRecord(f"{name}{at}@byte {offset}", "broken_xml_page", _error_detail(error), _head(chunk)),
                       stats, where)
            continue
        doc_id = f"{name}#{page.page_id}"
        if page.page_id in seen_ids:
            yield dead(BadRecord(doc_id, "duplicate_document_id", "a page id seen earlier in this dump",
                                 _head(chunk)), stats, where)
            continue
        seen_ids.add(page.page_id)
        stats["records_in"] += 1
        if page.namespace != 0:
            stats["documents_filtered.not_article"] += 1
        elif page.is_redirect:
            stats["documents_filtered.redirect"] += 1
        else:
            yield RawDocument(doc_id, page.wikitext, WIKITEXT, source=source, title=page.title)


def _head(chunk: bytes) -> str:
    return chunk[:200].decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------- cleaning

class Cleaner:
    """RawDocument -> clean Document (normalized, converted by OpenCC, split into sentences,
    filtered). A page over the wikitext parse budget is a dead letter ``page_too_complex``; any
    other exception while cleaning one document is its dead letter ``record_error``."""

    def __init__(self, *, cleaning, opencc_config: str):
        self._cleaning = cleaning
        self._converter = ChineseConverter(opencc_config)
        # -{zh-hans:…;zh-hant:…}- keeps the variant the conversion aims at (simplified unless s2*).
        self._wiki_variant = "zh-hant" if opencc_config.startswith("s2") else "zh-hans"

    def clean(self, raw: RawDocument, stats):
        """A Document, or None (filtered, counted), or a BadRecord (counted)."""
        try:
            document, reason, changes = clean_document(raw, config=self._cleaning, wiki_variant=self._wiki_variant)
            if document is not None:
                # One OpenCC call per document, the title on the first line: conversion never adds
                # or removes line breaks.
                text = "\n".join((" ".join(document.title.split()),) + document.sentences)
                converted = self._converter.convert(text)
        except PageTooComplex as error:
            return dead(BadRecord(raw.id, "page_too_complex", str(error), raw.text[:200]), stats, new=False)
        except Exception as error:  # noqa: BLE001 - one document's failure is its dead letter
            return dead(BadRecord(raw.id, "record_error", _error_detail(error),
                                  raw.text[:200].encode("utf-8", "backslashreplace").decode("utf-8")),
                        stats, new=False)
        for name, value in changes.items():
            stats[f"changes.{name}"] += value
        if reason:
            stats[f"documents_filtered.{reason}"] += 1
            return None
        if converted != text:
            stats["documents_converted_by_opencc"] += 1
            stats["characters_converted_by_opencc"] += sum(a != b for a, b in zip(text, converted))
        title, *sentences = converted.split("\n")
        return dataclasses.replace(document, title=title, sentences=tuple(sentences))
