"""Measures the figures `wwm plan` projects from (wwm_cli/plan.py, RATES): the real commands in
child processes, CPU time and peak RSS from the kernel, on corpora built from ../shared/data.

    .venv/bin/python benchmarks/plan_benchmark.py [--corpus_mb 8] [--small_mb 2]

- text: a corpus of the UD Chinese sentences (as generate_benchmark.py builds it) -> `wwm prepare`
  (MB/CPU-s, clean text and Parquet bytes per input byte, UTF-8 bytes per character), `wwm segment`
  with an LTP perceptron trained on the UD dev sentences (characters/CPU-s), then `wwm run` on the
  Parquet with the cached boundaries at 128, at 512 and at 128,512 in one run (instances per
  character and CPU-seconds per character of each phase, at dupe 5), and the same two-phase run on
  a smaller corpus in one shard (memory per MB of a bucket's text: the slope between the two).
- jsonl: the same sentences as JSON lines in news2016zh's layout -> `wwm prepare` (MB/CPU-s and
  text share).
- wiki: the real zhwiki excerpt (clean text share of its XML, bz2 ratio of its bytes) and a dump
  of its pages repeated to --corpus_mb (MB/CPU-s, as prepare_benchmark.py).
Prints the figures as JSON: RATES in wwm_cli/plan.py holds them with the date they were taken.
"""
import argparse
import bz2
import gzip
import json
import os
import pathlib
import platform
import random
import sys
import time

import pyarrow.parquet as pq

from generate_benchmark import ROOT, build_corpus, train_ltp_model, ud_sentences, UD
from measure import run_measured, work_folder
from prepare_benchmark import EXCERPT, build_dump


def wwm_measured(*arguments):
    return run_measured([sys.executable, "-m", "wwm_cli", *arguments], cwd=ROOT)


def clean_text(prepared: pathlib.Path) -> tuple:
    """(UTF-8 bytes, characters) of the prepared documents' text: sentences, one a line."""
    size = chars = 0
    for path in sorted((prepared / "documents").glob("*.parquet")):
        for sentences in pq.read_table(path, columns=["sentences"]).column("sentences").to_pylist():
            text = "\n".join(sentences) + "\n"
            size += len(text.encode("utf-8"))
            chars += len(text)
    return size, chars


def parquet_bytes(prepared: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in (prepared / "documents").glob("*.parquet"))


def instances_of(output: pathlib.Path) -> dict:
    manifest = json.loads((output / "manifest.json").read_text())
    if manifest["kind"] == "phases":
        phases = [json.loads((output / p["manifest"]).read_text()) for p in manifest["phases"]]
    else:
        phases = [manifest]
    return {str(p["max_seq_length"]): p["num_instances"] for p in phases}


def run_phases(prepared, output, lengths, model, *extra):
    measured = wwm_measured("run", "--input_format=parquet", f"--input={prepared}/documents/*.parquet",
                            f"--output={output}", f"--max_seq_length={lengths}", "--dupe_factor=5",
                            "--segmenter=ltp", f"--ltp_model={model}", *extra)
    return instances_of(output), measured


def write_jsonl(path: pathlib.Path, megabytes: float, rng: random.Random) -> None:
    sentences = ud_sentences(UD / "zh_gsdsimp-ud-dev.conllu") + ud_sentences(UD / "zh_gsdsimp-ud-test.conllu")
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < megabytes * 1e6:
            chosen = rng.sample(sentences, rng.randint(5, 15))
            line = json.dumps({"news_id": str(written), "title": chosen[0][:20], "desc": chosen[0],
                               "content": "".join(chosen[1:]), "source": "ud", "time": "2016-01-01",
                               "keywords": ""}, ensure_ascii=False) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))


def marginal(measure, sizes) -> tuple:
    """(extra CPU-seconds per unit, fixed CPU-seconds, the larger run's result): ``measure(size)``
    returns (units, Measurement, result) at two sizes; the slope leaves out what every command pays
    once (starting Python and Beam, loading models), which a 13 GB corpus amortizes."""
    (small_units, small, _), (big_units, big, result) = (measure(size) for size in sizes)
    slope = (big.cpu_seconds - small.cpu_seconds) / (big_units - small_units)
    return slope, small.cpu_seconds - slope * small_units, result, (small, big)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus_mb", type=float, default=8.0)
    parser.add_argument("--small_mb", type=float, default=2.0)
    args = parser.parse_args()
    work = work_folder("wwm-plan-bench-")
    sizes = {"small": args.small_mb, "big": args.corpus_mb}
    figures = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}", "corpus_mb": sizes}
    model = work / "ltp_model"
    train_ltp_model(model)

    # text: prepare, segment and run at two sizes
    texts = {}

    def prepare_text(name):
        corpus = work / f"{name}.txt"
        build_corpus(corpus, sizes[name], random.Random(len(name)))
        # One bucket, so that the runs below measure a worker's memory against its bucket's text.
        measured = wwm_measured("prepare", f"--input={corpus}", "--num_shards=1", f"--output={work / name}")
        texts[name] = (corpus.stat().st_size, *clean_text(work / name))
        return corpus.stat().st_size / 1e6, measured, None

    slope, fixed, _, _ = marginal(prepare_text, sizes)
    raw, text_bytes, chars = texts["big"]
    # Compression ratios from real, unrepeated text: the UD sentences once (the corpus repeats them).
    ud_text = "\n".join(ud_sentences(UD / "zh_gsdsimp-ud-dev.conllu") + ud_sentences(UD / "zh_gsdsimp-ud-test.conllu"))
    ud_bytes = ud_text.encode("utf-8")
    figures["text"] = {"clean_mb_per_cpu_s": 1 / slope, "fixed_cpu_s": fixed, "text_share": text_bytes / raw,
                       "gzip_ratio": len(ud_bytes) / len(gzip.compress(ud_bytes))}
    figures["bytes_per_char"] = text_bytes / chars

    def segment(name):
        measured = wwm_measured("segment", f"--input={work / name}", "--segmenter=ltp", f"--ltp_model={model}")
        return texts[name][2], measured, None

    slope, fixed, _, _ = marginal(segment, sizes)
    figures["segment_ltp"] = {"chars_per_cpu_s": 1 / slope, "fixed_cpu_s": fixed}

    figures["run"] = {}
    for lengths in ("128", "512", "128,512"):
        def run(name, lengths=lengths):
            instances, measured = run_phases(work / name, work / f"run-{name}-{lengths}", lengths, model)
            return texts[name][2], measured, instances

        slope, fixed, instances, (small, big) = marginal(run, sizes)
        figures["run"][lengths] = {"cpu_s_per_char": slope, "fixed_cpu_s": fixed, "instances": instances,
                                   "chars": chars, "instances_per_char": {k: v / chars for k, v in instances.items()},
                                   "peak_rss_mb": {"small": small.peak_rss_mb, "big": big.peak_rss_mb}}
    # Instances per dupe = characters / chars_per_instance + documents x per_document: solved from
    # the short documents above and a corpus of long ones (60-120 sentences).
    long_corpus = work / "long.txt"
    sentences = ud_sentences(UD / "zh_gsdsimp-ud-dev.conllu") + ud_sentences(UD / "zh_gsdsimp-ud-test.conllu")
    rng, written = random.Random(7), 0
    with long_corpus.open("w", encoding="utf-8") as out:
        while written < sizes["big"] * 1e6:
            document = "\n".join(rng.sample(sentences, rng.randint(60, 120))) + "\n\n"
            out.write(document)
            written += len(document.encode("utf-8"))
    wwm_measured("prepare", f"--input={long_corpus}", f"--output={work / 'long'}")
    long_instances, _ = run_phases(work / "long", work / "run-long", "128,512", model)
    shapes = {}
    for name, prepared, instances in (("short", work / "big", figures["run"]["128,512"]["instances"]),
                                      ("long", work / "long", long_instances)):
        shapes[name] = (clean_text(prepared)[1], json.loads((prepared / "manifest.json").read_text())["num_documents"],
                        instances)
    (c1, d1, i1), (c2, d2, i2) = shapes["short"], shapes["long"]
    fit = {}
    for length in ("128", "512"):
        y1, y2 = i1[length] / 5, i2[length] / 5  # per dupe
        per_document = (y1 * c2 - y2 * c1) / (d1 * c2 - d2 * c1)
        per_char = (y1 - per_document * d1) / c1
        fit[length] = {"chars_per_instance": 1 / per_char, "instances_per_document": per_document}
    figures["instances_model"] = {"fit": fit, "corpora": {k: {"chars": v[0], "documents": v[1], "instances": v[2]}
                                                          for k, v in shapes.items()}}
    # CPU of `wwm run`: per character (all phases) + per instance of each length, from the marginal
    # CPU per character of 128 alone, 512 alone and both in one run.
    per_char = {k: figures["run"][k]["cpu_s_per_char"] for k in ("128", "512", "128,512")}
    ipc = figures["run"]["128,512"]["instances_per_char"]
    figures["run_cpu_model"] = {"per_char": per_char["128"] + per_char["512"] - per_char["128,512"],
                                "per_instance": {"128": (per_char["128,512"] - per_char["512"]) / ipc["128"],
                                                 "512": (per_char["128,512"] - per_char["128"]) / ipc["512"]}}
    both = figures["run"]["128,512"]
    # Each run above is one bucket (--num_shards=1): peak RSS grows with the bucket's text.
    small_text, big_text = texts["small"][1] / 1e6, texts["big"][1] / 1e6
    per_mb = (both["peak_rss_mb"]["big"] - both["peak_rss_mb"]["small"]) / (big_text - small_text)
    figures["memory"] = {"mb_per_bucket_text_mb": per_mb,
                         "fixed_mb": both["peak_rss_mb"]["small"] - per_mb * small_text}

    # jsonl
    def prepare_jsonl(name):
        jsonl = work / f"{name}.json"
        write_jsonl(jsonl, sizes[name], random.Random(2 + len(name)))
        measured = wwm_measured("prepare", f"--input={jsonl}", "--input_format=jsonl", "--jsonl_preset=news2016zh",
                                f"--output={work / (name + '_jsonl')}")
        share = clean_text(work / (name + "_jsonl"))[0] / jsonl.stat().st_size
        return jsonl.stat().st_size / 1e6, measured, share

    slope, fixed, share, _ = marginal(prepare_jsonl, sizes)
    figures["jsonl"] = {"clean_mb_per_cpu_s": 1 / slope, "fixed_cpu_s": fixed, "text_share": share}

    # wiki: the real excerpt's shares (clean text, bz2, Parquet), repeated dumps' rate
    excerpt = EXCERPT.read_bytes()
    wwm_measured("prepare", f"--input={EXCERPT}", "--input_format=wiki", f"--output={work / 'wiki_excerpt'}")
    excerpt_text = clean_text(work / "wiki_excerpt")[0]

    def prepare_wiki(name):
        dump = work / f"{name}-zhwiki.xml"
        build_dump(dump, sizes[name])
        measured = wwm_measured("prepare", f"--input={dump}", "--input_format=wiki",
                                f"--output={work / (name + '_wiki')}")
        return dump.stat().st_size / 1e6, measured, None

    slope, fixed, _, _ = marginal(prepare_wiki, sizes)
    figures["wiki"] = {"clean_mb_per_cpu_s": 1 / slope, "fixed_cpu_s": fixed, "text_share": excerpt_text / len(excerpt),
                       "bz2_ratio": len(excerpt) / len(bz2.compress(excerpt))}
    # The repeated corpora compress far better than real text: Parquet's share from the real excerpt.
    figures["parquet_bytes_per_text_byte"] = parquet_bytes(work / "wiki_excerpt") / excerpt_text
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
