"""Small file helpers over Beam's FileSystems, so every path may be local or gs://: reading
compressed files only after their checksums are verified, and the input roots that make document
ids independent of where a corpus lies."""
import bz2
import dataclasses
import os
import posixpath
import re
import tempfile
import zlib

from apache_beam.io.filesystems import CompressionTypes, FileSystems

from wwm_core.text import Damage

READ_CHUNK_BYTES = 1 << 20
# The most bytes one decompress call may return: a decompression bomb (1 MB of gzip that
# inflates to 1 GB) is read piece by piece like any other file, never held whole.
MAX_INFLATE_BYTES = 4 << 20


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


def open_raw(path: str):
    """The file's bytes as stored (no decompression by extension), seekable."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


# ---------------------------------------------------------------- input roots and document ids

_GLOB = re.compile(r"[*?\[]")


def normalized_pattern(pattern: str) -> str:
    """A local pattern as an absolute, normalized path (how it was spelled, relative or from which
    working directory, must not matter); gs:// patterns as they are."""
    if "://" in pattern:
        return pattern
    return os.path.abspath(os.path.expanduser(pattern))


def input_root(patterns) -> str:
    """The folder that every file the patterns can match lies under: the longest common folder of
    the patterns' fixed (glob-free) parts, ending in "/". A file's path under it, with the source's
    name and the record's position, is the record's id: the same corpus at another path, in another
    bucket, or spelled differently, gives the same ids."""
    folders = []
    for pattern in patterns:
        pattern = normalized_pattern(pattern)
        glob = _GLOB.search(pattern)
        fixed = pattern[:glob.start()] if glob else pattern
        folders.append(fixed[:fixed.rfind("/") + 1])
    root = os.path.commonprefix(folders)
    return root[:root.rfind("/") + 1]


def path_under_root(path: str, root: str) -> str:
    path = normalized_pattern(path)
    return path[len(root):] if path.startswith(root) else posixpath.basename(path)


# ---------------------------------------------------------------- verified decompression

@dataclasses.dataclass(frozen=True)
class Segment:
    """One gzip member or bz2 stream of a file: its compressed byte range and what became of it."""
    start: int
    end: int
    status: str  # "ok", "corrupt" (a checksum or format error), "truncated" (the file ends inside it)
    detail: str = ""


class _Codec:
    """gzip (a file of members) or bz2 (a file of streams), with zlib's and libbz2's own checks:
    gzip verifies each member's CRC-32 and length at its end, bz2 each block's CRC-32 and each
    stream's combined CRC."""

    def __init__(self, kind: str):
        self.kind = kind
        # gzip: ID1 ID2 and CM=8 (deflate); bz2: "BZh", the block size, then a block's or the end's magic.
        self.header = re.compile(rb"\x1f\x8b\x08" if kind == "gz" else rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")

    def decompressor(self):
        return zlib.decompressobj(wbits=31) if self.kind == "gz" else bz2.BZ2Decompressor()

    def pieces(self, decompressor, data: bytes):
        """Decompressed pieces of ``data``, none over MAX_INFLATE_BYTES."""
        if self.kind == "gz":
            out = decompressor.decompress(data, MAX_INFLATE_BYTES)
            while True:
                if out:
                    yield out
                if not decompressor.unconsumed_tail:
                    return
                out = decompressor.decompress(decompressor.unconsumed_tail, MAX_INFLATE_BYTES)
        else:
            out = decompressor.decompress(data, max_length=MAX_INFLATE_BYTES)
            while True:
                if out:
                    yield out
                if decompressor.eof or decompressor.needs_input:
                    return
                out = decompressor.decompress(b"", max_length=MAX_INFLATE_BYTES)


def codec_of(path: str):
    if path.endswith(".gz"):
        return _Codec("gz")
    if path.endswith(".bz2"):
        return _Codec("bz2")
    return None


class _Reader:
    """A file read forward in chunks, with the bytes a decompressor did not use put back."""

    def __init__(self, handle):
        self._handle = handle
        self._buffer = b""

    def seek(self, position: int) -> None:
        self._handle.seek(position)
        self._buffer = b""

    def read(self) -> bytes:
        data, self._buffer = self._buffer, b""
        return data or self._handle.read(READ_CHUNK_BYTES)

    def unread(self, data: bytes) -> None:
        self._buffer = data + self._buffer


_ERRORS = (OSError, EOFError, ValueError, zlib.error)


def _inflate(reader, codec):
    """Yields the decompressed pieces of the member or stream the reader is at, and returns
    (its compressed length, status, detail). The pieces are trusted only when the status is "ok"."""
    decompressor = codec.decompressor()
    consumed = 0
    while True:
        data = reader.read()
        if not data:
            return consumed, "truncated", "the file ends inside a compressed stream"
        try:
            yield from codec.pieces(decompressor, data)
        except _ERRORS as error:
            return consumed, "corrupt", f"{type(error).__name__}: {error}"
        if decompressor.eof:
            reader.unread(decompressor.unused_data)
            return consumed + len(data) - len(decompressor.unused_data), "ok", ""
        consumed += len(data)


def _checked(reader, codec):
    """Decompresses the member or stream the reader is at, output discarded: (length, status, detail)."""
    pieces = _inflate(reader, codec)
    while True:
        try:
            next(pieces)
        except StopIteration as done:
            return done.value


def _next_header(reader, position: int, codec):
    """The offset of the next member or stream header at or after ``position`` that decompresses
    (a header's bytes can occur by chance inside compressed data), or None."""
    overlap = 9
    while True:
        reader.seek(position)
        data = reader.read()
        if not data:
            return None
        for match in codec.header.finditer(data):
            candidate = position + match.start()
            reader.seek(candidate)
            if _checked(reader, codec)[1] != "corrupt":
                return candidate
        if len(data) <= overlap:
            return None
        position += len(data) - overlap


def first_member_at_or_after(path: str, start: int):
    """The offset of the first gzip member or bz2 stream of ``path`` that starts at or after
    ``start`` and decompresses, or None: where a reader of a byte range of a multistream file
    begins when the index's offset is not a stream's start."""
    codec = codec_of(path)
    with open_raw(path) as handle:
        handle.seek(start)
        if codec.header.match(handle.read(16)):
            return start
        return _next_header(_Reader(handle), start, codec)


def _only_padding(reader) -> bool:
    """True when nothing but NUL bytes is left (tape padding, which gzip and bzip2 ignore)."""
    while True:
        data = reader.read()
        if not data:
            return True
        if data.strip(b"\0"):
            return False


def compressed_segments(handle, codec, *, start: int = 0, end: int = None):
    """Pass one: every member (gzip) or stream (bz2) that starts in [start, end), decompressed and
    checked, output discarded. A corrupt one reaches to the next header that decompresses; bytes
    that are no member at all (trailing garbage) are a corrupt segment too."""
    segments, position, reader = [], start, _Reader(handle)
    reader.seek(position)
    while end is None or position < end:
        data = reader.read()
        if not data:
            break
        reader.unread(data)
        length, status, detail = _checked(reader, codec)
        if status == "corrupt":
            stop = _next_header(reader, position + 1, codec)
            segments.append(Segment(position, -1 if stop is None else stop, "corrupt", detail))
            if stop is None:
                break
            reader.seek(stop)
            position = stop
            continue
        segments.append(Segment(position, position + length, status, detail))
        position += length
        if status == "truncated":
            break
        reader.seek(position)
        if _only_padding(reader):
            break
        reader.seek(position)
    return segments


def verified_chunks(path: str, *, start: int = 0, end: int = None, on_segments=None):
    """The decompressed bytes of ``path`` in chunks, with a Damage in place of whatever could not
    be verified; for a range of a multistream file, of the streams that start in [start, end).

    Compressed files are read twice: once to check every gzip member's or bz2 stream's checksums
    (gzip checks a member's CRC only at its end, after handing out everything before it, so 64
    flipped bytes would otherwise come out as text), then again to hand out the verified ones,
    streaming (memory stays bounded by a chunk, whatever the member's size). A corrupt member
    becomes one Damage ``corrupt_compressed_data`` and the file goes on with the next member or
    stream. A file that ends inside a bz2 stream hands out the stream's whole blocks (each checked
    by its own CRC), then a Damage ``truncated_compressed_file``; one that ends inside a gzip
    member hands out nothing of that member, only the Damage: deflate has no check before the
    member's trailer, so a cut member's bytes (a flipped bit in them included) cannot be verified. ``on_segments`` is called with the Segments found by the first
    pass (the multistream reader checks the index against them)."""
    codec = codec_of(path)
    with open_raw(path) as handle:
        if codec is None:
            handle.seek(start)
            position = start
            while end is None or position < end:
                data = handle.read(READ_CHUNK_BYTES if end is None else min(READ_CHUNK_BYTES, end - position))
                if not data:
                    break
                position += len(data)
                yield data
            return
        reader = _Reader(handle)
        segments = compressed_segments(handle, codec, start=start, end=end)
        if on_segments is not None:
            on_segments(segments)
        for segment in segments:
            where = f"compressed bytes {segment.start}-{segment.end if segment.end >= 0 else 'end'}"
            if segment.status == "corrupt":
                yield Damage("corrupt_compressed_data", f"{where}: {segment.detail}")
                continue
            if segment.status == "truncated" and codec.kind == "gz":
                yield Damage("truncated_compressed_file", f"{where}: {segment.detail}, before the CRC at the gzip "
                             "member's end: nothing of the member can be verified, so none of it is read")
                continue
            reader.seek(segment.start)
            _, status, detail = yield from _inflate(reader, codec)
            if status == "corrupt":  # it passed the first pass: the file changed while it was read
                yield Damage("corrupt_compressed_data", f"{where}: changed while it was read: {detail}")
            elif segment.status == "truncated":
                yield Damage("truncated_compressed_file", f"{where}: {segment.detail}")
