"""L2-regularised logistic regression on a sparse matrix that gives the same bits on every CPU.

The algorithm is liblinear's (scikit-learn's ``solver='liblinear'``, L2R_LR): trust-region Newton (TRON) with
conjugate-gradient steps on ``0.5 * |w|^2 + C * sum(log(1 + exp(-y * (x.w + b))))``, the bias penalised like a
weight (``intercept_scaling=1``), the same constants and stopping rule, so the coefficients agree with
liblinear's to solver tolerance. What differs is where the sums run: liblinear hands its dot products and norms
over the weight vector (2**20 entries) to the BLAS, whose kernel (chosen per CPU: Haswell, Zen, SkylakeX...) and
thread count set the order of the additions, so the last bits of the coefficients, and then the features and the
model, changed from machine to machine. Here every sum is a plain loop in numba-compiled code, in index order,
without fast-math (no reassociation, no fused multiply-add), so the order is fixed by the code.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit

# liblinear's trust-region constants (tron.cpp)
ETA0, ETA1, ETA2 = 1e-4, 0.25, 0.75
SIGMA1, SIGMA2, SIGMA3 = 0.25, 0.5, 4.0


@njit(cache=True)
def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Four running sums (entries i mod 4), added pairwise at the end: an order the code fixes, which the
    compiler may put in vector lanes but not change."""
    s0 = s1 = s2 = s3 = 0.0
    n4 = a.size - a.size % 4
    for i in range(0, n4, 4):
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
    for i in range(n4, a.size):
        s0 += a[i] * b[i]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _xv(indptr, indices, data, v, out):
    """out = X v, with the bias as a last column of ones."""
    bias = v[v.size - 1]
    for i in range(indptr.size - 1):
        total = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            total += data[k] * v[indices[k]]
        out[i] = total + bias


@njit(cache=True)
def _xtv(indptr, indices, data, v, out):
    """out = X^T v (rows in order, so each entry's additions come in a fixed order)."""
    out[:] = 0.0
    bias = 0.0
    for i in range(indptr.size - 1):
        for k in range(indptr[i], indptr[i + 1]):
            out[indices[k]] += data[k] * v[i]
        bias += v[i]
    out[out.size - 1] = bias


@njit(cache=True)
def _fun(indptr, indices, data, y, c, w, z):
    _xv(indptr, indices, data, w, z)
    f = _dot(w, w) / 2.0
    for i in range(y.size):
        yz = y[i] * z[i]
        if yz >= 0:
            f += c * math.log(1 + math.exp(-yz))
        else:
            f += c * (-yz + math.log(1 + math.exp(yz)))
    return f


@njit(cache=True)
def _grad(indptr, indices, data, y, c, w, z, d, g):
    """Gradient at ``w`` (``z`` holds X w from the last `_fun`); leaves the Hessian's diagonal in ``d``."""
    for i in range(y.size):
        p = 1 / (1 + math.exp(-y[i] * z[i]))
        d[i] = p * (1 - p)
        z[i] = c * (p - 1) * y[i]
    _xtv(indptr, indices, data, z, g)
    for j in range(w.size):
        g[j] = w[j] + g[j]


@njit(cache=True)
def _hv(indptr, indices, data, c, d, s, hs, wa):
    _xv(indptr, indices, data, s, wa)
    for i in range(wa.size):
        wa[i] = c * d[i] * wa[i]
    _xtv(indptr, indices, data, wa, hs)
    for j in range(s.size):
        hs[j] = s[j] + hs[j]


@njit(cache=True)
def _trcg(indptr, indices, data, c, d, delta, g, s, r, wa):
    """Conjugate gradient for the Newton step ``s`` inside the trust region (tron.cpp's trcg)."""
    n = g.size
    dd = np.empty(n)
    hd = np.empty(n)
    for i in range(n):
        s[i] = 0.0
        r[i] = -g[i]
        dd[i] = r[i]
    cgtol = 0.1 * math.sqrt(_dot(g, g))
    rtr = _dot(r, r)
    while math.sqrt(_dot(r, r)) > cgtol:
        _hv(indptr, indices, data, c, d, dd, hd, wa)
        alpha = rtr / _dot(dd, hd)
        for i in range(n):
            s[i] += alpha * dd[i]
        if math.sqrt(_dot(s, s)) > delta:  # back to the boundary of the trust region
            for i in range(n):
                s[i] -= alpha * dd[i]
            std, sts, dtd = _dot(s, dd), _dot(s, s), _dot(dd, dd)
            dsq = delta * delta
            rad = math.sqrt(std * std + dtd * (dsq - sts))
            alpha = (dsq - sts) / (std + rad) if std >= 0 else (rad - std) / dtd
            for i in range(n):
                s[i] += alpha * dd[i]
                r[i] -= alpha * hd[i]
            break
        for i in range(n):
            r[i] -= alpha * hd[i]
        rnew = _dot(r, r)
        beta = rnew / rtr
        for i in range(n):
            dd[i] = beta * dd[i] + r[i]
        rtr = rnew


@njit(cache=True)
def _tron(indptr, indices, data, y, c, eps, max_iter, w):
    """tron.cpp's outer loop; returns the number of accepted steps."""
    n, rows = w.size, y.size
    z, d, wa = np.empty(rows), np.empty(rows), np.empty(rows)
    g, s, r, w_new = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    w[:] = 0.0
    f = _fun(indptr, indices, data, y, c, w, z)
    _grad(indptr, indices, data, y, c, w, z, d, g)
    delta = math.sqrt(_dot(g, g))
    gnorm1 = delta
    it = 1
    search = delta > eps * gnorm1
    while it <= max_iter and search:
        _trcg(indptr, indices, data, c, d, delta, g, s, r, wa)
        for i in range(n):
            w_new[i] = w[i] + s[i]
        gs = _dot(g, s)
        prered = -0.5 * (gs - _dot(s, r))
        fnew = _fun(indptr, indices, data, y, c, w_new, z)
        actred = f - fnew
        snorm = math.sqrt(_dot(s, s))
        if it == 1:
            delta = min(delta, snorm)
        alpha = SIGMA3 if fnew - f - gs <= 0 else max(SIGMA1, -0.5 * (gs / (fnew - f - gs)))
        if actred < ETA0 * prered:
            delta = min(max(alpha, SIGMA1) * snorm, SIGMA2 * delta)
        elif actred < ETA1 * prered:
            delta = max(SIGMA1 * delta, min(alpha * snorm, SIGMA2 * delta))
        elif actred < ETA2 * prered:
            delta = max(SIGMA1 * delta, min(alpha * snorm, SIGMA3 * delta))
        else:
            delta = max(delta, min(alpha * snorm, SIGMA3 * delta))
        if actred > ETA0 * prered:
            it += 1
            w[:] = w_new
            f = fnew
            _grad(indptr, indices, data, y, c, w, z, d, g)  # z holds X w_new from the accepted _fun
            if math.sqrt(_dot(g, g)) <= eps * gnorm1:
                break
        if f < -1.0e32 or (abs(actred) <= 0 and prered <= 0):
            break
        if abs(actred) <= 1.0e-12 * abs(f) and abs(prered) <= 1.0e-12 * abs(f):
            break
    return it - 1


def fit_logistic(X: sp.csr_matrix, y: np.ndarray, C: float = 1.0, tol: float = 1e-4,
                 max_iter: int = 1000) -> tuple[np.ndarray, float, int]:
    """(coefficients, intercept, iterations) of liblinear's L2 logistic regression for labels ``y`` in {0, 1};
    the same bits for the same input on every CPU and thread count."""
    y = np.asarray(y)
    if not np.isin(y, (0, 1)).all() or len(np.unique(y)) != 2:
        raise ValueError("fit_logistic needs labels 0 and 1, both present")
    X = sp.csr_matrix(X, dtype=np.float64)
    X.sum_duplicates()
    signs = np.where(y == 1, 1.0, -1.0)
    positives = int((y == 1).sum())
    eps = tol * max(min(positives, len(y) - positives), 1) / len(y)  # liblinear's primal_solver_tol
    w = np.zeros(X.shape[1] + 1)
    n_iter = _tron(X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data, signs, float(C), eps,
                   max_iter, w)
    return w[:-1].copy(), float(w[-1]), int(n_iter)
