"""Benchmark of ``wwm run``: instances per CPU-second and peak RSS, segmentation included.

Runs the real command in a child process at Google's reference settings (--dupe_factor 5
--max_seq_length 128) and reads the child's CPU time and peak RSS from the kernel (getrusage),
so Beam's own overhead is counted too. Without --corpus it builds one from the gold-segmented UD
sentences in ../shared/data (raw text only), shuffled into documents and repeated to --corpus_mb.

    .venv/bin/python benchmarks/generate_benchmark.py --segmenter ltp
    .venv/bin/python benchmarks/generate_benchmark.py --corpus 'my/*.txt' --segmenter jieba -- --direct_num_workers=2 --direct_running_mode=multi_processing
"""
import argparse
import glob
import json
import pathlib
import random
import subprocess
import sys
import tempfile

from measure import run_measured

ROOT = pathlib.Path(__file__).resolve().parents[1]
UD = ROOT.parent / "shared" / "data" / "ud_chinese_gsdsimp"
GOOGLE_INSTANCES_PER_CPU_SECOND = 1238  # create_pretraining_data.py on this machine class, no segmentation


def ud_sentences(path: pathlib.Path) -> list:
    return [line[len("# text = "):].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("# text = ")]


def build_corpus(path: pathlib.Path, megabytes: float, rng: random.Random) -> None:
    sentences = ud_sentences(UD / "zh_gsdsimp-ud-dev.conllu") + ud_sentences(UD / "zh_gsdsimp-ud-test.conllu")
    target, written = megabytes * 1e6, 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            document = "\n".join(rng.sample(sentences, rng.randint(5, 15))) + "\n\n"
            out.write(document)
            written += len(document.encode("utf-8"))


def wwm(*arguments) -> None:
    """A `wwm` command in a child process, not measured (setting up what a benchmark measures)."""
    subprocess.run([sys.executable, "-m", "wwm_cli", *arguments], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def train_ltp_model(folder: pathlib.Path) -> None:
    """An LTP perceptron trained on the UD dev sentences, by `wwm segmenter train`."""
    wwm("segmenter", "train", f"--train={UD / 'zh_gsdsimp-ud-dev.conllu'}", f"--output={folder}", "--epochs=5")


def prepare_and_segment(corpus: str, prepared: pathlib.Path, segmenter: str, model) -> list:
    """Cleans and segments once, as a user would before several runs; returns `wwm run`'s input flags."""
    wwm("prepare", f"--input={corpus}", f"--output={prepared}")
    if segmenter != "char":
        wwm("segment", f"--input={prepared}", f"--segmenter={segmenter}", *([f"--ltp_model={model}"] if model else []))
    return ["--input_format=parquet", f"--input={prepared}/documents/*.parquet"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="input glob (text format); default: built from ../shared UD sentences")
    parser.add_argument("--corpus_mb", type=float, default=11.0)
    parser.add_argument("--segmenter", default="ltp", choices=["ltp", "jieba", "char"])
    parser.add_argument("--ltp_model", help="default: a perceptron trained on the UD dev sentences")
    parser.add_argument("--vocab_file", default=str(ROOT.parent / "shared" / "data" / "bert_vocab" / "vocab.txt"))
    parser.add_argument("--num_shards", type=int, default=4)
    parser.add_argument("--prepared", action="store_true",
                        help="measure a re-run: `wwm prepare` and `wwm segment` first (not measured), then "
                        "`wwm run` on the Parquet documents, reusing the cached word boundaries")
    parser.add_argument("beam_args", nargs="*", help="after --: passed to wwm run (e.g. --direct_num_workers=2)")
    args = parser.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="wwm-bench-"))
    corpus = args.corpus
    if corpus is None:
        corpus = str(work / "corpus.txt")
        build_corpus(pathlib.Path(corpus), args.corpus_mb, random.Random(0))
    input_mb = sum(p.stat().st_size for p in map(pathlib.Path, glob.glob(corpus))) / 1e6
    model = args.ltp_model
    if args.segmenter == "ltp" and model is None:
        model = str(work / "ltp_model")
        train_ltp_model(pathlib.Path(model))

    run_input = [f"--input={corpus}"]
    if args.prepared:
        run_input = prepare_and_segment(corpus, work / "prepared", args.segmenter, model)
    command = [sys.executable, "-m", "wwm_cli", "run", *run_input, f"--output={work / 'out'}",
               "--dupe_factor=5", "--max_seq_length=128", "--max_predictions_per_seq=20",
               f"--segmenter={args.segmenter}", f"--num_shards={args.num_shards}"]
    if pathlib.Path(args.vocab_file).exists():
        command.append(f"--vocab_file={args.vocab_file}")
    if model:
        command.append(f"--ltp_model={model}")
    command += args.beam_args

    measured = run_measured(command, cwd=ROOT)
    cpu = measured.cpu_seconds
    manifest = json.loads((work / "out" / "manifest.json").read_text())
    instances = manifest["num_instances"]
    rate = instances / cpu
    print(f"corpus            {input_mb:.1f} MB ({corpus})")
    print(f"segmenter         {args.segmenter}{' (cached by wwm segment)' if args.prepared else ''}")
    print(f"command           {' '.join(command[2:])}")
    print(f"instances         {instances}")
    print(f"wall seconds      {measured.wall_seconds:.1f}")
    print(f"CPU seconds       {cpu:.1f}  (user {measured.user_seconds:.1f} + sys {measured.system_seconds:.1f}, "
          "all child processes)")
    print(f"instances/CPU-s   {rate:.0f}  ({rate / GOOGLE_INSTANCES_PER_CPU_SECOND:.1f}x Google's 1,238)")
    print(f"peak RSS          {measured.peak_rss_mb:.0f} MB (largest single process)")


if __name__ == "__main__":
    main()
