"""A process that imports what a local worker needs once, for the local runner to fork its workers
from.

Started as a fresh interpreter, a local worker spends 1.2-1.35 s of CPU importing Beam, numba,
pyarrow and LTP's extension before it takes its first bundle, and the launcher waits for it: on
the benchmark corpus that is 1.3 s of every run, whatever the number of workers, and every worker
holds its own copy of those modules. A fork server imports them in parallel with the launcher's
own start (the launcher is one process; the other cores are idle then), and each worker forked from
it starts in about 10 ms and shares the imported pages with its siblings.

This module imports no Beam, so that ``wwm`` can start the server before it imports Beam itself.
"""
import argparse
import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import signal

# Linux and macOS have it; elsewhere (Windows) the local runner starts Beam's own worker processes.
AVAILABLE = "forkserver" in multiprocessing.get_all_start_methods()
# What the worker's harness imports; the command's own module (``wwm_cli.data``, ...) brings the
# pipelines, wwm_core and their libraries.
WORKER_MODULES = ("apache_beam.runners.worker.sdk_worker_main", "pipelines.local_workers")


def forks_local_workers(runner, running_mode) -> bool:
    """True when Beam's options ask for the local runner's worker processes (``runner`` None means
    the local runner, which ``wwm`` names for Beam)."""
    return AVAILABLE and runner in (None, "FnApiRunner") and running_mode == "multi_processing"


def forks_local_workers_for(argv) -> bool:
    """``forks_local_workers`` read from a command line, before anything has parsed it."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--runner")
    parser.add_argument("--direct_running_mode")
    try:
        known, _ = parser.parse_known_args(argv)
    except argparse.ArgumentError:  # a flag without its value: Beam's own parsing will say so
        return False
    return forks_local_workers(known.runner, known.direct_running_mode)


def start(modules=()) -> None:
    """Starts the fork server, importing ``modules`` and the worker's own, unless it runs already.
    The modules are imported in the server's process, while this one goes on."""
    if server_pid() is None:
        multiprocessing.get_context("forkserver").set_forkserver_preload([*WORKER_MODULES, *modules])
        multiprocessing.forkserver.ensure_running()
        atexit.register(stop)


def server_pid():
    """The running fork server's process id, or None. (multiprocessing keeps it in a private
    attribute, unchanged from Python 3.4 to 3.13; it offers no public way to stop the server.)"""
    return multiprocessing.forkserver._forkserver._forkserver_pid


def stop() -> None:
    """Ends the fork server and waits for it, when this process ends. Waited for, its CPU time and
    that of the workers it forked (and waited for) count among this process's children, as
    ``getrusage`` and ``time`` report them. SIGKILL ends it at once, without the teardown of its
    modules, and cannot be ignored; it holds nothing to clean up, and by now every worker has
    ended (or, if the run failed, ends when its connection to this process does)."""
    pid = server_pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
