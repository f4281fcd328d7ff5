"""Levenberg–Marquardt for critical points in chunks of iterations, so that a wall-time deadline can stop
it between chunks (`find_critical_point`'s `time_limit`). The steps themselves are those of the dense and
matrix-free solvers (`_lm_dense`, `_lm_matrix_free`; Moré 1978, Nocedal & Wright §10.3)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from ..problem._batch import jit_grad, jit_hvp
from ._lm_dense import solve_dense, solve_dense_host
from ._lm_matrix_free import solve_matrix_free
from ._stop_codes import MAX_ITER

__all__ = ["lm_in_chunks"]


def lm_in_chunks(problem, start, center, radius, gtol, max_iter, delta0, rcond, lm_scale, method, cg_iter,
        deadline, chunk, corrector=False, dense_loop="compiled", slow_window=0):
    """Run the jitted LM loop from `start` in chunks of `chunk` iterations (so a wall-time deadline can
    stop it between chunks), carrying the trust radius (damping) across chunks. A chunk cannot be
    interrupted, so under a deadline each one after the first is cut to the iterations that fit in the
    time left at the pace of the chunks so far (the first one's compile included, so the pace errs on
    the slow side), and none starts when not one iteration fits. The first matrix-free one starts only
    when one iteration, up to 2·cg_iter + 3 Hessian-vector products timed on one (after a call that may
    compile), fits: 18–21 s at 112 510 parameters, load 7. Dense attempts stop early (code SLOW) when
    ‖∇L‖ converges too slowly to reach `gtol` in the iterations left, tested every `slow_window`
    iterations across chunks (`_lm_dense.slow_test`; 0: never).

    Returns (θ_best, ‖∇L‖ there, iterations, code, timed_out, corrected steps (dense))."""
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    # device_put, not jnp.asarray, which compiles a small kernel for each new shape
    theta, ctl, total, corrected = jax.device_put(np.asarray(start, dtype=np.float64)), delta0, 0, 0
    c = jax.device_put(np.asarray(center, dtype=np.float64))
    spent, gnorm, f_mark = 0.0, None, -1.0
    if deadline is not None and method == "matrix_free":
        jax.block_until_ready(jit_hvp(problem, theta, theta))  # compiles where nothing did before
        t_hvp = time.perf_counter()
        jax.block_until_ready(jit_hvp(problem, theta, theta))
        if (2 * cg_iter + 3) * (time.perf_counter() - t_hvp) > deadline - time.perf_counter():
            g = np.linalg.norm(np.asarray(jit_grad(problem, theta)))
            return np.asarray(theta), float(g), 0, MAX_ITER, True, corrected
    while True:
        n = max_iter - total if deadline is None else min(chunk, max_iter - total)
        if deadline is not None and total > 0:
            fit = int((deadline - time.perf_counter()) // (spent / total))
            if fit < 1:
                return np.asarray(theta), float(gnorm), total, MAX_ITER, True, corrected
            n = min(n, fit)
        t_chunk = time.perf_counter()
        watch = (jnp.asarray(total), jnp.asarray(max_iter - total), jnp.asarray(slow_window), f(f_mark))
        if method == "dense" and dense_loop == "host" and not corrector:
            out = solve_dense_host(problem, theta, c, f(radius), f(gtol), jnp.asarray(n), f(ctl), f(rcond),
                                   f(lm_scale), watch)
            theta, gnorm, it, code, ctl, kept, f_mark = jax.block_until_ready(out)
        elif method == "dense":
            out = solve_dense(problem, theta, c, f(radius), f(gtol), jnp.asarray(n), f(ctl), f(rcond),
                              f(lm_scale), corrector, watch)
            theta, gnorm, it, code, ctl, kept, f_mark = jax.block_until_ready(out)
            corrected += int(kept)
        else:
            out = solve_matrix_free(problem, theta, c, f(radius), f(gtol), jnp.asarray(n),
                                    jnp.asarray(cg_iter), f(1e-10), f(ctl))
            theta, gnorm, it, code, ctl = jax.block_until_ready(out)
        total += int(it)
        spent += time.perf_counter() - t_chunk
        code = int(code)
        if code != MAX_ITER or total >= max_iter:
            return np.asarray(theta), float(gnorm), total, code, False, corrected
        if deadline is not None and time.perf_counter() > deadline:
            return np.asarray(theta), float(gnorm), total, MAX_ITER, True, corrected
