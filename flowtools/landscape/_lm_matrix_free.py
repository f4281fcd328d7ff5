"""The matrix-free Levenberg–Marquardt solve of ∇L(θ) = 0, jitted: the step solves (H² + μI)c = −Hg by
conjugate gradients on Hessian-vector products, μ adapted by the ratio test (Moré 1978); no Hessian is
formed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._stored_jit import stored_jit
from ._stop_codes import CONVERGED, LEFT_RADIUS, MAX_ITER, NON_FINITE, RUNNING, STALLED


@stored_jit
def solve_matrix_free(problem, theta0, center, radius, gtol, max_iter, cg_iter, cg_rtol, mu_init):
    hvp = lambda th, v: problem.hvp_fn(th, v)  # noqa: E731
    g0 = problem.grad_fn(theta0)
    f0 = g0 @ g0

    def cg(theta, rhs, mu):
        # Conjugate gradients on (H² + μI) x = rhs.
        op = lambda v: hvp(theta, hvp(theta, v)) + mu * v  # noqa: E731
        x = jnp.zeros_like(rhs)
        r = rhs
        p = r
        rr = r @ r
        stop = cg_rtol * cg_rtol * rr

        def cond(s):
            return (s[4] < cg_iter) & (s[3] > stop)

        def body(s):
            x, r, p, rr, k = s
            Ap = op(p)
            alpha = rr / jnp.maximum(p @ Ap, 1e-300)
            x = x + alpha * p
            r = r - alpha * Ap
            rr_new = r @ r
            p = r + (rr_new / jnp.maximum(rr, 1e-300)) * p
            return x, r, p, rr_new, k + 1

        x, *_ = jax.lax.while_loop(cond, body, (x, r, p, rr, jnp.asarray(0)))
        return x

    # μ carries units of λ²; a chunked solve passes the damping reached so far (μ_init > 0).
    mu0 = jnp.where(mu_init > 0, mu_init,
                    (jnp.linalg.norm(hvp(theta0, g0)) / jnp.maximum(jnp.sqrt(f0), 1e-300)) ** 2 * 1e-4)
    code0 = jnp.where(jnp.sqrt(f0) <= gtol, CONVERGED, jnp.where(jnp.isfinite(f0), RUNNING, NON_FINITE))

    def body(s):
        theta, g, f, mu, it, _ = s
        Hg = hvp(theta, g)
        step = cg(theta, -Hg, mu)
        trial = theta + step
        g_new = problem.grad_fn(trial)
        f_new = g_new @ g_new
        Hs = hvp(theta, step)
        pred = jnp.sum((g + Hs) ** 2)
        rho = (f - f_new) / jnp.maximum(f - pred, 1e-300)
        accept = jnp.isfinite(f_new) & (f_new < f) & (rho > 1e-4)
        theta = jnp.where(accept, trial, theta)
        g = jnp.where(accept, g_new, g)
        f = jnp.where(accept, f_new, f)
        mu = jnp.where(accept & (rho > 0.75), mu / 4.0, jnp.where(accept & (rho > 0.25), mu, mu * 4.0))
        mu = jnp.maximum(mu, 1e-300)
        it = it + 1
        code = jnp.select(
            [jnp.sqrt(f) <= gtol, jnp.linalg.norm(theta - center) > radius, ~jnp.isfinite(f),
             mu > 1e300, it >= max_iter],
            [CONVERGED, LEFT_RADIUS, NON_FINITE, STALLED, MAX_ITER], RUNNING)
        return theta, g, f, mu, it, code

    theta, g, f, mu, it, code = jax.lax.while_loop(
        lambda s: s[5] == RUNNING, body, (theta0, g0, f0, mu0, jnp.asarray(0), code0))
    return theta, jnp.sqrt(f), it, code, mu
