"""What every stage shares: the side outputs (dead letters, counters), the accounting, and the
manifest written last.

Every stage's DoFns yield records on their main output, ``BadRecord``s on ``DEAD_LETTER`` and
``collections.Counter``s on ``STATS``; the counters are also Beam metrics (namespace ``wwm``),
so Dataflow's and Spark's consoles show them while a job runs.
"""
import collections
import functools
import hashlib
import json
import os
import pathlib
import shutil

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from pipelines.io_utils import join
from pipelines.output import WORK_FOLDER, write_atomically
from wwm_core.manifest import MANIFEST, TOOL, Manifest, library_versions, now, tool_version
from wwm_core.stats import Stats
from wwm_core.text import BadRecord

DEAD_LETTER = "dead_letter"
STATS = "stats"
NAMESPACE = "wwm"
DEAD_LETTER_FOLDER = "dead_letter"


def count(stats: Stats) -> None:
    """Adds the scalar counters of ``stats`` to Beam's metrics (what a runner's console shows
    while the job runs); its histograms and texts travel with it to the manifest."""
    for name, value in stats.items():
        Metrics.counter(NAMESPACE, name).inc(value)


def dead(record: BadRecord, stats: collections.Counter):
    """A record that cannot be used: counted as read and as dead-lettered, with its reason."""
    stats["records_in"] += 1
    stats[f"dead_lettered.{record.reason}"] += 1
    return beam.pvalue.TaggedOutput(DEAD_LETTER, record)


class SumStats(beam.CombineFn):
    """Every stage's Stats -> the run's (wwm_core.stats.Stats, added up)."""

    def create_accumulator(self):
        return Stats()

    def add_input(self, accumulator, stats):
        return accumulator.add(stats)

    def merge_accumulators(self, accumulators):
        total = Stats()
        for accumulator in accumulators:
            total.add(accumulator)
        return total

    def extract_output(self, accumulator):
        return accumulator


def accounting(counters: dict) -> dict:
    """records in = out + filtered + dead-lettered, from the counters."""
    filtered = sum(v for k, v in counters.items() if k.startswith("documents_filtered."))
    dead_lettered = sum(v for k, v in counters.items() if k.startswith("dead_lettered."))
    records_in, out = counters.get("records_in", 0), counters.get("documents_out", 0)
    return {"records_in": records_in, "out": out, "filtered": filtered, "dead_lettered": dead_lettered,
            "balanced": records_in == out + filtered + dead_lettered}


def sum_counters(stats, label: str = "SumStats"):
    """Every STATS output of a pipeline -> one dict of summed counters."""
    return (stats | f"All{label}" >> beam.Flatten()
            | label >> beam.CombineGlobally(SumStats()))


def _dead_letter_json(record: BadRecord) -> str:
    return json.dumps({"id": record.id, "reason": record.reason, "detail": record.detail, "raw": record.raw},
                      ensure_ascii=False)


class CheckedDoFn(beam.DoFn):
    """A stage's DoFn whose workers must run what the launcher ran: the launcher's versions are
    taken where the pipeline is built and checked in ``setup`` (check_worker_versions), then
    ``start`` loads what the DoFn needs once per worker."""

    def __init__(self, *, expected_versions=None):
        super().__init__()
        self._expected_versions = launcher_versions(expected_versions)

    def setup(self):
        check_worker_versions(self._expected_versions)
        self.start()

    def start(self) -> None:
        pass


class AccountedDoFn(CheckedDoFn):
    """The stage protocol: ``work(element, stats, dead_letters)`` yields the element's main outputs
    (and any tagged output of its own), counting into ``stats`` and appending BadRecords to
    ``dead_letters``; the dead letters then go to DEAD_LETTER, and the stats to STATS and, their
    scalars, to Beam's metrics."""

    def process(self, element):
        stats, dead_letters = Stats(), []
        yield from self.work(element, stats, dead_letters)
        for record in dead_letters:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, record)
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)

    def work(self, element, stats, dead_letters):
        raise NotImplementedError


def write_dead_letters(bad_records, output: str):
    """Dead letters as JSON lines under OUTPUT/dead_letter/; returns the written file names."""
    return (bad_records
            | "AllDeadLetters" >> beam.Flatten()
            | "DeadLetterJson" >> beam.Map(_dead_letter_json)
            | "WriteDeadLetters" >> beam.io.WriteToText(
                join(output, DEAD_LETTER_FOLDER, "records"), file_name_suffix=".jsonl", num_shards=1))


def dead_letter_names(paths) -> tuple:
    return tuple(sorted(join(DEAD_LETTER_FOLDER, FileSystems.split(path)[1]) for path in paths))


class FinishStage(beam.PTransform):
    """How every command's pipeline ends: its dead letters written (OUTPUT/dead_letter/), its stats
    summed, and then, once every file and dead letter is written, its manifest, last (a run whose
    records are unaccounted for writes none): ``write_manifest(files=[...], counters={...},
    dead_letter_files=[...], **side)`` runs once and writes it; ``side``: further side inputs it
    takes (beam.pvalue.AsSingleton and the like). With ``work_folder``, the work folder is removed
    after the manifest, by the job itself, wherever it runs. Applied to the pipeline; the
    PCollections it finishes are given here."""

    def __init__(self, *, output: str, files, stats, dead_letters, write_manifest, side=None,
                 work_folder: bool = False):
        super().__init__()
        self._output, self._files, self._stats, self._dead_letters = output, files, tuple(stats), tuple(dead_letters)
        self._write_manifest, self._side, self._work_folder = write_manifest, dict(side or {}), work_folder

    def expand(self, pipeline):
        dead_letter_files = write_dead_letters(self._dead_letters, self._output)
        counters = sum_counters(self._stats)
        # Listed by a combine, not as a side input of a ParDo's main output: Beam's
        # BundleBasedDirectRunner would hand that ParDo's side outputs to such a side input too.
        file_list = self._files | "ListFiles" >> beam.combiners.ToList()
        manifest = (pipeline
                    | "ManifestTrigger" >> beam.Create([None])
                    | "WriteManifest" >> beam.Map(
                        _write_manifest, write=self._write_manifest,
                        files=beam.pvalue.AsSingleton(file_list), counters=beam.pvalue.AsSingleton(counters),
                        dead_letter_files=beam.pvalue.AsList(dead_letter_files), **self._side))
        if self._work_folder:
            manifest = manifest | "RemoveWorkFolder" >> beam.Map(remove_work_folder, output=self._output)
        return manifest


def _write_manifest(_, *, write, **inputs):
    return write(**inputs)


def remove_work_folder(manifest, *, output: str):
    """The last step of a pipeline that wrote ``output``: once its manifest is written, the work
    folder (bucket files, shards waiting to be balanced) goes, by the job itself, wherever it runs
    (a Dataflow template or a Dataproc jar runs after its launcher returned). Returns the manifest."""
    folder = join(output, WORK_FOLDER)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    elif FileSystems.match([f"{folder}/**"])[0].metadata_list:
        FileSystems.delete([f"{folder}/"])  # gs://: "prefix/" deletes everything under it
    return manifest


class RunInfo:
    """What every manifest says of the command that made it: the command line, when it ran, the
    versions of the tool and the libraries that decide the bytes, the input files."""

    def __init__(self, *, command, inputs=()):
        self.command = tuple(command)
        self.inputs = tuple(inputs)
        self.started_at = now()
        self.tool_version = tool_version()
        self.libraries = launcher_versions()  # the libraries that decide the bytes, and this package's code

    def fields(self) -> dict:
        return {"command": self.command, "inputs": self.inputs, "started_at": self.started_at,
                "finished_at": now(), "tool_version": self.tool_version, "libraries": self.libraries}


def write_manifest(folder: str, manifest: Manifest) -> Manifest:
    """Writes ``folder/manifest.json`` last: its presence means the job completed."""
    return write_manifest_file(join(folder, MANIFEST), manifest)


def write_manifest_file(path: str, manifest: Manifest) -> Manifest:
    """Writes a manifest once the accounting holds (a run whose records are unaccounted for
    writes none)."""
    if manifest.accounting and not manifest.accounting["balanced"]:
        raise RuntimeError(f"records are unaccounted for: {manifest.accounting}; refusing to write a manifest")
    write_atomically(path, manifest.to_bytes())
    return manifest


# ---------------------------------------------------------------- workers run what the launcher ran

class WorkerVersionError(RuntimeError):
    """A worker whose byte-deciding libraries (or this package's code) differ from the launcher's."""


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (first 16 hex digits) of this package's pipeline code (pipelines/ and wwm_core/,
    every .py file by its path under the package): the tool's version string does not change
    with every commit, its code does."""
    digest = hashlib.sha256()
    root = pathlib.Path(__file__).resolve().parents[1]
    for package in ("pipelines", "wwm_core"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def launcher_versions(given: dict = None) -> dict:
    """What a stage's DoFns carry to the workers: ``given``, or this process's versions of the
    libraries that decide the bytes (the manifest's ``libraries``) and of this package's code.
    Called where the pipeline is built, so the pickled DoFns hold the launcher's values."""
    if given is not None:
        return dict(given)
    return {**library_versions(), TOOL: f"{tool_version()} code {code_digest()}"}


def _comparable(name: str, version):
    # Beam's SDK containers fix Python's minor version; a patch release does not change the bytes.
    if name == "python" and version:
        return ".".join(version.split(".")[:2])
    return version


def version_differences(expected: dict, actual: dict) -> list:
    """(name, expected, actual) for every entry of ``expected`` that ``actual`` does not match."""
    return [(name, expected[name], actual.get(name)) for name in sorted(expected)
            if _comparable(name, expected[name]) != _comparable(name, actual.get(name))]


def check_worker_versions(expected: dict, *, actual: dict = None) -> None:
    """Called in each stage DoFn's ``setup()``: a worker whose versions differ from the launcher's
    refuses to start, in one line naming each library and both versions. Its output would not be
    the bytes the manifest's ``libraries`` promise (numpy's and tokenizers' versions, LTP's and
    jieba's models, OpenCC's tables all change them)."""
    differences = version_differences(expected, launcher_versions() if actual is None else actual)
    if differences:
        listed = "; ".join(f"{name} {found or 'not installed'} on this worker, {wanted or 'not installed'} on the "
                           "launcher" for name, wanted, found in differences)
        raise WorkerVersionError(
            f"this worker refuses to start: {listed}. Run the workers in the image built from requirements.lock "
            "(deploy/Dockerfile) and launch from the same versions (bash scripts/setup.sh, or the image itself).")
