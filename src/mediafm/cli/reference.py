"""The CLI reference, ``docs/cli.md``, generated from the argument parser itself, so it cannot
drift from what ``mediafm --help`` says (a test compares the two)::

    python -m mediafm.cli.reference > docs/cli.md
"""

from __future__ import annotations

import argparse
import os


def markdown() -> str:
    """Every subcommand's ``--help``, at a fixed width, in the order of the flow."""
    from mediafm.cli import build_parser

    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the file must not vary
    try:
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        out = ["# CLI reference", "",
               "Generated from the argument parser (`python -m mediafm.cli.reference > "
               "docs/cli.md`); `mediafm COMMAND --help` prints the same. Every command exits 0 "
               "on success, 1 when some titles failed (ingest) or on an internal error (one "
               "line and a log file), 2 on a mistake it names in one line, 130 when "
               "interrupted.", "", "```", parser.format_help().rstrip(), "```", ""]
        for name, command in sub.choices.items():
            out += [f"## mediafm {name}", "", "```", command.format_help().rstrip(), "```", ""]
        return "\n".join(out)
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


if __name__ == "__main__":
    print(markdown(), end="")
