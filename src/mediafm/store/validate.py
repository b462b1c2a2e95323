"""Validation of import input: every error names the file, the input row, the title and shot."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.store.format import StoreError

TIME_COLUMNS = ("start_s", "end_s")


def list_column(table: pa.Table, name: str, source: str, nullable: bool,
                dim: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a column of float lists; return ((N, dim) float32, valid mask, dim).

    Every non-null row must have the same length (the first row's, or ``dim`` when given) and
    only finite values. ``table`` carries ``_row`` (input row numbers), ``title_id`` and
    ``shot_index`` for the messages.
    """
    col = table[name].combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
            or pa.types.is_fixed_size_list(col.type)):
        raise StoreError(f"{source}: column {name!r} must be a list of floats, got {col.type}")
    if not (pa.types.is_floating(col.type.value_type) or pa.types.is_integer(
            col.type.value_type) or pa.types.is_null(col.type.value_type)):
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
    most = ""
    if dim is None:
        if not valid.any():
            if name == "metadata":
                return np.zeros((len(col), 0), np.float32), valid, 0
            raise StoreError(f"{source}: column {name!r} is null in every row, so its dims are "
                             "unknown: store it as fixed_size_list<float32>[dim]")
        # the length most rows have: an odd first row is the one blamed, not its neighbour
        values, counts = np.unique(lengths[valid], return_counts=True)
        dim, most = int(values[np.argmax(counts)]), ", as most rows have"
    bad = valid & (lengths != dim)
    if bad.any():
        i = int(np.argmax(bad))
        raise StoreError(f"{where(i)}: {name} has {lengths[i]} values, expected {dim}{most} "
                         "(every row of a column must have the same dims)")
    if dim == 0 and valid.any():
        raise StoreError(f"{source}: column {name!r} holds empty vectors")
    out = np.zeros((len(col), dim), dtype=np.float32)
    if valid.any():
        # a null inside a vector becomes NaN here, and is reported as such below
        out[valid] = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        raise StoreError(f"{where(int(np.argmin(finite)))}: {name} contains NaN or inf")
    return out, valid, dim


def check_shot_indices(title: np.ndarray, shot: np.ndarray, rows: np.ndarray,
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
        uniq, n = np.unique(idx, return_counts=True)
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


def check_not_null(table: pa.Table, columns: tuple[str, ...], source: str) -> None:
    """The first null in any of ``columns`` is an error naming its input row."""
    for col in columns:
        if table[col].null_count:
            i = int(np.argmax(table[col].is_null().to_numpy(zero_copy_only=False)))
            raise StoreError(f"{source} row {table['_row'][i].as_py()}: {col} is null")


def check_times(start_s: np.ndarray, end_s: np.ndarray, title: np.ndarray, shot: np.ndarray,
                rows: np.ndarray, source: str) -> None:
    bad = ~np.isfinite(start_s) | ~np.isfinite(end_s) | (end_s < start_s) | (start_s < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise StoreError(f"{source} row {rows[i]} (title {str(title[i])!r}, shot {shot[i]}): bad "
                         f"times start_s={start_s[i]} end_s={end_s[i]} (need 0 <= start <= end)")


def numeric_column(table: pa.Table, name: str, source: str, dtype) -> np.ndarray:
    """A column as ``dtype``; a column of another type is an error naming it."""
    col = table[name]
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise StoreError(f"{source}: column {name!r} must be numeric, got {col.type}")
    values = col.to_numpy().astype(dtype)
    if np.issubdtype(dtype, np.integer) and pa.types.is_floating(col.type):
        raw = col.to_numpy()
        frac = raw != np.round(raw)
        if frac.any():
            i = int(np.argmax(frac))
            raise StoreError(f"{source} row {table['_row'][i].as_py()}: {name} is "
                             f"{raw[i]!r}, not a whole number")
    return values


def read_titles(path: str | os.PathLike) -> tuple[pd.DataFrame, np.ndarray | None, int]:
    """TITLES input -> (title_id/synopsis/tags/has_audio/has_video frame, title embeddings or
    None, their dim)."""
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
    emb, dim = None, 0
    if "metadata" in table.column_names:
        shim = table.append_column("_row", pa.array(np.arange(len(ids)))).append_column(
            "shot_index", pa.nulls(len(ids), pa.int64()))
        emb, valid, dim = list_column(shim, "metadata", source, nullable=True, dim=None)
        emb[~valid] = 0.0
    frame = pd.DataFrame({"title_id": [str(t) for t in ids]})
    for col in ("synopsis", "tags", "has_audio", "has_video", "frame_rate"):
        frame[col] = table[col].to_pylist() if col in table.column_names else None
    return frame, emb, dim
