"""wwm_trainer end to end on CPU: real TensorFlow, real pipeline output, the tiny model config."""
import argparse
import base64
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from wwm_cli import main as wwm
from wwm_cli.data import run
from tests.conftest import crc32c_bitwise
from tests.test_gcs import gcs_bucket  # noqa: F401 (a fixture: a bucket on a GCS emulator)
from tests.test_pipeline import LOCAL

tf = pytest.importorskip("tensorflow")

from wwm_core.records import schema
from wwm_trainer.checkpoint_io import google_variables, load_google_checkpoint
from wwm_trainer.cli import (
    add_then_train_flags,
    check_then_train,
    then_train,
    train_main,
)
from wwm_trainer.config import PRESETS, BertConfig
from wwm_trainer.data import feature_spec, read_phase
from wwm_trainer.errors import TrainerUsageError
from wwm_trainer.model import BertPretrainer
from wwm_trainer.optimization import WarmupLinearDecay, create_optimizer
from wwm_trainer.steps import build_train_loop

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = REPO / "wwm_core" / "data" / "sample" / "corpus.txt"
TINY = PRESETS["tiny"]
# A high learning rate and a small batch: the loss must fall clearly within a few dozen CPU steps.
FAST = ["--model_config=tiny", "--train_batch_size=8", "--learning_rate=0.1", "--num_warmup_steps=3", "--optimizer=lamb"]


def make_data(folder: pathlib.Path, *extra) -> dict:
    return run([f"--input={SAMPLE}", f"--output={folder}", "--segmenter=char", "--dupe_factor=3", "--num_shards=2",
                "--max_seq_length=64", "--max_predictions_per_seq=10", *extra, *LOCAL])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Pipeline output of both recipes: bert-wwm (NSP labels) and roberta-wwm-ext (none)."""
    root = tmp_path_factory.mktemp("data")
    make_data(root / "bert")
    make_data(root / "roberta", "--recipe=roberta-wwm-ext")
    return root


@pytest.fixture(scope="module")
def nsp_run(data, tmp_path_factory):
    """(summary, model_dir, the trainer's log lines) of 30 steps of a tiny model."""
    model_dir = tmp_path_factory.mktemp("nsp_model")
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("wwm.train")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        summary = train_main([f"--manifest={data / 'bert' / 'manifest.json'}", f"--model_dir={model_dir}", *FAST,
                              "--num_train_steps=30", "--steps_per_loop=10", "--save_checkpoints_steps=10"])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return summary, model_dir, lines


def google_layout(*, vocab_size, hidden_size, num_hidden_layers, intermediate_size, **_) -> dict:
    """Google's BERT checkpoint variables and shapes, written out by hand (not from the trainer)."""
    shapes = {
        "bert/embeddings/word_embeddings": [vocab_size, hidden_size],
        "bert/embeddings/token_type_embeddings": [2, hidden_size],
        "bert/embeddings/position_embeddings": [512, hidden_size],
        "bert/embeddings/LayerNorm/gamma": [hidden_size], "bert/embeddings/LayerNorm/beta": [hidden_size],
        "bert/pooler/dense/kernel": [hidden_size, hidden_size], "bert/pooler/dense/bias": [hidden_size],
        "cls/predictions/transform/dense/kernel": [hidden_size, hidden_size],
        "cls/predictions/transform/dense/bias": [hidden_size],
        "cls/predictions/transform/LayerNorm/gamma": [hidden_size],
        "cls/predictions/transform/LayerNorm/beta": [hidden_size],
        "cls/predictions/output_bias": [vocab_size],
        "cls/seq_relationship/output_weights": [2, hidden_size],
        "cls/seq_relationship/output_bias": [2],
    }
    for n in range(num_hidden_layers):
        layer = f"bert/encoder/layer_{n}"
        for dense, (inputs, outputs) in {
            "attention/self/query": (hidden_size, hidden_size), "attention/self/key": (hidden_size, hidden_size),
            "attention/self/value": (hidden_size, hidden_size), "attention/output/dense": (hidden_size, hidden_size),
            "intermediate/dense": (hidden_size, intermediate_size), "output/dense": (intermediate_size, hidden_size),
        }.items():
            shapes[f"{layer}/{dense}/kernel"] = [inputs, outputs]
            shapes[f"{layer}/{dense}/bias"] = [outputs]
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            shapes[f"{layer}/{norm}/gamma"] = [hidden_size]
            shapes[f"{layer}/{norm}/beta"] = [hidden_size]
    return shapes


def save_name_based_checkpoint(prefix: pathlib.Path, tensors: dict) -> None:
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])


def checkpoint_values(prefix) -> dict:
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def mean(values) -> float:
    return sum(values) / len(values)


# ---- data ----

def test_feature_spec_is_the_writers_schema(data):
    phase = read_phase(str(data / "bert" / "manifest.json"))
    spec = feature_spec(phase)
    assert list(spec) == [f.name for f in schema("static")]
    assert spec["input_ids"].shape == [64] and spec["masked_lm_weights"].shape == [10]
    assert spec["masked_lm_weights"].dtype == tf.float32 and spec["next_sentence_labels"].shape == [1]
    assert read_phase(str(data / "bert")).files == phase.files  # the folder is accepted too


def test_missing_manifest_is_refused(data, tmp_path, capsys):
    with pytest.raises(TrainerUsageError, match="no manifest at .*has not\\s+finished"):
        train_main([f"--manifest={tmp_path / 'unfinished' / 'manifest.json'}", f"--model_dir={tmp_path / 'm'}"])
    # As a command: one line on stderr, exit status 2, no traceback.
    assert wwm(["train", f"--manifest={tmp_path / 'manifest.json'}", f"--model_dir={tmp_path / 'm'}"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("wwm train: error: no manifest at") and "\n" not in error


def test_manifest_given_by_a_bare_file_name(data, monkeypatch):
    monkeypatch.chdir(data / "bert")
    manifest = read_phase("manifest.json")
    assert manifest.files and all(pathlib.Path(f).exists() for f in manifest.files)


@pytest.mark.parametrize("damage, message", [
    ("delete_shard", "incomplete: 1 of the files it lists are missing .*part-00001-of-00002.tfrecord"),
    ("delete_vocab", "incomplete: 1 of the files it lists are missing .*vocab.txt"),
    ("drop_keys", "incomplete: it lacks max_seq_length"),
    ("prepare_output", "kind 'documents'.*`wwm prepare`: run `wwm run --input_format parquet` on it first"),
    ("other_vocab", "not the vocabulary the run used"),
])
def test_incomplete_manifest_is_refused(data, tmp_path, damage, message):
    folder = tmp_path / "out"
    shutil.copytree(data / "bert", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    if damage == "delete_shard":
        (folder / manifest["files"][1]).unlink()
    elif damage == "delete_vocab":
        (folder / "vocab.txt").unlink()
    elif damage == "other_vocab":
        (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    else:
        if damage == "drop_keys":
            del manifest["files"], manifest["max_seq_length"]
        else:
            manifest["kind"] = "documents"
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TrainerUsageError, match=message):
        train_main([f"--manifest={folder / 'manifest.json'}", f"--model_dir={tmp_path / 'm'}", "--model_config=tiny"])


# ---- shard integrity ----

def test_manifest_records_each_shards_size_and_crc32c_as_gcs_reports_it(data):
    """What the trainer verifies against: the manifest's file_info of every shard, checked here
    with a bitwise CRC-32C, GCS's encoding (base64 of the big-endian value) and TensorFlow's count."""
    assert crc32c_bitwise(b"123456789") == 0xE3069283  # RFC 3720's check value
    manifest = json.loads((data / "bert" / "manifest.json").read_text())
    assert sorted(manifest["file_info"]) == sorted(manifest["files"])
    for name in manifest["files"]:
        content = (data / "bert" / name).read_bytes()
        info = manifest["file_info"][name]
        assert info["bytes"] == len(content)
        assert base64.b64decode(info["crc32c"]) == crc32c_bitwise(content).to_bytes(4, "big")
        assert info["records"] == sum(1 for _ in tf.data.TFRecordDataset(str(data / "bert" / name)))


def damaged_copy(source: pathlib.Path, folder: pathlib.Path, *, truncate: str = None, flip: str = None):
    """A copy of a run whose shard ``truncate`` lost its last 100 bytes and whose shard ``flip``
    has one byte inverted in its middle (sizes unchanged)."""
    shutil.copytree(source, folder)
    if truncate:
        content = (folder / truncate).read_bytes()
        (folder / truncate).write_bytes(content[:-100])
    if flip:
        content = bytearray((folder / flip).read_bytes())
        content[len(content) // 2] ^= 0xFF
        (folder / flip).write_bytes(bytes(content))
    return folder


def test_truncated_and_corrupted_shards_are_named_before_training(data, tmp_path, capsys):
    first, second = "part-00000-of-00002.tfrecord", "part-00001-of-00002.tfrecord"
    folder = damaged_copy(data / "bert", tmp_path / "damaged", truncate=first, flip=second)
    model_dir = tmp_path / "model"
    flags = [f"--manifest={folder}", f"--model_dir={model_dir}", *FAST, "--num_train_steps=2"]
    assert wwm(["train", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("wwm train: error: 2 of the 2 shards of")
    size = (data / "bert" / first).stat().st_size
    assert f"{first} has {size - 100:,} bytes, the manifest says {size:,} (truncated)" in error
    assert re.search(f"{second} has crc32c \\S+, the manifest says \\S+ \\(corrupted\\)", error)
    assert not model_dir.exists()  # refused before anything was written

    # Sizes only: the truncated shard is found, the same-size corruption is not.
    with pytest.raises(TrainerUsageError, match=f"^1 of the 2 shards .*{first} has") as found:
        train_main([*flags, "--verify_shards=size"])
    assert second not in str(found.value)

    # What the check prevents: unchecked, TensorFlow stops at the corrupted record mid-training.
    corrupted = damaged_copy(data / "bert", tmp_path / "corrupted", flip=second)
    with pytest.raises(tf.errors.DataLossError):
        train_main([f"--manifest={corrupted}", f"--model_dir={tmp_path / 'unchecked'}", *FAST,
                    "--num_train_steps=2", "--verify_shards=none"])


# ---- configuration and device ----

def test_tpu_without_a_tpu_fails_clearly_and_quickly(data, tmp_path):
    started = time.perf_counter()
    with pytest.raises(TrainerUsageError, match="--tpu local: no TPU available .*Cloud TPU VM") as error:
        train_main([f"--manifest={data / 'bert'}", f"--model_dir={tmp_path}", "--tpu=local", "--model_config=tiny"])
    assert "\n" not in str(error.value)
    assert time.perf_counter() - started < 30


def test_bert_config_must_fit_the_data(data, tmp_path):
    config = tmp_path / "bert_config.json"
    config.write_text(json.dumps({**TINY, "vocab_size": 30522, "hidden_act": "gelu"}))  # English BERT's
    with pytest.raises(TrainerUsageError, match="vocab_size 30522 but the data's vocabulary has 21128 tokens"):
        train_main([f"--manifest={data / 'bert'}", f"--model_dir={tmp_path / 'm'}", f"--model_config={config}"])
    vocab_size = read_phase(str(data / "bert")).vocab_size
    config.write_text(json.dumps({**TINY, "vocab_size": vocab_size, "max_position_embeddings": 32}))
    with pytest.raises(TrainerUsageError, match="max_seq_length 64 exceeds the model's max_position_embeddings 32"):
        train_main([f"--manifest={data / 'bert'}", f"--model_dir={tmp_path / 'm'}", f"--model_config={config}"])


def test_then_train_flags_are_checked_before_the_pipeline(data, tmp_path):
    parser = argparse.ArgumentParser()
    add_then_train_flags(parser)
    assert check_then_train(parser.parse_args([]), output_format="tfrecord") is None  # no --then_train: nothing to train
    assert then_train(None, str(data / "bert")) is None
    with pytest.raises(TrainerUsageError, match="--model_dir is required"):
        check_then_train(parser.parse_args(["--then_train"]), output_format="tfrecord")
    with pytest.raises(TrainerUsageError, match="--train_batch_size 10 is not a multiple of "
                       "--gradient_accumulation_steps 4"):
        check_then_train(parser.parse_args(["--then_train", f"--model_dir={tmp_path}", "--train_batch_size=10",
                                            "--gradient_accumulation_steps=4"]), output_format="tfrecord")
    # The checked settings, with the data's manifest still to come (the run's output).
    settings = check_then_train(parser.parse_args(["--then_train", f"--model_dir={tmp_path}", "--seed=9",
                                                   "--num_train_steps=30,20"]), output_format="tfrecord")
    assert (settings.manifest, settings.model_dir, settings.seed, settings.num_train_steps) == (
        None, str(tmp_path), 9, (30, 20))


def test_then_train_refuses_parquet_only_output_before_the_pipeline(tmp_path, capsys):
    """--output_format parquet writes no TFRecords: `wwm run --then_train` says so before reading
    anything, and `wwm train` on such a run names the reason."""
    output = tmp_path / "parquet_only"
    assert wwm(["run", f"--input={SAMPLE}", f"--output={output}", "--segmenter=char", "--max_seq_length=64",
                "--output_format=parquet", "--then_train", f"--model_dir={tmp_path / 'm'}", *LOCAL]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("wwm run: error: --then_train trains on the TFRecord shards") and "\n" not in error
    assert not output.exists()
    made = run([f"--input={SAMPLE}", f"--output={output}", "--segmenter=char", "--max_seq_length=64",
                "--dupe_factor=1", "--output_format=parquet", *LOCAL])
    assert made["parquet_files"] and not made["files"]
    with pytest.raises(TrainerUsageError, match="Parquet shards only .*--output_format tfrecord or both"):
        train_main([f"--manifest={output}", f"--model_dir={tmp_path / 'm'}", "--model_config=tiny"])


def test_weight_decay_leaves_out_layer_norm_and_biases():
    model = BertPretrainer(BertConfig(vocab_size=50, **TINY), seed=1)
    model.build_all()
    optimizer = create_optimizer("lamb", WarmupLinearDecay(1e-3, 10, 2))
    optimizer.build(model.trainable_variables)
    for name, variable in google_variables(model).items():
        expected = not ("LayerNorm" in name or name.endswith("bias"))  # Google's rule
        assert optimizer._use_weight_decay(variable) == expected, name


def test_adamw_is_googles_adam_weight_decay():
    """No bias correction (unlike keras.optimizers.AdamW); decay only where Google applies it."""
    import keras

    lr, wd, b1, b2, eps = 0.1, 0.01, 0.9, 0.999, 1e-6
    kernel = keras.Variable(np.array([[1.0, -2.0]], np.float32), name="kernel")
    bias = keras.Variable(np.array([1.0, -2.0], np.float32), name="bias")
    optimizer = create_optimizer("adamw", lr)
    expected = {"kernel": kernel.numpy().copy(), "bias": bias.numpy().copy()}
    m = {k: 0.0 for k in expected}
    v = {k: 0.0 for k in expected}
    for gradient in (0.5, -0.25):
        optimizer.apply_gradients([(tf.fill(kernel.shape, gradient), kernel), (tf.fill(bias.shape, gradient), bias)])
        for name, value in expected.items():
            m[name] = b1 * m[name] + (1 - b1) * gradient
            v[name] = b2 * v[name] + (1 - b2) * gradient ** 2
            update = m[name] / (np.sqrt(v[name]) + eps) + (wd * value if name == "kernel" else 0.0)
            expected[name] = value - lr * update
    np.testing.assert_allclose(kernel.numpy(), expected["kernel"], rtol=1e-5)
    np.testing.assert_allclose(bias.numpy(), expected["bias"], rtol=1e-5)


def test_dropout_masks_differ_between_replicas(tmp_path):
    """Two replicas (logical CPUs, MirroredStrategy) must not drop the same positions. A process
    of its own: logical devices can only be set before TensorFlow starts."""
    script = tmp_path / "replicas.py"
    script.write_text("""
import tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from wwm_trainer.model import ReplicaDropout
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    dropout = ReplicaDropout(0.5, seed=7)
@tf.function
def masks():
    return strategy.run(lambda: dropout(tf.ones([64]), training=True))
first, second = masks(), masks()
a, b = strategy.experimental_local_results(first)
assert not bool(tf.reduce_all(a == b)), "replicas dropped the same positions"
assert not bool(tf.reduce_all(a == strategy.experimental_local_results(second)[0])), "masks repeat across steps"
print("ok")
""")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_learning_rate_warms_up_then_decays_linearly():
    schedule = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100, 120)]
    assert values == pytest.approx([0.0, 5e-4, 9e-4, 4.5e-4, 0.0, 0.0])


# ---- training ----

def test_tiny_model_learns_on_bert_wwm_data(nsp_run):
    summary, model_dir, _ = nsp_run
    phase = summary["phases"][0]
    first = [r["mlm_loss"] for r in phase["first_steps"][:5]]
    last = [r["mlm_loss"] for r in phase["last_steps"][-5:]]
    print(f"\nMLM loss, steps 1-5: {', '.join(f'{x:.3f}' for x in first)} (mean {mean(first):.3f}); "
          f"steps 26-30: {', '.join(f'{x:.3f}' for x in last)} (mean {mean(last):.3f}); "
          f"MLM accuracy, steps 26-30: {mean([r['mlm_accuracy'] for r in phase['last_steps'][-5:]]):.3f}, "
          f"NSP accuracy {mean([r['nsp_accuracy'] for r in phase['last_steps'][-5:]]):.3f}; "
          f"{phase['steps_per_second']:.2f} steps/s (first loop's tracing included), "
          f"{phase['steady_steps_per_second']:.2f} steps/s after it, batch 8, on {summary['strategy']}")
    assert mean(last) < 0.8 * mean(first)
    assert phase["start_step"] == 0 and phase["final_step"] == 30
    assert [r["step"] for r in phase["last_steps"]] == list(range(21, 31))
    assert all(0 <= r["nsp_accuracy"] <= 1 for r in phase["last_steps"])
    assert [pathlib.Path(p).name for p in phase["checkpoints"]] == ["ckpt-10", "ckpt-20", "ckpt-30"]

    events = list((model_dir / "train").glob("events.out.tfevents.*"))
    tags = {value.tag: value for path in events for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value}
    assert {"mlm_loss", "mlm_accuracy", "nsp_accuracy", "learning_rate"} <= set(tags)
    assert tags["mlm_loss"].metadata.plugin_data.plugin_name == "scalars"  # what TensorBoard shows


def test_the_log_gives_steps_per_second_and_an_eta(nsp_run):
    """Each loop's line: its rate, and the time the phase's remaining steps take at that rate."""
    _, _, lines = nsp_run
    loops = [re.search(r"phase 1 step (\d+)/30 .* steps/s ([\d.]+)  examples/s ([\d.]+)  ETA (\d+):(\d\d):(\d\d)$",
                       line) for line in lines if line.startswith("phase 1 step ")]
    assert [int(m.group(1)) for m in loops] == [10, 20, 30]
    for match in loops:
        step, rate, examples = int(match.group(1)), float(match.group(2)), float(match.group(3))
        hours, minutes, seconds = (int(match.group(i)) for i in (4, 5, 6))
        assert rate > 0 and abs(examples - 8 * rate) <= 0.1 + 0.01 * examples  # batch 8
        expected = (30 - step) / rate  # the printed rate is rounded: allow for it
        assert abs(hours * 3600 + minutes * 60 + seconds - expected) <= 1 + 0.01 * expected
    assert loops[-1].group(4, 5, 6) == ("0", "00", "00")


def test_export_is_in_googles_layout(nsp_run, data):
    summary, _, _ = nsp_run
    export = pathlib.Path(summary["export_dir"])
    config = json.loads((export / "bert_config.json").read_text())
    assert {k: config[k] for k in TINY} == TINY and config["hidden_act"] == "gelu"
    assert config["vocab_size"] == read_phase(str(data / "bert")).vocab_size
    assert (export / "vocab.txt").read_bytes() == (data / "bert" / "vocab.txt").read_bytes()
    exported = dict(tf.train.list_variables(str(export / "bert_model.ckpt")))
    assert exported == google_layout(**config)


def test_export_round_trips_through_init_checkpoint(nsp_run, tmp_path):
    summary, _, _ = nsp_run
    export = pathlib.Path(summary["export_dir"])
    # No --model_config: the bert_config.json beside the checkpoint is the model's.
    again = train_main([f"--manifest={summary['manifest']}", f"--model_dir={tmp_path}", "--num_train_steps=0",
                        f"--init_checkpoint={export}", "--recipe=none"])
    report = again["init_checkpoint"]
    assert len(report["loaded"]) == len(google_layout(**TINY, vocab_size=1)) and not report["unused"]
    assert not report["not_in_checkpoint"]
    original, reloaded = checkpoint_values(export / "bert_model.ckpt"), checkpoint_values(
        pathlib.Path(again["export_dir"]) / "bert_model.ckpt")
    assert original.keys() == reloaded.keys()
    for name in original:
        np.testing.assert_array_equal(original[name], reloaded[name], err_msg=name)


def test_roberta_wwm_ext_data_trains_without_nsp_through_then_train(data, tmp_path):
    """No NSP labels: no NSP loss or metric, and the pooler and NSP head are left as initialised;
    with AdamW, and through the --then_train entry point."""
    parser = argparse.ArgumentParser()
    add_then_train_flags(parser)
    args = parser.parse_args(["--then_train", f"--model_dir={tmp_path}", *FAST, "--optimizer=adamw",
                              "--learning_rate=0.01", "--num_train_steps=6", "--steps_per_loop=3",
                              "--save_checkpoints_steps=3", "--seed=5"])
    summary = then_train(check_then_train(args, output_format="tfrecord"), str(data / "roberta"))
    records = summary["phases"][0]["first_steps"]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(set(r) == {"step", "mlm_loss", "mlm_accuracy"} for r in records)
    print(f"\nroberta-wwm-ext data, AdamW: MLM loss {records[0]['mlm_loss']:.3f} (step 1) -> "
          f"{records[-1]['mlm_loss']:.3f} (step 6)")
    assert records[-1]["mlm_loss"] < records[0]["mlm_loss"]

    exported = checkpoint_values(pathlib.Path(summary["export_dir"]) / "bert_model.ckpt")
    initial = BertPretrainer(BertConfig(vocab_size=read_phase(str(data / "roberta")).vocab_size, **TINY), seed=5)
    initial.build_all()  # the same seed gives the same initial weights
    for name, variable in google_variables(initial).items():
        unchanged = np.array_equal(exported[name], variable.numpy())
        assert unchanged == name.startswith(("bert/pooler/", "cls/seq_relationship/")), name


def test_gradient_accumulation_gives_the_whole_batch_update():
    """Two micro-batches of 2 make the same update as one batch of 4 (with uneven numbers of
    masked tokens, so the loss normalization matters), under plain SGD and no dropout."""
    import keras

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(0, 50, [4, 8]), "input_mask": np.ones([4, 8]), "segment_ids": np.zeros([4, 8]),
             "masked_lm_positions": rng.integers(0, 8, [4, 3]), "masked_lm_ids": rng.integers(0, 50, [4, 3]),
             "next_sentence_labels": rng.integers(0, 2, [4, 1])}
    batch = {name: tf.constant(value, tf.int32) for name, value in batch.items()}
    batch["masked_lm_weights"] = tf.constant([[1, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]], tf.float32)
    updates = []
    for accumulation_steps in (1, 2):
        model = BertPretrainer(config, seed=1)
        model.build_all()
        optimizer = keras.optimizers.SGD(1.0)
        optimizer.build(model.trainable_variables)
        before = [v.numpy() for v in model.trainable_variables]
        train_loop = build_train_loop(model, optimizer, tf.distribute.get_strategy(),
                                      variables=model.trainable_variables, use_sentence_head=True,
                                      accumulation_steps=accumulation_steps)
        train_loop(iter(tf.data.Dataset.from_tensors(batch).repeat()), tf.constant(1))
        updates.append([v.numpy() - b for v, b in zip(model.trainable_variables, before)])
    for whole, accumulated in zip(*updates):
        np.testing.assert_allclose(accumulated, whole, rtol=1e-4, atol=1e-6)


def test_init_checkpoint_in_googles_layout_lands_in_the_right_layers(tmp_path):
    config = BertConfig(vocab_size=40, **TINY)
    rng = np.random.default_rng(7)
    layout = google_layout(**vars(config))
    values = {name: rng.normal(size=shape).astype(np.float32) for name, shape in layout.items()
              if not name.startswith("bert/pooler/")}  # a model weight the checkpoint lacks
    extra = {"bert/embeddings/word_embeddings/adam_m": np.zeros(layout["bert/embeddings/word_embeddings"], np.float32),
             "global_step": np.array(1000, np.int64), "cls/squad/output_weights": np.ones([2, 64], np.float32)}
    save_name_based_checkpoint(tmp_path / "bert_model.ckpt", {**values, **extra})

    model = BertPretrainer(config, seed=3)
    model.build_all()
    report = load_google_checkpoint(model, str(tmp_path))  # a folder with one *.ckpt.index, like a release
    assert report.unused == ["cls/squad/output_weights"] and report.optimizer_state_skipped == 2
    assert report.not_in_checkpoint == ["bert/pooler/dense/kernel", "bert/pooler/dense/bias"]
    same = np.testing.assert_array_equal
    same(model.encoder_layers[1].query.kernel.numpy(), values["bert/encoder/layer_1/attention/self/query/kernel"])
    same(model.encoder_layers[0].query.kernel.numpy(), values["bert/encoder/layer_0/attention/self/query/kernel"])
    same(model.encoder_layers[1].output_dense.kernel.numpy(), values["bert/encoder/layer_1/output/dense/kernel"])
    same(model.encoder_layers[0].attention_layer_norm.gamma.numpy(),
         values["bert/encoder/layer_0/attention/output/LayerNorm/gamma"])
    same(model.embeddings.word_embeddings.numpy(), values["bert/embeddings/word_embeddings"])
    same(model.mlm_head.output_bias.numpy(), values["cls/predictions/output_bias"])
    same(model.nsp_head.output_weights.numpy(), values["cls/seq_relationship/output_weights"])
    # The MLM head scores against the loaded word embeddings (tied): logits = h E^T + b.
    features = {"input_ids": tf.constant([[2, 5, 7]]), "input_mask": tf.ones([1, 3], tf.int32),
                "segment_ids": tf.zeros([1, 3], tf.int32), "masked_lm_positions": tf.constant([[1]])}
    logits = model(features)["mlm_logits"].numpy()[0, 0]
    assert logits.shape == (40,)

    values["bert/embeddings/word_embeddings"] = np.zeros([41, 64], np.float32)  # another vocabulary
    save_name_based_checkpoint(tmp_path / "other" / "bert_model.ckpt", values)
    with pytest.raises(TrainerUsageError, match="word_embeddings: checkpoint \\[41, 64\\], model \\[40, 64\\]"):
        load_google_checkpoint(model, str(tmp_path / "other" / "bert_model.ckpt"))


def test_bfloat16_model_keeps_float32_weights_and_matches_float32():
    """The TPU/GPU precision: bfloat16 compute, float32 weights, float32 logits close to float32's."""
    config = BertConfig(vocab_size=60, **TINY)
    full, mixed = BertPretrainer(config, seed=4), BertPretrainer(config, seed=4, dtype="mixed_bfloat16")
    full.build_all()
    mixed.build_all()
    assert {v.dtype for v in google_variables(mixed).values()} == {"float32"}
    features = {"input_ids": tf.constant([[2, 5, 7, 9, 0]]), "input_mask": tf.constant([[1, 1, 1, 1, 0]]),
                "segment_ids": tf.constant([[0, 0, 1, 1, 0]]), "masked_lm_positions": tf.constant([[1, 3]])}
    outputs = full(features), mixed(features)
    for name in ("mlm_logits", "nsp_logits"):
        assert outputs[1][name].dtype == tf.float32
        expected = outputs[0][name].numpy()  # bfloat16 keeps ~3 significant digits
        np.testing.assert_allclose(outputs[1][name].numpy(), expected, rtol=0, atol=0.03 * np.abs(expected).max())


def test_wwm_run_then_train_hands_its_output_to_the_trainer(tmp_path, capsys):
    """The user's one command: `wwm run ... --then_train --model_dir DIR`."""
    status = wwm(["run", f"--input={SAMPLE}", f"--output={tmp_path / 'data'}", "--segmenter=char", "--dupe_factor=2",
                  "--max_seq_length=64", "--max_predictions_per_seq=10", *LOCAL, "--then_train",
                  f"--model_dir={tmp_path / 'model'}", *FAST, "--num_train_steps=4", "--steps_per_loop=2"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "phase 1: trained steps 0 -> 4" in printed
    export = tmp_path / "model" / "export"
    assert {p.name for p in export.iterdir()} >= {"bert_config.json", "vocab.txt", "bert_model.ckpt.index"}
    assert {p.name for p in (tmp_path / "model" / "export_hf").iterdir()} == {"config.json", "model.safetensors",
                                                                                "vocab.txt"}
    assert (export / "vocab.txt").read_bytes() == (tmp_path / "data" / "vocab.txt").read_bytes()


# ---- without TensorFlow; without Beam ----

# A sitecustomize that makes `import tensorflow` fail as it does where TensorFlow is not installed.
NO_TENSORFLOW = '''
import importlib.abc
import sys


class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTensorFlow())
'''


@pytest.mark.parametrize("command", ["train", "run"])
def test_missing_tensorflow_is_one_line_with_the_install_command_before_any_work(command, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    output = tmp_path / "out"
    argv = {"train": ["train", f"--manifest={output}", f"--model_dir={tmp_path / 'model'}"],
            "run": ["run", f"--input={SAMPLE}", f"--output={output}", "--segmenter=char", "--max_seq_length=64",
                    *LOCAL, "--then_train", f"--model_dir={tmp_path / 'model'}"]}[command]
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "No module named 'tensorflow'" in probe.stderr  # the simulation works
    result = subprocess.run([sys.executable, "-m", "wwm_cli", *argv], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert errors == [f"wwm {command}: error: training needs tensorflow, which cannot be imported here (No module "
                      "named 'tensorflow'); install the trainer's dependencies: pip install 'wwm-data[tf]'"]
    assert "Traceback" not in result.stderr
    assert not output.exists() and not (tmp_path / "model").exists()  # no pipeline work, nothing written


def test_the_trainer_imports_neither_beam_nor_the_pipelines():
    script = """
import pkgutil, importlib, sys
import wwm_trainer
for module in pkgutil.iter_modules(wwm_trainer.__path__):
    if module.name != "__main__":
        importlib.import_module(f"wwm_trainer.{module.name}")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("apache_beam", "pipelines", "wwm_cli"))
print("tensorflow" in sys.modules, loaded)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "[]"]


def test_shards_on_gcs_are_verified_from_the_listing(gcs_bucket, data, tmp_path):
    """On gs://, GCS's own size and crc32c of each object (one listing, nothing downloaded) are
    compared with the manifest: through google-cloud-storage, against a real GCS emulator."""
    from wwm_core.manifest import parse_manifest
    from wwm_trainer.integrity import verify_files

    first, second = "part-00000-of-00002.tfrecord", "part-00001-of-00002.tfrecord"
    manifest = parse_manifest((data / "bert" / "manifest.json").read_bytes(), path="manifest.json")
    intact = data / "bert"
    damaged = damaged_copy(intact, tmp_path / "damaged", truncate=first, flip=second)
    for prefix, folder in (("intact", intact), ("damaged", damaged)):
        for name in manifest.files:
            gcs_bucket.blob(f"{prefix}/{name}").upload_from_filename(str(folder / name))
    checked = verify_files(folder="gs://wwm-test/intact", names=manifest.files, file_info=manifest.file_info,
                           level="crc32c", manifest_path="gs://wwm-test/intact/manifest.json")
    assert (checked.files, checked.checksums, checked.how) == (2, 2, "sizes and crc32c as GCS reports them")
    with pytest.raises(TrainerUsageError, match=f"2 of the 2 shards .*{first} has .* \\(truncated\\); {second} has "
                       "crc32c .* \\(corrupted\\)"):
        verify_files(folder="gs://wwm-test/damaged/", names=manifest.files, file_info=manifest.file_info,
                     level="crc32c", manifest_path="gs://wwm-test/damaged/manifest.json")
    with pytest.raises(TrainerUsageError, match=f"{first} is missing"):
        verify_files(folder="gs://wwm-test/nothing", names=[first], file_info=manifest.file_info, level="size",
                     manifest_path="gs://wwm-test/nothing/manifest.json")
