"""Probe metrics, in NumPy: average precision (binary, micro, macro) and within-title Kendall tau.

Written out rather than imported so that the definitions are explicit and fast on large label
matrices; tests check them against scikit-learn and SciPy.
"""

from __future__ import annotations

import numpy as np


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """AP = sum over positives of precision at their rank / n_pos (sklearn's step definition).

    Tied scores are ranked as one block (every positive in a tie gets the precision at the end of
    the block), matching sklearn.metrics.average_precision_score. NaN when y has no positive.
    """
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    s, yy = np.asarray(score)[order], y[order]
    tp = np.cumsum(yy)
    last = np.r_[s[1:] != s[:-1], True]  # end of each block of tied scores
    tp_b, n_b = tp[last], np.flatnonzero(last) + 1
    new_pos = np.diff(np.r_[0, tp_b])
    return float(np.sum(new_pos * tp_b / n_b) / n_pos)


def macro_ap(Y: np.ndarray, S: np.ndarray) -> float:
    """Mean AP over labels that have at least one positive."""
    aps = [average_precision(Y[:, j], S[:, j]) for j in range(Y.shape[1])]
    aps = [a for a in aps if not np.isnan(a)]
    return float(np.mean(aps)) if aps else float("nan")


def micro_ap(Y: np.ndarray, S: np.ndarray) -> float:
    """AP over all (item, label) pairs pooled."""
    return average_precision(np.ravel(Y), np.ravel(S))


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (tie-corrected), O(n^2): probe titles hold tens of clips."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    i, j = np.triu_indices(len(x), k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = len(i)
    tx, ty = np.sum(dx == 0), np.sum(dy == 0)
    denom = np.sqrt((n0 - tx) * (n0 - ty))
    return float(np.sum(dx * dy) / denom) if denom > 0 else float("nan")


def mean_tau_within(groups: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean over groups (titles) of Kendall's tau between truth and prediction."""
    taus = [kendall_tau_b(truth[groups == g], pred[groups == g]) for g in np.unique(groups)]
    taus = [t for t in taus if not np.isnan(t)]
    return float(np.mean(taus)) if taus else float("nan")
