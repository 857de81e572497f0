"""Runs a command in a child process and reads its CPU time and peak RSS from the kernel."""
import atexit
import dataclasses
import os
import pathlib
import shutil
import subprocess
import tempfile
import time


@dataclasses.dataclass(frozen=True)
class Measurement:
    wall_seconds: float
    cpu_seconds: float
    user_seconds: float
    system_seconds: float
    peak_rss_mb: float  # of the largest single process: the child or one of its own children


def run_measured(command, *, cwd, stderr=None) -> Measurement:
    """``wait4`` gives this child's own resource use (with the children it waited for), so
    several commands measured from one process do not mix their figures."""
    wall = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - wall
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, command)
    return Measurement(wall, usage.ru_utime + usage.ru_stime, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024)


def work_folder(prefix: str) -> pathlib.Path:
    """A temporary folder for a benchmark's corpus and outputs, removed when the benchmark ends
    (a 110 MB run leaves 1.7 GB); WWM_BENCH_KEEP=1 keeps it, to look at the outputs."""
    work = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("WWM_BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work

