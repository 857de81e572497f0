"""Segmenting documents in batches, with cached word boundaries and per-document failure isolation.

Cached boundaries are keyed by a hash of the sentence text (and, one level up, by the segmenter's
identity: see ``segmentation.identity_key``), so a sentence whose text changed is segmented
again, and boundaries are never looked up by position.
"""
import hashlib
import unicodedata

from wwm_core.text import BadRecord

# The most characters one segmenter call is given: a longer run of text (a "sentence" with no
# sentence end in it) is segmented in windows of at most this many characters, each cut after the
# window's last punctuation or space where its second half has one, so that a segmenter call takes
# bounded time (jieba's grows with the square of the run). Real sentences are far shorter
# (measured: docs/reliability.md, "Long runs without punctuation").
MAX_SEGMENT_CHARS = 1024


def sentence_key(sentence: str) -> bytes:
    """128 bits: collisions stay negligible across billions of sentences."""
    return hashlib.blake2b(sentence.encode("utf-8"), digest_size=16).digest()


def cache_entries(rows) -> dict:
    """{sentence key: word lengths} from cached rows (``sentence_keys``, ``word_lengths`` lists)."""
    entries = {}
    for row in rows:
        entries.update(zip(row["sentence_keys"], row["word_lengths"]))
    return entries


def document_batches(documents, sentences_per_batch: int):
    """Consecutive documents in groups of about ``sentences_per_batch`` sentences (whole documents):
    the unit the segmenter and the tokenizer are called on."""
    batch, size = [], 0
    for document in documents:
        batch.append(document)
        size += len(document.sentences)
        if size >= sentences_per_batch:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def segment_documents(segmenter, documents, *, stats, dead_letters, cache=None):
    """Word lengths for every sentence of ``documents``: from ``cache`` where it holds the sentence,
    else from the segmenter in one batched call. If the segmenter fails on that batch, each
    document is segmented alone and those it fails on become dead letters (``segmenter_error``),
    so one pathological document never fails its whole shard.

    Returns (kept documents, their sentences in order, word lengths per sentence).
    """
    sentences = [sentence for document in documents for sentence in document.sentences]
    words = [None] * len(sentences)
    todo = list(range(len(sentences)))
    if cache is not None:
        todo = []
        for index, sentence in enumerate(sentences):
            cached = cache.get(sentence_key(sentence))
            if cached is None:
                todo.append(index)
            else:
                words[index] = list(cached)
        stats["sentences.segmentation_cache_hit"] += len(sentences) - len(todo)
        stats["sentences.segmentation_cache_miss"] += len(todo)
    if not todo:
        return list(documents), sentences, words
    try:
        _segment_into(words, segmenter, sentences, todo, stats=stats)
        return list(documents), sentences, words
    except Exception:  # noqa: BLE001 - any segmenter error; retried per document below
        pass
    todo = set(todo)
    kept, kept_sentences, kept_words, first = [], [], [], 0
    for document in documents:
        own = range(first, first + len(document.sentences))
        first += len(document.sentences)
        try:
            _segment_into(words, segmenter, sentences, [i for i in own if i in todo], stats=stats)
        except Exception as error:  # noqa: BLE001
            stats["dead_lettered.segmenter_error"] += 1
            dead_letters.append(BadRecord(document.id, "segmenter_error", repr(error)[:500],
                                          document.sentences[0][:200] if document.sentences else ""))
            continue
        kept.append(document)
        kept_sentences += [sentences[i] for i in own]
        kept_words += [words[i] for i in own]
    return kept, kept_sentences, kept_words


def windows(sentence: str, *, limit: int = MAX_SEGMENT_CHARS) -> list:
    """``sentence`` cut into pieces of at most ``limit`` characters, each cut after the last
    punctuation or space in the second half of its window, else at the limit."""
    pieces, start = [], 0
    while len(sentence) - start > limit:
        end = start + limit
        cut = next((i + 1 for i in range(end - 1, start + limit // 2 - 1, -1)
                    if unicodedata.category(sentence[i])[0] in "PZ"), end)
        pieces.append(sentence[start:cut])
        start = cut
    pieces.append(sentence[start:])
    return pieces


def segment_in_windows(segmenter, sentences, *, stats=None) -> list:
    """``segmenter.segment(sentences)`` with every sentence over MAX_SEGMENT_CHARS segmented in
    windows (``windows``), in the same one call; a window's edge is a word boundary. Counted:
    ``sentences_segmented_in_windows``."""
    pieces, owners = [], []
    for number, sentence in enumerate(sentences):
        cut = windows(sentence) if len(sentence) > MAX_SEGMENT_CHARS else (sentence,)
        pieces += cut
        owners += [number] * len(cut)
    if len(pieces) == len(sentences):
        return segmenter.segment(list(sentences))
    if stats is not None:
        stats["sentences_segmented_in_windows"] += sum(len(sentence) > MAX_SEGMENT_CHARS for sentence in sentences)
    results = segmenter.segment(pieces)
    if len(results) != len(pieces):
        return results  # the caller checks the count and says what went wrong
    words = [[] for _ in sentences]
    for number, lengths in zip(owners, results):
        if lengths is None or words[number] is None:
            words[number] = None  # no word grouping (the char segmenter)
        else:
            words[number] += list(lengths)
    return words


def _segment_into(words: list, segmenter, sentences: list, indexes: list, *, stats=None) -> None:
    if not indexes:
        return
    results = segment_in_windows(segmenter, [sentences[i] for i in indexes], stats=stats)
    if len(results) != len(indexes):
        raise ValueError(f"the segmenter returned {len(results)} results for {len(indexes)} sentences")
    for index, lengths in zip(indexes, results):
        words[index] = lengths
