"""Small file helpers over Beam's FileSystems, so every path may be local or gs://."""
import os
import tempfile

from apache_beam.io.filesystems import FileSystems


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
    """A local path for ``path``: itself when local, else a downloaded copy (for gs:// models)."""
    if not path.startswith("gs://"):
        return path
    if FileSystems.exists(join(path, "cws_model.bin")):  # an LTP release folder on gs://
        path = join(path, "cws_model.bin")
    local = os.path.join(tempfile.mkdtemp(prefix="wwm-model-"), os.path.basename(path.rstrip("/")))
    with open(local, "wb") as handle:
        handle.write(read_bytes(path))
    return local
