"""Krylov–Schur Lanczos for the ends of a symmetric spectrum (Stewart 2001): full reorthogonalization,
thick restarts, and locking by deflation of the eigenvalues below −tol, the Morse-index count of
`hessian_spectrum`'s "lanczos" method (the count and its limits: `flowtools.landscape.spectrum`).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ._kernels import orthogonalize, vector_norm


def _random_unit(rng, n, locked, basis):
    for _ in range(5):
        v = rng.standard_normal(n)
        v, _ = orthogonalize(v, locked)
        v, _ = orthogonalize(v, basis)
        v, _ = orthogonalize(v, locked)
        nv = vector_norm(v)
        if nv > 1e-8 * math.sqrt(n):
            return v / nv
    return None


def _extend(matvec, V, T, k, m, dim, locked, rng, stop_at_invariant=False):
    """Extend the Lanczos basis V[:k+1] to V[:m+1], filling the projection T, with full
    reorthogonalization against `locked` and the basis.

    At an invariant subspace the basis continues with a fresh random vector, coupling 0; where none is
    left (the active space of dimension `dim` is spanned) it stops early. With `stop_at_invariant` it
    returns at the invariant subspace (the fresh vector in place, β = 0), so that the caller judges its
    exact Ritz pairs before spending products on the fresh vector. Returns (m, β, exhausted, products):
    the basis size reached, the last coupling, whether it stopped early, and the number of
    matrix-vector products used.
    """
    n = V.shape[1]
    beta = 0.0
    for j in range(k, m):
        w = matvec(V[j])
        w, _ = orthogonalize(w, locked)
        # The couplings T[:j, j] to the earlier vectors are known (T is symmetric): subtract them and the
        # diagonal term first, so that the full Gram–Schmidt pass only removes the round-off left over and
        # its second pass is rarely needed (the basis is read once per step instead of twice).
        known = np.flatnonzero(T[:j, j])
        h = np.zeros(j + 1)
        if known.size:
            h[known] = T[known, j]
            w = w - np.einsum("i,ij->j", h[known], V[known])
        h[j] = float(np.einsum("i,i->", V[j], w))
        w = w - h[j] * V[j]
        w, corr = orthogonalize(w, V[: j + 1])
        h += corr
        T[: j + 1, j] = h
        T[j, : j + 1] = h
        beta = vector_norm(w)
        if beta <= 1e-12 * max(np.max(np.abs(T[: j + 1, : j + 1])), 1e-300):
            beta = 0.0
            v = None if j + 1 >= dim else _random_unit(rng, n, locked, V[: j + 1])
            if v is None:
                return j + 1, beta, True, j + 1 - k
            V[j + 1] = v
            T[j + 1, j] = T[j, j + 1] = 0.0
            if stop_at_invariant:
                return j + 1, beta, False, j + 1 - k
        else:
            V[j + 1] = w / beta
            T[j + 1, j] = T[j, j + 1] = beta
    return m, beta, False, m - k


@dataclasses.dataclass
class _RitzResult:
    values: np.ndarray
    vectors: np.ndarray  # (n, nev)
    residuals: np.ndarray
    converged: np.ndarray
    exhausted: bool  # the Krylov space became invariant: Ritz pairs are exact eigenpairs


def krylov_schur(matvec, n, nev, ncv, conv_tol, rng, locked, budget):
    """The `nev` smallest eigenpairs of H restricted to the orthogonal complement of `locked` (rows).

    Lanczos with full reorthogonalization and Krylov–Schur restarts (Stewart 2001), stopping when every
    wanted Ritz pair has residual ≤ conv_tol(values) or after `budget` matrix-vector products.
    """
    dim = n - locked.shape[0]
    ncv = min(ncv, dim)
    nev = min(nev, ncv)
    V = np.zeros((ncv + 1, n))
    T = np.zeros((ncv + 1, ncv + 1))
    v = _random_unit(rng, n, locked, V[:0])
    if v is None:
        return _RitzResult(np.zeros(0), np.zeros((n, 0)), np.zeros(0), np.zeros(0, bool), True)
    V[0] = v
    k, used = 0, 0
    while True:
        m, beta, exhausted, products = _extend(matvec, V, T, k, ncv, dim, locked, rng)
        used += products
        S = 0.5 * (T[:m, :m] + T[:m, :m].T)
        theta, Y = np.linalg.eigh(S)
        res = np.abs(beta * Y[m - 1, :])
        if m >= dim and not exhausted:
            exhausted = beta == 0.0 or m == dim
        if exhausted:
            res = np.zeros_like(res)
        want = m if exhausted else min(nev, m)
        conv = res[:want] <= conv_tol(theta[:want])
        if exhausted or conv.all() or used >= budget:
            X = V[:m].T @ Y[:, :want]
            return _RitzResult(theta[:want], X, res[:want], conv, exhausted)
        # Restart: keep the wanted Ritz vectors plus half of the rest (ARPACK's heuristic).
        keep = min(want + max((m - want) // 2, 1), m - 1)
        newV = Y[:, :keep].T @ V[:m]
        V[:keep] = newV
        V[keep] = V[m]
        V[keep + 1 :] = 0.0
        T[:] = 0.0
        T[np.arange(keep), np.arange(keep)] = theta[:keep]
        T[keep, :keep] = T[:keep, keep] = beta * Y[m - 1, :keep]
        k = keep


def _lock_negative(matvec, n, *, rtol_zero, conv_rtol, scale, nev, ncv, rng, locked_vals, locked_vecs,
                   budget, progress=None):
    """Krylov–Schur for every eigenvalue below −tol, locking converged ones as it goes.

    Converged Ritz pairs below −tol are moved out of the active basis into the locked set (their coupling
    to the residual is below the convergence tolerance and is dropped), and every later Krylov vector is
    orthogonalized against them, so the search continues on the deflated operator without restarting.
    Stops when the smallest `min(nev, 4)` unlocked Ritz values have converged and the smallest of them is
    ≥ −tol ("complete"), when the active space is exhausted, or when `budget` products are used.
    """
    Q = locked_vecs
    vals = list(locked_vals)
    V = np.zeros((ncv + 1, n))
    T = np.zeros((ncv + 1, ncv + 1))
    v = _random_unit(rng, n, Q, V[:0])
    if v is None:
        return vals, Q, True, len(vals), np.zeros(0), 0, scale
    V[0] = v
    k, used, lower = 0, 0, len(vals)
    while True:
        dim = n - Q.shape[0]
        m = max(min(ncv, dim, k + budget - used), k + 1)  # a large basis must not overrun the budget
        m, beta, exhausted, products = _extend(matvec, V, T, k, m, dim, Q, rng, stop_at_invariant=True)
        used += products
        if m >= dim:
            exhausted = True
        theta, Y = np.linalg.eigh(0.5 * (T[:m, :m] + T[:m, :m].T))
        res = np.zeros(m) if exhausted else np.abs(beta * Y[m - 1, :])
        scale = max(scale, float(np.max(np.abs(theta))))
        tol, ctol = rtol_zero * scale, conv_rtol * scale
        # Interlacing: Ritz values below −tol bound the count from below, converged or not.
        lower = max(lower, Q.shape[0] + int(np.sum(theta < -tol)))
        if progress is not None:  # what a count cut off by its deadline reports
            progress["lower"], progress["scale"] = max(progress.get("lower", 0), lower), scale
        lock = 0
        while lock < m and res[lock] <= ctol and theta[lock] < -tol:
            lock += 1
        if lock:
            vals += list(theta[:lock])
            X = V[:m].T @ Y[:, :lock]
            Qn, _ = np.linalg.qr(np.vstack([Q, X.T]).T)
            Q = Qn.T.copy()
            if progress is not None:
                progress["vals"], progress["Q"] = list(vals), Q
        check = min(nev, 4, m - lock)
        certified = check > 0 and np.all(res[lock: lock + check] <= ctol) and theta[lock] >= -tol
        if exhausted or certified or used >= budget:
            return vals, Q, bool(exhausted or certified), lower, theta[lock:], used, scale
        # Restart: keep the wanted unlocked Ritz vectors plus half of the rest.
        keep_end = min(lock + nev + max((m - lock - nev) // 2, 1), m - 1)
        kk = keep_end - lock
        newV = Y[:, lock:keep_end].T @ V[:m]
        last = V[m].copy()
        V[:] = 0.0
        V[:kk] = newV
        V[kk] = last
        T[:] = 0.0
        T[np.arange(kk), np.arange(kk)] = theta[lock:keep_end]
        T[kk, :kk] = T[:kk, kk] = beta * Y[m - 1, lock:keep_end]
        k = kk


#: The default basis of the locking rounds: as many vectors as fit in `BASIS_MAX_BYTES`, at most
#: `BASIS_MAX_VECTORS`. A larger basis restarts less often (each restart discards the unwanted part of the
#: Krylov space, which the next cycle has to rebuild with new products), and a round stops at an invariant
#: subspace, so a basis larger than needed costs nothing. On the planted saddle of 22 543 parameters
#: (rank ≈ 145), the count took 646 products with the earlier basis of 40 vectors and 302 with this one.
BASIS_MAX_BYTES = 2**30
BASIS_MAX_VECTORS = 256


def default_basis_size(n: int) -> int:
    """The default number of Lanczos vectors of the locking rounds at n parameters."""
    return int(max(1, min(BASIS_MAX_VECTORS, BASIS_MAX_BYTES // (8 * max(n, 1)))))


class _TimeUp(Exception):
    """The wall-clock deadline of a Lanczos count passed."""


def lanczos_spectrum(matvec, n, *, rtol_zero, k, k_top, max_matvecs, ncv, conv_rtol, seed,
                      max_index, full_max=128, deadline=None):
    """The Morse count by Krylov–Schur with locking (see `flowtools.landscape.spectrum`). `deadline`: a
    `time.perf_counter()` value after which no further product is computed; the count then stops with
    what it has, as a lower bound (`timed_out` True)."""
    rng = np.random.default_rng(seed)
    empty = np.zeros((0, n))
    n_mv = [0]

    def mv(v):
        if deadline is not None and time.perf_counter() > deadline:
            raise _TimeUp
        n_mv[0] += 1
        return matvec(v)

    try:
        return _count(mv, n_mv, n, rng, empty, rtol_zero=rtol_zero, k=k, k_top=k_top,
                      max_matvecs=max_matvecs, ncv=ncv, conv_rtol=conv_rtol, max_index=max_index,
                      full_max=full_max, progress=(progress := {}))
    except _TimeUp:
        vals = progress.get("vals", [])
        top_vals = progress.get("top", np.zeros(0))
        scale = progress.get("scale", 0.0)
        lam = np.sort(np.concatenate([np.array(vals, dtype=float), top_vals]))
        Q = progress.get("Q", empty)
        return dict(eigenvalues=lam, n_neg=max(len(vals), progress.get("lower", 0)), complete=False,
                    scale=scale, tol=rtol_zero * scale, unstable=Q.T, rounds=progress.get("rounds", 0),
                    all_resolved=False, timed_out=True)


def _count(mv, n_mv, n, rng, empty, *, rtol_zero, k, k_top, max_matvecs, ncv, conv_rtol, max_index,
           full_max, progress):

    # 1. The largest eigenvalues (extreme, usually well separated: fast), for the scale max|λ|.
    # Small n: one Krylov space of dimension n (with restarts at invariant subspaces) gives everything.
    top = krylov_schur(lambda v: -mv(v), n, max(k_top, 1), n if n <= full_max else max(2 * k_top + 20, 30),
                        lambda th: 1e-6 * np.maximum(np.abs(th), 1e-300), rng, empty, max_matvecs)
    top_vals = np.sort(-top.values)
    progress["top"] = top_vals
    if top.exhausted:
        # The Krylov space is the whole space: these are all n eigenvalues.
        lam = top_vals
        scale = float(np.max(np.abs(lam)))
        tol = rtol_zero * scale
        neg = lam < -tol
        vecs = top.vectors[:, ::-1][:, neg]
        return dict(eigenvalues=lam, n_neg=int(neg.sum()), complete=True, scale=scale, tol=tol,
                    unstable=vecs, rounds=0, all_resolved=True, timed_out=False)
    scale = float(np.max(np.abs(top_vals))) if top_vals.size else 0.0
    progress["scale"] = scale

    # 2. Krylov–Schur with locking for the eigenvalues below −tol; then verification rounds from fresh
    #    random vectors on the deflated operator until one of them locks nothing new.
    nev = max(k, 8)
    size = max(default_basis_size(n) if ncv is None else ncv, nev + 32, 2 * nev + 1)
    vals, Q = [], empty
    complete, lower, rest, rounds = False, 0, np.zeros(0), 0
    while n_mv[0] < max_matvecs and len(vals) < max_index:
        rounds += 1
        progress["rounds"] = rounds
        before = len(vals)
        vals, Q, complete, low, rest, _, scale = _lock_negative(
            mv, n, rtol_zero=rtol_zero, conv_rtol=conv_rtol, scale=scale, nev=nev, ncv=size, rng=rng,
            locked_vals=vals, locked_vecs=Q, budget=max_matvecs - n_mv[0], progress=progress)
        lower = max(lower, low)
        if not complete or len(vals) == before:
            break
    tol = rtol_zero * scale
    n_neg = len(vals) if complete else max(len(vals), lower)
    bottom = np.sort(np.concatenate([np.array(vals), rest[: max(k, 1)]]))
    lam = np.concatenate([bottom, top_vals[top_vals > bottom[-1]] if bottom.size else top_vals])
    order = np.argsort(vals)
    return dict(eigenvalues=lam, n_neg=n_neg, complete=complete, scale=scale, tol=tol,
                unstable=Q.T[:, order] if Q.shape[0] == len(vals) else Q.T, rounds=rounds,
                all_resolved=False, timed_out=False)
