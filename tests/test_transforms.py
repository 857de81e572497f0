"""Each composite transform and stage DoFn of pipelines/ alone, on Beam's local runner, with
TestPipeline and assert_that on small inputs written here. What only a whole run shows (the
same bytes across runners and workers, the command line, a real run's manifest) stays in the
end-to-end tests (test_pipeline.py, test_buckets.py, test_balance.py, test_prepare.py)."""
import collections
import hashlib
import json
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.balance import BalanceShards, WriteBalancedFile, record_sizes_bytes
from pipelines.buckets import (ID_GROUPS, AssignedBucket, BucketFile, Deduplicate, Drops, MakeBuckets, ReadAndClean,
                               content_key, write_dedup_index)
from pipelines.common import (DEAD_LETTER, STATS, AccountedDoFn, CheckedDoFn, FinishStage, RunInfo,
                              launcher_versions, sum_counters)
from pipelines.generate_pipeline import TOKEN_COUNTS, WriteShard
from pipelines.inputs import match_sources
from pipelines.output import WORK_FOLDER, write_atomically
from pipelines.parquet_io import DocumentsFile, dedup_index_bytes, document_ids, documents_of, read_dedup_group
from pipelines.prepare_pipeline import WriteDocuments, prepare_manifest
from pipelines.reading import plan_group
from pipelines.segment_pipeline import SegmentFile
from pipelines.segmenters import SegmenterChoice
from tests.conftest import crc32c_as_gcs_reports_it, google_run_pretraining_features
from tests.test_buckets import band_buckets
from tests.test_pipeline import LOCAL, write_text_corpus
from wwm_core.config import (CleaningConfig, OutputConfig, RunConfig, SegmentationConfig, SourceSpec,
                             instances_from_recipe)
from wwm_core.manifest import FileInfo, parse_manifest
from wwm_core.near_dedup import band_layout, signatures
from wwm_core.records import schema
from wwm_core.stats import Stats
from wwm_core.text import BadRecord, Document


def local_pipeline() -> test_pipeline.TestPipeline:
    """A TestPipeline on the runner the project's own tests use, named: Beam's "DirectRunner"
    (and a pipeline left to pick its runner) first tries Prism, which it downloads."""
    return test_pipeline.TestPipeline(options=PipelineOptions(LOCAL))


def scalars(stats) -> dict:
    """A Stats' scalar counters without the zeros (a counter added to by 0 still has a key)."""
    return dict(+stats)


def wwm_metrics(pipeline) -> dict:
    """Runs ``pipeline``; its counters in the "wwm" namespace, each summed over the steps that
    counted it, without zeros."""
    result = pipeline.run()
    result.wait_until_finish()
    metrics = collections.Counter()
    for counter in result.metrics().query(MetricsFilter().with_namespace("wwm"))["counters"]:
        metrics[counter.key.metric.name] += counter.committed
    return dict(+metrics)


def parquet_documents(path, documents) -> str:
    """``documents`` written as a documents Parquet file (what `wwm prepare` writes); its path."""
    documents_file = DocumentsFile(str(path))
    for document in documents:
        documents_file.add(document)
    documents_file.finish()
    return str(path)


# ---------------------------------------------------------------- buckets.py: MakeBuckets

def _text_source(folder) -> SourceSpec:
    return SourceSpec("text", "text", (f"{folder}/*.txt",), "none")


def _bucket_summary(element):
    """A MakeBuckets output as plain values: (index, count, order, ids in its file, drops)."""
    order, joined = element
    (bucket,) = joined["bucket"]
    drops = tuple(sorted((drop.reason, tuple(drop.ids())) for drop in joined["drop"]))
    return bucket.index, bucket.count, order, tuple(document_ids(bucket.file.path)), drops


def test_make_buckets_fills_buckets_in_file_order_and_joins_each_with_its_dropped_duplicates(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()

    def document(k):
        return [f"文档{k}的第一句讲语言模型。", f"文档{k}的第二句讲全词掩码。"]  # 37 + 37 bytes of UTF-8

    assert all(len("".join(document(k)).encode()) == 74 for k in range(10))
    # a.txt: 5 documents of 75 bytes and a blank line between them, 384 bytes: at least a bucket
    # (200 bytes), so read alone, and at most two, so read whole. Documents begin at 77 * k.
    write_text_corpus(corpus / "a.txt", [document(k) for k in range(5)])
    # b.txt (153 bytes) is smaller than a bucket: gathered (alone, as the last file). Its second
    # document is a copy of a.txt's second.
    write_text_corpus(corpus / "b.txt", [document(9), document(1)])
    spec = _text_source(corpus)
    files, bad = match_sources([spec])
    assert not bad

    with local_pipeline() as pipeline:
        made = pipeline | MakeBuckets((spec,), files=files, cleaning=CleaningConfig(),
                                      work_folder=str(tmp_path / "work"), bucket_bytes=200)
        # A bucket closes once its text reaches 200 bytes: after three documents (222 bytes); the
        # rest of a file is its last bucket. Buckets are numbered in (source, file, start, chunk)
        # order. Of two documents with one text, the one with the smaller id stays: b.txt's copy is
        # dropped, in b.txt's bucket.
        assert_that(made["buckets"] | beam.Map(_bucket_summary), equal_to([
            (0, 3, (0, "a.txt", 0, 0), ("text:a.txt@0", "text:a.txt@77", "text:a.txt@154"), ()),
            (1, 3, (0, "a.txt", 0, 1), ("text:a.txt@231", "text:a.txt@308"), ()),
            (2, 3, (0, "b.txt", 0, 0), ("text:b.txt@0", "text:b.txt@77"), (("duplicate", ("text:b.txt@77",)),)),
        ]))


def test_make_buckets_dead_letters_an_unreadable_path_and_a_bad_document_and_counts_them(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    mixed = corpus / "mixed.txt"
    # Documents begin at byte 0, 26 (24 bytes and a blank line later) and 56 (13 + 15 + 2 later);
    # the second has a line that is not UTF-8: the whole document is one dead letter.
    mixed.write_bytes("语言模型很有用。\n\n".encode()
                      + b"\xff\xfe not utf-8\n" + "全词掩码。\n\n".encode()
                      + "在中文里，一个词通常由两个汉字组成。\n".encode())
    os.symlink(tmp_path / "nowhere.txt", corpus / "gone.txt")  # matched by the glob, unreadable
    spec = _text_source(corpus)
    files, bad = match_sources([spec])
    assert [file.relative for file in files] == ["mixed.txt"] and len(bad) == 1

    pipeline = local_pipeline()
    made = pipeline | MakeBuckets((spec,), files=files, bad_records=bad, cleaning=CleaningConfig(),
                                  work_folder=str(tmp_path / "work"), bucket_bytes=1 << 20)
    # The link's dead letter (made at launch) and the document with an undecodable line (made
    # while reading): each with its reason, the input it stands for, and the full path.
    assert_that(made[DEAD_LETTER] | beam.Map(lambda r: (r.id, r.reason, r.raw, str(corpus) in r.detail)),
                equal_to([("text:gone.txt", "broken_symbolic_link", str(corpus / "gone.txt"), True),
                          ("text:mixed.txt@26", "invalid_utf8", "\\xff\\xfe not utf-8", True)]),
                label="DeadLetters")
    # Four records: the link and three documents; two of them dead-lettered; one file read.
    assert_that(sum_counters((made[STATS],)) | beam.Map(scalars),
                equal_to([{"records_in": 4, "files_read": 1, "dead_lettered.broken_symbolic_link": 1,
                           "dead_lettered.invalid_utf8": 1}]), label="Stats")
    # The two good documents are in the one bucket.
    assert_that(made["buckets"] | beam.Map(_bucket_summary), equal_to([
        (0, 1, (0, "mixed.txt", 0, 0), ("text:mixed.txt@0", "text:mixed.txt@56"), ())]), label="Buckets")
    # The launch's dead letter is in Beam's metrics too, as the reader's are (a console shows them).
    assert wwm_metrics(pipeline) == {"records_in": 4, "files_read": 1, "dead_lettered.broken_symbolic_link": 1,
                       "dead_lettered.invalid_utf8": 1}


# ---------------------------------------------------------------- buckets.py: ReadAndClean

def _read_and_clean(spec, *, work_folder):
    """ReadAndClean of one source, as MakeBuckets applies it, with buckets of a megabyte."""
    return beam.ParDo(ReadAndClean(sources=(spec,), cleaning=CleaningConfig(), work_folder=str(work_folder),
                                   bucket_bytes=1 << 20)).with_outputs(DEAD_LETTER, STATS, main="buckets")


def test_read_and_clean_sends_a_bad_record_to_the_dead_letter_output_with_its_reason_and_input(tmp_path):
    good = json.dumps({"title": "标题", "text": "语言模型很有用。全词掩码让一个词的所有字一起被遮盖。"}, ensure_ascii=False)
    broken = '{"text": broken'
    empty = json.dumps({"text": "   "})
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join([good, broken, empty]) + "\n", encoding="utf-8")
    spec = SourceSpec("news", "jsonl", (str(path),), "none")
    (file,), _ = match_sources([spec])
    units = list(plan_group([file], sources=(spec,), unit_bytes=1 << 20))
    broken_at = len(good.encode()) + 1  # ids name the byte a line begins at

    def bucket_contents(bucket):
        documents = [(d.id, d.title, d.sentences) for d in documents_of(bucket.path, Stats(), count_records=False)]
        return bucket.order, bucket.counted, tuple(documents)

    with local_pipeline() as pipeline:
        read = (pipeline
                | beam.Create(units)
                | _read_and_clean(spec, work_folder=tmp_path / "work"))
        # The good line: a bucket file of one document, its text split into sentences; its records
        # were counted as they were read.
        assert_that(read.buckets | beam.Map(bucket_contents), equal_to([
            ((0, "news.jsonl", 0, 0), True, (("news:news.jsonl@0", "标题",
                                               ("语言模型很有用。", "全词掩码让一个词的所有字一起被遮盖。")),))]))
        # The broken line: a dead letter with its reason, the line itself, and the file's path.
        assert_that(read[DEAD_LETTER] | beam.Map(lambda r: (r.id, r.reason, r.raw, str(path) in r.detail)),
                    equal_to([(f"news:news.jsonl@{broken_at}", "malformed_json", broken, True)]), label="DeadLetters")
        # Three records: one kept, one dead-lettered, one filtered (no text).
        assert_that(sum_counters((read[STATS],)) | beam.Map(scalars),
                    equal_to([{"records_in": 3, "files_read": 1, "dead_lettered.malformed_json": 1,
                               "documents_filtered.empty": 1}]), label="Stats")


def test_read_and_clean_takes_a_prepared_documents_file_as_its_own_uncounted_bucket(tmp_path):
    prepared = tmp_path / "documents"
    prepared.mkdir()
    path = parquet_documents(prepared / "part-00000-of-00001.parquet",
                             [Document("text:a.txt@0", ("语言模型。",)), Document("text:a.txt@9", ("全词掩码。",))])
    spec = SourceSpec("prepared", "parquet", (path,), "none")
    (file,), _ = match_sources([spec])

    def described(bucket):
        # Its ids are in its dedup index (the id groups), for Deduplicate to read.
        ids = sorted(i for group in ID_GROUPS for i in read_dedup_group(bucket.dedup_index, group)[0].to_pylist())
        return bucket.order, bucket.path, bucket.counted, tuple(ids)

    with local_pipeline() as pipeline:
        read = (pipeline
                | beam.Create(list(plan_group([file], sources=(spec,), unit_bytes=1 << 20)))
                | _read_and_clean(spec, work_folder=tmp_path / "work"))
        # Prepared documents are neither read nor cleaned again: the file is the bucket, and its
        # rows are counted as records by the stage that reads them (counted False).
        assert_that(read.buckets | beam.Map(described), equal_to([
            ((0, "part-00000-of-00001.parquet", 0, 0), path, False, ("text:a.txt@0", "text:a.txt@9"))]))
        assert_that(read[DEAD_LETTER], equal_to([]), label="NoDeadLetters")


# ---------------------------------------------------------------- buckets.py: Deduplicate

def _drops(element):
    order, drops = element
    return order, drops.reason, tuple(drops.ids())


def test_deduplicate_drops_every_copy_of_a_text_but_the_smallest_id_and_a_repeated_id_in_a_later_bucket(tmp_path):
    work = str(tmp_path / "work")
    first, second = (0, "a.txt", 0, 0), (0, "b.txt", 0, 0)
    buckets = []
    for order, documents in ((first, [Document("text:a.txt@0", ("语言模型很有用。",)),
                                      Document("wiki:zh.xml#12", ("北京是首都。",))]),
                             (second, [Document("text:b.txt@0", ("语言模型很有用。",)),  # a.txt@0's text
                                       Document("wiki:zh.xml#12", ("长江很长。",)),  # another text, the same id
                                       Document("text:b.txt@30", ("全词掩码。",))])):
        ids, keys = [d.id for d in documents], [content_key(d) for d in documents]
        buckets.append(BucketFile(order, "unused", True, write_dedup_index(work, order, ids, keys)))

    with local_pipeline() as pipeline:
        drops = (pipeline
                 | beam.Create([list(reversed(buckets))])  # the bucket list comes in no particular order
                 | Deduplicate(exact=True, threshold=0.0, work_folder=work))
        # text:a.txt@0 < text:b.txt@0: the copy in b.txt goes. The id read again in the later
        # bucket (b.txt) goes there, whatever its text.
        assert_that(drops | beam.Map(_drops), equal_to([
            (second, "duplicate", ("text:b.txt@0",)),
            (second, "duplicate_document_id", ("wiki:zh.xml#12",))]))


def test_deduplicate_drops_a_near_duplicate_and_keeps_a_different_text(tmp_path):
    text = ["使用语言模型来预测下一个词的概率。", "全词掩码让一个词的所有字一起被遮盖。", "在中文里，一个词通常由两个汉字组成。",
            "北京是中华人民共和国的首都。", "这座城市有三千多年的建城史。"]
    near = [sentence.replace("北京", "南京") for sentence in text]  # one character of about 80 changed
    other = ["长江是中国第一长河，全长约六千三百公里。", "长江流域是中国经济最发达的地区之一。"]
    original_signature, near_signature, other_signature = signatures([text, near, other])
    first, second = (0, "a.txt", 0, 0), (0, "b.txt", 0, 0)
    bands, rows = band_layout(0.8)
    buckets = band_buckets(tmp_path, [(first, ["doc-2", "doc-3"], [original_signature, other_signature]),
                                      (second, ["doc-1"], [near_signature])], bands=bands, rows=rows)

    with local_pipeline() as pipeline:
        drops = pipeline | beam.Create([buckets]) | Deduplicate(exact=False, threshold=0.8, work_folder=str(tmp_path))
        # doc-1 (the smallest id) stays, though its bucket comes later; doc-2, nearly its text,
        # goes; doc-3, another text, stays.
        assert_that(drops | beam.Map(_drops), equal_to([(first, "near_duplicate", ("doc-2",))]))


# ---------------------------------------------------------------- common.py

class _Greeter(CheckedDoFn):
    """Loads its greeting in start() and notes, in ``folder``, each time it starts."""

    def __init__(self, folder: str, **kwargs):
        super().__init__(**kwargs)
        self._folder = folder

    def start(self):
        self._greeting = "你好"
        with open(os.path.join(self._folder, f"started-{os.getpid()}-{id(self)}"), "w"):
            pass

    def process(self, name):
        yield f"{self._greeting} {name}"


def test_checked_dofn_starts_before_its_first_element_where_the_versions_match(tmp_path):
    with local_pipeline() as pipeline:
        greeted = pipeline | beam.Create(["甲", "乙", "丙"]) | beam.ParDo(_Greeter(str(tmp_path)))
        # Every element sees what start() loaded: setup() checked the versions, then started.
        assert_that(greeted, equal_to(["你好 甲", "你好 乙", "你好 丙"]))
    assert list(tmp_path.glob("started-*"))


def test_checked_dofn_refuses_to_start_where_the_launcher_had_other_versions(tmp_path):
    other = {**launcher_versions(), "numpy": "0.0.1"}
    with pytest.raises(Exception, match="this worker refuses to start: numpy"):
        with local_pipeline() as pipeline:
            _ = pipeline | beam.Create(["甲"]) | beam.ParDo(_Greeter(str(tmp_path), expected_versions=other))
    assert not list(tmp_path.glob("started-*")), "start() ran on a worker that refused"


class _ParseNumbers(AccountedDoFn):
    """Text -> int; text that is not a number is a dead letter."""

    def work(self, text, stats, dead_letters):
        stats["records_in"] += 1
        try:
            number = int(text)
        except ValueError:
            stats["dead_lettered.not_a_number"] += 1
            dead_letters.append(BadRecord(f"line:{text}", "not_a_number", "int() refused it", text))
            return
        stats["documents_out"] += 1
        yield number


def test_accounted_dofn_routes_outputs_dead_letters_and_stats_and_reports_the_counters_as_metrics():
    pipeline = local_pipeline()
    parsed = (pipeline
              | beam.Create(["1", "x", "3"])
              | beam.ParDo(_ParseNumbers()).with_outputs(DEAD_LETTER, STATS, main="numbers"))
    assert_that(parsed.numbers, equal_to([1, 3]))
    assert_that(parsed[DEAD_LETTER], equal_to([BadRecord("line:x", "not_a_number", "int() refused it", "x")]),
                label="DeadLetters")
    # One Stats per element, whatever work() counted for it.
    assert_that(parsed[STATS] | beam.Map(lambda stats: tuple(sorted(stats.items()))), equal_to([
        (("documents_out", 1), ("records_in", 1)),
        (("dead_lettered.not_a_number", 1), ("records_in", 1)),
        (("documents_out", 1), ("records_in", 1))]), label="Stats")
    # The same counters, summed, are Beam metrics in the "wwm" namespace (what a console shows).
    assert wwm_metrics(pipeline) == {
        "records_in": 3, "documents_out": 2, "dead_lettered.not_a_number": 1}


def _stats(counters: dict, histogram: dict = None) -> Stats:
    stats = Stats(counters)
    stats.histograms["sentence_chars"].update(histogram or {})
    return stats


def _prepare_config(output) -> RunConfig:
    return RunConfig(sources=(SourceSpec("text", "text", ("corpus.txt",), "none"),),
                     output=OutputConfig(path=str(output)))


def test_finish_stage_sums_the_stats_writes_the_dead_letters_then_the_manifest_and_removes_the_work_folder(tmp_path):
    output = tmp_path / "out"
    (output / WORK_FOLDER).mkdir(parents=True)
    (output / WORK_FOLDER / "bucket.parquet").write_bytes(b"a work file")
    bad = BadRecord("text:corpus.txt@9", "invalid_utf8", "byte 9: invalid start byte", "\\xff")
    info = FileInfo(bytes=10, crc32c="AAAAAA==", records=3)

    with local_pipeline() as pipeline:
        files = pipeline | "Files" >> beam.Create([("documents/part-00000-of-00001.parquet", info)])
        read_stats = pipeline | "ReadStats" >> beam.Create([
            _stats({"records_in": 3, "dead_lettered.invalid_utf8": 1}, {8: 2}), _stats({"records_in": 2}, {8: 1})])
        written_stats = pipeline | "WrittenStats" >> beam.Create([
            _stats({"documents_out": 3, "documents_filtered.duplicate": 1})])
        dead_read = pipeline | "DeadRead" >> beam.Create([bad])
        dead_written = pipeline | "DeadWritten" >> beam.Create([])
        manifest = pipeline | FinishStage(
            output=str(output), files=files, stats=(read_stats, written_stats), dead_letters=(dead_read, dead_written),
            write_manifest=lambda **inputs: prepare_manifest(config=_prepare_config(output),
                                                             run_info=RunInfo(command=("wwm", "prepare")), **inputs),
            work_folder=True)
        assert_that(manifest | beam.Map(lambda m: (m.kind, m.num_documents)), equal_to([("documents", 3)]))

    written = parse_manifest((output / "manifest.json").read_bytes(), path="manifest.json", kinds=("documents",))
    # Summed by hand: 3 + 2 records in; 3 out, 1 filtered, 1 dead-lettered.
    assert written.counters == {"records_in": 5, "documents_out": 3, "documents_filtered.duplicate": 1,
                                "dead_lettered.invalid_utf8": 1}
    assert written.histograms == {"sentence_chars": {"8": 3}}
    assert written.accounting == {"records_in": 5, "out": 3, "filtered": 1, "dead_lettered": 1, "balanced": True}
    assert written.files == ("documents/part-00000-of-00001.parquet",)
    # Every dead letter, from every stage, is one JSON line of the file the manifest names.
    (dead_letter_file,) = written.dead_letter_files
    lines = (output / dead_letter_file).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "text:corpus.txt@9", "reason": "invalid_utf8", "detail": "byte 9: invalid start byte", "raw": "\\xff"}]
    assert not (output / WORK_FOLDER).exists(), "the work folder goes once the manifest is written"


def test_finish_stage_writes_no_manifest_when_records_are_unaccounted_for(tmp_path):
    output = tmp_path / "out"
    with pytest.raises(Exception, match="records are unaccounted for"):
        with local_pipeline() as pipeline:
            _ = pipeline | FinishStage(
                output=str(output), files=pipeline | "Files" >> beam.Create([]),
                # 5 records in, 3 out, nothing filtered or dead-lettered: two are lost.
                stats=(pipeline | "Stats" >> beam.Create([_stats({"records_in": 5, "documents_out": 3})]),),
                dead_letters=(pipeline | "DeadLetters" >> beam.Create([]),),
                write_manifest=lambda **inputs: prepare_manifest(config=_prepare_config(output),
                                                                 run_info=RunInfo(command=("wwm", "prepare")),
                                                                 **inputs))
    assert not (output / "manifest.json").exists()


# ---------------------------------------------------------------- balance.py

def _tfrecord_source(tf, folder, name, payloads) -> dict:
    """A bucket's shard as WriteShard describes it with --balance_shards: its TFRecords (written by
    TensorFlow here) and, beside them, the size of each record's frame."""
    path = str(folder / name)
    with tf.io.TFRecordWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)
    index = f"{path}.sizes.npy"
    # A TFRecord frame: 8 bytes of length, 4 of its CRC, the data, 4 of the data's CRC.
    write_atomically(index, record_sizes_bytes([len(payload) + 16 for payload in payloads]))
    return {"file": name, "kind": "tfrecord", "path": path, "index": index,
            "info": FileInfo(bytes=os.path.getsize(path), crc32c="", records=len(payloads))}


def test_balance_shards_cuts_the_shards_into_files_of_equal_counts_in_order(tmp_path):
    tf = pytest.importorskip("tensorflow")
    work, short, long = tmp_path / "work", tmp_path / "seq32", tmp_path / "seq64"
    for folder in (work, short, long):
        folder.mkdir()
    shards = [
        {"phase": 32, **_tfrecord_source(tf, work, "part-00000-of-00003.tfrecord", [b"a0", b"a1", b"a2"])},
        {"phase": 32, **_tfrecord_source(tf, work, "part-00001-of-00003.tfrecord", [])},
        {"phase": 32, **_tfrecord_source(tf, work, "part-00002-of-00003.tfrecord", [b"c0", b"c1"])},
        {"phase": 64, **_tfrecord_source(tf, work, "part-00000-of-00001.tfrecord.64", [b"z0"])},
    ]

    def matches_its_file(descriptions):
        for description in descriptions:
            path = (short if description["phase"] == 32 else long) / description["file"]
            assert description["info"].bytes == path.stat().st_size and description["info"].crc32c == crc32c_as_gcs_reports_it(path.read_bytes())

    with local_pipeline() as pipeline:
        balanced = (pipeline
                    | beam.Create(list(reversed(shards)))
                    | BalanceShards(folder_of={32: str(short), 64: str(long)}, num_files=2, parquet_features=()))
        assert_that(balanced | beam.Map(lambda d: (d["phase"], d["kind"], d["file"], d["info"].records)), equal_to([
            (32, "tfrecord", "part-00000-of-00002.tfrecord", 2), (32, "tfrecord", "part-00001-of-00002.tfrecord", 3),
            (64, "tfrecord", "part-00000-of-00002.tfrecord", 0), (64, "tfrecord", "part-00001-of-00002.tfrecord", 1)]))
        assert_that(balanced, matches_its_file, label="InfoOfTheFile")

    def records(path):
        return [record.numpy() for record in tf.data.TFRecordDataset(str(path))]

    # 5 records of phase 32 in two files: 2 and 3 (the later files take the remainder), in shard
    # order; phase 64's one record in the last of its two files.
    assert records(short / "part-00000-of-00002.tfrecord") == [b"a0", b"a1"]
    assert records(short / "part-00001-of-00002.tfrecord") == [b"a2", b"c0", b"c1"]
    assert records(long / "part-00000-of-00002.tfrecord") == []
    assert records(long / "part-00001-of-00002.tfrecord") == [b"z0"]
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_write_balanced_file_writes_a_parquet_task_from_slices_of_its_sources(tmp_path):
    features = tuple(f for f in schema("static", parquet=True) if f.name in ("input_ids", "next_sentence_labels"))
    table_schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("next_sentence_label", pa.int8())])
    sources = []
    for number, rows in enumerate([[[101, 1, 102], [101, 2, 102], [101, 3, 102]], [[101, 4, 102]]]):
        path = str(tmp_path / f"source-{number}.parquet")
        pq.write_table(pa.table({"input_ids": rows, "next_sentence_label": [number] * len(rows)}, schema=table_schema),
                       path)
        sources.append(path)
    out = tmp_path / "out"
    # File 1 of 2 of phase 32: rows 1 and 2 of the first source, then row 0 of the second.
    task = (32, "parquet", 1, 2, [(sources[0], None, 1, 3), (sources[1], None, 0, 1)])

    with local_pipeline() as pipeline:
        written = (pipeline
                   | beam.Create([task])
                   | beam.ParDo(WriteBalancedFile(folder_of={32: str(out)}, parquet_features=features)))
        assert_that(written | beam.Map(lambda d: (d["phase"], d["kind"], d["file"], d["info"].records)),
                    equal_to([(32, "parquet", "part-00001-of-00002.parquet", 3)]))

    assert pq.read_table(out / "part-00001-of-00002.parquet").to_pylist() == [
        {"input_ids": [101, 2, 102], "next_sentence_label": 0}, {"input_ids": [101, 3, 102], "next_sentence_label": 0},
        {"input_ids": [101, 4, 102], "next_sentence_label": 1}]


# ---------------------------------------------------------------- generate_pipeline.py: WriteShard

def test_write_shard_writes_a_tfrecord_shard_that_tensorflow_parses_to_the_documents_tokens(tmp_path, bundled_vocab):
    tf = pytest.importorskip("tensorflow")
    output = tmp_path / "out"
    # One segment per instance, one sentence per document: each document makes one instance per
    # dupe, [CLS] its characters [SEP]. The char segmenter: each token its own word.
    config = RunConfig(
        sources=(SourceSpec("text", "text", ("corpus.txt",), "none"),), output=OutputConfig(path=str(output)),
        segmentation=SegmentationConfig("char"),
        instances=instances_from_recipe("roberta-wwm-ext", max_seq_lengths=(32,), sentence_task="none",
                                        paired_input=False, dupe_factor=2))
    documents_file = parquet_documents(tmp_path / "part-00001-of-00003.parquet", [
        Document("d0", ("语言模型",), "text"), Document("d1", ("全词掩码",), "text"),
        Document("d0", ("重复的编号",), "text")])  # the id of an earlier row: a dead letter
    order = (0, "part-00001-of-00003.parquet", 0, 0)
    bucket = AssignedBucket(1, 3, BucketFile(order, documents_file, counted=False, dedup_index=""))

    with local_pipeline() as pipeline:
        shards = (pipeline
                  | beam.Create([(order, {"bucket": [bucket], "drop": []})])
                  | beam.ParDo(WriteShard(config=config, vocab=bundled_vocab, segmenter=SegmenterChoice("char")))
                  .with_outputs(STATS, DEAD_LETTER, TOKEN_COUNTS, main="files"))
        assert_that(shards.files | beam.Map(lambda d: (d["phase"], d["kind"], d["file"], d["info"].records,
                                                       d["info"].bytes == os.path.getsize(d["path"]))),
                    equal_to([(32, "tfrecord", "part-00001-of-00003.tfrecord", 4, True)]))
        assert_that(shards[DEAD_LETTER] | beam.Map(lambda r: (r.id, r.reason)),
                    equal_to([("d0", "duplicate_document_id")]), label="DeadLetters")
        # Three rows read (a prepared file: its rows are its records), two documents out, one
        # dead-lettered; four instances.
        expected = {"records_in": 3, "documents_out": 2, "dead_lettered.duplicate_document_id": 1,
                    "shards_written": 1, "phase.32.instances": 4}
        assert_that(shards[STATS] | beam.Map(lambda stats: {name: stats[name] for name in expected}),
                    equal_to([expected]), label="Stats")
        # The bucket's text counted once, not once per dupe: eight characters, each once.
        counted = [bundled_vocab.id_of(c) for c in "语言模型全词掩码"]
        assert_that(shards[TOKEN_COUNTS] | beam.Map(lambda counts: (
            int(counts.sum()), sorted(np.flatnonzero(counts).tolist()))), equal_to([(8, sorted(counted))]),
            label="TokenCounts")

    parse = google_run_pretraining_features(32, 5)  # 5: Google's budget at 32 (32 * 0.15, up to a multiple of 5)
    ids = {text: [bundled_vocab.id_of("[CLS]"), *(bundled_vocab.id_of(c) for c in text), bundled_vocab.id_of("[SEP]")]
           for text in ("语言模型", "全词掩码")}
    restored = []
    for record in tf.data.TFRecordDataset(str(output / "part-00001-of-00003.tfrecord")):
        example = {name: value.numpy().tolist() for name, value in tf.io.parse_single_example(record, parse).items()}
        assert example["input_mask"] == [1] * 6 + [0] * 26 and example["segment_ids"] == [0] * 32
        assert example["next_sentence_labels"] == [0]
        # 6 tokens at 0.15: one masked (Google: max(1, round(6 * 0.15))), never [CLS] or [SEP].
        assert example["masked_lm_weights"] == [1.0, 0.0, 0.0, 0.0, 0.0]
        position, original = example["masked_lm_positions"][0], example["masked_lm_ids"][0]
        assert 1 <= position <= 4 and example["masked_lm_positions"][1:] == [0] * 4
        input_ids = example["input_ids"]
        input_ids[position] = original
        restored.append(input_ids)
    pad = [0] * 26
    assert sorted(restored) == sorted([ids["语言模型"] + pad] * 2 + [ids["全词掩码"] + pad] * 2)


# ---------------------------------------------------------------- prepare_pipeline.py: WriteDocuments

def test_write_documents_writes_the_bucket_less_its_drops_and_counts_each_drop_once(tmp_path):
    documents = [Document("d0", ("语言模型。", "很有用。"), "text"), Document("d1", ("全词掩码。",), "text"),
                 Document("d2", ("全词掩码！",), "text"), Document("d3", ("北京。",), "text"),
                 Document("d4", ("全词掩码。",), "text")]
    path = parquet_documents(tmp_path / "work-bucket.parquet", documents)
    order = (0, "a.txt", 0, 0)
    bucket = AssignedBucket(2, 5, BucketFile(order, path, counted=True, dedup_index=""))
    drops = []
    for reason, ids in (("near_duplicate", ["d2"]), ("duplicate", ["d1", "d2"]), ("duplicate_document_id", ["d3"])):
        drop_file = str(tmp_path / f"drops-{reason}.arrow")  # a dedup group's drop file: a batch per bucket
        write_atomically(drop_file, dedup_index_bytes([(ids, None, None)]))
        drops.append(Drops(reason, path=drop_file, batch=0))
    output = tmp_path / "out"
    name = "documents/part-00002-of-00005.parquet"

    with local_pipeline() as pipeline:
        written = (pipeline
                   | beam.Create([(order, {"bucket": [bucket], "drop": drops})])
                   | beam.ParDo(WriteDocuments(str(output))).with_outputs(STATS, DEAD_LETTER, main="files"))
        assert_that(written.files | beam.Map(lambda f: (f[0], f[1].records)), equal_to([(name, 2)]))
        # d2 is both a duplicate and a near duplicate: counted once, as a duplicate (the first
        # reason that applies). d3's id was read first elsewhere: a dead letter. Its records were
        # counted when read (counted True): no records_in here. Sentences and characters: d0
        # (5 + 4) and d4 (5).
        assert_that(written[STATS] | beam.Map(scalars), equal_to([{
            "documents_out": 2, "documents_filtered.duplicate": 2, "dead_lettered.duplicate_document_id": 1,
            "sentences": 3, "characters": 14, "source.text.documents": 2, "source.text.characters": 14}]),
            label="Stats")
        assert_that(written[DEAD_LETTER] | beam.Map(lambda r: (r.id, r.reason, r.detail.endswith("in a.txt"))),
                    equal_to([("d3", "duplicate_document_id", True)]), label="DeadLetters")

    assert [(d.id, d.sentences) for d in documents_of(str(output / name), Stats(), count_records=False)] == [
        ("d0", ("语言模型。", "很有用。")), ("d4", ("全词掩码。",))]


# ---------------------------------------------------------------- segment_pipeline.py: SegmentFile

def test_segment_file_writes_each_sentences_jieba_word_lengths_under_its_key_and_dead_letters_a_bad_file(tmp_path):
    documents = tmp_path / "documents"
    documents.mkdir()
    good = parquet_documents(documents / "part-00000-of-00002.parquet", [
        Document("d0", ("我爱北京天安门",), "text"), Document("d1", ("语言模型很有用", "全词掩码"), "text")])
    bad = documents / "part-00001-of-00002.parquet"
    bad.write_bytes(b"not a parquet file")
    cache = tmp_path / "cache"

    with local_pipeline() as pipeline:
        segmented = (pipeline
                     | beam.Create([good, str(bad)])
                     # One sentence per batch: three segmenter calls, the rows still in document order.
                     | beam.ParDo(SegmentFile(SegmenterChoice("jieba"), output=str(cache), batch_sentences=1))
                     .with_outputs(STATS, DEAD_LETTER, main="files"))
        # One cache file per documents file, of the same name; the unreadable one has no rows.
        assert_that(segmented.files | beam.Map(lambda f: (f[0], f[1].records)), equal_to([
            ("part-00000-of-00002.parquet", 2), ("part-00001-of-00002.parquet", 0)]))
        assert_that(segmented[DEAD_LETTER] | beam.Map(lambda r: (r.id, r.reason)),
                    equal_to([(str(bad), "unreadable_parquet")]), label="DeadLetters")
        # Records: two documents and the unreadable file; 3 sentences of 7 + 7 + 4 characters.
        assert_that(sum_counters((segmented[STATS],)) | beam.Map(scalars), equal_to([{
            "records_in": 3, "files_read": 2, "documents_out": 2, "dead_lettered.unreadable_parquet": 1,
            "sentences_segmented": 3, "characters_segmented": 18}]), label="Stats")

    def key(sentence):
        return hashlib.blake2b(sentence.encode("utf-8"), digest_size=16).digest()

    # jieba's words, written out: 我/爱/北京/天安门, 语言/模型/很/有用, 全词/掩码.
    assert pq.read_table(cache / "part-00000-of-00002.parquet").to_pylist() == [
        {"id": "d0", "sentence_keys": [key("我爱北京天安门")], "word_lengths": [[1, 1, 2, 3]]},
        {"id": "d1", "sentence_keys": [key("语言模型很有用"), key("全词掩码")], "word_lengths": [[2, 2, 1, 2], [2, 2]]}]
    assert pq.read_table(cache / "part-00001-of-00002.parquet").num_rows == 0
