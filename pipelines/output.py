"""Output integrity: files appear whole or not at all, one run owns an output folder at a time, and
a file's size and checksum are those GCS reports.

    claim_output(output, overwrite=..)   before any work: checks the folder can be written, takes
                                         its lock (refusing a second run, naming the owner), and
                                         with --overwrite clears an earlier run's files
    with claim: ...run...                releases the lock; a full or read-only disk becomes one line
    write_atomically(path, data)         every file the commands write themselves (shards, vocab,
                                         manifest): a temporary name, then a rename
    file_checksum(path)                  (size, crc32c) as GCS reports them, for the manifest

Local and gs:// alike. On gs:// an object is only visible once its upload completes, and a rename
is a copy then a delete; the lock is an object created with the precondition
``if_generation_match=0``, which GCS grants to exactly one of two racing runs.
"""
import base64
import datetime
import errno
import json
import os
import socket
import sys
import tempfile
import uuid

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.io_utils import join, read_bytes, write_bytes
from wwm_core.errors import UsageError
from wwm_core.manifest import FileInfo

LOCK_NAME = ".wwm-lock.json"
MANIFEST = "manifest.json"
TEMPORARY_MARK = ".tmp-"  # "part-00000-of-00004.tfrecord.tmp-<random>": a file not yet complete
# What a run writes into its --output (and --overwrite may remove): shards and Parquet parts, the
# vocabulary, dead letters, the manifest, temporary files, and the temporary folders of Beam's
# own file writers (beam-temp-*). Nothing else in the folder is touched.
RUN_FILE_PATTERNS = (MANIFEST, "vocab.txt", "part-*", f"*{TEMPORARY_MARK}*", "beam-temp-*", "beam-temp-*/*",
                     "dead_letter/*", "dead_letter/*/*", "documents/*", "documents/*/*", "seq*/*", "seq*/*/*",
                     "statistics.json", "token_counts.json", "report.html", "report/*", ".wwm-work/*",
                     ".wwm-work/*/*")
CHECKSUM_BLOCK_BYTES = 1 << 20
_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "permission denied"}


def _is_gcs(path: str) -> bool:
    return path.startswith("gs://")


def _gcs_blob(path: str):
    """The google-cloud-storage Blob of a gs:// path, with the client Beam itself would use."""
    from apache_beam.io.gcp.gcsio import create_storage_client
    from apache_beam.options.pipeline_options import PipelineOptions

    bucket, _, name = path[len("gs://"):].partition("/")
    return create_storage_client(PipelineOptions()).bucket(bucket).blob(name)


# ---------------------------------------------------------------- whole files or none

def write_atomically(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` under a temporary name in the same folder, then renames it: a
    reader, or a run killed or out of disk at any moment, sees the whole file or none (never a
    0-byte manifest.json). The temporary file is removed when the write fails."""
    if "://" in path:
        temporary = f"{path}{TEMPORARY_MARK}{uuid.uuid4().hex}"
        try:
            write_bytes(temporary, data)
            FileSystems.rename([temporary], [path])
        except BaseException:
            _remove_quietly(temporary)
            raise
        return
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f"{name}{TEMPORARY_MARK}", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the name says they are
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise
    _fsync_folder(folder)


class ShardFile:
    """One output file written as a stream under a temporary name, its size and crc32c counted
    on the way, renamed to its final name when complete."""

    def __init__(self, path: str):
        self.path = path
        self.temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        self.handle = FileSystems.create(self.temporary)
        self.checksum = google_crc32c.Checksum()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.checksum.update(data)
        self.size += len(data)

    def finish(self, records: int) -> FileInfo:
        self.handle.close()
        FileSystems.rename([self.temporary], [self.path])
        return FileInfo(bytes=self.size, crc32c=base64.b64encode(self.checksum.digest()).decode(), records=records)

    def abandon(self) -> None:
        """Removes the temporary file, even when closing it fails (a full disk fails the flush)."""
        try:
            self.handle.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass
        _remove_quietly(self.temporary)


class ParquetSink:
    """A ShardFile as pyarrow's ParquetWriter writes to it (any object with write, flush, tell,
    close and closed): Parquet streamed row group by row group, never held whole."""

    closed = False

    def __init__(self, shard_file: ShardFile):
        self.shard_file = shard_file

    def write(self, data) -> int:
        self.shard_file.write(bytes(data))
        return len(data)

    def tell(self) -> int:
        return self.shard_file.size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass



def _fsync_folder(folder: str) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove_quietly(path: str) -> None:
    try:
        if "://" in path:
            if FileSystems.exists(path):
                FileSystems.delete([path])
        else:
            os.unlink(path)
    except (OSError, IOError):
        pass


def bytes_crc32c(data: bytes) -> str:
    """The crc32c of ``data`` as GCS reports a file's: the base64 of the big-endian CRC-32C."""
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def file_checksum(path: str) -> tuple:
    """(size in bytes, crc32c) of a file, the crc32c as GCS reports it: the base64 of the
    big-endian 4-byte CRC-32C. Local files are read in blocks; on gs:// both come from the
    object's metadata, nothing is downloaded."""
    if _is_gcs(path):
        blob = _gcs_blob(path)
        blob.reload()
        return blob.size, blob.crc32c
    checksum = google_crc32c.Checksum()
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHECKSUM_BLOCK_BYTES), b""):
            checksum.update(block)
            size += len(block)
    return size, base64.b64encode(checksum.digest()).decode("ascii")


# ---------------------------------------------------------------- errors of the disk, in one line

def disk_error_message(error: BaseException, output: str):
    """One line for a full, read-only or forbidden output, found anywhere in ``error``'s chain
    (Beam re-raises a worker's OSError inside its own exceptions); None for other errors."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_ERRORS:
            return f"cannot write to --output {output}: {_DISK_ERRORS[error.errno]} ({os.strerror(error.errno)})"
        text = str(error)
        for number, meaning in _DISK_ERRORS.items():
            if f"[Errno {number}]" in text:
                return f"cannot write to --output {output}: {meaning} ({os.strerror(number)})"
        error = error.__cause__ or error.__context__
    return None


# ---------------------------------------------------------------- the output lock

def _process_start(pid: int):
    """The kernel's start time of a process (Linux), which tells a live owner from a new process
    that got the same pid; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    """Whether the lock's owner still runs; only knowable on the same host."""
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = owner.get("process_start")
    return started is None or _process_start(pid) in (None, started)


def _describe(owner: dict) -> str:
    return (f"pid {owner.get('pid')} on host {owner.get('host')}, started {owner.get('started')}, "
            f"running: {owner.get('command')}")


class OutputClaim:
    """This run's lock on an output folder. ``with claim:`` releases it at the end and turns a
    full or read-only disk into a one-line UsageError."""

    def __init__(self, output: str, lock_path: str, owner: dict, generation=None):
        self.output = output
        self.lock_path = lock_path
        self.owner = owner
        self._generation = generation
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        try:
            if _is_gcs(self.lock_path):
                _gcs_blob(self.lock_path).delete(if_generation_match=self._generation)
            else:
                os.unlink(self.lock_path)
        except Exception:  # noqa: BLE001 - a lock already broken by --overwrite elsewhere: nothing to release
            pass

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        self.release()
        if error is not None and not isinstance(error, UsageError):
            message = disk_error_message(error, self.output)
            if message:
                raise UsageError(message) from error
        return False


def _owner(command) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid()),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": command if command is not None else " ".join(sys.argv)}


def _read_owner(lock_path: str) -> dict:
    try:
        return json.loads(read_bytes(lock_path))
    except Exception:  # noqa: BLE001 - a lock file cut short by a crash still means "locked"
        return {}


def _create_lock(lock_path: str, data: bytes):
    """Creates the lock only if none exists: (True, generation) or (False, None)."""
    if _is_gcs(lock_path):
        from google.api_core.exceptions import PreconditionFailed

        blob = _gcs_blob(lock_path)
        if blob.exists():  # what a precondition-less emulator needs; GCS's precondition is the guarantee
            return False, None
        try:
            blob.upload_from_string(data, content_type="application/json", if_generation_match=0)
        except PreconditionFailed:
            return False, None
        return True, blob.generation
    try:
        descriptor = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False, None
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        _remove_quietly(lock_path)
        raise
    os.close(descriptor)
    return True, None


def check_output_target(output: str) -> None:
    """One-line errors, before any work, for an --output that is a file or cannot be written."""
    if _is_gcs(output):
        return
    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError(f"--output {output} is a file, not a folder")
    parent = output
    while not os.path.exists(parent):
        parent = os.path.dirname(parent.rstrip("/")) or "."
    if not os.path.isdir(parent):
        raise UsageError(f"--output {output}: {parent} is a file, not a folder")
    try:
        os.makedirs(output, exist_ok=True)
    except OSError as error:
        raise UsageError(disk_error_message(error, output) or f"cannot create --output {output}: {error}") from error


def earlier_run_files(output: str) -> list:
    """The files of an earlier run in ``output`` (see RUN_FILE_PATTERNS), the lock excluded."""
    found = set()
    for pattern in RUN_FILE_PATTERNS:
        for metadata in FileSystems.match([join(output, pattern)])[0].metadata_list:
            found.add(metadata.path)
    return sorted(path for path in found if not path.endswith(LOCK_NAME))


def claim_output(output: str, *, overwrite: bool, command=None) -> OutputClaim:
    """Makes ``output`` this run's, before any work starts, or refuses in one line.

    Refused: an --output that is a file or cannot be written; a folder locked by a run that still
    runs (named: host, pid, start, command) or, on another host, may; a stale lock (its process is
    gone) or an earlier run's files without --overwrite, saying whether that run finished
    (manifest.json) or not. With --overwrite a stale lock is broken and the earlier run's files,
    temporary ones included, are removed."""
    check_output_target(output)
    lock_path = join(output, LOCK_NAME)
    owner = _owner(command)
    data = json.dumps(owner, ensure_ascii=False).encode()
    try:
        created, generation = _create_lock(lock_path, data)
        if not created:
            holder = _read_owner(lock_path)
            same_host = holder.get("host") == owner["host"]
            if not holder or not same_host or _alive(holder):
                who = _describe(holder) if holder else "a run whose lock file is unreadable"
                advice = ("" if same_host and holder else
                          f"; if that run is dead, delete {lock_path}")
                raise UsageError(f"--output {output} is in use by another run ({who}){advice}")
            if not overwrite:
                raise UsageError(f"--output {output} holds the lock of a run that is no longer running "
                                 f"({_describe(holder)}); pass --overwrite to break it and replace its files")
            _remove_quietly(lock_path)
            created, generation = _create_lock(lock_path, data)
            if not created:
                raise UsageError(f"--output {output} was just claimed by another run "
                                 f"({_describe(_read_owner(lock_path))})")
    except OSError as error:
        raise UsageError(disk_error_message(error, output) or f"cannot write to --output {output}: {error}") \
            from error
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - gs://: a missing bucket, no permission (google.api_core errors)
        raise UsageError(f"cannot write to --output {output}: {str(error).splitlines()[0][:300]}") from error
    claim = OutputClaim(output, lock_path, owner, generation)
    try:
        earlier = earlier_run_files(output)
        if earlier and not overwrite:
            if FileSystems.exists(join(output, MANIFEST)):
                raise UsageError(f"--output {output} already holds a finished run (manifest.json and "
                                 f"{len(earlier) - 1} other files); pass --overwrite to replace it, or choose "
                                 "another --output")
            raise UsageError(f"--output {output} holds an unfinished run ({len(earlier)} files, no manifest.json: "
                             "it was killed or failed); pass --overwrite to clear it and start again, or choose "
                             "another --output")
        if earlier:
            FileSystems.delete(_outermost(earlier))
            _remove_empty_temporary_folders(earlier)
    except BaseException:
        claim.release()
        raise
    return claim


def _remove_empty_temporary_folders(deleted) -> None:
    """Local folders of Beam's writers (beam-temp-*) that the deleted files leave empty: on gs://
    a folder is only a prefix and vanishes with its objects."""
    for folder in sorted({os.path.dirname(path) for path in deleted if "://" not in path}, reverse=True):
        if os.path.basename(folder).startswith("beam-temp-"):
            try:
                os.rmdir(folder)
            except OSError:
                pass


def _outermost(paths) -> list:
    """Paths without those inside another listed folder (deleting a folder deletes its files)."""
    paths = sorted(set(paths))
    kept = []
    for path in paths:
        if not any(path.startswith(folder.rstrip("/") + "/") for folder in kept):
            kept.append(path)
    return kept


def shard_name(index: int, num_shards: int, suffix: str) -> str:
    return f"part-{index:05d}-of-{num_shards:05d}{suffix}"


class ParquetShard:
    """Instances as a Parquet file streamed into a ShardFile, one row group per batch. Columns
    are the schema's features under their Parquet names: lists of int32 (float32 for weights);
    one-value features are plain columns of their ``parquet_dtype`` (the sentence label int8, the
    instance id int64)."""

    def __init__(self, shard_file: ShardFile, features):
        self.shard_file = shard_file
        self.features = features
        self.schema = pa.schema([(f.parquet_name, pa.from_numpy_dtype(np.dtype(f.parquet_dtype)) if f.length == 1 else
                                  pa.list_(pa.float32() if f.dtype == "float" else pa.int32())) for f in features])
        self._writer = pq.ParquetWriter(ParquetSink(shard_file), self.schema, compression="zstd")

    def write_batch(self, columns: dict) -> None:
        arrays = []
        for field in self.schema:
            values = np.asarray(columns[field.name])
            if pa.types.is_list(field.type):
                rows, width = values.shape
                arrays.append(pa.ListArray.from_arrays(
                    pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32)),
                    pa.array(values.ravel().astype(np.float32 if pa.types.is_floating(field.type.value_type)
                                                   else np.int32))))
            else:
                arrays.append(pa.array(values.ravel().astype(field.type.to_pandas_dtype())))
        self.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def write_table(self, table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
