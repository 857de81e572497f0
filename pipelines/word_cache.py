"""The segmentation cache's layout, and reading it back in ``wwm run``.

    PREPARED/segmentation/<identity key>/part-*.parquet      rows: id, sentence keys, word lengths,
                                                             for the documents file of the same name
    PREPARED/segmentation/<identity key>/segmentation.json   identity and counters, written last
"""
import logging

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipelines.io_utils import exists, join
from pipelines.output import SEGMENTATION_MANIFEST  # noqa: F401 - where the cache folder's manifest is
from pipelines.parquet_io import DOCUMENTS_FOLDER, ParquetInputError, parquet_rows

log = logging.getLogger("wwm")

SEGMENTATION_FOLDER = "segmentation"
SCHEMA = pa.schema([
    ("id", pa.string()),  # the document's id
    ("sentence_keys", pa.list_(pa.binary(16))),  # word_boundaries.sentence_key of each sentence
    ("word_lengths", pa.list_(pa.list_(pa.int32()))),  # per sentence, its words' lengths in characters
])


def cache_folder(cache_root: str, identity_key: str) -> str:
    return join(cache_root, identity_key)


def read_cache_rows(path: str, stats):
    """The rows ({"id", "sentence_keys", "word_lengths"}) of the cache file at ``path``. A missing
    file, or one that is not a readable cache file, gives no rows: its sentences miss the cache
    and are segmented again, which gives the same bytes; it is counted and named in the log."""
    if not exists(path):
        stats["segmentation_cache_files_missing"] += 1
        return []
    try:
        return list(parquet_rows(path, schema=SCHEMA, required=SCHEMA.names))
    except ParquetInputError as error:
        stats["segmentation_cache_files_unreadable"] += 1
        logging.getLogger("wwm").warning("segmentation cache: %s (%s); its sentences are segmented again",
                                         error, error.reason)
        return []


def word_cache_root_of(patterns) -> str:
    """``PREPARED/segmentation`` when every pattern reads ``PREPARED/documents/...`` of one prepared
    output (the layout ``wwm prepare`` writes), else None."""
    roots = set()
    for pattern in patterns:
        folder, _ = FileSystems.split(pattern)
        parent, name = FileSystems.split(folder.rstrip("/"))
        if name != DOCUMENTS_FOLDER:
            return None
        roots.add(join(parent, SEGMENTATION_FOLDER))
    return roots.pop() if len(roots) == 1 else None


def finished_cache(cache_root: str, identity_key: str):
    """The folder of a finished cache for this identity under ``cache_root``, or None."""
    folder = cache_folder(cache_root, identity_key)
    return folder if exists(join(folder, SEGMENTATION_MANIFEST)) else None


def word_cache_folders_for(config, choice) -> tuple:
    """The finished segmentation cache of this very segmenter, if the run has one to reuse."""
    segmentation = config.segmentation
    if segmentation.segmenter == "char" or segmentation.cache == "none":
        return ()
    root = segmentation.cache
    if root == "auto":
        if not all(source.input_format == "parquet" for source in config.sources):
            return ()
        root = word_cache_root_of(config.patterns)
        if root is None:
            return ()
    key = choice.identity_key()
    folder = finished_cache(root, key)
    if folder:
        log.info("reusing word boundaries cached by `wwm segment` in %s", folder)
        return (folder,)
    log.warning("no finished segmentation cache for this segmenter (%s) in %s: segmenting in this run. "
                "`wwm segment` writes one that later runs reuse.", key, root)
    return ()
