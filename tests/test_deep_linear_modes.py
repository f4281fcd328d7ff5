"""Closed-form mode dynamics of deep linear networks against an ODE solver and a network's own flow."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import flowtools as ft
from flowtools import deep_linear as DL


@pytest.mark.parametrize("depth", [2, 3])
def test_mode_strength_solves_the_mode_ode(depth):
    s, u0 = 2.0, 1e-2**depth
    T = 1.5 * DL.learning_time(s, u0, depth)
    sol = solve_ivp(lambda t, u: depth * u ** (2 - 2 / depth) * (s - u), (0, T), [u0], rtol=1e-12,
                    atol=1e-22, dense_output=True)
    ts = np.linspace(0, T, 25)
    np.testing.assert_allclose(DL.mode_strength(ts, s, u0, depth), sol.sol(ts)[0], rtol=1e-8, atol=1e-12)
    u = DL.mode_strength(ts[1:], s, u0, depth)
    ok = u < s * (1 - 1e-6)  # closer to s, float64 cannot resolve t(u) any more
    assert ok.sum() >= 12
    np.testing.assert_allclose(DL.mode_time(u[ok], s, u0, depth), ts[1:][ok], rtol=1e-7)


def test_escape_laws_of_the_closed_form():
    """Depth 2: (1/(2s)) log(s/u0 − 1) exactly; depth 3: 1/(s ε) + O(1) with u0 = ε³."""
    s = 3.0
    for eps in (1e-2, 1e-3):
        assert DL.learning_time(s, eps**2, 2) == pytest.approx(np.log(s / eps**2 - 1) / (2 * s), rel=1e-14)
    t3 = np.array([DL.learning_time(s, eps**3, 3) for eps in (1e-3, 1e-4, 1e-5)])
    np.testing.assert_allclose(t3 - 1 / (s * np.array([1e-3, 1e-4, 1e-5])), t3[0] - 1 / (s * 1e-3), atol=1e-6)


@pytest.mark.slow  # a flow compilation (~45 s on the loaded test machine); the study's quick run covers it too
def test_aligned_flow_follows_the_closed_form():
    model = ft.MLP((3, 3, 3), "linear", bias=False)
    problem = ft.Problem(model, DL.whitened_dataset(np.diag([3.0, 2.0, 1.0])))
    theta0 = DL.aligned_init(model, 1e-2)
    np.testing.assert_allclose(DL.end_to_end(model, theta0), 1e-4 * np.eye(3), atol=1e-18)
    ts = np.linspace(0, 8.0, 81)[1:]
    tr = ft.gradient_flow(problem, theta0, 8.0, save_ts=ts, rtol=1e-10, atol=1e-14, solver="tsit5")
    np.testing.assert_allclose(tr.loss, DL.mode_loss(tr.t, [3, 2, 1], 1e-4, 2), atol=1e-7)
