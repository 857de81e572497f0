"""Errors the trainer reports as one line, without a traceback."""
from wwm_core.errors import UsageError


class TrainerUsageError(UsageError):
    """A problem with what the user asked for (a missing manifest, a config that does not fit the
    data, ``--tpu`` without a TPU, ...). A ``UsageError``, so ``wwm`` prints it as one line and
    exits with status 2, like its other commands."""
