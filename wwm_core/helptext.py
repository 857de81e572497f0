"""How every ``wwm`` command's ``--help`` reads: each flag's help ends with its default.

Shared by the data commands and the trainer (which must not import the pipelines), hence here.
"""
import argparse


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


def parser(prog: str, description: str, **kwargs) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter, **kwargs)
