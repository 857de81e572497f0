"""The README's commands, run as a reader would run them, and the docs' links.

Every ``sh`` block of README.md is split into commands (continued lines joined), and each command
is either run here, in the README's order, in one temporary folder (so ``wwm inspect out/run`` reads
what ``wwm run ... --output out/run`` wrote), or listed in NOT_RUN with the reason. Each command
that runs has a check in CHECKS: its exit status and a file or a line it promises. The ``python``
blocks run the same way. ``wwm`` is this checkout's code (``python -m wwm_cli`` under the
interpreter that runs the tests), so the README is checked against the code beside it.

``wwm submit dataflow --print_only`` lists its inputs on ``gs://`` for its plan: it runs against a
GCS emulator on 127.0.0.1 holding the object the README names (Beam looks for credentials for about
25 s first, once). ``wwm plan`` reads only sizes: the test makes sparse files of the sizes the
README states.
"""
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Callable, Optional

import pytest

from tests.test_gcs import gcs_emulator

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.M | re.S)
LANGUAGES = {"sh", "text", "python"}  # commands, what a command prints, Python to run
MAX_README_LINES = 300

# Commands the README shows that do not run here, and why.
NOT_RUN = {
    "bash scripts/quickstart.sh": "it runs scripts/setup.sh first, which installs into .venv/ (minutes, the package "
                                  "index); test_the_quick_start_script_commands runs the rest of the script",
    "bash scripts/test.sh": "it runs the whole suite, this test included; CI runs it (.ci/run)",
    "source .venv/bin/activate": "it changes the reader's shell; here `wwm` is this checkout's code under the "
                                 "interpreter that runs the tests",
    "python3 -m venv ~/wwm && source ~/wwm/bin/activate": "it makes a virtualenv in the home folder; the tests run "
                                                          "in the one scripts/setup.sh makes",
    "pip install '.[tf,report]'": "it installs from the package index; scripts/setup.sh installs the pinned set "
                                  "the tests run with",
}


@dataclasses.dataclass(frozen=True)
class Check:
    """What a command promises: files it leaves (relative to the folder it ran in), a line of its
    standard output (a regular expression), anything else (a function of the folder), and whether
    it prints the lines of the ``text`` block the README shows after it (each up to its "...")."""
    files: tuple = ()
    stdout: Optional[str] = None
    more: Optional[Callable[[pathlib.Path], None]] = None
    prints_what_the_readme_shows: bool = False


def _manifest(folder: pathlib.Path, path: str) -> dict:
    return json.loads((folder / path).read_text(encoding="utf-8"))


def _two_phases_in_both_formats(folder):
    top = _manifest(folder, "out/run/manifest.json")
    assert top["kind"] == "phases", top.get("kind")
    for length in (128, 512):
        phase = _manifest(folder, f"out/run/seq{length}/manifest.json")
        assert phase["max_seq_length"] == length and phase["num_instances"] > 0
        assert phase["files"] and phase["parquet_files"], (phase["files"], phase["parquet_files"])


def _prepared_documents(folder):
    assert list((folder / "prepared" / "documents").glob("*.parquet")), "no prepared documents"


def _finished_word_cache(folder):
    assert list((folder / "prepared" / "segmentation").glob("jieba-*/segmentation.json")), "no finished cache"


def _cached_words_reused(folder):
    counters = _manifest(folder, "out/prepared/manifest.json")["counters"]
    assert counters["sentences.segmentation_cache_hit"] > 0, counters
    assert counters.get("sentences.segmentation_cache_miss", 0) == 0, counters


def _the_same_bytes_again(folder):
    written = {p.relative_to(folder / "out/run"): p.read_bytes() for p in (folder / "out/run").rglob("part-*")}
    again = {p.relative_to(folder / "out/again"): p.read_bytes() for p in (folder / "out/again").rglob("part-*")}
    assert written and again == written, sorted(written)


CHECKS = {
    "wwm --help": Check(stdout=r"^  run +corpus -> whole-word-masked instances"),
    'wwm run --input "$(wwm sample-path)" --output out/run --segmenter jieba --output_format both': Check(
        files=("out/run/seq128/part-00000-of-00001.tfrecord", "out/run/seq128/part-00000-of-00001.parquet",
               "out/run/seq512/part-00000-of-00001.tfrecord", "out/run/seq128/vocab.txt"),
        more=_two_phases_in_both_formats),
    'wwm prepare --input "$(wwm sample-path)" --output prepared': Check(
        files=("prepared/manifest.json",), more=_prepared_documents),
    "wwm segment --input prepared --segmenter jieba": Check(more=_finished_word_cache),
    "wwm run --input 'prepared/documents/*.parquet' --input_format parquet --segmenter jieba --output out/prepared":
        Check(files=("out/prepared/seq128/manifest.json",), more=_cached_words_reused),
    "wwm inspect out/run --phase 128 --limit 2": Check(
        stdout=r"^# 1  part-00000-of-00001\.parquet  next_sentence_label=[01]  masked=\d+  words=\d+$"),
    "wwm rerun out/run --output out/again": Check(more=_the_same_bytes_again),
    "wwm report out/run": Check(files=("out/run/report/report.html",), stdout=r"^wrote out/run/report/report\.html$"),
    "wwm plan --source name=zhwiki,format=wiki,input='dumps/zhwiki-*-pages-articles-multistream.xml.bz2' "
    "--source name=news,format=jsonl,preset=news2016zh,input='news2016zh/*.json'": Check(
        stdout=r"^input +2 files, 13\.00 GB ", prints_what_the_readme_shows=True),
    "wwm train --manifest out/run/seq128/manifest.json --model_dir models/tiny --model_config tiny "
    "--train_batch_size 16 --num_train_steps 20": Check(
        files=("models/tiny/export/bert_config.json", "models/tiny/export_hf/model.safetensors",
               "models/tiny/export_hf/config.json"),
        stdout=r"^phase 1: trained steps 0 -> 20: "),
    "wwm submit dataflow --print_only --work gs://my-bucket/wwm/bert-wwm --project my-project "
    "--image us-central1-docker.pkg.dev/my-project/wwm/wwm-data:0.1.0 "
    "--source name=zhwiki,format=wiki,input='gs://my-bucket/dumps/zhwiki-*-pages-articles-multistream.xml.bz2',"
    "opencc=t2s": Check(stdout=r"^wwm prepare .*\n(.*\n)*wwm segment .*\n(.*\n)*wwm run .*--input_format[= ]parquet"),
    "python: import wwm_torch": Check(stdout=r"'labels': \(8, 128\)"),
}
# What the plan and submit examples name, made here: sizes the README states (sparse: nothing is
# written) and the object on the emulated gs://.
PLAN_FILES = {"dumps/zhwiki-20241201-pages-articles-multistream.xml.bz2": 3_000_000_000,
              "news2016zh/news2016zh_train.json": 10_000_000_000}
GCS_BUCKET, GCS_OBJECT = "my-bucket", "dumps/zhwiki-20241201-pages-articles-multistream.xml.bz2"


def fenced_blocks(text: str) -> list:
    """(language, body) of every fenced block, in order."""
    return [(match.group(1).strip(), match.group(2)) for match in FENCE.finditer(text)]


def without_comment(line: str) -> str:
    """A shell line without its trailing comment (a # outside quotes, after a space)."""
    quote = None
    for position, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position].rstrip()
    return line.rstrip()


def shell_commands(body: str) -> list:
    """The commands of an sh block: continued lines joined, comments and blank lines left out,
    runs of spaces made one (the keys of CHECKS and NOT_RUN)."""
    commands, current = [], ""
    for line in body.splitlines():
        line = without_comment(line)
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        command = " ".join((current + line).split())
        current = ""
        if command:
            commands.append(command)
    return commands


def readme_steps() -> list:
    """The README's commands and Python blocks, in order: (key, kind, text)."""
    steps = []
    for language, body in fenced_blocks(README.read_text(encoding="utf-8")):
        if language == "sh":
            steps += [(command, "sh", command) for command in shell_commands(body)]
        elif language == "python":
            steps.append((f"python: {body.splitlines()[0]}", "python", body))
    return steps


def shown_output(key: str) -> list:
    """The lines of the ``text`` block right after the sh block whose last command is ``key``,
    each cut at its "..." (what the README says the command prints)."""
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    for (language, body), (next_language, shown) in zip(blocks, blocks[1:]):
        if language == "sh" and shell_commands(body)[-1:] == [key] and next_language == "text":
            return [line.split("...")[0].rstrip(" ;") for line in shown.splitlines() if line.strip()]
    return []


STEPS = readme_steps()
RUN_HERE = [step for step in STEPS if step[0] not in NOT_RUN]


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "WWM_PYTHON": sys.executable, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def run_shell(command: str, folder: pathlib.Path) -> subprocess.CompletedProcess:
    """``command`` in bash in ``folder``, with ``wwm`` this checkout's command."""
    script = 'wwm() { "$WWM_PYTHON" -m wwm_cli "$@"; }\nset -o pipefail\n' + command + "\n"
    return subprocess.run(["bash", "-c", script], cwd=folder, env=_environment(), capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    """Every README command that runs here, in the README's order, in one folder: {key: result}."""
    folder = tmp_path_factory.mktemp("readme")
    for path, size in PLAN_FILES.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        with open(folder / path, "wb") as sparse:
            sparse.truncate(size)
    results = {}
    with gcs_emulator(GCS_BUCKET) as bucket:
        bucket.blob(GCS_OBJECT).upload_from_string(b"BZh9")  # wwm plan reads the object's size only
        for key, kind, text in RUN_HERE:
            if kind == "sh":
                results[key] = run_shell(text, folder)
            else:
                results[key] = subprocess.run([sys.executable, "-c", text], cwd=folder, env=_environment(),
                                              capture_output=True, text=True, timeout=600)
    return folder, results


def _assert_kept(check: Check, done: subprocess.CompletedProcess, folder: pathlib.Path, what: str):
    assert done.returncode == 0, f"{what}: exit status {done.returncode}\n{done.stderr[-4000:]}"
    for path in check.files:
        assert (folder / path).is_file(), f"{what}: {path} was not written"
    if check.stdout:
        assert re.search(check.stdout, done.stdout, re.M), f"{what}: no line matching {check.stdout!r} in\n{done.stdout[-4000:]}"
    if check.more:
        check.more(folder)
    if check.prints_what_the_readme_shows:
        shown = shown_output(what)
        assert shown, f"{what}: the README shows no output after it"
        for line in shown:
            assert line in done.stdout, f"{what}: the README shows {line!r}, the command printed\n{done.stdout}"


@pytest.mark.parametrize("key", [key for key, _, _ in RUN_HERE], ids=lambda key: key[:60])
def test_each_readme_command_runs_and_keeps_its_promise(walkthrough, key):
    folder, results = walkthrough
    assert key in CHECKS, f"the README shows {key!r}: give it a check in CHECKS, or a reason in NOT_RUN"
    _assert_kept(CHECKS[key], results[key], folder, key)


def test_every_command_is_run_or_excused_and_none_is_stale():
    keys = [key for key, _, _ in STEPS]
    assert len(keys) >= 12, keys  # the extraction found the README's commands
    assert not set(CHECKS) & set(NOT_RUN)
    assert set(keys) == set(CHECKS) | set(NOT_RUN), (
        f"in the README without a check or a reason: {sorted(set(keys) - set(CHECKS) - set(NOT_RUN))}; "
        f"checks or reasons for commands the README no longer shows: {sorted(set(CHECKS) | set(NOT_RUN) - set(keys))}")


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < MAX_README_LINES
    quick_start = text.split("## Quick start", 1)[1]
    language, body = fenced_blocks(quick_start)[0]
    assert (language, shell_commands(body)) == ("sh", ["bash scripts/quickstart.sh", "bash scripts/test.sh"])
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8"), "CI runs the README's test command"


def test_every_fenced_block_says_what_it_holds():
    """A block without a language would be neither run nor excused."""
    for language, body in fenced_blocks(README.read_text(encoding="utf-8")):
        assert language in LANGUAGES, f"a ```{language} block: {body[:80]!r}"


def test_the_quick_start_script_commands(tmp_path):
    """What scripts/quickstart.sh runs after setting up, in a folder laid out like the repository
    (its input path is relative to it), with what the README says it writes and prints."""
    script = (ROOT / "scripts" / "quickstart.sh").read_text(encoding="utf-8")
    after_setup = script.split("bash scripts/setup.sh\n", 1)[1]
    commands = shell_commands(after_setup.replace(".venv/bin/wwm", "wwm"))
    assert [command.split()[:2] for command in commands] == [["wwm", "run"], ["wwm", "inspect"]], commands
    (tmp_path / "wwm_core").symlink_to(ROOT / "wwm_core", target_is_directory=True)
    for command in commands:
        done = run_shell(command, tmp_path)
        assert done.returncode == 0, f"{command}: exit status {done.returncode}\n{done.stderr[-4000:]}"
    sample = tmp_path / "out" / "sample"
    for path in ("manifest.json", "dead_letter", "seq128/manifest.json", "seq128/vocab.txt",
                 "seq128/part-00000-of-00001.tfrecord", "seq512/manifest.json", "seq512/part-00000-of-00001.tfrecord"):
        assert (sample / path).exists(), path
    lines = done.stdout.splitlines()
    headers = [line for line in lines if line.startswith("# ")]
    assert len(headers) == 5 and re.fullmatch(
        r"# 0  part-00000-of-00001\.tfrecord  next_sentence_label=[01]  masked=\d+  words=-", headers[0]), headers
    assert re.search(r"^\[CLS\] .*\[MASK\]\(.+?\).* \[SEP\]", done.stdout, re.M), done.stdout[-2000:]


# ---------------------------------------------------------------- links between the docs

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")  # `[MASK](拍)` is no link


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors_of(path: pathlib.Path) -> set:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        anchor = _anchor(heading)
        found.add(anchor if anchor not in seen else f"{anchor}-{seen[anchor]}")
        seen[anchor] = seen.get(anchor, 0) + 1
    return found


def test_anchors_follow_githubs_rule():
    assert _anchor("Presets: what sets each setting, and where its value comes from") == \
        "presets-what-sets-each-setting-and-where-its-value-comes-from"
    assert _anchor("`wwm plan`'s rates") == "wwm-plans-rates"
    assert _anchor("On a Cloud TPU VM, data on `gs://`") == "on-a-cloud-tpu-vm-data-on-gs"


def test_every_link_between_the_docs_leads_somewhere():
    pages = [README, ROOT / "deploy" / "README.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(CODE_SPAN.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors_of(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
