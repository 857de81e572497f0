"""The recipes and output forms of `wwm run` on real text (UD Chinese GSDSimp sentences, written by
Wikipedia's authors), each checked by reading the output with another library (TensorFlow,
pyarrow, Hugging Face datasets) and against the source text and jieba's words, not our own code."""
import json
import random
import re

import jieba
import pyarrow.parquet as pq
import pytest

from tests.conftest import shared_file
from wwm_cli import main
from wwm_cli.data import run
from wwm_core.errors import UsageError
from wwm_core.recipes import RECIPES

tf = pytest.importorskip("tensorflow")
LOCAL = ["--runner=BundleBasedDirectRunner"]
CJK = re.compile(r"^[\u4e00-\u9fff]$")


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory):
    """UD sentences shuffled into documents of 5 to 15 sentences, in Google's text layout."""
    sentences = []
    for name in ("zh_gsdsimp-ud-dev.conllu", "zh_gsdsimp-ud-test.conllu"):
        text = shared_file(f"ud_chinese_gsdsimp/{name}").read_text(encoding="utf-8")
        sentences += [line[len("# text = "):].strip() for line in text.splitlines() if line.startswith("# text = ")]
    rng, documents = random.Random(0), []
    while sentences:
        size = rng.randint(5, 15)
        documents.append(sentences[:size])
        sentences = sentences[size:]
    path = tmp_path_factory.mktemp("real") / "ud_documents.txt"
    path.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    return path, documents


def wwm_run(corpus, output, *flags):
    return run([f"--input={corpus}", f"--output={output}", "--segmenter=jieba", "--num_shards=2", *flags, *LOCAL])


def parsed_records(folder, manifest, spec=None):
    """Every record of a phase's TFRecords, parsed by TensorFlow with the features named in the manifest."""
    files = [str(folder / name) for name in manifest["files"]]
    records = []
    for record in tf.data.TFRecordDataset(files):
        example = tf.train.Example.FromString(record.numpy())
        records.append({name: list(feature.int64_list.value or feature.float_list.value)
                        for name, feature in example.features.feature.items()})
    return records


def vocabulary(folder):
    return (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")


def whole_word_uniformity(records, vocab):
    """Independent whole-word check: jieba re-segments each run of CJK characters of the decoded
    instance; of its inner words of two or more characters (the edges may be cut by the
    instance), the share masked all or none."""
    uniform = total = 0
    for record in records:
        ids = list(record["input_ids"])
        masked = {p for p, w in zip(record["masked_lm_positions"], record["masked_lm_weights"]) if w > 0}
        for p, original in zip(record["masked_lm_positions"], record["masked_lm_ids"]):
            if p in masked:
                ids[p] = original
        run_positions = []
        for position in range(len(ids) + 1):
            if position < len(ids) and CJK.match(vocab[ids[position]]):
                run_positions.append(position)
                continue
            if len(run_positions) >= 2:
                words = jieba.lcut("".join(vocab[ids[p]] for p in run_positions), HMM=True)
                offset = 0
                for index, word in enumerate(words):
                    span = run_positions[offset:offset + len(word)]
                    offset += len(word)
                    if len(word) >= 2 and 0 < index < len(words) - 1:
                        total += 1
                        uniform += len({p in masked for p in span}) == 1
            run_positions = []
    return uniform / total, total


def test_roberta_recipe_masks_fifteen_percent_of_real_text_as_whole_words(real_corpus, tmp_path):
    corpus, _ = real_corpus
    manifest = wwm_run(corpus, tmp_path / "out", "--recipe=roberta-wwm-ext")
    assert manifest["max_seq_length"] == 512 and manifest["max_predictions_per_seq"] == 80
    records = parsed_records(tmp_path / "out", manifest)
    real_tokens = sum(sum(r["input_mask"]) for r in records)
    masked = sum(sum(r["masked_lm_weights"]) for r in records)
    share = masked / real_tokens
    print(f"roberta-wwm-ext on UD text: {len(records)} instances, masked share {share:.4f}")
    assert abs(share - 0.15) <= 0.01
    assert manifest["statistics"]["masked_share"]["measured"] == pytest.approx(share)
    uniformity, words = whole_word_uniformity(records, vocabulary(tmp_path / "out"))
    print(f"jieba's inner words masked all-or-none: {uniformity:.4f} of {words}")
    assert uniformity >= 0.995 and words > 1000


def test_too_few_predictions_are_refused_unless_meant(real_corpus, tmp_path, capsys):
    corpus, _ = real_corpus
    status = main(["run", f"--input={corpus}", f"--output={tmp_path / 'o'}", "--max_seq_length=512",
                   "--max_predictions_per_seq=20", "--segmenter=jieba"])
    error = capsys.readouterr().err
    assert status == 2 and "use at least 77" in error and "80" in error and "--allow_fewer_predictions" in error
    assert len(error.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    manifest = wwm_run(corpus, tmp_path / "meant", "--recipe=roberta-wwm-ext", "--max_predictions_per_seq=20",
                       "--allow_fewer_predictions", "--dupe_factor=1")
    assert manifest["statistics"]["masked_share"]["measured"] < 0.10, "the user asked for fewer"
    assert manifest["counters"]["masked_tokens"] <= 20 * manifest["num_instances"]


def test_a_two_phase_recipe_writes_both_phases_from_one_pass(real_corpus, tmp_path):
    corpus, _ = real_corpus
    top = wwm_run(corpus, tmp_path / "both", "--recipe=bert-wwm-ext", "--dupe_factor=2")
    assert top["kind"] == "phases"
    assert [p["max_seq_length"] for p in top["phases"]] == [128, 512]
    # One pass: the documents were read, cleaned and segmented once.
    assert top["counters"]["records_in"] == top["counters"]["documents_out"] == len(real_corpus[1])
    for length, predictions in ((128, 20), (512, 80)):
        folder = tmp_path / "both" / f"seq{length}"
        phase = json.loads((folder / "manifest.json").read_text())
        assert phase["max_seq_length"] == length and phase["max_predictions_per_seq"] == predictions
        assert (folder / "vocab.txt").exists() and phase["num_instances"] == len(parsed_records(folder, phase))
        alone = wwm_run(corpus, tmp_path / f"alone{length}", "--recipe=bert-wwm-ext", "--dupe_factor=2",
                        f"--max_seq_length={length}")
        assert alone["files"] == phase["files"]
        for name in phase["files"]:
            assert (folder / name).read_bytes() == (tmp_path / f"alone{length}" / name).read_bytes()


def test_sop_pairs_are_consecutive_text_swapped_half_the_time(real_corpus, tmp_path):
    corpus, documents = real_corpus
    manifest = wwm_run(corpus, tmp_path / "sop", "--recipe=bert-wwm", "--max_seq_length=128",
                       "--sentence_task=sop", "--dupe_factor=3")
    assert manifest["sentence_task"] == "sop" and manifest["next_sentence_prediction"] is True
    vocab = vocabulary(tmp_path / "sop")
    known = set(vocab)
    # The source as the instances can show it: CJK characters the vocabulary has ([UNK] is dropped).
    texts = ["".join(c for c in "".join(d) if CJK.match(c) and c in known) for d in documents]
    records = parsed_records(tmp_path / "sop", manifest)
    swapped = checked = 0
    for record in records:
        ids = list(record["input_ids"])
        for p, original, w in zip(record["masked_lm_positions"], record["masked_lm_ids"], record["masked_lm_weights"]):
            if w > 0:
                ids[p] = original
        tokens = [vocab[i] for i in ids[:int(sum(record["input_mask"]))]]
        seps = [i for i, t in enumerate(tokens) if t == "[SEP]"]
        if len(seps) < 2:
            continue
        first = "".join(t for t in tokens[1:seps[0]] if CJK.match(t))
        second = "".join(t for t in tokens[seps[0] + 1:seps[1]] if CJK.match(t))
        if len(first) < 4 or len(second) < 4:
            continue
        # Both segments from one document: find it, and their order in it.
        holders = [t for t in texts if first in t and second in t]
        assert holders, "the two segments come from one document"
        in_order = holders[0].index(first) < holders[0].index(second)
        assert in_order == (record["next_sentence_labels"][0] == 0)
        swapped += record["next_sentence_labels"][0]
        checked += 1
    share = swapped / checked
    print(f"SOP: {checked} pairs checked against the source, swapped share {share:.3f}")
    assert checked > 200 and abs(share - 0.5) <= 4 * (0.25 / checked) ** 0.5


def test_packing_fills_instances_across_documents(real_corpus, tmp_path):
    corpus, documents = real_corpus
    flags = ["--recipe=roberta-wwm-ext", "--sentence_task=none", "--paired_input=false", "--dupe_factor=2"]
    single = wwm_run(corpus, tmp_path / "single", *flags)
    packed = wwm_run(corpus, tmp_path / "packed", *flags, "--pack_across_documents")
    print("padding share: one document each", single["statistics"]["padding_share"], "packed",
          packed["statistics"]["padding_share"])
    # Packed instances end at a sentence end too: what is left is less than a sentence per instance.
    assert packed["statistics"]["padding_share"] < 0.1 and single["statistics"]["padding_share"] > 0.3
    # Each manifest estimates the other layout's padding.
    assert single["statistics"]["padding_share_packed_estimate"] == pytest.approx(
        packed["statistics"]["padding_share"], abs=0.02)
    assert packed["statistics"]["padding_share_unpacked_estimate"] == pytest.approx(
        single["statistics"]["padding_share"], abs=0.02)
    vocab = vocabulary(tmp_path / "packed")
    known = set(vocab)
    texts = {"".join(c for c in "".join(d) if CJK.match(c) and c in known) for d in documents}
    crossings = 0
    for record in parsed_records(tmp_path / "packed", packed):
        ids = list(record["input_ids"])
        for p, original, w in zip(record["masked_lm_positions"], record["masked_lm_ids"], record["masked_lm_weights"]):
            if w > 0:
                ids[p] = original
        tokens = [vocab[i] for i in ids[:int(sum(record["input_mask"]))]]
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens[1] != "[SEP]"
        assert set(record["segment_ids"]) == {0} and record["next_sentence_labels"] == [0]
        pieces = "".join(tokens[1:-1]).split("[SEP]")
        crossings += len(pieces) - 1
        for piece in pieces:  # between separators, text of one document
            cjk = "".join(c for c in piece if CJK.match(c))
            assert any(cjk in text for text in texts)
    assert crossings > 0


def test_dynamic_masking_writes_unmasked_instances_with_word_ids(real_corpus, tmp_path):
    corpus, _ = real_corpus
    manifest = wwm_run(corpus, tmp_path / "dynamic", "--recipe=roberta-wwm-ext", "--masking=dynamic",
                       "--dupe_factor=1", "--output_format=both")
    assert manifest["masking"] == "dynamic" and "masked_share" not in manifest["statistics"]
    records = parsed_records(tmp_path / "dynamic", manifest)
    assert set(records[0]) == {"input_ids", "input_mask", "segment_ids", "next_sentence_labels", "word_ids"}
    vocab = vocabulary(tmp_path / "dynamic")
    for record in records:
        length = int(sum(record["input_mask"]))
        tokens = [vocab[i] for i in record["input_ids"][:length]]
        assert "[MASK]" not in tokens
        words = record["word_ids"][:length]
        assert all(w == 0 for t, w in zip(tokens, words) if t in ("[CLS]", "[SEP]"))
        assert not any(record["word_ids"][length:])
        real_words = [w for w in words if w]
        assert real_words == sorted(real_words) and set(real_words) == set(range(1, max(real_words) + 1))
    # The Parquet rows are the same instances.
    rows = [row for name in manifest["parquet_files"] for row in pq.read_table(tmp_path / "dynamic" / name).to_pylist()]
    assert [r["input_ids"] for r in rows] == [r["input_ids"] for r in records]
    assert [r["word_ids"] for r in rows] == [r["word_ids"] for r in records]


def test_parquet_output_loads_with_hugging_face_datasets(real_corpus, tmp_path):
    datasets = pytest.importorskip("datasets")
    corpus, _ = real_corpus
    manifest = wwm_run(corpus, tmp_path / "pq", "--recipe=bert-wwm", "--max_seq_length=128", "--dupe_factor=1",
                       "--output_format=both")
    files = [str(tmp_path / "pq" / name) for name in manifest["parquet_files"]]
    dataset = datasets.load_dataset("parquet", data_files=files, split="train",
                                    cache_dir=str(tmp_path / "hf-cache"))
    assert len(dataset) == manifest["num_instances"]
    assert set(dataset.column_names) == {"input_ids", "token_type_ids", "attention_mask", "word_ids",
                                         "masked_lm_positions", "masked_lm_ids", "masked_lm_weights",
                                         "next_sentence_label", "instance_id"}
    # Instance ids: unique, and per shard the bucket's number (high 32 bits) and the row's (low 32).
    ids = dataset["instance_id"]
    assert len(set(ids)) == len(ids)
    for name in manifest["parquet_files"]:
        shard, rows = int(name.split("-")[1]), manifest["file_info"][name]["records"]
        shard_ids = pq.read_table(tmp_path / "pq" / name)["instance_id"].to_pylist()
        assert shard_ids == [(shard << 32) + row for row in range(rows)]
    records = parsed_records(tmp_path / "pq", manifest)
    for row, record in zip(dataset, records):
        assert row["input_ids"] == record["input_ids"] and row["attention_mask"] == record["input_mask"]
        assert row["token_type_ids"] == record["segment_ids"]
        assert row["masked_lm_positions"] == record["masked_lm_positions"]
        assert row["next_sentence_label"] == record["next_sentence_labels"][0]
        # A static mask covers whole word_ids groups.
        masked = {p for p, w in zip(row["masked_lm_positions"], row["masked_lm_weights"]) if w > 0}
        for word in set(row["word_ids"]) - {0}:
            members = {i for i, w in enumerate(row["word_ids"]) if w == word}
            assert members <= masked or not members & masked


def test_every_recipe_has_a_source_for_every_number(capsys):
    for name, recipe in RECIPES.items():
        assert main(["recipe", "show", name]) == 0
        shown = capsys.readouterr().out
        for setting in ("max_seq_lengths", "sentence_task", "dupe_factor", "masked_lm_prob", "max_predictions_per_seq",
                        "segmenter", "opencc_config", "model_config", "init_checkpoint", "optimizer"):
            assert setting in shown and recipe.sources.get(setting), (name, setting)
        assert "learning rate and warmup:" in shown and "source:" in shown
    assert main(["recipe", "list"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(RECIPES)


def test_explicit_flags_override_the_recipe_and_are_recorded(real_corpus, tmp_path):
    corpus, _ = real_corpus
    manifest = wwm_run(corpus, tmp_path / "o", "--recipe=roberta-wwm-ext", "--max_seq_length=256",
                       "--dupe_factor=1", "--sentence_task=sop")
    config = manifest["config"]
    assert config["instances"]["recipe"] == "roberta-wwm-ext"
    assert config["instances"]["phases"] == [{"max_seq_length": 256, "max_predictions_per_seq": 40}]
    assert sorted(config["overrides"]) == ["dupe_factor", "max_seq_lengths", "segmenter", "sentence_task"]
    assert manifest["sentence_task"] == "sop" and config["instances"]["paired_input"] is True
    with pytest.raises(UsageError, match="--pack_across_documents"):
        wwm_run(corpus, tmp_path / "bad", "--sentence_task=nsp", "--pack_across_documents")
