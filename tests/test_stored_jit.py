"""Small kernels through the executable store (flowtools._stored_jit): the results of eqx.filter_jit, in
this process and in a fresh one that loads them; traced calls and a user's own functions take the
ordinary path."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools import _stored_jit
from flowtools.problem._batch import jit_grad, jit_hessian, jit_loss, jit_value_and_grad


def _problem_and_theta(width=3):
    problem = ft.problems.teacher_student(4, 2, width)
    return problem, np.asarray(problem.model.init(1, "normal", scale=0.5))


def test_kernels_give_the_filter_jit_bits_and_a_finite_difference_gradient(cache_dir, monkeypatch):
    # a fresh memo: an earlier test of this process may have met the shape under another cache
    monkeypatch.setattr(jit_grad, "memo", {})
    monkeypatch.setattr(jit_grad, "origins", {})
    problem, theta = _problem_and_theta()
    g, H = jit_grad(problem, theta), jit_hessian(problem, theta)
    # the same program and compiler options as eqx.filter_jit: the same bits
    np.testing.assert_array_equal(g, jit_grad.jitted(problem, theta))
    np.testing.assert_array_equal(H, jit_hessian.jitted(problem, theta))
    np.testing.assert_allclose(H, H.T, atol=1e-14)
    v, g2 = jit_value_and_grad(problem, theta)
    assert float(v) == pytest.approx(float(jit_loss(problem, theta)), rel=1e-14)
    np.testing.assert_allclose(g2, g, rtol=1e-14, atol=1e-16)
    e, h = np.eye(theta.size), 1e-6  # central differences of L: O(h²) ≈ 1e-12 of error
    fd = np.array([(float(jit_loss(problem, theta + h * e[i])) - float(jit_loss(problem, theta - h * e[i])))
                   / (2 * h) for i in range(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    origins = _stored_jit.origins()
    assert origins["flowtools.problem._batch.jit_grad"][0] in ("compiled", "loaded")


def test_traced_calls_and_disable_jit_take_the_ordinary_path(cache_dir):
    problem, theta = _problem_and_theta()
    g = np.asarray(jit_grad(problem, theta))
    np.testing.assert_allclose(jax.jit(lambda t: jit_grad(problem, t))(theta), g, rtol=1e-13, atol=1e-15)
    batch = jax.vmap(lambda t: jit_grad(problem, t))(jnp.stack([theta, 2 * theta]))
    np.testing.assert_allclose(batch[0], g, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(batch[1], jit_grad(problem, 2 * theta), rtol=1e-13, atol=1e-15)
    with jax.disable_jit():
        np.testing.assert_allclose(jit_grad(problem, theta), g, rtol=1e-12, atol=1e-14)


def test_a_users_own_activation_is_compiled_but_not_stored(cache_dir):
    problem = ft.problems.teacher_student(4, 2, 2)
    mine = ft.Problem(ft.MLP((4, 2, 1), ft.Activation("mine", lambda z: jnp.tanh(z)), bias=False),
                      problem.data)
    theta = np.asarray(problem.model.init(0, "normal", scale=0.5))
    before = set(os.listdir(cache_dir / "aot")) if (cache_dir / "aot").exists() else set()
    g = jit_grad(problem, theta)  # first: the user's identical program would be served by JAX's cache
    np.testing.assert_allclose(jit_grad(mine, theta), g, rtol=1e-13, atol=1e-15)
    assert any(s.startswith("compiled, not cached") and "not part of flowtools" in s
               for s in jit_grad.origins.values())
    after = set(os.listdir(cache_dir / "aot"))
    assert all(name.startswith("jit_grad") for name in after - before)  # the flowtools problem's only


_SCRIPT = """
import json, numpy as np, flowtools as ft
from flowtools import _stored_jit
from flowtools.problem._batch import jit_grad, jit_hessian
problem = ft.problems.teacher_student(4, 2, 3)
theta = np.asarray(problem.model.init(1, "normal", scale=0.5))
g, H = np.asarray(jit_grad(problem, theta)), np.asarray(jit_hessian(problem, theta))
print(json.dumps(dict(origins=_stored_jit.origins(), g=[float(v).hex() for v in g],
                      H=[float(v).hex() for v in H.ravel()])))
"""


def _fresh_process(tmp_path) -> dict:
    env = dict(os.environ, FLOWTOOLS_CACHE_DIR=str(tmp_path / "jax"), FLOWTOOLS_PROGRESS="0")
    env.pop("FLOWTOOLS_CACHE", None)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_kernels_and_gets_the_same_bits(tmp_path):
    first, second = _fresh_process(tmp_path), _fresh_process(tmp_path)
    for name in ("flowtools.problem._batch.jit_grad", "flowtools.problem._batch.jit_hessian"):
        assert first["origins"][name] == ["compiled"] and second["origins"][name] == ["loaded"]
    assert first["g"] == second["g"] and first["H"] == second["H"]


def test_executable_runs_on_the_leaves_with_the_calls_bits(cache_dir):
    """`StoredJit.executable`: the call's executable on the argument leaves, the call's bits; None on the
    ordinary path (disable_jit)."""
    import equinox as eqx

    problem, theta = _problem_and_theta()
    theta = jax.device_put(theta)
    run = jit_grad.executable(problem, theta)
    leaves = jax.tree_util.tree_leaves(eqx.filter((problem, theta), eqx.is_array))
    np.testing.assert_array_equal(run(leaves), jit_grad(problem, theta))
    with jax.disable_jit():
        assert jit_grad.executable(problem, theta) is None
