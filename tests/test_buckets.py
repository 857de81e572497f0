"""Read units and buckets: a large file read in byte ranges gives the very records of reading it
whole, and a run's buckets are shards whose bytes do not depend on workers or on the files' cut."""
import collections
import dataclasses
import json

import pytest
from pipelines.inputs import match_sources
from pipelines.reading import plan_units, read_unit
from tests.test_pipeline import LOCAL, shard_bytes
from wwm_cli.data import run
from wwm_core.config import SourceSpec


def _records(path, spec, *, unit_bytes):
    (file,), _ = match_sources([dataclasses.replace(spec, patterns=(str(path),))])
    units = list(plan_units(file, input_format=spec.input_format, unit_bytes=unit_bytes))
    stats = collections.Counter()
    return units, [record for unit in units for record in read_unit(unit, spec, stats)], stats


def _documents(count):
    return [[f"第{d}篇文档，第{s}句：全词掩码让一个词的所有字一起被遮盖。" for s in range(d % 5 + 1)] for d in range(count)]


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_text_file_read_in_ranges_gives_the_records_of_reading_it_whole(tmp_path, line_end):
    path = tmp_path / "corpus.txt"
    blank = line_end + line_end + ("  " + line_end if line_end == "\n" else "")  # blank lines, one with spaces
    path.write_bytes(blank.join(line_end.join(d) for d in _documents(300)).encode() + line_end.encode())
    spec = SourceSpec("text", "text", (str(path),), "none")
    whole_units, whole, _ = _records(path, spec, unit_bytes=10**9)
    units, ranged, stats = _records(path, spec, unit_bytes=4096)
    assert len(whole_units) == 1 and len(units) > 10
    assert all(unit.start is not None for unit in units)
    assert [(r.id, r.text) for r in ranged] == [(r.id, r.text) for r in whole]
    assert len(ranged) == 300 and stats["records_in"] == 300 and stats["files_read"] == 1
    data = path.read_bytes()
    for record in ranged:  # an id names the byte its record begins at
        position = int(record.id.rsplit("@", 1)[1])
        assert data[position:].decode().startswith(record.text.split("\n")[0])


def test_a_jsonl_file_read_in_ranges_gives_the_records_of_reading_it_whole(tmp_path):
    path = tmp_path / "news.jsonl"
    lines = [json.dumps({"title": f"标题{i}", "content": "".join(d)}, ensure_ascii=False) for i, d in
             enumerate(_documents(400))]
    lines[17] = '{"content": broken'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = SourceSpec("news", "jsonl", (str(path),), "none", text_field="content")
    _, whole, whole_stats = _records(path, spec, unit_bytes=10**9)
    units, ranged, stats = _records(path, spec, unit_bytes=2048)
    assert len(units) > 10
    key = lambda r: (r.id, getattr(r, "text", None), getattr(r, "reason", None))
    assert [key(r) for r in ranged] == [key(r) for r in whole]
    assert stats == whole_stats and stats["dead_lettered.malformed_json"] == 1


def test_compressed_and_unusual_files_are_read_whole(tmp_path):
    import gzip

    text = "\n\n".join("\n".join(d) for d in _documents(200)) + "\n"
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "b.txt").write_bytes(text.replace("\n", "\r").encode())  # lone CR line ends
    (tmp_path / "c.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())  # a byte-order mark
    for name in ("a.txt.gz", "b.txt", "c.txt"):
        units, _, _ = _records(tmp_path / name, SourceSpec("text", "text", ("x",), "none"), unit_bytes=1024)
        assert [unit.start for unit in units] == [None], name


def test_shards_do_not_depend_on_how_large_files_are_cut_or_on_workers(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join("\n".join(d) for d in _documents(600)) + "\n", encoding="utf-8")
    common = [f"--input={corpus}", "--max_seq_length=128", "--segmenter=char", "--dupe_factor=2"]
    one = run(common + [f"--output={tmp_path / 'one'}", "--num_shards=6", *LOCAL])
    two = run(common + [f"--output={tmp_path / 'two'}", "--num_shards=6", "--runner=FnApiRunner",
                        "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert len(one["files"]) >= 5, "about --num_shards buckets"
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert one["accounting"] == two["accounting"] and one["accounting"]["records_in"] == 600
    # Every document is in exactly one shard: the bucket counters add up to the documents.
    assert one["counters"]["documents_out"] == 600
    assert not (tmp_path / "one" / ".wwm-work").exists(), "the work folder is removed"


def test_bucket_size_from_the_input_sizes(caplog):
    from wwm_cli import flags
    from wwm_cli.data import run_parser
    from wwm_core.sizing import bucket_bytes_for

    from pipelines.inputs import InputFile

    def sized(*flag_values, size):
        args, beam_args = run_parser().parse_known_args(["--input=corpus.txt", "--output=out", *flag_values])
        config = flags.config_from_args(args, beam_args, instances=True)
        return bucket_bytes_for(config, [InputFile(0, "corpus.txt", "corpus.txt", size, 0.0, "corpus.txt")])

    mb = 1024 * 1024
    # Written out by hand: 8 MB buckets, at least 8 of them, none under 64 KB.
    assert sized(size=800 * mb) == 8 * mb
    assert sized(size=16 * mb) == 2 * mb
    assert sized(size=100 * 1024) == 64 * 1024
    assert sized("--num_shards=4", size=16 * mb) == 4 * mb
    assert not caplog.records
    # --num_shards counts the files with --balance_shards; buckets keep their automatic size.
    assert sized("--num_shards=4", "--balance_shards", size=800 * mb) == 8 * mb
    assert not caplog.records
    # A few shards of a big corpus: buckets that would hold 200 MB each are said out loud.
    assert sized("--num_shards=4", size=800 * mb) == 200 * mb
    [warning] = caplog.records
    assert warning.levelname == "WARNING" and "--balance_shards" in warning.getMessage()


def test_a_buckets_dedup_index_gives_each_group_only_its_part(tmp_path):
    """Dedup keys travel as files, not Beam elements: each group reads its batch of every bucket's
    index. Same id -> same id group; same text -> same key group; same band key -> same band
    group, with the document's row; every document in one group of each kind."""
    import pyarrow as pa

    from pipelines.buckets import BAND_GROUPS, ID_GROUPS, KEY_GROUPS, dedup_groups
    from pipelines.output import write_atomically
    from pipelines.parquet_io import dedup_index_bytes, read_dedup_group

    ids = [f"text:corpus.txt:{n}" for n in range(500)]
    keys = [bytes([n % 256]) * 16 for n in range(500)]
    bands = [[band.to_bytes(4, "little") + bytes([n % 200, band]) * 6 for band in range(8)] for n in range(500)]
    path = str(tmp_path / "bucket.dedup.arrow")
    write_atomically(path, dedup_index_bytes(dedup_groups(ids, keys, bands)))
    assert pa.ipc.open_file(path).num_record_batches == len(ID_GROUPS) + len(KEY_GROUPS) + len(BAND_GROUPS)

    def columns(group_numbers):
        return [tuple(column.to_pylist() for column in read_dedup_group(path, group)) for group in group_numbers]

    id_groups, key_groups, band_groups = columns(ID_GROUPS), columns(KEY_GROUPS), columns(BAND_GROUPS)
    assert sorted(i for group_ids, _, _ in id_groups for i in group_ids) == sorted(ids)
    assert all(key is None and row is None for _, group_keys, rows in id_groups for key, row in zip(group_keys, rows))
    pairs = [pair for group_ids, group_keys, _ in key_groups for pair in zip(group_keys, group_ids)]
    assert sorted(pairs) == sorted(zip(keys, ids))
    entries = [entry for group in band_groups for entry in zip(*group)]
    assert sorted(entries) == sorted((ids[row], key, row) for row in range(500) for key in bands[row])
    for kind, groups, count in (("text", key_groups, len(KEY_GROUPS)), ("band", band_groups, len(BAND_GROUPS))):
        groups_of_key = collections.defaultdict(set)
        for n, (_, group_keys, _) in enumerate(groups):
            for key in group_keys:
                groups_of_key[key].add(n)
        assert all(len(found_in) == 1 for found_in in groups_of_key.values()), f"a {kind} key meets in one group"
        assert len(set().union(*groups_of_key.values())) == count, f"{kind} keys spread over every group"
    no_keys = dedup_groups(ids, ())
    assert all(not group_ids for group_ids, _, _ in no_keys[KEY_GROUPS.start:])


def test_dedup_groups_drop_what_a_plain_reading_of_the_rules_drops(tmp_path):
    """Every copy of a text but the one with the smallest id is a duplicate; every repeat of an id
    in a later bucket (in bucket order) is a repeated id; repeats inside one bucket are that
    bucket's own business. The groups read the dedup indexes and write drop files; the reference
    reads plain lists."""
    import random

    from pipelines.buckets import ID_GROUPS, KEY_GROUPS, BucketFile, _duplicates_in_group, dedup_groups
    from pipelines.output import write_atomically
    from pipelines.parquet_io import dedup_index_bytes

    rng = random.Random(5)
    texts = [bytes([rng.randrange(256) for _ in range(16)]) for _ in range(300)]
    buckets, contents = [], []
    for number in range(6):
        ids = [f"doc{rng.randrange(900)}" for _ in range(150)]  # some ids repeat, across and within buckets
        keys = [rng.choice(texts) for _ in ids]
        order = (0, "corpus.txt", number * 1000, 0)
        path = str(tmp_path / f"{number}.dedup.arrow")
        write_atomically(path, dedup_index_bytes(dedup_groups(ids, keys)))
        buckets.append(BucketFile(order, "unused", True, path))
        contents.append((order, ids, keys))
    rng.shuffle(buckets)  # a side input's list comes in no particular order

    found = collections.Counter(((order, doc_id), drops.reason) for group in [*ID_GROUPS, *KEY_GROUPS]
                                for order, drops in _duplicates_in_group(group, buckets, work_folder=str(tmp_path),
                                                                          threshold=0.0)
                                for doc_id in drops.ids())

    expected = collections.Counter()
    copies = collections.defaultdict(list)
    for order, ids, keys in contents:
        for doc_id, key in zip(ids, keys):
            copies[key].append((doc_id, order))
    for same in copies.values():
        for doc_id, order in sorted(same)[1:]:
            expected[(order, doc_id), "duplicate"] += 1
    first_bucket = {}
    for order, ids, _ in sorted(contents):
        for doc_id in dict.fromkeys(ids):
            if first_bucket.setdefault(doc_id, order) != order:
                expected[(order, doc_id), "duplicate_document_id"] += 1
    assert found == expected
    assert sum(1 for (_, reason) in expected if reason == "duplicate") > 100
    assert sum(1 for (_, reason) in expected if reason == "duplicate_document_id") > 100


def test_a_bucket_drops_each_document_once_under_its_first_reason(tmp_path):
    """Reasons overlap (a repeated id whose text also repeats, a repeated text that is also a near
    duplicate, a near duplicate found in two groups and twice in one): each document is dropped and counted once,
    under the first of: repeated id (a dead letter), repeated text, near duplicate."""
    from pipelines.buckets import AssignedBucket, BucketFile, Drops, bucket_documents
    from pipelines.output import write_atomically
    from pipelines.parquet_io import DocumentsFile, dedup_index_bytes
    from wwm_core.text import Document

    path = str(tmp_path / "bucket.parquet")
    documents = DocumentsFile(path)
    for n in range(6):
        documents.add(Document(f"d{n}", (f"第{n}句话。",), "text", "", "{}"))
    documents.finish()
    drop_file = str(tmp_path / "drops.arrow")  # two groups' batches for this bucket, as in a group's drop file
    write_atomically(drop_file, dedup_index_bytes([(["d3"], None, None), (["d1"], None, None),
                                                   (["d1", "d2"], None, None), (["d2", "d3", "d3"], None, None)]))
    drops = [Drops("near_duplicate", drop_file, 0), Drops("duplicate", drop_file, 2),
             Drops("near_duplicate", drop_file, 3), Drops("duplicate_document_id", drop_file, 1)]
    bucket = AssignedBucket(0, 1, BucketFile((0, "corpus.txt", 0, 0), path, True, "unused"))
    stats, dead_letters = collections.Counter(), []
    kept = [document.id for document in bucket_documents(bucket, drops, stats, dead_letters)]
    assert kept == ["d0", "d4", "d5"]
    assert [(record.id, record.reason) for record in dead_letters] == [("d1", "duplicate_document_id")]
    assert dead_letters[0].detail.endswith("this one is in corpus.txt")
    assert +stats == {"dead_lettered.duplicate_document_id": 1, "documents_filtered.duplicate": 1,
                     "documents_filtered.near_duplicate": 1}


def band_buckets(tmp_path, contents, *, bands: int, rows: int) -> list:
    """A BucketFile, with its dedup index (band keys) and signature file, for each (order, ids,
    signatures) of ``contents``."""
    from pipelines.buckets import BucketFile, dedup_groups, write_signatures
    from pipelines.output import write_atomically
    from pipelines.parquet_io import dedup_index_bytes
    from wwm_core.near_dedup import band_keys

    buckets = []
    for number, (order, ids, signature_list) in enumerate(contents):
        path = str(tmp_path / f"{number}.dedup.arrow")
        band_keys_of = [band_keys(signature, bands=bands, rows=rows) for signature in signature_list]
        write_atomically(path, dedup_index_bytes(dedup_groups(ids, (), band_keys_of)))
        signature_file = write_signatures(str(tmp_path), order, signature_list)
        buckets.append(BucketFile(order, "unused", True, path, signature_file))
    return buckets


def test_near_dedup_drops_the_copy_of_an_id_that_is_a_near_duplicate_not_every_copy(tmp_path):
    """"b" is read twice (a dump that repeats a page id with another text): its first copy shares
    one band with "a" and little else, its second is "a"'s text. Only the second is a near
    duplicate; the first stays (and the id group, not near dedup, makes the second a dead letter)."""
    import numpy as np

    from pipelines.buckets import BAND_GROUPS, _duplicates_in_group
    from wwm_core.near_dedup import NUM_PERM

    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**63, NUM_PERM, dtype=np.uint64)
    b_first = np.concatenate([a[:16], rng.integers(0, 2**63, NUM_PERM - 16, dtype=np.uint64)])  # band 0 only
    first, second = (0, "wiki.xml", 0, 0), (0, "wiki.xml", 1000, 0)
    buckets = band_buckets(tmp_path, [(first, ["a", "b"], [a, b_first]), (second, ["b"], [a.copy()])],
                           bands=8, rows=16)
    found = {(order, doc_id) for group in BAND_GROUPS
             for order, drops in _duplicates_in_group(group, buckets, work_folder=str(tmp_path), threshold=0.8)
             for doc_id in drops.ids()}
    assert found == {(second, "b")}


def test_band_groups_drop_what_a_plain_reading_of_near_dedup_drops(tmp_path):
    """Documents that share a band (the same rows of their MinHash signatures in one band) meet;
    the one with the smallest id is kept and every other whose signature agrees with it in at
    least the threshold's share of positions is a near duplicate. The groups read band keys from
    the dedup indexes and the members' rows from the signature files; the reference compares
    plain lists of signatures. Some ids repeat in later buckets with other texts (a dump that
    repeats a page id): a copy goes only if it is itself a near duplicate."""
    import random

    import numpy as np

    from pipelines.buckets import BAND_GROUPS, _duplicates_in_group
    from wwm_core.near_dedup import NUM_PERM

    rng = random.Random(7)
    bands, rows, threshold = 8, 16, 0.8
    originals = [np.array([rng.getrandbits(64) for _ in range(NUM_PERM)], np.uint64) for _ in range(60)]
    contents = []
    for number in range(5):
        ids, signature_list = [], []
        for n in range(80):
            signature = rng.choice(originals).copy()
            for position in rng.sample(range(NUM_PERM), rng.choice([0, 5, 20, 40, 80])):  # near, borderline, far
                signature[position] = rng.getrandbits(64)
            ids.append(f"doc0-{n}" if number >= 3 and n < 20 else f"doc{number}-{n}")
            signature_list.append(signature)
        contents.append(((0, "corpus.txt", number * 1000, 0), ids, signature_list))
    buckets = band_buckets(tmp_path, contents, bands=bands, rows=rows)
    rng.shuffle(buckets)

    found = {((order, doc_id), drops.reason) for group in BAND_GROUPS
             for order, drops in _duplicates_in_group(group, buckets, work_folder=str(tmp_path), threshold=threshold)
             for doc_id in drops.ids()}

    sharing = collections.defaultdict(list)
    for order, ids, signature_list in contents:
        for doc_id, signature in zip(ids, signature_list):
            for band in range(bands):
                sharing[band, tuple(signature[band * rows:(band + 1) * rows])].append((doc_id, order, signature))
    expected = set()
    for members in sharing.values():
        (kept_id, _, kept), *others = sorted(members, key=lambda member: member[:2])
        for doc_id, order, signature in others:
            if doc_id != kept_id and sum(int(a == b) for a, b in zip(kept, signature)) / NUM_PERM >= threshold:
                expected.add(((order, doc_id), "near_duplicate"))
    assert found == expected
    assert len(expected) > 100
    # Copies of one id that went different ways: one kept, another dropped as a near duplicate.
    orders_of = collections.defaultdict(set)
    for order, ids, _ in contents:
        for doc_id in ids:
            orders_of[doc_id].add(order)
    dropped_orders = collections.defaultdict(set)
    for (order, doc_id), _ in expected:
        dropped_orders[doc_id].add(order)
    assert any(dropped_orders[doc_id] < orders_of[doc_id] for doc_id in dropped_orders if len(orders_of[doc_id]) > 1)
