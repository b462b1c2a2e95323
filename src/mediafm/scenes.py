"""Scenes: a title's shots grouped into runs that belong together, as a file beside the store.

With a boundary head (``mediafm heads`` fitted on a ``boundary`` task), a scene starts where
the calibrated probability that a new scene starts peaks above one half. Without one, at
change points of the shot vectors: where the shots just before and just after a shot read
differently (``1 - cos`` of their means over ``window`` shots a side), standing out against
the title's own run of such scores (a robust z-score: the median and the median absolute
deviation), at several windows at once (1, 2, 4 and 8 shots a side; their z-scores
averaged), a local maximum, and at least ``min_shots`` from the last.

Which windows and bar: chosen on 60 tuning draws of the catalog family (scene lengths of 3
to 20 shots, set-ups, noise; ``benchmarks/scenes.py --families``) and reported on 13
held-out draws: scene starts found on their shot, F1 +0.039 on average against the single
window of two shots, better on 12 of 13, most where scenes are long (18-shot scenes: 0.78 ->
0.91). Which vectors: the fused ones by default. On the built-in catalogs fused change
points find scene starts exactly (held-out F1 0.92 clean, 0.74 noisy, with one window of
two shots); the contextual readout of a small model finds them within one shot nearly as
often but rarely on the shot itself, because a masked shot at a scene's edge hears both
scenes; a boundary head on those catalogs is weak (AP ~0.15) and never reaches one half.
``vectors="context"`` and heads are kept for models and labels that carry more.

The scenes file (``artifacts``: title_id, scene, first_shot, last_shot, start_s, end_s,
score) records the store and model; the explorer draws it as bands, ``export`` takes scenes
as clips or chapters, and ``moments`` places ad breaks between scenes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mediafm.changepoints import (  # noqa: F401  (re-exported: the command's defaults)
    BAR,
    MIN_SHOTS,
    WINDOWS,
    boundaries,
    change_scores,
    change_strength,
    scene_means,
    scene_starts,
)

if TYPE_CHECKING:  # the CLI reads the defaults without importing pandas
    import pandas as pd

    from mediafm.store import ShotStore


def scene_rows(title_id: str, starts: list[int], score: np.ndarray, start_s: np.ndarray,
               end_s: np.ndarray) -> list[dict]:
    firsts = [0, *starts]
    lasts = [s - 1 for s in starts] + [len(start_s) - 1]
    return [{"title_id": title_id, "scene": k, "first_shot": a, "last_shot": b,
             "start_s": float(start_s[a]), "end_s": float(end_s[b]),
             "score": float(score[a]) if k else 0.0}
            for k, (a, b) in enumerate(zip(firsts, lasts, strict=True))]


VECTORS = ("fused", "context")


def find_scenes(store: ShotStore, model=None, heads=None,
                window: int | tuple[int, ...] = WINDOWS, bar: float = BAR,
                min_shots: int = MIN_SHOTS, vectors: str = "fused",
                progress: bool = True) -> pd.DataFrame:
    """Scenes of every title (see the module docstring): from ``heads``' boundary task with
    ``model``; else change points of ``vectors``, the fused vectors or the ``model``'s
    contextual embeddings (readout ``context``), at one ``window`` or several. A scene's
    ``score`` is its first shot's change strength (robust z) or the head's probability."""
    import pandas as pd

    from mediafm.progress import progress_bar

    boundary = [n for n, h in (heads.heads.items() if heads else ()) if h.task.kind ==
                "boundary"]
    if vectors not in VECTORS:
        raise ValueError(f"vectors must be one of {VECTORS}, got {vectors!r}")
    if (heads is not None or vectors == "context") and model is None:
        raise ValueError("a boundary head and the contextual embeddings need the model")
    if heads is not None and not boundary:
        raise ValueError("the heads have no boundary task: fit one (a `boundary` column in "
                         "the labels) or leave out --heads")
    probs = None
    if boundary:
        from mediafm.heads import predict

        pred = predict(heads, model, store, progress=progress)
        probs = {t: g.sort_values("shot_index")["score"].to_numpy()
                 for t, g in pred[pred["task"] == boundary[0]].groupby("title_id")}
    windows = (window,) if isinstance(window, int) else tuple(window)
    if not windows or min(windows) < 1:
        raise ValueError(f"windows must be one or more positive shot counts, got {window!r}")
    rows = []
    titles = store.titles["title_id"].tolist()
    embeddings = _embeddings(store, model if vectors == "context" else None, probs is None)
    for title_id in progress_bar(titles, desc="scenes", unit="title", disable=not progress):
        start_s, end_s = store.times(title_id)
        if probs is not None:
            score = probs[title_id].astype(np.float64)
            starts = boundaries(score, 0.5, min_shots, robust=False)
        else:
            score = change_strength(embeddings(title_id), windows)
            starts = boundaries(score, bar, min_shots, robust=False)
        rows += scene_rows(title_id, starts, score, start_s, end_s)
    return pd.DataFrame(rows, columns=["title_id", "scene", "first_shot", "last_shot",
                                       "start_s", "end_s", "score"])


def _embeddings(store: ShotStore, model, needed: bool):
    """title_id -> (n, d): contextual embeddings (readout ``context``) or fused vectors."""
    if not needed:
        return None
    if model is None:
        return lambda t: store.title_vectors(t, "fused")
    from mediafm.embed import embed_sequences

    emb = store.title_embeddings()

    def of(title_id: str) -> np.ndarray:
        (x,) = embed_sequences(model, [store.title_vectors(title_id)],
                               emb[[store.title_row(title_id)]], "context")
        return x

    return of


def write_scenes(frame: pd.DataFrame, out: str | os.PathLike, store: ShotStore, model=None,
                 source: str = "") -> Path:
    from mediafm import artifacts

    return artifacts.write("scenes", frame, out, store=artifacts.store_stamp(store),
                           model=artifacts.model_stamp(model) if model is not None else None,
                           method=source)
