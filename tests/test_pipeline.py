"""The wwm run pipeline end to end on Beam's local runners, on small corpora written by the tests."""
import base64
import collections
import json
import math
import pathlib

import google_crc32c
import pytest

from wwm_cli import main
from wwm_cli.data import run
from wwm_cli.inspect import iter_instances
from wwm_core.errors import UsageError

LOCAL = ["--runner=BundleBasedDirectRunner"]

DOCUMENTS = [
    ["使用语言模型来预测下一个词的probability。", "全词掩码让一个词的所有字一起被遮盖。", "在中文里，一个词通常由两个汉字组成。"],
    ["北京是中华人民共和国的首都。", "这座城市有三千多年的建城史。", "2008年，北京举办了第29届夏季奥运会。"],
    ["臺灣的氣候屬於熱帶和亞熱帶季風氣候。", "每年七月到九月是颱風最多的季節。"],
    ["深度学习在自然语言处理领域取得了巨大的成功。", "BERT模型于2018年发布。", "研究人员随后提出了很多改进模型。"],
    ["长江是中国第一长河，全长约6300公里。", "长江流域是中国经济最发达的地区之一。"],
]


def write_text_corpus(path: pathlib.Path, documents=DOCUMENTS) -> pathlib.Path:
    path.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    return path


def run_wwm(tmp_path, *extra, name="out", inputs=None, vocab=None):
    """``wwm run`` at one length (128), jieba, 3 shards, dupe 3, unless ``extra`` says otherwise."""
    inputs = inputs or [str(write_text_corpus(tmp_path / "corpus.txt"))]
    argv = [f"--input={i}" for i in inputs] + [f"--output={tmp_path / name}", "--dupe_factor=3", "--num_shards=3"]
    for flag, default in (("--max_seq_length", "128"), ("--segmenter", "jieba")):
        if not any(a.startswith(flag) for a in extra):
            argv.append(f"{flag}={default}")
    if vocab:
        argv.append(f"--vocab_file={vocab}")
    return run(argv + list(extra) + ([] if any(a.startswith("--runner") for a in extra) else LOCAL))


def shard_bytes(folder: pathlib.Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*"))}


def test_text_corpus_to_whole_word_masked_shards(tmp_path, bert_vocab_path):
    manifest = run_wwm(tmp_path, "--opencc_config=t2s")
    out = tmp_path / "out"
    for key in ("files", "file_info", "num_instances", "recipe", "max_seq_length", "max_predictions_per_seq",
                "vocab_size", "vocab_sha256", "config", "counters", "statistics", "libraries", "command"):
        assert key in manifest
    # Without --vocab_file: Google's bert-base-chinese vocabulary, byte for byte.
    assert (out / "vocab.txt").read_bytes() == bert_vocab_path.read_bytes()
    assert manifest["vocab_size"] == 21128 and manifest["recipe"] == "bert-wwm"
    assert manifest["max_predictions_per_seq"] == 20, "follows from max_seq_length 128"
    assert sorted(manifest["files"]) == sorted(shard_bytes(out))
    assert manifest["num_instances"] == manifest["counters"]["instances"] > 0
    assert manifest["accounting"] == {"records_in": 5, "out": 5, "filtered": 0, "dead_lettered": 0,
                                      "balanced": True}
    assert not list(out.glob("*.tmp-*")), "temporary shard files left behind"
    # The configuration tree is serialized whole and reads back as the same tree.
    from wwm_core.manifest import parse_manifest

    config = parse_manifest((out / "manifest.json").read_bytes(), path="manifest.json").run_config()
    assert config.to_json() == manifest["config"]
    assert config.instances.phases[0].max_seq_length == 128 and config.sources[0].opencc_config == "t2s"
    for name, info in manifest["file_info"].items():
        assert info["bytes"] == (out / name).stat().st_size
        assert info["crc32c"] == base64.b64encode(google_crc32c.Checksum((out / name).read_bytes()).digest()).decode()

    instances = list(iter_instances(str(out)))
    assert len(instances) == manifest["num_instances"]
    text = "".join("".join(t for t in (v.tokens[i] for i in inst.input_ids)) for _, inst, v in instances)
    assert "台湾" in text and "臺灣" not in text, "OpenCC t2s conversion was not applied"
    labels = {inst.next_sentence_label for _, inst, _ in instances}
    assert labels == {0, 1}


def test_the_recipes_keep_traditional_text_as_written(tmp_path):
    run_wwm(tmp_path)
    text = "".join(v.tokens[i] for _, inst, v in iter_instances(str(tmp_path / "out")) for i in inst.input_ids)
    assert "臺灣" in text and "台湾" not in text


def test_same_seed_gives_identical_shards_and_another_seed_does_not(tmp_path):
    run_wwm(tmp_path, name="a")
    run_wwm(tmp_path, name="b")
    run_wwm(tmp_path, "--random_seed=7", name="c")
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert shard_bytes(tmp_path / "a") != shard_bytes(tmp_path / "c")


def test_one_and_two_workers_write_identical_bytes(tmp_path):
    documents = [[f"第{d}篇文档的第{s}句话讲述了语言模型和全词掩码。" for s in range(6)] for d in range(40)]
    corpus = write_text_corpus(tmp_path / "big.txt", documents)
    one = run_wwm(tmp_path, "--runner=FnApiRunner", "--direct_num_workers=1", name="one", inputs=[str(corpus)])
    two = run_wwm(tmp_path, "--runner=FnApiRunner", "--direct_num_workers=2",
                  "--direct_running_mode=multi_processing", name="two", inputs=[str(corpus)])
    assert one["num_instances"] == two["num_instances"] > 0
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")


def test_bad_input_is_counted_and_dead_lettered_never_lost(tmp_path):
    good = "语言模型很有用。"
    text = tmp_path / "mixed.txt"
    text.write_bytes(
        good.encode() + b"\n\n"
        + b"\xff\xfe not utf-8 \x80\n" + good.encode() + b"\n\n"  # a document with an undecodable line
        + "\u0301\u0301\n".encode() + b"\n"  # combining marks only: tokenizes to nothing
        + ("长" * 500).encode() + b"\n\n"  # over --max_document_chars
        + good.encode() + b"\n")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_bytes(b"\n".join([
        json.dumps({"text": good}, ensure_ascii=False).encode(),
        b'{"text": "broken json',
        json.dumps({"title": "no text field"}).encode(),
        json.dumps({"text": 42}).encode(),
        json.dumps({"text": "   "}).encode(),  # empty document
        json.dumps([1, 2]).encode(),
        b"\xc3\x28 invalid utf-8",
        b"",  # a blank line is not a record
    ]) + b"\n")
    text_run = run_wwm(tmp_path, "--max_document_chars=300", name="text_out", inputs=[str(text)])
    jsonl_run = run_wwm(tmp_path, "--input_format=jsonl", name="jsonl_out", inputs=[str(jsonl)])

    # The first and last documents have the same text: one of them is a duplicate.
    assert text_run["accounting"] == {"records_in": 5, "out": 1, "filtered": 3, "dead_lettered": 1,
                                      "balanced": True}
    counters = text_run["counters"]
    assert counters["documents_filtered.duplicate"] == 1
    assert counters["documents_filtered.no_tokens"] == 1
    assert counters["documents_filtered.too_long"] == 1
    assert counters["dead_lettered.invalid_utf8"] == 1

    assert jsonl_run["accounting"] == {"records_in": 7, "out": 1, "filtered": 1, "dead_lettered": 5,
                                       "balanced": True}
    counters = jsonl_run["counters"]
    for reason in ("malformed_json", "missing_text_field", "text_field_not_a_string", "not_a_json_object",
                   "invalid_utf8"):
        assert counters[f"dead_lettered.{reason}"] == 1, reason
    assert counters["documents_filtered.empty"] == 1
    assert counters["blank_lines_skipped"] == 1

    rows = [json.loads(line) for f in (tmp_path / "jsonl_out" / "dead_letter").glob("*.jsonl")
            for line in f.read_text().splitlines()]
    assert sorted(r["reason"] for r in rows) == sorted(
        ["malformed_json", "missing_text_field", "text_field_not_a_string", "not_a_json_object", "invalid_utf8"])
    # Ids name the file under the input root; the detail names its full path, to find it by.
    assert all(r["id"].startswith("jsonl:docs.jsonl@") and str(jsonl) in r["detail"] and r["raw"] for r in rows)


def test_roberta_recipe_has_no_nsp(tmp_path):
    manifest = run_wwm(tmp_path, "--recipe=roberta-wwm-ext", "--max_seq_length=64")
    assert manifest["next_sentence_prediction"] is False and manifest["sentence_task"] == "none"
    segments = set()
    for _, instance, vocab in iter_instances(str(tmp_path / "out")):
        assert instance.next_sentence_label == 0 and len(instance.input_ids) <= 64
        segments.update(instance.segment_ids)
    assert segments == {0, 1}, "HFL's paired input: [CLS] A [SEP] B [SEP]"
    manifest = run_wwm(tmp_path, "--recipe=roberta-wwm-ext", "--max_seq_length=64", "--paired_input=false",
                       name="single")
    for _, instance, vocab in iter_instances(str(tmp_path / "single")):
        assert instance.next_sentence_label == 0 and set(instance.segment_ids) == {0}
        assert instance.input_ids.count(vocab.id_of("[SEP]")) == 1


def _words_masked_whole_or_not(output, words):
    """Every occurrence of ``words`` (strings of one-token characters) in the instances of a run
    folder, the masked originals restored: per word, a Counter of "whole", "none" and "partial"
    (some of the word's tokens masked, not all)."""
    outcomes = collections.defaultdict(collections.Counter)
    for _, instance, vocab in iter_instances(str(output)):
        originals = list(instance.input_ids)
        for position, original in zip(instance.masked_positions, instance.masked_ids):
            originals[position] = original
        tokens = [vocab.tokens[i] for i in originals]
        masked = set(instance.masked_positions)
        for word in words:
            for start in range(len(tokens) - len(word) + 1):
                if tokens[start:start + len(word)] == list(word):
                    hits = sum(position in masked for position in range(start, start + len(word)))
                    outcomes[word]["whole" if hits == len(word) else "none" if hits == 0 else "partial"] += 1
    return outcomes


def test_ltp_segmenter_with_a_perceptron_trained_here(tmp_path):
    """LTP's words, as LTP's own model object predicts them, are masked whole; with
    --segmenter char the same words are sometimes masked in part (so the check can fail)."""
    from ltp_extension.perceptron import CWSTrainer

    fixture = pathlib.Path(__file__).parent / "fixtures" / "segmented.txt"
    trainer = CWSTrainer()
    trainer.epoch = 5
    trainer.shuffle = False  # shuffling makes training nondeterministic
    trainer.load_train_data(str(fixture))
    model_file = tmp_path / "ltp_cws.bin"
    model = trainer.train()
    model.save(str(model_file))

    # The corpus: the fixture's sentences, unsegmented, three to a document.
    sentences = [line.replace(" ", "") for line in fixture.read_text(encoding="utf-8").splitlines() if line.strip()]
    documents = [sentences[i:i + 3] for i in range(0, len(sentences), 3)]
    corpus = write_text_corpus(tmp_path / "ltp_corpus.txt", documents)
    # The words checked: Chinese words of two or more characters that the model finds wherever
    # their text occurs in a document (so an occurrence in an instance is that word).
    predicted, spans = set(), set()
    for number, document in enumerate(documents):
        position = 0
        for sentence in document:
            for word in model.predict(sentence):
                predicted.add(word)
                spans.add((number, position, position + len(word)))
                position += len(word)
    chinese = [w for w in predicted if len(w) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in w)]
    words = sorted(w for w in chinese if all(
        (number, start, start + len(w)) in spans
        for number, document in enumerate(documents)
        for start in range(len("".join(document))) if "".join(document).startswith(w, start)))
    assert {"语言", "模型"} <= set(words) and len(words) >= 40

    manifest = run_wwm(tmp_path, "--segmenter=ltp", f"--ltp_model={model_file}", "--dupe_factor=20",
                       inputs=[str(corpus)])
    assert manifest["config"]["segmentation"]["segmenter"] == "ltp" and manifest["num_instances"] > 0
    by_word = _words_masked_whole_or_not(tmp_path / "out", words)
    run_wwm(tmp_path, "--segmenter=char", "--dupe_factor=20", inputs=[str(corpus)], name="char")
    char = sum(_words_masked_whole_or_not(tmp_path / "char", words).values(), collections.Counter())
    ltp = sum(by_word.values(), collections.Counter())
    print(f"{len(words)} words; LTP: {dict(ltp)}, of which 语言 {dict(by_word['语言'])}, 模型 {dict(by_word['模型'])}; "
          f"char: {dict(char)}")
    assert ltp["partial"] == 0 and char["partial"] > 0
    for word in ("语言", "模型"):
        # At 100 occurrences or more, masked whole at least once unless the chance is far below
        # the masked share (0.15): (1 - 0.15) ** 100 < 1e-7.
        assert sum(by_word[word].values()) >= 100 and by_word[word]["whole"] >= 1, (word, by_word[word])
    # Words are masked whole far more often than characters masked one by one all happen to be
    # (about 0.15 against 0.15 ** 2): a one-sided two-proportion z-test.
    n_ltp, n_char = sum(ltp.values()), sum(char.values())
    whole_ltp, whole_char = ltp["whole"] / n_ltp, char["whole"] / n_char
    pooled = (ltp["whole"] + char["whole"]) / (n_ltp + n_char)
    z = (whole_ltp - whole_char) / math.sqrt(pooled * (1 - pooled) * (1 / n_ltp + 1 / n_char))
    assert n_ltp > 500 and z > 4.0, (whole_ltp, whole_char, z)


def test_ltp_without_a_model_fails_before_the_pipeline_with_advice(tmp_path, capsys, offline_hub):
    corpus = write_text_corpus(tmp_path / "c.txt")
    status = main(["run", f"--input={corpus}", f"--output={tmp_path / 'o'}", "--segmenter=ltp"])
    assert status == 2
    error = capsys.readouterr().err
    assert "LTP/legacy" in error and "not in the Hugging Face cache" in error
    assert "--ltp_model" in error and "jieba" in error and "wwm segmenter train" in error
    assert not (tmp_path / "o").exists()
    (tmp_path / "bad_model.bin").write_bytes(b"not a model")
    status = main(["run", f"--input={corpus}", f"--output={tmp_path / 'o'}", "--segmenter=ltp",
                   f"--ltp_model={tmp_path / 'bad_model.bin'}"])
    assert status == 2 and "could not load LTP model" in capsys.readouterr().err


def test_an_earlier_run_is_not_overwritten_by_accident(tmp_path):
    run_wwm(tmp_path)
    with pytest.raises(UsageError, match="--overwrite"):
        run_wwm(tmp_path)
    manifest = run_wwm(tmp_path, "--overwrite", "--recipe=roberta-wwm-ext")
    assert manifest["recipe"] == "roberta-wwm-ext"
    # Without its manifest nothing vouches that the files are a run's: refused, even with --overwrite.
    (tmp_path / "out" / "manifest.json").unlink()
    with pytest.raises(UsageError, match="holds files a run would write over that are not an earlier run's"):
        run_wwm(tmp_path)
    with pytest.raises(UsageError, match="not an earlier run's, which --overwrite does not touch"):
        run_wwm(tmp_path, "--overwrite")


def test_input_that_matches_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="matches no file"):
        run([f"--input={tmp_path}/nothing-*.txt", f"--output={tmp_path / 'o'}"] + LOCAL)


def test_parquet_read_as_text_is_a_clear_error_not_dead_letters(tmp_path):
    (tmp_path / "part-00000-of-00001.parquet").write_bytes(b"PAR1 whatever PAR1")
    with pytest.raises(UsageError, match=r"part-00000-of-00001.parquet is Parquet .* read as text: add "
                                         r"--input_format=parquet"):
        run([f"--input={tmp_path}/*.parquet", f"--output={tmp_path / 'o'}"] + LOCAL)
    assert not (tmp_path / "o").exists(), "refused before any work"


def test_inspect_prints_the_masked_originals(tmp_path, capsys):
    run_wwm(tmp_path)
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "out"), "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("# 0") and lines[1].startswith("[CLS]")
    assert "[MASK](" in lines[1] or "[MASK](" in lines[3]
    assert main(["inspect", str(tmp_path / "out"), "--limit", "3", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert set(row) >= {"input_ids", "tokens", "masked_positions", "masked_ids", "masked_original",
                            "next_sentence_label"}
        assert len(row["masked_positions"]) == len(row["masked_original"]) == len(row["masked_ids"])
        assert len(row["input_ids"]) == len(row["tokens"])
