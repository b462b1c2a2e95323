"""Clip features for every method the suite compares, all pooled the same way (shot mean).

Baselines read the store:

- one modality alone (the "single-encoder" baselines), and the fused vector (three modalities
  concatenated, no context), probed with per-modality block weights;
- the naive context baselines a model must beat to show it reads context: the fused vector
  averaged over +-k neighbouring shots (k chosen by inner CV, like the regularisation), and
  the whole-title mean of the fused vector;
- the same with the clip's place in its title beside them (``position_features``, what the
  title clock gives the model): where a clip sits is metadata every catalog has (the shot's
  start over the title's length), and a label that follows the story arc (a climax) can be
  read from it without any context. A model fed the clock must beat this one, not the others;
- the fused vector with how far it is from the previous shot's (``shot_change``: the cosine
  distance of the whole vector and of each modality's block): a scene boundary is a change
  between two shots, which no linear probe can compute from pooled vectors; this distance is
  the cut detector's own signal, and on low-noise catalogs it finds scene starts alone
  (measured: boundary AP 0.978 on the families' draw 0, where every other naive baseline is
  near the chance AP of 0.073);
- the moving average and title mean with the title embedding (synopsis, tags: the [GLOBAL]
  token's input) beside them: a model that reads the metadata must beat a probe that reads it
  directly (measured: it raises genre on the clean catalog, seed 0, from 0.574 to 0.591).

MediaFM methods embed the clip's shots clip-only or in context, through a readout
(``embed.READOUTS``), and in context with the whole title beside the clip (``embed.title_part``:
the title's mean fused vector and mean context); the spec's readout
(the final hidden state) is reported too. The naive counterpart of "+ title" is the moving
average with the title mean beside it; of "+ title + position", the same with the position; of
"+ title + metadata", the same with the title embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from mediafm.changepoints import block_changes, cosine_change
from mediafm.probes.linear import Features
from mediafm.store import ShotStore

MODALITY_BASELINES = {"video only": "video", "audio only": "audio", "text only": "text"}
FUSED = "fused, no context"
MOVING_AVERAGE = "fused, moving average ±k"
TITLE_MEAN = "fused, title mean"
AVERAGE_AND_TITLE = "fused, moving average ±k + title mean"
WITH_POSITION_SUFFIX = " + position"
AVERAGE_TITLE_POSITION = AVERAGE_AND_TITLE + WITH_POSITION_SUFFIX
WITH_METADATA_SUFFIX = " + metadata"
AVERAGE_TITLE_METADATA = AVERAGE_AND_TITLE + WITH_METADATA_SUFFIX
CHANGE = "fused + change from the previous shot"
WINDOWS = (1, 2, 4, 8)  # the +-k grid of the moving-average baseline
BASELINES = (*MODALITY_BASELINES, FUSED, MOVING_AVERAGE, TITLE_MEAN, AVERAGE_AND_TITLE,
             AVERAGE_TITLE_POSITION, AVERAGE_TITLE_METADATA, CHANGE)
CLIP_ONLY, IN_CONTEXT = "MediaFM clip-only", "MediaFM in context"
WITH_TITLE, HIDDEN = "MediaFM in context + title", "MediaFM in context (hidden state)"
WITH_TITLE_POSITION = WITH_TITLE + WITH_POSITION_SUFFIX
WITH_TITLE_METADATA = WITH_TITLE + WITH_METADATA_SUFFIX
CLOCK_FREQUENCIES = 8  # as model.CLOCK_FREQUENCIES (tests hold the two features equal)


def position_features(clock: np.ndarray) -> np.ndarray:
    """(n, 2 * CLOCK_FREQUENCIES) sin / cos of pi * k * clock, k = 1..8, for clock i / (n - 1)
    of shot i of a title of n: its place in the story, smooth, and linear maps of it peak
    anywhere (the model's ``clock_features``, in NumPy so the baselines need no torch)."""
    angles = np.pi * np.asarray(clock, np.float64)[:, None] * np.arange(1, CLOCK_FREQUENCIES + 1)
    return np.hstack([np.sin(angles), np.cos(angles)]).astype(np.float32)


def moving_average(x: np.ndarray, k: int) -> np.ndarray:
    """(n, d): row i is the mean of rows i-k .. i+k of ``x`` (fewer at the title's ends)."""
    c = np.concatenate([np.zeros((1, x.shape[1]), np.float64), np.cumsum(x, axis=0)])
    i = np.arange(len(x))
    lo, hi = np.maximum(i - k, 0), np.minimum(i + k + 1, len(x))
    return ((c[hi] - c[lo]) / (hi - lo)[:, None]).astype(np.float32)


def shot_change(x: np.ndarray, blocks: tuple[int, ...] = ()) -> np.ndarray:
    """(n, 1 + len(blocks)): each shot's cosine distance to the previous shot, over the whole
    vector and over each block of ``blocks`` (a fused vector's modalities)."""
    return np.column_stack([cosine_change(x), block_changes(x, blocks)])


def pooled_store_features(store: ShotStore, clips: pd.DataFrame, column: str,
                          transform: Callable[[np.ndarray], np.ndarray] | None = None,
                          width: int | None = None) -> np.ndarray:
    """(n_clips, dim): mean of a store column (optionally transformed per title, to ``width``
    columns where that changes them) over each clip's shots.

    For ``text`` the mean runs over shots that have text only (zeros when none has): a clip's
    dialogue, not diluted by its silent shots.
    """
    out = np.zeros((len(clips), width or store.dims[column]), dtype=np.float32)
    rows_by_title = {t: g for t, g in clips.reset_index(drop=True).groupby("title_id")}
    for title_id, vectors in store.iter_titles(column, list(rows_by_title)):
        if transform is not None:
            vectors = transform(vectors)
        for row in rows_by_title[title_id].itertuples():
            seg = vectors[row.first_shot:row.last_shot + 1]
            if column == "text":  # the store holds zeros where a shot has no text
                seg = seg[seg.any(axis=1)]
            if len(seg):
                out[row.Index] = seg.mean(axis=0)
    return out


def fused_blocks(store: ShotStore) -> tuple[int, ...]:
    """The fused vector's modality blocks (column counts), or () for a fused-only store."""
    if not store.info.modalities:
        return ()
    return tuple(store.dims[m] for m in store.info.fused_modalities)


def baseline_features(store: ShotStore, clips: pd.DataFrame) -> dict[str, Features]:
    """Every baseline the store allows: single modalities, fused, and the naive context."""
    feats = {name: Features.of(pooled_store_features(store, clips, col))
             for name, col in MODALITY_BASELINES.items() if col in store.info.modalities}
    blocks = fused_blocks(store)
    feats[FUSED] = Features.of(pooled_store_features(store, clips, "fused"), blocks)
    feats[MOVING_AVERAGE] = Features(
        {f"k={k}": pooled_store_features(store, clips, "fused",
                                         lambda x, k=k: moving_average(x, k))
         for k in WINDOWS}, blocks)
    title = pooled_store_features(store, clips, "fused",
                                  lambda x: np.broadcast_to(x.mean(0), x.shape))
    feats[TITLE_MEAN] = Features.of(title, blocks)
    feats[AVERAGE_AND_TITLE] = Features(
        {k: np.hstack([x, title]) for k, x in feats[MOVING_AVERAGE].options.items()},
        blocks * 2)
    feats[AVERAGE_TITLE_POSITION] = with_block(feats[AVERAGE_AND_TITLE],
                                              clip_positions(store, clips))
    if store.dims.get("metadata"):
        feats[AVERAGE_TITLE_METADATA] = with_block(feats[AVERAGE_AND_TITLE],
                                                  clip_metadata(store, clips))
    feats[CHANGE] = change_features(store, clips, feats[FUSED])
    return feats


def change_features(store: ShotStore, clips: pd.DataFrame, fused: Features | None = None
                    ) -> Features:
    """The ``CHANGE`` baseline: [fused ; ``shot_change`` of the fused vectors], pooled over
    each clip's shots (``fused``: the pooled fused features, if already read)."""
    blocks = fused_blocks(store)
    fused = fused or Features.of(pooled_store_features(store, clips, "fused"), blocks)
    change = pooled_store_features(store, clips, "fused", lambda x: shot_change(x, blocks),
                                   width=1 + len(blocks))
    return Features.of(np.hstack([fused.options[""], change]),
                       (*(blocks or (store.dims["fused"],)), change.shape[1]))


def clip_positions(store: ShotStore, clips: pd.DataFrame) -> np.ndarray:
    """(n_clips, 2 * CLOCK_FREQUENCIES): ``position_features`` pooled over each clip's shots
    (from the titles' shot counts: no vectors read)."""
    n_shots = dict(zip(store.titles["title_id"], store.titles["n_shots"], strict=True))
    out = np.zeros((len(clips), 2 * CLOCK_FREQUENCIES), np.float32)
    for k, row in enumerate(clips.itertuples()):
        shots = np.arange(row.first_shot, row.last_shot + 1)
        out[k] = position_features(shots / max(n_shots[row.title_id] - 1, 1)).mean(0)
    return out


def clip_metadata(store: ShotStore, clips: pd.DataFrame) -> np.ndarray:
    """(n_clips, title dim): the title embedding of each clip's title (the [GLOBAL] input)."""
    emb = store.title_embeddings()
    return emb[[store.title_row(t) for t in clips["title_id"]]].astype(np.float32)


def with_block(feats: Features, extra: np.ndarray) -> Features:
    """``feats`` with ``extra`` (the clip's position, its title's metadata) as one more block,
    its weight chosen like the rest: a label it does not explain gets it shrunk away or
    dropped."""
    blocks = feats.blocks or (next(iter(feats.options.values())).shape[1],)
    return Features({k: np.hstack([x, extra]) for k, x in feats.options.items()},
                    (*blocks, extra.shape[1]))


def in_context_features(store: ShotStore, clips: pd.DataFrame, model, readout: str = "",
                        progress: bool = False) -> dict[str, Features]:
    """MediaFM in context and in context + title, from one embedding pass."""
    from mediafm.embed import DEFAULT_READOUT, embed_clips, readout_blocks, title_blocks

    readout = readout or DEFAULT_READOUT
    blocks = readout_blocks(model, readout, fused_blocks(store))
    title = title_blocks(model, readout, fused_blocks(store))
    both = np.stack(embed_clips(model, store, clips, "in-context", readout, progress=progress,
                                with_title=True)["embedding"].to_list())
    dim = both.shape[1] - sum(title)
    return {IN_CONTEXT: Features.of(both[:, :dim], blocks),
            WITH_TITLE: Features.of(both, (*(blocks or (dim,)), *title))}


def mediafm_features(store: ShotStore, clips: pd.DataFrame, model, readout: str = "",
                     progress: bool = False) -> dict[str, Features]:
    """MediaFM clip-only, in context, in context + title (one embedding pass), the same with
    the clip's position and with the title's metadata, and in context through the spec's
    readout, the final hidden state."""
    from mediafm.embed import DEFAULT_READOUT, embed_clips, readout_blocks

    readout = readout or DEFAULT_READOUT

    def embed(mode: str, output: str) -> np.ndarray:
        frame = embed_clips(model, store, clips, mode, output, progress=progress)
        return np.stack(frame["embedding"].to_list())

    blocks = readout_blocks(model, readout, fused_blocks(store))
    feats = {CLIP_ONLY: Features.of(embed("clip-only", readout), blocks),
             **in_context_features(store, clips, model, readout, progress)}
    feats[WITH_TITLE_POSITION] = with_block(feats[WITH_TITLE], clip_positions(store, clips))
    if store.dims.get("metadata"):
        feats[WITH_TITLE_METADATA] = with_block(feats[WITH_TITLE], clip_metadata(store, clips))
    if readout != "hidden":
        feats[HIDDEN] = Features.of(embed("in-context", "hidden"))
    return feats


def method_features(store: ShotStore, clips: pd.DataFrame, model=None, baselines: bool = True,
                    progress: bool = False, readout: str = "") -> dict[str, Features]:
    """Features of every available method: baselines from the store, MediaFM if a model."""
    feats = baseline_features(store, clips) if baselines else {}
    if model is not None:
        feats |= mediafm_features(store, clips, model, readout, progress)
    return feats


def precomputed_features(path: str, clips: pd.DataFrame) -> Features:
    """Clip features from an embeddings file: clip embeddings (clip_id, embedding) or shot
    embeddings (title_id, shot_index, embedding), pooled over each clip's shots."""
    from mediafm import artifacts

    emb = artifacts.read(path, "clip_embeddings", "shot_embeddings")
    x, keys = emb.vectors(), emb.frame()
    if emb.kind.name == "clip_embeddings":
        by_id = {c: i for i, c in enumerate(keys["clip_id"])}
        missing = [c for c in clips["clip_id"] if c not in by_id]
        if missing:
            raise ValueError(f"{path}: no embedding for clip {missing[0]!r}")
        return Features.of(x[[by_id[c] for c in clips["clip_id"]]])
    index = {(t, int(s)): i for i, (t, s) in enumerate(zip(keys["title_id"],
                                                          keys["shot_index"], strict=True))}
    out = np.zeros((len(clips), x.shape[1]), np.float32)
    for k, row in enumerate(clips.itertuples()):
        idx = [index.get((row.title_id, s)) for s in range(row.first_shot, row.last_shot + 1)]
        if None in idx:
            raise ValueError(f"{path}: clip {row.clip_id!r} needs shots of {row.title_id!r} "
                             "that the file does not have")
        out[k] = x[idx].mean(axis=0)
    return Features.of(out)
