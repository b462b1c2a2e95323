"""A staged title: one finished title, written whole beside the store (``jobs.Staging``).

``.STORE.ingest/<key>.parquet`` holds the title's SHOTS rows (the import schema, plus each
shot's subtitle text and thumbnail); ``<key>.json`` its record (duration, dims, title
embedding, synopsis, tags, the encoders, the media's identity), written last.

The key is the title id and the identity of everything the title is made from (``identity``:
the media file's size, modification time and a digest of its first and last MiB, the
subtitle files', the synopsis and tags): a file replaced or re-encoded under the same title id
is ingested again, never taken from a stale staging or store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mediafm.atomic import atomic_file
from mediafm.ingest.manifest import TitleJob
from mediafm.jobs import Staging

EDGE = 1 << 20  # bytes hashed at each end of a media file


def file_identity(path: str | os.PathLike) -> str:
    """A digest of a file's size, modification time and first and last MiB: cheap on a
    multi-GB file, and different for a file replaced or re-encoded in place."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return "missing"  # ingest reports the missing file itself
    h = hashlib.blake2b(f"{st.st_size}:{st.st_mtime_ns}".encode(), digest_size=12)
    with path.open("rb") as f:
        h.update(f.read(EDGE))
        if st.st_size > EDGE:
            f.seek(max(EDGE, st.st_size - EDGE))
            h.update(f.read(EDGE))
    return h.hexdigest()


def identity(job: TitleJob) -> str:
    """The identity of everything a title is made from (see the module docstring)."""
    parts = [job.title_id, file_identity(job.video),
             *(file_identity(s) for s in job.subtitles), job.synopsis or "", *job.tags]
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=12).hexdigest()


def title_key(job: TitleJob, ident: str | None = None) -> str:
    """The staging key of a title as it is now: its id and identity."""
    return f"{Staging.name(job.title_id)}-{ident or identity(job)}"


def title_prefix(title_id: str) -> str:
    """What every staging key of a title starts with, whatever its identity."""
    return f"{Staging.name(title_id)}-"


def stage_title(staging: Staging, key: str, frame: pd.DataFrame, record: dict) -> None:
    """Write one finished title: its shots first, then the record that marks it complete."""
    dims = record["dims"]
    # fixed-size lists: the dims stay known even when no shot of the title has text
    schema = pa.schema([("title_id", pa.string()), ("shot_index", pa.int32()),
                        ("start_s", pa.float64()), ("end_s", pa.float64()),
                        *[(m, pa.list_(pa.float32(), dims[m])) for m in ("video", "audio", "text")],
                        ("timed_text", pa.string()), ("first_frame", pa.int64()),
                        ("last_frame", pa.int64()), ("transition", pa.string()),
                        ("transition_frames", pa.int64()), ("thumb", pa.binary())])
    frame = frame.assign(**{c: None for c in schema.names if c not in frame})  # audio-only
    with atomic_file(staging.path(key, ".parquet")) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), tmp)
    staging.finish(key, record)


def shots_path(staging: Staging, key: str) -> Path:
    return staging.path(key, ".parquet")
