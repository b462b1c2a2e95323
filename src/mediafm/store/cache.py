"""``mediafm cache``: the fused column of every part as uncompressed Arrow IPC.

Costs one more copy of the fused vectors on disk; buys a training loader that copies windows
straight out of the page cache (~10x the Parquet rate; see ``rows.CachedRows``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

from mediafm.atomic import atomic_dir, locked
from mediafm.store.format import FUSED_CACHE
from mediafm.store.reader import ShotStore
from mediafm.store.rows import cache_name


def write_fused_cache(path: str | os.PathLike, progress: bool = True) -> Path:
    """Write ``STORE/cache/fused`` (one part in memory at a time) and swap it in when whole.

    ``manifest.json`` records each part's Parquet byte size, so a store edited afterwards is
    detected and its cache ignored (``rows.valid_fused_cache``).
    """
    from mediafm.progress import progress_bar

    store = ShotStore(path)
    final = store.path / FUSED_CACHE
    final.parent.mkdir(exist_ok=True)
    with locked(store.path), atomic_dir(final) as tmp:
        parts = {}
        for part in progress_bar(store.parts(), desc="cache", unit="part", disable=not progress):
            table = store._read_part(part, ["fused"]).combine_chunks()
            with pa.OSFile(str(tmp / cache_name(part)), "wb") as f, \
                    pa.ipc.new_file(f, table.schema) as writer:
                writer.write_table(table, max_chunksize=max(table.num_rows, 1))
            parts[part] = {"rows": table.num_rows,
                           "parquet_bytes": (store.path / "shots" / part).stat().st_size}
        (tmp / "manifest.json").write_text(json.dumps({"parts": parts}, indent=1))
    return final
