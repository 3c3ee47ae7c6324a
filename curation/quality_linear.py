"""Small, dependency-light learners and metrics for the quality scorer (numpy + scipy only).

* `fit_logistic`: L2-regularised logistic regression on a dense matrix (Newton steps; for the ~25 document
  statistics of the combiner, fitted on a few hundred labelled documents).
* `fit_sparse_logistic`: the same on hashed n-gram counts (scipy sparse + `lbfgs`): the linear part of a fastText
  classifier without the low-rank embedding, which needs no tuning and is deterministic.
* `roc_auc`, `bootstrap_auc`, `stratified_folds`: the evaluation used by the tests and bench/quality.py.

Written here rather than taken from scikit-learn to keep the runtime dependencies to numpy/scipy (scipy
already comes with datasketch); each is a few lines and checked against the textbook definitions in
tests/test_quality.py.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain

import numpy as np
from scipy import sparse


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # tanh form: no overflow warning for large |z|


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, weight: np.ndarray | None = None,
                 iters: int = 50) -> tuple[np.ndarray, float]:
    """Weights and bias minimising mean weighted log-loss + l2/2·|w|² (the bias is not penalised)."""
    n, d = x.shape
    weight = np.ones(n) if weight is None else weight
    weight = weight / weight.mean()
    xb = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 1e-8
    for _ in range(iters):
        p = sigmoid(xb @ theta)
        grad = xb.T @ (weight * (p - y)) / n + reg * theta
        hess = (xb * (weight * p * (1 - p))[:, None]).T @ xb / n + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    return theta[:-1], float(theta[-1])


def count_matrix(id_lists: list[list[int]], buckets: int) -> sparse.csr_matrix:
    """Rows = documents, columns = hash buckets; each row L2-normalised (long and short docs weigh alike).

    Flattened with `itertools.chain` and normalised on the CSR arrays directly (was: a nested generator and a
    diagonal-matrix product; 1.5-1.7x faster on the bench documents). Same matrix to the last bit as before:
    the squared counts are integers, so their row sums are exact in any order; each value is still multiplied
    by 1/norm of its row; and each row keeps the descending column order that the diagonal product left (a
    matrix-vector product sums a row in storage order, and a different order moved scores in the last bit).
    """
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    indptr = np.zeros(len(id_lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(indptr[-1]))
    m = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(id_lists), buckets))
    m.sum_duplicates()
    counts = np.diff(m.indptr)
    sq = np.zeros(len(id_lists))
    rows = counts > 0
    sq[rows] = np.add.reduceat(m.data * m.data, m.indptr[:-1][rows])
    norms = np.sqrt(sq)
    norms[norms == 0] = 1.0
    m.data *= np.repeat(1.0 / norms, counts)
    # sum_duplicates sorted each row ascending: reverse every row in place (position p of row r takes the
    # entry at indptr[r] + indptr[r+1] - 1 - p)
    row_of = np.repeat(np.arange(len(id_lists)), counts)
    order = m.indptr[row_of] + m.indptr[row_of + 1] - 1 - np.arange(len(m.indices))
    return sparse.csr_matrix((m.data[order], m.indices[order], m.indptr), shape=m.shape)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Vector dot product without BLAS: OpenBLAS's threaded ddot on 60k-long vectors was 7x slower than this
    on a loaded 2-core machine (thread contention; measured 12.7 s vs 1.9 s for one fit)."""
    return float(np.multiply(a, b).sum())


def fit_sparse_logistic(m: sparse.csr_matrix, y: np.ndarray, l2: float,
                        weight: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Logistic regression on a sparse matrix (L-BFGS); returns dense weights (zero for unseen buckets)."""
    n, full = m.shape
    # Only columns seen in training can get a non-zero weight (L2 keeps the others at 0): optimise over those
    # alone, 5-20x fewer variables than hash buckets, which is what L-BFGS-B's cost scales with.
    seen = np.unique(m.indices)
    m = m[:, seen]
    d = len(seen)
    weight = np.ones(n) if weight is None else weight / weight.mean()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = m @ w + b
        # log(1 + e^z) - y z, computed stably
        nll = np.logaddexp(0.0, z) - y * z
        r = weight * (sigmoid(z) - y) / n
        grad = np.concatenate([m.T @ r + l2 * w, [r.sum()]])
        return float((weight * nll).mean() + 0.5 * l2 * _dot(w, w)), grad

    theta = lbfgs(loss, np.zeros(d + 1))
    w = np.zeros(full)
    w[seen] = theta[:-1]
    return w, float(theta[-1])


def lbfgs(fun: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray, memory: int = 10,
          iters: int = 300, tol: float = 1e-6) -> np.ndarray:
    """Minimise a smooth convex `fun(x) -> (value, gradient)` by L-BFGS with a backtracking line search.

    Our own few lines instead of scipy's L-BFGS-B: that one spent ~0.3 s per iteration on 60k variables
    here (its bound handling), this one ~5 ms.
    """
    f, g = fun(x)
    hist: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(iters):
        # Two-loop recursion: direction = -H g with the last `memory` (s, y) pairs.
        q = g.copy()
        alphas = []
        for s_, y_, rho in reversed(hist):
            a = rho * _dot(s_, q)
            alphas.append(a)
            q -= a * y_
        if hist:
            s_, y_, _ = hist[-1]
            q *= _dot(s_, y_) / _dot(y_, y_)
        for (s_, y_, rho), a in zip(hist, reversed(alphas)):
            q += s_ * (a - rho * _dot(y_, q))
        direction = -q
        slope = _dot(g, direction)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            hist.clear()
            direction, slope = -g, -_dot(g, g)
        step = 1.0 if hist else 1.0 / max(1.0, float(np.abs(g).max()))
        while True:
            x_new = x + step * direction
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s_vec, y_vec = x_new - x, g_new - g
        if _dot(s_vec, y_vec) > 1e-12:
            hist.append((s_vec, y_vec, 1.0 / _dot(s_vec, y_vec)))
            hist = hist[-memory:]
        x, f_old, f, g = x_new, f, f_new, g_new
        if np.abs(g).max() < tol or abs(f_old - f) < tol * max(1.0, abs(f)) * 1e-3:
            break
    return x


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties = 1/2."""
    y = np.asarray(y).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        raise ValueError("ROC-AUC needs both positive and negative labels")
    # Imported here, not at module level: scipy.stats costs ~0.9 s to import (most of a fresh process's
    # start-up cost for the curation stages), and only the evaluation code needs it, never scoring.
    from scipy.stats import rankdata

    ranks = rankdata(s)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def bootstrap_auc(y: np.ndarray, s: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the AUC over `n` resamples of the documents (stratified by label)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    s = np.asarray(s)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    aucs = []
    for _ in range(n):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        aucs.append(roc_auc(y[idx], s[idx]))
    lo, hi = np.percentile(aucs, [2.5, 97.5])
    return float(lo), float(hi)


def stratified_folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """`k` disjoint index arrays covering all rows, each with about the same share of positives."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        for i, j in enumerate(idx):
            folds[i % k].append(int(j))
    return [np.array(sorted(f)) for f in folds]
