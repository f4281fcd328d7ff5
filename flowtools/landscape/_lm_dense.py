"""The dense trust-region Levenberg–Marquardt solve of ∇L(θ) = 0, jitted (Moré 1978; Nocedal & Wright,
§10.3): in the eigenbasis of H the step is −(H² + μI)⁻¹Hg with the floor μ ≥ ‖g‖² (Yamashita & Fukushima
2001; Fan & Yuan 2005), which converges quadratically also onto lines and planes of critical points
(`flowtools.landscape.critical`). With `corrector` each trial point is first moved back to the floor of
the valley it runs along (`_corrected`), so that the trust region can grow to the Newton step near a
degenerate critical set.

`solve_dense` compiles the whole loop into one program; `solve_dense_host` runs the same iteration from
Python through the stored Hessian and ∇L kernels and two small kernels (`lm_trial`, `lm_update`), which
a new problem compiles in a fraction of the time, to round-off of the same iterates.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._stored_jit import stored_jit
from ..problem._batch import jit_grad, jit_hessian
from ._kernels import hessian_from_hvps
from ._stop_codes import CONVERGED, LEFT_RADIUS, MAX_ITER, NON_FINITE, RUNNING, SLOW, STALLED


def _tr_step(lam, a, delta, mu_min):
    """The trust-region LM step in eigen-coordinates: (c, predicted ‖g + Hc‖²).

    cᵢ = −λᵢaᵢ / (λᵢ² + μ) with μ ≥ `mu_min` the smallest value with ‖c‖ ≤ Δ (bisection on log μ).
    """
    def step(mu):
        den = lam * lam + mu
        return jnp.where(den > 0, -lam * a / jnp.where(den > 0, den, 1.0), 0.0)

    c0 = step(mu_min)
    inside = jnp.linalg.norm(c0) <= delta
    la = lam * a
    mu_hi = jnp.maximum(jnp.linalg.norm(la) / delta, 1e-300)
    log_hi = jnp.log(mu_hi)
    log_lo = jnp.maximum(log_hi - 80.0, jnp.log(jnp.maximum(mu_min, 1e-300)))

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        too_long = jnp.linalg.norm(step(jnp.exp(mid))) > delta
        return jnp.where(too_long, mid, lo), jnp.where(too_long, hi, mid)

    _, log_mu = jax.lax.fori_loop(0, 60, bisect, (log_lo, log_hi))
    c = jnp.where(inside, c0, step(jnp.exp(log_mu)))
    pred = jnp.sum((a + lam * c) ** 2)
    return c, pred


def _lm_dense(problem, theta0, center, radius, gtol, max_iter, delta0, rcond, lm_scale, corrector=False,
              watch=None):
    def hess(th):
        # From Hessian-vector products in batches (memory O(n² + batch·intermediates)); jax.hessian of
        # the full problem took 5.3 GiB on the 1 210-parameter digits net.
        return hessian_from_hvps(problem, th)

    g0 = problem.grad_fn(theta0)
    f0 = g0 @ g0
    code0 = jnp.where(jnp.sqrt(f0) <= gtol, CONVERGED, jnp.where(jnp.isfinite(f0), RUNNING, NON_FINITE))
    watch = no_watch(max_iter, f0) if watch is None else watch
    state = (theta0, g0, f0, jnp.asarray(delta0, theta0.dtype), jnp.asarray(0), code0, jnp.asarray(0),
             first_mark(watch, f0))

    def cond(s):
        return s[5] == RUNNING

    def body(s):
        theta, g, f, delta, it, _, kept, f_mark = s
        lam, Q = jnp.linalg.eigh(hess(theta))
        a = Q.T @ g
        # Levenberg–Marquardt floor μ ≥ ‖g‖² (Yamashita & Fukushima 2001): quadratic convergence also
        # onto non-isolated solutions (lines and planes of critical points), where the pure Newton step
        # along the nearly singular directions is ill-determined.
        lam_max = jnp.max(jnp.abs(lam))
        mu_min = jnp.maximum(lm_scale * f, (rcond * lam_max) ** 2)
        c, pred = _tr_step(lam, a, delta, mu_min)
        step = Q @ c
        snorm = jnp.linalg.norm(c)
        trial = theta + step
        g_new = problem.grad_fn(trial)
        f_new = g_new @ g_new
        corrected = jnp.asarray(False)
        if corrector:
            trial, g_new, f_new, corrected = _corrected(problem, lam, Q, f, snorm, trial, g_new, f_new)
        theta, g, f, delta, it, code, accept = ratio_test(theta, g, f, delta, it, trial, g_new, f_new, snorm,
                                                          pred, center, radius, gtol, max_iter)
        code, f_mark = slow_test(f, f_mark, it, code, gtol, watch)
        return theta, g, f, delta, it, code, kept + (accept & corrected), f_mark

    theta, g, f, delta, it, code, kept, f_mark = jax.lax.while_loop(cond, body, state)
    return theta, jnp.sqrt(f), it, code, delta, kept, f_mark


def no_watch(max_iter, f0):
    """The `watch` of a loop without the linear-convergence test (`slow_test`)."""
    return (jnp.asarray(0), jnp.asarray(max_iter), jnp.asarray(0), f0)


def first_mark(watch, f0):
    """‖∇L‖² at the attempt's last mark: `watch[3]`, or the start's `f0` where that is negative (a new
    attempt)."""
    return jnp.where(watch[3] < 0, f0, jnp.asarray(watch[3], f0.dtype))


def slow_test(f, f_mark, it, code, gtol, watch):
    """The linear-convergence test of one iteration: (code, ‖∇L‖² at the last window mark).

    `watch` = (iterations before this call, iterations the attempt may still run from the call's start,
    window W (0: no test), ‖∇L‖² at the attempt's last mark (negative: at this call's start)). Every W
    iterations of the attempt (counted across the calls of a chunked run), ‖∇L‖ is extrapolated at its
    geometric rate over the last W iterations through the iterations left; an attempt that would still
    end above `gtol` stops with SLOW, so the fallbacks start then and not after `max_iter`. Quadratic
    convergence passes (its rate only improves); a creep of 2 % per iteration near a degenerate critical
    set, or a stall at a local minimum of ‖∇L‖², stops at the first mark. The end of a chunk (MAX_ITER
    with iterations left) is tested too."""
    it0, budget, window, _ = watch
    done = it0 + it
    mark = (window > 0) & (done % jnp.maximum(window, 1) == 0)
    left = budget - it
    rate = jnp.minimum(f / jnp.maximum(f_mark, 1e-300), 1.0)
    # log of the extrapolated ‖∇L‖² at the end of the budget; a rate of exactly 1 (no progress) stays there
    end = jnp.log(jnp.maximum(f, 1e-300)) + left / jnp.maximum(window, 1) * jnp.log(jnp.maximum(rate, 1e-300))
    slow = mark & (left > 0) & ((code == RUNNING) | (code == MAX_ITER)) & (end > 2.0 * jnp.log(gtol))
    return jnp.where(slow, SLOW, code), jnp.where(mark, f, f_mark)


def _corrected(problem, lam, Q, f, snorm, trial, g_trial, f_trial):
    """(point, ∇L, ‖∇L‖², whether corrected): the trial point moved back to the floor of a curved valley
    by one Newton step in the stiff eigendirections of the same H = QΛQᵀ (λ² ≥ ‖∇L(θ)‖·max|λ|): one more
    gradient and no Hessian, kept when it is no longer than the step and lowers ‖∇L‖.

    Near a degenerate critical set ∇L lies in nearly flat directions (eigenvalues ~1e-7 that shrink as
    the set is approached; Newton converges there only linearly, by 2/3 per step on a quartic). A step
    along them leaves the curved valley floor by O(κ‖s‖²) in the stiff directions, which soon exceeds the
    gain, so the ratio test holds Δ far below the Newton step and ‖∇L‖ falls by ~2 % per iteration. The
    stiff directions are well conditioned, so one frozen-Hessian step removes that error (the role of the
    second-order correction of geodesic acceleration, Transtrum & Sethna 2012).
    """
    a = Q.T @ g_trial
    stiff = lam * lam >= jnp.sqrt(f) * jnp.max(jnp.abs(lam))
    c = jnp.where(stiff, -a / jnp.where(stiff, lam, 1.0), 0.0)
    trial2 = trial + Q @ c
    g2 = problem.grad_fn(trial2)
    f2 = g2 @ g2
    use = (jnp.linalg.norm(c) <= snorm) & jnp.isfinite(f2) & (f2 < f_trial)
    return jnp.where(use, trial2, trial), jnp.where(use, g2, g_trial), jnp.where(use, f2, f_trial), use


@stored_jit
def solve_dense(problem, theta0, center, radius, gtol, max_iter, delta0, rcond, lm_scale, corrector=False,
                watch=None):
    """The compiled loop. Returns (θ, ‖∇L(θ)‖, iterations, stop code, trust radius, corrected steps,
    ‖∇L‖² at the last linear-convergence mark); `watch` as in `slow_test` (None: no test)."""
    return _lm_dense(problem, theta0, center, radius, gtol, max_iter, delta0, rcond, lm_scale, corrector,
                     watch)


@stored_jit
def lm_start(g0, gtol):
    """(‖g‖², ‖g‖, stop code) of the starting point: the code `_lm_dense` starts its loop with."""
    f0 = g0 @ g0
    code0 = jnp.where(jnp.sqrt(f0) <= gtol, CONVERGED, jnp.where(jnp.isfinite(f0), RUNNING, NON_FINITE))
    return f0, jnp.sqrt(f0), code0


@stored_jit
def lm_trial(H, theta, g, f, delta, rcond, lm_scale):
    """(trial point, ‖c‖, predicted ‖∇L‖²): the first half of one iteration of `_lm_dense`, given H(θ)."""
    lam, Q = jnp.linalg.eigh(H)
    a = Q.T @ g
    lam_max = jnp.max(jnp.abs(lam))
    mu_min = jnp.maximum(lm_scale * f, (rcond * lam_max) ** 2)
    c, pred = _tr_step(lam, a, delta, mu_min)
    step = Q @ c
    return theta + step, jnp.linalg.norm(c), pred


@stored_jit
def lm_update(theta, g, f, delta, it, trial, g_new, snorm, pred, center, radius, gtol, max_iter, f_mark, it0,
              budget, window):
    """The second half of one iteration of `_lm_dense`, given ∇L(trial): the ratio test, the new trust
    radius and the stop code (`slow_test` included). Returns (θ, g, ‖g‖², Δ, iterations, code, ‖g‖,
    accepted, ‖g‖² at the last mark)."""
    theta, g, f, delta, it, code, accept = ratio_test(theta, g, f, delta, it, trial, g_new, g_new @ g_new,
                                                      snorm, pred, center, radius, gtol, max_iter)
    code, f_mark = slow_test(f, f_mark, it, code, gtol, (it0, budget, window, f_mark))
    return theta, g, f, delta, it, code, jnp.sqrt(f), accept, f_mark


def ratio_test(theta, g, f, delta, it, trial, g_new, f_new, snorm, pred, center, radius, gtol, max_iter):
    """The trust-region ratio test of one iteration (ρ = actual / predicted decrease of ‖g‖²), the new trust
    radius and the stop code. Returns (θ, g, ‖g‖², Δ, iterations, code, accepted)."""
    finite = jnp.isfinite(f_new)
    rho = (f - f_new) / jnp.maximum(f - pred, 1e-300)
    accept = finite & (f_new < f) & (rho > 1e-4)
    theta = jnp.where(accept, trial, theta)
    g = jnp.where(accept, g_new, g)
    f = jnp.where(accept, f_new, f)
    delta = jnp.where(~accept | (rho < 0.25), 0.25 * jnp.minimum(snorm, delta),
                      jnp.where((rho > 0.75) & (snorm > 0.99 * delta), 2.0 * delta, delta))
    delta = jnp.minimum(delta, radius)
    it = it + 1
    scale = 1.0 + jnp.linalg.norm(theta)
    code = jnp.select(
        [jnp.sqrt(f) <= gtol, jnp.linalg.norm(theta - center) > radius, ~jnp.isfinite(f),
         delta < 1e-15 * scale, it >= max_iter],
        [CONVERGED, LEFT_RADIUS, NON_FINITE, STALLED, MAX_ITER], RUNNING)
    return theta, g, f, delta, it, code, accept


def _bound(kernel, *prefix):
    """`f(*args) = kernel(*prefix, *args)` for a host loop whose array arguments keep one signature: after
    the first call, the kernel's executable runs on the array leaves of `prefix` (taken once) and `args`,
    without the partition and lookup of each call (`StoredJit.executable`)."""
    fixed = jax.tree_util.tree_leaves(eqx.filter(prefix, eqx.is_array))
    exe = []

    def call(*args):
        if not exe:
            exe.append(kernel.executable(*prefix, *args))
        return kernel(*prefix, *args) if exe[0] is None else exe[0](fixed + list(args))

    return call


def solve_dense_host(problem, theta0, center, radius, gtol, max_iter, delta0, rcond, lm_scale, watch=None):
    """`solve_dense` without `corrector`, driven from the host (`find_critical_point(dense_loop="host")`):
    each iteration calls the Hessian and ∇L kernels an itinerary compiles anyway (`Problem.hessian`'s and
    `Problem.grad`'s) and two small kernels, `lm_trial` and `lm_update`, so a new problem compiles two
    small programs for its dense refinement instead of one that holds the whole loop. The operations are
    `_lm_dense`'s, but XLA fuses them differently across the program boundaries, so the iterates agree
    with `solve_dense`'s to round-off, not bit for bit. A rejected step keeps θ and reuses its Hessian.

    Returns (θ, ‖∇L(θ)‖, iterations, stop code, final trust radius, 0 corrected steps, ‖∇L‖² at the last
    mark), as `solve_dense`."""
    grad, hessian = _bound(jit_grad, problem), _bound(jit_hessian, problem)
    trial_step, update = _bound(lm_trial), _bound(lm_update)
    g = grad(theta0)
    f, gnorm, code = lm_start(g, gtol)
    theta, delta, it = theta0, jnp.asarray(delta0, theta0.dtype), jax.device_put(np.int64(0))
    watch = no_watch(max_iter, f) if watch is None else watch
    f_mark = first_mark(watch, f)
    H = None
    while int(code) == RUNNING:
        if H is None:
            H = hessian(theta)
        trial, snorm, pred = trial_step(H, theta, g, f, delta, rcond, lm_scale)
        g_new = grad(trial)
        theta, g, f, delta, it, code, gnorm, accept, f_mark = update(
            theta, g, f, delta, it, trial, g_new, snorm, pred, center, radius, gtol, max_iter, f_mark,
            *watch[:3])
        if bool(accept):
            H = None
    return theta, gnorm, it, code, delta, jax.device_put(np.int64(0)), f_mark
