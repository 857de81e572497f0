"""The same pipeline on Beam's portable runner gives the same bytes as the local runner: with the
embedded job server and LOOPBACK workers, and with EXTERNAL workers, separate processes started
from Beam's worker pool (``worker_pool_main``), the SDK harness that Spark and Flink start."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.test_pipeline import run_wwm, shard_bytes, write_text_corpus

MANY_DOCUMENTS = [[f"第{d}篇文档的第{s}句话讲述了语言模型和全词掩码。" for s in range(6)] for d in range(30)]


def test_portable_runner_matches_the_local_runner(tmp_path):
    local = run_wwm(tmp_path, name="local")
    portable = run_wwm(tmp_path, "--runner=PortableRunner", "--job_endpoint=embed",
                       "--environment_type=LOOPBACK", name="portable")
    assert portable["num_instances"] == local["num_instances"] > 0
    assert shard_bytes(tmp_path / "portable") == shard_bytes(tmp_path / "local")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def worker_pool():
    """A Beam worker pool in its own process, as a Spark or Flink cluster runs next to each
    executor; every SDK worker it starts is another process."""
    port = _free_port()
    # The pool starts each SDK worker as `python -c ...`: the `python` on its PATH must have this
    # package installed, as in Beam's SDK container; here, the test's own interpreter.
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if pool.poll() is not None:
            raise RuntimeError(f"the worker pool exited: {pool.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield f"127.0.0.1:{port}", pool
    pool.terminate()
    pool.wait(timeout=30)


def test_external_worker_processes_write_the_local_runners_bytes(tmp_path, worker_pool):
    address, pool = worker_pool
    corpus = str(write_text_corpus(tmp_path / "many.txt", MANY_DOCUMENTS))
    local = run_wwm(tmp_path, name="local", inputs=[corpus])
    # In a child process with a time limit: a worker that cannot start would leave the job waiting.
    subprocess.run([sys.executable, "-m", "wwm_cli", "run", f"--input={corpus}", f"--output={tmp_path / 'external'}",
                    "--dupe_factor=3", "--num_shards=3", "--max_seq_length=128", "--segmenter=jieba",
                    "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
                    f"--environment_config={address}", "--sdk_worker_parallelism=2"],
                   check=True, timeout=300, stdout=subprocess.DEVNULL)
    external = json.loads((tmp_path / "external" / "manifest.json").read_text())
    assert pool.poll() is None, "the pool served the job and is still up"
    assert external["num_instances"] == local["num_instances"] > 0
    assert external["counters"] == local["counters"]
    assert shard_bytes(tmp_path / "external") == shard_bytes(tmp_path / "local")


def test_local_worker_processes_are_ours_and_a_failing_one_keeps_its_status(tmp_path):
    """With --direct_running_mode multi_processing the local runner's workers are
    `python -m pipelines.local_workers` (Beam's worker main, then an exit without the teardown):
    elements are processed in those processes, and a harness that fails still exits non-zero."""
    import apache_beam as beam

    from wwm_cli.data import new_pipeline

    with new_pipeline(["--direct_num_workers=2", "--direct_running_mode=multi_processing"]) as pipeline:
        _ = (pipeline | beam.Create(range(4))
             | beam.Map(lambda _: f"{sys.modules['__main__'].__spec__.name} {os.getpid()}")
             | beam.io.WriteToText(str(tmp_path / "where")))
    processed_in = {line.split()[0]: line.split()[1] for path in tmp_path.glob("where*")
                    for line in path.read_text().splitlines()}
    assert list(processed_in) == ["pipelines.local_workers"]
    assert int(processed_in["pipelines.local_workers"]) != os.getpid()

    environment = {name: value for name, value in os.environ.items() if not name.endswith("_SERVICE_DESCRIPTOR")}
    failed = subprocess.run([sys.executable, "-m", "pipelines.local_workers"], env=environment,
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "Traceback" in failed.stderr
