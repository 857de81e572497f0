"""The one kind of error every ``wwm`` command reports as one line, and the guard that does so.

It lives in the pure core so that the pipelines, the trainer and the command module can all raise
it without importing one another.
"""
import sys


class UsageError(Exception):
    """A problem with what the user asked for, or with the input as a whole (a missing file, flags
    that contradict each other, a model that does not load): printed as one line, exit status 2."""


def guarded(prog: str, command, argv) -> int:
    """Runs ``command(argv)``; a UsageError becomes ``prog: error: ...`` on stderr and status 2."""
    try:
        command(argv)
    except UsageError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0
