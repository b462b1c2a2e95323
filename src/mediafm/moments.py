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

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mediafm.store import ShotStore, StoreError

KINDS_KEY = b"mediafm.tasks"


def read_predictions(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, str]]:
    """PRED.parquet and its task kinds (written by ``mediafm predict``)."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such predictions file")
    table = pq.read_table(path)
    need = {"title_id", "shot_index", "task", "label", "score"}
    if not need <= set(table.column_names):
        raise ValueError(f"{path}: needs shot-level predictions with columns {sorted(need)} "
                         f"(mediafm predict without --clips); found {table.column_names}")
    kinds = json.loads((table.schema.metadata or {}).get(KINDS_KEY, b"{}"))
    return table.to_pandas(), kinds


def highlights(scores: np.ndarray, k: int, min_shots: int = 3, max_shots: int = 8
               ) -> list[tuple[int, int, float]]:
    """Top ``k`` non-overlapping runs (first, last, mean score) of one title's shot scores."""
    n = len(scores)
    c = np.concatenate([[0.0], np.cumsum(scores)])
    cands = [(float((c[i + m] - c[i]) / m), i, i + m - 1)
             for m in range(min(min_shots, n), min(max_shots, n) + 1)
             for i in range(0, n - m + 1)]
    cands.sort(key=lambda x: (-round(x[0], 9), x[1] - x[2], x[1]))  # ties: the longer run
    taken = np.zeros(n, bool)
    out = []
    for s, lo, hi in cands:
        if not taken[lo:hi + 1].any():
            taken[lo:hi + 1] = True
            out.append((lo, hi, s))
            if len(out) == k:
                break
    return out


def ad_breaks(boundary: np.ndarray, k: int, relevance: np.ndarray | None = None,
              max_scene: int = 20) -> list[tuple[int, int, float, float, int]]:
    """Top ``k`` breaks (first shot after the cut, last shot of its scene, score, boundary
    probability, best relevance label index or -1). ``boundary[i]``: P(a scene starts at i);
    a cut is a local maximum (over +-2 shots) in the title's top decile and above its median:
    boundary probabilities are calibrated, and low where scene changes are rare."""
    n = len(boundary)
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


def find_moments(pred: pd.DataFrame, kinds: dict[str, str], store: ShotStore,
                 tasks: list[str] | None = None, k: int = 5, relevance: str | None = None,
                 min_shots: int = 3, max_shots: int = 8) -> pd.DataFrame:
    """MOMENTS rows: title_id, task, rank, first_shot, last_shot, start_s, end_s, score,
    reason. ``tasks``: default every binary, ranking and boundary task of ``pred``."""
    known = sorted(set(pred["task"]))
    tasks = tasks or [t for t in known if kinds.get(t) in ("binary", "ranking", "boundary")]
    for t in [*tasks, *([relevance] if relevance else [])]:
        if t not in known:
            raise ValueError(f"task {t!r} is not in the predictions (they have {known})")
        if t in tasks and kinds.get(t) not in ("binary", "ranking", "boundary"):
            raise ValueError(f"task {t!r} is {kinds.get(t)!r}: moments come from binary, "
                             "ranking (highlights) or boundary (ad breaks) tasks")
    unknown = sorted(set(pred["title_id"]) - set(store.titles["title_id"]))
    if unknown:
        raise StoreError(f"predictions for title {unknown[0]!r}, which the store {store.path} "
                         "does not have: predictions and store do not match")
    rows = []
    for title_id, p in pred.groupby("title_id", sort=False):
        row = store.titles.iloc[store.title_row(title_id)]
        n = int(row.n_shots)
        times = store.read_part(row.part, ["start_s", "end_s"]).slice(int(row.row_offset), n)
        start, end = times["start_s"].to_numpy(), times["end_s"].to_numpy()
        rel = labels = None
        if relevance:
            r = p[p["task"] == relevance].pivot(index="shot_index", columns="label",
                                               values="score").reindex(range(n))
            rel, labels = r.to_numpy(np.float64), list(r.columns)
        for task in tasks:
            s = (p[p["task"] == task].groupby("shot_index")["score"].max()
                 .reindex(range(n)).to_numpy(np.float64))
            if kinds[task] == "boundary":
                for rank, (lo, hi, sc, b, lab) in enumerate(ad_breaks(s, k, rel), 1):
                    why = f"scene boundary before shot {lo} (p={b:.2f})"
                    if lab >= 0:
                        why += f"; the next scene reads as {labels[lab]!r} ({sc / b:.2f})"
                    rows.append((title_id, task, rank, lo, hi, start[lo], end[hi], sc, why))
            else:
                for rank, (lo, hi, sc) in enumerate(
                        highlights(s, k, min_shots, max_shots), 1):
                    what = "probability" if kinds[task] != "ranking" else "score"
                    rows.append((title_id, task, rank, lo, hi, start[lo], end[hi], sc,
                                 f"shots {lo}-{hi}: mean {task} {what} {sc:.2f}"))
    return pd.DataFrame(rows, columns=["title_id", "task", "rank", "first_shot", "last_shot",
                                       "start_s", "end_s", "score", "reason"])
