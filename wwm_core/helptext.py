"""How every ``wwm`` command's flags read: ``--help`` ends each flag's help with its default, a
flag given a value it cannot take is one line, and a number flag takes only finite numbers.

Shared by the data commands and the trainer (which must not import the pipelines), hence here.
"""
import argparse
import math


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every flag's help ends with its default (``none`` when it has none, ``required`` for a
    flag that must be given); a help text that already says what its default is (``default: the recipe's``) is left as written; descriptions
    keep their line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default:" in text or "%(default)" in text or action.default is argparse.SUPPRESS:
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text  # a required positional argument has no default
        if action.required:
            return f"{text} (required)".strip()
        if action.default is None or action.default == [] or action.default == ():
            return f"{text} (default: none)".strip()
        return f"{text} (default: %(default)s)".strip()


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line (argparse prints the whole usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the flags)\n")


def parser(prog: str, description: str, **kwargs) -> argparse.ArgumentParser:
    return Parser(prog=prog, description=description, formatter_class=HelpFormatter, **kwargs)


def finite_float(text: str) -> float:
    """A number flag's value: ``nan`` and ``inf`` are not numbers any setting can take."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value
