"""Reading and cleaning: files -> clean Documents, with dead letters and counters.

    for each source:  ReadRawDocuments (text | jsonl | wiki, multistream dumps by byte ranges)
                      -> Reshuffle -> CleanDocument (wikitext, normalization, OpenCC, sentences, filters)
                      (parquet sources: ReadParquetDocuments, already clean)
    all sources:      Flatten -> exact dedup (by content hash) -> DropNearDuplicates (MinHash) -> Document

Every record read is counted in ``records_in`` and ends as a Document, a ``documents_filtered.*``
count or a dead letter (``dead_lettered.*``).
"""
import collections
import dataclasses
import hashlib

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.io.filesystems import CompressionTypes, FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from pipelines.common import DEAD_LETTER, STATS, count, dead
from pipelines.io_utils import open_decompressed
from wwm_core.clean import clean_document
from wwm_core.near_dedup import band_keys, band_layout, duplicates_in_band, signatures
from wwm_core.text import (JSONL_PRESETS, WIKITEXT, BadRecord, ChineseConverter, Document, JsonlPreset, RawDocument,
                           document_from_json_line, documents_from_text_lines)
from wwm_core.wiki import (BrokenPage, UnsafeXmlError, decompress_streams, multistream_offsets, page_chunks,
                           parse_page)

STREAMS_PER_READ = 50  # bz2 streams (about 100 pages each) per parallel read of a multistream dump


def jsonl_preset(name, *, text_field: str, title_field: str) -> JsonlPreset:
    return JSONL_PRESETS[name] if name else JsonlPreset(title_field, (text_field,))


class ParseTextOrJsonl(beam.DoFn):
    def __init__(self, *, input_format: str, preset: JsonlPreset, source: str):
        self._input_format = input_format
        self._preset = preset
        self._source = source

    def process(self, metadata):
        path = metadata.path
        stats = collections.Counter()
        try:
            with open_decompressed(path) as handle:
                lines = iter(handle.readline, b"")
                if self._input_format == "text":
                    records = documents_from_text_lines(path, lines, source=self._source)
                else:
                    records = (document_from_json_line(path, number, line, preset=self._preset, source=self._source)
                               for number, line in enumerate(lines, start=1))
                for record in records:
                    if record is None:
                        stats["blank_lines_skipped"] += 1
                    elif isinstance(record, BadRecord):
                        yield dead(record, stats)
                    else:
                        stats["records_in"] += 1
                        yield record
        except EOFError as error:  # a truncated .bz2/.gz: what was read before is kept
            yield dead(BadRecord(path, "truncated_compressed_file", str(error), ""), stats)
        except OSError as error:
            yield dead(BadRecord(path, "unreadable_file", str(error), ""), stats)
        stats["files_read"] += 1
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)


def multistream_index_path(path: str):
    """``x-multistream.xml.bz2`` -> ``x-multistream-index.txt.bz2`` when that file exists."""
    if path.endswith("multistream.xml.bz2"):
        index = path[: -len(".xml.bz2")] + "-index.txt.bz2"
        if FileSystems.exists(index):
            return index
    return None


def plan_wiki_reads(metadata):
    """A dump -> (path, start, end) byte ranges of whole bz2 streams, or (path, None, None)."""
    index = multistream_index_path(metadata.path)
    if index is None:
        yield metadata.path, None, None
        return
    with FileSystems.open(index) as handle:  # .bz2: decompressed by extension
        # Offset 0 too: the first stream holds the dump's header (checked for DTDs), not pages.
        offsets = sorted({0, *multistream_offsets(iter(handle.readline, b""))}) + [metadata.size_in_bytes]
    for first in range(0, len(offsets) - 1, STREAMS_PER_READ):
        yield metadata.path, offsets[first], offsets[min(first + STREAMS_PER_READ, len(offsets) - 1)]


class ReadWikiPages(beam.DoFn):
    """A dump, or a byte range of whole streams of a multistream dump -> main-namespace pages."""

    def __init__(self, source: str = "wiki"):
        self._source = source

    def process(self, read):
        path, start, end = read
        stats = collections.Counter()
        where = path if start is None else f"{path}@{start}"
        try:
            if start is None:
                with open_decompressed(path) as handle:
                    yield from self._pages(path, page_chunks(iter(handle.readline, b"")), stats, self._source)
            else:
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                    handle.seek(start)
                    data = decompress_streams(handle.read(end - start))
                yield from self._pages(path, page_chunks(data.splitlines(keepends=True)), stats, self._source)
        except UnsafeXmlError as error:
            yield dead(BadRecord(where, "unsafe_xml", str(error), ""), stats)
        except EOFError as error:  # bz2 ended inside a stream: what was read before is kept
            yield dead(BadRecord(where, "truncated_compressed_file", str(error), ""), stats)
        except OSError as error:
            yield dead(BadRecord(where, "unreadable_file", str(error), ""), stats)
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)

    @staticmethod
    def _pages(path, chunks, stats, source):
        for where, chunk in chunks:
            if isinstance(chunk, BrokenPage):
                yield dead(BadRecord(f"{path}:{where}", chunk.reason, chunk.detail, chunk.raw), stats)
                continue
            try:
                page = parse_page(chunk)
            except UnsafeXmlError:
                raise
            except Exception as error:  # noqa: BLE001 - any XML error: this page only
                yield dead(BadRecord(f"{path}:{where}", "broken_xml_page", str(error)[:500],
                                      chunk[:200].decode("utf-8", "backslashreplace")), stats)
                continue
            stats["records_in"] += 1
            if page.namespace != 0:
                stats["documents_filtered.not_article"] += 1
            elif page.is_redirect:
                stats["documents_filtered.redirect"] += 1
            else:
                yield RawDocument(f"{path}#{page.page_id}", page.wikitext, WIKITEXT, source=source, title=page.title)


class ReadRawDocuments(beam.PTransform):
    """File patterns -> RawDocuments, with DEAD_LETTER and STATS outputs."""

    def __init__(self, patterns, *, input_format: str, preset: JsonlPreset = None, source: str = ""):
        super().__init__()
        self._patterns = list(patterns)
        self._input_format = input_format
        self._preset = preset
        self._source = source or input_format

    def expand(self, pipeline):
        matched = (pipeline
                   | "Patterns" >> beam.Create(self._patterns)
                   | "Match" >> fileio.MatchAll())
        if self._input_format == "wiki":
            return (matched
                    | "PlanReads" >> beam.FlatMap(plan_wiki_reads)
                    | "SpreadReads" >> beam.Reshuffle()
                    | "ReadPages" >> beam.ParDo(ReadWikiPages(self._source)).with_outputs(DEAD_LETTER, STATS, main="documents"))
        return (matched
                | "Parse" >> beam.ParDo(ParseTextOrJsonl(input_format=self._input_format, preset=self._preset,
                                                         source=self._source))
                .with_outputs(DEAD_LETTER, STATS, main="documents"))


class ReadParquetDocuments(beam.DoFn):
    """A Parquet file of cleaned documents -> Documents; rows without id or sentences are dead letters."""

    def process(self, readable_file):
        path = readable_file.metadata.path
        stats = collections.Counter()
        with readable_file.open() as handle:
            table = pq.read_table(handle)
        missing = [name for name in ("id", "sentences") if name not in table.column_names]
        if missing:
            stats["records_in"] += 1
            stats["dead_lettered.parquet_missing_columns"] += 1
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, BadRecord(path, "parquet_missing_columns", str(missing), ""))
        else:
            for row in table.to_pylist():
                stats["records_in"] += 1
                if not row["id"] or row["sentences"] is None:
                    stats["dead_lettered.parquet_bad_row"] += 1
                    yield beam.pvalue.TaggedOutput(DEAD_LETTER, BadRecord(f"{path}:{row['id']}", "parquet_bad_row",
                                                                          "empty id or no sentences", ""))
                    continue
                yield Document(row["id"], tuple(s for s in row["sentences"] if s), row.get("source") or "",
                               row.get("title") or "", row.get("changes") or "{}")
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)


class CleanDocument(beam.DoFn):
    """RawDocument -> clean Document. Counts are summed per bundle and emitted once at its end:
    one stats record per document would cost more to move than the cleaning itself."""

    def __init__(self, *, cleaning, opencc_config: str):
        self._cleaning = cleaning
        self._opencc_config = opencc_config
        # -{zh-hans:…;zh-hant:…}- keeps the variant the conversion aims at (simplified unless s2*).
        self._wiki_variant = "zh-hant" if opencc_config.startswith("s2") else "zh-hans"

    def setup(self):
        self._converter = ChineseConverter(self._opencc_config)

    def start_bundle(self):
        self._stats = collections.Counter()

    def process(self, raw):
        document, reason, changes = clean_document(raw, config=self._cleaning, wiki_variant=self._wiki_variant)
        for name, value in changes.items():
            self._stats[f"changes.{name}"] += value
        if reason:
            self._stats[f"documents_filtered.{reason}"] += 1
            return
        # One OpenCC call per document, the title on the first line: conversion never adds or
        # removes line breaks.
        text = "\n".join((" ".join(document.title.split()),) + document.sentences)
        converted = self._converter.convert(text)
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
            read = (pipeline
                    | "Patterns" >> beam.Create(list(source.patterns))
                    | "Match" >> fileio.MatchAll()
                    | "Open" >> fileio.ReadMatches()
                    | "ReadParquet" >> beam.ParDo(ReadParquetDocuments()).with_outputs(DEAD_LETTER, STATS,
                                                                                    main="documents"))
            return {"documents": read.documents, DEAD_LETTER: read[DEAD_LETTER], STATS: read[STATS]}
        preset = jsonl_preset(source.jsonl_preset, text_field=source.text_field, title_field=source.title_field)
        raw = pipeline | "Read" >> ReadRawDocuments(source.patterns, input_format=source.input_format, preset=preset,
                                                    source=source.name)
        cleaned = (raw.documents
                   | "Spread" >> beam.Reshuffle()
                   | "Clean" >> beam.ParDo(CleanDocument(cleaning=self._cleaning, opencc_config=source.opencc_config))
                   .with_outputs(STATS, main="documents"))
        stats = (raw[STATS], cleaned[STATS]) | "Stats" >> beam.Flatten()
        return {"documents": cleaned.documents, DEAD_LETTER: raw[DEAD_LETTER], STATS: stats}


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
