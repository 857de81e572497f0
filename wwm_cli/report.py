"""``wwm report OUT``: a self-contained report.html and its plots (PNG) for a run, a run with
several phases (one section each) or a prepared corpus, from the manifests and counters the run
wrote. The page embeds its plots, so it opens from disk or as a mail attachment; the PNGs are
written beside it too."""
import json
import logging

from apache_beam.io.filesystems import FileSystems

from pipelines.io_utils import exists, join, read_bytes, write_bytes
from wwm_core.errors import UsageError
from wwm_core.helptext import parser as make_parser
from wwm_core.manifest import MANIFEST, ManifestError, parse_manifest

log = logging.getLogger("wwm")
REPORT_FOLDER = "report"
REPORT_PAGE = "report.html"
DEAD_LETTER_SAMPLES = 10
MATPLOTLIB_MISSING = "wwm report needs matplotlib for its plots: pip install 'wwm-data[report]' (or pip install matplotlib)"


def check_report_dependencies() -> None:
    """One line, before any work, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise UsageError(MATPLOTLIB_MISSING) from error


def _manifest(folder: str):
    path = join(folder, MANIFEST)
    if not exists(path):
        raise UsageError(f"{path} not found: is {folder} the --output of a finished `wwm run` or `wwm prepare`?")
    try:
        return parse_manifest(read_bytes(path), path=path, kinds=("instances", "phases", "documents", "tokenizer"))
    except OSError as error:
        raise ManifestError(f"{path}: {error}") from error


def _dead_letters(folder: str, manifest) -> tuple:
    """The first few dead-letter records (each file's first lines)."""
    samples = []
    for name in manifest.dead_letter_files:
        path = join(folder, name)
        if len(samples) >= DEAD_LETTER_SAMPLES or not exists(path):
            continue
        with FileSystems.open(path) as handle:
            for line in iter(handle.readline, b""):
                if len(samples) >= DEAD_LETTER_SAMPLES:
                    break
                try:
                    samples.append(json.loads(line))
                except ValueError:
                    continue
    return tuple(samples)


def report_inputs(folder: str):
    """Everything the report shows, read from ``folder`` (local or gs://)."""
    from wwm_core.report import ReportInputs
    from wwm_core.tokenization import make_tokenizer, tokenize_sentences
    from wwm_core.vocab import vocab_of_manifest

    manifest = _manifest(folder)
    phases, token_counts, vocab_tokens, tokenize_unknown = (), None, None, None
    folders = {}
    if manifest.kind == "phases":
        for phase in manifest.phases:
            folders[phase["max_seq_length"]] = join(folder, phase["manifest"].rsplit("/", 1)[0])
        phases = tuple((length, _manifest(phase_folder)) for length, phase_folder in folders.items())
    elif manifest.kind == "instances":
        folders[manifest.max_seq_length] = folder
        phases = ((manifest.max_seq_length, manifest),)
    if phases:
        length, first = phases[0]
        vocab = vocab_of_manifest(first, read_bytes(join(folders[length], first.vocab_file)))
        vocab_tokens = tuple(vocab.tokens)
        config = manifest.run_config()
        do_lower_case = config.instances.do_lower_case if config and config.instances else True
        tokenizer = make_tokenizer(vocab, do_lower_case=do_lower_case)
        unknown_id = vocab.special_id("unk")

        def tokenize_unknown(text: str) -> bool:
            return bool((tokenize_sentences(tokenizer, [text]).ids == unknown_id).any())

        counts_name = manifest.statistics.get("token_counts_file")
        if counts_name and exists(join(folder, counts_name)):
            values = json.loads(read_bytes(join(folder, counts_name)))
            if values.get("vocab_sha256") == vocab.sha256:
                token_counts = values["counts"]
            else:
                log.warning("%s was counted with another vocabulary: token frequency left out", counts_name)
    return ReportInputs(path=folder, manifest=manifest, phases=phases, token_counts=token_counts,
                        vocab_tokens=vocab_tokens, tokenize_unknown=tokenize_unknown,
                        dead_letters=_dead_letters(folder, manifest))


def write_report(folder: str, output: str = None) -> str:
    """Writes OUTPUT/report.html (plots embedded) and OUTPUT/<plot>.png; returns the page's path.
    ``output`` defaults to FOLDER/report."""
    check_report_dependencies()
    from wwm_core import report_plots
    from wwm_core.report import data_uri, figures, render_html, report_sections

    inputs = report_inputs(folder)
    sections = report_sections(inputs, report_plots)
    output = output or join(folder, REPORT_FOLDER)
    for figure in figures(sections):
        write_bytes(join(output, f"{figure.name}.png"), figure.png)
    page = join(output, REPORT_PAGE)
    title = f"wwm-data report: {folder.rstrip('/').rsplit('/', 1)[-1] or folder}"
    write_bytes(page, render_html(title, sections, image_source=data_uri).encode("utf-8"))
    return page


def report_main(argv) -> str:
    parser = make_parser("wwm report", __doc__)
    parser.add_argument("path", help="a `wwm run` --output (one phase or several), one phase's folder, a "
                        "`wwm prepare` --output or a `wwm tokenizer train` --output; local or gs://")
    parser.add_argument("--output", help="folder for report.html and the PNGs (default: PATH/report)")
    args = parser.parse_args(argv)
    page = write_report(args.path.rstrip("/") or args.path, args.output)
    print(f"wrote {page}")
    return page
