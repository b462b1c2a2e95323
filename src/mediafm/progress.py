"""Progress for long work: a tqdm bar on a terminal, plain periodic lines everywhere else.

A job log (CI, ``nohup``, a cluster scheduler) is not a terminal: thousands of carriage-return
updates make it unreadable. When stderr is not a TTY, progress is one line every
``PLAIN_EVERY_S`` seconds or ``PLAIN_EVERY_PERCENT`` percent, whichever comes first, plus one
at the end. ``disable=True`` (``mediafm -q``) silences both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

PLAIN_EVERY_S = 30.0
PLAIN_EVERY_PERCENT = 10.0


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", disable: bool = False, initial: int = 0, leave: bool = True,
             position: int | None = None):
    """A tqdm bar (stderr is a terminal) or a ``PlainProgress`` (it is not)."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable,
                    initial=initial, leave=leave, position=position)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, disable=disable,
                         initial=initial, leave=leave)


class PlainProgress:
    """The part of tqdm's interface mediafm uses, as periodic plain lines on stderr."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", disable: bool = False, initial: int = 0,
                 leave: bool = True):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.disable, self.leave, self.n, self.initial = disable, leave, initial, initial
        self.start = self.last_time = time.monotonic()
        self.last_n, self.postfix, self.closed = initial, "", False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        post = f", {self.postfix}" if self.postfix else ""
        return (f"{self.desc}: {done} {self.unit}{pct}, {elapsed:.0f} s, "
                f"{rate:.1f} {self.unit}/s{post}")

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable:
            return
        now = time.monotonic()
        step = (self.total or 0) * PLAIN_EVERY_PERCENT / 100
        if now - self.last_time >= PLAIN_EVERY_S or (step and self.n - self.last_n >= step):
            self.last_time, self.last_n = now, self.n
            print(self._line(), file=sys.stderr, flush=True)

    def set_postfix(self, **kwargs) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def write(self, message: str) -> None:
        if not self.disable:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.disable and self.leave and self.n != self.last_n:
            print(self._line(), file=sys.stderr, flush=True)
