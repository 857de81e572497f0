"""Reading and cleaning: files -> clean Documents, with dead letters and counters.

    for each source:  MatchInputFiles (absolute patterns, one read per file)
                      -> ReadRawDocuments (text | jsonl | wiki, multistream dumps by byte ranges)
                      -> Reshuffle -> CleanDocument (wikitext, normalization, OpenCC, sentences, filters)
                      (parquet sources: ReadParquetDocuments, already clean)
    all sources:      Flatten -> exact dedup (by content hash) -> DropNearDuplicates (MinHash) -> Document

Every record read is counted in ``records_in`` and ends as a Document, a ``documents_filtered.*``
count or a dead letter (``dead_lettered.*``); an exception while reading or cleaning one record is
that record's dead letter, never the end of the run. Ids are ``<source>:<path under the input
root>`` and a position, so they do not depend on where the corpus lies; dead letters name the full
path in their detail.
"""
import collections
import dataclasses
import hashlib
import logging

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from pipelines.common import DEAD_LETTER, STATS, check_worker_versions, count, launcher_versions
from pipelines.io_utils import (first_member_at_or_after, input_root, normalized_pattern, path_under_root,
                                verified_chunks)
from pipelines.parquet_io import ReadParquetDocuments
from wwm_core.clean import clean_document
from wwm_core.near_dedup import band_keys, band_layout, duplicates_in_band, signatures
from wwm_core.text import (JSONL_PRESETS, WIKITEXT, BadRecord, ChineseConverter, Damage, JsonlPreset,
                           RawDocument, document_from_json_line, documents_from_text_lines, split_lines, utf8_chunks)
from wwm_core.wiki import (BrokenPage, PageScan, PageTooComplex, UnsafeXmlError, header_declares_dtd,
                           multistream_offsets, page_elements, parse_page)

log = logging.getLogger("wwm")
STREAMS_PER_READ = 50  # bz2 streams (about 100 pages each) per parallel read of a multistream dump
# Without a usable index, a multistream dump is read in ranges of this many compressed bytes, each
# reader finding the streams that start in its range from their headers.
FALLBACK_RANGE_BYTES = 4 * 1024 * 1024
HEADER_STREAM_BYTES = 1024 * 1024  # how much of a dump's first stream is searched for a DTD


def _dead(record: BadRecord, stats: collections.Counter, path: str = None, *, new: bool = True):
    """A dead letter; ``new``: a record not counted in yet. Its detail names the full ``path``:
    the id holds only the path under the input root."""
    if new:
        stats["records_in"] += 1
    stats[f"dead_lettered.{record.reason}"] += 1
    if path and path not in record.detail:
        record = dataclasses.replace(record, detail=f"{path}: {record.detail}")
    return beam.pvalue.TaggedOutput(DEAD_LETTER, record)


def _error_detail(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:500]


def jsonl_preset(name, *, text_field: str, title_field: str) -> JsonlPreset:
    return JSONL_PRESETS[name] if name else JsonlPreset(title_field, (text_field,))


# ---------------------------------------------------------------- files

def _one_read_per_file(relative_and_files):
    """Of the matches of one path under the root (a file listed twice, or matched by two patterns),
    the first is read and each other one is a dead letter ``duplicate_input_file``: read twice, its
    records would have the same ids."""
    relative, files = relative_and_files
    files = sorted(files, key=lambda m: m.path)
    yield files[0]
    if len(files) > 1:
        stats = collections.Counter()
        for duplicate in files[1:]:
            yield _dead(BadRecord(relative, "duplicate_input_file", "the same file is matched more than once "
                                  "(listed twice, or by two patterns); it is read once", ""), stats, duplicate.path)
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)


class MatchInputFiles(beam.PTransform):
    """File patterns -> the FileMetadata of every file they match, each file once, with DEAD_LETTER
    and STATS outputs. Local patterns are made absolute here, at launch."""

    def __init__(self, patterns):
        super().__init__()
        self._patterns = [normalized_pattern(p) for p in patterns]
        self.root = input_root(self._patterns)

    def expand(self, pipeline):
        root = self.root
        return (pipeline
                | "Patterns" >> beam.Create(self._patterns)
                | "Match" >> fileio.MatchAll()
                | "KeyByPathUnderRoot" >> beam.Map(lambda m: (path_under_root(m.path, root), m))
                | "GroupByPath" >> beam.GroupByKey()
                | "OneReadPerFile" >> beam.FlatMap(_one_read_per_file).with_outputs(DEAD_LETTER, STATS, main="files"))


# ---------------------------------------------------------------- text and jsonl

class ParseTextOrJsonl(beam.DoFn):
    def __init__(self, *, input_format: str, preset: JsonlPreset, source: str, root: str):
        self._input_format = input_format
        self._preset = preset
        self._source = source
        self._root = root

    def process(self, metadata):
        path = metadata.path
        name = f"{self._source}:{path_under_root(path, self._root)}"
        stats = collections.Counter()
        try:
            lines = split_lines(utf8_chunks(verified_chunks(path), stats), stats)
            if self._input_format == "text":
                records = documents_from_text_lines(name, lines, source=self._source)
            else:
                records = (self._json_record(name, number, line) for number, line in enumerate(lines, start=1))
            for record in records:
                if record is None:
                    stats["blank_lines_skipped"] += 1
                elif isinstance(record, BadRecord):
                    yield _dead(record, stats, path)
                else:
                    stats["records_in"] += 1
                    yield record
        except OSError as error:  # the file cannot be read (any more): what was read before is kept
            yield _dead(BadRecord(name, "unreadable_file", _error_detail(error), ""), stats, path)
        stats["files_read"] += 1
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)

    def _json_record(self, name, number, line):
        try:
            return document_from_json_line(name, number, line, preset=self._preset, source=self._source)
        except Exception as error:  # noqa: BLE001 - whatever one line does, it is that line's dead letter
            return BadRecord(f"{name}:{number}", "record_error", _error_detail(error),
                             line[:200].decode("utf-8", "backslashreplace") if isinstance(line, bytes) else "")


# ---------------------------------------------------------------- wiki dumps

def multistream_index_path(path: str):
    """``x-multistream.xml.bz2`` -> ``x-multistream-index.txt.bz2`` when that file exists."""
    if path.endswith("multistream.xml.bz2"):
        index = path[: -len(".xml.bz2")] + "-index.txt.bz2"
        if FileSystems.exists(index):
            return index
    return None


@dataclasses.dataclass(frozen=True)
class WikiRead:
    """One read of a wiki dump: the whole file (start None), or the bz2 streams of a multistream
    dump that start in [start, end), which the index says begin at ``expected`` offsets."""
    path: str
    start: int = None
    end: int = None
    expected: tuple = None  # the index's stream offsets in [start, end); None without a usable index
    index_problem: str = ""  # why the index was not used, for the range that reports it


def _index_offsets(index: str):
    """The index's stream offsets, or None when it cannot be read or holds a line that is not
    "offset:id:title" (a garbage index is not trusted at all)."""
    try:
        lines = list(split_lines(verified_chunks(index), collections.Counter()))
    except OSError:
        return None
    if any(isinstance(line, Damage) for line in lines):
        return None
    return multistream_offsets(lines)


def plan_wiki_reads(metadata):
    """A dump -> WikiReads: the whole file, or ranges of STREAMS_PER_READ whole bz2 streams of a
    multistream dump as its index gives them; without a usable index, ranges of
    FALLBACK_RANGE_BYTES whose readers find the streams from their headers."""
    path, size = metadata.path, metadata.size_in_bytes
    index = multistream_index_path(path)
    if index is None:
        yield WikiRead(path)
        return
    offsets = _index_offsets(index)
    if offsets is None:
        problem = f"the index {index} is unreadable or holds lines that are not offset:id:title"
        for start in range(0, max(size, 1), FALLBACK_RANGE_BYTES):
            yield WikiRead(path, start, min(start + FALLBACK_RANGE_BYTES, size), None, problem if start == 0 else "")
        return
    # Offset 0 too: the first stream holds the dump's header (checked for DTDs), not pages.
    inside = sorted({0, *(offset for offset in offsets if offset < size)})
    beyond = sum(offset >= size for offset in offsets)
    problem = f"the index names {beyond} stream offsets past the end of the file (truncated?)" if beyond else ""
    for first in range(0, len(inside), STREAMS_PER_READ):
        group = inside[first:first + STREAMS_PER_READ]
        end = inside[first + STREAMS_PER_READ] if first + STREAMS_PER_READ < len(inside) else size
        yield WikiRead(path, group[0], end, tuple(group), problem if first == 0 else "")


def _header_declares_dtd(path: str) -> bool:
    """Whether a multistream dump's first stream (its header) declares a DTD or entities."""
    head = b""
    for chunk in verified_chunks(path, start=0, end=1):
        if isinstance(chunk, bytes):
            head += chunk
        if len(head) > HEADER_STREAM_BYTES:
            break
    return header_declares_dtd(head)


class ReadWikiPages(beam.DoFn):
    """A WikiRead -> main-namespace pages as RawDocuments. Every ``<page>`` seen is a record."""

    def __init__(self, source: str = "wiki", root: str = "/"):
        self._source = source
        self._root = root

    def process(self, read: WikiRead):
        path = read.path
        name = f"{self._source}:{path_under_root(path, self._root)}"
        stats = collections.Counter()
        scan = PageScan()
        try:
            if read.start is None:
                chunks = utf8_chunks(verified_chunks(path), stats)
                yield from self._pages(path, name, page_elements(chunks, scan=scan), stats)
                if scan.pages == 0 and not any(k.startswith("dead_lettered.") for k in stats):
                    reason = "unsafe_xml" if scan.declaration else "no_pages_found"
                    yield _dead(BadRecord(name, reason, "no <page> element in the file: not a MediaWiki dump?", ""),
                                stats, path)
            else:
                yield from self._range(read, name, scan, stats)
        except OSError as error:  # the file cannot be read (any more): what was read before is kept
            yield _dead(BadRecord(name, "unreadable_file", _error_detail(error), ""), stats, path)
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)

    def _range(self, read: WikiRead, name: str, scan: PageScan, stats):
        """The streams of a multistream dump that start in [read.start, read.end), found from
        their headers; the index's offsets are checked against them, and any difference is
        counted in ``multistream_index_fallback`` (the streams are then read in sequence from the
        first header at or after the range's start, which is what a reader without an index does)."""
        path = read.path
        if read.index_problem:
            stats["multistream_index_fallback"] += 1
            log.warning("%s: %s; reading its bz2 streams in sequence", path, read.index_problem)
        first = first_member_at_or_after(path, read.start)
        if first is None or first >= read.end:
            if read.expected:
                stats["multistream_index_fallback"] += 1
            return
        found = []
        chunks = verified_chunks(path, start=first, end=read.end,
                                 on_segments=lambda segments: found.extend(s.start for s in segments))
        unsafe = read.start > 0 and _header_declares_dtd(path)
        yield from self._pages(f"{path}@{first}", name, page_elements(chunks, scan=scan, unsafe=unsafe), stats,
                               at=f"@{first}")
        # Every offset the index names must be a stream's start; streams it does not name (the
        # footer's) are read all the same.
        if read.expected is not None and not read.index_problem and not set(read.expected) <= set(found):
            stats["multistream_index_fallback"] += 1
            log.warning("%s: the index's stream offsets in bytes %d-%d do not match the bz2 stream headers; "
                        "read the streams in sequence instead", path, read.start, read.end)

    def _pages(self, where_read: str, name: str, elements, stats, at: str = ""):
        """``where_read``: the file (and range) for dead letters' details; ``at``: the range, for
        the ids of dead letters that have no page id."""
        seen_ids = set()
        for element in elements:
            if isinstance(element, BrokenPage):
                yield _dead(BadRecord(f"{name}{at}@{element.where}", element.reason, element.detail, element.raw),
                            stats, f"{where_read} {element.where}")
                continue
            offset, chunk = element
            where = f"{where_read} byte {offset}"
            try:
                page = parse_page(chunk)
            except UnsafeXmlError as error:
                yield _dead(BadRecord(f"{name}{at}@byte {offset}", "unsafe_xml", str(error), _head(chunk)), stats, where)
                continue
            except Exception as error:  # noqa: BLE001 - any XML error: this page only
                yield _dead(BadRecord(f"{name}{at}@byte {offset}", "broken_xml_page", _error_detail(error), _head(chunk)),
                            stats, where)
                continue
            doc_id = f"{name}#{page.page_id}"
            if page.page_id in seen_ids:
                yield _dead(BadRecord(doc_id, "duplicate_document_id", "a page id seen earlier in this dump",
                                      _head(chunk)), stats, where)
                continue
            seen_ids.add(page.page_id)
            stats["records_in"] += 1
            if page.namespace != 0:
                stats["documents_filtered.not_article"] += 1
            elif page.is_redirect:
                stats["documents_filtered.redirect"] += 1
            else:
                yield RawDocument(doc_id, page.wikitext, WIKITEXT, source=self._source, title=page.title)


def _head(chunk: bytes) -> str:
    return chunk[:200].decode("utf-8", "backslashreplace")


class ReadRawDocuments(beam.PTransform):
    """File patterns -> RawDocuments, with DEAD_LETTER and STATS outputs (a dict of the three)."""

    def __init__(self, patterns, *, input_format: str, preset: JsonlPreset = None, source: str = ""):
        super().__init__()
        self._patterns = list(patterns)
        self._input_format = input_format
        self._preset = preset
        self._source = source or input_format

    def expand(self, pipeline):
        match = MatchInputFiles(self._patterns)
        files = pipeline | "Files" >> match
        if self._input_format == "wiki":
            read = (files.files
                    | "PlanReads" >> beam.FlatMap(plan_wiki_reads)
                    | "SpreadReads" >> beam.Reshuffle()
                    | "ReadPages" >> beam.ParDo(ReadWikiPages(self._source, match.root))
                    .with_outputs(DEAD_LETTER, STATS, main="documents"))
        else:
            read = (files.files
                    | "Parse" >> beam.ParDo(ParseTextOrJsonl(input_format=self._input_format, preset=self._preset,
                                                             source=self._source, root=match.root))
                    .with_outputs(DEAD_LETTER, STATS, main="documents"))
        return {"documents": read.documents,
                DEAD_LETTER: (files[DEAD_LETTER], read[DEAD_LETTER]) | "DeadLetters" >> beam.Flatten(),
                STATS: (files[STATS], read[STATS]) | "Stats" >> beam.Flatten()}


# ---------------------------------------------------------------- cleaning

class CleanDocument(beam.DoFn):
    """RawDocument -> clean Document, with STATS and DEAD_LETTER outputs. A page over the wikitext
    parse budget is a dead letter ``page_too_complex``; any other exception while cleaning one
    document is its dead letter ``record_error``. Counts are summed per bundle and emitted once at
    its end: one stats record per document would cost more to move than the cleaning itself."""

    def __init__(self, *, cleaning, opencc_config: str, expected_versions=None):
        self._expected_versions = launcher_versions(expected_versions)
        self._cleaning = cleaning
        self._opencc_config = opencc_config
        # -{zh-hans:…;zh-hant:…}- keeps the variant the conversion aims at (simplified unless s2*).
        self._wiki_variant = "zh-hant" if opencc_config.startswith("s2") else "zh-hans"

    def setup(self):
        check_worker_versions(self._expected_versions)
        self._converter = ChineseConverter(self._opencc_config)

    def start_bundle(self):
        self._stats = collections.Counter()

    def process(self, raw):
        try:
            document, reason, changes = clean_document(raw, config=self._cleaning, wiki_variant=self._wiki_variant)
            if document is not None:
                # One OpenCC call per document, the title on the first line: conversion never adds
                # or removes line breaks.
                text = "\n".join((" ".join(document.title.split()),) + document.sentences)
                converted = self._converter.convert(text)
        except PageTooComplex as error:
            yield _dead(BadRecord(raw.id, "page_too_complex", str(error), raw.text[:200]), self._stats, new=False)
            return
        except Exception as error:  # noqa: BLE001 - one document's failure is its dead letter
            yield _dead(BadRecord(raw.id, "record_error", _error_detail(error),
                                  raw.text[:200].encode("utf-8", "backslashreplace").decode("utf-8")),
                        self._stats, new=False)
            return
        for name, value in changes.items():
            self._stats[f"changes.{name}"] += value
        if reason:
            self._stats[f"documents_filtered.{reason}"] += 1
            return
        if converted != text:
            self._stats["documents_converted_by_opencc"] += 1
            self._stats["characters_converted_by_opencc"] += sum(a != b for a, b in zip(text, converted))
        title, *sentences = converted.split("\n")
        yield dataclasses.replace(document, title=title, sentences=tuple(sentences))

    def finish_bundle(self):
        if self._stats:
            count(self._stats)
            yield beam.pvalue.TaggedOutput(STATS, WindowedValue(self._stats, MIN_TIMESTAMP, [GlobalWindow()]))


def content_key(document) -> str:
    return hashlib.blake2b("\n".join(document.sentences).encode("utf-8"), digest_size=16).hexdigest()


def _keep_first(key_and_documents):
    """Of documents with the same text keep the smallest id (deterministic); count the others."""
    _, documents = key_and_documents
    documents = sorted(documents, key=lambda d: d.id)
    yield documents[0]
    if len(documents) > 1:
        stats = collections.Counter({"documents_filtered.duplicate": len(documents) - 1})
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)


class SignDocuments(beam.DoFn):
    """Batches of documents -> (band key, (id, signature)) for every band, and (id, document)."""

    def __init__(self, threshold: float):
        self._bands, self._rows = band_layout(threshold)

    def process(self, batch):
        for document, signature in zip(batch, signatures([d.sentences for d in batch])):
            for key in band_keys(signature, bands=self._bands, rows=self._rows):
                yield key, (document.id, signature)


def _near_duplicates(band, *, threshold):
    _, members = band
    members = list(members)
    if len(members) > 1:
        yield from duplicates_in_band(members, threshold=threshold)


def _drop_flagged(id_and_groups):
    _, groups = id_and_groups
    documents, flags = list(groups["documents"]), list(groups["duplicate"])
    if flags:
        stats = collections.Counter({"documents_filtered.near_duplicate": len(documents)})
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)
    else:
        yield from documents


class DropNearDuplicates(beam.PTransform):
    """MinHash LSH: of documents whose estimated Jaccard similarity (character 5-grams) reaches
    the threshold, the one with the smallest id in each band is kept."""

    def __init__(self, threshold: float):
        super().__init__()
        self._threshold = threshold

    def expand(self, documents):
        threshold = self._threshold
        flagged = (documents
                   | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=512)
                   | "Sign" >> beam.ParDo(SignDocuments(threshold))
                   | "GroupByBand" >> beam.GroupByKey()
                   | "FindDuplicates" >> beam.FlatMap(_near_duplicates, threshold=threshold)
                   | "Distinct" >> beam.Distinct()
                   | "FlagById" >> beam.Map(lambda doc_id: (doc_id, True)))
        by_id = documents | "KeyById" >> beam.Map(lambda d: (d.id, d))
        return ({"documents": by_id, "duplicate": flagged}
                | "JoinFlags" >> beam.CoGroupByKey()
                | "DropFlagged" >> beam.FlatMap(_drop_flagged).with_outputs(STATS, main="documents"))


class ReadSource(beam.PTransform):
    """One source -> clean Documents (parquet sources are already clean), DEAD_LETTER and STATS."""

    def __init__(self, source, *, cleaning):
        super().__init__()
        self._source = source
        self._cleaning = cleaning

    def expand(self, pipeline):
        source = self._source
        if source.input_format == "parquet":  # already clean and deduplicated by `wwm prepare`
            files = pipeline | "Files" >> MatchInputFiles(source.patterns)
            read = (files.files
                    | "ReadParquet" >> beam.ParDo(ReadParquetDocuments()).with_outputs(DEAD_LETTER, STATS,
                                                                                    main="documents"))
            return {"documents": read.documents,
                    DEAD_LETTER: (files[DEAD_LETTER], read[DEAD_LETTER]) | "DeadLetters" >> beam.Flatten(),
                    STATS: (files[STATS], read[STATS]) | "Stats" >> beam.Flatten()}
        preset = jsonl_preset(source.jsonl_preset, text_field=source.text_field, title_field=source.title_field)
        raw = pipeline | "Read" >> ReadRawDocuments(source.patterns, input_format=source.input_format, preset=preset,
                                                    source=source.name)
        cleaned = (raw["documents"]
                   | "Spread" >> beam.Reshuffle()
                   | "Clean" >> beam.ParDo(CleanDocument(cleaning=self._cleaning, opencc_config=source.opencc_config))
                   .with_outputs(STATS, DEAD_LETTER, main="documents"))
        stats = (raw[STATS], cleaned[STATS]) | "Stats" >> beam.Flatten()
        dead = (raw[DEAD_LETTER], cleaned[DEAD_LETTER]) | "DeadLetters" >> beam.Flatten()
        return {"documents": cleaned.documents, DEAD_LETTER: dead, STATS: stats}


class PrepareDocuments(beam.PTransform):
    """Read and clean every source, then deduplicate across all of them: Documents, with
    DEAD_LETTER and STATS outputs."""

    def __init__(self, sources, *, cleaning):
        super().__init__()
        self._sources = list(sources)
        self._cleaning = cleaning
        self._dedup = cleaning.dedup == "exact"
        self._near_duplicate_threshold = cleaning.near_duplicate_threshold

    def expand(self, pipeline):
        read = [pipeline | f"Source[{source.name}]" >> ReadSource(source, cleaning=self._cleaning)
                for source in self._sources]
        documents = tuple(r["documents"] for r in read) | "AllSources" >> beam.Flatten()
        stats = [r[STATS] for r in read]
        if self._dedup:
            deduplicated = (documents
                            | "KeyByContent" >> beam.Map(lambda d: (content_key(d), d))
                            | "GroupByContent" >> beam.GroupByKey()
                            | "KeepFirst" >> beam.FlatMap(_keep_first).with_outputs(STATS, main="documents"))
            documents = deduplicated.documents
            stats.append(deduplicated[STATS])
        if self._near_duplicate_threshold:
            near = documents | "NearDuplicates" >> DropNearDuplicates(self._near_duplicate_threshold)
            documents = near.documents
            stats.append(near[STATS])
        dead = tuple(r[DEAD_LETTER] for r in read) | "AllSourceDeadLetters" >> beam.Flatten()
        return {"documents": documents, DEAD_LETTER: dead, STATS: tuple(stats) | "PrepareStats" >> beam.Flatten()}
