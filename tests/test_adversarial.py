"""Adversarial input and faults, through the real commands (``wwm prepare`` / ``wwm run`` on Beam's
local runner) on files written here: compression faults, XML attacks and broken dumps, hostile
JSON, encodings and line endings, Parquet that breaks its schema, damaged models, and outputs that
are files, read-only, full, or owned by another run.

Every case asserts the exact dead-letter reason or error line and the accounting. To keep the
module fast, the reader cases share one run per input format (a module-scoped fixture), and each
test checks its own files: their documents (by id) and dead letters (by the path in their detail).
"""
import bz2
import collections
import gzip
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wwm_cli import main
from wwm_cli.data import prepare, run
from pipelines.output import LOCK_NAME, UNFINISHED_NAME, claim_output, file_checksum, write_atomically
from tests.test_prepare import HEADER, page

LOCAL = ["--runner=BundleBasedDirectRunner"]
FOOTER = "</mediawiki>\n"


def sentences_of(i, n=3):
    return [f"这是第{i}篇文档的第{s}句话，讲述全词掩码。" for s in range(n)]


def text_corpus(first, count):
    """Google's layout: documents of three sentences, a blank line between them."""
    return "".join("\n".join(sentences_of(i)) + "\n\n" for i in range(first, first + count))


def line_starts(data: bytes) -> list:
    """Where each line of ``data`` begins: the position a record's id holds."""
    return [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == ord("\n")]


class Outcome:
    """What a run made of each input file: its documents and its dead letters."""

    def __init__(self, manifest, documents, dead_letters):
        self.manifest = manifest
        self.counters = manifest["counters"]
        self.documents = documents  # id -> row (prepare) or id -> True (run)
        self.dead_letters = dead_letters

    def dead(self, path) -> list:
        """The reasons of the dead letters whose detail names ``path``, sorted."""
        return sorted(row["reason"] for row in self.dead_letters if str(path) in row["detail"])

    def ids(self, name) -> list:
        return sorted(i for i in self.documents if i.startswith(name))


def read_dead_letters(folder) -> list:
    return [json.loads(line) for f in sorted((folder / "dead_letter").glob("*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines()]


def prepared(folder, inputs, *flags) -> Outcome:
    manifest = prepare([f"--input={i}" for i in inputs] + [f"--output={folder}", "--dedup=none", *flags, *LOCAL])
    rows = [row for f in sorted((folder / "documents").glob("*.parquet")) for row in pq.read_table(f).to_pylist()]
    assert manifest["accounting"]["balanced"]
    assert manifest["num_documents"] == len(rows)
    return Outcome(manifest, {row["id"]: row for row in rows}, read_dead_letters(folder))


def balance(outcome) -> tuple:
    a = outcome.manifest["accounting"]
    return a["records_in"], a["out"], a["filtered"], a["dead_lettered"]


# ---------------------------------------------------------------- compression, encodings, line endings

def corrupt(data: bytes, at: int, length: int = 64) -> bytes:
    return data[:at] + bytes(b ^ 0xFF for b in data[at:at + length]) + data[at + length:]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """One `wwm prepare` over every text-format case."""
    folder = tmp_path_factory.mktemp("text")
    files = {}

    def add(name, data):
        files[name] = folder / name
        files[name].write_bytes(data)

    add("good.txt", text_corpus(0, 4).encode())
    # 64 bytes flipped in the middle of a one-member gzip: Python's gzip would hand out the
    # (garbage) text before the CRC at its end fails.
    single = gzip.compress(text_corpus(100, 400).encode())
    add("corrupt.txt.gz", corrupt(single, len(single) // 2))
    # Three members of 50 documents; the middle one corrupted: its documents are lost, as one
    # dead letter, the others kept.
    members = [gzip.compress(text_corpus(200 + 50 * m, 50).encode()) for m in range(3)]
    add("members.txt.gz", members[0] + corrupt(members[1], len(members[1]) // 2) + members[2])
    streams = [bz2.compress(text_corpus(400 + 50 * m, 50).encode()) for m in range(3)]
    flipped = bytearray(streams[1])
    flipped[len(flipped) // 2] ^= 0x10  # one bit: libbz2's block CRC
    add("streams.txt.bz2", streams[0] + bytes(flipped) + streams[2])
    whole = gzip.compress(text_corpus(600, 20).encode())
    add("truncated.txt.gz", whole[:-30])  # inside the last document
    add("garbage.txt.gz", gzip.compress(text_corpus(650, 5).encode()) + b"not gzip at all")  # trailing garbage
    add("bomb.txt.gz", gzip.compress(b"\0" * (65 * 1024 * 1024)))  # a 65 MB line: over the 64 MB record limit
    add("cr_only.txt", text_corpus(700, 3).replace("\n", "\r").encode())
    add("utf16_no_bom.txt", text_corpus(800, 3).encode("utf-16-le"))
    add("utf16_bom.txt", text_corpus(900, 3).encode("utf-16"))
    add("utf8_bom.txt", b"\xef\xbb\xbf" + text_corpus(1000, 2).encode())
    inputs = list(files.values()) + [files["good.txt"]]  # one file listed twice
    return files, prepared(folder / "out", inputs)


def test_gzip_with_corrupted_bytes_gives_no_text_only_a_dead_letter(text_run):
    files, outcome = text_run
    assert outcome.ids("text:corrupt.txt.gz") == []
    assert outcome.dead(files["corrupt.txt.gz"]) == ["corrupt_compressed_data"]


def test_a_corrupt_gzip_member_costs_its_records_not_the_file(text_run):
    files, outcome = text_run
    kept = [outcome.documents[i]["sentences"] for i in outcome.ids("text:members.txt.gz")]
    # Where the lost bytes ended is unknown: the document that follows them (300) goes with them.
    assert sorted(kept) == sorted(sentences_of(i) for i in [*range(200, 250), *range(301, 350)])
    assert outcome.dead(files["members.txt.gz"]) == ["corrupt_compressed_data"]


def test_a_bz2_stream_with_one_flipped_bit_costs_its_records_not_the_file(text_run):
    files, outcome = text_run
    kept = [outcome.documents[i]["sentences"] for i in outcome.ids("text:streams.txt.bz2")]
    assert sorted(kept) == sorted(sentences_of(i) for i in [*range(400, 450), *range(501, 550)])
    assert outcome.dead(files["streams.txt.bz2"]) == ["corrupt_compressed_data"]


def test_a_truncated_gzip_member_is_never_read_its_crc_cannot_be_checked(text_run):
    files, outcome = text_run
    # zlib hands out most of the cut member without an error, but the CRC that would vouch for it
    # is in the trailer that was cut off.
    whole = zlib.decompressobj(wbits=31).decompress(files["truncated.txt.gz"].read_bytes()).decode()
    assert 0 < whole.count("\n\n") < 20
    assert outcome.ids("text:truncated.txt.gz") == []
    assert outcome.dead(files["truncated.txt.gz"]) == ["truncated_compressed_file"]


def test_a_flipped_bit_in_a_truncated_gzip_never_becomes_text(tmp_path):
    data = bytearray(gzip.compress(text_corpus(0, 200).encode(), compresslevel=0))  # stored: no deflate errors
    data[len(data) // 2] ^= 0x01  # inside a character: still valid UTF-8, a different character
    corpus = tmp_path / "cut.txt.gz"
    corpus.write_bytes(bytes(data[:-100]))
    outcome = prepared(tmp_path / "out", [corpus])
    assert outcome.documents == {} and outcome.dead(corpus) == ["truncated_compressed_file"]
    assert balance(outcome) == (1, 0, 0, 1)


def test_trailing_garbage_after_the_last_member_is_a_dead_letter(text_run):
    files, outcome = text_run
    assert len(outcome.ids("text:garbage.txt.gz")) == 5
    assert outcome.dead(files["garbage.txt.gz"]) == ["corrupt_compressed_data"]


def test_a_decompression_bomb_is_one_dead_letter(text_run):
    files, outcome = text_run
    assert outcome.ids("text:bomb.txt.gz") == []
    assert outcome.dead(files["bomb.txt.gz"]) == ["record_too_large"]


def test_cr_only_line_endings_are_line_breaks(text_run):
    files, outcome = text_run
    kept = [outcome.documents[i]["sentences"] for i in outcome.ids("text:cr_only.txt")]
    assert sorted(kept) == sorted(sentences_of(i) for i in range(700, 703))
    assert outcome.counters["files_with_cr_line_ends"] == 1


def test_utf16_without_a_byte_order_mark_is_refused_not_merged(text_run):
    files, outcome = text_run
    assert outcome.ids("text:utf16_no_bom.txt") == []
    assert outcome.dead(files["utf16_no_bom.txt"]) == ["utf16_without_bom"]


def test_utf16_and_utf8_with_a_byte_order_mark_are_decoded(text_run):
    files, outcome = text_run
    for name, first in (("utf16_bom.txt", 900), ("utf8_bom.txt", 1000)):
        kept = [outcome.documents[i]["sentences"] for i in outcome.ids(f"text:{name}")]
        assert sorted(kept) == sorted(sentences_of(i) for i in range(first, first + len(kept))) and kept, name
    assert outcome.counters["files_decoded_from_utf_16_le"] == 1 and outcome.counters["files_with_utf8_bom"] == 1


def test_a_file_listed_twice_is_read_once(text_run):
    files, outcome = text_run
    # A document's id holds the byte its first line begins at: 0, then after each blank line.
    document_bytes = len(("\n".join(sentences_of(0)) + "\n\n").encode())
    assert outcome.ids("text:good.txt") == sorted(f"text:good.txt@{n * document_bytes}" for n in range(4))
    assert outcome.dead(files["good.txt"]) == ["duplicate_input_file"]


def test_text_accounting_is_exact(text_run):
    files, outcome = text_run
    out = 4 + 99 + 99 + 5 + 3 + 3 + 2  # nothing of the truncated gzip member
    dead = {"corrupt_compressed_data": 4, "truncated_compressed_file": 1, "record_too_large": 1,
            "utf16_without_bom": 1, "duplicate_input_file": 1}
    assert {k[len("dead_lettered."):]: v for k, v in outcome.counters.items() if k.startswith("dead_lettered.")} == dead
    # The bomb's line is a record, never text; no document is filtered.
    assert balance(outcome) == (out + sum(dead.values()), out, 0, sum(dead.values()))


# ---------------------------------------------------------------- JSON lines

def test_hostile_json_lines_are_dead_letters_never_the_end_of_the_run(tmp_path):
    corpus = tmp_path / "hostile.jsonl"
    corpus.write_bytes(b"\n".join([
        b'\xef\xbb\xbf{"text": "\xe7\xac\xac\xe4\xb8\x80\xe8\xa1\x8c\xe3\x80\x82"}',  # a UTF-8 BOM: still read
        b'{"text": "\\ud800 a lone surrogate"}',
        b'{"text": "ok", "title": "\\udfff"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"text": "big", "n": ' + b"7" * 5000 + b"}",
        b'{"text": "\\ud83d\\ude00 a real pair"}',
        b'{"text": "\xe6\x9c\x80\xe5\x90\x8e\xe4\xb8\x80\xe8\xa1\x8c\xe3\x80\x82"}',
    ]) + b"\n")
    outcome = prepared(tmp_path / "out", [corpus], "--input_format=jsonl")
    # Ids hold where each line begins in the text (the byte-order mark is not text).
    line = [f"jsonl:hostile.jsonl@{start}" for start in line_starts(corpus.read_bytes()[3:])]
    assert sorted(outcome.documents) == sorted([line[0], line[5], line[6]])
    assert outcome.documents[line[0]]["sentences"] == ["第一行。"]
    rows = {row["id"]: row["reason"] for row in outcome.dead_letters}
    assert rows == {line[1]: "lone_surrogate", line[2]: "lone_surrogate", line[3]: "json_nesting_too_deep",
                    line[4]: "json_number_too_long"}
    assert balance(outcome) == (7, 3, 0, 4)


# ---------------------------------------------------------------- wiki dumps

def wiki_page(page_id, text=None):
    return page(page_id, f"条目{page_id}", text if text is not None else f"'''条目{page_id}'''是第{page_id}个条目。")


@pytest.fixture(scope="module")
def wiki_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wiki")
    files = {}

    def add(name, data):
        files[name] = folder / name
        files[name].write_bytes(data if isinstance(data, bytes) else data.encode())

    pages = [wiki_page(i) for i in range(1, 6)]
    add("one_line.xml", (HEADER + "".join(pages) + FOOTER).replace("\n", ""))
    unclosed = wiki_page(12).replace("</page>", "")
    add("unclosed.xml", HEADER + wiki_page(11) + unclosed + wiki_page(13) + FOOTER)
    doctype = wiki_page(22).replace("<title>", '<!DOCTYPE t [<!ENTITY x "y">]><title>')
    add("doctype_in_page.xml", HEADER + wiki_page(21) + doctype + wiki_page(23) + FOOTER)
    add("header_dtd.xml", '<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY e "&#60;page&#62;">]>\n'
        + HEADER + wiki_page(31) + wiki_page(32) + FOOTER)
    add("too_complex.xml", HEADER + wiki_page(41, "{{a|" * 16384) + wiki_page(42) + FOOTER)  # 64 KB unclosed
    add("conversion.xml", HEADER + wiki_page(51, "-{" * 100_000 + "正文。") + FOOTER)  # linear, not quadratic
    add("no_pages.xml", "<html><body>not a dump</body></html>\n")
    add("utf16.xml", (HEADER + wiki_page(61) + FOOTER).encode("utf-16"))
    add("repeated_id.xml", HEADER + wiki_page(71) + wiki_page(71, "另一个文本。") + FOOTER)
    dump = (HEADER + "".join(wiki_page(i) for i in range(81, 91)) + FOOTER).encode()
    add("corrupt.xml.gz", corrupt(gzip.compress(dump), 200, 8))
    return files, prepared(folder / "out", list(files.values()), "--input_format=wiki")


def titles(outcome, name):
    return sorted(outcome.documents[i]["title"] for i in outcome.ids(f"wiki:{name}#"))


def test_one_line_xml_gives_every_page(wiki_run):
    files, outcome = wiki_run
    assert titles(outcome, "one_line.xml") == [f"条目{i}" for i in range(1, 6)]
    assert outcome.dead(files["one_line.xml"]) == []


def test_a_page_without_its_end_tag_is_counted_and_the_next_one_read(wiki_run):
    files, outcome = wiki_run
    assert titles(outcome, "unclosed.xml") == ["条目11", "条目13"]
    assert outcome.dead(files["unclosed.xml"]) == ["broken_xml_page"]


def test_a_doctype_inside_a_page_costs_that_page_only(wiki_run):
    files, outcome = wiki_run
    assert titles(outcome, "doctype_in_page.xml") == ["条目21", "条目23"]
    assert outcome.dead(files["doctype_in_page.xml"]) == ["unsafe_xml"]


def test_a_dtd_in_the_header_makes_every_page_a_dead_letter(wiki_run):
    files, outcome = wiki_run
    assert titles(outcome, "header_dtd.xml") == []
    assert outcome.dead(files["header_dtd.xml"]) == ["unsafe_xml", "unsafe_xml"]  # one per page, none expanded


def test_wikitext_over_the_parse_budget_is_page_too_complex(wiki_run):
    files, outcome = wiki_run
    assert titles(outcome, "too_complex.xml") == ["条目42"]
    (row,) = [r for r in outcome.dead_letters if r["id"] == "wiki:too_complex.xml#41"]
    assert row["reason"] == "page_too_complex" and "budget" in row["detail"]


def test_unclosed_conversion_markup_is_read_in_linear_time(wiki_run):
    _, outcome = wiki_run
    (document,) = [outcome.documents[i] for i in outcome.ids("wiki:conversion.xml#")]
    assert document["sentences"] == ["正文。"]  # "-{" left as text by the parser, then removed


def test_a_file_without_pages_is_a_dead_letter(wiki_run):
    files, outcome = wiki_run
    assert outcome.dead(files["no_pages.xml"]) == ["no_pages_found"]


def test_a_utf16_dump_with_a_byte_order_mark_is_read(wiki_run):
    _, outcome = wiki_run
    assert titles(outcome, "utf16.xml") == ["条目61"]


def test_a_repeated_page_id_is_a_dead_letter(wiki_run):
    files, outcome = wiki_run
    assert titles(outcome, "repeated_id.xml") == ["条目71"]
    assert outcome.dead(files["repeated_id.xml"]) == ["duplicate_document_id"]


def test_a_corrupted_gzip_dump_gives_no_pages(wiki_run):
    files, outcome = wiki_run
    assert titles(outcome, "corrupt.xml.gz") == []
    assert outcome.dead(files["corrupt.xml.gz"]) == ["corrupt_compressed_data"]


def test_wiki_accounting_is_exact(wiki_run):
    _, outcome = wiki_run
    out = 5 + 2 + 2 + 1 + 1 + 1 + 1
    dead = {"broken_xml_page": 1, "unsafe_xml": 3, "page_too_complex": 1, "no_pages_found": 1,
            "duplicate_document_id": 1, "corrupt_compressed_data": 1}
    assert {k[len("dead_lettered."):]: v for k, v in outcome.counters.items() if k.startswith("dead_lettered.")} == dead
    assert balance(outcome) == (out + sum(dead.values()), out, 0, sum(dead.values()))


def write_multistream(folder, page_ids, *, per_stream=4):
    """A multistream dump as Wikimedia makes them (header, streams of pages, footer) and its index."""
    folder.mkdir(parents=True)
    dump = folder / "zhwiki-test-pages-articles-multistream.xml.bz2"
    streams, index = [bz2.compress(HEADER.encode())], []
    for first in range(0, len(page_ids), per_stream):
        offset = sum(map(len, streams))
        index += [f"{offset}:{i}:条目{i}" for i in page_ids[first:first + per_stream]]
        streams.append(bz2.compress("".join(wiki_page(i) for i in page_ids[first:first + per_stream]).encode()))
    streams.append(bz2.compress(FOOTER.encode()))
    dump.write_bytes(b"".join(streams))
    index_file = folder / "zhwiki-test-pages-articles-multistream-index.txt.bz2"
    index_file.write_bytes(bz2.compress(("\n".join(index) + "\n").encode()))
    return dump, index_file, streams, index


@pytest.fixture(scope="module")
def multistream_run(tmp_path_factory, monkeypatch_module):
    from pipelines import reading

    monkeypatch_module.setattr(reading, "STREAMS_PER_READ", 3)  # several ranges per dump
    monkeypatch_module.setattr(reading, "FALLBACK_RANGE_BYTES", 1000)
    root = tmp_path_factory.mktemp("multistream")
    dumps = {}
    ids = list(range(100, 140))
    # An index whose offsets are all 3 bytes off.
    dump, index_file, _, index = write_multistream(root / "off", ids)
    shifted = [f"{int(line.split(':', 1)[0]) + 3}:{line.split(':', 1)[1]}" for line in index]
    index_file.write_bytes(bz2.compress(("\n".join(shifted) + "\n").encode()))
    dumps["off"] = dump
    # An index with a garbage line.
    dump, index_file, _, index = write_multistream(root / "garbage", ids)
    index_file.write_bytes(bz2.compress(("\n".join(index[:5] + ["garbage line"] + index[5:]) + "\n").encode()))
    dumps["garbage"] = dump
    # A dump cut in its seventh page stream (pages 124..127), its index intact.
    dump, _, streams, _ = write_multistream(root / "truncated", ids)
    dump.write_bytes(b"".join(streams[:7]) + streams[7][:len(streams[7]) // 2])
    dumps["truncated"] = dump
    # One stream with a flipped bit (pages 108..111).
    dump, _, streams, _ = write_multistream(root / "corrupt", ids)
    bad = bytearray(streams[3])
    bad[len(bad) // 2] ^= 0x08
    dump.write_bytes(b"".join(streams[:3]) + bytes(bad) + b"".join(streams[4:]))
    dumps["corrupt"] = dump
    return dumps, prepared(root / "out", list(dumps.values()), "--input_format=wiki")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def multistream_titles(outcome, folder):
    return sorted(int(i.rsplit("#", 1)[1]) for i in outcome.ids(f"wiki:{folder}/"))


def test_an_index_a_few_bytes_off_falls_back_to_reading_the_streams(multistream_run):
    dumps, outcome = multistream_run
    assert multistream_titles(outcome, "off") == list(range(100, 140))
    assert outcome.dead(dumps["off"]) == []


def test_a_garbage_index_falls_back_to_reading_the_streams(multistream_run):
    dumps, outcome = multistream_run
    assert multistream_titles(outcome, "garbage") == list(range(100, 140))
    assert outcome.dead(dumps["garbage"]) == []


def test_a_truncated_multistream_dump_is_a_truncated_compressed_file(multistream_run):
    dumps, outcome = multistream_run
    assert multistream_titles(outcome, "truncated") == list(range(100, 124))
    assert outcome.dead(dumps["truncated"]) == ["truncated_compressed_file"]


def test_a_corrupt_stream_costs_its_pages_only(multistream_run):
    dumps, outcome = multistream_run
    assert multistream_titles(outcome, "corrupt") == [*range(100, 108), *range(112, 140)]
    assert outcome.dead(dumps["corrupt"]) == ["corrupt_compressed_data"]


def test_multistream_accounting_and_fallback_counter(multistream_run):
    _, outcome = multistream_run
    # "off": each of its 4 ranges; "garbage": once for the index; "truncated": its offsets past the end.
    assert outcome.counters["multistream_index_fallback"] == 4 + 1 + 1
    out = 40 + 40 + 24 + 36
    assert balance(outcome) == (out + 2, out, 0, 2)


# ---------------------------------------------------------------- Parquet input

def write_parquet(path, columns: dict, schema=None):
    pq.write_table(pa.table(columns, schema=schema), path)


def test_parquet_that_breaks_the_schema_is_a_dead_letter_naming_the_file(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    good = {"id": ["p:a:0", "p:a:1"], "source": ["p", "p"], "title": ["", ""],
            "sentences": [sentences_of(0), sentences_of(1)], "changes": ["{}", "{}"]}
    write_parquet(folder / "good.parquet", good)
    write_parquet(folder / "string_sentences.parquet", {"id": ["p:b:0"], "sentences": ["一句话。"]})
    write_parquet(folder / "int_sentences.parquet", {"id": ["p:c:0"], "sentences": [[1, 2, 3]]})
    write_parquet(folder / "no_id.parquet", {"sentences": [sentences_of(2)]})
    (folder / "not_parquet.parquet").write_bytes(b"PK\x03\x04 this is a zip, not Parquet" * 10)
    write_parquet(folder / "bad_rows.parquet", {"id": ["p:d:0", "", "p:d:0", "p:d:3"],
                                                "sentences": [sentences_of(3), sentences_of(4), sentences_of(5), None]})
    shutil.copy(folder / "good.parquet", folder / "good_copy.parquet")  # the same ids in two files
    manifest = run([f"--input={folder}/*.parquet", "--input_format=parquet", f"--output={tmp_path / 'out'}",
                    "--dedup=none", "--num_shards=2", "--dupe_factor=1", *LOCAL])
    dead = read_dead_letters(tmp_path / "out")
    by_file = collections.defaultdict(list)
    for row in dead:
        for name in os.listdir(folder):
            if str(folder / name) in row["detail"]:
                by_file[name].append(row["reason"])
    assert {name: sorted(reasons) for name, reasons in by_file.items()} == {
        "string_sentences.parquet": ["parquet_schema_mismatch"],
        "int_sentences.parquet": ["parquet_schema_mismatch"],
        "no_id.parquet": ["parquet_schema_mismatch"],
        "not_parquet.parquet": ["unreadable_parquet"],
        "bad_rows.parquet": ["duplicate_document_id", "parquet_bad_row", "parquet_bad_row"],
    }
    # Both ids of the copied file: dead letters where the two copies meet (their bucket), by id.
    across = sorted(row["id"] for row in dead if row["reason"] == "duplicate_document_id" and str(folder) not in row["detail"])
    assert across == ["p:a:0", "p:a:1"]
    details = {row["detail"] for row in dead}
    assert any("column 'sentences' is string, expected list<item: string>" in d for d in details)
    assert any("column 'sentences' is list<element: int64>, expected list<item: string>" in d for d in details)
    assert any("no column 'id'" in d for d in details)
    # records: good 2 + copy 2 + 3 bad files + not Parquet 1 + bad_rows 4
    assert manifest["accounting"] == {"records_in": 12, "out": 3, "filtered": 0, "dead_lettered": 9,
                                      "balanced": True}


# ---------------------------------------------------------------- paths

def test_the_same_corpus_at_two_paths_gives_the_same_bytes(tmp_path, monkeypatch):
    corpus = text_corpus(0, 30)
    for copy in ("a/nested/corpus", "b"):
        (tmp_path / copy).mkdir(parents=True)
        (tmp_path / copy / "part-1.txt").write_text(corpus[:len(corpus) // 2], encoding="utf-8")
        (tmp_path / copy / "part-2.txt").write_text(corpus[len(corpus) // 2:], encoding="utf-8")
    common = ["--num_shards=3", "--dupe_factor=2", "--max_seq_length=128", "--segmenter=jieba", *LOCAL]
    run([f"--input={tmp_path}/a/nested/corpus/*.txt", f"--output={tmp_path / 'out1'}", *common])
    monkeypatch.chdir(tmp_path / "a")  # relative, from another working directory
    run(["--input=../b/part-*.txt", f"--output={tmp_path / 'out2'}", *common])
    monkeypatch.chdir(tmp_path / "b")
    run(["--input=part-1.txt", "--input=./part-2.txt", f"--output={tmp_path / 'out3'}", *common])
    shards = [{p.name: p.read_bytes() for p in sorted((tmp_path / o).glob("part-*"))} for o in ("out1", "out2", "out3")]
    assert shards[0] and shards[0] == shards[1] == shards[2]


# ---------------------------------------------------------------- models

@pytest.fixture(scope="module")
def ltp_model(tmp_path_factory):
    from ltp_extension.perceptron import CWSTrainer

    trainer = CWSTrainer()
    trainer.epoch = 2
    trainer.shuffle = False
    trainer.load_train_data(str(pathlib.Path(__file__).parent / "fixtures" / "segmented.txt"))
    model = tmp_path_factory.mktemp("ltp") / "cws_model.bin"
    trainer.train().save(str(model))
    return model.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "bit_flipped"])
def test_a_damaged_ltp_model_is_one_line_naming_the_file(tmp_path, capsys, ltp_model, damage):
    model = tmp_path / f"{damage}.bin"
    if damage == "truncated":
        model.write_bytes(ltp_model[:len(ltp_model) // 2])
    else:
        # The model is an Avro container: a header ending in a 16-byte sync marker (which also ends
        # every block), then blocks that start with their object count and size. Flipping those
        # breaks the structure; a flip inside a weight would only change the weight.
        sync = ltp_model[-16:]
        first_block = ltp_model.index(sync) + 16
        model.write_bytes(corrupt(ltp_model, first_block, 4))
    corpus = tmp_path / "c.txt"
    corpus.write_text(text_corpus(0, 2), encoding="utf-8")
    status = main(["run", f"--input={corpus}", f"--output={tmp_path / 'o'}", "--segmenter=ltp",
                   f"--ltp_model={model}", *LOCAL])
    err = capsys.readouterr().err
    error = [line for line in err.splitlines() if line.startswith("wwm run: error:")]
    assert status == 2 and len(error) == 1 and "Traceback" not in err and "panicked" not in err
    assert error[0].startswith("wwm run: error: could not load LTP model") and str(model) in error[0]
    assert "truncated or damaged" in error[0]
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- outputs

def small_run(tmp_path, output, *extra):
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(text_corpus(0, 6), encoding="utf-8")
    return main(["run", f"--input={corpus}", f"--output={output}", "--num_shards=2", "--dupe_factor=2",
                 *extra, *LOCAL])


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("wwm run: error:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_an_output_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    assert small_run(tmp_path, tmp_path / "taken") == 2
    assert one_error_line(capsys) == f"wwm run: error: --output {tmp_path / 'taken'} is a file, not a folder"


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs mounted for the test (needs root and CAP_SYS_ADMIN), unmounted after."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()

    def mount(options):
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}): "
                        "the disk-fault cases need root with CAP_SYS_ADMIN")
        return mount_point

    yield mount
    subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_a_read_only_output_is_one_line(tmp_path, capsys, tmpfs):
    folder = tmpfs("size=1m,ro")
    assert small_run(tmp_path, folder / "out") == 2
    line = one_error_line(capsys)
    assert line.startswith("wwm run: error: cannot ") and "read-only" in line


def test_a_disk_that_fills_up_during_the_run_leaves_no_manifest_and_one_line(tmp_path, capsys, tmpfs):
    folder = tmpfs("size=48k")  # room for the lock and a little, not for the shards
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text_corpus(0, 300), encoding="utf-8")
    assert small_run(tmp_path, folder / "out") == 2
    assert one_error_line(capsys) == (f"wwm run: error: cannot write to --output {folder / 'out'}: the disk is full "
                                      "(No space left on device)")
    left = sorted(str(p.relative_to(folder / "out")) for p in (folder / "out").rglob("*") if p.is_file())
    assert "manifest.json" not in left and not [p for p in left if ".tmp-" in p] and LOCK_NAME not in left


def test_write_atomically_on_a_full_disk_leaves_neither_file_nor_temporary(tmpfs):
    folder = tmpfs("size=64k")
    with pytest.raises(OSError) as error:
        write_atomically(str(folder / "manifest.json"), b"x" * 200_000)
    assert error.value.errno == 28 and list(folder.iterdir()) == []
    write_atomically(str(folder / "manifest.json"), b"{}")
    assert [p.name for p in folder.iterdir()] == ["manifest.json"]


def test_a_second_run_on_a_locked_output_is_refused_naming_the_owner(tmp_path, capsys):
    output = tmp_path / "out"
    with claim_output(str(output), overwrite=False, command="wwm run --input corpus.txt"):
        assert small_run(tmp_path, output) == 2
        line = one_error_line(capsys)
    import socket

    assert line.startswith(f"wwm run: error: --output {output} is in use by another run (pid {os.getpid()} on host "
                           f"{socket.gethostname()}, started ")
    assert line.endswith("running: wwm run --input corpus.txt)")
    assert not (output / LOCK_NAME).exists()  # released
    assert small_run(tmp_path, output) == 0


def test_a_segmentation_cache_in_use_is_refused_naming_the_owner(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text_corpus(0, 6), encoding="utf-8")
    assert main(["prepare", f"--input={corpus}", f"--output={tmp_path / 'prepared'}", *LOCAL]) == 0
    segment = ["segment", f"--input={tmp_path / 'prepared'}", "--segmenter=jieba", *LOCAL]
    capsys.readouterr()
    # The folder this segmenter's cache goes to, held by another `wwm segment`.
    from pipelines.segmenters import segmenter_choice
    from pipelines.word_cache import cache_folder
    from wwm_core.config import SegmentationConfig

    folder = cache_folder(str(tmp_path / "prepared" / "segmentation"),
                          segmenter_choice(SegmentationConfig(segmenter="jieba")).identity_key())
    with claim_output(folder, overwrite=False, command="wwm segment --input prepared"):
        assert main(segment) == 2
        [line] = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert f"--output {folder} is in use by another run" in line and line.endswith("running: wwm segment --input "
                                                                                  "prepared)")
    assert main(segment) == 0 and not (pathlib.Path(folder) / LOCK_NAME).exists()


def test_a_stale_lock_is_broken_only_with_overwrite(tmp_path, capsys):
    output = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    output.mkdir()
    (output / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout),
                                                "started": "2026-01-01T00:00:00+00:00", "command": "wwm run ..."}))
    (output / "part-00000-of-00002.tfrecord.tmp-0123").write_bytes(b"half a shard")  # a killed run's leftovers
    (output / "dead_letter" / "beam-temp-records-0123").mkdir(parents=True)
    (output / "dead_letter" / "beam-temp-records-0123" / "part").write_bytes(b"{}")
    assert small_run(tmp_path, output) == 2
    assert "holds the lock of a run that is no longer running" in one_error_line(capsys)
    assert small_run(tmp_path, output, "--overwrite") == 0
    assert not list(output.glob("*.tmp-*")) and not list(output.glob("dead_letter/beam-temp-*"))
    assert not (output / LOCK_NAME).exists() and (output / "manifest.json").exists()


def test_refusals_tell_a_finished_run_from_an_unfinished_one(tmp_path, capsys):
    output = tmp_path / "out"
    assert small_run(tmp_path, output) == 0
    capsys.readouterr()
    assert small_run(tmp_path, output) == 2
    assert "already holds a finished run (manifest.json" in one_error_line(capsys)
    # Without the manifest nothing vouches for the files: not even --overwrite touches them.
    (output / "manifest.json").rename(tmp_path / "moved.json")
    assert small_run(tmp_path, output, "--overwrite") == 2
    assert "holds files that are not an earlier run's, which --overwrite does not touch" in one_error_line(capsys)
    (tmp_path / "moved.json").rename(output / "manifest.json")
    # A run that did not finish leaves a record of itself in place of its lock.
    (output / "manifest.json").unlink()
    (output / UNFINISHED_NAME).write_text(json.dumps({"pid": 1, "how": "KeyboardInterrupt"}), encoding="utf-8")
    assert small_run(tmp_path, output) == 2
    assert "holds an unfinished run (" in one_error_line(capsys)
    assert small_run(tmp_path, output, "--overwrite") == 0
    assert not (output / UNFINISHED_NAME).exists()


def test_file_checksum_is_crc32c_as_gcs_reports_it(tmp_path):
    check = tmp_path / "check.txt"
    check.write_bytes(b"123456789")  # the CRC-32C check value (RFC 3720, B.4): 0xE3069283
    assert file_checksum(str(check)) == (9, "4waSgw==")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 10_000)  # over one read block
    import base64

    import google_crc32c

    assert file_checksum(str(big)) == (2_560_000, base64.b64encode(
        google_crc32c.value(big.read_bytes()).to_bytes(4, "big")).decode())


def test_an_exception_while_cleaning_one_document_is_its_dead_letter():
    """A document that breaks cleaning (here OpenCC on a lone surrogate, which no reader lets
    through any more, and a page over the parse budget) costs itself, not the others."""
    import collections

    from pipelines.reading import Cleaner
    from wwm_core.config import CleaningConfig
    from wwm_core.text import LINES, WIKITEXT, BadRecord, RawDocument

    raws = [RawDocument("t:a:0", "好的句子。", LINES), RawDocument("t:a:1", "坏\ud800的。", LINES),
            RawDocument("w:b#1", "[[a|" * 20000, WIKITEXT), RawDocument("t:a:2", "另一句。", LINES)]
    cleaner, stats = Cleaner(cleaning=CleaningConfig(), opencc_config="t2s"), collections.Counter()
    results = [cleaner.clean(raw, stats) for raw in raws]
    assert [(d.id, d.sentences) for d in results if not isinstance(d, BadRecord)] == [
        ("t:a:0", ("好的句子。",)), ("t:a:2", ("另一句。",))]
    assert [(r.id, r.reason, r.detail.split(":")[0]) for r in results if isinstance(r, BadRecord)] == [
        ("t:a:1", "record_error", "UnicodeEncodeError"),
        ("w:b#1", "page_too_complex", "unclosed markup would make the parser scan "
         f"{sum(80000 - 4 * i for i in range(20000))} characters (budget 50000000)")]
    assert stats["dead_lettered.record_error"] == stats["dead_lettered.page_too_complex"] == 1

# ---------------------------------------------------------------- limits

def test_a_sequence_length_past_the_limit_is_one_line_before_any_work(tmp_path, capsys):
    assert small_run(tmp_path, tmp_path / "out", "--max_seq_length=100000000") == 2
    assert one_error_line(capsys) == "wwm run: error: --max_seq_length must be in 8..8192, not 100000000"
    assert not (tmp_path / "out").exists()


def test_a_bucket_that_cannot_fit_is_refused_with_the_estimate(tmp_path, capsys, monkeypatch):
    from wwm_core import sizing

    monkeypatch.setattr(sizing, "estimated_text_bytes", lambda *_: 10 * 2**40)  # as if 10 TiB of text, one shard
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text_corpus(0, 6), encoding="utf-8")
    status = main(["run", f"--input={corpus}", f"--output={tmp_path / 'out'}", "--num_shards=1", *LOCAL])
    line = one_error_line(capsys)
    assert status == 2 and line.startswith("wwm run: error: this run needs about ") and "per worker process" in line
    assert not (tmp_path / "out").exists()


# ================================================================ the second audit
# Each case below failed on the code before it: files that were not the run's deleted, "random
# next" segments from the same document, silent losses, a manifest describing other bytes than were
# read, unbounded time, crashes and tracebacks.

def snapshot(folder) -> dict:
    """Every file and link under ``folder`` (links not followed) -> its bytes (or its target)."""
    found = {}
    for path in sorted(pathlib.Path(folder).rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[str(path.relative_to(folder))] = path.read_bytes()
    return found


USER_FILES = {"vocab.txt": "我的词表\n", "report/summary.md": "# mine\n", "sequences/a.tfrecord": "mine",
              "part-1.csv": "a,b\n", "notes.txt": "notes\n", "seq_notes/x.txt": "x", "documents.txt": "d",
              "dead_letter.txt": "mine"}


def test_overwrite_never_deletes_a_users_files(tmp_path, capsys):
    output = tmp_path / "out"
    for name, text in USER_FILES.items():
        (output / name).parent.mkdir(parents=True, exist_ok=True)
        (output / name).write_text(text, encoding="utf-8")
    before = snapshot(output)
    assert small_run(tmp_path, output, "--overwrite") == 2
    line = one_error_line(capsys)
    assert "holds files that are not an earlier run's, which --overwrite does not touch: " in line
    assert all(name in line for name in USER_FILES)
    assert snapshot(output) == before  # all 8 untouched, nothing written


def test_overwrite_of_a_finished_run_beside_a_users_file_refuses_and_touches_neither(tmp_path, capsys):
    output = tmp_path / "out"
    assert small_run(tmp_path, output, "--report") == 0
    (output / "report" / "summary.md").write_text("mine", encoding="utf-8")
    before = snapshot(output)
    capsys.readouterr()
    assert small_run(tmp_path, output, "--overwrite") == 2
    assert one_error_line(capsys).endswith("touch: report/summary.md; move them or choose another --output")
    assert snapshot(output) == before
    (output / "report" / "summary.md").unlink()
    assert small_run(tmp_path, output, "--overwrite", "--report") == 0  # the run's own files, report included


def test_a_new_run_beside_a_users_files_writes_only_its_own(tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("mine", encoding="utf-8")
    assert small_run(tmp_path, output) == 0
    assert (output / "notes.txt").read_text(encoding="utf-8") == "mine"
    # A user's file where a run writes (its vocab.txt, a manifest.json that is not ours): refused.
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text('{"mine": true}', encoding="utf-8")
    capsys.readouterr()
    assert small_run(tmp_path, other) == 2 and small_run(tmp_path, other, "--overwrite") == 2
    assert (other / "manifest.json").read_text(encoding="utf-8") == '{"mine": true}'


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_symbolic_link_in_the_output_is_never_followed(tmp_path, capsys, overwrite):
    output, outside = tmp_path / "out", tmp_path / "outside"
    assert small_run(tmp_path, output) == 0
    outside.mkdir()
    (outside / "records-00000-of-00001.jsonl").write_text("not the run's", encoding="utf-8")
    (outside / "precious.txt").write_text("mine", encoding="utf-8")
    shutil.rmtree(output / "dead_letter")
    (output / "dead_letter").symlink_to(outside)
    before = snapshot(outside)
    capsys.readouterr()
    assert small_run(tmp_path, output, *(["--overwrite"] if overwrite else [])) == 2
    assert one_error_line(capsys) == (f"wwm run: error: --output {output}: dead_letter is a symbolic link (to "
                                      f"{outside}); a run writes only inside its --output, never through a link: "
                                      "remove the link or choose another --output")
    assert snapshot(outside) == before  # nothing deleted or written there


def test_write_atomically_leaves_files_as_the_umask_says(tmp_path):
    previous = os.umask(0o022)
    try:
        write_atomically(str(tmp_path / "manifest.json"), b"{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "manifest.json").stat().st_mode & 0o777 == 0o644


def test_a_runs_files_have_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        assert small_run(tmp_path, tmp_path / "out") == 0
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(tmp_path / "out")): p.stat().st_mode & 0o777
             for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert {"manifest.json", "seq128/manifest.json", "seq128/vocab.txt", "token_counts.json"} <= set(modes)
    assert set(modes.values()) == {0o644}, modes


def one_document_files(folder, count):
    """``count`` files of one document each; document i's sentences all name it ("第i篇")."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"doc{i:04d}.txt").write_text("\n".join(sentences_of(i, 6)) + "\n", encoding="utf-8")
    return folder


def documents_named(tokens) -> set:
    text = "".join(token[2:] if token.startswith("##") else token for token in tokens)
    return {int(number) for number in re.findall(r"第(\d+)篇", text)}


@pytest.fixture(scope="module")
def many_small_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("small_files")
    one_document_files(root / "corpus", 600)
    manifest = run([f"--input={root / 'corpus'}/*.txt", f"--output={root / 'out'}", "--segmenter=char",
                    "--max_seq_length=128", "--dupe_factor=2", *LOCAL])
    return root, manifest


def test_random_next_segments_come_from_another_document_in_a_corpus_of_small_files(many_small_files):
    """Google's generator draws a "random next" segment from another document; with each small
    file a bucket of its own, every one came from the same document, labelled random."""
    from tests.test_recipes import parsed_records

    root, manifest = many_small_files
    tokens = (root / "out" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    random_next = same = 0
    for record in parsed_records(root / "out", manifest):  # parsed by TensorFlow
        if record["next_sentence_labels"][0] != 1:
            continue
        ids, segments = list(record["input_ids"]), record["segment_ids"]
        for position, original in zip(record["masked_lm_positions"], record["masked_lm_ids"]):
            ids[position] = original  # unmasked: the markers read whole
        a = documents_named(tokens[i] for i, s in zip(ids, segments) if s == 0 and i)
        b = documents_named(tokens[i] for i, s in zip(ids, segments) if s == 1)
        random_next += 1
        same += bool(a & b)
    assert random_next > 500 and same == 0
    assert manifest["counters"].get("random_next_from_same_document", 0) == 0


def test_small_files_are_gathered_into_buckets_and_num_shards_holds(many_small_files, tmp_path):
    root, manifest = many_small_files
    assert 1 < len(manifest["files"]) <= 8, "buckets of the usual size, not one per file"
    one = run([f"--input={root / 'corpus'}/*.txt", f"--output={tmp_path / 'one'}", "--segmenter=char",
               "--max_seq_length=128", "--dupe_factor=1", "--num_shards=1", *LOCAL])
    assert one["files"] == ["part-00000-of-00001.tfrecord"]
    assert one["accounting"]["out"] == 600


def test_a_shard_count_other_than_num_shards_is_said_in_one_line(tmp_path, capsys):
    assert small_run(tmp_path, tmp_path / "out", "--num_shards=20") == 0  # 6 documents
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("NOTE: ")]
    assert line.startswith("NOTE: 6 shards, not --num_shards 20: a shard is a bucket of whole documents")


def test_a_few_nul_bytes_in_a_utf8_file_cost_nothing_but_themselves(tmp_path):
    corpus = tmp_path / "nul.txt"
    data = text_corpus(0, 300).encode()
    at = data.index("第7篇".encode())
    corpus.write_bytes(data[:at] + b"\0" + data[at:at + 3] + b"\0" + data[at + 3:])
    outcome = prepared(tmp_path / "out", [corpus])
    assert len(outcome.documents) == 300 and outcome.dead_letters == []
    assert outcome.counters["changes.control_chars_removed"] == 2
    assert "files_refused_as_utf16_without_bom" not in outcome.counters


def parquet_of_documents(path, row_groups, *, rows_per_group=5):
    import pyarrow.parquet as pq

    from pipelines.parquet_io import SCHEMA

    with pq.ParquetWriter(path, SCHEMA) as writer:
        for group in range(row_groups):
            rows = [{"id": f"p:{group}-{i}", "source": "p", "title": "", "sentences": sentences_of(group * 100 + i),
                     "changes": "{}"} for i in range(rows_per_group)]
            writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))


def test_a_corrupt_row_group_costs_its_rows_not_the_file(tmp_path):
    path = tmp_path / "three.parquet"
    parquet_of_documents(path, 3)
    metadata = pq.ParquetFile(path).metadata
    middle = metadata.row_group(1).column(3)  # the sentences of the second row group
    data = bytearray(path.read_bytes())
    start = middle.data_page_offset
    data[start:start + 40] = bytes(b ^ 0xFF for b in data[start:start + 40])
    path.write_bytes(bytes(data))
    manifest = run([f"--input={path}", "--input_format=parquet", f"--output={tmp_path / 'out'}",
                    "--segmenter=char", "--max_seq_length=128", *LOCAL])
    rows = read_dead_letters(tmp_path / "out")
    assert [row["reason"] for row in rows] == ["unreadable_parquet"]
    assert "row group 1 of 3" in rows[0]["detail"] and "5 of its 5 rows not read" in rows[0]["detail"]
    assert manifest["accounting"] == {"records_in": 15, "out": 10, "filtered": 0, "dead_lettered": 5,
                                      "balanced": True}


def test_a_mistyped_parquet_column_counts_its_rows_as_records(tmp_path):
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "sentences": ["一句。", "两句。"]}), path)
    good = tmp_path / "good.parquet"
    parquet_of_documents(good, 1)
    manifest = run([f"--input={path}", f"--input={good}", "--input_format=parquet", f"--output={tmp_path / 'out'}",
                    "--segmenter=char", "--max_seq_length=128", *LOCAL])
    (row,) = read_dead_letters(tmp_path / "out")
    assert row["reason"] == "parquet_schema_mismatch" and "(2 rows not read)" in row["detail"]
    assert manifest["accounting"] == {"records_in": 7, "out": 5, "filtered": 0, "dead_lettered": 2,
                                      "balanced": True}


def test_an_input_that_names_an_existing_file_is_that_file_whatever_its_characters(tmp_path):
    (tmp_path / "data[1].txt").write_text(text_corpus(0, 2), encoding="utf-8")
    (tmp_path / "data1.txt").write_text(text_corpus(50, 3), encoding="utf-8")
    outcome = prepared(tmp_path / "out", [tmp_path / "data[1].txt"])
    assert sorted({i.split("@")[0] for i in outcome.documents}) == ["text:data[1].txt"]
    assert len(outcome.documents) == 2


def test_every_path_a_glob_matches_is_read_or_accounted(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(text_corpus(0, 2), encoding="utf-8")
    (corpus / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (corpus / "loop.txt").symlink_to(corpus / "loop.txt")
    outcome = prepared(tmp_path / "out", [f"{corpus}/*.txt"])
    assert len(outcome.documents) == 2
    reasons = {row["id"]: row["reason"] for row in outcome.dead_letters}
    assert reasons == {"text:dangling.txt": "broken_symbolic_link", "text:loop.txt": "symbolic_link_loop"}
    assert balance(outcome) == (4, 2, 0, 2)
    listed = {entry["path"]: entry.get("dead_letter") for entry in outcome.manifest["inputs"]}
    assert listed == {str(corpus / "good.txt"): None, str(corpus / "dangling.txt"): "broken_symbolic_link",
                      str(corpus / "loop.txt"): "symbolic_link_loop"}


def test_a_file_name_that_is_not_utf8_is_a_dead_letter(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(text_corpus(0, 2), encoding="utf-8")
    with open(os.path.join(os.fsencode(corpus), b"bad\xff.txt"), "wb") as handle:
        handle.write(text_corpus(10, 2).encode())
    outcome = prepared(tmp_path / "out", [f"{corpus}/*.txt"])
    assert len(outcome.documents) == 2
    (row,) = outcome.dead_letters
    assert row["reason"] == "undecodable_file_name" and row["id"] == "text:bad\\xff.txt"


def test_an_input_that_changes_while_the_run_reads_it_stops_the_run_in_one_line(tmp_path, capsys, monkeypatch):
    """The manifest describes the input as it was at launch: a file that grows after that (here,
    as the pipeline is built) would be read other than described. The run stops instead."""
    from wwm_core import sizing

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text_corpus(0, 6), encoding="utf-8")
    sized = sizing.bucket_bytes_for

    def grow_after_launch(config, inputs):
        with open(corpus, "a", encoding="utf-8") as handle:
            handle.write(text_corpus(100, 3))
        return sized(config, inputs)

    monkeypatch.setattr(sizing, "bucket_bytes_for", grow_after_launch)
    assert small_run(tmp_path, tmp_path / "out") == 2
    line = one_error_line(capsys)
    assert line.startswith(f"wwm run: error: input file {corpus} changed while the run read it (")
    assert not (tmp_path / "out" / "manifest.json").exists() and not (tmp_path / "out" / LOCK_NAME).exists()


def test_a_named_pipe_is_refused_before_anything_reads_it(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    result = subprocess.run([sys.executable, "-m", "wwm_cli", "run", f"--input={fifo}",
                             f"--output={tmp_path / 'out'}", "--segmenter=char", *LOCAL],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (f"wwm run: error: --input {fifo} is a named pipe (FIFO), not a "
                                                      "file: a run reads regular files only (a pipe or device cannot "
                                                      "be read twice, or sized, or split)")


def test_a_segmenter_call_gets_bounded_runs_of_text():
    """jieba's time grows with the square of a run without punctuation (20,000 characters 3.9 s,
    40,000 15.5 s): long runs are segmented in windows, each a real jieba call."""
    import collections as _collections

    from wwm_core.segmentation import JiebaSegmenter
    from wwm_core.word_boundaries import MAX_SEGMENT_CHARS, segment_documents
    from wwm_core.text import Document

    class Recording(JiebaSegmenter):
        longest = 0

        def segment(self, sentences):
            Recording.longest = max([Recording.longest, *map(len, sentences)])
            return super().segment(sentences)

    run_of_text = "啊" * 20_000 + "，北京是中国的首都。" + "哦" * 3_000
    stats = _collections.Counter()
    kept, sentences, words = segment_documents(Recording(), [Document("d", (run_of_text, "我爱北京。"))],
                                               stats=stats, dead_letters=[])
    assert Recording.longest <= MAX_SEGMENT_CHARS
    assert [sum(lengths) for lengths in words] == [len(run_of_text), 5]
    assert "首都" in _words_of(run_of_text, words[0])  # the window cut after the comma, not through a word
    assert stats["sentences_segmented_in_windows"] == 1


def _words_of(sentence, lengths):
    words, start = [], 0
    for length in lengths:
        words.append(sentence[start:start + length])
        start += length
    return words


def test_a_200000_character_run_is_segmented_by_jieba_in_a_run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("啊" * 200_000 + "\n\n" + text_corpus(0, 3), encoding="utf-8")
    manifest = run([f"--input={corpus}", f"--output={tmp_path / 'out'}", "--segmenter=jieba", "--max_seq_length=128",
                    "--dupe_factor=1", *LOCAL])
    assert manifest["accounting"]["out"] == 4 and manifest["counters"]["sentences_segmented_in_windows"] == 1


@pytest.mark.parametrize("flag", ["--masked_lm_prob=nan", "--short_seq_prob=inf", "--min_cjk_share=-inf",
                                  "--near_duplicate_threshold=NaN", "--masked_lm_prob=2"])
def test_a_value_that_is_not_a_finite_number_in_range_is_one_line(tmp_path, flag, capsys):
    try:
        status = small_run(tmp_path, tmp_path / "out", flag)
    except SystemExit as stop:  # argparse's: the value is not a number
        status = stop.code
    assert status == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("wwm run: error: ") and flag.split("=")[0] in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_ends_the_run_in_one_line_with_the_lock_released_and_no_manifest(tmp_path, stop):
    corpus, output = tmp_path / "corpus.txt", tmp_path / "out"
    corpus.write_text(text_corpus(0, 40_000), encoding="utf-8")  # about 9 MB: still working when stopped
    command = [sys.executable, "-m", "wwm_cli", "run", f"--input={corpus}", f"--output={output}",
               "--segmenter=jieba", "--runner=FnApiRunner"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((output / ".wwm-work").glob("*.parquet")) and process.poll() is None:
        assert time.monotonic() < deadline, "the run never started writing its buckets"
        time.sleep(0.05)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + stop
    how = "interrupted (Ctrl-C)" if stop == signal.SIGINT else "stopped by SIGTERM"
    lines = [line for line in stderr.splitlines() if " wwm INFO " not in line]
    assert lines == [f"wwm run: {how} before it finished; no manifest was written"], stderr[-3000:]
    assert not (output / LOCK_NAME).exists() and not (output / "manifest.json").exists()
    record = json.loads((output / UNFINISHED_NAME).read_text(encoding="utf-8"))
    assert record["how"] == f"stopped by {signal.Signals(stop).name}"
    # What it left is a run's, and --overwrite clears it.
    small = tmp_path / "small.txt"
    small.write_text(text_corpus(0, 6), encoding="utf-8")
    rerun = [*command[:4], f"--input={small}", *command[5:], "--max_seq_length=128", "--overwrite"]
    assert subprocess.run(rerun, capture_output=True).returncode == 0
    assert (output / "manifest.json").exists() and not (output / UNFINISHED_NAME).exists()
