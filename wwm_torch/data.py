"""One phase of ``wwm run`` Parquet output as PyTorch datasets, local or on ``gs://``.

    InstanceDataset   map-style: each Parquet file is converted once into an uncompressed Arrow
                      file in a local cache and memory-mapped (as Hugging Face datasets does),
                      so a corpus larger than memory can be indexed at random; rows are dicts of
                      numpy arrays (``records.SCHEMAS``' Parquet columns)
    InstanceStream    iterable: each epoch, the files in a seeded order are one sequence of rows
                      cut into equal contiguous shares, one per torch.distributed rank and,
                      within a rank, one per DataLoader worker: no row is read twice, every rank
                      yields the same number of rows (so no rank waits for another at the end),
                      and a bounded buffer shuffles rows; ``resume`` skips what an interrupted
                      epoch already delivered

Every file is read whole and checked against the size and crc32c its manifest records before any
row of it is used, so a truncated or corrupted file is named, not trained on.
"""
import base64
import dataclasses
import hashlib
import os
import tempfile

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from wwm_core.balance import balanced_pieces
from wwm_core.errors import UsageError
from wwm_core.manifest import MANIFEST, parse_manifest
from wwm_core.masking import WORD_LEVEL, SimilarWords
from wwm_core.vocab import Vocab

CACHE_ENV = "WWM_CACHE"  # where the map-style dataset's Arrow files go (default ~/.cache/wwm-data)
SHUFFLE_BUFFER = 1000  # rows; the trainer's tf.data buffer (a file's rows are already shuffled)


# ---------------------------------------------------------------- files, local or gs://

def _is_gcs(path: str) -> bool:
    return path.startswith("gs://")


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if _is_gcs(folder) else os.path.join(folder, name)


def _gcs_blob(path: str):
    """The google-cloud-storage Blob of a gs:// path: with the environment's credentials, or
    anonymously (public buckets) where there are none; STORAGE_EMULATOR_HOST is honoured."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    try:
        client = storage.Client()
    except (DefaultCredentialsError, OSError):
        client = storage.Client.create_anonymous_client()
    bucket, _, name = path[len("gs://"):].partition("/")
    return client.bucket(bucket).blob(name)


def read_bytes(path: str) -> bytes:
    if _is_gcs(path):
        from google.api_core.exceptions import NotFound

        try:
            return _gcs_blob(path).download_as_bytes()
        except NotFound as error:
            raise FileNotFoundError(f"{path} does not exist") from error
    with open(path, "rb") as handle:
        return handle.read()


def read_checked(path: str, info) -> bytes:
    """The bytes of a data file, checked against its manifest's FileInfo (size and crc32c as GCS
    reports it) where the manifest has one."""
    try:
        data = read_bytes(path)
    except FileNotFoundError as error:
        raise UsageError(f"{path} is listed in its manifest but missing: make the data again "
                         "(wwm run --overwrite) or restore the file") from error
    if info is not None:
        crc32c = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode("ascii")
        if len(data) != info.bytes or crc32c != info.crc32c:
            raise UsageError(f"{path} has {len(data):,} bytes and crc32c {crc32c}, the manifest says {info.bytes:,} "
                             f"and {info.crc32c} (truncated or corrupted): make the data again or restore the file")
    return data


# ---------------------------------------------------------------- the phase a manifest describes

@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase's Parquet files and the settings its manifest records."""
    manifest_path: str
    files: tuple  # full paths of the Parquet files
    file_info: tuple  # FileInfo (or None) per file
    num_instances: int
    masking: str  # static | dynamic
    sentence_task: str  # nsp | sop | none
    max_seq_length: int
    max_predictions_per_seq: int
    masked_lm_prob: float
    vocab_path: str
    vocab_sha256: str
    special_tokens: dict = None  # {role: token} the run recorded (a tokenizer's, or --special_tokens)
    ngram_weights: tuple = WORD_LEVEL  # the run's --ngram_weights
    replacement: str = "bert"  # the run's --replacement
    similar_words_path: str = None  # MacBERT: the run's similar_words.npz
    similar_words_sha256: str = None

    @property
    def records(self) -> list:
        """Rows per file (from the manifest; None where it does not say)."""
        return [info.records if info is not None else None for info in self.file_info]

    def vocab(self, path: str = None) -> Vocab:
        """The run's vocabulary (checked against the manifest's sha256) with the special tokens it
        recorded, or the one at ``path`` (a vocab.txt, or a tokenizer.json with its own)."""
        try:
            if path is None:
                vocab = Vocab.from_file_bytes(self.vocab_path, read_bytes(self.vocab_path), special=self.special_tokens)
            else:
                vocab = Vocab.from_file_bytes(path, read_bytes(path))
        except (FileNotFoundError, ValueError) as error:
            raise UsageError(f"cannot read the vocabulary {path or self.vocab_path}: {error}") from error
        if path is None and vocab.sha256 != self.vocab_sha256:
            raise UsageError(f"{self.vocab_path} is not the vocabulary the run used (sha256 {vocab.sha256[:12]}..., "
                             f"the manifest says {self.vocab_sha256[:12]}...)")
        return vocab

    def similar_words(self, path: str = None) -> SimilarWords:
        """The run's similar words (MacBERT; checked against the manifest's sha256), or those at
        ``path`` (a similar_words.npz)."""
        if path is None and self.similar_words_path is None:
            raise UsageError(f"{self.manifest_path} was made without similar words (--replacement "
                             f"{self.replacement}): give similar_words=PATH of a similar_words.npz for MacBERT's "
                             "replacement")
        try:
            data = read_bytes(path or self.similar_words_path)
            similar = SimilarWords.from_npz_bytes(data)
        except (FileNotFoundError, ValueError, KeyError, OSError) as error:
            raise UsageError(f"cannot read the similar words {path or self.similar_words_path}: {error}") from error
        if path is None and hashlib.sha256(data).hexdigest() != self.similar_words_sha256:
            raise UsageError(f"{self.similar_words_path} is not the similar words file the run wrote (its sha256 "
                             "differs from the manifest's): make the data again or restore the file")
        return similar


def read_phase(path: str) -> Phase:
    """A ``wwm run`` phase's manifest (its path, or its folder), local or gs://."""
    if not path.endswith(".json"):
        path = _join(path, MANIFEST)
    try:
        data = read_bytes(path)
    except FileNotFoundError as error:
        raise UsageError(f"no manifest at {path}: `wwm run` writes manifest.json last, so that run has not finished "
                         "(or failed), or the path is wrong") from error
    manifest = parse_manifest(data, path=path, kinds=("instances",))
    if not manifest.parquet_files:
        raise UsageError(f"{path} lists no Parquet files: PyTorch reads Parquet; make the data with "
                         "wwm run --output_format parquet (or both)")
    folder = path.rpartition("/")[0] if _is_gcs(path) else (os.path.dirname(path) or ".")
    config = manifest.run_config()
    instances = config.instances if config else None
    similar = manifest.similar_words or {}
    return Phase(
        manifest_path=path,
        files=tuple(_join(folder, name) for name in manifest.parquet_files),
        file_info=tuple(manifest.file_info.get(name) for name in manifest.parquet_files),
        num_instances=int(manifest.num_instances),
        masking=manifest.masking,
        sentence_task=manifest.sentence_task,
        max_seq_length=int(manifest.max_seq_length),
        max_predictions_per_seq=int(manifest.max_predictions_per_seq),
        masked_lm_prob=instances.masked_lm_prob if instances else None,
        vocab_path=_join(folder, manifest.vocab_file),
        vocab_sha256=manifest.vocab_sha256,
        special_tokens={role: info["token"] for role, info in (manifest.special_tokens or {}).items()} or None,
        ngram_weights=tuple(instances.ngram_weights) if instances else WORD_LEVEL,
        replacement=instances.replacement if instances else "bert",
        similar_words_path=_join(folder, similar["file"]) if similar else None,
        similar_words_sha256=similar.get("sha256"),
    )


# ---------------------------------------------------------------- rows

def column_matrices(batch: pa.RecordBatch) -> dict:
    """{column: (rows, width) matrix} of a record batch's fixed-width list columns, and {column:
    (rows,) vector} of its one-value columns, as numpy (views of the batch's buffers)."""
    matrices = {}
    for name, column in zip(batch.schema.names, batch.columns):
        if pa.types.is_list(column.type):
            offsets = column.offsets.to_numpy()
            width = int(offsets[1] - offsets[0]) if len(column) else 0
            values = column.values.to_numpy()[offsets[0]:offsets[-1]]
            if len(values) != width * len(column):
                raise UsageError(f"column {name} holds lists of different lengths: not a wwm run output")
            matrices[name] = values.reshape(len(column), width)
        else:
            matrices[name] = column.to_numpy()
    return matrices


def rows_of(matrices: dict, first: int = 0, end: int = None):
    """The rows [first, end) as dicts: numpy arrays (copies: a row outlives its batch) and ints."""
    lists = [name for name, values in matrices.items() if values.ndim == 2]
    scalars = [name for name, values in matrices.items() if values.ndim == 1]
    for index in range(first, len(next(iter(matrices.values()))) if end is None else end):
        row = {name: matrices[name][index].copy() for name in lists}
        row.update((name, matrices[name][index].item()) for name in scalars)
        yield row


# ---------------------------------------------------------------- map-style

def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "wwm-data")


def _cached_arrow(path: str, info, cache_dir: str) -> str:
    """The local uncompressed Arrow copy of a Parquet file, made once (named by the file's
    checksum from the manifest, so data made again gets a new copy)."""
    identity = f"{path}|{info.bytes}|{info.crc32c}" if info is not None else f"{path}|{os.stat(path).st_mtime_ns}"
    name = os.path.basename(path).replace(".parquet", "")
    target = os.path.join(cache_dir, f"{name}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.arrow")
    if os.path.exists(target):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    table = pq.read_table(pa.BufferReader(read_checked(path, info))).combine_chunks()
    descriptor, temporary = tempfile.mkstemp(prefix=os.path.basename(target), dir=cache_dir)
    try:
        with os.fdopen(descriptor, "wb") as handle, pa.ipc.new_file(handle, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(1, table.num_rows))  # one record batch
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    return target


class InstanceDataset(torch.utils.data.Dataset):
    """A phase's instances by index; ``dataset[i]`` is a dict of numpy arrays."""

    def __init__(self, phase: Phase, *, cache_dir: str = None):
        self.phase = phase
        cache_dir = cache_dir or default_cache_dir()
        self._paths = [_cached_arrow(path, info, cache_dir) for path, info in zip(phase.files, phase.file_info)]
        self._open()

    def _open(self):
        readers = [pa.ipc.open_file(pa.memory_map(path)) for path in self._paths]
        batches = [reader.get_batch(0) for reader in readers if reader.num_record_batches]  # empty files have none
        self._files = [column_matrices(batch) for batch in batches]
        self._starts = np.cumsum([0] + [batch.num_rows for batch in batches])

    def __getstate__(self):  # DataLoader workers started with spawn map the files again
        return {"phase": self.phase, "_paths": self._paths}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"instance {index} of {len(self)}")
        file = int(np.searchsorted(self._starts, index, side="right")) - 1
        return next(rows_of(self._files[file], index - int(self._starts[file]), index - int(self._starts[file]) + 1))


# ---------------------------------------------------------------- streaming

def distributed_rank() -> tuple:
    """(rank, world size) of torch.distributed, else of torchrun's environment, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def reader_pieces(counts, *, order, reader: int, readers: int) -> list:
    """The (file, first, end) row ranges one of ``readers`` reads: the files in ``order`` as one
    sequence, cut at the last whole multiple of ``readers`` rows (the rest, fewer than
    ``readers`` rows, is left for this epoch), into equal contiguous shares."""
    ordered = [counts[file] for file in order]
    extra = sum(ordered) % readers
    for position in reversed(range(len(ordered))):  # trim the tail
        cut = min(extra, ordered[position])
        ordered[position] -= cut
        extra -= cut
    return [(order[source], first, end) for source, first, end in balanced_pieces(ordered, readers)[reader]]


def batches_taken(batches_per_worker, done: int) -> tuple:
    """(how many of its batches each DataLoader worker had delivered, the worker whose turn came
    next) when ``done`` batches had come out: a DataLoader (in order, the default) takes one batch
    from each worker in turn, passing over workers that have none left."""
    workers = len(batches_per_worker)
    taken, last = [0] * workers, -1
    while done > 0:
        active = [w for w in range(workers) if taken[w] < batches_per_worker[w]]
        if not active:
            break
        rounds = min(done // len(active), min(batches_per_worker[w] - taken[w] for w in active))
        served = active if rounds else active[:done]  # whole rounds, or a last, partial one
        for worker in served:
            taken[worker] += rounds or 1
        done -= len(served) * (rounds or 1)
        last = served[-1]
    return taken, (last + 1) % workers


class InstanceStream(torch.utils.data.IterableDataset):
    """A phase's instances as a stream: each rank, and each DataLoader worker within it, reads its
    own share (``reader_pieces``) of the files in an order drawn from (seed, epoch); rows pass a
    shuffle buffer drawn from (seed, epoch, rank, worker). ``split_across_ranks=False`` when
    something else shares the stream out (the Hugging Face Trainer on several devices does)."""

    def __init__(self, phase: Phase, *, seed: int = 0, shuffle: bool = True, shuffle_buffer: int = SHUFFLE_BUFFER,
                 split_across_ranks: bool = True, rank: int = None, world_size: int = None):
        if None in phase.records:
            raise UsageError(f"{phase.manifest_path} does not record each file's rows (an older manifest): make the "
                             "data again to stream it, or use the map-style dataset")
        self.phase = phase
        self.seed, self.shuffle, self.shuffle_buffer = seed, shuffle, shuffle_buffer
        self.split_across_ranks = split_across_ranks
        self._rank, self._world_size = rank, world_size
        self.epoch = 0
        self._resume = None  # (epoch, batches, batch_size, drop_last)

    def set_epoch(self, epoch: int) -> None:
        """The pass about to start (the Hugging Face Trainer calls this itself)."""
        self.epoch = int(epoch)

    def resume(self, *, epoch: int, batches: int, batch_size: int, drop_last: bool = False) -> None:
        """Start ``epoch`` after the ``batches`` batches of ``batch_size`` this rank's DataLoader had
        delivered of it (the same DataLoader settings as then: workers, batch size, drop_last)."""
        self.set_epoch(epoch)
        self._resume = (int(epoch), int(batches), int(batch_size), bool(drop_last))

    def ranks(self) -> tuple:
        if not self.split_across_ranks:
            return 0, 1
        rank, world_size = distributed_rank()
        return (rank if self._rank is None else self._rank), (world_size if self._world_size is None else
                                                               self._world_size)

    def file_order(self) -> list:
        files = len(self.phase.files)
        if not self.shuffle:
            return list(range(files))
        return np.random.default_rng([self.seed, self.epoch]).permutation(files).tolist()

    def pieces(self, *, worker: int, workers: int) -> list:
        """What one DataLoader worker of this rank reads this epoch: (file, first, end) ranges."""
        rank, world_size = self.ranks()
        counts = self.phase.records
        rank_pieces = reader_pieces(counts, order=self.file_order(), reader=rank, readers=world_size)
        sizes = [end - first for _, first, end in rank_pieces]
        return [(rank_pieces[piece][0], rank_pieces[piece][1] + first, rank_pieces[piece][1] + end)
                for piece, first, end in balanced_pieces(sizes, workers)[worker]]

    @property
    def num_rows(self) -> int:
        """Rows this rank reads in an epoch (the same on every rank). Not ``len()``: with several
        DataLoader workers each delivers its own last, partial batch, so a length would mislead
        the Hugging Face Trainer's count of batches."""
        _, world_size = self.ranks()
        return sum(self.phase.records) // world_size

    def _resume_point(self, workers: int) -> tuple:
        """(rows each worker's share had delivered, the share whose batch came next) where this
        epoch was interrupted; (zeros, 0) at an epoch's start."""
        if self._resume is None or self._resume[0] != self.epoch:
            return [0] * workers, 0
        _, batches, batch_size, drop_last = self._resume
        rows = [sum(end - first for _, first, end in self.pieces(worker=w, workers=workers)) for w in range(workers)]
        taken, following = batches_taken([n // batch_size if drop_last else -(-n // batch_size) for n in rows], batches)
        return [count * batch_size for count in taken], following

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        skipped, following = self._resume_point(workers)
        # A resumed DataLoader asks its worker 0 first: it reads the share whose turn it was.
        share = (worker + following) % workers
        rows = self._read(self.pieces(worker=share, workers=workers))
        if self.shuffle and self.shuffle_buffer > 1:
            rank, _ = self.ranks()
            rows = shuffled(rows, buffer=self.shuffle_buffer,
                            rng=np.random.default_rng([self.seed, self.epoch, rank, share]))
        for index, row in enumerate(rows):
            if index >= skipped[share]:
                yield row

    def _read(self, pieces):
        for file, first, end in pieces:
            path = self.phase.files[file]
            parquet = pq.ParquetFile(pa.BufferReader(read_checked(path, self.phase.file_info[file])))
            start = 0
            for group in range(parquet.num_row_groups):
                count = parquet.metadata.row_group(group).num_rows
                if start < end and start + count > first:
                    matrices = column_matrices(parquet.read_row_group(group).combine_chunks().to_batches()[0])
                    yield from rows_of(matrices, max(first - start, 0), min(end - start, count))
                start += count


def shuffled(rows, *, buffer: int, rng: np.random.Generator):
    """Rows through a shuffle buffer of ``buffer`` rows (as tf.data's ``shuffle``)."""
    held = []
    for row in rows:
        if len(held) < buffer:
            held.append(row)
            continue
        index = int(rng.integers(buffer))
        yield held[index]
        held[index] = row
    rng.shuffle(held)
    yield from held
