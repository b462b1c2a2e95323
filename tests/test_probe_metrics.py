"""Our probe metrics against scikit-learn and SciPy on known and random cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import average_precision_score

from mediafm.probes.metrics import (
    average_precision,
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
