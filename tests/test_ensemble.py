"""Ensembles: every member of run_ensemble, batched or not, is the run a single call returns."""

import numpy as np
import pytest

import flowtools as ft
from conftest import PUBLISHED_THETA0

RNG_THETAS = np.random.default_rng(0).standard_normal((2, 4))

# Two settings of GD on the minimal model (mean-squared error). At η = 1 the members started with
# large output weights blow up within a few steps (diverged); at η = 0.5 with gtol some converge.
GD_CASES = {
    "diverging members": (
        dict(lr=1.0, steps=3000),
        np.vstack([PUBLISHED_THETA0, [3.0, -3.0, 20.0, 20.0], RNG_THETAS, [0.1, 0.1, 300.0, 300.0]]),
        {ft.Status.T1_REACHED, ft.Status.DIVERGED},
    ),
    "converging members": (
        dict(lr=0.5, steps=3000, gtol=1e-6),
        np.vstack([PUBLISHED_THETA0, [1.0, -1.0, 30.0, 30.0], RNG_THETAS, [0.3, -0.3, 60.0, 60.0]]),
        {ft.Status.T1_REACHED, ft.Status.CONVERGED},
    ),
}


def assert_same_run(a, b, *, atol):
    assert a.status == b.status
    assert a.method == b.method
    assert a.stats.get("event_step") == b.stats.get("event_step")
    if a.step is not None:
        np.testing.assert_array_equal(a.step, b.step)
    np.testing.assert_allclose(a.t, b.t, rtol=1e-14)
    assert a.theta.shape == b.theta.shape
    np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=atol)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-9)
    for traj in (a, b):
        assert np.all(np.isfinite(traj.theta)) and np.all(np.isfinite(traj.loss))
        assert np.all(np.isfinite(traj.grad_norm))


@pytest.mark.parametrize("batched", [False, True], ids=["one_by_one", "batched"])
@pytest.mark.parametrize("case", sorted(GD_CASES))
def test_gd_ensemble_equals_single_runs(minimal_mse, case, batched):
    options, thetas, statuses = GD_CASES[case]
    singles = [ft.gradient_descent(minimal_mse, th, **options) for th in thetas]
    assert {s.status for s in singles} == statuses  # the batch really mixes outcomes
    members = ft.run_ensemble("gradient_descent", minimal_mse, thetas, batched=batched, **options)
    assert len(members) == len(thetas)
    for single, member in zip(singles, members):
        # The GD map is the same arithmetic in both paths.
        assert_same_run(single, member, atol=1e-12 * max(1.0, np.abs(single.theta).max()))


FLOW_OPTIONS = dict(t1=50.0, save_ts=np.geomspace(1e-2, 50.0, 200), rtol=1e-8, atol=1e-10)


@pytest.fixture(scope="module")
def flow_singles(minimal_mse):
    thetas = np.vstack([PUBLISHED_THETA0, RNG_THETAS])
    return thetas, [ft.gradient_flow(minimal_mse, th, **FLOW_OPTIONS) for th in thetas]


@pytest.mark.parametrize("batched", [False, True], ids=["one_by_one", "batched"])
def test_flow_ensemble_equals_single_runs(minimal_mse, flow_singles, batched):
    thetas, singles = flow_singles
    members = ft.run_ensemble("gradient_flow", minimal_mse, thetas, batched=batched, **FLOW_OPTIONS)
    assert len(members) == len(thetas)
    for single, member in zip(singles, members):
        # Batched arithmetic may reassociate sums; that can at most move an accept/reject decision of
        # the step-size controller, so members agree to well within the solver tolerance.
        assert_same_run(single, member, atol=FLOW_OPTIONS["rtol"])
        assert member.status == ft.Status.T1_REACHED


def test_ensemble_accepts_one_theta(minimal_mse):
    (member,) = ft.run_ensemble("gradient_descent", minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=10)
    single = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=10)
    np.testing.assert_array_equal(member.final_theta, single.final_theta)
