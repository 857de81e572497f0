"""WordPiece tokenization (the ``tokenizers`` library's BERT tokenizer) and word-group alignment.

Chinese characters are split one per token by BERT's pre-tokenizer, so their ids are always the
plain (never ``##``) form whatever the segmenter says. The segmenter only decides which tokens form
one masking group; :func:`group_starts` is that decision. Both work on a whole batch of sentences
as flat arrays: per-sentence Python objects would cost more than the tokenizing itself.
"""
import dataclasses
import itertools

import numpy as np
from tokenizers import BertWordPieceTokenizer

from wwm_core.vocab import Vocab

_chain = itertools.chain.from_iterable


@dataclasses.dataclass(frozen=True)
class TokenizedBatch:
    ids: np.ndarray  # int32 token ids of all sentences, concatenated
    starts: np.ndarray  # int32 character offset of each token in its sentence
    ends: np.ndarray  # int32, exclusive
    piece_word: np.ndarray  # int32 index, within its sentence, of the token's WordPiece word (`x ##y ##z`)
    sentence_tokens: np.ndarray  # int64 number of tokens of each sentence

    @property
    def sentence_token_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.sentence_tokens)])


def make_wordpiece_tokenizer(vocab: Vocab, *, do_lower_case: bool) -> BertWordPieceTokenizer:
    token_to_id = {token: index for index, token in enumerate(vocab.tokens)}
    # strip_accents follows lowercase, exactly as in Google's BasicTokenizer.
    return BertWordPieceTokenizer(token_to_id, lowercase=do_lower_case, unk_token="[UNK]")


def tokenize_sentences(tokenizer: BertWordPieceTokenizer, sentences: list) -> TokenizedBatch:
    """Tokenizes a batch of sentences in one call (the Rust side does the work)."""
    encodings = tokenizer.encode_batch(sentences, add_special_tokens=False)
    total = sum(len(e.ids) for e in encodings)
    offsets = np.fromiter(_chain(_chain(e.offsets for e in encodings)), np.int32, 2 * total).reshape(-1, 2)
    return TokenizedBatch(
        ids=np.fromiter(_chain(e.ids for e in encodings), np.int32, total),
        starts=offsets[:, 0],
        ends=offsets[:, 1],
        piece_word=np.fromiter(_chain(e.word_ids for e in encodings), np.int32, total),
        sentence_tokens=np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings)),
    )


@dataclasses.dataclass(frozen=True)
class Grouping:
    group_start: np.ndarray  # bool per token: True where a new whole-word group begins
    boundaries_overridden: int  # segmenter word boundaries that fell inside one WordPiece word


def group_starts(batch: TokenizedBatch, sentence_lengths, word_lengths) -> Grouping:
    """Marks where whole-word groups begin, from the segmenter's words (as character lengths).

    ``sentence_lengths[i]`` is sentence i's length in characters, ``word_lengths[i]`` its words'
    lengths (adding up to it), or None for no word grouping (every token its own group, plain
    BERT). Rule: token t starts a new group when it begins a new WordPiece word (it is not a
    ``##`` continuation) and no segmenter word spans the gap between token t-1's last character
    and token t's first one. So ``##`` pieces always stay with their word, and a segmenter word
    that ends inside a WordPiece word (``prob|ability``) or inside one token is widened to the
    whole WordPiece word instead of being cut; such overridden boundaries are counted.
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
    grouped = ~ungrouped[token_sentence]
    overridden = (np.count_nonzero((crosses_word & ~new_piece_word & grouped)[1:])
                  + np.count_nonzero((word_at_start != word_at_last_char) & grouped))
    group_start = np.where(grouped, new_piece_word & crosses_word, True)
    return Grouping(group_start, int(overridden))
