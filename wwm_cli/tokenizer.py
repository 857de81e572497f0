"""``wwm tokenizer train``: a WordPiece or BPE vocabulary trained on prepared documents (the Parquet of
``wwm prepare``) with the ``tokenizers`` library, audited on a held-out share of the documents.

Writes OUTPUT/tokenizer.json (what ``wwm run --tokenizer OUTPUT`` reads), tokenizer_config.json (the
special tokens' roles), vocab.txt (WordPiece: what ``--vocab_file`` reads) and, last,
manifest.json (kind "tokenizer": settings, inputs, counters and the audit that ``wwm report
OUTPUT`` shows).
"""
import collections
import dataclasses
import json
import logging

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.common import RunInfo, write_manifest
from pipelines.io_utils import join, read_bytes
from pipelines.output import claim_output, write_atomically
from pipelines.parquet_io import DOCUMENTS_FOLDER
from wwm_cli.flags import boolean
from wwm_core.errors import UsageError
from wwm_core.hashing import stable_hash
from wwm_core.helptext import parser as make_parser
from wwm_core.manifest import MANIFEST, Manifest, parse_manifest
from wwm_core.tokenizer_training import MODELS, TokenizerSettings, audit, tokenizer_config, train
from wwm_core.tokenization import HuggingFaceTokenizer, tokenize_sentences
from wwm_core.vocab import TOKENIZER_FILE, Vocab

log = logging.getLogger("wwm")
MAX_AUDIT_SENTENCES = 50_000


def tokenizer_main(argv) -> dict:
    parser = make_parser("wwm tokenizer", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train a WordPiece or BPE vocabulary on prepared documents",
                                       description=__doc__, formatter_class=parser.formatter_class)
    add = train_parser.add_argument
    add("--input", action="append", required=True,
        help="a `wwm prepare` output folder, or a glob of its documents' Parquet files; may be repeated")
    add("--output", required=True, help="folder for tokenizer.json and its manifest (local or gs://)")
    add("--model", choices=MODELS, default="bpe", help="bpe (byte-level unless --byte_level false), or wordpiece "
        "(BERT's layout: one token per Chinese character)")
    add("--vocab_size", type=int, default=32_000, help="tokens in the vocabulary, special tokens included")
    add("--byte_level", type=boolean, default=True, help="bpe: byte-level (every character representable)")
    add("--character_coverage", type=float, default=0.9995,
        help="wordpiece and character bpe: the alphabet is the most frequent characters that make up this share "
        "of the text's characters; rarer ones become the unknown token")
    add("--min_frequency", type=int, default=2, help="merges seen fewer times are not learnt")
    add("--lowercase", type=boolean, default=False, help="lowercase before tokenizing (Chinese has no case)")
    add("--special_tokens", help="the special tokens, comma-separated (default: [PAD],[UNK],[CLS],[SEP],[MASK] for "
        "wordpiece, <s>,<pad>,</s>,<unk>,<mask> for bpe)")
    add("--heldout_share", type=float, default=0.01,
        help="documents (by a hash of their id) kept out of training and used for the audit")
    add("--overwrite", action="store_true", help="replace a tokenizer already in --output")
    args = parser.parse_args(argv)
    return train_command(args, argv)


def document_files(inputs) -> list:
    files = []
    for item in inputs:
        pattern = item if item.endswith(".parquet") or "*" in item else join(item, DOCUMENTS_FOLDER, "*.parquet")
        matched = [m for m in FileSystems.match([pattern])[0].metadata_list]
        if not matched:
            raise UsageError(f"--input {item}: no prepared documents ({pattern} matches nothing; `wwm prepare` "
                             "writes them)")
        files += [{"path": m.path, "bytes": m.size_in_bytes} for m in matched]
    return sorted(files, key=lambda f: f["path"])


def documents(files):
    """(id, sentences) of every prepared document, file by file, batch by batch."""
    for item in files:
        with FileSystems.open(item["path"]) as handle:
            table = pq.ParquetFile(handle)
            for batch in table.iter_batches(columns=["id", "sentences"], batch_size=1024):
                for doc_id, sentences in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                    yield doc_id, sentences or []


def is_heldout(doc_id, share: float) -> bool:
    return stable_hash("tokenizer-heldout", doc_id) % 10_000 < share * 10_000


def train_command(args, argv) -> dict:
    try:
        settings = TokenizerSettings(
            model=args.model, vocab_size=args.vocab_size, byte_level=args.byte_level,
            character_coverage=args.character_coverage, min_frequency=args.min_frequency, lowercase=args.lowercase,
            special_tokens=tuple(t.strip() for t in args.special_tokens.split(",") if t.strip())
            if args.special_tokens else ())
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not 0 <= args.heldout_share < 0.5:
        raise UsageError("--heldout_share must be in [0, 0.5)")
    files = document_files(args.input)
    command = ("wwm", "tokenizer", "train", *argv)
    # --output is this command's before any work (another's files, or a tokenizer already there
    # without --overwrite, refused in one line), and it writes only its own files, whole.
    with claim_output(args.output, overwrite=args.overwrite, command=command):
        return train_into(args, settings, files, RunInfo(command=command, inputs=files))


def train_into(args, settings, files, run_info) -> dict:
    """Trains the tokenizer and writes it, its audit and its manifest into the claimed --output."""
    counters = collections.Counter()
    characters = collections.Counter() if not settings.byte_level_bpe else None
    heldout = []

    def training_texts(count: bool):
        for doc_id, sentences in documents(files):
            if is_heldout(doc_id, args.heldout_share):
                if count:
                    counters["documents.heldout"] += 1
                    if len(heldout) < MAX_AUDIT_SENTENCES:
                        heldout.extend(sentences[:MAX_AUDIT_SENTENCES - len(heldout)])
                continue
            if count:
                counters["documents.training"] += 1
                counters["sentences.training"] += len(sentences)
                counters["characters.training"] += sum(map(len, sentences))
                if characters is not None:
                    for sentence in sentences:
                        characters.update(sentence)
            yield from sentences

    if characters is not None:  # the alphabet needs the characters first: one pass to count them
        for _ in training_texts(count=True):
            pass
        tokenizer = train(training_texts(count=False), settings, character_counts=characters)
    else:
        tokenizer = train(training_texts(count=True), settings)
    if not counters["documents.training"]:
        raise UsageError("no document was left to train on (all held out, or the input is empty)")
    data = tokenizer.to_str().encode("utf-8")
    config = tokenizer_config(settings)
    vocab = Vocab.from_tokenizer_json(data, config=json.dumps(config).encode())
    report = audit(tokenize_sentences(HuggingFaceTokenizer(data), heldout), heldout,
                   unknown_id=vocab.special_id("unk")) if heldout else None
    written = {TOKENIZER_FILE: data, "tokenizer_config.json": json.dumps(config, indent=2).encode("utf-8")}
    if settings.model == "wordpiece":
        written["vocab.txt"] = "".join(f"{token}\n" for token in vocab.tokens).encode("utf-8")
    for name, content in written.items():
        write_atomically(join(args.output, name), content)
    counters["sentences.heldout"] = len(heldout)
    manifest = Manifest(
        kind="tokenizer", **run_info.fields(), files=tuple(written),
        config={"tokenizer": {**dataclasses.asdict(settings), "special_tokens": list(settings.specials)},
                "heldout_share": args.heldout_share},
        counters=dict(sorted(counters.items())), num_documents=counters["documents.training"],
        vocab_file=TOKENIZER_FILE, vocab_size=vocab.size, vocab_sha256=vocab.sha256,
        special_tokens=vocab.special_tokens(), statistics={"audit": report})
    write_manifest(args.output, manifest)
    print(f"wrote {join(args.output, TOKENIZER_FILE)}: {settings.model}{' (byte-level)' if settings.byte_level_bpe else ''}, "
          f"{vocab.size:,} tokens, trained on {counters['documents.training']:,} documents "
          f"({counters['characters.training']:,} characters)")
    if report:
        print(f"audit on {report['sentences']:,} held-out sentences: unknown tokens {report['unknown_rate']:.4%}, "
              f"{report['characters_per_token']:.3f} characters per token, Chinese characters covered "
              f"{report['cjk_covered_share']:.4%}" if report["cjk_characters"] else
              f"audit on {report['sentences']:,} held-out sentences: unknown tokens {report['unknown_rate']:.4%}")
    return manifest.to_json()


def read_tokenizer_manifest(folder: str) -> Manifest:
    path = join(folder, MANIFEST)
    return parse_manifest(read_bytes(path), path=path, kinds=("tokenizer",))
