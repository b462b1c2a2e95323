"""Linear probes on frozen embeddings, with splits grouped by title.

The probe is ridge regression on standardised features (one closed-form solve serves every label
of a multilabel task and every regularisation strength, so the whole suite runs in seconds on a
CPU). Regularisation is chosen by grouped cross-validation inside the training titles only;
evaluation pools the out-of-fold predictions of each seed, so every clip is scored by a probe
that never saw its title. Seeds re-draw the title partition; results are mean ± std over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mediafm.probes.metrics import average_precision, macro_ap, mean_tau_within, micro_ap

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def grouped_folds(groups: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """Index arrays of test folds; each title's rows fall in exactly one fold."""
    titles = np.unique(groups)
    rng = np.random.default_rng(seed)
    rng.shuffle(titles)
    n_folds = min(n_folds, len(titles))
    fold_of = {t: i % n_folds for i, t in enumerate(titles)}
    f = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(f == i) for i in range(n_folds)]


def score(metric: str, y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> float:
    if metric == "ap":
        return average_precision(y, pred)
    if metric == "macro_ap":
        return macro_ap(y, pred)
    if metric == "micro_ap":
        return micro_ap(y, pred)
    if metric == "kendall_tau":
        return mean_tau_within(groups, y, pred)
    raise ValueError(f"unknown metric {metric!r}")


class Ridge:
    """Ridge regression for several alphas from one eigendecomposition (features standardised)."""

    def __init__(self, X: np.ndarray, Y: np.ndarray):
        self.mean, self.std = X.mean(0), X.std(0) + 1e-6
        Z = (X - self.mean) / self.std
        self.y_mean = Y.mean(0)
        evals, self.V = np.linalg.eigh(Z.T @ Z)
        self.evals = np.clip(evals, 0, None)
        self.VtZtY = self.V.T @ (Z.T @ (Y - self.y_mean))

    def predict(self, X: np.ndarray, alpha: float) -> np.ndarray:
        W = self.V @ (self.VtZtY / (self.evals + alpha)[:, None])
        return ((X - self.mean) / self.std) @ W + self.y_mean


def _as_2d(y: np.ndarray) -> np.ndarray:
    return y.astype(np.float64).reshape(len(y), -1)


def fit_predict(X: np.ndarray, y: np.ndarray, groups: np.ndarray, X_test: np.ndarray,
                metric: str, inner_folds: int = 3, seed: int = 0) -> tuple[np.ndarray, float]:
    """Choose alpha by grouped CV on (X, y) only, refit on all of it, predict X_test."""
    best_alpha, best = ALPHAS[len(ALPHAS) // 2], -np.inf
    folds = grouped_folds(groups, inner_folds, seed + 7919)
    if len(folds) >= 2:
        preds = {a: np.zeros_like(_as_2d(y)) for a in ALPHAS}
        for test in folds:
            train = np.setdiff1d(np.arange(len(y)), test)
            model = Ridge(X[train], _as_2d(y[train]))
            for a in ALPHAS:
                preds[a][test] = model.predict(X[test], a)
        for a in ALPHAS:
            s = score(metric, y, preds[a].reshape(y.shape), groups)
            if np.isfinite(s) and s > best:
                best_alpha, best = a, s
    pred = Ridge(X, _as_2d(y)).predict(X_test, best_alpha)
    return pred.reshape((len(X_test), *y.shape[1:])), best_alpha


@dataclass(frozen=True)
class ProbeResult:
    mean: float
    std: float
    per_seed: tuple[float, ...]
    alphas: tuple[float, ...]
    extra: dict[str, tuple[float, float]]  # other metrics on the same predictions: (mean, std)


def probe(X: np.ndarray, y: np.ndarray, groups: np.ndarray, metric: str, n_folds: int = 5,
          seeds: tuple[int, ...] = (0, 1, 2), extra_metrics: tuple[str, ...] = ()
          ) -> ProbeResult:
    """Out-of-fold metric of a linear probe, grouped by title, for several seeds.

    ``metric`` selects the regularisation; ``extra_metrics`` are reported on the same
    predictions (e.g. micro AP beside macro AP for a multilabel task).
    """
    results, alphas, extra = [], [], {m: [] for m in extra_metrics}
    for seed in seeds:
        pred = np.zeros(y.shape, dtype=np.float64)
        for test in grouped_folds(groups, n_folds, seed):
            train = np.setdiff1d(np.arange(len(y)), test)
            pred[test], alpha = fit_predict(X[train], y[train], groups[train], X[test], metric,
                                            seed=seed)
            alphas.append(alpha)
        results.append(score(metric, y, pred, groups))
        for m in extra_metrics:
            extra[m].append(score(m, y, pred, groups))
    return ProbeResult(float(np.mean(results)), float(np.std(results)), tuple(results),
                       tuple(alphas),
                       {m: (float(np.mean(v)), float(np.std(v))) for m, v in extra.items()})
