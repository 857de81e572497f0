"""Token ids match the tokenizers library's BERT tokenizer; segmenter words decide only the groups."""
import pytest
from hypothesis import given, settings, strategies as st
from tokenizers import BertWordPieceTokenizer

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
]


def test_ids_equal_the_tokenizers_bert_wordpiece_tokenizer(bert_vocab_path, bert_vocab):
    reference = BertWordPieceTokenizer(str(bert_vocab_path), lowercase=True)
    ours = tokenize_sentences(make_wordpiece_tokenizer(bert_vocab, do_lower_case=True), MIXED_TEXTS)
    offsets = ours.sentence_token_offsets
    for index, text in enumerate(MIXED_TEXTS):
        expected = reference.encode(text, add_special_tokens=False).ids
        assert ours.ids[offsets[index]:offsets[index + 1]].tolist() == expected, text


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


@pytest.fixture(scope="module", params=[("bert", True), ("bert", False), ("bundled", True), ("bundled", False)],
                ids=["bert-lowercase", "bert-cased", "bundled-lowercase", "bundled-cased"])
def any_tokenizer(request):
    """Google's vocabulary (from ../shared, skipped without it) and the bundled one (always)."""
    name, lower = request.param
    vocab = request.getfixturevalue("bert_vocab" if name == "bert" else "bundled_vocab")
    return make_wordpiece_tokenizer(vocab, do_lower_case=lower)


@settings(max_examples=400, deadline=None)
@given(texts=st.lists(st.text(alphabet=_ALPHABET, max_size=40), min_size=1, max_size=6))
def test_fast_path_equals_the_library_on_any_text(any_tokenizer, texts):
    tokenizer = any_tokenizer
    batch = tokenize_sentences(tokenizer, texts)
    offsets = batch.sentence_token_offsets
    for index, text in enumerate(texts):
        expected = tokenizer.library.encode(text, add_special_tokens=False)
        tokens = slice(offsets[index], offsets[index + 1])
        assert batch.ids[tokens].tolist() == expected.ids, repr(text)
        assert list(zip(batch.starts[tokens].tolist(), batch.ends[tokens].tolist())) == expected.offsets, repr(text)
        words = batch.piece_word[tokens]
        expected_new_word = [i == 0 or w != expected.word_ids[i - 1] for i, w in enumerate(expected.word_ids)]
        assert [i == 0 or words[i] != words[i - 1] for i in range(len(words))] == expected_new_word, repr(text)


def test_a_literal_mask_in_text_is_not_the_special_token(bert_vocab):
    tokenizer = make_wordpiece_tokenizer(bert_vocab, do_lower_case=True)
    batch = tokenize_sentences(tokenizer, ["看[MASK]这"])
    assert [bert_vocab.tokens[i] for i in batch.ids] == ["看", "[", "ma", "##sk", "]", "这"]
