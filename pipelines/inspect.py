"""``wwm inspect``: decode a run's instances with the run's vocabulary."""
import argparse
import json

from apache_beam.io.filesystems import FileSystems

from wwm_core.records import decode_example, decoded_instance, read_tfrecords
from wwm_core.vocab import Vocab
from wwm_core.errors import UsageError
from pipelines.generate_pipeline import MANIFEST, VOCAB
from pipelines.io_utils import join, read_bytes


def _files_and_vocab(path: str, vocab_file):
    if path.endswith(".tfrecord") or path.endswith(".tfrecord.gz"):
        folder = FileSystems.split(path)[0]
        return [path], Vocab.from_bytes(read_bytes(vocab_file or join(folder, VOCAB)))
    manifest_path = join(path, MANIFEST)
    if not FileSystems.exists(manifest_path):
        raise FileNotFoundError(f"{manifest_path} not found: is {path} the --output of a finished wwm run?")
    manifest = json.loads(read_bytes(manifest_path))
    vocab = Vocab.from_bytes(read_bytes(vocab_file or join(path, manifest["vocab_file"])))
    if vocab.sha256 != manifest["vocab_sha256"]:
        raise ValueError("the vocabulary does not match the run's (vocab_sha256 differs)")
    return [join(path, name) for name in manifest["files"]], vocab


def iter_instances(path: str, *, vocab_file=None):
    """Yields (file, DecodedInstance, vocab) for every instance of a run folder or one shard."""
    files, vocab = _files_and_vocab(path, vocab_file)
    for file in files:
        with FileSystems.open(file) as handle:
            for record in read_tfrecords(handle):
                yield file, decoded_instance(decode_example(record)), vocab


def instance_json(instance, vocab) -> dict:
    return {
        "tokens": [vocab.tokens[i] for i in instance.input_ids],
        "segment_ids": instance.segment_ids,
        "masked_positions": instance.masked_positions,
        "masked_original": [vocab.tokens[i] for i in instance.masked_ids],
        "next_sentence_label": instance.next_sentence_label,
    }


def instance_text(instance, vocab) -> str:
    """Tokens as fed to the model; a masked one as ``fed(original)``, like the README's table."""
    tokens = [vocab.tokens[i] for i in instance.input_ids]
    for position, original in zip(instance.masked_positions, instance.masked_ids):
        tokens[position] = f"{tokens[position]}({vocab.tokens[original]})"
    return " ".join(tokens)


def inspect_main(argv) -> None:
    parser = argparse.ArgumentParser(prog="wwm inspect", description=__doc__)
    parser.add_argument("path", help="a run's --output folder (with manifest.json) or one .tfrecord shard")
    parser.add_argument("--limit", type=int, default=10, help="instances to show (0: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per instance")
    parser.add_argument("--vocab_file", help="vocabulary to decode with (default: the run's vocab.txt)")
    args = parser.parse_args(argv)
    try:
        instances = iter_instances(args.path, vocab_file=args.vocab_file)
        for number, (file, instance, vocab) in enumerate(instances):
            if args.limit and number >= args.limit:
                break
            if args.json:
                print(json.dumps(instance_json(instance, vocab), ensure_ascii=False))
            else:
                name = FileSystems.split(file)[1]
                print(f"# {number}  {name}  next_sentence_label={instance.next_sentence_label}  "
                      f"masked={len(instance.masked_positions)}")
                print(instance_text(instance, vocab))
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error
