"""The Hugging Face Trainer's side: a callback that gives the collator each epoch's number."""
from transformers import TrainerCallback


class EpochCallback(TrainerCallback):
    """``Trainer(..., callbacks=[EpochCallback(collator)])``: new dynamic masks every epoch.

    The number is the Trainer's own epoch counter: on a fresh run 0, 1, ...; on a run resumed from
    a checkpoint it starts where the Trainer does (the whole epochs of the saved step), so the
    masks of a resumed epoch are those it had before."""

    def __init__(self, collator):
        self.collator = collator
        self._epoch = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._epoch = None

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._epoch = int(state.epoch or 0) if self._epoch is None else self._epoch + 1
        self.collator.set_epoch(self._epoch)
