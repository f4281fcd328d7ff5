"""The gradient-norm floor: how small the computed ‖∇L‖ can get near a critical point.

In floating point θ is known only to relative precision ε (machine epsilon), so near a minimum the
computed gradient cannot fall below about ε·‖H‖₂·‖θ‖ (rounding θ moves ∇L by H·δθ); a loss whose
evaluation loses digits (cancellation in a closed-form kernel, long sums) adds its own error on top. A
gtol below this floor can never be met, and a run that sits at it has reached the minimum to the accuracy
the problem allows (DESIGN.md, "Numerics at the edges").

`gradient_floor` measures both parts at θ: ‖H‖₂ by power iteration on Hessian-vector products, and the
spread of the computed ∇L over a few rounding-level perturbations of θ (seeded), which catches
evaluation error that the first term does not.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gradient_floor", "FLOOR_FACTOR"]

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
