"""Input files, matched once, at launch: what the manifest describes is what the workers read.

    match_sources(sources)   every source's patterns -> InputFiles (each file once) and the
                             BadRecords of paths that cannot be read (a dangling or looping
                             symbolic link, a file name that is not UTF-8, a file matched twice);
                             a named pipe, device or socket is refused in one line
    check_unchanged(file)    a reader, before and after it reads: the file is still the one
                             launched with (its size and modification time), or the run stops

A pattern that names an existing file is that file, even when its name holds ``[``, ``*`` or
``?``; any other pattern is a glob in Beam's syntax (``*`` within a folder, ``**`` across
folders). Local folders are listed without following symbolic links, so every path a glob matches
is read or accounted for.
"""
import collections
import dataclasses
import os
import re
import stat

from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from pipelines.io_utils import input_root, join, normalized_pattern, path_under_root, read_bytes
from pipelines.output import MANIFEST, file_checksum
from pipelines.parquet_io import DOCUMENTS_FOLDER
from wwm_core.errors import UsageError, WorkerUsageError
from wwm_core.manifest import parse_manifest
from wwm_core.text import BadRecord

_GLOB = re.compile(r"[*?\[]")
_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


@dataclasses.dataclass(frozen=True)
class InputFile:
    """A file a run reads, as it was at launch."""
    source: int  # the source's position in the configuration
    path: str
    relative: str  # the path under the source's input root: what ids and the shard order use
    bytes: int
    modified: float  # seconds since the epoch; a file written after the launch has another
    pattern: str

    @property
    def order(self) -> tuple:
        return self.source, self.relative


class InputChanged(WorkerUsageError):
    """An input file that is no longer the one the run was launched with."""


def printable(path: str) -> str:
    """A path as text that can be written anywhere: bytes that are not UTF-8 as \\x escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _local_candidates(pattern: str) -> list:
    """Every path (files, links, anything but folders) a local pattern matches, folders listed
    without following links: a literal path that exists is itself."""
    if os.path.lexists(pattern) or not _GLOB.search(pattern):
        return [pattern] if os.path.lexists(pattern) else []
    fixed = pattern[:_GLOB.search(pattern).start()]
    folder = fixed if fixed.endswith("/") else os.path.dirname(fixed)
    matches = re.compile(FileSystem.translate_pattern(pattern)).match
    found = []
    for parent, _, names in os.walk(folder or "/"):
        found += [path for path in (os.path.join(parent, name) for name in names) if matches(path)]
    return sorted(found)


def _local_file(path: str):
    """(bytes, modified) of a local regular file; a str problem (the dead letter's reason and
    detail) for a path that cannot be read; UsageError for a file that is not a regular file."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "undecodable_file_name", "the file name is not UTF-8; rename it (convmv -t utf-8)"
    try:
        info = os.stat(path)
    except OSError as error:
        if os.path.islink(path):
            looping = error.errno == 40  # ELOOP
            return (("symbolic_link_loop", "a symbolic link that points to itself, through other links") if looping
                    else ("broken_symbolic_link", f"a symbolic link to {os.readlink(path)}, which does not exist"))
        return "unreadable_file", f"{type(error).__name__}: {error}"
    if stat.S_ISDIR(info.st_mode):
        return None
    for test, kind in _NOT_REGULAR:
        if test(info.st_mode):
            raise UsageError(f"--input {path} is {kind}, not a file: a run reads regular files only (a pipe or "
                             "device cannot be read twice, or sized, or split)")
    return info.st_size, info.st_mtime


def _matched(pattern: str):
    """(path, (bytes, modified)) or (path, (reason, detail)) of every path ``pattern`` matches."""
    if "://" not in pattern:
        for path in _local_candidates(pattern):
            found = _local_file(path)
            if found is not None:
                yield path, found
        return
    if _GLOB.search(pattern) and FileSystems.exists(pattern):
        metadata_list = [FileSystems.get_filesystem(pattern).metadata(pattern)]
    else:
        metadata_list = FileSystems.match([pattern])[0].metadata_list
    for metadata in metadata_list:
        yield metadata.path, (metadata.size_in_bytes, metadata.last_updated_in_seconds)


def match_sources(sources) -> tuple:
    """([InputFile] in the fixed order (source, path under its root), [BadRecord]) for every
    source's patterns; a pattern that matches nothing is a UsageError."""
    files, bad = [], []
    for index, spec in enumerate(sources):
        patterns = [normalized_pattern(p) for p in spec.patterns]
        root = input_root(patterns)
        by_relative = collections.defaultdict(list)
        for given, pattern in zip(spec.patterns, patterns):
            matched = list(_matched(pattern))
            if not matched:
                raise UsageError(f"--input {given!r} matches no file")
            for path, found in matched:
                by_relative[path_under_root(path, root)].append((path, found, pattern))
        for relative in sorted(by_relative):
            (path, found, pattern), *again = sorted(by_relative[relative], key=lambda item: item[0])
            name = f"{spec.name}:{printable(relative)}"
            if isinstance(found[0], str):  # the path, as its record's raw text: what the manifest lists
                reason, detail = found
                bad.append(BadRecord(name, reason, f"{printable(path)}: {detail}", printable(path)))
            else:
                files.append(InputFile(index, path, relative, found[0], found[1], pattern))
            # Read twice, its records would have the same ids.
            bad += [BadRecord(name, "duplicate_input_file", f"{printable(other)}: the same file is matched more "
                              "than once (listed twice, or by two patterns); it is read once", "")
                    for other, _, _ in again]
    return files, bad


def check_unchanged(path: str, *, size: int, modified: float) -> None:
    """Raises InputChanged when ``path`` is no longer the file the run was launched with: what the
    manifest says of it (size, crc32c) would not be what was read."""
    try:
        metadata = FileSystems.get_filesystem(path).metadata(path)
    except Exception:  # noqa: BLE001 - gone or unreadable: the reader dead-letters it and says why
        return
    if metadata.size_in_bytes != size or metadata.last_updated_in_seconds != modified:
        raise InputChanged(f"input file {printable(path)} changed while the run read it ({size} bytes at launch, now "
                           f"{metadata.size_in_bytes}): its records would not be the bytes the manifest describes. "
                           "Run again once it no longer changes, or copy it first")


# ---------------------------------------------------------------- at launch: a run's inputs

# Input checksums in the manifest: local files up to this size are read once more to compute one
# (about a second per GiB); gs:// objects report theirs, one request each, up to a number.
MAX_CHECKSUM_BYTES = 2 * 1024**3
MAX_REMOTE_CHECKSUMS = 1000


def prepared_link(config):
    """For a run on `wwm prepare` output: that prepare's manifest, sources and cleaning, which
    decided the text this run reads."""
    links = []
    for source in config.sources:
        if source.input_format != "parquet":
            continue
        for pattern in source.patterns:
            folder, _ = FileSystems.split(pattern)
            root, name = FileSystems.split(folder.rstrip("/"))
            manifest_path = join(root, MANIFEST)
            if name != DOCUMENTS_FOLDER or not FileSystems.exists(manifest_path):
                continue
            prepared = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("documents",))
            links.append({"manifest": manifest_path, "sources": prepared.config.get("sources", []),
                          "cleaning": prepared.config.get("cleaning", {}), "num_documents": prepared.num_documents})
    if not links:
        return None
    return links[0] if len(links) == 1 else {"manifests": links}


def input_files(config) -> tuple:
    """([InputFile], [BadRecord]) of every source (pipelines.inputs.match_sources); a pattern
    that matches nothing, a file that is not a regular file, or Parquet read as another format,
    is an error."""
    files, unreadable = match_sources(config.sources)
    for file in files:
        input_format = config.sources[file.source].input_format
        if file.path.lower().endswith(".parquet") and input_format != "parquet":
            # Read as text, a Parquet file's bytes become dead letters, every one of them.
            raise UsageError(f"{file.path} is Parquet (`wwm prepare` writes documents so), read as "
                             f"{input_format}: add --input_format=parquet (format=parquet in --source)")
    return files, unreadable


def matched_files(paths) -> list:
    """InputFiles of existing files named exactly (a prepared corpus's documents files)."""
    files = []
    for path in paths:
        metadata = FileSystems.get_filesystem(path).metadata(path)
        files.append(InputFile(0, path, path, metadata.size_in_bytes, metadata.last_updated_in_seconds, path))
    return files


def described_inputs(files, unreadable=(), sources=None) -> list:
    """What a manifest says of its input files: path, bytes, the source's name and, where cheap,
    the crc32c as GCS reports it (``input_checksum``), so a local copy and its gs:// original
    compare equal; and the paths matched that could not be read, with their dead letter's reason."""
    described, remote = [], 0
    for file in files:
        info = {"path": file.path, "bytes": file.bytes}
        if sources is not None:
            info["source"] = sources[file.source].name
        remote += "://" in file.path
        checksum = input_checksum(file.path, size=file.bytes) if remote <= MAX_REMOTE_CHECKSUMS else None
        if checksum:
            info["crc32c"] = checksum
        described.append(info)
    return described + [{"path": record.raw, "dead_letter": record.reason} for record in unreadable
                        if record.reason != "duplicate_input_file"]  # a duplicate is listed once, above


def input_checksum(path: str, *, size: int):
    """The crc32c of an input file: from a gs:// object's metadata (no download), computed for a
    local file up to MAX_CHECKSUM_BYTES; None where that is not cheap or not possible."""
    if path.startswith("gs://"):
        try:
            return file_checksum(path)[1]
        except Exception:  # noqa: BLE001 - the checksum is a courtesy of the manifest: the run does not need it
            return None
    if "://" in path or size > MAX_CHECKSUM_BYTES:
        return None
    try:
        return file_checksum(path)[1]
    except OSError:  # unreadable now: the reader dead-letters it and says why
        return None


def input_bytes(inputs) -> int:
    """The bytes of the input files (what the read bar counts towards)."""
    return sum(file.bytes for file in inputs)
