"""Linear probes on frozen embeddings, with splits grouped by title.

The probe is ridge regression on standardised features (one closed-form solve serves every label
of a multilabel task and every regularisation strength, so the whole suite runs in seconds on a
CPU). Regularisation is chosen by grouped cross-validation inside the training titles only;
evaluation pools the out-of-fold predictions of each seed, so every clip is scored by a probe
that never saw its title. Seeds re-draw the title partition; results are mean ± std over seeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
from scipy.linalg import cho_factor, cho_solve, cholesky, lapack, solve_triangular

from mediafm.probes.metrics import (
    average_precision,
    column_aps,
    macro_ap,
    mean_of_labels,
    mean_tau_within,
    micro_ap,
)

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


def scores_of(metric: str, y: np.ndarray, preds: list[np.ndarray], groups: np.ndarray
              ) -> list[float]:
    """``score`` of each prediction, the same numbers; the average precisions of all of them
    from one sort (``column_aps``): the search scores six alphas at a time on small
    catalogs."""
    if metric not in ("ap", "macro_ap", "micro_ap"):
        return [score(metric, y, p, groups) for p in preds]
    Y = np.reshape(y, (len(y), -1))
    if metric == "micro_ap":
        Y = np.reshape(Y, (-1, 1))
    S = np.hstack([np.reshape(p, (len(Y), -1)) for p in preds])
    aps = column_aps(np.tile(Y, len(preds)), S).reshape(len(preds), -1)
    if metric != "macro_ap":
        return [float(a[0]) for a in aps]
    return [mean_of_labels(a) for a in aps]


class Ridge:
    """Ridge regression on standardised features, solved for one alpha at a time.

    Features are standardised, then each column multiplied by ``weights`` (per-block weights:
    a smaller weight regularises that block more, so a probe over [video | audio | text] can
    lean on the block that carries the label instead of one alpha for all 256+ columns).
    Every caller refits with the one alpha its search chose, so each solve is one Cholesky
    factorisation (of the kernel when there are fewer rows than columns), not an
    eigendecomposition that would serve every alpha: at 1,152 columns that was about a
    quarter of the heads' time on 1k clips (15.2 s -> 11.6 s for the six tasks, 2 cores).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None):
        self.mean, self.std = X.mean(0), X.std(0) + 1e-6
        self.on: slice | np.ndarray = slice(None)  # every column: no fancy-index copy of X
        if weights is not None:  # a weight of 0 drops the column: an infinite scale
            with np.errstate(divide="ignore"):
                self.std = self.std / weights
            if not np.all(weights):
                self.on = np.flatnonzero(weights)
        # only the columns kept: a dropped one is a zero column, whose coefficient is 0
        # (tone's final fits keep 5 of 10 blocks: half the columns, an eighth of the
        # factorisation)
        self.Z = (X[:, self.on] - self.mean[self.on]) / self.std[self.on]
        self.y_mean = Y.mean(0)
        self.yc = Y - self.y_mean

    def coef(self, alpha: float) -> np.ndarray:
        """(columns, outputs): the weights on standardised features."""
        Z = self.Z
        w = np.zeros((len(self.mean), self.yc.shape[1]))
        if len(Z) < Z.shape[1]:  # W = Z^T (Z Z^T + a I)^-1 Y
            K = Z @ Z.T
            K.flat[::len(K) + 1] += alpha
            w[self.on] = Z.T @ cho_solve(cho_factor(K, overwrite_a=True), self.yc)
        else:
            G = Z.T @ Z
            G.flat[::len(G) + 1] += alpha
            w[self.on] = cho_solve(cho_factor(G, overwrite_a=True), Z.T @ self.yc)
        return w

    def predict(self, X: np.ndarray, alpha: float) -> np.ndarray:
        return ((X - self.mean) / self.std) @ self.coef(alpha) + self.y_mean


def _as_2d(y: np.ndarray) -> np.ndarray:
    return y.astype(np.float64).reshape(len(y), -1)


@dataclass(frozen=True)
class Features:
    """One method's clip features for the probe.

    ``options``: candidate feature matrices the probe chooses among by inner CV, exactly as it
    chooses alpha (e.g. moving averages over +-1, +-2, +-4 shots); one entry for most methods.
    ``blocks``: column counts of blocks (e.g. video, audio, text) whose relative weights the
    probe also chooses; () for one block. Without block weights, one alpha regularises a
    label-free 128-d video block as much as the 64-d audio block that carries the label, and
    the fused vector probes worse than audio alone (it contains audio): measured on the clean
    catalog, tone 0.952 fused vs 0.963 audio with one weight, 0.963 with block weights.
    """

    options: dict[str, np.ndarray]
    blocks: tuple[int, ...] = ()

    @classmethod
    def of(cls, X: np.ndarray, blocks: tuple[int, ...] = ()) -> Features:
        return cls({"": X}, blocks)

    def subset(self, rows: np.ndarray) -> Features:
        return Features({k: v[rows] for k, v in self.options.items()}, self.blocks)

    def column_weights(self, block_weights: tuple[float, ...]) -> np.ndarray | None:
        if not self.blocks:
            return None
        return np.repeat(np.asarray(block_weights, np.float64), self.blocks)


# 0 drops a block: a block with nothing to say about a label still adds noise at 0.03 (measured,
# clean catalog, genre from [clip ; title] features: 0.554 -> 0.559 and 0.484 -> 0.489 with 0)
BLOCK_WEIGHTS = (1.0, 0.3, 0.1, 0.03, 0.0)


@dataclass(frozen=True)
class Choice:
    """What the inner CV chose for one fit."""

    option: str
    block_weights: tuple[float, ...]
    alpha: float


def in_span(Z: np.ndarray, H: np.ndarray, blocks: tuple[int, ...], tol: float = 1e-11
            ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """(Z, H, blocks) with every block whose fitted rows ``Z`` span fewer dimensions than it
    has columns given as coordinates in an orthonormal basis of that span (``H``, the held-out
    rows, in the same basis); full-rank blocks are left as they are.

    Why: the title part of a clip's features (its title's mean fused vector and mean context)
    and the title metadata are one vector per title, so on an inner fold of 70 titles their
    384 columns span at most 70 dimensions. Ridge predictions see a block only through
    Z_b Z_b^T and H_b Z_b^T, which coordinates in a basis V of Z_b's row space leave as they
    are (Z_b = Z_b V V^T), for every block weight and alpha: the same predictions, but for
    round-off, from fewer columns to factor. The span is found in float64 whatever the
    features' type (rows of one title are equal, so its null directions are exact zeros, left
    ~1e-16 of the largest eigenvalue by round-off); under ``tol`` of it is not data. One
    block is left whole: its search is a few solves, fewer than its eigendecomposition costs.
    """
    if len(blocks) < 2:
        return Z, H, blocks
    cuts = np.cumsum(blocks)[:-1]
    zs, hs = np.split(Z, cuts, axis=1), np.split(H, cuts, axis=1)
    out_z, out_h, widths = [], [], []
    for z, h in zip(zs, hs, strict=True):
        z64 = z.astype(np.float64)
        evals, vecs = np.linalg.eigh(z64.T @ z64)
        keep = evals > tol * max(evals[-1], 1e-300)
        if keep.all():
            out_z.append(z), out_h.append(h), widths.append(z.shape[1])
        else:
            v = vecs[:, keep]
            out_z.append((z64 @ v).astype(z.dtype)), out_h.append((h @ v).astype(h.dtype))
            widths.append(int(keep.sum()))
    if widths == list(blocks):
        return Z, H, blocks
    return np.hstack(out_z), np.hstack(out_h), tuple(widths)


class InnerFold:
    """One inner fold, standardised once; predictions for any block weights and every alpha.

    Each (block weights, alpha) is one Cholesky solve: of the weighted Gram matrix (columns x
    columns), or of the kernel matrix (rows x rows) when the fold has fewer rows than columns.
    The two give the same ridge predictions; the smaller one is cheaper. In the kernel form the
    weighted kernel is a sum of per-block kernels computed once, so a new weight costs a sum
    and a solve, not a product over every column; in the Gram form the weights go on the
    diagonal (``predictor``), so a new weight costs a copy and a solve (factored in float32,
    refined: ``refined_solver``). Six Cholesky solves
    cost ~0.6x one eigendecomposition at 512 columns on one core (and the search asks for
    3-4 of the six: ``walk``); it makes thousands of them.
    Blocks that span fewer dimensions than they have columns (the title part) are first
    given in a basis of their span (``in_span``), and blocks of weight 0 are left out of the
    solve: fewer columns, the same predictions. The search's steps on one block's weight
    share what the other blocks contribute: in the Gram form their factorisation
    (``Bordered``), in the kernel form their kernel sum (``weighted_kernels``).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, fit: np.ndarray, held: np.ndarray,
                 blocks: tuple[int, ...] = (), dual: bool | None = None):
        mean, std = X[fit].mean(0), X[fit].std(0) + 1e-6
        Z, H, self.blocks = in_span((X[fit] - mean) / std, (X[held] - mean) / std,
                                    blocks or (X.shape[1],))
        self.y_mean, self.n_held = Y[fit].mean(0), len(held)
        self.yc = Y[fit] - self.y_mean
        self.dual = len(fit) < Z.shape[1] if dual is None else dual
        if self.dual:  # predictions = H Zw^T (Zw Zw^T + a I)^-1 y, Zw Zw^T = sum_b w_b^2 Z_b Z_b^T
            cuts = np.cumsum(self.blocks)[:-1]
            zs, hs = np.split(Z, cuts, axis=1), np.split(H, cuts, axis=1)
            self.kernels = [z @ z.T for z in zs]
            self.cross = [h @ z.T for h, z in zip(hs, zs, strict=True)]
        else:
            # both precisions once here, not per solve (``refined_solver``)
            gram, self.zty = Z.T @ Z, Z.T @ self.yc
            self.gram, self.gram32 = gram.astype(np.float64), gram.astype(np.float32)
            self.held = H  # the features' precision (``held_out``)
            # float32 features (the embeddings'): the float64 Gram holds float32 values, so
            # a copy of the float32 one in float64 is its own copy (``Bordered``)
            self.gram_is_32 = gram.dtype == np.float32
        # the last ``predictor(..., vary)``'s shared part: the Gram form's, the kernel form's
        self.bordered: Bordered | None = None
        self.rest_kernels: tuple[tuple, tuple[np.ndarray, np.ndarray]] | None = None

    def predict(self, block_weights: tuple[float, ...] | None = None) -> dict[float, np.ndarray]:
        """alpha -> held-out predictions, for every alpha of ``ALPHAS``."""
        at = self.predictor(block_weights)
        return {a: at(a) for a in ALPHAS}

    def predictor(self, block_weights: tuple[float, ...] | None = None, vary: int | None = None
                  ) -> Callable[[float], np.ndarray]:
        """alpha -> held-out predictions at these block weights: the weighted system is built
        once, and each alpha asked for is one Cholesky solve.

        ``vary``: the block the caller is moving while the other weights stay (the
        coordinate search's step). In the Gram form the other blocks' part of the system is
        then factored once per alpha and shared by every weight tried for that block
        (``Bordered``), so a weight costs a factorisation of its block alone; in the kernel
        form their kernel sum is kept."""
        bw = np.ones(len(self.blocks)) if block_weights is None else np.asarray(block_weights)
        if not bw.any():  # every block dropped: the mean
            return lambda alpha: np.zeros((self.n_held, len(self.y_mean))) + self.y_mean
        if vary is not None and not np.delete(bw, vary).any():
            vary = None  # the block alone: nothing of the others to share
        if self.dual:
            K, C = self.weighted_kernels(bw, vary)
            solve = float64_solver(K, np.ones(len(K)), self.yc)
            return lambda alpha: C @ solve(alpha) + self.y_mean
        if vary is not None:
            if self.bordered is None or self.bordered.key != Bordered.key_of(bw, vary):
                self.bordered = Bordered(self, bw, vary)
            at = self.bordered.predictor(bw[vary])
            return lambda alpha: at(alpha) + self.y_mean
        # a block of weight 0 is no columns at all (tone's search ends with 5 of 10)
        w = np.repeat(bw, self.blocks)
        on = np.flatnonzero(w)
        # (D G D + a I)^-1 D Z^T y with D = diag(w) predicts H D of it: the same as
        # H (G + a D^-2)^-1 Z^T y, the weights on the diagonal instead of on every entry
        if len(on) == len(w):
            K, K32, rhs, out = self.gram, self.gram32, self.zty, self.held
        else:  # np.take, not fancy indexing: 2-3x faster copies, the same entries
            K, K32 = take2(self.gram, on), take2(self.gram32, on)
            rhs, out = self.zty[on], np.take(self.held, on, axis=1)
        solve = refined_solver(K, K32, 1.0 / w[on] ** 2, rhs)
        return lambda alpha: held_out(out, solve(alpha)) + self.y_mean

    def weighted_kernels(self, bw: np.ndarray, vary: int | None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """(sum_b w_b^2 K_b, the same of the held-out cross kernels): the kernel form's
        system. With ``vary``, the other blocks' sums are kept for the next weight of that
        block, so a weight costs one scaled kernel added, not a sum over every block."""
        def sums(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            on = [(w * w, b) for b, w in enumerate(weights) if w]
            return (sum(w2 * self.kernels[b] for w2, b in on),
                    sum(w2 * self.cross[b] for w2, b in on))

        if vary is None:
            return sums(bw)
        key = Bordered.key_of(bw, vary)
        if self.rest_kernels is None or self.rest_kernels[0] != key:
            others = bw.copy()
            others[vary] = 0.0
            self.rest_kernels = key, sums(others)
        K, C = self.rest_kernels[1]
        w2 = bw[vary] * bw[vary]
        return (K + w2 * self.kernels[vary], C + w2 * self.cross[vary]) if w2 else (K, C)


def take2(M: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``M[np.ix_(idx, idx)]``, by two ``np.take``: 1.3-2.5x faster at 1,000 columns."""
    return np.take(np.take(M, idx, axis=0), idx, axis=1)


class Bordered:
    """An inner fold's Gram system with one block (``vary``) ordered last and the others'
    weights fixed, for any weight of that block and any alpha:

        [A  B] = [L  0] [L^T  W]     A = the other blocks (+ alpha on the diagonal), L L^T
        [B' C]   [W' M] [0   M^T]    W = L^-1 B, M M^T = C + alpha/w^2 I - W^T W

    Why: a block's weight moves only its own diagonal, so L and W (the other blocks: the
    cost of a whole factorisation) are the same for every weight the search tries for it at
    one alpha; a weight is then a factorisation of its own block (128 of ~1,000 columns).
    The search tries 1.5-2 weights a block visit, at 2-3 alphas each (the heads benchmark's
    10k clips): the factorisations of a visit fall to about its alphas'. Solved in float32 and
    refined once against the float64 system, as ``refined_solver`` (which says why); where
    that is not enough, the visit's solves at that alpha are all made in float64 (the same
    parts, factored once in float64: popularity's alpha 0.1 needs it)."""

    def __init__(self, fold: InnerFold, bw: np.ndarray, vary: int):
        self.key = self.key_of(bw, vary)
        starts = np.r_[0, np.cumsum(fold.blocks)]
        block = np.arange(starts[vary], starts[vary + 1])
        w = np.repeat(bw, fold.blocks)
        w[block] = 0.0
        rest = np.flatnonzero(w)
        order = np.r_[rest, block]
        self.n = len(rest)
        self.ridge = 1.0 / w[rest] ** 2
        K32 = take2(fold.gram32, order)
        self.K = {np.float32: K32,  # the float64 copy from it: 5x faster than a take of it
                  np.float64: K32.astype(np.float64) if fold.gram_is_32 else
                  take2(fold.gram, order)}
        self.rhs = fold.zty[order]
        self.held = np.take(fold.held, order, axis=1)
        self.parts: dict[tuple[float, type], tuple | None] = {}
        self.exact: set[float] = set()  # the alphas solved in float64

    @staticmethod
    def key_of(bw: np.ndarray, vary: int) -> tuple:
        """What the system depends on: the varied block and the other blocks' weights."""
        return vary, tuple(np.delete(bw, vary))

    def rest(self, alpha: float, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(L, W, C - W^T W) at ``alpha`` in ``dtype``, or None where float32 cannot factor A."""
        if (alpha, dtype) not in self.parts:
            n, K = self.n, self.K[dtype]
            A = K[:n, :n].copy()
            A.flat[::n + 1] += (alpha * self.ridge).astype(dtype)
            try:
                L = cholesky(A, lower=True, overwrite_a=True, check_finite=False)
            except np.linalg.LinAlgError:
                if dtype is np.float64:
                    raise
                self.parts[alpha, dtype] = None
            else:
                W = solve_triangular(L, K[:n, n:], lower=True, check_finite=False)
                self.parts[alpha, dtype] = L, W, K[n:, n:] - W.T @ W
        return self.parts[alpha, dtype]

    def solver(self, alpha: float, weight: float, dtype: type
               ) -> Callable[[np.ndarray], np.ndarray] | None:
        """v -> (the system at alpha and this weight of the block)^-1 v in ``dtype``, or None
        where float32 cannot factor it. Weight 0: the other blocks alone."""
        parts = self.rest(alpha, dtype)
        if parts is None:
            return None
        L, W, S = parts
        n = self.n
        if weight:
            M = S.copy()
            M.flat[::len(M) + 1] += dtype(alpha / weight ** 2)
            try:
                M = cholesky(M, lower=True, overwrite_a=True, check_finite=False)
            except np.linalg.LinAlgError:
                if dtype is np.float64:
                    raise
                return None

        def solve(v: np.ndarray) -> np.ndarray:
            v = v.astype(dtype)
            z = solve_triangular(L, v[:n], lower=True, check_finite=False)
            if not weight:
                return solve_triangular(L, z, lower=True, trans="T", check_finite=False)
            u = solve_triangular(M, v[n:] - W.T @ z, lower=True, check_finite=False)
            u = solve_triangular(M, u, lower=True, trans="T", check_finite=False)
            z = solve_triangular(L, z - W @ u, lower=True, trans="T", check_finite=False)
            return np.vstack([z, u])

        return solve

    def predictor(self, weight: float) -> Callable[[float], np.ndarray]:
        """alpha -> held-out predictions (less the mean) at this weight of the block."""
        m = len(self.rhs) - self.n if weight else 0  # weight 0: the other blocks alone
        n = self.n + m
        ridge = np.r_[self.ridge, np.full(m, 1.0 / weight ** 2 if m else 0.0)][:, None]
        K, rhs, held = self.K[np.float64][:n, :n], self.rhs[:n], self.held[:, :n]

        def solve(alpha: float) -> np.ndarray:
            if alpha not in self.exact:
                at = self.solver(alpha, weight, np.float32)
                x = None if at is None else refine_once(at, K, alpha * ridge, rhs)
                if x is not None:
                    return x
                self.exact.add(alpha)
            return self.solver(alpha, weight, np.float64)(rhs)

        return lambda alpha: held_out(held, solve(alpha))


def held_out(H: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The held-out predictions ``H x`` (less the mean), in the precision of the held-out
    features ``H``: float32 for embeddings.

    Why: the predictions are only ranked or averaged by the metrics, which float32's seven
    digits serve where the features hold no more (the solution ``x`` is refined to
    float64's, where the search needs it); the product over ~1,000 columns in float64 was a
    tenth of a search at 10k clips, 2.8x this one. Float64 features keep float64."""
    return H @ x.astype(H.dtype, copy=False)


def float64_solver(K: np.ndarray, ridge: np.ndarray, rhs: np.ndarray
                   ) -> Callable[[float], np.ndarray]:
    """alpha -> (K + alpha diag(ridge))^-1 rhs in float64: the kernel form's solves (a few
    hundred rows), where refinement's extra steps cost more than float32 saves (measured
    with refinement to 1e-7 in up to four steps: the 1k-clip heads 1.08x slower)."""
    buf = np.empty_like(K, dtype=np.float64)

    def solve(alpha: float) -> np.ndarray:
        np.copyto(buf, K)
        buf.flat[::len(K) + 1] += alpha * ridge
        return cho_solve_in_place(buf, rhs)

    return solve


def cho_solve_in_place(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A^-1 b for a symmetric positive definite float64 A (overwritten), by LAPACK's dpotrf
    and dpotrs: what ``cho_solve(cho_factor(A))`` calls, the same result, without SciPy's
    checks and dispatch around each call (the kernel form makes ~180k solves of a few
    hundred rows in the demo's probes, where those were a tenth of their time). Raises
    LinAlgError where A is not positive definite."""
    c, info = lapack.dpotrf(A, lower=0, overwrite_a=1, clean=0)
    if info:
        raise np.linalg.LinAlgError(f"potrf: info {info}")
    x, info = lapack.dpotrs(c, b, lower=0)
    if info:
        raise ValueError(f"potrs: info {info}")
    return x


REFINED_TOL = 1e-2  # the largest correction (relative) a float32 solve may need


def refined_solver(K: np.ndarray, K32: np.ndarray, ridge: np.ndarray, rhs: np.ndarray
                   ) -> Callable[[float], np.ndarray]:
    """alpha -> (K + alpha diag(ridge))^-1 rhs, factored in float32 and refined once.

    Why: the factorisations are half the heads' and probes' time, and one in float32 costs
    half one in float64 (1,152 columns, one thread). The Gram matrix is computed from
    float32 features, so it holds float32's accuracy whatever the solve's precision; one
    step of iterative refinement against the float64 system (a residual and two triangular
    solves, not another factorisation) takes the float32 solution most of the way to the
    float64 one. Where that step is larger than ``REFINED_TOL`` of the solution (a system
    too ill-conditioned for float32), or float32 cannot factor it, the solve is done in
    float64. Measured on the heads benchmark's 10k clips (one search on all clips a task):
    float32 alone ended popularity's search on other block weights (alpha 0.1); refined,
    all six made the float64 choices. ``K + alpha diag(ridge)`` is built in one reused
    buffer and factored in place: no new matrix per alpha (1.6x faster at 640 columns).
    """
    buf, rhs = np.empty_like(K32), np.asarray(rhs, np.float64)
    exact = float64_solver(K, ridge, rhs)

    def solve(alpha: float) -> np.ndarray:
        d = alpha * ridge
        np.copyto(buf, K32)
        buf.flat[::len(K32) + 1] += d.astype(np.float32)
        try:
            factor = cho_factor(buf, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            return exact(alpha)
        x = refine_once(lambda v: cho_solve(factor, v.astype(np.float32), check_finite=False),
                        K, d[:, None], rhs)
        return exact(alpha) if x is None else x

    return solve


def refine_once(solve32: Callable[[np.ndarray], np.ndarray], K: np.ndarray, d: np.ndarray,
                rhs: np.ndarray) -> np.ndarray | None:
    """(K + diag(d))^-1 rhs from a float32 solve and one refinement step against the float64
    system (``refined_solver`` says why), or None where that step is over ``REFINED_TOL`` of
    the solution (the caller solves in float64). ``d``: the diagonal, (rows, 1)."""
    x = solve32(rhs).astype(np.float64)
    step = solve32(rhs - K @ x - d * x)  # rhs: (rows, outputs)
    if np.linalg.norm(step) > REFINED_TOL * np.linalg.norm(x):
        return None
    return x + step


def walk(score_at: Callable[[int], float], start: int, n: int) -> dict[int, float]:
    """index -> score of the grid points 0..n-1 a walk from ``start`` tried: ``start`` and its
    neighbours, then one more step past an end of the tried run while that end scores the
    best of them (a tie included, so a plateau is walked to its end as a sweep would find it).

    Why: the coordinate search scores every candidate's block weights at each alpha, and a
    candidate's best alpha is nearly always its predecessor's or a neighbour. Where the score
    is unimodal in alpha (ridge's bias-variance curve), the walk finds the grid's best in
    3-4 solves instead of 6: measured on the heads benchmark's six tasks (10k clips, 1,152
    columns), 45% of the sweep's Cholesky solves, the same six heads and 1.95x faster. The
    search walks only where the inner folds have more rows than columns (the Gram form, whose
    solves cost the cube of the columns); with fewer rows (the kernel form: few titles, cheap
    solves) it sweeps every alpha, because there the score is often not unimodal: on 1k clips
    of 12 titles the walk moved clip-worthiness's cross-validated AP by 0.040."""
    lo, hi = max(start - 1, 0), min(start + 1, n - 1)
    tried = {i: score_at(i) for i in range(lo, hi + 1)}
    while True:
        top = max(tried.values())
        if lo > 0 and tried[lo] == top:
            lo -= 1
            tried[lo] = score_at(lo)
        elif hi < n - 1 and tried[hi] == top:
            hi += 1
            tried[hi] = score_at(hi)
        else:
            return tried


def choose(feats: Features, y: np.ndarray, groups: np.ndarray, metric: str,
           inner_folds: int = 3, seed: int = 0, max_passes: int = 3) -> Choice:
    """(option, block weights, alpha) by grouped CV on (features, y).

    A coordinate search, not a grid: the best option with equal block weights, then each
    block's weight in turn moved along ``BLOCK_WEIGHTS`` (the others fixed) while that scores
    better, every candidate scored with every alpha; then another pass over the blocks, until
    a pass changes nothing (at most ``max_passes``). Evaluations grow with options + blocks x
    weights x passes, not with their product. One pass was not enough: a block tried while
    another, noisier block still had full weight kept its weight (measured on the clean
    catalog, [fused ; context] for tone: video stayed at 1 beside the context block, 0.953
    out of fold against 0.964 for the weights a second pass finds). Titles become sorted
    codes: the same folds, and a within-title metric groups them without sorting names."""
    n_blocks = len(feats.blocks)
    choice = Choice(next(iter(feats.options)), (1.0,) * n_blocks, ALPHAS[len(ALPHAS) // 2])
    groups = np.unique(groups, return_inverse=True)[1]  # titles as codes (see above)
    folds = grouped_folds(groups, inner_folds, seed + 7919)
    if len(folds) < 2:
        return choice
    Y = _as_2d(y)
    cache: dict[str, list[InnerFold]] = {}
    scores: dict[tuple[str, tuple[float, ...]], float] = {}
    best = -np.inf

    def evaluate(option: str, weights: tuple[float, ...], vary: int | None = None) -> float:
        """The best score of (option, weights) over the alphas ``walk`` tries from the
        current choice's; the choice is updated."""
        nonlocal choice, best
        if (option, weights) in scores:
            return scores[option, weights]
        if option not in cache:
            X = feats.options[option]
            cache[option] = [InnerFold(X, Y, np.setdiff1d(np.arange(len(y)), f), f,
                                       feats.blocks) for f in folds]
        at = [fold.predictor(weights if feats.blocks else None, vary)
              for fold in cache[option]]

        def pred_at(i: int) -> np.ndarray:
            pred = np.zeros_like(Y)
            for fold_at, held in zip(at, folds, strict=True):
                pred[held] = fold_at(ALPHAS[i])
            return pred.reshape(y.shape)

        def score_at(i: int) -> float:
            s = score(metric, y, pred_at(i), groups)
            return s if np.isfinite(s) else -np.inf

        if any(fold.dual for fold in cache[option]):  # few rows: cheap solves, every alpha
            every = scores_of(metric, y, [pred_at(i) for i in range(len(ALPHAS))], groups)
            tried = {i: s if np.isfinite(s) else -np.inf for i, s in enumerate(every)}
        else:
            tried = walk(score_at, ALPHAS.index(choice.alpha), len(ALPHAS))
        for i in sorted(tried):  # the smallest alpha of a tie, as a sweep of the grid has it
            if tried[i] > best:
                choice, best = Choice(option, weights, ALPHAS[i]), tried[i]
        scores[option, weights] = max(tried.values())
        return scores[option, weights]

    for option in feats.options:
        evaluate(option, choice.block_weights)
    for _ in range(max_passes if n_blocks > 1 else 0):
        before = choice
        for b in range(n_blocks):
            start = choice.block_weights[b]
            for step in (1, -1):  # lower the weight while that helps, else raise it
                while True:
                    current = choice.block_weights
                    i = BLOCK_WEIGHTS.index(current[b]) + step
                    if not 0 <= i < len(BLOCK_WEIGHTS):
                        break
                    last = best
                    evaluate(choice.option, current[:b] + (BLOCK_WEIGHTS[i],) + current[b + 1:],
                             b)
                    if best <= last:
                        break
                if choice.block_weights[b] != start:
                    break  # lowered: no need to try raising it
        if choice == before:
            break
    return choice


def fit_predict(feats: Features, y: np.ndarray, groups: np.ndarray, train: np.ndarray,
                test: np.ndarray, metric: str, inner_folds: int = 3, seed: int = 0
                ) -> tuple[np.ndarray, Choice]:
    """Choose by grouped CV on the ``train`` rows only, refit on all of them, predict ``test``."""
    c = choose(feats.subset(train), y[train], groups[train], metric, inner_folds, seed)
    X = feats.options[c.option]
    model = Ridge(X[train], _as_2d(y[train]), feats.column_weights(c.block_weights))
    return model.predict(X[test], c.alpha).reshape((len(test), *y.shape[1:])), c


@dataclass(frozen=True)
class ProbeResult:
    mean: float
    std: float
    per_seed: tuple[float, ...]
    choices: tuple[Choice, ...]  # one per outer fit
    extra: dict[str, tuple[float, float]]  # other metrics on the same predictions: (mean, std)

    def chosen_option(self) -> str:
        """The option the inner CV chose most often ("" for single-option features)."""
        from collections import Counter

        return Counter(c.option for c in self.choices).most_common(1)[0][0]


def out_of_fold(feats: Features, y: np.ndarray, groups: np.ndarray, metric: str,
                n_folds: int = 5, seed: int = 0) -> tuple[np.ndarray, list[Choice]]:
    """Predictions for every row from a probe that never saw its title (grouped folds), and
    the choice made in each fold."""
    pred = np.zeros(y.shape, dtype=np.float64)
    choices = []
    for fold in range(len(grouped_folds(groups, n_folds, seed))):
        test, pred_test, choice = outer_fold(feats, y, groups, metric, n_folds, fold, seed)
        pred[test] = pred_test
        choices.append(choice)
    return pred, choices


def outer_fold(feats: Features, y: np.ndarray, groups: np.ndarray, metric: str, n_folds: int,
               fold: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Choice]:
    """(test rows, their predictions, the choice) of fold ``fold`` of ``out_of_fold``: one
    fold alone, so that the folds of one task can run side by side."""
    test = grouped_folds(groups, n_folds, seed)[fold]
    train = np.setdiff1d(np.arange(len(y)), test)
    pred, choice = fit_predict(feats, y, groups, train, test, metric, seed=seed)
    return test, pred, choice


def final_fit(feats: Features, y: np.ndarray, groups: np.ndarray, metric: str
              ) -> tuple[Choice, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(choice, coef, intercept, mean, scale): the choice by grouped CV on all clips, and the
    ridge refitted on them with it (coef on raw features: the standardisation folded in)."""
    choice = choose(feats, y, groups, metric)
    y2 = y.astype(np.float64).reshape(len(y), -1)
    ridge = Ridge(feats.options[choice.option], y2, feats.column_weights(choice.block_weights))
    w = ridge.coef(choice.alpha)  # (D, K)
    return (choice, w / ridge.std[:, None], ridge.y_mean - (ridge.mean / ridge.std) @ w,
            ridge.mean, ridge.std)


def nested_search(job: tuple) -> tuple:
    """One outer fold of a task's nested CV (``outer_fold``), or (fold None) its final fit
    (``final_fit``): the jobs ``heads.fit_heads`` runs side by side. Here, not in ``heads``,
    so that a worker process imports NumPy and SciPy, not torch (3 s a worker)."""
    feats, y, groups, metric, n_folds, fold = job
    if fold is None:
        return final_fit(feats, y, groups, metric)
    return outer_fold(feats, y, groups, metric, n_folds, fold)


def probe(X: np.ndarray | Features, y: np.ndarray, groups: np.ndarray, metric: str,
          n_folds: int = 5, seeds: tuple[int, ...] = (0, 1, 2),
          extra_metrics: tuple[str, ...] = ()) -> ProbeResult:
    """Out-of-fold metric of a linear probe, grouped by title, for several seeds.

    ``metric`` selects the regularisation (and the feature option and block weights);
    ``extra_metrics`` are reported on the same predictions (e.g. micro AP beside macro AP).
    """
    feats = X if isinstance(X, Features) else Features.of(X)
    results, choices, extra = [], [], {m: [] for m in extra_metrics}
    for seed in seeds:
        pred, fold_choices = out_of_fold(feats, y, groups, metric, n_folds, seed)
        choices += fold_choices
        results.append(score(metric, y, pred, groups))
        for m in extra_metrics:
            extra[m].append(score(m, y, pred, groups))
    return ProbeResult(float(np.mean(results)), float(np.std(results)), tuple(results),
                       tuple(choices),
                       {m: (float(np.mean(v)), float(np.std(v))) for m, v in extra.items()})


@dataclass(frozen=True)
class ProbeJob:
    """One (task, method) probe: the arguments of ``probe``, on the ``rows`` of ``feats`` (a
    method's features for every labelled clip: jobs share them, and each subsets its own)."""

    feats: Features
    rows: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    metric: str
    folds: int
    seeds: tuple[int, ...]
    extra: tuple[str, ...] = ()

    def run(self) -> ProbeResult:
        return probe(self.feats.subset(self.rows), self.y, self.groups, self.metric,
                     self.folds, self.seeds, self.extra)


def default_workers() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def _one_thread() -> None:
    """A worker of ``in_processes``: one math thread, and gone when its parent is."""
    from threadpoolctl import threadpool_limits

    from mediafm.jobs import exit_with_parent

    exit_with_parent()
    threadpool_limits(1)


def probe_jobs(jobs: list[ProbeJob], workers: int = 1) -> Iterator[ProbeResult]:
    """The results of ``jobs``, in order, from ``workers`` processes of one math thread each
    (``in_processes``)."""
    yield from in_processes(ProbeJob.run, jobs, workers)


def in_processes(fn: Callable, jobs: list, workers: int = 1) -> Iterator:
    """``fn`` of each job, in order, from ``workers`` processes of one math thread each.

    Why processes with one thread, not one process with all of them: a probe or a head is
    thousands of small Cholesky solves (a few hundred columns), which a threaded BLAS does
    no faster than one thread (12 vs 15 ms at 768 columns here; 27 ms on one thread against
    71 ms on two at 640), and two processes that each ask for every core make both 5-15x
    slower (OpenBLAS threads spin on each other). Independent jobs on one thread each use
    every core. ``workers <= 1``: in this process, as it is. ``fn`` must be importable (a
    module-level function) and the jobs picklable.
    """
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    # spawn, not fork: the parent may hold torch's and OpenMP's threads
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn"),
                             initializer=_one_thread) as pool:
        yield from pool.map(fn, jobs)
