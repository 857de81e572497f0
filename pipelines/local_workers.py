"""Beam's local runner with worker processes forked from a fork server, watched while they work.

With ``--direct_running_mode multi_processing``, Beam's local runner (FnApiRunner) starts each
worker as a fresh ``python -m apache_beam.runners.worker.sdk_worker_main``. Here a worker is forked
from ``fork_server``, which has imported what it needs once, and it runs the same harness. Two
more differences:
- the worker ends without the interpreter's teardown of Beam, numba, LTP's extension and pyarrow
  (0.45-0.6 s each, and Beam stops its workers one after another): a forked process exits so;
- a worker that dies (killed for memory, a crash in a native library) fails the run with its exit
  status. Beam's own subprocess workers leave the launcher waiting forever for the answer.
"""
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time

import grpc

from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
from apache_beam.portability import python_urns
from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc, endpoints_pb2
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
from apache_beam.runners.portability.fn_api_runner.worker_handlers import (ControlFuture, GrpcWorkerHandler,
                                                                           WorkerHandler)
from apache_beam.runners.worker import sdk_worker_main
from apache_beam.runners.worker.log_handler import LOGENTRY_TO_LOG_LEVEL_MAP
from apache_beam.utils import thread_pool_executor
from google.protobuf import json_format, text_format

from pipelines import fork_server

# The environment FnApiRunner gives its multi_processing workers (a command line), and ours.
BEAM_WORKER_COMMAND = f"{sys.executable} -m {sdk_worker_main.__name__}".encode()
FORKED_WORKER_URN = "wwm:env:forked_local_worker:v1"
WORKER_LOG = logging.getLogger(__name__)  # below WARNING, out of sight as Beam's own workers were


class OneLineLogs(beam_fn_api_pb2_grpc.BeamFnLoggingServicer):
    """A worker's log records in the launcher's log, a line each (and a traceback where the record
    has one), named by the worker. (The runner's own logging service writes each record's whole
    message proto over ten lines.)"""

    def __init__(self, worker_id: str):
        self.worker_id = worker_id

    def Logging(self, log_bundles, context=None):
        yield beam_fn_api_pb2.LogControl()
        for bundle in log_bundles:
            for entry in bundle.log_entries:
                WORKER_LOG.log(LOGENTRY_TO_LOG_LEVEL_MAP[entry.severity], "%s: %s%s", self.worker_id, entry.message,
                               f"\n{entry.trace}" if entry.trace else "")


def is_not_about_a_main_session(record) -> bool:
    # A forked worker has imported everything already; there is no main session to stage or load.
    return "semi_persistent_directory" not in record.getMessage()


def serve(environment: dict) -> None:
    """A forked worker's life: Beam's SDK harness, talking to the launcher through ``environment``
    (the launcher's own, plus the addresses Beam's worker main reads). An error ends the process
    with status 1 and its traceback on stderr."""
    os.environ.clear()
    os.environ.update(environment)
    logging.getLogger(sdk_worker_main.__name__).addFilter(is_not_about_a_main_session)
    sdk_worker_main.main([])


def exit_status(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return f"signal {name}" + (" (killed: out of memory?)" if code == -signal.SIGKILL else "")
    return f"exit status {code}"


def fail_requests(connection, error: str, *, until) -> None:
    """Every request to a dead worker is answered with ``error``, as a worker answers an instruction
    that failed (the runner then stops waiting for the bundle's data and raises it): those made
    from now on, and those waiting for an answer that will not come, checked again every 0.2 s
    (a request being made as the worker died joins them late) until ``until()``."""
    def answered(instruction_id):
        return beam_fn_api_pb2.InstructionResponse(instruction_id=instruction_id, error=error)

    push = connection.push

    def failed(request):
        if not isinstance(request, beam_fn_api_pb2.InstructionRequest):
            return push(request)  # the runner's end-of-stream marker, as it closes the connection
        return ControlFuture(request.instruction_id, answered(request.instruction_id))

    connection.push = failed
    while not until():
        for instruction_id, future in list(connection._futures_by_id.items()):
            if not future.is_done():
                future.set(answered(instruction_id))
        time.sleep(0.2)


@WorkerHandler.register_environment(FORKED_WORKER_URN, bytes)
class ForkedWorkerHandler(GrpcWorkerHandler):
    """One local worker, forked from the fork server, and a thread that waits for it to end."""

    def __init__(self, payload, state, provision_info, grpc_server):
        super().__init__(state, provision_info, grpc_server)
        self.process = None
        self.stopping = False
        # Beam's workers ping every 20 s: without these a quiet worker's log stream is cut after a
        # minute ("too many pings"), as Beam's own servers set them.
        self.log_server = grpc.server(thread_pool_executor.shared_unbounded_instance(), options=[
            ("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0),
            ("grpc.http2.min_ping_interval_without_data_ms", 20_000)])
        beam_fn_api_pb2_grpc.add_BeamFnLoggingServicer_to_server(OneLineLogs(self.worker_id), self.log_server)
        self.log_address = f"localhost:{self.log_server.add_insecure_port('localhost:0')}"

    def start_worker(self):
        self.log_server.start()
        environment = dict(
            os.environ,
            CONTROL_API_SERVICE_DESCRIPTOR=text_format.MessageToString(self.control_api_service_descriptor()),
            LOGGING_API_SERVICE_DESCRIPTOR=text_format.MessageToString(
                endpoints_pb2.ApiServiceDescriptor(url=self.log_address)),
            PIPELINE_OPTIONS=json_format.MessageToJson(self.provision_info.provision_info.pipeline_options),
            WORKER_ID=self.worker_id)
        fork_server.start()  # at once when `wwm` started it already
        self.process = multiprocessing.get_context("forkserver").Process(
            target=serve, args=(environment,), name=f"wwm local worker {self.worker_id}")
        self.process.start()
        # A daemon: a launcher that fails must not wait at exit for workers that still wait for it.
        self.watcher = threading.Thread(target=self.watch, name=f"watch {self.worker_id}", daemon=True)
        self.watcher.start()

    def watch(self):
        """Waits for the worker; one that ends before the runner stops it has died, whatever its
        status (a worker also exits 0 once the runner has closed its connection, just before
        ``stop_worker``; nothing is waiting then)."""
        self.process.join()
        if not self.stopping:
            fail_requests(self.control_conn, f"local worker process {self.process.pid} ({self.worker_id}) ended "
                          f"with {exit_status(self.process.exitcode)} while the pipeline ran; the run is stopped",
                          until=lambda: self.stopping)

    def stop_worker(self):
        self.stopping = True
        if self.process is not None:
            self.watcher.join()  # the one reader of the worker's exit status
        self.log_server.stop(0)


class LocalRunner(FnApiRunner):
    """FnApiRunner, whose multi_processing workers are forked (``ForkedWorkerHandler``) rather than
    started as Beam's worker main. Beam picks the worker command inside ``run_pipeline``, so the
    environment is swapped in the pipeline proto that ``run_pipeline`` hands on; a worker command
    set some other way is left alone."""

    def run_via_runner_api(self, pipeline_proto, options):
        for environment in pipeline_proto.components.environments.values():
            if environment.urn == python_urns.SUBPROCESS_SDK and environment.payload == BEAM_WORKER_COMMAND:
                environment.urn = FORKED_WORKER_URN
        return super().run_via_runner_api(pipeline_proto, options)


def runner_for(options):
    """A LocalRunner where the options ask for the local runner's worker processes; None (the
    runner the options name) otherwise."""
    if fork_server.forks_local_workers(options.view_as(StandardOptions).runner,
                                       options.view_as(DirectOptions).direct_running_mode):
        return LocalRunner()
    return None
