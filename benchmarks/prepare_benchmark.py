"""Benchmark of the cleaning stage (``wwm prepare``) in MB of input per CPU-second.

Builds a MediaWiki dump from the real zhwiki excerpt in ../shared/data (its pages repeated
under new page ids up to --dump_mb; the repeats are exact duplicates, so dedup drops them after
they were parsed and cleaned like any page), runs the real ``wwm prepare --input_format wiki`` in a
child process and reads its CPU time and peak RSS from the kernel.

    .venv/bin/python benchmarks/prepare_benchmark.py [--dump_mb 10] [-- --near_duplicate_threshold=0.8]
"""
import argparse
import json
import pathlib
import re
import sys

from measure import run_measured, work_folder

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXCERPT = ROOT.parent / "shared" / "data" / "zhwiki_xml" / "zhwiki-test-pages.xml"


def build_dump(path: pathlib.Path, megabytes: float) -> None:
    text = EXCERPT.read_text(encoding="utf-8")
    header, rest = text.split("<page>", 1)
    pages = ["<page>" + p for p in ("<page>" + rest).split("<page>")[1:]]
    pages[-1] = pages[-1].replace("</mediawiki>", "")
    with path.open("w", encoding="utf-8") as out:
        out.write(header)
        written, copy = 0, 0
        while written < megabytes * 1e6:
            for page in pages:
                # A new page id per copy (the first <id> of a page is the page's).
                renumbered = re.sub(r"<id>(\d+)</id>", lambda m: f"<id>{copy * 10**7 + int(m.group(1))}</id>", page, 1)
                out.write(renumbered)
                written += len(renumbered.encode("utf-8"))
            copy += 1
        out.write("</mediawiki>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump_mb", type=float, default=10.0)
    parser.add_argument("extra", nargs="*", help="after --: more flags for wwm prepare")
    args = parser.parse_args()
    work = work_folder("wwm-prepare-bench-")
    dump = work / "zhwiki-bench.xml"
    build_dump(dump, args.dump_mb)
    command = [sys.executable, "-m", "wwm_cli", "prepare", f"--input={dump}", "--input_format=wiki",
               f"--output={work / 'out'}", *args.extra]
    measured = run_measured(command, cwd=ROOT)
    cpu = measured.cpu_seconds
    manifest = json.loads((work / "out" / "manifest.json").read_text())
    megabytes = dump.stat().st_size / 1e6
    print(f"input             {megabytes:.1f} MB of zhwiki XML, {manifest['counters']['records_in']} pages")
    print(f"command           {' '.join(command[2:])}")
    print(f"documents out     {manifest['num_documents']}")
    print(f"wall seconds      {measured.wall_seconds:.1f}")
    print(f"CPU seconds       {cpu:.1f}  (all child processes)")
    print(f"MB / CPU-second   {megabytes / cpu:.2f}")
    print(f"peak RSS          {measured.peak_rss_mb:.0f} MB (largest single process)")


if __name__ == "__main__":
    main()
