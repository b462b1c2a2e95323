"""``mediafm thumbs``: a thumbnail for every shot of an ingested store, from its source media."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mediafm.store import ShotStore
from mediafm.store.thumbs import write_thumbs


def add_thumbs(store: str | os.PathLike | ShotStore, progress: bool = True,
               width: int = 192, media_root: str | os.PathLike | None = None) -> Path:
    """Decode each title's middle frames from its recorded media; write STORE/thumbs."""
    from mediafm.ingest.media import frames_at
    from mediafm.progress import progress_bar

    store = store if isinstance(store, ShotStore) else ShotStore(store, media_root=media_root)
    ids = store.titles["title_id"].tolist()
    media = {t: store.media(t) for t in ids}
    if not any(media.values()):
        raise ValueError(f"{store.path}: no recorded media (ingest.json); stores built by "
                         "`mediafm import` have no source video to take thumbnails from")
    out = []
    for title_id in progress_bar(ids, desc="thumbs", unit="title", disable=not progress):
        if media[title_id] is None:
            continue
        start, end = store.times(title_id)
        mid = (start + end) / 2
        _, jpegs = frames_at(media[title_id], mid, thumbs=np.ones(len(mid), bool),
                             thumb_width=width)
        out.append((title_id, jpegs))
    return write_thumbs(store, out)
