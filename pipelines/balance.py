"""``--balance_shards``: every output file of a phase holds the same number of instances, give or
take one. The buckets' shards are written to the work folder first (TFRecords with the sizes of
their records beside them); once all are written, each balanced file is cut from them
(``wwm_core.balance``) and written as a stream, then renamed, in parallel, one file per task."""
import io

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import CompressionTypes, FileSystems

from pipelines.common import CheckedDoFn
from pipelines.io_utils import join, read_bytes
from pipelines.output import ParquetShard, ShardFile, shard_name
from wwm_core.balance import balanced_pieces

COPY_BYTES = 1 << 22


def record_sizes_bytes(sizes) -> bytes:
    """The record sizes of a TFRecord shard, as the .npy bytes written beside it."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(sizes, dtype=np.int64))
    return buffer.getvalue()


def plan_balanced(files, *, num_files: int = 0):
    """The unbalanced files (WriteShard's descriptions) -> one task per balanced file: (phase,
    kind, file index, file count, [(source path, source index path, first, end)])."""
    groups = {}
    for description in files:
        groups.setdefault((description["phase"], description["kind"]), []).append(description)
    for (phase, kind), sources in sorted(groups.items()):
        sources = sorted(sources, key=lambda d: d["file"])
        count = num_files or len(sources)
        pieces = balanced_pieces([d["info"].records for d in sources], count)
        for index, file_pieces in enumerate(pieces):
            yield phase, kind, index, count, [(sources[s]["path"], sources[s].get("index"), first, end)
                                             for s, first, end in file_pieces]


class WriteBalancedFile(CheckedDoFn):
    """A task of ``plan_balanced`` -> the balanced file, and its description."""

    def __init__(self, *, folder_of, parquet_features, expected_versions=None):
        super().__init__(expected_versions=expected_versions)
        self._folder_of = folder_of  # phase length -> the phase's output folder
        self._parquet_features = parquet_features

    def process(self, task):
        phase, kind, index, count, pieces = task
        path = join(self._folder_of[phase], shard_name(index, count, f".{kind}"))
        shard = ShardFile(path)
        writing = shard  # what to throw away if the task fails: the shard, or the Parquet writer over it
        records = 0
        try:
            if kind == "tfrecord":
                for source, index_path, first, end in pieces:
                    offsets = np.concatenate([[0], np.cumsum(np.load(io.BytesIO(read_bytes(index_path))))])
                    _copy_range(source, int(offsets[first]), int(offsets[end]), shard)
                    records += end - first
            else:
                parquet = writing = ParquetShard(shard, self._parquet_features)
                for source, _, first, end in pieces:
                    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                        table = pq.read_table(handle, pre_buffer=False, use_threads=False).slice(first, end - first)
                    parquet.write_table(table)
                    records += end - first
                parquet.close()
        except BaseException:
            writing.abandon()  # no NAME.tmp-… left in the output folder by a failed (or retried) task
            raise
        info = shard.finish(records)
        yield {"phase": phase, "kind": kind, "file": FileSystems.split(path)[1], "info": info}


class BalanceShards(beam.PTransform):
    """The buckets' shard descriptions (written to the work folder) -> the balanced files'
    descriptions: planned once from every shard's record count, then written in parallel."""

    def __init__(self, *, folder_of, num_files: int, parquet_features):
        super().__init__()
        self._folder_of = folder_of  # phase length -> the phase's output folder
        self._num_files = num_files
        self._parquet_features = parquet_features

    def expand(self, shards):
        return (shards
                | "ListShards" >> beam.combiners.ToList()
                | "PlanBalanced" >> beam.FlatMap(plan_balanced, num_files=self._num_files)
                | "SpreadBalanced" >> beam.Reshuffle()
                | "WriteBalanced" >> beam.ParDo(WriteBalancedFile(folder_of=self._folder_of,
                                                                   parquet_features=self._parquet_features)))


def _copy_range(source: str, start: int, end: int, shard) -> None:
    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        handle.seek(start)
        while start < end:
            data = handle.read(min(COPY_BYTES, end - start))
            if not data:
                raise OSError(f"{source} ended at byte {start}, before {end}: changed while balancing?")
            shard.write(data)
            start += len(data)
