"""wwm train's dynamic masking (TensorFlow ops in tf.data) with N-gram spans, MacBERT's replacement,
a masking-rate schedule across phases and a tokenizer's own [MASK] id, on real `wwm run` output
(UD Chinese sentences, jieba). The span shares are compared with the static path's rule
(``wwm_core.masking``, compiled, its own random streams) on the same rows."""
import collections
import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tests.conftest import ud_corpus_file
from tests.test_any_tokenizer import byte_level_bpe, save
from tests.test_pipeline import LOCAL
from wwm_cli.data import run
from wwm_core import masking
from wwm_trainer.data import make_dataset, read_phase
from wwm_trainer.presets import plan_phases

MACBERT = (0.4, 0.3, 0.2, 0.1)


def spans_in(masked: np.ndarray, word_ids: np.ndarray) -> list:
    """Lengths in words of the maximal runs of fully masked adjacent words (as a reader sees spans)."""
    runs, current, previous = [], 0, None
    for position, word in enumerate(word_ids.tolist() + [0]):
        if word == previous:
            continue
        previous = word
        if word and masked[position]:
            current += 1
        else:
            if current:
                runs.append(current)
            current = 0
    return runs


@pytest.fixture(scope="module")
def dynamic_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dynamic")
    corpus, sentences = ud_corpus_file(root / "ud.txt", per_document=8)
    import jieba

    words = sorted({w for s in sentences for w in jieba.lcut(s) if len(w) == 2})
    table = root / "similar.tsv"  # a word's similar words: its neighbours in sorted order
    table.write_text("".join(f"{w}\t{' '.join(words[max(0, i - 2):i] + words[i + 1:i + 3])}\n"
                             for i, w in enumerate(words)), encoding="utf-8")
    common = [f"--input={corpus}", "--segmenter=jieba", "--masking=dynamic", "--sentence_task=none",
              "--max_seq_length=128", "--dupe_factor=1", "--num_shards=2", "--progress=off", *LOCAL]
    run([*common, f"--output={root / 'macbert'}", "--ngram_weights=0.4,0.3,0.2,0.1", "--replacement=macbert",
         f"--similar_words={table}"])
    tokenizer = save(byte_level_bpe(sentences, vocab_size=1500), root / "tokenizer.json")
    run([*common, f"--output={root / 'bpe'}", f"--tokenizer={tokenizer}", "--masked_lm_prob=0.3"])
    return root, table


def rows_of(dataset, batches):
    for batch in dataset.take(batches):
        batch = {name: value.numpy() for name, value in batch.items()}
        for row in range(len(batch["input_ids"])):
            count = int(batch["masked_lm_weights"][row].sum())
            yield batch, row, batch["masked_lm_positions"][row][:count], batch["masked_lm_ids"][row][:count]


def test_ngram_spans_and_macbert_words_in_tf_data(dynamic_data):
    root, table_path = dynamic_data
    phase = read_phase(str(root / "macbert"))
    assert phase.ngram_weights == MACBERT and phase.replacement == "macbert" and phase.similar_words_path
    similar = masking.SimilarWords.from_npz_bytes(open(phase.similar_words_path, "rb").read())
    dataset = make_dataset(phase, batch_size=16, seed=5)
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}, "TensorFlow ops only (TPU input pipelines)"
    vocab = [t.strip() for t in open(root / "macbert" / "vocab.txt", encoding="utf-8")]
    mask_id = vocab.index("[MASK]")
    ours, rows = collections.Counter(), []
    decisions = collections.Counter()
    for batch, row, positions, labels in rows_of(dataset, 120):
        original = batch["input_ids"][row].copy()
        original[positions] = labels
        assert mask_id not in batch["input_ids"][row], "MacBERT feeds no [MASK]"
        length = int(batch["input_mask"][row].sum())
        masked = np.zeros(len(original), bool)
        masked[positions] = True
        assert len(positions) <= min(phase.max_predictions_per_seq, max(1, round(length * 0.15)))
        rows.append((original, masked, batch["input_ids"][row]))
    # Words and spans: the masked batch has no word ids; the data's record of the same row gives them.
    records = {}
    for record in tf.data.TFRecordDataset(phase.files):
        features = tf.train.Example.FromString(record.numpy()).features.feature
        records[tuple(features["input_ids"].int64_list.value)] = np.array(features["word_ids"].int64_list.value)
    for original, masked, fed in rows:
        word_ids = records[tuple(original.tolist())]
        for word in np.unique(word_ids[word_ids > 0]):
            members = masked[word_ids == word]
            assert members.all() or not members.any(), "whole words"
            if members.all():
                tokens = tuple(original[word_ids == word].tolist())
                given = tuple(fed[word_ids == word].tolist())
                candidates = similar.candidates_of(tokens)
                decisions["kept" if given == tokens else "similar" if given in candidates else
                          "random, has candidates" if candidates else "random"] += 1
        ours.update(spans_in(masked, word_ids))
    # The compiled static rule on the same rows, its own draws: the same span shares.
    word_matrix = np.stack([records[tuple(o.tolist())] for o, _, _ in rows])
    originals = np.stack([o for o, _, _ in rows])
    attention = (originals > 0).astype(np.int64)
    seeds = np.random.default_rng(1).integers(0, 2**63, size=len(originals), dtype=np.uint64)
    reference = masking.mask_word_ids(originals, word_matrix, attention, seeds=seeds,
                                      masked_lm_prob=0.15, max_predictions=phase.max_predictions_per_seq,
                                      mask_id=mask_id, vocab_size=phase.vocab_size, ngram_weights=MACBERT)
    theirs = collections.Counter()
    for k in range(len(rows)):
        theirs.update(spans_in(reference["labels"][k] != -100, word_matrix[k]))
    total_ours, total_theirs = sum(ours.values()), sum(theirs.values())
    for length in (1, 2, 3):
        p, q = ours[length] / total_ours, theirs[length] / total_theirs
        error = (p * (1 - p) / total_ours + q * (1 - q) / total_theirs) ** 0.5
        assert abs(p - q) < 5 * error + 0.01, (length, p, q)
    words = sum(decisions.values())
    with_candidates = decisions["similar"] + decisions["random, has candidates"]
    print(f"\nTF spans {dict(ours)}, static rule {dict(theirs)}; MacBERT words {dict(decisions)}")
    assert abs(decisions["kept"] / words - 0.1) < 0.03
    assert decisions["similar"] / with_candidates > 0.8 * 0.8 / 0.9 - 0.05, "80% of the words with candidates"


def test_a_masking_rate_schedule_and_a_tokenizers_mask_id(dynamic_data):
    root, _ = dynamic_data
    phase = read_phase(str(root / "bpe"))
    manifest = json.loads((root / "bpe" / "manifest.json").read_text())
    assert phase.mask_id == manifest["special_tokens"]["mask"]["id"] == 4 and phase.masked_lm_prob == 0.3
    plans = plan_phases(data_phases=[(phase.path, 128), (phase.path, 128)], flags={"masking_rate": (0.3, 0.15)},
                        recipe=None, optimizer="adamw", hidden_size=64)
    assert [plan.masked_lm_prob.value for plan in plans] == [0.3, 0.15]
    for rate in (0.3, 0.15):
        masked = tokens = mask_fed = 0
        for batch, row, positions, labels in rows_of(make_dataset(phase, batch_size=8, seed=1, masked_lm_prob=rate), 30):
            masked += len(positions)
            tokens += int(batch["input_mask"][row].sum())
            mask_fed += int((batch["input_ids"][row][positions] == 4).sum())
        assert abs(masked / tokens - rate) < 0.02, (rate, masked / tokens)
        assert abs(mask_fed / masked - 0.8) < 0.05


def test_training_on_a_tokenizers_data_with_a_masking_rate(dynamic_data, tmp_path):
    from wwm_trainer.cli import train_main

    root, _ = dynamic_data
    model_dir = tmp_path / "model"
    train_main([f"--manifest={root / 'bpe'}", f"--model_dir={model_dir}", "--model_config=tiny",
                "--num_train_steps=2", "--train_batch_size=4", "--masking_rate=0.3", "--save_checkpoints_steps=2",
                "--steps_per_loop=1"])
    plan = json.loads((model_dir / "train_plan.json").read_text())
    assert plan["phases"][0]["masked_lm_prob"] == {"value": 0.3, "source": "flag"}
    exported = {p.name for p in (model_dir / "hf").iterdir()} if (model_dir / "hf").exists() else set()
    exported |= {p.name for folder in model_dir.iterdir() if folder.is_dir() for p in folder.iterdir()}
    assert "tokenizer.json" in exported and "vocab.txt" not in exported, "the data's tokenizer, under its own name"
