"""The default tolerances of `gradient_flow` (rtol="auto", atol="auto"): the rule, what the result
records, and the function-space accuracy of the looser tolerances of a large net's finite-horizon flow
against scipy's DOP853 at rtol 1e-10."""

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import flowtools as ft
from flowtools.datasets import load_digits
from flowtools.dynamics.descent import gradient_descent
from flowtools.dynamics.flow import AUTO_RKC_MIN_PARAMS
from flowtools.dynamics.tolerances import (DEFAULT_TOLERANCES, HORIZON_MIN_PARAMS, HORIZON_TOLERANCES,
                                           auto_tolerances)


def test_rule_keeps_small_nets_and_runs_to_gtol_at_the_default():
    n = HORIZON_MIN_PARAMS
    assert n == AUTO_RKC_MIN_PARAMS  # the size where "auto" switches to RKC, where it was measured
    assert auto_tolerances(n, 100.0)[:2] == DEFAULT_TOLERANCES == (1e-8, 1e-10)
    assert auto_tolerances(n + 1, 100.0)[:2] == HORIZON_TOLERANCES == (1e-6, 1e-8)
    assert auto_tolerances(n + 1, np.inf)[:2] == DEFAULT_TOLERANCES
    assert auto_tolerances(n + 1, 100.0, gtol=1e-9)[:2] == DEFAULT_TOLERANCES


def test_small_net_default_is_unchanged_and_recorded(minimal_half):
    theta0 = np.array([0.3, -0.2, 0.1, 0.4])
    auto = ft.gradient_flow(minimal_half, theta0, 50.0)
    given = ft.gradient_flow(minimal_half, theta0, 50.0, rtol=1e-8, atol=1e-10)
    assert (auto.meta["rtol"], auto.meta["atol"]) == (1e-8, 1e-10)
    assert auto.meta["tolerance_rule"].startswith("auto (default)")
    assert given.meta["tolerance_rule"] is None
    np.testing.assert_array_equal(auto.theta, given.theta)
    # One tolerance given, the other from the rule.
    half = ft.gradient_flow(minimal_half, theta0, 50.0, rtol=1e-6)
    assert (half.meta["rtol"], half.meta["atol"]) == (1e-6, 1e-10) and half.meta["tolerance_rule"]


@pytest.mark.parametrize("name", ["rtol", "atol"])
def test_a_tolerance_that_is_neither_a_number_nor_auto_is_refused(minimal_half, name):
    with pytest.raises(TypeError, match=f"{name} must be a positive number or 'auto'"):
        ft.gradient_flow(minimal_half, np.array([0.3, -0.2, 0.1, 0.4]), 5.0, **{name: "tight"})
    with pytest.raises(ValueError, match=name):
        ft.gradient_flow(minimal_half, np.array([0.3, -0.2, 0.1, 0.4]), 5.0, **{name: -1.0})


@pytest.fixture(scope="module")
def digits_net():
    """64-16-10 tanh on 200 digits (1 210 parameters), small init as in the benchmark, to t = 20, with
    scipy's DOP853 at rtol 1e-10 as the reference."""
    train, _ = load_digits(200, 100, seed=0, one_hot=True)
    model = ft.MLP([64, 16, 10], activation="tanh")
    problem = ft.Problem(model, train)
    assert problem.n_params > AUTO_RKC_MIN_PARAMS
    theta0 = np.asarray(model.init(0, "glorot", scale=0.1))
    T = 20.0
    grad = jax.jit(lambda y: problem.grad_fn(y))
    ref = solve_ivp(lambda t, y: -np.asarray(grad(y)), (0.0, T), theta0, method="DOP853", rtol=1e-10,
                    atol=1e-12)
    assert ref.success
    return problem, theta0, T, ref.y[:, -1]


def test_large_net_horizon_flow_is_accurate_in_function_space(digits_net):
    """The auto tolerances of a 1 210-parameter flow to a finite t1 are 1e-6 / 1e-8 (RKC), and its
    outputs stay within RMS 1e-4 of the reference, below 1/100 of GD at η = 0.1's distance from it,
    with fewer than half the gradients of rtol 1e-8."""
    problem, theta0, T, ref = digits_net
    auto = ft.gradient_flow(problem, theta0, T)
    tight = ft.gradient_flow(problem, theta0, T, rtol=1e-8, atol=1e-10)
    assert auto.meta["solver"] == "rkc" and auto.status == ft.Status.T1_REACHED
    assert (auto.meta["rtol"], auto.meta["atol"]) == HORIZON_TOLERANCES
    assert "finite t1" in auto.meta["tolerance_rule"]
    gd = gradient_descent(problem, theta0, 0.1, int(round(T / 0.1)))
    d_auto = ft.function_distance(problem, auto.theta[-1], ref)
    d_tight = ft.function_distance(problem, tight.theta[-1], ref)
    d_gd = ft.function_distance(problem, gd.theta[-1], ref)
    assert d_tight < d_auto < 1e-4, (d_tight, d_auto)
    assert d_auto < d_gd / 100, (d_auto, d_gd)
    assert auto.stats["gradient_evaluations"] < tight.stats["gradient_evaluations"] / 2


def test_resume_keeps_the_interrupted_runs_tolerances(minimal_half, tmp_path):
    """A resumed flow with rtol/atol left at "auto" continues at the tolerances the interrupted run used,
    and takes the uninterrupted run's steps."""
    theta0 = np.array([0.3, -0.2, 0.1, 0.4])
    one = ft.gradient_flow(minimal_half, theta0, 50.0, rtol=1e-5, atol=1e-7)
    path = tmp_path / "cut.npz"
    ft.gradient_flow(minimal_half, theta0, 50.0, rtol=1e-5, atol=1e-7, time_limit=1e-9).save(path)
    resumed = ft.gradient_flow(minimal_half, None, 50.0, resume=path)
    assert (resumed.meta["rtol"], resumed.meta["atol"]) == (1e-5, 1e-7)
    np.testing.assert_array_equal(resumed.final_theta, one.final_theta)
