"""Slow points: dips of ‖∇L‖ over log-time."""

import numpy as np
import pytest

import flowtools as ft
from flowtools.landscape import find_critical_point, slow_points


def _synthetic(t, g, status=ft.Status.CONVERGED):
    theta = np.stack([t, t], axis=1)
    return ft.Trajectory(t=t, theta=theta, loss=1.0 / (1 + t), grad_norm=g, gen_error=None, status=status,
                         message="synthetic", stats={}, method="gradient_flow")


def test_two_plateaus_and_the_end():
    t = np.geomspace(1e-3, 1e5, 400)
    s = np.log10(t)
    # log10 |grad|: dips of depth 3 at t = 1 and depth 2 at t = 1e3, then convergence.
    y = (-1 - 3 * np.exp(-((s - 0) / 0.3) ** 2) - 2 * np.exp(-((s - 3) / 0.3) ** 2)
         - 6 / (1 + np.exp(-(s - 4.5) * 8)))
    pts = slow_points(_synthetic(t, 10**y))
    assert len(pts) == 3
    assert abs(np.log10(pts[0].t)) < 0.05 and abs(np.log10(pts[1].t) - 3) < 0.05
    assert abs(pts[0].depth - 3) < 0.1 and abs(pts[1].depth - 2) < 0.1
    assert pts[2].at_end and pts[2].index == len(t) - 1
    assert pts[0].t_start < pts[0].t < pts[0].t_end


def test_noise_does_not_create_dips():
    rng = np.random.default_rng(0)
    t = np.geomspace(1e-3, 1e3, 2000)
    y = -1 - 2 * np.exp(-(np.log10(t) / 0.4) ** 2) + 0.3 * rng.standard_normal(t.size)
    pts = slow_points(_synthetic(t, 10**y, ft.Status.T1_REACHED), smooth=0.2, include_end=False)
    assert len(pts) == 1 and abs(np.log10(pts[0].t)) < 0.2


def test_short_and_degenerate_trajectories():
    assert slow_points(_synthetic(np.array([0.0]), np.array([1.0]))) == []
    two = slow_points(_synthetic(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.5, np.nan])))
    assert len(two) == 1 and two[0].at_end is True and two[0].index == 1
    assert slow_points(_synthetic(np.array([1.0, 2.0]), np.array([1.0, 0.5])), include_end=False) == []


def test_published_flow_plateau_then_attractor(minimal_half):
    traj = ft.gradient_flow(minimal_half, np.array([-0.13, 0.13, 0.16, -0.15]), gtol=1e-8, n_save=300)
    pts = slow_points(traj)
    assert len(pts) == 2
    plateau, end = pts
    assert plateau.t < 3 and plateau.loss > 0.79  # the plateau near the origin
    assert end.at_end and end.grad_norm <= 1e-8
    cp = find_critical_point(minimal_half, plateau.theta, radius=0.5)
    assert cp.success and cp.signature == (2, 0, 2)  # the origin
    cp_end = find_critical_point(minimal_half, end.theta, radius=0.1)
    assert cp_end.kind == "minimum"


def test_resolve_trajectory_fills_unresolved_segments_with_the_runs_own_states():
    from flowtools.deep_linear import balanced_init, whitened_dataset
    from flowtools.landscape import function_distances, output_distance, resolve_trajectory
    from flowtools.problem import training_outputs

    model = ft.MLP((3, 3, 3), "linear", bias=False)
    p = ft.Problem(model, whitened_dataset(np.diag([3.0, 2.0, 1.0]), n=3, seed=0))
    theta0 = balanced_init(model, 1e-3, 0)
    coarse = ft.gradient_descent(p, theta0, 0.05, 1000, record_steps=[10, 100, 1000])
    res = resolve_trajectory(p, coarse, max_jump=0.2)
    assert res.stats["resolved_states"] > 20 and len(res.t) == len(coarse.t) + res.stats["resolved_states"]
    assert np.all(np.diff(res.t) > 0) and np.all(np.diff(res.step) > 0)
    # the added states are the GD map's own states at those steps
    exact = ft.gradient_descent(p, theta0, 0.05, 1000, record_steps=res.step)
    assert np.array_equal(exact.step, res.step)
    assert np.max(np.abs(exact.theta - res.theta)) < 1e-12
    # resolved: no function jump above max_jump where single steps allow it
    out = training_outputs(p, res.theta)
    jumps = np.asarray(output_distance(out[:-1], out[1:]))
    multi = np.diff(res.step) > 1
    assert np.all(jumps[multi] <= 0.2)
    # a fine grid is left alone
    fine = ft.gradient_descent(p, theta0, 0.05, 1000, record_steps=np.arange(1001))
    assert resolve_trajectory(p, fine, max_jump=0.2) is fine
    assert function_distances(p, res.theta[:1], theta0)[0] == 0.0
    with pytest.raises(ValueError, match="max_jump"):
        resolve_trajectory(p, coarse, max_jump=0.0)


def test_flow_segments_padded_to_the_flows_slots_run_its_solve_and_save_the_same_states():
    from flowtools.dynamics.save_times import save_slots

    p = ft.problems.teacher_student(3, 2, 2, activation="tanh", n=20)
    theta0 = np.asarray(p.model.init(0, "normal", scale=0.3))
    flow = ft.gradient_flow(p, theta0, 1e3, solver="bdf", n_save=40)
    assert save_slots(flow.meta) == 40
    a, b = float(flow.t[20]), float(flow.t[21])
    ts = a * (b / a) ** (np.arange(1, 5) / 5)
    plain = ft.gradient_flow(p, flow.theta[20], b, t0=a, save_ts=ts, solver="bdf")
    padded = ft.gradient_flow(p, flow.theta[20], b, t0=a, save_ts=ts, solver="bdf", pad_slots=40)
    assert plain.stats["compile_time"] > 0 and padded.stats["compile_time"] == 0  # the flow's own solve
    np.testing.assert_array_equal(padded.t, plain.t)
    np.testing.assert_array_equal(padded.theta, plain.theta)
    assert padded.stats["steps"] == plain.stats["steps"] and padded.status == plain.status
    assert np.all(np.isin(ts, padded.t))
    with pytest.raises(ValueError, match="pad_slots"):
        ft.gradient_flow(p, theta0, 1.0, solver="bdf", pad_slots=0)
    assert save_slots({"save_grid": "steps"}) is None and save_slots({}) is None
