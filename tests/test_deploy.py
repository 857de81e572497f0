"""The distributed paths, as far as they run here (no GCP, no Docker engine, no Spark or Flink):

- workers refuse to start when the launcher's byte-deciding versions differ (each stage DoFn, run
  through Beam);
- `wwm submit` runs the whole recipe (prepare, segment, run) locally and through the portable
  runner with EXTERNAL worker processes (what Spark and Flink start), to the same bytes; it resumes;
- the Dataflow commands it prints parse with our parsers and Beam's options, and each stage builds
  its Dataflow job (the job file a Flex Template launcher hands to Dataflow) against a GCS
  emulator, with the workers in the image;
- the Flex Template's metadata is the stage parsers' flags, its entry point turns parameters into
  those flags; the Dockerfile (parsed by Docker's own parser) copies files that exist and installs
  exactly the lock; the deploy scripts print commands that parse;
- `wwm plan` predicts a real run's instances within the tolerance it states.
"""
import ast
import importlib
import inspect
import json
import os
import pathlib
import pkgutil
import re
import runpy
import shlex
import subprocess
import sys
import textwrap
from importlib.metadata import version

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import (DebugOptions, GoogleCloudOptions, JobServerOptions, PipelineOptions,
                                                  PortableOptions, StandardOptions, WorkerOptions)
from apache_beam.testing import test_pipeline
from apache_beam.transforms.environments import ProcessEnvironment

import pipelines
import wwm_cli
from pipelines.common import WorkerVersionError, check_worker_versions, launcher_versions
from tests.conftest import shared_file
from tests.test_gcs import gcs_emulator
from tests.test_runners import worker_pool  # noqa: F401 - the fixture
from wwm_cli import flags, launch
from wwm_cli import plan as plan_module
from wwm_cli import submit as submit_module
from wwm_cli.data import prepare_parser, run_parser
from wwm_cli.segment import segment_parser
from wwm_cli.submit import flex_argv, flex_metadata, route_flags, stage_parsers
from wwm_core.errors import UsageError
from wwm_core.manifest import BYTE_DECIDING_LIBRARIES, library_versions

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
IMAGE = "us-central1-docker.pkg.dev/my-project/wwm/wwm-data:0123456789ab"
FAKE_NUMPY = "0.0.1"


# ---------------------------------------------------------------- workers refuse other versions

def _stage_dofns() -> dict:
    """{name: class} of every DoFn in pipelines/ (the stage protocol's bases aside): the ones that
    load what decides the bytes (converters, segmenters, vocabularies) on a worker."""
    from pipelines.common import AccountedDoFn, CheckedDoFn

    found = {}
    for module in pkgutil.iter_modules(pipelines.__path__):
        loaded = importlib.import_module(f"pipelines.{module.name}")
        for name, value in vars(loaded).items():
            if (inspect.isclass(value) and issubclass(value, beam.DoFn) and value.__module__ == loaded.__name__
                    and value not in (CheckedDoFn, AccountedDoFn)):
                found[name] = value
    return found


STAGE_DOFNS = _stage_dofns()


def test_every_stage_dofn_takes_the_launchers_versions_and_checks_them_first():
    from pipelines.common import CheckedDoFn

    assert len(STAGE_DOFNS) >= 5, STAGE_DOFNS
    for name, cls in STAGE_DOFNS.items():
        assert issubclass(cls, CheckedDoFn) and "setup" not in vars(cls), f"{name}: loads in start(), after the check"
        assert "expected_versions" in inspect.signature(cls.__init__).parameters, name
    init, setup = (ast.parse(textwrap.dedent(inspect.getsource(getattr(CheckedDoFn, m)))).body[0]
                   for m in ("__init__", "setup"))
    assigned = [ast.unparse(node) for node in ast.walk(init) if isinstance(node, ast.Assign)]
    assert "self._expected_versions = launcher_versions(expected_versions)" in assigned
    assert ast.unparse(setup.body[0]) == "check_worker_versions(self._expected_versions)"


@pytest.mark.parametrize("name", sorted(STAGE_DOFNS))
def test_a_worker_with_other_versions_refuses_to_start(name):
    # The DoFn as a launcher with another numpy would have pickled it: its setup() checks first,
    # before it needs anything else of its constructor's.
    dofn = STAGE_DOFNS[name].__new__(STAGE_DOFNS[name])
    beam.DoFn.__init__(dofn)
    dofn._expected_versions = {**launcher_versions(), "numpy": FAKE_NUMPY}
    with pytest.raises(Exception) as raised:
        with test_pipeline.TestPipeline(runner="BundleBasedDirectRunner") as pipeline:
            _ = pipeline | beam.Create([None]) | beam.ParDo(dofn)
    first_line = str(raised.value).splitlines()[0]
    assert first_line.startswith("this worker refuses to start: numpy "
                                 f"{version('numpy')} on this worker, {FAKE_NUMPY} on the launcher."), first_line


def test_the_version_check_compares_every_byte_deciding_library_and_the_code():
    mine = launcher_versions()
    assert set(BYTE_DECIDING_LIBRARIES) | {"python", "wwm-data"} <= set(mine)
    assert all(mine[name] == version(name) for name in BYTE_DECIDING_LIBRARIES if mine[name])
    check_worker_versions(mine)  # the same environment starts
    patch = mine["python"].rsplit(".", 1)[0] + ".99"
    check_worker_versions({**mine, "python": patch})  # Beam's containers fix the minor version only
    for name, other in (("tokenizers", "0.0.1"), ("python", "3.10.4"), ("wwm-data", "0.1.0 code 0000000000000000")):
        with pytest.raises(WorkerVersionError, match=re.escape(f"{name} {mine[name]} on this worker, {other} on the "
                                                               "launcher")):
            check_worker_versions({**mine, name: other})
    with pytest.raises(WorkerVersionError, match="jieba not installed on this worker, 0.42.1 on the launcher"):
        check_worker_versions({**mine, "jieba": "0.42.1"}, actual={**mine, "jieba": None})


# ---------------------------------------------------------------- the launcher refuses another image's versions

def test_the_image_definition_is_this_environments():
    image = launch.image_versions()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert image["python"] == python and set(image) == {"python", *BYTE_DECIDING_LIBRARIES}
    assert all(image[name] == version(name) for name in BYTE_DECIDING_LIBRARIES), "this environment is the lock"
    launch.check_image_versions()  # so it launches
    launch.check_image_versions(launcher={**library_versions(), "python": f"{python}.99"})  # a patch release
    with pytest.raises(UsageError, match=re.escape(f"numpy 0.0.1 here, {image['numpy']} in the image; python 3.10.12 "
                                                   f"here, {python} in the image; its workers would refuse to start. "
                                                   f"Fix: {launch.FIX}")):
        launch.check_image_versions(launcher={**library_versions(), "python": "3.10.12", "numpy": "0.0.1"})


@pytest.mark.parametrize("beam_args, in_image", [
    (["--runner=DataflowRunner"], True),
    (["--runner=SparkRunner", "--spark_master_url=spark://m:7077"], True),  # DOCKER: the portable runners' default
    (["--runner=PortableRunner", "--environment_type=DOCKER"], True),
    (["--runner=FlinkRunner", "--environment_type=PROCESS"], False),  # the nodes' own Python: the workers check
    (["--runner=PortableRunner", "--environment_type=EXTERNAL"], False),
    (["--runner=FnApiRunner"], False), ([], False)])
def test_which_runs_have_their_workers_in_the_image(beam_args, in_image):
    assert launch.workers_run_in_image(PipelineOptions(beam_args)) == in_image


def test_a_launcher_with_another_library_version_is_refused_before_submission(gcs, tmp_path):
    """A real environment whose numpy differs from the lock's (its metadata first on the path):
    wwm run on Dataflow and wwm submit dataflow stop at once with one line that says how to fix it,
    before anything is written to gs://: no template, no lock, no staged file."""
    fake = tmp_path / "site" / "numpy-0.0.1.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 0.0.1\n")
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    dataflow = ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
                "--temp_location=gs://wwm-deploy/refused/tmp", f"--sdk_container_image={IMAGE}"]
    before = {blob.name for blob in gcs.client.list_blobs(gcs)}
    for argv in (["run", "--input=gs://wwm-deploy/dumps/*.xml", "--input_format=wiki",
                  "--output=gs://wwm-deploy/refused/out", *dataflow,
                  "--template_location=gs://wwm-deploy/refused/job.json"],
                 ["submit", "dataflow", "--work=gs://wwm-deploy/refused", "--project=my-project", f"--image={IMAGE}",
                  "--no_plan", *GCS_SOURCES]):
        done = subprocess.run([sys.executable, "-m", "wwm_cli", *argv], capture_output=True, text=True, cwd=ROOT,
                              env=environment, timeout=300)
        assert done.returncode == 2, done.stderr[-3000:]
        message = done.stderr.strip().splitlines()[-1]
        assert re.fullmatch(rf"wwm \w+: error: this launcher differs from the workers' image \(deploy/Dockerfile, "
                            rf"requirements.lock\): numpy 0.0.1 here, {version('numpy')} in the image; its workers "
                            rf"would refuse to start. Fix: {re.escape(launch.FIX)}", message), message
    assert {blob.name for blob in gcs.client.list_blobs(gcs)} == before, "nothing written to gs://"


def test_launch_options_complete_what_a_cluster_needs_and_refuse_what_fails_there(tmp_path, monkeypatch, caplog):
    dataflow = ["--runner=DataflowRunner", "--project=p", "--region=us-central1", "--temp_location=gs://b/tmp"]
    with pytest.raises(UsageError, match="the DataflowRunner needs --sdk_container_image IMAGE, built from "
                                         "deploy/Dockerfile"):
        launch.launch_options(dataflow)
    options = PipelineOptions(launch.launch_options([*dataflow, f"--sdk_container_image={IMAGE}"]))
    assert options.view_as(DebugOptions).number_of_worker_harness_threads == 1, "one bundle per SDK process"
    assert "disable_logging_submission_environment" in options.view_as(DebugOptions).experiments
    chosen = PipelineOptions(launch.launch_options([*dataflow, f"--sdk_container_image={IMAGE}",
                                                    "--number_of_worker_harness_threads=4"]))
    assert chosen.view_as(DebugOptions).number_of_worker_harness_threads == 4, "the user's choice, with a warning"
    assert "may hold 4 buckets at once" in caplog.text
    # Spark or Flink through a job server Beam starts here, for a remote cluster: staged files must be shared.
    for remote in (["--runner=SparkRunner", "--spark_master_url=spark://m:7077"],
                   ["--runner=FlinkRunner", "--flink_master=jobmanager:8081"]):
        with pytest.raises(UsageError, match="--artifacts_dir is not set: the (Spark|Flink)Runner's job server"):
            launch.launch_options([*remote, "--environment_type=PROCESS", '--environment_config={"command": "x"}'])
        launch.launch_options([*remote, "--environment_type=PROCESS", '--environment_config={"command": "x"}',
                               "--artifacts_dir=gs://b/artifacts"])
    launch.launch_options(["--runner=FlinkRunner", "--flink_master=[local]"])  # a local cluster reads this machine
    # Dataproc's jars: Beam's jar writer opens the file without creating its folder.
    monkeypatch.chdir(tmp_path)
    jar = PipelineOptions(launch.launch_options(["--runner=SparkRunner", "--environment_type=DOCKER",
                                                 f"--environment_config={IMAGE}",
                                                 "--output_executable_path=jars/stage/run.jar"]))
    assert jar.view_as(PortableOptions).output_executable_path == str(tmp_path / "jars" / "stage" / "run.jar")
    assert (tmp_path / "jars" / "stage").is_dir()


def test_the_output_locks_gcs_client_takes_the_runs_project(tmp_path):
    """With credentials (a service-account key, made here: nothing is sent anywhere) the GCS client
    of the output lock and checksums is built from the run's options: its --project, not the key's
    project nor none."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    (tmp_path / "key.json").write_text(json.dumps({
        "type": "service_account", "project_id": "key-project", "private_key_id": "0", "private_key": key,
        "client_email": "wwm@key-project.iam.gserviceaccount.com", "client_id": "0",
        "token_uri": "https://oauth2.googleapis.com/token"}))
    script = ("from wwm_cli.launch import launch_options\n"
              "from pipelines.output import _gcs_blob\n"
              "launch_options(['--project=run-project'])\n"
              "print(_gcs_blob('gs://bucket/out/.wwm-lock.json').client.project)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "key.json"),
                               "NO_GCE_CHECK": "true"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["run-project"]


# ---------------------------------------------------------------- wwm submit: the recipe, run here

def _sources(*, wiki: pathlib.Path, ext: pathlib.Path) -> list:
    return [f"--source=name=zhwiki,format=wiki,input={wiki},opencc=t2s",
            f"--source=name=ext,format=jsonl,input={ext},opencc=none"]


def _recipe_flags():
    # The recipe's own settings, shortened where this machine needs it: one phase, jieba, dupe 2.
    return ["--segmenter=jieba", "--max_seq_length=128", "--dupe_factor=2"]


def _tree_bytes(folder: pathlib.Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("part-*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus():
    return {"wiki": shared_file("zhwiki_xml/zhwiki-test-pages.xml"),
            "ext": shared_file("ext_corpora/nlp_chinese_corpus_readme_examples.jsonl")}


@pytest.fixture(scope="module")
def local_recipe(tmp_path_factory, corpus):
    work = tmp_path_factory.mktemp("local") / "work"
    result = submit_module.submit_main(["local", f"--work={work}", *_sources(**corpus), *_recipe_flags()])
    return work, result


def test_submit_runs_prepare_segment_and_run_and_resumes(local_recipe, corpus, capsys):
    work, result = local_recipe
    assert result["ran"] == ["prepare", "segment", "run"]
    prepared = json.loads((work / "prepared" / "manifest.json").read_text())
    assert {(s["name"], s["input_format"], s["opencc_config"]) for s in prepared["config"]["sources"]} == {
        ("zhwiki", "wiki", "t2s"), ("ext", "jsonl", "none")}
    [segmentation] = (work / "prepared" / "segmentation").glob("jieba-*/segmentation.json")
    run = json.loads((work / "instances" / "manifest.json").read_text())
    assert run["prepared"]["manifest"] == str(work / "prepared" / "manifest.json")
    counters = run["counters"]
    # Every sentence's boundaries came from wwm segment's cache: run segmented nothing.
    assert counters["sentences.segmentation_cache_hit"] == counters["sentences"] > 0
    assert counters.get("sentences.segmentation_cache_miss", 0) == 0
    assert run["num_instances"] > 0 and run["accounting"]["balanced"]

    again = submit_module.submit_main(["local", f"--work={work}", *_sources(**corpus), *_recipe_flags()])
    assert again["skipped"] == ["prepare", "segment", "run"] and again["ran"] == []
    assert "already holds this segmenter's boundaries" in capsys.readouterr().out
    assert json.loads((work / "instances" / "manifest.json").read_text()) == run, "nothing was made again"


def test_submit_through_external_worker_processes_writes_the_local_bytes(local_recipe, corpus, tmp_path,
                                                                         worker_pool):  # noqa: F811
    address, pool = worker_pool
    work, _ = local_recipe
    # In a child process with a time limit: a worker that cannot start would leave the job waiting.
    subprocess.run([sys.executable, "-m", "wwm_cli", "submit", "portable", f"--work={tmp_path / 'work'}",
                    "--job_endpoint=embed", "--environment_type=EXTERNAL", f"--environment_config={address}",
                    "--sdk_worker_parallelism=2", *_sources(**corpus), *_recipe_flags()],
                   check=True, timeout=600, stdout=subprocess.DEVNULL, cwd=ROOT)
    assert pool.poll() is None, "the pool served the jobs and is still up"
    for stage in ("prepared", "instances"):
        local = json.loads((work / stage / "manifest.json").read_text())
        external = json.loads((tmp_path / "work" / stage / "manifest.json").read_text())
        assert external["counters"] == local["counters"]
    for stage, kinds in (("prepared", {".parquet"}), ("instances", {".tfrecord"})):
        local = _tree_bytes(work / stage)
        assert {pathlib.Path(name).suffix for name in local} == kinds
        assert _tree_bytes(tmp_path / "work" / stage) == local


def test_loopback_is_refused():
    with pytest.raises(UsageError, match="LOOPBACK runs all Python work in the submitting process"):
        submit_module.submit_main(["spark", "--work=/tmp/w", "--spark_master_url=spark://m:7077",
                                    "--environment_type=LOOPBACK", "--input=x.txt", "--print_only"])


def test_flags_go_to_the_stages_whose_parsers_know_them():
    routed = route_flags(["--source", "name=a,format=wiki,input=gs://b/a.bz2", "--near_duplicate_threshold=0.8",
                          "--max_document_chars", "5000", "--segmenter", "ltp", "--user_dict=gs://b/words.txt",
                          "--dupe_factor=10", "--overwrite", "--experiments", "shuffle_mode=service",
                          "--disk_size_gb=100"], stage_parsers())
    assert routed["prepare"] == ["--source", "name=a,format=wiki,input=gs://b/a.bz2", "--near_duplicate_threshold=0.8",
                                 "--max_document_chars", "5000", "--overwrite"]
    assert routed["segment"] == ["--segmenter", "ltp", "--user_dict=gs://b/words.txt", "--overwrite"]
    assert routed["run"] == ["--max_document_chars", "5000", "--segmenter", "ltp", "--user_dict=gs://b/words.txt",
                             "--dupe_factor=10", "--overwrite"]
    assert routed["beam"] == ["--experiments", "shuffle_mode=service", "--disk_size_gb=100"]
    with pytest.raises(UsageError, match="sets --output of wwm prepare itself"):
        route_flags(["--output=gs://b/o"], stage_parsers())


# ---------------------------------------------------------------- Dataflow, against a GCS emulator

@pytest.fixture(scope="module")
def gcs(corpus):
    """A GCS emulator on 127.0.0.1 holding the corpus."""
    with gcs_emulator("wwm-deploy") as bucket:
        bucket.blob("dumps/zhwiki-test-pages.xml").upload_from_filename(str(corpus["wiki"]))
        bucket.blob("ext/examples.jsonl").upload_from_filename(str(corpus["ext"]))
        yield bucket


GCS_SOURCES = ["--source=name=zhwiki,format=wiki,input=gs://wwm-deploy/dumps/*.xml,opencc=t2s",
               "--source=name=ext,format=jsonl,input=gs://wwm-deploy/ext/*.jsonl,opencc=none"]
WORK = "gs://wwm-deploy/wwm/bert-wwm"


def _printed_commands(text: str) -> dict:
    """{stage: argv} of the `wwm STAGE ...` lines a --print_only printed."""
    commands = {}
    for line in text.splitlines():
        if line.startswith("wwm "):
            argv = shlex.split(line)
            commands[argv[1]] = argv[2:]
    return commands


def test_dataflow_commands_and_jobs(gcs, capsys):
    result = submit_module.submit_main(["dataflow", f"--work={WORK}", "--project=my-project", f"--image={IMAGE}",
                                         "--max_num_workers=8", *GCS_SOURCES, "--near_duplicate_threshold=0.8",
                                         "--print_only"])
    out = capsys.readouterr().out
    assert "instances    " in out and "worker-hours of n2-standard-4" in out, "the plan came first"
    printed = _printed_commands(out)
    assert list(printed) == ["prepare", "segment", "run"]
    assert printed == {stage: argv[2:] for stage, argv in result["commands"].items()}
    parsers = {"prepare": prepare_parser(), "segment": segment_parser(), "run": run_parser()}
    parsed = {stage: parsers[stage].parse_known_args(argv) for stage, argv in printed.items()}
    prepare, segment, run = (parsed[stage][0] for stage in ("prepare", "segment", "run"))
    assert [(s["name"], s["format"], s["opencc"]) for s in prepare.source] == [("zhwiki", "wiki", "t2s"),
                                                                            ("ext", "jsonl", "none")]
    assert prepare.output == segment.input == f"{WORK}/prepared" and prepare.near_duplicate_threshold == 0.8
    assert run.input == [f"{WORK}/prepared/documents/*.parquet"] and run.input_format == "parquet"
    assert run.output == f"{WORK}/instances" and run.near_duplicate_threshold == 0, "cleaning is prepare's"
    # The recipe's segmenter, named for both stages; automatic shards; the recipe's two phases.
    assert (segment.segmenter, segment.ltp_model) == (run.segmenter, run.ltp_model) == ("ltp", "LTP/legacy")
    assert prepare.num_shards == run.num_shards == 0
    config = flags.config_from_args(run, parsed["run"][1], instances=True)
    assert [phase.max_seq_length for phase in config.instances.phases] == [128, 512]
    for stage, (_, beam_args) in parsed.items():
        options = PipelineOptions(beam_args)
        assert options.view_as(StandardOptions).runner == "DataflowRunner"
        cloud = options.view_as(GoogleCloudOptions)
        assert (cloud.project, cloud.region) == ("my-project", "us-central1")
        assert cloud.temp_location.startswith("gs://") and cloud.staging_location.startswith("gs://")
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", cloud.job_name) and stage in cloud.job_name
        workers = options.view_as(WorkerOptions)
        assert (workers.sdk_container_image, workers.max_num_workers) == (IMAGE, 8)
        assert options.view_as(DebugOptions).number_of_worker_harness_threads == 1
        assert options.view_as(PortableOptions).environment_type is None, "no LOOPBACK, no local workers"

    # Each stage builds its Dataflow job as a Flex Template launcher does (--template_location:
    # the job is written, not sent): prepare on the raw sources; segment and run on a prepare made
    # here on the emulator's gs:// (Dataflow's API is not reachable; nothing else is left out).
    # Without --number_of_worker_harness_threads: every entry sets one bundle per SDK process.
    # The Flex Template's launcher (deploy/flex/main.py) builds each stage's job from the template's
    # parameters (and Dataflow's own options) as well: the same job.
    def job(stage, argv):
        argv = [a for a in argv if not a.startswith("--number_of_worker_harness_threads")]
        assert wwm_cli.main([stage, *argv, f"--template_location=gs://wwm-deploy/templates/{stage}.json"]) == 0
        built = _staged_job(gcs, f"templates/{stage}.json")
        assert _flex_launch(stage, argv, location=f"gs://wwm-deploy/templates/flex-{stage}.json") == 0
        flex = _staged_job(gcs, f"templates/flex-{stage}.json")
        assert _comparable(flex) == _comparable(built), stage
        return built

    prepare_job = job("prepare", printed["prepare"])
    assert not gcs.get_blob("wwm/bert-wwm/prepared/manifest.json"), "handed over, not run"
    submit_module.submit_main(["local", f"--work={WORK}", "--stages=prepare", *GCS_SOURCES,
                                "--near_duplicate_threshold=0.8"])
    documents = sorted(f"gs://wwm-deploy/{b.name}" for b in gcs.client.list_blobs(gcs, prefix="wwm/bert-wwm/prepared/")
                       if b.name.endswith(".parquet") and "/documents/" in b.name)
    jieba = ["--segmenter=jieba"]  # LTP/legacy cannot be downloaded here
    jobs = {"prepare": prepare_job, "segment": job("segment", [*printed["segment"], *jieba]),
            "run": job("run", [*printed["run"], *jieba])}
    # What each stage reads and writes, as its pickled steps hold them.
    inputs_and_outputs = {
        "prepare": (["gs://wwm-deploy/dumps/*.xml", "gs://wwm-deploy/ext/*.jsonl"], f"{WORK}/prepared"),
        "segment": (documents, f"{WORK}/prepared/segmentation/jieba-"),
        "run": ([f"{WORK}/prepared/documents/*.parquet"], f"{WORK}/instances")}
    for stage, stage_job in jobs.items():
        [pool] = stage_job["description"]["environment"]["workerPools"]
        assert pool["workerHarnessContainerImage"] == IMAGE
        assert {image["containerImage"] for image in pool["sdkHarnessContainerImages"]} == {IMAGE}
        assert pool["numThreadsPerWorker"] == 1, "one bundle per SDK process, the flag not given"
        options = stage_job["description"]["environment"]["sdkPipelineOptions"]["options"]
        assert options["number_of_worker_harness_threads"] == 1 and options["project"] == "my-project"
        inputs, output = inputs_and_outputs[stage]
        assert documents and all(path.encode() in stage_job["pickles"] for path in inputs), stage
        assert output.encode() in stage_job["pickles"], stage
        removal = stage_job["last_steps"]
        if stage != "segment":  # the stages whose work folder is removed by the job, as its last step
            assert removal == ["Finish/RemoveWorkFolder"], removal
        _assert_no_local_path(stage_job)


def _flex_launch(stage: str, argv, *, location: str) -> int:
    """deploy/flex/main.py as Dataflow's launcher runs it: the template's parameters (a stage's own
    flags: repeatable ones joined with ';', switches as true) and Dataflow's options (the Beam
    flags), with --template_location; its exit status."""
    parser = stage_parsers()[stage]
    _, beam = parser.parse_known_args(argv)
    parameters = {}
    for token in argv:
        name, _, value = token[2:].partition("=")
        action = parser._option_string_actions.get(f"--{name}")
        if token.startswith("--") and token not in beam and action is not None:
            repeated = action.nargs is None and action.__class__.__name__ == "_AppendAction" and name in parameters
            parameters[name] = f"{parameters[name]};{value}" if repeated else (value or "true")
    launcher = ["main.py", f"--command={stage}", *(f"--{name}={value}" for name, value in parameters.items()),
                *beam, f"--template_location={location}"]
    saved = sys.argv
    sys.argv = launcher
    try:
        runpy.run_path(str(DEPLOY / "flex" / "main.py"), run_name="__main__")
    except SystemExit as exited:
        return exited.code
    finally:
        sys.argv = saved
    raise AssertionError("the Flex entry point returned without an exit status")


def _comparable(staged_job) -> dict:
    """What two launches of the same stage must share: the steps, the workers' pool and image, the
    job's options (those the launch names, not its time-stamped staging paths), the paths the steps
    hold."""
    [pool] = staged_job["description"]["environment"]["workerPools"]
    options = staged_job["description"]["environment"]["sdkPipelineOptions"]["options"]
    return {"steps": staged_job["steps"], "last": staged_job["last_steps"],
            "image": pool["workerHarnessContainerImage"], "threads": pool.get("numThreadsPerWorker"),
            "options": {k: options.get(k) for k in ("runner", "project", "region", "sdk_container_image", "job_name",
                                                    "machine_type", "max_num_workers", "experiments")},
            "gs_paths": set(re.findall(rb"gs://wwm-deploy/wwm/[\x21-\x7e]*", staged_job["pickles"]))}


def _pickled_payloads(pipeline) -> list:
    """The pickled functions of a pipeline proto (its DoFns and CombineFns), as Beam's pickler wrote
    them."""
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    functions = []
    for transform in pipeline.components.transforms.values():
        if transform.spec.urn == common_urns.primitives.PAR_DO.urn:
            functions.append(beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload).do_fn)
        elif transform.spec.urn in (common_urns.composites.COMBINE_GLOBALLY.urn,
                                    common_urns.composites.COMBINE_PER_KEY.urn):
            functions.append(beam_runner_api_pb2.CombinePayload.FromString(transform.spec.payload).combine_fn)
    return [function.payload for function in functions if "pickled" in function.urn]


def _pickle_bytes(payload: bytes) -> bytes:
    """The pickle itself, for a search of its strings: Beam's pickler stores it as the base64 of
    its bz2 compression."""
    import base64
    import bz2

    return bz2.decompress(base64.b64decode(payload))


def _staged_job(bucket, name: str) -> dict:
    """A job written with --template_location: its description, its pipeline (the proto staged at
    pipelineUrl) with every pickled step decoded, the files staged for the workers, and the steps
    nothing reads from (the pipeline's last steps)."""
    from apache_beam.portability.api import beam_runner_api_pb2

    def blob_bytes(url: str) -> bytes:
        path = url.replace("storage.googleapis.com/", "gs://", 1)
        return bucket.blob(path[len(f"gs://{bucket.name}/"):]).download_as_bytes()

    description = json.loads(bucket.blob(name).download_as_bytes())
    environment = description["environment"]
    pipeline_bytes = blob_bytes(environment["sdkPipelineOptions"]["options"]["pipelineUrl"])
    pipeline = beam_runner_api_pb2.Pipeline.FromString(pipeline_bytes)
    transforms = pipeline.components.transforms
    consumed = {pc for t in transforms.values() for pc in t.inputs.values()}
    # The leaves (no subtransforms) whose outputs nothing reads.
    last_steps = sorted(t.unique_name for t in transforms.values()
                        if not t.subtransforms and t.outputs and not set(t.outputs.values()) & consumed)
    staged = {package["name"]: blob_bytes(package["location"]) for package in environment["workerPools"][0]["packages"]}
    return {"description": description, "pipeline_bytes": pipeline_bytes, "last_steps": last_steps,
            "steps": {transform.unique_name for transform in transforms.values()},
            "pickles": b"\n".join(_pickle_bytes(payload) for payload in _pickled_payloads(pipeline)),
            "staged": staged}


def _assert_no_local_path(staged_job) -> None:
    """No path of this machine in a job: its description, its pipeline, the files staged with it;
    in its pickled steps none but the source file of a function pickled by value (a code object's
    co_filename, ending in .py: Beam's own lambdas carry their core.py), which no worker opens."""
    local = {str(ROOT), str(ROOT.parent / "shared"), sys.prefix, os.path.expanduser("~"), os.getcwd(),
             os.path.realpath(sys.executable)}
    texts = {"description": json.dumps(staged_job["description"]).encode(), "pipeline": staged_job["pipeline_bytes"],
             **staged_job["staged"]}
    assert "submission_environment_dependencies.txt" not in staged_job["staged"], "a pip freeze naming local paths"
    for where, text in texts.items():
        leaked = [path for path in local if path.encode() in text]
        assert not leaked, f"{where} holds {leaked}"
    in_pickles = {match.decode() for path in local
                  for match in re.findall(re.escape(path.encode()) + rb"[^\x00-\x20\x7f-\xff]*", staged_job["pickles"])}
    assert all(path.endswith(".py") for path in in_pickles), sorted(p for p in in_pickles if not p.endswith(".py"))


# ---------------------------------------------------------------- the Flex Template

def _flags_of(parser) -> dict:
    """{flag name: action} of a parser, training flags aside (not template parameters)."""
    skipped = {a.dest for g in parser._action_groups if g.title.startswith("training") for a in g._group_actions}
    return {option[2:]: action for option, action in parser._option_string_actions.items()
            if option.startswith("--") and action.dest not in skipped and option != "--help"}


def test_flex_metadata_is_the_stage_commands_flags():
    committed = json.loads((DEPLOY / "flex" / "metadata.json").read_text(encoding="utf-8"))
    assert committed == flex_metadata(), "run deploy/flex/make_metadata.py"
    by_name = {p["name"]: p for p in committed["parameters"]}
    parsers = {"prepare": prepare_parser(), "segment": segment_parser(), "run": run_parser()}
    flags_by_command = {command: _flags_of(parser) for command, parser in parsers.items()}
    assert set(by_name) == {"command"} | {name for table in flags_by_command.values() for name in table}
    assert [p["name"] for p in committed["parameters"] if not p["isOptional"]] == ["command"]
    for command, table in flags_by_command.items():
        for name, action in table.items():
            [pattern] = by_name[name]["regexes"]
            values = [str(v) for v in (action.choices or [])]
            if action.default not in (None, False, [], "") and action.nargs != 0:
                values.append(",".join(map(str, action.default)) if isinstance(action.default, tuple)
                              else str(action.default))
            values += ["true", "false"] if action.nargs == 0 else []
            for value in values:
                assert re.fullmatch(pattern, value), (name, value, pattern)
            assert f"--{name}" in by_name[name]["helpText"] and f"wwm {command}" in by_name[name]["helpText"]
    assert re.fullmatch(by_name["command"]["regexes"][0], "run") and not re.fullmatch(
        by_name["command"]["regexes"][0], "train")


def test_flex_parameters_become_the_commands_flags():
    launcher = ["--command=prepare",
                "--source=name=zhwiki,format=wiki,input=gs://b/zhwiki.xml.bz2,opencc=t2s;"
                "name=news,format=jsonl,preset=news2016zh,input=gs://b/news/*.json,opencc=none",
                "--near_duplicate_threshold", "0.8", "--overwrite=true", "--output=gs://b/prepared",
                "--runner=DataflowRunner", "--project=p", "--template_location=gs://b/job"]
    argv = flex_argv(launcher)
    assert argv[0] == "prepare"
    args, beam_args = prepare_parser().parse_known_args(argv[1:])
    assert [s["name"] for s in args.source] == ["zhwiki", "news"] and args.source[1]["preset"] == "news2016zh"
    assert args.overwrite and args.near_duplicate_threshold == 0.8 and args.output == "gs://b/prepared"
    assert beam_args == ["--runner=DataflowRunner", "--project=p", "--template_location=gs://b/job"]
    run_args, _ = run_parser().parse_known_args(flex_argv(["--command=run", "--max_seq_length=128,512",
                                                           "--overwrite=false", "--input=gs://b/p/*.parquet",
                                                           "--output=gs://b/o"])[1:])
    assert run_args.max_seq_length == (128, 512) and not run_args.overwrite
    with pytest.raises(UsageError, match="parameter cache_root is not a flag of wwm run"):
        flex_argv(["--command=run", "--cache_root=gs://b/c"])


def test_the_flex_entry_point_runs_a_stage(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["main.py", "--command=prepare", f"--input={corpus['wiki']}",
                                      "--input_format=wiki", f"--output={tmp_path / 'prepared'}"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(DEPLOY / "flex" / "main.py"), run_name="__main__")
    assert exited.value.code == 0
    assert json.loads((tmp_path / "prepared" / "manifest.json").read_text())["num_documents"] > 0


# ---------------------------------------------------------------- the image and the scripts

@pytest.fixture(scope="module")
def verify_lock():
    return runpy.run_path(str(DEPLOY / "verify_lock.py"))


def test_the_dockerfile_builds_from_the_lock(verify_lock):
    import dockerfile  # Docker's own (BuildKit's) Dockerfile parser

    commands = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))
    arguments = dict(c.value[0].split("=", 1) for c in commands if c.cmd == "ARG" and "=" in c.value[0])
    locked = verify_lock["locked_versions"]((ROOT / "requirements.lock").read_text())
    assert arguments["BEAM_VERSION"] == locked["apache-beam"] == version("apache-beam")
    bases = [c.value[0] for c in commands if c.cmd == "FROM"]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert bases[-1] == f"apache/beam_python{python}_sdk:${{BEAM_VERSION}}", "the SDK image of our Python and Beam"
    assert f"python{python.replace('.', '')}-template-launcher-base" in arguments["LAUNCHER_BASE"]
    copied = [c.value[:-1] for c in commands if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags)]
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    runs = [c.value[0] for c in commands if c.cmd == "RUN"]
    assert "pip install --no-cache-dir -r requirements.lock" in runs
    assert "pip install --no-cache-dir --no-deps ." in runs, "the package, without resolving anything again"
    assert any(r.startswith("python deploy/verify_lock.py requirements.lock") for r in runs)
    environment = {c.value[0]: c.value[1] for c in commands if c.cmd == "ENV"}
    workdir = [c.value[0] for c in commands if c.cmd == "WORKDIR"][-1]
    entry = environment["FLEX_TEMPLATE_PYTHON_PY_FILE"]
    assert entry.startswith(workdir + "/") and (ROOT / entry[len(workdir) + 1:]).is_file()
    assert environment["HF_HUB_OFFLINE"] == "1"
    # numba's cache, compiled in the image, keyed for any x86-64 CPU (and read so on the workers).
    order = [(c.cmd, c.value[0]) for c in commands if c.cmd in ("ENV", "RUN")]
    assert order.index(("ENV", "NUMBA_CPU_NAME")) < order.index(("RUN", "python -m wwm_core.compile_kernels"))
    assert environment["NUMBA_CPU_NAME"] == "generic" and "NUMBA_CPU_FEATURES" not in environment
    assert environment["RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT"] == "1", "boot makes no venv in /opt/apache/beam-venv"
    assert [c.value for c in commands if c.cmd == "ENTRYPOINT"] == [("/opt/apache/beam/boot",)]
    build = __import__("yaml").safe_load((DEPLOY / "cloudbuild.yaml").read_text())
    assert build["steps"][0]["args"][:3] == ["build", "-f", "deploy/Dockerfile"]


def test_kernels_compiled_for_any_x86_64_cpu_write_the_same_bytes(tmp_path):
    """The image's numba cache (NUMBA_CPU_NAME=generic: baseline x86-64, no CPU features) is the one
    every worker loads: compiled so, from an empty cache, the run writes the bytes that kernels
    compiled for this machine's CPU write."""
    from tests.test_pipeline import run_wwm, shard_bytes, write_text_corpus
    from tests.test_runners import MANY_DOCUMENTS

    corpus = str(write_text_corpus(tmp_path / "corpus.txt", MANY_DOCUMENTS))
    here = run_wwm(tmp_path, "--output_format=both", name="here", inputs=[corpus])
    subprocess.run([sys.executable, "-m", "wwm_cli", "run", f"--input={corpus}", f"--output={tmp_path / 'generic'}",
                    "--dupe_factor=3", "--num_shards=3", "--max_seq_length=128", "--segmenter=jieba",
                    "--output_format=both"], check=True, timeout=600, stdout=subprocess.DEVNULL, cwd=ROOT,
                   env={**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CACHE_DIR": str(tmp_path / "numba")})
    assert list((tmp_path / "numba").rglob("*.nbi")), "compiled into the empty cache"
    generic = json.loads((tmp_path / "generic" / "manifest.json").read_text())
    assert generic["counters"] == here["counters"] and here["num_instances"] > 0
    assert shard_bytes(tmp_path / "generic") == shard_bytes(tmp_path / "here")
    assert {p.suffix for p in (tmp_path / "here").glob("part-*")} == {".tfrecord", ".parquet"}


def test_verify_lock_finds_a_drifted_package(verify_lock):
    locked = verify_lock["locked_versions"]((ROOT / "requirements.lock").read_text())
    installed = verify_lock["installed_versions"]()
    assert verify_lock["differences"](locked, installed) == [], "this environment is the lock"
    drifted = {**installed, "numpy": "1.26.0"}
    del drifted["tokenizers"]
    assert verify_lock["differences"](locked, drifted) == [
        f"numpy: 1.26.0 installed, {locked['numpy']} locked",
        "tokenizers: not installed (it decides the output's bytes)"]


@pytest.mark.parametrize("script, environment", [
    ("dataflow.sh", {"PROJECT": "my-project", "BUCKET": "my-bucket", "IMAGE": IMAGE,
                     "WIKI": "gs://my-bucket/dumps/zhwiki-*-multistream.xml.bz2", "EXT": "gs://my-bucket/ext/*.json"}),
    ("spark.sh", {"SPARK_MASTER": "spark://spark-master:7077", "IMAGE": IMAGE, "WORK": "gs://my-bucket/wwm",
                  "WIKI": "gs://my-bucket/dumps/zhwiki.xml.bz2", "PARALLELISM": "8"}),
    ("flink.sh", {"JOB_ENDPOINT": "localhost:8099", "ENVIRONMENT": "PROCESS", "WORK": "gs://my-bucket/wwm",
                  "ENVIRONMENT_CONFIG": '{"command": "/opt/apache/beam/boot"}',
                  "WIKI": "gs://my-bucket/zhwiki.xml.bz2"}),
    ("dataproc.sh", {"PROJECT": "my-project", "BUCKET": "my-bucket", "CLUSTER": "wwm", "IMAGE": IMAGE,
                     "WIKI": "gs://my-bucket/dumps/zhwiki.xml.bz2"}),
])
def test_the_deploy_scripts_print_commands_that_parse(script, environment):
    done = subprocess.run(["bash", str(DEPLOY / script), "--no_plan"], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **environment, "DRY": "1", "PYTHON": sys.executable}, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = _printed_commands(done.stdout)
    assert list(printed) == ["prepare", "segment", "run"]
    parsers = {"prepare": prepare_parser(), "segment": segment_parser(), "run": run_parser()}
    for stage, argv in printed.items():
        _, beam_args = parsers[stage].parse_known_args(argv)
        options = PipelineOptions(beam_args)
        portable = options.view_as(PortableOptions)
        assert portable.environment_type != "LOOPBACK"
        if script != "dataflow.sh":
            assert portable.environment_type in ("DOCKER", "PROCESS")
            assert portable.environment_type == "PROCESS" or portable.environment_config == IMAGE
        if script in ("spark.sh", "flink.sh") and "JOB_ENDPOINT" not in environment:
            # The job server Beam starts stages the job's files where the cluster reads them.
            assert options.view_as(JobServerOptions).artifacts_dir == f"{environment['WORK']}/artifacts"
        if portable.environment_type == "PROCESS":
            process = ProcessEnvironment.from_options(portable)  # as Beam reads it
            assert process.command == "/opt/apache/beam/boot"
            assert process.env == {"RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": "1"}, "boot runs in the node's Python"
    if script == "dataproc.sh":
        submits = [shlex.split(line) for line in done.stdout.splitlines() if line.startswith("gcloud dataproc")]
        assert [argv[-1] for argv in submits] == [f"--jars=jars/{stage}.jar" for stage in printed]
        assert all("--class=org.apache.beam.runners.spark.SparkPipelineRunner" in argv for argv in submits)
        for stage, argv in printed.items():
            _, beam_args = parsers[stage].parse_known_args(argv)
            assert PipelineOptions(beam_args).view_as(PortableOptions).output_executable_path == f"jars/{stage}.jar"


@pytest.mark.parametrize("accelerator, hosts_word", [("v3-32", "pod slice"), ("v4-16", "pod slice"),
                                                     ("v5litepod-16", "pod slice"), ("v7-8", "expected v2-8")])
def test_tpu_sh_refuses_a_pod_slice_before_it_creates_anything(accelerator, hosts_word, tmp_path):
    """Before any gcloud call (a PATH without gcloud: the refusal comes first), in one line."""
    done = subprocess.run(["bash", str(DEPLOY / "tpu.sh")], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PROJECT": "my-project", "ACCELERATOR": accelerator,
                               "MANIFEST": "gs://b/out/manifest.json", "MODEL_DIR": "gs://b/model"})
    assert done.returncode == 2 and done.stdout == "", done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"tpu.sh: ACCELERATOR={accelerator}") and hosts_word in line


# ---------------------------------------------------------------- wwm plan

def test_plan_predicts_the_real_runs_instances(local_recipe, corpus, capsys):
    """Tolerance: 10% at 128 with plan's default document length; 10% at 512 given the corpus's
    mean document length (here from the real run's counters), since a length-512 instance holds a
    short document's remainder: see wwm_cli/plan.py, RATES."""
    work, _ = local_recipe
    real = json.loads((work / "instances" / "manifest.json").read_text())
    plan = wwm_cli.main(["plan", *_sources(**corpus), *_recipe_flags(), "--json"])
    assert plan == 0
    estimate = json.loads(capsys.readouterr().out)
    assert abs(estimate["instances"]["128"] / real["num_instances"] - 1) < 0.10, (estimate, real["num_instances"])
    # Bucket counts come from estimated text: each input file's last bucket is the uncertainty.
    assert abs(estimate["shards"]["run_on_prepared_parquet"] - len(real["files"])) <= estimate["input"]["files"]

    prepared = json.loads((work / "prepared" / "manifest.json").read_text())
    mean = real["counters"]["characters"] // prepared["num_documents"]
    # The recipe's dupe factor: on 24 documents one pass's count at 512 varies by ~15% with the draws.
    five_twelve = plan_module.plan_main([*_sources(**corpus), "--segmenter=jieba", "--max_seq_length=512",
                                         f"--mean_document_chars={mean}"])
    capsys.readouterr()
    made = wwm_cli.main(["run", f"--input={work / 'prepared' / 'documents' / '*.parquet'}", "--input_format=parquet",
                         "--segmenter=jieba", "--max_seq_length=512", f"--output={work / 'instances512'}"])
    assert made == 0
    real512 = json.loads((work / "instances512" / "manifest.json").read_text())["num_instances"]
    assert abs(five_twelve["instances"]["512"] / real512 - 1) < 0.10, (five_twelve["instances"], real512)


def test_plan_reads_sizes_only(tmp_path, capsys):
    # Sparse files: 3 GB of dump and 10 GB of JSON lines that hold no text at all. The plan comes
    # from their sizes (reading them would find nothing to clean).
    dump, ext = tmp_path / "zhwiki-multistream.xml.bz2", tmp_path / "news.json"
    for path, size in ((dump, 3 * 10**9), (ext, 10 * 10**9)):
        with path.open("wb") as handle:
            handle.truncate(size)
    plan = plan_module.plan_main([f"--source=name=zhwiki,format=wiki,input={dump},opencc=t2s",
                                   f"--source=name=ext,format=jsonl,preset=news2016zh,input={ext}",
                                   "--machine_type=n2-standard-8", "--max_num_workers=50"])
    assert plan["input"]["bytes"] == 13 * 10**9
    shards = plan["shards"]["run_on_prepared_parquet"]
    bucket_mb = round(plan["input"]["clean_text_bytes"] / shards / 1e6, 1)
    assert shards > 100 and plan["memory"]["bucket_text_mb"] == bucket_mb
    assert set(plan["instances"]) == {"128", "512"} and plan["instances"]["128"] > plan["instances"]["512"] > 0
    assert plan["dataflow"]["vcpus"] == 8 and plan["memory"]["fits"]
    assert plan["dataflow"]["worker_hours"] == pytest.approx(sum(plan["cpu_hours"].values()) / 8, rel=0.01)
    assert "worker-hours of n2-standard-8" in capsys.readouterr().out


def test_plan_charges_near_dedup_and_the_dedup_groups_memory(tmp_path):
    """Near dedup costs CPU at its measured rate (MB of clean text per CPU-second) and its band
    groups hold a share of the whole corpus: on 13 GB of text both show in the plan, worked out
    here by hand from the rates table."""
    corpus = tmp_path / "news.txt"
    with corpus.open("wb") as handle:
        handle.truncate(13 * 10**9)
    flags = [f"--input={corpus}", "--mean_document_chars=700"]
    plain = plan_module.plan_main(flags + ["--json"])
    near = plan_module.plan_main(flags + ["--near_duplicate_threshold=0.8", "--json"])
    rates = plan_module.RATES
    text = plain["input"]["clean_text_bytes"]
    assert near["cpu_hours"]["prepare"] - plain["cpu_hours"]["prepare"] == pytest.approx(
        text / 1e6 / rates["near_dedup_mb_per_cpu_s"] / 3600, rel=1e-3)
    assert near["cpu_hours"]["run"] == plain["cpu_hours"]["run"]
    documents = text / rates["bytes_per_char"] / 700
    for plan, kind in ((plain, "ids"), (near, "bands")):
        group_mb = 408 + documents * rates["dedup_group_bytes_per_document"][kind] / 1e6
        assert plan["memory"]["dedup_group_process_mb"] == pytest.approx(group_mb, abs=1)
        assert plan["memory"]["per_process_mb"] == max(plan["memory"]["bucket_process_mb"], round(group_mb))
    assert near["memory"]["per_process_mb"] == near["memory"]["dedup_group_process_mb"] > plain["memory"]["bucket_process_mb"]
    # A lower threshold takes more bands a document (32 at 0.5): a band group holds that many more keys.
    low = plan_module.plan_main(flags + ["--near_duplicate_threshold=0.5", "--json"])
    assert low["memory"]["dedup_group_process_mb"] == pytest.approx(
        408 + documents * rates["dedup_group_bytes_per_document"]["bands"] * 32 / 8 / 1e6, abs=1)
