"""Token ids match Google's own tokenizer (tokenization.py's FullTokenizer, imported from
../shared/tools/google_bert); segmenter words decide only the groups.

Google's FullTokenizer is the reference every BERT vocabulary was made for. Our tokenizer (a fast
path for CJK characters and punctuation, the ``tokenizers`` library for the rest) must give the
same ids on real text and on generated mixed text. No deliberate difference: a literal "[MASK]"
in the text is split like any bracketed word, as Google's tokenizer does. One difference is a bug
words of 101 to 200 characters, which the tokenizers library's default would make [UNK].
"""
import json
import unicodedata

import pytest
from hypothesis import given, settings, strategies as st

from tests.conftest import shared_file, ud_sentences
from wwm_core.segmentation import CharSegmenter, JiebaSegmenter
from wwm_core.tokenization import group_starts, make_wordpiece_tokenizer, tokenize_sentences

MIXED_TEXTS = [
    "使用语言模型来预测下一个词的probability。",
    "BERT模型于2018年由Google发布，F1值达到93.2%。",
    "全角字符：ＡＢＣ１２３，ｈｅｌｌｏ！半角 abc 123",
    "iPhone 15 Pro Max售价￥9999元，约合$1,379 USD。",
    "Café naïve résumé 中文混排 e-mail: test@example.com",
    "繁體中文與簡體中文的轉換（OpenCC）",
    "emoji 😀 和 罕见字 𠀀 以及 tab\t分隔",
    "un-believable supercalifragilisticexpialidocious 12345678901234567890",
    "看[MASK]这 [CLS] [SEP]",
]


def _google_ids(google, texts):
    return [google.convert_tokens_to_ids(google.tokenize(text)) for text in texts]


def _our_ids(tokenizer, texts):
    batch = tokenize_sentences(tokenizer, texts)
    offsets = batch.sentence_token_offsets
    return [batch.ids[offsets[i]:offsets[i + 1]].tolist() for i in range(len(texts))]


def _real_texts():
    """UD sentences, the lines of the zhwiki export (text and markup), the ext corpora examples."""
    texts = ud_sentences("dev") + ud_sentences("test")
    texts += shared_file("zhwiki_xml/zhwiki-test-pages.xml").read_text(encoding="utf-8").splitlines()
    for line in shared_file("ext_corpora/nlp_chinese_corpus_readme_examples.jsonl").read_text(
            encoding="utf-8").splitlines():
        texts += [value for value in json.loads(line).values() if isinstance(value, str)]
    return texts


@pytest.fixture(scope="module")
def our_tokenizer(bert_vocab):
    return make_wordpiece_tokenizer(bert_vocab, do_lower_case=True)


def test_ids_equal_googles_on_real_text(our_tokenizer, google_tokenizer):
    texts = MIXED_TEXTS + _real_texts()
    assert sum(map(len, texts)) > 500_000
    for text, ours, google in zip(texts, _our_ids(our_tokenizer, texts), _google_ids(google_tokenizer, texts)):
        assert ours == google, repr(text[:200])


def test_a_word_of_101_to_200_characters_is_split_as_google_splits_it(our_tokenizer, google_tokenizer):
    texts = ["1" * 101, "abc" * 50, "中" + "x" * 200]
    assert _our_ids(our_tokenizer, texts) == _google_ids(google_tokenizer, texts)


def test_chinese_characters_are_never_continuation_pieces(bert_vocab):
    tokenizer = make_wordpiece_tokenizer(bert_vocab, do_lower_case=True)
    batch = tokenize_sentences(tokenizer, ["全词掩码预训练模型"])
    tokens = [bert_vocab.tokens[i] for i in batch.ids]
    assert tokens == list("全词掩码预训练模型")


def _groups(text, words, vocab):
    tokenizer = make_wordpiece_tokenizer(vocab, do_lower_case=True)
    batch = tokenize_sentences(tokenizer, [text])
    lengths = None if words is None else [len(w) for w in words]
    grouping = group_starts(batch, [len(text)], [lengths])
    tokens = [vocab.tokens[i] for i in batch.ids]
    groups = []
    for token, start in zip(tokens, grouping.group_start):
        if start:
            groups.append([])
        groups[-1].append(token)
    return groups, grouping.boundaries_overridden


def test_the_readme_example_groups_whole_words(bert_vocab):
    text = "使用语言模型来预测下一个词的probability。"
    words = ["使用", "语言", "模型", "来", "预测", "下", "一个", "词", "的", "probability", "。"]
    groups, overridden = _groups(text, words, bert_vocab)
    assert groups == [["使", "用"], ["语", "言"], ["模", "型"], ["来"], ["预", "测"], ["下"], ["一", "个"],
                      ["词"], ["的"], ["pro", "##ba", "##bility"], ["。"]]
    assert overridden == 0


def test_wordpiece_pieces_stay_together_when_the_segmenter_cuts_inside_a_word(bert_vocab):
    # A segmenter that cut "probability" in two is overridden: the ## pieces stay one group.
    groups, overridden = _groups("的probability", ["的", "proba", "bility"], bert_vocab)
    assert groups == [["的"], ["pro", "##ba", "##bility"]]
    assert overridden == 1


def test_a_boundary_inside_one_token_joins_the_words(bert_vocab):
    # "2018" is one token; a segmenter word boundary inside it merges "20" and "18年".
    groups, overridden = _groups("2018年", ["20", "18年"], bert_vocab)
    assert groups == [["2018", "年"]]
    assert overridden == 1


def test_whitespace_inside_segmenter_words_is_harmless(bert_vocab):
    # LTP keeps the space after a Latin word inside the word ("ABC ").
    groups, _ = _groups("ABC 123 中文", ["ABC ", "123 ", "中文"], bert_vocab)
    assert groups == [["abc"], ["123"], ["中", "文"]]


def test_char_segmenter_means_no_grouping(bert_vocab):
    (lengths,) = CharSegmenter().segment(["语言probability"])
    groups, _ = _groups("语言probability", lengths, bert_vocab)
    assert groups == [["语"], ["言"], ["pro"], ["##ba"], ["##bility"]]


def test_jieba_word_lengths_cover_the_sentence():
    texts = ["使用语言模型来预测下一个词的probability。", "ABC 123 全角ＡＢＣ"]
    for text, lengths in zip(texts, JiebaSegmenter().segment(texts)):
        assert sum(lengths) == len(text)


def test_bundled_vocabulary_covers_chinese_and_lowercased_latin(bundled_vocab):
    text = "中文预训练模型 BERT 2018年"
    unk = bundled_vocab.id_of("[UNK]")
    lowered = tokenize_sentences(make_wordpiece_tokenizer(bundled_vocab, do_lower_case=True), [text])
    assert unk not in lowered.ids.tolist()
    # It holds lowercase Latin pieces only: without lowercasing, "BERT" is unknown.
    cased = tokenize_sentences(make_wordpiece_tokenizer(bundled_vocab, do_lower_case=False), [text])
    assert cased.ids.tolist().count(unk) == 1


def test_groups_of_a_batch_equal_groups_of_each_sentence(bert_vocab):
    """Flat batch processing must not let groups leak across sentence boundaries."""
    tokenizer = make_wordpiece_tokenizer(bert_vocab, do_lower_case=True)
    texts = ["使用语言模型", "", "模型probability", "语言"]
    words = [["使用", "语言", "模型"], [], ["模型", "probability"], None]
    batch = tokenize_sentences(tokenizer, texts)
    word_lengths = [None if w is None else [len(x) for x in w] for w in words]
    together = group_starts(batch, [len(t) for t in texts], word_lengths).group_start.tolist()
    alone = []
    for text, sentence_words in zip(texts, words):
        lengths = None if sentence_words is None else [len(w) for w in sentence_words]
        alone += group_starts(tokenize_sentences(tokenizer, [text]), [len(text)], [lengths]).group_start.tolist()
    assert together == alone
    assert together == [True, False, True, False, True, False, True, False, True, False, False, True, True]


# Characters that exercise every path: CJK (incl. extension B and compatibility ideographs),
# CJK/full-width/ASCII punctuation, full-width letters and digits, Latin with accents and
# ligatures, digits, spaces of several kinds, controls, zero-width characters, emoji.
_ALPHABET = list("语言模型中文的是了在一個們說豈𠀀，。！？；：、“”‘’（）《》【】…—·"
                 "ＡＢＣａｂ１２３％＆ abcXYZéÀüİßﬁ0123456789!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
                 "\t\u3000\u00a0\u2028\u200b\u0085\x1c\x00\ufffd\u0301😀🇨🇳")


def _bert_normalized(text: str, *, lowercase: bool) -> str:
    """What Google's BasicTokenizer makes of a token's text: control characters, U+0000 and U+FFFD
    dropped (_clean_text), then, when lowercasing, lowercase, NFD and no combining marks."""
    kept = "".join(c for c in text if c in "\t\n\r" or not (
        ord(c) in (0, 0xFFFD) or unicodedata.category(c) in ("Cc", "Cf")))
    if not lowercase:
        return kept
    return "".join(c for c in unicodedata.normalize("NFD", kept.lower()) if unicodedata.category(c) != "Mn")


@pytest.fixture(scope="module", params=[True, False], ids=["lowercase", "cased"])
def both_tokenizers(request, bert_vocab, bert_vocab_path):
    """Ours and Google's FullTokenizer on Google's vocabulary, lowercasing or not."""
    from tests.conftest import google_bert

    google = google_bert("tokenization").FullTokenizer(str(bert_vocab_path), do_lower_case=request.param)
    return make_wordpiece_tokenizer(bert_vocab, do_lower_case=request.param), google, request.param


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(alphabet=_ALPHABET, max_size=40), min_size=1, max_size=6))
def test_fast_path_equals_google_on_any_text(both_tokenizers, texts):
    """Ids equal Google's; each token's character span holds the token's text (after BERT's
    normalization); a WordPiece word begins exactly at a token that is not a ``##`` piece."""
    tokenizer, google, lowercase = both_tokenizers
    batch = tokenize_sentences(tokenizer, texts)
    offsets = batch.sentence_token_offsets
    for index, text in enumerate(texts):
        tokens = google.tokenize(text)
        span = slice(offsets[index], offsets[index + 1])
        assert batch.ids[span].tolist() == google.convert_tokens_to_ids(tokens), repr(text)
        for token, start, end in zip(tokens, batch.starts[span].tolist(), batch.ends[span].tolist()):
            normalized = _bert_normalized(text[start:end], lowercase=lowercase)
            if token == "[UNK]":  # a whole word: some text, no space
                assert normalized and not any(c.isspace() for c in normalized), repr(text)
            else:
                assert normalized == token.removeprefix("##"), repr(text)
        words = batch.piece_word[span].tolist()
        new_word = [i == 0 or words[i] != words[i - 1] for i in range(len(words))]
        assert new_word == [not token.startswith("##") for token in tokens], repr(text)


def test_a_literal_mask_in_text_is_not_the_special_token(our_tokenizer, bert_vocab, google_tokenizer):
    batch = tokenize_sentences(our_tokenizer, ["看[MASK]这"])
    assert [bert_vocab.tokens[i] for i in batch.ids] == ["看", "[", "ma", "##sk", "]", "这"]
    assert google_tokenizer.tokenize("看[MASK]这") == ["看", "[", "ma", "##sk", "]", "这"]


def test_repeated_latin_words_and_numbers_get_each_occurrences_own_tokens_and_offsets(both_tokenizers):
    """Each distinct run of Latin letters or digits is encoded once per batch and reused: every
    occurrence must still get Google's ids, and offsets and WordPiece words of its own place."""
    tokenizer, google, lowercase = both_tokenizers
    texts = ["2008年unaffable和2008", "unaffable unaffable，unaffable", "", "2008", "x2008 2008x unaffable"]
    batch = tokenize_sentences(tokenizer, texts)
    offsets = batch.sentence_token_offsets
    for index, text in enumerate(texts):
        tokens = google.tokenize(text)
        span = slice(offsets[index], offsets[index + 1])
        assert batch.ids[span].tolist() == google.convert_tokens_to_ids(tokens), text
        assert "[UNK]" not in tokens
        spelled = [_bert_normalized(text[start:end], lowercase=lowercase)
                   for start, end in zip(batch.starts[span].tolist(), batch.ends[span].tolist())]
        assert spelled == [token.removeprefix("##") for token in tokens], text
        words = batch.piece_word[span].tolist()
        assert [i == 0 or words[i] != words[i - 1] for i in range(len(words))] == [
            not token.startswith("##") for token in tokens], text
