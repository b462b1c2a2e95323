"""What the subcommands share: a parser whose errors are one line, numbers checked where they
are parsed (their range shown in ``--help``), and the config file + ``--set`` pair."""

from __future__ import annotations

import argparse
import math
import sys


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line naming the option (exit 2)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class Number:
    """An argparse type: an int or float within [low, high] (None: unbounded), finite."""

    def __init__(self, kind: type = int, low: float | None = None, high: float | None = None):
        self.kind, self.low, self.high = kind, low, high
        self.__name__ = "whole number" if kind is int else "number"

    @property
    def span(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            return f"{low}..{high}" if self.kind is int else f"{low} to {high}"
        return f">= {low}" if low is not None else f"<= {high}" if high is not None else "any"

    def __call__(self, text: str):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {self.__name__}, got {text!r}"
                                             ) from None
        if not math.isfinite(value) or (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            raise argparse.ArgumentTypeError(f"must be {self.span}, got {text}")
        return value


POSITIVE = Number(int, 1)  # counts: -k, batch sizes, folds (their own lows where higher)
PORT = Number(int, 1, 65535)
FRACTION = Number(float, 0, 1)


def add_config(s: argparse.ArgumentParser, what: str) -> None:
    """``--config FILE`` and ``--set KEY=VALUE``, for the components' configs."""
    s.add_argument("--config", metavar="FILE", help=f"a TOML file of {what} sections")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (section.key=value, or a bare key); "
                   "repeatable")


def finish_help(parser: argparse.ArgumentParser) -> None:
    """Append each checked number's range and each default to its help, in every
    subcommand, so ``--help`` (and the generated CLI reference) states them."""
    for action in _actions(parser):
        if action.help in (None, argparse.SUPPRESS) or action.option_strings == ["-h", "--help"]:
            continue
        notes = []
        if isinstance(action.type, Number) and action.type.span not in action.help:
            notes.append(action.type.span)
        if (action.default not in (None, False, [], argparse.SUPPRESS)
                and "default" not in action.help):
            notes.append(f"default: {action.default}")
        if notes:  # help strings are %-formatted by argparse
            action.help = f"{action.help} ({'; '.join(notes).replace('%', '%%')})"


def _actions(parser: argparse.ArgumentParser):
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _actions(sub)
