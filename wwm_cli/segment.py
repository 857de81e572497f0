"""``wwm segment`` (segment prepared documents once, cache the boundaries) and ``wwm segmenter
train|eval`` (make an LTP perceptron model from segmented text; score any segmenter)."""
import argparse
import contextlib
import hashlib
import json
import logging
import os
import pathlib
import re
import sys
import tempfile
import time


from pipelines import progress
from pipelines.common import RunInfo
from pipelines.io_utils import exists, join, read_bytes, write_bytes
from pipelines.output import claim_output
from pipelines.segment_pipeline import build_segment_pipeline, prepared_document_files
from pipelines.segmenters import SegmenterChoice, check_segmenter, segmenter_choice
from pipelines.word_cache import SEGMENTATION_FOLDER, SEGMENTATION_MANIFEST, cache_folder
from wwm_cli import flags
from pipelines.inputs import described_inputs, matched_files
from wwm_cli.data import handed_over, new_pipeline, print_counters, read_manifest
from wwm_cli.launch import launch
from wwm_core.cws import CorpusFormatError, read_segmented, score_spans, to_space_separated
from wwm_core.errors import UsageError
from wwm_core.manifest import parse_manifest
from wwm_core.segmentation import LTP_CONFIG_FILE

log = logging.getLogger("wwm")
LTP_MODEL_FILE = "cws_model.bin"
TRAINING_REPORT = "training.json"


# ---------------------------------------------------------------- wwm segment

def segment_parser() -> argparse.ArgumentParser:
    parser = flags.parser(
        "wwm segment", "Segment the documents of a `wwm prepare` output once and cache the word "
        "boundaries beside them (PREPARED/segmentation/<segmenter identity>/), so that every later `wwm run "
        "--input_format parquet --input 'PREPARED/documents/*.parquet'` with the same segmenter reuses them. "
        "Unknown flags go to Apache Beam.")
    add = parser.add_argument
    add("--input", required=True, help="a `wwm prepare` output folder (local or gs://)")
    flags.add_segmenter_flags(parser, default="ltp")
    add("--cache_root", help="where the cache goes (default: INPUT/segmentation)")
    add("--overwrite", action="store_true", help="segment again even if this segmenter's cache is complete")
    flags.add_runner_flags(parser)
    return parser


def segment(argv) -> dict:
    args, beam_args = segment_parser().parse_known_args(argv)
    runner = launch(beam_args, progress=args.progress)
    if args.segmenter == "char":
        raise UsageError("--segmenter char has no word boundaries to cache; choose ltp or jieba")
    segmentation = flags.segmentation_from_args(args)
    choice = segmenter_choice(segmentation)
    check_segmenter(choice)
    try:
        files = prepared_document_files(args.input)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error
    identity = choice.identity()
    output = cache_folder(args.cache_root or join(args.input, SEGMENTATION_FOLDER), choice.identity_key())
    manifest_path = join(output, SEGMENTATION_MANIFEST)
    if exists(manifest_path) and not args.overwrite:
        manifest = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("segmentation",))
        print(f"{output} already holds this segmenter's boundaries for {manifest.num_documents} documents; "
              "nothing to do (--overwrite segments again)")
        return manifest.to_json()
    log.info("segmenting %d Parquet files of %s with %s into %s", len(files), args.input, identity, output)
    started = time.monotonic()
    run_info = RunInfo(command=("wwm", "segment", *argv), inputs=described_inputs(matched_files(files)))
    config_json = {"segmentation": {"segmenter": choice.kind, "ltp_model": choice.ltp_model,
                                    "user_dict": choice.user_dict}}
    prepared = read_manifest(args.input, kinds=("documents",))
    stages = progress.segment_stages(num_documents=prepared.num_documents, num_files=len(files))
    # The cache folder is this command's while it runs: a second `wwm segment` of the same
    # segmenter is refused, naming this one; an unfinished (or overwritten) earlier attempt's files,
    # which would mix with ours, are removed.
    claim = claim_output(output, overwrite=True, command=("wwm", "segment", *argv))
    with claim, progress.display(stages, mode=runner.progress, local=runner.local) as channel, \
            new_pipeline(runner) as pipeline:
        build_segment_pipeline(pipeline, files=files, choice=choice, identity=identity, output=output,
                               run_info=run_info, config_json=config_json, progress=channel)
    if handed_over(runner, manifest_path):
        return {}
    seconds = time.monotonic() - started
    manifest = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("segmentation",))
    counters = manifest.counters
    print(f"segmented {counters.get('sentences_segmented', 0)} sentences "
          f"({counters.get('characters_segmented', 0)} characters) of {manifest.num_documents} documents in "
          f"{seconds:.1f} s into {output}")
    print_counters(counters)
    return manifest.to_json()


# ---------------------------------------------------------------- wwm segmenter train | eval

def segmenter_parser() -> argparse.ArgumentParser:
    parser = flags.Parser(prog="wwm segmenter", description="Train and evaluate word segmenters.",
                                     formatter_class=flags.HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", formatter_class=flags.HelpFormatter, help="train an LTP perceptron CWS model from segmented text",
        description="Train an LTP legacy perceptron CWS model (ltp_extension's CWSTrainer). FILE: one sentence "
        "a line with words separated by spaces, or CoNLL-U. Writes DIR/cws_model.bin, DIR/config.json (the "
        "legacy LTP release layout, which --ltp_model and ltp.LTP(DIR) load) and DIR/training.json.")
    train.add_argument("--train", required=True, help="segmented training text (local or gs://)")
    train.add_argument("--dev", help="segmented text scored after every epoch (local or gs://)")
    train.add_argument("--output", required=True, help="model folder to write (local or gs://)")
    train.add_argument("--epochs", type=int, default=10, help="passes over the training text")
    train.add_argument("--shuffle", action="store_true",
                       help="shuffle the training sentences each epoch (LTP's default; makes training "
                       "nondeterministic, so it is off here)")
    train.add_argument("--overwrite", action="store_true", help="replace a model already in --output")
    evaluate = commands.add_parser(
        "eval", formatter_class=flags.HelpFormatter,
        help="precision, recall and F1 of a segmenter against gold segmentation",
        description="Scores word spans (a word is right when its start and end match a gold word's) against "
        "gold segmented text (spaces or CoNLL-U), for any backend.")
    evaluate.add_argument("--model", required=True,
                          help="an LTP model (file or folder, local or gs://), or the name jieba or char")
    evaluate.add_argument("--gold", required=True, help="gold segmented text (local or gs://)")
    evaluate.add_argument("--user_dict", help="words to keep whole (ltp and jieba)")
    evaluate.add_argument("--json", action="store_true", help="print the scores as JSON")
    return parser


def segmenter_main(argv) -> dict:
    args = segmenter_parser().parse_args(argv)
    return train_segmenter(args) if args.command == "train" else evaluate_segmenter(args)


def _read_corpus(path: str, flag: str) -> tuple:
    """(sentences as word lists, the file's SHA-256), from one read of the file."""
    try:
        data = read_bytes(path)
        sentences = [words for words in read_segmented(data.decode("utf-8")) if words]
    except (OSError, UnicodeDecodeError, CorpusFormatError) as error:
        raise UsageError(f"{flag} {path}: {error}") from error
    if not sentences:
        raise UsageError(f"{flag} {path}: no segmented sentences")
    return sentences, hashlib.sha256(data).hexdigest()


_EPOCH_LINE = re.compile(r"epoch: (\d+), precision: ([\d.e-]+), recall: ([\d.e-]+), f1: ([\d.e-]+)")


@contextlib.contextmanager
def _native_stdout_into(path: str):
    """Sends what native code writes to file descriptor 1 meanwhile into ``path``. LTP's Rust
    trainer prints its per-epoch dev scores there, bypassing Python's sys.stdout, and holds the GIL
    while it trains, so a pipe read by a Python thread could fill up and block it: a file cannot."""
    sys.stdout.flush()
    real_stdout = os.dup(1)
    try:
        with open(path, "wb") as capture:
            os.dup2(capture.fileno(), 1)
            try:
                yield
            finally:
                sys.stdout.flush()
                os.dup2(real_stdout, 1)
    finally:
        os.close(real_stdout)


def train_segmenter(args) -> dict:
    from ltp_extension.perceptron import CWSTrainer

    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if exists(join(args.output, LTP_MODEL_FILE)) and not args.overwrite:
        raise UsageError(f"{args.output} already holds a model; pass --overwrite to replace it")
    train_sentences, train_sha256 = _read_corpus(args.train, "--train")
    dev_sentences, dev_sha256 = _read_corpus(args.dev, "--dev") if args.dev else (None, None)
    epochs = []

    def epoch_score(line):
        match = _EPOCH_LINE.match(line)
        if match:
            return {"epoch": int(match[1]) + 1, "precision": float(match[2]), "recall": float(match[3]),
                    "f1": float(match[4])}
        return None

    with tempfile.TemporaryDirectory(prefix="wwm-cws-") as work:
        train_file, dev_file = os.path.join(work, "train.txt"), os.path.join(work, "dev.txt")
        with open(train_file, "w", encoding="utf-8") as handle:
            handle.write(to_space_separated(train_sentences))
        trainer = CWSTrainer()
        trainer.epoch = args.epochs
        trainer.shuffle = args.shuffle
        trainer.load_train_data(train_file)
        if dev_sentences:
            with open(dev_file, "w", encoding="utf-8") as handle:
                handle.write(to_space_separated(dev_sentences))
            trainer.load_eval_data(dev_file)
        print(f"training an LTP perceptron on {len(train_sentences)} sentences for {args.epochs} epochs "
              "(LTP reports the dev scores of every epoch when it is done)", flush=True)
        started = time.monotonic()
        native_output = os.path.join(work, "trainer-output.txt")
        with _native_stdout_into(native_output):
            model = trainer.train()
        seconds = time.monotonic() - started
        for line in pathlib.Path(native_output).read_text(encoding="utf-8", errors="replace").splitlines():
            score = epoch_score(line)
            if score:
                epochs.append(score)
                print(f"epoch {score['epoch']}/{args.epochs}: dev precision {score['precision']:.4f} "
                      f"recall {score['recall']:.4f} F1 {score['f1']:.4f}")
            elif line.strip() and not line.startswith("Compressed"):
                print(line)
        model_file = os.path.join(work, LTP_MODEL_FILE)
        model.save(model_file)
        model_bytes = pathlib.Path(model_file).read_bytes()

    report = {
        "train": {"path": args.train, "sentences": len(train_sentences), "sha256": train_sha256},
        "dev": ({"path": args.dev, "sentences": len(dev_sentences), "sha256": dev_sha256} if args.dev else None),
        "epochs": args.epochs, "shuffle": args.shuffle, "seconds": round(seconds, 2),
        "dev_scores_per_epoch": epochs,
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
    }
    # The legacy LTP release layout: ltp.LTP(folder) reads config.json and loads the cws model it names.
    write_bytes(join(args.output, LTP_MODEL_FILE), model_bytes)
    write_bytes(join(args.output, LTP_CONFIG_FILE),
                json.dumps({"nerual": False, "tasks": {"cws": LTP_MODEL_FILE}}, indent=2).encode())
    write_bytes(join(args.output, TRAINING_REPORT), json.dumps(report, ensure_ascii=False, indent=2).encode())
    final = f"; dev F1 {epochs[-1]['f1']:.4f}" if epochs else ""
    print(f"wrote {args.output} ({len(model_bytes)} bytes) in {seconds:.1f} s{final}. "
          f"Use it with --segmenter ltp --ltp_model {args.output}")
    return report


def evaluate_segmenter(args) -> dict:
    kind = args.model if args.model in ("jieba", "char") else "ltp"
    choice = SegmenterChoice(kind, None if kind != "ltp" else args.model, args.user_dict)
    segmenter = check_segmenter(choice)
    gold, _ = _read_corpus(args.gold, "--gold")
    texts = ["".join(words) for words in gold]
    started = time.process_time()
    predicted = segmenter.segment(texts)
    cpu_seconds = time.process_time() - started
    predicted = [[1] * len(text) if lengths is None else lengths for text, lengths in zip(texts, predicted)]
    score = score_spans([list(map(len, words)) for words in gold], predicted)
    result = {"model": args.model, "gold": args.gold, **score.to_json(),
              "characters": sum(map(len, texts)), "cpu_seconds": round(cpu_seconds, 3),
              "characters_per_cpu_second": round(sum(map(len, texts)) / cpu_seconds) if cpu_seconds else None}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(f"{args.model} on {args.gold}: {score.sentences} sentences, {score.gold} gold words")
        print(f"  precision {score.precision:.4f}  recall {score.recall:.4f}  F1 {score.f1:.4f}")
        if score.mismatched_sentences:
            print(f"  {score.mismatched_sentences} sentences where the segmenter's words did not spell the text")
    return result
