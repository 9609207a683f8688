"""L2-regularised logistic regression on a sparse matrix that gives the same bits on every CPU.

The algorithm is liblinear's (scikit-learn's ``solver='liblinear'``, L2R_LR): trust-region Newton (TRON) with
conjugate-gradient steps on ``0.5 * |w|^2 + C * sum(log(1 + exp(-y * (x.w + b))))``, the bias penalised like a
weight (``intercept_scaling=1``), the same constants and stopping rule, so the coefficients agree with
liblinear's to solver tolerance. What differs is where the sums run: liblinear hands its dot products and norms
over the weight vector (2**20 entries) to the BLAS, whose kernel (chosen per CPU: Haswell, Zen, SkylakeX...) and
thread count set the order of the additions, so the last bits of the coefficients, and then the features and the
model, changed from machine to machine. Here every sum is a plain loop in numba-compiled code, in index order,
without fast-math (no reassociation, no fused multiply-add), so the order is fixed by the code.

Speed without changing a bit: the weights live in a compact vector over the hash buckets the rows use (about
half of them), each bucket keeping its lane of `_dot`'s four sums and its order within it (`_lane_positions`),
and both products run over one column-major copy of the matrix (columns in bucket order), so the random reads
and writes go to the rows' vector, which fits in cache, rather than to the 2**20 weights; a Hessian product and
its dot product, and each conjugate-gradient step and its norm, share one pass. One leave-one-collection-out
fold's two largest fits (135,544 rows): 60.6 s of CPU over three rounds before, 47.9 s after, coefficients equal
bit for bit (a scratch script; this machine's timings of the same fit vary by up to 2x between runs).
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
def _xv(colptr, rows, data, position, v, out):
    """out = X v. The columns come in bucket order and the bias last, so each row's sum gets its terms in the
    order of the row's buckets, as a row-by-row loop adds them; the reads of ``v`` go in order, the scattered
    writes to the rows' vector, which stays in cache."""
    out[:] = 0.0
    for j in range(colptr.size - 1):
        x = v[position[j]]
        for k in range(colptr[j], colptr[j + 1]):
            out[rows[k]] += data[k] * x


@njit(cache=True)
def _add_xtv(colptr, rows, data, position, v, a, out, b):
    """out = a + X^T v (each column's sum in row order, as a scatter over the rows adds it); returns
    `_dot(b, out)`, its four sums taken in `_dot`'s order: a column's lane is its position's, and within a lane
    the columns come in position order. Positions no column holds keep ``a``."""
    out[:] = a
    sums = np.zeros(4)
    for j in range(colptr.size - 1):
        total = 0.0
        for k in range(colptr[j], colptr[j + 1]):
            total += data[k] * v[rows[k]]
        p = position[j]
        x = a[p] + total
        out[p] = x
        sums[p % 4] += b[p] * x
    return (sums[0] + sums[1]) + (sums[2] + sums[3])


@njit(cache=True)
def _step_and_norm(y, alpha, x):
    """y += alpha * x in place; returns `_dot(y, y)` of the result (its sums in `_dot`'s order, one pass)."""
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, y.size, 4):  # y.size is a multiple of 4 (`_lane_positions`)
        y[i] += alpha * x[i]
        y[i + 1] += alpha * x[i + 1]
        y[i + 2] += alpha * x[i + 2]
        y[i + 3] += alpha * x[i + 3]
        s0 += y[i] * y[i]
        s1 += y[i + 1] * y[i + 1]
        s2 += y[i + 2] * y[i + 2]
        s3 += y[i + 3] * y[i + 3]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _fun(colptr, rows, data, position, y, c, w, z):
    _xv(colptr, rows, data, position, w, z)
    f = _dot(w, w) / 2.0
    for i in range(y.size):
        yz = y[i] * z[i]
        if yz >= 0:
            f += c * math.log(1 + math.exp(-yz))
        else:
            f += c * (-yz + math.log(1 + math.exp(yz)))
    return f


@njit(cache=True)
def _grad(colptr, rows, data, position, y, c, w, z, d, g):
    """Gradient at ``w`` (``z`` holds X w from the last `_fun`); leaves the Hessian's diagonal in ``d``."""
    for i in range(y.size):
        p = 1 / (1 + math.exp(-y[i] * z[i]))
        d[i] = p * (1 - p)
        z[i] = c * (p - 1) * y[i]
    _add_xtv(colptr, rows, data, position, z, w, g, w)


@njit(cache=True)
def _trcg(colptr, rows, data, position, c, d, delta, g, s, r, wa):
    """Conjugate gradient for the Newton step ``s`` inside the trust region (tron.cpp's trcg). The Hessian
    product H dd = dd + X^T (c d (X dd)) and its `_dot` with dd come from one pass, as do each step and its norm."""
    n = g.size
    dd = np.empty(n)
    hd = np.empty(n)
    for i in range(n):
        s[i] = 0.0
        r[i] = -g[i]
        dd[i] = r[i]
    cgtol = 0.1 * math.sqrt(_dot(g, g))
    rtr = _dot(r, r)
    while math.sqrt(rtr) > cgtol:
        _xv(colptr, rows, data, position, dd, wa)
        for i in range(wa.size):
            wa[i] = c * d[i] * wa[i]
        alpha = rtr / _add_xtv(colptr, rows, data, position, wa, dd, hd, dd)
        if math.sqrt(_step_and_norm(s, alpha, dd)) > delta:  # back to the boundary of the trust region
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
        rnew = _step_and_norm(r, -alpha, hd)  # r + (-alpha) hd is r - alpha hd, bit for bit
        beta = rnew / rtr
        for i in range(n):
            dd[i] = beta * dd[i] + r[i]
        rtr = rnew


@njit(cache=True)
def _tron(colptr, rows, data, position, y, c, eps, max_iter, w):
    """tron.cpp's outer loop; returns the number of accepted steps."""
    n = w.size
    z, d, wa = np.empty(y.size), np.empty(y.size), np.empty(y.size)
    g, s, r, w_new = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    w[:] = 0.0
    f = _fun(colptr, rows, data, position, y, c, w, z)
    _grad(colptr, rows, data, position, y, c, w, z, d, g)
    delta = math.sqrt(_dot(g, g))
    gnorm1 = delta
    it = 1
    search = delta > eps * gnorm1
    while it <= max_iter and search:
        _trcg(colptr, rows, data, position, c, d, delta, g, s, r, wa)
        for i in range(n):
            w_new[i] = w[i] + s[i]
        gs = _dot(g, s)
        prered = -0.5 * (gs - _dot(s, r))
        fnew = _fun(colptr, rows, data, position, y, c, w_new, z)
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
            _grad(colptr, rows, data, position, y, c, w, z, d, g)  # z holds X w_new from the accepted _fun
            if math.sqrt(_dot(g, g)) <= eps * gnorm1:
                break
        if f < -1.0e32 or (abs(actred) <= 0 and prered <= 0):
            break
        if abs(actred) <= 1.0e-12 * abs(f) and abs(prered) <= 1.0e-12 * abs(f):
            break
    return it - 1


def _lane_positions(buckets: np.ndarray, bias: int) -> tuple[np.ndarray, int]:
    """Where each used bucket (ascending), then the bias (index ``bias``), sits in the compact weight vector,
    and the vector's size (a multiple of 4). Each keeps its lane (index mod 4) and, within its lane, its order,
    so `_dot` over the compact vectors adds the same nonzero terms in the same order as over the full ones; the
    gaps hold zeros, which leave a sum's bits as they are."""
    indices = np.append(buckets, bias)
    positions = np.empty(indices.size, dtype=np.int64)
    size = 0
    for lane in range(4):
        mine = np.flatnonzero(indices % 4 == lane)
        positions[mine] = 4 * np.arange(mine.size) + lane
        size = max(size, mine.size)
    return positions, 4 * size


def fit_logistic(X: sp.csr_matrix, y: np.ndarray, C: float = 1.0, tol: float = 1e-4,
                 max_iter: int = 1000) -> tuple[np.ndarray, float, int]:
    """(coefficients, intercept, iterations) of liblinear's L2 logistic regression for labels ``y`` in {0, 1};
    the same bits for the same input on every CPU and thread count."""
    y = np.asarray(y)
    if not np.isin(y, (0, 1)).all() or len(np.unique(y)) != 2:
        raise ValueError("fit_logistic needs labels 0 and 1, both present")
    X = sp.csr_matrix(X, dtype=np.float64)
    X.sum_duplicates()
    buckets = np.unique(X.indices)  # a bucket no row uses keeps weight 0 throughout
    positions, size = _lane_positions(buckets, X.shape[1])
    used = sp.csr_matrix((X.data, np.searchsorted(buckets, X.indices), X.indptr), shape=(X.shape[0], buckets.size))
    columns = sp.hstack([used, sp.csr_matrix(np.ones((X.shape[0], 1)))], format="csc")  # the bias: a column of ones
    columns.sort_indices()  # each column's rows ascending: the order a row-by-row scatter adds them in
    signs = np.where(y == 1, 1.0, -1.0)
    positives = int((y == 1).sum())
    eps = tol * max(min(positives, len(y) - positives), 1) / len(y)  # liblinear's primal_solver_tol
    w = np.zeros(size)
    n_iter = _tron(columns.indptr.astype(np.int64), columns.indices.astype(np.int32), columns.data, positions,
                   signs, float(C), eps, max_iter, w)
    weights = np.zeros(X.shape[1] + 1)
    weights[np.append(buckets, X.shape[1])] = w[positions]
    return weights[:-1], float(weights[-1]), int(n_iter)
