"""MacBERT's replacement (``--replacement macbert``) and its similar words (``--similar_words``).

Vector files are written here in word2vec's text and binary formats, byte by byte as word2vec's
own ``-binary 0/1`` output (and the Synonyms toolkit's and Tencent AI Lab's files) lay them out;
their nearest neighbours are checked against a plain numpy computation of every cosine.
"""
import collections
import gzip
import io
import json

import numpy as np
import pytest

from wwm_core import masking, similar_words
from wwm_core.errors import UsageError
from wwm_core.instances import SpecialIds, mask_whole_words, maskable_tokens

SPECIAL = SpecialIds(cls=101, sep=102, mask=103, vocab_size=21128)


def vectors_for(words, dimensions=8, seed=0):
    return np.random.default_rng(seed).normal(size=(len(words), dimensions)).astype(np.float32)


def word2vec_text(words, vectors) -> bytes:
    lines = [f"{len(words)} {vectors.shape[1]}"] + [
        word + " " + " ".join(f"{v:.6f}" for v in vector) for word, vector in zip(words, vectors)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def word2vec_binary(words, vectors, *, newline=True) -> bytes:
    out = bytearray(f"{len(words)} {vectors.shape[1]}\n".encode())
    for word, vector in zip(words, vectors):
        out += word.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + (b"\n" if newline else b"")
    return bytes(out)


WORDS = ["中国", "美国", "北京", "上海", "语言", "模型", "预测", "汉字", "我", "你", "他", "计算机", "互联网", "自然语言"]


def numpy_neighbours(words, vectors, k):
    """Every cosine, then the k best of the same length: the reference."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    table = {}
    for i, word in enumerate(words):
        same = [j for j, other in enumerate(words) if j != i and len(other) == len(word)]
        if same:
            table[word] = [words[j] for j in sorted(same, key=lambda j: -cosine[i, j])[:k]]
    return table


@pytest.mark.parametrize("form", ["text", "binary", "binary-no-newline", "text-gz", "binary-gz"])
def test_nearest_neighbours_of_word2vec_files_are_the_cosine_nearest(form):
    vectors = vectors_for(WORDS, dimensions=16)
    data = word2vec_binary(WORDS, vectors, newline=form != "binary-no-newline") if form.startswith("binary") \
        else word2vec_text(WORDS, vectors)
    if form.endswith("gz"):
        data = gzip.compress(data)
    table, kind = similar_words.load(io.BytesIO(data), neighbours=3)
    assert kind == f"word2vec {form.split('-')[0]}"
    # Text vectors are written with 6 decimals: the reference uses what the file holds.
    held = np.array([[float(v) for v in f"{' '.join(f'{x:.6f}' for x in vector)}".split()] for vector in vectors],
                    np.float32) if form.startswith("text") else vectors
    assert table == numpy_neighbours(WORDS, held, 3)
    assert table["中国"][0] != "中国" and all(len(c) == 2 for c in table["中国"])
    assert "计算机" in table and table["计算机"] == ["互联网"] and "自然语言" not in table  # alone at its length


def test_only_the_first_words_of_a_big_vectors_file_are_read():
    vectors = vectors_for(WORDS)
    words, read, form = similar_words.read_word2vec(similar_words.open_stream(io.BytesIO(word2vec_binary(WORDS, vectors))),
                                                    max_words=4)
    assert words == WORDS[:4] and np.array_equal(read, vectors[:4]) and form == "binary"


def test_table_format():
    table, kind = similar_words.load(io.BytesIO("# comment\n中国\t美国 英国\n\n北京\t上海\n中国\t法国\n".encode()))
    assert kind == "table" and table == {"中国": ["美国", "英国", "法国"], "北京": ["上海"]}
    assert similar_words.parse_table(similar_words.table_bytes(table).decode().splitlines()) == table
    with pytest.raises(similar_words.SimilarWordsError, match="line 1"):
        similar_words.load(io.BytesIO("中国 美国\n".encode()))


def test_similar_words_in_token_ids_keep_only_candidates_of_the_words_length(bundled_vocab):
    from wwm_core.tokenization import make_wordpiece_tokenizer

    tokenizer = make_wordpiece_tokenizer(bundled_vocab, do_lower_case=True)
    table = similar_words.tokenized({"中国": ["美国", "中华民国", "中国", "英国"], "hello": ["world", "hi"]}, tokenizer)
    ids = bundled_vocab.tokens.index
    assert table.candidates_of([ids("中"), ids("国")]) == [(ids("美"), ids("国")), (ids("英"), ids("国"))]
    assert table.candidates_of([ids("hello")]) == [(ids("world"),), (ids("hi"),)]
    assert table.candidates_of([ids("美"), ids("国")]) == []
    again = masking.SimilarWords.from_npz_bytes(table.to_npz_bytes())
    assert again.candidates_of([ids("中"), ids("国")]) == table.candidates_of([ids("中"), ids("国")])


def rows_of_words(count, words_per_row=30, width=128, seed=0):
    """Rows of two-token words 2000+2k, 2001+2k (k < 50): (ids, group_start, lengths)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((count, width), np.int32)
    group_start = np.ones((count, width), bool)
    lengths = np.full(count, 2 + 2 * words_per_row, np.int64)
    for row in range(count):
        words = rng.integers(0, 50, words_per_row)
        tokens = np.stack([2000 + 2 * words, 2001 + 2 * words], axis=1).ravel()
        ids[row, :lengths[row]] = [SPECIAL.cls] + tokens.tolist() + [SPECIAL.sep]
        group_start[row, 1:lengths[row] - 1] = np.tile([True, False], words_per_row)
    return ids, group_start, lengths


def test_macbert_replaces_whole_words_80_10_10_and_never_puts_mask():
    # Even words have one similar word (the next odd one); odd words have none.
    table = masking.SimilarWords.from_token_ids(
        [((2000 + 2 * k, 2001 + 2 * k), [(2000 + 2 * (k + 1), 2001 + 2 * (k + 1))]) for k in range(0, 50, 2)])
    ids, group_start, lengths = rows_of_words(4000)
    seeds = np.arange(4000, dtype=np.uint64) * np.uint64(7919)
    spans = masking.choose_spans(group_start, maskable_tokens(ids, lengths, special=SPECIAL), lengths, seeds,
                                 budgets=masking.budgets(lengths, masked_lm_prob=0.15, max_predictions=20))
    replaced = masking.replace_words(ids, spans.chosen, group_start, lengths, seeds, replacement="macbert",
                                     mask_id=SPECIAL.mask, vocab_size=SPECIAL.vocab_size, max_predictions=20,
                                     similar=table)
    assert not (replaced.input_ids == SPECIAL.mask).any(), "MacBERT puts no [MASK]"
    outcome = collections.Counter()
    for row in range(len(ids)):
        count = replaced.counts[row]
        positions = replaced.positions[row, :count]
        assert positions.tolist() == np.flatnonzero(spans.chosen[row]).tolist()
        assert (replaced.labels[row, :count] == ids[row, positions]).all()
        for first in positions[::2]:  # every word is two tokens
            original, fed = ids[row, first:first + 2], replaced.input_ids[row, first:first + 2]
            word = (original[0] - 2000) // 2
            if (fed == original).all():
                outcome["kept"] += 1
            elif word % 2 == 0 and fed.tolist() == [original[0] + 2, original[1] + 2]:
                outcome["similar"] += 1
            else:
                outcome["random even" if word % 2 == 0 else "random odd"] += 1
    words = sum(outcome.values())
    assert words == sum(replaced.macbert[k] for k in ("words_similar", "words_random", "words_kept"))
    assert outcome["similar"] == replaced.macbert["words_similar"]
    even = outcome["similar"] + outcome["random even"] + (outcome["kept"] / 2)
    # Words with a candidate: 80% similar; without: the 80% fall back to random (90% random).
    assert abs(outcome["similar"] / even - 0.8) < 0.02, outcome
    assert abs(outcome["kept"] / words - 0.1) < 0.01
    assert abs(outcome["random odd"] / (words - even) - 0.9) < 0.02
    no_candidate = replaced.macbert["words_no_candidate"]
    assert abs(no_candidate / (words - even) - 0.8) < 0.02


def test_google_rule_is_unchanged_by_the_replacement_step():
    ids, group_start, lengths = rows_of_words(300)
    seeds = np.arange(300, dtype=np.uint64)
    google = mask_whole_words(ids, group_start, lengths, seeds, special=SPECIAL, masked_lm_prob=0.15,
                              max_predictions_per_seq=20)
    assert abs((np.take_along_axis(google[0], google[1], axis=1)[google[1] > 0] == SPECIAL.mask).mean() - 0.8) < 0.05


def test_wwm_run_with_macbert_replacement_from_vectors(tmp_path, monkeypatch, bundled_vocab):
    from tests.test_pipeline import DOCUMENTS, run_wwm
    from wwm_cli.inspect import iter_instances

    monkeypatch.setenv("WWM_CACHE", str(tmp_path / "cache"))
    import jieba

    words = sorted({w for document in DOCUMENTS for sentence in document for w in jieba.lcut(sentence)
                    if w.strip()})
    vectors_path = tmp_path / "vectors.bin"
    vectors_path.write_bytes(word2vec_binary(words, vectors_for(words, dimensions=12)))
    manifest = run_wwm(tmp_path, "--replacement=macbert", f"--similar_words={vectors_path}",
                       "--ngram_weights=0.4,0.3,0.2,0.1", "--output_format=both", "--dupe_factor=10")
    assert (tmp_path / "cache" / "similar_words").is_dir(), "the neighbours are cached"
    about = manifest["similar_words"]
    assert about["kind"] == "word2vec binary" and about["file"] == "similar_words.npz"
    assert 0.9 * len(words) < about["words"] <= len(words)  # a word alone at its length has no neighbour
    statistics = manifest["statistics"]["macbert_replacement"]
    assert statistics["words"] > 100 and 0.5 < statistics["similar_share"] <= 0.8
    counters = manifest["counters"]
    assert counters["macbert.words_similar"] + counters["macbert.words_random"] + counters["macbert.words_kept"] \
        == statistics["words"]
    mask_id = bundled_vocab.tokens.index("[MASK]")
    for _, instance, _ in iter_instances(str(tmp_path / "out")):
        assert mask_id not in instance.input_ids
    # The same run again reads the cached neighbours and makes the same bytes.
    again = run_wwm(tmp_path, "--replacement=macbert", f"--similar_words={vectors_path}",
                    "--ngram_weights=0.4,0.3,0.2,0.1", "--output_format=both", "--dupe_factor=10", name="again")
    assert again["similar_words"]["sha256"] == about["sha256"]
    for name in manifest["files"]:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["config"]["instances"]["replacement"] == "macbert"


def test_contradictory_replacement_settings_are_refused(tmp_path):
    from tests.test_pipeline import run_wwm

    with pytest.raises(UsageError, match="--similar_words PATH"):
        run_wwm(tmp_path, "--replacement=macbert")
    table = tmp_path / "table.tsv"
    table.write_text("中国\t美国\n", encoding="utf-8")
    with pytest.raises(UsageError, match="--similar_words is for --replacement macbert"):
        run_wwm(tmp_path, f"--similar_words={table}")
    empty = tmp_path / "empty.tsv"
    empty.write_text("中国\t中华民国\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no word has a candidate"):
        run_wwm(tmp_path, "--replacement=macbert", f"--similar_words={empty}")
