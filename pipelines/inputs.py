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

from pipelines.io_utils import input_root, normalized_pattern, path_under_root
from wwm_core.errors import UsageError, WorkerUsageError
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
