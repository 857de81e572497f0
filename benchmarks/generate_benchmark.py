"""Benchmark of ``wwm run`` against Google's generator, side by side on the same machine, corpus,
vocabulary and flags: instances per CPU-second and peak RSS of each, and the ratio.

Both run as child processes; CPU time (user + sys) and peak RSS come from the kernel (getrusage),
so Beam's own overhead, segmentation, cleaning and writing are all counted for ``wwm run``.
Google's ``create_pretraining_data.py`` (../shared/tools/google_bert/, when that folder exists)
does no segmentation at all. Without --corpus the corpus is built from the UD Chinese sentences
in ../shared/data (raw text), shuffled into documents and repeated to --corpus_mb.

    .venv/bin/python benchmarks/generate_benchmark.py                      # LTP, length 128, dupe 5
    .venv/bin/python benchmarks/generate_benchmark.py --prepared           # a re-run on cached word boundaries
    .venv/bin/python benchmarks/generate_benchmark.py --max_seq_length 512 # 80 predictions
    .venv/bin/python benchmarks/generate_benchmark.py --phases             # 128,512 in one run vs two runs
    .venv/bin/python benchmarks/generate_benchmark.py --recipes            # also macbert-base and a byte-level BPE run
    .venv/bin/python benchmarks/generate_benchmark.py --corpus_mb 110 --no_google   # memory at 10x the text
    .venv/bin/python benchmarks/generate_benchmark.py -- --direct_num_workers=2 --direct_running_mode=multi_processing
    .venv/bin/python benchmarks/generate_benchmark.py --corpus_mb 600 --copies 2 --no_google  # half the documents repeat
    sudo .venv/bin/python benchmarks/generate_benchmark.py --corpus_mb 1200 --memory_limit_mb 700 --no_google
                                         # more text than the memory the run may use (a memory cgroup)
"""
import argparse
import glob
import json
import pathlib
import platform
import random
import re
import subprocess
import sys
import time

from measure import run_measured, work_folder

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
UD = SHARED / "data" / "ud_chinese_gsdsimp"
GOOGLE = SHARED / "tools" / "google_bert" / "create_pretraining_data.py"
VOCAB = SHARED / "data" / "bert_vocab" / "vocab.txt"


def ud_sentences(path: pathlib.Path) -> list:
    return [line[len("# text = "):].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("# text = ")]


def build_corpus(path: pathlib.Path, megabytes: float, rng: random.Random, copies: int = 1) -> None:
    """Documents of 5-15 random UD sentences up to ``megabytes``; with ``copies`` N, N copies of
    megabytes / N of them, one after another (all but one copy of each document are duplicates)."""
    sentences = ud_sentences(UD / "zh_gsdsimp-ud-dev.conllu") + ud_sentences(UD / "zh_gsdsimp-ud-test.conllu")
    target, written = megabytes * 1e6 / copies, 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            document = "\n".join(rng.sample(sentences, rng.randint(5, 15))) + "\n\n"
            out.write(document)
            written += len(document.encode("utf-8"))
    size = path.stat().st_size
    with path.open("rb") as original, path.open("ab") as out:
        for _ in range(copies - 1):
            original.seek(0)
            out.write(original.read(size))


def wwm(*arguments) -> None:
    """A `wwm` command in a child process, not measured (setting up what a benchmark measures)."""
    subprocess.run([sys.executable, "-m", "wwm_cli", *arguments], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def train_ltp_model(folder: pathlib.Path) -> None:
    """An LTP perceptron trained on the UD dev sentences, by `wwm segmenter train`."""
    wwm("segmenter", "train", f"--train={UD / 'zh_gsdsimp-ud-dev.conllu'}", f"--output={folder}", "--epochs=5")


def prepare_and_segment(corpus: str, prepared: pathlib.Path, segmenter: str, model) -> list:
    """Cleans and segments once, as a user would before several runs; returns `wwm run`'s input flags."""
    wwm("prepare", f"--input={corpus}", f"--output={prepared}")
    if segmenter != "char":
        wwm("segment", f"--input={prepared}", f"--segmenter={segmenter}", *([f"--ltp_model={model}"] if model else []))
    return ["--input_format=parquet", f"--input={prepared}/documents/*.parquet"]


def google_run(corpus: str, work: pathlib.Path, *, length: int, predictions: int, dupe: int):
    """Google's generator on the same corpus and flags: (instances, Measurement)."""
    output = work / "google.tfrecord"
    log = work / "google.log"
    command = [sys.executable, str(GOOGLE), f"--input_file={corpus}", f"--output_file={output}",
               f"--vocab_file={VOCAB}", "--do_lower_case=True", "--do_whole_word_mask=True",
               f"--max_seq_length={length}", f"--max_predictions_per_seq={predictions}", "--masked_lm_prob=0.15",
               "--random_seed=12345", f"--dupe_factor={dupe}"]
    with log.open("w") as handle:
        measured = run_measured(command, cwd=ROOT, stderr=handle)
    found = re.findall(r"Wrote (\d+) total instances", log.read_text())
    if not found:
        raise RuntimeError(f"Google's generator printed no instance count; see {log}")
    output.unlink()
    return int(found[-1]), measured


def wwm_run(run_input, output: pathlib.Path, *, lengths: str, predictions: str, args, model, extra=(), vocab=True):
    command = [sys.executable, "-m", "wwm_cli", "run", *run_input, f"--output={output}",
               f"--dupe_factor={args.dupe_factor}", f"--max_seq_length={lengths}",
               f"--max_predictions_per_seq={predictions}", f"--segmenter={args.segmenter}",
               f"--num_shards={args.num_shards}", *extra]
    if VOCAB.exists() and vocab:
        command.append(f"--vocab_file={VOCAB}")
    if model:
        command.append(f"--ltp_model={model}")
    command += args.beam_args
    measured = run_measured(command, cwd=ROOT, memory_limit_mb=args.memory_limit_mb)
    manifest = json.loads((output / "manifest.json").read_text())
    if manifest["kind"] == "phases":
        instances = sum(json.loads((output / p["manifest"]).read_text())["num_instances"] for p in manifest["phases"])
    else:
        instances = manifest["num_instances"]
    return instances, measured, command


def report(name: str, instances: int, measured) -> float:
    rate = instances / measured.cpu_seconds
    print(f"{name:34s} {instances:>10,} {measured.cpu_seconds:>8.1f} {rate:>10,.0f} {measured.wall_seconds:>7.1f} "
          f"{measured.peak_rss_mb:>7.0f}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="input glob (text format); default: built from ../shared UD sentences")
    parser.add_argument("--corpus_mb", type=float, default=11.0)
    parser.add_argument("--copies", type=int, default=1,
                        help="the built corpus is this many copies of corpus_mb / copies of documents (dedup's load)")
    parser.add_argument("--segmenter", default="ltp", choices=["ltp", "jieba", "char"])
    parser.add_argument("--ltp_model", help="default: a perceptron trained on the UD dev sentences")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--dupe_factor", type=int, default=5)
    parser.add_argument("--num_shards", type=int, default=0, help="0: wwm run's automatic sizing")
    parser.add_argument("--prepared", action="store_true",
                        help="measure a re-run: `wwm prepare` and `wwm segment` first (not measured), then "
                        "`wwm run` on the Parquet documents, reusing the cached word boundaries")
    parser.add_argument("--phases", action="store_true",
                        help="also measure 128 and 512 in one run against two single runs")
    parser.add_argument("--recipes", action="store_true",
                        help="also measure --recipe macbert-base (similar words: the neighbours of PPMI-SVD vectors "
                        "of the corpus, computed first, not measured) and a run with a 32k byte-level BPE trained "
                        "by `wwm tokenizer train` on the corpus (not measured), at the same length and dupe factor")
    parser.add_argument("--no_google", action="store_true", help="skip Google's generator (no ratio)")
    parser.add_argument("--memory_limit_mb", type=int,
                        help="run wwm run in a memory cgroup of this size (needs root): a corpus bigger than the "
                        "limit shows whether memory stays bounded by the bucket, not the corpus")
    parser.add_argument("beam_args", nargs="*", help="after --: passed to wwm run (e.g. --direct_num_workers=2)")
    args = parser.parse_args()

    work = work_folder("wwm-bench-")
    corpus = args.corpus
    if corpus is None:
        corpus = str(work / "corpus.txt")
        build_corpus(pathlib.Path(corpus), args.corpus_mb, random.Random(0), args.copies)
    input_mb = sum(p.stat().st_size for p in map(pathlib.Path, glob.glob(corpus))) / 1e6
    model = args.ltp_model
    if args.segmenter == "ltp" and model is None:
        model = str(work / "ltp_model")
        train_ltp_model(pathlib.Path(model))
    run_input = [f"--input={corpus}"]
    if args.prepared:
        run_input = prepare_and_segment(corpus, work / "prepared", args.segmenter, model)
    length = args.max_seq_length
    predictions = {128: 20, 512: 80}.get(length, round(length * 0.15))

    print(f"date              {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine           {platform.processor() or platform.machine()}, {_cores()} cores, Python "
          f"{platform.python_version()}")
    print(f"corpus            {input_mb:.1f} MB ({corpus})")
    print(f"settings          length {length}, {predictions} predictions, dupe {args.dupe_factor}, segmenter "
          f"{args.segmenter}{' (cached by wwm segment)' if args.prepared else ''}")
    print(f"{'':34s} {'instances':>10s} {'CPU s':>8s} {'inst/CPU-s':>10s} {'wall s':>7s} {'RSS MB':>7s}")
    instances, measured, command = wwm_run(run_input, work / "out", lengths=str(length), predictions=str(predictions),
                                           args=args, model=model)
    ours = report("wwm run", instances, measured)
    if args.memory_limit_mb:
        print(f"memory limit      {args.memory_limit_mb} MB for {input_mb:.0f} MB of text: finished; the cgroup's peak "
              f"{measured.cgroup_peak_mb:.0f} MB counts every process and the page cache of the files written")
    if args.phases:
        both, measured_both, _ = wwm_run(run_input, work / "both", lengths="128,512", predictions="20,80",
                                         args=args, model=model)
        report("wwm run, 128 and 512 in one run", both, measured_both)
        cpu_single = 0.0
        for single_length, single_predictions in ((128, 20), (512, 80)):
            single, measured_single, _ = wwm_run(run_input, work / f"single{single_length}",
                                                 lengths=str(single_length), predictions=str(single_predictions),
                                                 args=args, model=model)
            report(f"wwm run, {single_length} alone", single, measured_single)
            cpu_single += measured_single.cpu_seconds
        print(f"two phases in one run: {measured_both.cpu_seconds:.1f} CPU s; two single runs: {cpu_single:.1f} CPU s "
              f"({measured_both.cpu_seconds / cpu_single:.2f}x)")
    rates = {"wwm run": ours}
    if args.recipes:
        rates.update(recipe_runs(corpus, run_input, work, args=args, model=model, length=length,
                                 predictions=predictions))
    if args.no_google or not GOOGLE.exists():
        print("no ratio measured: Google's generator " + ("skipped" if args.no_google else f"not found at {GOOGLE}"))
        return
    google_instances, google_measured = google_run(corpus, work, length=length, predictions=predictions,
                                                   dupe=args.dupe_factor)
    google = report("Google create_pretraining_data.py", google_instances, google_measured)
    print(f"ratio             {ours / google:.1f}x Google's instances per CPU-second; peak RSS "
          f"{measured.peak_rss_mb:.0f} MB vs {google_measured.peak_rss_mb:.0f} MB")
    for name, rate in list(rates.items())[1:]:
        print(f"ratio             {rate / google:.1f}x Google's instances per CPU-second ({name})")
    print(f"command           {' '.join(command[2:])}")


def recipe_runs(corpus: str, run_input, work: pathlib.Path, *, args, model, length: int, predictions: int) -> dict:
    """macbert-base and a byte-level BPE run on the same corpus, length and dupe factor; what they
    need (similar words, the tokenizer) is made first and not measured."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from cooccurrence_vectors import cooccurrence_vectors
    from wwm_core.similar_words import nearest_neighbours, table_bytes

    with open(corpus, encoding="utf-8") as handle:
        lines = [line for _, line in zip(range(60_000), handle)]
    words, vectors = cooccurrence_vectors(lines, dimensions=100)
    table = work / "similar_words.tsv"
    table.write_bytes(table_bytes(nearest_neighbours(words, vectors)))
    rates = {}
    instances, measured, _ = wwm_run(run_input, work / "macbert", lengths=str(length), predictions=str(predictions),
                                     args=args, model=model,
                                     extra=["--recipe=macbert-base", f"--similar_words={table}"])
    rates["wwm run --recipe macbert-base"] = report("wwm run, macbert-base", instances, measured)
    # The tokenizer learns from the distinct sentences, each once: the corpus repeats them, and BPE
    # would learn whole repeated sentences as tokens.
    distinct = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    text = work / "bpe_text.txt"
    text.write_text("\n\n".join("\n".join(distinct[i:i + 8]) for i in range(0, len(distinct), 8)) + "\n",
                    encoding="utf-8")
    wwm("prepare", f"--input={text}", f"--output={work / 'bpe_prepared'}")
    wwm("tokenizer", "train", f"--input={work / 'bpe_prepared'}", f"--output={work / 'bpe'}", "--vocab_size=32000",
        "--heldout_share=0")
    instances, measured, _ = wwm_run(run_input, work / "bpe_out", lengths=str(length), predictions=str(predictions),
                                     args=args, model=model, extra=[f"--tokenizer={work / 'bpe'}"], vocab=False)
    counters = json.loads((work / "bpe_out" / "manifest.json").read_text())["counters"]
    print(f"{'':34s} (the BPE: {json.loads((work / 'bpe' / 'manifest.json').read_text())['vocab_size']:,} tokens, "
          f"{counters['characters'] / counters['tokens']:.2f} characters per token on the corpus)")
    rates["wwm run --tokenizer (byte-level BPE, 32k)"] = report("wwm run, byte-level BPE 32k", instances, measured)
    return rates


def _cores() -> int:
    import os

    return os.cpu_count()


if __name__ == "__main__":
    main()
