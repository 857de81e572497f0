"""Runs a command in a child process and reads its CPU time and peak RSS from the kernel."""
import atexit
import contextlib
import dataclasses
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")


@dataclasses.dataclass(frozen=True)
class Measurement:
    wall_seconds: float
    cpu_seconds: float
    user_seconds: float
    system_seconds: float
    peak_rss_mb: float  # of the largest single process: the child or one of its own children
    # Under a memory limit: the cgroup's own peak, the child and all its processes together, page
    # cache of the files they wrote included (the kernel reclaims that at the limit).
    cgroup_peak_mb: float = None


def run_measured(command, *, cwd, stderr=None, memory_limit_mb: int = None) -> Measurement:
    """``wait4`` gives this child's own resource use (with the children it waited for), so
    several commands measured from one process do not mix their figures. With ``memory_limit_mb``
    the child and everything it starts run in a memory cgroup of that size: going over it gets
    them killed, as on a machine with that much RAM and no swap."""
    with memory_cgroup(memory_limit_mb) as cgroup:
        wall = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr,
                                 preexec_fn=cgroup.join if cgroup else None)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - wall
        cgroup_peak_mb = cgroup.peak_mb() if cgroup else None
    if child.returncode:
        killed = f" (killed: over the {memory_limit_mb} MB memory limit?)" if cgroup and child.returncode < 0 else ""
        raise RuntimeError(f"exit status {child.returncode}{killed}: {' '.join(map(str, command))}")
    return Measurement(wall, usage.ru_utime + usage.ru_stime, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024,
                       cgroup_peak_mb)


@dataclasses.dataclass(frozen=True)
class MemoryCgroup:
    folder: pathlib.Path
    peak_file: str

    def join(self) -> None:
        """Runs in the child between fork and exec, so everything it starts is inside."""
        (self.folder / "cgroup.procs").write_text(str(os.getpid()))

    def peak_mb(self) -> float:
        return int((self.folder / self.peak_file).read_text()) / 1e6


@contextlib.contextmanager
def memory_cgroup(limit_mb: int = None):
    """A fresh memory cgroup limited to ``limit_mb`` (v2, or v1's memory controller; swap
    limited too where the kernel accounts it), removed afterwards; None without a limit. Needs
    root or a delegated cgroup."""
    if limit_mb is None:
        yield None
        return
    limit = str(limit_mb * 1_000_000)
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # v2
        parent, files, peak = CGROUP_ROOT, {"memory.max": limit, "memory.swap.max": "0"}, "memory.peak"
    else:
        parent = CGROUP_ROOT / "memory"
        files = {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit}
        peak = "memory.max_usage_in_bytes"
    folder = parent / f"wwm-bench-{os.getpid()}"
    try:
        folder.mkdir()
    except OSError as error:
        raise SystemExit(f"--memory_limit_mb needs a writable memory cgroup under {parent}: {error}")
    try:
        for name, value in files.items():
            if (folder / name).exists():
                (folder / name).write_text(value)
        yield MemoryCgroup(folder, peak)
    finally:
        folder.rmdir()


def work_folder(prefix: str) -> pathlib.Path:
    """A temporary folder for a benchmark's corpus and outputs, removed when the benchmark ends
    (a 110 MB run leaves 1.7 GB); WWM_BENCH_KEEP=1 keeps it, to look at the outputs."""
    work = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("WWM_BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work

