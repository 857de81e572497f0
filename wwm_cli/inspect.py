"""``wwm inspect``: what an output holds, decoded.

    a run (one phase or several), a phase's folder, a .tfrecord shard   instances: tokens, masks, word groups
    a `wwm prepare` output                                              documents: source, title, sentences
    a `wwm segment` cache (PREPARED/segmentation[/<segmenter>])         sentences split into the cached words

Instances show a masked token as ``fed(original)``; with word ids (Parquet output, or dynamic
masking) the tokens of one word are joined by '·' and words are separated by spaces. Static
TFRecords (Google's schema) carry no word ids: only the masks show which words were grouped.
"""
import contextlib
import json
import sys

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.io_utils import exists, join, read_bytes
from pipelines.parquet_io import DOCUMENTS_FOLDER
from pipelines.word_cache import SEGMENTATION_FOLDER, SEGMENTATION_MANIFEST
from wwm_core.errors import UsageError
from wwm_core.helptext import parser as make_parser
from wwm_core.manifest import MANIFEST, parse_manifest
from wwm_core.records import decode_example, decoded_instance, read_tfrecords
from wwm_core.vocab import Vocab, vocab_of_manifest
from wwm_core.word_boundaries import sentence_key

NO_WORD_IDS = ("word groups: static TFRecords (Google's schema) carry no word ids, so only the masks show which "
               "tokens were masked together; make the data with --output_format parquet (or both) or --masking "
               "dynamic to see every word")


# ---------------------------------------------------------------- instances

def _instance_manifests(path: str) -> list:
    """(folder, manifest) of every phase under ``path`` (a run's output or one phase's folder)."""
    manifest_path = join(path, MANIFEST)
    manifest = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("instances", "phases"))
    if manifest.kind == "instances":
        return [(path, manifest)]
    return [folder_and_manifest for phase in manifest.phases
            for folder_and_manifest in _instance_manifests(join(path, phase["manifest"].rsplit("/", 1)[0]))]


def _records(folder: str, manifest, *, prefer_parquet: bool = False):
    """The {feature or column: values} of every instance of a phase: TFRecords first, unless
    ``prefer_parquet`` and the run wrote Parquet too (it holds word ids; both hold the same
    instances in the same order)."""
    if manifest.parquet_files and (prefer_parquet or not manifest.files):
        for name in manifest.parquet_files:
            for row in _parquet_rows(join(folder, name)):
                yield name, row
        return
    for name in manifest.files:
        with FileSystems.open(join(folder, name)) as handle:
            for record in read_tfrecords(handle):
                yield name, decode_example(record)


def iter_instances(path: str, *, vocab_file=None, phase: int = None, prefer_parquet: bool = False):
    """Yields (file, DecodedInstance, vocab) for every instance of a run folder or one shard;
    ``phase``: only that max_seq_length's; ``prefer_parquet``: read the Parquet files of a run
    that wrote both formats (they hold word ids)."""
    if path.endswith(".tfrecord"):
        folder = FileSystems.split(path)[0]
        beside = join(folder, MANIFEST)
        if vocab_file is None and FileSystems.exists(beside):
            manifest = parse_manifest(read_bytes(beside), path=beside, kinds=("instances",))
            vocab = vocab_of_manifest(manifest, read_bytes(join(folder, manifest.vocab_file)))
        else:
            vocab = Vocab.from_bytes(read_bytes(vocab_file or join(folder, "vocab.txt")))
        with FileSystems.open(path) as handle:
            for record in read_tfrecords(handle):
                yield path, decoded_instance(decode_example(record)), vocab
        return
    manifests = _instance_manifests(path)
    if phase is not None:
        manifests = [(folder, m) for folder, m in manifests if m.max_seq_length == phase]
        if not manifests:
            raise UsageError(f"--phase {phase}: {path} has no phase of that max_seq_length")
    for folder, manifest in manifests:
        vocab = (Vocab.from_bytes(read_bytes(vocab_file)) if vocab_file
                 else vocab_of_manifest(manifest, read_bytes(join(folder, manifest.vocab_file))))
        if vocab_file is None and vocab.sha256 != manifest.vocab_sha256:
            raise UsageError(f"{join(folder, manifest.vocab_file)} is not the run's vocabulary (vocab_sha256 differs)")
        for name, values in _records(folder, manifest, prefer_parquet=prefer_parquet):
            yield join(folder, name), decoded_instance(values), vocab


def word_groups(instance) -> list:
    """[[position, ...] per word] from word ids (0: [CLS], [SEP], padding: no word)."""
    groups, last = [], None
    for position, word in enumerate(instance.word_ids):
        if not word:
            last = None
            continue
        if word != last:
            groups.append([])
            last = word
        groups[-1].append(position)
    return groups


def instance_json(instance, vocab) -> dict:
    return {
        "input_ids": instance.input_ids,
        "tokens": [vocab.tokens[i] for i in instance.input_ids],
        "segment_ids": instance.segment_ids,
        "masked_positions": instance.masked_positions,
        "masked_ids": instance.masked_ids,
        "masked_original": [vocab.tokens[i] for i in instance.masked_ids],
        "word_ids": instance.word_ids,
        "word_groups": word_groups(instance),
        "next_sentence_label": instance.next_sentence_label,
        **({"document_starts": instance.document_starts} if instance.document_starts else {}),
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


def _show_instances(args) -> None:
    said_no_word_ids = False
    instances = iter_instances(args.path, vocab_file=args.vocab_file, phase=args.phase, prefer_parquet=True)
    for number, (file, instance, vocab) in _picked(instances, args, "instances"):
        if args.json:
            print(json.dumps({"index": number, "file": file, **instance_json(instance, vocab)}, ensure_ascii=False))
            continue
        name = FileSystems.split(file)[1]
        print(f"# {number}  {name}  next_sentence_label={instance.next_sentence_label}  "
              f"masked={len(instance.masked_positions)}  words={len(word_groups(instance)) or '-'}")
        print(instance_text(instance, vocab))
        if not instance.word_ids and not said_no_word_ids:
            print(f"note: {NO_WORD_IDS}", file=sys.stderr)  # stdout stays one instance per two lines
            said_no_word_ids = True


# ---------------------------------------------------------------- prepared documents

def iter_documents(prepared: str):
    """Yields every document row ({"id", "source", "title", "sentences", "changes"}) of a
    ``wwm prepare`` output, in its files' order."""
    manifest_path = join(prepared, MANIFEST)
    manifest = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("documents",))
    for name in manifest.files:
        yield from _parquet_rows(join(prepared, name))


def _parquet_rows(path: str) -> list:
    """A Parquet file's rows, the file closed again before any is used: a reader that stops early
    leaves no file half-read (pyarrow aborts the interpreter at exit over one).

    A local file is given to pyarrow by its path: read through a Python file object, even whole,
    the process still aborted at exit now and then (apache/arrow#34314; how often:
    docs/reliability.md, "Known problems upstream")."""
    if "://" not in path:
        return pq.read_table(path, pre_buffer=False, use_threads=False).to_pylist()
    with FileSystems.open(path) as handle:
        # Through a Python handle, pyarrow's pre-buffering and its thread pool can still be at work
        # on the handle after the read returns and abort the interpreter at exit ("terminate
        # called without an active exception": apache/arrow#33975): read on this thread only.
        return pq.read_table(handle, pre_buffer=False, use_threads=False).to_pylist()


def _show_documents(args) -> None:
    for number, row in _picked(iter_documents(args.path), args, "documents"):
        if args.json:
            print(json.dumps({"index": number, **row}, ensure_ascii=False))
            continue
        print(f"# {number}  {row['id']}  source={row['source']}  title={row['title']}  "
              f"sentences={len(row['sentences'])}  changes={row['changes']}")
        for sentence in row["sentences"]:
            print(f"  {sentence}")


# ---------------------------------------------------------------- segmentation cache

def cache_folders(path: str) -> list:
    """The finished cache folders at ``path``: itself (PREPARED/segmentation/<key>), or every one
    below PREPARED/segmentation."""
    if exists(join(path, SEGMENTATION_MANIFEST)):
        return [path]
    matches = FileSystems.match([join(path, "*", SEGMENTATION_MANIFEST)])[0].metadata_list
    return sorted(FileSystems.split(m.path)[0] for m in matches)


def iter_segmented(folder: str, *, wanted=None):
    """Yields (document row, [[word, ...] per sentence]) of a segmentation cache folder, its
    documents read from the prepared output two levels up. ``wanted(number)`` says which cache
    rows to look up (the rest are skipped unread)."""
    manifest_path = join(folder, SEGMENTATION_MANIFEST)
    manifest = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("segmentation",))
    prepared = FileSystems.split(FileSystems.split(folder.rstrip("/"))[0])[0]
    rows, number = [], 0
    for name in manifest.files:
        for row in _parquet_rows(join(folder, name)):
            if wanted is None or wanted(number):
                rows.append((number, row))
            number += 1
    needed = {row["id"] for _, row in rows}
    documents = {}
    for document in iter_documents(prepared):
        if document["id"] in needed:
            documents[document["id"]] = document
            if len(documents) == len(needed):
                break
    for number, row in rows:
        document = documents.get(row["id"])
        if document is None:
            raise UsageError(f"{folder}: document {row['id']!r} is not in {prepared} (was it prepared again?)")
        lengths = dict(zip(row["sentence_keys"], row["word_lengths"]))
        sentences = []
        for sentence in document["sentences"]:
            words, start = [], 0
            for length in lengths.get(sentence_key(sentence), [len(sentence)]):
                words.append(sentence[start:start + length])
                start += length
            sentences.append(words)
        yield number, document, sentences


def _show_segmentation(args) -> None:
    folders = cache_folders(args.path)
    if not folders:
        raise UsageError(f"{args.path} holds no finished segmentation cache ({SEGMENTATION_MANIFEST})")
    start = args.index if args.index is not None else 0
    stop = start + 1 if args.index is not None else (start + args.limit if args.limit else None)
    for folder in folders:
        manifest_path = join(folder, SEGMENTATION_MANIFEST)
        identity = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("segmentation",)).identity
        if not args.json:
            print(f"## {folder}: {json.dumps(identity, ensure_ascii=False)}")
        shown = 0
        for number, document, sentences in iter_segmented(
                folder, wanted=lambda n: n >= start and (stop is None or n < stop)):
            shown += 1
            if args.json:
                print(json.dumps({"index": number, "cache": folder, "id": document["id"],
                                  "sentences": [{"words": words, "word_lengths": [len(w) for w in words]}
                                                for words in sentences]}, ensure_ascii=False))
                continue
            print(f"# {number}  {document['id']}  source={document['source']}  title={document['title']}")
            for words in sentences:
                print("  " + " / ".join(words))
        if args.index is not None and not shown:
            raise UsageError(f"--index {args.index}: {folder} has fewer documents")


# ---------------------------------------------------------------- the command

def _picked(items, args, what: str):
    """(number, item) of the items --index or --limit picks; ``items`` is closed when done."""
    seen = 0
    with contextlib.closing(items):
        for number, item in enumerate(items):
            seen = number + 1
            if args.index is not None:
                if number == args.index:
                    yield number, item
                    return
                continue
            if args.limit and number >= args.limit:
                return
            yield number, item
    if args.index is not None:
        raise UsageError(f"--index {args.index}: there are only {seen} {what}")


def output_kind(path: str) -> str:
    """instances, documents or segmentation: what ``path`` holds."""
    if path.endswith(".tfrecord"):
        return "instances"
    manifest_path = join(path, MANIFEST)
    if exists(manifest_path):
        kind = parse_manifest(read_bytes(manifest_path), path=manifest_path).kind
        return "instances" if kind in ("instances", "phases") else kind
    if cache_folders(path):
        return "segmentation"
    if exists(join(path, SEGMENTATION_FOLDER)):
        raise UsageError(f"{path}/{SEGMENTATION_FOLDER} holds no finished cache; `wwm segment` writes one")
    raise UsageError(f"{manifest_path} not found: {path} is not the output of a finished `wwm run`, `wwm prepare` or "
                     f"`wwm segment` (inspect takes the --output folder, a phase folder, PREPARED/{SEGMENTATION_FOLDER}"
                     f", PREPARED/{DOCUMENTS_FOLDER}/.. or a .tfrecord shard)")


def inspect_main(argv) -> None:
    parser = make_parser("wwm inspect", __doc__)
    parser.add_argument("path", help="a run's --output folder, one phase's folder, a .tfrecord shard, a `wwm prepare` "
                        "output, or a segmentation cache (PREPARED/segmentation or one segmenter's folder in it)")
    parser.add_argument("--limit", type=int, default=10, help="instances or documents to show (0: all)")
    parser.add_argument("--index", type=int, help="show only the instance or document with this number (from 0; "
                        "instances of several phases are numbered on, shortest phase first)")
    parser.add_argument("--phase", type=int, help="only this phase's instances (its max_seq_length)")
    parser.add_argument("--json", action="store_true", help="one JSON object a line: ids (input_ids, segment_ids, "
                        "masked_positions, masked_ids, word_ids), tokens and word groups; documents and words")
    parser.add_argument("--vocab_file", help="vocabulary to decode with (default: the run's vocab.txt)")
    args = parser.parse_args(argv)
    args.path = args.path.rstrip("/") or args.path
    if args.path.endswith(f"/{DOCUMENTS_FOLDER}"):  # PREPARED/documents: the prepared output is one up
        args.path = FileSystems.split(args.path)[0]
    show = {"instances": _show_instances, "documents": _show_documents, "segmentation": _show_segmentation}
    try:
        show[output_kind(args.path)](args)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from error
