"""Benchmark of word segmentation in characters per CPU-second, per backend: the segmenter alone
(one thread, batches of 4,096 sentences, in this process) and the ``wwm segment`` stage (Beam's
local runner in a child process, 1 and 2 workers), so the stage's overhead shows.

The corpus is built from the gold-segmented UD sentences in ../shared/data (raw text only), as in
generate_benchmark.py; the LTP model is a perceptron that `wwm segmenter train` trains on the UD
dev sentences first (not measured).

    .venv/bin/python benchmarks/segment_benchmark.py [--corpus_mb 10] [--backends ltp jieba]
"""
import argparse
import json
import pathlib
import random
import sys
import time

from generate_benchmark import ROOT, build_corpus, train_ltp_model, wwm
from measure import run_measured, work_folder

BATCH_SENTENCES = 4096
TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def segmenter_alone(kind: str, model, sentences: list) -> float:
    """Characters per CPU-second of the segmenter's own batched calls."""
    from wwm_core.segmentation import load_segmenter

    segmenter = load_segmenter(kind, ltp_model=model)
    started = time.process_time()
    for first in range(0, len(sentences), BATCH_SENTENCES):
        segmenter.segment(sentences[first:first + BATCH_SENTENCES])
    return sum(map(len, sentences)) / (time.process_time() - started)


def segment_stage(kind: str, model, prepared: pathlib.Path, beam_args: list):
    """(characters segmented, CPU seconds, wall seconds, peak RSS MB) of `wwm segment` in a child process."""
    command = [sys.executable, "-m", "wwm_cli", "segment", f"--input={prepared}", f"--segmenter={kind}",
               "--overwrite", *beam_args]
    if model:
        command.append(f"--ltp_model={model}")
    measured = run_measured(command, cwd=ROOT)
    manifest = next(prepared.glob(f"segmentation/{kind}-*/segmentation.json"))
    characters = json.loads(manifest.read_text())["counters"]["characters_segmented"]
    return characters, measured.cpu_seconds, measured.wall_seconds, measured.peak_rss_mb


def prepare(corpus: pathlib.Path, output: pathlib.Path) -> pathlib.Path:
    wwm("prepare", f"--input={corpus}", f"--output={output}", "--num_shards=4", "--dedup=none")
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus_mb", type=float, default=10.0)
    parser.add_argument("--backends", nargs="+", default=["ltp", "jieba"], choices=["ltp", "jieba"])
    args = parser.parse_args()

    work = work_folder("wwm-segment-bench-")
    corpus, tiny_corpus = work / "corpus.txt", work / "tiny.txt"
    build_corpus(corpus, args.corpus_mb, random.Random(0))
    build_corpus(tiny_corpus, 0.01, random.Random(1))
    prepared, tiny = prepare(corpus, work / "prepared"), prepare(tiny_corpus, work / "tiny")
    sentences = [line for line in corpus.read_text(encoding="utf-8").splitlines() if line]
    print(f"corpus  {corpus.stat().st_size / 1e6:.1f} MB, {len(sentences)} sentences, "
          f"{sum(map(len, sentences))} characters")
    print("Rates in characters per CPU-second. 'marginal' leaves out the command's fixed start-up CPU "
          "(imports, pipeline construction, model loading: a run over a 0.01 MB corpus), which a real corpus amortizes.")
    print(f"{'backend':8s} {'alone':>9s} | {'workers':>7s} {'overall':>9s} {'marginal':>9s} {'start-up':>9s} "
          f"{'wall':>7s} {'peak RSS':>9s}")
    for kind in args.backends:
        model = None
        if kind == "ltp":
            model = work / "ltp_model"
            train_ltp_model(model)
        alone = segmenter_alone(kind, str(model) if model else None, sentences)
        for workers, beam_args in ((1, []), (2, TWO_WORKERS)):
            characters, cpu, wall, rss = segment_stage(kind, model, prepared, beam_args)
            tiny_characters, start_up, _, _ = segment_stage(kind, model, tiny, beam_args)
            marginal = (characters - tiny_characters) / (cpu - start_up)
            print(f"{kind:8s} {alone:9,.0f} | {workers:7d} {characters / cpu:9,.0f} {marginal:9,.0f} "
                  f"{start_up:8.1f}s {wall:6.1f}s {rss:7.0f}MB")


if __name__ == "__main__":
    main()
