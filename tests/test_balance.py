"""--balance_shards: equal files, and the same instances as the unbalanced run, in the same order."""
import pathlib

import pyarrow.parquet as pq
import pytest

from tests.test_pipeline import run_wwm, write_text_corpus
from wwm_core.balance import balanced_pieces
from wwm_core.records import read_tfrecords


def test_balanced_pieces_cut_the_records_in_order_into_near_equal_files():
    # Sources of 5, 0 and 2 records, cut into 3 files of 2, 2 and 3 -- written out by hand.
    assert balanced_pieces([5, 0, 2], 3) == [[(0, 0, 2)], [(0, 2, 4)], [(0, 4, 5), (2, 0, 2)]]
    assert balanced_pieces([5, 0, 2], 1) == [[(0, 0, 5), (2, 0, 2)]]
    assert balanced_pieces([1], 3) == [[], [], [(0, 0, 1)]]
    for counts in ([7, 1, 13, 0, 4], [3], [0, 0, 9]):
        for files in (1, 2, 5, 8):
            pieces = balanced_pieces(counts, files)
            sizes = [sum(end - first for _, first, end in file) for file in pieces]
            assert sum(sizes) == sum(counts) and max(sizes) - min(sizes) <= 1
            flat = [(s, i) for file in pieces for s, first, end in file for i in range(first, end)]
            assert flat == [(s, i) for s, count in enumerate(counts) for i in range(count)]


def _records(folder: pathlib.Path) -> list:
    records = []
    for path in sorted(folder.glob("part-*.tfrecord")):
        with path.open("rb") as handle:
            records.append(list(read_tfrecords(handle)))
    return records


def test_balanced_files_hold_the_unbalanced_runs_instances_in_order(tmp_path):
    tf = pytest.importorskip("tensorflow")
    # Documents of very different lengths, so the buckets' shards are far from equal; about 200 KB,
    # so that automatic sizing makes several buckets (of at least 64 KB).
    documents = [[f"第{d}篇文档的第{s}句话讲述了语言模型和全词掩码。" for s in range(2 + 9 * (d % 4 == 0))]
                 for d in range(650)]
    corpus = str(write_text_corpus(tmp_path / "corpus.txt", documents))
    # With --balance_shards, --num_shards (3, from run_wwm) counts the files and the buckets are
    # sized automatically: the plain run with automatic buckets makes the same instances.
    plain = run_wwm(tmp_path, "--output_format=both", "--num_shards=0", name="plain", inputs=[corpus])
    balanced = run_wwm(tmp_path, "--output_format=both", "--balance_shards", name="balanced", inputs=[corpus])

    plain_records, balanced_records = _records(tmp_path / "plain"), _records(tmp_path / "balanced")
    assert max(map(len, plain_records)) - min(map(len, plain_records)) > 1, "the test needs uneven buckets"
    sizes = [len(r) for r in balanced_records]
    assert len(sizes) == 3 and max(sizes) - min(sizes) <= 1
    assert sum(balanced_records, []) == sum(plain_records, [])
    assert balanced["num_instances"] == plain["num_instances"] == sum(sizes)
    for name, info in balanced["file_info"].items():
        assert info["records"] == (len(balanced_records[int(name.split("-")[1])]) if name.endswith(".tfrecord")
                                   else pq.read_metadata(tmp_path / "balanced" / name).num_rows)
    # TensorFlow reads every balanced file whole.
    for path in sorted((tmp_path / "balanced").glob("part-*.tfrecord")):
        assert sum(1 for _ in tf.data.TFRecordDataset(str(path))) == len(balanced_records[int(path.name[5:10])])

    plain_rows = pq.read_table(sorted((tmp_path / "plain").glob("part-*.parquet"))).to_pylist()
    balanced_files = sorted((tmp_path / "balanced").glob("part-*.parquet"))
    rows = [pq.read_table(path).num_rows for path in balanced_files]
    assert rows == sizes
    assert pq.read_table(balanced_files).to_pylist() == plain_rows
    assert not list((tmp_path / "balanced").glob(".wwm-work*")), "the work folder was left behind"


def test_a_balanced_file_that_fails_once_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A task that fails mid-write and succeeds when retried (Beam retries a failed bundle)
    leaves no NAME.tmp-… beside the finished manifest."""
    from pipelines import balance

    original, calls = balance._copy_range, []

    def flaky(source, start, end, shard):
        calls.append(source)
        if len(calls) == 1:
            shard.write(b"half a file")
            raise OSError("simulated: a transient read error")
        return original(source, start, end, shard)

    monkeypatch.setattr(balance, "_copy_range", flaky)
    manifest = run_wwm(tmp_path, "--balance_shards", "--segmenter=char")
    out = tmp_path / "out"
    assert len(calls) > 1 and (out / "manifest.json").exists()
    assert not list(out.rglob("*.tmp-*")), "a failed attempt's temporary file was left behind"
    assert sorted(p.name for p in out.glob("part-*")) == sorted(manifest["files"])
