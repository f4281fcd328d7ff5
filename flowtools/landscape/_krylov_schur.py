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


def _deflate(w, locked):
    """w orthogonalized against `locked`: the rows of one array, or of each of a tuple of mutually
    orthogonal arrays in turn."""
    for block in locked if isinstance(locked, tuple) else (locked,):
        w, _ = orthogonalize(w, block)
    return w


def _rows(locked) -> int:
    return sum(b.shape[0] for b in locked) if isinstance(locked, tuple) else locked.shape[0]


def _random_unit(rng, n, locked, basis):
    for _ in range(5):
        v = rng.standard_normal(n)
        v = _deflate(v, locked)
        v, _ = orthogonalize(v, basis)
        v = _deflate(v, locked)
        nv = vector_norm(v)
        if nv > 1e-8 * math.sqrt(n):
            return v / nv
    return None


def _extend(matvec, V, T, k, m, dim, locked, rng, stop_at_invariant=False, scale=0.0):
    """Extend the Lanczos basis V[:k+1] to V[:m+1], filling the projection T, with full
    reorthogonalization against `locked` (an array of orthonormal rows, or a tuple of such arrays) and
    the basis.

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
        w = _deflate(w, locked)
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
        # Relative to the operator's scale where it is known: on a deflated operator that is ~0 (every
        # eigenvalue already found) the couplings are round-off, and so would be a bound relative to them.
        if beta <= 1e-12 * max(np.max(np.abs(T[: j + 1, : j + 1])), scale, 1e-300):
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
                   budget, progress=None, top=None, spent=None):
    """Krylov–Schur for every eigenvalue below −tol, locking converged ones as it goes.

    Converged Ritz pairs below −tol are moved out of the active basis into the locked set (their coupling
    to the residual is below the convergence tolerance and is dropped), and every later Krylov vector is
    orthogonalized against them, so the search continues on the deflated operator without restarting.
    Stops when the smallest `min(nev, 4)` unlocked Ritz values have converged and the smallest of them is
    ≥ −tol ("complete"), when the active space is exhausted, or when `budget` products are used.
    `top` (a dict) collects the largest Ritz pairs of every cycle (`_keep_top`).

    `spent` = (S, n_old): an invariant subspace of H that an earlier round explored to the end (orthonormal
    rows S, orthogonal to the first `n_old` locked vectors, spanning the others): the round searches its
    orthogonal complement only (every eigenvalue of H in span S is an exact Ritz value of that round).
    The last element returned is such a pair for this round when it ended certified at an invariant
    subspace (the residual coupling β exactly 0), else None.
    """
    Q = locked_vecs
    vals = list(locked_vals)
    n0 = Q.shape[0]

    def deflation():
        return Q if spent is None else (Q[: spent[1]], spent[0], Q[n0:])

    V = np.zeros((ncv + 1, n))
    T = np.zeros((ncv + 1, ncv + 1))
    v = _random_unit(rng, n, deflation(), V[:0])
    if v is None:
        return vals, Q, True, len(vals), np.zeros(0), 0, scale, None
    V[0] = v
    k, used, lower = 0, 0, len(vals)
    while True:
        D = deflation()
        dim = n - _rows(D)
        m = max(min(ncv, dim, k + budget - used), k + 1)  # a large basis must not overrun the budget
        m, beta, exhausted, products = _extend(matvec, V, T, k, m, dim, D, rng, stop_at_invariant=True,
                                               scale=scale)
        used += products
        if m >= dim:
            exhausted = True
        theta, Y = np.linalg.eigh(0.5 * (T[:m, :m] + T[:m, :m].T))
        res = np.zeros(m) if exhausted else np.abs(beta * Y[m - 1, :])
        scale = max(scale, float(np.max(np.abs(theta))))
        if top is not None:
            _keep_top(top, theta, res)
        tol, ctol = rtol_zero * scale, conv_rtol * scale
        # Interlacing: Ritz values below −tol bound the count from below, converged or not.
        lower = max(lower, Q.shape[0] + int(np.sum(theta < -tol)))
        if progress is not None:  # what a count cut off by its deadline reports
            progress["lower"], progress["scale"] = max(progress.get("lower", 0), lower), scale
            # The values behind this cycle's bound, judged again when the scale has grown.
            progress.setdefault("bounds", []).append(list(vals) + list(theta[theta < -tol]))
        lock, n_before = 0, Q.shape[0]
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
            invariant = (V[:m], n_before) if certified and not exhausted and beta == 0.0 else None
            return vals, Q, bool(exhausted or certified), lower, theta[lock:], used, scale, invariant
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


#: The default basis of the locking rounds: as many vectors as fit in `BASIS_MAX_BYTES` (the basis and the
#: copy a restart makes of it, 16 bytes per vector entry), at most `BASIS_MAX_VECTORS`. A larger basis
#: restarts less often (each restart discards the unwanted part of the Krylov space, which the next cycle
#: has to rebuild with new products), and a round stops at an invariant subspace, so a basis larger than
#: needed costs nothing. On the planted saddle of 22 543 parameters (rank ≈ 145), the count took 646
#: products with the earlier basis of 40 vectors and 302 with this one. 4 GiB: 256 vectors up to 1 048 576
#: parameters (at 10⁶ the earlier 1 GiB allowed 134, below the planted saddle's rank, and the count
#: restarted).
BASIS_MAX_BYTES = 4 * 2**30
BASIS_MAX_VECTORS = 256


def default_basis_size(n: int, max_bytes: float = BASIS_MAX_BYTES) -> int:
    """The default number of Lanczos vectors of the locking rounds at n parameters within `max_bytes`."""
    return int(max(1, min(BASIS_MAX_VECTORS, max_bytes // (16 * max(n, 1)))))


#: The relative residual at which a largest Ritz value gives the spectral scale max|λ| (and is reported).
TOP_RTOL = 1e-6


def _keep_top(top, theta, res):
    """Keep the largest Ritz values of a cycle, their residuals, when they are larger than those kept."""
    k = top["k"]
    if theta.size >= k and (top.get("values") is None or theta[-1] >= top["values"][-1]):
        top["values"], top["residuals"] = theta[-k:].copy(), res[-k:].copy()


def _top_converged(top) -> bool:
    vals = top.get("values")
    return vals is not None and bool(np.all(top["residuals"] <= TOP_RTOL * np.maximum(np.abs(vals), 1e-300)))


class _TimeUp(Exception):
    """The wall-clock deadline of a Lanczos count passed."""


def lanczos_spectrum(matvec, n, *, rtol_zero, k, k_top, max_matvecs, ncv, conv_rtol, seed,
                      max_index, full_max=128, deadline=None, max_basis_bytes=BASIS_MAX_BYTES):
    """The Morse count by Krylov–Schur with locking (see `flowtools.landscape.spectrum`). `deadline`: a
    `time.perf_counter()` value after which no further product is computed; the count then stops with
    what it has, as a lower bound (`timed_out` True). `max_basis_bytes` sizes the default basis
    (`default_basis_size`). `scale_source` in the result says where the scale max|λ| came from."""
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
                      full_max=full_max, progress=(progress := {}), max_basis_bytes=max_basis_bytes)
    except _TimeUp:
        vals = progress.get("vals", [])
        top_vals = progress.get("top", progress.get("tops", {}).get("values"))
        top_vals = np.zeros(0) if top_vals is None else top_vals
        scale = progress.get("scale", 0.0)
        lam = np.sort(np.concatenate([np.array(vals, dtype=float), top_vals]))
        Q = progress.get("Q", empty)
        tol = rtol_zero * scale
        lower = max([int(np.sum(np.array(b, dtype=float) < -tol)) for b in progress.get("bounds", [])]
                    + [int(np.sum(np.array(vals, dtype=float) < -tol))])
        return dict(eigenvalues=lam, n_neg=lower, complete=False, scale=scale, tol=tol, unstable=Q.T,
                    rounds=progress.get("rounds", 0), all_resolved=False, timed_out=True,
                    scale_source="the count's Ritz values so far")


def _top_run(mv, n, k_top, ncv, rng, empty, budget):
    """The `k_top` largest eigenvalues by Krylov–Schur on −H (extreme, usually well separated: fast)."""
    return krylov_schur(lambda v: -mv(v), n, max(k_top, 1), ncv, lambda th: TOP_RTOL * np.maximum(np.abs(th), 1e-300),
                        rng, empty, budget)


def _count(mv, n_mv, n, rng, empty, *, rtol_zero, k, k_top, max_matvecs, ncv, conv_rtol, max_index,
           full_max, progress, max_basis_bytes=BASIS_MAX_BYTES):
    # 1. Small n: one Krylov space of dimension n (with restarts at invariant subspaces) gives all n
    #    eigenvalues.
    if n <= full_max:
        top = _top_run(mv, n, k_top, n, rng, empty, max_matvecs)
        top_vals = np.sort(-top.values)
        progress["top"] = top_vals
        if top.exhausted:
            lam = top_vals
            scale = float(np.max(np.abs(lam)))
            tol = rtol_zero * scale
            neg = lam < -tol
            vecs = top.vectors[:, ::-1][:, neg]
            return dict(eigenvalues=lam, n_neg=int(neg.sum()), complete=True, scale=scale, tol=tol,
                        unstable=vecs, rounds=0, all_resolved=True, timed_out=False,
                        scale_source="the whole spectrum")
        scale = float(np.max(np.abs(top_vals))) if top_vals.size else 0.0
        tops = dict(k=max(k_top, 1), values=top_vals, residuals=np.zeros(top_vals.size))
    else:
        # Above it the scale max|λ| comes from the largest Ritz values of the locking rounds themselves
        # (Lanczos converges at both ends of the spectrum), which saves the separate run of ~30 products;
        # tol grows with the scale as the rounds go, and every count is judged again at the final scale.
        scale, tops = 0.0, dict(k=max(k_top, 1))
    progress["scale"] = scale

    # 2. Krylov–Schur with locking for the eigenvalues below −tol; then verification rounds from fresh
    #    random vectors on the deflated operator until one of them locks nothing new.
    nev = max(k, 8)
    size = max(default_basis_size(n, max_basis_bytes) if ncv is None else ncv, nev + 32, 2 * nev + 1)
    vals, Q = [], empty
    complete, rest, rounds, bounds = False, np.zeros(0), 0, []
    progress["tops"], progress["bounds"] = tops, bounds
    # A round that ends at an invariant subspace K of H has all of H's eigenvalues in K as exact Ritz
    # values; the next (verification) round then searches K's orthogonal complement only, instead of
    # exploring K's positive part again. Used once: a verification round that locks more (repeated
    # negative eigenvalues) is followed by rounds on the plain deflated operator.
    spent, spent_rest, verified_on = None, np.zeros(0), None
    while n_mv[0] < max_matvecs and len(vals) < max_index:
        rounds += 1
        progress["rounds"] = rounds
        before = len(vals)
        vals, Q, complete, _, rest, _, scale, invariant = _lock_negative(
            mv, n, rtol_zero=rtol_zero, conv_rtol=conv_rtol, scale=scale, nev=nev, ncv=size, rng=rng,
            locked_vals=vals, locked_vecs=Q, budget=max_matvecs - n_mv[0], progress=progress,
            top=tops if n > full_max else None, spent=spent)
        if spent is not None:
            verified_on = n - spent[1] - spent[0].shape[0]
            rest = np.sort(np.concatenate([spent_rest, rest]))
        spent = None
        if not complete or len(vals) == before:
            break
        if invariant is not None and rounds == 1:
            spent, spent_rest = invariant, rest
    source = "the count's Ritz values" if n > full_max else "a separate run for the largest eigenvalues"
    if n > full_max and not _top_converged(tops) and n_mv[0] < max_matvecs:
        top = _top_run(mv, n, k_top, max(2 * k_top + 20, 30), rng, empty, max_matvecs - n_mv[0])
        tops.update(values=np.sort(-top.values), residuals=top.residuals[::-1])
        source = "a separate run for the largest eigenvalues (the count's own had not converged)"
    top_vals = tops.get("values", np.zeros(0))
    if top_vals.size:
        scale = max(scale, float(np.max(np.abs(top_vals))))
    tol = rtol_zero * scale
    # Judged again at the final scale: a value locked while the scale was still smaller may be a zero.
    neg = np.array(vals, dtype=float) < -tol
    vals, Q = [v for v, keep in zip(vals, neg) if keep], (Q[: neg.size][neg] if Q.shape[0] >= neg.size else Q)
    lower = max([int(np.sum(np.array(vals_then, dtype=float) < -tol)) for vals_then in bounds] + [len(vals)])
    n_neg = len(vals) if complete else lower
    bottom = np.sort(np.concatenate([np.array(vals), rest[: max(k, 1)]]))
    lam = np.concatenate([bottom, top_vals[top_vals > bottom[-1]] if bottom.size else top_vals])
    order = np.argsort(vals)
    return dict(eigenvalues=lam, n_neg=n_neg, complete=complete, scale=scale, tol=tol,
                unstable=Q.T[:, order] if Q.shape[0] == len(vals) else Q.T, rounds=rounds,
                all_resolved=False, timed_out=False, scale_source=source, verified_on=verified_on)
