"""Variable-order BDF (NDF) for gradient flows in one compiled loop, with Newton–Krylov corrections.

The step is scipy's `solve_ivp(method="BDF")` (scipy/integrate/_ivp/bdf.py; Shampine & Reichelt,
"The MATLAB ODE suite", 1997: NDF of orders 1–5 with quasi-constant step size; Byrne & Hindmarsh
1975; Hairer, Nørsett & Wanner I, III.2), ported line by line: the same predictor, Newton corrector
(≤ 4 iterations, the same convergence test, tolerance max(10ε/rtol, min(0.03, √rtol))), error
estimate, order selection and step-size rules, LU factorisation of I − cJ = I + cH (c = h/α_k)
refreshed when c or H changes, and a new Hessian (at the predicted point) when Newton fails with an
old one. With `BDF(krylov=False)` it takes the same steps and Hessians as scipy's BDF (tested).

Two things differ:

- The whole loop is one `lax.while_loop`: a step costs a few gradient evaluations and triangular
  solves, not scipy's Python overhead (about 0.5 ms a step and 0.1 ms a function call).
- Hessians. Late in a run the step h grows to 10⁶–10⁸ and c·ΔH, for the change ΔH of the Hessian
  over a single step, exceeds 1 in the nearly flat directions: modified Newton with the last step's
  Hessian diverges, so scipy (and this port with `krylov=False`) computes a new Hessian at almost every
  step. The old factorisation is still an excellent preconditioner, though: (I + cH_old)⁻¹(I + cH)
  differs from I in only ~10 eigenvalues (measured on the 61- and 201-parameter benchmark nets). So
  after such a failure the step is retried with Newton–Krylov: exact Jacobian-vector products at the
  current iterate (`jax.linearize`, about one gradient each) and GMRES left-preconditioned by the old
  LU factors, converging in 3–20 products. The mode sticks until the products since the last Hessian
  cost about as much as a Hessian (`refresh_after` × n_params of them); then a Hessian is computed.
  On the benchmark nets this cut the Hessians 4–7× (e.g. 462 → 90 at 201 parameters).
- The Newton–Krylov corrections of one attempt share one linearisation, at the predicted point, and
  one Krylov space: GCR keeps its directions and their images, so the second and later corrections
  are mostly projections onto directions already found; and a correction is solved only as far as
  the Newton test needs (a forcing term of 0.1 × its tolerance, Eisenstat & Walker 1996). At 201
  parameters (benchmarks/bench_dynamics.py, `flow_recycling`) this cut the Jacobian-vector
  products from 20 624 to 11 228 and the Hessians from 73 to 56, for the same accepted steps within
  2 % and net outputs within 3e-8 (`BDF(recycle=False, forcing=0.0)` is the earlier solver).

After each accepted step ∇L(θ_new) is evaluated once for the events (‖∇L‖ ≤ gtol, ‖θ‖ > max_norm,
non-finite), as a scipy user's terminal event would. Saved states between steps come from the BDF
interpolating polynomial (scipy's `BdfDenseOutput`). Steps count attempts, as in diffrax: accepted
steps, steps rejected by the error test, and attempts repeated after a Newton failure (with
Newton–Krylov, a new Hessian or half the step). Stats count gradient evaluations (each `linearize`
is one), Jacobian-vector products, Hessians and LU factorisations exactly.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .gcr import gcr
from .gmres import gmres
from .results import RESULTS
from .stiff import (AbstractSegmentedSolver, event_code, finish, hessian_fn, outputs, rms, save_between,
                    save_step, start_event)

__all__ = ["BDF"]

_gmres = gmres  # the earlier name (benchmarks/bench_libraries.py)

MAX_ORDER = 5
NEWTON_MAXITER = 4
MIN_FACTOR = 0.2
MAX_FACTOR = 10.0
_K = MAX_ORDER + 1
_KAPPA = np.array([0, -0.1850, -1 / 9, -0.0823, -0.0415, 0])
_GAMMA = np.hstack((0, np.cumsum(1 / np.arange(1, MAX_ORDER + 1))))
_ALPHA = (1 - _KAPPA) * _GAMMA
_ERROR_CONST = _KAPPA * _GAMMA + 1 / np.arange(1, MAX_ORDER + 2)


def _compute_R(factor):
    """scipy's compute_R for the largest order; its leading (k+1)×(k+1) block is compute_R(k, ·)."""
    i = jnp.arange(1, _K)[:, None]
    j = jnp.arange(1, _K)[None, :]
    M = jnp.zeros((_K, _K)).at[1:, 1:].set((i - 1 - factor * j) / i).at[0].set(1.0)
    return jnp.cumprod(M, axis=0)


def _change_D(D, order, factor):
    """scipy's change_D: re-express the differences D[:order+1] for the step size h·factor."""
    m = jnp.arange(_K) <= order
    block = m[:, None] & m[None, :]
    R = jnp.where(block, _compute_R(factor), 0.0)
    U = jnp.where(block, _compute_R(1.0), 0.0)
    RU = jnp.where(block, R @ U, jnp.eye(_K))
    return D.at[:_K].set(RU.T @ D[:_K])


def _newton(f, y_predict, c, psi, solve, scale, tol, maxiter, krylov=False, krylov_rtol=1e-3,
            krylov_m=30, recycle=False, forcing=0.0):
    """scipy's solve_bdf_system: Newton's method on the BDF equation, each correction from
    (I − c f') dy = c f(y) − ψ − d.

    Plain (scipy): f' is the old Jacobian, dy = `solve`(rhs). With `krylov`: f' is the exact Jacobian,
    applied by forward-mode differentiation, and the system is solved by Krylov iterations
    preconditioned with `solve`: at the current iterate with GMRES, or with `recycle` at the predicted
    point for all iterations of the attempt, with GCR keeping its directions from one iteration to the
    next (the operator is the same, so a later correction costs few products). Returns (converged,
    f evaluations, Jacobian-vector products, y, d)."""
    n = y_predict.shape[0]
    cap = 2 * krylov_m
    if recycle and krylov is not False:
        f_predict, jvp_predict = jax.linearize(f, y_predict)
        pairs0 = (jnp.zeros((cap, n)), jnp.zeros((cap, n)), jnp.asarray(0, jnp.int64))
    else:
        pairs0 = ()

    def cond(s):
        k, _, _, _, _, done, _, _ = s
        return (~done) & (k < maxiter)

    def body(s):
        k, y, d, dy_norm_old, _, _, n_mv, pairs = s
        if krylov is False:
            fy = f(y)
            dy, mv, ok = solve(c * fy - psi - d), jnp.asarray(0, jnp.int64), jnp.asarray(True)
        elif recycle:
            fy = lax.cond(k == 0, lambda: f_predict, lambda: jax.linearize(f, y)[0])
            rhs = c * fy - psi - d

            def newton_krylov():
                dy, mv, ok, *new = gcr(lambda v: solve(v - c * jvp_predict(v)), solve(rhs), *pairs,
                                        krylov_rtol, krylov_m, lambda r: rms(r / scale) <= forcing * tol)
                return dy, mv, ok, tuple(new)

            dy, mv, ok, pairs = lax.cond(krylov, newton_krylov, lambda: (
                solve(rhs), jnp.asarray(0, jnp.int64), jnp.asarray(True), pairs))
        else:
            # One linearisation serves both modes (and compiles the gradient once).
            fy, jvp = jax.linearize(f, y)
            rhs = c * fy - psi - d

            def newton_krylov():
                # Left-preconditioned, so that the residual GMRES controls is close to dy's error.
                return gmres(lambda v: solve(v - c * jvp(v)), solve(rhs), lambda v: v, krylov_rtol,
                             krylov_m)

            dy, mv, ok = lax.cond(krylov, newton_krylov,
                                  lambda: (solve(rhs), jnp.asarray(0, jnp.int64), jnp.asarray(True)))
        dy_norm = rms(dy / scale)
        has_rate = k > 0
        rate = dy_norm / jnp.where(has_rate, dy_norm_old, 1.0)
        bad = ~jnp.all(jnp.isfinite(fy)) | ~jnp.all(jnp.isfinite(dy)) | ~ok | (has_rate & (
            (rate >= 1) | (rate ** (maxiter - k) / (1 - rate) * dy_norm > tol)))
        y = jnp.where(bad, y, y + dy)
        d = jnp.where(bad, d, d + dy)
        conv = ~bad & ((dy_norm == 0) | (has_rate & (rate / (1 - rate) * dy_norm < tol)))
        return k + 1, y, d, dy_norm, conv, bad | conv, n_mv + mv, pairs

    i0 = jnp.asarray(0, jnp.int64)
    init = (i0, y_predict, jnp.zeros_like(y_predict), jnp.asarray(jnp.inf), jnp.asarray(False),
            jnp.asarray(False), i0, pairs0)
    k, y, d, _, conv, _, n_mv, _ = lax.while_loop(cond, body, init)
    return conv, k, n_mv, y, d


def initial_step(f, y0, f0, t_span, rtol, atol):
    """scipy's select_initial_step for order 1 (one evaluation of f)."""
    scale = atol + jnp.abs(y0) * rtol
    d0, d1 = rms(y0 / scale), rms(f0 / scale)
    small = (d0 < 1e-5) | (d1 < 1e-5)
    h0 = jnp.where(small, 1e-6, 0.01 * d0 / jnp.where(small, 1.0, d1))
    h0 = jnp.minimum(h0, t_span)
    f1 = f(y0 + h0 * f0)
    d2 = rms((f1 - f0) / scale) / h0
    tiny = (d1 <= 1e-15) & (d2 <= 1e-15)
    h1 = jnp.where(tiny, jnp.maximum(1e-6, h0 * 1e-3),
                   (0.01 / jnp.where(tiny, 1.0, jnp.maximum(d1, d2))) ** 0.5)
    return jnp.minimum(jnp.minimum(100 * h0, h1), t_span)


def _lu(H, c):
    """LU factors of the iteration matrix I − cJ = I + cH."""
    return jax.scipy.linalg.lu_factor(jnp.eye(H.shape[0], dtype=H.dtype) + c * H)


class _State(eqx.Module):
    t: jax.Array
    D: jax.Array            # backward differences, (MAX_ORDER + 3, n)
    order: jax.Array
    h_abs: jax.Array
    n_equal: jax.Array      # accepted steps since the last change of h or order
    H: jax.Array            # the Hessian in use (J = −H)
    fact: tuple             # LU factorisation of I + c_fact·H
    c_fact: jax.Array
    jac_current: jax.Array  # the Hessian was computed during the current step
    need_jac: jax.Array     # recompute it before the next attempt
    krylov: jax.Array       # Newton–Krylov mode (the factorisation only preconditions)
    mv_since: jax.Array     # Jacobian-vector products since the last Hessian
    n_steps: jax.Array
    n_accepted: jax.Array
    n_grad: jax.Array
    n_hess: jax.Array
    n_fact: jax.Array
    n_mv: jax.Array
    n_newton_fail: jax.Array  # attempts whose Newton iteration did not converge
    n_error_fail: jax.Array   # attempts rejected by the error test
    save_index: jax.Array
    ts_out: jax.Array
    ys_out: jax.Array
    event: RESULTS  # the stop test's result after the last accepted step (`successful`: none)
    failed: jax.Array
    stride: jax.Array         # save_steps: accepted steps between saves
    started: jax.Array        # a step has been attempted (the first Hessian is taken at y0 itself)


# The part of the state that decides the next steps; `BDF.carry` writes it into an unfinished
# Trajectory and `BDF.restore` starts a new call from it, which then takes the same steps.
_CARRY = ("D", "order", "h_abs", "n_equal", "H", "c_fact", "jac_current", "need_jac", "krylov", "mv_since",
          "started")


def blank_state(n: int, n_slots: int) -> _State:
    """A `_State` of zeros for a problem with n parameters and n_slots output slots (the `state_in` of
    a fresh run, which `solve` replaces when `resume` is False)."""
    # device_put of NumPy zeros: no kernel compiled per new shape, as jnp.zeros would
    f = lambda *shape: jax.device_put(np.zeros(shape))  # noqa: E731
    i, b = (lambda: jax.device_put(np.int64(0))), jax.device_put(np.bool_(False))
    pivots = jax.device_put(np.zeros((n,), np.int32))
    return _State(t=f(), D=f(MAX_ORDER + 3, n), order=i(), h_abs=f(), n_equal=i(), H=f(n, n),
                  fact=(f(n, n), pivots), c_fact=f(), jac_current=b, need_jac=b,
                  krylov=b, mv_since=i(), n_steps=i(), n_accepted=i(), n_grad=i(), n_hess=i(), n_fact=i(),
                  n_mv=i(), n_newton_fail=i(), n_error_fail=i(), save_index=i(), ts_out=f(n_slots),
                  ys_out=f(n_slots, n), event=RESULTS.successful, failed=b, stride=i(), started=b)


class BDF(AbstractSegmentedSolver):
    """Variable-order BDF/NDF (scipy's algorithm) in one compiled loop, with Newton–Krylov corrections
    that let one Hessian serve many steps.

    **Arguments:**

    - `krylov`: when Newton fails with an old Hessian, retry with Newton–Krylov before computing a
      new Hessian, and stay in that mode (False: scipy's algorithm exactly).
    - `krylov_rtol`, `krylov_m`: GMRES's relative tolerance (on the preconditioned residual, i.e.
      about the relative error of the Newton correction) and its iteration limit.
    - `refresh_after`: in Newton–Krylov mode, compute a new Hessian once the Jacobian-vector products
      since the last one exceed `refresh_after` × n_params (about the cost of a Hessian).
    - `newton_maxiter`: Newton iterations per attempt (scipy: 4).
    - `recycle`: in Newton–Krylov mode, linearise once per attempt (at the predicted point) and solve
      every Newton correction of the attempt with GCR, which keeps its directions from one correction
      to the next (`gcr.gcr`); False: a new linearisation and a fresh GMRES at every iterate.
    - `forcing`: with `recycle`, GCR also stops once the scaled RMS of its residual is ≤ `forcing` ×
      the Newton tolerance, once a direction is in use (an inexact Newton forcing term, Eisenstat &
      Walker 1996): a correction needs no more accuracy than the iteration's own convergence test asks
      of the corrector, and that test still decides acceptance. 0: `krylov_rtol` alone.
    - `hessian`: how the Hessian is computed: "auto", "vmap" or "map" (see `stiff.hessian_fn`).
    """

    krylov: bool = eqx.field(static=True, default=True)
    krylov_rtol: float = eqx.field(static=True, default=1e-7)
    krylov_m: int = eqx.field(static=True, default=30)
    refresh_after: float = eqx.field(static=True, default=2.0)
    newton_maxiter: int = eqx.field(static=True, default=NEWTON_MAXITER)
    recycle: bool = eqx.field(static=True, default=True)
    forcing: float = eqx.field(static=True, default=0.1)
    hessian: str = eqx.field(static=True, default="auto")

    def __check_init__(self):
        if self.hessian not in ("auto", "vmap", "map"):
            raise ValueError(f"hessian must be 'auto', 'vmap' or 'map', got {self.hessian!r}.")
        for name, minimum in (("newton_maxiter", 1), ("krylov_m", 1)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= minimum):
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if not (0 < self.krylov_rtol < 1) or not self.refresh_after > 0:
            raise ValueError("krylov_rtol must lie in (0, 1) and refresh_after be positive.")
        if not isinstance(self.recycle, bool):
            raise ValueError(f"recycle must be True or False, got {self.recycle!r}.")
        if not (isinstance(self.forcing, (int, float)) and 0 <= self.forcing < 1):
            raise ValueError(f"forcing must be a number in [0, 1) (0 turns it off), got {self.forcing!r}.")

    def blank_state(self, n: int, n_slots: int) -> _State:
        """A state of zeros for n parameters and n_slots output slots (a fresh run's `state_in`)."""
        return blank_state(n, n_slots)

    def carry(self, state: _State) -> dict:
        """What a later call needs to continue `state` step for step (`restore`): the differences,
        order and step size, the Hessian with its factorisation, and the Newton–Krylov bookkeeping
        (about 2n² numbers: the Hessian and its LU factors)."""
        out = {name: np.asarray(getattr(state, name)) for name in _CARRY}
        out["fact_lu"], out["fact_piv"] = (np.asarray(a) for a in state.fact)
        return out

    def restore(self, carry: dict, n_slots: int, t0, y0) -> _State:
        """A state at (t0, y0) with the solver memory of `carry` (from `carry`), fresh counters and
        output buffers; `solve` with it and `resume` True takes the steps the interrupted run would
        have taken."""
        y0 = jnp.asarray(y0, dtype=jnp.float64)
        n = y0.shape[0]
        blank = blank_state(n, n_slots)
        missing = [k for k in (*_CARRY, "fact_lu", "fact_piv") if k not in carry]
        if missing or np.shape(carry["H"]) != (n, n) or np.shape(carry["D"]) != blank.D.shape:
            raise ValueError(f"this BDF solver state does not fit a problem with {n} parameters "
                             f"(missing {missing} or wrong shapes).")
        ts_out, ys_out = outputs(jnp.zeros(n_slots - 2), jnp.asarray(t0, jnp.float64), y0)
        values = [jnp.asarray(carry[k], dtype=getattr(blank, k).dtype) for k in _CARRY]
        fact = (jnp.asarray(carry["fact_lu"], jnp.float64), jnp.asarray(carry["fact_piv"], jnp.int32))
        return eqx.tree_at(lambda b: [b.t, b.ts_out, b.ys_out, b.stride, b.fact,
                                      *(getattr(b, k) for k in _CARRY)],
                           blank, [jnp.asarray(t0, jnp.float64), ts_out, ys_out, jnp.asarray(1, jnp.int64),
                                   fact, *values])

    def solve(self, problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol, max_norm, *,
              max_steps, progress, state_in=None, resume=False, step_limit=None, save_steps=False,
              return_state=False):
        """Integrate dθ/dt = −∇L(θ); returns `flow._solve`'s (ts, ys, result, event mask, stats).

        `pcoeff` and `icoeff` are unused: BDF has its own step-size rules; `progress` too (`flow`
        shows progress between segments). A run can go in segments: with `return_state` the solver
        state is returned as well, and a call with that `state_in` and `resume` True continues it
        exactly; `step_limit` ends a segment after that many steps in all. `save_steps`: save every
        stride-th accepted step (`stiff.save_step`; `ts` only sets the number of slots) instead of
        interpolating at the times `ts`."""
        del pcoeff, icoeff, progress
        maxiter = self.newton_maxiter
        f = lambda y: -problem.grad_fn(y)  # noqa: E731
        hess = lambda y: hessian_fn(problem, y, self.hessian)  # noqa: E731
        gamma, alpha, error_const = (jnp.asarray(a) for a in (_GAMMA, _ALPHA, _ERROR_CONST))
        newton_tol = jnp.maximum(10 * jnp.finfo(jnp.float64).eps / rtol, jnp.minimum(0.03, rtol ** 0.5))
        rows = jnp.arange(_K)
        i64 = lambda v: jnp.asarray(v, jnp.int64)  # noqa: E731

        y0 = jnp.asarray(theta0, dtype=jnp.float64)
        t0 = jnp.asarray(t0, dtype=jnp.float64)
        t1 = jnp.asarray(t1, dtype=jnp.float64)
        f0 = f(y0)
        n_grad = i64(1)
        if dt0 is None:
            h_abs = initial_step(f, y0, f0, t1 - t0, rtol, atol)
            n_grad = n_grad + 1
        else:
            h_abs = jnp.minimum(jnp.asarray(dt0, dtype=jnp.float64), t1 - t0)
        n = y0.shape[0]
        D = jnp.zeros((MAX_ORDER + 3, n)).at[0].set(y0).at[1].set(f0 * h_abs)
        # The first Hessian and factorisation are made by the loop's own code (need_jac at the first
        # attempt, evaluated at y0 as scipy does): one traced copy of each, not two.
        H = jnp.zeros((n, n))
        fact = (jnp.zeros((n, n)), jnp.zeros((n,), jnp.int32))
        ts_out, ys_out = outputs(ts, t0, y0)
        F = jnp.asarray(False)
        state = _State(t=t0, D=D, order=i64(1), h_abs=h_abs, n_equal=i64(0), H=H, fact=fact,
                       c_fact=jnp.asarray(jnp.nan), jac_current=F, need_jac=jnp.asarray(True), krylov=F,
                       mv_since=i64(0), n_steps=i64(0),
                       n_accepted=i64(0), n_grad=n_grad, n_hess=i64(0), n_fact=i64(0), n_mv=i64(0),
                       n_newton_fail=i64(0), n_error_fail=i64(0), save_index=i64(0), ts_out=ts_out,
                       ys_out=ys_out, event=start_event(problem, y0, f0), failed=F, stride=i64(1),
                       started=F)
        if state_in is not None:
            state = jax.tree_util.tree_map(lambda a, b: jnp.where(resume, a, b), state_in, state)
        limit = [v for v in (max_steps, step_limit) if v is not None]
        limit = limit[0] if len(limit) == 1 else jnp.minimum(*limit)

        def cond(s):
            return (s.t < t1) & (s.n_steps < limit) & (s.event == RESULTS.successful) & ~s.failed

        def body(s):
            order, D = s.order, s.D
            min_step = 10 * jnp.abs(jnp.nextafter(s.t, jnp.inf) - s.t)
            too_small = ~(s.h_abs >= min_step)  # a NaN step size fails too
            t_new = s.t + s.h_abs
            over = t_new > t1
            t_new = jnp.where(over, t1, t_new)
            D = jnp.where(over, _change_D(D, order, jnp.where(over, (t1 - s.t) / s.h_abs, 1.0)), D)
            n_equal = jnp.where(over, 0, s.n_equal)
            h = t_new - s.t

            upto = (rows <= order)[:, None]
            y_predict = jnp.sum(jnp.where(upto, D[:_K], 0.0), axis=0)
            scale = atol + rtol * jnp.abs(y_predict)
            w = jnp.where((rows >= 1) & (rows <= order), gamma, 0.0)
            psi = (w @ D[:_K]) / alpha[order]
            c = h / alpha[order]

            # A new Hessian when asked for; a new factorisation when H or c changed.
            first = ~s.started
            H = lax.cond(s.need_jac, hess, lambda y: s.H, jnp.where(first, D[0], y_predict))
            refactor = s.need_jac | (c != s.c_fact)
            fact = lax.cond(refactor, lambda: _lu(H, c), lambda: s.fact)
            jac_current = s.jac_current | (s.need_jac & ~first)  # scipy: y0's Hessian is not "current"
            krylov = s.krylov & ~s.need_jac
            mv_since = jnp.where(s.need_jac, 0, s.mv_since)
            solve = lambda b: jax.scipy.linalg.lu_solve(fact, b)  # noqa: E731
            conv, n_iter, n_mv, y_new, d = _newton(
                f, y_predict, c, psi, solve, scale, newton_tol, maxiter,
                krylov if self.krylov else False, self.krylov_rtol, self.krylov_m, self.recycle, self.forcing)
            n_grad = s.n_grad + n_iter
            mv_since = mv_since + n_mv

            safety = 0.9 * (2 * maxiter + 1) / (2 * maxiter + n_iter)
            scale = atol + rtol * jnp.abs(y_new)
            error_norm = rms(error_const[order] * d / scale)
            accept = conv & (error_norm <= 1) & ~too_small

            # Both outcomes are computed without branching (they are cheap) and end in at most one
            # change of the differences: one traced copy of _change_D and of the dense output.
            # Rejected: Newton failed with an old Hessian → retry the same step with Newton–Krylov,
            # or, if that failed too (or krylov=False), with a new Hessian; Newton failed with a
            # current Hessian, or the error test failed → shrink h (scipy's rules).
            stale = ~conv & ~jac_current
            retry_krylov = stale & ~krylov & self.krylov
            retry_jac = stale & ~retry_krylov
            shrink = jnp.where(conv, jnp.maximum(MIN_FACTOR, safety * error_norm ** (-1 / (order + 1))), 0.5)
            # Accepted: D^{j+1} y_n = D^j y_n − D^j y_{n−1} (the update of scipy's _step_impl), and
            # after order+1 steps of equal size a new order and step size.
            Da = D.at[order + 2].set(d - D[order + 1]).at[order + 1].set(d)
            keep = (jnp.arange(MAX_ORDER + 3) <= order + 1)[:, None]
            csum = jnp.flip(jnp.cumsum(jnp.flip(jnp.where(keep, Da, 0.0), 0), 0), 0)
            Da = jnp.where(jnp.arange(MAX_ORDER + 3)[:, None] <= order, csum, Da)
            ne = n_equal + 1
            order_due = ne >= order + 1
            em = jnp.where(order > 1, rms(error_const[order - 1] * Da[order] / scale), jnp.inf)
            ep = jnp.where(order < MAX_ORDER,
                           rms(error_const[jnp.minimum(order + 1, MAX_ORDER)] * Da[order + 2] / scale),
                           jnp.inf)
            factors = jnp.stack([em, error_norm, ep]) ** (-1.0 / (order + jnp.arange(3)))
            grow = jnp.minimum(MAX_FACTOR, safety * jnp.max(factors))

            new_order = jnp.where(accept & order_due, order + jnp.argmax(factors) - 1, order)
            factor = jnp.where(accept, jnp.where(order_due, grow, 1.0), jnp.where(stale, 1.0, shrink))
            base = jnp.where(accept, Da, D)
            Dn = lax.cond(factor != 1.0, lambda: _change_D(base, new_order, factor), lambda: base)
            h_next = h * factor
            n_equal_next = jnp.where(accept, jnp.where(order_due, 0, ne), jnp.where(stale, n_equal, 0))

            def interp(tt):  # scipy's BdfDenseOutput
                m = jnp.arange(MAX_ORDER)
                x = (tt - (t_new - h_next * m)) / (h_next * (1 + m))
                p = jnp.where(m < new_order, jnp.cumprod(x), 0.0)
                return Dn[0] + p @ Dn[1:_K]

            if save_steps:
                index, stride, tso, yso = save_step(s.n_accepted + 1, s.stride, s.save_index, t_new,
                                                    Dn[0], s.ts_out, s.ys_out, active=accept)
            else:  # a rejected attempt saves nothing: no save time lies in (t, t]
                index, tso, yso = save_between(ts, s.save_index, s.t, jnp.where(accept, t_new, s.t),
                                               interp, s.ts_out, s.ys_out)
                stride = s.stride
            g_norm = lax.cond(accept, lambda: jnp.linalg.norm(f(Dn[0])), lambda: jnp.asarray(0.0))
            new = dict(t=jnp.where(accept, t_new, s.t), D=Dn, order=new_order, h_abs=h_next,
                       n_equal=n_equal_next, jac_current=jac_current & ~accept,
                       # Newton–Krylov has cost about as much as a new Hessian would: get one.
                       need_jac=jnp.where(accept, krylov & (mv_since >= self.refresh_after * y0.shape[0]),
                                          retry_jac),
                       krylov=jnp.where(accept, krylov, krylov | retry_krylov), mv_since=mv_since,
                       save_index=index, ts_out=tso, ys_out=yso, stride=stride,
                       event=RESULTS.where(accept, event_code(g_norm, Dn[0], gtol, max_norm), s.event),
                       n_grad=n_grad + accept)
            return _State(H=H, fact=fact, c_fact=jnp.where(refactor, c, s.c_fact), started=jnp.asarray(True),
                          n_steps=s.n_steps + 1, n_accepted=s.n_accepted + accept,
                          n_hess=s.n_hess + s.need_jac, n_fact=s.n_fact + refactor, n_mv=s.n_mv + n_mv,
                          n_newton_fail=s.n_newton_fail + ~conv,
                          n_error_fail=s.n_error_fail + (conv & ~accept), failed=too_small,
                          **new)

        s = lax.while_loop(cond, body, state)
        stats = {"num_steps": s.n_steps, "num_accepted_steps": s.n_accepted,
                 "num_rejected_steps": s.n_steps - s.n_accepted, "gradient_evaluations": s.n_grad,
                 "jacobian_evaluations": s.n_hess, "hvp_evaluations": s.n_mv, "factorizations": s.n_fact,
                 "newton_failures": s.n_newton_fail, "error_test_failures": s.n_error_fail,
                 "failed": s.failed}
        out = finish(s.ts_out, s.ys_out, s.t, s.D[0], t1, s.event, stats)
        return (out, s) if return_state else out
