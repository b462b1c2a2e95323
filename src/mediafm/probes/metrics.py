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
    score = np.asarray(score)
    # not a stable sort (3x slower at 38k scores): a tie's positives all take the precision
    # at its end, so the order within a tie changes no term
    order = np.argsort(-score.astype(np.float64, copy=False))
    s, yy = score[order], y[order]
    rank = np.flatnonzero(yy) + 1  # 1-based ranks of the positives, best first
    ties = s[1:] == s[:-1]
    if ties.any():  # each positive's rank moves to the end of its block of tied scores
        end = np.flatnonzero(np.append(~ties, True))  # last index of each block
        rank = end[np.searchsorted(end, rank - 1)] + 1
        hits = np.cumsum(yy)[rank - 1]  # positives up to the block's end
    else:
        hits = np.arange(1, n_pos + 1)
    # the probe scores ~250k predictions in the demo: without np.r_ (slow) and the blocks'
    # arrays this is 2.1x faster at 400 clips, the demo's probes 1.09x (AVX2 host, one thread)
    return float(np.sum(hits / rank) / n_pos)


def column_aps(Y: np.ndarray, S: np.ndarray) -> np.ndarray:
    """The AP of each column of scores ``S`` against the labels ``Y`` (``average_precision``
    of each; NaN for a column without a positive), all columns at once.

    Why: the probe scores genre's labels, and the predictions at each alpha, for every
    candidate it tries; column by column that was a sixth of the demo's probe time. The same
    numbers as ``average_precision`` of each column, to the bit: the same terms in the same
    order (whatever the sort puts first within a tie: its positives share one term), each
    column's summed alone by ``np.sum`` (the sum's order is its round-off). One
    column alone is faster by ``average_precision``, which skips the tie bookkeeping when
    there are no ties (the heads' thousands of clips)."""
    Y, S = np.asarray(Y, dtype=bool), np.asarray(S)
    n, m = S.shape
    out = np.full(m, np.nan)
    if n == 0:
        return out
    order = np.argsort(-S.astype(np.float64, copy=False), axis=0)
    s, yy = np.take_along_axis(S, order, 0), np.take_along_axis(Y, order, 0)
    # each row's rank is the end of its block of tied scores (1-based): a tie ranks as one
    last = np.ones((n, m), dtype=bool)
    last[:-1] = s[1:] != s[:-1]
    end = np.minimum.accumulate(np.where(last, np.arange(n)[:, None], n)[::-1], axis=0)[::-1]
    hits = np.take_along_axis(np.cumsum(yy, axis=0), end, 0)  # positives up to it
    n_pos = yy.sum(axis=0)
    has = np.flatnonzero(n_pos)
    if len(has):
        terms = (hits / (end + 1)).T[yy.T]  # precision at each positive, column by column
        ends = np.cumsum(n_pos[has])
        out[has] = [np.sum(terms[a:b]) / (b - a)
                    for a, b in zip(ends - n_pos[has], ends, strict=True)]
    return out


def macro_ap(Y: np.ndarray, S: np.ndarray) -> float:
    """Mean AP over labels that have at least one positive."""
    return mean_of_labels(column_aps(Y, S))


def mean_of_labels(aps: np.ndarray) -> float:
    """The mean of per-label APs, leaving out labels without a positive (NaN)."""
    aps = aps[~np.isnan(aps)]
    return float(np.mean(aps)) if len(aps) else float("nan")


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
    """Mean over groups (titles) of Kendall's tau-b between truth and prediction.

    All within-group pairs at once (the probe calls this for every candidate regularisation):
    per group, tau-b = sum(sign dx * sign dy) / sqrt((pairs - ties x) (pairs - ties y)).
    """
    truth, pred = np.asarray(truth, np.float64), np.asarray(pred, np.float64)
    i, j, pg, n_groups = _pairs_within(np.unique(groups, return_inverse=True)[1])
    dx, dy = np.sign(truth[i] - truth[j]), np.sign(pred[i] - pred[j])
    n0 = np.bincount(pg, minlength=n_groups).astype(np.float64)
    tx = np.bincount(pg, weights=dx == 0, minlength=n_groups)
    ty = np.bincount(pg, weights=dy == 0, minlength=n_groups)
    num = np.bincount(pg, weights=dx * dy, minlength=n_groups)
    denom = np.sqrt((n0 - tx) * (n0 - ty))
    ok = denom > 0
    return float(np.mean(num[ok] / denom[ok])) if ok.any() else float("nan")


_PAIRS: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}


def _pairs_within(code: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(i, j, group of the pair, number of groups): every pair i < j of rows in one group.

    Cached by the grouping: the probe scores many predictions of the same rows."""
    key = code.tobytes()
    if key not in _PAIRS:
        if len(_PAIRS) > 64:
            _PAIRS.clear()
        n_groups = int(code.max()) + 1 if len(code) else 0
        members = [np.flatnonzero(code == g) for g in range(n_groups)]
        tri = [np.triu_indices(len(m), k=1) for m in members]
        i = np.concatenate([m[a] for m, (a, _) in zip(members, tri, strict=True)] or [[]])
        j = np.concatenate([m[b] for m, (_, b) in zip(members, tri, strict=True)] or [[]])
        pg = np.concatenate([np.full(len(a), g) for g, (a, _) in enumerate(tri)] or [[]])
        _PAIRS[key] = (i.astype(np.int64), j.astype(np.int64), pg.astype(np.int64), n_groups)
    return _PAIRS[key]
