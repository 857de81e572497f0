"""wwm_trainer phases: phase 2 from phase 1's weights with a new optimizer and schedule; a run
killed (SIGKILL) in phase 2 resumes in phase 2; `wwm run --recipe bert-wwm` at two lengths and
--then_train on its "phases" manifest; Hugging Face folders exported, read back, and read from a
hub cache with HF_HUB_OFFLINE=1; RBT3-style init keeps the first layers. Real TensorFlow, real
`wwm run` output, the tiny config."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from tests.test_pipeline import LOCAL
from tests.test_trainer import REPO, SAMPLE, TINY, checkpoint_values
from wwm_cli.data import run
from wwm_core.vocab import Vocab
from wwm_trainer.cli import train_main
from wwm_trainer.data import read_phases

FAST = ["--model_config=tiny", "--recipe=none", "--optimizer=adamw", "--learning_rate=1e-3"]


@pytest.fixture(scope="module")
def bert_wwm_run(tmp_path_factory):
    """The user's one command on the two-phase recipe: `wwm run --recipe bert-wwm` at two (small,
    for the CPU) lengths, one pass over the corpus writing OUT/seq32/, OUT/seq64/ and the "phases"
    manifest OUT/manifest.json, then --then_train: both phases trained from that manifest, with the
    recipe it records (the tiny model; steps and batch by flag). (OUT, the model_dir)."""
    root = tmp_path_factory.mktemp("bert_wwm")
    run([f"--input={SAMPLE}", f"--output={root / 'out'}", "--recipe=bert-wwm", "--segmenter=jieba",
         "--max_seq_length=32,64", "--dupe_factor=3", "--num_shards=2", *LOCAL,
         "--then_train", f"--model_dir={root / 'model'}", "--model_config=tiny", "--train_batch_size=8",
         "--num_train_steps=4,3", "--steps_per_loop=2", "--save_checkpoints_steps=2"])
    return root / "out", root / "model"


@pytest.fixture(scope="module")
def two_lengths(bert_wwm_run):
    return bert_wwm_run[0]


def weights_of(prefix) -> dict:
    """Model weights of a training checkpoint, by Google name."""
    marker = "/.ATTRIBUTES/VARIABLE_VALUE"
    return {name[len("model/"):-len(marker)].replace(".S", "/"): value
            for name, value in checkpoint_values(prefix).items() if name.startswith("model/") and name.endswith(marker)}


def optimizer_step(prefix) -> int:
    values = checkpoint_values(prefix)
    (name,) = [n for n in values if n.startswith("optimizer/") and "iteration" in n]
    return int(values[name])


def test_phases_manifest_lists_both_phases(two_lengths):
    phases = read_phases(str(two_lengths / "manifest.json"))
    assert [p.max_seq_length for p in phases] == [32, 64]
    assert [p.max_predictions_per_seq for p in phases] == [5, 10]  # 15% of the length, rounded up to 5s
    assert [pathlib.Path(p.path).parent.name for p in phases] == ["seq32", "seq64"]
    assert {(p.recipe, p.sentence_task, p.masking) for p in phases} == {("bert-wwm", "nsp", "static")}
    assert phases[0].vocab_path != phases[1].vocab_path and phases[0].vocab_sha256 == phases[1].vocab_sha256
    for phase in phases:  # what TensorFlow reads: the count the trainer plans with, records of the phase's length
        records = tf.data.TFRecordDataset(list(phase.files))
        examples = [tf.train.Example.FromString(record.numpy()) for record in records]
        assert phase.num_instances == len(examples) > 8
        assert {len(example.features.feature["input_ids"].int64_list.value) for example in examples} == {
            phase.max_seq_length}


def test_wwm_run_then_train_trains_both_phases_from_the_phases_manifest(bert_wwm_run):
    out, model_dir = bert_wwm_run
    plan = json.loads((model_dir / "train_plan.json").read_text())
    assert [phase["manifest"] for phase in plan["phases"]] == [str(out / "seq32" / "manifest.json"),
                                                               str(out / "seq64" / "manifest.json")]
    assert plan["recipe"] == "bert-wwm"  # recorded by `wwm run`, read back by the trainer
    assert plan["optimizer"]["value"] == "lamb" and plan["optimizer"]["source"].startswith("recipe bert-wwm")
    assert [phase["num_train_steps"]["value"] for phase in plan["phases"]] == [4, 3]
    for number, steps in ((1, 4), (2, 3)):
        latest = tf.train.latest_checkpoint(str(model_dir / f"phase{number}"))
        assert latest.endswith(f"ckpt-{steps}") and optimizer_step(latest) == steps
    exported = checkpoint_values(model_dir / "export" / "bert_model.ckpt")  # phase 2's last weights
    for name, value in weights_of(model_dir / "phase2" / "ckpt-3").items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)
    assert (model_dir / "export" / "vocab.txt").read_bytes() == (out / "seq64" / "vocab.txt").read_bytes()


def test_phase_two_starts_from_phase_ones_weights_with_a_new_optimizer(two_lengths, tmp_path):
    summary = train_main([f"--manifest={two_lengths}", f"--model_dir={tmp_path}", *FAST, "--train_batch_size=8,4",
                          "--num_train_steps=6,4", "--num_warmup_steps=2", "--steps_per_loop=2",
                          "--save_checkpoints_steps=2"])
    one, two = summary["phases"]
    assert (one["start_step"], one["final_step"], two["start_step"], two["final_step"]) == (0, 6, 0, 4)
    phase1_end, phase2_end = tmp_path / "phase1" / "ckpt-6", tmp_path / "phase2" / "ckpt-4"
    assert optimizer_step(phase1_end) == 6 and optimizer_step(phase2_end) == 4  # counted per phase
    # The schedule warms up again: learning rate 0 at phase 2's first step (global step 7).
    events = list((tmp_path / "train").glob("events.out.tfevents.*"))
    rates = {event.step: float(tf.make_ndarray(value.tensor)) for path in events
             for event in tf.compat.v1.train.summary_iterator(str(path)) for value in event.summary.value
             if value.tag == "learning_rate"}
    assert rates[7] == 0.0 and rates[8] == pytest.approx(5e-4) and rates[2] == pytest.approx(5e-4)
    # Moments reset: phase 2's optimizer state is fresh (its m after 4 steps differs from phase 1's).
    assert "phase 2 of 2" in "\n".join(summary["plan"]) and "new optimizer" in "\n".join(summary["plan"])

    # Phase 2 in a fresh process, before it has a checkpoint (0 steps here): phase 1 is resumed at
    # its end (nothing left to train) and phase 2 starts from its last weights.
    fresh = tmp_path / "fresh"
    train_main([f"--manifest={two_lengths}", f"--model_dir={fresh}", *FAST, "--train_batch_size=8",
                "--num_train_steps=6,0", "--steps_per_loop=6"])
    again = train_main([f"--manifest={two_lengths}", f"--model_dir={fresh}", *FAST, "--train_batch_size=8",
                        "--num_train_steps=6,0"])
    assert [(p["start_step"], p["final_step"]) for p in again["phases"]] == [(6, 6), (0, 0)]
    exported = checkpoint_values(pathlib.Path(again["export_dir"]) / "bert_model.ckpt")
    for name, value in weights_of(fresh / "phase1" / "ckpt-6").items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)


def test_run_killed_in_phase_two_resumes_in_phase_two(two_lengths, tmp_path):
    """A two-phase run from `wwm run --recipe bert-wwm` output, trained from its phases manifest:
    a genuine kill (SIGKILL of a `wwm train` process) during phase 2; the same command again
    resumes phase 2 at its last checkpoint, with exactly its weights, and does not redo phase 1."""
    model_dir = tmp_path / "model"
    flags = [f"--manifest={two_lengths / 'manifest.json'}", f"--model_dir={model_dir}", "--model_config=tiny",
             "--train_batch_size=8", "--steps_per_loop=5", "--save_checkpoints_steps=5"]
    process = subprocess.Popen([sys.executable, "-m", "wwm_cli", "train", *flags, "--num_train_steps=10,100000"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not tf.train.latest_checkpoint(str(model_dir / "phase2")):
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no phase 2 checkpoint within 180 s"
            time.sleep(0.2)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL  # killed, not finished: phase 2 had 100,000 steps to go
    latest = tf.train.latest_checkpoint(str(model_dir / "phase2"))
    step = int(latest.rsplit("-", 1)[1])
    assert step > 0 and step % 5 == 0
    assert json.loads((model_dir / "train_plan.json").read_text())["recipe"] == "bert-wwm"

    # Resumed with nothing left to do: it restores phase 2's checkpoint and exports exactly its weights.
    restored = train_main([*flags, f"--num_train_steps=10,{step}"])
    assert [(p["phase"], p["restored_from"], p["start_step"]) for p in restored["phases"]] == [(2, latest, step)]
    exported = checkpoint_values(pathlib.Path(restored["export_dir"]) / "bert_model.ckpt")
    for name, value in weights_of(latest).items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)

    # Resumed with more steps: phase 2 goes on from that step; phase 1 is not trained again.
    resumed = train_main([*flags, f"--num_train_steps=10,{step + 5}"])
    assert [p["phase"] for p in resumed["phases"]] == [2]
    (phase,) = resumed["phases"]
    assert phase["restored_from"] == latest and phase["start_step"] == step and phase["final_step"] == step + 5
    assert [r["step"] for r in phase["first_steps"]] == list(range(step + 1, step + 6))
    assert optimizer_step(model_dir / "phase1" / "ckpt-10") == 10  # phase 1 ended where it ended
    print(f"\nkilled in phase 2 after checkpoint {step}; resumed in phase 2 at step {phase['start_step']}, "
          f"MLM loss {phase['first_steps'][0]['mlm_loss']:.3f} at step {step + 1}")


# ---- Hugging Face ----

def hf_state_dict_names(num_layers: int) -> list:
    """transformers' BertForPreTraining state-dict keys (modeling_bert.py; the tied decoder and
    buffers left out, as save_pretrained leaves them out), written out by hand."""
    names = ["bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
             "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
             "bert.embeddings.LayerNorm.bias"]
    for i in range(num_layers):
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                     "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"):
            names += [f"bert.encoder.layer.{i}.{part}.weight", f"bert.encoder.layer.{i}.{part}.bias"]
    names += ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "cls.predictions.bias",
              "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
              "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
              "cls.seq_relationship.weight", "cls.seq_relationship.bias"]
    return names


def hf_shapes(*, vocab_size: int, hidden: int, intermediate: int, num_layers: int) -> dict:
    """PyTorch shapes ([out, in] for Linear weights)."""
    shapes = {}
    for name in hf_state_dict_names(num_layers):
        if name == "bert.embeddings.word_embeddings.weight":
            shape = [vocab_size, hidden]
        elif name == "bert.embeddings.position_embeddings.weight":
            shape = [512, hidden]
        elif name == "bert.embeddings.token_type_embeddings.weight":
            shape = [2, hidden]
        elif name == "cls.predictions.bias":
            shape = [vocab_size]
        elif name == "cls.seq_relationship.weight":
            shape = [2, hidden]
        elif name == "cls.seq_relationship.bias":
            shape = [2]
        elif "intermediate.dense" in name:
            shape = [intermediate, hidden] if name.endswith("weight") else [intermediate]
        elif ".output.dense" in name and "attention" not in name:
            shape = [hidden, intermediate] if name.endswith("weight") else [hidden]
        elif name.endswith("weight") and "LayerNorm" not in name:
            shape = [hidden, hidden]
        else:
            shape = [hidden]
        shapes[name] = shape
    return shapes


@pytest.fixture(scope="module")
def trained(bert_wwm_run):
    """The exports of the two-phase --then_train run."""
    model_dir = bert_wwm_run[1]
    return {"export_dir": str(model_dir / "export"), "hf_export_dir": str(model_dir / "export_hf")}


def test_hf_export_has_transformers_names_and_orientation(trained):
    from safetensors.numpy import load_file

    folder = pathlib.Path(trained["hf_export_dir"])
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "vocab.txt"}
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForPreTraining"]
    assert {k: config[k] for k in TINY} == TINY
    tensors = load_file(str(folder / "model.safetensors"))
    expected = hf_shapes(vocab_size=config["vocab_size"], hidden=TINY["hidden_size"],
                         intermediate=TINY["intermediate_size"], num_layers=TINY["num_hidden_layers"])
    assert {name: list(value.shape) for name, value in tensors.items()} == expected
    google = checkpoint_values(pathlib.Path(trained["export_dir"]) / "bert_model.ckpt")
    same = np.testing.assert_array_equal
    same(tensors["bert.encoder.layer.1.attention.self.query.weight"],
         google["bert/encoder/layer_1/attention/self/query/kernel"].T)  # Linear weights are [out, in]
    same(tensors["bert.encoder.layer.0.output.dense.weight"], google["bert/encoder/layer_0/output/dense/kernel"].T)
    same(tensors["bert.embeddings.word_embeddings.weight"], google["bert/embeddings/word_embeddings"])
    same(tensors["bert.encoder.layer.1.output.LayerNorm.weight"], google["bert/encoder/layer_1/output/LayerNorm/gamma"])
    same(tensors["cls.predictions.bias"], google["cls/predictions/output_bias"])
    same(tensors["cls.seq_relationship.weight"], google["cls/seq_relationship/output_weights"])
    assert (folder / "vocab.txt").read_bytes() == (pathlib.Path(trained["export_dir"]) / "vocab.txt").read_bytes()


def test_hf_folder_round_trips_through_init_checkpoint(trained, two_lengths, tmp_path):
    again = train_main([f"--manifest={two_lengths / 'seq64'}", f"--model_dir={tmp_path}", "--recipe=none",
                        f"--init_checkpoint={trained['hf_export_dir']}", "--num_train_steps=0"])
    assert again["settings"]["model_config"]["value"].endswith("config.json")  # the folder's config
    assert not again["init_checkpoint"]["not_in_checkpoint"] and not again["init_checkpoint"]["unused"]
    original = checkpoint_values(pathlib.Path(trained["export_dir"]) / "bert_model.ckpt")
    reloaded = checkpoint_values(pathlib.Path(again["export_dir"]) / "bert_model.ckpt")
    assert original.keys() == reloaded.keys()
    for name in original:
        np.testing.assert_array_equal(original[name], reloaded[name], err_msg=name)


def write_hub_cache(cache: pathlib.Path, repo: str, files: dict) -> str:
    """A Hugging Face hub cache as huggingface_hub lays it out: models--ORG--NAME/refs/main holding
    the commit, snapshots/<commit>/<file> pointing at blobs/<sha256>."""
    import hashlib

    folder = cache / ("models--" + repo.replace("/", "--"))
    commit = hashlib.sha1(repo.encode()).hexdigest()
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "blobs").mkdir()
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    return commit


def test_init_from_a_hub_id_offline_through_the_cache_keeps_the_first_layers(two_lengths, tmp_path):
    """hfl/chinese-roberta-wwm-ext from a hub cache, HF_HUB_OFFLINE=1: a 4-layer model (written here
    with transformers' names) into a 3-layer config, RBT3's rule: layers 0-2 kept, layer 3 unused."""
    from safetensors.numpy import save

    vocab = (two_lengths / "seq64" / "vocab.txt").read_bytes()
    vocab_size = Vocab.from_bytes(vocab).size  # not splitlines(): Google's vocabulary holds U+2028 as a token
    rng = np.random.default_rng(11)
    shapes = hf_shapes(vocab_size=vocab_size, hidden=64, intermediate=128, num_layers=4)
    tensors = {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}
    config = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": vocab_size, "hidden_size": 64,
              "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 128, "hidden_act": "gelu",
              "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
    cache = tmp_path / "hub"
    write_hub_cache(cache, "hfl/chinese-roberta-wwm-ext", {
        "config.json": json.dumps(config).encode(), "vocab.txt": vocab,
        "model.safetensors": save(tensors, metadata={"format": "pt"})})
    three = tmp_path / "rbt3_tiny.json"
    three.write_text(json.dumps({**config, "num_hidden_layers": 3}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    command = [sys.executable, "-m", "wwm_trainer", f"--manifest={two_lengths / 'seq64'}", "--recipe=none",
               f"--model_dir={tmp_path / 'model'}", "--init_checkpoint=hfl/chinese-roberta-wwm-ext",
               f"--model_config={three}", "--num_train_steps=0"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "16 checkpoint variables unused: bert/encoder/layer_3/" in result.stderr
    exported = checkpoint_values(tmp_path / "model" / "export" / "bert_model.ckpt")
    assert not any(name.startswith("bert/encoder/layer_3/") for name in exported)
    for layer in range(3):
        np.testing.assert_array_equal(exported[f"bert/encoder/layer_{layer}/attention/self/key/kernel"],
                                      tensors[f"bert.encoder.layer.{layer}.attention.self.key.weight"].T)
    np.testing.assert_array_equal(exported["bert/embeddings/word_embeddings"],
                                  tensors["bert.embeddings.word_embeddings.weight"])

    # Not in the cache and offline: one line, status 2.
    command[command.index("--init_checkpoint=hfl/chinese-roberta-wwm-ext")] = "--init_checkpoint=hfl/rbt3"
    missing = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    error = [line for line in missing.stderr.splitlines() if line.startswith("wwm train: error:")]
    assert missing.returncode == 2 and len(error) == 1 and "hfl/rbt3" in error[0] and "cache" in error[0]


def test_tf_model_h5_of_transformers_loads(tmp_path):
    """transformers' TF weights (tf_model.h5, Keras h5 layout: one group per top-level layer), with
    the names TFBertForPreTraining gives them, here with the [H, heads, head size] attention
    kernels some transformers versions wrote."""
    import h5py

    from wwm_trainer.checkpoint_io import load_init_checkpoint
    from wwm_trainer.config import BertConfig
    from wwm_trainer.model import BertPretrainer

    rng = np.random.default_rng(5)
    hidden, heads = 64, 2
    values = {
        "bert/tf_bert_for_pre_training/bert/embeddings/word_embeddings/weight:0": [40, hidden],
        "bert/tf_bert_for_pre_training/bert/embeddings/position_embeddings/embeddings:0": [512, hidden],
        "bert/tf_bert_for_pre_training/bert/embeddings/token_type_embeddings/embeddings:0": [2, hidden],
        "bert/tf_bert_for_pre_training/bert/encoder/layer_._1/attention/self/query/kernel:0": [hidden, heads, 32],
        "bert/tf_bert_for_pre_training/bert/encoder/layer_._1/attention/self/query/bias:0": [heads, 32],
        "bert/tf_bert_for_pre_training/bert/encoder/layer_._0/output/LayerNorm/gamma:0": [hidden],
        "mlm___cls/tf_bert_for_pre_training/mlm___cls/predictions/bias:0": [40],
        "nsp___cls/tf_bert_for_pre_training/nsp___cls/seq_relationship/kernel:0": [hidden, 2],
    }
    arrays = {name: rng.normal(size=shape).astype(np.float32) for name, shape in values.items()}
    folder = tmp_path / "tf_hub_folder"
    folder.mkdir()
    with h5py.File(folder / "tf_model.h5", "w") as h5:
        for name, value in arrays.items():
            h5.create_dataset(name, data=value)
    model = BertPretrainer(BertConfig(vocab_size=40, **TINY), seed=2)
    model.build_all()
    report = load_init_checkpoint(model, str(folder))
    assert len(report.loaded) == len(values) and not report.unused
    same = np.testing.assert_array_equal
    same(model.embeddings.word_embeddings.numpy(), arrays[next(n for n in arrays if "word_embeddings" in n)])
    same(model.encoder_layers[1].query.kernel.numpy(),
         arrays[next(n for n in arrays if "query/kernel" in n)].reshape(hidden, hidden))
    same(model.encoder_layers[1].query.bias.numpy(), arrays[next(n for n in arrays if "query/bias" in n)].reshape(-1))
    same(model.encoder_layers[0].output_layer_norm.gamma.numpy(), arrays[next(n for n in arrays if "gamma" in n)])
    same(model.mlm_head.output_bias.numpy(), arrays[next(n for n in arrays if "predictions/bias" in n)])
    same(model.nsp_head.output_weights.numpy(), arrays[next(n for n in arrays if "seq_relationship" in n)].T)


def test_state_dict_names_of_older_checkpoints_map_to_googles():
    """Older PyTorch BERT checkpoints name LayerNorm weights gamma/beta, a BertModel's have no
    "bert." prefix, and tied copies and buffers are not weights of their own."""
    from wwm_trainer.hf_io import google_name_of_hf

    assert google_name_of_hf("bert.embeddings.LayerNorm.gamma") == "bert/embeddings/LayerNorm/gamma"
    assert google_name_of_hf("bert.encoder.layer.11.output.LayerNorm.beta") == "bert/encoder/layer_11/output/LayerNorm/beta"
    assert google_name_of_hf("encoder.layer.0.attention.self.query.weight") == \
        "bert/encoder/layer_0/attention/self/query/kernel"
    assert google_name_of_hf("cls.predictions.decoder.weight") is None
    assert google_name_of_hf("bert.embeddings.position_ids") is None
