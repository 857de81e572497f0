"""The code the README gives users runs, on a real run's output."""
import collections
import pathlib
import re

import numpy as np
import pytest

from tests.test_recipes import real_corpus, wwm_run  # noqa: F401 (a fixture)

README = pathlib.Path(__file__).parent.parent / "README.md"


def readme_python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_collator_masks_whole_words_of_a_dynamic_run(real_corpus, tmp_path):  # noqa: F811
    datasets = pytest.importorskip("datasets")
    corpus, _ = real_corpus
    manifest = wwm_run(corpus, tmp_path / "dyn", "--max_seq_length=128", "--dupe_factor=1", "--masking=dynamic",
                       "--output_format=parquet")
    (collator,) = [block for block in readme_python_blocks() if "def mask_whole_words" in block]
    (loader,) = [block for block in readme_python_blocks() if "DataLoader" in block]
    compile(loader, "README.md", "exec")  # PyTorch is not installed here: the loader is only compiled
    namespace = {}
    exec(collator, namespace)

    files = [str(tmp_path / "dyn" / name) for name in manifest["parquet_files"]]
    dataset = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    vocab = (tmp_path / "dyn" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    mask_id = vocab.index("[MASK]")
    assert mask_id == 103
    rows = dataset.select(range(min(512, len(dataset)))).to_list()
    batch = namespace["mask_whole_words"](rows, rng=np.random.default_rng(0), mask_id=mask_id,
                                          vocab_size=len(vocab))

    original = np.array([row["input_ids"] for row in rows])
    word_ids = np.array([row["word_ids"] for row in rows])
    labels, fed = batch["labels"], batch["input_ids"]
    masked = labels != -100
    assert not (masked & (word_ids == 0)).any(), "[CLS], [SEP] and padding are never masked"
    assert (labels[masked] == original[masked]).all() and (fed[~masked] == original[~masked]).all()
    for row_words, row_masked in zip(word_ids, masked):
        for word in set(row_words[row_words > 0].tolist()):
            members = row_masked[row_words == word]
            assert members.all() or not members.any(), "a word is masked whole or not at all"
    real_tokens = np.count_nonzero(original)
    assert 0.12 < masked.sum() / real_tokens <= 0.16
    outcome = collections.Counter("mask" if f == mask_id else "kept" if f == o else "random"
                                  for f, o in zip(fed[masked], original[masked]))
    assert abs(outcome["mask"] / masked.sum() - 0.8) < 0.05
    assert 0.05 < outcome["kept"] / masked.sum() < 0.15
