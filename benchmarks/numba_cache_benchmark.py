"""What a worker pays for the compiled row loops (wwm_core/kernels.py) under each way of caching
them, measured in child processes (CPU time from getrusage):

- compile: an empty numba cache, as a worker whose CPU differs from the build machine's finds it
  (numba's cache index is keyed by the CPU name and features: ``codegen.magic_tuple()``);
- load: the cache that process wrote, as the next process on the same machine finds it;
- run: the kernels on a synthetic bucket (plans, gather, whole-word masking, Example encoding,
  shingle hashes) with the code each setting compiles.

Settings: the host's CPU (numba's default) and ``NUMBA_CPU_NAME=generic`` (baseline x86-64,
features empty: one cache every x86-64 CPU reuses). Rounds alternate the settings, so a machine
shared with other work disturbs both alike.

    .venv/bin/python benchmarks/numba_cache_benchmark.py [--rounds 3] [--documents 4000]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETTINGS = {"host": {}, "generic": {"NUMBA_CPU_NAME": "generic"}}

CHILD = r"""
import json, resource, sys, time
import numpy as np

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

start = cpu()
from wwm_core.compile_kernels import compile_all
compile_all()  # compiles (empty cache) or loads (warm cache) every kernel
ready = cpu()
result = {"compile_or_load_cpu_s": ready - start}
if sys.argv[1] == "run":
    from wwm_core.config import Phase
    from wwm_core.instances import SpecialIds, TokenPool, bucket_pair_plans, make_batch
    from wwm_core.near_dedup import shingle_hashes
    from wwm_core.records import ExampleEncoder, schema
    rng = np.random.default_rng(0)
    documents = [rng.integers(8, 40, size=rng.integers(3, 15)).tolist() for _ in range(int(sys.argv[2]))]
    tokens = sum(map(sum, documents))
    pool = TokenPool(ids=rng.integers(1000, 21000, size=tokens).astype(np.uint16),
                     group_start=rng.random(tokens) < 0.6,
                     doc_offsets=np.cumsum([0] + [sum(d) for d in documents]))
    phase = Phase(max_seq_length=128, max_predictions_per_seq=20)
    special = SpecialIds(cls=101, sep=102, mask=103, vocab_size=21128)
    encoder = ExampleEncoder(schema("static"), max_seq_length=128, max_predictions_per_seq=20, vocab_size=21128)
    text = ["".join(chr(0x4e00 + int(c)) for c in rng.integers(0, 3000, size=60)) for _ in range(20000)]
    begin = cpu()
    plans = bucket_pair_plans(documents, list(range(len(documents))), dupe_factor=5, phase=phase,
                              short_seq_prob=0.1, task="nsp")
    batch = make_batch(plans, pool, special=special, phase=phase, masked_lm_prob=0.15, masking="static")
    encoder.frames(batch)
    for sentence in text:
        shingle_hashes([sentence])
    result["run_cpu_s"] = cpu() - begin
    result["instances"] = len(plans)
print(json.dumps(result))
"""


def child(setting: str, cache: str, mode: str, documents: int) -> dict:
    environment = {**os.environ, **SETTINGS[setting], "NUMBA_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(documents)], capture_output=True, text=True,
                          cwd=ROOT, env=environment, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--documents", type=int, default=4000)
    args = parser.parse_args(argv)
    results = {setting: {"compile": [], "load": [], "run": []} for setting in SETTINGS}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            with tempfile.TemporaryDirectory(prefix=f"numba-{setting}-") as cache:
                results[setting]["compile"].append(child(setting, cache, "compile", 0)["compile_or_load_cpu_s"])
                ran = child(setting, cache, "run", args.documents)
                results[setting]["load"].append(ran["compile_or_load_cpu_s"])
                results[setting]["run"].append(ran["run_cpu_s"])
    summary = {setting: {kind: round(min(values), 2) for kind, values in kinds.items()}
               for setting, kinds in results.items()}
    print(json.dumps({"rounds": results, "best_of_rounds_cpu_s": summary}, indent=1))
    return summary


if __name__ == "__main__":
    main()
