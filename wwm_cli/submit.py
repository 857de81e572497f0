"""``wwm submit TARGET``: the whole recipe as one command on a cluster: ``wwm prepare`` (every
source with its own format and OpenCC setting), ``wwm segment`` (the recipe's segmenter, once),
then ``wwm run`` on the prepared Parquet (every phase of the recipe in one pass, shards sized from
the input), each stage a job of its own on the target, one after the other.

    WORK/prepared/             wwm prepare's documents (Parquet) and manifest
    WORK/prepared/segmentation wwm segment's word boundaries, which wwm run reuses
    WORK/instances/            wwm run's shards (seq128/, seq512/ for a two-phase recipe) and manifests

It prints each stage's command before running it, and with --print_only prints them (and the
plan, when the inputs can be listed) and runs nothing. The commands are the ordinary ``wwm``
commands: any of them can be rerun by hand. A stage whose output already holds a finished run of
the same flags is skipped, so after a failure the same ``wwm submit`` resumes where it stopped.

Flags: this command's own (below); every ``wwm prepare`` / ``wwm segment`` / ``wwm run`` flag,
routed to the stages whose parser knows it (input and cleaning flags to prepare only); anything
else is a Beam option given to every stage.
"""
import argparse
import datetime
import json
import logging
import re
import shlex
import subprocess

from wwm_cli import flags
from wwm_core.errors import UsageError
from wwm_core.recipes import DEFAULT_RECIPE, RECIPES

log = logging.getLogger("wwm")
TARGETS = ("dataflow", "spark", "flink", "dataproc", "portable", "local")
STAGES = ("prepare", "segment", "run")
ENVIRONMENTS = ("DOCKER", "PROCESS", "EXTERNAL")
PREPARED, INSTANCES = "prepared", "instances"
ARTIFACTS = "artifacts"  # WORK/artifacts: the job's staged files, for Spark and Flink job servers Beam starts
# Input and cleaning flags decide what `wwm prepare` writes; `wwm run` reads that Parquet, so they go
# to prepare only. The document length limit is also the instance maker's, so it goes to both.
ALSO_FOR_RUN = {"max_document_chars"}
# Set by this command for each stage: the stages' inputs and outputs are WORK's.
SET_BY_SUBMIT = {"prepare": {"output"}, "segment": {"input", "cache_root"}, "run": {"output", "segmentation_cache"}}
SPARK_PIPELINE_RUNNER = "org.apache.beam.runners.spark.SparkPipelineRunner"


def submit_parser() -> argparse.ArgumentParser:
    parser = flags.parser(
        "wwm submit", __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[-1] + "\nExamples: deploy/dataflow.sh, "
        "deploy/spark.sh, deploy/flink.sh, deploy/dataproc.sh; what each target needs: deploy/README.md.")
    add = parser.add_argument
    add("target", choices=TARGETS, help="dataflow: Google Cloud Dataflow, workers in --image; spark / flink: Beam's "
        "portable runner and its job server, workers in --image (DOCKER) or PROCESS; dataproc: an executable jar per "
        "stage, submitted with gcloud dataproc jobs submit spark; portable: a job server already running "
        "(--job_endpoint); local: this machine")
    add("--work", required=True, help="where everything goes (gs://BUCKET/PATH for dataflow and dataproc): "
        "WORK/prepared, WORK/instances, and for dataflow WORK/tmp and WORK/staging")
    add("--print_only", action="store_true", help="print the plan and the commands, run nothing")
    add("--image", help="the container image built from deploy/Dockerfile (dataflow: --sdk_container_image; spark, "
        "flink, dataproc: the DOCKER environment's image)")
    add("--no_plan", action="store_true", help="do not list the inputs for wwm plan's estimate first")
    add("--stages", default=",".join(STAGES), help="which stages to run, in order (e.g. run to redo only that one)")
    dataflow = parser.add_argument_group("dataflow")
    dataflow.add_argument("--project", help="Google Cloud project")
    dataflow.add_argument("--region", default="us-central1", help="the Dataflow region the jobs run in")
    dataflow.add_argument("--machine_type", default="n2-standard-4", help="worker machine type (wwm plan's table)")
    dataflow.add_argument("--max_num_workers", type=int, default=32, help="the most workers autoscaling may start")
    dataflow.add_argument("--job_prefix", default="wwm", help="job names: PREFIX-STAGE-UTCTIME")
    portable = parser.add_argument_group("spark, flink, dataproc, portable")
    portable.add_argument("--environment_type", default="DOCKER", type=str.upper,
                          help="where the Python workers run: DOCKER (--image, on every worker node), PROCESS (a "
                          "command on every node whose `python` has this package: --environment_config "
                          "'{\"command\": \"/opt/apache/beam/boot\"}'), EXTERNAL (a worker pool at "
                          "--environment_config HOST:PORT). LOOPBACK is refused: it runs all Python work in this "
                          "process")
    portable.add_argument("--environment_config", help="PROCESS: the JSON command; EXTERNAL: the pool's address; "
                          "DOCKER: default --image")
    portable.add_argument("--sdk_worker_parallelism", type=int, default=0,
                          help="Python worker processes per node (the CPU work is Python: one per core); 0: the "
                          "runner's choice")
    portable.add_argument("--job_endpoint", help="a job server already running (HOST:PORT; `embed` runs Beam's "
                          "own in this process); spark and flink then use it instead of starting one")
    portable.add_argument("--spark_master_url", help="spark: spark://HOST:7077 of a standalone cluster")
    portable.add_argument("--flink_master", help="flink: HOST:8081 of the JobManager's REST endpoint")
    portable.add_argument("--cluster", help="dataproc: the cluster (created with --optional-components=DOCKER)")
    portable.add_argument("--jar_folder", default="jars", help="dataproc: local folder for the stages' jars")
    return parser


# ------------------------------------------------------------------ routing the stages' flags

def stage_parsers() -> dict:
    from wwm_cli.data import prepare_parser, run_parser
    from wwm_cli.segment import segment_parser

    return {"prepare": prepare_parser(), "segment": segment_parser(), "run": run_parser()}


def _actions_by_option(parser) -> dict:
    return {option: action for _, action in parser.flags for option in action.option_strings}


def _input_and_cleaning_dests(parser) -> set:
    return {action.dest for title, action in parser.flags if title == "input and cleaning"}


def route_flags(tokens, parsers) -> dict:
    """``tokens`` (flags this command does not define) -> the tokens for each stage and for Beam:
    a flag goes to every stage whose parser knows it, input and cleaning flags to prepare only;
    a flag no stage knows, with the values after it, is a Beam option for every stage."""
    tables = {stage: _actions_by_option(parser) for stage, parser in parsers.items()}
    cleaning = _input_and_cleaning_dests(parsers["prepare"]) - ALSO_FOR_RUN
    routed = {stage: [] for stage in (*parsers, "beam")}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        option = token.split("=", 1)[0]
        known = {stage: table[option] for stage, table in tables.items() if option in table}
        if not token.startswith("--") or not known:
            routed["beam"].append(token)
            index += 1
            continue
        action = next(iter(known.values()))
        takes_value = action.nargs != 0 and "=" not in token
        group = [token] + ([tokens[index + 1]] if takes_value and index + 1 < len(tokens) else [])
        index += len(group)
        if "prepare" in known and known["prepare"].dest in cleaning:
            known = {"prepare": known["prepare"]}  # the corpus and its cleaning: prepare's alone
        for stage, stage_action in known.items():
            if stage_action.dest in SET_BY_SUBMIT.get(stage, ()):
                raise UsageError(f"wwm submit sets {option} of wwm {stage} itself (from --work)")
            routed[stage] += group
    return routed


# ------------------------------------------------------------------ the stages' commands

def check_environment(args) -> None:
    if args.target in ("dataflow", "dataproc"):
        missing = [name for name in ("project", "image") if args.target == "dataflow" and not getattr(args, name)]
        missing += ["cluster"] if args.target == "dataproc" and not args.cluster else []
        if missing:
            raise UsageError(f"wwm submit {args.target} needs " + ", ".join(f"--{name}" for name in missing))
        if not args.work.startswith("gs://"):
            raise UsageError(f"--work must be gs://... for {args.target}: every worker reads and writes there")
    if args.environment_type == "LOOPBACK":
        raise UsageError("--environment_type LOOPBACK runs all Python work in the submitting process: nothing is "
                         "distributed (Beam: not for production); use DOCKER, PROCESS or EXTERNAL")
    if args.environment_type not in ENVIRONMENTS:
        raise UsageError(f"--environment_type must be one of {', '.join(ENVIRONMENTS)}")
    if args.target in ("spark", "flink", "dataproc", "portable"):
        if args.environment_type == "DOCKER" and not (args.image or args.environment_config):
            raise UsageError("--environment_type DOCKER needs --image (built from deploy/Dockerfile)")
        if args.environment_type in ("PROCESS", "EXTERNAL") and not args.environment_config:
            raise UsageError(f"--environment_type {args.environment_type} needs --environment_config")
    if args.target == "spark" and not (args.spark_master_url or args.job_endpoint):
        raise UsageError("wwm submit spark needs --spark_master_url spark://HOST:7077 (or --job_endpoint of a Spark "
                         "job server)")
    if args.target == "flink" and not (args.flink_master or args.job_endpoint):
        raise UsageError("wwm submit flink needs --flink_master HOST:8081 (or --job_endpoint of a Flink job server)")
    if args.target == "portable" and not args.job_endpoint:
        raise UsageError("wwm submit portable needs --job_endpoint HOST:PORT")


def job_name(prefix: str, stage: str, stamp: str) -> str:
    """A Dataflow job name: lower-case letters, digits and hyphens, starting with a letter."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{stage}-{stamp}".lower()).strip("-")
    return name if name[:1].isalpha() else f"wwm-{name}"


def beam_flags(args, stage: str, *, stamp: str) -> list:
    """The runner's options for one stage."""
    work = args.work.rstrip("/")
    if args.target == "dataflow":
        return ["--runner=DataflowRunner", f"--project={args.project}", f"--region={args.region}",
                f"--temp_location={work}/tmp", f"--staging_location={work}/staging",
                f"--sdk_container_image={args.image}", f"--machine_type={args.machine_type}",
                f"--max_num_workers={args.max_num_workers}", f"--job_name={job_name(args.job_prefix, stage, stamp)}",
                # One bundle at a time per Python process (one process per vCPU): a process holds
                # one bucket of documents, which is what wwm plan's memory per worker assumes.
                "--number_of_worker_harness_threads=1"]
    if args.target == "local":
        return []
    environment = [f"--environment_type={args.environment_type}",
                   f"--environment_config={environment_config(args)}",
                   f"--sdk_worker_parallelism={args.sdk_worker_parallelism}"]
    if args.job_endpoint:
        return ["--runner=PortableRunner", f"--job_endpoint={args.job_endpoint}", *environment]
    # The job server Beam starts here stages the job's files where the cluster's workers read them.
    artifacts = f"--artifacts_dir={work}/{ARTIFACTS}"
    if args.target == "spark":
        return ["--runner=SparkRunner", f"--spark_master_url={args.spark_master_url}", artifacts, *environment]
    if args.target == "flink":
        return ["--runner=FlinkRunner", f"--flink_master={args.flink_master}", artifacts, *environment]
    if args.target == "dataproc":
        return ["--runner=SparkRunner", f"--output_executable_path={args.jar_folder.rstrip('/')}/{stage}.jar",
                *environment]
    raise AssertionError(args.target)


def environment_config(args) -> str:
    """--environment_config of the portable targets. PROCESS: the JSON command, with
    RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1 in its environment, so that Beam's boot, if that is the
    command, runs the worker in the node's Python instead of creating a virtual environment under
    /opt/apache/beam-venv, which a non-root user cannot write (deploy/process_worker.sh needs none)."""
    if args.environment_type != "PROCESS":
        return args.environment_config or args.image
    try:
        config = json.loads(args.environment_config)
    except ValueError as error:
        raise UsageError(f"--environment_config for PROCESS must be JSON such as '{{\"command\": "
                         f"\"/path/to/wwm-data/deploy/process_worker.sh\"}}': {error}") from error
    if not isinstance(config, dict) or not config.get("command"):
        raise UsageError("--environment_config for PROCESS must name the command: '{\"command\": "
                         "\"/path/to/wwm-data/deploy/process_worker.sh\"}'")
    config["env"] = {"RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": "1", **config.get("env", {})}
    return json.dumps(config, separators=(",", ":"))


def recipe_segmenter(routed) -> tuple:
    """(segmenter, flags to add to segment and run): the one given, else the recipe's, named
    explicitly so that segment and run use the same one and run falls back to nothing."""
    given = flags.parser("", "")
    flags.add_segmenter_flags(given)
    given.add_argument("--recipe", default=DEFAULT_RECIPE)
    known, _ = given.parse_known_args(routed["run"])
    recipe = RECIPES[known.recipe]
    segmenter = known.segmenter or recipe.segmenter
    extra = [] if known.segmenter else [f"--segmenter={segmenter}"]
    if segmenter == "ltp" and not known.ltp_model:
        extra.append(f"--ltp_model={recipe.ltp_model}")
    return segmenter, extra


def wanted_stages(args) -> list:
    wanted = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    unknown = set(wanted) - set(STAGES)
    if unknown:
        raise UsageError(f"--stages: {', '.join(sorted(unknown))} is not one of {', '.join(STAGES)}")
    return wanted


def stage_commands(args, routed, *, stamp: str) -> dict:
    """{stage: argv of `wwm STAGE ...`} for the stages to run, in order."""
    work = args.work.rstrip("/")
    prepared, instances = f"{work}/{PREPARED}", f"{work}/{INSTANCES}"
    segmenter, segmenter_flags = recipe_segmenter(routed)
    commands = {
        "prepare": ["prepare", *routed["prepare"], f"--output={prepared}"],
        "segment": ["segment", f"--input={prepared}", *routed["segment"], *segmenter_flags],
        "run": ["run", "--input_format=parquet", f"--input={prepared}/documents/*.parquet", *routed["run"],
                *segmenter_flags, f"--output={instances}"],
    }
    wanted = wanted_stages(args)
    if segmenter == "char":
        wanted = [stage for stage in wanted if stage != "segment"]  # no boundaries to cache
    return {stage: [*commands[stage], *routed["beam"], *beam_flags(args, stage, stamp=stamp)]
            for stage in STAGES if stage in wanted}


def dataproc_command(args, stage: str) -> list:
    return ["gcloud", "dataproc", "jobs", "submit", "spark", f"--cluster={args.cluster}", f"--region={args.region}",
            *([f"--project={args.project}"] if args.project else []), f"--class={SPARK_PIPELINE_RUNNER}",
            f"--jars={args.jar_folder.rstrip('/')}/{stage}.jar"]


# ------------------------------------------------------------------ running them

def finished_with_same_flags(stage: str, argv, parsers) -> bool:
    """True when the stage's output holds a finished run (its manifest) of the same stage flags
    (Beam options, job names and --overwrite aside)."""
    from pipelines.io_utils import exists, join, read_bytes

    if stage == "segment":
        return False  # wwm segment itself says "nothing to do" when its cache is complete
    parser = parsers[stage]
    own, _ = parser.parse_known_args(argv[1:])
    if own.overwrite:
        return False
    manifest_path = join(own.output, "manifest.json")
    if not exists(manifest_path):
        return False
    recorded = json.loads(read_bytes(manifest_path)).get("command") or []
    if list(recorded[:2]) != ["wwm", stage]:
        return False
    before, _ = parser.parse_known_args(list(recorded[2:]))
    ignore = {"overwrite"}
    return ({k: v for k, v in vars(before).items() if k not in ignore}
            == {k: v for k, v in vars(own).items() if k not in ignore})


def finished_segmentations(work: str) -> dict:
    """{manifest path: finished_at} of the segmentation caches under WORK/prepared."""
    from apache_beam.io.filesystems import FileSystems

    from pipelines.io_utils import read_bytes
    from pipelines.word_cache import SEGMENTATION_FOLDER, SEGMENTATION_MANIFEST

    pattern = f"{work.rstrip('/')}/{PREPARED}/{SEGMENTATION_FOLDER}/*/{SEGMENTATION_MANIFEST}"
    return {m.path: json.loads(read_bytes(m.path)).get("finished_at")
            for m in FileSystems.match([pattern])[0].metadata_list}


def plan_for(routed, args) -> str:
    """wwm plan of the raw inputs, or why there is none (inputs that cannot be listed here)."""
    from wwm_cli.plan import MACHINE_TYPES, format_plan, plan_from_args, plan_parser

    if args.machine_type not in MACHINE_TYPES:
        return f"(no plan: --machine_type {args.machine_type} is not in wwm plan's table)"
    argv = [*routed["prepare"], *routed["run"], f"--machine_type={args.machine_type}",
            f"--max_num_workers={args.max_num_workers}"]
    try:
        plan_args, beam = plan_parser().parse_known_args(argv)
        return format_plan(plan_from_args(plan_args, beam))
    except Exception as error:  # noqa: BLE001 - gs:// without credentials here, a pattern that matches nothing
        return f"(no plan: the inputs cannot be listed here: {str(error).splitlines()[0][:300]})"


def submit_main(argv) -> dict:
    args, rest = submit_parser().parse_known_args(argv)
    check_environment(args)
    in_image = args.target == "dataflow" or (args.target != "local" and args.environment_type == "DOCKER")
    if in_image and not args.print_only:
        from wwm_cli.launch import check_image_versions

        check_image_versions()  # before anything is listed, planned or submitted (each stage checks again)
    parsers = stage_parsers()
    routed = route_flags(rest, parsers)
    if "prepare" in wanted_stages(args) and \
            not any(token.split("=", 1)[0] in ("--input", "--source") for token in routed["prepare"]):
        raise UsageError("wwm submit needs the corpus: --source name=N,format=wiki|jsonl|text,input=GLOB[,opencc=C] "
                         "(repeatable) or --input")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    commands = stage_commands(args, routed, stamp=stamp)
    if not args.no_plan:
        print("# plan (wwm plan)")
        print("\n".join(f"#   {line}" for line in plan_for(routed, args).splitlines()))
    result = {"commands": {}, "skipped": [], "ran": []}
    for stage, command in commands.items():
        shown = shlex.join(["wwm", *command])
        result["commands"][stage] = ["wwm", *command]
        print(shown)
        if args.target == "dataproc":
            result["commands"][f"{stage}_dataproc"] = dataproc_command(args, stage)
            print(shlex.join(dataproc_command(args, stage)))
    if args.print_only:
        return result
    from wwm_cli import main as wwm_main

    for stage, command in commands.items():
        if result["ran"] and "--overwrite" not in command:
            # An earlier stage was (re)made: what this one made from it before is stale.
            command = [*command, "--overwrite"]
        elif finished_with_same_flags(stage, command, parsers):
            print(f"# {stage}: already finished with these flags in its output; skipped")
            result["skipped"].append(stage)
            continue
        print(f"# {stage}: {shlex.join(['wwm', *command])}", flush=True)
        segmentations = finished_segmentations(args.work) if stage == "segment" else None
        code = wwm_main(command)
        if code:
            raise UsageError(f"wwm {stage} failed (exit {code}), as it says above; the same wwm submit run again "
                             "skips the stages that finished with the same flags")
        if args.target == "dataproc":
            print(f"# {stage}: submitting the jar to Dataproc", flush=True)
            subprocess.run(dataproc_command(args, stage), check=True)
        if stage == "segment" and args.target != "dataproc" and finished_segmentations(args.work) == segmentations:
            result["skipped"].append(stage)  # its cache was complete: wwm segment said so and did nothing
            continue
        result["ran"].append(stage)
    return result


# ------------------------------------------------------------------ the Dataflow Flex Template

FLEX_COMMANDS = STAGES  # one stage per launch: a Flex Template's launcher must not wait for the job
FLEX_SEPARATOR = ";"  # repeatable flags (--source, --input) take several values in one parameter
# Not template parameters: training needs TensorFlow and an accelerator, not a Dataflow launcher.
FLEX_EXCLUDED_GROUPS = ("training on the output (--then_train)",)
_BOOLEAN_WORDS = "true|false|True|False|yes|no|1|0"


def _flex_actions(parsers) -> dict:
    """{parameter name: {command: argparse action}} for every flag of the stage commands."""
    actions = {}
    for command, parser in parsers.items():
        for title, action in parser.flags:
            if title not in FLEX_EXCLUDED_GROUPS and action.option_strings and action.dest != "help":
                actions.setdefault(action.option_strings[0][2:], {})[command] = action
    return actions


def _is_switch(action) -> bool:
    return action.nargs == 0  # store_true: given as true / false


def _regex(action) -> str:
    """What the parameter's value must look like, from the argparse action."""
    if _is_switch(action):
        return f"^({_BOOLEAN_WORDS})$"
    if action.choices:
        return "^(" + "|".join(re.escape(str(choice)) for choice in action.choices) + ")$"
    if action.type is int:
        return r"^-?[0-9]+$"
    if action.type in (float, flags.finite_float):
        return r"^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$"
    if action.type is flags.boolean:
        return f"^({_BOOLEAN_WORDS}|on|off)$"
    if action.type is flags.int_list:
        return r"^[0-9]+(,[0-9]+)*$"
    return r"^[^\n\r]+$"


def _help_text(action) -> str:
    text = (action.help or "").replace("%(default)s", str(action.default))
    if action.default not in (None, False, [], "") and not _is_switch(action):
        text += f" (default {action.default})"
    return text.strip()


def flex_metadata(parsers=None) -> dict:
    """deploy/flex/metadata.json: the parameter `command` (prepare | segment | run) and every flag of
    those commands, with its help, the commands it belongs to and a regex from its type."""
    parsers = parsers or stage_parsers()
    parameters = [{"name": "command", "label": "wwm command", "isOptional": False,
                   "helpText": "Which stage this launch runs: prepare (clean the corpus into Parquet), segment (cache "
                   "word boundaries of a prepare output), run (make the instances). One stage per launch; run them "
                   "in this order, each after the previous job finished (deploy/flex/run_recipe.sh).",
                   "regexes": ["^(" + "|".join(FLEX_COMMANDS) + ")$"]}]
    for name, by_command in sorted(_flex_actions(parsers).items()):
        commands = [command for command in FLEX_COMMANDS if command in by_command]
        texts = {command: _help_text(by_command[command]) for command in commands}
        if len(set(texts.values())) == 1:
            helps = [texts[commands[0]]]
        else:
            helps = [f"wwm {command}: {text}" for command, text in texts.items()]
        action = by_command[commands[0]]
        repeatable = action.repeatable
        help_text = " | ".join(helps) + f" (flag --{name} of " + ", ".join(f"wwm {c}" for c in commands)
        help_text += f"; several values separated by '{FLEX_SEPARATOR}'" if repeatable else ""
        help_text += "; true or false" if _is_switch(action) else ""
        help_text += ")"
        parameters.append({"name": name, "label": f"--{name}", "helpText": help_text, "isOptional": True,
                           "regexes": [_regex(action)]})
    return {"name": "wwm-data: whole-word-masked BERT pretraining data",
            "description": "One stage of the wwm-data recipe (wwm prepare, wwm segment or wwm run) on Dataflow, in "
            "the image built from deploy/Dockerfile. Pass sdk_container_image=<the same image> so the workers run "
            "the launcher's versions.",
            "parameters": parameters}


def flex_argv(argv, parsers=None) -> list:
    """The launcher's arguments (``--command=run --input=a;b --overwrite=true`` plus Dataflow's own
    options) -> ``wwm`` argv: the command first, repeatable values split, switches as flags, any
    parameter the chosen command does not have refused in one line, Dataflow's options kept."""
    parsers = parsers or stage_parsers()
    actions = _flex_actions(parsers)
    command, rest, index = None, [], 0
    tokens = list(argv)
    while index < len(tokens):
        token = tokens[index]
        name, equals, value = token[2:].partition("=") if token.startswith("--") else ("", "", "")
        if name and not equals and name in (*actions, "command") and index + 1 < len(tokens):
            value, index = tokens[index + 1], index + 1
        index += 1
        if name == "command":
            command = value
        elif name in actions:
            rest.append((name, value))
        else:
            rest.append((None, token))
    if command not in FLEX_COMMANDS:
        raise UsageError(f"the template parameter command must be one of {', '.join(FLEX_COMMANDS)}, not {command!r}")
    result = [command]
    for name, value in rest:
        if name is None:
            result.append(value)
            continue
        action = actions[name].get(command)
        if action is None:
            raise UsageError(f"parameter {name} is not a flag of wwm {command} (it belongs to wwm "
                             f"{', '.join(actions[name])})")
        if _is_switch(action):
            if flags.boolean(value):
                result.append(f"--{name}")
        elif action.repeatable:
            result += [f"--{name}={part.strip()}" for part in value.split(FLEX_SEPARATOR) if part.strip()]
        else:
            result.append(f"--{name}={value}")
    return result
