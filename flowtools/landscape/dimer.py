"""Single-ended saddle search from a minimum: minimum-mode following, matrix-free.

The dimer method (Henkelman & Jónsson, J. Chem. Phys. 111, 7010, 1999) climbs out of a minimum to an
index-1 saddle using only the lowest Hessian mode v (λ its eigenvalue) and the force F = −∇L:

- where λ > 0 (still inside the convex basin) the walker moves uphill along v, away from the minimum, by a
  fixed step, and relaxes the other directions (F − (F·v)v) downhill;
- where λ < 0 it follows the modified force F† = F − 2(F·v)v, which has the index-1 saddles as its
  minima: a Newton step −(g·v)/λ uphill along v and a gradient step downhill across it (the partition of
  hybrid eigenvector-following, Munro & Wales, Phys. Rev. B 59, 3969, 1999).

The dimer estimates v by rotating a pair of images with finite-difference gradients. Here v comes from
Lanczos (Krylov–Schur, `flowtools.landscape.spectrum`) on exact Hessian-vector products, the Lanczos
variant of minimum-mode following (Olsen, Kroes, Henkelman, Arnaldsson & Jónsson, J. Chem. Phys. 121,
9776, 2004); no Hessian is formed. Once λ < 0 and the Newton step along v is shorter than one step, the
point is refined with `find_critical_point` and kept if its index is 1.

Searches start from the minimum displaced along ± each of its `n_modes` softest Hessian modes and along
`n_random` seeded random directions; distinct saddles are kept once (`match_target`: kind, signature and
network function).
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..problem import Problem
from ._kernels import hessian_matvec, max_curvature
from ._krylov_schur import krylov_schur
from .critical import CriticalPoint, find_critical_point
from .manifolds import match_target

__all__ = ["SaddleSearch", "saddle_search", "lowest_mode"]


def lowest_mode(problem: Problem, theta, *, n_modes: int = 1, rtol: float = 1e-8, seed: int = 0,
                scale: float | None = None, max_matvecs: int = 2000):
    """The `n_modes` smallest Hessian eigenvalues at θ and their unit eigenvectors (n, n_modes), by
    Lanczos with Krylov–Schur restarts on Hessian-vector products (residuals ≤ rtol·max|λ|)."""
    theta = _checks.theta_vector("theta", theta, problem.n_params)
    if scale is None:
        scale = float(max_curvature(problem, jnp.asarray(theta)))
    mv, _ = hessian_matvec(problem, theta)
    n = problem.n_params
    tol = rtol * max(scale, 1e-300)
    res = krylov_schur(mv, n, n_modes, max(2 * n_modes + 1, n_modes + 20), lambda v: np.full(v.shape, tol),
                        np.random.default_rng(seed), np.zeros((0, n)), max_matvecs)
    return np.asarray(res.values)[:n_modes], np.asarray(res.vectors)[:, :n_modes]


@dataclasses.dataclass
class SaddleSearch:
    """The index-1 saddles found from one minimum.

    **Fields:** `minimum` (the `CriticalPoint` searched from), `saddles` (distinct index-1
    `CriticalPoint`s), `searches` (one dict per start: label, status, iterations, saddle index or None,
    message), `status` ("converged" when at least one saddle was found, else "no_saddle"), `message`,
    `wall_time`.
    """

    minimum: CriticalPoint
    saddles: list
    searches: list
    status: str
    message: str
    wall_time: float

    def to_dict(self) -> dict:
        return dict(minimum=self.minimum.to_dict(), saddles=[s.to_dict() for s in self.saddles],
                    searches=self.searches, status=self.status, message=self.message,
                    wall_time=self.wall_time)


def _climb(problem, theta_min, direction, *, step, displacement, max_iter, scale, gtol, seed):
    """One minimum-mode-following walk; returns (status, iterations, CriticalPoint or None, message)."""
    x = theta_min + displacement * direction
    prev = direction
    for it in range(1, max_iter + 1):
        g = problem.grad(x)
        if not np.all(np.isfinite(g)):
            return "non_finite", it, None, "the gradient became non-finite"
        lam, V = lowest_mode(problem, x, scale=scale, seed=seed)
        v = V[:, 0]
        v = v if v @ prev >= 0 else -v
        g_par = float(g @ v)
        g_perp = g - g_par * v
        if lam[0] < 0:
            along = -g_par / lam[0]  # Newton along the negative mode: uphill to the saddle
            if abs(along) <= step and np.linalg.norm(g_perp) <= abs(lam[0]) * step:
                cp = find_critical_point(problem, x, gtol=gtol, radius=10 * step)
                if cp.success and cp.morse_index == 1:
                    return "converged", it, cp, f"index-1 saddle after {it} steps"
                if cp.success:
                    return "wrong_index", it, cp, (f"refined to a critical point of index {cp.morse_index} "
                                                   f"(signature {cp.signature}), not 1")
            d_par = along * v
        else:
            out = 1.0 if v @ (x - theta_min) >= 0 else -1.0  # away from the minimum
            d_par = out * step * v
        # Across the mode: a gradient step 1/λ_max(x), stable for every local curvature (Newton in 2-D).
        d_perp = -g_perp / max(float(max_curvature(problem, jnp.asarray(x))), 1e-300)
        # Each part is held to one step: relaxing across the mode does not shorten the climb along it.
        d_par, d_perp = (d * min(1.0, step / max(np.linalg.norm(d), 1e-300)) for d in (d_par, d_perp))
        dx = d_par + d_perp
        x = x + dx
        prev = dx if np.any(dx) else prev
    return "max_iter", max_iter, None, f"no index-1 saddle within max_iter={max_iter} steps"


def saddle_search(problem: Problem, theta_min, *, n_modes: int = 1, n_random: int = 0, seed: int = 0,
                  step: float | None = None, displacement: float | None = None, max_iter: int = 500,
                  gtol: float = 1e-10, dedup_tol: float = 1e-6) -> SaddleSearch:
    """Index-1 saddles around a minimum by minimum-mode following (the dimer method with Lanczos modes).

    **Arguments:**

    - `problem`, `theta_min`: the problem and a minimum (refined first with `find_critical_point`).
    - `n_modes`: start along ± each of the `n_modes` softest Hessian modes at the minimum.
    - `n_random`, `seed`: also start along `n_random` random unit directions (seeded).
    - `step`: the largest move of one step (default 0.02·(1 + ‖θ_min‖)); `displacement`: the first
      move from the minimum (default 2·step).
    - `max_iter`: steps of each walk; `gtol`: the refinement's gradient tolerance.
    - `dedup_tol`: saddles with the same signature within this function distance are one.

    **Returns:** a `SaddleSearch`.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    theta_min = _checks.theta_vector("theta_min", theta_min, problem.n_params)
    n_modes = _checks.positive_int("n_modes", n_modes, minimum=0)
    n_random = _checks.positive_int("n_random", n_random, minimum=0)
    seed = _checks.positive_int("seed", seed, minimum=0)
    max_iter = _checks.positive_int("max_iter", max_iter)
    if n_modes + n_random == 0:
        raise ValueError("n_modes and n_random are both 0: give at least one start direction.")
    if n_modes > problem.n_params:
        raise ValueError(f"n_modes={n_modes} exceeds the number of parameters ({problem.n_params}).")
    t0 = time.perf_counter()
    minimum = find_critical_point(problem, theta_min, gtol=gtol)
    if not minimum.success:
        raise ValueError(f"theta_min does not refine to a critical point ({minimum.message}); start from a "
                         "minimum (e.g. the end of a gradient flow).")
    if minimum.morse_index != 0:
        raise ValueError(f"theta_min refines to a critical point of index {minimum.morse_index} (signature "
                         f"{minimum.signature}), not a minimum.")
    base = np.asarray(minimum.theta)
    step = 0.02 * (1.0 + float(np.linalg.norm(base))) if step is None else _checks.positive("step", step)
    displacement = 2 * step if displacement is None else _checks.positive("displacement", displacement)
    scale = float(max_curvature(problem, jnp.asarray(base)))
    starts = []
    if n_modes:
        _, V = lowest_mode(problem, base, n_modes=n_modes, scale=scale, seed=seed)
        for i in range(V.shape[1]):
            starts += [(f"+mode{i + 1}", V[:, i]), (f"-mode{i + 1}", -V[:, i])]
    rng = np.random.default_rng(seed)
    for j in range(n_random):
        z = rng.standard_normal(problem.n_params)
        starts.append((f"random[{j}]", z / np.linalg.norm(z)))
    saddles, searches = [], []
    for label, d in starts:
        status, it, cp, msg = _climb(problem, base, d, step=step, displacement=displacement,
                                     max_iter=max_iter, scale=scale, gtol=gtol, seed=seed)
        idx = None
        if status == "converged":
            idx = match_target(problem, cp, saddles, tol=dedup_tol)
            if idx is None:
                saddles.append(cp)
                idx = len(saddles) - 1
        searches.append(dict(label=label, status=status, iterations=it, saddle=idx, message=msg))
    found = sum(s["status"] == "converged" for s in searches)
    status = "converged" if saddles else "no_saddle"
    message = (f"{len(saddles)} distinct index-1 saddle(s) from {found} of {len(starts)} walks"
               + ("" if saddles else "; every walk ended otherwise (see searches)"))
    return SaddleSearch(minimum, saddles, searches, status, message, time.perf_counter() - t0)
