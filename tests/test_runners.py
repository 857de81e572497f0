"""The same pipeline on Beam's portable runner gives the same bytes as the local runner: with the
embedded job server and LOOPBACK workers, with EXTERNAL workers, separate processes started from
Beam's worker pool (``worker_pool_main``), the SDK harness that Spark and Flink start, and with the
PROCESS environment's command (deploy/process_worker.sh) started as a non-root user."""
import json
import logging
import multiprocessing
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import textwrap
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


def start_worker_pool(*, prefix=(), options=(), environment=None):
    """(address, process) of a Beam worker pool started with ``prefix`` (e.g. as another user)."""
    port = _free_port()
    # The pool starts each SDK worker as `python -c ...`: the `python` on its PATH must have this
    # package installed, as in Beam's SDK container; here, the test's own interpreter.
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
           **(environment or {})}
    pool = subprocess.Popen([*prefix, sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}", *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if pool.poll() is not None:
            raise RuntimeError(f"the worker pool exited: {pool.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    return f"127.0.0.1:{port}", pool


@pytest.fixture()
def worker_pool():
    """A Beam worker pool in its own process, as a Spark or Flink cluster runs next to each
    executor; every SDK worker it starts is another process."""
    address, pool = start_worker_pool()
    yield address, pool
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


NOBODY = 65534


def as_a_non_root_user() -> list:
    """The command prefix that starts a process as a non-root user: nothing when this test already
    runs as one; as root, setpriv to user nobody, which keeps only the capability to read and
    search any folder (the checkout and its .venv may be root's), not to write one it does not own."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("this test runs as root and setpriv (util-linux) is absent: no way to start a non-root worker")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search", "--"]


def test_the_process_command_as_a_non_root_user_writes_the_local_runners_bytes(tmp_path):
    """deploy/process_worker.sh, the PROCESS environment's command, started by Beam's worker pool
    with the container's flags (--id, --provision_endpoint, ...: Python's embedded job server has
    no PROCESS environment, so the pool's --container_executable starts it, as a Spark or Flink
    executor would) as a non-root user: it creates no virtual environment, writes numba's cache
    where that user can, and the shards its workers write are the local runner's bytes."""
    prefix = as_a_non_root_user()
    uid = NOBODY if prefix else os.getuid()
    corpus = str(write_text_corpus(tmp_path / "many.txt", MANY_DOCUMENTS))
    local = run_wwm(tmp_path, name="local", inputs=[corpus])
    workers = tmp_path / "worker-user"
    for folder in (workers, workers / "tmp", workers / "home", tmp_path / "process"):
        folder.mkdir()
        if prefix:
            os.chown(folder, NOBODY, NOBODY)
    script = pathlib.Path(__file__).resolve().parents[1] / "deploy" / "process_worker.sh"
    address, pool = start_worker_pool(prefix=prefix, options=[f"--container_executable={script}"], environment={
        "HOME": str(workers / "home"), "TMPDIR": str(workers / "tmp"), "WWM_PYTHON": sys.executable})
    try:
        subprocess.run([sys.executable, "-m", "wwm_cli", "run", f"--input={corpus}", f"--output={tmp_path / 'process'}",
                        "--dupe_factor=3", "--num_shards=3", "--max_seq_length=128", "--segmenter=jieba",
                        "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
                        f"--environment_config={address}", "--sdk_worker_parallelism=1"],
                       check=True, timeout=600, stdout=subprocess.DEVNULL)
    finally:
        pool.terminate()
        pool_log = pool.communicate(timeout=30)[1].decode()
    assert f"Starting worker with command ['{script}', '--id=" in pool_log, pool_log[-3000:]
    shards = sorted((tmp_path / "process").glob("part-*"))
    assert shards and {shard.stat().st_uid for shard in shards} == {uid}, "written by the non-root workers"
    if prefix:  # nobody cannot write numba's cache beside the package (root's): the command chose one it can
        assert list((workers / "tmp" / f"wwm-numba-{NOBODY}").rglob("*.nbi")), "numba's cache where nobody writes"
    process = json.loads((tmp_path / "process" / "manifest.json").read_text())
    assert process["counters"] == local["counters"]
    assert shard_bytes(tmp_path / "process") == shard_bytes(tmp_path / "local") != {}


def worker_map(n):
    logging.getLogger("wwm.test").warning("element %d in a worker", n)
    if n == 0:
        try:
            1 / n
        except ZeroDivisionError:
            logging.getLogger("wwm.test").exception("a caught error")
    return f"{multiprocessing.current_process().name}|{os.getpid()}|{os.getppid()}"


def test_local_workers_are_forked_from_the_fork_server(tmp_path, caplog):
    """With --direct_running_mode multi_processing the local runner's workers are processes forked
    from the fork server, which imported Beam and the pipelines once: elements are processed
    there, not in the launcher, and what they log reaches the launcher's log, a line a record."""

    import apache_beam as beam

    from pipelines import fork_server
    from wwm_cli.data import new_pipeline

    with new_pipeline(["--direct_num_workers=2", "--direct_running_mode=multi_processing"]) as pipeline:
        _ = (pipeline | beam.Create(range(8))
             | beam.Map(worker_map) | beam.io.WriteToText(str(tmp_path / "where")))
    processed_in = {tuple(line.split("|")) for path in tmp_path.glob("where*") for line in path.read_text().splitlines()}
    assert processed_in and all(name.startswith("wwm local worker") for name, _, _ in processed_in)
    assert {int(parent) for _, _, parent in processed_in} == {fork_server.server_pid()} != {os.getpid()}
    from_workers = [r.getMessage() for r in caplog.records if r.name == "pipelines.local_workers"]
    assert [m for m in from_workers if "a caught error" in m and "ZeroDivisionError" in m], "with its traceback"
    assert sorted(m.split(": ", 1)[1] for m in from_workers if "element" in m) == [
        f"element {n} in a worker" for n in range(8)]
    assert all(re.match(r"worker_\d+: ", m) for m in from_workers)
    assert not any("semi_persistent_directory" in m for m in from_workers), "no noise about main sessions"


def test_a_local_worker_that_dies_stops_the_run_with_its_status():
    """A worker killed mid-run (here it exits with status 3, as a crash in a native library or the
    out-of-memory killer would end it) fails the run with that status; Beam's own subprocess
    workers leave the launcher waiting for an answer forever."""
    script = textwrap.dedent("""
        import os
        import apache_beam as beam
        from wwm_cli.data import new_pipeline

        with new_pipeline(["--direct_num_workers=2", "--direct_running_mode=multi_processing"]) as pipeline:
            _ = pipeline | beam.Create(range(4)) | beam.Map(lambda n: os._exit(3) if n == 2 else n)
        """)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert died.returncode == 1
    assert re.search(r"local worker process \d+ \(worker_\d+\) ended with exit status 3 while the pipeline ran",
                     died.stderr), died.stderr[-3000:]


def test_a_local_worker_that_dies_before_it_connects_stops_the_run(tmp_path):
    """A script without the `if __name__ == "__main__":` guard that Python's multiprocessing asks
    for: each forked worker runs it again, fails at once (before it connects to the launcher),
    and the run stops with that status instead of waiting for a worker that never comes."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        import apache_beam as beam
        from wwm_cli.data import new_pipeline

        with new_pipeline(["--direct_num_workers=2", "--direct_running_mode=multi_processing"]) as pipeline:
            _ = pipeline | beam.Create(range(4)) | beam.Map(str)
        """))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    died = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=environment)
    assert died.returncode == 1
    assert re.search(r"local worker process \d+ \(worker_\d+\) ended with exit status 1 while the pipeline ran",
                     died.stderr), died.stderr[-3000:]


def test_the_wwm_program_forks_its_workers_and_writes_the_same_bytes(tmp_path):
    """`wwm run` with local worker processes (the fork server started before the launcher imports
    Beam) writes what the one-process local runner writes."""
    corpus = write_text_corpus(tmp_path / "corpus.txt", MANY_DOCUMENTS)
    local = run_wwm(tmp_path, name="local", inputs=[str(corpus)])
    subprocess.run([sys.executable, "-m", "wwm_cli", "run", f"--input={corpus}", f"--output={tmp_path / 'forked'}",
                    "--dupe_factor=3", "--num_shards=3", "--max_seq_length=128", "--segmenter=jieba",
                    "--direct_num_workers=2", "--direct_running_mode", "multi_processing"],
                   check=True, timeout=300, stdout=subprocess.DEVNULL)
    forked = json.loads((tmp_path / "forked" / "manifest.json").read_text())
    assert forked["num_instances"] == local["num_instances"] > 0
    assert forked["counters"] == local["counters"]
    assert shard_bytes(tmp_path / "forked") == shard_bytes(tmp_path / "local") != {}


def test_which_command_lines_fork_local_workers():
    """Read from a command line before anything has parsed it, the way Beam reads it: both
    spellings, only the local runner, and a flag missing its value left to Beam to report."""
    from pipelines.fork_server import forks_local_workers_for

    assert forks_local_workers_for(["--direct_running_mode", "multi_processing", "--input=x"])
    assert forks_local_workers_for(["--runner=FnApiRunner", "--direct_running_mode=multi_processing"])
    assert not forks_local_workers_for(["--runner=PortableRunner", "--direct_running_mode=multi_processing"])
    assert not forks_local_workers_for(["--direct_num_workers=2"])
    assert not forks_local_workers_for(["--direct_running_mode=multi_processing", "--runner"])
