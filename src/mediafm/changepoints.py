"""Change points of a sequence of shot vectors: where a title's scenes start, and each
shot's scene mean. Pure NumPy, apart from ``scenes`` (which writes the scenes file and may
read a model) so that ``embed`` can cut the scenes its readout's scene block averages over
without an import cycle.
"""

from __future__ import annotations

import numpy as np

from mediafm.fusion import unit_norm

WINDOWS = (1, 2, 4, 8)  # shots a side whose mean vectors are compared, one scale each
BAR = 1.0  # the mean over the scales of the robust z-score a change point must reach
MIN_SHOTS = 3  # the shortest scene
LEGACY_CUT = "2@1.5"  # the cut (windows@bar) before 2026-12-06; files that name none used it


def cut_name(windows: tuple[int, ...] = WINDOWS, bar: float = BAR) -> str:
    """A cut as files record it, ``windows@bar`` (``"1,2,4,8@1.0"``): scene blocks made
    with one cut are not the same features as with another."""
    return f"{','.join(map(str, windows))}@{bar}"


def change_scores(x: np.ndarray, window: int) -> np.ndarray:
    """(n,): for each shot i, 1 - cos between the mean of the ``window`` shots before it
    and of the ``window`` from it on; 0 for the first."""
    x = unit_norm(np.asarray(x, np.float64))
    c = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    n = len(x)
    i = np.arange(1, n)
    lo, hi = np.maximum(i - window, 0), np.minimum(i + window, n)
    before = unit_norm(c[i] - c[lo])
    after = unit_norm(c[hi] - c[i])
    return np.r_[0.0, 1.0 - (before * after).sum(axis=1)]


def cosine_change(x: np.ndarray) -> np.ndarray:
    """(n,): each shot's cosine distance to the previous shot, 1 - cos(x_i, x_{i-1}); 0 for
    the first and where either vector is all zeros (a modality the shot lacks, the next
    shot's context after the last: no distance to tell). ``change_scores`` at window 1 but
    for those zeros."""
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=1)
    out = np.zeros(len(x), np.float32)
    if len(x) > 1:
        both = (norm[1:] > 0) & (norm[:-1] > 0)
        cos = (x[1:] * x[:-1]).sum(axis=1) / np.where(both, norm[1:] * norm[:-1], 1.0)
        out[1:] = np.where(both, 1.0 - cos, 0.0)
    return out


def block_changes(x: np.ndarray, blocks: tuple[int, ...]) -> np.ndarray:
    """(n, len(blocks)): ``cosine_change`` of each block of ``blocks`` columns of ``x``."""
    edges = np.cumsum((0, *blocks))
    out = np.zeros((len(x), len(blocks)), np.float32)
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        out[:, k] = cosine_change(x[:, a:b])
    return out


def robust_z(score: np.ndarray) -> np.ndarray:
    """(n,): ``score`` against the title's own run of scores (median and MAD, the first
    shot's 0 left out): titles differ in how much they change from shot to shot."""
    if len(score) < 2:
        return np.zeros(len(score))
    med = np.median(score[1:])
    mad = np.median(np.abs(score[1:] - med)) * 1.4826 + 1e-9
    return (score - med) / mad


def change_strength(x: np.ndarray, windows: tuple[int, ...] = WINDOWS) -> np.ndarray:
    """(n,): the robust z-score of ``change_scores`` at each window, averaged over windows.

    Why several scales: one window cannot serve every catalog. Over two shots a side, a
    long scene that cuts between three or four set-ups (shot / reverse shot) reads as a
    change at every other shot, so scenes of 18-19 shots were cut into pieces of 12
    (precision 0.56-0.65); a window of four averages the set-ups out but blurs scenes of
    three or four shots. A change that stands out at one to eight shots a side is a scene's
    edge at any length (``benchmarks/scenes.py --families``)."""
    return np.mean([robust_z(change_scores(x, w)) for w in windows], axis=0)


def boundaries(score: np.ndarray, bar: float = BAR, min_shots: int = MIN_SHOTS,
               robust: bool = True) -> list[int]:
    """First shots of new scenes: local maxima (over ``min_shots`` a side) of ``score``
    whose robust z-score (``robust``; else the score itself) reaches ``bar``, greedily by
    strength, no two closer than ``min_shots``."""
    n = len(score)
    if n < 2:
        return []
    z = robust_z(score) if robust else score
    out: list[int] = []
    for i in np.argsort(-z):
        if i == 0 or z[i] < bar:
            continue
        lo, hi = max(1, i - min_shots + 1), min(n, i + min_shots)
        if z[i] < z[lo:hi].max() or any(abs(i - j) < min_shots for j in out):
            continue
        out.append(int(i))
    return sorted(out)


def scene_starts(fused: np.ndarray, windows: tuple[int, ...] = WINDOWS, bar: float = BAR,
                 min_shots: int = MIN_SHOTS) -> list[int]:
    """First shots of a title's scenes after its first, at the change points of its fused
    vectors: what ``find_scenes`` cuts without a model."""
    return boundaries(change_strength(fused, windows), bar, min_shots, robust=False)


def scene_means(x: np.ndarray, starts: list[int]) -> np.ndarray:
    """(n, d): each row of ``x`` replaced by the mean of its scene's rows (``starts``: the
    first shots of the scenes after the first)."""
    if not len(x):
        return x.copy()
    edges = np.r_[0, starts, len(x)].astype(int)
    sizes = np.diff(edges)
    means = np.add.reduceat(x, edges[:-1], axis=0) / sizes[:, None]
    return np.repeat(means, sizes, axis=0).astype(x.dtype)
