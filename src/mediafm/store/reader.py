"""Reading a store: one title, a part, every title streamed, or rows for the training loader."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

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
    RowReader,
    cache_name,
    valid_fused_cache,
)


class ShotStore:
    """Read access to a store. Cheap to open: only store.json and the title table are read."""

    def __init__(self, path: str | os.PathLike, fused_cache: bool = True):
        """``fused_cache=False`` ignores a fused cache and reads Parquet (for comparisons)."""
        self.path = Path(path)
        meta_path = self.path / "store.json"
        if not meta_path.is_file():
            raise StoreError(f"{self.path}: not a mediafm store (no store.json)")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StoreError(f"{meta_path}: not valid JSON ({e})") from None
        self.info = StoreInfo.from_json(meta, meta_path)
        cols = ["title_id", "n_shots", "part", "row_offset", "synopsis", "tags"]
        try:
            titles = self.path / "titles.parquet"
            names = pq.read_schema(titles).names  # stores written before these flags lack them
            cols += [c for c in ("has_audio", "has_video") if c in names]
            self.titles = pq.read_table(titles, columns=cols).to_pandas()
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"{self.path / 'titles.parquet'}: cannot read ({e})") from None
        self._index = {t: i for i, t in enumerate(self.titles["title_id"])}
        self._fused_cache = fused_cache and valid_fused_cache(self.path)

    @property
    def dims(self) -> dict[str, int]:
        return self.info.dims

    def __repr__(self) -> str:
        return (f"ShotStore({str(self.path)!r}, titles={self.info.n_titles}, "
                f"shots={self.info.n_shots}, dims={self.dims})")

    def parts(self) -> list[str]:
        return sorted(self.titles["part"].unique())

    def title_embeddings(self) -> np.ndarray:
        """(T, title dim) title embeddings in title-table order; zeros where missing."""
        col = pq.read_table(self.path / "titles.parquet", columns=["metadata"])["metadata"]
        return vectors_or_zeros(col, self.dims["metadata"])

    def title_row(self, title_id: str) -> int:
        try:
            return self._index[title_id]
        except KeyError:
            raise StoreError(f"{self.path}: unknown title {title_id!r}") from None

    def read_part(self, part: str, columns: list[str]) -> pa.Table:
        path = self.path / "shots" / part
        try:
            return pq.read_table(path, columns=columns)
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"{path}: cannot read ({e})") from None

    @property
    def has_fused_cache(self) -> bool:
        return self._fused_cache

    def part_vectors(self, part: str, column: str = "fused") -> np.ndarray:
        """(rows, dim) float32 vectors of one part file, in row order (a private copy).

        The fused column comes from the fused cache when there is one (no decoding).
        """
        if column == "fused" and self._fused_cache:
            return np.array(CachedPart(self.path / FUSED_CACHE / cache_name(part)).view())
        return fixed_list_to_numpy(self.read_part(part, [column])[column])

    def row_reader(self, parts_in_memory: int = 4) -> RowReader:
        """A reader of fused-vector row ranges, for the training loader.

        With the fused cache, rows are copied with one ``preadv`` from the page cache straight
        into the caller's buffer: ~10x the rate of decoding Parquet's list column (~0.7 GB/s a
        core), which is what keeps a GPU fed (benchmarks/README.md). Without it, whole parts
        are decoded and the last ``parts_in_memory + 1`` kept.
        """
        if self._fused_cache:
            return CachedRows(self.path / FUSED_CACHE)
        return ParquetRows(self.part_vectors, parts_in_memory + 1)

    def title_vectors(self, title_id: str, column: str = "fused") -> np.ndarray:
        """(n_shots, dim) vectors of one title, reading only the row groups that hold it."""
        row = self.titles.iloc[self.title_row(title_id)]
        first, n = int(row.row_offset), int(row.n_shots)
        pf = pq.ParquetFile(self.path / "shots" / row.part)
        groups = list(range(first // ROW_GROUP, (first + n - 1) // ROW_GROUP + 1))
        table = pf.read_row_groups(groups, columns=[column])
        table = table.slice(first - groups[0] * ROW_GROUP, n)
        return fixed_list_to_numpy(table[column])

    def iter_titles(self, column: str = "fused", title_ids: list[str] | None = None
                    ) -> Iterator[tuple[str, np.ndarray]]:
        """Yield (title_id, (n_shots, dim) array) part by part: memory is one part's column."""
        titles = self.titles
        if title_ids is not None:
            titles = titles.iloc[[self.title_row(t) for t in title_ids]]
        for part, group in titles.groupby("part", sort=True):
            vectors = self.part_vectors(part, column)
            for row in group.sort_values("row_offset").itertuples():
                yield row.title_id, vectors[row.row_offset: row.row_offset + row.n_shots]
