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


def test_local_workers_are_separate_processes_whose_logs_reach_the_launcher(tmp_path, caplog):
    """With --direct_running_mode multi_processing the local runner's workers are Beam's worker
    processes: elements are processed there, not in the launcher, and what they log reaches the
    launcher's log, a line a record."""

    import apache_beam as beam

    from wwm_cli.data import new_pipeline
    from wwm_cli.launch import launch

    with new_pipeline(launch(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])) as pipeline:
        _ = (pipeline | beam.Create(range(8))
             | beam.Map(worker_map) | beam.io.WriteToText(str(tmp_path / "where")))
    processed_in = {tuple(line.split("|")) for path in tmp_path.glob("where*") for line in path.read_text().splitlines()}
    assert processed_in and all(int(pid) != os.getpid() for _, pid, _ in processed_in)
    from_workers = [r.getMessage() for r in caplog.records if r.name == "pipelines.local_workers"]
    assert [m for m in from_workers if "a caught error" in m and "ZeroDivisionError" in m], "with its traceback"
    assert sorted(m.split(": ", 1)[1] for m in from_workers if "element" in m) == [
        f"element {n} in a worker" for n in range(8)]
    assert all(re.match(r"worker_\d+: ", m) for m in from_workers)
    assert not any("semi_persistent_directory" in m for m in from_workers), "no noise about main sessions"


def test_without_what_the_watch_needs_the_run_goes_on_with_beams_workers(tmp_path, caplog, monkeypatch):
    """The watch of local workers is the one hook into Beam's runner internals: where a Beam lacks
    them (here the registry of environments is taken away), a one-line warning and Beam's own
    workers."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    from wwm_cli.data import new_pipeline
    from wwm_cli.launch import launch

    monkeypatch.delattr(worker_handlers.WorkerHandler, "register_environment")
    with new_pipeline(launch(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])) as pipeline:
        _ = pipeline | beam.Create(range(4)) | beam.Map(str) | beam.io.WriteToText(str(tmp_path / "out"))
    assert sorted(line for path in tmp_path.glob("out*") for line in path.read_text().splitlines()) == list("0123")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name == "wwm"]
    assert warning.startswith("local worker processes are not watched: this Apache Beam lacks ")


def test_a_local_worker_that_dies_stops_the_run_with_its_status():
    """A worker killed mid-run (here it exits with status 3, as a crash in a native library or the
    out-of-memory killer would end it) fails the run with that status; Beam's own subprocess
    workers leave the launcher waiting for an answer forever."""
    script = textwrap.dedent("""
        import os
        import apache_beam as beam
        from wwm_cli.data import new_pipeline
        from wwm_cli.launch import launch

        with new_pipeline(launch(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])) as pipeline:
            _ = pipeline | beam.Create(range(4)) | beam.Map(lambda n: os._exit(3) if n == 2 else n)
        """)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert died.returncode == 1
    assert re.search(r"local worker process \d+ \(worker_\d+\) ended with exit status 3 while the pipeline ran",
                     died.stderr), died.stderr[-3000:]


def test_a_local_worker_that_dies_before_it_connects_stops_the_run(tmp_path):
    """A worker that fails at once (here its Python cannot start: a broken PYTHONHOME, as a
    broken environment would), before it connects to the launcher: the run stops with that
    status instead of waiting for a worker that never comes."""
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent("""
        import os
        import apache_beam as beam
        from wwm_cli.data import new_pipeline
        from wwm_cli.launch import launch

        os.environ["PYTHONHOME"] = "/nonexistent"  # read by the workers' interpreters, not this one
        with new_pipeline(launch(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])) as pipeline:
            _ = pipeline | beam.Create(range(4)) | beam.Map(str)
        """))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    died = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=environment)
    assert died.returncode == 1
    assert re.search(r"local worker process \d+ \(worker_\d+\) ended with exit status 1 while the pipeline ran",
                     died.stderr), died.stderr[-3000:]


def test_the_wwm_program_with_worker_processes_writes_the_same_bytes(tmp_path):
    """`wwm run` with local worker processes writes what the one-process local runner writes."""
    corpus = write_text_corpus(tmp_path / "corpus.txt", MANY_DOCUMENTS)
    local = run_wwm(tmp_path, name="local", inputs=[str(corpus)])
    subprocess.run([sys.executable, "-m", "wwm_cli", "run", f"--input={corpus}", f"--output={tmp_path / 'workers'}",
                    "--dupe_factor=3", "--num_shards=3", "--max_seq_length=128", "--segmenter=jieba",
                    "--direct_num_workers=2", "--direct_running_mode", "multi_processing"],
                   check=True, timeout=300, stdout=subprocess.DEVNULL)
    workers = json.loads((tmp_path / "workers" / "manifest.json").read_text())
    assert workers["num_instances"] == local["num_instances"] > 0
    assert workers["counters"] == local["counters"]
    assert shard_bytes(tmp_path / "workers") == shard_bytes(tmp_path / "local") != {}
