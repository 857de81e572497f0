"""Live progress of a local run: input read and cleaned, sentences segmented, shards written.

Beam's local runners run DoFns in worker threads or worker processes, and report metrics only
when the pipeline has finished. So the DoFns that do the work (``ReadAndClean``, ``WriteShard``,
``WriteDocuments``, ``SegmentFile``) also write their running counts to small files in a
temporary folder (a ``ProgressChannel``), one file per DoFn instance, rewritten at most a few
times a second; a thread of the launcher sums them and draws the bars with ``rich``. On Dataflow
and Spark there is no channel: the runner's console shows the same counts as Beam metrics
(namespace ``wwm``: records_in, documents_out, sentences, shards_written), which those DoFns
report as each unit or bucket is done.

    with progress.display(progress.run_stages(...), mode=..., local=...) as channel:  # None when off
        with beam.Pipeline(...) as pipeline:
            build_pipeline(pipeline, ..., progress=channel)

With no channel (``--progress off``, a CI log, a remote runner) the DoFns hold ``None`` and
count nothing: progress then costs one ``is None`` test per unit, bucket or segmenter call.
"""
import collections
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid

FLUSH_SECONDS = 0.3  # a worker rewrites its count file at most this often
POLL_SECONDS = 0.25  # the launcher reads the count files this often
PLAIN_LINE_SECONDS = 10.0  # without a terminal (--progress on in a log): one summary line this often
MB = 1e6


@dataclasses.dataclass(frozen=True)
class Stage:
    """One bar. ``name`` keys the counts; ``unit`` is what its count ``n`` counts. The bar's
    total: ``total`` (known at launch), or ``total_from`` ("stage.measure": a count or a noted
    value of the run so far, e.g. the buckets a writer saw). ``by``: a measure the bar and its
    ETA follow instead of ``n`` (the read bar follows input bytes, whose total is known at
    launch, while it shows documents, whose total is not). ``kept``: a measure shown beside
    ``n`` (documents kept by cleaning)."""
    name: str
    description: str
    unit: str
    total: int = None
    total_from: str = None
    by: str = None
    kept: str = None


def run_stages(*, input_bytes: int, sentence_total: bool) -> tuple:
    """The bars of ``wwm run``. ``sentence_total``: the sentences cleaning kept are the total of
    segmentation (not so with a segmentation cache, which spares some, or on prepared input,
    whose sentences are not counted before they are segmented)."""
    return (Stage("read", "read and cleaned", "documents", total=input_bytes, by="bytes", kept="kept"),
            Stage("segmented", "sentences segmented", "sentences",
                  total_from="read.sentences" if sentence_total else None),
            Stage("shards", "shards written", "shards", total_from="shards.of"))


def prepare_stages(*, input_bytes: int) -> tuple:
    return (Stage("read", "read and cleaned", "documents", total=input_bytes, by="bytes", kept="kept"),
            Stage("written", "files written", "files", total_from="written.of"))


def segment_stages(*, num_documents: int, num_files: int) -> tuple:
    return (Stage("segmented", "documents segmented", "documents", total=num_documents),
            Stage("written", "files written", "files", total=num_files))


class ProgressChannel:
    """A folder the workers write their running counts to (picklable: only its path travels)."""

    def __init__(self, folder: str):
        self.folder = folder

    def tally(self, stage: str) -> "Tally":
        return Tally(self.folder, stage)

    def totals(self) -> dict:
        """{stage: {measure: value}}: counts summed over every worker's file, noted values the
        largest any worker noted; a file being replaced is skipped."""
        totals = collections.defaultdict(collections.Counter)
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return {}
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.folder, name), encoding="utf-8") as handle:
                    record = json.load(handle)
            except (OSError, ValueError):
                continue
            stage = totals[record["stage"]]
            stage.update(record["counts"])
            for key, value in record.get("noted", {}).items():
                stage[key] = max(stage[key], value)
        return {stage: dict(counts) for stage, counts in totals.items()}


class Tally:
    """One worker's running counts for one stage, written to its own file (temporary name, then
    renamed, so the launcher never reads half a file)."""

    def __init__(self, folder: str, stage: str):
        self._path = os.path.join(folder, f"{stage}-{os.getpid()}-{uuid.uuid4().hex}.json")
        self._stage = stage
        self._counts = collections.Counter()
        self._noted = {}
        self._flushed_at = 0.0

    def add(self, **amounts) -> None:
        """Counts ``amounts``; written out at most every FLUSH_SECONDS (``flush`` when a piece of
        work is done, so the launcher's last look sees everything)."""
        self._counts.update(amounts)
        if time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self.flush()

    def note(self, **values) -> None:
        """Values that are the same whoever counts them (how many buckets there are): the
        launcher takes the largest, not the sum."""
        self._noted.update(values)

    def flush(self) -> None:
        self._flushed_at = time.monotonic()
        temporary = f"{self._path}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump({"stage": self._stage, "counts": dict(self._counts), "noted": self._noted}, handle)
            os.replace(temporary, self._path)
        except OSError:  # the launcher removed the folder (the run ended): nothing to report to
            pass


def tally(channel, stage: str):
    """``channel``'s Tally for ``stage`` (in a DoFn's setup), or None without a channel."""
    return None if channel is None else channel.tally(stage)


class CountingSegmenter:
    """A segmenter that counts the sentences it segmented into a Tally after each call
    (``ShardMaker`` calls it once per chunk of about 8,192 sentences, cache hits left out)."""

    def __init__(self, segmenter, tally: Tally):
        self._segmenter = segmenter
        self._tally = tally

    def segment(self, sentences):
        words = self._segmenter.segment(sentences)
        self._tally.add(n=len(sentences))
        self._tally.flush()  # a call is thousands of sentences: one small file write is nothing beside it
        return words


def counting_segmenter(segmenter, channel, stage: str = "segmented"):
    return segmenter if channel is None else CountingSegmenter(segmenter, channel.tally(stage))


def wanted(mode: str, *, stream=None) -> bool:
    """--progress: on, off, or auto (on when the stream, stderr by default, is a terminal)."""
    stream = sys.stderr if stream is None else stream
    if mode == "auto":
        return hasattr(stream, "isatty") and stream.isatty()
    return mode == "on"


@contextlib.contextmanager
def display(stages, *, mode: str, local: bool = True):
    """Yields the channel the pipeline's DoFns count into (None when progress is off or the runner
    is not ``local``) while a launcher thread shows the counts: live bars on a terminal, a summary
    line every PLAIN_LINE_SECONDS otherwise (--progress on in a log file)."""
    if not wanted(mode):
        yield None
        return
    if not local:
        logging.getLogger("wwm").info("progress bars are for local runs: the runner's console shows the Beam "
                                      "metrics (namespace wwm) instead")
        yield None
        return
    folder = tempfile.mkdtemp(prefix="wwm-progress-")
    channel = ProgressChannel(folder)
    view = _Bars(stages) if sys.stderr.isatty() else _Lines(stages)
    stop = threading.Event()
    thread = threading.Thread(target=_poll, args=(channel, view, stop), name="wwm-progress", daemon=True)
    view.start()
    thread.start()
    succeeded = False
    try:
        yield channel
        succeeded = True
    finally:
        stop.set()
        thread.join()
        view.stop(channel.totals(), finished=succeeded)
        shutil.rmtree(folder, ignore_errors=True)


def _poll(channel, view, stop) -> None:
    while not stop.wait(POLL_SECONDS):
        view.update(channel.totals())


@dataclasses.dataclass(frozen=True)
class Row:
    """A bar's state: ``completed`` of ``total`` (None: not known yet) drive the bar and its ETA;
    ``text`` says what was counted."""
    stage: Stage
    completed: float
    total: float
    text: str


def _number(value) -> str:
    return f"{value:,.0f}"


def stage_rows(stages, totals: dict, *, finished: bool = False) -> list:
    """A Row per stage from the summed counts. ``finished``: the run has ended, so every count is
    final and is its own total (a total estimated before, such as sentences that deduplication
    later dropped, is replaced)."""
    rows = []
    for stage in stages:
        counts = totals.get(stage.name, {})
        done = counts.get("n", 0)
        total = stage.total
        if stage.total_from:
            name, _, measure = stage.total_from.partition(".")
            total = totals.get(name, {}).get(measure) or None
        if stage.by:
            completed = counts.get(stage.by, 0)
            total = completed if finished else total
            text = f"{_number(done)} {stage.unit}"
        else:
            completed = done
            total = done if finished else total and max(total, done)
            text = f"{_number(done)}" + (f"/{_number(total)}" if total else "") + f" {stage.unit}"
        if stage.kept:
            text += f" ({_number(counts.get(stage.kept, 0))} kept)"
        if stage.by == "bytes":
            text += f", {completed / MB:,.1f}" + (f"/{total / MB:,.1f} MB" if total else " MB")
        rows.append(Row(stage, completed, max(total, completed) if total else None, text))
    return rows


class _Bars:
    """rich's live bars on stderr; log lines printed meanwhile go above them."""

    def __init__(self, stages):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.table import Column

        self._stages = stages
        # What was counted comes last: on a narrow terminal it is what gets cut, not the times.
        def fixed(width):
            return Column(min_width=width, no_wrap=True)

        self._progress = Progress(TextColumn("{task.description}", table_column=fixed(19)),
                                  BarColumn(bar_width=12, table_column=fixed(12)),
                                  TimeElapsedColumn(table_column=fixed(7)), TextColumn("ETA", table_column=fixed(3)),
                                  TimeRemainingColumn(table_column=fixed(7)),
                                  TextColumn("{task.fields[text]}", table_column=Column(no_wrap=True,
                                                                                         overflow="ellipsis")),
                                  console=Console(stderr=True), redirect_stderr=True, redirect_stdout=True,
                                  transient=False)
        self._tasks = {}
        self._handlers = []

    def start(self) -> None:
        self._progress.start()
        for stage in self._stages:
            self._tasks[stage.name] = self._progress.add_task(stage.description, total=None, start=False,
                                                              text=f"0 {stage.unit}")
        # Handlers made before the display write to the real stderr, under the bars: send them
        # through rich's proxy, which prints above.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.__stderr__:
                self._handlers.append(handler)
                handler.setStream(sys.stderr)

    def update(self, totals: dict, *, finished: bool = False) -> None:
        for row in stage_rows(self._stages, totals, finished=finished):
            task = self._tasks[row.stage.name]
            if row.completed and not self._progress.tasks[task].started:
                self._progress.start_task(task)
            self._progress.update(task, completed=row.completed, total=row.total, text=row.text)

    def stop(self, totals: dict, *, finished: bool) -> None:
        self.update(totals, finished=finished)
        for handler in self._handlers:
            handler.setStream(sys.__stderr__)
        self._progress.stop()


class _Lines:
    """Without a terminal: a plain summary line now and then, and one at the end."""

    def __init__(self, stages):
        self._stages = stages
        self._started = time.monotonic()
        self._printed_at = self._started

    def start(self) -> None:
        pass

    def line(self, totals: dict, *, finished: bool = False) -> str:
        parts = [f"{row.stage.description} {row.text}" for row in stage_rows(self._stages, totals, finished=finished)]
        return f"progress ({time.monotonic() - self._started:.0f} s): " + ", ".join(parts)

    def update(self, totals: dict) -> None:
        if time.monotonic() - self._printed_at >= PLAIN_LINE_SECONDS:
            self._printed_at = time.monotonic()
            print(self.line(totals), file=sys.stderr, flush=True)

    def stop(self, totals: dict, *, finished: bool) -> None:
        print(self.line(totals, finished=finished), file=sys.stderr, flush=True)
