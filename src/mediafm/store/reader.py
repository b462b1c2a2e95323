"""Reading a store: the only code outside the writer that knows where a title's rows are.

Consumers ask by title: its shots' columns (``shots``, ``times``), its vectors
(``title_vectors``), every title streamed (``iter_titles``, ``iter_shots``), a thumbnail, the
recorded source media, rows for the training loader (``row_reader``). Parts are opaque units
of work to them (``parts``, ``titles_in``): the layout inside (``part``, ``row_offset``) stays
here, so it can change without touching a consumer.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.errors import NotFound
from mediafm.store.format import (
    FUSED_CACHE,
    ROW_GROUP,
    StoreError,
    StoreInfo,
    fixed_list_to_numpy,
    vectors_or_zeros,
)
from mediafm.store.rows import (
    CachedPart,
    CachedRows,
    ParquetRows,
    TitleRows,
    cache_name,
    valid_fused_cache,
)

TITLE_COLUMNS = ("title_id", "n_shots", "synopsis", "tags", "has_audio", "has_video",
                 "frame_rate")
SHOT_COLUMNS = ("shot_index", "start_s", "end_s", "has_text")  # what ``shots`` reads by default


class ShotStore:
    """Read access to a store. Cheap to open: only store.json and the title table are read.

    ``titles`` is the title table (``TITLE_COLUMNS``: id, shot count, synopsis, tags, flags)
    in store order; a title's row number in it is what the training loader addresses.
    """

    def __init__(self, path: str | os.PathLike, fused_cache: bool = True,
                 media_root: str | os.PathLike | None = None):
        """``fused_cache=False`` ignores a fused cache and reads Parquet (for comparisons).
        ``media_root``: where the recorded source media now live, when the store and its
        media moved together (``media``)."""
        self.path = Path(path)
        meta_path = self.path / "store.json"
        if not meta_path.is_file():
            raise StoreError(f"{self.path}: not a mediafm store (no store.json)")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StoreError(f"{meta_path}: not valid JSON ({e})") from None
        self.info = StoreInfo.from_json(meta, meta_path)
        titles_path = self.path / "titles.parquet"
        try:
            names = pq.read_schema(titles_path).names  # older stores lack the flags
            cols = ["part", "row_offset", *(c for c in TITLE_COLUMNS if c in names)]
            table = pq.read_table(titles_path, columns=cols).to_pandas()
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"{titles_path}: cannot read ({e})") from None
        self._part = table.pop("part").to_numpy()
        self._offset = table.pop("row_offset").to_numpy(np.int64)
        self.titles = table
        self._index = {t: i for i, t in enumerate(self.titles["title_id"])}
        self._fused_cache = fused_cache and valid_fused_cache(self.path)
        self._thumbs = None
        self._recent = RecentTables()
        self._shot_columns: list[str] | None = None
        self._media: dict[str, str] | None = None
        self.media_root = Path(media_root) if media_root else None

    @property
    def dims(self) -> dict[str, int]:
        return self.info.dims

    @property
    def fingerprint(self) -> str:
        """The content digest the store recorded (``StoreInfo.fingerprint``); for a store
        written before fingerprints, a digest of its store.json and title table."""
        if self.info.fingerprint:
            return self.info.fingerprint
        h = hashlib.blake2b(digest_size=16)
        for name in ("store.json", "titles.parquet"):
            h.update((self.path / name).read_bytes())
        return "legacy-" + h.hexdigest()

    def __repr__(self) -> str:
        return (f"ShotStore({str(self.path)!r}, titles={self.info.n_titles}, "
                f"shots={self.info.n_shots}, dims={self.dims})")

    # ------------------------------------------------------------------ titles

    def title_row(self, title_id: str) -> int:
        """The title's row in ``titles``; an unknown title is a ``NotFound`` naming it."""
        try:
            return self._index[title_id]
        except KeyError:
            raise NotFound(f"{self.path}: unknown title {title_id!r}") from None

    def n_shots(self, title_id: str) -> int:
        return int(self.titles["n_shots"].iat[self.title_row(title_id)])

    def check_shot(self, title_id: str, shot: int) -> int:
        """``shot`` as an int if the title has it; else a ``NotFound`` naming both."""
        n = self.n_shots(title_id)
        if not 0 <= int(shot) < n:
            raise NotFound(f"title {title_id!r} has no shot {shot} (0..{n - 1})")
        return int(shot)

    def title_embeddings(self) -> np.ndarray:
        """(T, title dim) title embeddings in title-table order; zeros where missing."""
        col = pq.read_table(self.path / "titles.parquet", columns=["metadata"])["metadata"]
        return vectors_or_zeros(col, self.dims["metadata"])

    # ------------------------------------------------------------------ one title

    def _title_table(self, title_id: str, columns: list[str]) -> pa.Table:
        """The title's rows of ``columns``, reading only the row groups that hold them; the
        last ones read are kept (``RecentTables``)."""
        row = self.title_row(title_id)
        return self._recent.get((title_id, tuple(columns)),
                                lambda: self._read_title(row, title_id, columns))

    def _read_title(self, row: int, title_id: str, columns: list[str]) -> pa.Table:
        part, first, n = self._part[row], int(self._offset[row]), self.n_shots(title_id)
        path = self.path / "shots" / part
        try:
            pf = pq.ParquetFile(path)
            groups = list(range(first // ROW_GROUP, (first + n - 1) // ROW_GROUP + 1))
            table = pf.read_row_groups(groups, columns=columns)
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"{path}: cannot read ({e})") from None
        return table.slice(first - groups[0] * ROW_GROUP, n)

    def shots(self, title_id: str, columns: tuple[str, ...] = SHOT_COLUMNS) -> pd.DataFrame:
        """One title's shots, in order: a frame of the (scalar) ``columns`` asked for."""
        return self._title_table(title_id, list(columns)).to_pandas()

    def arrays(self, title_id: str, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
        """One title's scalar ``columns`` as arrays (strings as objects, null as None): what
        ``shots`` gives without building a DataFrame, for callers that look up a few shots
        (a search explaining its hits)."""
        t = self._title_table(title_id, list(columns))
        return {c: t[c].to_numpy(zero_copy_only=False) for c in columns}

    def times(self, title_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(start_s, end_s) of every shot of a title, on the title's timeline."""
        t = self._title_table(title_id, ["start_s", "end_s"])
        return t["start_s"].to_numpy(), t["end_s"].to_numpy()

    def title_vectors(self, title_id: str, column: str = "fused") -> np.ndarray:
        """(n_shots, dim) vectors of one title."""
        return fixed_list_to_numpy(self._title_table(title_id, [column])[column])

    # ------------------------------------------------------------------ every title

    def parts(self) -> list[str]:
        """The store's parts: units of work that hold whole titles (``titles_in``)."""
        return sorted(set(self._part))

    def titles_in(self, part: str) -> list[str]:
        """The titles of one part, in store order."""
        rows = np.flatnonzero(self._part == part)
        return self.titles["title_id"].iloc[rows[np.argsort(self._offset[rows])]].tolist()

    def part_numbers(self) -> np.ndarray:
        """(T,) the number of each title's part: titles that are cheap to read together."""
        names = {p: i for i, p in enumerate(self.parts())}
        return np.array([names[p] for p in self._part], np.int64)

    def _read_part(self, part: str, columns: list[str]) -> pa.Table:
        path = self.path / "shots" / part
        try:
            return pq.read_table(path, columns=columns)
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"{path}: cannot read ({e})") from None

    @property
    def shot_columns(self) -> list[str]:
        """The columns of the shots' parts (``timed_text`` only where ingest or the input gave
        it; stores written before it have none). Read once: a store's parts do not change."""
        if self._shot_columns is None:
            path = self.path / "shots" / self.parts()[0]
            try:
                self._shot_columns = pq.read_schema(path).names
            except (OSError, pa.ArrowException) as e:
                raise StoreError(f"{path}: cannot read ({e})") from None
        return list(self._shot_columns)

    @property
    def has_fused_cache(self) -> bool:
        return self._fused_cache

    def part_vectors(self, part: str, column: str = "fused") -> np.ndarray:
        """(rows, dim) float32 vectors of one part, in store order (a private copy).

        The fused column comes from the fused cache when there is one (no decoding).
        """
        if column == "fused" and self._fused_cache:
            return np.array(CachedPart(self.path / FUSED_CACHE / cache_name(part)).view())
        return fixed_list_to_numpy(self._read_part(part, [column])[column])

    def _by_part(self, title_ids: list[str] | None) -> Iterator[tuple[str, list[tuple]]]:
        """(part, [(title_id, offset, n_shots), ...] in store order), part by part."""
        rows = (np.arange(len(self.titles)) if title_ids is None
                else np.array([self.title_row(t) for t in title_ids], np.int64))
        ids, n = self.titles["title_id"].to_numpy(), self.titles["n_shots"].to_numpy()
        for part in sorted(set(self._part[rows])):
            mine = rows[self._part[rows] == part]
            mine = mine[np.argsort(self._offset[mine])]
            yield part, [(ids[r], int(self._offset[r]), int(n[r])) for r in mine]

    def iter_titles(self, column: str = "fused", title_ids: list[str] | None = None
                    ) -> Iterator[tuple[str, np.ndarray]]:
        """Yield (title_id, (n_shots, dim) array) part by part: memory is one part's column."""
        for part, titles in self._by_part(title_ids):
            vectors = self.part_vectors(part, column)
            for title_id, first, n in titles:
                yield title_id, vectors[first: first + n]

    def iter_shots(self, columns: tuple[str, ...] = SHOT_COLUMNS,
                   title_ids: list[str] | None = None) -> Iterator[tuple[str, pd.DataFrame]]:
        """Yield (title_id, its ``shots`` frame) part by part."""
        for part, titles in self._by_part(title_ids):
            table = self._read_part(part, list(columns))
            for title_id, first, n in titles:
                yield title_id, table.slice(first, n).to_pandas()

    def row_reader(self, parts_in_memory: int = 4) -> TitleRows:
        """Copies rows of a title's fused vectors into a buffer, for the training loader:
        ``read(title_row, first_shot, out)``.

        With the fused cache, rows are copied with one ``preadv`` from the page cache straight
        into the caller's buffer: ~10x the rate of decoding Parquet's list column (~0.7 GB/s a
        core), which is what keeps a GPU fed (benchmarks/README.md). Without it, whole parts
        are decoded and the last ``parts_in_memory + 1`` kept.
        """
        rows = (CachedRows(self.path / FUSED_CACHE) if self._fused_cache
                else ParquetRows(self.part_vectors, parts_in_memory + 1))
        return TitleRows(rows, self._part, self._offset)

    # ------------------------------------------------------------------ for people

    @property
    def has_thumbs(self) -> bool:
        from mediafm.store.thumbs import THUMBS

        return (self.path / THUMBS).is_dir()

    def thumbnail(self, title_id: str, shot: int) -> bytes | None:
        """The JPEG of a shot (its middle frame), or None when the store has none."""
        from mediafm.store.thumbs import Thumbs

        shot = self.check_shot(title_id, shot)
        if self._thumbs is None:
            self._thumbs = Thumbs(self.path)
        row = self.title_row(title_id)
        return self._thumbs.get(self._part[row], int(self._offset[row]) + shot)

    def media(self, title_id: str) -> Path | None:
        """The title's source media as ingest recorded it (re-rooted under ``media_root``
        when given), or None (an imported store, or a title without)."""
        from mediafm.store.thumbs import media_records, reroot

        self.title_row(title_id)
        if self._media is None:
            self._media = media_records(self.path)
        path = self._media.get(title_id)
        if path is None:
            return None
        return reroot(Path(path), self._media, self.media_root)


class RecentTables:
    """The title tables read last, up to ``budget`` bytes (least recently used out first).

    Why: a server answers about the same few titles again and again (a title page, then
    searches whose hits fall in the same titles, each hit's times and line of text), and
    every read opens a part file and decodes row groups (~3 ms each on 2 cores; a search
    explained ten hits with ten reads). Arrow tables are immutable, so one is shared by
    every caller; pickling a store (to a worker) leaves its tables behind."""

    def __init__(self, budget: int = 64 << 20):
        self.budget, self.used = budget, 0
        self.tables: OrderedDict[tuple, pa.Table] = OrderedDict()
        self.lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"budget": self.budget}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["budget"])

    def get(self, key: tuple, read: Callable[[], pa.Table]) -> pa.Table:
        with self.lock:
            table = self.tables.get(key)
            if table is not None:
                self.tables.move_to_end(key)
                return table
        table = read()  # outside the lock: one slow read does not hold up the others
        with self.lock:
            size = table.get_total_buffer_size()  # a slice holds its row groups' buffers
            if key not in self.tables and size <= self.budget:
                self.tables[key] = table
                self.used += size
                while self.used > self.budget:
                    self.used -= self.tables.popitem(last=False)[1].get_total_buffer_size()
        return table
