"""`wwm report` and `wwm run --report` on real runs, the page rendered by a real browser: Debian's
headless Chromium (scripts/install_chromium.sh installs it when it is missing)."""
import html.parser
import json
import pathlib
import re
import shutil
import subprocess

import pytest

from tests.conftest import shared_file
from tests.test_pipeline import LOCAL
from wwm_cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        installed = subprocess.run(["bash", str(ROOT / "scripts" / "install_chromium.sh")], capture_output=True,
                                   text=True)
        found = shutil.which("chromium")
        if installed.returncode or found is None:
            pytest.fail(f"no Chromium to render the report in, and scripts/install_chromium.sh could not install it: "
                        f"{installed.stderr.strip()}")
    return found


class Browser:
    def __init__(self, binary: str, workdir: pathlib.Path):
        self.binary = binary
        self.workdir = workdir
        self.runs = 0

    def _run(self, *args) -> subprocess.CompletedProcess:
        self.runs += 1
        profile = self.workdir / f"profile-{self.runs}"  # a new profile each time
        return subprocess.run([self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=180)

    def dom(self, page: pathlib.Path) -> str:
        """The DOM once the page has loaded and its scripts have run."""
        result = self._run("--virtual-time-budget=10000", "--dump-dom", page.as_uri())
        assert "<body" in result.stdout, result.stderr[-2000:]
        return result.stdout

    def screenshot(self, page: pathlib.Path, *, height: int = 4000):
        from PIL import Image

        shot = self.workdir / f"shot-{self.runs + 1}.png"
        self._run(f"--window-size=1200,{height}", f"--screenshot={shot}", page.as_uri())
        assert shot.exists(), "no screenshot"
        return Image.open(shot).convert("RGB")


@pytest.fixture
def browser(chromium, tmp_path):
    return Browser(chromium, tmp_path)


def assert_not_blank(image) -> None:
    colors = image.getcolors(maxcolors=1 << 20) or []
    inked = sum(count for count, rgb in colors if sum(rgb) < 600)  # not white or near it
    assert len(colors) > 50 and inked > 0.02 * image.width * image.height, "the screenshot is blank"
    plot_blue = sum(count for count, (r, g, b) in colors if abs(r - 0x3B) < 12 and abs(g - 0x6E) < 12 and abs(b - 0xA8) < 12)
    assert plot_blue > 2000, "no plot drawn"


class _Page(html.parser.HTMLParser):
    """The page's images and external references, read with the standard library's parser."""

    def __init__(self):
        super().__init__()
        self.images, self.external = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if re.match(r"^(https?:|//|file:)", value):
                self.external.append(value)


def check_page(page: pathlib.Path, browser) -> str:
    """Renders ``page``: every image loads, the screenshot shows text and plots; returns the DOM."""
    from PIL import Image

    parsed = _Page()
    parsed.feed(page.read_text(encoding="utf-8"))
    assert parsed.images and not parsed.external, "the page must stand alone"
    for source in parsed.images:  # independent of the browser: each embedded PNG decodes
        assert source.startswith("data:image/png;base64,")
    pngs = sorted(page.parent.glob("*.png"))
    assert len(pngs) == len(parsed.images)
    for png in pngs:
        image = Image.open(png)
        assert image.format == "PNG" and image.width > 300 and len(image.convert("RGB").getcolors(1 << 20)) > 5
    dom = browser.dom(page)
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's script did not run"
    assert loaded.group(1) == loaded.group(2) == str(len(parsed.images)), "an image did not load"
    assert_not_blank(browser.screenshot(page))
    return dom


def section(dom: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', dom, re.S)
    assert match, f"no section {anchor}"
    return match.group(1)


def cells(fragment: str) -> list:
    return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", fragment, re.S)]


@pytest.fixture(scope="module")
def wiki_run(tmp_path_factory):
    """A two-phase run over the real zhwiki test pages, its report written by --report."""
    root = tmp_path_factory.mktemp("report")
    pages = shared_file("zhwiki_xml/zhwiki-test-pages.xml")
    assert main(["run", f"--input={pages}", "--input_format=wiki", f"--output={root / 'out'}", "--segmenter=jieba",
                 "--max_seq_length=64,128", "--dupe_factor=2", "--num_shards=2", "--progress=off", "--report",
                 *LOCAL]) == 0
    return root, pages


def test_run_report_renders_with_every_plot(wiki_run, browser):
    import tensorflow as tf

    root, pages = wiki_run
    out = root / "out"
    page = out / "report" / "report.html"
    assert page.exists(), "wwm run --report wrote no report"
    dom = check_page(page, browser)
    for anchor in ("overview", "records", "cleaning", "text", "unknown", "tokens", "seq64", "seq128"):
        section(dom, anchor)
    for length in (64, 128):  # instances per phase, against TensorFlow's reader
        manifest = json.loads((out / f"seq{length}" / "manifest.json").read_text())
        records = sum(1 for name in manifest["files"] for _ in tf.data.TFRecordDataset(str(out / f"seq{length}" / name)))
        assert cells(section(dom, f"seq{length}"))[0] == f"{records:,}"
        phase = section(dom, f"seq{length}")
        for plot in ("instance_tokens", "masked_per_instance", "masked_word_tokens"):
            assert f'data-name="seq{length}_{plot}"' in phase, plot
        assert "padding share" in phase and "masked share" in phase and "sentence labels" in phase
    # Pages outside the main namespace, counted from the XML itself.
    namespaces = re.findall(r"<ns>(\d+)</ns>", pages.read_text(encoding="utf-8"))
    not_articles = sum(ns != "0" for ns in namespaces)
    records = cells(section(dom, "records"))
    assert records[records.index("not_article") + 1] == str(not_articles)
    for plot in ("document_chars", "sentence_chars", "word_chars", "token_frequency", "dropped"):
        assert f'data-name="{plot}"' in dom, plot
    assert "U+201C" in section(dom, "unknown"), "“ is the most frequent unknown character of zhwiki"


def test_the_report_predicts_what_vocab_equivalents_saves(wiki_run, tmp_path):
    """The report's figure, against a run that maps the characters."""
    root, pages = wiki_run
    text = (root / "out" / "report" / "report.html").read_text(encoding="utf-8")
    saved, unknown = (int(n.replace(",", "")) for n in re.search(
        r"--vocab_equivalents would make ([\d,]+) of these ([\d,]+) \[UNK\] tokens known", text).groups())
    assert saved > 0.9 * unknown
    assert main(["run", f"--input={pages}", "--input_format=wiki", f"--output={tmp_path / 'mapped'}",
                 "--segmenter=jieba", "--max_seq_length=64", "--dupe_factor=1", "--num_shards=2", "--progress=off",
                 "--vocab_equivalents=true", *LOCAL]) == 0
    mapped = json.loads((tmp_path / "mapped" / "manifest.json").read_text())["counters"]
    assert mapped["tokens.unknown"] == unknown - saved


def test_prepared_corpus_report(tmp_path, browser):
    pages = shared_file("zhwiki_xml/zhwiki-test-pages.xml")
    assert main(["prepare", f"--input={pages}", "--input_format=wiki", "--opencc_config=t2s",
                 f"--output={tmp_path / 'prepared'}", "--progress=off", *LOCAL]) == 0
    assert main(["report", str(tmp_path / "prepared"), "--output", str(tmp_path / "page")]) == 0
    dom = check_page(tmp_path / "page" / "report.html", browser)
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    sources = cells(section(dom, "records"))
    assert sources[:3] == ["wiki", f"{manifest['num_documents']:,}", f"{manifest['counters']['characters']:,}"]
    assert "seq" not in re.findall(r'<section id="([^"]+)"', dom).__str__(), "a prepared corpus has no phases"
    opencc = section(dom, "cleaning")
    assert f"{manifest['counters']['characters_converted_by_opencc']:,}" in opencc and "t2s" in opencc
    assert 'data-name="document_chars"' in dom and 'data-name="sentence_chars"' in dom


def test_report_of_a_folder_that_is_no_output(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
