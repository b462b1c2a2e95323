"""Task heads: one linear head per task on MediaFM's in-context clip embeddings, fitted once,
saved, and applied to every shot (or clip) of a store: predictions a product can use.

A head is the probe of ``mediafm probe`` fitted on all labelled clips: ridge regression on
standardised features with the regularisation and block weights chosen by title-grouped
cross-validation, over the same task kinds and LABELS schema. Binary, boundary and multilabel
scores are made calibrated probabilities by Platt scaling on out-of-fold predictions (each
clip scored by a head that never saw its title); ranking scores stay raw (comparable within a
title). ``HEADS/`` holds ``heads.safetensors`` (per task: ``coef``, ``intercept``, ``mean``,
``scale``, ``platt``) and ``heads.json`` (task kinds, label names, chosen regularisation,
cross-validated scores, the features, and the model and store the heads were fitted on).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mediafm import artifacts
from mediafm.atomic import atomic_dir
from mediafm.embed import (
    DEFAULT_READOUT,
    TITLE_PART,
    check_store,
    embed_clips,
    embed_sequences,
    feature_width,
    readout_blocks,
    title_batches,
    title_blocks,
    title_part,
)
from mediafm.errors import Mismatch
from mediafm.model import MediaFM
from mediafm.probes.features import fused_blocks
from mediafm.probes.linear import (
    Features,
    default_workers,
    final_fit,
    grouped_folds,
    in_processes,
    nested_search,
    out_of_fold,
    score,
)
from mediafm.probes.tasks import Task, targets
from mediafm.readouts import readout_stamp, recorded_cut
from mediafm.store import ShotStore

CALIBRATED = ("binary", "boundary", "multilabel")


@dataclass
class Head:
    task: Task
    labels: list[str]  # label names (multilabel), or [task name] for one score
    coef: np.ndarray  # (dim, n_labels): on raw features (standardisation folded in)
    intercept: np.ndarray  # (n_labels,)
    mean: np.ndarray  # (dim,) feature means and scales, for the record
    scale: np.ndarray
    platt: np.ndarray | None  # (n_labels, 2): p = sigmoid(a * score + b)
    info: dict  # alpha, block weights, cross-validated score

    def scores(self, X: np.ndarray) -> np.ndarray:
        """(n, n_labels): calibrated probabilities, or raw ranking scores."""
        raw = X @ self.coef + self.intercept
        if self.platt is None:
            return raw
        return sigmoid(raw * self.platt[:, 0] + self.platt[:, 1])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def platt(raw: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """(a, b) of p = sigmoid(a * raw + b) by Newton's method on the log loss (Platt 1999,
    with his smoothed targets so a separable label does not run to infinity).

    Fitted on the standardised scores, each step halved until the loss falls: where one
    title's out-of-fold scores sat far from the rest and the label was noise (a boundary
    head on the CLI test's 6-step model), plain Newton steps overshot to a ~ -7e10 and every
    probability came out 0."""
    y = np.asarray(y, bool)
    raw = np.asarray(raw, np.float64)
    n_pos, n_neg = y.sum(), (~y).sum()
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    mu, sd = float(raw.mean()), float(raw.std()) or 1.0
    z = (raw - mu) / sd

    def loss(ab: np.ndarray) -> float:
        s = ab[0] * z + ab[1]
        return float(np.sum(np.logaddexp(0.0, s) - t * s))

    ab = np.array([1.0, float(np.log((n_pos + 1) / (n_neg + 1)))])
    f = loss(ab)
    for _ in range(iters):
        p = sigmoid(ab[0] * z + ab[1])
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        w = p * (1 - p) + 1e-12
        h = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]])
        step = np.linalg.solve(h + 1e-9 * np.eye(2), g)
        while (new := loss(ab - step)) > f and np.abs(step).max() > 1e-12:
            step = step / 2
        ab, f = ab - step, new
        if np.abs(step).max() < 1e-9:
            break
    return float(ab[0] / sd), float(ab[1] - ab[0] * mu / sd)


def fit_head(task: Task, names: list[str], feats: Features, y: np.ndarray,
             groups: np.ndarray, folds: int) -> Head:
    """One task's head: block weights and alpha chosen by grouped CV on all its clips; the
    out-of-fold predictions of a nested CV (each fold chooses on its own training titles)
    give the reported score and the Platt calibration. One math thread, as ``fit_heads``
    (which says why): the same head whichever of the two fits it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        oof, _ = out_of_fold(feats, y, groups, task.metric, folds)
        return head_of(task, names, y, groups, folds, oof,
                       final_fit(feats, y, groups, task.metric))


def head_of(task: Task, names: list[str], y: np.ndarray, groups: np.ndarray, folds: int,
            oof: np.ndarray, fitted: tuple) -> Head:
    """The head from its final fit (``final_fit``), calibrated on the out-of-fold
    predictions ``oof`` of its nested CV."""
    choice, coef, intercept, mean, scale = fitted
    y2, oof2 = y.astype(np.float64).reshape(len(y), -1), oof.reshape(len(y), -1)
    cal = (np.array([platt(oof2[:, k], y2[:, k] > 0.5) for k in range(y2.shape[1])])
           if task.kind in CALIBRATED else None)
    return Head(task, names, coef, intercept, mean, scale, cal,
                {"alpha": choice.alpha, "block_weights": list(choice.block_weights),
                 "cv": {"metric": task.metric, "score": score(task.metric, y, oof, groups),
                        "folds": folds, "n_clips": int(len(y)),
                        "n_titles": int(len(set(groups)))}})


def clip_features(store: ShotStore, model: MediaFM, labels: pd.DataFrame,
                  readout: str = DEFAULT_READOUT, with_title: bool = True,
                  progress: bool = True) -> Features:
    """The heads' features: the labelled clips' in-context embeddings (+ the title part),
    with their blocks (whose weights the search chooses)."""
    X = np.stack(embed_clips(model, store, labels, "in-context", readout, progress=progress,
                             with_title=with_title)["embedding"])
    title = title_blocks(model, readout, fused_blocks(store)) if with_title else ()
    blocks = readout_blocks(model, readout, fused_blocks(store)) or (X.shape[1] - sum(title),)
    return Features.of(X, (*blocks, *title))


def fit_heads(feats: Features, labels: pd.DataFrame, tasks: list[Task], folds: int = 5,
              workers: int | None = None) -> dict[str, Head]:
    """One head per task that has labelled clips (rows of ``feats`` are ``labels``'): every
    task's searches (one per outer fold, and the final choice on all its clips) side by side
    in ``workers`` processes of one math thread (None: one per core;
    ``probes.linear.in_processes`` says why). Searches, not tasks, are the jobs, so one or
    two tasks keep every core busy (on the six built-in tasks it measured the same as tasks
    as jobs: they were already balanced on 2 cores).

    Always one math thread, in this process too: the search over block weights and alphas
    is a chain of discrete choices, and the round-off of a two-thread BLAS changed some
    (measured on an 8-title catalog: genre's cross-validated AP 0.248 on two threads, 0.286
    on one), so heads would otherwise depend on how many workers fitted them."""
    from threadpoolctl import threadpool_limits

    groups = labels["title_id"].to_numpy()
    fits, searches = [], []
    for task in tasks:
        idx, y, names = targets(labels, task)
        if len(idx):
            n_folds = 10 if task.kind == "ranking" else folds
            outer = len(grouped_folds(groups[idx], n_folds, 0))
            fits.append((task, names or [task.name], y, groups[idx], n_folds, outer))
            sub = feats.subset(idx)  # one copy a task, shared by its searches
            searches += [(sub, y, groups[idx], task.metric, n_folds, k)
                         for k in (*range(outer), None)]
    workers = default_workers() if workers is None else workers
    with threadpool_limits(1):  # here too: the same heads whatever ``workers`` (see above)
        found = in_processes(nested_search, searches, workers)
        heads = {}
        for task, names, y, grp, n_folds, outer in fits:  # its outer folds, then its final fit
            oof = np.zeros(y.shape, np.float64)
            for _ in range(outer):
                test, pred, _ = next(found)
                oof[test] = pred
            heads[task.name] = head_of(task, names, y, grp, n_folds, oof, next(found))
    return heads


class Heads:
    """A set of task heads and what they were fitted on (see the module docstring)."""

    def __init__(self, heads: dict[str, Head], meta: dict):
        self.heads, self.meta = heads, meta

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    @property
    def kinds(self) -> dict[str, str]:
        return {n: h.task.kind for n, h in self.heads.items()}

    @classmethod
    def fit(cls, store: ShotStore | str, model: MediaFM, labels: pd.DataFrame,
            tasks: list[Task], readout: str = DEFAULT_READOUT, with_title: bool = True,
            folds: int = 5, model_path: str | None = None, progress: bool = True,
            workers: int | None = None) -> Heads:
        """Heads for ``tasks`` on the in-context clip embeddings of the labelled clips;
        ``workers`` processes fit tasks side by side (None: one per core)."""
        store = store if isinstance(store, ShotStore) else ShotStore(store)
        feats = clip_features(store, model, labels, readout, with_title, progress)
        heads = fit_heads(feats, labels, tasks, folds, workers)
        if not heads:
            raise ValueError("no task has labelled clips: nothing to fit")
        meta = {"features": {**readout_stamp(readout), "with_title": with_title,
                             "title": TITLE_PART if with_title else None,
                             "dim": int(feats.options[""].shape[1])},
                "model": {**artifacts.model_stamp(model, model_path),
                          "config": model.config.to_dict()},
                "store": {**artifacts.store_stamp(store),
                          **{k: v for k, v in store.info.to_json().items()
                             if k in ("dims", "encoders", "fused_modalities")}}}
        return cls(heads, meta)

    def save(self, out: str | os.PathLike) -> Path:
        """HEADS/heads.safetensors + heads.json, swapped into place whole."""
        from safetensors.numpy import save_file

        tensors, tasks = {}, {}
        for name, h in self.heads.items():
            tensors |= {f"{name}.coef": h.coef, f"{name}.intercept": h.intercept,
                        f"{name}.mean": h.mean, f"{name}.scale": h.scale}
            if h.platt is not None:
                tensors[f"{name}.platt"] = h.platt
            tasks[name] = {"kind": h.task.kind, "metric": h.task.metric, "labels": h.labels,
                           **h.info}
        with atomic_dir(out) as tmp:
            save_file({k: np.ascontiguousarray(v, np.float64) for k, v in tensors.items()},
                      tmp / "heads.safetensors")
            (tmp / "heads.json").write_text(json.dumps({**self.meta, "tasks": tasks},
                                                       indent=2))
        return Path(out)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Heads:
        from safetensors.numpy import load_file

        path = Path(path)
        if not (path / "heads.json").is_file():
            raise FileNotFoundError(f"{path}: no heads.json (not a heads directory)")
        meta = json.loads((path / "heads.json").read_text())
        try:
            t = load_file(path / "heads.safetensors")
        except Exception as e:  # noqa: BLE001 - missing, truncated, not safetensors
            raise ValueError(f"{path / 'heads.safetensors'}: cannot load ({e})") from None
        heads = {}
        for name, spec in meta.pop("tasks").items():
            info = {k: spec[k] for k in ("alpha", "block_weights", "cv")}
            heads[name] = Head(Task(name, spec["kind"], spec["metric"]), spec["labels"],
                               t[f"{name}.coef"], t[f"{name}.intercept"], t[f"{name}.mean"],
                               t[f"{name}.scale"], t.get(f"{name}.platt"), info)
        return cls(heads, meta)

    def check(self, model: MediaFM, store: ShotStore, other_store: bool = False) -> None:
        """The heads fit this model and store; a ``Mismatch`` names what differs.

        The model must be the one they were fitted on (its weights, not only its shape). The
        store may be another catalog when its vectors demonstrably come from the same
        encoders (both stores record them, and they agree); a store that records none (built
        by ``import``) is refused unless ``other_store`` (the user vouches for its vectors)."""
        mine, theirs = self.meta["model"]["config"], model.config.to_dict()
        diff = sorted(k for k in mine if mine.get(k) != theirs.get(k))
        if diff:
            fitted = ", ".join(f"{k}={mine[k]}" for k in diff)
            given = ", ".join(f"{k}={theirs.get(k)}" for k in diff)
            raise Mismatch(f"the heads were fitted on a model with {fitted}, but this model "
                           f"has {given}")
        artifacts.check_model(self.meta, model, "the heads")
        fitted = self.meta["store"]
        for key in ("dims", "fused_modalities"):
            if fitted.get(key) != store.info.to_json().get(key):
                raise Mismatch(f"the heads were fitted on a store with {key} "
                               f"{fitted.get(key)}, but {store.path} has "
                               f"{store.info.to_json().get(key)}")
        if fitted.get("fingerprint") not in (None, store.fingerprint) and not other_store:
            _check_same_encoders(fitted, store)
        f = self.meta["features"]
        now = recorded_cut(readout_stamp(f["readout"]))
        if recorded_cut(f) != now:
            raise Mismatch(f"the heads were fitted on scene blocks cut at {recorded_cut(f)} "
                           f"(windows@bar); this version cuts them at {now}: fit them "
                           "again (mediafm heads)")
        if f["with_title"]:
            width = feature_width(model, f["readout"], True)
            if f.get("title") != TITLE_PART or f["dim"] != width:
                # e.g. input+context+hidden before its title part held the context mean alone
                was = f.get("title") or "the mean of the readout"
                raise Mismatch(f"the heads were fitted with an older title feature ({was}, "
                               f"{f['dim']} columns; now {TITLE_PART!r}, {width} columns): "
                               f"fit them again (mediafm heads)")
        check_store(model, store)


def _check_same_encoders(fitted: dict, store: ShotStore) -> None:
    """Heads applied to another store than theirs: its vectors must come from the encoders
    of theirs, which only stores that record their encoders can show."""
    encoders = [m for m in ("video", "audio", "text") if m in (fitted.get("encoders") or {})]
    same = encoders and all(
        (fitted["encoders"][m].get("name"), fitted["encoders"][m].get("version"))
        == ((store.info.encoders.get(m) or {}).get("name"),
            (store.info.encoders.get(m) or {}).get("version")) for m in encoders)
    if not same:
        raise Mismatch(f"the heads were fitted on the store {fitted.get('path')}; "
                       f"{store.path} is another store, and nothing records that its vectors "
                       "come from the same encoders (stores built by `mediafm import` do not "
                       "say). Fit heads on this store, or pass --other-store if its vectors "
                       "do come from the same encoders")


@torch.no_grad()
def predict(heads: Heads, model: MediaFM, store: ShotStore | str,
            clips: pd.DataFrame | None = None, progress: bool = True,
            other_store: bool = False) -> pd.DataFrame:
    """Scores of every head, long form: title_id, shot_index (or clip_id), task, label, score.

    Every shot is embedded in context (the features the heads were fitted on); with ``clips``,
    each clip is (its shots' mean, as in fitting). ``other_store``: see ``Heads.check``.
    """
    from mediafm.progress import progress_bar

    store = store if isinstance(store, ShotStore) else ShotStore(store)
    heads.check(model, store, other_store)
    f = heads.meta["features"]
    if clips is not None:
        X = np.stack(embed_clips(model, store, clips, "in-context", f["readout"],
                                 progress=progress, with_title=f["with_title"])["embedding"])
        return _long(heads, X, {"clip_id": clips["clip_id"].tolist()})
    frames = []
    bar = progress_bar(total=store.info.n_shots, desc="predict", unit="shot",
                       disable=not progress)
    for ids, seqs, title_emb in title_batches(store, None, model.config.max_shots):
        for t, e, fused in zip(ids, embed_sequences(model, seqs, title_emb, f["readout"]),
                               seqs, strict=True):
            X = e
            if f["with_title"]:
                title = title_part(model, fused, e, f["readout"])
                X = np.hstack([e, np.broadcast_to(title, (len(e), len(title)))])
            frames.append(_long(heads, X, {"title_id": [t] * len(e),
                                           "shot_index": list(range(len(e)))}))
            bar.update(len(e))
    bar.close()
    return pd.concat(frames, ignore_index=True)


def _long(heads: Heads, X: np.ndarray, keys: dict[str, list]) -> pd.DataFrame:
    out = []
    for name, h in heads.heads.items():
        s = h.scores(X)  # (n, K)
        n, k = s.shape
        out.append(pd.DataFrame({**{c: np.repeat(v, k) for c, v in keys.items()},
                                 "task": name, "label": np.tile(h.labels, n),
                                 "score": s.reshape(-1).astype(np.float32)}))
    return pd.concat(out, ignore_index=True)


def write_predictions(frame: pd.DataFrame, heads: Heads, out: str | os.PathLike,
                      model: MediaFM, store: ShotStore,
                      heads_path: str | os.PathLike | None = None) -> Path:
    """PRED.parquet (shot or clip predictions), recording the task kinds (for moments), the
    heads, and the model and store the scores came from (every consumer checks them)."""
    kind = "clip_predictions" if "clip_id" in frame.columns else "predictions"
    return artifacts.write(kind, frame, out, model=artifacts.model_stamp(model),
                           store=artifacts.store_stamp(store),
                           heads=str(Path(heads_path).absolute()) if heads_path else None,
                           tasks={n: {"kind": h.task.kind, "metric": h.task.metric}
                                  for n, h in heads.heads.items()})
