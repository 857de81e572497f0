"""Buckets: the corpus cut into pieces of about ``bucket_bytes`` of clean text, each one shard.

    input files (matched at launch: pipelines.inputs) -> read groups (sizing.read_groups: a
    large file alone, small files gathered to fill a bucket) -> plan_group -> ReadAndClean (a
    unit read and cleaned, its
    documents written as Parquet bucket files in the work folder, each with a dedup index of its
    ids, content keys and MinHash band keys, and with near dedup a file of its signatures) ->
    Deduplicate (each dedup group reads its part of every index and writes which ids each bucket
    drops) -> AssignShards (every bucket's number, in a fixed order) -> (order, {"bucket":
    [AssignedBucket], "drop": [Drops]}) for a consumer: `wwm run` makes a shard of instances of
    it, `wwm prepare` a documents file.

No document, and nothing per document, travels through Beam: what Beam moves are read units,
bucket descriptions, dedup group numbers and, per bucket and dedup group, where the ids it drops
are written. The local runner holds every element between stages in the launching process, so
the launcher of a local run holds nothing that grows with the corpus, workers scale by units and
buckets, and a worker holds one unit's or one bucket's documents at a time. Prepared input (`wwm
prepare`'s documents) needs no reading and cleaning: each of its files is a bucket.

A bucket's documents are a contiguous stretch of one input file (or of a unit of it), or of
consecutive small files, not a random sample of the corpus: "random next" segments come from the
bucket's other documents.
"""
import collections
import dataclasses
import hashlib
import json
import logging

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.common import DEAD_LETTER, STATS, AccountedDoFn, count
from pipelines.inputs import InputFile, check_unchanged
from pipelines.io_utils import join, read_bytes
from pipelines.output import WORK_FOLDER, write_atomically  # noqa: F401 - WORK_FOLDER: the run's work files
from pipelines.parquet_io import DocumentsFile, dedup_index_bytes, document_ids, documents_of, read_dedup_group
from pipelines.progress import tally
from pipelines.reading import Cleaner, GatheredUnits, plan_group, read_unit
from wwm_core.hashing import stable_hash
from wwm_core.near_dedup import NUM_PERM, band_keys, band_layout, duplicates_in_band, signatures
from wwm_core.sizing import estimated_text_bytes, read_groups
from wwm_core.text import BadRecord

log = logging.getLogger("wwm")


@dataclasses.dataclass(frozen=True)
class BucketFile:
    """A bucket's documents as Parquet: a work file (``counted``: its records were counted when
    read), or a prepared input file (its rows are counted as records when the consumer reads it)."""
    order: tuple  # the bucket's place in the fixed shard order: (source, relative path, start, chunk)
    path: str
    counted: bool
    dedup_index: str  # its ids, content keys and band keys by dedup group (parquet_io.dedup_index_bytes)
    signatures: str = ""  # with near dedup: its documents' MinHash signatures (write_signatures)


@dataclasses.dataclass(frozen=True)
class AssignedBucket:
    index: int
    count: int  # how many buckets there are
    file: BucketFile


@dataclasses.dataclass(frozen=True)
class Drops:
    """Documents of one bucket that one dedup group drops, for one reason: a record batch of the
    group's drop file, so that no id travels through Beam."""
    reason: str  # one of _DROP_PRECEDENCE
    path: str
    batch: int

    def ids(self) -> list:
        return read_dedup_group(self.path, self.batch)[0].to_pylist()


# Dedup in groups: ids by a hash of the id (repeated ids meet in one group), then content keys by
# their first byte (repeated texts meet in one), then MinHash band keys by their first digest byte
# (documents sharing a band meet in one). A group's worker reads its batch of every bucket's dedup
# index and holds 1/16 of the corpus's ids or keys, or 1/32 of its band keys (8 per document at
# threshold 0.8). As elements (one per bucket and group, as before), ids and keys sat in the local
# launcher's buffers: 0.25 MB per MB of text; bands, with their signatures, about 30 KB per document.
DEDUP_PARTITIONS = 16
NEAR_PARTITIONS = 32
ID_GROUPS = range(DEDUP_PARTITIONS)
KEY_GROUPS = range(DEDUP_PARTITIONS, 2 * DEDUP_PARTITIONS)
BAND_GROUPS = range(2 * DEDUP_PARTITIONS, 2 * DEDUP_PARTITIONS + NEAR_PARTITIONS)
SIGNATURE_DOCUMENTS = 1024  # documents MinHashed together


def content_key(document) -> bytes:
    return hashlib.blake2b("\n".join(document.sentences).encode("utf-8"), digest_size=16).digest()


def dedup_groups(ids, keys, band_keys_of=()) -> list:
    """A bucket's [(ids, keys, rows)] per dedup group: the ID_GROUPS of ids (keys and rows None),
    the KEY_GROUPS of (id, content key) and the BAND_GROUPS of (id, band key, the document's row in
    the bucket). ``keys`` is empty without exact dedup, ``band_keys_of`` (each document's band
    keys) without near dedup."""
    groups = [([], [], []) for _ in range(len(ID_GROUPS) + len(KEY_GROUPS) + len(BAND_GROUPS))]

    def add(group: int, doc_id: str, key, row):
        for column, value in zip(groups[group], (doc_id, key, row)):
            column.append(value)

    for doc_id in ids:
        add(ID_GROUPS[stable_hash("id", doc_id) % len(ID_GROUPS)], doc_id, None, None)
    for key, doc_id in zip(keys, ids):
        add(KEY_GROUPS[key[0] % len(KEY_GROUPS)], doc_id, key, None)
    for row, (doc_id, band_keys_of_document) in enumerate(zip(ids, band_keys_of)):
        for key in band_keys_of_document:
            add(BAND_GROUPS[key[4] % len(BAND_GROUPS)], doc_id, key, row)
    return groups


def work_file(work_folder: str, order: tuple, suffix: str) -> str:
    """A bucket's file in the work folder, named from its order (a retried unit writes the same)."""
    return join(work_folder, hashlib.sha1(repr(order).encode()).hexdigest()[:20] + suffix)


def write_dedup_index(work_folder: str, order: tuple, ids, keys, band_keys_of=()) -> str:
    """Writes a bucket's dedup index (its ids, content keys and band keys by dedup group) to the
    work folder; returns its path."""
    path = work_file(work_folder, order, ".dedup.arrow")
    write_atomically(path, dedup_index_bytes(dedup_groups(ids, keys, band_keys_of)))
    return path


def write_signatures(work_folder: str, order: tuple, signature_list) -> str:
    """Writes a bucket's MinHash signatures, one row of NUM_PERM little-endian uint64 per
    document, to the work folder (a group reads the rows it needs: read_signature_rows); returns
    its path."""
    path = work_file(work_folder, order, ".minhash")
    write_atomically(path, np.asarray(signature_list, "<u8").reshape(-1, NUM_PERM).tobytes())
    return path


def read_signature_rows(path: str, rows) -> np.ndarray:
    """Rows ``rows`` (ascending) of a signature file, reading each run of consecutive rows once."""
    size = NUM_PERM * 8
    signature_rows = np.empty((len(rows), NUM_PERM), "<u8")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        start = 0
        while start < len(rows):
            end = start + 1
            while end < len(rows) and rows[end] == rows[end - 1] + 1:
                end += 1
            handle.seek(rows[start] * size)
            data = handle.read((end - start) * size)
            signature_rows[start:end] = np.frombuffer(data, "<u8").reshape(-1, NUM_PERM)
            start = end
    return signature_rows


class _BucketWriter:
    """A unit's documents written as bucket files of about ``bucket_bytes`` of text, streamed
    under names made from the bucket's order (a retried unit writes the same files); keeps of
    each document only what dedup needs (its id, content key, MinHash signature)."""

    def __init__(self, order: tuple, *, work_folder: str, bucket_bytes: int, exact: bool, band_layout):
        self._unit_order, self._work_folder, self._bucket_bytes = order, work_folder, bucket_bytes
        self._exact, self._band_layout = exact, band_layout  # (bands, rows), or None without near dedup
        self._chunk, self._file = 0, None
        self.next_bucket()

    def next_bucket(self):
        self.ids, self.keys, self.signatures, self._sentences, self._bytes = [], [], [], [], 0

    @property
    def empty(self) -> bool:
        return not self.ids

    def add(self, document) -> bool:
        """Adds a document; True when the bucket is full."""
        if self._file is None:
            self._file = DocumentsFile(work_file(self._work_folder, self._order, ".parquet"))
        self._file.add(document)
        self.ids.append(document.id)
        if self._exact:
            self.keys.append(content_key(document))
        if self._band_layout:
            self._sentences.append(document.sentences)
            if len(self._sentences) >= SIGNATURE_DOCUMENTS:
                self._sign()
        self._bytes += sum(len(sentence.encode("utf-8")) for sentence in document.sentences)  # as input is sized
        return self._bytes >= self._bucket_bytes

    @property
    def _order(self) -> tuple:
        return self._unit_order + (self._chunk,)

    def _sign(self):
        self.signatures.extend(signatures(self._sentences))
        self._sentences = []

    def flush(self) -> BucketFile:
        """The bucket's file and its dedup index, complete under their final names; ``ids`` and
        ``signatures`` hold its documents' until ``next_bucket``."""
        if self._sentences:
            self._sign()
        self._file.finish()
        signature_file, band_keys_of = "", ()
        if self._band_layout:
            bands, rows = self._band_layout
            signature_file = write_signatures(self._work_folder, self._order, self.signatures)
            band_keys_of = [band_keys(signature, bands=bands, rows=rows) for signature in self.signatures]
        bucket = BucketFile(self._order, self._file.path, counted=True, signatures=signature_file,
                            dedup_index=write_dedup_index(self._work_folder, self._order, self.ids, self.keys,
                                                          band_keys_of))
        self._chunk, self._file = self._chunk + 1, None
        return bucket

    def abandon(self):
        if self._file is not None:
            self._file.abandon()


class ReadAndClean(AccountedDoFn):
    """A ReadUnit -> BucketFiles (each with its dedup index written, and with near dedup its
    signatures), with DEAD_LETTER (as they come: a garbage file's can be many) and STATS.
    ``progress``: a ProgressChannel that records read, documents kept and their sentences, and
    input bytes read are counted into (stage "read"), or None."""

    def __init__(self, *, sources, cleaning, work_folder: str, bucket_bytes: int, progress=None,
                 expected_versions=None):
        super().__init__(expected_versions=expected_versions)
        self._sources = sources
        self._progress = progress
        self._cleaning = cleaning
        self._work_folder = work_folder
        self._bucket_bytes = bucket_bytes
        self._exact = cleaning.dedup == "exact"
        near = cleaning.near_duplicate_threshold
        self._band_layout = band_layout(near) if near else None

    def start(self):
        self._cleaners = {}
        self._tally = tally(self._progress, "read")

    def _cleaner(self, spec) -> Cleaner:
        if spec.opencc_config not in self._cleaners:
            self._cleaners[spec.opencc_config] = Cleaner(cleaning=self._cleaning, opencc_config=spec.opencc_config)
        return self._cleaners[spec.opencc_config]

    def work(self, unit, stats, dead_letters):
        if not isinstance(unit, GatheredUnits) and self._sources[unit.source].input_format == "parquet":
            # Prepared documents: the file is the bucket.
            check_unchanged(unit.path, size=unit.size, modified=unit.modified)
            order = unit.order + (0,)
            ids = document_ids(unit.path)
            yield BucketFile(order, unit.path, counted=False,
                             dedup_index=write_dedup_index(self._work_folder, order, ids, ()))
            if self._tally is not None:
                self._tally.add(n=len(ids), kept=len(ids), bytes=unit.covered_bytes)
                self._tally.flush()
            return
        writer = _BucketWriter(unit.order, work_folder=self._work_folder, bucket_bytes=self._bucket_bytes,
                               exact=self._exact, band_layout=self._band_layout)
        shown = 0  # this unit's records already counted into the progress tally
        try:
            for part, record in self._records(unit, stats):
                result = record if isinstance(record, BadRecord) else self._cleaner(part).clean(record, stats)
                if isinstance(result, BadRecord):
                    yield beam.pvalue.TaggedOutput(DEAD_LETTER, result)
                elif result is not None and writer.add(result):
                    yield from self._flush(writer)
                if self._tally is not None:
                    kept = result is not None and not isinstance(result, BadRecord)
                    self._tally.add(n=stats["records_in"] - shown, kept=int(kept),
                                    sentences=len(result.sentences) if kept else 0)
                    shown = stats["records_in"]
            if not writer.empty:
                yield from self._flush(writer)
        except BaseException:
            writer.abandon()
            raise
        if self._tally is not None:  # records read without a record yielded (pages of other namespaces)
            self._tally.add(n=stats["records_in"] - shown, bytes=unit.covered_bytes)
            self._tally.flush()

    def _records(self, unit, stats):
        """(the source spec, record) of every record of a ReadUnit, or of the files of a
        GatheredUnits one after another."""
        for part in unit.units if isinstance(unit, GatheredUnits) else (unit,):
            spec = self._sources[part.source]
            for record in read_unit(part, spec, stats):
                yield spec, record

    def _flush(self, writer: _BucketWriter):
        yield writer.flush()
        writer.next_bucket()


def _duplicates_in_group(group: int, buckets, *, work_folder: str, threshold: float):
    """What dedup group ``group`` drops, reading its batch of every bucket's dedup index: written
    to the group's drop file, one record batch per bucket; yields (order, Drops) per bucket."""
    indexed = [(bucket, *read_dedup_group(bucket.dedup_index, group)) for bucket in buckets]
    if group in ID_GROUPS:
        reason, dropped = "duplicate_document_id", _repeated_ids([(b.order, ids) for b, ids, _, _ in indexed])
    elif group in KEY_GROUPS:
        reason = "duplicate"
        dropped = _exact_duplicates([(b.order, ids, key_matrix(keys)) for b, ids, keys, _ in indexed])
    else:
        reason = "near_duplicate"
        dropped = _near_duplicates([(b.order, ids, key_matrix(keys), rows, b.signatures)
                                    for b, ids, keys, rows in indexed], threshold=threshold)
    by_bucket = collections.defaultdict(list)
    for order, doc_id in dropped:
        by_bucket[order].append(doc_id)
    if not by_bucket:
        return
    orders = sorted(by_bucket)
    path = join(work_folder, f"drops-{group:02d}.arrow")
    write_atomically(path, dedup_index_bytes([(by_bucket[order], None, None) for order in orders]))
    for batch, order in enumerate(orders):
        yield order, Drops(reason, path=path, batch=batch)


def key_matrix(keys: pa.FixedSizeBinaryArray) -> np.ndarray:
    """16-byte keys as an (n, 2) uint64 array, without a Python object per key."""
    data = np.frombuffer(keys.buffers()[1], np.uint8) if len(keys) else np.zeros(0, np.uint8)
    return data[16 * keys.offset:16 * (keys.offset + len(keys))].view("<u8").reshape(-1, 2)


def _shared_keys(key_matrices):
    """(which key, bucket number, entry in that bucket) of every entry whose key another entry
    shares, found on the arrays: only those become Python objects. ``key_matrices``: each bucket's
    ``key_matrix``."""
    if not key_matrices:
        return
    _, inverse, counts = np.unique(np.concatenate(key_matrices), axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    shared = np.flatnonzero(counts[inverse] > 1)
    lengths = [len(keys) for keys in key_matrices]
    numbers = np.repeat(np.arange(len(lengths)), lengths)[shared]  # looked up for the shared entries only
    entries = shared - np.cumsum([0] + lengths)[numbers]
    yield from zip(inverse[shared].tolist(), numbers.tolist(), entries.tolist())


def _exact_duplicates(buckets):
    """Of documents with the same text keep the one with the smallest id (deterministic): the
    others are dropped. ``buckets``: [(order, ids, keys)], ids an Arrow string array, keys their
    ``key_matrix``. Only the documents whose text repeats become Python objects (a key group of
    1.2 GB of text, 108 k documents, peaks at about 18 MB). Yields (order, id) of each document to
    drop."""
    members = collections.defaultdict(list)
    for key, number, entry in _shared_keys([keys for _, _, keys in buckets]):
        order, ids, _ = buckets[number]
        members[key].append((ids[entry].as_py(), order))
    for same in members.values():
        for doc_id, order in sorted(same)[1:]:
            yield order, doc_id


def _repeated_ids(buckets):
    """Of documents with the same id in several buckets (a prepared corpus given twice, a page id
    a dump repeats in two ranges) keep the one of the first bucket: the others are dead letters;
    yields their (order, id). ``buckets``: [(order, ids)], ids an Arrow string
    array; only ids found in more than one bucket become Python objects."""
    # Repeats inside one bucket are that bucket's own dead letters (documents_of, ShardMaker.prepare).
    distinct = [(order, pc.unique(ids)) for order, ids in sorted(buckets, key=lambda bucket: bucket[0])]
    if not distinct:
        return
    counts = pc.value_counts(pa.concat_arrays([ids for _, ids in distinct]))
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if not len(repeated):
        return
    first_bucket = {}
    for order, ids in distinct:
        for doc_id in ids.filter(pc.is_in(ids, value_set=repeated)).to_pylist():
            if first_bucket.setdefault(doc_id, order) != order:
                yield order, doc_id


def _near_duplicates(buckets, *, threshold: float):
    """Of documents that share a band key, those that ``duplicates_in_band`` drops, judged by
    their full signatures: yields (order, id) of each (once per band it is dropped in), a
    document, not every document of its id.
    ``buckets``: [(order, ids, keys, rows, signature file)], ids an Arrow string array, keys
    their ``key_matrix``, rows the documents' rows in the bucket. Only documents that share a
    band become Python objects and have their signatures read."""
    members, wanted = collections.defaultdict(list), collections.defaultdict(set)
    for band, number, entry in _shared_keys([keys for _, _, keys, _, _ in buckets]):
        order, ids, _, rows, _ = buckets[number]
        row = rows[entry].as_py()
        members[band].append((ids[entry].as_py(), order, row, number))
        wanted[number].add(row)
    signature_of = {}
    for number, rows in wanted.items():
        rows = sorted(rows)
        signature_of.update(zip(((number, row) for row in rows), read_signature_rows(buckets[number][4], rows)))
    for band in members.values():
        # In the fixed order (id, bucket, row), whatever order the buckets came in: of copies of
        # the smallest id, the same one is kept in every run.
        band.sort()
        for position in duplicates_in_band([(doc_id, signature_of[number, row]) for doc_id, _, row, number in band],
                                           threshold=threshold):
            yield band[position][1], band[position][0]


# Why a document is dropped, when there are several reasons: the first of these.
_DROP_PRECEDENCE = ("duplicate_document_id", "duplicate", "near_duplicate")


class Deduplicate(beam.PTransform):
    """The list of all BucketFiles -> (order, Drops): what each dedup group drops
    of each bucket. A document may be dropped for several reasons; its bucket's consumer counts it
    once (``bucket_documents``)."""

    def __init__(self, *, exact: bool, threshold: float, work_folder: str):
        super().__init__()
        self._groups = [*ID_GROUPS, *(KEY_GROUPS if exact else ()), *(BAND_GROUPS if threshold else ())]
        self._threshold = threshold
        self._work_folder = work_folder

    def expand(self, bucket_list):
        return (bucket_list.pipeline
                | "Groups" >> beam.Create(self._groups)
                | "SpreadGroups" >> beam.Reshuffle()
                | "InGroup" >> beam.FlatMap(_duplicates_in_group, buckets=beam.pvalue.AsSingleton(bucket_list),
                                            work_folder=self._work_folder, threshold=self._threshold))


def _assign(buckets):
    """Every bucket's shard number, in the fixed order (source, path, start, chunk)."""
    ordered = sorted(buckets, key=lambda bucket: bucket.order)
    for index, bucket in enumerate(ordered):
        yield bucket.order, AssignedBucket(index, len(ordered), bucket)


READ_GROUPS_FILE = "read_groups.json"  # in the work folder, for a corpus of very many files
# The read groups travel in the job's graph up to this size (about 10,000 files); more are written
# to the work folder and read from there: Dataflow refuses graphs over 10 MB.
INLINE_READ_GROUPS_BYTES = 2 * 1024 * 1024


def read_groups_of(path: str):
    for group in json.loads(read_bytes(path)):
        yield tuple(InputFile(**file) for file in group)


def _launch_stats(bad_records):
    """The counters of the dead letters made at launch (pipelines.inputs.match_sources)."""
    stats = collections.Counter()
    for record in bad_records:
        stats["records_in"] += 1
        stats[f"dead_lettered.{record.reason}"] += 1
    return [stats] if stats else []


def _counted(stats):
    """``stats``, added to Beam's metrics as well (a stage's DoFn counts its own as it works; the
    launch's are counted here, so a runner's console shows them too)."""
    count(stats)
    return stats


class MakeBuckets(beam.PTransform):
    """The input files (pipelines.inputs.match_sources at launch: InputFiles, and the BadRecords of
    paths that cannot be read) -> (order, {"bucket": [AssignedBucket], "drop": [Drops]}) per bucket,
    with DEAD_LETTER and STATS outputs."""

    def __init__(self, sources, *, files, bad_records=(), cleaning, work_folder: str, bucket_bytes: int,
                 progress=None):
        super().__init__()
        self._progress = progress
        self._sources = tuple(sources)
        self._files = tuple(files)
        self._bad_records = tuple(bad_records)
        self._cleaning = cleaning
        self._work_folder = work_folder
        self._bucket_bytes = bucket_bytes

    def read_groups(self) -> list:
        """The files, in their fixed order, as groups read together (sizing.read_groups)."""
        files = sorted(self._files, key=lambda file: file.order)
        formats = [self._sources[file.source].input_format for file in files]
        texts = [estimated_text_bytes(file.path, file.bytes, input_format) for file, input_format in zip(files, formats)]
        positions = read_groups(texts, gatherable=[input_format != "parquet" for input_format in formats],
                                bucket_bytes=self._bucket_bytes)
        return [tuple(files[i] for i in group) for group in positions]

    def expand(self, pipeline):
        groups = self.read_groups()
        encoded = json.dumps([[dataclasses.asdict(file) for file in group] for group in groups]).encode()
        if len(encoded) <= INLINE_READ_GROUPS_BYTES:
            groups = pipeline | "ReadGroups" >> beam.Create(groups)
        else:  # written at launch, where the pipeline is built
            groups_file = join(self._work_folder, READ_GROUPS_FILE)
            write_atomically(groups_file, encoded)
            groups = (pipeline
                      | "ReadGroupsFile" >> beam.Create([groups_file])
                      | "ReadGroups" >> beam.FlatMap(read_groups_of))
        read = (groups
                | "Units" >> beam.FlatMap(plan_group, sources=self._sources, unit_bytes=self._bucket_bytes)
                | "SpreadUnits" >> beam.Reshuffle()
                | "ReadAndClean" >> beam.ParDo(ReadAndClean(
                    sources=self._sources, cleaning=self._cleaning, work_folder=self._work_folder,
                    bucket_bytes=self._bucket_bytes, progress=self._progress)).with_outputs(DEAD_LETTER, STATS,
                                                                                               main="buckets"))
        # Listed by a combine, not as a side input of the ParDo's main output: Beam's
        # BundleBasedDirectRunner would hand the side outputs to such a side input too.
        bucket_list = read.buckets | "ListBuckets" >> beam.combiners.ToList()
        drops = bucket_list | "Deduplicate" >> Deduplicate(
            exact=self._cleaning.dedup == "exact", threshold=self._cleaning.near_duplicate_threshold,
            work_folder=self._work_folder)
        assigned = bucket_list | "AssignShards" >> beam.FlatMap(_assign)
        grouped = ({"bucket": assigned, "drop": drops}
                   | "JoinDrops" >> beam.CoGroupByKey()
                   | "SpreadBuckets" >> beam.Reshuffle())
        launch_dead = pipeline | "UnreadableInputs" >> beam.Create(self._bad_records)
        launch_stats = (pipeline
                        | "UnreadableInputStats" >> beam.Create(_launch_stats(self._bad_records))
                        | "CountUnreadableInputs" >> beam.Map(_counted))
        return {"buckets": grouped,
                DEAD_LETTER: (launch_dead, read[DEAD_LETTER]) | "ReadDeadLetters" >> beam.Flatten(),
                STATS: (launch_stats, read[STATS]) | "ReadStats" >> beam.Flatten()}


def bucket_documents(bucket: AssignedBucket, drops, stats, dead_letters: list):
    """The documents of a bucket, less those dropped as duplicates, each counted once under the
    first reason that applies (``_DROP_PRECEDENCE``): an id repeated is a dead letter, a repeated
    text or a near duplicate a filtered document. A prepared input file's rows are counted as
    records here, and checked (see parquet_io.documents_of)."""
    reasons = {}
    for drop in sorted(drops, key=lambda drop: _DROP_PRECEDENCE.index(drop.reason), reverse=True):
        reasons.update(dict.fromkeys(drop.ids(), drop.reason))
    for item in documents_of(bucket.file.path, stats, count_records=not bucket.file.counted):
        if isinstance(item, BadRecord):
            dead_letters.append(item)
        elif item.id not in reasons:
            yield item
        elif reasons[item.id] == "duplicate_document_id":
            stats["dead_lettered.duplicate_document_id"] += 1
            dead_letters.append(BadRecord(item.id, "duplicate_document_id", "another document of this id was read "
                                          f"first, in an earlier bucket; this one is in {bucket.file.order[1]}", ""))
        else:
            stats[f"documents_filtered.{reasons[item.id]}"] += 1
