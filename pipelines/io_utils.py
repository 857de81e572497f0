"""Small file helpers over Beam's FileSystems, so every path may be local or gs://."""
import bz2
import gzip
import os
import tempfile

from apache_beam.io.filesystems import CompressionTypes, FileSystems


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as handle:
        handle.write(data)


def join(base: str, *names: str) -> str:
    return FileSystems.join(base.rstrip("/"), *names)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def stage_locally(path: str) -> str:
    """A local path for ``path``: itself when local, else a downloaded copy of the file or of the
    folder's files (gs:// models: an LTP model file or model folder)."""
    if not path.startswith("gs://"):
        return path
    local_root = tempfile.mkdtemp(prefix="wwm-model-")
    folder_files = [m.path for m in FileSystems.match([join(path, "*")])[0].metadata_list]
    if not folder_files:
        local = os.path.join(local_root, os.path.basename(path.rstrip("/")))
        with open(local, "wb") as handle:
            handle.write(read_bytes(path))
        return local
    prefix = path.rstrip("/") + "/"
    for remote in folder_files:
        local = os.path.join(local_root, remote[len(prefix):])
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "wb") as handle:
            handle.write(read_bytes(remote))
    return local_root


def open_decompressed(path: str):
    """A binary file object over ``path``, decompressed by extension (.bz2, .gz).

    Python's own decompressors are used instead of Beam's: Beam's CompressedFile ends silently
    at a truncated stream, which would lose the rest of the file without a trace; these raise
    EOFError, which the readers turn into a dead letter.
    """
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if path.endswith(".bz2"):
        return bz2.BZ2File(raw)
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    return raw
