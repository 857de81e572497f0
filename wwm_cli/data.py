"""``wwm run`` (corpus -> whole-word-masked instances) and ``wwm prepare`` (corpus -> clean
documents): the flags become the configuration tree, everything is checked before any work
starts, then the Beam pipeline runs and the manifest it wrote last is summarized.

Anything these commands do not know is handed to Beam's PipelineOptions (``--runner``,
``--project``, ``--direct_num_workers``, ...).
"""
import dataclasses
import hashlib
import io
import logging
import os

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import CompressionTypes, FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import progress
from pipelines.common import RunInfo, accounting
from pipelines.generate_pipeline import build_pipeline
from pipelines.inputs import InputFile, match_sources
from pipelines.io_utils import join, read_bytes
from pipelines.output import claim_output, file_checksum
from pipelines.parquet_io import DOCUMENTS_FOLDER
from pipelines.prepare_pipeline import build_prepare_pipeline
from pipelines.segmenters import check_segmenter, segmenter_choice
from pipelines.word_cache import finished_cache, word_cache_root_of
from wwm_cli import flags
from wwm_cli.launch import launch
from wwm_core.config import SegmentationConfig
from wwm_core.errors import UsageError
from wwm_core.hub import hub_file, is_hub_id
from wwm_core.manifest import MANIFEST, ManifestError, parse_manifest
from wwm_core.sizing import (BUCKET_BYTES, LARGE_BUCKET_BYTES, bucket_bytes_of, estimated_text_bytes,
                             worker_memory_mb)
from wwm_core.vocab import TOKENIZER_FILE, Vocab, bundled_vocab_bytes

TOKENIZER_CONFIG = "tokenizer_config.json"

log = logging.getLogger("wwm")
# Input checksums in the manifest: local files up to this size are read once more to compute one
# (about a second per GiB); gs:// objects report theirs, one request each, up to a number.
MAX_CHECKSUM_BYTES = 2 * 1024**3
MAX_REMOTE_CHECKSUMS = 1000


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


def load_vocab(instances) -> tuple:
    """(Vocab, what the manifest records of --tokenizer or None): the bundled Google vocabulary, a
    vocab.txt (local, gs:// or a hub model's), or with --tokenizer a Hugging Face tokenizer.json."""
    if instances.tokenizer:
        return load_tokenizer(instances.tokenizer, special_tokens=dict(instances.special_tokens))
    vocab_file = instances.vocab_file
    try:
        if vocab_file is None:
            return Vocab.from_bytes(bundled_vocab_bytes()), None
        path = hub_file(vocab_file, "vocab.txt") if is_hub_id(vocab_file) else vocab_file
        return Vocab.from_bytes(read_bytes(path)), None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot use --vocab_file {vocab_file}: {error}") from error


def load_tokenizer(name: str, *, special_tokens: dict) -> tuple:
    """--tokenizer: a tokenizer.json, a folder holding one (and maybe tokenizer_config.json, which
    declares the special tokens), or a hub id ORG/NAME[@revision] (both files through the
    Hugging Face cache). Returns (Vocab, {"file", "sha256", "path" | "hub_id", "revision",
    "commit"})."""
    config = None
    try:
        if is_hub_id(name):
            path = hub_file(name, TOKENIZER_FILE)
            try:
                config = read_bytes(hub_file(name, TOKENIZER_CONFIG))
            except UsageError:
                config = None  # optional: many tokenizers declare their special tokens in tokenizer.json
            repo_id, _, revision = name.partition("@")
            snapshot = os.path.basename(os.path.dirname(path))  # the cache's snapshots/<commit>/ folder
            origin = {"hub_id": repo_id, "revision": revision or "main", "commit": snapshot}
        else:
            path = name
            if not name.endswith(".json"):  # a folder
                path = join(name, TOKENIZER_FILE)
                if FileSystems.exists(join(name, TOKENIZER_CONFIG)):
                    config = read_bytes(join(name, TOKENIZER_CONFIG))
            origin = {"path": name}
        data = read_bytes(path)
        vocab = Vocab.from_tokenizer_json(data, config=config, special_tokens=special_tokens)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot use --tokenizer {name}: {error}") from error
    return vocab, {**origin, "file": TOKENIZER_FILE, "sha256": vocab.sha256}


def similar_words_cache_folder() -> str:
    return os.path.join(os.environ.get("WWM_CACHE") or os.path.expanduser("~/.cache/wwm-data"), "similar_words")


class _HashingReader(io.RawIOBase):
    """A stream that hashes what is read from it: the cache key of a vectors file is what was
    read of it (the first --similar_words_limit words), not the whole file (Tencent's is 16 GB)."""

    def __init__(self, raw):
        self.raw, self.sha256 = raw, hashlib.sha256()

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.raw.read(len(buffer))
        self.sha256.update(data)
        buffer[:len(data)] = data
        return len(data)


def load_similar_words(instances, vocab):
    """MacBERT's similar words for ``--replacement macbert``: {"npz": the table in this run's token
    ids (``masking.SimilarWords``), "about": what the manifest records}, or None. From word2vec
    vectors, the neighbours are computed once and cached by the bytes read and the settings."""
    if instances.replacement != "macbert":
        return None
    from wwm_core import similar_words as similar
    from wwm_core.tokenization import make_tokenizer

    path = instances.similar_words
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            reader = _HashingReader(handle)
            stream = similar.open_stream(reader)
            if similar.kind_of(stream.peek(256)) == "table":
                table, kind = similar.parse_table(io.TextIOWrapper(stream, encoding="utf-8")), "table"
            else:
                words, vectors, form = similar.read_word2vec(stream, max_words=instances.similar_words_limit)
                kind = f"word2vec {form}"
                key = similar.cache_key(reader.sha256.hexdigest(), max_words=instances.similar_words_limit,
                                        neighbours=similar.NEIGHBOURS)
                cached = os.path.join(similar_words_cache_folder(), f"{key}.tsv")
                if os.path.exists(cached):
                    log.info("similar words of %s: the cached neighbours in %s", path, cached)
                    with open(cached, encoding="utf-8") as lines:
                        table = similar.parse_table(lines)
                else:
                    log.info("similar words of %s: the %d nearest of each of its %d words (%d dimensions), once",
                             path, similar.NEIGHBOURS, len(words), vectors.shape[1])
                    table = similar.nearest_neighbours(words, vectors)
                    os.makedirs(os.path.dirname(cached), exist_ok=True)
                    temporary = f"{cached}.tmp-{os.getpid()}"
                    with open(temporary, "wb") as out:
                        out.write(similar.table_bytes(table))
                    os.replace(temporary, cached)
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as error:
        raise UsageError(f"cannot use --similar_words {path}: {error}") from error
    tokenizer = make_tokenizer(vocab, do_lower_case=instances.do_lower_case)
    table_ids = similar.tokenized(table, tokenizer)
    data = table_ids.to_npz_bytes()
    with_candidates = int(np.count_nonzero(np.diff(table_ids.candidate_offsets)))
    log.info("similar words: %d words, %d with a candidate of their own length in tokens", len(table_ids),
             with_candidates)
    if not with_candidates:
        raise UsageError(f"--similar_words {path}: no word has a candidate with as many tokens as itself, so MacBERT's "
                         "replacement would be random tokens everywhere")
    return {"npz": data, "about": {"source": path, "kind": kind, "words": len(table_ids),
                                   "words_with_candidates": with_candidates,
                                   "sha256": hashlib.sha256(data).hexdigest(),
                                   "source_sha256_read": reader.sha256.hexdigest(),
                                   "limit": instances.similar_words_limit if kind != "table" else None}}


def checked_segmenter(config, *, recipe_default: bool):
    """(config, the checked SegmenterChoice). When the recipe's own segmenter (LTP/legacy) cannot
    be loaded and the user did not name one, jieba stands in, loudly: the run says so at its start
    and end, and the manifest records why (segmentation.fallback)."""
    choice = segmenter_choice(config.segmentation)
    try:
        check_segmenter(choice)
        return config, choice
    except UsageError as error:
        if not (recipe_default and config.segmentation.segmenter == "ltp"):
            raise
        reason = str(error).split(". ")[0]
    log.warning("WARNING: the recipe's segmenter (LTP, %s) is not available: %s. Segmenting with jieba instead; "
                "the word groups will differ from the recipe's. Pass --segmenter jieba to choose it, or get the "
                "model (hf download %s) to follow the recipe.", config.segmentation.ltp_model, reason,
                config.segmentation.ltp_model)
    segmentation = SegmentationConfig(segmenter="jieba", user_dict=config.segmentation.user_dict,
                                      cache=config.segmentation.cache,
                                      fallback=f"LTP {config.segmentation.ltp_model}: {reason}")
    config = dataclasses.replace(config, segmentation=segmentation)
    choice = segmenter_choice(segmentation)
    check_segmenter(choice)
    return config, choice


def word_cache_folders_for(config, choice) -> tuple:
    """The finished segmentation cache of this very segmenter, if the run has one to reuse."""
    segmentation = config.segmentation
    if segmentation.segmenter == "char" or segmentation.cache == "none":
        return ()
    root = segmentation.cache
    if root == "auto":
        if not all(source.input_format == "parquet" for source in config.sources):
            return ()
        root = word_cache_root_of(config.patterns)
        if root is None:
            return ()
    key = choice.identity_key()
    folder = finished_cache(root, key)
    if folder:
        log.info("reusing word boundaries cached by `wwm segment` in %s", folder)
        return (folder,)
    log.warning("no finished segmentation cache for this segmenter (%s) in %s: segmenting in this run. "
                "`wwm segment` writes one that later runs reuse.", key, root)
    return ()


def prepared_link(config):
    """For a run on `wwm prepare` output: that prepare's manifest, sources and cleaning, which
    decided the text this run reads."""
    links = []
    for source in config.sources:
        if source.input_format != "parquet":
            continue
        for pattern in source.patterns:
            folder, _ = FileSystems.split(pattern)
            root, name = FileSystems.split(folder.rstrip("/"))
            manifest_path = join(root, MANIFEST)
            if name != DOCUMENTS_FOLDER or not FileSystems.exists(manifest_path):
                continue
            prepared = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("documents",))
            links.append({"manifest": manifest_path, "sources": prepared.config.get("sources", []),
                          "cleaning": prepared.config.get("cleaning", {}), "num_documents": prepared.num_documents})
    if not links:
        return None
    return links[0] if len(links) == 1 else {"manifests": links}


def input_files(config) -> tuple:
    """([InputFile], [BadRecord]) of every source (pipelines.inputs.match_sources); a pattern
    that matches nothing, a file that is not a regular file, or Parquet read as another format,
    is an error."""
    files, unreadable = match_sources(config.sources)
    for file in files:
        input_format = config.sources[file.source].input_format
        if file.path.lower().endswith(".parquet") and input_format != "parquet":
            # Read as text, a Parquet file's bytes become dead letters, every one of them.
            raise UsageError(f"{file.path} is Parquet (`wwm prepare` writes documents so), read as "
                             f"{input_format}: add --input_format=parquet (format=parquet in --source)")
    return files, unreadable


def matched_files(paths) -> list:
    """InputFiles of existing files named exactly (a prepared corpus's documents files)."""
    files = []
    for path in paths:
        metadata = FileSystems.get_filesystem(path).metadata(path)
        files.append(InputFile(0, path, path, metadata.size_in_bytes, metadata.last_updated_in_seconds, path))
    return files


def described_inputs(files, unreadable=(), sources=None) -> list:
    """What a manifest says of its input files: path, bytes, the source's name and, where cheap,
    the crc32c as GCS reports it (``input_checksum``), so a local copy and its gs:// original
    compare equal; and the paths matched that could not be read, with their dead letter's reason."""
    described, remote = [], 0
    for file in files:
        info = {"path": file.path, "bytes": file.bytes}
        if sources is not None:
            info["source"] = sources[file.source].name
        remote += "://" in file.path
        checksum = input_checksum(file.path, size=file.bytes) if remote <= MAX_REMOTE_CHECKSUMS else None
        if checksum:
            info["crc32c"] = checksum
        described.append(info)
    return described + [{"path": record.raw, "dead_letter": record.reason} for record in unreadable
                        if record.reason != "duplicate_input_file"]  # a duplicate is listed once, above


def input_checksum(path: str, *, size: int):
    """The crc32c of an input file: from a gs:// object's metadata (no download), computed for a
    local file up to MAX_CHECKSUM_BYTES; None where that is not cheap or not possible."""
    if path.startswith("gs://"):
        try:
            return file_checksum(path)[1]
        except Exception:  # noqa: BLE001 - the checksum is a courtesy of the manifest: the run does not need it
            return None
    if "://" in path or size > MAX_CHECKSUM_BYTES:
        return None
    try:
        return file_checksum(path)[1]
    except OSError:  # unreadable now: the reader dead-letters it and says why
        return None


def input_bytes(inputs) -> int:
    """The bytes of the input files (what the read bar counts towards)."""
    return sum(file.bytes for file in inputs)


def with_bucket_bytes(config, inputs):
    """The configuration with its bucket size decided (from the input's sizes), unless it is (a
    rerun's, from its manifest): it decides which documents share a shard, so the manifest
    records it."""
    if config.output.bucket_bytes:
        return config
    return dataclasses.replace(config, output=dataclasses.replace(
        config.output, bucket_bytes=bucket_bytes_for(config, inputs)))


def bucket_bytes_for(config, inputs) -> int:
    """How much clean text a bucket holds, estimated from the input's sizes alone, so the same
    input gives the same buckets wherever and however it runs."""
    text = sum(estimated_text_bytes(file.path, file.bytes, config.sources[file.source].input_format)
               for file in inputs)
    # With --balance_shards, --num_shards counts the balanced files: the buckets keep their size.
    num_shards = 0 if config.output.balance_shards else config.output.num_shards
    bucket_bytes = bucket_bytes_of(text, num_shards=num_shards)
    if bucket_bytes > LARGE_BUCKET_BYTES:
        log.warning("--num_shards %d makes buckets of about %d MB of text each: a worker holds a bucket's tokens and "
                    "plans while it writes its shard, so memory grows with it. Leave --num_shards out (buckets of "
                    "%d MB), or add --balance_shards to get %d files with buckets of the usual size",
                    num_shards, bucket_bytes >> 20, BUCKET_BYTES >> 20, num_shards)
    return bucket_bytes


def claimed(config, command):
    """The claim on --output (pipelines.output.claim_output): the folder is this run's before any
    work starts."""
    return claim_output(config.output.path, overwrite=config.output.overwrite, command=command)


def check_memory(config) -> None:
    """Before any work: a local run whose worker cannot hold one bucket on this machine is refused
    with the estimate; other runners get the estimate in the log, for their machine type."""
    bucket_bytes = config.output.bucket_bytes
    estimate_mb = worker_memory_mb(bucket_bytes / 1e6, dupe_factor=config.instances.dupe_factor)
    if not config.runner.local:
        log.info("each worker process needs about %.0f MB (buckets of %.1f MB of text)", estimate_mb, bucket_bytes / 1e6)
        return
    available_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e6
    if estimate_mb > available_mb:
        raise UsageError(f"this run needs about {estimate_mb / 1e3:.1f} GB per worker process (buckets of "
                         f"{bucket_bytes / 1e6:.0f} MB of text at dupe factor {config.instances.dupe_factor}), more "
                         f"than this machine's {available_mb / 1e3:.1f} GB: leave --num_shards out or raise it "
                         "(--balance_shards keeps the file count)")


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
        if not name.startswith(("hist.", "unknown_token_text.", "phase.")):
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
