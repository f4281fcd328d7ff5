"""Hessian spectra, Morse signatures and Morse indices.

Two methods:

- **dense**: the exact Hessian (Hessian-vector products of unit vectors, 16 at a time, jitted) and
  `numpy.linalg.eigh`. Every eigenvalue and eigenvector; cost O(n²) memory and O(n³) time.
- **lanczos**: Hessian-vector products only (forward-over-reverse, jitted), fed to our own Krylov–Schur
  Lanczos (full reorthogonalization, thick restarts, locking by deflation). It finds the eigenvalues at
  the two ends of the spectrum: all eigenvalues below −tol (so the Morse index), `k` more of the smallest,
  and the `k_top` largest. Memory O(n·ncv); time is dominated by the Hessian-vector products.

**The automatic choice** ("auto") follows cost and completeness. Dense up to `dense_max` = 4096
parameters: there one dense spectrum costs less than a Lanczos count that has to resolve a continuum of
negative eigenvalues (at 2 410 parameters on the digits net, Lanczos took 37 s for a lower bound of 57
where dense eigh gave the exact 288). Above it, Lanczos (memory O(n·k)), and when its count stays
incomplete within `max_matvecs`, the dense spectrum if it fits in `max_dense_bytes`; otherwise the result
is the lower bound, with `complete=False`, the message and a `RuntimeWarning` saying so. Nothing keeps a
dense Hessian above `max_dense_bytes`.

**Zero tolerance.** An eigenvalue counts as zero when |λ| ≤ tol = `rtol_zero` · max|λ| (default
`rtol_zero` = 1e-7). At a critical point refined to ‖∇L‖ ≤ 1e-12, the eigenvalue along a line of critical
points is about ‖∇L‖ / (smallest nonzero |λ|) ≈ 1e-9 of the scale, well inside the band; genuine curvatures
smaller than 1e-7 of the largest are reported as zero. Pass another `rtol_zero` when that matters.
When the signature changes as `rtol_zero` moves by 10× either way (eigenvalues spread continuously down to
zero, as on real data; or exact zero directions next to tiny curvatures), `Spectrum.rtol_sensitivity`
holds the two other signatures and a `ZeroToleranceWarning` says so. Constant input features (blank
pixels) add exact zero directions; `constant_features` counts them.

**How the Lanczos count works, and its limits.** The Morse index is n_neg = #{λ < −tol}.

1. Cauchy interlacing: the i-th smallest Ritz value of any subspace is ≥ the i-th smallest eigenvalue, so
   the number of Ritz values below −tol is a rigorous lower bound on n_neg (up to round-off), whatever
   the convergence.
2. We run Krylov–Schur for the `nev` smallest eigenvalues, lock the converged ones below −tol (deflate:
   every later Krylov vector is orthogonalized against them), and start again from a fresh random vector
   on the deflated operator; `nev` doubles while every wanted Ritz value is still negative. This finds
   copies of repeated eigenvalues, which a single Krylov sequence cannot.
3. The count is declared complete when a round on the deflated operator converges to a smallest Ritz value
   ≥ −tol. That step is probabilistic, as all Krylov methods are: an eigenvalue whose eigenvector is
   (numerically) orthogonal to the random start is missed with probability ≈ 0. When the budget
   (`max_matvecs`) runs out first, `complete` is False and n_neg is the lower bound of point 1.

The method resolves eigenvalues that are separated from the rest of the spectrum relative to its width.
At a random point of a large network the negative eigenvalues form a dense continuum of hundreds or
thousands; there the exact index is out of reach for any Krylov method, and
`estimate_negative_count` (stochastic Lanczos quadrature) gives an estimate with a standard error.
Zero eigenvalues lie inside the spectrum when n_neg > 0, so Lanczos does not count them: its signature is
(n_neg, None, None) unless the whole spectrum was resolved (n ≤ the basis size).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from threadpoolctl import threadpool_limits

from .. import _checks
from ..problem import Problem, dense_hessian_fn

__all__ = ["Spectrum", "hessian_spectrum", "morse_index", "signature", "estimate_negative_count",
           "DEFAULT_RTOL_ZERO", "ZeroToleranceWarning", "constant_features", "spectrum_or_fallback"]

#: Default relative tolerance for a zero eigenvalue: |λ| ≤ DEFAULT_RTOL_ZERO · max|λ|.
DEFAULT_RTOL_ZERO = 1e-7

_METHODS = ("auto", "dense", "lanczos")


class ZeroToleranceWarning(UserWarning):
    """The Morse signature changes when `rtol_zero` moves by a factor of 10 either way."""


@dataclasses.dataclass
class Spectrum:
    """The (partial) Hessian spectrum at one point and its Morse signature.

    **Fields:**

    - `eigenvalues`: ascending. All n for "dense"; for "lanczos" the computed smallest ones (every one
      below −tol and at least `k` in all) followed by the `k_top` largest.
    - `signature`: (n_neg, n_zero, n_pos); entries the method could not determine are None.
    - `tol_zero`: the absolute threshold used, `rtol_zero` · `scale`; `scale` is max|λ|.
    - `unstable_vectors`: orthonormal eigenvectors of the negative eigenvalues, shape (n, n_neg).
    - `zero_vectors`: eigenvectors of the zero eigenvalues, shape (n, n_zero) ("dense" only, else None).
    - `complete`: whether n_neg is exact (always for "dense"; see the module notes for "lanczos").
    - `method`, `matvecs` (Hessian-vector products used), `wall_time`, `message`.
    """

    eigenvalues: np.ndarray
    signature: tuple
    tol_zero: float
    rtol_zero: float
    scale: float
    unstable_vectors: np.ndarray
    zero_vectors: np.ndarray | None
    complete: bool
    method: str
    n_params: int
    matvecs: int = 0
    wall_time: float = 0.0
    message: str = ""
    #: The signatures at rtol_zero/10 and 10·rtol_zero, when either differs from `signature` (the
    #: zero count then depends on the threshold); None when both agree.
    rtol_sensitivity: tuple | None = None

    @property
    def morse_index(self) -> int:
        """The number of negative eigenvalues n_neg (a lower bound when `complete` is False)."""
        return int(self.signature[0])

    @property
    def n_neg(self) -> int:
        return int(self.signature[0])

    @property
    def n_zero(self) -> int | None:
        return self.signature[1]

    @property
    def degenerate(self) -> bool | None:
        """Whether some eigenvalue is zero (None when unknown)."""
        return None if self.signature[1] is None else self.signature[1] > 0

    @property
    def min_eigenvalue(self) -> float:
        return float(self.eigenvalues[0])

    @property
    def max_eigenvalue(self) -> float:
        return float(self.eigenvalues[-1])

    def to_dict(self, *, vectors: bool = False) -> dict:
        """A JSON-ready dict (eigenvectors only with `vectors=True`)."""
        out = dict(eigenvalues=self.eigenvalues.tolist(), signature=list(self.signature),
                   tol_zero=self.tol_zero, rtol_zero=self.rtol_zero, scale=self.scale,
                   complete=self.complete, method=self.method, n_params=self.n_params,
                   matvecs=self.matvecs, wall_time=self.wall_time, message=self.message,
                   rtol_sensitivity=None if self.rtol_sensitivity is None else
                   [list(x) for x in self.rtol_sensitivity])
        if vectors:
            out["unstable_vectors"] = self.unstable_vectors.T.tolist()
        return out

    def __repr__(self):
        return (f"Spectrum({self.method}, signature={self.signature}, λ_min={self.min_eigenvalue:.6g}, "
                f"λ_max={self.max_eigenvalue:.6g}, complete={self.complete})")

    def _repr_html_(self):  # notebooks
        from ..view import spectrum_html

        return spectrum_html(self)

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(repr(self))


def signature(eigenvalues, rtol_zero: float = DEFAULT_RTOL_ZERO, *, scale=None):
    """The Morse signature (n_neg, n_zero, n_pos) of a Hessian from its eigenvalues: the package's one
    counter.

    An eigenvalue is zero when |λ| ≤ rtol_zero · scale, `scale` being max|λ| of the eigenvalues given
    (default), or the spectral scale when only part of the spectrum is known (Lanczos). For a stack of
    spectra (the last axis holds each one's eigenvalues) each count is an int array over the leading
    axes, each spectrum judged on its own scale.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if scale is None:
        scale = np.max(np.abs(lam), axis=-1) if lam.shape[-1:] != (0,) else np.zeros(lam.shape[:-1])
    tol = rtol_zero * np.asarray(scale, dtype=np.float64)[..., None]
    n_neg, n_zero = np.sum(lam < -tol, axis=-1), np.sum(np.abs(lam) <= tol, axis=-1)
    n_pos = np.sum(lam > tol, axis=-1)
    if lam.ndim <= 1:
        return int(n_neg), int(n_zero), int(n_pos)
    return n_neg, n_zero, n_pos


# ------------------------------------------------------------------------------------------ kernels
@eqx.filter_jit
def _hvp(problem, theta, v):
    return problem.hvp_fn(theta, v)


#: The dense Hessian, traceable (the earlier name of `flowtools.problem.dense_hessian_fn`).
hessian_from_hvps = dense_hessian_fn


def dense_hessian(problem: Problem, theta) -> np.ndarray:
    """The symmetrized dense Hessian ∇²L(θ) as a numpy array (`Problem.hessian`)."""
    return problem.hessian(theta)


def _matvec(problem, theta):
    th = jnp.asarray(theta)
    counter = [0]

    def mv(v):
        counter[0] += 1
        return np.asarray(_hvp(problem, th, jnp.asarray(v)))

    return mv, counter


# ------------------------------------------------------------------------------------ Krylov–Schur
# The vector kernels below use einsum (plain C loops) rather than BLAS gemv: on a loaded 2-core machine a
# multithreaded BLAS competing with XLA's threads ran these products 5× slower (measured: 32 ms vs 6 ms for
# a 40 × 1e5 projection pair).
def _norm(w) -> float:
    return math.sqrt(float(np.einsum("i,i->", w, w)))


def _orthogonalize(w, basis):
    """Classical Gram–Schmidt against the rows of `basis`, with a second pass when the first one removed
    most of w (Daniel–Gragg–Kaufman–Stewart criterion). Returns (w, coefficients)."""
    if basis.shape[0] == 0:
        return w, np.zeros(0)
    norm0 = _norm(w)
    h = np.einsum("ij,j->i", basis, w)
    w = w - np.einsum("ij,i->j", basis, h)
    if _norm(w) < 0.7071 * norm0:
        h2 = np.einsum("ij,j->i", basis, w)
        w = w - np.einsum("ij,i->j", basis, h2)
        h = h + h2
    return w, h


def _random_unit(rng, n, locked, basis):
    for _ in range(5):
        v = rng.standard_normal(n)
        v, _ = _orthogonalize(v, locked)
        v, _ = _orthogonalize(v, basis)
        v, _ = _orthogonalize(v, locked)
        nv = _norm(v)
        if nv > 1e-8 * math.sqrt(n):
            return v / nv
    return None


@dataclasses.dataclass
class _RitzResult:
    values: np.ndarray
    vectors: np.ndarray  # (n, nev)
    residuals: np.ndarray
    converged: np.ndarray
    exhausted: bool  # the Krylov space became invariant: Ritz pairs are exact eigenpairs


def _krylov_schur(matvec, n, nev, ncv, conv_tol, rng, locked, budget):
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
    k, used, exhausted = 0, 0, False
    while True:
        beta = 0.0
        for j in range(k, ncv):
            w = matvec(V[j])
            used += 1
            w, _ = _orthogonalize(w, locked)
            w, h = _orthogonalize(w, V[: j + 1])
            T[: j + 1, j] = h
            T[j, : j + 1] = h
            beta = _norm(w)
            scale = max(np.max(np.abs(T[: j + 1, : j + 1])), 1e-300)
            if beta <= 1e-12 * scale:
                # Invariant subspace: continue the basis with a fresh random vector, coupling 0.
                beta = 0.0
                if j + 1 >= dim:
                    exhausted = True
                    ncv_eff = j + 1
                    break
                v = _random_unit(rng, n, locked, V[: j + 1])
                if v is None:
                    exhausted = True
                    ncv_eff = j + 1
                    break
                V[j + 1] = v
                T[j + 1, j] = T[j, j + 1] = 0.0
            else:
                V[j + 1] = w / beta
                T[j + 1, j] = T[j, j + 1] = beta
        else:
            ncv_eff = ncv
        m = ncv_eff
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
                   budget):
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
        m = min(ncv, dim)
        beta, exhausted = 0.0, False
        for j in range(k, m):
            w = matvec(V[j])
            used += 1
            w, _ = _orthogonalize(w, Q)
            w, h = _orthogonalize(w, V[: j + 1])
            T[: j + 1, j] = h
            T[j, : j + 1] = h
            beta = _norm(w)
            if beta <= 1e-12 * max(np.max(np.abs(T[: j + 1, : j + 1])), 1e-300):
                beta = 0.0
                nxt = None if j + 1 >= dim else _random_unit(rng, n, Q, V[: j + 1])
                if nxt is None:
                    exhausted, m = True, j + 1
                    break
                V[j + 1] = nxt
                T[j + 1, j] = T[j, j + 1] = 0.0
            else:
                V[j + 1] = w / beta
                T[j + 1, j] = T[j, j + 1] = beta
        if m >= dim:
            exhausted = True
        theta, Y = np.linalg.eigh(0.5 * (T[:m, :m] + T[:m, :m].T))
        res = np.zeros(m) if exhausted else np.abs(beta * Y[m - 1, :])
        scale = max(scale, float(np.max(np.abs(theta))))
        tol, ctol = rtol_zero * scale, conv_rtol * scale
        # Interlacing: Ritz values below −tol bound the count from below, converged or not.
        lower = max(lower, Q.shape[0] + int(np.sum(theta < -tol)))
        lock = 0
        while lock < m and res[lock] <= ctol and theta[lock] < -tol:
            lock += 1
        if lock:
            vals += list(theta[:lock])
            X = V[:m].T @ Y[:, :lock]
            Qn, _ = np.linalg.qr(np.vstack([Q, X.T]).T)
            Q = Qn.T.copy()
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


def _lanczos_spectrum(matvec, n, *, rtol_zero, k, k_top, max_matvecs, ncv, conv_rtol, seed,
                      max_index, full_max=128):
    rng = np.random.default_rng(seed)
    empty = np.zeros((0, n))
    n_mv = [0]

    def mv(v):
        n_mv[0] += 1
        return matvec(v)

    # 1. The largest eigenvalues (extreme, usually well separated: fast), for the scale max|λ|.
    # Small n: one Krylov space of dimension n (with restarts at invariant subspaces) gives everything.
    top = _krylov_schur(lambda v: -mv(v), n, max(k_top, 1), n if n <= full_max else max(2 * k_top + 20, 30),
                        lambda th: 1e-6 * np.maximum(np.abs(th), 1e-300), rng, empty, max_matvecs)
    top_vals = np.sort(-top.values)
    if top.exhausted:
        # The Krylov space is the whole space: these are all n eigenvalues.
        lam = top_vals
        scale = float(np.max(np.abs(lam)))
        tol = rtol_zero * scale
        neg = lam < -tol
        vecs = top.vectors[:, ::-1][:, neg]
        return dict(eigenvalues=lam, n_neg=int(neg.sum()), complete=True, scale=scale, tol=tol,
                    unstable=vecs, rounds=0, all_resolved=True)
    scale = float(np.max(np.abs(top_vals))) if top_vals.size else 0.0

    # 2. Krylov–Schur with locking for the eigenvalues below −tol; then verification rounds from fresh
    #    random vectors on the deflated operator until one of them locks nothing new.
    nev = max(k, 8)
    size = max(ncv or 0, nev + 32, 2 * nev + 1)
    vals, Q = [], empty
    complete, lower, rest, rounds = False, 0, np.zeros(0), 0
    while n_mv[0] < max_matvecs and len(vals) < max_index:
        rounds += 1
        before = len(vals)
        vals, Q, complete, low, rest, _, scale = _lock_negative(
            mv, n, rtol_zero=rtol_zero, conv_rtol=conv_rtol, scale=scale, nev=nev, ncv=size, rng=rng,
            locked_vals=vals, locked_vecs=Q, budget=max_matvecs - n_mv[0])
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
                all_resolved=False)


def constant_features(problem) -> int:
    """How many input features are constant over the training set (0 when the problem has no `x`).

    A constant input makes its first-layer weights redundant with the bias (or inert, when it is 0):
    each one adds exact zero directions to the Hessian, one per first-layer neuron (48 for the three
    blank pixels of the digits under a 16-unit layer)."""
    x = getattr(problem, "x", None)
    if x is None:
        return 0
    x = np.asarray(x)
    return int(np.sum(np.ptp(x, axis=0) == 0)) if x.ndim == 2 and x.shape[0] > 1 else 0


def _dense(problem, theta, n, rtol_zero, vectors):
    H = dense_hessian(problem, theta)
    if not np.all(np.isfinite(H)):
        raise ValueError("the Hessian at theta is not finite.")
    # One LAPACK thread: beside XLA's threads on a loaded 2-core machine a multithreaded OpenBLAS spun
    # instead of working (eigvalsh of a 1 210² matrix: 4.2 s CPU / 9.2 s wall with its default threads,
    # 0.16 s / 0.25 s with one, at load ≈ 11), and one thread is as fast as two at n ≈ 10³ anyway.
    with threadpool_limits(1, user_api="blas"):
        if vectors:
            lam, Q = np.linalg.eigh(H)
        else:  # eigenvalues only: about 3× cheaper than eigh at n ≈ 10³
            lam, Q = np.linalg.eigvalsh(H), None
    del H
    scale = float(np.max(np.abs(lam))) if n else 0.0
    tol = rtol_zero * scale
    neg, zero = lam < -tol, np.abs(lam) <= tol
    sig = signature(lam, rtol_zero, scale=scale)
    return lam, Q, sig, scale, tol, (Q[:, neg] if vectors else np.zeros((n, 0))), \
        (Q[:, zero] if vectors else None)


def _sensitivity(lam, sig, rtol_zero, scale, full):
    """Signatures at rtol_zero/10 and 10·rtol_zero when one differs from `sig` (n_neg only if not full)."""
    out = []
    for r in (rtol_zero / 10, rtol_zero * 10):
        counts = signature(lam, r, scale=scale)
        out.append(counts if full else (counts[0], None, None))
    if all(o[0] == sig[0] and (not full or o == tuple(sig)) for o in out):
        return None
    return tuple(out)


def hessian_spectrum(problem: Problem, theta, *, method: str = "auto", k: int = 6, k_top: int = 1,
                     rtol_zero: float = DEFAULT_RTOL_ZERO, dense_max: int = 4096,
                     max_dense_bytes: float = 2**30, max_matvecs: int = 5000, ncv: int | None = None,
                     conv_rtol: float = 1e-9, max_index: int | None = None, seed: int = 0,
                     vectors: bool = True, warn: bool = True) -> Spectrum:
    """The Hessian spectrum at θ and its Morse signature (n_neg, n_zero, n_pos).

    **Arguments:**

    - `problem`, `theta`: where to look.
    - `method`: "dense" (all eigenpairs), "lanczos" (Hessian-vector products; the ends of the
      spectrum) or "auto": dense up to `dense_max` parameters; above, Lanczos, and when Lanczos cannot
      complete the count within `max_matvecs` (a continuum of negative eigenvalues) the dense spectrum
      if it fits in `max_dense_bytes`, else the flagged lower bound.
    - `k`: Lanczos reports at least the `k` smallest eigenvalues (and every one below −tol);
      `k_top`: how many of the largest it reports.
    - `rtol_zero`: an eigenvalue is zero when |λ| ≤ rtol_zero · max|λ|.
    - `dense_max`, `max_dense_bytes`: "auto"'s limits for the dense method (the Hessian, its
      eigenvectors and eigh's workspace take about 3·8·n² bytes; 2³⁰ bytes allow n ≈ 6 700).
    - `max_matvecs`: Lanczos budget of Hessian-vector products; `ncv`: its basis size (default
      max(2·nev + 1, nev + 32)); `conv_rtol`: residual tolerance relative to max|λ|;
      `max_index`: stop once this many negative eigenvalues are locked (default: no limit).
    - `seed`: the Lanczos start vectors.
    - `vectors`: return the unstable eigenvectors (and, for "dense", the zero ones).
    - `warn`: issue a `ZeroToleranceWarning` when the signature changes with `rtol_zero` (×10 or /10),
      and a `RuntimeWarning` when a Lanczos count is only a lower bound.

    **Returns:** a `Spectrum`. For "lanczos", `signature` is (n_neg, None, None) unless the whole
    spectrum was resolved, and `complete` says whether n_neg is exact (see the module notes).
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    theta = _checks.theta_vector("theta", theta, problem.n_params)
    method = _checks.choice("method", method, _METHODS)
    rtol_zero = _checks.positive("rtol_zero", rtol_zero)
    k = _checks.positive_int("k", k)
    k_top = _checks.positive_int("k_top", k_top)
    dense_max = _checks.positive_int("dense_max", dense_max)
    max_dense_bytes = _checks.positive("max_dense_bytes", max_dense_bytes)
    n = problem.n_params
    dense_fits = 24.0 * n * n <= max_dense_bytes
    auto = method == "auto"
    if auto:
        method = "dense" if n <= dense_max and dense_fits else "lanczos"
    t0 = time.perf_counter()
    fallback = ""
    if method == "lanczos":
        max_matvecs = _checks.positive_int("max_matvecs", max_matvecs)
        mv, counter = _matvec(problem, theta)
        out = _lanczos_spectrum(mv, n, rtol_zero=rtol_zero, k=k, k_top=k_top, max_matvecs=max_matvecs,
                                ncv=ncv, conv_rtol=_checks.positive("conv_rtol", conv_rtol), seed=seed,
                                max_index=max_index if max_index is not None else n)
        if auto and not out["complete"] and dense_fits:
            fallback = (f"; Lanczos did not complete the count within {counter[0]} Hessian-vector "
                        f"products (lower bound {out['n_neg']}), so the dense spectrum was computed")
            method = "dense"
    if method == "dense":
        lam, Q, sig, scale, tol, unstable, zero_vecs = _dense(problem, theta, n, rtol_zero, vectors)
        sens = _sensitivity(lam, sig, rtol_zero, scale, True)
        msg = f"dense eigh of the {n}×{n} Hessian" + fallback
        n_const = constant_features(problem)
        if n_const and sig[1]:
            msg += (f"; {n_const} constant input feature(s) contribute exact zero directions")
        spec = Spectrum(lam, sig, tol, rtol_zero, scale, unstable, zero_vecs, True, "dense", n,
                        0, time.perf_counter() - t0, msg, sens)
    else:
        lam, tol = out["eigenvalues"], out["tol"]
        if out["all_resolved"]:
            sig = signature(lam, rtol_zero, scale=out["scale"])
        else:
            sig = (int(out["n_neg"]), None, None)
        msg = (f"Lanczos (Krylov–Schur, full reorthogonalization): {counter[0]} Hessian-vector products, "
               f"{out['rounds']} deflation round(s); "
               + ("the whole spectrum was resolved" if out["all_resolved"] else
                  "the count of negative eigenvalues is complete" if out["complete"] else
                  "budget exhausted: n_neg is a LOWER BOUND (interlacing)"))
        sens = (_sensitivity(lam, sig, rtol_zero, out["scale"], out["all_resolved"])
                if out["complete"] else None)
        unstable = out["unstable"] if vectors else np.zeros((n, 0))
        spec = Spectrum(lam, sig, tol, rtol_zero, out["scale"], unstable, None, out["complete"],
                        "lanczos", n, counter[0], time.perf_counter() - t0, msg, sens)
        if warn and not out["complete"]:
            warnings.warn(f"hessian_spectrum: the Morse index {sig[0]} is only a lower bound ({msg}). "
                          "Raise max_matvecs or max_dense_bytes, or use estimate_negative_count.",
                          RuntimeWarning, stacklevel=2)
    if warn and spec.rtol_sensitivity is not None:
        lo, hi = spec.rtol_sensitivity
        warnings.warn(
            f"hessian_spectrum: the signature {spec.signature} depends on rtol_zero={rtol_zero:g}: it is "
            f"{lo} at rtol_zero/10 and {hi} at 10·rtol_zero (eigenvalues lie near the zero threshold "
            f"tol={spec.tol_zero:.3g}: a continuous spectrum down to 0, or exact zero directions"
            + (f", e.g. from {constant_features(problem)} constant input features" if constant_features(problem)
               else "") + "). Report the count with its rtol_zero.", ZeroToleranceWarning, stacklevel=2)
    return spec


#: The most parameters for which `spectrum_or_fallback` builds a central-difference Hessian (2n gradients).
FD_MAX_PARAMS = 1000


def spectrum_or_fallback(problem: Problem, theta, **options) -> Spectrum:
    """`hessian_spectrum`, or, where it cannot be computed (a Hessian that is not finite, an eigensolver
    that fails), the spectrum of a central-difference Hessian of ∇L (method "finite_difference": a
    loss that is C¹ but not C² at θ, or whose second derivatives are evaluated as NaN there), or, when
    that is not finite either or n > `FD_MAX_PARAMS`, an empty spectrum with signature
    (None, None, None) (method "failed"). The `message` of the last two says why; nothing raises for a
    point where ∇L is finite.

    The central differences use h_i = ε^{1/3}·(1 + |θ_i|), the step that balances truncation and
    rounding for a C³ loss (error O(ε^{2/3}) relative to the third derivative's scale).
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    theta = _checks.theta_vector("theta", theta, problem.n_params)  # bad arguments still raise
    try:
        return hessian_spectrum(problem, theta, **options)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as err:
        if type(err) is ValueError and "not finite" not in str(err):
            raise  # a bad option, not a failed spectrum
        reason = f"hessian_spectrum failed: {str(err).rstrip('.')}"
    n = theta.size
    rtol_zero = float(options.get("rtol_zero", DEFAULT_RTOL_ZERO))
    t0 = time.perf_counter()
    if n <= FD_MAX_PARAMS:
        h = np.cbrt(np.finfo(np.float64).eps) * (1.0 + np.abs(theta))
        H = np.empty((n, n))
        for j in range(n):
            e = np.zeros(n)
            e[j] = h[j]
            H[:, j] = (np.asarray(problem.grad(theta + e)) - np.asarray(problem.grad(theta - e))) / (2 * h[j])
        if np.all(np.isfinite(H)):
            with threadpool_limits(1, user_api="blas"):
                lam, Q = np.linalg.eigh(0.5 * (H + H.T))
            scale = float(np.max(np.abs(lam))) if n else 0.0
            tol = rtol_zero * scale
            neg, zero = lam < -tol, np.abs(lam) <= tol
            sig = signature(lam, rtol_zero, scale=scale)
            return Spectrum(lam, sig, tol, rtol_zero, scale, Q[:, neg], Q[:, zero], True, "finite_difference",
                            n, 0, time.perf_counter() - t0,
                            f"{reason}; spectrum of the central-difference Hessian of grad L (2n = {2 * n} "
                            "gradients)", _sensitivity(lam, sig, rtol_zero, scale, True))
        reason += "; the central-difference Hessian of grad L is not finite either"
    else:
        reason += f"; no central-difference fallback above {FD_MAX_PARAMS} parameters"
    return Spectrum(np.zeros(0), (None, None, None), float("nan"), rtol_zero, float("nan"), np.zeros((n, 0)),
                    None, False, "failed", n, 0, time.perf_counter() - t0, reason)


def morse_index(problem: Problem, theta, **options) -> int:
    """The number of negative Hessian eigenvalues at θ (the Morse index); options as `hessian_spectrum`.

    Raises `RuntimeError` when a Lanczos count could not be completed within its budget.
    """
    spec = hessian_spectrum(problem, theta, vectors=False, **options)
    if not spec.complete:
        raise RuntimeError(f"the Morse index is not resolved ({spec.message}); it is at least "
                           f"{spec.n_neg}. Raise max_matvecs or use estimate_negative_count.")
    return spec.n_neg


# ------------------------------------------------------------------ stochastic Lanczos quadrature
def estimate_negative_count(problem: Problem, theta, *, threshold: float | None = None,
                            rtol_zero: float = DEFAULT_RTOL_ZERO, n_probes: int = 8, steps: int = 80,
                            seed: int = 0, relative_thresholds=()) -> dict:
    """Estimate #{λ < −tol} by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017).

    For Rademacher probes z, n_neg = E[zᵀ 1(H < −tol) z]; each quadratic form is approximated by the
    Gauss quadrature of an m-step Lanczos run from z (m = `steps`, full reorthogonalization).

    **Returns:** dict(estimate, stderr, tol, scale, matvecs, by_threshold). `by_threshold` maps each r in
    `relative_thresholds` to (estimate, stderr) of #{λ < −r·scale}. The standard error covers the probe
    sampling only. With `steps` ≪ n the quadrature cannot resolve eigenvalues closer to −tol than the
    spacing of its nodes: near-zero eigenvalues then leak into the count (on a 151-parameter net at a
    random point, 60 steps gave 92 ± 3 for an exact 68; `steps` = n is exact up to sampling). Treat it as
    an order-of-magnitude estimate when many eigenvalues lie near zero.
    """
    theta = _checks.theta_vector("theta", theta, problem.n_params)
    n = problem.n_params
    mv, counter = _matvec(problem, theta)
    rng = np.random.default_rng(seed)
    steps = min(_checks.positive_int("steps", steps), n)
    all_nodes, scale = [], 0.0
    for _ in range(_checks.positive_int("n_probes", n_probes)):
        z = rng.choice([-1.0, 1.0], size=n)
        V = np.zeros((steps + 1, n))
        V[0] = z / math.sqrt(n)
        alpha, beta = np.zeros(steps), np.zeros(steps)
        m = steps
        for j in range(steps):
            w = mv(V[j])
            w, h = _orthogonalize(w, V[: j + 1])
            alpha[j] = h[j]
            if j:
                beta[j - 1] = h[j - 1]
            b = _norm(w)
            if b < 1e-12 * max(np.abs(alpha[: j + 1]).max(), 1e-300):
                m = j + 1
                break
            V[j + 1] = w / b
            beta[j] = b
        Tm = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
        nodes, Y = np.linalg.eigh(Tm)
        all_nodes.append((nodes, Y[0] ** 2))
        scale = max(scale, float(np.max(np.abs(nodes))))
    tol = threshold if threshold is not None else rtol_zero * scale

    def count(cut):
        samples = np.array([n * float(np.sum(weights[nodes < -cut])) for nodes, weights in all_nodes])
        err = float(samples.std(ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else math.inf
        return float(samples.mean()), err

    est, err = count(tol)
    by = {float(r): count(float(r) * scale) for r in relative_thresholds}
    return dict(estimate=est, stderr=err, tol=float(tol), scale=scale, matvecs=counter[0], by_threshold=by)
