"""The Runge–Kutta–Chebyshev flow solver against scipy, its order, and its λ_max estimate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import flowtools as ft
from flowtools.dynamics.flow import gradient_flow
from flowtools.dynamics.rkc import RKC, lanczos_lambda_max, rkc_step


@pytest.fixture(scope="module")
def net():
    data = ft.teacher_dataset(lambda x: jnp.tanh(x @ jnp.ones((10, 1))), 40, d_in=10, seed=1)
    data = ft.Dataset(data.x, data.y)  # no teacher: no Monte Carlo R along the run
    model = ft.MLP([10, 4, 1], activation="tanh")  # d = 10 teacher–student, 49 parameters
    prob = ft.Problem(model, data)
    th0 = np.random.default_rng(0).standard_normal(model.n_params) * 0.5
    T = 30.0
    ref = solve_ivp(lambda t, y: -np.asarray(prob.grad(y)), (0, T), th0, method="DOP853", rtol=1e-12,
                    atol=1e-13)
    return prob, th0, T, ref.y[:, -1]


def test_rkc_matches_scipy_and_error_falls_with_rtol(net):
    prob, th0, T, yref = net
    errors, steps = [], []
    for rtol in (1e-4, 1e-6, 1e-8):
        tr = gradient_flow(prob, th0, T, solver="rkc", rtol=rtol, atol=rtol * 1e-2)
        assert tr.status == "t1_reached" and tr.stats["jacobian_evaluations"] == 0
        errors.append(np.linalg.norm(tr.theta[-1] - yref) / np.linalg.norm(yref))
        steps.append(tr.stats["accepted_steps"])
    assert errors[-1] < 1e-6
    assert errors[0] > errors[1] > errors[2]
    # Second order: error ∝ steps^-2 (error per step ∝ h³ controlled to rtol gives steps ∝ rtol^(-1/3)).
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 1.6 < slope < 2.6, slope


def test_rkc_step_is_second_order_with_many_stages():
    # Linear test problem y' = A y with a stiff symmetric A: one step of size h against expm.
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    lam = np.array([-200.0, -50.0, -3.0, -1.0, 0.5, 0.0])
    A = Q @ np.diag(lam) @ Q.T
    f = lambda y: jnp.asarray(A) @ y  # noqa: E731
    y0 = jnp.asarray(rng.standard_normal(6))
    # Stability: h·200 far beyond forward Euler's 2, with s = 40 stages (β ≈ 0.65·1600).
    y = rkc_step(f, y0, f(y0), 1.0, jnp.asarray(40))
    assert np.all(np.isfinite(y)) and np.linalg.norm(y) < 3 * np.linalg.norm(y0)
    # Local error ∝ h³ on the smooth part (eigenvalues −1, 0.5, 0).
    B = Q[:, 3:] @ np.diag(lam[3:]) @ Q[:, 3:].T
    g = lambda y: jnp.asarray(B) @ y  # noqa: E731
    import scipy.linalg
    errs = []
    for h in (0.1, 0.05, 0.025):
        y1 = rkc_step(g, y0, g(y0), h, jnp.asarray(5))
        errs.append(np.linalg.norm(np.asarray(y1) - scipy.linalg.expm(h * B) @ np.asarray(y0)))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 6.5) & (ratios < 9.5)), ratios


def test_lanczos_lambda_max_brackets_the_largest_eigenvalue(net):
    prob, th0, _, _ = net
    H = prob.hessian(th0)
    lam = np.linalg.eigvalsh(H)
    hvp = lambda v: jax.jvp(prob.grad_fn, (jnp.asarray(th0),), (v,))[1]  # noqa: E731
    est, x = jax.jit(lambda v: lanczos_lambda_max(hvp, v, 12))(jnp.ones(prob.n_params))
    assert lam[-1] * 0.9 <= float(est) <= lam[-1] * 1.5


def test_rkc_stops_on_gtol_and_rejects_bad_settings(net):
    prob, th0, _, _ = net
    tr = gradient_flow(prob, th0, None, gtol=1e-3, solver="rkc", rtol=1e-5)
    assert tr.status == "converged" and tr.grad_norm[-1] <= 1e-3
    with pytest.raises(ValueError, match="max_stages"):
        RKC(max_stages=1)
    with pytest.raises(ValueError, match="rho_safety"):
        RKC(rho_safety=0.5)
