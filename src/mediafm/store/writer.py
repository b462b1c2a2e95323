"""Writing a store: whole titles into part files, the title table, store.json — atomically.

``import``, ``ingest`` (through import) and the synthetic stores all write through this one
writer, so every store has the same layout and appears all at once::

    with store_writer("STORE") as w:
        w.add_title("film-1", start_s, end_s, fused)       # (n,), (n,), (n, dim), in shot order
        ...
        w.finish(encoders={...})

Titles stream through: memory is one part file's rows, whatever the store's size.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.atomic import atomic_dir, locked
from mediafm.store.format import (
    PART_ROWS,
    ROW_GROUP,
    StoreError,
    StoreInfo,
    column_digest,
    vector_array,
)


class StoreWriter:
    """Accumulates titles into ``root`` (a temporary directory; see ``store_writer``)."""

    def __init__(self, root: Path, part_rows: int = PART_ROWS):
        self.root, self.part_rows = root, part_rows
        (root / "shots").mkdir()
        self.pending: list[pa.Table] = []
        self.rows = 0
        self.n_parts = 0
        self.n_shots = 0
        self.locations: dict[str, tuple[str, int, int]] = {}  # title -> (part, offset, n)
        self.digests: dict[str, bytes] = {}  # title -> digest of its shots (the fingerprint)
        self.finished = False

    def add_table(self, title_id: str, table: pa.Table) -> None:
        """Add one whole title: a table of the store's shot columns, rows in shot order."""
        if title_id in self.locations:
            raise StoreError(f"title {title_id!r} added twice")
        if self.rows and self.rows + table.num_rows > self.part_rows:
            self._flush()
        self.locations[title_id] = (self._name(), self.rows, table.num_rows)
        h = hashlib.blake2b(title_id.encode(), digest_size=16)
        for name in sorted(table.column_names):
            if name != "title_id":  # one title a table: its id is hashed once, above
                column_digest(h, name, table[name])
        self.digests[title_id] = h.digest()
        self.pending.append(table)
        self.rows += table.num_rows
        self.n_shots += table.num_rows

    def add_title(self, title_id: str, start_s: np.ndarray, end_s: np.ndarray,
                  fused: np.ndarray, has_text: np.ndarray | None = None,
                  modalities: dict[str, np.ndarray] | None = None) -> None:
        """Add one whole title from arrays: times (n,), fused (n, dim) unit-normed vectors,
        optionally has_text (n,) and the per-modality vectors (n, dim_m)."""
        n = len(fused)
        cols = {"title_id": pa.array([title_id] * n, pa.string()),
                "shot_index": pa.array(np.arange(n), pa.int32()),
                "start_s": pa.array(np.asarray(start_s, np.float64)),
                "end_s": pa.array(np.asarray(end_s, np.float64))}
        for m, x in (modalities or {}).items():
            cols[m] = vector_array(np.asarray(x, np.float32))
        cols["has_text"] = (pa.nulls(n, pa.bool_()) if has_text is None
                            else pa.array(np.asarray(has_text, bool)))
        cols["fused"] = vector_array(np.asarray(fused, np.float32))
        self.add_table(title_id, pa.table(cols))

    def _name(self) -> str:
        return f"part-{self.n_parts:05d}.parquet"

    def _flush(self) -> None:
        if not self.pending:
            return
        pq.write_table(pa.concat_tables(self.pending), self.root / "shots" / self._name(),
                       row_group_size=ROW_GROUP)
        self.pending, self.rows = [], 0
        self.n_parts += 1

    def finish(self, dims: dict[str, int], modalities: tuple[str, ...] = (),
               fused_modalities: tuple[str, ...] = (), encoders: dict | None = None,
               titles: pd.DataFrame | None = None, title_emb: np.ndarray | None = None
               ) -> StoreInfo:
        """Write the last part, titles.parquet and store.json.

        ``titles``: optional rows (title_id, synopsis, tags, has_audio, has_video) and
        ``title_emb`` the matching (rows, dims["metadata"]) title embeddings; titles without a
        row get nulls / zeros.
        """
        if not self.locations:
            raise StoreError("no titles to write")
        self._flush()
        table = self._write_titles(titles, title_emb, dims.get("metadata", 0))
        info = StoreInfo(dims={**dims, "metadata": dims.get("metadata", 0)},
                         modalities=tuple(modalities), n_titles=len(self.locations),
                         n_shots=self.n_shots, encoders=encoders or {},
                         fused_modalities=tuple(fused_modalities),
                         fingerprint=self._fingerprint(table, fused_modalities))
        (self.root / "store.json").write_text(json.dumps(info.to_json(), indent=2))
        self.finished = True
        return info

    def _fingerprint(self, titles: pa.Table, fused_modalities: tuple[str, ...]) -> str:
        """A digest of the content: every title's shots and title row, in title-id order (the
        same store re-imported from rows in another order, or in other parts, gets the same)."""
        order = np.argsort(titles["title_id"].to_numpy(zero_copy_only=False).astype(str),
                           kind="stable")
        titles = titles.take(pa.array(order))
        h = hashlib.blake2b(",".join(fused_modalities).encode(), digest_size=16)
        for name in sorted(set(titles.column_names) - {"part", "row_offset"}):
            column_digest(h, name, titles[name])
        for t in titles["title_id"].to_pylist():
            h.update(self.digests[t])
        return h.hexdigest()

    def _write_titles(self, frame: pd.DataFrame | None, emb: np.ndarray | None,
                      dim: int) -> pa.Table:
        ids = list(self.locations)
        rows = {t: i for i, t in enumerate(frame["title_id"])} if frame is not None else {}
        idx = [rows.get(t) for t in ids]
        cols = {
            "title_id": pa.array(ids, pa.string()),
            "n_shots": pa.array([self.locations[t][2] for t in ids], pa.int32()),
            "part": pa.array([self.locations[t][0] for t in ids], pa.string()),
            "row_offset": pa.array([self.locations[t][1] for t in ids], pa.int64()),
        }
        if emb is not None and dim:
            zero = np.zeros(dim, np.float32)
            cols["metadata"] = vector_array(np.stack([emb[i] if i is not None else zero
                                                      for i in idx]))
        else:
            cols["metadata"] = pa.nulls(len(ids), pa.list_(pa.float32(), max(dim, 1)))
        for c, typ in (("synopsis", pa.string()), ("tags", pa.list_(pa.string())),
                       ("has_audio", pa.bool_()), ("has_video", pa.bool_()),
                       ("frame_rate", pa.string())):
            vals = [frame[c].iloc[i] if frame is not None and c in frame and i is not None
                    else None for i in idx]
            cols[c] = pa.array([None if v is None or (isinstance(v, float) and math.isnan(v))
                                else (list(v) if c == "tags" else v) for v in vals], typ)
        table = pa.table(cols)
        pq.write_table(table, self.root / "titles.parquet")
        return table


@contextmanager
def store_writer(out: str | os.PathLike, part_rows: int = PART_ROWS) -> Iterator[StoreWriter]:
    """A ``StoreWriter`` whose store replaces ``out`` only when the block ends after
    ``finish()``; on an error nothing is left behind and a previous store stays intact.
    Refuses to replace a non-empty directory that is not a store."""
    out = Path(out)
    if out.exists() and not (out / "store.json").is_file() and any(out.iterdir()):
        raise StoreError(f"{out}: exists and is not a mediafm store; refusing to overwrite")
    with locked(out), atomic_dir(out) as tmp:
        writer = StoreWriter(tmp, part_rows)
        yield writer
        if not writer.finished:
            raise StoreError(f"{out}: store writer closed without finish()")

