"""Inexact Newton–MINRES for ∇L(θ) = 0, matrix-free: MINRES on the symmetric indefinite H itself
(Paige & Saunders 1975), forcing terms after Dembo, Eisenstat & Steihaug (1982), within a trust region.
"""

from __future__ import annotations

import inspect
import math
import time

import jax.numpy as jnp
import numpy as np
from scipy.sparse.linalg import LinearOperator, minres

from ._stop_codes import CONVERGED, LEFT_RADIUS, MAX_ITER, NON_FINITE, STALLED

_MINRES_TOL = "rtol" if "rtol" in inspect.signature(minres).parameters else "tol"  # scipy < 1.12: tol


class _TimeUp(Exception):
    """The deadline passed inside a MINRES solve."""


def newton_minres(problem, theta0, center, radius, gtol, max_iter, delta0, deadline):
    """Inexact Newton steps H s = −∇L solved by MINRES on H itself (symmetric indefinite; Paige &
    Saunders 1975) to relative residual η = min(0.1, ‖∇L‖^½) (Dembo, Eisenstat & Steihaug 1982), cut to
    a trust radius that doubles after a step lowering ‖∇L‖ and quarters otherwise.

    CG on H² (the Levenberg–Marquardt loop) squares H's condition number; near a plateau's critical set,
    where H has a continuum of tiny eigenvalues, that stalls where MINRES converges quadratically.
    Returns (θ, ‖∇L‖, iterations, code, timed_out)."""
    from ..problem._batch import jit_grad, jit_hvp

    n = int(theta0.shape[0])
    x = np.array(theta0, dtype=float)
    g = np.asarray(jit_grad(problem, jnp.asarray(x)))
    f = float(g @ g)
    delta, it = float(delta0), 0
    while True:
        if not math.isfinite(f):
            return x, math.sqrt(f) if f >= 0 else f, it, NON_FINITE, False
        if math.sqrt(f) <= gtol:
            return x, math.sqrt(f), it, CONVERGED, False
        if it >= max_iter:
            return x, math.sqrt(f), it, MAX_ITER, False
        if deadline is not None and time.perf_counter() > deadline:
            return x, math.sqrt(f), it, MAX_ITER, True
        xj = jnp.asarray(x)

        def hvp(v, xj=xj):
            # Up to 500 products per solve: the deadline is checked before each one.
            if deadline is not None and time.perf_counter() > deadline:
                raise _TimeUp
            return np.asarray(jit_hvp(problem, xj, jnp.asarray(v.ravel())))

        op = LinearOperator((n, n), dtype=float, matvec=hvp)
        try:
            s, _ = minres(op, -g, maxiter=min(n, 500), **{_MINRES_TOL: min(0.1, f ** 0.25)})
        except _TimeUp:
            return x, math.sqrt(f), it, MAX_ITER, True
        ns = float(np.linalg.norm(s))
        if not math.isfinite(ns) or ns == 0.0:
            return x, math.sqrt(f), it, STALLED, False
        if ns > delta:
            s *= delta / ns
        trial = x + s
        g_new = np.asarray(jit_grad(problem, jnp.asarray(trial)))
        f_new = float(g_new @ g_new)
        it += 1
        if math.isfinite(f_new) and f_new < f:
            x, g, f = trial, g_new, f_new
            delta = 2.0 * delta
            if float(np.linalg.norm(x - center)) > radius:
                return x, math.sqrt(f), it, LEFT_RADIUS, False
        else:
            delta = 0.25 * min(delta, ns)
            if delta <= 1e-14 * (1.0 + float(np.linalg.norm(x))):
                return x, math.sqrt(f), it, STALLED, False
