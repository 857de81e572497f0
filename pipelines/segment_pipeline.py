"""``wwm segment``: the word boundaries of prepared documents, written beside them once, for every
later ``wwm run`` to reuse.

    PREPARED/documents/part-*.parquet                          (``wwm prepare``)
    PREPARED/segmentation/<identity key>/part-*.parquet        (this: id, sentence keys, word lengths)
    PREPARED/segmentation/<identity key>/segmentation.json     (identity, counters; written last)

The identity key names the segmenter (backend, model and dictionary hashes, library version), so a
changed model or dictionary writes, and reads, another folder; inside it, boundaries are looked up
by a hash of the sentence text, so changed text is segmented again rather than misread.
"""
import collections
import logging

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines.common import (DEAD_LETTER, STATS, accounting, check_worker_versions, count, dead_letter_names,
                              launcher_versions, sum_counters, write_dead_letters, write_manifest_file)
from pipelines.io_utils import exists, join, read_bytes
from pipelines.parquet_io import ReadParquetDocuments
from pipelines.word_cache import SCHEMA, SEGMENTATION_MANIFEST
from wwm_core.manifest import MANIFEST, Manifest, parse_manifest
from wwm_core.word_boundaries import segment_documents, sentence_key

# Sentences segmented per call: large enough that the per-call cost of the segmenter and of Beam
# vanishes, small enough to keep a worker's memory flat.
BATCH_SENTENCES = 4096

log = logging.getLogger("wwm")


class SegmentDocuments(beam.DoFn):
    """A batch of Documents -> cache rows, with STATS and DEAD_LETTER outputs."""

    def __init__(self, choice, expected_versions=None):
        self._expected_versions = launcher_versions(expected_versions)
        self._choice = choice

    def setup(self):
        check_worker_versions(self._expected_versions)
        self._segmenter = self._choice.load()

    def process(self, documents):
        stats, dead_letters = collections.Counter(), []
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
        count(stats)
        yield beam.pvalue.TaggedOutput(STATS, stats)
        for record in dead_letters:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, record)


def prepared_document_files(prepared: str) -> list:
    """The Parquet files of a finished ``wwm prepare`` output, from its manifest."""
    manifest_path = join(prepared, MANIFEST)
    if not exists(manifest_path):
        raise FileNotFoundError(f"{prepared} has no {MANIFEST}: not the output of a finished `wwm prepare`")
    manifest = parse_manifest(read_bytes(manifest_path), path=manifest_path, kinds=("documents",))
    return [join(prepared, name) for name in manifest.files]


def build_segment_pipeline(pipeline, *, files, choice, identity: dict, output: str, run_info, config_json: dict,
                           batch_sentences: int = BATCH_SENTENCES):
    """Segments every document of ``files`` (Parquet) into ``output`` (the identity's folder)."""
    documents = (pipeline
                 | "DocumentFiles" >> beam.Create(files)
                 | "ReadDocuments" >> beam.ParDo(ReadParquetDocuments()).with_outputs(DEAD_LETTER, STATS,
                                                                                      main="documents"))
    segmented = (documents.documents
                 | "Batch" >> beam.BatchElements(min_batch_size=batch_sentences, max_batch_size=batch_sentences,
                                                 element_size_fn=lambda d: max(1, len(d.sentences)))
                 | "Segment" >> beam.ParDo(SegmentDocuments(choice)).with_outputs(STATS, DEAD_LETTER, main="rows"))
    written = segmented.rows | "WriteParquet" >> beam.io.WriteToParquet(
        join(output, "part"), SCHEMA, file_name_suffix=".parquet", num_shards=len(files))
    dead_letter_files = write_dead_letters((documents[DEAD_LETTER], segmented[DEAD_LETTER]), output)
    counters = sum_counters((documents[STATS], segmented[STATS]))

    def write_manifest(_, files, counters, dead_letter_files):
        manifest = Manifest(
            kind="segmentation", **run_info.fields(), config=config_json, identity=identity,
            files=tuple(sorted(FileSystems.split(f)[1] for f in files)),
            dead_letter_files=dead_letter_names(dead_letter_files), counters=counters,
            accounting=accounting(counters), num_documents=counters.get("documents_out", 0))
        return write_manifest_file(join(output, SEGMENTATION_MANIFEST), manifest)

    return (pipeline
            | "ManifestTrigger" >> beam.Create([None])
            | "WriteManifest" >> beam.Map(write_manifest, files=beam.pvalue.AsList(written),
                                          counters=beam.pvalue.AsSingleton(counters),
                                          dead_letter_files=beam.pvalue.AsList(dead_letter_files)))
