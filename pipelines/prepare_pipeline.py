"""The ``wwm prepare`` pipeline: raw corpora read, cleaned and deduplicated once, written as
Parquet documents that every later ``wwm segment`` and ``wwm run`` reads.

    PrepareDocuments (read, clean, dedup) -> WriteParquet -> manifest (kind "documents")
         \\-> dead letters
"""
import collections

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines.common import (DEAD_LETTER, STATS, SumCounters, accounting, dead_letter_names, sum_counters,
                              write_dead_letters, write_manifest)
from pipelines.io_utils import join
from pipelines.parquet_io import DOCUMENTS_FOLDER, SCHEMA, document_row
from pipelines.read_pipeline import PrepareDocuments
from wwm_core.manifest import Manifest


def write_prepare_manifest(_, *, config, run_info, files, counters, dead_letter_files):
    """Runs once, after the Parquet files and dead letters are written."""
    return write_manifest(config.output.path, Manifest(
        kind="documents", **run_info.fields(), config=config.to_json(sections=("sources", "cleaning", "output")),
        files=tuple(sorted(join(DOCUMENTS_FOLDER, FileSystems.split(f)[1]) for f in files)),
        dead_letter_files=dead_letter_names(dead_letter_files), counters=counters, accounting=accounting(counters),
        num_documents=counters.get("documents_out", 0)))


def build_prepare_pipeline(pipeline, *, config, run_info):
    documents = pipeline | "PrepareDocuments" >> PrepareDocuments(config.sources, cleaning=config.cleaning)
    out_stats = (documents["documents"]
                 | "CountOut" >> beam.Map(lambda d: collections.Counter({"documents_out": 1}))
                 | "SumOut" >> beam.CombineGlobally(SumCounters()))
    files = (documents["documents"]
             | "ToRows" >> beam.Map(document_row)
             | "WriteParquet" >> beam.io.WriteToParquet(
                 join(config.output.path, DOCUMENTS_FOLDER, "part"), SCHEMA, file_name_suffix=".parquet",
                 num_shards=config.output.num_shards))
    dead_letter_files = write_dead_letters((documents[DEAD_LETTER],), config.output.path)
    counters = sum_counters((documents[STATS], out_stats))
    return (
        pipeline
        | "ManifestTrigger" >> beam.Create([None])
        | "WriteManifest" >> beam.Map(
            write_prepare_manifest, config=config, run_info=run_info,
            files=beam.pvalue.AsList(files),
            counters=beam.pvalue.AsSingleton(counters),
            dead_letter_files=beam.pvalue.AsList(dead_letter_files))
    )
