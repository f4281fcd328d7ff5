"""`find_critical_point(slow_window=…)` (opt-in): a dense Levenberg–Marquardt attempt that converges too
slowly to reach gtol stops at a window mark and hands over to the fallbacks (docs/landscape.md, "Noticing
a slow attempt"); quadratic convergence is left alone, and the default (0) never stops."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools.landscape import find_critical_point
from flowtools.landscape import _lm_chunks
from flowtools.landscape._stop_codes import SLOW


def _curved_valley(stiffness=100.0):
    """L = x⁴ + K(y − x²)² + z²: a quartic minimum at 0 reached along the curved valley y = x², where the
    plain loop creeps (docs/landscape.md, "Creeping along a degenerate valley")."""
    return ft.Problem.from_loss(
        lambda th: th[0] ** 4 + stiffness * (th[1] - th[0] ** 2) ** 2 + th[2] ** 2, 3)


GUESS = np.array([0.5, 0.26, 0.3])


def test_a_creeping_attempt_stops_at_a_mark_and_would_not_have_converged():
    """The attempt stops at a multiple of the window with status "slow"; run to max_iter without the test
    it ends above gtol as extrapolated (so stopping lost nothing), and its first iterations are the
    stopped attempt's, bit for bit (the test only stops, it never changes a step)."""
    p = _curved_valley()
    full = find_critical_point(p, GUESS, fallback=False)
    cut = find_critical_point(p, GUESS, fallback=False, slow_window=25)
    assert full.status == "max_iter" and full.iterations == 200
    assert cut.status == "slow" and not cut.success and cut.kind == "slow_region"
    assert cut.iterations % 25 == 0 and cut.iterations <= 100
    assert "falling too slowly" in cut.message
    assert full.best_grad_norm > 1e3 * 1e-12  # the extrapolation was right: far from gtol at the end
    same = find_critical_point(p, GUESS, fallback=False, max_iter=cut.iterations)
    np.testing.assert_array_equal(same.best_theta, cut.best_theta)
    # ‖∇L‖ by hand at the stopped iterate
    x, y, z = cut.best_theta
    exact = [4 * x ** 3 - 400 * x * (y - x ** 2), 200 * (y - x ** 2), 2 * z]
    assert np.linalg.norm(exact) == pytest.approx(cut.best_grad_norm, rel=1e-8)


def test_quadratic_convergence_is_untouched(minimal_half):
    """At the minimal model's nondegenerate saddle the solve is the same with and without the test, bit
    for bit."""
    guess = np.array([0.02, -0.01, 0.015, 0.03])
    a = find_critical_point(minimal_half, guess, radius=0.5, slow_window=25)
    b = find_critical_point(minimal_half, guess, radius=0.5)
    assert a.success and a.signature == (2, 0, 2) and a.iterations == b.iterations
    np.testing.assert_array_equal(a.theta, b.theta)


def test_fallbacks_start_after_a_slow_attempt_and_chunks_keep_the_marks():
    """With fallbacks the slow first attempt is followed by the next plans; under a time limit (chunks of
    25 iterations) and in chunks of 7 the marks fall on the same iterations, the stop with them."""
    p = _curved_valley()
    cp = find_critical_point(p, GUESS, slow_window=25)
    assert cp.attempts[0]["status"] == "slow" and len(cp.attempts) > 1
    timed = find_critical_point(p, GUESS, time_limit=1e3, slow_window=25)
    assert [a["iterations"] for a in timed.attempts] == [a["iterations"] for a in cp.attempts]
    assert [a["status"] for a in timed.attempts] == [a["status"] for a in cp.attempts]
    guess = jnp.asarray(GUESS)
    whole = _lm_chunks.lm_in_chunks(p, guess, guess, 2.0, 1e-12, 200, 0.1, 1e-12, 1.0, "dense", 0, None, 200,
                                    slow_window=25)
    sevens = _lm_chunks.lm_in_chunks(p, guess, guess, 2.0, 1e-12, 200, 0.1, 1e-12, 1.0, "dense", 0,
                                     1e12 + time.perf_counter(), 7, slow_window=25)
    assert whole[3] == sevens[3] == SLOW and whole[2] == sevens[2] and whole[2] % 25 == 0
    np.testing.assert_allclose(whole[0], sevens[0], rtol=0, atol=1e-12)


def test_the_host_loop_stops_where_the_compiled_loop_does():
    p = _curved_valley()
    a = find_critical_point(p, GUESS, fallback=False, slow_window=25)
    b = find_critical_point(p, GUESS, fallback=False, dense_loop="host", slow_window=25)
    assert a.status == b.status == "slow" and a.iterations == b.iterations
    np.testing.assert_allclose(a.best_theta, b.best_theta, rtol=0, atol=1e-12)


def test_rcond_is_checked(minimal_half):
    with pytest.raises(ValueError, match="rcond must be a finite non-negative number"):
        find_critical_point(minimal_half, np.zeros(minimal_half.n_params), rcond=-1.0)


@pytest.mark.parametrize("bad, err", [(-1, ValueError), (2.5, TypeError), ("25", TypeError)])
def test_slow_window_is_checked(minimal_half, bad, err):
    with pytest.raises(err, match="slow_window"):
        find_critical_point(minimal_half, np.zeros(minimal_half.n_params), slow_window=bad)
