"""Similar words for MacBERT's replacement (``--similar_words``): a table, or word vectors.

MacBERT replaces a masked word by a similar word found with the Synonyms toolkit, i.e. by word2vec
cosine similarity. Two inputs give the same table:

- a table, UTF-8, one word a line: ``word<TAB>candidate candidate ...``;
- word2vec vectors, in the format word2vec writes and the Synonyms toolkit and the Tencent AI Lab
  embeddings ship: a header ``count dimensions``, then per word either ``word v1 v2 ...`` (text)
  or ``word `` and ``dimensions`` little-endian float32s (binary; a newline after each vector is
  optional), plain or gzipped. Only the first ``max_words`` vectors are read (the files list the
  most frequent words first; Tencent's has 12 million).

From vectors, each word's ``NEIGHBOURS`` nearest words by cosine among the words of the same
length in characters (a candidate must have as many tokens as the word it replaces, and a Chinese
character is one token) are computed once, in blocks of matrix products, and returned as a table.
"""
import gzip
import hashlib
import io
import re

import numpy as np

NEIGHBOURS = 10  # what the Synonyms toolkit's nearby() returns
DEFAULT_MAX_WORDS = 200_000
BLOCK_CELLS = 1 << 25  # similarities computed at once (128 MB of float32)
BUFFER_BYTES = 1 << 20
_HEADER = re.compile(rb"^\s*(\d+)\s+(\d+)\s*$")


class SimilarWordsError(ValueError):
    pass


def parse_table(lines) -> dict:
    """``word<TAB>candidate candidate ...`` lines (str) -> {word: [candidates]}; blank lines and
    lines starting with ``#`` are skipped; a line without a tab is an error."""
    table = {}
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        word, tab, candidates = line.partition("\t")
        if not tab or not word.strip():
            raise SimilarWordsError(f"line {number}: expected word<TAB>candidates, got {line[:80]!r}")
        table.setdefault(word.strip(), []).extend(candidates.split())
    return table


def table_bytes(table: dict) -> bytes:
    """A table in its file format (the cache of vectors' neighbours is one)."""
    return "".join(f"{word}\t{' '.join(candidates)}\n" for word, candidates in table.items()).encode("utf-8")


def open_stream(stream):
    """A buffered binary stream, gunzipped when it starts with gzip's magic bytes (records are
    told apart by peeking at the buffer)."""
    stream = io.BufferedReader(stream, buffer_size=BUFFER_BYTES)
    if stream.peek(2)[:2] == b"\x1f\x8b":
        stream = io.BufferedReader(gzip.GzipFile(fileobj=stream), buffer_size=BUFFER_BYTES)
    return stream


def read_word2vec(stream, *, max_words: int = DEFAULT_MAX_WORDS):
    """(words, vectors (n, dimensions) float32) of a word2vec file, text or binary (detected from
    the first record), the first ``max_words`` of them."""
    header = stream.readline()
    match = _HEADER.match(header)
    if not match:
        raise SimilarWordsError(f"not word2vec vectors: the first line is {header[:60]!r}, not 'count dimensions'")
    count, dimensions = int(match.group(1)), int(match.group(2))
    wanted = min(count, max_words)
    words, vectors = [], np.empty((wanted, dimensions), np.float32)
    binary = None
    while len(words) < wanted:
        if binary is None:  # text records are a line of dimensions + 1 fields, all but the first numbers
            peeked = stream.peek(64 + 32 * dimensions)
            first_line = peeked.split(b"\n", 1)[0].split()
            binary = not (len(first_line) == dimensions + 1 and _all_numbers(first_line[1:]))
        if binary:
            word = _read_binary_word(stream)
            if word is None:
                break
            data = stream.read(4 * dimensions)
            if len(data) < 4 * dimensions:
                raise SimilarWordsError(f"binary word2vec cut short in the vector of word {len(words) + 1}")
            vectors[len(words)] = np.frombuffer(data, "<f4")
        else:
            line = stream.readline()
            if not line:
                break
            fields = line.rstrip(b"\r\n").split(b" ")
            fields = [f for f in fields if f] if len(fields) != dimensions + 1 else fields
            if len(fields) != dimensions + 1:
                raise SimilarWordsError(f"text word2vec line {len(words) + 2} has {len(fields) - 1} values, "
                                        f"the header says {dimensions}")
            word = fields[0]
            vectors[len(words)] = np.array(fields[1:], dtype=np.float32)
        words.append(word.decode("utf-8", errors="replace"))
    return words, vectors[:len(words)], ("binary" if binary else "text")


def _all_numbers(fields) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return True


def _read_binary_word(stream):
    """A binary record's word: bytes up to a space (a newline left by the previous vector is skipped)."""
    word = bytearray()
    while True:
        byte = stream.read(1)
        if not byte:
            return None if not word else bytes(word)
        if byte == b" ":
            return bytes(word)
        if byte == b"\n" and not word:
            continue
        word += byte


def nearest_neighbours(words, vectors, *, neighbours: int = NEIGHBOURS) -> dict:
    """{word: its ``neighbours`` nearest words by cosine, nearest first} among the words of the
    same length in characters; vectorized: one matrix product per block of rows."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1)
    lengths = np.array([len(w) for w in words])
    table = {}
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        if len(members) < 2:
            continue
        group = unit[members]
        take = min(neighbours, len(members) - 1)
        block = max(1, BLOCK_CELLS // len(members))
        for first in range(0, len(members), block):
            rows = np.arange(first, min(first + block, len(members)))
            similarity = group[rows] @ group.T
            similarity[np.arange(len(rows)), rows] = -np.inf  # not the word itself
            best = np.argpartition(-similarity, take - 1, axis=1)[:, :take]
            order = np.argsort(-np.take_along_axis(similarity, best, axis=1), axis=1, kind="stable")
            best = np.take_along_axis(best, order, axis=1)
            for row, found in zip(rows.tolist(), best.tolist()):
                table[words[members[row]]] = [words[members[k]] for k in found]
    return table


def kind_of(head: bytes) -> str:
    """'word2vec' or 'table', from the first bytes of a (gunzipped) file."""
    first_line = head.split(b"\n", 1)[0]
    return "word2vec" if _HEADER.match(first_line) else "table"


def load(stream, *, max_words: int = DEFAULT_MAX_WORDS, neighbours: int = NEIGHBOURS) -> tuple:
    """A table or word2vec file (binary stream, maybe gzipped) -> ({word: [candidates]}, what it was:
    'table', 'word2vec text' or 'word2vec binary')."""
    stream = open_stream(stream)
    if kind_of(stream.peek(256)) == "table":
        return parse_table(io.TextIOWrapper(stream, encoding="utf-8")), "table"
    words, vectors, form = read_word2vec(stream, max_words=max_words)
    return nearest_neighbours(words, vectors, neighbours=neighbours), f"word2vec {form}"


def cache_key(head_digest: str, *, max_words: int, neighbours: int) -> str:
    """The cache name of a vectors file's neighbours: its content, how many words, how many neighbours."""
    return hashlib.sha256(f"{head_digest}:{max_words}:{neighbours}:same-length-v1".encode()).hexdigest()[:32]


def tokenized(table: dict, tokenizer):
    """The table in token ids of the run's tokenizer (``masking.SimilarWords``): candidates with
    another number of tokens than their word are left out there."""
    from wwm_core.masking import SimilarWords
    from wwm_core.tokenization import tokenize_sentences

    words = list(table)
    texts = words + [candidate for word in words for candidate in table[word]]
    batch = tokenize_sentences(tokenizer, texts) if texts else None
    if batch is None:
        return SimilarWords.empty()
    offsets = batch.sentence_token_offsets
    ids = batch.ids
    token_ids = [tuple(ids[offsets[i]:offsets[i + 1]].tolist()) for i in range(len(texts))]
    pairs, at = [], len(words)
    for index, word in enumerate(words):
        count = len(table[word])
        pairs.append((token_ids[index], token_ids[at:at + count]))
        at += count
    return SimilarWords.from_token_ids(pairs)
