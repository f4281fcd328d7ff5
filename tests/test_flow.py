"""Gradient flow: the published run against 2·10⁶ GD steps, agreement with scipy's solve_ivp, the time
convention t = kη across loss conventions, and every way a flow can end."""

import numpy as np
import pytest
import scipy.integrate

import flowtools as ft

from conftest import PUBLISHED_THETA0

X_GRID = np.linspace(-3.0, 3.0, 601)


def assert_finite(traj):
    """No trajectory may contain NaN or Inf, whatever its status."""
    for name in ("t", "theta", "loss", "grad_norm"):
        assert np.all(np.isfinite(getattr(traj, name))), name
    if traj.gen_error is not None:
        assert np.all(np.isfinite(traj.gen_error))


# ----------------------------------------------------------------------------- the published run
@pytest.fixture(scope="session")
def published_gd(minimal_mse):
    """Maleknia & Sato's reference run: mean-squared error, η = 0.01, 2·10⁶ full-batch steps."""
    return ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=2_000_000, progress=False)


@pytest.fixture(scope="session")
def published_flow(minimal_mse):
    """Gradient flow from the same start to the same time t = kη = 2·10⁴."""
    return ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, t1=2e4)


@pytest.fixture(scope="session")
def published_flow_converged(minimal_mse, published_flow):
    """The flow continued from t = 2·10⁴ until ‖∇L‖ ≤ 1e-12."""
    return ft.gradient_flow(minimal_mse, published_flow.final_theta, None, gtol=1e-12,
                            t0=published_flow.final_time)


def test_published_gd_reaches_a_critical_point(published_gd):
    assert_finite(published_gd)
    assert published_gd.status == ft.Status.T1_REACHED
    assert published_gd.stats["steps"] == 2_000_000
    assert published_gd.final_time == pytest.approx(2e4, rel=1e-15)
    assert published_gd.final_grad_norm <= 1e-7


def test_published_flow_reaches_the_gd_function(minimal_mse, published_gd, published_flow):
    assert_finite(published_flow)
    assert published_flow.status == ft.Status.T1_REACHED
    assert published_flow.final_time == 2e4
    f_gd = minimal_mse.predict(published_gd.final_theta, X_GRID)
    f_gf = minimal_mse.predict(published_flow.final_theta, X_GRID)
    assert np.max(np.abs(f_gd - f_gf)) <= 1e-5
    assert published_flow.final_loss == pytest.approx(published_gd.final_loss, rel=1e-9)
    # Gradient flow descends: dL/dt = −‖∇L‖² ≤ 0 (up to rounding in evaluating L).
    assert np.all(np.diff(published_flow.loss) <= 1e-14 * published_flow.loss[:-1])
    # The run passes through the plateau near the origin: ‖∇L‖ dips well below its start, then rises.
    g = published_flow.grad_norm
    assert g.min() < 0.5 * g[0]


def test_published_flow_converges_to_the_gd_minimum(minimal_mse, published_gd, published_flow_converged):
    run = published_flow_converged
    assert_finite(run)
    assert run.status == ft.Status.CONVERGED and run.converged
    assert run.final_grad_norm <= 1e-12
    assert run.t[0] == 2e4 and run.final_time > 2e4
    theta_star = run.final_theta
    H = minimal_mse.hessian(theta_star)
    eig = np.linalg.eigvalsh(H)
    assert eig[0] > 0  # a strict local minimum
    # GD's end point lies in the quadratic basin of θ*: one Newton step from it lands on θ* with an
    # error of second order in the distance, far below the distance itself.
    theta_gd = published_gd.final_theta
    g = minimal_mse.grad(theta_gd)
    newton = theta_gd - np.linalg.solve(minimal_mse.hessian(theta_gd), g)
    dist = np.linalg.norm(theta_gd - theta_star)
    assert dist <= 1.01 * np.linalg.norm(g) / eig[0]
    assert np.linalg.norm(newton - theta_star) <= 1e-3 * dist
    assert run.final_loss <= published_gd.final_loss


# ----------------------------------------------------------------------------- scipy agreement
def solve_ivp_reference(problem, theta0, save_ts, rtol, atol):
    sol = scipy.integrate.solve_ivp(
        lambda t, y: -problem.grad(y), (0.0, save_ts[-1]), theta0, method="LSODA", t_eval=save_ts,
        rtol=rtol, atol=atol, jac=lambda t, y: -problem.hessian(y))
    assert sol.status == 0, sol.message
    return sol.y.T


def test_flow_matches_solve_ivp_minimal_model(minimal_mse):
    # Through the plateau, the escape and the slow approach to the minimum (t up to 2·10⁴).
    save_ts = np.geomspace(1e-2, 2e4, 200)
    rtol, atol = 1e-8, 1e-10
    run = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, t1=2e4, save_ts=save_ts, rtol=rtol, atol=atol)
    assert_finite(run)
    np.testing.assert_array_equal(run.t, np.concatenate([[0.0], save_ts]))
    ref = solve_ivp_reference(minimal_mse, PUBLISHED_THETA0, save_ts, rtol, atol)
    # Two independent integrators at rtol = 1e-8: agreement within 100·rtol on θ of order 1.
    assert np.max(np.abs(run.theta[1:] - ref)) <= 1e-6


def test_flow_matches_solve_ivp_teacher_student():
    teacher = ft.MLP((1, 2, 1), "tanh", bias=False)
    data = ft.teacher_dataset((teacher, np.array([1.0, -2.0, 1.5, 0.8])), 30, noise=0.05, seed=0)
    student = ft.MLP((1, 3, 1), "tanh", bias=True)
    problem = ft.Problem(student, data, "half_mse")
    theta0 = 0.5 * np.random.default_rng(3).standard_normal(student.n_params)
    save_ts = np.geomspace(1e-2, 1e3, 100)
    rtol, atol = 1e-8, 1e-10
    run = ft.gradient_flow(problem, theta0, t1=1e3, save_ts=save_ts, rtol=rtol, atol=atol)
    assert_finite(run)
    assert run.loss[-1] < 0.1 * run.loss[0]
    ref = solve_ivp_reference(problem, theta0, save_ts, rtol, atol)
    assert np.max(np.abs(run.theta[1:] - ref)) <= 1e-6


# ----------------------------------------------------------------------------- time convention
def test_flow_time_scales_with_loss_convention(minimal_mse, minimal_half):
    # ∇L_mse = 2 ∇L_half, so θ_mse(t) = θ_half(2t): the flow's clock follows the convention, as GD's
    # t = kη does.
    ts = np.geomspace(1e-2, 50.0, 200)
    mse = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, t1=50.0, save_ts=ts, rtol=1e-10, atol=1e-12)
    half = ft.gradient_flow(minimal_half, PUBLISHED_THETA0, t1=100.0, save_ts=2 * ts, rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(mse.theta - half.theta)) <= 1e-7
    np.testing.assert_allclose(mse.loss, 2 * half.loss, rtol=1e-7)


# ----------------------------------------------------------------------------- statuses
def test_flow_max_steps(minimal_mse):
    # An explicit solver here: any solver must report the budget the same way (and it compiles faster).
    run = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, t1=2e4, max_steps=20, solver="tsit5")
    assert_finite(run)
    assert run.status == ft.Status.MAX_STEPS
    assert run.stats["steps"] == 20
    assert run.final_time < 2e4
    assert "max_steps" in run.message


def test_flow_divergence_guard(minimal_mse):
    # ‖θ‖ grows from 0.28 to about 2.8 along the published run; a guard at 1 must fire, once.
    run = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, t1=2e4, max_norm=1.0)
    assert_finite(run)
    assert run.status == ft.Status.DIVERGED
    norms = np.linalg.norm(run.theta, axis=1)
    assert norms[-1] > 1.0 and np.all(norms[:-1] <= 1.0)
    assert run.final_time < 2e4


def test_flow_gtol_with_finite_t1(minimal_mse):
    run = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, t1=2e4, gtol=1e-3)
    assert_finite(run)
    assert run.status == ft.Status.CONVERGED
    assert run.final_grad_norm <= 1e-3
    assert np.all(run.grad_norm[:-1] > 1e-3)  # saved before the event


def test_flow_to_infinity_needs_gtol(minimal_mse):
    with pytest.raises(ValueError, match="gtol"):
        ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, None)
