"""Released parts by name through huggingface_hub's cache (HF_HUB_OFFLINE=1): nothing can be
downloaded here, so the tests lay out a cache folder as the hub client writes it (refs/main, a
snapshot of symlinks into blobs/) and the real loading code reads it."""
import hashlib
import json
import pathlib

import pytest

from tests.conftest import FIXTURES
from tests.test_pipeline import LOCAL, write_text_corpus
from wwm_cli import main
from wwm_cli.data import run
from wwm_cli.inspect import iter_instances
from wwm_core.errors import UsageError
from wwm_core.hub import hub_file, is_hub_id

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache: pathlib.Path, repo_id: str, files: dict) -> pathlib.Path:
    """models--ORG--NAME/{refs/main, blobs/<sha256>, snapshots/<commit>/<file> -> ../../blobs/<sha256>}."""
    root = cache / ("models--" + repo_id.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(pathlib.Path("..") / ".." / "blobs" / blob.name)
    return snapshot


@pytest.fixture()
def hub_cache(tmp_path, offline_hub, bert_vocab_path):
    """A cache holding LTP/legacy (a perceptron trained here standing in for LTP's) and
    hfl/chinese-roberta-wwm-ext's vocab.txt (Google's, which it is)."""
    from ltp_extension.perceptron import CWSTrainer

    trainer = CWSTrainer()
    trainer.epoch = 3
    trainer.shuffle = False
    trainer.load_train_data(str(FIXTURES / "segmented.txt"))
    model = tmp_path / "cws_model.bin"
    trainer.train().save(str(model))
    cache = offline_hub
    config = {"nerual": False, "tasks": {"cws": "cws_model.bin", "pos": "pos_model.bin", "ner": "ner_model.bin"}}
    cache_repo(cache, "LTP/legacy", {"config.json": json.dumps(config).encode(), "cws_model.bin": model.read_bytes()})
    cache_repo(cache, "hfl/chinese-roberta-wwm-ext", {"vocab.txt": bert_vocab_path.read_bytes()})
    return cache


def test_hub_ids_are_told_from_paths(tmp_path):
    assert is_hub_id("LTP/legacy") and is_hub_id("hfl/chinese-roberta-wwm-ext") and is_hub_id("org/name@v1.0")
    assert not is_hub_id("gs://bucket/vocab.txt") and not is_hub_id("vocab.txt")
    (tmp_path / "LTP").mkdir()
    (tmp_path / "LTP" / "legacy").write_text("x")
    assert not is_hub_id(str(tmp_path / "LTP" / "legacy"))


def test_recipe_defaults_load_ltp_legacy_and_a_hub_vocabulary_from_the_cache(hub_cache, tmp_path, bert_vocab_path):
    corpus = write_text_corpus(tmp_path / "corpus.txt")
    manifest = run([f"--input={corpus}", f"--output={tmp_path / 'out'}", "--recipe=roberta-wwm-ext",
                    "--vocab_file=hfl/chinese-roberta-wwm-ext", "--dupe_factor=2", *LOCAL])
    segmentation = manifest["config"]["segmentation"]
    assert segmentation["segmenter"] == "ltp" and segmentation["ltp_model"] == "LTP/legacy"
    assert segmentation["fallback"] is None, "the recipe's own segmenter was used"
    assert (tmp_path / "out" / "vocab.txt").read_bytes() == bert_vocab_path.read_bytes()
    assert manifest["vocab_sha256"] == hashlib.sha256(bert_vocab_path.read_bytes()).hexdigest()
    assert len(list(iter_instances(str(tmp_path / "out")))) == manifest["num_instances"] > 0
    assert hub_file("LTP/legacy", "cws_model.bin").startswith(str(hub_cache))


def test_a_file_the_cache_lacks_is_one_clear_line(hub_cache, tmp_path, capsys):
    corpus = write_text_corpus(tmp_path / "corpus.txt")
    status = main(["run", f"--input={corpus}", f"--output={tmp_path / 'o'}", "--vocab_file=hfl/not-cached",
                   "--segmenter=jieba"])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error
    assert "hfl/not-cached/vocab.txt is not in the Hugging Face cache" in error and "HF_HUB_OFFLINE" in error
    with pytest.raises(UsageError, match="has no file|not in the Hugging Face cache"):
        hub_file("LTP/legacy", "pos_model.bin")


def test_the_recipes_segmenter_falls_back_loudly_when_it_cannot_be_had(tmp_path, offline_hub, caplog, capsys):
    corpus = write_text_corpus(tmp_path / "corpus.txt")
    manifest = run([f"--input={corpus}", f"--output={tmp_path / 'out'}", "--max_seq_length=128", *LOCAL])
    fallback = manifest["config"]["segmentation"]["fallback"]
    assert manifest["config"]["segmentation"]["segmenter"] == "jieba" and "LTP/legacy" in fallback
    assert "the recipe's segmenter (LTP, LTP/legacy) is not available" in caplog.text
    assert "WARNING: segmented with jieba, not the recipe's LTP" in capsys.readouterr().out
    # A segmenter the user names is never replaced.
    with pytest.raises(UsageError, match="LTP/legacy"):
        run([f"--input={corpus}", f"--output={tmp_path / 'named'}", "--segmenter=ltp", *LOCAL])
