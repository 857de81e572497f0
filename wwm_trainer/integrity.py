"""A run's shards checked against its manifest before training starts.

A truncated, overwritten or bit-flipped shard would otherwise stop training with a DataLossError
hours in, at whatever step first reads it, without saying which file. The manifest's ``file_info``
gives each shard's size and CRC32C as GCS reports it (base64 of the big-endian checksum), so the
trainer can name every bad shard in one line before the first step:

- sizes, for every shard: one ``stat`` each (cheap);
- checksums (``--verify_shards crc32c``, the default):
  - local files are streamed through ``google_crc32c`` (its C implementation reads at disk speed);
  - ``gs://`` objects are not downloaded: one listing of the folder (google-cloud-storage) gives
    the size and crc32c GCS itself computed of each object. Where that client cannot be used (no
    credentials), the objects are streamed through ``tf.io.gfile`` instead, and the log says so;
  - other file systems TensorFlow reads are streamed through ``tf.io.gfile``.

Importing this module does not import TensorFlow (only the ``tf.io.gfile`` fallback does).
"""
import base64
import dataclasses
import logging
import os
import time

import google_crc32c

from wwm_trainer.errors import TrainerUsageError

log = logging.getLogger("wwm.train")
VERIFY_LEVELS = ("crc32c", "size", "none")
CHUNK_BYTES = 8 * 2**20
SHOWN_PROBLEMS = 5


@dataclasses.dataclass(frozen=True)
class Found:
    """What is on storage: a file's size, and its crc32c where one was computed or reported."""
    bytes: int | None  # None: the file is not there
    crc32c: str | None = None


@dataclasses.dataclass(frozen=True)
class Verified:
    files: int
    bytes: int
    checksums: int  # files whose crc32c was compared
    how: str
    seconds: float


def gcs_crc32c(checksum) -> str:
    """A google_crc32c.Checksum as GCS reports crc32c: base64 of the 4 big-endian bytes."""
    return base64.b64encode(checksum.digest()).decode("ascii")


def stream_crc32c(file) -> str:
    checksum = google_crc32c.Checksum()
    for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
        checksum.update(chunk)
    return gcs_crc32c(checksum)


def _is_local(path: str) -> bool:
    return "://" not in path


def _gfile():
    import tensorflow as tf  # only for file systems other than local disks and gs:// listings

    return tf.io.gfile


def _stat_size(path: str) -> int | None:
    """The file's size; None when it is not there."""
    if _is_local(path):
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            return None
    gfile = _gfile()
    return gfile.stat(path).length if gfile.exists(path) else None


def _stream(path: str) -> str:
    if _is_local(path):
        with open(path, "rb") as file:
            return stream_crc32c(file)
    with _gfile().GFile(path, "rb") as file:
        return stream_crc32c(file)


def gcs_listing(folder: str, names) -> dict | None:
    """{name: Found(size, crc32c)} of the objects under a gs:// folder, as GCS reports them, from
    one (paged) listing; None where google-cloud-storage cannot be used here (no credentials)."""
    bucket, _, prefix = folder[len("gs://"):].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    try:
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError
        from google.cloud import storage
    except ImportError as error:
        log.warning("cannot list %s with google-cloud-storage (%s): streaming the shards instead", folder, error)
        return None
    wanted = set(names)
    try:
        client = storage.Client()
        found = {}
        for blob in client.list_blobs(bucket, prefix=prefix):
            name = blob.name[len(prefix):]
            if name in wanted:
                found[name] = Found(bytes=blob.size, crc32c=blob.crc32c)
    except (GoogleAuthError, GoogleAPIError) as error:
        log.warning("cannot list %s with google-cloud-storage (%s): streaming the shards instead", folder,
                    str(error).splitlines()[0] if str(error) else type(error).__name__)
        return None
    return {name: found.get(name, Found(bytes=None)) for name in names}


def _problem(name: str, expected, found: Found) -> str | None:
    if found.bytes is None:
        return f"{name} is missing"
    if found.bytes != expected.bytes:
        what = "truncated" if found.bytes < expected.bytes else "longer than written"
        return f"{name} has {found.bytes:,} bytes, the manifest says {expected.bytes:,} ({what})"
    if found.crc32c is not None and found.crc32c != expected.crc32c:
        return f"{name} has crc32c {found.crc32c}, the manifest says {expected.crc32c} (corrupted)"
    return None


def verify_files(*, folder: str, names, file_info: dict, level: str, manifest_path: str) -> Verified | None:
    """Checks the files ``names`` of ``folder`` against ``file_info`` (name -> FileInfo) at
    ``level`` (crc32c | size | none); raises TrainerUsageError naming every bad file, in one line.
    Returns what was checked, or None when nothing was (level none, or a version-1 manifest)."""
    if level not in VERIFY_LEVELS:
        raise TrainerUsageError(f"--verify_shards must be one of {', '.join(VERIFY_LEVELS)}, not {level!r}")
    names = list(names)
    if level == "none" or not names:
        return None
    if not file_info:
        log.warning("%s records no sizes or checksums (written by an older wwm-data): its shards cannot be verified",
                    manifest_path)
        return None
    unlisted = [name for name in names if name not in file_info]
    if unlisted:
        raise TrainerUsageError(f"manifest {manifest_path} is incomplete: no size or checksum for "
                                f"{', '.join(unlisted[:SHOWN_PROBLEMS])}")
    started = time.perf_counter()
    paths = {name: os.path.join(folder, name) if _is_local(folder) else f"{folder.rstrip('/')}/{name}"
             for name in names}
    listing = gcs_listing(folder, names) if folder.startswith("gs://") else None
    problems, checksums = [], 0
    for name in names:
        found = listing[name] if listing is not None else Found(bytes=_stat_size(paths[name]))
        if level == "size":
            found = Found(bytes=found.bytes)
        elif found.crc32c is None and found.bytes == file_info[name].bytes:  # a wrong size is reported as that
            found = Found(bytes=found.bytes, crc32c=_stream(paths[name]))
        checksums += found.crc32c is not None
        problem = _problem(name, file_info[name], found)
        if problem:
            problems.append(problem)
    how = ("sizes" if level == "size" else "sizes and crc32c as GCS reports them" if listing is not None
           else "sizes and crc32c")
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS]) + (f"; and {len(problems) - SHOWN_PROBLEMS} more"
                                                        if len(problems) > SHOWN_PROBLEMS else "")
        raise TrainerUsageError(f"{len(problems)} of the {len(names)} shards of {manifest_path} do not match it "
                                f"({how}): {shown}. Training would stop on them; make the data again "
                                "(wwm run --overwrite) or restore these files")
    verified = Verified(files=len(names), bytes=sum(file_info[name].bytes for name in names), checksums=checksums,
                        how=how, seconds=time.perf_counter() - started)
    log.info("%s: %d shards (%s) match the manifest's %s (%.1f s)", manifest_path, verified.files,
             f"{verified.bytes / 1e6:,.1f} MB" if verified.bytes >= 10**6 else f"{verified.bytes:,} bytes", how,
             verified.seconds)
    return verified
