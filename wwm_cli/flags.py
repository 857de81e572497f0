"""Flags shared by the data commands, and the configuration tree built from them.

Flags whose default comes from the recipe default to None here; ``config_from_args`` fills them
from the recipe and records which ones the user set (the manifest's ``overrides``).
"""
import argparse
import csv
import dataclasses

from wwm_core.config import (INPUT_FORMATS, MASKING, OUTPUT_FORMATS, PACK_FILLS, SEGMENTERS, SENTENCE_TASKS, CleaningConfig,
                             InstancesConfig, OutputConfig, RunConfig, RunnerConfig, SegmentationConfig, SourceSpec,
                             instances_from_recipe)
from wwm_core.errors import UsageError
from wwm_core.masking import REPLACEMENTS
from wwm_core.helptext import HelpFormatter, Parser, finite_float, parser  # noqa: F401 - the commands' parsers
from wwm_core.recipes import DEFAULT_RECIPE, RECIPES
from wwm_core.text import JSONL_PRESETS

_CLEANING = CleaningConfig()


def default_of(section, name: str):
    """A setting's default, from the configuration tree (wwm_core/config.py): defaults live there only."""
    return next(field.default for field in dataclasses.fields(section) if field.name == name)

RECIPE_DEFAULT = "default: the recipe's"


PROGRESS = ("auto", "on", "off")


def group(parser: argparse.ArgumentParser, title: str, description: str = None):
    """The parser's argument group of that title (made if it has none): a command adding its own
    flags to a shared section keeps one heading in --help (wwm_core.helptext.Parser)."""
    return parser.add_argument_group(title, description)


section = group  # inside functions whose local name ``group`` is the section being filled


def add_runner_flags(parser: argparse.ArgumentParser) -> None:
    """How a local run shows itself while it works."""
    group(parser, "display").add_argument(
        "--progress", choices=PROGRESS, default=default_of(RunnerConfig, "progress"),
        help="live progress bars per stage on local runs (documents read and cleaned, sentences segmented, "
        "shards written, elapsed time and ETA); auto: on when stderr is a terminal, so CI logs stay quiet. "
        "Dataflow and Spark show the same counts as Beam metrics (namespace wwm)")


def boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def number_list(kind):
    """A parser of ``128`` or ``128,512`` (``kind`` int), ``0.4,0.3,0.2,0.1`` (``kind`` float)."""
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected a number or numbers separated by commas, got {text!r}") \
                from error
        if not values:
            raise argparse.ArgumentTypeError("expected at least one number")
        return values
    return parse


int_list, float_list = number_list(int), number_list(finite_float)


def special_tokens(text: str) -> tuple:
    """``cls=<s>,sep=</s>,mask=<mask>,pad=<pad>`` -> ((role, token), ...)."""
    pairs = []
    for part in text.split(","):
        role, equals, token = part.strip().partition("=")
        if not equals or role not in ("cls", "sep", "mask", "pad", "unk") or not token:
            raise argparse.ArgumentTypeError(f"--special_tokens {text!r}: {part!r} is not ROLE=TOKEN with ROLE one of "
                                             "cls, sep, mask, pad, unk")
        pairs.append((role, token))
    return tuple(pairs)


SOURCE_KEYS = ("name", "format", "input", "preset", "opencc", "text_field", "title_field")


def source_fields(text: str) -> dict:
    """``name=news,format=jsonl,input=corpus/news*.json``: comma-separated key=value pairs, read as
    one CSV line, so a value with a comma is written in double quotes (``"input=a,b/*.txt"``) or
    with the comma escaped (``input=a\\,b/*.txt``)."""
    try:
        parts = next(csv.reader([text], escapechar="\\", strict=True))
    except (csv.Error, StopIteration) as error:
        raise argparse.ArgumentTypeError(f"--source {text!r}: {error}") from error
    fields = {}
    for part in parts:
        key, equals, value = part.partition("=")
        if not equals or key not in SOURCE_KEYS or key in fields:
            raise argparse.ArgumentTypeError(
                f"--source {text!r}: {part!r} is not one of {', '.join(k + '=...' for k in SOURCE_KEYS)} "
                "(given once each; quote a value that holds a comma: \"input=a,b/*.txt\")")
        fields[key] = value
    if "input" not in fields or "name" not in fields:
        raise argparse.ArgumentTypeError(f"--source {text!r}: name=... and input=... are required")
    return fields


def add_input_flags(parser: argparse.ArgumentParser) -> None:
    """Reading and cleaning: shared by ``wwm run`` and ``wwm prepare``."""
    group = section(parser, "input and cleaning")
    add = group.add_argument
    add("--input", action="append", default=[], help="file glob, local or gs://; may be repeated")
    add("--source", action="append", default=[], type=source_fields,
        help="another input with its own settings, tagged with its name: name=NAME,format=text|jsonl|wiki|parquet,"
        "input=GLOB[,preset=P][,opencc=C][,text_field=F][,title_field=F]; repeatable. Read as one CSV line: a value "
        "holding a comma goes in double quotes with its key (--source 'name=web,\"input=web,2019/*.jsonl\"') or "
        "has the comma escaped (input=web\\,2019/*.jsonl)")
    add("--input_format", choices=INPUT_FORMATS, default="text",
        help="text: one sentence a line, blank line between documents; jsonl: one JSON document a line; "
        "wiki: MediaWiki XML dump (.xml, .xml.bz2, multistream with its index); parquet: `wwm prepare` output")
    add("--text_field", default=default_of(SourceSpec, "text_field"), help="jsonl: the field holding the document text")
    add("--title_field", default=default_of(SourceSpec, "title_field"), help="jsonl: the field holding the title")
    add("--jsonl_preset", choices=sorted(JSONL_PRESETS), help="jsonl: the fields of a public ext corpus")
    add("--opencc_config", default=None, help="OpenCC config (t2s, tw2s, hk2s, ...) or none; " + RECIPE_DEFAULT
        + " (none: HFL kept traditional text as written)")
    add("--max_document_chars", type=int, default=_CLEANING.max_document_chars,
        help="longer documents are filtered (documents_filtered.too_long)")
    add("--min_document_chars", type=int, default=_CLEANING.min_document_chars,
        help="shorter documents (after cleaning) are filtered (documents_filtered.too_short)")
    add("--min_cjk_share", type=finite_float, default=_CLEANING.min_cjk_share,
        help="documents with a smaller share of CJK characters are filtered; 0 keeps all")
    add("--full_width_to_half_width", type=boolean, default=_CLEANING.full_width_to_half_width,
        help="full-width letters and digits to ASCII (punctuation is kept)")
    add("--dedup", choices=("exact", "none"), default=_CLEANING.dedup,
        help="drop documents whose cleaned text repeats another's (the smallest id is kept)")
    add("--vocab_equivalents", type=boolean, default=_CLEANING.vocab_equivalents,
        help="map characters Google's BERT vocabulary lacks to the equivalents it has (“” -> \", ‘’ -> ', — -> -, "
        "...; the table: wwm_core/normalize.py VOCAB_EQUIVALENTS), counted as changes.vocab_equivalents_mapped; "
        "off keeps the text as written (HFL did): they become [UNK]. `wwm report` shows what it would save")
    add("--near_duplicate_threshold", type=finite_float, default=_CLEANING.near_duplicate_threshold,
        help="also drop near-duplicates: MinHash-estimated Jaccard similarity of character 5-grams at or above "
        "this (0.8 suits news and web text); 0 turns it off")


def add_output_flags(parser: argparse.ArgumentParser, *, instances: bool, output_required: bool = True) -> None:
    group = section(parser, "output")
    add = group.add_argument
    add("--output", required=output_required, help="output folder or gs:// prefix")
    add("--num_shards", type=int, default=default_of(OutputConfig, "num_shards"),
        help="output shards (run: buckets of documents, one file per phase and format each; with --balance_shards, "
        "the number of balanced files, the buckets sized as for 0; prepare: Parquet files); 0 picks one per ~8 MB "
        "of clean text (at least 8)")
    add("--overwrite", action="store_true", help="replace the output of an earlier run in --output")
    if instances:
        add("--balance_shards", action="store_true",
            help="cut every phase's output into files of the same number of instances, give or take one "
            "(--num_shards files, or one per bucket), so each host of a TPU pod reads an equal share; writes the data "
            "twice")
        add("--output_format", choices=OUTPUT_FORMATS, default=default_of(OutputConfig, "output_format"),
            help="tfrecord: Google's schema, for TensorFlow; parquet: Hugging Face column names with word_ids, "
            "for PyTorch; both")


def add_segmenter_flags(parser: argparse.ArgumentParser, *, default=None) -> None:
    """--segmenter, --ltp_model, --user_dict: for every command that segments."""
    group = section(parser, "segmentation")
    add = group.add_argument
    add("--segmenter", choices=SEGMENTERS, default=default,
        help="ltp (the recipes'), jieba, or char (no word grouping: plain BERT masking)"
        + ("" if default else "; " + RECIPE_DEFAULT + " (ltp with LTP/legacy)"))
    add("--ltp_model", help="LTP model: a Hugging Face hub id (LTP/legacy, through its cache), a perceptron CWS "
        "model file, a legacy release folder or a neural model folder (local or gs://); `wwm segmenter train` "
        "makes one")
    add("--user_dict", help="words to keep whole, one a line ('word [frequency] [tag]', jieba's format); for ltp "
        "and jieba; local or gs://")


def add_instance_flags(parser: argparse.ArgumentParser) -> None:
    group = section(
        parser, "instances", "Defaults come from --recipe (wwm recipe show NAME); any flag given here overrides it")
    add = group.add_argument
    add("--recipe", choices=list(RECIPES), default=DEFAULT_RECIPE, help="the released model to make data for: HFL's "
        "BERT-wwm family and MacBERT, or Chinese ModernBERT (wwm recipe list)")
    add("--vocab_file", help="BERT vocab.txt: a path (local or gs://) or a Hugging Face model id "
        "(hfl/chinese-roberta-wwm-ext); default: Google's bert-base-chinese vocabulary, bundled, which every "
        "HFL model uses")
    add("--tokenizer", help="instead of --vocab_file: any Hugging Face tokenizer (WordPiece, BPE, byte-level BPE, "
        "Unigram): a tokenizer.json, a folder with one (and its tokenizer_config.json), or a hub id "
        "(ORG/NAME[@revision], through the Hugging Face cache); whole words map onto its tokens by character offsets")
    add("--special_tokens", type=special_tokens,
        help="--tokenizer's special tokens where it declares none: cls=<s>,sep=</s>,mask=<mask>,pad=<pad>")
    add("--do_lower_case", type=boolean, default=default_of(InstancesConfig, "do_lower_case"),
        help="lowercase and strip accents before WordPiece, as Google's Chinese models expect")
    add("--max_seq_length", type=int_list, help="one length, or several (128,512: one phase each, written to "
        "OUTPUT/seq128/ and OUTPUT/seq512/ from one pass over the corpus); " + RECIPE_DEFAULT)
    add("--max_predictions_per_seq", type=int_list,
        help="one value, or one per length; default: max_seq_length x masked_lm_prob rounded up to a multiple of "
        "5 (20 at 128, 80 at 512, Google's README values). Fewer than round(max_seq_length x masked_lm_prob) "
        "is refused unless --allow_fewer_predictions")
    add("--allow_fewer_predictions", action="store_true",
        help="accept a --max_predictions_per_seq that caps masking below --masked_lm_prob")
    add("--masked_lm_prob", type=finite_float, help=RECIPE_DEFAULT + " (0.15)")
    add("--ngram_weights", type=float_list, help="N-gram whole-word masking: the chances of masking a span of 1, 2, "
        "3, ... consecutive whole words (MacBERT: 0.4,0.3,0.2,0.1); spans are taken in random order while they fit "
        "the budget, never cut, never across [SEP]; 1: one word at a time; " + RECIPE_DEFAULT + " (1)")
    add("--replacement", choices=REPLACEMENTS, help="what a masked word becomes: bert, Google's rule per token "
        "([MASK] 80%%, kept 10%%, random 10%%); macbert, MacBERT's per word (a similar word with as many tokens 80%%, "
        "random tokens 10%%, kept 10%%; no [MASK]), which needs --similar_words; " + RECIPE_DEFAULT + " (bert)")
    add("--similar_words", help="--replacement macbert: similar words, a table ('word<TAB>candidate candidate ...', "
        "UTF-8) or word2vec vectors (text or binary, maybe gzipped: the Synonyms toolkit's and Tencent AI Lab's "
        "format), local or gs://; from vectors the 10 nearest words of the same length by cosine are computed "
        "once and cached (WWM_CACHE, default ~/.cache/wwm-data)")
    add("--similar_words_limit", type=int, default=default_of(InstancesConfig, "similar_words_limit"),
        help="vectors: use the first this many words of the file (word2vec files list the most frequent first)")
    add("--short_seq_prob", type=finite_float, help="pairs: share of instances with a shorter target length; "
        + RECIPE_DEFAULT + " (0.1)")
    add("--dupe_factor", type=int, help="each document is used this many times with different masks; "
            + RECIPE_DEFAULT + " (5)")
    add("--sentence_task", choices=SENTENCE_TASKS, help="nsp: Google's next sentence prediction; sop: ALBERT's "
        "sentence order prediction; none: no sentence-level label; " + RECIPE_DEFAULT)
    add("--paired_input", type=boolean, help="with --sentence_task none: Google's [CLS] A [SEP] B [SEP] pairs anyway "
        "(label 0), as HFL made RoBERTa-wwm's data; false: one segment per instance; " + RECIPE_DEFAULT)
    add("--pack_across_documents", type=boolean, nargs="?", const=True,
        help="with --sentence_task none --paired_input false: fill instances across document boundaries, a [SEP] "
        "between documents (RoBERTa's FULL-SENTENCES), instead of one document each (DOC-SENTENCES); each instance "
        "records where its documents start (document_starts); " + RECIPE_DEFAULT + " (false)")
    add("--pack_fill", choices=PACK_FILLS, help="--pack_across_documents: end each instance between sentences "
        "(RoBERTa's FULL-SENTENCES), or fill it to the last token (tokens: a sentence and a word cut at the end go on "
        "in the next instance; for long sequences, padding only at a stream's end); " + RECIPE_DEFAULT
        + " (sentences)")
    add("--masking", choices=MASKING, help="static: masks fixed in the data (Google's schema; what HFL's models "
        "used); dynamic: unmasked instances with word_ids, masked anew every epoch by `wwm train`; "
        + RECIPE_DEFAULT)
    add("--random_seed", type=int, default=default_of(InstancesConfig, "random_seed"),
        help="seeds pairs, masks and each shard's shuffle (with each document id): the same seed gives the same bytes")


RECIPE_INSTANCE_FLAGS = ("masked_lm_prob", "short_seq_prob", "dupe_factor", "sentence_task", "paired_input",
                         "masking", "ngram_weights", "replacement", "pack_fill", "pack_across_documents")


def sources_from_args(args, *, opencc_default: str) -> tuple:
    sources = []
    if args.input:
        sources.append(SourceSpec(name=args.jsonl_preset or args.input_format, input_format=args.input_format,
                                  patterns=tuple(args.input), opencc_config=args.opencc_config or opencc_default,
                                  jsonl_preset=args.jsonl_preset, text_field=args.text_field,
                                  title_field=args.title_field))
    for fields in args.source:
        sources.append(SourceSpec(name=fields["name"], input_format=fields.get("format", "text"),
                                  patterns=(fields["input"],),
                                  opencc_config=fields.get("opencc", args.opencc_config or opencc_default),
                                  jsonl_preset=fields.get("preset"), text_field=fields.get("text_field", "text"),
                                  title_field=fields.get("title_field", "title")))
    return tuple(sources)


def cleaning_from_args(args) -> CleaningConfig:
    return CleaningConfig(full_width_to_half_width=args.full_width_to_half_width,
                          min_document_chars=args.min_document_chars, max_document_chars=args.max_document_chars,
                          min_cjk_share=args.min_cjk_share, dedup=args.dedup,
                          near_duplicate_threshold=args.near_duplicate_threshold,
                          vocab_equivalents=args.vocab_equivalents)


def config_from_args(args, beam_args, *, instances: bool, runner: RunnerConfig = None) -> RunConfig:
    """The whole tree from parsed flags: the recipe's values where a flag was not given; ``runner``:
    the launch's (wwm_cli.launch.launch), else Beam's flags as they are."""
    recipe = RECIPES[getattr(args, "recipe", None) or DEFAULT_RECIPE]
    overrides = []
    instance_config = segmentation = None
    if instances:
        explicit = {name: getattr(args, name) for name in RECIPE_INSTANCE_FLAGS if getattr(args, name) is not None}
        if args.max_seq_length:
            explicit["max_seq_lengths"] = args.max_seq_length
        if args.max_predictions_per_seq:
            explicit["max_predictions"] = args.max_predictions_per_seq
        overrides = sorted(explicit) + [name for name in ("segmenter", "ltp_model", "opencc_config")
                                        if getattr(args, name, None) is not None]
        instance_config = instances_from_recipe(
            recipe.name, random_seed=args.random_seed,
            similar_words=args.similar_words, similar_words_limit=args.similar_words_limit,
            vocab_file=args.vocab_file, do_lower_case=args.do_lower_case, tokenizer=args.tokenizer,
            special_tokens=args.special_tokens or (),
            allow_fewer_predictions=args.allow_fewer_predictions, **explicit)
        segmentation = segmentation_from_args(args, recipe=recipe)
    return RunConfig(
        sources=sources_from_args(args, opencc_default=recipe.opencc_config),
        cleaning=cleaning_from_args(args),
        segmentation=segmentation,
        instances=instance_config,
        output=OutputConfig(path=args.output, output_format=getattr(args, "output_format", "tfrecord"),
                            num_shards=args.num_shards, overwrite=args.overwrite,
                            balance_shards=getattr(args, "balance_shards", False)),
        runner=runner or RunnerConfig(beam_args=tuple(beam_args), progress=getattr(args, "progress", "auto")),
        overrides=tuple(overrides))


def segmentation_from_args(args, *, recipe=None) -> SegmentationConfig:
    segmenter = args.segmenter or (recipe.segmenter if recipe else None)
    if segmenter is None:
        raise UsageError("--segmenter is required")
    ltp_model = args.ltp_model
    if segmenter == "ltp" and ltp_model is None:
        ltp_model = (recipe or RECIPES[DEFAULT_RECIPE]).ltp_model  # LTP's released model, by name
    return SegmentationConfig(segmenter=segmenter, ltp_model=ltp_model, user_dict=args.user_dict,
                              cache=getattr(args, "segmentation_cache", "auto"))
