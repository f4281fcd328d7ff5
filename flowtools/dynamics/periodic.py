"""Periodic orbits of the GD map G(θ) = θ − η∇L(θ): the attractors of GD at the edge of stability.

When 2/η falls below the sharpness of every minimum GD could converge to, GD often settles on a stable
period-2 orbit across a valley, θ_a ↦ θ_b ↦ θ_a, whose sharpness straddles 2/η (Cohen et al. 2021,
Sec. 3; in one dimension, a period-doubling bifurcation of the map). A period-p orbit is a fixed point of
G^p that is not a fixed point of G^q for a proper divisor q of p. Its stability is decided by the
*multipliers*, the eigenvalues μ of

    DG^p(θ_0) = (I − ηH(θ_{p−1})) ⋯ (I − ηH(θ_1)) (I − ηH(θ_0)),

the same at every point of the orbit: stable when every |μ| < 1. The signature of an orbit counts its
multipliers with |μ| > 1 (unstable directions), |μ| = 1 (neutral, to tolerance) and |μ| < 1, by
analogy with the Morse signature of a critical point.

`periodic_orbit` recognises an orbit from a state: it iterates G a few periods from there, takes the
smallest p with θ_p ≈ θ_0 (relative to the step ‖θ_1 − θ_0‖), and refines the orbit by Newton on
G^p(θ) − θ = 0 with the dense Jacobian DG^p − I (forward-mode through p gradient steps; up to
`DENSE_MAX` parameters, above which it iterates G itself onto the orbit).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import _checks
from .sharpness import sharpness

__all__ = ["PeriodicOrbit", "periodic_orbit"]

#: Largest number of parameters for the dense Jacobian of G^p (Newton refinement, all multipliers).
DENSE_MAX = 1000


@eqx.filter_jit
def _iterates(problem, theta, lr, n: int):
    """θ, G(θ), …, G^n(θ), shape (n + 1, n_params)."""
    def step(th, _):
        new = th - lr * problem.grad_fn(th)
        return new, new

    _, out = lax.scan(step, theta, None, length=n)
    return jnp.concatenate([theta[None], out])


@eqx.filter_jit
def _return_map(problem, theta, lr, p: int):
    """(G^p(θ) − θ, its Jacobian DG^p(θ) − I)."""
    def f(th):
        for _ in range(p):
            th = th - lr * problem.grad_fn(th)
        return th

    value, jac = f(theta), jax.jacfwd(f)(theta)
    return value - theta, jac - jnp.eye(theta.shape[0], dtype=theta.dtype)


@eqx.filter_jit
def _power_radius(problem, theta, lr, p: int, v0, n_iter: int = 60):
    """|μ|_max of DG^p(θ) by power iteration on Jacobian-vector products (matrix-free)."""
    def f(th):
        for _ in range(p):
            th = th - lr * problem.grad_fn(th)
        return th

    def body(_, c):
        v, _ = c
        w = jax.jvp(f, (theta,), (v,))[1]
        nw = jnp.linalg.norm(w)
        return w / jnp.where(nw > 0, nw, 1.0), nw

    _, radius = lax.fori_loop(0, n_iter, body, (v0 / jnp.linalg.norm(v0), jnp.asarray(0.0)))
    return radius


@dataclasses.dataclass
class PeriodicOrbit:
    """A period-p orbit of the GD map with step `lr`.

    **Fields:** `period`; `points` (p, n_params), starting at the refined image of the given state (in
    the orbit's order); `losses` and `grad_norms` at each point; `multipliers`: the moduli |μ| of the
    eigenvalues of DG^p, descending (only the largest, by power iteration, above `DENSE_MAX`
    parameters); `spectral_radius` (= multipliers[0]); `stable` (spectral_radius < 1); `signature`
    (n with |μ| > 1, n with |μ| ≈ 1, n with |μ| < 1; None entries when only the largest is known);
    `residual`: ‖G^p(θ_0) − θ_0‖ of the refined point; `distance`: ‖θ − θ_0‖ from the state it was
    recognised at; `sharpness`: λ_max(H) at each point (`sharpness.sharpness`), to compare with
    `two_over_lr` = 2/η; `lr`."""

    period: int
    points: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    multipliers: np.ndarray
    spectral_radius: float
    stable: bool
    signature: tuple
    residual: float
    distance: float
    sharpness: np.ndarray
    lr: float

    @property
    def two_over_lr(self) -> float:
        return 2.0 / self.lr

    @property
    def kind(self) -> str:
        return f"period-{self.period} orbit"

    @property
    def mean_loss(self) -> float:
        """The loss averaged over one period: what a run on the orbit reports on average."""
        return float(np.mean(self.losses))

    @property
    def representative(self) -> int:
        """The index of the orbit's lowest-loss point: the same point whatever phase a run ends in."""
        return int(np.argmin(self.losses))

    def to_dict(self) -> dict:
        return dict(kind=self.kind, period=self.period, points=self.points.tolist(),
                    losses=self.losses.tolist(), mean_loss=self.mean_loss, grad_norms=self.grad_norms.tolist(),
                    multipliers=self.multipliers.tolist(), spectral_radius=self.spectral_radius,
                    stable=self.stable, signature=list(self.signature), residual=self.residual,
                    distance=self.distance, sharpness=self.sharpness.tolist(),
                    mean_sharpness=float(np.mean(self.sharpness)), two_over_lr=self.two_over_lr, lr=self.lr)


def periodic_orbit(problem, theta, lr: float, *, max_period: int = 4, detect_tol: float = 0.05,
                   xtol: float = 1e-12, max_iter: int = 30, rtol_unit: float = 1e-7) -> PeriodicOrbit | None:
    """The periodic orbit of GD (step `lr`) that the state θ lies on or next to, or None.

    **Arguments:**

    - `max_period`: the longest period looked for.
    - `detect_tol`: a period p is a candidate when ‖G^p(θ) − θ‖ ≤ detect_tol · ‖G(θ) − θ‖ (the smallest
      such p ≥ 2, or the best return among p ≤ max_period when it passes).
    - `xtol`: Newton stops when ‖G^p(θ) − θ‖ ≤ xtol · (1 + ‖θ‖).
    - `rtol_unit`: multipliers with ||μ| − 1| ≤ rtol_unit count as neutral in the signature.

    **Returns:** a `PeriodicOrbit` of minimal period p ≥ 2, or None: θ is (next to) a fixed point, no
    period up to `max_period` returns, the refinement does not converge, or it lands on an orbit of a
    shorter period (e.g. the minimum a 2-cycle straddles)."""
    lr = _checks.positive("lr", lr)
    max_period = _checks.positive_int("max_period", max_period, minimum=2)
    theta = jnp.asarray(_checks.theta_vector("theta", theta, problem.n_params), dtype=jnp.float64)
    lr_j = jnp.asarray(lr)
    z = np.asarray(_iterates(problem, theta, lr_j, max_period))
    step = float(np.linalg.norm(z[1] - z[0]))
    scale = 1.0 + float(np.linalg.norm(z[0]))
    if not np.all(np.isfinite(z)) or step <= 1e3 * np.finfo(float).eps * scale:
        return None  # diverging, or at a fixed point (a critical point) to round-off
    returns = np.array([np.linalg.norm(z[p] - z[0]) for p in range(1, max_period + 1)]) / step
    candidates = [p for p in range(2, max_period + 1) if returns[p - 1] <= detect_tol]
    if not candidates:
        return None
    p = candidates[0]

    th = theta
    n = problem.n_params
    for _ in range(max_iter):
        if n <= DENSE_MAX:
            value, jac = _return_map(problem, th, lr_j, p)
            res = float(jnp.linalg.norm(value))
            if not np.isfinite(res):
                return None
            if res <= xtol * (1.0 + float(jnp.linalg.norm(th))):
                break
            # Minimum-norm step on the well-conditioned part (directions along which the orbit is
            # neutral do not move it), at most one oscillation amplitude long.
            delta = np.linalg.lstsq(np.asarray(jac), -np.asarray(value), rcond=1e-8)[0]
            delta *= min(1.0, step / max(float(np.linalg.norm(delta)), 1e-300))
            th = th + jnp.asarray(delta)
        else:  # matrix-free: follow G itself onto the (attracting) orbit
            zs = _iterates(problem, th, lr_j, p)
            res = float(jnp.linalg.norm(zs[-1] - zs[0]))
            if res <= xtol * (1.0 + float(jnp.linalg.norm(th))):
                break
            th = _iterates(problem, th, lr_j, 64 * p)[-1]
    else:
        return None
    points = np.asarray(_iterates(problem, th, lr_j, p))
    residual = float(np.linalg.norm(points[-1] - points[0]))
    points = points[:-1]
    # Minimal period: no proper divisor q of p returns (the refinement can land on the fixed point a
    # 2-cycle straddles, a fixed point of every G^p).
    gap = float(np.linalg.norm(points[1] - points[0])) if p > 1 else 0.0
    if gap <= 1e3 * xtol * scale or any(
            np.linalg.norm(points[q % p] - points[0]) <= 1e3 * xtol * scale for q in range(1, p) if p % q == 0):
        return None
    if n <= DENSE_MAX:
        _, jac = _return_map(problem, jnp.asarray(points[0]), lr_j, p)
        mu = np.abs(np.linalg.eigvals(np.asarray(jac) + np.eye(n)))
        multipliers = np.sort(mu)[::-1]
        signature = (int(np.sum(multipliers > 1 + rtol_unit)),
                     int(np.sum(np.abs(multipliers - 1) <= rtol_unit)),
                     int(np.sum(multipliers < 1 - rtol_unit)))
    else:
        v0 = jnp.cos(jnp.arange(n, dtype=jnp.float64) * 1.234567) + 0.1
        multipliers = np.array([float(_power_radius(problem, jnp.asarray(points[0]), lr_j, p, v0))])
        signature = (int(multipliers[0] > 1 + rtol_unit), None, None)
    radius = float(multipliers[0])
    losses = np.array([problem.loss(pt) for pt in points])
    gnorms = np.array([problem.grad_norm(pt) for pt in points])
    return PeriodicOrbit(period=p, points=points, losses=losses, grad_norms=gnorms, multipliers=multipliers,
                         spectral_radius=radius, stable=bool(radius < 1 - rtol_unit), signature=signature,
                         residual=residual, distance=float(np.linalg.norm(np.asarray(theta) - points[0])),
                         sharpness=np.atleast_1d(sharpness(problem, points)), lr=lr)
