"""Trajectory: statuses, accessors, the save/load round trip, and atomic writes."""

import dataclasses
import json
import os

import numpy as np
import pytest

import flowtools as ft
from conftest import PUBLISHED_THETA0


def test_status_values():
    assert {s.value for s in ft.Status} == {
        "converged", "t1_reached", "max_steps", "diverged", "non_finite", "failed", "time_limit",
        "running"}
    assert ft.Status("diverged") is ft.Status.DIVERGED
    assert str(ft.Status.CONVERGED) == "converged"
    assert ft.Status.MAX_STEPS == "max_steps"  # a str enum: compares equal to its value


@pytest.fixture(scope="module")
def gd_run(minimal_mse):
    return ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=2000, gtol=1e-2)


def hand_made_flow():
    """A flow-like trajectory: no GD steps, no teacher, a non-default status and nested meta."""
    t = np.array([0.0, 0.5, 1.25])
    return ft.Trajectory(
        t=t, theta=np.arange(6.0).reshape(3, 2) / 7, loss=np.array([1.0, 0.5, 0.25]),
        grad_norm=np.array([2.0, 1.0, 0.1]), gen_error=None, status=ft.Status.MAX_STEPS,
        message="max_steps=3 reached", stats=dict(steps=3, accepted_steps=2, rejected_steps=1, wall_time=0.1),
        method="gradient_flow", meta=dict(solver="kvaerno5", rtol=1e-8, t1=None, loss="half_mse"), step=None)


def assert_trajectories_equal(a, b):
    for field in dataclasses.fields(ft.Trajectory):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None, field.name
            assert x.dtype == y.dtype and x.shape == y.shape, field.name
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x == y, field.name
    assert type(b.status) is ft.Status


def test_accessors(gd_run):
    assert gd_run.status == ft.Status.CONVERGED and gd_run.converged
    assert gd_run.final_grad_norm <= 1e-2 == gd_run.meta["gtol"]
    np.testing.assert_array_equal(gd_run.final_theta, gd_run.theta[-1])
    assert gd_run.final_loss == gd_run.loss[-1] and gd_run.final_time == gd_run.t[-1]
    assert len(gd_run) == len(gd_run.t) == gd_run.theta.shape[0] == len(gd_run.step)
    assert "converged" in repr(gd_run) and "converged" in gd_run.summary()
    assert gd_run.meta["lr"] == 0.01 and gd_run.meta["loss"] == "mse"
    assert gd_run.gen_error is not None and gd_run.gen_error.shape == gd_run.loss.shape


@pytest.mark.parametrize("which", ["gd", "hand_made"])
def test_save_load_round_trip(tmp_path, gd_run, which):
    traj = gd_run if which == "gd" else hand_made_flow()
    path = tmp_path / "sub" / "run.npz"
    traj.save(path)
    assert path.exists() and path.with_suffix(".json").exists()
    assert json.loads(path.with_suffix(".json").read_text())["format"] == "flowtools.Trajectory/1"
    assert_trajectories_equal(traj, ft.Trajectory.load(path))
    # The suffix is optional on both sides.
    traj.save(tmp_path / "bare")
    assert_trajectories_equal(traj, ft.Trajectory.load(tmp_path / "bare.npz"))


def test_atomic_write_keeps_the_old_file(tmp_path, monkeypatch, gd_run):
    path = tmp_path / "run.npz"
    old = hand_made_flow()
    old.save(path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(ft.io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        gd_run.save(path)
    with pytest.raises(OSError, match="simulated"):
        ft.io.write_json(tmp_path / "run.json", {"overwritten": True})
    monkeypatch.undo()

    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # the same files, byte for byte; no temporary file left behind
    assert_trajectories_equal(old, ft.Trajectory.load(path))


def test_atomic_write_cleans_up_when_the_write_itself_fails(tmp_path, monkeypatch):
    def failing_fsync(fd):
        raise OSError("fsync failed (simulated)")

    monkeypatch.setattr(ft.io.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        ft.io.atomic_write_text(tmp_path / "x.txt", "hello")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_json_conversion(tmp_path):
    obj = {"a": np.float64(1.5), "b": np.int64(3), "c": np.array([1.0, np.nan, np.inf]),
           "d": (np.bool_(True),), "e": ft.Status.CONVERGED, 7: None}
    ft.io.write_json(tmp_path / "o.json", obj)
    assert ft.io.read_json(tmp_path / "o.json") == {"a": 1.5, "b": 3, "c": [1.0, None, None], "d": [True],
                                                     "e": "converged", "7": None}
    ft.io.write_npz(tmp_path / "a.npz", x=np.arange(3.0))
    with np.load(tmp_path / "a.npz") as z:
        np.testing.assert_array_equal(z["x"], np.arange(3.0))


def test_evaluate_states_chunked_equals_unchunked():
    """The per-state kernels run in fixed-size chunks (bounded memory): any chunk size gives the same
    values as one call over all states, to round-off, and as the scalar evaluations."""
    from flowtools.dynamics.trajectory import evaluate_states
    from flowtools.problem import held_out_metrics, map_states, state_chunk, training_outputs
    from flowtools.problem._batch import jit_batch_outputs

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 5))
    y = np.tanh(x @ rng.standard_normal((5, 2)))
    model = ft.MLP([5, 4, 2], activation="tanh")
    problem = ft.Problem(model, ft.Dataset(x, y), test_data=ft.Dataset(x[:10] + 0.1, y[:10]))
    thetas = rng.standard_normal((23, problem.n_params)) * 0.5
    full = evaluate_states(problem, thetas, chunk=32)
    for chunk in (1, 5, 8):
        part = evaluate_states(problem, thetas, chunk=chunk)
        for a, b in zip(full[:2], part[:2]):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(full[0], [problem.loss(t) for t in thetas], rtol=1e-12)
    np.testing.assert_allclose(full[1], [problem.grad_norm(t) for t in thetas], rtol=1e-10)
    out = training_outputs(problem, thetas)
    np.testing.assert_allclose(map_states(jit_batch_outputs, problem, thetas, chunk=3), out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out[7], problem.predict(thetas[7], x), rtol=1e-12, atol=1e-14)
    held = held_out_metrics(problem, thetas)
    np.testing.assert_allclose(held["test_loss"], [problem.test_loss(t) for t in thetas], rtol=1e-12)
    assert 1 <= state_chunk(problem) <= 64
