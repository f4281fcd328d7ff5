"""The dense Levenberg–Marquardt loop driven from the host (`find_critical_point(dense_loop="host")`):
iteration for iteration the compiled loop's iterates, to round-off; the known saddle of the minimal model;
the record says which loop ran."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools.landscape import _lm_dense, find_critical_point
from flowtools.landscape._stop_codes import CONVERGED, MAX_ITER


def _f(v):
    return jnp.asarray(v, dtype=jnp.float64)


@pytest.mark.parametrize("width", [2, 3])
def test_host_loop_follows_the_compiled_loop_iteration_for_iteration(width):
    """The same operations in the same order: after every number of iterations up to 12, both loops
    stop with the same code and iterates that agree to 1e-12 relative (XLA fuses across the program
    boundaries differently, so the last bits may differ)."""
    p = ft.problems.teacher_student(3, 2, width, activation="tanh", n=150)
    for seed in range(3):
        th = jax.device_put(np.asarray(p.model.init(seed, "normal", scale=0.5)))
        for n in (1, 2, 3, 5, 8, 12):
            args = (p, th, th, _f(10.0), _f(1e-12), jnp.asarray(n), _f(0.1), _f(1e-12), _f(1.0))
            a = jax.block_until_ready(_lm_dense.solve_dense(*args))
            b = jax.block_until_ready(_lm_dense.solve_dense_host(*args[:-1], args[-1]))
            assert int(a[2]) == int(b[2]) and int(a[3]) == int(b[3]) in (CONVERGED, MAX_ITER)
            scale = 1.0 + float(np.linalg.norm(a[0]))
            assert float(np.max(np.abs(np.asarray(a[0]) - np.asarray(b[0])))) <= 1e-12 * scale
            assert float(b[1]) == pytest.approx(float(a[1]), rel=1e-6, abs=1e-14)
            assert float(b[4]) == pytest.approx(float(a[4]), rel=1e-12)


def test_host_loop_finds_the_minimal_models_saddle_and_says_so(minimal_half):
    """The origin of the minimal model is a saddle with eigenvalues ±mean(xy) (docs/landscape.md)."""
    x, y = np.asarray(minimal_half.x).ravel(), np.asarray(minimal_half.y).ravel()
    m = np.mean(x * y)
    guess = np.array([0.02, -0.01, 0.015, 0.03])
    cp = find_critical_point(minimal_half, guess, radius=0.5, dense_loop="host")
    ref = find_critical_point(minimal_half, guess, radius=0.5)
    assert cp.success and cp.signature == ref.signature == (2, 0, 2)
    assert np.linalg.norm(minimal_half.grad(cp.theta)) <= 1e-12 and np.max(np.abs(cp.theta)) < 1e-10
    np.testing.assert_allclose(np.sort(cp.eigenvalues), [-m, -m, m, m], rtol=1e-10, atol=1e-12)
    assert cp.iterations == ref.iterations
    assert cp.attempts[0]["dense_loop"] == "host" and "dense_loop" not in ref.attempts[0]
    with pytest.raises(ValueError, match="dense_loop"):
        find_critical_point(minimal_half, guess, dense_loop="python")
    # the corrector and the matrix-free loop have one compiled program each: asking for both is an error
    for other in (dict(corrector=True), dict(method="matrix_free")):
        with pytest.raises(ValueError, match="dense_loop='host'.*" + next(iter(other))):
            find_critical_point(minimal_half, guess, dense_loop="host", **other)


def test_host_loop_reports_max_iter_and_keeps_the_best_iterate():
    """A budget too small to converge: the same status as the compiled loop, and the best iterate."""
    p = ft.problems.teacher_student(3, 2, 3, activation="tanh", n=150)
    guess = np.asarray(p.model.init(0, "normal", scale=0.5))
    a = find_critical_point(p, guess, max_iter=2, fallback=False)
    b = find_critical_point(p, guess, max_iter=2, fallback=False, dense_loop="host")
    assert a.status == b.status == "max_iter" and not b.success
    assert b.best_grad_norm == pytest.approx(a.best_grad_norm, rel=1e-8)


def test_host_loop_on_a_users_own_energy_creeps_like_the_compiled_loop():
    """`Problem.from_loss` (a user's function: compiled once per process, not stored): along the curved
    valley y = x² of L = x⁴ + 100(y − x²)² + z² both loops creep to the same budget and ‖∇L‖ (≈ 8e-6)."""
    p = ft.Problem.from_loss(lambda th: th[0] ** 4 + 100.0 * (th[1] - th[0] ** 2) ** 2 + th[2] ** 2, 3)
    guess = np.array([0.5, 0.26, 0.3])
    a = find_critical_point(p, guess, fallback=False)
    b = find_critical_point(p, guess, fallback=False, dense_loop="host")
    assert a.status == b.status == "max_iter" and a.iterations == b.iterations == 200
    assert b.best_grad_norm == pytest.approx(a.best_grad_norm, rel=1e-6)
    assert 1e-8 < b.best_grad_norm < 1e-4
