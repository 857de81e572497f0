"""`wwm rerun MANIFEST --output DIR`: a manifest is a complete recipe. Its rerun writes the very
bytes (every shard, every dead letter), from the inputs where they were or where they moved, and
refuses in one line where an input, the vocabulary or a version is not the manifest's."""
import json
import shutil

import pytest

from tests.test_pipeline import LOCAL
from wwm_cli import main
from wwm_cli.data import prepare, run
from wwm_cli.rerun import rerun
from wwm_core.errors import UsageError


def write_corpus(folder, files=3):
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        documents = ["\n".join(f"第{f}个文件第{d}篇文档的第{s}句话，讲述全词掩码。" for s in range(d % 4 + 2))
                     for d in range(40)]
        (folder / f"part{f}.txt").write_text("\n\n".join(documents) + "\n\n\n\x01bad\n", encoding="utf-8")
    return folder


def output_bytes(folder) -> dict:
    """Every file a run wrote but its manifests (which hold the command and times), by path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerun")
    corpus = write_corpus(root / "corpus")
    manifest = run([f"--input={corpus}/*.txt", f"--output={root / 'first'}", "--segmenter=jieba",
                    "--max_seq_length=128,256", "--num_shards=2", "--dupe_factor=2", *LOCAL])
    return root, corpus, manifest


def test_a_rerun_writes_the_same_bytes(made):
    root, _, manifest = made
    assert manifest["config"]["output"]["bucket_bytes"] > 0, "the bucket size is in the manifest"
    assert {entry["source"] for entry in manifest["inputs"]} == {"text"}
    again = rerun([str(root / "first" / "manifest.json"), f"--output={root / 'again'}", *LOCAL])
    assert output_bytes(root / "again") == output_bytes(root / "first") != {}
    assert again["counters"] == manifest["counters"]


def test_a_rerun_from_inputs_that_moved_writes_the_same_bytes(made, tmp_path):
    root, corpus, _ = made
    moved = tmp_path / "elsewhere" / "texts"
    shutil.copytree(corpus, moved)
    rerun([str(root / "first"), f"--output={tmp_path / 'moved'}", f"--input={moved}/*.txt", *LOCAL])
    assert output_bytes(tmp_path / "moved") == output_bytes(root / "first")


def test_a_rerun_refuses_an_input_that_changed(made, tmp_path):
    root, corpus, _ = made
    changed = tmp_path / "changed"
    shutil.copytree(corpus, changed)
    data = (changed / "part1.txt").read_bytes()
    (changed / "part1.txt").write_bytes(data.replace("第1个".encode(), "第7个".encode(), 1))  # same size
    with pytest.raises(UsageError, match=r"part1.txt's crc32c is .* the manifest's input .* had .*: not the same"):
        rerun([str(root / "first"), f"--output={tmp_path / 'out'}", f"--input={changed}/*.txt", *LOCAL])
    (changed / "part2.txt").unlink()
    with pytest.raises(UsageError, match="--input finds no file for 1 of the manifest's inputs: text:part2.txt"):
        rerun([str(root / "first"), f"--output={tmp_path / 'out'}", f"--input={changed}/*.txt", *LOCAL])
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_rerun_with_other_versions_is_refused_unless_asked_for(made, tmp_path, capsys):
    root, _, _ = made
    copy = tmp_path / "copy"
    shutil.copytree(root / "first", copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["libraries"]["numpy"] = "1.0.0"
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["rerun", str(copy), f"--output={tmp_path / 'out'}", *LOCAL]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("wwm rerun: error: ") and "numpy 1.0.0 in the manifest" in line
    assert main(["rerun", str(copy), f"--output={tmp_path / 'out'}", "--other_versions", *LOCAL]) == 0
    assert "WARNING: made with other versions" in capsys.readouterr().out
    assert output_bytes(tmp_path / "out") == output_bytes(root / "first")


def test_a_prepare_reruns_byte_for_byte(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", files=2)
    prepare([f"--input={corpus}/*.txt", f"--output={tmp_path / 'prepared'}", *LOCAL])
    again = rerun([str(tmp_path / "prepared"), f"--output={tmp_path / 'again'}", *LOCAL])
    assert again["kind"] == "documents"
    assert output_bytes(tmp_path / "again") == output_bytes(tmp_path / "prepared") != {}
