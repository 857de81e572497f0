"""wwm_trainer: presets and their sources, default learning rates that train, dynamic whole-word
masking in tf.data, SOP, held-out evaluation. Real TensorFlow, real text (UD Chinese GSDSimp from
../shared/data), the tiny model config."""
import json
import pathlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from wwm_cli.data import run
from tests.conftest import shared_file
from tests.test_pipeline import LOCAL
from wwm_core.recipes import RECIPES
from wwm_trainer.cli import train_main, train_parser
from wwm_trainer.data import make_dataset, read_phase
from wwm_trainer.presets import choose_model, plan_phases

UD_FILES = ("ud_chinese_gsdsimp/zh_gsdsimp-ud-dev.conllu", "ud_chinese_gsdsimp/zh_gsdsimp-ud-test.conllu")
MASK = "[MASK]"


def mean(values) -> float:
    return sum(values) / len(values)


def ud_sentences() -> list:
    """The raw sentences of UD Chinese GSDSimp dev + test (their "# text = " lines), in order."""
    return [line[len("# text = "):].strip() for relative in UD_FILES
            for line in shared_file(relative).read_text(encoding="utf-8").splitlines() if line.startswith("# text = ")]


def write_documents(path: pathlib.Path, sentences: list) -> None:
    """`wwm run`'s text input: one sentence a line, documents of 8 sentences between blank lines."""
    lines = []
    for index, text in enumerate(sentences):
        lines.append(text)
        if index % 8 == 7:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---- presets (pure: no TensorFlow work) ----

def test_recipe_sets_both_phases_and_flags_override_it():
    recipe = RECIPES["bert-wwm"]
    chosen = choose_model(model_config=None, init_checkpoint=None, optimizer=None, recipe=recipe)
    assert chosen["model_config"].value == "base" and chosen["optimizer"].value == "lamb"
    assert chosen["init_checkpoint"].value == "google-bert/bert-base-chinese"
    assert all(setting.source.startswith("recipe bert-wwm") for setting in chosen.values())
    phases = [("a/seq128/manifest.json", 128), ("a/seq512/manifest.json", 512)]
    plans = plan_phases(data_phases=phases, flags={}, recipe=recipe, optimizer="lamb", hidden_size=768)
    # HFL's table and tech report: 100K steps at batch 2,560, then 100K at 384; 1e-4, 10% warmup.
    assert [(p.num_train_steps.value, p.train_batch_size.value, p.learning_rate.value, p.num_warmup_steps.value)
            for p in plans] == [(100_000, 2560, 1e-4, 10_000), (100_000, 384, 1e-4, 10_000)]
    overridden = plan_phases(data_phases=phases, flags={"num_train_steps": (30, 20), "train_batch_size": (8,)},
                             recipe=recipe, optimizer="lamb", hidden_size=768)
    assert [(p.num_train_steps.value, p.train_batch_size.value) for p in overridden] == [(30, 8), (20, 8)]
    assert {p.num_train_steps.source for p in overridden} == {"flag"}
    assert [p.num_warmup_steps.value for p in overridden] == [3, 2]  # a tenth of the given steps
    assert all(p.learning_rate.source.startswith("recipe bert-wwm") for p in overridden)
    # Another size: the recipe's base checkpoint does not apply, and the log says why.
    tiny = choose_model(model_config="tiny", init_checkpoint=None, optimizer=None, recipe=recipe)
    assert tiny["init_checkpoint"].value is None and "is a base model" in tiny["init_checkpoint"].source


def test_recipes_of_roberta_and_rbt3():
    roberta = choose_model(model_config=None, init_checkpoint=None, optimizer=None, recipe=RECIPES["roberta-wwm-ext"])
    assert roberta["optimizer"].value == "adamw"  # HFL's table: AdamW, not LAMB
    rbt3 = choose_model(model_config=None, init_checkpoint=None, optimizer=None, recipe=RECIPES["rbt3"])
    assert (rbt3["model_config"].value, rbt3["init_checkpoint"].value) == ("rbt3", "hfl/chinese-roberta-wwm-ext")
    # A one-phase recipe on one folder of 512-token data.
    plans = plan_phases(data_phases=[("x", 512)], flags={}, recipe=RECIPES["roberta-wwm-ext"], optimizer="adamw",
                        hidden_size=768)
    assert (plans[0].num_train_steps.value, plans[0].train_batch_size.value) == (1_000_000, 384)


def test_default_learning_rates_follow_their_sources():
    def rate(optimizer, hidden, batch):
        plan = plan_phases(data_phases=[("x", 128)], flags={"train_batch_size": (batch,)}, recipe=None,
                           optimizer=optimizer, hidden_size=hidden)[0]
        return plan.learning_rate
    assert rate("adamw", 768, 32).value == 1e-4 and "google-research/bert README" in rate("adamw", 768, 32).source
    assert rate("adamw", 1024, 32).value == 5e-5 and "issues/141" in rate("adamw", 1024, 32).source
    assert rate("adamw", 64, 16).value == 1e-4  # Google's value trains the tiny size too (test below)
    # NVIDIA's 6e-3 at 65,536, scaled by the square root of the batch.
    assert rate("lamb", 768, 256).value == pytest.approx(6e-3 * (256 / 65536) ** 0.5)
    assert rate("lamb", 1024, 65536).value == pytest.approx(6e-3) and "NVIDIA" in rate("lamb", 1024, 32).source
    assert rate("lamb", 64, 16).value == 1e-2 and "measured" in rate("lamb", 64, 16).source
    # A recipe's rate is for its optimizer: with the other one, that optimizer's default.
    plan = plan_phases(data_phases=[("x", 128)], flags={}, recipe=RECIPES["bert-wwm"], optimizer="adamw",
                       hidden_size=768)[0]
    assert plan.learning_rate.value == 1e-4 and plan.learning_rate.source.startswith("default")
    # ... and for its model's width: bert-wwm's LAMB 1e-4 on the tiny model barely moves the loss
    # (measured 0.998x after 120 steps), so the tiny model takes LAMB's tiny default.
    plan = plan_phases(data_phases=[("x", 128)], flags={}, recipe=RECIPES["bert-wwm"], optimizer="lamb",
                       hidden_size=64)[0]
    assert plan.learning_rate.value == 1e-2 and plan.learning_rate.source.startswith("default")
    plan = plan_phases(data_phases=[("x", 128)], flags={}, recipe=RECIPES["bert-wwm"], optimizer="lamb",
                       hidden_size=768)[0]
    assert plan.learning_rate.value == 1e-4 and not plan.learning_rate.source.startswith("default")


def test_help_does_not_say_roberta_used_lamb():
    help_text = " ".join(train_parser().format_help().split())
    start = help_text.index("lamb: large batches")
    lamb_help = help_text[start:help_text.index("--train_batch_size", start)]
    assert "RoBERTa" not in lamb_help and "BERT-wwm" in lamb_help
    assert "adamw: Google's AdamWeightDecayOptimizer (HFL's RoBERTa-wwm-ext" in help_text


# ---- default learning rates train (real text) ----

@pytest.fixture(scope="module")
def ud_data(tmp_path_factory):
    """`wwm run` on the 1,000 UD sentences (documents of 8 sentences), Google's vocabulary."""
    vocab = shared_file("bert_vocab/vocab.txt")
    root = tmp_path_factory.mktemp("ud")
    write_documents(root / "ud.txt", ud_sentences())
    run([f"--input={root / 'ud.txt'}", f"--output={root / 'out'}", "--segmenter=char", "--dupe_factor=2",
         "--num_shards=2", "--max_seq_length=128", "--max_predictions_per_seq=20", f"--vocab_file={vocab}", *LOCAL])
    return root / "out"


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_each_optimizers_default_learning_rate_trains_the_tiny_model(ud_data, tmp_path, optimizer):
    """No recipe, no --learning_rate: the MLM loss of the last 10 of 120 steps is below 0.85x the
    first step's."""
    summary = train_main([f"--manifest={ud_data}", f"--model_dir={tmp_path}", "--recipe=none", "--model_config=tiny",
                          f"--optimizer={optimizer}", "--train_batch_size=16", "--num_train_steps=120",
                          "--steps_per_loop=40", "--save_checkpoints_steps=120"])
    phase = summary["phases"][0]
    first = phase["first_steps"][0]["mlm_loss"]
    last = mean([r["mlm_loss"] for r in phase["last_steps"]])
    rate = next(line for line in summary["plan"] if "learning_rate" in line)
    print(f"\n{optimizer} default ({rate.strip()[:60]}...): MLM loss step 1 {first:.3f}, steps 111-120 mean "
          f"{last:.3f} ({last / first:.3f}x); {phase['steady_steps_per_second']:.2f} steps/s after the first loop "
          f"(batch 16, 128 tokens, {summary['strategy']})")
    assert last < 0.85 * first
    assert "[default" in rate


# ---- dynamic whole-word masking and SOP ----

SEQ, PRED, PROB = 64, 10, 0.15


def vocab_ids(vocab_path: pathlib.Path) -> dict:
    # Lines end with \n only: Google's vocabulary has U+2028 as a token, which splitlines() would split at.
    return {token: index for index, token in enumerate(vocab_path.read_text(encoding="utf-8").split("\n"))}


def tf_examples(folder: pathlib.Path) -> list:
    """The records of a run's TFRecord shards as dicts of int lists, parsed by TensorFlow's own
    tf.train.Example (not the trainer's feature spec)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = []
    for record in tf.data.TFRecordDataset([str(folder / name) for name in manifest["files"]]):
        features = tf.train.Example.FromString(record.numpy()).features.feature
        rows.append({name: list(feature.int64_list.value) for name, feature in features.items()})
    return rows


@pytest.fixture(scope="module")
def sop_data(tmp_path_factory):
    """Real `wwm run` output on UD text: `--sentence_task sop --masking dynamic` on dev+test minus
    the last 100 sentences (train: instances with word_ids, unmasked), and `--sentence_task sop`
    with static masks on those 100 (held out). jieba's words are the whole-word groups."""
    sentences = ud_sentences()
    root = tmp_path_factory.mktemp("sop")
    write_documents(root / "train.txt", sentences[:-100])
    write_documents(root / "held_out.txt", sentences[-100:])
    common = ["--segmenter=jieba", "--sentence_task=sop", f"--max_seq_length={SEQ}",
              f"--max_predictions_per_seq={PRED}", f"--masked_lm_prob={PROB}", *LOCAL]
    run([f"--input={root / 'train.txt'}", f"--output={root / 'train'}", "--masking=dynamic", "--dupe_factor=1",
         "--num_shards=2", *common])
    run([f"--input={root / 'held_out.txt'}", f"--output={root / 'held_out'}", "--dupe_factor=2", "--num_shards=1",
         *common])
    return root, tf_examples(root / "train"), vocab_ids(root / "train" / "vocab.txt")


def test_dynamic_masks_are_whole_words_within_budget_fresh_each_pass(sop_data):
    root, instances, vocab = sop_data
    phase = read_phase(str(root / "train"))
    assert phase.masking == "dynamic" and phase.masked_lm_prob == PROB and phase.sentence_task == "sop"
    assert set(instances[0]) == {"input_ids", "input_mask", "segment_ids", "word_ids", "next_sentence_labels"}
    dataset = make_dataset(phase, batch_size=16, seed=3)
    # TPU-ready: static shapes, and no Python anywhere in the pipeline's graph.
    assert all(spec.shape.is_fully_defined() for spec in dataset.element_spec.values())
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert ops and not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    assert set(dataset.element_spec) == {"input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                                         "masked_lm_ids", "masked_lm_weights", "next_sentence_labels"}

    by_ids = {}
    for row in instances:  # an instance that occurs twice has the same words both times
        assert by_ids.setdefault(tuple(row["input_ids"]), row)["word_ids"] == row["word_ids"]
    masks_seen = {}
    outcome = {"mask": 0, "kept": 0, "random": 0}
    batches = 4 * len(instances) // 16  # about four passes
    checked = 0
    for batch in dataset.take(batches):
        batch = {name: value.numpy() for name, value in batch.items()}
        for row in range(16):
            positions = batch["masked_lm_positions"][row][batch["masked_lm_weights"][row] > 0]
            labels = batch["masked_lm_ids"][row][batch["masked_lm_weights"][row] > 0]
            original = batch["input_ids"][row].copy()
            original[positions] = labels
            instance = by_ids[tuple(original)]  # the instance this row was made from
            word_ids = np.array(instance["word_ids"])
            masked = set(positions.tolist())
            length = sum(instance["input_mask"])
            budget = min(PRED, max(1, round(length * PROB)))  # Google's rule; Python rounds half to even
            assert len(masked) <= budget
            groups = {}
            for position, word in enumerate(word_ids):
                if word:
                    groups.setdefault(word, set()).add(position)
            for position in masked:
                assert word_ids[position] > 0 and instance["input_mask"][position] == 1
                assert original[position] not in (vocab["[CLS]"], vocab["[SEP]"])  # never these or padding
                assert groups[word_ids[position]] <= masked  # its whole word is masked
            for members in groups.values():  # a word left out would not have fitted (so none is masked
                if not members <= masked:     # only where no word fits the budget)
                    assert len(members) > budget - len(masked)
            assert list(positions) == sorted(positions)
            masks_seen.setdefault(tuple(original), set()).add(tuple(sorted(masked)))
            for position, label in zip(positions, labels):
                shown = batch["input_ids"][row][position]
                outcome["mask" if shown == vocab[MASK] else "kept" if shown == label else "random"] += 1
            checked += 1
    repeated = [masks for masks in masks_seen.values()]
    assert sum(len(masks) > 1 for masks in repeated) >= 0.8 * sum(1 for _ in repeated)  # fresh masks per pass
    total = sum(outcome.values())
    vocab_size = len(vocab)
    expected = {"mask": 0.8 + 0.1 / vocab_size, "kept": 0.1 + 0.1 / vocab_size, "random": 0.1 * (1 - 2 / vocab_size)}
    for name, share in expected.items():
        tolerance = 4.5 * (share * (1 - share) / total) ** 0.5  # binomial, 4.5 standard deviations
        assert abs(outcome[name] / total - share) < tolerance, (name, outcome, total)
    print(f"\ndynamic masking: {checked} rows checked, {total} masked tokens: "
          + ", ".join(f"{name} {count / total:.3f}" for name, count in outcome.items()))


def test_sop_data_trains_with_its_own_metric_and_is_evaluated(sop_data, tmp_path):
    """Dynamic-masking SOP data trains (the loss falls), evaluated on static-masking SOP data."""
    root, _, _ = sop_data
    summary = train_main([f"--manifest={root / 'train'}", f"--model_dir={tmp_path}", "--model_config=tiny",
                          "--optimizer=adamw", "--train_batch_size=16", "--num_train_steps=30", "--steps_per_loop=10",
                          "--save_checkpoints_steps=10", "--learning_rate=1e-3",
                          f"--eval_manifest={root / 'held_out'}", "--eval_every=10"])
    records = summary["phases"][0]["first_steps"] + summary["phases"][0]["last_steps"]
    assert all(set(r) == {"step", "mlm_loss", "mlm_accuracy", "sop_loss", "sop_accuracy"} for r in records)
    assert summary["recipe"] == "bert-wwm"  # `wwm run`'s default recipe, recorded in the manifest
    assert (summary["phases"][0]["masking"], summary["phases"][0]["sentence_task"]) == ("dynamic", "sop")
    first, last = records[0]["mlm_loss"], mean([r["mlm_loss"] for r in summary["phases"][0]["last_steps"]])
    assert last < 0.85 * first

    results = json.loads((tmp_path / "eval_results.json").read_text())
    assert [r["step"] for r in results["evaluations"]] == [10, 20, 30]
    assert results["final"] == results["evaluations"][-1]
    for result in results["evaluations"]:
        assert {"mlm_loss", "mlm_accuracy", "sop_loss", "sop_accuracy"} <= set(result)
        assert 0 <= result["sop_accuracy"] <= 1 and result["examples"] > 0
    assert results["evaluations"][-1]["mlm_loss"] < results["evaluations"][0]["mlm_loss"]
    events = list((tmp_path / "eval").glob("events.out.tfevents.*"))
    tags = {value.tag for path in events for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value}
    assert {"mlm_loss", "mlm_accuracy", "sop_loss", "sop_accuracy"} <= tags
    print(f"\nSOP data, dynamic masks: MLM loss {first:.3f} -> {last:.3f}; held-out after 30 steps: "
          + ", ".join(f"{k} {v:.3f}" for k, v in results["final"].items() if isinstance(v, float)))


def test_eval_share_holds_out_whole_shards(sop_data, tmp_path):
    root, _, _ = sop_data
    summary = train_main([f"--manifest={root / 'train'}", f"--model_dir={tmp_path}", "--model_config=tiny",
                          "--train_batch_size=8", "--num_train_steps=4", "--steps_per_loop=4", "--eval_share=0.5",
                          "--eval_max_batches=2"])
    (result,) = summary["eval_results"]
    assert result["step"] == 4 and result["examples"] == 16
    assert read_phase(str(root / "train")).files[-1].endswith("part-00001-of-00002.tfrecord")  # the one held out
