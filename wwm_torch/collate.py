"""Rows of ``wwm run`` Parquet -> a batch for BERT pretraining in PyTorch, with whole-word masks.

Dynamic data (``word_ids``, no masks) is masked here by ``wwm_core.masking``, the rule (and
compiled kernels) of the static path: whole words or N-gram spans of them, Google's 80/10/10 or
MacBERT's similar words. Each instance's row seed is a hash of (seed, epoch, its
``instance_id``), so its masks are the same in every run, DataLoader worker and rank, and new in
every epoch. Static data (``masked_lm_*``) keeps the masks ``wwm run`` drew: they become ``labels``.

The epoch lives in shared memory, so ``set_epoch`` reaches DataLoader workers that already exist
(``persistent_workers=True``) as well as those started afterwards.
"""
import numpy as np
import torch

from wwm_core import masking as masks
from wwm_core.errors import UsageError
from wwm_core.recipes import minimum_max_predictions

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
                 max_predictions_per_seq: int = None, sentence_task: str = "none", seed: int = 0,
                 ngram_weights=masks.WORD_LEVEL, replacement: str = "bert", similar: masks.SimilarWords = None):
        if masking not in MASKINGS:
            raise UsageError(f"masking {masking!r} is not one of {', '.join(MASKINGS)}")
        if sentence_task not in SENTENCE_TASKS:
            raise UsageError(f"sentence_task {sentence_task!r} is not one of {', '.join(SENTENCE_TASKS)}")
        if masking == "dynamic" and (masked_lm_prob is None or max_predictions_per_seq is None):
            raise UsageError("dynamic masking needs masked_lm_prob and max_predictions_per_seq")
        if seed < 0:
            raise UsageError(f"seed must be non-negative, not {seed}")
        if replacement not in masks.REPLACEMENTS:
            raise UsageError(f"replacement {replacement!r} is not one of {', '.join(masks.REPLACEMENTS)}")
        if replacement == "macbert" and similar is None:
            raise UsageError("MacBERT's replacement puts similar words in place of masked ones: give similar "
                             "(a wwm_core.masking.SimilarWords, e.g. the run's similar_words.npz)")
        try:
            self.ngram_weights = masks.check_ngram_weights(ngram_weights)
        except ValueError as error:
            raise UsageError(str(error)) from error
        self.masking, self.mask_id, self.vocab_size = masking, mask_id, vocab_size
        self.masked_lm_prob, self.max_predictions_per_seq = masked_lm_prob, max_predictions_per_seq
        self.sentence_task, self.seed = sentence_task, seed
        self.replacement, self.similar = replacement, similar
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @classmethod
    def from_manifest(cls, manifest: str, *, seed: int = 0, vocab_file: str = None, mask_id: int = None,
                      masked_lm_prob: float = None, max_predictions_per_seq: int = None, sentence_task: str = None,
                      ngram_weights=None, replacement: str = None, similar_words: str = None):
        """The collator of one ``wwm run`` phase (its manifest.json or folder, local or gs://).
        Unless given, every setting is the run's: the vocabulary (a vocab.txt or tokenizer.json:
        the size random ids are drawn from) and its [MASK] id (a tokenizer's own, as the manifest
        records it), masking, masked_lm_prob, max_predictions_per_seq, the sentence task, the
        N-gram weights, the replacement and MacBERT's similar words (the run's similar_words.npz;
        ``similar_words``: the path of another). Pass ``masked_lm_prob`` for the phase of a
        masking-rate schedule (e.g. 0.3, then 0.15 for the next phase's data).

        Refused: changing static masks (drawn by the run), a sentence task the data was not made
        with (its labels would all be 0), a rate the run's max_predictions_per_seq would cap, and
        another vocabulary with the run's similar words (they are ids of the run's)."""
        from wwm_torch.data import read_phase

        phase = read_phase(manifest)
        vocab = phase.vocab(vocab_file)
        if phase.masking == "static" and any(value is not None for value in (
                masked_lm_prob, max_predictions_per_seq, ngram_weights, replacement, similar_words, mask_id)):
            raise UsageError(f"{phase.manifest_path} holds static masks drawn by wwm run: masked_lm_prob, "
                             "max_predictions_per_seq, ngram_weights, replacement, similar_words and mask_id cannot "
                             "change them; make the data with --masking dynamic")
        task = sentence_task or phase.sentence_task
        if task != phase.sentence_task and task != "none":
            raise UsageError(f"{phase.manifest_path} was made with sentence_task {phase.sentence_task}, not {task}: its "
                             "next_sentence_label does not hold that task's labels")
        if phase.masking == "dynamic" and masked_lm_prob is None and phase.masked_lm_prob is None:
            raise UsageError(f"{phase.manifest_path} records no masked_lm_prob: give one")
        if masked_lm_prob is not None and max_predictions_per_seq is None and \
                minimum_max_predictions(phase.max_seq_length, masked_lm_prob) > phase.max_predictions_per_seq:
            raise UsageError(f"masked_lm_prob {masked_lm_prob} at length {phase.max_seq_length} needs "
                             f"max_predictions_per_seq >= {minimum_max_predictions(phase.max_seq_length, masked_lm_prob)}"
                             f"; the run's {phase.max_predictions_per_seq} would cap it: give max_predictions_per_seq")
        replacement = replacement or phase.replacement
        similar = None
        if phase.masking == "dynamic" and replacement == "macbert":
            if vocab_file is not None and similar_words is None:
                raise UsageError(f"the run's similar words are ids of its own vocabulary, not of {vocab_file}: give "
                                 "similar_words=PATH made with that vocabulary")
            similar = phase.similar_words(similar_words)
        token_id = vocab.special_id("mask") if mask_id is None else mask_id
        if token_id is None:
            raise UsageError(f"{vocab_file or phase.vocab_path} declares no mask token: give mask_id")
        return cls(masking=phase.masking, mask_id=token_id, vocab_size=vocab.size,
                   masked_lm_prob=masked_lm_prob if masked_lm_prob is not None else phase.masked_lm_prob,
                   max_predictions_per_seq=max_predictions_per_seq or phase.max_predictions_per_seq,
                   sentence_task=task, seed=seed, replacement=replacement, similar=similar,
                   ngram_weights=ngram_weights if ngram_weights is not None else phase.ngram_weights)

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
            labels = masks.labels_of_static_masks(
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
        seeds = masks.instance_seeds(column["instance_id"], seed=self.seed, epoch=self.epoch)
        masked = masks.mask_word_ids(
            input_ids, column["word_ids"], column["attention_mask"], seeds=seeds, masked_lm_prob=self.masked_lm_prob,
            max_predictions=self.max_predictions_per_seq, mask_id=self.mask_id, vocab_size=self.vocab_size,
            ngram_weights=self.ngram_weights, replacement=self.replacement, similar=self.similar)
        return masked["input_ids"], masked["labels"]


def _missing_hint(missing) -> str:
    if "instance_id" in missing and len(missing) == 1:
        return (" (data made before wwm-data's manifest version 3 has no instance ids, which dynamic masks are drawn "
                "from: make the data again)")
    return (" (the Hugging Face Trainer removes the columns its model does not take: pass "
            "remove_unused_columns=False to TrainingArguments)")
