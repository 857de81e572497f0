"""Before a pipeline is built: the runner's options, checked and completed the same way for every
entry that runs one (``wwm run``, ``wwm prepare``, ``wwm segment``, and through them ``wwm
submit`` and the Flex Template's launcher), so that what would fail on a cluster fails here, in
one line, before any job is submitted or any output touched; then read, once, into the
configuration's RunnerConfig (the runner, whether it is local, whether the job is handed over),
which everything else reads.

    launch(beam_args, progress=..) -> RunnerConfig, from launch_options(beam_args):
    launch_options(beam_args) -> the Beam flags the pipeline gets:
      - Dataflow: the workers' image is required, one bundle per SDK process
        (--number_of_worker_harness_threads=1) unless the user chose otherwise (then a warning), and
        no pip freeze of this machine staged with the job (it names local paths);
      - workers in the image (Dataflow, or a portable runner's DOCKER environment): this
        launcher's Python and key libraries must be the image's (deploy/Dockerfile's base image,
        requirements.lock), or the run is refused with the one line that fixes it;
      - Spark or Flink with a job server Beam starts here for a remote cluster: --artifacts_dir is
        required (its default is a temporary folder on this machine, which executors cannot read);
      - --output_executable_path (Dataproc's jars): made absolute, its folder created (Beam's jar
        writer does not create it);
      - Beam's file systems and the output lock's GCS client get the run's options (project,
        credentials, impersonation) before the first gs:// call.
"""
import logging
import os
import pathlib
import re

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (DebugOptions, DirectOptions, FlinkRunnerOptions, GoogleCloudOptions,
                                                  JobServerOptions, PipelineOptions, PortableOptions,
                                                  SparkRunnerOptions, StandardOptions, WorkerOptions)

from pipelines.common import version_differences
from pipelines.output import use_pipeline_options
from wwm_core.config import RunnerConfig
from wwm_core.errors import UsageError
from wwm_core.manifest import BYTE_DECIDING_LIBRARIES, library_versions

log = logging.getLogger("wwm")
ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
LOCK = ROOT / "requirements.lock"
FIX = "PYTHON=python3.11 bash scripts/setup.sh, then launch with .venv/bin/wwm"
PORTABLE_RUNNERS = ("PortableRunner", "SparkRunner", "FlinkRunner")
# Beam's runners that run the pipeline on this machine. wwm names FnApiRunner where no runner is
# given: "DirectRunner" first tries to download Beam's Prism runner binary, with no timeout.
LOCAL_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner", "PrismRunner")
LOCAL_MASTERS = ("[local]", "[auto]", "[collection]")
# deploy/Dockerfile sets it: this process runs in the image, which is the image's versions.
IN_IMAGE_VARIABLE = "FLEX_TEMPLATE_PYTHON_PY_FILE"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_versions(dockerfile: pathlib.Path = DOCKERFILE, lock: pathlib.Path = LOCK) -> dict:
    """{"python": "3.11", library: version} of the image deploy/Dockerfile builds: the Python of
    its base image (Beam's apache/beam_python3.X_sdk) and the versions requirements.lock pins."""
    base = re.search(r"^FROM\s+apache/beam_python(\d+\.\d+)_sdk", dockerfile.read_text(encoding="utf-8"), re.M)
    if not base:
        raise UsageError(f"{dockerfile} names no apache/beam_pythonX.Y_sdk base image")
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_canonical(name.split("[", 1)[0])] = version.strip()
    return {"python": base.group(1), **{name: pins.get(_canonical(name)) for name in BYTE_DECIDING_LIBRARIES}}


def check_image_versions(*, launcher: dict = None, image: dict = None) -> None:
    """Refuses, in one line with the fix, a launcher whose Python minor version (Beam's SDK images
    fix it) or libraries that decide the bytes (Beam among them, whose own cloudpickle pickles the
    DoFns here and unpickles them there) differ from the image's: its workers would refuse to start
    once the job is up (pipelines.common.check_worker_versions). Not checked where the image's
    definition is not beside the package (an installed copy, not the repository), or inside the
    image itself."""
    if image is None:
        if os.environ.get(IN_IMAGE_VARIABLE):
            return
        if not (DOCKERFILE.is_file() and LOCK.is_file()):
            log.warning("this launcher's versions are not checked against the workers' image: %s and %s are not "
                        "beside the package (launch from the repository after bash scripts/setup.sh); the workers "
                        "still refuse to start if their versions differ", DOCKERFILE, LOCK)
            return
        image = image_versions()
    differences = version_differences(image, library_versions() if launcher is None else launcher)
    if differences:
        listed = "; ".join(f"{name} {here or 'not installed'} here, {there or 'not pinned'} in the image"
                           for name, there, here in differences)
        raise UsageError(f"this launcher differs from the workers' image (deploy/Dockerfile, requirements.lock): "
                         f"{listed}; its workers would refuse to start. Fix: {FIX}")


def workers_run_in_image(options) -> bool:
    """Dataflow's workers, and a portable runner's DOCKER environment (its default)."""
    runner = options.view_as(StandardOptions).runner
    if runner == "DataflowRunner":
        return True
    environment = options.view_as(PortableOptions).environment_type
    return runner in PORTABLE_RUNNERS and (environment or "DOCKER").upper() == "DOCKER"


def _needs_shared_artifacts(options) -> bool:
    """Spark or Flink through a job server Beam starts on this machine for a remote cluster,
    without a jar that carries the artifacts."""
    runner = options.view_as(StandardOptions).runner
    portable = options.view_as(PortableOptions)
    if portable.job_endpoint or portable.output_executable_path:
        return False
    if runner == "SparkRunner":
        spark = options.view_as(SparkRunnerOptions)
        return not (spark.spark_submit_uber_jar or re.match(r"^local(\[.+\])?$", spark.spark_master_url))
    if runner == "FlinkRunner":
        flink = options.view_as(FlinkRunnerOptions)
        return not (flink.flink_submit_uber_jar or flink.flink_master in LOCAL_MASTERS)
    return False


def launch_options(beam_args) -> list:
    """``beam_args`` checked and completed (see the module's docstring); raises UsageError."""
    beam_args = list(beam_args)
    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    if runner == "DataflowRunner":
        if not options.view_as(WorkerOptions).sdk_container_image:
            raise UsageError("the DataflowRunner needs --sdk_container_image IMAGE, built from deploy/Dockerfile: "
                             "Beam's own image holds neither this package nor its locked versions")
        if "disable_logging_submission_environment" not in (options.view_as(DebugOptions).experiments or []):
            # Beam would stage a pip freeze of this machine, naming its paths (the Python, an editable
            # checkout): the image is checked against the lock above instead.
            beam_args.append("--experiments=disable_logging_submission_environment")
        threads = options.view_as(DebugOptions).number_of_worker_harness_threads
        if threads is None:
            # One bundle at a time per SDK process (Dataflow starts one per vCPU): a process holds
            # one bucket of documents, which is what wwm plan's memory per worker assumes.
            beam_args.append("--number_of_worker_harness_threads=1")
        elif threads > 1:
            log.warning("WARNING: --number_of_worker_harness_threads %d: each Python process may hold %d buckets at "
                        "once, %d times the memory per process that wwm plan and this run's estimate assume; leave "
                        "the flag out for one", threads, threads, threads)
    if workers_run_in_image(options):
        check_image_versions()
    if _needs_shared_artifacts(options) and not options.view_as(JobServerOptions).artifacts_dir:
        raise UsageError(f"--artifacts_dir is not set: the {runner}'s job server, started on this machine, would "
                         "stage the job's files in a temporary folder here, which the cluster's workers cannot "
                         "read; pass --artifacts_dir gs://BUCKET/PATH (or a folder every node mounts)")
    jar = options.view_as(PortableOptions).output_executable_path
    if jar and "://" not in jar:
        absolute = os.path.abspath(jar)
        os.makedirs(os.path.dirname(absolute), exist_ok=True)  # Beam's jar writer opens the file only
        if absolute != jar:
            beam_args.append(f"--output_executable_path={absolute}")
    options = PipelineOptions(beam_args)
    FileSystems.set_options(options)
    use_pipeline_options(options)
    return beam_args


def launch(beam_args, *, progress: str = "auto") -> RunnerConfig:
    """The checked runner options (launch_options), and what they come to, read once."""
    beam_args = launch_options(beam_args)
    options = PipelineOptions(beam_args)
    runner = str(options.view_as(StandardOptions).runner or "FnApiRunner").split(".")[-1]  # or its class path
    local = runner in LOCAL_RUNNERS
    return RunnerConfig(
        beam_args=tuple(beam_args), progress=progress, runner=runner, local=local,
        worker_processes=local and options.view_as(DirectOptions).direct_running_mode == "multi_processing",
        handed_over_to=(options.view_as(GoogleCloudOptions).template_location
                        or options.view_as(PortableOptions).output_executable_path))
