"""WordPiece tokenization (the ``tokenizers`` library's BERT tokenizer) and word-group alignment.

Chinese characters are split one per token by BERT's pre-tokenizer, so their ids are always the
plain (never ``##``) form whatever the segmenter says. The segmenter only decides which tokens form
one masking group; :func:`group_starts` is that decision.
"""
import dataclasses

import numpy as np
from tokenizers import BertWordPieceTokenizer

from wwm_core.vocab import Vocab


@dataclasses.dataclass(frozen=True)
class TokenizedSentence:
    ids: np.ndarray  # int32 token ids
    starts: np.ndarray  # int32 character offset of each token in the sentence
    ends: np.ndarray  # int32, exclusive
    piece_word: np.ndarray  # int32 index of the WordPiece word (a run of `x ##y ##z`) of each token


def make_wordpiece_tokenizer(vocab: Vocab, *, do_lower_case: bool) -> BertWordPieceTokenizer:
    token_to_id = {token: index for index, token in enumerate(vocab.tokens)}
    # strip_accents follows lowercase, exactly as in Google's BasicTokenizer.
    return BertWordPieceTokenizer(token_to_id, lowercase=do_lower_case, unk_token="[UNK]")


def tokenize_sentences(tokenizer: BertWordPieceTokenizer, sentences: list) -> list:
    """Tokenizes a batch of sentences in one call (the Rust side does the work)."""
    encodings = tokenizer.encode_batch(sentences, add_special_tokens=False)
    tokenized = []
    for encoding in encodings:
        offsets = np.asarray(encoding.offsets, dtype=np.int32).reshape(-1, 2)
        tokenized.append(
            TokenizedSentence(
                ids=np.asarray(encoding.ids, dtype=np.int32),
                starts=offsets[:, 0],
                ends=offsets[:, 1],
                piece_word=np.asarray(encoding.word_ids, dtype=np.int32),
            )
        )
    return tokenized


@dataclasses.dataclass(frozen=True)
class Grouping:
    group_start: np.ndarray  # bool per token: True where a new whole-word group begins
    boundaries_overridden: int  # segmenter word boundaries that fell inside one WordPiece word


def group_starts(sentence: TokenizedSentence, word_lengths) -> Grouping:
    """Marks where whole-word groups begin, from the segmenter's words (as character lengths).

    Rule: token i starts a new group when it begins a new WordPiece word (it is not a ``##``
    continuation) and no segmenter word spans the gap between token i-1's last character and
    token i's first one. So ``##`` pieces always stay with their word, and a segmenter word that
    ends inside a WordPiece word (``prob|ability``) or inside one token is widened to the whole
    WordPiece word instead of being cut; such overridden boundaries are counted.
    ``word_lengths=None`` means no word grouping: every token is its own group (plain BERT).
    """
    num_tokens = len(sentence.ids)
    if word_lengths is None:
        return Grouping(np.ones(num_tokens, dtype=bool), 0)
    char_word = np.repeat(np.arange(len(word_lengths), dtype=np.int32), word_lengths)
    word_at_start = char_word[sentence.starts]
    word_at_last_char = char_word[sentence.ends - 1]
    new_piece_word = np.ones(num_tokens, dtype=bool)
    new_piece_word[1:] = sentence.piece_word[1:] != sentence.piece_word[:-1]
    crosses_word = np.ones(num_tokens, dtype=bool)
    crosses_word[1:] = word_at_start[1:] != word_at_last_char[:-1]
    overridden_between_tokens = int(np.count_nonzero(crosses_word[1:] & ~new_piece_word[1:]))
    overridden_inside_tokens = int(np.count_nonzero(word_at_start != word_at_last_char))
    return Grouping(new_piece_word & crosses_word, overridden_between_tokens + overridden_inside_tokens)
