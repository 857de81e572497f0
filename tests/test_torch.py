"""wwm_torch on real `wwm run` output, in real PyTorch: its datasets (map-style, streaming across
DataLoader workers and torch.distributed ranks, gs:// through a GCS emulator), its collator
checked against independent references (jieba's words of the decoded text, TensorFlow's parse of
the same run's TFRecords, the trainer's tf.data masking), the Hugging Face Trainer, and the
trainer's Hugging Face export loaded by transformers."""
import collections
import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import transformers

import wwm_torch
from tests.test_pipeline import LOCAL
from tests.test_recipes import real_corpus, whole_word_uniformity  # noqa: F401 (a fixture)
from wwm_cli.data import run
from wwm_core import masking
from wwm_core.errors import UsageError
from wwm_torch.data import batches_taken

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = REPO / "wwm_core" / "data" / "sample" / "corpus.txt"
NOT_PREDICTED = -100


def sample_files(folder: pathlib.Path, parts: int = 4) -> str:
    """The bundled sample's documents in ``parts`` files (so a run has several shards)."""
    documents = SAMPLE.read_text(encoding="utf-8").strip().split("\n\n")
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        (folder / f"part{part}.txt").write_text("\n\n".join(documents[part::parts]) + "\n", encoding="utf-8")
    return str(folder / "*.txt")


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory):
    """`wwm run` on the bundled sample in 4 files, 4 shards (small files would be gathered into
    one): NSP data with dynamic masks, and with static masks (TFRecords beside the Parquet), at
    length 64."""
    root = tmp_path_factory.mktemp("torch_sample")
    corpus = sample_files(root / "corpus")
    common = [f"--input={corpus}", "--segmenter=jieba", "--max_seq_length=64", "--max_predictions_per_seq=10",
              "--dupe_factor=5", "--output_format=both", "--num_shards=4", *LOCAL]
    run([f"--output={root / 'dynamic'}", "--masking=dynamic", *common])
    run([f"--output={root / 'static'}", *common])
    return root


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WWM_CACHE", str(tmp_path / "wwm-cache"))
    return tmp_path / "wwm-cache"


def parquet_rows(folder: pathlib.Path) -> list:
    """A run's Parquet rows as pyarrow reads them (the independent reader), in file order."""
    manifest = json.loads((folder / "manifest.json").read_text())
    return [row for name in manifest["parquet_files"] for row in pq.read_table(folder / name).to_pylist()]


def vocabulary(folder: pathlib.Path) -> list:
    return (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")


def original_ids(batch: dict) -> np.ndarray:
    """The unmasked ids of a collated batch: the labels where a token is predicted, else what is fed."""
    labels, fed = batch["labels"].numpy(), batch["input_ids"].numpy()
    return np.where(labels != NOT_PREDICTED, labels, fed)


def as_records(batch: dict) -> list:
    """Collated rows in the TFRecords' form (original ids, masked positions), for the checks the
    TFRecords are measured with."""
    records = []
    for ids, labels in zip(original_ids(batch), batch["labels"].numpy()):
        positions = np.flatnonzero(labels != NOT_PREDICTED)
        records.append({"input_ids": ids.tolist(), "masked_lm_positions": positions.tolist(),
                        "masked_lm_ids": labels[positions].tolist(), "masked_lm_weights": [1.0] * len(positions)})
    return records


# ---------------------------------------------------------------- datasets

def test_the_map_style_dataset_holds_the_runs_rows(sample_runs, cache):
    folder = sample_runs / "dynamic"
    dataset = wwm_torch.load_instances(str(folder / "manifest.json"))
    expected = parquet_rows(folder)
    assert len(dataset) == len(expected) == json.loads((folder / "manifest.json").read_text())["num_instances"]
    for index in (0, 1, len(expected) // 2, len(expected) - 1, -1):
        row = dataset[index]
        assert {name: (value.tolist() if isinstance(value, np.ndarray) else value) for name, value in row.items()} \
            == expected[index]
    assert len(list(cache.glob("*.arrow"))) == 4, "one memory-mapped Arrow file per Parquet file"
    with pytest.raises(IndexError):
        dataset[len(expected)]
    # The folder is accepted too; a second load reuses the cache.
    assert wwm_torch.load_instances(str(folder))[3]["instance_id"] == expected[3]["instance_id"]


def test_a_corrupted_or_missing_file_is_named_not_read(sample_runs, tmp_path, cache):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sample_runs / "dynamic", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    first, second = (copy / name for name in manifest["parquet_files"][:2])
    original = first.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    first.write_bytes(bytes(damaged))
    with pytest.raises(UsageError, match=f"{first.name} has .* crc32c .* the manifest says .*corrupted"):
        wwm_torch.load_instances(str(copy))
    first.write_bytes(original)
    second.unlink()
    with pytest.raises(UsageError, match=f"{second.name} is listed in its manifest but missing"):
        list(wwm_torch.load_instances(str(copy), streaming=True, shuffle=False))
    with pytest.raises(UsageError, match="no manifest at"):
        wwm_torch.load_instances(str(tmp_path / "nothing"))


def test_a_tfrecord_only_run_is_refused_with_the_flag_to_use(sample_runs, tmp_path):
    run([f"--input={SAMPLE}", f"--output={tmp_path / 'tf'}", "--segmenter=char", "--max_seq_length=64", *LOCAL])
    with pytest.raises(UsageError, match="--output_format parquet"):
        wwm_torch.load_instances(str(tmp_path / "tf"))


def stream_ids(stream, *, workers: int, batch_size: int = 4) -> list:
    loader = torch.utils.data.DataLoader(stream, batch_size=batch_size, num_workers=workers, collate_fn=list)
    return [[row["instance_id"] for row in batch] for batch in loader]


def test_streams_split_rows_across_ranks_and_workers_without_overlap(sample_runs):
    manifest = str(sample_runs / "dynamic" / "manifest.json")
    every = sorted(row["instance_id"] for row in parquet_rows(sample_runs / "dynamic"))
    for world_size in (1, 3):
        shares = []
        for rank in range(world_size):
            stream = wwm_torch.load_instances(manifest, streaming=True, rank=rank, world_size=world_size, seed=1)
            shares.append([i for batch in stream_ids(stream, workers=2) for i in batch])
            assert len(shares[-1]) == stream.num_rows
        read = [i for share in shares for i in share]
        assert len(read) == len(set(read)), "no row is read twice"
        assert len({len(share) for share in shares}) == 1, "every rank reads as many rows"
        assert set(read) <= set(every) and len(every) - len(read) < world_size
    # Each epoch its own file order and shuffle; the same epoch, the same order.
    stream = wwm_torch.load_instances(manifest, streaming=True, seed=1)
    epoch0 = stream_ids(stream, workers=2)
    stream.set_epoch(1)
    epoch1 = stream_ids(stream, workers=2)
    stream.set_epoch(0)
    assert stream_ids(stream, workers=2) == epoch0 != epoch1
    assert sorted(sum(epoch0, [])) == sorted(sum(epoch1, [])) == every


def test_a_stream_resumes_mid_epoch_where_it_stopped(sample_runs):
    manifest = str(sample_runs / "dynamic" / "manifest.json")
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(manifest, seed=3)
    collator.set_epoch(2)
    for workers, batch_size, drop_last in ((0, 5, False), (2, 5, False), (3, 7, True), (4, 11, False)):
        stream = wwm_torch.load_instances(manifest, streaming=True, seed=4)
        stream.set_epoch(2)
        loader = torch.utils.data.DataLoader(stream, batch_size=batch_size, num_workers=workers, drop_last=drop_last,
                                             collate_fn=collator)
        whole = [batch["input_ids"] for batch in loader]
        done = len(whole) * 2 // 3
        resumed = wwm_torch.load_instances(manifest, streaming=True, seed=4)
        resumed.resume(epoch=2, batches=done, batch_size=batch_size, drop_last=drop_last)
        loader = torch.utils.data.DataLoader(resumed, batch_size=batch_size, num_workers=workers,
                                             drop_last=drop_last, collate_fn=collator)
        rest = [batch["input_ids"] for batch in loader]
        assert len(rest) == len(whole) - done > 0
        assert all(torch.equal(a, b) for a, b in zip(rest, whole[done:])), (workers, batch_size)
        resumed.set_epoch(3)  # the next epoch starts at its beginning
        assert sum(len(batch["input_ids"]) for batch in loader) == sum(len(batch) for batch in whole)


def test_batches_taken_follows_the_dataloaders_turns():
    assert batches_taken([3, 3], 4) == ([2, 2], 0)
    assert batches_taken([4, 4, 4], 8) == ([3, 3, 2], 2)
    assert batches_taken([1, 3, 2], 5) == ([1, 2, 2], 0)
    assert batches_taken([0, 2], 2) == ([0, 2], 0)
    assert batches_taken([2, 2], 9) == ([2, 2], 0)
    assert batches_taken([2, 2], 0) == ([0, 0], 0)


def test_torch_distributed_ranks_read_disjoint_equal_shares(sample_runs):
    """Two real gloo ranks (separate processes; the rank comes from torch.distributed), each with two
    DataLoader workers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manifest = str(sample_runs / "dynamic" / "manifest.json")
    environment = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
    ranks = [subprocess.Popen([sys.executable, "-m", "tests.torch_ranks", manifest, str(rank), "2",
                               f"tcp://127.0.0.1:{port}"], cwd=REPO, env=environment, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in range(2)]
    results = []
    for process in ranks:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    every = {row["instance_id"] for row in parquet_rows(sample_runs / "dynamic")}
    for epoch in range(2):
        shares = [set(result["epochs"][epoch]) for result in results]
        assert not shares[0] & shares[1] and len(every - (shares[0] | shares[1])) < 2
        assert len(results[0]["epochs"][epoch]) == len(results[1]["epochs"][epoch]) == len(shares[0])
    assert results[0]["counts"] == results[1]["counts"]
    assert results[0]["epochs"][0] != results[0]["epochs"][1]


def test_datasets_and_collator_read_gs(sample_runs, tmp_path, cache):
    from tests.test_gcs import gcs_emulator

    folder = sample_runs / "dynamic"
    with gcs_emulator("wwm-torch") as bucket:
        for path in folder.iterdir():
            if path.is_file():
                bucket.blob(f"out/{path.name}").upload_from_filename(str(path))
        manifest = "gs://wwm-torch/out/manifest.json"
        dataset = wwm_torch.load_instances(manifest)
        stream = wwm_torch.load_instances(manifest, streaming=True, shuffle=False)
        collator = wwm_torch.WholeWordMaskCollator.from_manifest(manifest, seed=0)
        streamed = list(stream)
        bucket.blob(f"out/{json.loads((folder / 'manifest.json').read_text())['parquet_files'][0]}").upload_from_string(
            b"not the file")
        with pytest.raises(UsageError, match="truncated or corrupted"):
            list(wwm_torch.load_instances(manifest, streaming=True, shuffle=False))
    expected = parquet_rows(folder)
    assert [row["instance_id"] for row in streamed] == [row["instance_id"] for row in expected]
    assert [dataset[i]["input_ids"].tolist() for i in range(len(dataset))] == [row["input_ids"] for row in expected]
    local = wwm_torch.WholeWordMaskCollator.from_manifest(str(folder), seed=0)
    rows = [dataset[i] for i in range(8)]
    assert all(torch.equal(a, b) for a, b in zip(collator(rows).values(), local(rows).values()))


# ---------------------------------------------------------------- the collator

def test_dynamic_masks_are_a_function_of_seed_epoch_and_instance(sample_runs, cache):
    """The same instance gets the same masks in any batch, order and DataLoader worker (persistent
    ones included), new masks in a new epoch, and other masks with another seed."""
    manifest = str(sample_runs / "dynamic" / "manifest.json")
    dataset = wwm_torch.load_instances(manifest)
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(manifest, seed=11)
    batch = collator([dataset[i] for i in range(len(dataset))])
    assert {name: value.dtype for name, value in batch.items()} == dict.fromkeys(
        ("input_ids", "attention_mask", "token_type_ids", "labels", "next_sentence_label"), torch.int64)

    def alone(epoch, seed=11):
        other = wwm_torch.WholeWordMaskCollator.from_manifest(manifest, seed=seed)
        other.set_epoch(epoch)
        return [other([dataset[i]])["input_ids"][0] for i in range(len(dataset))]

    order = np.random.default_rng(0).permutation(len(dataset)).tolist()
    loader = torch.utils.data.DataLoader(dataset, batch_size=6, sampler=order, num_workers=2, collate_fn=collator,
                                         persistent_workers=True)
    per_epoch = []
    for epoch in range(3):
        collator.set_epoch(epoch)  # reaches the persistent workers through shared memory
        fed = torch.cat([batch["input_ids"] for batch in loader])
        reference = alone(epoch)
        assert all(torch.equal(fed[position], reference[index]) for position, index in enumerate(order)), epoch
        per_epoch.append(reference)
    changed = [sum(not torch.equal(a, b) for a, b in zip(per_epoch[e], per_epoch[e + 1])) for e in range(2)]
    assert min(changed) >= 0.9 * len(dataset), changed
    assert sum(not torch.equal(a, b) for a, b in zip(alone(0, seed=12), per_epoch[0])) >= 0.9 * len(dataset)


def test_static_labels_are_the_stored_masks_and_nothing_else(sample_runs, cache):
    """Against TensorFlow's parse of the same run's TFRecords: labels are masked_lm_ids at
    masked_lm_positions and -100 elsewhere; the ids fed are the stored (masked) ones."""
    tf = pytest.importorskip("tensorflow")
    from tests.test_recipes import parsed_records

    folder = sample_runs / "static"
    manifest = json.loads((folder / "manifest.json").read_text())
    records = parsed_records(folder, manifest)
    dataset = wwm_torch.load_instances(str(folder))
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(str(folder))
    batch = collator([dataset[i] for i in range(len(dataset))])
    assert len(records) == len(dataset) > 0 and tf is not None
    for row, record in enumerate(records):
        expected = np.full(64, NOT_PREDICTED)
        weights = np.array(record["masked_lm_weights"]) > 0
        expected[np.array(record["masked_lm_positions"])[weights]] = np.array(record["masked_lm_ids"])[weights]
        assert batch["labels"][row].tolist() == expected.tolist()
        assert batch["input_ids"][row].tolist() == record["input_ids"]
        assert batch["attention_mask"][row].tolist() == record["input_mask"]
        assert batch["token_type_ids"][row].tolist() == record["segment_ids"]
        assert int(batch["next_sentence_label"][row]) == record["next_sentence_labels"][0]
    with pytest.raises(UsageError, match="static masks"):
        wwm_torch.WholeWordMaskCollator.from_manifest(str(folder), masked_lm_prob=0.2)


def test_settings_come_from_the_manifest_and_can_be_overridden(sample_runs, tmp_path):
    manifest = str(sample_runs / "dynamic" / "manifest.json")
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(manifest)
    assert (collator.masking, collator.mask_id, collator.vocab_size, collator.masked_lm_prob,
            collator.max_predictions_per_seq, collator.sentence_task) == ("dynamic", 103, 21128, 0.15, 10, "nsp")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(95)]) + "\n")
    other = wwm_torch.WholeWordMaskCollator.from_manifest(manifest, vocab_file=str(vocab), masked_lm_prob=0.3,
                                                         max_predictions_per_seq=20, sentence_task="none")
    assert (other.mask_id, other.vocab_size, other.masked_lm_prob, other.max_predictions_per_seq) == (4, 100, 0.3, 20)
    dataset = wwm_torch.load_instances(manifest)
    rows = [dataset[i] for i in range(len(dataset))]
    assert "next_sentence_label" not in other(rows)
    share = (other(rows)["labels"] != NOT_PREDICTED).sum() / sum(int(row["attention_mask"].sum()) for row in rows)
    assert 0.25 < share <= 0.3
    with pytest.raises(UsageError, match="sentence_task nsp, not sop"):
        wwm_torch.WholeWordMaskCollator.from_manifest(manifest, sentence_task="sop")
    # The run's masking rule (word-level, Google's replacement); N-gram spans and another [MASK] id on demand.
    assert (collator.ngram_weights, collator.replacement, collator.similar) == ((1.0,), "bert", None)
    spans = wwm_torch.WholeWordMaskCollator.from_manifest(manifest, ngram_weights=(0.4, 0.3, 0.2, 0.1), mask_id=7)
    assert spans.ngram_weights == (0.4, 0.3, 0.2, 0.1) and spans.mask_id == 7
    batch = spans(rows)
    assert (batch["input_ids"][batch["labels"] != NOT_PREDICTED] == 7).float().mean() > 0.7
    with pytest.raises(UsageError, match="without similar words"):
        wwm_torch.WholeWordMaskCollator.from_manifest(manifest, replacement="macbert")
    with pytest.raises(UsageError, match=r"masked_lm_prob 0.4 at length 64 needs max_predictions_per_seq >= 26"):
        wwm_torch.WholeWordMaskCollator.from_manifest(manifest, masked_lm_prob=0.4)
    # Rows the Hugging Face Trainer stripped of the columns its model does not take.
    stripped = [{k: v for k, v in row.items() if k not in ("word_ids", "instance_id")} for row in rows[:2]]
    with pytest.raises(UsageError, match="remove_unused_columns=False"):
        collator(stripped)


@pytest.fixture(scope="module")
def ud_runs(real_corpus, tmp_path_factory):  # noqa: F811
    """UD Chinese GSDSimp text (held out: no setting was tuned on it), `wwm run --recipe bert-wwm` at
    length 128 with jieba: dynamic masks (TFRecords and Parquet), and static masks."""
    corpus, _ = real_corpus
    root = tmp_path_factory.mktemp("torch_ud")
    common = [f"--input={corpus}", "--segmenter=jieba", "--num_shards=2", "--max_seq_length=128", "--dupe_factor=1",
              "--output_format=both", *LOCAL]
    run([f"--output={root / 'dynamic'}", "--masking=dynamic", *common])
    run([f"--output={root / 'static'}", *common])
    return root


def outcome_shares(batches: list, *, mask_id: int) -> collections.Counter:
    outcome = collections.Counter()
    for batch in batches:
        masked = batch["labels"] != NOT_PREDICTED
        fed, original = batch["input_ids"][masked], batch["labels"][masked]
        outcome["mask"] += int((fed == mask_id).sum())
        outcome["kept"] += int(((fed != mask_id) & (fed == original)).sum())
        outcome["random"] += int(((fed != mask_id) & (fed != original)).sum())
    return outcome


def test_on_held_out_text_masks_are_whole_words_at_the_rate_and_80_10_10(ud_runs, cache):
    """Measured as for the TFRecords (tests/test_recipes.py): jieba re-segments the decoded text, the
    share masked is masked / real tokens, and each outcome is within 4.5 binomial deviations."""
    folder = ud_runs / "dynamic"
    dataset = wwm_torch.load_instances(str(folder))
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(str(folder), seed=0)
    rows = [dataset[i] for i in range(len(dataset))]
    batches = []
    for epoch in range(4):
        collator.set_epoch(epoch)
        batches += [collator(rows[i:i + 64]) for i in range(0, len(rows), 64)]
    records = [record for batch in batches for record in as_records(batch)]
    uniformity, words = whole_word_uniformity(records, vocabulary(folder))
    masked = sum(int((batch["labels"] != NOT_PREDICTED).sum()) for batch in batches)
    real = sum(int(batch["attention_mask"].sum()) for batch in batches)
    static_share = json.loads((ud_runs / "static" / "manifest.json").read_text())["statistics"]["masked_share"]
    outcome = outcome_shares(batches, mask_id=collator.mask_id)
    total = sum(outcome.values())
    print(f"\nwwm_torch on UD text: {len(rows)} instances x 4 epochs, {masked} masked of {real} real tokens "
          f"({masked / real:.4f}; the static run's {static_share['measured']:.4f}), jieba's inner words masked "
          f"all-or-none {uniformity:.4f} of {words}, " + ", ".join(f"{k} {v / total:.4f}" for k, v in outcome.items()))
    assert uniformity >= 0.995 and words > 1000
    assert abs(masked / real - 0.15) <= 0.01 and abs(masked / real - static_share["measured"]) < 0.005
    vocab_size = collator.vocab_size
    expected = {"mask": 0.8 + 0.1 / vocab_size, "kept": 0.1 + 0.1 / vocab_size, "random": 0.1 * (1 - 2 / vocab_size)}
    for name, share in expected.items():
        assert abs(outcome[name] / total - share) < 4.5 * (share * (1 - share) / total) ** 0.5, (name, outcome)


def masked_word_statistics(word_ids: np.ndarray, masked: np.ndarray, num_tokens: np.ndarray, *, budget_of) -> dict:
    """Per-row facts of masks, whoever drew them: tokens masked, sizes of the words masked, and
    whether every word left out was longer than what the row's budget had left."""
    sizes, left_out_fit = collections.Counter(), 0
    for words, chosen, tokens in zip(word_ids, masked, num_tokens):
        budget, taken = budget_of(int(tokens)), int(chosen.sum())
        for word in np.unique(words[words > 0]):
            members = chosen[words == word]
            assert members.all() or not members.any()
            if members.any():
                sizes[min(len(members), 6)] += 1
            elif len(members) <= budget - taken:
                left_out_fit += 1
        assert taken <= budget
    return {"masked": int(masked.sum()), "sizes": sizes, "left_out_that_fit": left_out_fit}


def test_the_same_statistics_as_the_trainers_tf_data_masking(ud_runs, cache):
    """Two implementations of one rule on the same rows: the TensorFlow trainer's tf.data masking of
    the run's TFRecords (4 passes, 4 seeds) and the collator on its Parquet (4 epochs)."""
    tf = pytest.importorskip("tensorflow")
    from wwm_trainer.data import make_eval_dataset, read_phase

    folder = ud_runs / "dynamic"
    phase = read_phase(str(folder))
    dataset = wwm_torch.load_instances(str(folder))
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(str(folder), seed=0)
    rows = [dataset[i] for i in range(len(dataset) - len(dataset) % 16)]
    word_ids = np.array([row["word_ids"] for row in rows])
    num_tokens = np.array([row["attention_mask"].sum() for row in rows])
    budget = lambda tokens: int(masking.budgets(  # noqa: E731
        [tokens], masked_lm_prob=collator.masked_lm_prob, max_predictions=collator.max_predictions_per_seq)[0])
    ours, theirs = collections.Counter(), collections.Counter()
    sizes = {"ours": collections.Counter(), "tf": collections.Counter()}
    for epoch in range(4):
        collator.set_epoch(epoch)
        batches = [collator(rows[i:i + 16]) for i in range(0, len(rows), 16)]
        masked = np.concatenate([batch["labels"].numpy() != NOT_PREDICTED for batch in batches])
        stats = masked_word_statistics(word_ids, masked, num_tokens, budget_of=budget)
        ours.update(outcome_shares(batches, mask_id=collator.mask_id))
        ours["masked"] += stats["masked"]
        sizes["ours"].update(stats["sizes"])
        assert stats["left_out_that_fit"] == 0

        tf_batches = list(make_eval_dataset(phase, batch_size=16, seed=epoch).take(len(rows) // 16))
        masked = np.zeros(word_ids.shape, bool)
        for b, batch in enumerate(tf_batches):
            positions, weights = batch["masked_lm_positions"].numpy(), batch["masked_lm_weights"].numpy() > 0
            fed = batch["input_ids"].numpy()
            for r in range(16):
                masked[b * 16 + r, positions[r][weights[r]]] = True
                shown, original = fed[r, positions[r][weights[r]]], batch["masked_lm_ids"].numpy()[r][weights[r]]
                theirs["mask"] += int((shown == collator.mask_id).sum())
                theirs["kept"] += int(((shown != collator.mask_id) & (shown == original)).sum())
                theirs["random"] += int(((shown != collator.mask_id) & (shown != original)).sum())
        assert np.array_equal(np.concatenate([b["input_mask"].numpy().sum(1) for b in tf_batches]), num_tokens)
        stats = masked_word_statistics(word_ids, masked, num_tokens, budget_of=budget)
        theirs["masked"] += stats["masked"]
        sizes["tf"].update(stats["sizes"])
        assert stats["left_out_that_fit"] == 0
    real = 4 * int(num_tokens.sum())
    print(f"\nmasked share: wwm_torch {ours['masked'] / real:.4f}, tf.data {theirs['masked'] / real:.4f}; "
          f"masked word sizes: {dict(sorted(sizes['ours'].items()))} vs {dict(sorted(sizes['tf'].items()))}; "
          f"outcomes {dict(ours)} vs {dict(theirs)}")
    assert abs(ours["masked"] - theirs["masked"]) / theirs["masked"] < 0.01
    for name in ("mask", "kept", "random"):
        a, b = ours[name] / ours["masked"], theirs[name] / theirs["masked"]
        assert abs(a - b) < 4.5 * np.sqrt(b * (1 - b) * 2 / ours["masked"]), (name, a, b)
    words = {name: sum(counter.values()) for name, counter in sizes.items()}
    for size in range(1, 7):
        a, b = sizes["ours"][size] / words["ours"], sizes["tf"][size] / words["tf"]
        assert abs(a - b) < 4.5 * np.sqrt(max(b * (1 - b), 1e-4) * 2 / words["tf"]) + 1e-3, (size, a, b)


@pytest.fixture(scope="module")
def macbert_run(real_corpus, tmp_path_factory):  # noqa: F811
    """docs/pytorch.md's macbert-base command on UD text (held out), at length 128 with TFRecords
    beside the Parquet: jieba stands in for LTP/legacy, and the similar words are a table of
    jieba's two-character words, each with its neighbours in sorted order."""
    import shlex

    import jieba

    corpus, documents = real_corpus
    root = tmp_path_factory.mktemp("torch_macbert")
    words = sorted({w for document in documents for s in document for w in jieba.lcut(s) if len(w) == 2})
    table = root / "similar.tsv"
    table.write_text("".join(f"{w}\t{' '.join(words[max(0, i - 2):i] + words[i + 1:i + 3])}\n"
                             for i, w in enumerate(words)), encoding="utf-8")
    (command,) = [block for block in doc_blocks("") if "--recipe macbert-base" in block]
    argv = shlex.split(command.replace("\\\n", " "))[1:]
    argv = [{"domain/*.txt": str(corpus), "macbert-data/": str(root / "macbert"), "similar.txt": str(table)}.get(a, a)
            for a in argv]
    assert argv[0] == "run" and str(table) in argv and "--masking" in argv
    run(argv[1:] + ["--segmenter=jieba", "--max_seq_length=128", "--num_shards=2", "--output_format=both",
                    "--progress=off", *LOCAL])
    return root / "macbert"


def macbert_tally(fed: np.ndarray, masked: np.ndarray, originals: np.ndarray, word_ids: np.ndarray, *, similar,
                  mask_id: int, counts: dict) -> None:
    """Adds what a reader of masked rows sees: spans (runs of adjacent masked words, in words),
    each masked word's fate (kept, a similar word of the table, random tokens), [MASK]s fed."""
    from tests.test_trainer_masking import spans_in

    for row in range(len(fed)):
        counts["spans"].update(spans_in(masked[row], word_ids[row]))
        words = word_ids[row]
        for word in np.unique(words[masked[row] & (words > 0)]):
            at = words == word
            tokens, given = tuple(originals[row, at].tolist()), tuple(fed[row, at].tolist())
            candidates = similar.candidates_of(tokens)
            counts["words"]["kept" if given == tokens else "similar" if given in candidates else "random"] += 1
            counts["with_candidates"] += bool(candidates)
    counts["masked"] += int(masked.sum())
    counts["mask_fed"] += int((fed == mask_id).sum())


def test_ngram_spans_and_macbert_words_as_the_trainers_tf_data_masking(macbert_run, cache):
    """macbert-base's masking on held-out text, two implementations of one rule on the same rows:
    the collator (4 epochs) and the TF trainer's tf.data masking (4 seeds) give the same shares of
    span lengths and of similar / random / kept words, and neither feeds [MASK]; jieba's words of
    the decoded text are masked whole, at the rate."""
    pytest.importorskip("tensorflow")
    from wwm_trainer.data import make_eval_dataset, read_phase

    phase = read_phase(str(macbert_run))
    dataset = wwm_torch.load_instances(str(macbert_run))
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(str(macbert_run), seed=0)
    assert (collator.ngram_weights, collator.replacement, collator.sentence_task) == ((0.4, 0.3, 0.2, 0.1),
                                                                                     "macbert", "sop")
    assert len(collator.similar) > 1000
    rows = [dataset[i] for i in range(len(dataset) - len(dataset) % 16)]
    originals = np.array([row["input_ids"] for row in rows])
    word_ids = np.array([row["word_ids"] for row in rows])
    real = int(sum(row["attention_mask"].sum() for row in rows))
    new_counts = lambda: {"spans": collections.Counter(), "words": collections.Counter(),  # noqa: E731
                          "with_candidates": 0, "masked": 0, "mask_fed": 0}
    ours, theirs, records = new_counts(), new_counts(), []
    for epoch in range(4):
        collator.set_epoch(epoch)
        batches = [collator(rows[i:i + 16]) for i in range(0, len(rows), 16)]
        records += [record for batch in batches for record in as_records(batch)]
        fed = np.concatenate([batch["input_ids"].numpy() for batch in batches])
        labels = np.concatenate([batch["labels"].numpy() for batch in batches])
        masked = labels != NOT_PREDICTED
        assert np.array_equal(labels[masked], originals[masked])
        macbert_tally(fed, masked, originals, word_ids, similar=collator.similar, mask_id=collator.mask_id,
                      counts=ours)

        fed, masked = np.zeros_like(originals), np.zeros(originals.shape, bool)
        original = np.zeros_like(originals)
        for b, batch in enumerate(make_eval_dataset(phase, batch_size=16, seed=epoch).take(len(rows) // 16)):
            batch = {name: value.numpy() for name, value in batch.items()}
            fed[b * 16:b * 16 + 16] = original[b * 16:b * 16 + 16] = batch["input_ids"]
            for r in range(16):
                stored = batch["masked_lm_weights"][r] > 0
                positions = batch["masked_lm_positions"][r][stored]
                masked[b * 16 + r, positions] = True
                original[b * 16 + r, positions] = batch["masked_lm_ids"][r][stored]
        assert np.array_equal(original, originals), "tf.data reads the same rows in the same order"
        macbert_tally(fed, masked, originals, word_ids, similar=collator.similar, mask_id=collator.mask_id,
                      counts=theirs)
    uniformity, words = whole_word_uniformity(records, vocabulary(macbert_run))
    summary = {name: {k: (dict(sorted(v.items())) if isinstance(v, collections.Counter) else v)
                      for k, v in counts.items()} for name, counts in (("wwm_torch", ours), ("tf.data", theirs))}
    print(f"\nmacbert-base masking of UD text, {len(rows)} rows x 4: {summary}; masked share "
          f"{ours['masked'] / (4 * real):.4f} vs {theirs['masked'] / (4 * real):.4f}; jieba's inner words whole "
          f"{uniformity:.4f} of {words}")
    assert ours["mask_fed"] == theirs["mask_fed"] == 0, "MacBERT feeds no [MASK]"
    assert uniformity >= 0.995 and words > 1000
    assert abs(ours["masked"] / (4 * real) - 0.15) <= 0.01
    assert abs(ours["masked"] - theirs["masked"]) / theirs["masked"] < 0.01

    def same_shares(a: collections.Counter, b: collections.Counter, keys) -> None:
        total_a, total_b = sum(a.values()), sum(b.values())
        for key in keys:
            p, q = a[key] / total_a, b[key] / total_b
            assert abs(p - q) < 4.5 * np.sqrt(max(q * (1 - q), 1e-4) * (1 / total_a + 1 / total_b)) + 1e-3, (key, p, q)

    same_shares(ours["spans"], theirs["spans"], range(1, 7))
    same_shares(ours["words"], theirs["words"], ("similar", "random", "kept"))
    spans = ours["spans"]
    assert sum(k * n for k, n in spans.items()) / sum(spans.values()) > 1.4, "multi-word spans, as the weights say"
    fates = ours["words"]
    assert abs(fates["kept"] / sum(fates.values()) - 0.1) < 0.01
    assert abs(fates["similar"] / ours["with_candidates"] - 0.8) < 0.02, "80% of the words that have a similar word"

    (example,) = [block for block in doc_blocks("python") if "macbert-data/manifest.json" in block]
    namespace = {}
    exec(replaced(example, {"macbert-data/manifest.json": str(macbert_run / "manifest.json")}), namespace)
    assert namespace["batch"]["next_sentence_label"].shape == (64,)
    assert not (namespace["batch"]["input_ids"] == namespace["collator"].mask_id).any()


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    """`wwm tokenizer train` (byte-level BPE, 3,000 tokens) on the prepared UD sentences, then `wwm
    run --tokenizer` with dynamic masks at 30% (chinese-modernbert's first phase), no sentence task."""
    from tests.conftest import ud_corpus_file
    from wwm_cli import main
    from wwm_cli.data import prepare

    root = tmp_path_factory.mktemp("torch_bpe")
    corpus, _ = ud_corpus_file(root / "ud.txt", per_document=8)
    prepare([f"--source=name=ud,format=text,input={corpus}", f"--output={root / 'prepared'}", "--progress=off", *LOCAL])
    assert main(["tokenizer", "train", f"--input={root / 'prepared'}", f"--output={root / 'bpe'}",
                 "--vocab_size=3000"]) == 0
    run([f"--input={root / 'prepared' / 'documents' / '*.parquet'}", "--input_format=parquet",
         f"--output={root / 'run'}", f"--tokenizer={root / 'bpe'}", "--segmenter=jieba", "--sentence_task=none",
         "--masking=dynamic", "--masked_lm_prob=0.3", "--max_seq_length=128", "--dupe_factor=1",
         "--output_format=parquet", "--progress=off", *LOCAL])
    return root / "run"


def test_a_bpe_tokenizers_data_collates_with_its_own_special_ids_at_each_phases_rate(bpe_run, cache):
    from tokenizers import Tokenizer

    manifest = json.loads((bpe_run / "manifest.json").read_text())
    library = Tokenizer.from_file(str(bpe_run / "tokenizer.json"))
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(str(bpe_run), seed=0)
    assert collator.mask_id == manifest["special_tokens"]["mask"]["id"] == library.token_to_id("<mask>") != 103
    assert collator.vocab_size == manifest["vocab_size"] == library.get_vocab_size() == 3000
    dataset = wwm_torch.load_instances(str(bpe_run))
    rows = [dataset[i] for i in range(len(dataset))]
    assert "next_sentence_label" not in collator(rows[:2])
    # A masking-rate schedule: the data's 30% for the first phase, 15% for the next.
    second = wwm_torch.WholeWordMaskCollator.from_manifest(str(bpe_run), masked_lm_prob=0.15)
    for rate, phase_collator in ((0.3, collator), (0.15, second)):
        batch = phase_collator(rows)
        fed, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
        predicted = labels != NOT_PREDICTED
        originals = np.array([row["input_ids"] for row in rows])
        assert np.array_equal(labels[predicted], originals[predicted])
        assert np.array_equal(fed[~predicted], originals[~predicted])
        assert (fed[:, 0] == manifest["special_tokens"]["cls"]["id"]).all()
        for row, words in enumerate(np.array([row["word_ids"] for row in rows])):
            for word in np.unique(words[words > 0]):
                assert predicted[row, words == word].all() or not predicted[row, words == word].any()
        share = predicted.sum() / batch["attention_mask"].numpy().sum()
        mask_share = (fed[predicted] == collator.mask_id).mean()
        print(f"\nBPE data at {rate}: masked share {share:.4f}, <mask> fed {mask_share:.3f}")
        assert abs(share - rate) <= 0.01 and abs(mask_share - 0.8) < 0.03
        assert fed.max() < 3000
    with pytest.raises(UsageError, match="max_predictions_per_seq >= 58"):
        wwm_torch.WholeWordMaskCollator.from_manifest(str(bpe_run), masked_lm_prob=0.45)


def test_a_vocabulary_above_65535_ids(tmp_path, cache):
    from tests.test_any_tokenizer import SENTENCES, high_id_tokenizer, save
    from tests.test_pipeline import run_wwm

    path = save(high_id_tokenizer(SENTENCES), tmp_path / "tokenizer.json")
    run_wwm(tmp_path, f"--tokenizer={path}", "--masking=dynamic", "--output_format=parquet", "--sentence_task=none",
            "--dupe_factor=20")
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(str(tmp_path / "out"), seed=0)
    assert collator.mask_id == 70_004 and collator.vocab_size > 70_000
    dataset = wwm_torch.load_instances(str(tmp_path / "out"))
    batch = collator([dataset[i] for i in range(len(dataset))])
    fed, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
    predicted = labels != NOT_PREDICTED
    real = batch["attention_mask"].numpy() > 0
    assert labels[predicted].min() >= 70_000 and fed[real & ~predicted].min() >= 70_000
    assert (fed[predicted] == 70_004).mean() > 0.6 and fed.max() < collator.vocab_size


# ---------------------------------------------------------------- training

TINY_BERT = dict(vocab_size=21128, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                 max_position_embeddings=512, type_vocab_size=2)


def sample_vocabulary(path: pathlib.Path) -> pathlib.Path:
    """A BERT vocab.txt of the sample's own characters (and ##pieces of ASCII ones): a tiny model's
    output layer over 21,128 ids would cost most of each CPU step."""
    characters = sorted(set(SAMPLE.read_text(encoding="utf-8").lower()) - set(" \n"))
    pieces = [f"##{c}" for c in characters if c.isascii()]
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + characters + pieces) + "\n",
                    encoding="utf-8")
    return path


@pytest.fixture()
def one_thread():
    """One intra-op thread: a tiny model gains nothing from more, and on a busy 2-core machine two
    threads made each step 8 times slower (measured: 56 ms a step with one, 444 ms with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_hugging_face_trainer_continues_pretraining_with_the_dataset_and_collator(tmp_path, cache, one_thread):
    vocab = sample_vocabulary(tmp_path / "vocab.txt")
    run([f"--input={sample_files(tmp_path / 'corpus')}", f"--output={tmp_path / 'data'}", f"--vocab_file={vocab}",
         "--segmenter=jieba", "--max_seq_length=64", "--max_predictions_per_seq=10", "--dupe_factor=5",
         "--masking=dynamic", "--output_format=parquet", *LOCAL])
    manifest = str(tmp_path / "data" / "manifest.json")
    dataset = wwm_torch.load_instances(manifest)
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(manifest, seed=0)
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(transformers.BertConfig(**{**TINY_BERT,
                                                                         "vocab_size": collator.vocab_size}))
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "model"), remove_unused_columns=False, per_device_train_batch_size=16,
        learning_rate=2e-3, warmup_steps=20, max_steps=300, logging_steps=10, save_strategy="no", report_to=[],
        use_cpu=True, seed=0, disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                                   callbacks=[wwm_torch.EpochCallback(collator)])
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    epochs = -(-300 // -(-len(dataset) // 16))
    print(f"\nTrainer, BertForPreTraining (tiny), {len(dataset)} instances, 300 steps: loss {losses[0]:.3f} -> "
          f"{losses[-1]:.3f}, {epochs} epochs, {trainer.state.log_history[-1]['train_runtime']:.1f} s")
    assert len(losses) == 30 and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert collator.epoch == epochs - 1, "each epoch had its own masks"


def mlm_and_nsp_losses(model, batches) -> tuple:
    """Summed cross-entropy over every predicted token (and every sentence label), then means."""
    mlm = nsp = tokens = sentences = 0.0
    with torch.no_grad():
        for batch in batches:
            output = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           token_type_ids=batch["token_type_ids"])
            labels = batch["labels"]
            mlm += float(torch.nn.functional.cross_entropy(output.prediction_logits.flatten(0, 1), labels.flatten(),
                                                           ignore_index=NOT_PREDICTED, reduction="sum"))
            tokens += int((labels != NOT_PREDICTED).sum())
            nsp += float(torch.nn.functional.cross_entropy(output.seq_relationship_logits, batch["next_sentence_label"],
                                                           reduction="sum"))
            sentences += len(labels)
    return mlm / tokens, nsp / sentences


def test_the_export_is_the_model(sample_runs, tmp_path, cache, one_thread):
    """`wwm train` on the static run, evaluated on it; its export_hf loaded by transformers'
    BertForPreTraining gives the masked-LM (and NSP) loss the trainer reported on the same
    instances; a transposed weight would not."""
    pytest.importorskip("tensorflow")
    from wwm_trainer.cli import train_main

    folder = sample_runs / "static"
    model_dir = tmp_path / "model"
    summary = train_main([f"--manifest={folder / 'manifest.json'}", f"--model_dir={model_dir}", "--model_config=tiny",
                          "--recipe=none", "--optimizer=adamw", "--learning_rate=3e-3", "--train_batch_size=8",
                          "--num_train_steps=40", "--steps_per_loop=20", "--save_checkpoints_steps=40",
                          f"--eval_manifest={folder / 'manifest.json'}", "--eval_batch_size=8"])
    reported = json.loads((model_dir / "eval_results.json").read_text())["final"]
    assert summary is not None and reported["step"] == 40

    model = transformers.BertForPreTraining.from_pretrained(str(model_dir / "export_hf")).eval()
    dataset = wwm_torch.load_instances(str(folder))
    collator = wwm_torch.WholeWordMaskCollator.from_manifest(str(folder))
    rows = [dataset[i] for i in range(reported["examples"])]  # the whole batches the trainer evaluated, in file order
    batches = [collator(rows[i:i + 8]) for i in range(0, len(rows), 8)]
    mlm, nsp = mlm_and_nsp_losses(model, batches)
    print(f"\ntrainer: mlm_loss {reported['mlm_loss']:.4f} nsp_loss {reported['nsp_loss']:.4f}; "
          f"transformers on export_hf: mlm {mlm:.4f} nsp {nsp:.4f} ({reported['examples']} instances)")
    assert reported["mlm_loss"] < 9.5, "the model learned something, so a wrong weight shows"
    assert mlm == pytest.approx(reported["mlm_loss"], rel=0.02)
    assert nsp == pytest.approx(reported["nsp_loss"], rel=0.02)
    weight = model.cls.predictions.transform.dense.weight
    with torch.no_grad():
        weight.copy_(weight.T.clone())
    transposed = mlm_and_nsp_losses(model, batches)[0]
    print(f"with cls.predictions.transform.dense.weight transposed: mlm {transposed:.4f}")
    assert abs(transposed - mlm) > 0.05 * mlm, "a transposed weight changes the loss"


# ---------------------------------------------------------------- the recipe of docs/pytorch.md

PYTORCH_DOC = REPO / "docs" / "pytorch.md"


def doc_blocks(language: str) -> list:
    """The fenced blocks of docs/pytorch.md in ``language`` ("" for unmarked ones)."""
    blocks, current, fence = [], None, None
    for line in PYTORCH_DOC.read_text(encoding="utf-8").splitlines(keepends=True):
        if current is None and line.startswith("```"):
            current, fence = [], line[3:].strip()
        elif current is not None and line.startswith("```"):
            if fence == language:
                blocks.append("".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def replaced(text: str, replacements: dict) -> str:
    for old, new in replacements.items():
        assert old in text, f"docs/pytorch.md no longer has {old!r}: update this test with it"
        text = text.replace(old, new)
    return text


def test_the_recipe_runs_offline_against_a_hub_cache(tmp_path, offline_hub, bundled_vocab, one_thread):
    """docs/pytorch.md's data command and Python, as written, with HF_HUB_OFFLINE=1 and a cache
    folder holding hfl/chinese-roberta-wwm-ext as the hub client lays it out: its config.json,
    pytorch_model.bin (a tiny BERT made here) and vocab.txt (Google's, which it is). Only the size
    of the run is changed: length 64 and jieba for the data, 3 steps of 2 for the Trainer."""
    import shlex

    from tests.test_hub import cache_repo
    from wwm_cli import main

    torch.manual_seed(0)
    tiny = transformers.BertForPreTraining(transformers.BertConfig(**TINY_BERT))
    weights = tmp_path / "pytorch_model.bin"
    torch.save(tiny.state_dict(), weights)
    config = {**TINY_BERT, "architectures": ["BertForMaskedLM"], "model_type": "bert"}
    cache_repo(offline_hub, "hfl/chinese-roberta-wwm-ext", {
        "config.json": json.dumps(config).encode(), "pytorch_model.bin": weights.read_bytes(),
        "vocab.txt": bundled_vocab.to_bytes()})

    (command,) = [block for block in doc_blocks("") if block.startswith("wwm run --input 'corpus/*.txt'")]
    argv = shlex.split(command.replace("\\\n", " "))[1:]
    argv = [{"corpus/*.txt": sample_files(tmp_path / "corpus"), "data/": str(tmp_path / "data")}.get(a, a)
            for a in argv]
    assert main(argv + ["--segmenter=jieba", "--max_seq_length=64", *LOCAL]) == 0
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["recipe"] == "roberta-wwm-ext" and manifest["masking"] == "dynamic"

    (setup,) = [block for block in doc_blocks("python") if "from_pretrained(\"hfl/chinese-roberta-wwm-ext\")" in block]
    (training,) = [block for block in doc_blocks("python") if "Trainer(model=model" in block]
    check = ("state = model.state_dict()\n"
             "saved = torch.load('pytorch_model.bin', weights_only=True)\n"
             "assert all(torch.equal(state[name], saved[name]) for name in state if name in saved)\n"
             "assert {n for n in state if not n.endswith('position_ids')} <= set(saved)\n"
             "print('epoch', collator.epoch)\n")
    training = replaced(training, {"num_train_epochs=5,": "max_steps=3,", "per_device_train_batch_size=32,":
                                   "per_device_train_batch_size=2,", "gradient_accumulation_steps=4,":
                                   "gradient_accumulation_steps=1,"})
    script = tmp_path / "recipe.py"
    script.write_text("torch_threads = __import__('torch').set_num_threads(1)\n" + setup + check + training
                      + "print('epoch', collator.epoch)\n", encoding="utf-8")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(offline_hub),
                   "WWM_CACHE": str(tmp_path / "wwm-cache")}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=environment, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "models" / "roberta-wwm-ext-domain" / "model.safetensors").exists()
    assert result.stdout.split().count("epoch") == 2
