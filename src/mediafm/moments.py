"""Moments: the top non-overlapping time ranges of each title for a task, from predictions.

- **Highlights** (binary or ranking tasks, e.g. clip-worthiness): the runs of ``min_shots`` to
  ``max_shots`` consecutive shots with the highest mean score, picked greedily without overlap.
- **Ad breaks** (boundary tasks): a cut where a new scene starts (a local maximum of the
  boundary probability) followed by that scene; scored by the boundary probability, times how
  strongly the next scene reads as one label of a relevance task when one is given (e.g.
  ``ad_relevancy``: which ads fit after the break), so a break lands before a scene an ad suits.

Every moment carries a short reason a person can check.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm import artifacts
from mediafm.errors import Mismatch
from mediafm.store import ShotStore

MOMENT_KINDS = ("binary", "ranking", "boundary")  # the task kinds moments come from


def read_predictions(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, str], dict]:
    """Shot-level predictions (``mediafm predict``): (rows, task -> kind, recorded metadata)."""
    pred = artifacts.read(path, "predictions")
    return pred.frame(), {t: v["kind"] for t, v in pred.tasks.items()}, pred.meta


def check_predictions(pred: pd.DataFrame, meta: dict, store: ShotStore, source: str) -> None:
    """The predictions are of this store's shots: a ``Mismatch`` names both when they were
    made from another store (or, for files that did not record it, name a title it lacks)."""
    artifacts.check_store(meta, store, f"the predictions {source}")
    unknown = sorted(set(pred["title_id"].unique()) - set(store.titles["title_id"]))
    if unknown:
        raise Mismatch(f"the predictions {source} have title {unknown[0]!r}, which the store "
                       f"{store.path} does not: predictions and store do not match")


def write_moments(frame: pd.DataFrame, out: str | os.PathLike, store: ShotStore,
                  predictions: str | os.PathLike | None = None) -> Path:
    """MOMENTS.parquet, recording the store and predictions it came from."""
    return artifacts.write("moments", frame, out, store=artifacts.store_stamp(store),
                           predictions=str(Path(predictions).absolute()) if predictions
                           else None)


def highlights(scores: np.ndarray, k: int, min_shots: int = 3, max_shots: int = 8
               ) -> list[tuple[int, int, float]]:
    """Top ``k`` non-overlapping runs (first, last, mean score) of one title's shot scores."""
    n = len(scores)
    c = np.concatenate([[0.0], np.cumsum(scores)])
    if n == 0:
        return []
    sizes = range(min(min_shots, n), min(max_shots, n) + 1)  # every run, as arrays
    lo = np.concatenate([np.arange(n - size + 1) for size in sizes])
    length = np.concatenate([np.full(n - size + 1, size) for size in sizes])
    hi = lo + length - 1
    mean = (c[lo + length] - c[lo]) / length
    order = np.lexsort((lo, lo - hi, -np.round(mean, 9)))  # best first; ties: longer, earlier
    taken = np.zeros(n, bool)
    out = []
    for j in order:
        a, b = int(lo[j]), int(hi[j])
        if not taken[a:b + 1].any():
            taken[a:b + 1] = True
            out.append((a, b, float(mean[j])))
            if len(out) == k:
                break
    return out


def ad_breaks(boundary: np.ndarray, k: int, relevance: np.ndarray | None = None,
              max_scene: int = 20, scenes: list[int] | None = None
              ) -> list[tuple[int, int, float, float, int]]:
    """Top ``k`` breaks (first shot after the cut, last shot of its scene, score, boundary
    probability, best relevance label index or -1). ``boundary[i]``: P(a scene starts at i);
    a cut is a local maximum (over +-2 shots) in the title's top decile and above its median:
    boundary probabilities are calibrated, and low where scene changes are rare. ``scenes``:
    the first shots of the title's scenes (``mediafm scenes``): then the breaks are between
    scenes, never inside one."""
    n = len(boundary)
    if scenes is not None:
        peaks = [i for i in scenes if 0 < i < n]
    else:
        top, median = np.quantile(boundary, 0.9), np.median(boundary)
        peaks = [i for i in range(1, n) if boundary[i] >= top and boundary[i] > median
                 and boundary[i] >= boundary[max(1, i - 2):i + 3].max()]
    out = []
    for i in peaks:
        nxt = [j for j in peaks if j > i]
        last = min(nxt[0] - 1 if nxt else n - 1, i + max_scene - 1)
        fit, label = 1.0, -1
        if relevance is not None:
            mean = relevance[i:last + 1].mean(axis=0)
            label, fit = int(mean.argmax()), float(mean.max())
        out.append((i, last, float(boundary[i]) * fit, float(boundary[i]), label))
    out.sort(key=lambda x: -x[2])
    chosen, taken = [], np.zeros(n, bool)
    for m in out:
        if not taken[m[0]:m[1] + 1].any():
            taken[m[0]:m[1] + 1] = True
            chosen.append(m)
            if len(chosen) == k:
                break
    return chosen


COLUMNS = ["title_id", "task", "kind", "rank", "first_shot", "last_shot", "start_s", "end_s",
           "score", "reason"]


def find_moments(pred: pd.DataFrame, kinds: dict[str, str], store: ShotStore,
                 tasks: list[str] | None = None, k: int = 5, relevance: str | None = None,
                 min_shots: int = 3, max_shots: int = 8,
                 scenes: pd.DataFrame | None = None) -> pd.DataFrame:
    """MOMENTS rows (``COLUMNS``): per title and task, the top ``k`` highlights or ad breaks
    with their times and a reason. ``tasks``: default every binary, ranking and boundary task
    of ``pred``; ``relevance``: a multilabel task that says what suits the scene after a
    break; ``scenes`` (rows of a scenes file): ad breaks only between scenes."""
    if k < 1:
        raise ValueError(f"-k must be >= 1, got {k}")
    if not 1 <= min_shots <= max_shots:
        raise ValueError(f"need 1 <= min_shots <= max_shots, got {min_shots}, {max_shots}")
    known = sorted(set(pred["task"]))
    tasks = tasks or moment_tasks(known, kinds)
    for t in [*tasks, *([relevance] if relevance else [])]:
        if t not in known:
            raise ValueError(f"task {t!r} is not in the predictions (they have {known})")
        if t in tasks and kinds.get(t) not in MOMENT_KINDS:
            raise ValueError(f"task {t!r} is {kinds.get(t)!r}: moments come from binary, "
                             "ranking (highlights) or boundary (ad breaks) tasks")
    rows = []
    for title_id, p in pred.groupby("title_id", sort=False):
        start, end = store.times(title_id)
        starts = None if scenes is None else scenes.loc[
            scenes["title_id"] == title_id, "first_shot"].astype(int).tolist()
        rows += title_moments(p, kinds, tasks, len(start), start, end, k, relevance,
                              min_shots, max_shots, starts)
    return pd.DataFrame(rows, columns=COLUMNS)


def moment_tasks(tasks, kinds: dict[str, str]) -> list[str]:
    """The tasks moments come from by default: every binary, ranking and boundary task."""
    return [t for t in sorted(tasks) if kinds.get(t) in MOMENT_KINDS]


def title_moments(p: pd.DataFrame, kinds: dict[str, str], tasks: list[str], n: int,
                  start: np.ndarray, end: np.ndarray, k: int, relevance: str | None,
                  min_shots: int = 3, max_shots: int = 8,
                  scenes: list[int] | None = None) -> list[tuple]:
    """The moments of one title from its predictions ``p`` (rows of ``COLUMNS``)."""
    title_id = p["title_id"].iloc[0]
    rel = labels = None
    if relevance:
        r = p[p["task"] == relevance].pivot(index="shot_index", columns="label",
                                           values="score").reindex(range(n))
        rel, labels = r.to_numpy(np.float64), list(r.columns)
    rows = []
    for task in tasks:
        s = (p[p["task"] == task].groupby("shot_index")["score"].max()
             .reindex(range(n)).to_numpy(np.float64))
        if kinds[task] == "boundary":
            for rank, (lo, hi, sc, b, lab) in enumerate(ad_breaks(s, k, rel, scenes=scenes),
                                                         1):
                why = f"scene boundary before shot {lo} (p={b:.2f})"
                if lab >= 0:
                    why += f"; the next scene reads as {labels[lab]!r} ({sc / b:.2f})"
                rows.append((title_id, task, "ad break", rank, lo, hi, start[lo], end[hi], sc,
                             why))
        else:
            what = "probability" if kinds[task] != "ranking" else "score"
            for rank, (lo, hi, sc) in enumerate(highlights(s, k, min_shots, max_shots), 1):
                rows.append((title_id, task, "highlight", rank, lo, hi, start[lo], end[hi], sc,
                             f"shots {lo}-{hi}: mean {task} {what} {sc:.2f}"))
    return rows
