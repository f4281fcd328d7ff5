"""Monte Carlo checks of the minimal model's claims beyond the published figures (Maleknia & Sato).

- Sec. 4.1: the number of unstable Hessian directions sampled on the plateau and optimal regions.
- Prop. 3.1: on the optimal set M, L (half-mean) is constant and distributed as (τ²/2n) χ²(n) over
  noise draws, and ∇L ≠ 0 there (M holds no critical point for τ > 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

import flowtools as ft


def optimal_set_samples(rng, n: int) -> dict[str, np.ndarray]:
    """Points of M = {θ : f(·; θ) = 2 tanh}, one array per component of M (up to symmetry):

    - "split":    w1 = w2 = 1, v1 + v2 = 2 (the teacher neuron split in two);
    - "free_w2":  w1 = 1, v1 = 2, v2 = 0, any w2 (an idle second neuron);
    - "free_v2":  w1 = 1, v1 = 2, w2 = 0, any v2.
    """
    lam = rng.uniform(-1.0, 2.0, n)
    w2 = rng.uniform(-3.0, 3.0, n)
    v2 = rng.uniform(-3.0, 3.0, n)
    one, zero = np.ones(n), np.zeros(n)
    return {
        "split": np.stack([one, one, 2 * lam, 2 * (1 - lam)], 1),
        "free_w2": np.stack([one, w2, 2 * one, zero], 1),
        "free_v2": np.stack([one, zero, 2 * one, v2], 1),
    }


def plateau_samples(rng, n: int, radius: float) -> np.ndarray:
    """Points drawn uniformly in the ball ‖θ‖ ≤ radius around the singular point θ = 0."""
    d = rng.standard_normal((n, 4))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return radius * d * rng.uniform(0, 1, (n, 1)) ** 0.25


def unstable_direction_counts(problem, thetas, rtol_zero: float = ft.landscape.DEFAULT_RTOL_ZERO, batch: int = 20000) -> np.ndarray:
    """Number of negative Hessian eigenvalues (= positive eigenvalues of the flow's Jacobian −H) at
    each row of `thetas`."""
    hess = jax.jit(jax.vmap(problem.hessian_fn))
    out = []
    for i in range(0, len(thetas), batch):
        ev = np.linalg.eigvalsh(np.asarray(hess(jnp.asarray(thetas[i:i + batch]))))
        out.append(ft.landscape.signature(ev, rtol_zero)[0])
    return np.concatenate(out)


def sec41_counts(problem, rng, n: int, plateau_radius: float = 0.2) -> dict:
    """Sec. 4.1: histogram of unstable-direction counts on the plateau and optimal regions."""
    result = {}
    plateau = unstable_direction_counts(problem, plateau_samples(rng, n, plateau_radius))
    result["plateau"] = dict(n_samples=n, radius=plateau_radius,
                             histogram=np.bincount(plateau, minlength=5).tolist())
    for name, pts in optimal_set_samples(rng, n).items():
        c = unstable_direction_counts(problem, pts)
        result[f"optimal_{name}"] = dict(n_samples=n, histogram=np.bincount(c, minlength=5).tolist())
    return result


def prop31_chi2(x: np.ndarray, tau: float, n_draws: int, rng) -> dict:
    """Prop. 3.1 by Monte Carlo over noise draws ξ ~ N(0, τ²) on the published inputs x.

    For each draw, L (half_mse) is evaluated at several points of M; it must be the same at all of
    them, and 2n L / τ² must follow χ²(n). Also records min ‖∇L‖ over M (must be > 0).
    """
    x = np.asarray(x).reshape(-1, 1)
    n = x.shape[0]
    model = ft.problems.minimal_model().model  # the published student; the targets are redrawn below
    points = np.concatenate([v[:4] for v in optimal_set_samples(rng, 4).values()])
    values, spreads, min_grad = [], [], np.inf
    teacher = 2 * np.tanh(x)

    @jax.jit
    def loss_and_grad(thetas, y):
        def one(th):
            r = model.apply(th, jnp.asarray(x)) - y
            return jnp.sum(r * r) / (2 * n)
        return jax.vmap(jax.value_and_grad(one))(thetas)

    pts = jnp.asarray(points)
    for _ in range(n_draws):
        y = teacher + tau * rng.standard_normal((n, 1))
        L, g = loss_and_grad(pts, jnp.asarray(y))
        L, g = np.asarray(L), np.asarray(g)
        values.append(L[0])
        spreads.append(float(L.max() - L.min()))
        min_grad = min(min_grad, float(np.min(np.linalg.norm(g, axis=1))))
    values = np.asarray(values)
    scaled = 2 * n * values / tau**2
    ks = stats.kstest(scaled, stats.chi2(df=n).cdf)
    return dict(n_draws=n_draws, tau=tau, n=n, mean_L=float(values.mean()),
                expected_mean_L=tau**2 / 2, var_L=float(values.var(ddof=1)),
                expected_var_L=(tau**2 / (2 * n)) ** 2 * 2 * n, ks_statistic=float(ks.statistic),
                ks_pvalue=float(ks.pvalue), max_spread_over_M=float(np.max(spreads)),
                min_grad_norm_on_M=min_grad, scaled_samples=scaled)
