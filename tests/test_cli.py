"""The `wwm` command as a user meets it: help, missing optional dependencies, the sample corpus,
--source parsing, progress, inspect on every output kind, and what the manifests record."""
import fcntl
import json
import os
import pathlib
import pty
import re
import select
import struct
import subprocess
import sys
import termios

import pyarrow.parquet as pq
import pytest

from tests.conftest import crc32c_as_gcs_reports_it, shared_file
from tests.test_pipeline import LOCAL, write_text_corpus
from wwm_cli import main

WWM = pathlib.Path(sys.executable).parent / "wwm"  # the console script pip installed
COUNTERS_DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "output.md"  # its Counters table
SUBCOMMANDS = ("run", "prepare", "rerun", "segment", "segmenter", "plan", "submit", "tokenizer", "recipe", "inspect",
               "report", "train", "sample-path")
HELP_OF = (["run"], ["prepare"], ["segment"], ["segmenter"], ["segmenter", "train"], ["segmenter", "eval"],
           ["plan"], ["submit"], ["tokenizer"], ["tokenizer", "train"], ["recipe"], ["recipe", "list"], ["recipe", "show"], ["inspect"], ["report"], ["train"],
           ["sample-path"])


def wwm(*argv, check=True, env=None, **kwargs):
    result = subprocess.run([str(WWM), *argv], capture_output=True, text=True, env=env, **kwargs)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def blocked_import_run(blocked, argv):
    """``wwm ARGV`` in a fresh interpreter where importing each of ``blocked`` fails, as when the
    package is not installed (``sys.modules[name] = None`` is Python's documented way to make an
    import raise ImportError)."""
    code = (f"import sys\nfor name in {list(blocked)!r}:\n    sys.modules[name] = None\n"
            f"from wwm_cli import main\nsys.exit(main({list(argv)!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).resolve().parents[1])


# ---------------------------------------------------------------- help

def test_wwm_help_lists_every_subcommand_and_exits_0():
    result = wwm("--help")
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert listed == set(SUBCOMMANDS)
    for line in result.stdout.splitlines():
        if line.startswith("  "):
            assert len(line.split()) > 3, f"no description: {line!r}"
    assert wwm("help").stdout == result.stdout
    bare = wwm(check=False)
    assert bare.returncode == 2 and "commands:" in bare.stdout
    unknown = wwm("frobnicate", check=False)
    assert unknown.returncode == 2 and "unknown command 'frobnicate'" in unknown.stderr


def help_entries(text: str) -> list:
    """argparse's option entries ("  --flag VALUE  help ..."), continuation lines joined."""
    entries, current = [], None
    for line in text.splitlines():
        if re.match(r"^  -", line):
            if current:
                entries.append(current)
            current = line
        elif current is not None and re.match(r"^\s{6,}\S", line):
            current += " " + line.strip()
        else:
            if current:
                entries.append(current)
            current = None
    if current:
        entries.append(current)
    return entries


@pytest.mark.parametrize("command", HELP_OF, ids=" ".join)
def test_every_flag_shows_its_default(command):
    result = wwm(*command, "--help")
    entries = help_entries(result.stdout)
    assert entries, result.stdout
    missing = [entry for entry in entries if not entry.lstrip().startswith("-h, --help")
               and not re.search(r"\(default: [^)]*\)|\(required\)|default: ", entry)]
    assert not missing, "\n".join(missing)
    assert "(default: None)" not in result.stdout, "a default the user cannot act on"


def test_run_help_shows_real_defaults():
    text = " ".join(wwm("run", "--help").stdout.split())
    assert "(default: 12345)" in text  # --random_seed
    assert "(default: auto)" in text  # --progress
    assert "(default: tfrecord)" in text  # --output_format
    assert "default: the recipe's" in text  # recipe settings say where their default comes from


# ---------------------------------------------------------------- optional dependencies

def test_a_neural_ltp_model_without_ltp_is_one_line_before_any_work(tmp_path):
    model = tmp_path / "neural_model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"nerual": True}))  # LTP's own spelling
    corpus = write_text_corpus(tmp_path / "corpus.txt")
    result = blocked_import_run(["ltp", "torch"], ["run", f"--input={corpus}", f"--output={tmp_path / 'out'}",
                                                   "--segmenter=ltp", f"--ltp_model={model}", "--max_seq_length=128"])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("wwm run: error:")]
    assert len(lines) == 1 and "pip install 'wwm-data[ltp-neural]'" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists(), "work started before the error"


def test_report_without_matplotlib_is_one_line_before_any_work(tmp_path):
    corpus = write_text_corpus(tmp_path / "corpus.txt")
    result = blocked_import_run(["matplotlib"], ["run", f"--input={corpus}", f"--output={tmp_path / 'out'}",
                                                 "--segmenter=jieba", "--max_seq_length=128", "--report"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "wwm run: error: wwm report needs matplotlib for its plots: pip install 'wwm-data[report]' "
        "(or pip install matplotlib)")
    assert not (tmp_path / "out").exists(), "work started before the error"
    result = blocked_import_run(["matplotlib"], ["report", str(tmp_path)])
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "wwm-data[report]" in result.stderr


# ---------------------------------------------------------------- sample corpus, --source

def test_sample_path_prints_the_bundled_corpus():
    path = pathlib.Path(wwm("sample-path").stdout.strip())
    assert path.is_absolute() and path.name == "corpus.txt"
    documents = [d for d in path.read_text(encoding="utf-8").split("\n\n") if d.strip()]
    assert len(documents) >= 5 and all("。" in d for d in documents)


def test_a_quoted_source_value_keeps_its_commas(tmp_path):
    from wwm_cli.flags import source_fields

    assert source_fields('name=web,format=text,"input=a,b/*.txt"') == {"name": "web", "format": "text",
                                                                       "input": "a,b/*.txt"}
    assert source_fields(r"name=web,input=a\,b/*.txt") == {"name": "web", "input": "a,b/*.txt"}
    folder = tmp_path / "web,2019"
    folder.mkdir()
    write_text_corpus(folder / "part.txt")
    manifest = main_json(["prepare", f'--source=name=web,format=text,"input={folder}/*.txt"',
                          f"--output={tmp_path / 'prepared'}", "--progress=off", *LOCAL], tmp_path / "prepared")
    assert manifest["config"]["sources"][0]["patterns"] == [f"{folder}/*.txt"]
    assert manifest["num_documents"] == 5 and manifest["inputs"][0]["path"] == str(folder / "part.txt")
    text = " ".join(wwm("prepare", "--help").stdout.split())
    assert "double quotes" in text and "escaped" in text


def main_json(argv, output) -> dict:
    assert main(argv) == 0
    return json.loads((pathlib.Path(output) / "manifest.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- progress

def run_in_terminal(argv, cwd, *, columns: int = 80) -> tuple:
    """(exit status, everything written) of ``wwm ARGV`` with a pseudo-terminal of ``columns``
    as its stdin, stdout and stderr, as in an interactive shell."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # the terminal's size rules
    process = subprocess.Popen([str(WWM), *argv], stdin=secondary, stdout=secondary, stderr=secondary, cwd=cwd,
                               env=env)
    os.close(secondary)
    output = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if ready:
            try:
                data = os.read(primary, 1 << 16)
            except OSError:  # the terminal closed: the process has exited
                break
            if not data:
                break
            output += data
        elif process.poll() is not None:
            break
    os.close(primary)
    return process.wait(), output.decode("utf-8", "replace")


def final_rows(output: str) -> dict:
    """{bar: what it shows last} of rich's bars in a terminal's output, escapes removed."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    rows = {}
    for description, elapsed, remaining, text in re.findall(
            r"(read and cleaned|sentences segmented|shards written|files written|documents segmented)\s+\S+\s+"
            r"(\d+:\d\d:\d\d) ETA\s+(\S+)\s+([^\r\n]*?)\s*(?=read and|sentences seg|shards wr|files wr|documents seg|"
            r"[\r\n]|$)", plain):
        rows[description] = text
    return rows


def test_a_run_in_a_terminal_shows_live_progress_per_stage(tmp_path):
    pages = shared_file("zhwiki_xml/zhwiki-test-pages.xml")
    status, output = run_in_terminal(["run", f"--input={pages}", "--input_format=wiki", "--segmenter=jieba",
                                      "--max_seq_length=128", "--num_shards=2", f"--output={tmp_path / 'out'}"],
                                     cwd=tmp_path, columns=140)
    assert status == 0, output
    assert "\x1b[" in output, "no live display"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    counters = manifest["counters"]
    rows = final_rows(output)
    # Every <page> of the dump is a record read; the bar runs on the input's bytes. Independent:
    # the XML's own pages and the file's size.
    pages_in_xml = pages.read_text(encoding="utf-8").count("<page>")
    megabytes = pages.stat().st_size / 1e6
    kept = counters["documents_out"] + sum(v for k, v in counters.items()
                                           if k.startswith("documents_filtered.") and "duplicate" in k)
    assert rows["read and cleaned"] == (f"{pages_in_xml:,} documents ({kept:,} kept), "
                                        f"{megabytes:,.1f}/{megabytes:,.1f} MB")
    assert rows["sentences segmented"] == f"{counters['sentences']:,}/{counters['sentences']:,} sentences"
    shards = len(list((tmp_path / "out").glob("part-*.tfrecord")))
    assert shards >= 2 and rows["shards written"] == f"{shards}/{shards} shards"
    assert re.search(r"ETA\s+\d+:\d\d:\d\d", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output))


def test_progress_is_off_without_a_terminal_and_plain_lines_when_asked(tmp_path):
    corpus = write_text_corpus(tmp_path / "corpus.txt")
    common = [f"--input={corpus}", "--segmenter=jieba", "--max_seq_length=128", "--num_shards=2"]
    quiet = wwm("run", *common, f"--output={tmp_path / 'a'}")  # auto, and stderr is a pipe
    assert "progress (" not in quiet.stderr and "\x1b[" not in quiet.stderr
    shown = wwm("run", *common, f"--output={tmp_path / 'b'}", "--progress=on")
    lines = [line for line in shown.stderr.splitlines() if line.startswith("progress (")]
    assert lines and "\x1b[" not in shown.stderr
    shards = len(list((tmp_path / "b").glob("part-*.tfrecord")))
    size = corpus.stat().st_size / 1e6
    assert f"read and cleaned 5 documents (5 kept), {size:,.1f}/{size:,.1f} MB" in lines[-1]
    assert f"shards written {shards}/{shards} shards" in lines[-1]
    for command in (["prepare", f"--input={corpus}", f"--output={tmp_path / 'prepared'}"],
                    ["segment", f"--input={tmp_path / 'prepared'}", "--segmenter=jieba"]):
        shown = wwm(*command, "--progress=on")
        [line] = [line for line in shown.stderr.splitlines() if line.startswith("progress (")]
        files = len(list((tmp_path / "prepared" / "documents").glob("*.parquet")))
        assert f"files written {files}/{files} files" in line
    assert "documents segmented 5/5 documents" in line


def test_the_program_loses_no_output_and_keeps_its_status(tmp_path):
    """`wwm` as a program: output to a pipe, which Python buffers, arrives whole, and the exit
    status is the command's."""
    corpus = write_text_corpus(tmp_path / "corpus.txt")
    result = wwm("run", f"--input={corpus}", f"--output={tmp_path / 'out'}", "--segmenter=jieba",
                 "--max_seq_length=128", "--num_shards=1")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    counters = dict(line.split() for line in result.stdout.splitlines()
                    if re.fullmatch(r"  [\w.]+\s+\d+", line))
    assert counters == {name: str(value) for name, value in manifest["counters"].items()
                        if not name.startswith("hist.")}
    assert result.stdout.endswith(f"  tokens.unknown{' ' * 27}{manifest['counters']['tokens.unknown']}\n")
    module = subprocess.run([sys.executable, "-m", "wwm_cli", "run", f"--input={tmp_path / 'none'}/*.txt",
                             f"--output={tmp_path / 'never'}"], capture_output=True, text=True)
    assert module.returncode == 2 and "matches no file" in module.stderr


def test_the_progress_channel_sums_counts_from_many_processes(tmp_path):
    from pipelines.progress import ProgressChannel

    channel = ProgressChannel(str(tmp_path))
    code = ("import sys\nfrom pipelines.progress import ProgressChannel\n"
            "tally = ProgressChannel(sys.argv[1]).tally('read')\n"
            "for _ in range(1000):\n    tally.add(n=1, sentences=3)\ntally.flush()\n")
    workers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                                cwd=pathlib.Path(__file__).resolve().parents[1]) for _ in range(4)]
    assert all(worker.wait() == 0 for worker in workers)
    assert channel.totals() == {"read": {"n": 4000, "sentences": 12000}}
    from wwm_cli.launch import launch

    assert all(launch(flags).local for flags in ([], ["--runner=BundleBasedDirectRunner"], ["--runner", "FnApiRunner"],
                                               ["--runner=PrismRunner"]))
    assert not launch(["--runner=SparkRunner", "--spark_master_url=local[2]"]).local


# ---------------------------------------------------------------- inspect

@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """A two-phase run writing TFRecords and Parquet, a static TFRecord-only run, a prepared
    corpus and its jieba segmentation cache, all from the same small corpus."""
    root = tmp_path_factory.mktemp("outputs")
    corpus = write_text_corpus(root / "corpus.txt")
    common = ["--segmenter=jieba", "--dupe_factor=2", "--num_shards=2", "--progress=off", *LOCAL]
    assert main(["run", f"--input={corpus}", f"--output={root / 'both'}", "--max_seq_length=64,128",
                 "--output_format=both", *common]) == 0
    assert main(["run", f"--input={corpus}", f"--output={root / 'static'}", "--max_seq_length=128", *common]) == 0
    assert main(["prepare", f"--input={corpus}", f"--output={root / 'prepared'}", "--progress=off", *LOCAL]) == 0
    assert main(["segment", f"--input={root / 'prepared'}", "--segmenter=jieba", "--progress=off", *LOCAL]) == 0
    return root


def inspect_json(*argv) -> list:
    result = wwm("inspect", *argv, "--json")
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_inspect_picks_an_instance_and_prints_its_ids(outputs):
    import tensorflow as tf

    phase = outputs / "both" / "seq128"
    manifest = json.loads((phase / "manifest.json").read_text())
    tfrecord = phase / manifest["files"][0]
    # Independent: TensorFlow's reader and the vocabulary file read as lines.
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(tfrecord))]
    vocab = (phase / "vocab.txt").read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028 is a token
    index = len(records) // 2  # shard sizes depend on the document ids, which hold the temporary path
    [shown] = inspect_json(str(tfrecord), "--index", str(index))
    features = records[index].features.feature
    length = sum(features["input_mask"].int64_list.value)
    assert shown["index"] == index and shown["input_ids"] == list(features["input_ids"].int64_list.value)[:length]
    assert shown["tokens"] == [vocab[i] for i in shown["input_ids"]]
    num_masked = int(sum(features["masked_lm_weights"].float_list.value))
    assert shown["masked_ids"] == list(features["masked_lm_ids"].int64_list.value)[:num_masked]
    assert shown["next_sentence_label"] == features["next_sentence_labels"].int64_list.value[0]
    result = wwm("inspect", str(tfrecord), "--index", str(len(records)), check=False)
    assert result.returncode == 2 and f"there are only {len(records)} instances" in result.stderr


def test_inspect_shows_word_groups_from_parquet_and_says_static_tfrecords_have_none(outputs):
    phase = outputs / "both" / "seq64"
    manifest = json.loads((phase / "manifest.json").read_text())
    rows = pq.read_table(phase / manifest["parquet_files"][0]).to_pylist()  # independent: pyarrow
    shown = inspect_json(str(outputs / "both"), "--phase", "64", "--limit", "0")
    assert len(shown) == manifest["num_instances"]
    first = shown[0]
    assert first["input_ids"] == rows[0]["input_ids"][:len(first["input_ids"])]
    assert first["word_ids"] == rows[0]["word_ids"][:len(first["input_ids"])]
    for instance in shown:
        groups = instance["word_groups"]
        covered = [p for group in groups for p in group]
        specials = [p for p, token in enumerate(instance["tokens"]) if token in ("[CLS]", "[SEP]")]
        assert sorted(covered + specials) == list(range(len(instance["tokens"])))
        assert all(group == list(range(group[0], group[-1] + 1)) for group in groups)
    text = wwm("inspect", str(outputs / "both"), "--phase", "64", "--index", "0")
    assert "·" in text.stdout and "words=" in text.stdout
    static = wwm("inspect", str(outputs / "static"), "--limit", "1")
    assert "static TFRecords (Google's schema) carry no word ids" in static.stderr
    assert len(static.stdout.splitlines()) == 2
    two_phases = inspect_json(str(outputs / "both"), "--limit", "0")
    assert len(two_phases) == sum(json.loads((outputs / "both" / f"seq{n}" / "manifest.json").read_text())
                                  ["num_instances"] for n in (64, 128))


def test_inspect_shows_prepared_documents(outputs):
    manifest = json.loads((outputs / "prepared" / "manifest.json").read_text())
    rows = [row for name in manifest["files"] for row in pq.read_table(outputs / "prepared" / name).to_pylist()]
    [shown] = inspect_json(str(outputs / "prepared"), "--index", "2")
    assert {k: shown[k] for k in rows[2]} == rows[2]
    text = wwm("inspect", str(outputs / "prepared" / "documents"), "--limit", "1").stdout
    assert text.startswith(f"# 0  {rows[0]['id']}") and rows[0]["sentences"][0] in text


def test_reading_parquet_through_a_python_handle_never_aborts_at_exit(outputs):
    # pyarrow's threads could still hold the handle after read_table returned and abort the
    # interpreter at exit (apache/arrow#33975): before the fix, 6 of 20 of these runs died with
    # "terminate called without an active exception".
    for _ in range(8):
        result = wwm("inspect", str(outputs / "prepared" / "segmentation"), "--limit", "0", "--json", check=False)
        assert result.returncode == 0 and "terminate called" not in result.stderr, result.stderr


def test_inspect_shows_the_cached_words(outputs):
    import jieba

    shown = inspect_json(str(outputs / "prepared" / "segmentation"), "--limit", "0")
    documents = {row["id"]: row for name in json.loads((outputs / "prepared" / "manifest.json").read_text())["files"]
                 for row in pq.read_table(outputs / "prepared" / name).to_pylist()}
    assert len(shown) == len(documents)
    for item in shown:
        sentences = documents[item["id"]]["sentences"]
        assert [s["words"] for s in item["sentences"]] == [jieba.lcut(s, HMM=True) for s in sentences]
    [one] = inspect_json(str(outputs / "prepared" / "segmentation"), "--index", "1")
    assert one == {**shown[1], "index": 1}


def test_inspect_refuses_what_is_not_an_output(tmp_path):
    result = wwm("inspect", str(tmp_path), check=False)
    assert result.returncode == 2 and "not the output of a finished" in result.stderr


# ---------------------------------------------------------------- manifests

def all_keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from all_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_keys(item)


def test_manifests_record_the_command_inputs_and_the_prepared_link(outputs, tmp_path):
    corpus = outputs / "corpus.txt"
    manifests = {path: json.loads(path.read_text()) for path in sorted(outputs.rglob("*.json"))
                 if path.name in ("manifest.json", "segmentation.json")}
    assert sorted(m["kind"] for m in manifests.values()) == ["documents", "instances", "instances", "instances",
                                                             "phases", "segmentation"]
    for path, manifest in manifests.items():
        assert not [k for k in all_keys(manifest) if k.startswith("_")], f"{path}: private keys"
        assert manifest["command"][0] == "wwm" and manifest["tool_version"] and manifest["libraries"]["apache-beam"]
        assert manifest["started_at"] <= manifest["finished_at"]
    top = manifests[outputs / "both" / "manifest.json"]
    assert top["inputs"] == [{"path": str(corpus), "bytes": corpus.stat().st_size, "source": "text",
                              "crc32c": crc32c_as_gcs_reports_it(corpus.read_bytes())}]
    prepared = manifests[outputs / "prepared" / "manifest.json"]
    assert set(prepared["config"]) == {"sources", "cleaning", "output"}, "only what prepare used"
    run = main_json(["run", f"--input={outputs / 'prepared' / 'documents' / '*.parquet'}", "--input_format=parquet",
                     f"--output={tmp_path / 'from_prepared'}", "--segmenter=jieba", "--max_seq_length=128",
                     "--progress=off", *LOCAL], tmp_path / "from_prepared")
    assert run["prepared"]["manifest"] == str(outputs / "prepared" / "manifest.json")
    assert run["prepared"]["sources"] == prepared["config"]["sources"]
    assert run["prepared"]["cleaning"] == prepared["config"]["cleaning"]
    assert run["prepared"]["num_documents"] == prepared["num_documents"]
    assert "cleaning" not in run["config"], "prepare cleaned these documents, not this run"
    segmentation_path, segmentation = next((p, m) for p, m in manifests.items() if p.name == "segmentation.json")
    assert [i["bytes"] for i in segmentation["inputs"]] == [
        (outputs / "prepared" / name).stat().st_size for name in prepared["files"]]
    # The cache files' sizes and crc32c, as for every other output.
    assert set(segmentation["file_info"]) == set(segmentation["files"])
    for name, info in segmentation["file_info"].items():
        data = (segmentation_path.parent / name).read_bytes()
        assert (info["bytes"], info["crc32c"]) == (len(data), crc32c_as_gcs_reports_it(data))
        assert info["records"] == pq.read_metadata(segmentation_path.parent / name).num_rows


def counter_pattern(name: str) -> str:
    """A counter's (or histogram's) name as the docs' tables write it: its variable parts as <...>."""
    # A several-phase run's top manifest holds each phase's counters as phase.<length>.<name>.
    name = re.sub(r"^phase\.\d+\.", "", name)
    return re.sub(r"^source\..+\.(documents|characters|instances)$", r"source.<name>.\1", name)


def test_every_counter_has_a_row_in_the_docs(outputs, tmp_path):
    """Counters of runs over every input kind and several settings, each named in docs/output.md's table."""
    documented = set(re.findall(r"^\| `([^`]+)` \|", COUNTERS_DOC.read_text(encoding="utf-8"), re.M))
    news = shared_file("ext_corpora/nlp_chinese_corpus_readme_examples.jsonl")
    pages = shared_file("zhwiki_xml/zhwiki-test-pages.xml")
    broken = shared_file("zhwiki_xml/zhwiki-broken-4.xml")
    runs = [["--input", str(news), "--input_format=jsonl", "--jsonl_preset=news2016zh", "--sentence_task=sop",
             "--vocab_equivalents=true", "--opencc_config=t2s"],
            ["--input", str(pages), "--input", str(broken), "--input_format=wiki", "--sentence_task=none",
             "--paired_input=false", "--masking=dynamic", "--near_duplicate_threshold=0.8"],
            ["--input", str(pages), "--input_format=wiki", "--sentence_task=none", "--paired_input=false",
             "--pack_across_documents"]]
    seen = set()
    for number, extra in enumerate(runs):
        output = tmp_path / f"run{number}"
        seen |= set(main_json(["run", *extra, f"--output={output}", "--segmenter=jieba", "--max_seq_length=128",
                               "--progress=off", "--min_document_chars=20", *LOCAL], output)["counters"])
    histograms = set()
    for path in list(outputs.rglob("manifest.json")) + list(outputs.rglob("segmentation.json")) + \
            list(tmp_path.rglob("manifest.json")):
        manifest = json.loads(path.read_text())
        seen |= set(manifest["counters"])
        histograms |= set(manifest.get("histograms") or {})
    undocumented = sorted({counter_pattern(name) for name in seen | histograms} - documented)
    assert not undocumented, f"counters or histograms missing from docs/output.md's tables: {undocumented}"
    assert histograms and not any(name.startswith(("hist.", "unknown_token_text.")) for name in seen), \
        "histograms and texts are typed, not counters"
