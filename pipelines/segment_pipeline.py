"""``wwm segment``: the word boundaries of prepared documents, written beside them once, for every
later ``wwm run`` to reuse.

    PREPARED/documents/part-*.parquet                          (``wwm prepare``)
    PREPARED/segmentation/<identity key>/part-*.parquet        (this: id, sentence keys, word lengths;
                                                               one file per documents file, same name)
    PREPARED/segmentation/<identity key>/segmentation.json     (identity, counters; written last)

The identity key names the segmenter (backend, model and dictionary hashes, library version), so a
changed model or dictionary writes, and reads, another folder; inside it, boundaries are looked up
by a hash of the sentence text, so changed text is segmented again rather than misread.
"""
import functools
import logging

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.common import (DEAD_LETTER, STATS, AccountedDoFn, FinishStage, accounting, dead_letter_names,
                              write_manifest_file)
from pipelines.io_utils import exists, join, read_bytes
from pipelines.output import bytes_crc32c, write_atomically
from pipelines.parquet_io import documents_of
from pipelines.progress import tally
from pipelines.word_cache import SCHEMA, SEGMENTATION_MANIFEST
from wwm_core.manifest import MANIFEST, FileInfo, Manifest, parse_manifest
from wwm_core.text import BadRecord
from wwm_core.word_boundaries import document_batches, segment_documents, sentence_key

# Sentences segmented per call: large enough that the per-call cost of the segmenter and of Beam
# vanishes, small enough to keep a worker's memory flat.
BATCH_SENTENCES = 4096

log = logging.getLogger("wwm")


class SegmentFile(AccountedDoFn):
    """A prepared documents file -> its cache file of the same name in the cache folder (written
    whole, then renamed), with STATS and DEAD_LETTER outputs; yields the file's name. ``progress``:
    a ProgressChannel that documents segmented and files written are counted into, or None."""

    def __init__(self, choice, *, output: str, batch_sentences: int, progress=None, expected_versions=None):
        super().__init__(expected_versions=expected_versions)
        self._choice = choice
        self._output = output
        self._batch_sentences = batch_sentences
        self._progress = progress

    def start(self):
        self._segmenter = self._choice.load()
        self._segmented = tally(self._progress, "segmented")
        self._written = tally(self._progress, "written")

    def work(self, path, stats, dead_letters):
        rows, documents = [], []
        for item in documents_of(path, stats, count_records=True):
            if isinstance(item, BadRecord):
                dead_letters.append(item)
            else:
                documents.append(item)
        for batch in document_batches(documents, self._batch_sentences):
            rows.extend(self._rows(batch, stats, dead_letters))
            if self._segmented is not None:
                self._segmented.add(n=len(batch))
                self._segmented.flush()
        name = FileSystems.split(path)[1]
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        write_atomically(join(self._output, name), data)
        if self._written is not None:
            self._written.add(n=1)
            self._written.flush()
        yield name, FileInfo(bytes=len(data), crc32c=bytes_crc32c(data), records=len(rows))

    def _rows(self, documents, stats, dead_letters):
        kept, sentences, words = segment_documents(self._segmenter, documents, stats=stats,
                                                   dead_letters=dead_letters)
        first = 0
        for document in kept:
            own = range(first, first + len(document.sentences))
            first += len(document.sentences)
            # A sentence whose words do not spell it is not cached: a run segments it again and counts it.
            good = [i for i in own if words[i] is not None and sum(words[i]) == len(sentences[i])]
            stats["sentences.segmenter_text_mismatch"] += len(own) - len(good)
            yield {"id": document.id, "sentence_keys": [sentence_key(sentences[i]) for i in good],
                   "word_lengths": [words[i] for i in good]}
        stats["documents_out"] += len(kept)
        stats["sentences_segmented"] += len(sentences)
        stats["characters_segmented"] += sum(map(len, sentences))


def prepared_document_files(prepared: str) -> list:
    """The Parquet files of a finished ``wwm prepare`` output, from its manifest."""
    manifest_path = join(prepared, MANIFEST)
    if not exists(manifest_path):
        raise FileNotFoundError(f"{prepared} has no {MANIFEST}: not the output of a finished `wwm prepare`")
    manifest = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("documents",))
    return [join(prepared, name) for name in manifest.files]


def segmentation_manifest(*, output: str, run_info, config_json: dict, identity: dict, files, counters,
                          dead_letter_files) -> Manifest:
    """``wwm segment``'s manifest (SEGMENTATION_MANIFEST in the cache folder), written last."""
    manifest = Manifest(
        kind="segmentation", **run_info.fields(), config=config_json, identity=identity,
        files=tuple(sorted(name for name, _ in files)), file_info=dict(files),
        dead_letter_files=dead_letter_names(dead_letter_files), counters=dict(sorted(counters.items())),
        accounting=accounting(counters), num_documents=counters.get("documents_out", 0))
    return write_manifest_file(join(output, SEGMENTATION_MANIFEST), manifest)


def build_segment_pipeline(pipeline, *, files, choice, identity: dict, output: str, run_info, config_json: dict,
                           batch_sentences: int = BATCH_SENTENCES, progress=None):
    """Segments every document of ``files`` (Parquet) into ``output`` (the identity's folder),
    one cache file per documents file, of the same name: a run's bucket finds its cache file
    without any shuffle. ``progress``: a ProgressChannel, or None."""
    segmented = (pipeline
                 | "DocumentFiles" >> beam.Create(files)
                 | "SpreadFiles" >> beam.Reshuffle()
                 | "Segment" >> beam.ParDo(SegmentFile(choice, output=output, batch_sentences=batch_sentences,
                                                       progress=progress))
                 .with_outputs(STATS, DEAD_LETTER, main="files"))
    return pipeline | "Finish" >> FinishStage(
        output=output, files=segmented.files, stats=(segmented[STATS],), dead_letters=(segmented[DEAD_LETTER],),
        write_manifest=functools.partial(segmentation_manifest, output=output, run_info=run_info,
                                         config_json=config_json, identity=identity))
