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
   When the first round ends at an invariant subspace K (every eigenvalue of H in K is then an exact
   Ritz value), the verification round runs on K's orthogonal complement (one product where H vanishes
   there, as on a planted saddle, instead of exploring K again).
4. Above 128 parameters the scale max|λ| is taken from the rounds' own largest Ritz values (a separate
   run only where they have not converged to 1e-6), and every count is judged at the final scale.

The method resolves eigenvalues that are separated from the rest of the spectrum relative to its width.
At a random point of a large network the negative eigenvalues form a dense continuum of hundreds or
thousands; there the exact index is out of reach for any Krylov method, and
`estimate_negative_count` (stochastic Lanczos quadrature) gives an estimate with a standard error.
Zero eigenvalues lie inside the spectrum when n_neg > 0, so Lanczos does not count them: its signature is
(n_neg, None, None) unless the whole spectrum was resolved (n ≤ the basis size).

This module holds the public functions; the methods live one per private module: the Hessian-vector
product kernels in `_kernels`, Krylov–Schur with locking in `_krylov_schur`, stochastic Lanczos
quadrature in `_lanczos`.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _deprecation
from ..dynamics.stiff import one_blas_thread
from ..problem import Problem
from ._kernels import dense_hessian, hessian_from_hvps, hessian_matvec  # noqa: F401 (re-export)
from ._krylov_schur import BASIS_MAX_BYTES, lanczos_spectrum
from ._lanczos import lanczos_quadrature

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
    with one_blas_thread():
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


#: A pessimistic cost of the dense method per n³ (the Hessian from n products, then eigh), by which
#: "auto" judges whether it fits a time limit: 4.4 s at n = 1 510 (300 digits images) at load ≈ 12.
DENSE_SECONDS_PER_N3 = 2e-9


#: The most bytes of saved intermediates for which the Lanczos method linearizes ∇L once at θ.
LINEARIZE_MAX_BYTES = 2**30


@eqx.filter_jit
def _linearize_grad(problem, theta):
    return jax.linearize(problem.grad_fn, theta)[1]


@eqx.filter_jit
def _apply_linear(fn, v):
    return fn(v)


def linearized_matvec(problem: Problem, theta):
    """(mv, counter, kernel): v ↦ ∇²L(θ)v on numpy vectors from ∇L linearized once at θ
    (`jax.linearize`: the forward and backward pass of the network at θ are computed once and kept, and each product runs
    only the tangent pass), a one-element list counting its calls, and the kernel's name. Where the kept
    intermediates would exceed `LINEARIZE_MAX_BYTES`, the plain forward-over-reverse product
    (`hessian_matvec`, which recomputes them in every call) and kernel "forward-over-reverse".
    At 99 859 parameters (1 024 samples) a linearized product took 28–31 ms against 33–39 ms."""
    th = jnp.asarray(theta)
    shapes = jax.eval_shape(lambda t: _linearize_grad(problem, t), th)
    kept = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(shapes))
    if kept > LINEARIZE_MAX_BYTES:
        mv, counter = hessian_matvec(problem, theta)
        return mv, counter, "forward-over-reverse"
    fn = _linearize_grad(problem, th)
    counter = [0]

    def mv(v):
        counter[0] += 1
        return np.asarray(_apply_linear(fn, jnp.asarray(v)))

    return mv, counter, "linearized"


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
                     vectors: bool = True, warn: bool = True, time_limit: float | None = None,
                     max_basis_bytes: float = BASIS_MAX_BYTES) -> Spectrum:
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
      256 vectors, fewer where the basis and the copy a restart makes of it would take more than
      `max_basis_bytes`, never fewer than max(2·nev + 1, nev + 32)); `max_basis_bytes`: that memory
      budget (default `BASIS_MAX_BYTES` = 4 GiB: 256 vectors up to 2²⁰ parameters); `conv_rtol`:
      residual tolerance relative to max|λ|;
      `max_index`: stop once this many negative eigenvalues are locked (default: no limit).
    - `seed`: the Lanczos start vectors.
    - `vectors`: return the unstable eigenvectors (and, for "dense", the zero ones).
    - `warn`: issue a `ZeroToleranceWarning` when the signature changes with `rtol_zero` (×10 or /10),
      and a `RuntimeWarning` when a Lanczos count is only a lower bound.
    - `time_limit`: wall-time budget in seconds of a Lanczos count (checked before every product): on
      expiry the count stops with its lower bound, `complete` False and the message saying so, and
      "auto" does not fall back to the dense spectrum. The dense method is not interrupted: under a
      time limit "auto" takes it only where `DENSE_SECONDS_PER_N3`·n³ fits. None: no limit.

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
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + _checks.positive("time_limit", time_limit)
    # The dense method cannot be interrupted: under a time limit "auto" takes it only where it is
    # expected to finish in time.
    dense_in_time = time_limit is None or DENSE_SECONDS_PER_N3 * float(n) ** 3 <= time_limit
    if auto:
        method = "dense" if n <= dense_max and dense_fits and dense_in_time else "lanczos"
    fallback = ""
    if method == "lanczos":
        max_matvecs = _checks.positive_int("max_matvecs", max_matvecs)
        mv, counter, kernel = linearized_matvec(problem, theta)
        out = lanczos_spectrum(mv, n, rtol_zero=rtol_zero, k=k, k_top=k_top, max_matvecs=max_matvecs,
                               ncv=ncv, conv_rtol=_checks.positive("conv_rtol", conv_rtol), seed=seed,
                               max_index=max_index if max_index is not None else n, deadline=deadline,
                               max_basis_bytes=_checks.positive("max_basis_bytes", max_basis_bytes))
        if auto and not out["complete"] and dense_fits and not out["timed_out"] and (
                deadline is None or DENSE_SECONDS_PER_N3 * float(n) ** 3 <= deadline - time.perf_counter()):
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
        msg = (f"Lanczos (Krylov–Schur, full reorthogonalization): {counter[0]} Hessian-vector products "
               f"({kernel}), "
               f"{out['rounds']} deflation round(s)"
               + (f" (the last on the complement of an invariant subspace of dimension {n - out['verified_on']})"
                  if out.get("verified_on") is not None else "")
               + f", scale max|λ| from {out['scale_source']}; "
               + ("the whole spectrum was resolved" if out["all_resolved"] else
                  "the count of negative eigenvalues is complete" if out["complete"] else
                  f"the time limit of {time_limit:g} s ran out: n_neg is a LOWER BOUND (interlacing)"
                  if out["timed_out"] else "budget exhausted: n_neg is a LOWER BOUND (interlacing)"))
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
            with one_blas_thread():
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
@_deprecation.renamed_arguments(n_probes="n_probe")
def estimate_negative_count(problem: Problem, theta, *, threshold: float | None = None,
                            rtol_zero: float = DEFAULT_RTOL_ZERO, n_probe: int = 8, steps: int = 80,
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
    mv, counter = hessian_matvec(problem, theta)
    rng = np.random.default_rng(seed)
    steps = min(_checks.positive_int("steps", steps), n)
    all_nodes, scale = lanczos_quadrature(mv, n, n_probes=_checks.positive_int("n_probe", n_probe),
                                          steps=steps, rng=rng)
    tol = threshold if threshold is not None else rtol_zero * scale

    def count(cut):
        samples = np.array([n * float(np.sum(weights[nodes < -cut])) for nodes, weights in all_nodes])
        err = float(samples.std(ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else math.inf
        return float(samples.mean()), err

    est, err = count(tol)
    by = {float(r): count(float(r) * scale) for r in relative_thresholds}
    return dict(estimate=est, stderr=err, tol=float(tol), scale=scale, matvecs=counter[0], by_threshold=by)
