"""Atomic outputs: a file or a directory appears whole, or not at all.

Every output of mediafm (a store, its cache, a model, a checkpoint, an embedding file, a staged
title, a report) is written under a temporary name beside its destination and renamed into
place only when complete. A crash, a kill or a full disk therefore leaves the previous output
intact (or nothing), never a half-written one; ``os.replace`` within one directory is atomic on
POSIX filesystems. The next write of the same output removes what a killed writer left behind.

Temporaries are created private (``tempfile`` makes files 0600 and directories 0700); what is
renamed into place gets the modes a plain ``open`` or ``mkdir`` would have given it under the
process's umask (0644 / 0755 by default, 0664 / 0775 for a team sharing a group), so outputs
can be shared like any other file.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def umask() -> int:
    """The process's file-mode creation mask (read without changing it where Linux allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (the value is the same after)
    os.umask(mask)
    return mask


def _shareable(path: Path) -> None:
    """Give a finished temporary the modes ``open`` / ``mkdir`` would have (umask)."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask())


def _writer() -> str:
    """This process, as it is named in its temporaries: ``PID@HOST``."""
    return f"{os.getpid()}@{socket.gethostname()}"


def temp_name(path: Path, kind: str = "tmp") -> str:
    """The prefix of temporary siblings of ``path``: hidden, named after it and after the
    writing process and host, so that a later writer can tell a live writer's temporary from
    one left behind by a killed process (see :func:`remove_stale`)."""
    return f".{path.name}.{kind}-{_writer()}-"


def remove_stale(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` left by writers that no longer run (``kill -9``).

    Only this host's are judged (a shared filesystem may hold another node's live work); a
    temporary of a live process, or one whose name does not carry a writer, is left alone: two
    writers of one output never remove each other's work.
    """
    removed, host = [], socket.gethostname()
    for kind in ("tmp", "old"):
        prefix = f".{path.name}.{kind}-"
        for p in path.parent.glob(f"{glob.escape(prefix)}*"):
            pid, _, rest = p.name[len(prefix):].partition("@")
            # rest is HOST-RANDOM; tempfile's random part has no "-"
            if (not pid.isdigit() or rest.rpartition("-")[0] != host
                    or int(pid) == os.getpid() or _alive(int(pid))):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, name = tempfile.mkstemp(prefix=temp_name(path), dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _shareable(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``Path.write_text``, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; on success it replaces ``path``.

    An existing ``path`` is moved aside only once the new one is complete, then removed. On an
    exception the temporary directory is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=temp_name(path), dir=path.parent))
    try:
        yield tmp
        _shareable(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(src: Path, dst: Path) -> None:
    """Move the complete directory ``src`` to ``dst``, swapping out an existing ``dst``."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=temp_name(dst, "old"), dir=dst.parent))
    os.replace(dst, old / dst.name)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


class LockedError(RuntimeError):
    """Another live process is writing the same output."""


@contextmanager
def locked(path: str | os.PathLike) -> Iterator[Path]:
    """Hold ``PATH.lock`` (beside ``path``) while writing ``path``: a second writer of the same
    store or run gets a clear error naming the holder, not a corrupted output. A lock left by
    a process that no longer runs (killed) is taken over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f"{path.name}.lock")
    if _holder(lock) == os.getpid():  # re-entrant: this process holds it already
        yield lock
        return
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(lock)
            if holder is not None and holder != os.getpid() and _alive(holder):
                raise LockedError(f"{path} is being written by process {holder} (lock file "
                                  f"{lock}); wait for it, or remove the lock if it is gone"
                                  ) from None
            lock.unlink(missing_ok=True)  # stale: its writer died
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise LockedError(f"{path}: could not take the lock {lock}")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _holder(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip() or "0") or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True
