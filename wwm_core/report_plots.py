"""The report's plots: matplotlib figures rendered to PNG bytes (no display needed).

Labels are ASCII: matplotlib's default font has no CJK glyphs, so characters and tokens go to the
report's tables, which the browser draws.
"""
import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to memory, never to a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

WIDTH, HEIGHT, DPI = 7.2, 3.0, 100
COLOR, TARGET_COLOR = "#3b6ea8", "#c0392b"


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def _thousands(axis) -> None:
    """Counts: whole-number ticks only (a count of 1 would otherwise get ticks at 0.2, 0.4, ...,
    all printed as 0 or 1), with thousands separators."""
    axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))


def bars(labels, values, *, title: str, xlabel: str, ylabel: str = "count", target=None,
         target_label: str = None) -> bytes:
    """One bar per (label, value), in the given order; ``target`` draws a vertical line at that
    label position (a float index between bars is allowed)."""
    figure, axes = plt.subplots(figsize=(WIDTH, HEIGHT))
    positions = range(len(values))
    axes.bar(positions, values, color=COLOR, width=0.85)
    step = max(1, len(labels) // 16)
    axes.set_xticks(list(positions)[::step])
    axes.set_xticklabels([str(label) for label in labels][::step], rotation=45 if step > 1 or len(labels) > 10 else 0,
                         ha="right" if step > 1 or len(labels) > 10 else "center", fontsize=8)
    if target is not None:
        axes.axvline(target, color=TARGET_COLOR, linestyle="--", label=target_label)
        axes.legend(fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel, fontsize=9)
    axes.set_ylabel(ylabel, fontsize=9)
    _thousands(axes.yaxis)
    return _png(figure)


def horizontal_bars(labels, values, *, title: str, xlabel: str = "count") -> bytes:
    figure, axes = plt.subplots(figsize=(WIDTH, max(1.6, 0.32 * len(values) + 0.9)))
    axes.barh(range(len(values)), values, color=COLOR)
    axes.set_yticks(range(len(values)))
    axes.set_yticklabels(labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel, fontsize=9)
    _thousands(axes.xaxis)
    return _png(figure)


def rank_frequency(counts_sorted, *, vocab_size: int, title: str) -> bytes:
    """Token frequency by rank (log-log) and the share of all tokens the top ranks cover."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, HEIGHT))
    ranks = range(1, len(counts_sorted) + 1)
    left.loglog(ranks, counts_sorted, color=COLOR)
    left.set_title("tokens per vocabulary entry, by rank", fontsize=9)
    left.set_xlabel("rank", fontsize=9)
    left.set_ylabel("tokens", fontsize=9)
    total = sum(counts_sorted) or 1
    cumulative, running = [], 0
    for count in counts_sorted:
        running += count
        cumulative.append(running / total)
    right.plot(ranks, cumulative, color=COLOR)
    right.axvline(vocab_size, color=TARGET_COLOR, linestyle="--", label=f"vocabulary size {vocab_size:,}")
    right.set_xscale("log")
    right.set_ylim(0, 1.02)
    right.set_title("share of all tokens covered by the top ranks", fontsize=9)
    right.set_xlabel("vocabulary entries, most frequent first", fontsize=9)
    right.legend(fontsize=8, loc="lower right")
    figure.suptitle(title, fontsize=10)
    return _png(figure)
