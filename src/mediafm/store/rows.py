"""Row readers for the training loader: decoded Parquet parts, or the fused cache.

The loader copies windows of consecutive rows of a part's fused column into a batch. Parquet's
list column has to be decoded whole (~0.7 GB/s a core); the fused cache (``mediafm cache``)
holds the same floats as one contiguous buffer per part, so a window is one ``preadv`` from
the page cache straight into the batch.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from mediafm.store.format import FUSED_CACHE, StoreError


def cache_name(part: str) -> str:
    """The cache file of a part file: ``part-00000.parquet`` -> ``part-00000.arrow``."""
    return Path(part).with_suffix(".arrow").name


class RowReader:
    """Copies rows ``first .. first + len(out) - 1`` of a part's fused column into ``out``."""

    def read(self, part: str, first: int, out: np.ndarray) -> None:
        raise NotImplementedError


class TitleRows:
    """Rows of a title's fused vectors, addressed by the title's row in the title table and
    its first shot: the training loader's view, which knows nothing of parts and offsets."""

    def __init__(self, rows: RowReader, part: np.ndarray, offset: np.ndarray):
        self.rows, self.part, self.offset = rows, part, offset

    def read(self, title_row: int, first_shot: int, out: np.ndarray) -> None:
        """Copy shots ``first_shot .. first_shot + len(out) - 1`` of the title into ``out``."""
        self.rows.read(self.part[title_row], int(self.offset[title_row]) + first_shot, out)


class ParquetRows(RowReader):
    """Decoded fused columns of the most recently used parts (LRU, ``size`` parts at most)."""

    def __init__(self, load: Callable[[str], np.ndarray], size: int):
        self.load, self.size = load, size
        self.parts: OrderedDict[str, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()  # one decode per part, even with concurrent readers

    def read(self, part: str, first: int, out: np.ndarray) -> None:
        with self.lock:
            if part in self.parts:
                self.parts.move_to_end(part)
            else:
                self.parts[part] = self.load(part)
                while len(self.parts) > self.size:
                    self.parts.popitem(last=False)
            vectors = self.parts[part]
        out[...] = vectors[first: first + len(out)]


class CachedPart:
    """One cache file: an Arrow IPC file holding one fixed_size_list<float32> column.

    Uncompressed IPC stores the float values as one contiguous buffer, so the file offset of
    row ``i`` is ``offset + i * dim * 4``; that offset is found once, through a memory map.
    """

    def __init__(self, path: Path):
        self.path = path
        damaged = f"{path}: damaged fused cache file; rerun `mediafm cache`"
        try:
            with pa.memory_map(str(path)) as mm:
                whole = mm.read_buffer()
                reader = pa.ipc.open_file(whole)
                col = reader.get_batch(0).column(0)
                values = col.values
                self.rows, self.dim = len(col), col.type.list_size
                self.offset = values.buffers()[1].address - whole.address
        except (OSError, pa.ArrowException, AttributeError) as e:
            raise StoreError(f"{damaged} ({e})") from None
        if (reader.num_record_batches != 1 or values.type != pa.float32() or col.null_count
                or values.null_count or col.offset or values.offset):
            raise StoreError(f"{damaged} (not one plain fixed_size_list<float32> column)")

    def view(self) -> np.ndarray:
        """(rows, dim) read-only array over a memory map of the file."""
        mm = pa.memory_map(str(self.path))
        buf = mm.read_buffer()[self.offset: self.offset + self.rows * self.dim * 4]
        return np.frombuffer(buf, dtype=np.float32).reshape(self.rows, self.dim)


class CachedRows(RowReader):
    """Rows of the fused cache read with ``preadv`` into the caller's buffer.

    No decoding, no intermediate copy, and no page faults on a source mapping: the kernel
    copies from the page cache (or disk) into ``out``. Each read opens its own descriptor
    (microseconds against milliseconds of copying), so threads may read concurrently.
    """

    def __init__(self, root: Path):
        self.root = root
        self.meta: dict[str, CachedPart] = {}

    def read(self, part: str, first: int, out: np.ndarray) -> None:
        meta = self.meta.get(part)
        if meta is None:
            meta = self.meta[part] = CachedPart(self.root / cache_name(part))
        n = len(out)
        if first < 0 or first + n > meta.rows or out.shape[1:] != (meta.dim,):
            raise StoreError(f"{meta.path}: rows {first}..{first + n - 1} of "
                             f"{meta.rows} x {meta.dim} requested into {out.shape}")
        if out.dtype != np.float32 or not out.flags.c_contiguous or not hasattr(os, "preadv"):
            out[...] = meta.view()[first: first + n]
            return
        buf, pos = memoryview(out).cast("B"), meta.offset + first * meta.dim * 4
        fd = os.open(meta.path, os.O_RDONLY)
        try:
            while buf:  # a regular file returns everything at once; loop for the general case
                got = os.preadv(fd, [buf], pos)
                if got <= 0:
                    raise StoreError(f"{meta.path}: file ends before row {first + n - 1}")
                buf, pos = buf[got:], pos + got
        finally:
            os.close(fd)


def valid_fused_cache(path: Path) -> bool:
    """Whether the store at ``path`` has a fused cache that matches its part files.

    A store is rewritten as a whole (import swaps the directory), so a cache can only go stale
    if files are edited by hand; the manifest's byte sizes catch that and the cache is ignored.
    """
    manifest = path / FUSED_CACHE / "manifest.json"
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text())["parts"]
    on_disk = {f.name for f in (path / "shots").glob("*.parquet")}
    for part in sorted(on_disk | set(recorded)):
        f, meta = path / "shots" / part, recorded.get(part)
        if meta is None or not f.is_file() or f.stat().st_size != meta["parquet_bytes"]:
            warnings.warn(f"{path / FUSED_CACHE}: stale (part {part} changed); ignoring it — "
                          "rerun `mediafm cache`", stacklevel=3)
            return False
    return True
