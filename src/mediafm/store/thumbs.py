"""Shot thumbnails and source media of an ingested store, for people to look at.

``STORE/thumbs/part-NNNNN.parquet`` (``title_id``, ``shot_index``, ``jpeg``): one small JPEG a
shot (its middle frame, at most 192 px wide), in the same parts and order as the shots, written
whole (atomically) by ``mediafm ingest`` or ``mediafm thumbs``. ``STORE/ingest.json`` records
each title's source media. Stores built by ``import`` have neither.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.atomic import atomic_dir, locked
from mediafm.store.reader import ShotStore

THUMBS = "thumbs"


def write_thumbs(store: ShotStore, thumbs: Iterable[tuple[str, list[bytes | None]]]) -> Path:
    """Write STORE/thumbs from (title_id, one JPEG or None per shot) pairs, in any order."""
    by_title = dict(thumbs)
    final = store.path / THUMBS
    with locked(store.path), atomic_dir(final) as tmp:
        for part, group in store.titles.groupby("part", sort=True):
            ids, shots, jpegs = [], [], []
            for row in group.sort_values("row_offset").itertuples():
                got = by_title.get(row.title_id) or [None] * row.n_shots
                if len(got) != row.n_shots:
                    raise ValueError(f"title {row.title_id!r}: {len(got)} thumbnails for "
                                     f"{row.n_shots} shots")
                ids += [row.title_id] * row.n_shots
                shots += list(range(row.n_shots))
                jpegs += got
            pq.write_table(pa.table({"title_id": pa.array(ids, pa.string()),
                                     "shot_index": pa.array(shots, pa.int32()),
                                     "jpeg": pa.array(jpegs, pa.binary())}), tmp / part)
    return final


def media_paths(store: ShotStore) -> dict[str, str]:
    """title_id -> the source media file ingest recorded ({} for imported stores)."""
    path = store.path / "ingest.json"
    if not path.is_file():
        return {}
    return {job["title_id"]: job["video"] for job in json.loads(path.read_text())}


class Thumbs:
    """Thumbnail lookup, one part file decoded at a time (LRU of a few parts)."""

    def __init__(self, store: ShotStore, parts_in_memory: int = 4):
        self.store, self.size = store, parts_in_memory
        self.root = store.path / THUMBS
        self.available = self.root.is_dir()
        self.cache: dict[str, pa.Table] = {}
        self.lock = threading.Lock()

    def get(self, title_id: str, shot: int) -> bytes | None:
        if not self.available:
            return None
        row = self.store.titles.iloc[self.store.title_row(title_id)]
        if not 0 <= shot < row.n_shots:
            return None
        with self.lock:
            table = self.cache.pop(row.part, None)
            if table is None:
                table = pq.read_table(self.root / row.part, columns=["jpeg"])
            self.cache[row.part] = table  # most recent last
            while len(self.cache) > self.size:
                self.cache.pop(next(iter(self.cache)))
        return table["jpeg"][int(row.row_offset) + shot].as_py()


def has_thumbs(store: ShotStore) -> bool:
    return (store.path / THUMBS).is_dir()


def add_thumbs(store: str | os.PathLike, progress: bool = True, width: int = 192) -> Path:
    """``mediafm thumbs``: decode each title's middle frames from its recorded media."""
    import numpy as np

    from mediafm.ingest.media import frames_at
    from mediafm.progress import progress_bar

    store = store if isinstance(store, ShotStore) else ShotStore(store)
    media = media_paths(store)
    if not media:
        raise ValueError(f"{store.path}: no recorded media (ingest.json); stores built by "
                         "`mediafm import` have no source video to take thumbnails from")
    out = []
    for title_id in progress_bar(store.titles["title_id"].tolist(), desc="thumbs",
                                 unit="title", disable=not progress):
        if title_id not in media:
            continue
        row = store.titles.iloc[store.title_row(title_id)]
        t = store.read_part(row.part, ["start_s", "end_s"]).slice(int(row.row_offset),
                                                                  int(row.n_shots))
        mid = (t["start_s"].to_numpy() + t["end_s"].to_numpy()) / 2
        _, jpegs = frames_at(media[title_id], mid, thumbs=np.ones(len(mid), bool),
                             thumb_width=width)
        out.append((title_id, jpegs))
    return write_thumbs(store, out)
