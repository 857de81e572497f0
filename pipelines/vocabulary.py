"""The run's vocabulary, loaded at launch: Google's bundled vocab.txt, a vocab.txt (local, gs://
or a hub model's), or a Hugging Face tokenizer.json (--tokenizer), and MacBERT's similar words in
its token ids (--replacement macbert), computed once from word2vec vectors and cached."""
import hashlib
import io
import logging
import os

import numpy as np
from apache_beam.io.filesystems import CompressionTypes, FileSystems

from pipelines.io_utils import join, read_bytes
from wwm_core.errors import UsageError
from wwm_core.hub import hub_file, is_hub_id
from wwm_core.vocab import TOKENIZER_FILE, Vocab, bundled_vocab_bytes

log = logging.getLogger("wwm")
TOKENIZER_CONFIG = "tokenizer_config.json"


def load_vocab(instances) -> tuple:
    """(Vocab, what the manifest records of --tokenizer or None): the bundled Google vocabulary, a
    vocab.txt (local, gs:// or a hub model's), or with --tokenizer a Hugging Face tokenizer.json."""
    if instances.tokenizer:
        return load_tokenizer(instances.tokenizer, special_tokens=dict(instances.special_tokens))
    vocab_file = instances.vocab_file
    try:
        if vocab_file is None:
            return Vocab.from_bytes(bundled_vocab_bytes()), None
        path = hub_file(vocab_file, "vocab.txt") if is_hub_id(vocab_file) else vocab_file
        return Vocab.from_bytes(read_bytes(path)), None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot use --vocab_file {vocab_file}: {error}") from error


def load_tokenizer(name: str, *, special_tokens: dict) -> tuple:
    """--tokenizer: a tokenizer.json, a folder holding one (and maybe tokenizer_config.json, which
    declares the special tokens), or a hub id ORG/NAME[@revision] (both files through the
    Hugging Face cache). Returns (Vocab, {"file", "sha256", "path" | "hub_id", "revision",
    "commit"})."""
    config = None
    try:
        if is_hub_id(name):
            path = hub_file(name, TOKENIZER_FILE)
            try:
                config = read_bytes(hub_file(name, TOKENIZER_CONFIG))
            except UsageError:
                config = None  # optional: many tokenizers declare their special tokens in tokenizer.json
            repo_id, _, revision = name.partition("@")
            snapshot = os.path.basename(os.path.dirname(path))  # the cache's snapshots/<commit>/ folder
            origin = {"hub_id": repo_id, "revision": revision or "main", "commit": snapshot}
        else:
            path = name
            if not name.endswith(".json"):  # a folder
                path = join(name, TOKENIZER_FILE)
                if FileSystems.exists(join(name, TOKENIZER_CONFIG)):
                    config = read_bytes(join(name, TOKENIZER_CONFIG))
            origin = {"path": name}
        data = read_bytes(path)
        vocab = Vocab.from_tokenizer_json(data, config=config, special_tokens=special_tokens)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot use --tokenizer {name}: {error}") from error
    return vocab, {**origin, "file": TOKENIZER_FILE, "sha256": vocab.sha256}


def similar_words_cache_folder() -> str:
    return os.path.join(os.environ.get("WWM_CACHE") or os.path.expanduser("~/.cache/wwm-data"), "similar_words")


class _HashingReader(io.RawIOBase):
    """A stream that hashes what is read from it: the cache key of a vectors file is what was
    read of it (the first --similar_words_limit words), not the whole file (Tencent's is 16 GB)."""

    def __init__(self, raw):
        self.raw, self.sha256 = raw, hashlib.sha256()

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.raw.read(len(buffer))
        self.sha256.update(data)
        buffer[:len(data)] = data
        return len(data)


def load_similar_words(instances, vocab):
    """MacBERT's similar words for ``--replacement macbert``: {"npz": the table in this run's token
    ids (``masking.SimilarWords``), "about": what the manifest records}, or None. From word2vec
    vectors, the neighbours are computed once and cached by the bytes read and the settings."""
    if instances.replacement != "macbert":
        return None
    from wwm_core import similar_words as similar
    from wwm_core.tokenization import make_tokenizer

    path = instances.similar_words
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            reader = _HashingReader(handle)
            stream = similar.open_stream(reader)
            if similar.kind_of(stream.peek(256)) == "table":
                table, kind = similar.parse_table(io.TextIOWrapper(stream, encoding="utf-8")), "table"
            else:
                words, vectors, form = similar.read_word2vec(stream, max_words=instances.similar_words_limit)
                kind = f"word2vec {form}"
                key = similar.cache_key(reader.sha256.hexdigest(), max_words=instances.similar_words_limit,
                                        neighbours=similar.NEIGHBOURS)
                cached = os.path.join(similar_words_cache_folder(), f"{key}.tsv")
                if os.path.exists(cached):
                    log.info("similar words of %s: the cached neighbours in %s", path, cached)
                    with open(cached, encoding="utf-8") as lines:
                        table = similar.parse_table(lines)
                else:
                    log.info("similar words of %s: the %d nearest of each of its %d words (%d dimensions), once",
                             path, similar.NEIGHBOURS, len(words), vectors.shape[1])
                    table = similar.nearest_neighbours(words, vectors)
                    os.makedirs(os.path.dirname(cached), exist_ok=True)
                    temporary = f"{cached}.tmp-{os.getpid()}"
                    with open(temporary, "wb") as out:
                        out.write(similar.table_bytes(table))
                    os.replace(temporary, cached)
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as error:
        raise UsageError(f"cannot use --similar_words {path}: {error}") from error
    tokenizer = make_tokenizer(vocab, do_lower_case=instances.do_lower_case)
    table_ids = similar.tokenized(table, tokenizer)
    data = table_ids.to_npz_bytes()
    with_candidates = int(np.count_nonzero(np.diff(table_ids.candidate_offsets)))
    log.info("similar words: %d words, %d with a candidate of their own length in tokens", len(table_ids),
             with_candidates)
    if not with_candidates:
        raise UsageError(f"--similar_words {path}: no word has a candidate with as many tokens as itself, so MacBERT's "
                         "replacement would be random tokens everywhere")
    return {"npz": data, "about": {"source": path, "kind": kind, "words": len(table_ids),
                                   "words_with_candidates": with_candidates,
                                   "sha256": hashlib.sha256(data).hexdigest(),
                                   "source_sha256_read": reader.sha256.hexdigest(),
                                   "limit": instances.similar_words_limit if kind != "table" else None}}
