"""WordPiece tokenization (the ``tokenizers`` library's BERT tokenizer) and word-group alignment.

Chinese characters are split one per token by BERT's pre-tokenizer, so their ids are always the
plain (never ``##``) form whatever the segmenter says. The segmenter only decides which tokens form
one masking group; :func:`group_starts` is that decision. Both work on a whole batch of sentences
as flat arrays: per-sentence Python objects would cost more than the tokenizing itself.
"""
import dataclasses
import itertools
import os
import unicodedata

import numpy as np
from tokenizers import Tokenizer
from tokenizers.models import WordPiece
from tokenizers.normalizers import BertNormalizer
from tokenizers.pre_tokenizers import BertPreTokenizer

from wwm_core.vocab import TOKENIZER_FILE, Vocab

_chain = itertools.chain.from_iterable


@dataclasses.dataclass(frozen=True)
class TokenizedBatch:
    ids: np.ndarray  # int32 token ids of all sentences, concatenated
    starts: np.ndarray  # int32 character offset of each token in its sentence
    ends: np.ndarray  # int32, exclusive
    piece_word: np.ndarray  # int32 counter that changes exactly where a WordPiece word (`x ##y ##z`) begins
    sentence_tokens: np.ndarray  # int64 number of tokens of each sentence
    space_before: np.ndarray  # bool: whitespace lies between this token and the one before it

    @property
    def sentence_token_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sentence_tokens)])


def make_tokenizer(vocab: Vocab, *, do_lower_case: bool):
    """The run's tokenizer: Google's BERT WordPiece for a vocab.txt, the tokenizer itself for a
    Hugging Face tokenizer.json (whose own normalizer decides the case: ``do_lower_case`` is
    Google's flag)."""
    if vocab.file_name == TOKENIZER_FILE:
        return HuggingFaceTokenizer(vocab.raw)
    return ChineseBertTokenizer(vocab, do_lower_case=do_lower_case)


make_wordpiece_tokenizer = make_tokenizer  # its name before tokenizer.json was read too


# BERT's "Chinese character" ranges (Google's _is_chinese_char): one token each, never split.
_CJK_UNIFIED_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                       (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF))
_CJK_COMPATIBILITY_RANGES = ((0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
# Punctuation blocks checked for the fast path (ASCII, general, CJK, full-width forms).
_PUNCTUATION_RANGES = ((0x21, 0x7E), (0xA1, 0xBF), (0x2010, 0x205E), (0x3001, 0x303F), (0xFE30, 0xFE6B),
                       (0xFF01, 0xFF65))
_TABLE_SIZE = 0x2FA20
_OTHER, _SINGLE, _SPACE = 0, 1, 2
GOOGLE_MAX_INPUT_CHARS_PER_WORD = 200  # tokenization.py, WordpieceTokenizer


def bert_wordpiece(token_to_id: dict, *, do_lower_case: bool) -> Tokenizer:
    """BERT's WordPiece tokenizer, built as the library's BertWordPieceTokenizer builds it (its
    normalizer, pre-tokenizer and special tokens), but for words of up to 200 characters, as
    Google's WordpieceTokenizer splits them (the library's default is 100)."""
    library = Tokenizer(WordPiece(token_to_id, unk_token="[UNK]",
                                  max_input_chars_per_word=GOOGLE_MAX_INPUT_CHARS_PER_WORD))
    library.add_special_tokens([token for token in ("[UNK]", "[SEP]", "[CLS]", "[PAD]", "[MASK]")
                                if token in token_to_id])
    # strip_accents follows lowercase, exactly as in Google's BasicTokenizer.
    library.normalizer = BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                        lowercase=do_lower_case)
    library.pre_tokenizer = BertPreTokenizer()
    return library


class ChineseBertTokenizer:
    """BERT's WordPiece tokenization with the ``tokenizers`` library, plus a fast path for the
    characters that make up most of Chinese text.

    A CJK character or a punctuation mark that normalization leaves unchanged is always a token
    of its own (BERT puts spaces around the former and splits on the latter), so its id is one
    table lookup; plain spaces only separate. Everything else (Latin words, digits, full-width
    letters, accents, controls, emoji) is cut into runs between those characters and tokenized
    by ``tokenizers``' BertWordPieceTokenizer, which gives every such run the tokens it would get
    in the whole sentence. The ids equal the library's on the whole text (tested), except that a
    literal "[MASK]" in the text is split like any bracketed word, as Google's tokenizer does,
    instead of becoming the special token.
    """

    def __init__(self, vocab: Vocab, *, do_lower_case: bool):
        # One thread: Beam runs a worker process per core, and the library's thread pool, woken for
        # every chunk's short batch, spends more CPU waiting than it saves (measured: 0.8 CPU-s
        # of an 8 CPU-s run). A user's own setting wins.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        token_to_id = {token: index for index, token in enumerate(vocab.tokens)}
        self.library = bert_wordpiece(token_to_id, do_lower_case=do_lower_case)
        self._kind = np.zeros(_TABLE_SIZE, dtype=np.uint8)
        self._id = np.full(_TABLE_SIZE, token_to_id["[UNK]"], dtype=np.int32)
        for token, index in token_to_id.items():
            if len(token) == 1 and ord(token) < _TABLE_SIZE:
                self._id[ord(token)] = index
        for code in (0x20, 0x09, 0x0A, 0x0D, 0x3000):
            self._kind[code] = _SPACE
        # Every whitespace character (all lie below U+3001), also those the library splits on.
        self._whitespace = np.zeros(_TABLE_SIZE, dtype=bool)
        self._whitespace[[code for code in range(0x3001) if chr(code).isspace()]] = True
        # Unified ideographs have no case and no decomposition: single tokens, no check needed.
        for first, last in _CJK_UNIFIED_RANGES:
            self._kind[first:last + 1] = _SINGLE

        def normalized(char):
            if not do_lower_case:
                return char
            decomposed = unicodedata.normalize("NFD", char.lower())
            return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")

        for first, last in _CJK_COMPATIBILITY_RANGES + _PUNCTUATION_RANGES:
            for code in range(first, last + 1):
                char = chr(code)
                is_cjk = any(a <= code <= b for a, b in _CJK_COMPATIBILITY_RANGES)
                is_punctuation = unicodedata.category(char).startswith("P") or (
                    code < 0x7F and not char.isalnum())
                # Compatibility ideographs decompose under NFD, so they take the library's path.
                if (is_cjk or is_punctuation) and normalized(char) == char:
                    self._kind[code] = _SINGLE

    def _encode_runs(self, runs: list):
        """The library's tokens of each run, run after run: (ids, (start, end) offsets in the run,
        word index in the run, tokens per run). Each distinct run is encoded once: runs are Latin
        words and numbers, which repeat (in a chunk of Wikipedia sentences, each about twice), and
        the library's cost is per run, not per character."""
        index_of = {}
        run_unique = np.fromiter((index_of.setdefault(run, len(index_of)) for run in runs), np.int64, len(runs))
        encodings = self.library.encode_batch(list(index_of), add_special_tokens=False) if runs else []
        unique_tokens = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        unique_total = int(unique_tokens.sum())
        unique_ids = np.fromiter(_chain(e.ids for e in encodings), np.int32, unique_total)
        unique_offsets = np.fromiter(_chain(_chain(e.offsets for e in encodings)), np.int64,
                                     2 * unique_total).reshape(-1, 2)
        unique_words = np.fromiter(_chain(e.word_ids for e in encodings), np.int64, unique_total)
        # Token t of the output is token (t - first output token of its run) of its run's encoding.
        run_tokens = unique_tokens[run_unique]
        unique_first, run_first = np.cumsum(unique_tokens) - unique_tokens, np.cumsum(run_tokens) - run_tokens
        take = np.repeat(unique_first[run_unique] - run_first, run_tokens) + np.arange(int(run_tokens.sum()))
        return unique_ids[take], unique_offsets[take], unique_words[take], run_tokens

    def tokenize(self, sentences: list) -> TokenizedBatch:
        text = "\n".join(sentences)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        inside = codes < _TABLE_SIZE
        kind = np.where(inside, self._kind[np.where(inside, codes, 0)], _OTHER)
        single = np.flatnonzero(kind == _SINGLE)

        other = kind == _OTHER
        edges = np.diff(np.concatenate([[False], other, [False]]).astype(np.int8))
        run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        runs = [text[a:b] for a, b in zip(run_starts.tolist(), run_ends.tolist())]
        run_ids, run_offsets, run_words, run_tokens = self._encode_runs(runs)
        total = len(run_ids)
        run_of_token = np.repeat(np.arange(len(runs)), run_tokens)
        run_base = run_starts[run_of_token]
        new_word_in_run = np.ones(total, dtype=bool)  # a run's first token, or a new word in it
        new_word_in_run[1:] = (run_of_token[1:] != run_of_token[:-1]) | (run_words[1:] != run_words[:-1])

        # Merge single-character tokens and run tokens by position (they never overlap).
        starts = np.concatenate([single, run_base + run_offsets[:, 0]])
        ends = np.concatenate([single + 1, run_base + run_offsets[:, 1]])
        ids = np.concatenate([self._id[codes[single]], run_ids])
        new_word = np.concatenate([np.ones(len(single), dtype=bool), new_word_in_run])
        order = np.argsort(starts, kind="stable")
        starts, ends, ids, new_word = starts[order], ends[order], ids[order], new_word[order]

        # Whitespace between consecutive tokens; characters the tokenizer drops (zero-width,
        # controls) leave a gap too, but only a space separates words.
        spaces_so_far = np.concatenate([[0], np.cumsum(self._whitespace[np.where(inside, codes, 0)] & inside)])
        space_before = np.ones(len(starts), dtype=bool)
        space_before[1:] = spaces_so_far[starts[1:]] > spaces_so_far[ends[:-1]]

        sentence_first_char = np.cumsum([0] + [len(s) + 1 for s in sentences[:-1]], dtype=np.int64)
        sentence = np.searchsorted(sentence_first_char, starts, side="right") - 1
        return TokenizedBatch(
            ids=ids.astype(np.int32),
            starts=(starts - sentence_first_char[sentence]).astype(np.int32),
            ends=(ends - sentence_first_char[sentence]).astype(np.int32),
            piece_word=np.cumsum(new_word).astype(np.int32),
            sentence_tokens=np.bincount(sentence, minlength=len(sentences)).astype(np.int64),
            space_before=space_before,
        )


class HuggingFaceTokenizer:
    """Any ``tokenizers`` tokenizer (a tokenizer.json: WordPiece, BPE, byte-level BPE, Unigram),
    tokenizing whole sentences. Every token is its own piece: the word groups come from the
    character offsets alone (``group_starts``: a token belongs to every segmenter word it
    overlaps, and words that share a token become one group). Special tokens written in the text
    ("<s>", "[MASK]") are tokenized as text, never as the special token."""

    def __init__(self, data: bytes):
        from tokenizers import Tokenizer

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # see ChineseBertTokenizer
        self.library = Tokenizer.from_str(data.decode("utf-8"))
        self.library.no_padding()
        self.library.no_truncation()
        self.library.encode_special_tokens = True
        self._whitespace = np.zeros(0x3001, dtype=bool)
        self._whitespace[[code for code in range(0x3001) if chr(code).isspace()]] = True

    def tokenize(self, sentences: list) -> TokenizedBatch:
        encodings = self.library.encode_batch(sentences, add_special_tokens=False)
        counts = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        total = int(counts.sum())
        ids = np.fromiter(_chain(e.ids for e in encodings), np.int32, total)
        offsets = np.fromiter(_chain(_chain(e.offsets for e in encodings)), np.int64, 2 * total).reshape(-1, 2)
        sentence = np.repeat(np.arange(len(sentences)), counts)
        length = np.array([len(s) for s in sentences], np.int64)[sentence]
        # Every token covers at least one character of its sentence (an empty span takes the
        # character it stands at, or the last one), so it belongs to at least one word.
        starts = np.minimum(offsets[:, 0], np.maximum(length - 1, 0))
        ends = np.minimum(np.maximum(offsets[:, 1], starts + 1), np.maximum(length, 1))
        text = "\n".join(sentences)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        spaces_so_far = np.concatenate([[0], np.cumsum(np.where(codes < 0x3001, self._whitespace[
            np.minimum(codes, 0x3000)], False))])
        first_char = np.cumsum([0] + [len(s) + 1 for s in sentences[:-1]], dtype=np.int64)[sentence]
        space_before = np.ones(total, dtype=bool)
        space_before[1:] = spaces_so_far[first_char[1:] + starts[1:]] > spaces_so_far[first_char[:-1] + ends[:-1]]
        return TokenizedBatch(ids=ids, starts=starts.astype(np.int32), ends=ends.astype(np.int32),
                              piece_word=np.arange(total, dtype=np.int32), sentence_tokens=counts,
                              space_before=space_before)


def tokenize_sentences(tokenizer, sentences: list) -> TokenizedBatch:
    """Tokenizes a batch of sentences in one call."""
    if not sentences:
        empty = np.zeros(0, np.int32)
        return TokenizedBatch(empty, empty, empty, empty, np.zeros(0, np.int64), np.zeros(0, bool))
    return tokenizer.tokenize(sentences)


@dataclasses.dataclass(frozen=True)
class Grouping:
    group_start: np.ndarray  # bool per token: True where a new whole-word group begins
    boundaries_overridden: int  # segmenter word boundaries that fell inside one WordPiece word
    words_split_at_space: int  # segmenter words that spanned a space, cut there


def group_starts(batch: TokenizedBatch, sentence_lengths, word_lengths) -> Grouping:
    """Marks where whole-word groups begin, from the segmenter's words (as character lengths).

    ``sentence_lengths[i]`` is sentence i's length in characters, ``word_lengths[i]`` its words'
    lengths (adding up to it), or None for no word grouping (every token its own group, plain
    BERT). Rule: token t starts a new group when it begins a new WordPiece word (it is not a
    ``##`` continuation) and no segmenter word spans the gap between token t-1's last character
    and token t's first one. So ``##`` pieces always stay with their word, and a segmenter word
    that ends inside a WordPiece word (``prob|ability``) or inside one token is widened to the
    whole WordPiece word instead of being cut; such overridden boundaries are counted. And
    whitespace between two tokens always ends a group, as it ends a word for BERT's tokenizer,
    even inside a segmenter's word (LTP's perceptron can return ``"hello world "``); those cuts
    are counted too.
    """
    num_tokens = len(batch.ids)
    token_sentence = np.repeat(np.arange(len(batch.sentence_tokens)), batch.sentence_tokens)
    first_of_sentence = np.zeros(num_tokens, dtype=bool)
    first_of_sentence[batch.sentence_token_offsets[:-1][batch.sentence_tokens > 0]] = True
    ungrouped = np.array([w is None for w in word_lengths], dtype=bool)
    # Sentences without words get one "word" per character: the same as no grouping below.
    lengths_per_word = np.fromiter(
        _chain([1] * n if w is None else w for n, w in zip(sentence_lengths, word_lengths)), np.int64)
    char_word = np.repeat(np.arange(len(lengths_per_word)), lengths_per_word)
    char_offset = np.concatenate([[0], np.cumsum(sentence_lengths, dtype=np.int64)])[token_sentence]
    word_at_start = char_word[char_offset + batch.starts]
    word_at_last_char = char_word[char_offset + batch.ends - 1]

    new_piece_word = first_of_sentence.copy()
    new_piece_word[1:] |= batch.piece_word[1:] != batch.piece_word[:-1]
    crosses_word = first_of_sentence.copy()
    crosses_word[1:] |= word_at_start[1:] != word_at_last_char[:-1]
    after_space = np.zeros(num_tokens, dtype=bool)
    after_space[1:] = batch.space_before[1:] & ~first_of_sentence[1:]
    grouped = ~ungrouped[token_sentence]
    overridden = (np.count_nonzero((crosses_word & ~new_piece_word & grouped)[1:])
                  + np.count_nonzero((word_at_start != word_at_last_char) & grouped))
    split_at_space = np.count_nonzero(after_space & ~crosses_word & grouped)
    group_start = np.where(grouped, new_piece_word & (crosses_word | after_space), True)
    return Grouping(group_start, int(overridden), int(split_at_space))
