"""Cleaned documents as Parquet: what ``wwm prepare`` writes and ``--input_format parquet`` reads."""
import pyarrow as pa

from wwm_core.text import Document

DOCUMENTS_FOLDER = "documents"  # in a `wwm prepare` output folder

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("title", pa.string()),
    ("sentences", pa.list_(pa.string())),
    ("changes", pa.string()),  # JSON object: what cleaning changed
])


def document_row(document: Document) -> dict:
    return {"id": document.id, "source": document.source, "title": document.title,
            "sentences": list(document.sentences), "changes": document.changes}
