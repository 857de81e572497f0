"""The command of Beam's PROCESS environment (Spark and Flink workers without Docker): what the SDK
container's entry point (``/opt/apache/beam/boot``) does for a Python worker, in this Python
environment, as whatever user the runner starts it as.

A runner starts it with the container's flags (``--id``, ``--provision_endpoint`` and, from some
runners, ``--logging_endpoint``, ``--artifact_endpoint``, ``--control_endpoint``,
``--semi_persist_dir``); it asks the provision service for the job's options and endpoints and
replaces itself with Beam's SDK worker (``apache_beam.runners.worker.sdk_worker_main``), given them
in the environment the container contract names. Unlike boot, it creates no virtual environment
(boot's default, under /opt/apache/beam-venv, which a non-root user cannot write) and installs
nothing: this environment holds the package at the lock's versions, and a job that stages Python
packages to install (--setup_file, --requirements_file, --extra_package) is refused in one line.
Where this user cannot write numba's cache beside the package (an installation another user
owns), the compiled row loops are cached in TMPDIR/wwm-numba-UID instead: compiled by the first
worker on the machine, loaded by the others (numba otherwise refuses to import them at all).
``deploy/process_worker.sh`` runs it with the checkout's .venv.
"""
import argparse
import os
import pathlib
import sys
import tempfile

import grpc
from apache_beam.portability import common_urns
from apache_beam.portability.api import (beam_provision_api_pb2, beam_provision_api_pb2_grpc, beam_runner_api_pb2,
                                         endpoints_pb2)
from google.protobuf import json_format, text_format

SDK_WORKER = "apache_beam.runners.worker.sdk_worker_main"
# What boot installs from the staged artifacts; the rest (the pickled main session, the list of
# the launcher's packages) this worker does without.
INSTALLED_BY_BOOT = ("requirements.txt", "extra_packages.txt", "workflow.tar.gz", "dataflow_python_sdk.tar")
PROVISION_TIMEOUT_S = 60


def parse_flags(argv):
    parser = argparse.ArgumentParser(prog="process_worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", required=True, help="the worker id the runner gave")
    parser.add_argument("--provision_endpoint", required=True)
    parser.add_argument("--logging_endpoint")
    parser.add_argument("--artifact_endpoint")
    parser.add_argument("--control_endpoint")
    parser.add_argument("--semi_persist_dir", default=tempfile.gettempdir())
    flags, _ = parser.parse_known_args(argv)  # flags of later contracts are not needed here
    return flags


def provision_info(endpoint: str, worker_id: str):
    """The job's ProvisionInfo, asked for as boot asks (the worker id in the call's metadata)."""
    with grpc.insecure_channel(endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        response = stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(),
                                         metadata=[("worker_id", worker_id)], timeout=PROVISION_TIMEOUT_S)
    return response.info


def staged_packages(info) -> list:
    """The staged names boot would install (pip) before starting the worker."""
    names = []
    for dependency in info.dependencies:
        if dependency.role_urn == common_urns.artifact_roles.STAGING_TO.urn:
            name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload).staged_name
            if name in INSTALLED_BY_BOOT or name.endswith((".whl", ".tar.gz", ".zip")):
                names.append(name)
    return names


def _descriptor(url: str) -> str:
    return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))


def worker_environment(flags, info) -> dict:
    """The variables Beam's SDK worker reads (the container contract), from the flags, else from
    the provision info."""
    environment = {
        "WORKER_ID": flags.id,
        "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
        "SEMI_PERSISTENT_DIRECTORY": flags.semi_persist_dir,
        "LOGGING_API_SERVICE_DESCRIPTOR": (_descriptor(flags.logging_endpoint) if flags.logging_endpoint
                                           else text_format.MessageToString(info.logging_endpoint)),
        "CONTROL_API_SERVICE_DESCRIPTOR": (_descriptor(flags.control_endpoint) if flags.control_endpoint
                                           else text_format.MessageToString(info.control_endpoint)),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
    }
    if info.HasField("status_endpoint"):
        environment["STATUS_API_SERVICE_DESCRIPTOR"] = text_format.MessageToString(info.status_endpoint)
    return environment


def numba_cache_environment(package_folder: pathlib.Path) -> dict:
    """NUMBA_CACHE_DIR for a user who cannot write numba's cache beside the package, else nothing."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return {}
    cache = package_folder / "__pycache__"
    if os.access(cache if cache.exists() else package_folder, os.W_OK):
        return {}
    return {"NUMBA_CACHE_DIR": os.path.join(tempfile.gettempdir(), f"wwm-numba-{os.getuid()}")}


def main(argv=None) -> None:
    flags = parse_flags(sys.argv[1:] if argv is None else argv)
    info = provision_info(flags.provision_endpoint, flags.id)
    packages = staged_packages(info)
    if packages:
        print(f"process_worker: this job stages Python packages to install ({', '.join(packages)}), and a PROCESS "
              "worker installs nothing: install them on every node, into the environment that runs this command",
              file=sys.stderr)
        sys.exit(2)
    import wwm_core

    environment = {**os.environ, **worker_environment(flags, info),
                   **numba_cache_environment(pathlib.Path(wwm_core.__file__).parent)}
    os.execve(sys.executable, [sys.executable, "-m", SDK_WORKER], environment)


if __name__ == "__main__":
    main()
