"""How a corpus is cut into buckets (each bucket one shard), and what a worker holding one costs,
from the input files' sizes alone: ``wwm run``, ``wwm prepare`` and ``wwm plan`` call the same
functions, so the same input gives the same buckets wherever and however it runs.

    estimated_text_bytes   a file's size -> the clean text it holds (before anything is read)
    bucket_bytes_of        the corpus's text -> how much text a bucket holds
    read_groups            files in their fixed order -> what each reader reads: a large file
                           alone, small files gathered until they fill a bucket
    worker_memory_mb       a bucket's text -> the memory of the process that makes its shard

The measurements behind the numbers are in docs/performance.md.
"""
import dataclasses
import logging
import math
import os

from wwm_core.errors import UsageError

log = logging.getLogger("wwm")

# A bucket (a shard) is about this much clean text: a worker holds one at a time, its token
# arrays and plans. Smaller corpora get at least MIN_BUCKETS buckets, so local workers and cloud
# workers have work to share.
BUCKET_BYTES = 8 * 1024 * 1024
MIN_BUCKETS = 8
MIN_BUCKET_BYTES = 64 * 1024
# Buckets above this (a small --num_shards on a big corpus) get a warning: memory per worker
# grows with the bucket.
LARGE_BUCKET_BYTES = 64 * 1024 * 1024
# Clean text per byte of input, to size buckets before anything is read: compressed files hold
# about four times their size in text; a wiki dump's markup is about half of it.
TEXT_PER_INPUT_BYTE = {".bz2": 4.0, ".gz": 4.0}
WIKI_TEXT_SHARE = 0.5
# Peak RSS of one worker process making one bucket (benchmarks/plan_benchmark.py): fixed + per MB
# of the bucket's text, at the measured dupe factor. `wwm run` refuses a bucket that cannot fit
# before any work; `wwm plan` prints the same figure.
WORKER_MEMORY_FIXED_MB = 408
WORKER_MEMORY_MB_PER_BUCKET_TEXT_MB = 3.6
MEASURED_DUPE_FACTOR = 5


def estimated_text_bytes(path: str, size: int, input_format: str) -> float:
    """Clean text in an input file of this size (before anything is read)."""
    factor = next((f for suffix, f in TEXT_PER_INPUT_BYTE.items() if path.endswith(suffix)), 1.0)
    return size * factor * (WIKI_TEXT_SHARE if input_format == "wiki" else 1.0)


def bucket_bytes_of(text: float, *, num_shards: int = 0) -> int:
    """--num_shards buckets in all, or BUCKET_BYTES each with at least MIN_BUCKETS of them."""
    if num_shards:
        return max(1, math.ceil(text / num_shards))
    return max(MIN_BUCKET_BYTES, math.ceil(text / max(MIN_BUCKETS, math.ceil(text / BUCKET_BYTES))))


def read_groups(texts, *, gatherable, bucket_bytes: int) -> list:
    """Which files are read together into the same buckets, as lists of positions into ``texts``
    (each file's estimated clean text, in the fixed order of the corpus's files).

    A file that fills a bucket on its own, or that cannot be gathered (``gatherable[i]`` False:
    prepared documents, whose file is already a bucket), is read alone. Smaller files are gathered
    in order until their text reaches ``bucket_bytes``: a corpus of many small files makes buckets
    of the usual size (so --num_shards holds), and a "random next" segment always has other
    documents of its bucket to come from."""
    groups, current, current_bytes = [], [], 0.0
    for position, (text, can_gather) in enumerate(zip(texts, gatherable)):
        if not can_gather or text >= bucket_bytes:
            if current:
                groups.append(current)
                current, current_bytes = [], 0.0
            groups.append([position])
            continue
        current.append(position)
        current_bytes += text
        if current_bytes >= bucket_bytes:
            groups.append(current)
            current, current_bytes = [], 0.0
    if current:
        groups.append(current)
    return groups


def worker_memory_mb(bucket_text_mb: float, *, dupe_factor: int = MEASURED_DUPE_FACTOR) -> float:
    """MB one worker process holds while it makes a bucket of this much text (the plans, which
    grow with the dupe factor, are scaled past the measured one)."""
    return WORKER_MEMORY_FIXED_MB + WORKER_MEMORY_MB_PER_BUCKET_TEXT_MB * bucket_text_mb * max(
        1.0, dupe_factor / MEASURED_DUPE_FACTOR)


def with_bucket_bytes(config, inputs):
    """The configuration with its bucket size decided (from the input's sizes), unless it is (a
    rerun's, from its manifest): it decides which documents share a shard, so the manifest
    records it."""
    if config.output.bucket_bytes:
        return config
    return dataclasses.replace(config, output=dataclasses.replace(
        config.output, bucket_bytes=bucket_bytes_for(config, inputs)))


def bucket_bytes_for(config, inputs) -> int:
    """How much clean text a bucket holds, estimated from the input's sizes alone, so the same
    input gives the same buckets wherever and however it runs."""
    text = sum(estimated_text_bytes(file.path, file.bytes, config.sources[file.source].input_format)
               for file in inputs)
    # With --balance_shards, --num_shards counts the balanced files: the buckets keep their size.
    num_shards = 0 if config.output.balance_shards else config.output.num_shards
    bucket_bytes = bucket_bytes_of(text, num_shards=num_shards)
    if bucket_bytes > LARGE_BUCKET_BYTES:
        log.warning("--num_shards %d makes buckets of about %d MB of text each: a worker holds a bucket's tokens and "
                    "plans while it writes its shard, so memory grows with it. Leave --num_shards out (buckets of "
                    "%d MB), or add --balance_shards to get %d files with buckets of the usual size",
                    num_shards, bucket_bytes >> 20, BUCKET_BYTES >> 20, num_shards)
    return bucket_bytes


def check_memory(config) -> None:
    """Before any work: a local run whose worker cannot hold one bucket on this machine is refused
    with the estimate; other runners get the estimate in the log, for their machine type."""
    bucket_bytes = config.output.bucket_bytes
    estimate_mb = worker_memory_mb(bucket_bytes / 1e6, dupe_factor=config.instances.dupe_factor)
    if not config.runner.local:
        log.info("each worker process needs about %.0f MB (buckets of %.1f MB of text)", estimate_mb, bucket_bytes / 1e6)
        return
    available_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e6
    if estimate_mb > available_mb:
        raise UsageError(f"this run needs about {estimate_mb / 1e3:.1f} GB per worker process (buckets of "
                         f"{bucket_bytes / 1e6:.0f} MB of text at dupe factor {config.instances.dupe_factor}), more "
                         f"than this machine's {available_mb / 1e3:.1f} GB: leave --num_shards out or raise it "
                         "(--balance_shards keeps the file count)")
