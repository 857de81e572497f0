"""Rows of ``wwm run`` Parquet -> a batch for BERT pretraining in PyTorch, with whole-word masks.

Dynamic data (``word_ids``, no masks) is masked here by ``wwm_core.dynamic_masking``: each
instance from a generator of (seed, epoch, its ``instance_id``), so its masks are the same in
every run, DataLoader worker and rank, and new in every epoch. Static data (``masked_lm_*``) keeps
the masks ``wwm run`` drew: they become ``labels``.

The epoch lives in shared memory, so ``set_epoch`` reaches DataLoader workers that already exist
(``persistent_workers=True``) as well as those started afterwards.
"""
import numpy as np
import torch

from wwm_core import dynamic_masking
from wwm_core.errors import UsageError

NOT_PREDICTED = -100  # PyTorch's cross-entropy ignore_index, transformers' label for "not predicted"
SENTENCE_TASKS = ("nsp", "sop", "none")
MASKINGS = ("static", "dynamic")
_COLUMNS = {"dynamic": ("input_ids", "attention_mask", "token_type_ids", "word_ids", "instance_id"),
            "static": ("input_ids", "attention_mask", "token_type_ids", "masked_lm_positions", "masked_lm_ids",
                       "masked_lm_weights")}


class WholeWordMaskCollator:
    """``collator(rows)`` -> {input_ids, attention_mask, token_type_ids, labels (NOT_PREDICTED where
    nothing is predicted), next_sentence_label (only when the data has a sentence task)}, int64
    tensors. A ``collate_fn`` for a DataLoader and a ``data_collator`` for the Trainer (with
    ``remove_unused_columns=False``: it reads columns the model does not take)."""

    def __init__(self, *, masking: str, mask_id: int, vocab_size: int, masked_lm_prob: float = None,
                 max_predictions_per_seq: int = None, sentence_task: str = "none", seed: int = 0):
        if masking not in MASKINGS:
            raise UsageError(f"masking {masking!r} is not one of {', '.join(MASKINGS)}")
        if sentence_task not in SENTENCE_TASKS:
            raise UsageError(f"sentence_task {sentence_task!r} is not one of {', '.join(SENTENCE_TASKS)}")
        if masking == "dynamic" and (masked_lm_prob is None or max_predictions_per_seq is None):
            raise UsageError("dynamic masking needs masked_lm_prob and max_predictions_per_seq")
        if seed < 0:
            raise UsageError(f"seed must be non-negative, not {seed}")
        self.masking, self.mask_id, self.vocab_size = masking, mask_id, vocab_size
        self.masked_lm_prob, self.max_predictions_per_seq = masked_lm_prob, max_predictions_per_seq
        self.sentence_task, self.seed = sentence_task, seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @classmethod
    def from_manifest(cls, manifest: str, *, seed: int = 0, vocab_file: str = None, masked_lm_prob: float = None,
                      max_predictions_per_seq: int = None, sentence_task: str = None):
        """The collator of one ``wwm run`` phase (its manifest.json or folder, local or gs://): the
        vocabulary ([MASK]'s id and the size random ids are drawn from), masking, masked_lm_prob,
        max_predictions_per_seq and sentence task are the run's unless given. Static masks were
        drawn by the run: changing their rate or count is refused, as is a sentence task the data
        was not made with (its labels would all be 0)."""
        from wwm_torch.data import read_phase

        phase = read_phase(manifest)
        vocab = phase.vocab(vocab_file)
        if phase.masking == "static" and (masked_lm_prob is not None or max_predictions_per_seq is not None):
            raise UsageError(f"{phase.manifest_path} holds static masks drawn by wwm run: masked_lm_prob and "
                             "max_predictions_per_seq cannot change them; make the data with --masking dynamic")
        task = sentence_task or phase.sentence_task
        if task != phase.sentence_task and task != "none":
            raise UsageError(f"{phase.manifest_path} was made with sentence_task {phase.sentence_task}, not {task}: its "
                             "next_sentence_label does not hold that task's labels")
        if phase.masking == "dynamic" and masked_lm_prob is None and phase.masked_lm_prob is None:
            raise UsageError(f"{phase.manifest_path} records no masked_lm_prob: give one")
        return cls(masking=phase.masking, mask_id=vocab.id_of("[MASK]"), vocab_size=vocab.size,
                   masked_lm_prob=masked_lm_prob if masked_lm_prob is not None else phase.masked_lm_prob,
                   max_predictions_per_seq=max_predictions_per_seq or phase.max_predictions_per_seq,
                   sentence_task=task, seed=seed)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose masks the following batches get (dynamic data)."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, not {epoch}")
        self._epoch.fill_(int(epoch))

    def __call__(self, rows) -> dict:
        rows = list(rows)
        if not rows:
            raise ValueError("an empty batch")
        needed = _COLUMNS[self.masking] + (("next_sentence_label",) if self.sentence_task != "none" else ())
        missing = [name for name in needed if name not in rows[0]]
        if missing:
            raise UsageError(f"the rows lack {', '.join(missing)}, which {self.masking} masking needs"
                             + _missing_hint(missing))
        column = {name: np.array([np.asarray(row[name]) for row in rows]) for name in needed}
        input_ids = column["input_ids"].astype(np.int64)
        if self.masking == "static":
            labels = dynamic_masking.labels_of_static_masks(
                column["masked_lm_positions"], column["masked_lm_ids"], column["masked_lm_weights"],
                width=input_ids.shape[1], ignored=NOT_PREDICTED)
        else:
            input_ids, labels = self._mask(input_ids, column)
        batch = {"input_ids": input_ids, "attention_mask": column["attention_mask"],
                 "token_type_ids": column["token_type_ids"], "labels": labels}
        if self.sentence_task != "none":
            batch["next_sentence_label"] = column["next_sentence_label"].reshape(len(rows))
        return {name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.int64)) for name, value in batch.items()}

    def _mask(self, input_ids: np.ndarray, column: dict):
        epoch = self.epoch
        fed = np.empty_like(input_ids)
        labels = np.full_like(input_ids, NOT_PREDICTED)
        num_tokens = column["attention_mask"].sum(axis=1)
        for row, instance_id in enumerate(column["instance_id"].reshape(len(input_ids)).tolist()):
            rng = dynamic_masking.instance_generator(seed=self.seed, epoch=epoch, instance_id=instance_id)
            fed[row], chosen = dynamic_masking.mask_instance(
                input_ids[row], column["word_ids"][row], num_tokens=int(num_tokens[row]), rng=rng,
                masked_lm_prob=self.masked_lm_prob, max_predictions_per_seq=self.max_predictions_per_seq,
                mask_id=self.mask_id, vocab_size=self.vocab_size)
            labels[row, chosen] = input_ids[row, chosen]
        return fed, labels


def _missing_hint(missing) -> str:
    if "instance_id" in missing and len(missing) == 1:
        return (" (data made before wwm-data's manifest version 3 has no instance ids, which dynamic masks are drawn "
                "from: make the data again)")
    return (" (the Hugging Face Trainer removes the columns its model does not take: pass "
            "remove_unused_columns=False to TrainingArguments)")
