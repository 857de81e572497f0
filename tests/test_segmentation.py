"""Segmenters as a stage: training and scoring LTP models, user dictionaries, model folders,
the segmentation cache of `wwm segment`, and the alignment of words to WordPiece tokens."""
import json
import pathlib

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st

from wwm_cli import main
from wwm_cli.data import prepare, run
from wwm_cli.segment import segment, segmenter_main
from tests.conftest import shared_file
from wwm_core.cws import read_segmented, read_user_dict, score_spans
from wwm_core.segmentation import SegmenterError, identity_key, lengths_on_text, load_segmenter, segmenter_identity
from wwm_core.tokenization import group_starts, make_wordpiece_tokenizer, tokenize_sentences

UD = "ud_chinese_gsdsimp/zh_gsdsimp-ud-{}.conllu"
FIXTURE_CORPUS = pathlib.Path(__file__).parent / "fixtures" / "segmented.txt"
BEAM = "--runner=BundleBasedDirectRunner"


@pytest.fixture(scope="module")
def ud_model(tmp_path_factory):
    """An LTP perceptron trained by `wwm segmenter train` on the UD dev sentences."""
    folder = tmp_path_factory.mktemp("ud") / "model"
    report = segmenter_main(["train", f"--train={shared_file(UD.format('dev'))}",
                             f"--dev={shared_file(UD.format('test'))}", f"--output={folder}", "--epochs=5"])
    return folder, report


def test_train_on_ud_dev_and_score_on_ud_test(ud_model, capsys):
    folder, report = ud_model
    # The legacy LTP release layout, which ltp.LTP(folder) also reads.
    assert json.loads((folder / "config.json").read_text()) == {"nerual": False, "tasks": {"cws": "cws_model.bin"}}
    assert (folder / "cws_model.bin").stat().st_size > 0
    epochs = json.loads((folder / "training.json").read_text())["dev_scores_per_epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5] == [e["epoch"] for e in report["dev_scores_per_epoch"]]
    assert epochs[-1]["f1"] > epochs[0]["f1"]

    scores = segmenter_main(["eval", f"--model={folder}", f"--gold={shared_file(UD.format('test'))}"])
    printed = capsys.readouterr().out
    print(printed)
    assert "precision" in printed and "F1" in printed
    # The eval's span scoring agrees with the score LTP's own trainer printed for the last epoch.
    assert scores["f1"] == pytest.approx(epochs[-1]["f1"], abs=1e-9)
    assert 0.80 < scores["f1"] < 0.95 and scores["sentences"] == 500 and scores["mismatched_sentences"] == 0


def _seqeval_span_scores(gold_sentences, predicted_sentences) -> dict:
    """The span scores as seqeval (a sequence-labelling library, not ours) computes them: every
    word one chunk, its characters tagged B-W I-W ... (IOB2), chunks matched by start and end."""
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities
    from seqeval.scheme import IOB2

    def tags(sentences):
        return [[tag for word in words for tag in ["B-W"] + ["I-W"] * (len(word) - 1)] for words in sentences]

    gold, predicted = tags(gold_sentences), tags(predicted_sentences)
    strict = {"mode": "strict", "scheme": IOB2}
    precision = precision_score(gold, predicted, **strict)
    num_predicted = len(get_entities(predicted))
    return {"precision": precision, "recall": recall_score(gold, predicted, **strict),
            "f1": f1_score(gold, predicted, **strict), "gold_words": len(get_entities(gold)),
            "predicted_words": num_predicted, "correct": round(precision * num_predicted)}


def _predicted_by_the_library(kind, model_folder, texts):
    """Words as jieba's and LTP's own objects cut the texts, with no code of ours in between."""
    if kind == "jieba":
        import jieba

        tokenizer = jieba.Tokenizer()
        return [list(tokenizer.cut(text, HMM=True)) for text in texts]
    from ltp_extension.perceptron import CWSModel

    model = CWSModel.load(str(model_folder / "cws_model.bin"))
    return [model.predict(text) for text in texts]


@pytest.mark.parametrize("kind", ["jieba", "ltp"])
def test_eval_scores_equal_an_independent_scorer(kind, ud_model):
    """`wwm segmenter eval` on UD test, against seqeval's chunk scores of the segmenter's own
    output: the same counts and the same precision, recall and F1."""
    folder, _ = ud_model
    gold_file = shared_file(UD.format("test"))
    scores = segmenter_main(["eval", f"--model={'jieba' if kind == 'jieba' else folder}", f"--gold={gold_file}",
                             "--json"])
    gold = read_segmented(gold_file.read_text(encoding="utf-8"))
    predicted = _predicted_by_the_library(kind, folder, ["".join(words) for words in gold])
    assert ["".join(words) for words in predicted] == ["".join(words) for words in gold]
    reference = _seqeval_span_scores(gold, predicted)
    print(f"{kind} on UD test: ours {scores['precision']:.4f} {scores['recall']:.4f} {scores['f1']:.4f}, "
          f"seqeval {reference['precision']:.4f} {reference['recall']:.4f} {reference['f1']:.4f}")
    assert scores["sentences"] == len(gold) == 500 and scores["mismatched_sentences"] == 0
    for key in ("gold_words", "predicted_words", "correct"):
        assert scores[key] == reference[key], key
    for key in ("precision", "recall", "f1"):
        assert scores[key] == pytest.approx(reference[key], rel=1e-12), key


def test_span_scoring_by_hand():
    gold = [[2, 2, 1], [3]]
    predicted = [[2, 1, 1, 1], [1, 2]]
    score = score_spans(gold, predicted)
    # Sentence 1: spans (0,2) and (4,5) right of 4 predicted, 3 gold; sentence 2: none of 2, 1 gold.
    assert (score.correct, score.predicted, score.gold) == (2, 6, 4)
    assert score.precision == pytest.approx(2 / 6) and score.recall == pytest.approx(2 / 4)


def test_corpus_formats():
    conllu = ("# text = 我爱你\n1\t我\t我\tPRON\t_\t_\t2\tnsubj\t_\t_\n1-2\t我爱\t_\t_\t_\t_\t_\t_\t_\t_\n"
              "2\t爱\t爱\tVERB\t_\t_\t0\troot\t_\t_\n3\t你\t你\tPRON\t_\t_\t2\tobj\t_\t_\n\n")
    assert read_segmented(conllu) == [["我", "爱", "你"]]
    assert read_segmented("我 爱 你\n\n他们  来了\n") == [["我", "爱", "你"], ["他们", "来了"]]
    # jieba's format: a frequency and a tag, each optional; words may hold spaces; a BOM is dropped.
    text = "\ufeff# comment\n全词掩码 5 n\n预训练\n凱特琳 nz\nNew York 3\n"
    assert [(w.word, w.frequency) for w in read_user_dict(text)] == [
        ("全词掩码", 5), ("预训练", None), ("凱特琳", None), ("New York", 3)]


def test_user_dictionary_keeps_words_whole_for_ltp_and_jieba(ud_model):
    folder, _ = ud_model
    sentence = "全词掩码预训练模型在中文任务上表现很好。"
    words = read_user_dict("全词掩码\n预训练模型\n")
    for kind, model in (("ltp", str(folder)), ("jieba", None)):
        plain = load_segmenter(kind, ltp_model=model).segment([sentence])[0]
        with_dict = load_segmenter(kind, ltp_model=model, user_words=words).segment([sentence])[0]
        assert with_dict[:2] == [4, 5], (kind, plain, with_dict)
        assert sum(with_dict) == len(sentence)
    # Sentences whose words do not spell them (leading spaces) are left to the caller, not an error.
    odd = load_segmenter("ltp", ltp_model=str(folder), user_words=words).segment([" 前导空格", "   "])
    assert len(odd) == 2
    # The dictionary is part of the identity: a new dictionary never reuses old boundaries.
    plain_identity = segmenter_identity("ltp", ltp_model=str(folder))
    dict_identity = segmenter_identity("ltp", ltp_model=str(folder), user_dict_bytes="全词掩码\n".encode())
    assert identity_key(plain_identity) != identity_key(dict_identity)


def test_model_forms_and_their_errors(ud_model, tmp_path):
    folder, _ = ud_model
    sentence = ["全词掩码预训练模型"]
    from_folder = load_segmenter("ltp", ltp_model=str(folder)).segment(sentence)
    from_file = load_segmenter("ltp", ltp_model=str(folder / "cws_model.bin")).segment(sentence)
    assert from_folder == from_file
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "cws_model.bin").write_bytes((folder / "cws_model.bin").read_bytes())
    assert load_segmenter("ltp", ltp_model=str(bare)).segment(sentence) == from_file

    neural = tmp_path / "neural"
    neural.mkdir()
    (neural / "config.json").write_text(json.dumps({"nerual": True, "model": {}}))
    with pytest.raises(SegmenterError, match="ltp-neural"):
        load_segmenter("ltp", ltp_model=str(neural))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SegmenterError, match="without config.json"):
        load_segmenter("ltp", ltp_model=str(empty))
    (tmp_path / "garbage.bin").write_bytes(b"not a model")
    with pytest.raises(SegmenterError, match="could not load"):
        load_segmenter("ltp", ltp_model=str(tmp_path / "garbage.bin"))


def test_workers_use_what_the_launcher_checked(ud_model, tmp_path):
    """The pickled choice (what Beam ships to workers) carries the dictionary's bytes, and refuses
    a model that changed after launch: the cache folder is named by the launch-time hashes."""
    import pickle

    from pipelines.segmenters import SegmenterChoice

    folder, _ = ud_model
    words = tmp_path / "words.txt"
    words.write_text("全词掩码\n", encoding="utf-8")
    shipped = pickle.dumps(SegmenterChoice("jieba", None, str(words)))
    words.write_text("预训练模型\n", encoding="utf-8")
    on_worker = pickle.loads(shipped)
    assert on_worker.load().segment(["全词掩码预训练模型"])[0][0] == 4
    assert on_worker.identity_key() == identity_key(segmenter_identity("jieba", user_dict_bytes="全词掩码\n".encode()))

    model = tmp_path / "model"
    model.mkdir()
    (model / "cws_model.bin").write_bytes((folder / "cws_model.bin").read_bytes())
    shipped = pickle.dumps(SegmenterChoice("ltp", str(model)))
    (model / "cws_model.bin").write_bytes((FIXTURE_CORPUS.parent / "segmented.txt").read_bytes()[:10])
    with pytest.raises(SegmenterError, match="changed since the job was launched"):
        pickle.loads(shipped).load()


def test_words_without_spaces_are_measured_on_the_text():
    assert lengths_on_text("他 叫 汤姆", ["他", "叫", "汤姆"]) == [1, 2, 3]
    assert lengths_on_text(" BERT 模型 ", ["BERT", "模型"]) == [5, 4]
    assert lengths_on_text("abc", ["ab", "d"]) is None


# ---------------------------------------------------------------- the segmentation cache

DOCUMENTS = [
    ["全词掩码是一种预训练方法。", "它让模型一次遮住整个词。"],
    ["语言模型来预测下一个词。", "BERT模型于2018年发布。"],
    ["哈工大讯飞联合实验室发布了中文预训练模型。"],
    ["分词决定哪些字一起被遮住。", "词表不变。"],
]


@pytest.fixture()
def prepared(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in DOCUMENTS) + "\n", encoding="utf-8")
    prepare([f"--input={corpus}", f"--output={tmp_path / 'prepared'}", "--num_shards=2", BEAM])
    return tmp_path / "prepared"


def _run(prepared, output, *flags):
    return run(["--input_format=parquet", f"--input={prepared}/documents/*.parquet", f"--output={output}",
                "--segmenter=jieba", "--dupe_factor=2", "--num_shards=2", "--max_seq_length=128", BEAM, *flags])


def _shard_bytes(output, manifest):
    return [(output / name).read_bytes() for name in manifest["files"]]


def test_segment_once_then_runs_reuse_the_boundaries(prepared, tmp_path, capsys):
    cache = segment([f"--input={prepared}", "--segmenter=jieba", BEAM])
    assert cache["num_documents"] == len(DOCUMENTS) and cache["accounting"]["balanced"]
    folder = prepared / "segmentation" / identity_key(cache["identity"])
    rows = [row for name in cache["files"] for row in pq.read_table(folder / name).to_pylist()]
    assert cache["files"] == sorted(p.name for p in (prepared / "documents").glob("*.parquet")), \
        "one cache file per documents file, of the same name"
    assert sorted(len(row["sentence_keys"]) for row in rows) == sorted(len(d) for d in DOCUMENTS)

    # A second `wwm segment` with the same segmenter has nothing to do.
    segment([f"--input={prepared}", "--segmenter=jieba", BEAM])
    assert "nothing to do" in capsys.readouterr().out
    again = segment([f"--input={prepared}", "--segmenter=jieba", "--overwrite", BEAM])
    assert again["files"] == cache["files"] and again["counters"] == cache["counters"]
    assert sorted(p.name for p in folder.glob("part-*")) == cache["files"]

    cached = _run(prepared, tmp_path / "cached")
    sentences = sum(len(d) for d in DOCUMENTS)
    assert cached["counters"]["sentences.segmentation_cache_hit"] == sentences
    assert cached["counters"]["sentences.segmentation_cache_miss"] == 0
    assert cached["word_cache_folders"] == [str(folder)]
    # A new seed reuses them too, and cached boundaries give the very bytes live segmenting gives.
    reseeded = _run(prepared, tmp_path / "reseeded", "--random_seed=7")
    assert reseeded["counters"]["sentences.segmentation_cache_hit"] == sentences
    live = _run(prepared, tmp_path / "live", "--segmentation_cache=none")
    assert "sentences.segmentation_cache_hit" not in live["counters"]
    assert _shard_bytes(tmp_path / "cached", cached) == _shard_bytes(tmp_path / "live", live)


def test_a_changed_segmenter_or_sentence_is_segmented_again(prepared, tmp_path, caplog):
    segment([f"--input={prepared}", "--segmenter=jieba", BEAM])
    # Another dictionary is another segmenter: its run finds no cache, says so, and segments itself.
    user_dict = tmp_path / "words.txt"
    user_dict.write_text("全词掩码\n", encoding="utf-8")
    other = _run(prepared, tmp_path / "other", f"--user_dict={user_dict}")
    assert "sentences.segmentation_cache_hit" not in other["counters"] and other["word_cache_folders"] == []
    assert "no finished segmentation cache" in caplog.text

    # Edit one sentence of the prepared documents: only that sentence misses the cache.
    for part in sorted((prepared / "documents").glob("*.parquet")):
        table = pq.read_table(part)
        rows = table.to_pylist()
        for row in rows:
            row["sentences"] = [s.replace("词表不变。", "词表保持不变。") for s in row["sentences"]]
        pq.write_table(table.from_pylist(rows, schema=table.schema), part)
    edited = _run(prepared, tmp_path / "edited")
    assert edited["counters"]["sentences.segmentation_cache_miss"] == 1
    assert edited["counters"]["sentences.segmentation_cache_hit"] == sum(len(d) for d in DOCUMENTS) - 1


def test_segment_refuses_what_it_cannot_use(tmp_path, capsys, offline_hub):
    assert main(["segment", f"--input={tmp_path}", "--segmenter=jieba"]) == 2
    assert "not the output of a finished `wwm prepare`" in capsys.readouterr().err
    assert main(["segment", f"--input={tmp_path}", "--segmenter=char"]) == 2
    assert main(["segment", f"--input={tmp_path}", "--segmenter=ltp"]) == 2
    assert "--ltp_model" in capsys.readouterr().err


# ---------------------------------------------------------------- alignment of words to WordPiece tokens

ALPHABET = list("全词掩码预训练模型语言中文的") + list("abcXYZ") + list("0123") + list("ＡＢ１２") + list(
    "，。！,.?%-") + [" ", " ", "\t", "é", "ж", "😀", "𠀀", "丨", "\u3000", "\u200b"]


@st.composite
def segmented_sentences(draw):
    text = draw(st.text(alphabet=ALPHABET, min_size=1, max_size=40))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=len(text))))
    cuts = [c for c in cuts if 0 < c < len(text)]
    bounds = [0, *cuts, len(text)]
    return text, [b - a for a, b in zip(bounds, bounds[1:])]


@pytest.fixture(scope="module")
def bundled_tokenizer(bundled_vocab):
    return make_wordpiece_tokenizer(bundled_vocab, do_lower_case=True)


@settings(max_examples=300, deadline=None)
@given(segmented_sentences())
def test_groups_follow_words_and_never_split_wordpiece_words(bundled_tokenizer, sentence):
    text, lengths = sentence
    batch = tokenize_sentences(bundled_tokenizer, [text])
    grouping = group_starts(batch, [len(text)], [lengths])
    starts, ends = batch.starts.tolist(), batch.ends.tolist()
    piece_word, group_start = batch.piece_word.tolist(), grouping.group_start.tolist()
    boundaries = set()
    position = 0
    for length in lengths[:-1]:
        position += length
        boundaries.add(position)
    # The spans of WordPiece words (`x ##y ##z`): a group never begins inside one.
    for t in range(1, len(starts)):
        if piece_word[t] == piece_word[t - 1]:
            assert not group_start[t]
    if starts:
        assert group_start[0]
    for t in range(1, len(starts)):
        between = range(ends[t - 1], starts[t] + 1)  # boundary positions between the two tokens
        word_boundary = any(b in boundaries for b in between)
        space = any(c.isspace() for c in text[ends[t - 1]:starts[t]])
        if piece_word[t] != piece_word[t - 1]:
            # Between WordPiece words a group starts exactly at a segmenter boundary or a space.
            assert group_start[t] == (word_boundary or space), (text, lengths, t)
    # Counted overrides: boundaries strictly inside a WordPiece word's span.
    word_spans = {}
    for t, w in enumerate(piece_word):
        first, last = word_spans.get(w, (starts[t], ends[t]))
        word_spans[w] = (min(first, starts[t]), max(last, ends[t]))
    inside = any(a < b < z for b in boundaries for a, z in word_spans.values())
    assert (grouping.boundaries_overridden > 0) == inside, (text, lengths)
    # Counted splits at spaces: a segmenter word spanning a space between two tokens.
    spanning = any(any(c.isspace() for c in text[ends[t - 1]:starts[t]]) and piece_word[t] != piece_word[t - 1]
                   and not any(b in boundaries for b in range(ends[t - 1], starts[t] + 1))
                   for t in range(1, len(starts)))
    assert (grouping.words_split_at_space > 0) == spanning, (text, lengths)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["全", "词", "掩码", "预训练", "模型", "BERT", "probability", "2018", "，", "😀"]),
                min_size=1, max_size=12))
def test_words_that_are_whole_wordpiece_words_become_exactly_the_groups(bundled_tokenizer, words):
    text = "".join(words)
    batch = tokenize_sentences(bundled_tokenizer, [text])
    grouping = group_starts(batch, [len(text)], [[len(w) for w in words]])
    # Adjacent words that are neither Chinese nor punctuation glue into one BERT word
    # ("BERT2018", "BERT😀" = [UNK]): then only the WordPiece word is a group; otherwise every
    # segmenter word is exactly one group.
    glues = {"BERT", "probability", "2018", "😀"}
    glued = any(a in glues and b in glues for a, b in zip(words, words[1:]))
    if not glued:
        assert grouping.boundaries_overridden == 0
        assert int(grouping.group_start.sum()) == len(words)


def test_a_dropped_character_is_not_a_space(bundled_tokenizer):
    """A zero-width space leaves a gap between tokens (the tokenizer drops it) but is no word break."""
    for text, lengths, expected in (("中\u200b文", [3], [True, False]), ("中 文", [3], [True, True])):
        grouping = group_starts(tokenize_sentences(bundled_tokenizer, [text]), [len(text)], [lengths])
        assert grouping.group_start.tolist() == expected, text
