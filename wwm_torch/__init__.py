"""PyTorch for ``wwm run`` output: datasets of its Parquet instances and a whole-word-mask collator.

    import wwm_torch
    dataset = wwm_torch.load_instances("OUT/seq128/manifest.json")           # map-style; local or gs://
    stream = wwm_torch.load_instances("gs://.../manifest.json", streaming=True)  # an IterableDataset
    collator = wwm_torch.WholeWordMaskCollator.from_manifest("OUT/seq128/manifest.json", seed=0)
    collator.set_epoch(epoch)
    batch = collator([dataset[i] for i in range(64)])

With the Hugging Face Trainer: ``data_collator=collator``, ``callbacks=[wwm_torch.EpochCallback(collator)]``
and ``TrainingArguments(remove_unused_columns=False)``. See docs/pytorch.md.
"""
try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("wwm_torch needs PyTorch: pip install 'wwm-data[torch]'") from error

from wwm_torch.collate import NOT_PREDICTED, WholeWordMaskCollator
from wwm_torch.data import InstanceDataset, InstanceStream, read_phase

__all__ = ["load_instances", "WholeWordMaskCollator", "InstanceDataset", "InstanceStream", "EpochCallback",
           "NOT_PREDICTED"]


def load_instances(manifest: str, *, streaming: bool = False, seed: int = 0, **options):
    """One ``wwm run`` phase (its manifest.json or folder, local or gs://) as a map-style
    ``InstanceDataset`` (options: ``cache_dir``), or with ``streaming=True`` an ``InstanceStream``
    (options: ``shuffle``, ``shuffle_buffer``, ``split_across_ranks``, ``rank``, ``world_size``;
    ``seed`` orders its files and rows). Rows are dicts of numpy arrays under the Parquet names."""
    phase = read_phase(manifest)
    if streaming:
        return InstanceStream(phase, seed=seed, **options)
    return InstanceDataset(phase, **options)


def __getattr__(name):
    if name == "EpochCallback":  # needs transformers, which the collator and datasets do not
        from wwm_torch.trainer import EpochCallback

        return EpochCallback
    raise AttributeError(f"module 'wwm_torch' has no attribute {name!r}")
