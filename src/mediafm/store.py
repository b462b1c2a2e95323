"""The shot store: a catalog's per-shot vectors as plain Parquet, sorted by title and shot.

A store is a directory any Parquet reader (pandas, DuckDB, Spark, Ray) opens directly::

    STORE/store.json               format, version, dims, modalities, counts, encoders
    STORE/titles.parquet           title_id, n_shots, part, row_offset, metadata, synopsis, tags
    STORE/shots/part-00000.parquet title_id, shot_index, start_s, end_s,
                                   [video, audio, text], has_text, fused
    STORE/cache/fused/             optional (``mediafm cache``): the fused column of each part
                                   as uncompressed Arrow IPC, memory-mapped by the loader

Every title lives whole in one part file, its shots contiguous and in order, and the title table
records where (``part``, ``row_offset``). Readers therefore fetch one title, or stream part by
part, without ever holding the corpus in memory. Vectors are ``fixed_size_list<float32>``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.fusion import MODALITIES, fuse, unit_norm

FORMAT = "mediafm-store"
VERSION = 1
ROW_GROUP = 1024  # rows per Parquet row group: the unit a title read touches
PART_ROWS = 8192  # target rows per part file: the unit a streaming read holds in memory
FUSED_CACHE = Path("cache") / "fused"


class StoreError(ValueError):
    """Bad input or a damaged store; the message names the file, title and row."""


@dataclass(frozen=True)
class StoreInfo:
    """What store.json records."""

    dims: dict[str, int]  # video/audio/text (when kept), fused, metadata
    modalities: tuple[str, ...]  # the per-modality columns kept; () when imported as fused only
    n_titles: int
    n_shots: int
    encoders: dict = field(default_factory=dict)
    fused_modalities: tuple[str, ...] = MODALITIES  # what the fused vector is made of

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "dims": self.dims,
                "modalities": list(self.modalities),
                "fused_modalities": list(self.fused_modalities), "n_titles": self.n_titles,
                "n_shots": self.n_shots, "encoders": self.encoders}


# ----------------------------------------------------------------------------- reading


class ShotStore:
    """Read access to a store. Cheap to open: only store.json and the title table are read."""

    def __init__(self, path: str | os.PathLike, fused_cache: bool = True):
        """``fused_cache=False`` ignores a fused cache and reads Parquet (for comparisons)."""
        self.path = Path(path)
        meta_path = self.path / "store.json"
        if not meta_path.is_file():
            raise StoreError(f"{self.path}: not a mediafm store (no store.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise StoreError(f"{meta_path}: unsupported format {meta.get('format')!r} "
                             f"version {meta.get('version')!r}")
        self.info = StoreInfo(dims=meta["dims"], modalities=tuple(meta["modalities"]),
                              n_titles=meta["n_titles"], n_shots=meta["n_shots"],
                              encoders=meta.get("encoders", {}),
                              fused_modalities=tuple(meta.get("fused_modalities",
                                                              meta["modalities"])))
        cols = ["title_id", "n_shots", "part", "row_offset", "synopsis", "tags"]
        self.titles = pq.read_table(self.path / "titles.parquet", columns=cols).to_pandas()
        self._index = {t: i for i, t in enumerate(self.titles["title_id"])}
        self._fused_cache = fused_cache and _valid_fused_cache(self.path)

    @property
    def dims(self) -> dict[str, int]:
        return self.info.dims

    def __repr__(self) -> str:
        return (f"ShotStore({str(self.path)!r}, titles={self.info.n_titles}, "
                f"shots={self.info.n_shots}, dims={self.dims})")

    def parts(self) -> list[str]:
        return sorted(self.titles["part"].unique())

    def title_embeddings(self) -> np.ndarray:
        """(T, metadata dim) title-level embeddings in title-table order; zeros where missing."""
        col = pq.read_table(self.path / "titles.parquet", columns=["metadata"])["metadata"]
        return _vectors_or_zeros(col, self.dims["metadata"])

    def title_row(self, title_id: str) -> int:
        try:
            return self._index[title_id]
        except KeyError:
            raise StoreError(f"{self.path}: unknown title {title_id!r}") from None

    def read_part(self, part: str, columns: list[str]) -> pa.Table:
        return pq.read_table(self.path / "shots" / part, columns=columns)

    @property
    def has_fused_cache(self) -> bool:
        return self._fused_cache

    def part_vectors(self, part: str, column: str = "fused") -> np.ndarray:
        """(rows, dim) float32 vectors of one part file, in row order (a private copy).

        The fused column comes from the fused cache when there is one (no decoding).
        """
        if column == "fused" and self._fused_cache:
            return np.array(_CachedPart(self.path / FUSED_CACHE / _cache_name(part)).view())
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
        return ParquetRows(self, parts_in_memory + 1)

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


def fixed_list_to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column of equal-length float lists (no nulls) as a (rows, dim) float32 array."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    dim = col.type.list_size if pa.types.is_fixed_size_list(col.type) else None
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if dim is None:
        dim = flat.size // max(len(col), 1)
    return flat.reshape(len(col), dim)


def _cache_name(part: str) -> str:
    return Path(part).with_suffix(".arrow").name


class RowReader:
    """Copies rows ``first .. first + len(out) - 1`` of a part's fused column into ``out``."""

    def read(self, part: str, first: int, out: np.ndarray) -> None:
        raise NotImplementedError


class ParquetRows(RowReader):
    """Decoded fused columns of the most recently used parts (LRU, ``size`` parts at most)."""

    def __init__(self, store: ShotStore, size: int):
        self.store, self.size = store, size
        self.parts: OrderedDict[str, np.ndarray] = OrderedDict()
        self.lock = threading.Lock()  # one decode per part, even with concurrent readers

    def read(self, part: str, first: int, out: np.ndarray) -> None:
        with self.lock:
            if part in self.parts:
                self.parts.move_to_end(part)
            else:
                self.parts[part] = self.store.part_vectors(part)
                while len(self.parts) > self.size:
                    self.parts.popitem(last=False)
            vectors = self.parts[part]
        out[...] = vectors[first: first + len(out)]


class _CachedPart:
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
        self.meta: dict[str, _CachedPart] = {}

    def read(self, part: str, first: int, out: np.ndarray) -> None:
        meta = self.meta.get(part)
        if meta is None:
            meta = self.meta[part] = _CachedPart(self.root / _cache_name(part))
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


def _valid_fused_cache(path: Path) -> bool:
    """Whether there is a fused cache and it matches the store's part files.

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


def write_fused_cache(path: str | os.PathLike, progress: bool = True) -> Path:
    """Write ``STORE/cache/fused``: each part's fused column as uncompressed Arrow IPC.

    Costs one more copy of the fused vectors on disk; buys a training loader that copies
    windows straight out of the page cache (~10x the Parquet rate). Written to a temporary
    directory and swapped in, one part in memory at a time.
    """
    from tqdm.auto import tqdm

    store = ShotStore(path)
    final = store.path / FUSED_CACHE
    final.parent.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fused-", dir=final.parent))
    try:
        parts = {}
        for part in tqdm(store.parts(), desc="cache", unit="part", disable=not progress):
            table = store.read_part(part, ["fused"]).combine_chunks()
            with pa.OSFile(str(tmp / _cache_name(part)), "wb") as f, \
                    pa.ipc.new_file(f, table.schema) as writer:
                writer.write_table(table, max_chunksize=max(table.num_rows, 1))
            parts[part] = {"rows": table.num_rows,
                           "parquet_bytes": (store.path / "shots" / part).stat().st_size}
        (tmp / "manifest.json").write_text(json.dumps({"parts": parts}, indent=1))
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _vectors_or_zeros(col: pa.ChunkedArray, dim: int) -> np.ndarray:
    col = col.combine_chunks()
    out = np.zeros((len(col), dim), dtype=np.float32)
    valid = ~col.is_null().to_numpy(zero_copy_only=False)
    if dim and valid.any():
        out[valid] = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return out


# ----------------------------------------------------------------------------- import

_TIME_COLS = ("start_s", "end_s")


def _list_column(table: pa.Table, name: str, source: str, nullable: bool,
                 dim: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a column of float lists; return ((N, dim) float32, valid mask, dim).

    Every non-null row must have the same length (the first row's, or ``dim`` when given) and
    only finite values; the error names the source file, input row, title and shot.
    """
    col = table[name].combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
            or pa.types.is_fixed_size_list(col.type)):
        raise StoreError(f"{source}: column {name!r} must be a list of floats, got {col.type}")
    valid = ~col.is_null().to_numpy(zero_copy_only=False)

    def where(i: int) -> str:
        return (f"{source} row {table['_row'][i].as_py()} (title {table['title_id'][i].as_py()!r},"
                f" shot {table['shot_index'][i].as_py()})")

    if not nullable and not valid.all():
        raise StoreError(f"{where(int(np.argmin(valid)))}: {name} is null")
    lengths = col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    if dim is None and pa.types.is_fixed_size_list(col.type):
        dim = col.type.list_size
    if dim is None:
        if not valid.any():
            if name == "metadata":
                return np.zeros((len(col), 0), np.float32), valid, 0
            raise StoreError(f"{source}: column {name!r} is null in every row, so its dims are "
                             "unknown: store it as fixed_size_list<float32>[dim]")
        dim = int(lengths[valid][0])
    bad = valid & (lengths != dim)
    if bad.any():
        i = int(np.argmax(bad))
        raise StoreError(f"{where(i)}: {name} has {lengths[i]} values, expected {dim} "
                         "(every row of a column must have the same dims)")
    if dim == 0 and valid.any():
        raise StoreError(f"{source}: column {name!r} holds empty vectors")
    out = np.zeros((len(col), dim), dtype=np.float32)
    if valid.any():
        out[valid] = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        raise StoreError(f"{where(int(np.argmin(finite)))}: {name} contains NaN or inf")
    return out, valid, dim


def _check_shot_indices(title: np.ndarray, shot: np.ndarray, rows: np.ndarray,
                        source: str) -> np.ndarray:
    """Given rows sorted by (title, shot): check 0..n-1 per title; return title start offsets."""
    starts = np.flatnonzero(np.r_[True, title[1:] != title[:-1]])
    counts = np.diff(np.r_[starts, len(title)])
    expected = np.arange(len(title)) - np.repeat(starts, counts)
    bad = shot != expected
    if bad.any():
        i = int(np.argmax(bad))
        t = np.searchsorted(starts, i, side="right") - 1
        lo, hi = starts[t], starts[t] + counts[t]
        idx = shot[lo:hi]
        uniq, first, n = np.unique(idx, return_index=True, return_counts=True)
        if (n > 1).any():
            d = int(uniq[np.argmax(n > 1)])
            dup_rows = rows[lo:hi][idx == d].tolist()
            raise StoreError(f"{source}: title {str(title[i])!r} has shot_index {d} more than once "
                             f"(rows {dup_rows})")
        missing = sorted(set(range(len(idx))) - set(idx.tolist()))
        raise StoreError(f"{source}: title {str(title[i])!r} is missing shot_index "
                         f"{missing[0] if missing else int(idx.min())} (row {rows[i]}): shot "
                         "indices must be contiguous from 0")
    return starts


def _read_titles(path: str | os.PathLike) -> tuple[pd.DataFrame, np.ndarray | None, int]:
    source = str(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise StoreError(f"{source}: cannot read as Parquet: {e}") from e
    if "title_id" not in table.column_names:
        raise StoreError(f"{source}: missing required column 'title_id'")
    ids = table["title_id"].to_pylist()
    if any(t is None for t in ids):
        raise StoreError(f"{source} row {ids.index(None)}: title_id is null")
    seen: dict[str, int] = {}
    for i, t in enumerate(ids):
        if t in seen:
            raise StoreError(f"{source} rows {seen[t]} and {i}: title {t!r} appears twice")
        seen[t] = i
    meta, dim = None, 0
    if "metadata" in table.column_names:
        shim = table.append_column("_row", pa.array(np.arange(len(ids)))).append_column(
            "shot_index", pa.nulls(len(ids), pa.int64()))
        meta, valid, dim = _list_column(shim, "metadata", source, nullable=True, dim=None)
        meta[~valid] = 0.0
    frame = pd.DataFrame({"title_id": [str(t) for t in ids]})
    for col in ("synopsis", "tags"):
        frame[col] = table[col].to_pylist() if col in table.column_names else None
    return frame, meta, dim


class _Parts:
    """Writes whole titles into part files of about PART_ROWS rows."""

    def __init__(self, shots_dir: Path, part_rows: int):
        self.dir, self.part_rows = shots_dir, part_rows
        self.pending: list[pa.Table] = []
        self.rows = 0
        self.n_parts = 0
        self.locations: dict[str, tuple[str, int, int]] = {}  # title -> (part, offset, n)

    def add(self, title_id: str, table: pa.Table) -> None:
        if self.rows and self.rows + table.num_rows > self.part_rows:
            self.flush()
        self.locations[title_id] = (self._name(), self.rows, table.num_rows)
        self.pending.append(table)
        self.rows += table.num_rows

    def _name(self) -> str:
        return f"part-{self.n_parts:05d}.parquet"

    def flush(self) -> None:
        if not self.pending:
            return
        pq.write_table(pa.concat_tables(self.pending), self.dir / self._name(),
                       row_group_size=ROW_GROUP)
        self.pending, self.rows = [], 0
        self.n_parts += 1


def _vector_array(x: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), x.shape[1])


def import_shots(shots: str | os.PathLike, out: str | os.PathLike,
                 titles: str | os.PathLike | None = None, *, part_rows: int = PART_ROWS,
                 bucket_rows: int = 1 << 18, encoders: dict | None = None,
                 fuse_modalities: tuple[str, ...] = MODALITIES,
                 progress: bool = True) -> ShotStore:
    """Build a store at ``out`` from a SHOTS Parquet file (and optionally TITLES).

    Rows may come in any order. The input is hash-partitioned by title into buckets of about
    ``bucket_rows`` rows on local disk, so memory stays bounded by a bucket, not the corpus.
    Everything is written to a temporary directory beside ``out`` and moved into place only
    when complete: a failed import leaves no store behind, or the previous one intact.
    ``fuse_modalities``: build the fused vector from a subset (the modality ablation); the
    per-modality columns are all kept.
    """
    from tqdm.auto import tqdm

    shots, out = Path(shots), Path(out)
    source = str(shots)
    try:
        pf = pq.ParquetFile(shots)
    except (OSError, pa.ArrowInvalid) as e:
        raise StoreError(f"{source}: cannot read as Parquet: {e}") from e
    names = pf.schema_arrow.names
    missing = [c for c in ("title_id", "shot_index", *_TIME_COLS) if c not in names]
    if missing:
        raise StoreError(f"{source}: missing required column(s) {missing}")
    if all(m in names for m in MODALITIES):
        modalities: tuple[str, ...] = MODALITIES
    elif "fused" in names:
        modalities = ()
    else:
        raise StoreError(f"{source}: needs columns video, audio, text (text may be null) "
                         f"or a single fused column; found {names}")
    bad = sorted(set(fuse_modalities) - set(MODALITIES)) or (not fuse_modalities)
    if bad:
        raise StoreError(f"fuse_modalities must be a non-empty subset of {MODALITIES}, got "
                         f"{list(fuse_modalities)}")
    if not modalities and tuple(fuse_modalities) != MODALITIES:
        raise StoreError(f"{source}: has only a fused column; cannot fuse a subset of "
                         "modalities")
    n_rows = pf.metadata.num_rows
    if n_rows == 0:
        raise StoreError(f"{source}: no shots (empty input)")

    title_frame, title_meta, meta_dim = (None, None, 0)
    if titles is not None:
        title_frame, title_meta, meta_dim = _read_titles(titles)
    known = None if title_frame is None else set(title_frame["title_id"])

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not (out / "store.json").is_file() and any(out.iterdir()):
        raise StoreError(f"{out}: exists and is not a mediafm store; refusing to overwrite")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "shots").mkdir()
        read_cols = ["title_id", "shot_index", *_TIME_COLS, *(modalities or ("fused",))]
        if not modalities and "has_text" in names:
            read_cols.append("has_text")
        buckets = _bucketize(pf, read_cols, tmp / "buckets", bucket_rows, n_rows)
        parts = _Parts(tmp / "shots", part_rows)
        dims: dict[str, int | None] = {m: None for m in (*modalities, "fused")}
        bar = tqdm(total=n_rows, desc="import", unit="shot", disable=not progress)
        for bucket in buckets:
            table = bucket()
            _import_bucket(table, source, modalities, dims, known, parts,
                           tuple(fuse_modalities))
            bar.update(table.num_rows)
        bar.close()
        parts.flush()
        shutil.rmtree(tmp / "buckets", ignore_errors=True)
        final_dims = {k: int(v) for k, v in dims.items()}
        final_dims["metadata"] = meta_dim
        _write_titles(tmp, parts.locations, title_frame, title_meta, meta_dim)
        info = StoreInfo(dims=final_dims, modalities=modalities, n_titles=len(parts.locations),
                         n_shots=n_rows, encoders=encoders or {},
                         fused_modalities=tuple(m for m in MODALITIES if m in fuse_modalities)
                         if modalities else ())
        (tmp / "store.json").write_text(json.dumps(info.to_json(), indent=2))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ShotStore(out)


def _bucketize(pf: pq.ParquetFile, columns: list[str], bucket_dir: Path, bucket_rows: int,
               n_rows: int) -> list:
    """Split the input by hash(title_id) into buckets; return loaders, one per bucket.

    With a single bucket the input is read directly (no copy). Each row keeps its input row
    number in ``_row`` for error messages.
    """
    n_buckets = max(1, math.ceil(n_rows / bucket_rows))
    if n_buckets == 1:
        def whole() -> pa.Table:
            t = pf.read(columns=columns)
            return t.append_column("_row", pa.array(np.arange(t.num_rows)))
        return [whole]
    bucket_dir.mkdir()
    writers: dict[int, pq.ParquetWriter] = {}
    offset = 0
    for batch in pf.iter_batches(batch_size=65536, columns=columns):
        t = pa.Table.from_batches([batch])
        t = t.append_column("_row", pa.array(np.arange(offset, offset + t.num_rows)))
        offset += t.num_rows
        ids = t["title_id"].to_numpy(zero_copy_only=False).astype(str)
        b = pd.util.hash_array(ids, categorize=True) % n_buckets
        for k in np.unique(b):
            sub = t.filter(pa.array(b == k))
            if k not in writers:
                writers[k] = pq.ParquetWriter(bucket_dir / f"b{k:05d}.parquet", sub.schema)
            writers[k].write_table(sub)
    for w in writers.values():
        w.close()
    return [lambda k=k: pq.read_table(bucket_dir / f"b{k:05d}.parquet") for k in sorted(writers)]


def _import_bucket(table: pa.Table, source: str, modalities: tuple[str, ...],
                   dims: dict[str, int | None], known: set[str] | None, parts: _Parts,
                   include: tuple[str, ...] = MODALITIES) -> None:
    title_col = table["title_id"]
    if title_col.null_count:
        i = int(np.argmax(title_col.is_null().to_numpy(zero_copy_only=False)))
        raise StoreError(f"{source} row {table['_row'][i].as_py()}: title_id is null")
    for col in ("shot_index", *_TIME_COLS):
        if table[col].null_count:
            i = int(np.argmax(table[col].is_null().to_numpy(zero_copy_only=False)))
            raise StoreError(f"{source} row {table['_row'][i].as_py()}: {col} is null")
    title = title_col.to_numpy(zero_copy_only=False).astype(str)
    shot = table["shot_index"].to_numpy().astype(np.int64)
    order = np.lexsort((shot, title))
    table = table.take(pa.array(order))
    title, shot = title[order], shot[order]
    rows = table["_row"].to_numpy()
    if known is not None:
        unknown = ~np.isin(title, list(known))
        if unknown.any():
            i = int(np.argmax(unknown))
            raise StoreError(f"{source} row {rows[i]}: title {str(title[i])!r} is not in the "
                             "titles table")
    starts = _check_shot_indices(title, shot, rows, source)
    start_s = table["start_s"].to_numpy().astype(np.float64)
    end_s = table["end_s"].to_numpy().astype(np.float64)
    bad = ~np.isfinite(start_s) | ~np.isfinite(end_s) | (end_s < start_s) | (start_s < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise StoreError(f"{source} row {rows[i]} (title {str(title[i])!r}, shot {shot[i]}): bad "
                         f"times start_s={start_s[i]} end_s={end_s[i]} (need 0 <= start <= end)")

    columns: dict[str, pa.Array] = {
        "title_id": pa.array(title, pa.string()), "shot_index": pa.array(shot, pa.int32()),
        "start_s": pa.array(start_s), "end_s": pa.array(end_s)}
    if modalities:
        vecs = {}
        for m in modalities:
            vecs[m], valid, dims[m] = _list_column(table, m, source, m == "text", dims[m])
        has_text = valid
        fused = fuse(vecs["video"], vecs["audio"], vecs["text"], has_text, include)
        for m in modalities:
            columns[m] = _vector_array(vecs[m])
        columns["has_text"] = pa.array(has_text)
    else:
        raw, _, dims["fused"] = _list_column(table, "fused", source, False, dims["fused"])
        zero = ~raw.any(axis=1)
        if zero.any():
            i = int(np.argmax(zero))
            raise StoreError(f"{source} row {rows[i]} (title {str(title[i])!r}): fused is all "
                             "zeros")
        fused = unit_norm(raw)
        has_text = (table["has_text"].combine_chunks() if "has_text" in table.column_names
                    else pa.nulls(len(title), pa.bool_()))
        columns["has_text"] = has_text
    norms = np.linalg.norm(fused, axis=1)
    if (norms < 0.5).any():
        i = int(np.argmax(norms < 0.5))
        raise StoreError(f"{source} row {rows[i]} (title {str(title[i])!r}, shot {shot[i]}): every "
                         "modality is all zeros, so the shot has no fused vector")
    dims["fused"] = fused.shape[1]
    columns["fused"] = _vector_array(fused)
    out = pa.table(columns)
    ends = np.r_[starts[1:], len(title)]
    for lo, hi in zip(starts, ends, strict=True):
        parts.add(str(title[lo]), out.slice(lo, hi - lo))


def _write_titles(tmp: Path, locations: dict[str, tuple[str, int, int]],
                  frame: pd.DataFrame | None, meta: np.ndarray | None, meta_dim: int) -> None:
    ids = list(locations)
    rows = {t: i for i, t in enumerate(frame["title_id"])} if frame is not None else {}
    idx = [rows.get(t) for t in ids]
    cols = {
        "title_id": pa.array(ids, pa.string()),
        "n_shots": pa.array([locations[t][2] for t in ids], pa.int32()),
        "part": pa.array([locations[t][0] for t in ids], pa.string()),
        "row_offset": pa.array([locations[t][1] for t in ids], pa.int64()),
    }
    if meta is not None and meta_dim:
        m = np.stack([meta[i] if i is not None else np.zeros(meta_dim, np.float32) for i in idx])
        cols["metadata"] = _vector_array(m)
    else:
        cols["metadata"] = pa.nulls(len(ids), pa.list_(pa.float32(), max(meta_dim, 1)))
    for c, typ in (("synopsis", pa.string()), ("tags", pa.list_(pa.string()))):
        vals = [frame[c].iloc[i] if frame is not None and i is not None else None for i in idx]
        cols[c] = pa.array([None if v is None or (isinstance(v, float) and math.isnan(v))
                            else (list(v) if c == "tags" else v) for v in vals], typ)
    pq.write_table(pa.table(cols), tmp / "titles.parquet")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an existing store is swapped out only after tmp is complete."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
