"""Shared pieces of flowtools' own stiff gradient-flow integrators (`bdf.py`, `rosenbrock.py`).

Both integrate dθ/dt = f(θ) = −∇L(θ), whose Jacobian −H is symmetric, and replace the LU factorisation of
a stiff solver's iteration matrix by one symmetric eigendecomposition H = Q Λ Qᵀ: then
(I + cH)⁻¹ b = Q ((Qᵀ b) / (1 + cλ)) costs two matrix–vector products for *every* c = h·γ, so the
step size can change at every step without refactorising, and one Hessian can serve many steps.

Both run their whole loop inside one `lax.while_loop` (no Python per step) and return what
`flow._solve` returns, with exact counts of gradient and Hessian evaluations. `one_blas_thread` is the
context `flow.gradient_flow` runs them in (their LU factors on one BLAS thread). `AbstractFlowSolver` and
`AbstractSegmentedSolver` declare what `flow._solve` and `flow._segmented_flow` call on a solver.
"""

from __future__ import annotations

import abc
import contextlib

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from threadpoolctl import ThreadpoolController

from ..problem import Problem, dense_hessian_fn
from .results import RESULTS, event_result

__all__ = ["AbstractFlowSolver", "AbstractSegmentedSolver", "FlowSolver", "hessian_fn", "eigh_sym", "rms",
           "outputs", "start_event", "one_blas_thread", "ONE_BLAS_THREAD_MAX_PARAMS"]


#: The solves run LAPACK (LU factors and triangular solves of I + cH) on one BLAS thread up to this many
#: parameters. Beside XLA's own threads a multithreaded OpenBLAS spins instead of working on a loaded
#: machine: at 201 parameters (benchmarks/bench_dynamics.py, load 6–8 on 2 cores) one LU of I + cH took
#: 10 ms of CPU with OpenBLAS's default 2 threads and 0.4 ms with one, and the whole flow 24 s of CPU
#: (47–52 s wall) against 8.4 s (24–31 s wall).
ONE_BLAS_THREAD_MAX_PARAMS = 2000

_BLAS: list = []


def one_blas_thread(n_params: int | None = None):
    """A context in which BLAS/LAPACK runs on one thread (for n_params ≤ `ONE_BLAS_THREAD_MAX_PARAMS`, or
    always with n_params None; otherwise it changes nothing). The controller is made once, after JAX has
    loaded its LAPACK. The landscape's dense eigendecompositions run in it too (`spectrum`)."""
    if n_params is not None and n_params > ONE_BLAS_THREAD_MAX_PARAMS:
        return contextlib.nullcontext()
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def hessian_fn(problem, theta, method: str = "auto"):
    """The dense Hessian ∇²L(θ), traceable: `flowtools.problem.dense_hessian_fn`, its Hessian-vector
    products computed `state_vmap_width(problem)` at a time ("auto"), all at once ("vmap") or 8 at a
    time ("map"). A Problem subclass that defines its own `hessian_fn` (an analytic Hessian) gets it
    called instead, whatever the method."""
    if method not in ("auto", "vmap", "map"):
        raise ValueError(f"unknown Hessian method {method!r}; use 'auto', 'vmap' or 'map'.")
    if getattr(type(problem), "hessian_fn", Problem.hessian_fn) is not Problem.hessian_fn:
        return problem.hessian_fn(theta)
    batch = dict(auto=None, vmap=theta.shape[0], map=8)[method]
    return dense_hessian_fn(problem, theta, batch=batch)


def eigh_sym(H):
    """(Q, λ) with H ≈ Q diag(λ) Qᵀ, of the symmetrised H."""
    lam, Q = jnp.linalg.eigh(0.5 * (H + H.T))
    return Q, lam


def rms(x):
    return jnp.sqrt(jnp.mean(x * x))


def event_code(g_norm, y, gtol, max_norm):
    """The stop tests after an accepted step, as a `RESULTS` item: `successful` (none yet),
    `converged` (‖∇L‖ ≤ gtol), `diverged` (‖θ‖ > max_norm) or `non_finite` (∇L not finite)."""
    finite = jnp.isfinite(g_norm)
    return event_result(finite & (g_norm <= gtol), finite & (jnp.linalg.norm(y) > max_norm), ~finite)


def start_event(problem, y0, f0):
    """The event at the initial state: `RESULTS.non_finite` when θ0, L(θ0) or ∇L(θ0) is not finite,
    else `RESULTS.successful` (no event).

    Without it a run that starts non-finite rejects every attempt (no step is ever accepted, so the
    check after accepted steps never runs) until max_steps."""
    finite = jnp.all(jnp.isfinite(y0)) & jnp.all(jnp.isfinite(f0)) & jnp.isfinite(problem.loss_fn(y0))
    return RESULTS.where(finite, RESULTS.successful, RESULTS.non_finite)


def save_between(ts, index, t_old, t_new, interp, ts_out, ys_out):
    """Write interp(t) for the save times ts[index:] ≤ t_new into slots index+1…; return the new index."""
    n_save = ts.shape[0]

    def cond(c):
        i, _, _ = c
        return (i < n_save) & (ts[jnp.minimum(i, n_save - 1)] <= t_new)

    def body(c):
        i, tso, yso = c
        return i + 1, tso.at[i + 1].set(ts[i]), yso.at[i + 1].set(interp(ts[i]))

    del t_old
    return lax.while_loop(cond, body, (index, ts_out, ys_out))


def outputs(ts, t0, y0):
    """Output buffers in `flow._solve`'s layout: slot 0 is t0, 1…len(ts) the save times, the last the
    final state; unused slots stay inf."""
    n_save = ts.shape[0]
    ts_out = jnp.full((n_save + 2,), jnp.inf, dtype=y0.dtype).at[0].set(t0)
    ys_out = jnp.full((n_save + 2, y0.shape[0]), jnp.inf, dtype=y0.dtype).at[0].set(y0)
    return ts_out, ys_out


def finish(ts_out, ys_out, t, y, t1, event, stats):
    """The `flow._solve` result: (ts, ys, result, event mask, stats); `result` is the event's `RESULTS`
    item, else `successful` at t1, `failed` (stats["failed"]) or `max_steps_reached`."""
    ts_out = ts_out.at[-1].set(t)
    ys_out = ys_out.at[-1].set(y)
    failed = stats.pop("failed")
    ended = RESULTS.where(failed, RESULTS.failed, RESULTS.max_steps_reached)
    ended = RESULTS.where(t >= t1, RESULTS.successful, ended)
    result = RESULTS.where(event != RESULTS.successful, event, ended)
    mask = {name: event == getattr(RESULTS, name) for name in ("converged", "diverged", "non_finite")}
    return ts_out, ys_out, result, mask, stats


class AbstractFlowSolver(eqx.Module):
    """Base of flowtools' own gradient-flow integrators: what `flow._solve` calls on them (as diffrax's
    `AbstractSolver` declares what `diffeqsolve` calls). A subclass that runs only in one call, to t1 or
    an event, implements `solve`; one that can stop and resume from its own state subclasses
    `AbstractSegmentedSolver`."""

    @abc.abstractmethod
    def solve(self, problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol, max_norm, *,
              max_steps, progress):
        """Integrate dθ/dt = −∇L(θ) from (t0, theta0); returns (ts, ys, result, event mask, stats) as
        `flow._solve` does, with `result` a `RESULTS` item."""


class AbstractSegmentedSolver(AbstractFlowSolver):
    """Base of the integrators that run in segments, each resuming from the solver state the last one
    returned: wall-time budgets, checkpoints, progress between segments and saves at accepted steps
    (`flow._segmented_flow`), and runs resumed step for step from a checkpoint (`carry`, `restore`)."""

    @abc.abstractmethod
    def blank_state(self, n: int, n_slots: int):
        """A state of zeros for n parameters and n_slots output slots (a fresh run's `state_in`)."""

    @abc.abstractmethod
    def carry(self, state) -> dict:
        """The part of `state` that a later call needs to take the same steps (`restore`), as numpy
        arrays."""

    @abc.abstractmethod
    def restore(self, carry: dict, n_slots: int, t0, y0):
        """A state at (t0, y0) with the solver memory of `carry`, fresh counters and output buffers."""

    @abc.abstractmethod
    def solve(self, problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol, max_norm, *,
              max_steps, progress, state_in=None, resume=False, step_limit=None, save_steps=False,
              return_state=False):
        """As `AbstractFlowSolver.solve`, from `state_in` (continued when `resume` is True), ending after
        `step_limit` steps in all; with `return_state` the solver state is returned as well.
        `save_steps`: save every stride-th accepted step (`save_step`) instead of interpolating at `ts`."""


#: the earlier name of `AbstractFlowSolver`
FlowSolver = AbstractFlowSolver


def save_step(n_accepted, stride, index, t, y, ts_out, ys_out, active=True):
    """Save the state after accepted step `n_accepted` when it is a multiple of `stride`, into slot
    n_accepted / stride of the buffers (slots 1…m, m = len − 2, even). When the buffer is full, every
    second saved state is dropped and the stride doubles: the saves are every stride-th accepted step,
    so they follow the step sizes (dense where the solution changes fast), span the whole run and never
    exceed m. Nothing happens when `active` is False (a rejected step). Returns (index, stride, ts_out,
    ys_out)."""
    m = ts_out.shape[0] - 2
    due = active & (n_accepted % stride == 0)
    full = due & (n_accepted // stride > m)
    slots = jnp.arange(ts_out.shape[0])
    half = (slots >= 1) & (slots <= m // 2)
    src = jnp.where(half, 2 * slots, slots)
    cleared = (slots > m // 2) & (slots <= m)

    def compact(buffers):
        tso, yso = buffers
        tso = jnp.where(cleared, jnp.inf, tso[src])
        yso = jnp.where(cleared[:, None], jnp.inf, yso[src])
        return tso, yso

    ts_out, ys_out = lax.cond(full, compact, lambda b: b, (ts_out, ys_out))
    stride = jnp.where(full, 2 * stride, stride)
    due = active & (n_accepted % stride == 0)
    slot = jnp.where(due, n_accepted // stride, ts_out.shape[0] - 1)  # the last slot is overwritten later
    ts_out = jnp.where(due, ts_out.at[slot].set(t), ts_out)
    ys_out = jnp.where(due, ys_out.at[slot].set(y), ys_out)
    return jnp.where(due, slot, index), stride, ts_out, ys_out
