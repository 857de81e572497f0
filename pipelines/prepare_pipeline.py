"""The ``wwm prepare`` pipeline: raw corpora read, cleaned and deduplicated once, written as
Parquet documents that every later ``wwm segment`` and ``wwm run`` reads.

    MakeBuckets (read, clean, dedup: pipelines/buckets.py) -> WriteDocuments (per bucket:
    documents/part-NNNNN-of-NNNNN.parquet, each a bucket of later runs) -> manifest ("documents")
         \\-> dead letters
"""
import functools

import apache_beam as beam

from pipelines.buckets import WORK_FOLDER, MakeBuckets, bucket_documents
from pipelines.common import (DEAD_LETTER, STATS, AccountedDoFn, FinishStage, accounting, dead_letter_names,
                              write_manifest)
from pipelines.io_utils import join
from pipelines.parquet_io import DOCUMENTS_FOLDER, DocumentsFile
from pipelines.progress import tally
from wwm_core.generate import count_histogram
from wwm_core.manifest import Manifest

COUNT_DOCUMENTS = 1024


def count_written_documents(stats, documents) -> None:
    """What the report shows of the documents written: their sentences and characters, per
    source too, and the length histograms (the names ``wwm run`` counts its documents under)."""
    sentence_lengths = [len(sentence) for document in documents for sentence in document.sentences]
    document_lengths = [sum(map(len, document.sentences)) for document in documents]
    stats["sentences"] += len(sentence_lengths)
    stats["characters"] += sum(sentence_lengths)
    for document, characters in zip(documents, document_lengths):
        stats[f"source.{document.source}.documents"] += 1
        stats[f"source.{document.source}.characters"] += characters
    count_histogram(stats, "document_chars", document_lengths, log2=True)
    count_histogram(stats, "sentence_chars", sentence_lengths, log2=True)


class WriteDocuments(AccountedDoFn):
    """(order, {"bucket": [AssignedBucket], "drop": [Drops]}) -> the bucket's documents, less the
    dropped ones, as documents/part-NNNNN-of-NNNNN.parquet; yields the file's name, with STATS and
    DEAD_LETTER. ``progress``: a ProgressChannel that files written are counted into, or None."""

    def __init__(self, output: str, *, progress=None, expected_versions=None):
        super().__init__(expected_versions=expected_versions)
        self._output = output
        self._progress = progress

    def start(self):
        self._tally = tally(self._progress, "written")

    def work(self, order_and_inputs, stats, dead_letters):
        _, inputs = order_and_inputs
        (bucket,) = inputs["bucket"]
        name = join(DOCUMENTS_FOLDER, f"part-{bucket.index:05d}-of-{bucket.count:05d}.parquet")
        documents = DocumentsFile(join(self._output, name))
        counting = []  # documents written and not yet counted: counted a thousand at a time
        try:
            for document in bucket_documents(bucket, inputs["drop"], stats, dead_letters):
                documents.add(document)
                counting.append(document)
                if len(counting) == COUNT_DOCUMENTS:
                    count_written_documents(stats, counting)
                    counting.clear()
            info = documents.finish()
        except BaseException:
            documents.abandon()
            raise
        count_written_documents(stats, counting)
        stats["documents_out"] += documents.count
        if self._tally is not None:
            self._tally.note(of=bucket.count)
            self._tally.add(n=1)
            self._tally.flush()
        yield name, info


def prepare_manifest(*, config, run_info, files, counters, dead_letter_files) -> Manifest:
    """``wwm prepare``'s manifest, written once the Parquet files and dead letters are."""
    return write_manifest(config.output.path, Manifest(
        kind="documents", **run_info.fields(), config=config.to_json(sections=("sources", "cleaning", "output")),
        files=tuple(sorted(name for name, _ in files)), file_info=dict(files),
        dead_letter_files=dead_letter_names(dead_letter_files), counters=dict(sorted(counters.items())),
        histograms=counters.histograms_json(), accounting=accounting(counters),
        num_documents=counters.get("documents_out", 0)))


def build_prepare_pipeline(pipeline, *, config, run_info, inputs, unreadable=(), progress=None):
    """``inputs``, ``unreadable``: as generate_pipeline.build_pipeline takes them."""
    buckets = pipeline | "MakeBuckets" >> MakeBuckets(
        config.sources, files=inputs, bad_records=unreadable, cleaning=config.cleaning,
        work_folder=join(config.output.path, WORK_FOLDER), bucket_bytes=config.output.bucket_bytes, progress=progress)
    written = buckets["buckets"] | "WriteDocuments" >> beam.ParDo(WriteDocuments(
        config.output.path, progress=progress)).with_outputs(STATS, DEAD_LETTER, main="files")
    return pipeline | "Finish" >> FinishStage(
        output=config.output.path, files=written.files, stats=(buckets[STATS], written[STATS]),
        dead_letters=(buckets[DEAD_LETTER], written[DEAD_LETTER]), work_folder=True,
        write_manifest=functools.partial(prepare_manifest, config=config, run_info=run_info))
