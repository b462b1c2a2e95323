"""Our probe metrics against scikit-learn and SciPy on known and random cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import average_precision_score

from mediafm.probes.metrics import (
    average_precision,
    column_aps,
    kendall_tau_b,
    macro_ap,
    mean_tau_within,
    micro_ap,
)


def test_ap_known_case():
    # ranks: + - + -  -> (1/1 + 2/3) / 2
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))


@pytest.mark.parametrize("seed", range(5))
def test_ap_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200), 1)  # many ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))


def test_micro_macro_match_sklearn():
    rng = np.random.default_rng(0)
    Y = rng.random((150, 7)) < 0.25
    S = rng.random((150, 7)) + Y * 0.3
    assert macro_ap(Y, S) == pytest.approx(average_precision_score(Y, S, average="macro"))
    assert micro_ap(Y, S) == pytest.approx(average_precision_score(Y, S, average="micro"))


def test_column_aps_are_each_columns_ap_as_sklearn_has_it():
    """All columns at once (ties, a column of one score, one without a positive) give each
    column's sklearn AP, and ``average_precision``'s to the bit; the probe's scores of
    several predictions at once are its scores of each."""
    from mediafm.probes.linear import score, scores_of

    rng = np.random.default_rng(3)
    Y = rng.random((120, 6)) < [0.3, 0.05, 0.5, 0.2, 0.0, 0.4]
    S = np.round(rng.random((120, 6)) + 0.3 * Y, 1)  # ties within columns
    S[:, 3] = 0.5  # one block of ties: every positive at the precision of the whole column
    aps = column_aps(Y, S)
    for j in range(6):
        if Y[:, j].any():
            assert aps[j] == pytest.approx(average_precision_score(Y[:, j], S[:, j]))
            assert aps[j] == average_precision(Y[:, j], S[:, j])  # to the bit: same choices
        else:
            assert np.isnan(aps[j])
    groups = np.repeat(np.arange(12), 10)
    preds = [rng.random((120, 6)) for _ in range(3)]
    for metric, y in (("ap", Y[:, 0]), ("macro_ap", Y), ("micro_ap", Y)):
        ps = [p[:, 0] for p in preds] if y.ndim == 1 else preds
        want = [score(metric, y, p, groups) for p in ps]
        assert scores_of(metric, y, ps, groups) == want


@pytest.mark.parametrize("seed", range(5))
def test_tau_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.random(30), 1)
    y = x + rng.normal(scale=0.3, size=30)
    assert kendall_tau_b(x, y) == pytest.approx(kendalltau(x, y).statistic)


def test_tau_within_groups():
    g = np.array([0, 0, 0, 1, 1, 1])
    truth = np.array([1, 2, 3, 1, 2, 3])
    pred = np.array([10, 20, 30, 3, 2, 1])  # perfect in title 0, reversed in title 1
    assert mean_tau_within(g, truth, pred) == pytest.approx(0.0)
    assert mean_tau_within(g, truth, truth + 100 * g) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(3))
def test_tau_within_matches_scipy_per_group(seed):
    rng = np.random.default_rng(seed)
    groups = rng.choice(["a", "b", "c", "d"], size=120)
    truth = np.round(rng.random(120), 1)  # ties
    pred = truth + rng.normal(scale=0.4, size=120)
    want = np.mean([kendalltau(truth[groups == g], pred[groups == g]).statistic
                    for g in np.unique(groups)])
    assert mean_tau_within(groups, truth, pred) == pytest.approx(want)
