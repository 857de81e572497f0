"""The recipes beyond HFL's 2019 six: macbert-base, macbert-large and chinese-modernbert, end to end
on real text (the UD Chinese sentences), with jieba standing in for LTP/legacy."""
import json

import pytest

from tests.conftest import ud_corpus_file
from tests.test_any_tokenizer import byte_level_bpe, save
from tests.test_pipeline import run_wwm
from wwm_cli import main
from wwm_core.errors import UsageError
from wwm_core.recipes import RECIPES


@pytest.fixture(scope="module")
def ud_corpus(tmp_path_factory):
    return ud_corpus_file(tmp_path_factory.mktemp("recipes") / "ud.txt", per_document=10)


def test_macbert_base_makes_sop_pairs_with_ngram_spans_and_similar_words(ud_corpus, tmp_path):
    path, sentences = ud_corpus
    import jieba

    words = sorted({w for s in sentences[:300] for w in jieba.lcut(s) if len(w) == 2})
    table = tmp_path / "similar.tsv"  # each two-character word's similar words: its neighbours in sorted order
    table.write_text("".join(f"{w}\t{' '.join(words[max(0, i - 2):i] + words[i + 1:i + 3])}\n"
                             for i, w in enumerate(words)), encoding="utf-8")
    manifest = run_wwm(tmp_path, "--recipe=macbert-base", f"--similar_words={table}", "--dupe_factor=1",
                       inputs=[str(path)])
    config = manifest["config"]["instances"]
    assert config["recipe"] == "macbert-base" and config["replacement"] == "macbert"
    assert config["ngram_weights"] == [0.4, 0.3, 0.2, 0.1] and manifest["sentence_task"] == "sop"
    assert manifest["max_seq_length"] == 128, "run_wwm sets the length; the recipe's is 512"
    statistics = manifest["statistics"]
    assert statistics["masked_spans"]["mean_words"] > 1.4
    assert 0.25 < statistics["label_1_share"] < 0.75
    replacement = statistics["macbert_replacement"]
    assert replacement["similar_share"] > 0.1 and abs(replacement["kept_share"] - 0.1) < 0.03
    with pytest.raises(UsageError, match="--similar_words"):
        run_wwm(tmp_path, "--recipe=macbert-large", inputs=[str(path)], name="no-table")


def test_chinese_modernbert_needs_a_tokenizer_and_packs_long_dynamic_instances(ud_corpus, tmp_path):
    path, sentences = ud_corpus
    with pytest.raises(UsageError, match="--tokenizer"):
        run_wwm(tmp_path, "--recipe=chinese-modernbert", "--max_seq_length=1024", inputs=[str(path)], name="none")
    tokenizer = save(byte_level_bpe(sentences, vocab_size=2000), tmp_path / "tokenizer.json")
    manifest = run_wwm(tmp_path, "--recipe=chinese-modernbert", f"--tokenizer={tokenizer}", "--max_seq_length=1024",
                       "--num_shards=1", "--dupe_factor=2", inputs=[str(path)])
    assert manifest["masking"] == "dynamic" and manifest["sentence_task"] == "none"
    assert manifest["max_predictions_per_seq"] == 310, "1,024 x 0.3, rounded up to a multiple of 5"
    assert "document_starts" in manifest["features"] and "word_ids" in manifest["features"]
    assert manifest["statistics"]["padding_share"] <= 0.02
    assert manifest["config"]["instances"]["pack_fill"] == "tokens"


def test_recipe_show_gives_the_new_recipes_sources(capsys):
    for name in ("macbert-base", "macbert-large", "chinese-modernbert"):
        assert main(["recipe", "show", name, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        for setting in ("ngram_weights", "replacement", "masked_lm_prob", "sentence_task", "vocab", "optimizer"):
            assert shown["sources"].get(setting), (name, setting)
    assert RECIPES["chinese-modernbert"].phases[0].masked_lm_prob == 0.3
    assert RECIPES["chinese-modernbert"].phases[1].masked_lm_prob == 0.15
