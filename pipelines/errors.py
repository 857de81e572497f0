"""Errors the ``wwm`` command reports without a traceback."""


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line, exit status 2."""
