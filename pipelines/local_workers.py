"""Beam's local runner whose worker processes end without the interpreter's teardown.

With ``--direct_running_mode multi_processing``, Beam's local runner (FnApiRunner) starts each
worker as ``python -m apache_beam.runners.worker.sdk_worker_main`` and, after the last stage,
stops them one after another, each once the one before has exited. A worker that has run our
stages has imported Beam, numba, LTP's extension and pyarrow, and tearing them down took 0.45 to
0.6 s per worker on the benchmark corpus, so N workers added N times that to the end of every run
(1.2 s of a 9 s run with two). Here a worker is ``python -m pipelines.local_workers``: Beam's own
worker main, then the exit the ``wwm`` program takes (``exit_without_teardown``).
"""
import sys

from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
from apache_beam.portability import python_urns
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
from apache_beam.runners.worker import sdk_worker_main

from wwm_core.process import exit_without_teardown


def worker_command(module: str) -> str:
    return f"{sys.executable} -m {module}"


# What FnApiRunner runs in multi_processing mode, and what runs instead.
BEAM_WORKER = worker_command(sdk_worker_main.__name__)
OUR_WORKER = worker_command("pipelines.local_workers")


class LocalRunner(FnApiRunner):
    """FnApiRunner, whose multi_processing workers are this module rather than Beam's worker main.
    Beam picks the worker command inside ``run_pipeline``, so it is swapped in the pipeline proto
    that ``run_pipeline`` hands on; a worker command set some other way is left alone."""

    def run_via_runner_api(self, pipeline_proto, options):
        for environment in pipeline_proto.components.environments.values():
            if environment.urn == python_urns.SUBPROCESS_SDK and environment.payload == BEAM_WORKER.encode():
                environment.payload = OUR_WORKER.encode()
        return super().run_via_runner_api(pipeline_proto, options)


def runner_for(options):
    """A LocalRunner where the options ask for the local runner's worker processes; None (the
    runner the options name) otherwise."""
    if (options.view_as(StandardOptions).runner == "FnApiRunner"
            and options.view_as(DirectOptions).direct_running_mode == "multi_processing"):
        return LocalRunner()
    return None


if __name__ == "__main__":
    # A failing harness raises here: the normal exit, with its traceback and a failing status,
    # which Beam's runner reports.
    sdk_worker_main.main(sys.argv)
    exit_without_teardown(0)
