"""The one kind of error every ``wwm`` command reports as one line, and the guard that does so.

It lives in the pure core so that the pipelines, the trainer and the command module can all raise
it without importing one another.
"""
import logging
import os
import signal
import sys
import threading


class UsageError(Exception):
    """A problem with what the user asked for, or with the input as a whole (a missing file, flags
    that contradict each other, a model that does not load): printed as one line, exit status 2."""


# Beam re-raises a worker's exception inside its own, or (worker processes) as the text of its
# traceback: this mark finds the one line in either.
WORKER_MARK = "[wwm-usage-error] "


class WorkerUsageError(UsageError):
    """A UsageError found inside a Beam worker (an input file that changed while it was read):
    the command prints its one line, however Beam wrapped it."""

    def __str__(self):
        return WORKER_MARK + super().__str__()


class Stopped(BaseException):
    """The command was stopped by a signal (SIGTERM, SIGHUP): raised in the main thread, so
    every ``with`` block unwinds (the output lock is released) before the one line is printed."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


def usage_error_line(error: BaseException):
    """The one line of a UsageError in ``error`` or anywhere in its chain (as an exception, or as
    the marked text of a worker's traceback), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UsageError):
            return str(error).removeprefix(WORKER_MARK).splitlines()[0]
        text = str(error)
        if WORKER_MARK in text:
            return text.split(WORKER_MARK, 1)[1].splitlines()[0]
        error = error.__cause__ or error.__context__
    return None


_received = []  # the signals that stopped the command (the handler's record of them)


def _stop(signal_number, _frame):
    """Ends the command from the main thread: Ctrl-C as KeyboardInterrupt, SIGTERM and SIGHUP as
    Stopped. Beam may re-raise either inside its own exception: ``_received`` says what it was."""
    _received.append(signal_number)
    # What breaks as the command unwinds (Beam logs each failed bundle with its traceback) is the
    # stop itself, not news: one line says it.
    logging.disable(logging.ERROR)
    if signal_number == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signal_number)


def stopped_by():
    """The signal that stopped the command, or None."""
    return _received[0] if _received else None


STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def guarded(prog: str, command, argv) -> int:
    """Runs ``command(argv)`` and ends it in one line, whatever ends it:

    a UsageError (also one raised inside a Beam worker)   ``prog: error: ...``, status 2
    Ctrl-C (SIGINT)                                        ``prog: interrupted (Ctrl-C) ...``, status 130
    SIGTERM or SIGHUP                                      ``prog: stopped by SIGTERM ...``, 128 + N

    A signal unwinds the command first: its output lock is released and no manifest is written."""
    _received.clear()
    in_main_thread = threading.current_thread() is threading.main_thread()  # where Python runs handlers
    previous = {number: signal.signal(number, _stop) for number in STOPPING_SIGNALS if in_main_thread}
    try:
        command(argv)
    except BrokenPipeError:  # the reader of the output went away (`wwm plan | head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        return 128 + signal.SIGPIPE
    except BaseException as error:  # noqa: BLE001 - a signal, however Beam wrapped it; a UsageError; else re-raised
        number = stopped_by()
        if number is not None:
            how = "interrupted (Ctrl-C)" if number == signal.SIGINT else f"stopped by {signal.Signals(number).name}"
            print(f"{prog}: {how} before it finished; no manifest was written", file=sys.stderr)
            return 128 + number
        line = usage_error_line(error) if isinstance(error, Exception) else None
        if line is None:
            raise
        print(f"{prog}: error: {line}", file=sys.stderr)
        return 2
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if _received:
            logging.disable(logging.NOTSET)
    return 0
