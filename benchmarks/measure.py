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
    """Call once per process: RUSAGE_CHILDREN sums every child this process has waited for."""
    wall = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - wall
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Measurement(wall, usage.ru_utime + usage.ru_stime, usage.ru_utime, usage.ru_stime,
                       usage.ru_maxrss / 1024)
