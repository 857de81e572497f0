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
    """argparse's parser, whose errors are one line (argparse prints the whole usage first), and
    which keeps the flags it is given, with their section, in ``flags``: [(section title or None,
    argparse action)] (argparse has no public way to list them), each action marked ``repeatable``
    or not. ``add_argument_group`` gives
    a section's one group, made the first time its title is asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.wwm_registry = {"flags": [], "groups": {}}  # argparse's own groups (made above) left out

    def _registry(self) -> dict:
        return vars(self).get("wwm_registry") or {"flags": [], "groups": {}}  # a throwaway while __init__ runs

    @property
    def flags(self) -> list:
        return list(self._registry()["flags"])

    def add_argument(self, *args, **kwargs):
        action = _marked(super().add_argument(*args, **kwargs), kwargs)
        self._registry()["flags"].append((None, action))
        return action

    def add_argument_group(self, title=None, description=None, **kwargs):
        if "wwm_registry" not in vars(self) or title is None:  # argparse's own, from its __init__
            return super().add_argument_group(title, description, **kwargs)
        groups = self.wwm_registry["groups"]
        if title not in groups:
            groups[title] = _Section(super().add_argument_group(title, description, **kwargs), title,
                                     self.wwm_registry["flags"])
        return groups[title]

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the flags)\n")


class _Section:
    """An argument group whose flags its parser keeps (Parser.flags)."""

    def __init__(self, group, title: str, flags: list):
        self._group, self.title, self._flags = group, title, flags

    def add_argument(self, *args, **kwargs):
        action = _marked(self._group.add_argument(*args, **kwargs), kwargs)
        self._flags.append((self.title, action))
        return action


def _marked(action, kwargs: dict):
    """The action, with ``repeatable``: whether the flag may be given several times (action="append")."""
    action.repeatable = kwargs.get("action") == "append"
    return action


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
