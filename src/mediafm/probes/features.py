"""Clip features for every method the suite compares, all pooled the same way (shot mean).

Baselines read the store: one modality alone (the "single-encoder" baselines), or the fused
vector (three modalities concatenated, no context). MediaFM methods embed the clip's shots
clip-only or in context (hidden state, and the output projection as an ablation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mediafm.store import ShotStore

BASELINES = {"video only": "video", "audio only": "audio", "text only": "text",
             "fused, no context": "fused"}
MEDIAFM = {"MediaFM clip-only": ("clip-only", "hidden"),
           "MediaFM in context": ("in-context", "hidden"),
           "MediaFM in context (output proj.)": ("in-context", "output")}


def pooled_store_features(store: ShotStore, clips: pd.DataFrame, column: str) -> np.ndarray:
    """(n_clips, dim): mean of a store column over each clip's shots.

    For ``text`` the mean runs over shots that have text only (zeros when none has): a clip's
    dialogue, not diluted by its silent shots.
    """
    out = np.zeros((len(clips), store.dims[column]), dtype=np.float32)
    rows_by_title = {t: g for t, g in clips.reset_index(drop=True).groupby("title_id")}
    for title_id, vectors in store.iter_titles(column, list(rows_by_title)):
        for row in rows_by_title[title_id].itertuples():
            seg = vectors[row.first_shot:row.last_shot + 1]
            if column == "text":  # the store holds zeros where a shot has no text
                seg = seg[seg.any(axis=1)]
            if len(seg):
                out[row.Index] = seg.mean(axis=0)
    return out


def method_features(store: ShotStore, clips: pd.DataFrame, model=None, baselines: bool = True,
                    progress: bool = False) -> dict[str, np.ndarray]:
    """Features of every available method: baselines from the store, MediaFM if a model."""
    from mediafm.embed import embed_clips

    feats = {name: pooled_store_features(store, clips, col) for name, col in BASELINES.items()
             if baselines and (col == "fused" or col in store.info.modalities)}
    if model is not None:
        for name, (mode, output) in MEDIAFM.items():
            frame = embed_clips(model, store, clips, mode, output, progress=progress)
            feats[name] = np.stack(frame["embedding"].to_list())
    return feats


def precomputed_features(path: str, clips: pd.DataFrame) -> np.ndarray:
    """Clip features from a Parquet file of clip embeddings (clip_id, embedding) or shot
    embeddings (title_id, shot_index, embedding), pooled over each clip's shots."""
    frame = pd.read_parquet(path)
    if "clip_id" in frame.columns:
        by_id = dict(zip(frame["clip_id"], frame["embedding"], strict=True))
        missing = [c for c in clips["clip_id"] if c not in by_id]
        if missing:
            raise ValueError(f"{path}: no embedding for clip {missing[0]!r}")
        return np.stack([np.asarray(by_id[c], np.float32) for c in clips["clip_id"]])
    if not {"title_id", "shot_index", "embedding"} <= set(frame.columns):
        raise ValueError(f"{path}: needs clip_id, embedding or title_id, shot_index, embedding")
    index = {(t, int(s)): i for i, (t, s) in enumerate(zip(frame["title_id"],
                                                          frame["shot_index"], strict=True))}
    emb = np.stack(frame["embedding"].to_list()).astype(np.float32)
    out = np.zeros((len(clips), emb.shape[1]), np.float32)
    for k, row in enumerate(clips.itertuples()):
        idx = [index.get((row.title_id, s)) for s in range(row.first_shot, row.last_shot + 1)]
        if None in idx:
            raise ValueError(f"{path}: clip {row.clip_id!r} needs shots of {row.title_id!r} "
                             "that the file does not have")
        out[k] = emb[idx].mean(axis=0)
    return out
