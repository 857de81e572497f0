"""Benchmark of wwm_torch: rows per CPU-second of the whole-word-mask collator (batches of 64, in
this process, one thread) on dynamic data (masks drawn) and static data (stored masks turned into
labels), at lengths 128 and 512; and of reading rows from the map-style and streaming datasets.

The data is `wwm run` output (jieba, Parquet) of a corpus of UD sentences (../shared/data), as in
generate_benchmark.py; making it is not measured.

    .venv/bin/python benchmarks/collator_benchmark.py [--corpus_mb 2] [--seconds 5]
"""
import argparse
import pathlib
import random
import time

from generate_benchmark import build_corpus, wwm
from measure import work_folder

BATCH = 64


def rows_per_cpu_second(work, seconds: float) -> float:
    """Rows per CPU-second of ``work()`` (which handles a batch of BATCH rows), repeated for ``seconds``."""
    work()  # warm up
    rows, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        work()
        rows += BATCH
    return rows / (time.process_time() - started)


def endless(dataset):
    while True:
        yield from dataset


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus_mb", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)

    import torch

    import wwm_torch

    torch.set_num_threads(1)
    folder = work_folder("collator")
    corpus = folder / "corpus.txt"
    build_corpus(corpus, args.corpus_mb, random.Random(0))
    print(f"corpus: {corpus.stat().st_size / 1e6:.1f} MB of UD sentences; batches of {BATCH}, one thread")
    for length in (128, 512):
        for masking in ("dynamic", "static"):
            output = folder / f"{masking}{length}"
            wwm("run", f"--input={corpus}", f"--output={output}", "--segmenter=jieba", f"--max_seq_length={length}",
                f"--masking={masking}", "--dupe_factor=1", "--output_format=parquet", "--overwrite",
                "--runner=BundleBasedDirectRunner", "--progress=off")
            dataset = wwm_torch.load_instances(str(output), cache_dir=str(folder / "cache"))
            collator = wwm_torch.WholeWordMaskCollator.from_manifest(str(output), seed=0)
            rng = random.Random(1)
            batches = [[dataset[rng.randrange(len(dataset))] for _ in range(BATCH)] for _ in range(16)]
            turn = iter(range(1 << 62))
            collated = rows_per_cpu_second(lambda: collator(batches[next(turn) % len(batches)]), args.seconds)
            indexed = rows_per_cpu_second(lambda: [dataset[rng.randrange(len(dataset))] for _ in range(BATCH)],
                                          args.seconds)
            stream = endless(wwm_torch.load_instances(str(output), streaming=True))
            streamed = rows_per_cpu_second(lambda: [next(stream) for _ in range(BATCH)], min(args.seconds, 1.0))
            print(f"length {length:3d} {masking:7s} ({len(dataset):,} instances): collator {collated:,.0f} rows/CPU-s; "
                  f"map-style dataset[i] {indexed:,.0f}; stream {streamed:,.0f}")


if __name__ == "__main__":
    main()
