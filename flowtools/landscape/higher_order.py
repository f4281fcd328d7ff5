"""Higher-order test of a critical point whose Hessian is positive semidefinite and singular.

A Hessian with no negative eigenvalue but some zero ones does not decide whether θ* is a minimum: the
loss can still decrease along the kernel at third or fourth order. The origin of a linear network of
depth ≥ 3 (Hessian zero) and its balanced rank-k saddles are such points (Kawaguchi 2016; Jacot et al.
2021): L(θ* + r v) = L* − c r³ + O(r⁴) along suitable v in the kernel. We call a point that fails the test
below a **higher-order saddle** and keep the directions along which it fails as its escape directions.

**The test (reduced descent).** Let K (n × m) span the numerical kernel of ∇²L(θ*) (|λ| ≤ tol_zero) and
P the positive eigenspace (λ > tol_zero). For unit kernel directions v and radii r we evaluate the
Lyapunov–Schmidt reduced loss

    g(r v) = min over w ∈ span P of L(θ* + r v + w),

approximated by a few chord-Newton steps w ← w − P Λ₊⁻¹ Pᵀ ∇L(θ* + r v + w) from w = 0 (the Hessian at θ*
is reused; ‖w‖ is capped at r and the lowest loss met is kept). Minimizing over the positive directions
removes the curvature that a straight line through the kernel would pick up when the critical set bends
(a line of minima), and finds descent that needs a quadratic bend (Peano's example). Directions: ±each
kernel eigenvector (at most `max_basis` of them) and ± `n_random` seeded random unit vectors of the
kernel.

The point is a higher-order saddle when one direction v gives a significant decrease at **every** radius:

    L* − g(r v) > τ(r) = safety · (‖∇L(θ*)‖ ρ + ½ tol_zero ρ²) + atol · (1 + |L*|),   ρ = ‖r v + w‖.

τ bounds what a point that is critical to round-off and whose "zero" eigenvalues are inside the band
|λ| ≤ tol_zero could lose without any higher-order term: the first-order term of a nonzero gradient and
the quadratic term of a slightly negative zero eigenvalue; `atol` covers round-off in L. Requiring
descent at every radius (default r ∈ (0.003, 0.01, 0.03) · max(1, ‖θ*‖)) keeps a distant, unrelated
lower basin from being mistaken for local descent: a local minimum has none at the smallest radius.

Limits: a decrease of order r^p with a small coefficient can stay under τ at the smallest radius (the
test then keeps the point a degenerate minimum; shrink `rtol_zero` or pass larger `radii`); directions
are sampled, so a descent cone much narrower than the random samples can be missed; the test needs the
dense spectrum (kernel vectors), so for Lanczos spectra it is skipped. Cost: one eigendecomposition and
(2 min(m, max_basis) + 2 n_random) · len(radii) · (n_chord + 1) gradient evaluations, vmapped in one
jitted call.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._stored_jit import stored_jit
from ..problem import Problem
from .spectrum import DEFAULT_RTOL_ZERO, Spectrum, dense_hessian, hessian_spectrum

__all__ = ["HigherOrderTest", "higher_order_test", "DEFAULT_RADII"]

#: Default radii of the reduced-descent test, in units of max(1, ‖θ*‖).
DEFAULT_RADII = (3e-3, 1e-2, 3e-2)


@dataclasses.dataclass
class HigherOrderTest:
    """The outcome of `higher_order_test`.

    **Fields:**

    - `saddle`: True when some kernel direction descends at every radius (a higher-order saddle).
    - `applicable`: False when the test was not run (a negative eigenvalue, no zero eigenvalue, or no
      kernel vectors); `saddle` is then False.
    - `escape_directions`: unit vectors (n, k) of the descending directions (kernel part plus the
      range correction at the smallest radius), best first; shape (n, 0) when none.
    - `decrease`: for each escape direction, L* − g(r v) at each radius, shape (k, len(radii)).
    - `order`: the apparent order of the decrease, the slope of log decrease against log r between the
      two smallest radii (≈ 3 for a cubic saddle), for the best direction; nan when none.
    - `radii`: the absolute radii used; `n_directions`: directions tried; `kernel_dim`; `message`.
    """

    saddle: bool
    applicable: bool
    escape_directions: np.ndarray
    decrease: np.ndarray
    order: float
    radii: tuple
    n_directions: int
    kernel_dim: int
    message: str

    def to_dict(self) -> dict:
        return dict(saddle=self.saddle, applicable=self.applicable, decrease=self.decrease.tolist(),
                    order=self.order, radii=list(self.radii), n_directions=self.n_directions,
                    kernel_dim=self.kernel_dim, message=self.message,
                    escape_directions=self.escape_directions.T.tolist())


@stored_jit
def _reduced_descent(problem, theta, Z, P, inv_lam, n_chord):
    """min over chord-Newton iterates w (in span P) of L(θ + z + w) for each row z of Z; also the
    minimizing displacement z + w."""

    def one(z):
        cap = jnp.linalg.norm(z)

        def body(_, s):
            w, best, arg = s
            g = problem.grad_fn(theta + z + w)
            w = w - P @ (inv_lam * (P.T @ g))
            nw = jnp.linalg.norm(w)
            w = jnp.where(nw > cap, w * (cap / jnp.maximum(nw, 1e-300)), w)
            val = problem.loss_fn(theta + z + w)
            better = jnp.isfinite(val) & (val < best)
            return w, jnp.where(better, val, best), jnp.where(better, z + w, arg)

        l0 = problem.loss_fn(theta + z)
        l0 = jnp.where(jnp.isfinite(l0), l0, jnp.inf)
        _, best, arg = jax.lax.fori_loop(0, n_chord, body, (jnp.zeros_like(z), l0, z))
        return best, arg

    return jax.vmap(one)(Z)


def _not_run(n, m, message, radii=()) -> HigherOrderTest:
    return HigherOrderTest(False, False, np.zeros((n, 0)), np.zeros((0, len(radii))), float("nan"),
                           tuple(radii), 0, m, message)


def higher_order_test(problem: Problem, theta, spectrum: Spectrum | None = None, *,
                      radii=DEFAULT_RADII, n_random: int = 16, max_basis: int = 32, n_chord: int = 4,
                      safety: float = 10.0, atol: float = 1e-12, seed: int = 0,
                      max_directions: int = 4, dense_max: int | None = None) -> HigherOrderTest:
    """Decide whether a critical point with a positive semidefinite, singular Hessian is a minimum.

    **Arguments:**

    - `problem`, `theta`: the problem and the critical point θ*.
    - `spectrum`: its dense `Spectrum` (computed here when None).
    - `radii`: the radii, in units of max(1, ‖θ*‖); descent must hold at every one.
    - `n_random`: random unit kernel directions (each also with its sign flipped), seeded by `seed`.
    - `max_basis`: at most this many kernel eigenvectors (±) are tried directly.
    - `n_chord`: chord-Newton steps over the positive eigenspace per direction and radius.
    - `safety`, `atol`: the threshold τ(r) of the module notes.
    - `max_directions`: how many escape directions to keep.
    - `dense_max`: above this many parameters the test is not run (it needs the dense Hessian's kernel
      and positive eigenspace); the record says so and the point keeps its second-order kind.
      None: no limit.

    **Returns:** a `HigherOrderTest`; see the module notes for the test and its tolerances.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    theta = _checks.theta_vector("theta", theta, problem.n_params)
    radii_rel = tuple(_checks.positive(f"radii[{i}]", r) for i, r in enumerate(np.atleast_1d(radii)))
    if not radii_rel:
        raise ValueError("radii must hold at least one positive radius, e.g. (0.003, 0.01, 0.03).")
    radii_rel = tuple(sorted(radii_rel))
    n_random = _checks.positive_int("n_random", n_random, minimum=0)
    max_basis = _checks.positive_int("max_basis", max_basis, minimum=0)
    n_chord = _checks.positive_int("n_chord", n_chord, minimum=0)
    safety = _checks.positive("safety", safety)
    n = problem.n_params
    if dense_max is not None and n > _checks.positive_int("dense_max", dense_max):
        return _not_run(n, 0, f"not run above dense_max={dense_max} parameters (n = {n}): the test needs the "
                        "dense Hessian; the kind is decided at second order only")
    if spectrum is None:
        spectrum = hessian_spectrum(problem, theta, method="dense", rtol_zero=DEFAULT_RTOL_ZERO)
    n_neg, n_zero = spectrum.signature[0], spectrum.signature[1]
    if n_zero is None or spectrum.zero_vectors is None:
        return _not_run(n, 0, "the spectrum has no kernel vectors (not dense); test skipped")
    if n_neg > 0:
        return _not_run(n, n_zero, f"{n_neg} negative eigenvalue(s): an ordinary saddle")
    if n_zero == 0:
        return _not_run(n, 0, "no zero eigenvalue: the second-order test decides")
    K = np.asarray(spectrum.zero_vectors, dtype=np.float64)
    m = K.shape[1]
    scale = max(1.0, float(np.linalg.norm(theta)))
    radii_abs = tuple(r * scale for r in radii_rel)
    # the positive eigenspace (for the chord steps); recomputed because Spectrum keeps only the kernel
    lam, Q = np.linalg.eigh(dense_hessian(problem, theta))
    pos = lam > spectrum.tol_zero
    # all of Q with 1/λ zeroed off the positive eigenspace: fixed shapes, so one compilation per problem
    inv_lam = np.where(pos, 1.0 / np.where(pos, lam, 1.0), 0.0)
    rng = np.random.default_rng(_checks.positive_int("seed", seed, minimum=0))
    dirs = [K[:, i] for i in range(min(m, max_basis))]
    for _ in range(n_random):
        z = rng.standard_normal(m)
        dirs.append(K @ (z / np.linalg.norm(z)))
    V = np.array(dirs)
    V = np.concatenate([V, -V])  # a cubic term is odd: one of ±v descends
    nd = V.shape[0]
    Z = np.concatenate([r * V for r in radii_abs])
    rows = Z.shape[0]
    pad = 1 << max(0, (rows - 1).bit_length())  # power-of-two batches: few distinct compiled shapes
    Z = np.concatenate([Z, np.zeros((pad - rows, n))])
    loss0, g0 = problem.value_and_grad(theta)
    best, arg = _reduced_descent(problem, *jax.device_put(tuple(map(np.asarray, (theta, Z, Q, inv_lam)))),
                                 n_chord)
    best = np.asarray(best)[:rows].reshape(len(radii_abs), nd)
    arg = np.asarray(arg)[:rows].reshape(len(radii_abs), nd, n)
    rho = np.linalg.norm(arg, axis=-1)
    gnorm = float(np.linalg.norm(g0))
    tau = safety * (gnorm * rho + 0.5 * spectrum.tol_zero * rho**2) + atol * (1.0 + abs(loss0))
    drop = loss0 - best  # (radii, directions)
    significant = np.all(drop > tau, axis=0)
    if not np.any(significant):
        j = int(np.argmax(np.min(drop - tau, axis=0)))
        return HigherOrderTest(False, True, np.zeros((n, 0)), np.zeros((0, len(radii_abs))), float("nan"),
                               radii_abs, nd, m,
                               f"no descent along {nd} kernel directions at every radius "
                               f"{tuple(f'{r:.3g}' for r in radii_abs)} (best margin at the smallest radius "
                               f"{drop[0, j] - tau[0, j]:.3g}): a degenerate minimum")
    idx = np.flatnonzero(significant)
    idx = idx[np.argsort(-drop[0, idx])]  # largest decrease at the smallest radius first
    chosen = []
    for j in idx:
        u = arg[0, j] / np.linalg.norm(arg[0, j])
        if all(abs(u @ c) < 0.99 for c in chosen):
            chosen.append(u)
        if len(chosen) >= max_directions:
            break
    keep = [j for j in idx if any(abs(arg[0, j] / np.linalg.norm(arg[0, j]) @ c) > 1 - 1e-12 for c in chosen)]
    keep = keep[:len(chosen)]
    j0 = idx[0]
    order = float("nan")
    if len(radii_abs) >= 2:
        order = float(np.log(drop[1, j0] / drop[0, j0]) / np.log(radii_abs[1] / radii_abs[0]))
    return HigherOrderTest(True, True, np.array(chosen).T, drop[:, keep].T, order, radii_abs, nd, m,
                           f"{idx.size} of {nd} kernel directions descend at every radius "
                           f"{tuple(f'{r:.3g}' for r in radii_abs)} (best: L* − L = {drop[0, j0]:.3g} at "
                           f"r = {radii_abs[0]:.3g}, apparent order {order:.2f}): a higher-order saddle")
