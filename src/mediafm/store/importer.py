"""``mediafm import``: per-shot vectors (Parquet, rows in any order) -> a validated store."""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from mediafm.fusion import MODALITIES, fuse, unit_norm
from mediafm.store.format import PART_ROWS, SHOT_EXTRAS, StoreError, vector_array
from mediafm.store.reader import ShotStore
from mediafm.store.validate import (
    TIME_COLUMNS,
    check_not_null,
    check_shot_indices,
    check_times,
    list_column,
    numeric_column,
    read_titles,
)
from mediafm.store.writer import StoreWriter, store_writer

PathLike = str | os.PathLike


def import_shots(shots: PathLike | Sequence[PathLike], out: PathLike,
                 titles: PathLike | None = None, *, part_rows: int = PART_ROWS,
                 bucket_rows: int = 1 << 18, encoders: dict | None = None,
                 fused_modalities: tuple[str, ...] = MODALITIES,
                 progress: bool = True) -> ShotStore:
    """Build a store at ``out`` from SHOTS Parquet file(s) (and optionally TITLES).

    Rows may come in any order, across any number of files. The input is hash-partitioned by
    title into buckets of about ``bucket_rows`` rows on local disk, so memory stays bounded by
    a bucket, not the corpus. The store appears atomically (see ``store_writer``): a failed
    import leaves no store behind, or the previous one intact. ``fused_modalities``: build the
    fused vector from a subset (the modality ablation); the per-modality columns are all kept.
    """
    from mediafm.progress import progress_bar

    files = [Path(shots)] if isinstance(shots, str | os.PathLike) else [Path(p) for p in shots]
    source = str(files[0]) if len(files) == 1 else f"{files[0].parent}/(SHOTS files)"
    try:
        data = ds.dataset([str(f) for f in files], format="parquet")
        names = data.schema.names
        n_rows = data.count_rows()
    except (OSError, pa.ArrowInvalid) as e:
        raise StoreError(f"{source}: cannot read as Parquet: {e}") from e
    missing = [c for c in ("title_id", "shot_index", *TIME_COLUMNS) if c not in names]
    if missing:
        raise StoreError(f"{source}: missing required column(s) {missing}")
    if all(m in names for m in MODALITIES):
        modalities: tuple[str, ...] = MODALITIES
    elif "fused" in names:
        modalities = ()
    else:
        raise StoreError(f"{source}: needs columns video, audio, text (text may be null) "
                         f"or a single fused column; found {names}")
    if not fused_modalities or set(fused_modalities) - set(MODALITIES):
        raise StoreError(f"fused_modalities must be a non-empty subset of {MODALITIES}, got "
                         f"{list(fused_modalities)}")
    if not modalities and tuple(fused_modalities) != MODALITIES:
        raise StoreError(f"{source}: has only a fused column; cannot fuse a subset of "
                         "modalities")
    if n_rows == 0:
        raise StoreError(f"{source}: no shots (empty input)")
    fused_modalities = tuple(m for m in MODALITIES if m in fused_modalities)

    title_frame, title_emb, title_dim = (None, None, 0)
    if titles is not None:
        title_frame, title_emb, title_dim = read_titles(titles)
    known = None if title_frame is None else set(title_frame["title_id"])

    read_cols = ["title_id", "shot_index", *TIME_COLUMNS, *(modalities or ("fused",))]
    if not modalities and "has_text" in names:
        read_cols.append("has_text")
    for name, typ in SHOT_EXTRAS.items():  # timed text, frames, transitions: passed through
        if name in names:
            got = data.schema.field(name).type
            if not (got == typ or (pa.types.is_integer(typ) and pa.types.is_integer(got))
                    or pa.types.is_null(got)):
                raise StoreError(f"{source}: column {name!r} must be {typ}, got {got}")
            read_cols.append(name)
    with store_writer(out, part_rows) as writer:
        dims: dict[str, int | None] = {m: None for m in (*modalities, "fused")}
        bar = progress_bar(total=n_rows, desc="import", unit="shot", disable=not progress)
        for bucket in _bucketize(data, read_cols, writer.root / "buckets", bucket_rows,
                                 n_rows, source):
            table = bucket()
            _import_bucket(table, source, modalities, dims, known, writer, fused_modalities)
            bar.update(table.num_rows)
        bar.close()
        shutil.rmtree(writer.root / "buckets", ignore_errors=True)
        writer.finish({**{k: int(v) for k, v in dims.items()}, "metadata": title_dim},
                      modalities, fused_modalities if modalities else (), encoders,
                      title_frame, title_emb)
    return ShotStore(out)


def _bucketize(data: ds.Dataset, columns: list[str], bucket_dir: Path, bucket_rows: int,
               n_rows: int, source: str) -> list[Callable[[], pa.Table]]:
    """Split the input by hash(title_id) into buckets; return loaders, one per bucket.

    With a single bucket the input is read directly (no copy). Each row keeps its input row
    number in ``_row`` for error messages.
    """
    def numbered(t: pa.Table, offset: int) -> pa.Table:
        return t.append_column("_row", pa.array(np.arange(offset, offset + t.num_rows)))

    n_buckets = max(1, math.ceil(n_rows / bucket_rows))
    if n_buckets == 1:
        def whole() -> pa.Table:
            try:
                return numbered(data.to_table(columns=columns), 0)
            except (OSError, pa.ArrowInvalid) as e:
                raise StoreError(f"{source}: cannot read as Parquet: {e}") from e
        return [whole]
    bucket_dir.mkdir()
    writers: dict[int, pq.ParquetWriter] = {}
    offset = 0
    for batch in data.to_batches(columns=columns, batch_size=65536):
        t = numbered(pa.Table.from_batches([batch]), offset)
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
                   dims: dict[str, int | None], known: set[str] | None, writer: StoreWriter,
                   fused_modalities: tuple[str, ...]) -> None:
    """Validate, sort, fuse and write the titles of one bucket (each title is whole in it)."""
    check_not_null(table, ("title_id", "shot_index", *TIME_COLUMNS), source)
    title = table["title_id"].to_numpy(zero_copy_only=False).astype(str)
    shot = numeric_column(table, "shot_index", source, np.int64)
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
    starts = check_shot_indices(title, shot, rows, source)
    start_s = numeric_column(table, "start_s", source, np.float64)
    end_s = numeric_column(table, "end_s", source, np.float64)
    check_times(start_s, end_s, title, shot, rows, source)

    columns: dict[str, pa.Array] = {
        "title_id": pa.array(title, pa.string()), "shot_index": pa.array(shot, pa.int32()),
        "start_s": pa.array(start_s), "end_s": pa.array(end_s)}
    if modalities:
        vecs = {}
        for m in modalities:
            vecs[m], valid, dims[m] = list_column(table, m, source, m == "text", dims[m])
        has_text = valid
        fused = fuse(vecs["video"], vecs["audio"], vecs["text"], has_text, fused_modalities)
        for m in modalities:
            columns[m] = vector_array(vecs[m])
        columns["has_text"] = pa.array(has_text)
    else:
        raw, _, dims["fused"] = list_column(table, "fused", source, False, dims["fused"])
        zero = ~raw.any(axis=1)
        if zero.any():
            i = int(np.argmax(zero))
            raise StoreError(f"{source} row {rows[i]} (title {str(title[i])!r}): fused is all "
                             "zeros")
        fused = unit_norm(raw)
        columns["has_text"] = (table["has_text"].combine_chunks()
                               if "has_text" in table.column_names
                               else pa.nulls(len(title), pa.bool_()))
    for name, typ in SHOT_EXTRAS.items():
        if name in table.column_names:
            columns[name] = table[name].combine_chunks().cast(typ)
    norms = np.linalg.norm(fused, axis=1)
    if (norms < 0.5).any():
        i = int(np.argmax(norms < 0.5))
        raise StoreError(f"{source} row {rows[i]} (title {str(title[i])!r}, shot {shot[i]}): every "
                         "modality is all zeros, so the shot has no fused vector")
    dims["fused"] = fused.shape[1]
    columns["fused"] = vector_array(fused)
    out = pa.table(columns)
    ends = np.r_[starts[1:], len(title)]
    for lo, hi in zip(starts, ends, strict=True):
        writer.add_table(str(title[lo]), out.slice(lo, hi - lo))
