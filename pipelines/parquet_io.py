"""Parquet: what ``wwm prepare`` writes and ``--input_format parquet`` reads, and the one reading
function every stage that reads Parquet uses (``wwm run``'s parquet sources, ``wwm segment``, the
segmentation cache): a file is opened, checked against the schema it must have, and streamed in
batches; whatever does not fit is a dead letter that names the file."""
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import CompressionTypes, FileSystems

from pipelines.output import ParquetSink, ShardFile, abandon_parquet
from wwm_core.manifest import FileInfo
from wwm_core.text import BadRecord, Document

DOCUMENTS_FOLDER = "documents"  # in a `wwm prepare` output folder
BATCH_ROWS = 1024  # rows decoded at a time: memory bounded by a batch, not a file

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("title", pa.string()),
    ("sentences", pa.list_(pa.string())),
    ("changes", pa.string()),  # JSON object: what cleaning changed
])
REQUIRED_COLUMNS = ("id", "sentences")


def document_row(document: Document) -> dict:
    return {"id": document.id, "source": document.source, "title": document.title,
            "sentences": list(document.sentences), "changes": document.changes}


class DocumentsFile:
    """A documents Parquet file written as documents come, BATCH_ROWS rows at a time, under a
    temporary name until ``finish`` (pipelines.output.ShardFile)."""

    def __init__(self, path: str):
        self.path = path
        self._file = ShardFile(path)
        self._writer = pq.ParquetWriter(ParquetSink(self._file), SCHEMA, compression="zstd")
        self._rows, self.count = [], 0

    def add(self, document: Document) -> None:
        self._rows.append(document_row(document))
        self.count += 1
        if len(self._rows) >= BATCH_ROWS:
            self._write_rows()

    def _write_rows(self) -> None:
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=SCHEMA))
        self._rows = []

    def finish(self) -> FileInfo:
        if self._rows:
            self._write_rows()
        self._writer.close()
        return self._file.finish(self.count)

    def abandon(self) -> None:
        abandon_parquet(self._writer, self._file)


class ParquetInputError(ValueError):
    """A Parquet file, or a row group of one, that cannot be read as the schema says: ``reason``
    is the dead letter's, ``rows`` how many records it holds (1 where that is unknown)."""

    def __init__(self, reason: str, detail: str, rows: int = 1):
        super().__init__(detail)
        self.reason = reason
        self.rows = max(1, rows)


def _same_kind(found: pa.DataType, expected: pa.DataType) -> bool:
    """Types that read back as the same Python values: string or large_string, list or large_list."""
    if pa.types.is_string(expected):
        return pa.types.is_string(found) or pa.types.is_large_string(found)
    if pa.types.is_binary(expected) or pa.types.is_fixed_size_binary(expected):
        return found == expected or pa.types.is_binary(found) or pa.types.is_large_binary(found)
    if pa.types.is_list(expected):
        return ((pa.types.is_list(found) or pa.types.is_large_list(found))
                and _same_kind(found.value_type, expected.value_type))
    return found == expected


def schema_problems(found: pa.Schema, expected: pa.Schema, *, required) -> list:
    """What keeps a file's schema from being read as ``expected``: missing required columns, and
    columns of another type ("sentences is string, expected list<string>")."""
    problems = [f"no column {name!r}" for name in required if name not in found.names]
    for field in expected:
        if field.name in found.names:
            found_type = found.field(field.name).type
            if not _same_kind(found_type, field.type):
                problems.append(f"column {field.name!r} is {found_type}, expected {field.type}")
    return problems


def parquet_rows(path: str, *, schema: pa.Schema, required=(), partial: bool = False):
    """The rows of a Parquet file (dicts of the ``schema`` columns it has), batch by batch.

    Raises ParquetInputError ``unreadable_parquet`` for bytes that are not Parquet (or break
    while read) and ``parquet_schema_mismatch`` for missing required columns or columns of the
    wrong type, each naming the file and how many rows it holds. ``partial``: a row group that
    breaks while read is yielded as a ParquetInputError of its rows, and the file's other row
    groups are read."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            try:
                # No pre-buffering: its IO threads read through this Python handle, and one still
                # running when a reader stops early can abort the interpreter at exit.
                parquet = pq.ParquetFile(handle, pre_buffer=False)
            except (pa.ArrowException, OSError, ValueError) as error:
                raise ParquetInputError("unreadable_parquet", f"{path} is not a readable Parquet file: {error}") \
                    from error
            rows = parquet.metadata.num_rows
            problems = schema_problems(parquet.schema_arrow, schema, required=required)
            if problems:
                raise ParquetInputError("parquet_schema_mismatch", f"{path}: {'; '.join(problems)} "
                                        f"({rows} rows not read)", rows)
            columns = [name for name in schema.names if name in parquet.schema_arrow.names]
            for group in range(parquet.num_row_groups):
                group_rows, done = parquet.metadata.row_group(group).num_rows, 0
                try:
                    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns, row_groups=[group],
                                                      use_threads=False):
                        yield from batch.to_pylist()
                        done += batch.num_rows
                except (pa.ArrowException, OSError, ValueError) as error:
                    broken = ParquetInputError("unreadable_parquet", f"{path} row group {group} of "
                                               f"{parquet.num_row_groups} breaks while read ({group_rows - done} of "
                                               f"its {group_rows} rows not read): {error}", group_rows - done)
                    if not partial:
                        raise broken from error
                    yield broken
    except OSError as error:  # opening it: a missing or unreadable file
        raise ParquetInputError("unreadable_parquet", f"{path}: {error}") from error


def document_ids(path: str) -> list:
    """The ids of a documents file, read alone (a file that cannot be read has none here: reading
    its documents makes its dead letter)."""
    try:
        return [row["id"] for row in parquet_rows(path, schema=pa.schema([SCHEMA.field("id")]), required=("id",),
                                                   partial=True)
                if not isinstance(row, ParquetInputError) and row.get("id")]
    except ParquetInputError:
        return []


# A bucket's dedup index (pipelines.buckets): its document ids, 16-byte content keys and MinHash
# band keys (with the document's row in the bucket), one record batch per dedup group, read back a
# group at a time. A group's drop file has the same layout: a batch of ids per bucket.
DEDUP_SCHEMA = pa.schema([("id", pa.string()), ("key", pa.binary(16)), ("row", pa.int32())])


def dedup_index_bytes(groups) -> bytes:
    """[(ids, keys, rows)] per group -> an Arrow IPC file with one record batch per group (keys or
    rows None, or None items, where a group has none)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, DEDUP_SCHEMA) as writer:
        for ids, keys, rows in groups:
            columns = [pa.array(ids, pa.string())]
            for values, field in zip((keys, rows), (DEDUP_SCHEMA.field("key"), DEDUP_SCHEMA.field("row"))):
                columns.append(pa.nulls(len(ids), field.type) if values is None else pa.array(values, field.type))
            writer.write_batch(pa.record_batch(columns, schema=DEDUP_SCHEMA))
    return sink.getvalue().to_pybytes()


def read_dedup_group(path: str, group: int):
    """(ids, keys, rows) of one group of a dedup index, as Arrow arrays (no Python object per
    document): only that batch's bytes are read."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        batch = pa.ipc.open_file(handle).get_batch(group)
    return batch.column("id"), batch.column("key"), batch.column("row")


def documents_of(path: str, stats, *, count_records: bool):
    """The Documents of a documents Parquet file, and BadRecords (counted) for what cannot be
    used: a file that is not Parquet or not of the documents' schema is one dead letter; a row
    without an id or sentences, or whose id repeats one of the same file, is one dead letter.
    ``count_records``: each row (a file, when unreadable) counts in ``records_in`` (prepared
    input); work files' records were counted when they were read."""
    seen = set()
    new = 1 if count_records else 0
    position = 0  # the row's place in the file
    try:
        for row in parquet_rows(path, schema=SCHEMA, required=REQUIRED_COLUMNS, partial=True):
            if isinstance(row, ParquetInputError):  # a row group that breaks: its rows are one dead letter
                stats["records_in"] += new * row.rows
                yield _dead(stats, BadRecord(f"{path}:{position}", row.reason, str(row), ""), rows=row.rows)
                position += row.rows
                continue
            stats["records_in"] += new
            doc_id = row.get("id")
            if not doc_id or row.get("sentences") is None:
                yield _dead(stats, BadRecord(f"{path}:{position}", "parquet_bad_row",
                                             f"{path} row {position}: empty id or no sentences", ""))
            elif doc_id in seen:
                yield _dead(stats, BadRecord(doc_id, "duplicate_document_id",
                                             f"{path} row {position}: the id of an earlier row", ""))
            else:
                seen.add(doc_id)
                yield Document(doc_id, tuple(s for s in row["sentences"] if s), row.get("source") or "",
                               row.get("title") or "", row.get("changes") or "{}")
            position += 1
    except ParquetInputError as error:  # the whole file (or, counting rows, what was left of it)
        stats["records_in"] += new * error.rows
        yield _dead(stats, BadRecord(path, error.reason, str(error), ""), rows=error.rows)
    if count_records:
        stats["files_read"] += 1


def _dead(stats, record: BadRecord, *, rows: int = 1) -> BadRecord:
    """A dead letter, counted as the ``rows`` records it stands for."""
    stats[f"dead_lettered.{record.reason}"] += rows
    return record
