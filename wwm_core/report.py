"""``wwm report``'s content: what a run, a two-phase run or a prepared corpus holds, from its
manifests' counters, as sections of tables and plots, rendered to one self-contained HTML page.

Pure: the caller reads the manifests (``parse_manifest``), the run's token counts and vocabulary
and a few dead letters, and writes the page and the PNGs this returns. Every number shown comes
from a counter (docs/output.md, "Counters") or from the manifest's statistics.
"""
import base64
import dataclasses
import datetime
import html
import re

import numpy as np

from wwm_core.normalize import map_vocab_equivalents
from wwm_core.stats import histogram_rows

TOP_ROWS = 30


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str  # the PNG's file name, without .png
    title: str
    png: bytes
    caption: str = ""


@dataclasses.dataclass(frozen=True)
class Table:
    title: str
    header: tuple
    rows: tuple
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Text:
    text: str


@dataclasses.dataclass(frozen=True)
class Section:
    title: str
    items: tuple
    anchor: str = ""


@dataclasses.dataclass(frozen=True)
class ReportInputs:
    """What the report is made of. ``phases``: [(max_seq_length, phase Manifest)] of a run;
    ``token_counts``: the run's tokens per vocabulary id; ``vocab_tokens``: the vocabulary;
    ``tokenize_unknown``: text -> whether it still holds an unknown token (the run's tokenizer);
    ``dead_letters``: a few dead-letter records ({"id", "reason", "detail"})."""
    path: str
    manifest: object  # the top Manifest: kind instances, phases or documents
    phases: tuple = ()
    token_counts: object = None
    vocab_tokens: tuple = None
    tokenize_unknown: object = None
    dead_letters: tuple = ()


# ---------------------------------------------------------------- counters to numbers

def histogram(histograms: dict, name: str) -> list:
    """[(lower edge, count)] of one of a manifest's histograms, by edge."""
    return histogram_rows(histograms or {}, name)


def dense(rows, *, width: int = 1, log2: bool = False, low: int = None, high: int = None) -> list:
    """``rows`` with the empty bins between (and down to ``low``, up to ``high``) filled with 0, so
    a bar chart's gaps show."""
    if not rows:
        return []
    found = dict(rows)
    first = min(found) if low is None else min(low, min(found))
    last = max(found) if high is None else max(high, max(found))
    if log2:
        edges = ([0] if first == 0 else []) + [1 << power for power in range(max(first, 1).bit_length() - 1,
                                                                                 last.bit_length())]
    else:
        edges = range(first - first % width, last + 1, width)
    return [(edge, found.get(edge, 0)) for edge in edges]


def histogram_mean(rows) -> float:
    total = sum(count for _, count in rows)
    return sum(edge * count for edge, count in rows) / total if total else 0.0


def log2_label(edge: int) -> str:
    return "0" if edge == 0 else f"{edge}-{2 * edge - 1}"


def per_source(counters: dict) -> dict:
    """{source: {measure: value}} from ``source.<name>.<measure>`` counters (a name may hold dots)."""
    sources = {}
    for key, value in counters.items():
        if key.startswith("source."):
            name, _, measure = key[len("source."):].rpartition(".")
            sources.setdefault(name, {})[measure] = value
    return dict(sorted(sources.items()))


def drops(counters: dict) -> list:
    """[(what, reason, count)] for every reason something was dropped, largest first."""
    kinds = (("documents_filtered.", "document filtered"), ("dead_lettered.", "dead letter"),
             ("sentences_dropped.", "sentence dropped"))
    rows = [(label, key[len(prefix):], value) for key, value in counters.items() for prefix, label in kinds
            if key.startswith(prefix) and value]
    return sorted(rows, key=lambda row: -row[2])


def unknown_texts(texts: dict) -> list:
    """[(text, count)] of a manifest's counted unknown-token texts, most frequent first."""
    rows = list(((texts or {}).get("unknown_token") or {}).items())
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def equivalents_savings(texts, tokenize_unknown) -> tuple:
    """(unknown tokens --vocab_equivalents would make known, [(text, mapped, count)]) among the
    counted unknown texts: those whose mapped text has no unknown token left."""
    saved, rows = 0, []
    for text, count in texts:
        mapped, changed = map_vocab_equivalents(text)
        if changed and not tokenize_unknown(mapped):
            saved += count
            rows.append((text, mapped, count))
    return saved, rows


def vocabulary_categories(vocab_tokens) -> np.ndarray:
    """A category name per vocabulary id: special, unused, CJK character, ## continuation, other."""
    categories = []
    for token in vocab_tokens:
        if token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"):
            categories.append("special")
        elif token.startswith("[unused"):
            categories.append("unused slot")
        elif token.startswith("##"):
            categories.append("## continuation")
        elif len(token) == 1 and _CJK.match(token):
            categories.append("CJK character")
        else:
            categories.append("other (Latin, digits, punctuation, symbols)")
    return np.array(categories)


_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")


def share(part, whole) -> str:
    return f"{part / whole:.2%}" if whole else "-"


def number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


# ---------------------------------------------------------------- sections

def overview(inputs: ReportInputs) -> Section:
    manifest = inputs.manifest
    rows = [("output", inputs.path), ("kind", manifest.kind), ("command", " ".join(manifest.command)),
            ("wwm-data", manifest.tool_version), ("started", manifest.started_at), ("finished", manifest.finished_at)]
    duration = _duration(manifest.started_at, manifest.finished_at)
    if duration is not None:
        rows.append(("duration", f"{duration:,.0f} s"))
    rows.append(("libraries", ", ".join(f"{k} {v}" for k, v in sorted(manifest.libraries.items()) if v)))
    total_bytes = sum(i.get("bytes") or 0 for i in manifest.inputs)
    rows.append(("input files", f"{len(manifest.inputs):,} ({total_bytes:,} bytes)"))
    if manifest.kind in ("instances", "phases"):
        rows.append(("recipe", manifest.recipe))
    for length, phase in inputs.phases:
        rows.append((f"phase seq{length}", f"{phase.num_instances:,} instances, {phase.max_predictions_per_seq} "
                     f"predictions, {phase.sentence_task} sentence task, {phase.masking} masking"))
    if manifest.kind == "documents":
        rows.append(("documents", f"{manifest.num_documents:,}"))
    items = [Table("the run", ("", ""), tuple(rows))]
    if manifest.inputs:
        items.append(Table("input files", ("path", "bytes", "crc32c"),
                           tuple((i["path"], number(i.get("bytes")), i.get("crc32c", "")) for i in manifest.inputs[:50]),
                           note=f"{len(manifest.inputs) - 50:,} more in the manifest" if len(manifest.inputs) > 50 else ""))
    if manifest.prepared:
        links = manifest.prepared.get("manifests", [manifest.prepared])
        items.append(Table("prepared documents this run read", ("manifest", "documents", "sources", "cleaning"),
                           tuple((link["manifest"], number(link.get("num_documents")),
                                  "; ".join(f"{s['name']} ({s['input_format']}, opencc {s['opencc_config']})"
                                            for s in link.get("sources", [])),
                                  ", ".join(f"{k} {v}" for k, v in link.get("cleaning", {}).items()))
                                 for link in links)))
    return Section("Overview", tuple(items), "overview")


def _duration(started, finished):
    try:
        return (datetime.datetime.fromisoformat(finished) - datetime.datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return None


def sources_and_records(inputs: ReportInputs, counters: dict, plots) -> Section:
    phases = inputs.phases
    sources = per_source(counters)
    header = ("source", "documents", "characters") + tuple(f"instances seq{length}" for length, _ in phases)
    rows = []
    for name, values in sources.items():
        rows.append((name, number(values.get("documents", 0)), number(values.get("characters", 0)))
                    + tuple(number(per_source(phase.counters).get(name, {}).get("instances", 0)) for _, phase in phases))
    items = [Table("documents, characters and instances per source", header, tuple(rows),
                   note="documents and characters that reached the output; an instance counts for the source of "
                   "its first segment" + ("" if phases else "; a prepared corpus has no instances yet"))]
    balance = inputs.manifest.accounting
    if balance:
        items.append(Table("records", ("records in", "out", "filtered", "dead-lettered", "balanced"),
                           ((number(balance["records_in"]), number(balance["out"]), number(balance["filtered"]),
                             number(balance["dead_lettered"]), "yes" if balance["balanced"] else "NO"),)))
    dropped = drops(counters)
    if dropped:
        items.append(Table("dropped, by reason", ("what", "reason", "count"),
                           tuple((what, reason, number(count)) for what, reason, count in dropped)))
        items.append(Figure("dropped", "dropped, by reason",
                            plots.horizontal_bars([f"{what}: {reason}" for what, reason, _ in dropped],
                                                  [count for _, _, count in dropped], title="dropped, by reason")))
    else:
        items.append(Text("Nothing was dropped."))
    if inputs.dead_letters:
        items.append(Table("dead letters: the first few (all of them: " + ", ".join(inputs.manifest.dead_letter_files)
                           + ")", ("reason", "record", "detail"),
                           tuple((d.get("reason", ""), d.get("id", ""), str(d.get("detail", ""))[:200])
                                 for d in inputs.dead_letters)))
    else:
        items.append(Text("No dead letters."))
    return Section("Sources and records", tuple(items), "records")


def cleaning(counters: dict, config: dict) -> Section:
    changes = sorted((key[len("changes."):], value) for key, value in counters.items() if key.startswith("changes."))
    items = [Table("what cleaning changed", ("change", "count"), tuple((name, number(value)) for name, value in changes),
                   note="characters, lines, sections or fields, as each name says (docs/output.md, Counters)")]
    documents = counters.get("documents_converted_by_opencc", 0)
    characters = counters.get("characters_converted_by_opencc", 0)
    configs = sorted({source.get("opencc_config", "?") for source in config.get("sources", [])})
    items.append(Table("OpenCC conversion", ("OpenCC config", "documents converted", "characters converted",
                                             "share of the output's characters"),
                       ((", ".join(configs) or "-", number(documents), number(characters),
                         share(characters, counters.get("characters", 0))),),
                       note="counted as documents were cleaned (before deduplication), titles included"))
    return Section("Cleaning", tuple(items), "cleaning")


def text_lengths(counters: dict, histograms: dict, plots, *, words: bool) -> Section:
    items = []
    for name, label in (("document_chars", "document length (characters)"),
                        ("sentence_chars", "sentence length (characters)")):
        rows = dense(histogram(histograms, name), log2=True)
        if rows:
            items.append(Figure(name, label, plots.bars([log2_label(e) for e, _ in rows], [c for _, c in rows],
                                                        title=label, xlabel="characters (powers of two)",
                                                        ylabel="documents" if name.startswith("doc") else "sentences")))
    items.append(Table("text", ("documents", "sentences", "characters", "characters per sentence"),
                       ((number(counters.get("documents_out", 0)), number(counters.get("sentences", 0)),
                         number(counters.get("characters", 0)),
                         f"{counters.get('characters', 0) / max(1, counters.get('sentences', 0)):.1f}"),)))
    if words:
        rows = dense(histogram(histograms, "word_chars"), low=1)
        if rows:
            total = sum(c for _, c in rows)
            items.append(Figure("word_chars", "segmenter word lengths",
                                plots.bars([f"{e}+" if e == 16 else str(e) for e, _ in rows], [c for _, c in rows],
                                           title="words by length (16: 16 or more)", xlabel="characters per word",
                                           ylabel="words"),
                                caption=f"{total:,} words, {histogram_mean(rows):.2f} characters each on average; "
                                "1-character words are masked alone, longer ones as whole words"))
    return Section("Text", tuple(items), "text")


def unknown_tokens(inputs: ReportInputs, counters: dict, config: dict) -> Section:
    tokens, unknown = counters.get("tokens", 0), counters.get("tokens.unknown", 0)
    texts = unknown_texts(inputs.manifest.texts)
    items = [Table("[UNK]", ("tokens", "[UNK] tokens", "[UNK] rate"),
                   ((number(tokens), number(unknown), share(unknown, tokens)),),
                   note="the text's tokens, each bucket's once (not per dupe)")]
    if texts:
        items.append(Table("most frequent unknown texts", ("text", "code points", "count"),
                           tuple((text, " ".join(f"U+{ord(c):04X}" for c in text[:6]), number(count))
                                 for text, count in texts[:TOP_ROWS]),
                           note="each shard counts its 50 most frequent, so rare ones are undercounted"))
    mapped_already = config.get("cleaning", {}).get("vocab_equivalents")
    if mapped_already:
        items.append(Text(f"--vocab_equivalents was on: {counters.get('changes.vocab_equivalents_mapped', 0):,} "
                          "characters were mapped to equivalents the vocabulary has."))
    elif texts and inputs.tokenize_unknown is not None:
        saved, rows = equivalents_savings(texts, inputs.tokenize_unknown)
        items.append(Text(f"--vocab_equivalents would make {saved:,} of these {unknown:,} [UNK] tokens known "
                          f"({share(saved, unknown)} of [UNK], {share(saved, tokens)} of all tokens)."))
        if rows:
            items.append(Table("what --vocab_equivalents would map", ("text", "becomes", "count"),
                               tuple((text, mapped, number(count)) for text, mapped, count in rows[:TOP_ROWS])))
    return Section("Unknown tokens", tuple(items), "unknown")


def token_frequency(inputs: ReportInputs, plots) -> Section:
    counts = np.asarray(inputs.token_counts, dtype=np.int64)
    vocab_tokens = inputs.vocab_tokens
    total = int(counts.sum())
    used = int(np.count_nonzero(counts))
    categories = vocabulary_categories(vocab_tokens)
    rows = []
    for category in dict.fromkeys(categories.tolist()):
        mask = categories == category
        rows.append((category, number(int(mask.sum())), number(int(np.count_nonzero(counts[mask]))),
                     share(int(counts[mask].sum()), total)))
    order = np.argsort(-counts, kind="stable")
    top = [(vocab_tokens[i], number(int(counts[i])), share(int(counts[i]), total)) for i in order[:TOP_ROWS]
           if counts[i]]
    items = [Text(f"{used:,} of the vocabulary's {len(vocab_tokens):,} entries occur in the text "
                  f"({share(used, len(vocab_tokens))}); {len(vocab_tokens) - used:,} never do. {total:,} tokens."),
             Table("the vocabulary, by kind of entry", ("entries", "in the vocabulary", "occurring", "share of tokens"),
                   tuple(rows)),
             Table("most frequent tokens", ("token", "count", "share"), tuple(top))]
    nonzero = counts[order][:used].tolist()
    if nonzero:
        items.append(Figure("token_frequency", "token frequency against the vocabulary",
                            plots.rank_frequency(nonzero, vocab_size=len(vocab_tokens),
                                                 title="token frequency against the vocabulary")))
    return Section("Token frequency", tuple(items), "tokens")


AUDIT_ROWS = (("unknown_rate", "unknown-token rate", "share"), ("characters_per_token", "characters per token", "float"),
              ("cjk_covered_share", "Chinese characters covered (by occurrence)", "share"),
              ("cjk_distinct", "distinct Chinese characters", "int"),
              ("cjk_distinct_uncovered", "of them not always covered", "int"), ("tokens", "tokens", "int"),
              ("characters", "characters", "int"), ("sentences", "sentences", "int"))
AUDIT_NOTE = ("a Chinese character is covered when one token spans it whole and is not the unknown token (byte pieces "
              "of a character, or [UNK], are not)")


def _audit_rows(values: dict) -> tuple:
    rows = []
    for key, label, kind in AUDIT_ROWS:
        value = values.get(key)
        if value is None:
            continue
        rows.append((label, f"{value:.3%}" if kind == "share" else f"{value:.3f}" if kind == "float" else number(value)))
    return tuple(rows)


def trained_tokenizer(manifest) -> Section:
    """A `wwm tokenizer train` output: its settings and the audit on held-out documents."""
    settings = manifest.config.get("tokenizer", {})
    items = [Table("the tokenizer", ("", ""), tuple(
        [("vocabulary", f"{manifest.vocab_size:,} tokens ({manifest.vocab_file}, sha256 {manifest.vocab_sha256[:16]}...)"),
         ("special tokens", ", ".join(f"{role} {info['token']} ({info['id']})"
                                      for role, info in (manifest.special_tokens or {}).items())),
         ("trained on", f"{manifest.num_documents:,} documents, {manifest.counters.get('characters.training', 0):,} "
                        "characters")]
        + [(name, str(value)) for name, value in settings.items()]))]
    audit = (manifest.statistics or {}).get("audit")
    if audit:
        items.append(Table(f"audit on {manifest.counters.get('documents.heldout', 0):,} held-out documents",
                           ("", ""), _audit_rows(audit), note=AUDIT_NOTE))
    else:
        items.append(Text("No document was held out (--heldout_share 0): no audit."))
    return Section("Tokenizer", tuple(items), "tokenizer")


def run_tokenizer(manifest, counters: dict) -> Section:
    """A run made with --tokenizer: what it is, and the audit of the run's own text by it."""
    origin = manifest.tokenizer
    values = {"tokens": counters.get("tokens", 0), "characters": counters.get("characters", 0),
              "unknown_rate": counters.get("tokens.unknown", 0) / counters["tokens"] if counters.get("tokens") else None,
              "characters_per_token": counters["characters"] / counters["tokens"] if counters.get("tokens") else None,
              "cjk_covered_share": 1 - counters.get("characters.cjk_uncovered", 0) / counters["characters.cjk"]
              if counters.get("characters.cjk") else None}
    where = origin.get("hub_id") and f"{origin['hub_id']}@{origin.get('revision')} ({origin.get('commit')})"         or origin.get("path")
    return Section("Tokenizer", (
        Table("the tokenizer", ("", ""), (("tokenizer", where), ("sha256", origin.get("sha256")),
                                          ("vocabulary", f"{manifest.vocab_size:,} tokens"))),
        Table("what it made of this run's text", ("", ""), _audit_rows(values), note=AUDIT_NOTE)), "tokenizer")


def phase_section(length: int, manifest, plots) -> Section:
    statistics, histograms = manifest.statistics, manifest.histograms or {}
    counters = manifest.counters
    n = manifest.num_instances or 0
    items = [Table("instances", ("instances", "files", "max_seq_length", "max_predictions_per_seq", "sentence task",
                                 "masking"),
                   ((number(n), number(len(manifest.all_files)), number(length),
                     number(manifest.max_predictions_per_seq), manifest.sentence_task, manifest.masking),))]
    width = max(1, length // 32)  # the bins ShardMaker.count_batch counts in
    rows = dense(histogram(histograms, "instance_tokens"), width=width, low=0, high=length)
    padding = statistics.get("padding_share")
    if rows:
        estimates = [f"{name.split('_')[2]} instead: {statistics[name]:.1%}" for name in
                     ("padding_share_packed_estimate", "padding_share_unpacked_estimate") if name in statistics]
        items.append(Figure(f"seq{length}_instance_tokens", "instance length",
                            plots.bars([str(e) for e, _ in rows], [c for _, c in rows], ylabel="instances",
                                       title=f"instance length (real tokens, bins of {width})",
                                       xlabel="tokens, [CLS] and [SEP] included"),
                            caption=(f"padding share {padding:.1%}" if padding is not None else "")
                            + (" (" + "; ".join(estimates) + ")" if estimates else "")))
    masked = statistics.get("masked_share")
    rows = dense(histogram(histograms, "masked_per_instance"), low=0, high=manifest.max_predictions_per_seq)
    if rows:
        items.append(Figure(f"seq{length}_masked_per_instance", "masked tokens per instance",
                            plots.bars([str(e) for e, _ in rows], [c for _, c in rows], ylabel="instances",
                                       title="masked tokens per instance", xlabel="masked tokens",
                                       target=_position([e for e, _ in rows], manifest.max_predictions_per_seq),
                                       target_label=f"max_predictions_per_seq {manifest.max_predictions_per_seq}"),
                            caption=f"{histogram_mean(rows):.2f} masked tokens per instance on average"))
    if masked:
        items.append(Table("masked share", ("measured", "target (masked_lm_prob)", "what it counts"),
                           ((f"{masked['measured']:.4f}", f"{masked['expected']:g}", masked.get("note", "")),)))
    elif manifest.masking == "dynamic":
        items.append(Text("Dynamic masking: the data holds no masks; `wwm train` masks every epoch anew."))
    rows = dense(histogram(histograms, "masked_word_tokens"), low=1)
    if rows:
        total = sum(c for _, c in rows)
        single = sum(c for e, c in rows if e == 1)
        items.append(Figure(f"seq{length}_masked_word_tokens", "masked word runs",
                            plots.bars([f"{e}+" if e == 16 else str(e) for e, _ in rows], [c for _, c in rows],
                                       title="tokens per masked whole word (16: 16 or more)",
                                       xlabel="tokens masked together", ylabel="masked words"),
                            caption=f"{total:,} masked words; {share(total - single, total)} of them span two or "
                            "more tokens (whole-word masking at work)"))
    label_1 = counters.get("label_1", 0)
    if manifest.sentence_task in ("nsp", "sop") or label_1:
        meaning = {"nsp": "B is a random segment (not the next)", "sop": "A and B swapped"}.get(
            manifest.sentence_task, "label 1")
        same = statistics.get("random_next_from_same_document", counters.get("random_next_from_same_document", 0))
        labels = ((manifest.sentence_task, number(n - label_1), number(label_1), share(label_1, n), meaning),)
        items.append(Table("sentence labels", ("task", "label 0", "label 1", "label 1 share", "label 1 means"),
                           labels,
                           note=(f"{same:,} random-next draws had to come from segment A's own document (a bucket "
                                 f"with one document); {share(same, label_1)} of label-1 instances"
                                 if manifest.sentence_task == "nsp" else "")))
    return Section(f"Phase seq{length}", tuple(items), f"seq{length}")


def _position(edges, value):
    """The bar position of ``value`` among sorted integer ``edges`` (interpolated)."""
    if not edges:
        return None
    if value <= edges[0]:
        return 0
    for index, (low, high) in enumerate(zip(edges, edges[1:])):
        if low <= value <= high:
            return index + (value - low) / (high - low)
    return len(edges) - 1 + 0.5


def shared_counters(inputs: ReportInputs) -> dict:
    """The counters of the whole run (a phases manifest's, less the phase.* ones), or a prepared
    corpus's."""
    return {k: v for k, v in inputs.manifest.counters.items() if not k.startswith("phase.")}


def report_sections(inputs: ReportInputs, plots) -> list:
    """Every section of the report. ``plots``: the module that draws (wwm_core.report_plots)."""
    counters = shared_counters(inputs)
    config = inputs.manifest.config
    made_instances = inputs.manifest.kind in ("instances", "phases")
    if inputs.manifest.kind == "tokenizer":
        return [overview(inputs), trained_tokenizer(inputs.manifest)]
    sections = [overview(inputs), sources_and_records(inputs, counters, plots), cleaning(counters, config),
                text_lengths(counters, {k: v for k, v in (inputs.manifest.histograms or {}).items()
                                        if not k.startswith("phase.")}, plots, words=made_instances)]
    if made_instances:
        sections.append(unknown_tokens(inputs, counters, config))
        if inputs.phases and inputs.phases[0][1].tokenizer:
            sections.append(run_tokenizer(inputs.phases[0][1], counters))
        if inputs.token_counts is not None and inputs.vocab_tokens is not None:
            sections.append(token_frequency(inputs, plots))
        sections += [phase_section(length, phase, plots) for length, phase in inputs.phases]
    return sections


# ---------------------------------------------------------------- HTML

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
       margin: 2em auto; max-width: 1000px; padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #3b6ea8; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #eef3f9; } caption { text-align: left; font-weight: bold; padding: .3em 0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .note { color: #555; font-size: .85em; } nav a { margin-right: 1em; }
.warning { color: #a00; font-weight: bold; }
"""
# Marks, once the page has loaded, how many of its images did (a test reads the attribute; a
# reader sees a warning when a plot is missing).
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (image) { return image.complete && image.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", loaded + "/" + images.length);
  if (loaded < images.length) {
    var warning = document.createElement("p");
    warning.className = "warning";
    warning.textContent = (images.length - loaded) + " of " + images.length + " plots did not load.";
    document.body.insertBefore(warning, document.body.firstChild);
  }
});
"""
_NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?%?$")


def _cell(value, tag="td") -> str:
    text = str(value)
    css = ' class="number"' if tag == "td" and _NUMBER.match(text) else ""
    return f"<{tag}{css}>{html.escape(text)}</{tag}>"


def render_html(title: str, sections, *, image_source) -> str:
    """The page. ``image_source(figure)``: what an <img> loads (a data: URI, or a PNG's name)."""
    parts = ["<!DOCTYPE html>", '<html lang="zh"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<nav>" + "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections) + "</nav>"]
    for section in sections:
        parts.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        for item in section.items:
            if isinstance(item, Figure):
                parts.append(f'<figure><img src="{image_source(item)}" alt="{html.escape(item.title)}" '
                             f'data-name="{item.name}"><figcaption>{html.escape(item.caption)}</figcaption></figure>')
            elif isinstance(item, Table):
                parts.append(f"<table><caption>{html.escape(item.title)}</caption>")
                if any(item.header):
                    parts.append("<tr>" + "".join(_cell(h, "th") for h in item.header) + "</tr>")
                parts += ["<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in item.rows]
                parts.append("</table>")
                if item.note:
                    parts.append(f'<p class="note">{html.escape(item.note)}</p>')
            else:
                parts.append(f"<p>{html.escape(item.text)}</p>")
        parts.append("</section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def data_uri(figure: Figure) -> str:
    return "data:image/png;base64," + base64.b64encode(figure.png).decode("ascii")


def figures(sections) -> list:
    return [item for section in sections for item in section.items if isinstance(item, Figure)]
