"""``mediafm`` command line: one subcommand per stage, each a thin call into the library.

Subcommands live beside the part of the flow they drive: ``data`` (import, ingest, info, synth,
synth-store, cache), ``training`` (train, embed, probe, demo), ``use`` (heads, predict,
moments, index, search).
"""

from __future__ import annotations

import argparse
import os
import sys

from mediafm.cli import data, training, use


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mediafm", description=(
        "Contextual tri-modal shot embeddings for long-form media. Flow: import (or ingest) -> "
        "train -> embed -> probe / heads -> predict -> moments; index -> search."))
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = p.add_subparsers(dest="command", required=True)
    data.register(sub)
    training.register(sub)
    use.register(sub)
    training.register_demo(sub)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause and fix: bad input (StoreError is a ValueError), missing or
    unwritable files, a full disk, another process writing the same output."""
    from mediafm.atomic import LockedError

    return (ValueError, OSError, LockedError)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. A user's mistake is one line naming the culprit (exit 2); an
    interruption exits 130; anything else is our bug: one line, and the traceback in a file."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except _user_errors() as e:
        print(f"mediafm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mediafm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: no raw traceback
        return _internal_error(args.command, e)


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
