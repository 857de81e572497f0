"""``wwm plan``: what a run will cost before it starts, from the sizes of its input files alone
(FileSystems.match: no file is opened, no pipeline is built, nothing is loaded).

It takes ``wwm run``'s own flags (the same parser: sources, formats, recipe, lengths, dupe factor,
segmenter, --num_shards) and prints, for the whole recipe (clean -> segment -> make instances):
shards, memory per worker, instances per phase, CPU-hours per stage, and Dataflow worker-hours at
a machine type. Every figure comes from RATES, measured with the real commands
(benchmarks/plan_benchmark.py), and from the model written next to each rate.
"""
import argparse
import dataclasses
import json
import math

from wwm_cli import flags
from wwm_core.errors import UsageError

# ------------------------------------------------------------------ measured figures, one table
# Each figure's measurement, its date and how to reproduce it: docs/performance.md, "wwm plan's rates".
RATES_MEASURED = ("2026-11-26 on the development machine (x86_64, 2 cores, Python 3.11.7) by "
                  "benchmarks/plan_benchmark.py: `wwm prepare`, `wwm segment`, `wwm run` in child processes, CPU "
                  "time from the kernel, marginal rates (the slope between a 2 MB and an 8 MB corpus, leaving out "
                  "each command's ~2.5 CPU-s of start-up); one run (earlier runs on a busier machine differed by "
                  "up to 40%)")
RATES = {
    # cleaning (`wwm prepare`): MB of uncompressed input per CPU-second (the wiki dump is the real
    # excerpt's pages repeated)
    "clean_mb_per_cpu_s": {"text": 32.6, "jsonl": 8.0, "wiki": 1.43},
    # bytes of clean text (sentences, one a line) per byte of uncompressed input. wiki: the real
    # zhwiki excerpt in ../shared/data (markup, templates, XML and tail sections removed; its 23
    # articles are long, a whole dump's redirects and stubs make the share smaller); jsonl:
    # news2016zh's layout (keys, ids, dates); text: Google's layout, nothing to remove
    "text_share": {"text": 0.999, "jsonl": 0.875, "wiki": 0.453},
    # uncompressed / compressed bytes: bz2 of the real zhwiki excerpt, gzip of the UD sentences
    "compression": {".bz2": 3.23, ".gz": 1.91},
    # UTF-8 bytes per character of clean Chinese text (UD sentences)
    "bytes_per_char": 2.79,
    # `wwm prepare`'s Parquet (zstd) per byte of clean text: the zhwiki excerpt
    "parquet_bytes_per_text_byte": 0.57,
    # `wwm segment`, characters per CPU-second: segment_benchmark.py's marginal rate, one worker, of
    # a UD-trained LTP perceptron (LTP/legacy itself cannot be downloaded here); plan_benchmark.py's
    # own LTP figure is higher, and the lower one is kept (docs/performance.md, "Segmentation
    # throughput")
    "segment_chars_per_cpu_s": {"ltp": 768_635, "jieba": 292_648, "char": None},
    # `wwm run` on Parquet with cached word boundaries: CPU-seconds per character (reading,
    # tokenizing, grouping, and the per-token part of masking and encoding) plus per instance of
    # each length; solved from the marginal CPU of 128 alone, 512 alone and both in one run. These
    # were measured later than the cleaning rates above, which were kept (why: docs/performance.md)
    "run_cpu_s_per_char": 0.52e-6,
    "run_cpu_s_per_instance": {128: 5.5e-6, 512: 5.7e-6},
    # instances per dupe = characters / chars_per_instance + documents x per_document, solved from
    # two corpora of UD sentences at dupe 5 with bert-wwm's NSP pairs (7,132 documents of 5-15
    # sentences, 795 of 60-120; the same in both runs)
    "chars_per_instance": {128: 109.3, 512: 354.7},
    "instances_per_document": {128: 0.600, 512: 0.913},
    # near dedup (--near_duplicate_threshold): MB of clean text per CPU-second for the MinHash
    # signatures and band groups, charged to cleaning: the marginal CPU of `wwm run` with and without
    # the flag, between two corpus sizes
    "near_dedup_mb_per_cpu_s": 4.16,
    # a dedup group's memory beyond a worker's fixed part, in bytes per document of the corpus: an
    # id group (1/16 of the ids; the largest of exact dedup) and, with near dedup, a band group (1/32
    # of the 8 band keys per document): the slope of peak RSS between two synthetic indexes (linear)
    "dedup_group_bytes_per_document": {"ids": 31.5, "bands": 40.0},
    # memory per worker process: wwm_core.sizing.worker_memory_mb, which `wwm run` checks too
}
# Not measured: the mean length of a document, which decides how many short (last) instances a
# document makes; --mean_document_chars gives the corpus's own.
DEFAULT_MEAN_DOCUMENT_CHARS = 1000

# vCPUs and GB of memory of Compute Engine machine types Dataflow runs on.
MACHINE_TYPES = {
    **{f"n2-standard-{n}": (n, 4 * n) for n in (2, 4, 8, 16, 32, 48, 64, 80)},
    **{f"n2-highmem-{n}": (n, 8 * n) for n in (2, 4, 8, 16, 32, 48, 64, 80)},
    **{f"n2-highcpu-{n}": (n, n) for n in (2, 4, 8, 16, 32, 48, 64, 80)},
    **{f"e2-standard-{n}": (n, 4 * n) for n in (2, 4, 8, 16, 32)},
    **{f"e2-highmem-{n}": (n, 8 * n) for n in (2, 4, 8, 16)},
    **{f"e2-highcpu-{n}": (n, n) for n in (2, 4, 8, 16, 32)},
    **{f"n1-standard-{n}": (n, 3.75 * n) for n in (1, 2, 4, 8, 16, 32, 64, 96)},
}
DEFAULT_MACHINE_TYPE = "n2-standard-4"


def _interpolated(table: dict, length: int) -> float:
    """A per-length figure at ``length``: measured at 128 and 512, linear in the length between
    and beyond them."""
    (short, low), (long, high) = sorted(table.items())
    return low + (high - low) * (length - short) / (long - short)


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str
    bytes: int
    input_format: str  # text | jsonl | wiki | parquet


def uncompressed_bytes(file: InputFile) -> float:
    for suffix, ratio in RATES["compression"].items():
        if file.path.endswith(suffix):
            return file.bytes * ratio
    return float(file.bytes)


def text_bytes(file: InputFile) -> float:
    """Bytes of clean text the file holds (estimated from its size)."""
    if file.input_format == "parquet":
        return file.bytes / RATES["parquet_bytes_per_text_byte"]
    return uncompressed_bytes(file) * RATES["text_share"][file.input_format]


def planned_shards(files, *, num_shards: int) -> int:
    """About how many shards (buckets) `wwm run` or `wwm prepare` makes of these files: buckets of
    the size sizing.bucket_bytes_of sets from the input's sizes (its estimate of the text, exactly
    as the run makes it), files read in the groups sizing.read_groups makes (small files gathered),
    each group filling buckets of that size with its clean text (this module's better estimate),
    its last one partly."""
    from wwm_core.sizing import bucket_bytes_of, estimated_text_bytes, read_groups

    files = sorted(files, key=lambda f: f.path)
    estimated = [estimated_text_bytes(f.path, f.bytes, f.input_format) for f in files]
    bucket = bucket_bytes_of(sum(estimated), num_shards=num_shards)
    groups = read_groups(estimated, gatherable=[f.input_format != "parquet" for f in files], bucket_bytes=bucket)
    return sum(max(1, math.ceil(sum(text_bytes(files[i]) for i in group) / bucket)) for group in groups)


def estimate(files, *, lengths, dupe_factor: int, segmenter: str, machine_type: str = DEFAULT_MACHINE_TYPE,
             num_shards: int = 0, mean_document_chars: int = DEFAULT_MEAN_DOCUMENT_CHARS,
             max_num_workers: int = 0, near_duplicate_threshold: float = 0.0) -> dict:
    """The plan, from file sizes and settings only (a pure function: no I/O)."""
    if machine_type not in MACHINE_TYPES:
        raise UsageError(f"--machine_type {machine_type!r} is not in the table: {', '.join(sorted(MACHINE_TYPES))}")
    vcpus, memory_gb = MACHINE_TYPES[machine_type]
    raw_bytes = sum(f.bytes for f in files)
    text = sum(text_bytes(f) for f in files)
    chars = text / RATES["bytes_per_char"]
    documents = chars / mean_document_chars
    prepared = all(f.input_format == "parquet" for f in files)
    # A prepared corpus's documents files are its buckets; `wwm prepare` makes them as `wwm run` would.
    buckets = len(files) if prepared else planned_shards(files, num_shards=num_shards)
    shards = {"run_on_these_files": buckets, "run_on_prepared_parquet": buckets, "prepare_parquet_files": buckets}
    phases = {}
    for length in lengths:
        per_dupe = (chars / _interpolated(RATES["chars_per_instance"], length)
                    + documents * _interpolated(RATES["instances_per_document"], length))
        phases[length] = round(per_dupe * dupe_factor)
    raw_files = [f for f in files if f.input_format != "parquet"]  # prepared input is not cleaned again
    clean_cpu = sum(uncompressed_bytes(f) / 1e6 / RATES["clean_mb_per_cpu_s"][f.input_format] for f in raw_files)
    near_dedup = near_duplicate_threshold > 0
    if near_dedup:
        clean_cpu += sum(text_bytes(f) for f in raw_files) / 1e6 / RATES["near_dedup_mb_per_cpu_s"]
    segment_rate = RATES["segment_chars_per_cpu_s"][segmenter]
    segment_cpu = chars / segment_rate if segment_rate else 0.0
    run_cpu = chars * RATES["run_cpu_s_per_char"] + sum(
        count * _interpolated(RATES["run_cpu_s_per_instance"], length) for length, count in phases.items())
    cpu_hours = {"prepare": clean_cpu / 3600, "segment": segment_cpu / 3600, "run": run_cpu / 3600}
    bucket_text_mb = text / shards["run_on_prepared_parquet"] / 1e6
    from wwm_core.sizing import WORKER_MEMORY_FIXED_MB, worker_memory_mb

    bucket_mb = worker_memory_mb(bucket_text_mb, dupe_factor=dupe_factor)
    # The worker of a dedup group holds its share of the whole corpus's ids (or band keys).
    group_kind = "bands" if near_dedup and not prepared else "ids"
    group_bytes = RATES["dedup_group_bytes_per_document"][group_kind]
    if group_kind == "bands":  # measured with 8 bands a document (0.8); a lower threshold makes more
        from wwm_core.near_dedup import band_layout

        group_bytes *= band_layout(near_duplicate_threshold)[0] / 8
    group_mb = WORKER_MEMORY_FIXED_MB + documents * group_bytes / 1e6
    process_mb = max(bucket_mb, group_mb)
    # Dataflow starts one Python SDK process per vCPU; with --number_of_worker_harness_threads=1
    # (wwm submit passes it) each makes one bucket at a time.
    worker_gb = vcpus * process_mb / 1024
    total_cpu_hours = sum(cpu_hours.values())
    worker_hours = total_cpu_hours / vcpus
    plan = {
        "input": {"files": len(files), "bytes": raw_bytes,
                  "uncompressed_bytes": round(sum(map(uncompressed_bytes, files))), "clean_text_bytes": round(text),
                  "characters": round(chars), "documents_assumed": round(documents),
                  "mean_document_chars": mean_document_chars},
        "shards": shards,
        "instances": {str(length): count for length, count in phases.items()},
        "memory": {"bucket_text_mb": round(bucket_text_mb, 1), "per_process_mb": round(process_mb),
                   "bucket_process_mb": round(bucket_mb), "dedup_group_process_mb": round(group_mb),
                   "per_worker_gb": round(worker_gb, 1), "machine_gb": memory_gb,
                   "fits": worker_gb <= 0.8 * memory_gb},
        "cpu_hours": {stage: round(hours, 6) for stage, hours in cpu_hours.items()},
        "dataflow": {"machine_type": machine_type, "vcpus": vcpus, "worker_hours": round(worker_hours, 2),
                     "vcpu_hours": round(total_cpu_hours, 2), "memory_gb_hours": round(worker_hours * memory_gb, 1)},
        "rates_measured": RATES_MEASURED,
    }
    if max_num_workers:
        plan["dataflow"].update(max_num_workers=max_num_workers,
                                hours_at_max_workers=round(worker_hours / max_num_workers, 2))
    return plan


# ------------------------------------------------------------------ wwm plan

def plan_parser() -> argparse.ArgumentParser:
    """``wwm run``'s parser (the same flags, so a plan is made of the very command line a run takes),
    with --output optional and the plan's own flags."""
    from wwm_cli.data import run_parser

    parser = run_parser(output_required=False)
    parser.prog = "wwm plan"
    parser.description = ("Shards, memory per worker, instances, CPU-hours and Dataflow worker-hours of the whole "
                          "recipe (prepare, segment, run) on these inputs, from their sizes alone; takes `wwm run`'s "
                          "flags. Nothing is read or started.")
    group = parser.add_argument_group("plan")
    group.add_argument("--machine_type", default=DEFAULT_MACHINE_TYPE, choices=sorted(MACHINE_TYPES),
                       metavar="MACHINE_TYPE", help="Dataflow worker machine type (n2-, e2-, n1-)")
    group.add_argument("--max_num_workers", type=int, default=0, help="also print the hours at this many workers")
    group.add_argument("--mean_document_chars", type=int, default=DEFAULT_MEAN_DOCUMENT_CHARS,
                       help="the corpus's mean document length in characters, if known (not measured from sizes)")
    group.add_argument("--json", action="store_true", help="print the plan as JSON")
    return parser


def input_files_of(config) -> list:
    """Every input file with its size and format, matched as `wwm run` matches them (metadata
    only; paths that cannot be read are left out)."""
    from pipelines.inputs import match_sources

    files, _ = match_sources(config.sources)
    return [InputFile(f.path, f.bytes, config.sources[f.source].input_format) for f in files]


def plan_from_args(args, beam_args) -> dict:
    args.output = args.output or "(plan)"
    config = flags.config_from_args(args, beam_args, instances=True)
    files = input_files_of(config)
    return estimate(files, lengths=[phase.max_seq_length for phase in config.instances.phases],
                    dupe_factor=config.instances.dupe_factor, segmenter=config.segmentation.segmenter,
                    machine_type=args.machine_type,
                    # --balance_shards: --num_shards counts files; the buckets keep their automatic size
                    num_shards=0 if config.output.balance_shards else config.output.num_shards,
                    mean_document_chars=args.mean_document_chars,
                    max_num_workers=args.max_num_workers,
                    near_duplicate_threshold=config.cleaning.near_duplicate_threshold)


def _size(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:,.2f} {unit}"
    return f"{count:.0f} bytes"


def _hours(hours: float) -> str:
    return f"{hours:,.2f} h" if hours >= 0.1 else f"{hours * 3600:,.0f} s"


def format_plan(plan: dict) -> str:
    size, shards, memory, cpu, dataflow = (plan[k] for k in ("input", "shards", "memory", "cpu_hours", "dataflow"))
    lines = [
        f"input        {size['files']} files, {_size(size['bytes'])} ({_size(size['uncompressed_bytes'])} uncompressed)"
        f" -> ~{_size(size['clean_text_bytes'])} of clean text, ~{size['characters']:,} characters, "
        f"~{size['documents_assumed']:,} documents of {size['mean_document_chars']:,} characters (assumed)",
        f"shards       wwm run on the prepared Parquet: {shards['run_on_prepared_parquet']:,}; on these files: "
        f"{shards['run_on_these_files']:,}; wwm prepare writes {shards['prepare_parquet_files']:,} Parquet files",
        "instances    " + ", ".join(f"{int(n):,} at {length}" for length, n in plan["instances"].items()),
        f"memory       ~{memory['per_process_mb']:,} MB per worker process (a bucket of {memory['bucket_text_mb']} MB "
        f"of text: {memory['bucket_process_mb']:,} MB; a dedup group: {memory['dedup_group_process_mb']:,} MB); "
        f"{memory['per_worker_gb']} GB per {dataflow['machine_type']} worker (one process per vCPU) of its "
        f"{memory['machine_gb']:g} GB" + ("" if memory["fits"] else
                                          ": TOO MUCH, raise --num_shards or take a highmem machine type"),
        f"CPU          prepare {_hours(cpu['prepare'])}, segment {_hours(cpu['segment'])}, run {_hours(cpu['run'])}; "
        f"total {_hours(sum(cpu.values()))}",
        f"Dataflow     {dataflow['worker_hours']:,.2f} worker-hours of {dataflow['machine_type']} "
        f"({dataflow['vcpus']} vCPUs): {dataflow['vcpu_hours']:,.2f} vCPU-hours and {dataflow['memory_gb_hours']:,.1f} "
        "GB-hours, at full use, without Dataflow's start-up and shuffle"
        + (f"; {dataflow['hours_at_max_workers']:,.2f} h at {dataflow['max_num_workers']} workers"
           if "hours_at_max_workers" in dataflow else ""),
        f"rates        measured {plan['rates_measured']}",
    ]
    return "\n".join(lines)


def plan_main(argv) -> dict:
    args, beam_args = plan_parser().parse_known_args(argv)
    plan = plan_from_args(args, beam_args)
    print(json.dumps(plan, indent=1) if args.json else format_plan(plan))
    return plan
