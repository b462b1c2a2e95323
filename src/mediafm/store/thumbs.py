"""Shot thumbnails and source media of an ingested store, for people to look at.

``STORE/thumbs/part-NNNNN.parquet`` (``title_id``, ``shot_index``, ``jpeg``): one small JPEG a
shot (its middle frame, at most 192 px wide), in the same parts and order as the shots, written
whole (atomically) by ``mediafm ingest`` or ``mediafm thumbs``. ``STORE/ingest.json`` records
each title's source media (an absolute path) and what it was made from. Stores built by
``import`` have neither. Readers go through ``ShotStore.thumbnail`` and ``ShotStore.media``.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.atomic import atomic_dir, locked, write_text
from mediafm.errors import StoreError

THUMBS = "thumbs"
MEDIA = "ingest.json"


def write_thumbs(store, thumbs: Iterable[tuple[str, list[bytes | None]]]) -> Path:
    """Write STORE/thumbs from (title_id, one JPEG or None per shot) pairs, in any order."""
    by_title = dict(thumbs)
    final = store.path / THUMBS
    with locked(store.path), atomic_dir(final) as tmp:
        for part, titles in store._by_part(None):
            ids, shots, jpegs = [], [], []
            for title_id, _, n in titles:
                got = by_title.get(title_id) or [None] * n
                if len(got) != n:
                    raise ValueError(f"title {title_id!r}: {len(got)} thumbnails for {n} shots")
                ids += [title_id] * n
                shots += list(range(n))
                jpegs += got
            pq.write_table(pa.table({"title_id": pa.array(ids, pa.string()),
                                     "shot_index": pa.array(shots, pa.int32()),
                                     "jpeg": pa.array(jpegs, pa.binary())}), tmp / part)
    return final


class Thumbs:
    """Thumbnail lookup by (part, row), one part file decoded at a time (LRU of a few)."""

    def __init__(self, store_path: Path, parts_in_memory: int = 4):
        self.root, self.size = store_path / THUMBS, parts_in_memory
        self.cache: OrderedDict[str, pa.ChunkedArray] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, part: str, row: int) -> bytes | None:
        if not self.root.is_dir():
            return None
        with self.lock:
            column = self.cache.pop(part, None)
            if column is None:
                path = self.root / part
                try:
                    column = pq.read_table(path, columns=["jpeg"])["jpeg"]
                except (OSError, pa.ArrowException) as e:
                    raise StoreError(f"{path}: damaged thumbnails ({e}); rerun "
                                     "`mediafm thumbs`") from None
            self.cache[part] = column  # most recent last
            while len(self.cache) > self.size:
                self.cache.popitem(last=False)
        if row >= len(column):
            raise StoreError(f"{self.root / part}: damaged thumbnails (no row {row}); rerun "
                             "`mediafm thumbs`")
        return column[row].as_py()


def write_media_records(store: str | os.PathLike, titles: list[dict], settings: dict) -> Path:
    """STORE/ingest.json: ``titles``, one record a title (``title_id``, ``video``: the source
    media's absolute path, its identity, ...), and the ingest ``settings`` they were made with."""
    return write_text(Path(store) / MEDIA,
                      json.dumps({"titles": titles, "settings": settings}, indent=1))


def read_media_records(store: str | os.PathLike) -> tuple[list[dict], dict | None]:
    """(title records, settings) of STORE/ingest.json; ([], None) for an imported store.
    mediafm 0.2 wrote a bare list of records, without settings."""
    path = Path(store) / MEDIA
    if not path.is_file():
        return [], None
    try:
        data = json.loads(path.read_text())
        if isinstance(data, list):
            return data, None
        return list(data["titles"]), data.get("settings")
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise StoreError(f"{path}: damaged media records ({e})") from None


def media_records(store: str | os.PathLike) -> dict[str, str]:
    """title_id -> the source media ingest recorded ({} for imported stores)."""
    try:
        return {r["title_id"]: r["video"] for r in read_media_records(store)[0]}
    except (KeyError, TypeError) as e:
        raise StoreError(f"{Path(store) / MEDIA}: damaged media records ({e})") from None


def reroot(path: Path, records: dict[str, str], root: Path | None) -> Path | None:
    """Where a recorded media file is now.

    Without ``root``: the recorded absolute path (None for a relative one, which stores
    written by mediafm 0.2 hold: relative to a directory nobody recorded, so it could name
    another file). With ``root`` (the store and its media moved): the path below the folder
    that holds every recorded file, under ``root`` (a relative record: under ``root`` as is).
    """
    if root is None:
        return path if path.is_absolute() else None
    if not path.is_absolute():
        return root / path
    parents = [str(Path(p).parent) for p in records.values() if Path(p).is_absolute()]
    base = Path(os.path.commonpath(parents)) if parents else path.parent
    return root / path.relative_to(base)
