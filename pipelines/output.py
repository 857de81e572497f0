"""Output integrity: files appear whole or not at all, one run owns an output folder at a time, and
a file's size and checksum are those GCS reports.

    claim_output(output, overwrite=..)   before any work: checks the folder can be written, takes
                                         its lock (refusing a second run, naming the owner), and
                                         with --overwrite clears an earlier run's files: only
                                         files it can prove are a run's (OWNED names, in a folder
                                         an earlier run's manifest, lock or unfinished-run record
                                         vouches for), never through a symbolic link; a folder
                                         holding anything else is refused, naming what is there
    with claim: ...run...                releases the lock (a run that did not finish leaves a
                                         record of itself instead); a full or read-only disk
                                         becomes one line
    write_atomically(path, data)         every file the commands write themselves (shards, vocab,
                                         manifest): a temporary name, then a rename
    file_checksum(path)                  (size, crc32c) as GCS reports them, for the manifest

Local and gs:// alike. On gs:// an object is only visible once its upload completes, and a rename
is a copy then a delete; the lock is an object created with the precondition
``if_generation_match=0``, which GCS grants to exactly one of two racing runs.
"""
import base64
import errno
import json
import os
import re
import signal
import socket
import sys
import uuid

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.io_utils import join, read_bytes, write_bytes
from wwm_core.errors import UsageError, stopped_by
from wwm_core.manifest import FileInfo, now, parse_manifest

LOCK_NAME = ".wwm-lock.json"
# What a run that did not finish (it failed, or was stopped) leaves in place of its lock: who it
# was and how it ended, so a later --overwrite knows its files are a run's.
UNFINISHED_NAME = ".wwm-unfinished.json"
MANIFEST = "manifest.json"
SEGMENTATION_MANIFEST = "segmentation.json"  # a `wwm segment` cache's (pipelines.word_cache)
WORK_FOLDER = ".wwm-work"  # bucket files and the like while a run works (pipelines.buckets)
TEMPORARY_MARK = ".tmp-"  # "part-00000-of-00004.tfrecord.tmp-<hex>": a file not yet complete
# Every name a command writes into its --output, relative to it: manifests, the vocabulary, token
# counts, shards and Parquet parts (in phase folders seqN/ and documents/), dead letters, the
# report, a `wwm segment` cache inside a prepared corpus, the work folder; each first under a
# temporary name; and the temporary folders of Beam's own file writers (beam-temp-*).
_SHARD = r"part-\d{5}-of-\d{5}\.(?:tfrecord|parquet)"
_FIGURE = (r"(?:seq\d+_)?(?:dropped|word_chars|document_chars|sentence_chars|token_frequency|instance_tokens"
           r"|masked_per_instance|masked_word_tokens)\.png")
OWNED = re.compile(rf"""(?:segmentation/[^/]+/)?(?:
    (?:seq\d+/)?(?:{re.escape(MANIFEST)}|vocab\.txt|tokenizer\.json|tokenizer_config\.json|similar_words\.npz|{_SHARD})
  | {re.escape(SEGMENTATION_MANIFEST)} | token_counts\.json
  | documents/{_SHARD}
  | dead_letter/records-\d{{5}}-of-\d{{5}}\.jsonl
  | report/(?:report\.html|{_FIGURE})
  | {re.escape(WORK_FOLDER)}/.+
)(?:{re.escape(TEMPORARY_MARK)}[0-9a-z_]+)?|(?:.+/)?beam-temp-[^/]+/.+""", re.VERBOSE)
# The folders a command writes into: a symbolic link there would take its writes elsewhere.
WRITTEN_FOLDER = re.compile(rf"(?:segmentation(?:/[^/]+)?/)?(?:seq\d+|documents|dead_letter|report|segmentation"
                            rf"|{re.escape(WORK_FOLDER)})(?:/.*)?")
CHECKSUM_BLOCK_BYTES = 1 << 20
_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "permission denied"}


def _is_gcs(path: str) -> bool:
    return path.startswith("gs://")


_RUN_OPTIONS = []  # the run's PipelineOptions, once use_pipeline_options has been given them


def use_pipeline_options(options) -> None:
    """The run's PipelineOptions (project, credentials, impersonation) for the GCS client of the
    lock and the checksums, as Beam's FileSystems.set_options gives them to its own file systems."""
    _RUN_OPTIONS[:] = [options]


def _gcs_blob(path: str):
    """The google-cloud-storage Blob of a gs:// path, with the client Beam itself would use, built
    from the run's options."""
    from apache_beam.io.gcp.gcsio import create_storage_client
    from apache_beam.options.pipeline_options import PipelineOptions

    bucket, _, name = path[len("gs://"):].partition("/")
    options = _RUN_OPTIONS[0] if _RUN_OPTIONS else PipelineOptions()
    return create_storage_client(options).bucket(bucket).blob(name)


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
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}{TEMPORARY_MARK}{uuid.uuid4().hex}"
    # Created as open() creates files (0666 less the umask), like the shards: not mkstemp's 0600.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
        self.temporary = f"{path}{TEMPORARY_MARK}{uuid.uuid4().hex}"
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
    full or read-only disk into a one-line UsageError. A run that ends without finishing (an
    error, Ctrl-C, SIGTERM) after it wrote files leaves a record of itself (UNFINISHED_NAME) in
    place of the lock: a later --overwrite may then clear those files, as the run's."""

    def __init__(self, output: str, lock_path: str, owner: dict, generation=None):
        self.output = output
        self.lock_path = lock_path
        self.owner = owner
        self._generation = generation
        self._held = True

    def release(self, *, unfinished: str = None) -> None:
        """Removes the lock; ``unfinished``: how the run ended, recorded if it wrote anything."""
        if not self._held:
            return
        self._held = False
        try:
            owned = _owned_files(self.output) if unfinished else []
            if owned:
                record = {**self.owner, "ended": now(), "how": unfinished}
                try:
                    write_atomically(join(self.output, UNFINISHED_NAME),
                                     json.dumps(record, ensure_ascii=False).encode())
                except OSError:  # a full disk: with no record to vouch for them, this run's files go
                    _clear_earlier_run(self.output, owned)  # (the claim left no other run's files)
        except Exception:  # noqa: BLE001 - whatever happens here, the lock must still go
            pass
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
        if error is None:
            # Handed over (a Dataflow template, a Dataproc jar): the job writes here after this
            # command returns; what the launch wrote is vouched for until its manifest is.
            handed_over = earlier_run(self.output, output_entries(self.output)) != "finished"
            self.release(unfinished="handed over: the job writes its manifest when it has run" if handed_over
                         else None)
            return False
        number = stopped_by()
        self.release(unfinished=f"stopped by {signal.Signals(number).name}" if number else
                     f"failed: {kind.__name__}: {(str(error).splitlines() or [''])[0][:300]}")
        if isinstance(error, Exception) and not isinstance(error, UsageError):
            message = disk_error_message(error, self.output)
            if message:
                raise UsageError(message) from error
        return False


def _owner(command) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid()),
            "started": now(), "command": command if command is not None else " ".join(sys.argv)}


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
        descriptor = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


def output_entries(output: str) -> list:
    """(path relative to ``output``, is a symbolic link) of everything in the folder but folders,
    local folders listed without following links; the lock left out."""
    if _is_gcs(output):
        prefix = output.rstrip("/") + "/"
        return sorted((m.path[len(prefix):], False) for m in FileSystems.match([prefix + "**"])[0].metadata_list
                      if m.path[len(prefix):] != LOCK_NAME)
    entries = []
    for folder, folders, files in os.walk(output):
        for name in folders + files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, output).replace(os.sep, "/")
            if os.path.islink(path):
                entries.append((relative, True))
            elif name in files and relative != LOCK_NAME:
                entries.append((relative, False))
    return sorted(entries)


def _owned_files(output: str) -> list:
    """Files in ``output`` that a command writes (OWNED names), links left out."""
    return [relative for relative, link in output_entries(output) if not link and OWNED.fullmatch(relative)]


def _is_our_manifest(output: str, relative: str) -> bool:
    path = join(output, relative)
    try:
        parse_manifest(read_bytes(path), path=path)
        return True
    except Exception:  # noqa: BLE001 - not ours, or not readable: no proof either way
        return False


def earlier_run(output: str, entries) -> str:
    """What vouches that ``output``'s files are a run's: "finished" (its manifest), "unfinished"
    (a run's lock or unfinished-run record), or None."""
    names = {relative for relative, link in entries if not link}
    if any(name in names and _is_our_manifest(output, name) for name in (MANIFEST, SEGMENTATION_MANIFEST)):
        return "finished"
    if UNFINISHED_NAME in names:
        return "unfinished"
    return None


def _listed(paths, limit: int = 8) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more ({len(paths)} in all)" if len(paths) > limit else "")


def _check_written_folders(output: str, entries) -> None:
    """A symbolic link where a command writes (OUT/dead_letter, OUT/seq128, a file it writes) would
    take its writes, or --overwrite's deletes, outside --output: refused."""
    for relative, link in entries:
        if link and (OWNED.fullmatch(relative) or WRITTEN_FOLDER.fullmatch(relative)):
            target = os.readlink(os.path.join(output, relative))
            raise UsageError(f"--output {output}: {relative} is a symbolic link (to {target}); a run writes only "
                             "inside its --output, never through a link: remove the link or choose another --output")


def _clear_earlier_run(output: str, owned) -> None:
    """Deletes an earlier run's files (and the local folders they leave empty), nothing else."""
    paths = [join(output, relative) for relative in owned]
    if paths:
        FileSystems.delete(paths)
    if _is_gcs(output):
        return
    folders = {os.path.dirname(os.path.join(output, relative)) for relative in owned}
    for folder in sorted(folders, key=len, reverse=True):
        while os.path.abspath(folder) != os.path.abspath(output):
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)


def claim_output(output: str, *, overwrite: bool, command=None) -> OutputClaim:
    """Makes ``output`` this run's, before any work starts, or refuses in one line.

    Refused: an --output that is a file or cannot be written; a folder locked by a run that still
    runs (named: host, pid, start, command) or, on another host, may; a symbolic link where a run
    writes; an earlier run's files without --overwrite, saying whether that run finished; files a
    run would write over that no earlier run's manifest, lock or record vouches for; and, with
    --overwrite, a folder that holds anything but an earlier run's files (listed). With --overwrite
    a stale lock is broken and the earlier run's files, temporary ones included, are removed."""
    check_output_target(output)
    lock_path = join(output, LOCK_NAME)
    owner = _owner(command)
    data = json.dumps(owner, ensure_ascii=False).encode()
    stale_lock = False
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
            stale_lock = True  # a run that was killed: its lock vouches for its files
    except OSError as error:
        raise UsageError(disk_error_message(error, output) or f"cannot write to --output {output}: {error}") \
            from error
    except UsageError:
        raise
    except Exception as error:  # noqa: BLE001 - gs://: a missing bucket, no permission (google.api_core errors)
        raise UsageError(f"cannot write to --output {output}: {str(error).splitlines()[0][:300]}") from error
    claim = OutputClaim(output, lock_path, owner, generation)
    try:
        entries = output_entries(output)
        _check_written_folders(output, entries)
        earlier = earlier_run(output, entries) or ("unfinished" if stale_lock else None)
        owned = [relative for relative, link in entries
                 if earlier and not link and (OWNED.fullmatch(relative) or relative == UNFINISHED_NAME)]
        others = [relative for relative, _ in entries if relative not in set(owned)]
        if overwrite and others:
            raise UsageError(f"--output {output} holds files that are not an earlier run's, which --overwrite does not "
                             f"touch: {_listed(others)}; move them or choose another --output")
        in_the_way = [relative for relative in others if OWNED.fullmatch(relative)]
        if in_the_way:
            raise UsageError(f"--output {output} holds files a run would write over that are not an earlier run's "
                             f"(no manifest.json of this tool beside them): {_listed(in_the_way)}; move them or "
                             "choose another --output")
        if owned and not overwrite:
            if earlier == "finished":
                raise UsageError(f"--output {output} already holds a finished run (manifest.json and "
                                 f"{len(owned) - 1} other files); pass --overwrite to replace it, or choose "
                                 "another --output")
            raise UsageError(f"--output {output} holds an unfinished run ({len(owned)} files, no manifest.json: "
                             "it was stopped or failed); pass --overwrite to clear it and start again, or choose "
                             "another --output")
        _clear_earlier_run(output, owned)
    except BaseException:
        claim.release()
        raise
    return claim


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

    def abandon(self) -> None:
        abandon_parquet(self._writer, self.shard_file)


def abandon_parquet(writer, shard_file: ShardFile) -> None:
    """Throws away a Parquet file being written: its writer closed first (else closing it when it
    is collected would write to the removed file), then the file."""
    try:
        writer.close()
    except Exception:  # noqa: BLE001 - a full disk fails the footer too: the file is being thrown away
        pass
    shard_file.abandon()
