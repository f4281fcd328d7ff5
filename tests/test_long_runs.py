"""Long runs: wall-time budgets, checkpoints, resuming from a saved Trajectory and joining segments;
and the default save grid of a flow without a final time."""


import numpy as np
import pytest

import flowtools as ft
from conftest import record_saves
from conftest import PUBLISHED_THETA0
from flowtools.dynamics import stiff


def _common(joined, reference):
    """Rows of `joined` at the saved times of `reference` (the join adds the interruption point)."""
    rows = np.isin(joined.t, reference.t)
    assert rows.sum() == len(reference.t)
    return rows


def test_flow_killed_by_its_budget_resumes_into_the_uninterrupted_run(minimal_mse, tmp_path):
    full = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, 2000.0)
    # A budget that is used up before the first segment (64 steps) ends: the run stops there.
    part = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, 2000.0, time_limit=1e-9)
    assert part.status == ft.Status.TIME_LIMIT and "resume" in part.message
    assert 0 < part.final_time < 2000.0
    part.save(tmp_path / "part")
    joined = ft.gradient_flow(minimal_mse, None, 2000.0, resume=tmp_path / "part.npz")
    assert joined.status == ft.Status.T1_REACHED and joined.meta["segments"] == 2
    assert np.all(np.diff(joined.t) > 0) and joined.final_time == 2000.0
    rows = _common(joined, full)
    # The saved solver state (differences, order, step, Hessian and its factors) continues the run
    # step for step: the same saves bit for bit and the same work.
    assert set(part.solver_state) >= {"D", "order", "H", "fact_lu"}
    np.testing.assert_array_equal(joined.theta[rows], full.theta)
    for key in ("steps", "gradient_evaluations", "jacobian_evaluations", "factorizations"):
        assert joined.stats[key] == full.stats[key], key
    assert joined.stats["steps"] > part.stats["steps"] >= 64
    # Without it (another solver's trajectory, or an older file) BDF restarts at the interruption
    # (order 1, new Hessian): equal to its tolerance.
    part.solver_state = None
    restarted = ft.gradient_flow(minimal_mse, None, 2000.0, resume=part)
    np.testing.assert_allclose(restarted.theta[_common(restarted, full)], full.theta, rtol=0, atol=1e-6)


def test_flow_segments_continue_the_solver_state_exactly(minimal_mse):
    """With a budget that never runs out the flow still runs in segments; each continues the BDF
    state (order, differences, Hessian), so the result is the one-call run bit for bit."""
    one = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, 2000.0)
    seg = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, 2000.0, time_limit=1e9)
    assert seg.status == one.status
    np.testing.assert_array_equal(seg.t, one.t)
    np.testing.assert_array_equal(seg.theta, one.theta)
    assert seg.stats["steps"] == one.stats["steps"]


def test_gd_killed_by_its_budget_resumes_exactly(minimal_mse, tmp_path):
    kw = dict(lr=0.01, steps=30_000, n_records=20)
    full = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, **kw)
    part = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, **kw, time_limit=1e-9)
    assert part.status == ft.Status.TIME_LIMIT and 0 < part.step[-1] < 30_000
    part.save(tmp_path / "gd")
    joined = ft.gradient_descent(minimal_mse, None, **kw, resume=tmp_path / "gd")
    assert joined.status == full.status
    rows = _common(joined, full)
    np.testing.assert_array_equal(joined.step[rows], full.step)
    np.testing.assert_array_equal(joined.theta[rows], full.theta)  # the map is deterministic
    assert joined.stats["steps"] == full.stats["steps"] == 30_000
    # A finished run is returned as it is.
    assert ft.gradient_descent(minimal_mse, None, **kw, resume=joined) is joined


def _record_saves(monkeypatch) -> list:
    return record_saves(monkeypatch)


def test_checkpoints_are_resumable(minimal_mse, tmp_path, monkeypatch):
    """Every checkpoint written during a run ("running") resumes into the run's exact result."""
    written = _record_saves(monkeypatch)
    path = tmp_path / "ck.npz"
    kw = dict(lr=0.01, steps=5_000, n_records=10)
    final = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, **kw, checkpoint=path,
                                checkpoint_every=1e-9, chunk_size=1000)
    running = [t for t in written if t.status == ft.Status.RUNNING]
    assert running and written[-1].status == final.status
    assert ft.Trajectory.load(path).status == final.status
    resumed = ft.gradient_descent(minimal_mse, None, **kw, resume=running[0])
    np.testing.assert_array_equal(resumed.theta[-1], final.theta[-1])


def test_join_checks_continuity(minimal_mse):
    a = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 0.01, 100, n_records=5)
    b = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 0.01, 100, n_records=5)
    with pytest.raises(ValueError, match="start where the first ends"):
        a.join(b)


def test_default_grid_follows_the_run(minimal_mse):
    """t1=None: saves at accepted steps, thinned by a doubling stride, end at the stop and are dense
    where L changes; the old log grid (still used by "ros34pw2") jumps over most of the descent."""
    run = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, None, gtol=1e-7)
    assert run.converged and run.meta["save_grid"] == "steps"
    assert run.t[0] == 0 and run.t[-1] == run.final_time and np.all(np.diff(run.t) > 0)
    assert 100 <= len(run) <= 202
    drop = run.loss[0] - run.loss[-1]
    assert np.max(np.abs(np.diff(run.loss))) < 0.1 * drop
    log = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, None, gtol=1e-7, solver="ros34pw2")
    assert log.meta["save_grid"] == "log"
    assert np.max(np.abs(np.diff(log.loss))) > 0.2 * (log.loss[0] - log.loss[-1])
    # A small buffer is thinned repeatedly and still ends at the stop.
    few = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, None, gtol=1e-7, n_save=8)
    assert len(few) <= 10 and few.final_time == run.final_time


def test_save_step_thins_by_doubling_the_stride():
    import jax.numpy as jnp

    m = 6
    ts, ys = stiff.outputs(jnp.zeros(m), 0.0, jnp.zeros(1))
    index, stride = jnp.asarray(0), jnp.asarray(1)
    for k in range(1, 40):
        index, stride, ts, ys = stiff.save_step(jnp.asarray(k), stride, index, float(k),
                                                jnp.full(1, float(k)), ts, ys)
    kept = np.asarray(ts)[np.isfinite(np.asarray(ts))]
    # After 39 steps with 6 slots the stride is 8: steps 8, 16, 24, 32 (and t0).
    assert int(stride) == 8
    np.testing.assert_array_equal(kept, [0, 8, 16, 24, 32])
    np.testing.assert_array_equal(np.asarray(ys)[1:5, 0], [8, 16, 24, 32])


# --------------------------------------------------------------- RKC: the large-problem path
@pytest.fixture(scope="module")
def digits_net():
    """A 64-16-10 tanh net on 200 digits (1 210 parameters: above the switch, so "auto" is "rkc"),
    with a held-out set, and its uninterrupted flow to t = 20."""
    from flowtools.datasets import load_digits

    train, test = load_digits(200, 100, seed=0, one_hot=True)
    model = ft.MLP([64, 16, 10], activation="tanh")
    problem = ft.Problem(model, train, test_data=test)
    assert problem.n_params > ft.dynamics.flow.AUTO_RKC_MIN_PARAMS
    theta0 = model.init(0)
    full = ft.gradient_flow(problem, theta0, 20.0)
    assert full.meta["solver"] == "rkc" and full.status == ft.Status.T1_REACHED
    return problem, theta0, full


def test_rkc_flow_killed_by_its_budget_resumes_bit_for_bit(digits_net, tmp_path):
    """RKC keeps its state (step sizes, error memory, λ_max and Ritz vector) in the unfinished
    trajectory; a fresh call resumed from the saved file takes the same steps as the uninterrupted
    run, so the joined trajectory equals it exactly, with the same step and gradient counts."""
    problem, theta0, full = digits_net
    part = ft.gradient_flow(problem, theta0, 20.0, time_limit=1e-9)  # stops after the first segment
    assert part.status == ft.Status.TIME_LIMIT and 0 < part.final_time < 20.0
    assert part.stats["steps"] == 64 and set(part.solver_state) >= {"h", "rho", "rho_vec"}
    part.save(tmp_path / "part")
    joined = ft.gradient_flow(problem, None, 20.0, resume=tmp_path / "part.npz")
    assert joined.status == ft.Status.T1_REACHED and joined.meta["segments"] == 2
    assert joined.solver_state is None  # finished: nothing to continue
    rows = _common(joined, full)
    np.testing.assert_array_equal(joined.t[rows], full.t)
    np.testing.assert_array_equal(joined.theta[rows], full.theta)
    np.testing.assert_array_equal(joined.test_loss[rows], full.test_loss)
    for key in ("steps", "accepted_steps", "gradient_evaluations", "hvp_evaluations"):
        assert joined.stats[key] == full.stats[key], key
    # A run stopped by its step budget continues the same way, with a new budget.
    short = ft.gradient_flow(problem, theta0, 20.0, max_steps=100)
    assert short.status == ft.Status.MAX_STEPS and short.solver_state is not None
    more = ft.gradient_flow(problem, None, 20.0, resume=short)
    np.testing.assert_array_equal(more.theta[_common(more, full)], full.theta)
    assert more.stats["steps"] == full.stats["steps"]
    # Without the solver state the resumed run restarts RKC (new λ_max and first step): not the
    # same steps, but the same flow to the solver's tolerance.
    part.solver_state = None
    restarted = ft.gradient_flow(problem, None, 20.0, resume=part)
    assert restarted.stats["steps"] != full.stats["steps"]
    np.testing.assert_allclose(restarted.theta[_common(restarted, full)], full.theta, rtol=0, atol=1e-5)


def test_rkc_segments_and_checkpoints_continue_exactly(digits_net, tmp_path, monkeypatch):
    """In segments (a budget that never runs out) the result is the one-call run bit for bit, and a
    "running" checkpoint written on the way resumes, in a fresh call from disk, into that result."""
    problem, theta0, full = digits_net
    written = _record_saves(monkeypatch)
    seg = ft.gradient_flow(problem, theta0, 20.0, time_limit=1e9, checkpoint=tmp_path / "ck",
                           checkpoint_every=1e-9)
    np.testing.assert_array_equal(seg.t, full.t)
    np.testing.assert_array_equal(seg.theta, full.theta)
    running = [t for t in written if t.status == ft.Status.RUNNING]
    assert running and running[0].solver_state is not None
    monkeypatch.undo()  # the real save again
    running[0].save(tmp_path / "running")
    resumed = ft.gradient_flow(problem, None, 20.0, resume=tmp_path / "running.npz")
    np.testing.assert_array_equal(resumed.theta[_common(resumed, full)], full.theta)
    assert resumed.stats["steps"] == full.stats["steps"]


def test_rkc_default_grid_follows_the_run(digits_net):
    """t1=None with "rkc": saves every stride-th accepted step up to the stop, as with "bdf"."""
    problem, theta0, _ = digits_net
    run = ft.gradient_flow(problem, theta0, None, gtol=0.5, n_save=16)
    assert run.meta["solver"] == "rkc" and run.meta["save_grid"] == "steps" and run.converged
    assert run.t[0] == 0 and run.t[-1] == run.final_time and np.all(np.diff(run.t) > 0)
    assert 5 <= len(run) <= 18
