"""The gradient-norm floor: how small the computed ‖∇L‖ can get near a critical point.

In floating point θ is known only to relative precision ε (machine epsilon), so near a minimum the
computed gradient cannot fall below about ε·‖H‖₂·‖θ‖ (rounding θ moves ∇L by H·δθ); a loss whose
evaluation loses digits (cancellation in a closed-form kernel, long sums) adds its own error on top. A
gtol below this floor can never be met, and a run that sits at it has reached the minimum to the accuracy
the problem allows (docs/getting-started.md, "Statuses").

`gradient_floor` measures both parts at θ: ‖H‖₂ by power iteration on Hessian-vector products, and the
spread of the computed ∇L over a few rounding-level perturbations of θ (seeded), which catches
evaluation error that the first term does not.
"""

from __future__ import annotations

import numpy as np

from .. import _checks
from .trajectory import evaluate_states

__all__ = ["gradient_floor", "kink_test", "sampled_minimum_test", "FLOOR_FACTOR"]

#: A run whose final ‖∇L‖ is within this factor of `gradient_floor` is at the floor: both parts of the
#: estimate are orders of magnitude (the worst rounding of θ lines up with the top eigenvector only by
#: chance), so the run's own noise can exceed them by a few times.
FLOOR_FACTOR = 10.0


def gradient_floor(problem, theta, *, power_iterations: int = 12, perturbations: int = 4,
                   seed: int = 0) -> dict:
    """The attainable ‖∇L‖ at θ.

    **Arguments:**

    - `problem`, `theta`: where to measure (a state of `problem`).
    - `power_iterations`: Hessian-vector products spent on ‖H‖₂ (power iteration from a seeded start).
    - `perturbations`: gradients evaluated at θ + δ, δ_i = ±4ε·max(|θ_i|, RMS(θ)) (random signs,
      seeded).
    - `seed`: of the start vector and the signs.

    **Returns:** dict(floor, rounding, spread, hessian_norm, theta_norm) with rounding = ε·‖H‖₂·‖θ‖,
    spread = max ‖∇L(θ + δ) − ∇L(θ)‖ and floor = max(rounding, spread); NaN entries when ∇L or the
    Hessian-vector products are not finite at θ.
    """
    eps = np.finfo(np.float64).eps
    theta = np.asarray(theta, dtype=np.float64)
    rng = np.random.default_rng(seed)
    theta_norm = float(np.linalg.norm(theta))
    v = rng.standard_normal(theta.shape)
    v /= np.linalg.norm(v)
    h_norm = 0.0
    for _ in range(max(int(power_iterations), 1)):
        w = np.asarray(problem.hvp(theta, v), dtype=np.float64)
        h_norm = float(np.linalg.norm(w))
        if not np.isfinite(h_norm) or h_norm == 0.0:
            break
        v = w / h_norm
    g0 = np.asarray(problem.grad(theta), dtype=np.float64)
    spread = 0.0
    # Each coordinate moves by a few ulps of the larger of |θ_i| and the RMS of θ: a small coordinate
    # beside large ones (a neuron almost aligned with another) is known only to ε·‖θ‖ after rounding.
    size = 4 * eps * np.maximum(np.abs(theta), theta_norm / np.sqrt(max(theta.size, 1)))
    for _ in range(int(perturbations)):
        delta = size * rng.choice([-1.0, 1.0], size=theta.shape)
        spread = max(spread, float(np.linalg.norm(np.asarray(problem.grad(theta + delta)) - g0)))
    rounding = eps * h_norm * theta_norm
    ok = np.isfinite(h_norm) and np.isfinite(spread) and np.all(np.isfinite(g0))
    nan = float("nan")
    return dict(floor=max(rounding, spread) if ok else nan, rounding=rounding if ok else nan,
                spread=spread if ok else nan, hessian_norm=h_norm if ok else nan, theta_norm=theta_norm)


def kink_test(problem, theta, *, deltas=(1e-8, 1e-10), directions: int = 4, seed: int = 0) -> dict:
    """Whether ∇L jumps at θ: a point where L is not differentiable (a kink).

    For a C² loss, ‖∇L(θ + δu) − ∇L(θ − δu)‖ ≈ 2δ‖Hu‖ shrinks in proportion to δ; across a kink it stays
    of the order of the one-sided gradients, whatever δ. A ReLU neuron at w = 0 is the common case: its
    population-loss terms are homogeneous of degree 1 in w, so ∇L depends on the direction from which
    w → 0. The test takes `directions` random unit directions u (seeded), steps δ·(1 + ‖θ‖) for each δ in
    `deltas` (largest first), and calls θ a kink when the largest jump at the smallest δ is at least
    half of that at the largest δ (a C² loss would have shrunk it by max(deltas)/min(deltas)) and well
    above the rounding spread of ∇L.

    **Returns:** dict(kink, jumps, deltas, coordinates) with `jumps` the largest jump at each δ (NaN
    where ∇L is not finite; then `kink` is False) and `coordinates` the indices of θ whose gradient
    entry jumps at the smallest δ by at least 1 % of the largest entry's jump (empty without a kink).
    """
    theta = np.asarray(theta, dtype=np.float64)
    directions = _checks.positive_int("directions", directions)
    rng = np.random.default_rng(seed)
    deltas = sorted((float(d) for d in deltas), reverse=True)
    if len(deltas) < 2 or deltas[-1] <= 0:
        raise ValueError(f"deltas must hold at least two positive step sizes, got {deltas}.")
    scale = 1.0 + float(np.linalg.norm(theta))
    us = rng.standard_normal((directions, theta.size))
    us /= np.linalg.norm(us, axis=1, keepdims=True)
    jumps = []
    for d in deltas:
        j, entries = 0.0, np.zeros(theta.size)
        for u in us:
            step = d * scale * u.reshape(theta.shape)
            diff = np.asarray(problem.grad(theta + step)) - np.asarray(problem.grad(theta - step))
            j = max(j, float(np.linalg.norm(diff)))
            entries = np.maximum(entries, np.abs(diff).ravel())
        jumps.append(j)
    eps = np.finfo(np.float64).eps
    g = float(np.linalg.norm(np.asarray(problem.grad(theta))))
    finite = bool(np.all(np.isfinite(jumps)) and np.isfinite(g))
    kink = finite and jumps[-1] >= 0.5 * jumps[0] and jumps[-1] > 1e6 * eps * (1.0 + g)
    coordinates = np.flatnonzero(entries >= 1e-2 * entries.max()) if kink else np.zeros(0, dtype=int)
    return dict(kink=bool(kink), jumps=jumps, deltas=deltas, coordinates=coordinates)


def sampled_minimum_test(problem, theta, *, radii=(1e-6, 1e-4), directions: int = 64, seed: int = 0,
                         coordinates=None) -> dict:
    """Whether L increases from θ along every sampled direction: a minimum test that needs no Hessian.

    At a kink the Hessian says nothing; L itself does. Directions: `directions` random unit vectors
    (seeded), ±∇L(θ)/‖∇L(θ)‖, and ± each coordinate axis when θ has at most 4·`directions` entries; steps
    r·(1 + ‖θ‖) for r in `radii`. θ passes when no step lowers L by more than its rounding
    (1e3·ε·(1 + |L(θ)|)). A sampled test, not a proof: a descent cone narrower than the sampling can be
    missed, which is why the result says how many directions and radii it tried. `coordinates` (indices
    of θ) restricts every direction to those coordinates: whether θ is a minimum along them alone.

    **Returns:** dict(minimum, worst, n_directions, radii) with `worst` the most negative change seen.
    """
    theta = np.asarray(theta, dtype=np.float64).ravel()
    directions = _checks.positive_int("directions", directions)
    radii = tuple(_checks.positive("radii", r) for r in radii)
    rng = np.random.default_rng(seed)
    mask = np.ones(theta.size, dtype=bool)
    if coordinates is not None:
        mask[:] = False
        mask[np.asarray(coordinates, dtype=int)] = True
    us = [u * mask / np.linalg.norm(u * mask) for u in rng.standard_normal((directions, theta.size))]
    g = np.asarray(problem.grad(theta), dtype=np.float64).ravel() * mask
    if np.linalg.norm(g) > 0:
        us += [g / np.linalg.norm(g), -g / np.linalg.norm(g)]
    if mask.sum() <= 4 * directions:
        eye = np.eye(theta.size)[mask]
        us += list(eye) + list(-eye)
    scale = 1.0 + float(np.linalg.norm(theta))
    steps = np.concatenate([r * scale * np.asarray(us) for r in radii])
    # θ and every step through the package's batched, jitted state evaluator (one kernel for all rows).
    losses = evaluate_states(problem, np.vstack([theta, theta + steps]))[0]
    l0, worst = float(losses[0]), float(np.min(losses[1:] - losses[0]))
    tol = 1e3 * np.finfo(np.float64).eps * (1.0 + abs(l0))
    return dict(minimum=bool(np.isfinite(worst) and worst >= -tol), worst=worst,
                n_directions=len(us), radii=radii)
