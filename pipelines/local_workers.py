"""Beam's local runner's worker processes, watched: a worker that dies stops the run.

With ``--direct_running_mode multi_processing``, Beam's local runner (FnApiRunner) starts each
worker as ``python -m apache_beam.runners.worker.sdk_worker_main`` and, when one dies (killed for
memory, a crash in a native library), waits for its answer forever (apache/beam#19674, BEAM-8149,
open: "hangs forever after ... Worker subprocess exited with return code 1"). Here each worker is started the
way Beam starts it (its command, and the environment variables its worker main reads), by a handler
that waits for the process: one that ends before the runner stops it ends the other workers and
interrupts the launcher's main thread (a real signal, which wakes it from the wait), which raises
``WorkerDied``: one line, with the worker's exit status.

This is the one module that reaches into Beam's runner internals (``worker_handlers``, the registry
of environments; ``local_job_service``'s logging servicer). It is imported only for
``multi_processing`` runs, and where this Beam lacks what it uses, the run goes on with Beam's own
workers after a one-line warning (``watched_runner`` returns None).
"""
import logging
import os
import signal
import subprocess
import threading

from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from wwm_core.errors import UsageError

log = logging.getLogger("wwm")
WORKER_LOG = logging.getLogger(__name__)  # workers' records; below WARNING out of sight, as Beam's own
_deaths = []  # why the run is stopped: a dead worker's description, read by the main thread
_live = set()  # the workers started and not stopped, ended when one of them dies


class WorkerDied(UsageError):
    """A local worker process ended while the pipeline ran."""


def exit_status(code: int) -> str:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return f"signal {name}" + (" (killed: out of memory?)" if code == -signal.SIGKILL else "")
    return f"exit status {code}"


def _raise_worker_died(_signal_number, _frame):
    if _deaths:
        raise WorkerDied(_deaths[0])


def _handler_class():
    """Beam's SUBPROCESS_SDK environment handler, with the worker's process watched and its logs a
    line each; raises ImportError or AttributeError where this Beam lacks what it needs."""
    import grpc
    from apache_beam.portability import python_urns
    from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc, endpoints_pb2
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    from apache_beam.runners.worker.log_handler import LOGENTRY_TO_LOG_LEVEL_MAP
    from apache_beam.utils import thread_pool_executor
    from google.protobuf import json_format, text_format

    class OneLineLogs(beam_fn_api_pb2_grpc.BeamFnLoggingServicer):
        """A worker's log records in the launcher's log, a line each (with the traceback where a
        record has one), named by the worker (Beam's own servicer writes a record's proto over ten
        lines)."""

        def __init__(self, worker_id: str):
            self.worker_id = worker_id

        def Logging(self, log_bundles, context=None):
            yield beam_fn_api_pb2.LogControl()
            for bundle in log_bundles:
                for entry in bundle.log_entries:
                    if "semi_persistent_directory" in entry.message:
                        continue  # a local worker has no staged main session to load: not news
                    WORKER_LOG.log(LOGENTRY_TO_LOG_LEVEL_MAP[entry.severity], "%s: %s%s", self.worker_id,
                                   entry.message, f"\n{entry.trace}" if entry.trace else "")

    class WatchedWorkerHandler(worker_handlers.GrpcWorkerHandler):
        def __init__(self, command_line: bytes, state, provision_info, grpc_server):
            super().__init__(state, provision_info, grpc_server)
            self.command_line = command_line.decode("utf-8")
            self.process = None
            self.stopping = False
            # Beam's workers ping every 20 s: without these a quiet worker's log stream is cut after
            # a minute ("too many pings"), as Beam's own servers set them.
            self.log_server = grpc.server(thread_pool_executor.shared_unbounded_instance(), options=[
                ("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0),
                ("grpc.http2.min_ping_interval_without_data_ms", 20_000)])
            beam_fn_api_pb2_grpc.add_BeamFnLoggingServicer_to_server(OneLineLogs(self.worker_id), self.log_server)
            self.log_address = f"localhost:{self.log_server.add_insecure_port('localhost:0')}"

        def start_worker(self):
            # What Beam's own SubprocessSdkWorker gives its worker: the control and logging
            # services, the pipeline options, the worker's id.
            self.log_server.start()
            environment = dict(
                os.environ,
                CONTROL_API_SERVICE_DESCRIPTOR=text_format.MessageToString(
                    endpoints_pb2.ApiServiceDescriptor(url=self.control_address)),
                LOGGING_API_SERVICE_DESCRIPTOR=text_format.MessageToString(
                    endpoints_pb2.ApiServiceDescriptor(url=self.log_address)),
                PIPELINE_OPTIONS=json_format.MessageToJson(self.provision_info.provision_info.pipeline_options),
                WORKER_ID=self.worker_id)
            with worker_handlers.SUBPROCESS_LOCK:
                self.process = subprocess.Popen(self.command_line, shell=True, env=environment)
            _live.add(self)
            threading.Thread(target=self.watch, name=f"watch {self.worker_id}", daemon=True).start()

        def watch(self):
            code = self.process.wait()
            if self.stopping or _deaths:
                return
            _deaths.append(f"local worker process {self.process.pid} ({self.worker_id}) ended with "
                           f"{exit_status(code)} while the pipeline ran; the run is stopped")
            for other in list(_live):
                if other is not self and other.process.poll() is None:
                    other.process.kill()
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

        def stop_worker(self):
            self.stopping = True
            if self.process is not None:
                self.process.wait()
            _live.discard(self)
            self.log_server.stop(0)

    worker_handlers.WorkerHandler.register_environment(python_urns.SUBPROCESS_SDK, bytes)(WatchedWorkerHandler)
    return WatchedWorkerHandler


def watch_local_workers(options) -> bool:
    """Where the options ask for the local runner's worker processes: watch them (True), or, where
    this Beam lacks what the watch needs or this is not the main thread, say so in one line and
    leave Beam's own workers (False)."""
    runner = options.view_as(StandardOptions).runner
    if runner not in (None, "FnApiRunner") or options.view_as(DirectOptions).direct_running_mode != "multi_processing":
        return False
    if threading.current_thread() is not threading.main_thread():
        log.warning("local worker processes are not watched (the pipeline runs outside the main thread): a worker "
                    "that dies leaves the run waiting")
        return False
    try:
        _handler_class()
    except (ImportError, AttributeError) as error:
        log.warning("local worker processes are not watched: this Apache Beam lacks %s; a worker that dies leaves "
                    "the run waiting", error)
        return False
    _deaths.clear()
    signal.signal(signal.SIGUSR1, _raise_worker_died)
    return True
