"""Staging: each finished title written whole, atomically, beside the store (resumable ingest).

``.STORE.ingest/<key>.parquet`` holds a title's SHOTS rows (the import schema, plus the shot's
subtitle text); ``<key>.json`` its record (duration, dims, title embedding, synopsis, tags).
The parquet is renamed into place first and the json last, so the json marks a complete title:
an interrupted run loses nothing finished, and a rerun skips what is staged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.atomic import atomic_file, write_text


def staging_dir(store: Path) -> Path:
    """Where the titles of the store at ``store`` are staged."""
    return store.parent / f".{store.name}.ingest"


class Staging:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(title_id: str) -> str:
        """A file name for any title id: readable prefix + hash (ids may hold any character)."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in title_id)[:40]
        return f"{safe}-{hashlib.sha1(title_id.encode()).hexdigest()[:10]}"

    def shots_path(self, title_id: str) -> Path:
        return self.root / f"{self.key(title_id)}.parquet"

    def record_path(self, title_id: str) -> Path:
        return self.root / f"{self.key(title_id)}.json"

    def is_staged(self, title_id: str) -> bool:
        return self.record_path(title_id).is_file() and self.shots_path(title_id).is_file()

    def stage(self, frame: pd.DataFrame, record: dict) -> None:
        """Write one finished title: parquet first, then the json that marks it complete."""
        title_id, dims = record["title_id"], record["dims"]
        # fixed-size lists: the dims stay known even when no shot of the title has text
        schema = pa.schema([("title_id", pa.string()), ("shot_index", pa.int32()),
                            ("start_s", pa.float64()), ("end_s", pa.float64()),
                            *[(m, pa.list_(pa.float32(), dims[m]))
                              for m in ("video", "audio", "text")],
                            ("subtitle_text", pa.string()), ("thumb", pa.binary())])
        with atomic_file(self.shots_path(title_id)) as tmp:
            pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), tmp)
        write_text(self.record_path(title_id), json.dumps(record))

    def record(self, title_id: str) -> dict:
        return json.loads(self.record_path(title_id).read_text())
