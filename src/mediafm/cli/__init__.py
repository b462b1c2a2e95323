"""``mediafm`` command line: one subcommand per stage, each a thin call into the library.

Subcommands live beside the part of the flow they drive: ``data`` (import, ingest, info, synth,
synth-store, cache, thumbs), ``training`` (train, embed, probe, demo), ``use`` (heads, predict,
moments, index, search, serve). ``options`` holds what they share: checked numbers, choices
taken from the library.
"""

from __future__ import annotations

import argparse
import os
import sys

from mediafm.cli import data, training, use
from mediafm.cli.options import Parser, finish_help


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="mediafm", description=(
        "Contextual tri-modal shot embeddings for long-form media. Flow: import (or ingest) -> "
        "train -> embed -> probe / heads -> predict -> moments; index -> search; serve."))
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    data.register(sub)
    training.register(sub)
    use.register(sub)
    training.register_demo(sub)
    finish_help(p)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause and fix: bad input (every ``MediaFMError`` is a ValueError),
    missing or unwritable files, a full disk, another process writing the same output."""
    from mediafm.atomic import LockedError

    return (ValueError, OSError, LockedError)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. A user's mistake is one line naming the culprit (exit 2); an
    interruption exits 130; a closed pipe (``| head``) ends quietly; anything else is our bug:
    one line, and the traceback in a file."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except BrokenPipeError:
        return _quiet_pipe()
    except ModuleNotFoundError as e:
        from mediafm.errors import missing_extra

        err = missing_extra(e, f"mediafm {args.command}")
        if err is None:
            return _internal_error(args.command, e)
        print(f"mediafm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except _user_errors() as e:
        print(f"mediafm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mediafm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: no raw traceback
        return _internal_error(args.command, e)


def _quiet_pipe() -> int:
    """The reader of our output went away: no message, and no second error when Python
    flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # as a shell reports a process ended by SIGPIPE


def _internal_error(command: str, error: Exception) -> int:
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix=f"mediafm-{command}-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(f"mediafm {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exception(error, file=f)
    print(f"mediafm {command}: internal error ({type(error).__name__}: {error}); this is a "
          f"bug in mediafm, please report it with the traceback written to {path}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
