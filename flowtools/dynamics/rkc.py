"""Runge–Kutta–Chebyshev (RKC): a stabilized explicit integrator for large gradient flows.

The Jacobian of dθ/dt = −∇L(θ) is −H, symmetric, so its spectrum is real. The stiffness sits on the
negative real axis (the positive curvatures of H, up to λ_max), exactly where Chebyshev methods put
their stability region. The damped second-order RKC method with s stages (van der Houwen & Sommeijer
1980; Verwer, Hundsdorfer & Sommeijer 1990; Sommeijer, Shampine & Verwer 1997, "RKC: an explicit
solver for parabolic PDEs") is stable on [−β(s), 0] with β(s) ≈ 0.65 s² (damping ε = 2/13), so a step h
costs s ≈ √(1.54 h λ_max) gradients where forward Euler (GD) would need h λ_max / 2 of them. It keeps no
Hessian and no factorisation: memory is a few vectors of length n, and each stage costs one gradient.

The step uses the three-term recursion of the RKC paper (their Eq. 2.3 with the shifted Chebyshev
coefficients b_j = T_j''(w0)/T_j'(w0)², w0 = 1 + ε/s², w1 = T_s'(w0)/T_s''(w0)), the error estimate of
the RKC code, Est = 0.8 (y_n − y_{n+1}) + 0.4 h (f_n + f_{n+1}), and its step-size rule (order 1/3 with
a PI-type memory of the last step). λ_max comes from a few Lanczos steps on Hessian-vector products
(forward-over-reverse), restarted from the last dominant Ritz vector: every `rho_every` accepted steps
and after a rejected step. Saved states between steps come from the cubic Hermite interpolant through
(y_n, f_n) and (y_{n+1}, f_{n+1}).

The solver runs in segments (`flow.gradient_flow`'s wall-time budget, checkpoints and progress bar):
a call can return its state and a later call continue it exactly, and `RKC.carry` / `RKC.restore`
keep the part that decides the next steps (last f(y), step sizes and error memory of the step rule,
λ_max with its Ritz vector and age) in an unfinished `Trajectory`, so a run resumed from disk takes
the same steps as an uninterrupted one.

Gradient flows also have *negative* curvatures (the unstable directions of saddles): for −H they are
positive eigenvalues, where RKC, like every explicit method, is accurate but not A-stable; the error
test controls the step there, as it would for any solver.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .bdf import initial_step
from .results import RESULTS
from .stiff import (AbstractSegmentedSolver, event_code, finish, outputs, rms, save_between, save_step,
                    start_event)

__all__ = ["RKC", "lanczos_lambda_max", "lanczos_ritz_max"]

_EPS = 2.0 / 13.0  # the RKC code's damping


def lanczos_lambda_max(hvp, v0, m: int):
    """(θ_max + ‖r‖, Ritz vector): m Lanczos steps on the symmetric operator `hvp` from v0 (full
    reorthogonalisation). θ_max ≤ λ_max always (Cauchy interlacing); adding the Ritz residual ‖r‖ gives
    the usual practical upper estimate."""
    theta, residual, x = lanczos_ritz_max(hvp, v0, m)
    return theta + residual, x


def lanczos_ritz_max(hvp, v0, m: int):
    """(θ_max, ‖r‖, Ritz vector) of m Lanczos steps on `hvp` from v0: the largest Ritz value, a lower
    bound of λ_max, and its residual norm ‖H x − θ_max x‖, which bounds the gap |λ − θ_max| to the
    nearest eigenvalue λ."""
    n = v0.shape[0]
    # A Ritz vector can be zero (a Krylov space that broke down with every eigenvalue ≤ 0, e.g. a
    # concave direction in 2 parameters): restart from a fixed generic vector, not from 0/0 = NaN.
    norm = jnp.linalg.norm(v0)
    usable = jnp.isfinite(norm) & (norm > 0)
    generic = jnp.cos(jnp.arange(n, dtype=v0.dtype) * 1.234567) + 0.1
    v0 = jnp.where(usable, v0 / jnp.where(usable, norm, 1.0), generic / jnp.linalg.norm(generic))
    V = jnp.zeros((m + 1, n), v0.dtype).at[0].set(v0)
    T = jnp.zeros((m, m), v0.dtype)

    def body(j, c):
        V, T, beta = c
        w = hvp(V[j])
        mask = (jnp.arange(m + 1) <= j)[:, None]
        Vj = jnp.where(mask, V, 0.0)
        h = Vj @ w
        w = w - h @ Vj
        h2 = Vj @ w
        w = w - h2 @ Vj
        h = h + h2
        b = jnp.linalg.norm(w)
        T = T.at[j, j].set(h[j])
        T = jnp.where(j + 1 < m, T.at[jnp.minimum(j + 1, m - 1), j].set(b).at[j, jnp.minimum(j + 1, m - 1)]
                      .set(b), T)
        V = V.at[j + 1].set(w / jnp.where(b > 0, b, 1.0))
        return V, T, b

    V, T, beta = lax.fori_loop(0, m, body, (V, T, jnp.asarray(0.0, v0.dtype)))
    theta, Y = jnp.linalg.eigh(T)
    x = Y[:, -1] @ V[:m]
    return theta[-1], jnp.abs(beta * Y[-1, -1]), x


def _stages_for(h, rho, s_max):
    """The RKC code's stage count s = 1 + ⌊√(1 + 1.54 h ρ)⌋, at least 2 and at most s_max."""
    s = 1 + jnp.floor(jnp.sqrt(1.0 + 1.54 * h * jnp.maximum(rho, 0.0))).astype(jnp.int64)
    return jnp.clip(s, 2, s_max)


def _h_stable(rho, s_max):
    """The largest step that s_max stages keep stable: β(s) ≈ 0.653 (s² − 1) / ρ (RKC code)."""
    return 0.653 * (s_max * s_max - 1.0) / jnp.maximum(rho, 1e-300)


def rkc_step(f, y, fy, h, s):
    """One damped second-order RKC step with s ≥ 2 stages from (y, f(y)); returns y_{n+1}."""
    sf = s.astype(y.dtype)
    w0 = 1.0 + _EPS / (sf * sf)
    # T_s(w0), T_s'(w0), T_s''(w0) by the Chebyshev recurrences, for w1 = T_s'/T_s''.
    def cheb(j, c):
        t0, t1, d0, d1, e0, e1 = c
        t2 = 2 * w0 * t1 - t0
        d2 = 2 * t1 + 2 * w0 * d1 - d0
        e2 = 4 * d1 + 2 * w0 * e1 - e0
        return t1, t2, d1, d2, e1, e2

    one, zero = jnp.ones_like(w0), jnp.zeros_like(w0)
    _, _, _, ds, _, es = lax.fori_loop(1, s, cheb, (one, w0, zero, one, zero, zero))
    w1 = ds / es
    # b_j = T_j''/T_j'^2 for j ≥ 2, and b_0 = b_1 = b_2.
    t2, d2, e2 = 2 * w0 * w0 - 1, 4 * w0, 4.0 * one
    b2 = e2 / (d2 * d2)
    mu1 = b2 * w1
    Y1 = y + mu1 * h * fy

    def stage(j, c):
        Yjm1, Yjm2, tm1, tm2, dm1, dm2, em1, em2, bm1, bm2 = c
        tj = 2 * w0 * tm1 - tm2
        dj = 2 * tm1 + 2 * w0 * dm1 - dm2
        ej = 4 * dm1 + 2 * w0 * em1 - em2
        bj = ej / (dj * dj)
        am1 = 1 - bm1 * tm1
        mu = 2 * bj * w0 / bm1
        nu = -bj / bm2
        mut = 2 * bj * w1 / bm1
        gamt = -am1 * mut
        Yj = (1 - mu - nu) * y + mu * Yjm1 + nu * Yjm2 + mut * h * f(Yjm1) + gamt * h * fy
        return Yj, Yjm1, tj, tm1, dj, dm1, ej, em1, bj, bm1

    # j = 1: T_1 = w0, T_1' = 1, T_1'' = 0, with b_1 = b_0 = b_2.
    init = (Y1, y, w0, one, one, zero, zero, zero, b2, b2)
    out = lax.fori_loop(2, s + 1, stage, init)
    del t2
    return out[0]


class _State(eqx.Module):
    t: jax.Array
    y: jax.Array
    fy: jax.Array
    h: jax.Array
    h_old: jax.Array
    err_old: jax.Array
    rejected_last: jax.Array
    pi: jax.Array             # a step has been accepted: the step rule has a last error to use
    rho: jax.Array
    rho_vec: jax.Array
    rho_age: jax.Array
    n_steps: jax.Array
    n_accepted: jax.Array
    n_grad: jax.Array
    n_hvp: jax.Array
    n_rho: jax.Array
    max_stages_used: jax.Array
    save_index: jax.Array
    ts_out: jax.Array
    ys_out: jax.Array
    event: RESULTS  # the stop test's result after the last accepted step (`successful`: none)
    failed: jax.Array
    stride: jax.Array         # save_steps: accepted steps between saves


# The part of the state that decides the next steps; `RKC.carry` writes it into an unfinished
# Trajectory and `RKC.restore` starts a new call from it, which then takes the same steps.
_CARRY = ("fy", "h", "h_old", "err_old", "rejected_last", "pi", "rho", "rho_vec", "rho_age")


def _blank(n: int, n_slots: int) -> _State:
    f, i, b = (lambda *shape: jnp.zeros(shape)), (lambda: jnp.asarray(0, jnp.int64)), jnp.asarray(False)
    return _State(t=f(), y=f(n), fy=f(n), h=f(), h_old=f(), err_old=f(), rejected_last=b, pi=b, rho=f(),
                  rho_vec=f(n), rho_age=i(), n_steps=i(), n_accepted=i(), n_grad=i(), n_hvp=i(), n_rho=i(),
                  max_stages_used=i(), save_index=i(), ts_out=f(n_slots), ys_out=f(n_slots, n), event=RESULTS.successful,
                  failed=b, stride=i())


class RKC(AbstractSegmentedSolver):
    """Damped second-order Runge–Kutta–Chebyshev with adaptive steps and stage counts; no Hessian.

    **Arguments:**

    - `max_stages`: the most stages per step (the stable step grows like max_stages²/λ_max).
    - `rho_every`: re-estimate λ_max every this many accepted steps (and after each rejection).
    - `lanczos_steps`: Hessian-vector products per λ_max estimate.
    - `rho_safety`: the estimate is multiplied by this factor.
    """

    max_stages: int = eqx.field(static=True, default=400)
    rho_every: int = eqx.field(static=True, default=25)
    lanczos_steps: int = eqx.field(static=True, default=10)
    rho_safety: float = eqx.field(static=True, default=1.1)

    def __check_init__(self):
        for name, minimum in (("max_stages", 2), ("rho_every", 1), ("lanczos_steps", 2)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= minimum):
                raise ValueError(f"{name} must be an int ≥ {minimum}, got {value!r}.")
        if not self.rho_safety >= 1:
            raise ValueError(f"rho_safety must be ≥ 1, got {self.rho_safety!r}.")

    def blank_state(self, n: int, n_slots: int) -> _State:
        """A state of zeros for n parameters and n_slots output slots (a fresh run's `state_in`)."""
        return _blank(n, n_slots)

    def carry(self, state: _State) -> dict:
        """What a later call needs to continue `state` step for step (`restore`): the last f(y), the
        step sizes and error of the step rule, and the λ_max estimate with its Ritz vector and age."""
        return {name: np.asarray(getattr(state, name)) for name in _CARRY}

    def restore(self, carry: dict, n_slots: int, t0, y0) -> _State:
        """A state at (t0, y0) with the step-rule memory of `carry` (from `carry`), fresh counters and
        output buffers; `solve` with it and `resume` True takes the steps the interrupted run would
        have taken."""
        y0 = jnp.asarray(y0, dtype=jnp.float64)
        n = y0.shape[0]
        missing = [k for k in _CARRY if k not in carry]
        if missing or np.shape(carry["rho_vec"]) != (n,) or np.shape(carry["fy"]) != (n,):
            raise ValueError(f"this RKC solver state does not fit a problem with {n} parameters "
                             f"(missing {missing} or wrong shapes).")
        blank = _blank(n, n_slots)
        ts_out, ys_out = outputs(jnp.zeros(n_slots - 2), jnp.asarray(t0, jnp.float64), y0)
        values = {k: jnp.asarray(carry[k], dtype=getattr(blank, k).dtype) for k in _CARRY}
        return eqx.tree_at(lambda b: [getattr(b, k) for k in ("t", "y", "ts_out", "ys_out", "stride",
                                                              *_CARRY)],
                           blank, [jnp.asarray(t0, jnp.float64), y0, ts_out, ys_out,
                                   jnp.asarray(1, jnp.int64), *values.values()])

    def solve(self, problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol, max_norm, *,
              max_steps, progress, state_in=None, resume=False, step_limit=None, save_steps=False,
              return_state=False):
        """Integrate dθ/dt = −∇L(θ); returns `flow._solve`'s (ts, ys, result, event mask, stats).

        `pcoeff` and `icoeff` are unused (RKC has its own step-size rule), and `progress` too (`flow`
        shows progress between segments). A run can go in segments, as with `BDF.solve`: with
        `return_state` the solver state is returned as well, and a call with that `state_in` and
        `resume` True continues it exactly; `step_limit` ends a segment after that many steps in all.
        `save_steps`: save every stride-th accepted step (`stiff.save_step`) instead of interpolating
        at the times `ts`."""
        del pcoeff, icoeff, progress
        f = lambda y: -problem.grad_fn(y)  # noqa: E731
        i64 = lambda v: jnp.asarray(v, jnp.int64)  # noqa: E731
        m = self.lanczos_steps
        s_max = self.max_stages

        def spectral_radius(y, v):
            hvp = lambda u: jax.jvp(problem.grad_fn, (y,), (u,))[1]  # noqa: E731
            lam, x = lanczos_lambda_max(hvp, v, m)
            return self.rho_safety * jnp.maximum(lam, 0.0), x

        y0 = jnp.asarray(theta0, dtype=jnp.float64)
        t0 = jnp.asarray(t0, dtype=jnp.float64)
        t1 = jnp.asarray(t1, dtype=jnp.float64)

        def fresh():
            f0 = f(y0)
            v0 = jnp.cos(jnp.arange(y0.shape[0], dtype=jnp.float64) * 1.234567) + 0.1  # fixed, generic
            rho, vec = spectral_radius(y0, v0)
            if dt0 is None:
                h = initial_step(f, y0, f0, t1 - t0, rtol, atol)
                n_grad = i64(2)
            else:
                h = jnp.minimum(jnp.asarray(dt0, dtype=jnp.float64), t1 - t0)
                n_grad = i64(1)
            h = jnp.minimum(h, _h_stable(rho, s_max))
            ts_out, ys_out = outputs(ts, t0, y0)
            F = jnp.asarray(False)
            return _State(t=t0, y=y0, fy=f0, h=h, h_old=h, err_old=jnp.asarray(1.0), rejected_last=F,
                          pi=F, rho=rho, rho_vec=vec, rho_age=i64(0), n_steps=i64(0), n_accepted=i64(0),
                          n_grad=n_grad, n_hvp=i64(m), n_rho=i64(1), max_stages_used=i64(0),
                          save_index=i64(0), ts_out=ts_out, ys_out=ys_out,
                          event=start_event(problem, y0, f0), failed=F,
                          stride=i64(1))

        # A resumed segment skips the start-up (first gradient, λ_max, initial step) entirely.
        state = fresh() if state_in is None else lax.cond(resume, lambda: state_in, fresh)
        limit = [v for v in (max_steps, step_limit) if v is not None]
        limit = limit[0] if len(limit) == 1 else jnp.minimum(*limit)

        def cond(s):
            return (s.t < t1) & (s.n_steps < limit) & (s.event == RESULTS.successful) & ~s.failed

        def body(s):
            # A fresh λ_max when the old one is stale or the last attempt failed.
            refresh = (s.rho_age >= self.rho_every) | s.rejected_last
            rho, vec = lax.cond(refresh, spectral_radius, lambda y, v: (s.rho, v), s.y, s.rho_vec)
            h = jnp.minimum(jnp.minimum(s.h, t1 - s.t), _h_stable(rho, s_max))
            min_step = 10 * jnp.abs(jnp.nextafter(s.t, jnp.inf) - s.t)
            too_small = ~(h >= min_step)  # a NaN step size fails too
            stages = _stages_for(h, rho, s_max)
            y_new = rkc_step(f, s.y, s.fy, h, stages)
            f_new = f(y_new)
            est = 0.8 * (s.y - y_new) + 0.4 * h * (s.fy + f_new)
            wt = atol + rtol * jnp.maximum(jnp.abs(s.y), jnp.abs(y_new))
            err = rms(est / wt)
            finite = jnp.all(jnp.isfinite(y_new)) & jnp.all(jnp.isfinite(f_new))
            accept = finite & (err <= 1.0) & ~too_small
            err_safe = jnp.where(finite, jnp.maximum(err, 1e-10), 1e10)
            # The RKC code's step rule: after an accepted step fac = 0.8 (h/h_last) (err_last/err²)^(1/3)
            # (PI), the first time and after a rejection 0.8 err^(−1/3); never grow right after a rejection.
            fac_i = 0.8 * err_safe ** (-1 / 3)
            fac_pi = 0.8 * (h / s.h_old) * (s.err_old / err_safe ** 2) ** (1 / 3)
            fac = jnp.where(accept & s.pi, fac_pi, fac_i)
            fac = jnp.clip(fac, 0.1, jnp.where(accept & ~s.rejected_last, 10.0, 1.0))
            h_next = h * fac

            def interp(tt):  # cubic Hermite through (y_n, f_n), (y_{n+1}, f_{n+1})
                x = (tt - s.t) / h
                h00, h10 = (1 + 2 * x) * (1 - x) ** 2, x * (1 - x) ** 2
                h01, h11 = x * x * (3 - 2 * x), x * x * (x - 1)
                return h00 * s.y + h10 * h * s.fy + h01 * y_new + h11 * h * f_new

            def accepted(_):
                t_new = jnp.where(t1 - (s.t + h) <= min_step, t1, s.t + h)
                if save_steps:
                    index, stride, tso, yso = save_step(s.n_accepted + 1, s.stride, s.save_index, t_new,
                                                        y_new, s.ts_out, s.ys_out)
                else:
                    index, tso, yso = save_between(ts, s.save_index, s.t, s.t + h, interp, s.ts_out,
                                                   s.ys_out)
                    stride = s.stride
                return (t_new, y_new, f_new, index, stride, tso, yso,
                        event_code(jnp.linalg.norm(f_new), y_new, gtol, max_norm), h, err_safe)

            def rejected(_):
                return (s.t, s.y, s.fy, s.save_index, s.stride, s.ts_out, s.ys_out, s.event, s.h_old,
                        s.err_old)

            t_new, y, fy, index, stride, tso, yso, event, h_old, err_old = lax.cond(
                accept, accepted, rejected, None)
            return _State(t=t_new, y=y, fy=fy, h=h_next, h_old=h_old, err_old=err_old,
                          rejected_last=~accept, pi=s.pi | accept, rho=rho, rho_vec=vec,
                          rho_age=jnp.where(refresh, 0, s.rho_age) + accept,
                          n_steps=s.n_steps + 1, n_accepted=s.n_accepted + accept,
                          n_grad=s.n_grad + stages, n_hvp=s.n_hvp + jnp.where(refresh, m, 0),
                          n_rho=s.n_rho + refresh, max_stages_used=jnp.maximum(s.max_stages_used, stages),
                          save_index=index, ts_out=tso, ys_out=yso, event=event, failed=too_small,
                          stride=stride)

        s = lax.while_loop(cond, body, state)
        stats = {"num_steps": s.n_steps, "num_accepted_steps": s.n_accepted,
                 "num_rejected_steps": s.n_steps - s.n_accepted, "gradient_evaluations": s.n_grad,
                 "jacobian_evaluations": jnp.asarray(0, jnp.int64), "hvp_evaluations": s.n_hvp,
                 "factorizations": jnp.asarray(0, jnp.int64), "spectral_radius_estimates": s.n_rho,
                 "max_stages": s.max_stages_used, "failed": s.failed}
        out = finish(s.ts_out, s.ys_out, s.t, s.y, t1, s.event, stats)
        return (out, s) if return_state else out
