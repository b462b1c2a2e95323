"""Staging: each finished title written whole, atomically, beside the store (resumable ingest).

``.STORE.ingest/<key>.parquet`` holds a title's SHOTS rows (the import schema, plus the shot's
subtitle text); ``<key>.json`` its record (duration, dims, title embedding, synopsis, tags).
The parquet is renamed into place first and the json last, so the json marks a complete title:
an interrupted run loses nothing finished, and a rerun skips what is staged.

``settings.json`` holds the settings the staged titles were made with (``check_settings``): a
rerun with other encoders, detector or decoding would otherwise mix titles made two ways in
one store, so it stops with the differences named, or starts over with ``restage``.
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


class SettingsMismatch(ValueError):
    """Titles staged with other settings than this run's (the message names the differences)."""


class Staging:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    def staged(self) -> list[Path]:
        """The record files of every staged title."""
        return [p for p in self.root.glob("*.json") if p != self.settings_path]

    def check_settings(self, settings: dict, restage: bool = False) -> None:
        """Record ``settings`` for this staging, or check them against the recorded ones.

        Raises SettingsMismatch when titles are staged under other settings, unless
        ``restage``: then the staged titles are deleted and made again under these. Titles
        staged before settings were recorded are taken as made with these settings."""
        new = json.loads(json.dumps(settings))  # the same JSON types as the recorded ones
        if self.settings_path.is_file():
            old = json.loads(self.settings_path.read_text())
            diff = {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys())
                    if old.get(k) != new.get(k)}
            if not diff:
                return
            staged = self.staged()
            if staged and not restage:
                named = "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in diff.items())
                raise SettingsMismatch(
                    f"{self.root}: {len(staged)} title(s) are staged with other settings "
                    f"({named}). Rerun with the settings they were made with to resume, or "
                    "pass --restage to ingest them again with these")
            for record in staged:
                record.unlink()  # the record first: without it the title is not staged
                record.with_suffix(".parquet").unlink(missing_ok=True)
        write_text(self.settings_path, json.dumps(new, indent=1, sort_keys=True))

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
