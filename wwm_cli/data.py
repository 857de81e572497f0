"""``wwm run`` (corpus -> whole-word-masked instances) and ``wwm prepare`` (corpus -> clean
documents): the flags become the configuration tree, everything is checked before any work
starts, then the Beam pipeline runs and the manifest it wrote last is summarized.

Anything these commands do not know is handed to Beam's PipelineOptions (``--runner``,
``--project``, ``--direct_num_workers``, ...).
"""
import logging

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import progress
from pipelines.common import RunInfo, accounting
from pipelines.generate_pipeline import build_pipeline
from pipelines.inputs import described_inputs, input_bytes, input_files, prepared_link
from pipelines.io_utils import join, read_bytes
from pipelines.output import claim_output
from pipelines.prepare_pipeline import build_prepare_pipeline
from pipelines.segmenters import checked_segmenter
from pipelines.vocabulary import load_similar_words, load_vocab
from pipelines.word_cache import word_cache_folders_for
from wwm_cli import flags
from wwm_cli.launch import launch
from wwm_core.errors import UsageError
from wwm_core.manifest import MANIFEST, ManifestError, parse_manifest
from wwm_core.sizing import check_memory, with_bucket_bytes

log = logging.getLogger("wwm")


# ---------------------------------------------------------------- wwm run

def run_parser(*, output_required: bool = True):
    parser = flags.parser("wwm run", "Chinese text -> whole-word-masked BERT pretraining data (TFRecords in Google's "
                          "schema and/or Parquet), made as a recipe says (wwm recipe list). Unknown flags go to "
                          "Apache Beam (e.g. --runner, --direct_num_workers, --project).")
    flags.add_input_flags(parser)
    flags.add_segmenter_flags(parser)
    flags.group(parser, "segmentation").add_argument(
        "--segmentation_cache", default="auto",
        help="folder of `wwm segment` caches to reuse word boundaries from; auto: PREPARED/segmentation when --input "
        "is PREPARED/documents/*.parquet; none: always segment")
    flags.add_instance_flags(parser)
    flags.add_output_flags(parser, instances=True, output_required=output_required)
    flags.group(parser, "output").add_argument(
        "--report", action="store_true", help="when the run has finished, write OUTPUT/report/report.html and its "
        "plots (what `wwm report OUTPUT` writes; needs matplotlib: pip install 'wwm-data[report]')")
    flags.add_runner_flags(parser)
    from wwm_trainer.cli import add_then_train_flags  # the trainer's flags, without importing TensorFlow

    add_then_train_flags(parser)
    return parser


def run(argv) -> dict:
    args, beam_args = run_parser().parse_known_args(argv)
    config = flags.config_from_args(args, beam_args, instances=True, runner=launch(beam_args, progress=args.progress))
    from wwm_trainer.cli import check_then_train, then_train

    # A training mistake (or no TensorFlow) fails now, not after the data is made; likewise no matplotlib.
    training = check_then_train(args, output_format=config.output.output_format)
    if args.report:
        from wwm_cli.report import check_report_dependencies

        check_report_dependencies()
    config, choice = checked_segmenter(config, recipe_default=args.segmenter is None)
    inputs, unreadable = input_files(config)
    manifest = make_instances(config, choice=choice, command=("wwm", "run", *argv), inputs=inputs,
                              unreadable=unreadable)
    if manifest is None:
        return {}
    print_run_summary(manifest, config)
    if args.report:
        from wwm_cli.report import write_report

        print(f"report: {write_report(config.output.path)}")
    then_train(training, config.output.path)
    return manifest.to_json()


def make_instances(config, *, choice, command, inputs, unreadable=()):
    """The instances the configuration tree says, from these input files, into config.output: what
    ``wwm run`` and ``wwm rerun`` share. Returns the written manifest, or None when the job was
    handed over (a Dataflow template, a Dataproc jar: it writes its manifest when it has run)."""
    vocab, tokenizer_origin = load_vocab(config.instances)
    similar_words = load_similar_words(config.instances, vocab)
    word_cache_folders = word_cache_folders_for(config, choice)
    prepared = prepared_link(config)
    config = with_bucket_bytes(config, inputs)
    check_memory(config)
    claim = claimed(config, command)
    run_info = RunInfo(command=command, inputs=described_inputs(inputs, unreadable, config.sources))
    log.info("reading %d bytes from %s in buckets of about %d bytes of text, to %s",
             input_bytes(inputs), describe(config), config.output.bucket_bytes, config.output.path)
    # Sentences kept by cleaning are what segmentation will segment, unless a cache spares some or
    # the input is prepared documents (their sentences are not counted before they are segmented).
    stages = progress.run_stages(input_bytes=input_bytes(inputs), sentence_total=not word_cache_folders and not any(
        source.input_format == "parquet" for source in config.sources))
    with claim, progress.display(stages, mode=config.runner.progress, local=config.runner.local) as channel, \
            new_pipeline(config.runner) as pipeline:
        build_pipeline(pipeline, config=config, vocab=vocab, segmenter=choice, run_info=run_info,
                       inputs=inputs, unreadable=unreadable, word_cache_folders=word_cache_folders,
                       prepared=prepared, progress=channel, similar_words=similar_words,
                       tokenizer_origin=tokenizer_origin)
    return None if handed_over(config.runner, join(config.output.path, MANIFEST)) else read_manifest(config.output.path)


def claimed(config, command):
    """The claim on --output (pipelines.output.claim_output): the folder is this run's before any
    work starts."""
    return claim_output(config.output.path, overwrite=config.output.overwrite, command=command)


def describe(config) -> str:
    return "; ".join(f"{s.name} ({s.input_format}): {', '.join(s.patterns)}" for s in config.sources)


def new_pipeline(runner) -> beam.Pipeline:
    """A pipeline for the launch's RunnerConfig (wwm_cli.launch.launch)."""
    options = PipelineOptions(list(runner.beam_args))
    options.view_as(StandardOptions).runner = options.view_as(StandardOptions).runner or runner.runner
    if runner.worker_processes:
        from pipelines.local_workers import watch_local_workers  # Beam's internals: only where used

        watch_local_workers(options)
    return beam.Pipeline(options=options)


def handed_over(runner, manifest_path: str) -> bool:
    """True, said in one line, when the pipeline was handed over rather than run (the launch's
    RunnerConfig says): written as a Dataflow template (--template_location, which a Flex
    Template's launcher passes) or as an executable jar (--output_executable_path, for `gcloud
    dataproc jobs submit spark`). The job then runs after this command returns and writes its
    manifest when it finishes."""
    if runner.handed_over_to:
        print(f"the job was written to {runner.handed_over_to}, not run here: {manifest_path} appears when it has run")
    return bool(runner.handed_over_to)


def read_manifest(folder: str, kinds=("instances", "phases", "documents", "segmentation")):
    path = join(folder, MANIFEST)
    try:
        return parse_manifest(read_bytes(path), path=path, kinds=kinds)
    except OSError as error:
        raise ManifestError(f"{path}: {error}") from error


def print_counters(counters: dict) -> None:
    balance = accounting(counters)
    print(f"records in {balance['records_in']} = out {balance['out']} + filtered {balance['filtered']} "
          f"+ dead-lettered {balance['dead_lettered']}")
    for name, value in counters.items():
        if not name.startswith("phase."):  # each phase's are in its own manifest
            print(f"  {name:40s} {value}")


def print_run_summary(manifest, config) -> None:
    instances = config.instances
    phases = [manifest] if manifest.kind == "instances" else [
        read_manifest(join(config.output.path, phase.folder)) for phase in instances.phases]
    for phase in phases:
        statistics = phase.statistics
        masked = statistics.get("masked_share")
        print(f"wrote {phase.num_instances} instances in {len(phase.all_files)} files ({phase.recipe}, "
              f"max_seq_length {phase.max_seq_length}, {phase.max_predictions_per_seq} predictions, "
              f"{phase.sentence_task} sentence task, {phase.masking} masking)"
              + (f": masked share {masked['measured']:.4f} (target {masked['expected']:g})" if masked else "")
              + (f", padding share {statistics['padding_share']:.3f}" if "padding_share" in statistics else ""))
    if config.segmentation.fallback:
        print(f"WARNING: segmented with jieba, not the recipe's LTP ({config.segmentation.fallback})")
    say_shard_count(len(phases[0].files or phases[0].parquet_files or ()), config)
    print_counters(manifest.counters)


def say_shard_count(written: int, config) -> None:
    """--num_shards sizes the buckets, from the input's size before cleaning: a run that made
    another number of shards says so, and why, in one line."""
    wanted = config.output.num_shards
    if wanted and written != wanted and not config.output.balance_shards:
        print(f"NOTE: {written} shards, not --num_shards {wanted}: a shard is a bucket of whole documents (small "
              "files gathered whole), sized from the input files' sizes before cleaning; fewer documents than "
              f"shards, text that cleaning shortened, or files that do not divide evenly make another number. Add "
              f"--balance_shards for exactly {wanted} files")


# ---------------------------------------------------------------- wwm prepare

def prepare_parser():
    parser = flags.parser("wwm prepare", "Read and clean Chinese corpora once; write documents as Parquet for "
                          "`wwm segment` and `wwm run --input_format parquet`. Unknown flags go to Apache Beam.")
    flags.add_input_flags(parser)
    flags.add_output_flags(parser, instances=False)
    flags.add_runner_flags(parser)
    return parser


def prepare(argv) -> dict:
    args, beam_args = prepare_parser().parse_known_args(argv)
    config = flags.config_from_args(args, beam_args, instances=False, runner=launch(beam_args, progress=args.progress))
    if any(source.input_format == "parquet" for source in config.sources):
        raise UsageError("wwm prepare reads raw corpora; parquet input is already prepared")
    inputs, unreadable = input_files(config)
    manifest = clean_documents(config, command=("wwm", "prepare", *argv), inputs=inputs, unreadable=unreadable)
    if manifest is None:
        return {}
    print(f"wrote {manifest.num_documents} documents in {len(manifest.files)} Parquet files")
    say_shard_count(len(manifest.files), config)
    print_counters(manifest.counters)
    return manifest.to_json()


def clean_documents(config, *, command, inputs, unreadable=()):
    """The documents the configuration tree says, from these input files, into config.output: what
    ``wwm prepare`` and ``wwm rerun`` share. Returns the manifest, or None (handed over)."""
    config = with_bucket_bytes(config, inputs)
    claim = claimed(config, command)
    run_info = RunInfo(command=command, inputs=described_inputs(inputs, unreadable, config.sources))
    log.info("cleaning %d bytes from %s into %s", input_bytes(inputs), describe(config), config.output.path)
    stages = progress.prepare_stages(input_bytes=input_bytes(inputs))
    with claim, progress.display(stages, mode=config.runner.progress, local=config.runner.local) as channel, \
            new_pipeline(config.runner) as pipeline:
        build_prepare_pipeline(pipeline, config=config, run_info=run_info, inputs=inputs, unreadable=unreadable,
                               progress=channel)
    if handed_over(config.runner, join(config.output.path, MANIFEST)):
        return None
    return read_manifest(config.output.path, kinds=("documents",))
