"""The gradient-norm floor: a flow whose gtol lies below what the problem allows ends "converged" with
the floor in its stats, on every solver path; a flow that really failed still says so."""

import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools.dynamics.floor import FLOOR_FACTOR, gradient_floor


@pytest.fixture(scope="module")
def least_squares():
    """Linear least squares with a minimum of norm ≈ 200: its floor ε·‖H‖·‖θ*‖ is ≈ 1e-13."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5))
    theta_star = 100 * rng.standard_normal(5)
    model = ft.FunctionModel(lambda th, x: (x @ th)[:, None], 5, 5, 1)
    return ft.Problem(model, ft.Dataset(x, (x @ theta_star)[:, None])), x, theta_star


def test_floor_against_numpy(least_squares):
    problem, x, theta_star = least_squares
    H = x.T @ x / x.shape[0]  # half_mse: L = ½ mean (xθ − y)²
    floor = gradient_floor(problem, theta_star)
    h_norm = np.linalg.eigvalsh(H)[-1]
    # Power iteration approaches ‖H‖₂ from below (a Rayleigh-quotient bound).
    assert 0.95 * h_norm <= floor["hessian_norm"] <= h_norm * (1 + 1e-12)
    eps = np.finfo(float).eps
    assert floor["rounding"] == pytest.approx(eps * floor["hessian_norm"] * np.linalg.norm(theta_star), rel=1e-12)
    assert floor["floor"] >= floor["rounding"]
    # The computed gradient at the exact minimum is no smaller than round-off, and within the floor.
    g = np.linalg.norm(problem.grad(theta_star))
    assert g <= FLOOR_FACTOR * floor["floor"]


@pytest.mark.parametrize("solver, t1", [("bdf", None), ("rkc", None), ("kvaerno5", 1e8)])
def test_gtol_below_floor_converges(least_squares, solver, t1):
    problem, _, theta_star = least_squares
    run = ft.gradient_flow(problem, np.zeros(5), t1, gtol=1e-22, solver=solver, max_steps=5000)
    assert run.status == ft.Status.CONVERGED, run.message
    floor = run.stats["gradient_floor"]
    assert 1e-15 < floor < 1e-11
    assert "attainable floor" in run.message and f"{floor:.3g}" in run.message
    assert run.grad_norm[-1] <= FLOOR_FACTOR * floor
    np.testing.assert_allclose(run.final_theta, theta_star, rtol=1e-9)


def test_genuine_failure_still_fails():
    """A discontinuous vector field pushes θ onto θ = 0 from both sides with |∇L| ≈ 0.8: the step size
    falls below rounding there, and the floor (≈ 0) does not excuse it."""
    x = np.linspace(-1, 1, 9)[:, None]
    model = ft.FunctionModel(lambda th, x: x * (th[0] + 3 * jnp.sign(th[0])), 1, 1, 1)
    problem = ft.Problem(model, ft.Dataset(x, x))
    run = ft.gradient_flow(problem, np.array([0.5]), 1e3, gtol=1e-9, solver="bdf")
    assert run.status == ft.Status.FAILED
    assert run.grad_norm[-1] > 0.5  # mean(x²)·2 ≈ 0.83
    assert run.stats["gradient_floor"] < 1e-20
    assert "attainable floor" in run.message
