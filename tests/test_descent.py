"""The gradient-descent map and SGD: the iteration itself, its recording, its stop conditions, the loss
conventions, and its convergence to gradient flow as η → 0 (order 1; order 2 to the modified flow)."""

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

import flowtools as ft
from conftest import PUBLISHED_THETA0


def assert_finite(traj):
    for name in ("t", "theta", "loss", "grad_norm"):
        assert np.all(np.isfinite(getattr(traj, name))), name
    if traj.gen_error is not None:
        assert np.all(np.isfinite(traj.gen_error))


# ----------------------------------------------------------------------------- the map itself
def test_gd_is_the_gradient_map(minimal_half):
    # θ_{k+1} = θ_k − η ∇L(θ_k), iterated by hand with Problem.grad.
    lr, steps = 0.3, 150
    theta = np.array([0.8, -0.4, 0.3, 1.1])
    run = ft.gradient_descent(minimal_half, theta, lr=lr, steps=steps, record_steps=np.arange(steps + 1))
    expected = [theta]
    for _ in range(steps):
        expected.append(expected[-1] - lr * minimal_half.grad(expected[-1]))
    np.testing.assert_allclose(run.theta, np.array(expected), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(run.step, np.arange(steps + 1))
    np.testing.assert_array_equal(run.t, np.arange(steps + 1) * lr)
    # The recorded L and ‖∇L‖ are those of the recorded states.
    assert run.loss[37] == pytest.approx(minimal_half.loss(run.theta[37]), rel=1e-14)
    assert run.grad_norm[37] == pytest.approx(minimal_half.grad_norm(run.theta[37]), rel=1e-13)
    assert run.gen_error[37] == pytest.approx(minimal_half.gen_error(run.theta[37]), rel=1e-13)
    assert run.stats["steps"] == steps and run.stats["gradient_evaluations"] >= steps
    assert_finite(run)


def test_gd_recording_and_chunking(minimal_half):
    steps = 1000
    a = ft.gradient_descent(minimal_half, PUBLISHED_THETA0, lr=0.05, steps=steps, record_steps=[10, 500, 999])
    np.testing.assert_array_equal(a.step, [0, 10, 500, 999, 1000])
    np.testing.assert_array_equal(a.t, a.step * 0.05)
    # Splitting the run into jitted chunks of 7 steps changes nothing but speed.
    b = ft.gradient_descent(minimal_half, PUBLISHED_THETA0, lr=0.05, steps=steps, record_steps=[10, 500, 999],
                            chunk_size=7)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-13, atol=1e-15)
    # The default grid: log-spaced, unique, from 0 to steps.
    c = ft.gradient_descent(minimal_half, PUBLISHED_THETA0, lr=0.05, steps=steps, n_records=50)
    assert c.step[0] == 0 and c.step[-1] == steps and np.all(np.diff(c.step) > 0) and len(c) <= 50
    np.testing.assert_allclose(c.final_theta, a.final_theta, rtol=1e-13)
    zero = ft.gradient_descent(minimal_half, PUBLISHED_THETA0, lr=0.05, steps=0)
    assert len(zero) == 1 and zero.status == ft.Status.T1_REACHED
    np.testing.assert_array_equal(zero.final_theta, PUBLISHED_THETA0)


def test_gd_loss_conventions(minimal_mse, minimal_half):
    # ∇L_mse = 2∇L_half, so GD with η on "mse" is GD with 2η on "half_mse", step for step. The
    # clocks differ by the convention: t = kη in each.
    lr, steps = 0.01, 5000
    mse = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=lr, steps=steps)
    half = ft.gradient_descent(minimal_half, PUBLISHED_THETA0, lr=2 * lr, steps=steps)
    np.testing.assert_array_equal(mse.step, half.step)
    np.testing.assert_allclose(mse.theta, half.theta, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(mse.loss, 2 * half.loss, rtol=1e-10)
    np.testing.assert_allclose(mse.t, lr * mse.step)
    np.testing.assert_allclose(half.t, 2 * lr * half.step)
    assert mse.meta["loss"] == "mse" and half.meta["loss"] == "half_mse"


# ----------------------------------------------------------------------------- stop conditions
def test_gd_gtol_stops_at_the_first_step(minimal_mse):
    gtol = 5e-3
    run = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=100_000, gtol=gtol)
    assert run.status == ft.Status.CONVERGED
    k = run.stats["event_step"]
    assert k is not None and run.step[-1] == k and run.stats["steps"] == k
    assert run.final_grad_norm <= gtol
    # Re-run to exactly k steps, recording every one: ‖∇L‖ > gtol at every earlier step.
    every = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=k,
                                record_steps=np.arange(k + 1))
    assert every.status == ft.Status.T1_REACHED and len(every) == k + 1
    assert np.all(every.grad_norm[:-1] > gtol)
    assert every.grad_norm[-2] > gtol >= every.grad_norm[-1]
    np.testing.assert_allclose(every.final_theta, run.final_theta, rtol=1e-12)
    assert k > 100  # not a trivial stop at the start
    assert_finite(run)


@pytest.mark.parametrize("lr, expected", [(3.0, ft.Status.DIVERGED), (1e200, ft.Status.NON_FINITE)])
def test_gd_too_large_lr(minimal_mse, lr, expected):
    run = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=lr, steps=1000)
    assert run.status == expected
    k = run.stats["event_step"]
    assert isinstance(k, int) and 0 < k < 1000
    assert np.all(np.isfinite(run.final_theta))
    assert_finite(run)  # L and ‖∇L‖ too: the run keeps an iterate where they are finite
    assert str(k) in run.message
    if expected == ft.Status.DIVERGED:
        # The first iterate outside the ball ‖θ‖ ≤ max_norm is kept and reported.
        assert run.step[-1] == k
        assert np.linalg.norm(run.final_theta) > 1e6 >= np.linalg.norm(run.theta[-2])
    else:
        # ∇L overflowed at step k; the run keeps θ_{k−1}, exactly the GD iterate.
        assert run.step[-1] == k - 1
        theta = PUBLISHED_THETA0.copy()
        for _ in range(k - 1):
            theta = theta - lr * minimal_mse.grad(theta)
        np.testing.assert_allclose(run.final_theta, theta, rtol=1e-12)
        assert not np.all(np.isfinite(minimal_mse.grad(theta - lr * minimal_mse.grad(theta))))


def test_gd_full_run_status(minimal_mse):
    run = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=300)
    assert run.status == ft.Status.T1_REACHED and run.stats["event_step"] is None
    assert "300" in run.message


# ----------------------------------------------------------------------------- GD → gradient flow
ETAS = np.array([0.2, 0.1, 0.05, 0.025])
HORIZON = 5.0  # through the plateau and the escape from it (half_mse time)


@pytest.fixture(scope="module")
def gd_vs_flow(minimal_half):
    """GD at each η and the gradient flow sampled at t = kη (one flow on the finest grid)."""
    fine = ETAS[-1]
    n_fine = int(round(HORIZON / fine))
    flow = ft.gradient_flow(minimal_half, PUBLISHED_THETA0, t1=HORIZON,
                            save_ts=fine * np.arange(1, n_fine + 1), rtol=1e-11, atol=1e-13)
    assert flow.status == ft.Status.T1_REACHED and len(flow) == n_fine + 1
    runs = {}
    for eta in ETAS:
        n = int(round(HORIZON / eta))
        gd = ft.gradient_descent(minimal_half, PUBLISHED_THETA0, lr=eta, steps=n,
                                 record_steps=np.arange(n + 1))
        np.testing.assert_allclose(gd.t, flow.t[:: int(round(eta / fine))], rtol=1e-14)
        runs[eta] = gd
    return flow, runs


def test_gd_approaches_flow_at_order_one(gd_vs_flow):
    flow, runs = gd_vs_flow
    errors = []
    for eta in ETAS:
        stride = int(round(eta / ETAS[-1]))
        errors.append(np.max(np.linalg.norm(runs[eta].theta - flow.theta[::stride], axis=1)))
    fit = scipy.stats.linregress(np.log(ETAS), np.log(errors))
    assert 0.9 <= fit.slope <= 1.1, (fit.slope, fit.stderr, errors)
    assert errors[-1] < 0.05  # the finest GD is already close to the flow


def test_gd_follows_modified_flow_at_order_two(gd_vs_flow, minimal_half):
    # Backward error analysis: GD tracks dθ/dt = −∇L − (η/2) H∇L (= −∇(L + η/4 ‖∇L‖²)) to O(η²).
    _, runs = gd_vs_flow
    errors = []
    for eta in ETAS:
        def field(t, y, eta=eta):
            g = minimal_half.grad(y)
            return -(g + 0.5 * eta * minimal_half.hvp(y, g))

        gd = runs[eta]
        sol = scipy.integrate.solve_ivp(field, (0.0, HORIZON), PUBLISHED_THETA0, method="DOP853", t_eval=gd.t,
                                        rtol=1e-12, atol=1e-14)
        errors.append(np.max(np.linalg.norm(gd.theta - sol.y.T, axis=1)))
    fit = scipy.stats.linregress(np.log(ETAS), np.log(errors))
    assert 1.9 <= fit.slope <= 2.1, (fit.slope, fit.stderr, errors)


# ----------------------------------------------------------------------------- SGD
def test_sgd_batch_loss_is_the_same_convention(minimal_mse, minimal_half):
    theta = np.array([0.4, -0.9, 1.1, 0.3])
    everything = np.arange(100)
    for problem in (minimal_mse, minimal_half):
        batch_loss = float(problem.batch_loss_fn(theta, everything))
        assert batch_loss == pytest.approx(problem.loss(theta), rel=1e-14)


def test_sgd_is_seeded_and_descends(minimal_half):
    kw = dict(lr=0.05, steps=3000, batch_size=10)
    a = ft.sgd(minimal_half, PUBLISHED_THETA0, seed=1, **kw)
    b = ft.sgd(minimal_half, PUBLISHED_THETA0, seed=1, **kw)
    c = ft.sgd(minimal_half, PUBLISHED_THETA0, seed=2, **kw)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert np.max(np.abs(a.final_theta - c.final_theta)) > 1e-4
    # The batch draws depend on (seed, step) only: chunking does not change the run.
    d = ft.sgd(minimal_half, PUBLISHED_THETA0, seed=1, chunk_size=37, **kw)
    np.testing.assert_allclose(d.theta, a.theta, rtol=1e-12, atol=1e-14)
    for run in (a, c):
        assert run.method == "sgd" and run.status == ft.Status.T1_REACHED
        assert run.final_loss < 0.1 * run.loss[0]
        assert_finite(run)
