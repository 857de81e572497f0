"""Runs a command in a child process and reads its CPU time and peak RSS from the kernel."""
import dataclasses
import resource
import subprocess
import time


@dataclasses.dataclass(frozen=True)
class Measurement:
    wall_seconds: float
    cpu_seconds: float
    user_seconds: float
    system_seconds: float
    peak_rss_mb: float  # of the largest single child process


def run_measured(command, *, cwd) -> Measurement:
    """CPU time is the difference of RUSAGE_CHILDREN around the command, so several commands may be
    measured from one process; peak RSS is the largest of any child waited for so far."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return Measurement(wall, user + system, user, system, after.ru_maxrss / 1024)
