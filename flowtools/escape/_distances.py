"""Distances to a center, the measure of escape: the parameter distance ‖θ − c‖₂, or the function distance
d_f(θ, c) = ( (1/n) Σ_k ‖f(x_k; θ) − f(x_k; c)‖² )^{1/2} on the problem's training inputs (the package's one
function distance, `flowtools.landscape.symmetry.function_distance`).
"""

from __future__ import annotations

import numpy as np

from .. import _checks
from ..landscape.symmetry import function_distances
from ..problem import Problem

METRICS = ("parameter", "function")


def center_theta(center, n_params: int) -> np.ndarray:
    theta = getattr(center, "theta", center)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim == 2 and theta.shape[0] >= 1 and hasattr(center, "theta"):
        raise TypeError("center has a 2-D .theta (a trajectory?); pass a single point, e.g. traj.theta[-1].")
    return _checks.theta_vector("center", theta, n_params)


def distances(thetas, center, *, metric: str = "parameter", problem: Problem | None = None) -> np.ndarray:
    """Distance of each row of `thetas` to `center`.

    **Arguments:**

    - `thetas`: parameters, shape (m, n_params) (or one vector).
    - `center`: a θ vector, or an object with a `.theta` attribute (e.g. a critical point).
    - `metric`: "parameter" (‖θ − c‖₂) or "function" (RMS output difference on the problem's training
      inputs, ((1/n) Σ_k ‖f(x_k; θ) − f(x_k; c)‖²)^{1/2}); "function" needs `problem`.

    **Returns:** an array of shape (m,).
    """
    metric = _checks.choice("metric", metric, METRICS)
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    if metric == "function":
        if not isinstance(problem, Problem):
            raise ValueError("metric='function' needs problem=<the flowtools.Problem> for its inputs.")
        n_params = problem.n_params
    else:
        n_params = thetas.shape[1]
    thetas = _checks.theta_batch("thetas", thetas, n_params)
    c = center_theta(center, n_params)
    if metric == "parameter":
        return np.linalg.norm(thetas - c[None, :], axis=1)
    return function_distances(problem, thetas, c)
