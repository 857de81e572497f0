"""``wwm inspect``: decode a run's instances with the run's vocabulary."""
import argparse
import json

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.io_utils import join, read_bytes
from wwm_core.errors import UsageError
from wwm_core.manifest import MANIFEST, parse_manifest
from wwm_core.records import decode_example, decoded_instance, read_tfrecords
from wwm_core.vocab import Vocab


def _instance_manifests(path: str) -> list:
    """(folder, manifest) of every phase under ``path`` (a run's output or one phase's folder)."""
    manifest_path = join(path, MANIFEST)
    if not FileSystems.exists(manifest_path):
        raise UsageError(f"{manifest_path} not found: is {path} the --output of a finished wwm run?")
    manifest = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("instances", "phases"))
    if manifest.kind == "instances":
        return [(path, manifest)]
    return [folder_and_manifest for phase in manifest.phases
            for folder_and_manifest in _instance_manifests(join(path, phase["manifest"].rsplit("/", 1)[0]))]


def _records(folder: str, manifest):
    """The {feature or column: values} of every instance of a phase, TFRecords first."""
    if manifest.files:
        for name in manifest.files:
            with FileSystems.open(join(folder, name)) as handle:
                for record in read_tfrecords(handle):
                    yield name, decode_example(record)
        return
    for name in manifest.parquet_files:
        with FileSystems.open(join(folder, name)) as handle:
            for row in pq.read_table(handle).to_pylist():
                yield name, row


def iter_instances(path: str, *, vocab_file=None):
    """Yields (file, DecodedInstance, vocab) for every instance of a run folder or one shard."""
    if path.endswith(".tfrecord"):
        folder = FileSystems.split(path)[0]
        vocab = Vocab.from_bytes(read_bytes(vocab_file or join(folder, "vocab.txt")))
        with FileSystems.open(path) as handle:
            for record in read_tfrecords(handle):
                yield path, decoded_instance(decode_example(record)), vocab
        return
    for folder, manifest in _instance_manifests(path):
        vocab = Vocab.from_bytes(read_bytes(vocab_file or join(folder, manifest.vocab_file)))
        if vocab_file is None and vocab.sha256 != manifest.vocab_sha256:
            raise UsageError(f"{join(folder, manifest.vocab_file)} is not the run's vocabulary (vocab_sha256 differs)")
        for name, values in _records(folder, manifest):
            yield join(folder, name), decoded_instance(values), vocab


def instance_json(instance, vocab) -> dict:
    return {
        "input_ids": instance.input_ids,
        "tokens": [vocab.tokens[i] for i in instance.input_ids],
        "segment_ids": instance.segment_ids,
        "masked_positions": instance.masked_positions,
        "masked_ids": instance.masked_ids,
        "masked_original": [vocab.tokens[i] for i in instance.masked_ids],
        "word_ids": instance.word_ids,
        "next_sentence_label": instance.next_sentence_label,
    }


def instance_text(instance, vocab) -> str:
    """Tokens as fed to the model; a masked one as ``fed(original)``, like the README's table;
    with word ids, a word's tokens are joined by '·' and words separated by spaces."""
    tokens = [vocab.tokens[i] for i in instance.input_ids]
    for position, original in zip(instance.masked_positions, instance.masked_ids):
        tokens[position] = f"{tokens[position]}({vocab.tokens[original]})"
    if not instance.word_ids:
        return " ".join(tokens)
    text = tokens[0]
    for previous, word, token in zip(instance.word_ids, instance.word_ids[1:], tokens[1:]):
        text += ("·" if word and word == previous else " ") + token
    return text


def inspect_main(argv) -> None:
    parser = argparse.ArgumentParser(prog="wwm inspect", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("path", help="a run's --output folder (with manifest.json), one phase's folder, or one "
                        ".tfrecord shard")
    parser.add_argument("--limit", type=int, default=10, help="instances to show (0: all)")
    parser.add_argument("--index", type=int, help="show only the instance with this number (counted from 0)")
    parser.add_argument("--json", action="store_true", help="one JSON object per instance (ids and tokens)")
    parser.add_argument("--vocab_file", help="vocabulary to decode with (default: the run's vocab.txt)")
    args = parser.parse_args(argv)
    try:
        shown = seen = 0
        for number, (file, instance, vocab) in enumerate(iter_instances(args.path, vocab_file=args.vocab_file)):
            seen = number + 1
            if args.index is not None and number != args.index:
                continue
            if args.limit and shown >= args.limit:
                break
            shown += 1
            if args.json:
                print(json.dumps({"index": number, "file": file, **instance_json(instance, vocab)}, ensure_ascii=False))
            else:
                name = FileSystems.split(file)[1]
                print(f"# {number}  {name}  next_sentence_label={instance.next_sentence_label}  "
                      f"masked={len(instance.masked_positions)}")
                print(instance_text(instance, vocab))
            if args.index is not None:
                break
        if args.index is not None and not shown:
            raise UsageError(f"--index {args.index}: there are only {seen} instances")
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error
