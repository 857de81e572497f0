"""The ``wwm`` command: ``wwm prepare`` (clean), ``wwm segment`` / ``wwm segmenter`` (segmentation),
``wwm run`` (the Beam pipeline), ``wwm inspect`` (decode its output), ``wwm train`` (the trainer).

Flags are named as in Google's create_pretraining_data.py where one exists. Anything ``wwm run``
does not know is handed to Beam's PipelineOptions (``--runner``, ``--project``, ...).
"""
import argparse
import dataclasses
import json
import logging
import math
import sys

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from wwm_core.errors import UsageError, guarded
from pipelines.generate_pipeline import MANIFEST, accounting, build_pipeline, build_prepare_pipeline
from pipelines.inspect import inspect_main
from pipelines.io_utils import join, read_bytes
from pipelines.output import claim_output
from pipelines.segment_cli import segment, segmenter_main
from pipelines.segmenters import add_segmenter_flags, check_segmenter, segmenter_choice
from pipelines.word_cache import finished_cache, word_cache_root_of
from wwm_core.config import RunConfig, SourceSpec
from wwm_core.instances import RECIPES
from wwm_core.text import INPUT_FORMATS, JSONL_PRESETS
from wwm_core.vocab import Vocab, bundled_vocab_bytes
from wwm_trainer.cli import add_then_train_flags, check_then_train, then_train, train_main

log = logging.getLogger("wwm")
# A worker holds one bucket (shard) at a time: about 45 MB of memory per MB of its text at
# dupe factor 5, so ~16 MB of text per shard keeps a worker near 1 GB.
AUTO_SHARD_INPUT_BYTES = 16 * 1024 * 1024


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_input_flags(parser, defaults: RunConfig) -> None:
    """Reading and cleaning: shared by ``wwm run`` and ``wwm prepare``."""
    add = parser.add_argument
    add("--input", action="append", default=[], help="file glob, local or gs://; may be repeated")
    add("--source", action="append", default=[], type=_source,
        help="another input with its own settings, tagged with its name: "
        "name=NAME,format=text|jsonl|wiki|parquet,input=GLOB[,preset=P][,opencc=C][,text_field=F]; repeatable")
    add("--output", required=True, help="output folder or gs:// prefix")
    add("--input_format", choices=INPUT_FORMATS, default=defaults.input_format,
        help="text: one sentence a line, blank line between documents; jsonl: one JSON document a line; "
        "wiki: MediaWiki XML dump (.xml, .xml.bz2, multistream with its index); parquet: `wwm prepare` output")
    add("--text_field", default=defaults.text_field, help="jsonl: the field holding the document text")
    add("--title_field", default=defaults.title_field, help="jsonl: the field holding the title")
    add("--jsonl_preset", choices=sorted(JSONL_PRESETS),
        help="jsonl: the fields of a public ext corpus (news2016zh: desc + content, ...)")
    add("--opencc_config", default=defaults.opencc_config, help="OpenCC config (t2s, tw2s, hk2s, ...) or none")
    add("--max_document_chars", type=int, default=defaults.max_document_chars,
        help="longer documents are filtered (counted as documents_filtered.too_long)")
    add("--min_document_chars", type=int, default=defaults.min_document_chars,
        help="shorter documents (after cleaning) are filtered (documents_filtered.too_short)")
    add("--min_cjk_share", type=float, default=defaults.min_cjk_share,
        help="documents with a smaller share of CJK characters are filtered; 0 keeps all")
    add("--full_width_to_half_width", type=_bool, default=defaults.full_width_to_half_width,
        help="full-width letters and digits to ASCII (punctuation is kept)")
    add("--dedup", choices=("exact", "none"), default=defaults.dedup,
        help="drop documents whose cleaned text repeats another's (the smallest id is kept)")
    add("--near_duplicate_threshold", type=float, default=defaults.near_duplicate_threshold,
        help="also drop near-duplicates: MinHash-estimated Jaccard similarity of character 5-grams at or "
        "above this (0.8 suits news and web text); 0 (default) turns it off")
    add("--num_shards", type=int, default=defaults.num_shards,
        help="output shards (run: buckets of documents; prepare: Parquet files); 0 picks one per ~16 MB of input")
    add("--overwrite", action="store_true", help="replace the output of an earlier run in --output")


def prepare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wwm prepare", description="Read and clean Chinese corpora once; write documents as Parquet "
        "for `wwm run --input_format parquet`. Unknown flags go to Apache Beam.")
    _add_input_flags(parser, RunConfig(input_patterns=("-",), output="-"))
    return parser


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wwm run", description="Chinese text -> whole-word-masked BERT pretraining TFRecords. "
        "Unknown flags go to Apache Beam (e.g. --runner, --direct_num_workers, --project).")
    defaults = RunConfig(input_patterns=("-",), output="-")
    _add_input_flags(parser, defaults)
    add = parser.add_argument
    add("--vocab_file", help="BERT vocab.txt (local or gs://); default: the bundled vocabulary, whose "
        "ids do NOT match released checkpoints")
    add("--do_lower_case", type=_bool, default=defaults.do_lower_case)
    add_segmenter_flags(parser, default=defaults.segmenter)
    add("--segmentation_cache", default=defaults.segmentation_cache,
        help="folder of `wwm segment` caches to reuse word boundaries from; auto (default): PREPARED/segmentation "
        "when --input is PREPARED/documents/*.parquet; none: always segment")
    add("--recipe", choices=RECIPES, default=defaults.recipe)
    add("--max_seq_length", type=int, default=defaults.max_seq_length)
    add("--max_predictions_per_seq", type=int, default=defaults.max_predictions_per_seq)
    add("--masked_lm_prob", type=float, default=defaults.masked_lm_prob)
    add("--short_seq_prob", type=float, default=defaults.short_seq_prob)
    add("--dupe_factor", type=int, default=defaults.dupe_factor)
    add("--random_seed", type=int, default=defaults.random_seed)
    add_then_train_flags(parser)
    return parser


def _source(text: str) -> SourceSpec:
    try:
        return SourceSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _config_from_args(args) -> RunConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
              if hasattr(args, f.name) and f.name not in ("input_patterns", "sources")}
    try:
        return RunConfig(input_patterns=tuple(args.input), sources=tuple(args.source), **values)
    except ValueError as error:
        raise UsageError(str(error)) from error


def _load_vocab(vocab_file) -> Vocab:
    try:
        return Vocab.from_bytes(read_bytes(vocab_file) if vocab_file else bundled_vocab_bytes())
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot use --vocab_file {vocab_file}: {error}") from error


def _word_cache_folders(config: RunConfig, choice) -> tuple:
    """The finished segmentation cache of this very segmenter, if the run has one to reuse."""
    if config.segmenter == "char" or config.segmentation_cache == "none":
        return ()
    root = config.segmentation_cache
    if root == "auto":
        sources = config.all_sources
        if not all(source.input_format == "parquet" for source in sources):
            return ()
        root = word_cache_root_of([pattern for source in sources for pattern in source.patterns])
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


def _input_bytes(config: RunConfig) -> int:
    patterns = [pattern for source in config.all_sources for pattern in source.patterns]
    total = 0
    for pattern, result in zip(patterns, FileSystems.match(list(patterns))):
        if not result.metadata_list:
            raise UsageError(f"--input {pattern!r} matches no file")
        total += sum(m.size_in_bytes for m in result.metadata_list)
    return total


def _prepare_output(output: str, *, overwrite: bool):
    """Claims --output for this run (pipelines.output.claim_output): refuses a second run, a file,
    a read-only folder, or an earlier run's files without --overwrite, before any work starts."""
    return claim_output(output, overwrite=overwrite)


def _sized_with_clear_output(config: RunConfig, *, overwrite: bool):
    """(config with its number of shards decided, input bytes, the claim on --output), once --output
    holds no earlier run."""
    input_bytes = _input_bytes(config)
    num_shards = config.num_shards or max(1, math.ceil(input_bytes / AUTO_SHARD_INPUT_BYTES))
    claim = _prepare_output(config.output, overwrite=overwrite)
    return dataclasses.replace(config, num_shards=num_shards), input_bytes, claim


def run(argv) -> dict:
    args, beam_args = run_parser().parse_known_args(argv)
    config = _config_from_args(args)
    check_then_train(args)  # a training mistake fails now, not after the data is made
    vocab = _load_vocab(config.vocab_file)
    choice = segmenter_choice(config)
    check_segmenter(choice)
    word_cache_folders = _word_cache_folders(config, choice)
    config, input_bytes, claim = _sized_with_clear_output(config, overwrite=args.overwrite)

    options = _pipeline_options(beam_args)
    log.info("reading %d bytes from %s into %d shards at %s", input_bytes, _describe(config), config.num_shards,
             config.output)
    with claim, beam.Pipeline(options=options) as pipeline:
        build_pipeline(pipeline, config=config, vocab=vocab, num_shards=config.num_shards, segmenter=choice,
                       word_cache_folders=word_cache_folders)
    manifest = json.loads(read_bytes(join(config.output, MANIFEST)))
    _print_summary(manifest)
    then_train(args, config.output)
    return manifest


def _describe(config: RunConfig) -> str:
    return "; ".join(f"{s.name} ({s.input_format}): {', '.join(s.patterns)}" for s in config.all_sources)


def _pipeline_options(beam_args) -> PipelineOptions:
    options = PipelineOptions(beam_args)
    if options.view_as(StandardOptions).runner is None:
        # The local runner, named directly: "DirectRunner" first tries to download Beam's Prism
        # runner binary, with no timeout, and then falls back to this one for batch pipelines.
        options.view_as(StandardOptions).runner = "FnApiRunner"
    return options


def prepare(argv) -> dict:
    args, beam_args = prepare_parser().parse_known_args(argv)
    config = _config_from_args(args)
    if any(source.input_format == "parquet" for source in config.all_sources):
        raise UsageError("wwm prepare reads raw corpora; parquet input is already prepared")
    config, input_bytes, claim = _sized_with_clear_output(config, overwrite=args.overwrite)
    log.info("cleaning %d bytes from %s into %s", input_bytes, _describe(config), config.output)
    with claim, beam.Pipeline(options=_pipeline_options(beam_args)) as pipeline:
        build_prepare_pipeline(pipeline, config=config, num_shards=config.num_shards)
    manifest = json.loads(read_bytes(join(config.output, MANIFEST)))
    print(f"wrote {manifest['num_documents']} documents in {len(manifest['files'])} Parquet files")
    _print_counters(manifest["counters"])
    return manifest


def _print_counters(counters: dict) -> None:
    balance = accounting(counters)
    print(f"records in {balance['records_in']} = out {balance['out']} + filtered {balance['filtered']} "
          f"+ dead-lettered {balance['dead_lettered']}")
    for name, value in counters.items():
        print(f"  {name:40s} {value}")


def _print_summary(manifest: dict) -> None:
    print(f"wrote {manifest['num_instances']} instances in {len(manifest['files'])} shards "
          f"({manifest['recipe']}, max_seq_length {manifest['max_seq_length']})")
    _print_counters(manifest["counters"])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    commands = {"run": run, "prepare": prepare, "segment": segment, "segmenter": segmenter_main,
                "train": train_main, "inspect": inspect_main}
    if not argv or argv[0] not in commands:
        print(f"usage: wwm {{{','.join(commands)}}} ... (wwm run --help, ...)", file=sys.stderr)
        return 2
    return guarded(f"wwm {argv[0]}", commands[argv[0]], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
