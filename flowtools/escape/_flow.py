"""A gradient flow that stops on escape: θ̇ = −∇L integrated (diffrax) from inside a ball with the event
d(θ(t), c) = radius, whose root on the solver's dense interpolant is the exit time (`escape_flow`).
"""

from __future__ import annotations

import dataclasses
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .. import _aot, _checks, _deprecation
from ..dynamics.flow import SOLVERS
from ..dynamics.results import RESULTS, from_diffrax, result_name
from ..dynamics.stiff import start_event
from ..dynamics.trajectory import Trajectory, build_trajectory, first_non_finite, solution_states
from ..landscape.symmetry import output_distance
from ..problem import Problem
from ._distances import METRICS, center_theta, distances
from ._times import EscapeTime, escape_time


@dataclasses.dataclass
class EscapeRun:
    """The result of `escape_flow`: the saved `trajectory` and its `escape` (an `EscapeTime`)."""

    trajectory: Trajectory
    escape: EscapeTime


def _distance_traced(problem, metric, theta, ref):
    if metric == "parameter":
        return jnp.linalg.norm(theta - ref)
    return output_distance(problem.apply_fn(theta, problem.x), ref)


@eqx.filter_jit
def _solve_escape(problem, theta0, ref, radius, t1, ts, rtol, atol, pcoeff, icoeff, max_norm, *,
                  solver, max_steps, metric):
    term = diffrax.ODETerm(lambda t, y, args: -args.grad_fn(y))
    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff)
    # One real-valued event, so that a bisection on the solver's dense interpolant locates the exit time
    # inside the last step: positive once the distance exceeds the radius, or ‖θ‖ exceeds max_norm, or
    # θ stops being finite. Which of these happened is read off the final state afterwards.
    def cond(t, y, args, **kw):
        finite = jnp.all(jnp.isfinite(y))
        safe = jnp.where(finite, y, 0.0)
        value = jnp.maximum(_distance_traced(args, metric, safe, ref) / radius - 1.0,
                            jnp.linalg.norm(safe) / max_norm - 1.0)
        return jnp.where(finite, value, 1.0)

    # optimistix's bisection stops when the bracket is below atol + rtol·t *and* |cond| < atol, so atol
    # (on a relative distance) must exceed the change of cond across one float spacing of t.
    event = diffrax.Event(cond, root_finder=optx.Bisection(rtol=1e-13, atol=1e-7), direction=True)
    steps = ("num_steps", "num_accepted_steps", "num_rejected_steps")

    def solve(_):
        sol = diffrax.diffeqsolve(term, solver, jnp.zeros_like(t1), t1, None, theta0, args=problem,
                                  saveat=diffrax.SaveAt(t0=True, ts=ts, t1=True),
                                  stepsize_controller=controller, event=event, max_steps=max_steps,
                                  throw=False)
        counts = {k: jnp.asarray(sol.stats[k], jnp.int64) for k in steps}
        return sol.ts, sol.ys, from_diffrax(sol.result, RESULTS.escaped), counts

    def stop_at_start(_):  # sol's layout: slot 0 is t0, then the save times, the last slot the end
        n = ts.shape[0] + 2
        t_out = jnp.full((n,), jnp.inf, dtype=t1.dtype).at[0].set(0.0).at[-1].set(0.0)
        y_out = jnp.full((n, theta0.shape[0]), jnp.inf, dtype=theta0.dtype)
        y_out = y_out.at[0].set(theta0).at[-1].set(theta0)
        return t_out, y_out, RESULTS.non_finite, {k: jnp.asarray(0, jnp.int64) for k in steps}

    # As gradient_flow's solvers do (`stiff.start_event`): where L or ∇L is not finite at θ0 the run ends
    # at t0 before its first step (the quantity named afterwards), instead of rejecting every attempt
    # until max_steps.
    bad_start = start_event(problem, theta0, -problem.grad_fn(theta0)) != RESULTS.successful
    ts_out, ys, code, stats = jax.lax.cond(bad_start, stop_at_start, solve, None)
    safe = jnp.where(jnp.isfinite(ys), ys, 0.0)  # unused save slots hold inf

    def evaluate(th):
        v, g = jax.value_and_grad(problem.loss_fn)(th)
        return v, jnp.linalg.norm(g)

    loss, gnorm = jax.vmap(evaluate)(safe)
    return ts_out, ys, loss, gnorm, code, stats


_COMPILED: dict = {}
#: where each compiled escape solve came from ("loaded", "compiled", …; see `flowtools._aot.compiled`)
_COMPILED_FROM: dict = {}


@_deprecation.renamed_arguments(t_max="t1")
def escape_flow(problem: Problem, theta0, center, radius: float, *, metric: str = "function",
                t1: float = 1e12, solver: str = "tsit5", rtol: float = 1e-8, atol: float = 1e-12,
                n_save: int = 300, t_first: float = 1e-3, save_ts=None, max_steps: int = 1_000_000,
                max_norm: float = 1e6, pcoeff: float = 0.3, icoeff: float = 0.4) -> EscapeRun:
    """Gradient flow from θ0 (inside the ball) until it leaves the ball of `radius` around `center`.

    The solve (diffrax) carries the event d(θ(t), c) − radius; when it changes sign a bisection on the
    solver's dense interpolant locates the exit time t_out (to ~1e-13 relative), and the solve stops
    there with θ(t_out) as its last saved state. The escape time is t_out − t0 (the flow starts inside:
    t_in = t0). States are also saved at `save_ts` if given (increasing, positive; its length sets the
    compiled shape, so keep it fixed across calls), else at `n_save` log-spaced times in
    [t_first, t1]. Stopping at the exit keeps the solve cheap: after escape the flow usually turns
    stiff, which would cost an explicit solver many steps.

    The default solver is explicit (Tsit5): near a bottleneck saddle the Hessian is tiny, so adaptive
    explicit steps grow with t, and each step costs a few gradients instead of a Jacobian factorization.
    Pass an implicit solver name (e.g. "kvaerno5") for stiff starts.

    **Returns:** an `EscapeRun`. Its trajectory has status "t1_reached" with a message saying it stopped
    on leaving the ball, or the usual "t1_reached" (at t1, never left), "max_steps", "diverged",
    "non_finite" (at t0, before the first step, where L or ∇L is not finite at θ0; the message names
    the first non-finite quantity), "failed"; `meta["stopped_on_exit"]` records which. Its `gen_error`
    is None (not evaluated, to keep runs cheap). `stats` has the step counts, wall time and compile time.

    **Raises:** `ValueError` if θ0 does not start strictly inside the ball.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    metric = _checks.choice("metric", metric, METRICS)
    theta0 = _checks.theta_vector("theta0", theta0, problem.n_params)
    c = center_theta(center, problem.n_params)
    radius = _checks.positive("radius", radius)
    t1 = _checks.positive("t1", t1)
    t_first = _checks.positive("t_first", t_first)
    if t_first >= t1:
        raise ValueError(f"t_first={t_first} must be below t1={t1}.")
    n_save = _checks.positive_int("n_save", n_save, minimum=2)
    max_steps = _checks.positive_int("max_steps", max_steps)
    solver_key = _checks.choice("solver", solver, SOLVERS)
    d0 = float(distances(theta0, c, metric=metric, problem=problem)[0])
    # non-finite outputs at θ0: the run ends non_finite at t0. On the sphere itself the exit event is 0 at
    # t0 and its bisection has no bracket, so the start must lie strictly inside.
    if d0 >= radius and np.isfinite(d0):
        raise ValueError(f"theta0 is not strictly inside the ball ({metric} distance {d0:.4g} ≥ radius "
                         f"{radius:g}); escape_flow measures escapes from a ball the flow starts in.")
    ref = c if metric == "parameter" else np.asarray(problem.apply_fn(jnp.asarray(c), problem.x))
    if save_ts is None:
        ts = np.geomspace(t_first, t1, n_save)
    else:
        ts = _checks.finite_array("save_ts", save_ts, ndim=1)
        if ts.size < 1 or ts[0] <= 0 or np.any(np.diff(ts) <= 0) or ts[-1] > t1:
            raise ValueError("save_ts must be increasing, positive and at most t1.")
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731  arrays, so new values don't recompile
    args = (problem, jnp.asarray(theta0), jnp.asarray(ref), f(radius), f(t1), jnp.asarray(ts), f(rtol),
            f(atol), f(pcoeff), f(icoeff), f(max_norm))
    kw = dict(solver=SOLVERS[solver_key](), max_steps=max_steps, metric=metric)
    compiled, compile_time = _aot.compiled_once(_solve_escape.__wrapped__, args, kw, _COMPILED,
                                                  _COMPILED_FROM)
    t_run = time.perf_counter()
    ts_out, ys, loss, gnorm, code, stats = jax.block_until_ready(compiled(*args, **kw))
    wall = time.perf_counter() - t_run

    ts_out, ys, loss, gnorm = solution_states(ts_out, ys, loss, gnorm)
    name = result_name(code)
    t_end = float(ts_out[-1])
    y_end = ys[-1]
    # The one event stands for leaving the ball, ‖θ‖ > max_norm or a non-finite θ: which one is read off
    # the final state (a non-finite one is named by `build_trajectory`, before divergence and failure).
    finite = first_non_finite(ys, loss, gnorm) is None
    if name == "escaped" and not finite:
        name = "non_finite"
    elif name == "escaped" and np.linalg.norm(y_end) >= max_norm * (1 - 1e-9):
        name = "diverged"
    note = ""
    if name == "failed" and finite:
        # The exit was bracketed but the bisection missed its tolerance (cond changes by more than its
        # atol across one float spacing of t): accept the bracket end if it lies on the sphere.
        d_end = float(distances(y_end, c, metric=metric, problem=problem)[0])
        if abs(d_end / radius - 1) <= 1e-6:
            name, note = "escaped", f"; exit bracketed to |d/radius − 1| = {abs(d_end / radius - 1):.1e}"
    stopped = name == "escaped" and finite
    stats = dict(steps=int(stats["num_steps"]), accepted_steps=int(stats["num_accepted_steps"]),
                 rejected_steps=int(stats["num_rejected_steps"]), wall_time=wall,
                 compile_time=compile_time)
    meta = dict(solver=solver_key, rtol=rtol, atol=atol, t1=t1, max_norm=max_norm, pcoeff=pcoeff,
                icoeff=icoeff, max_steps=max_steps, loss=problem.loss_convention, metric=metric,
                radius=radius, stopped_on_exit=bool(stopped))
    traj = build_trajectory(problem, ts_out, ys, name, method="gradient_flow", kind="escape", stats=stats,
                            meta=meta, values=(loss, gnorm, None), held_out=False, t1=t1,
                            max_norm=max_norm, max_steps=max_steps, metric=metric, radius=radius, note=note)
    if stopped:
        tau = t_end - float(ts_out[0])
        esc = EscapeTime(tau, float(ts_out[0]), t_end, "escaped",
                         f"started inside, left at t={t_end:.10g} (event root)", True, tau, metric, radius,
                         "event", d0)
    else:
        esc = escape_time(traj, c, radius, metric=metric, problem=problem)
    return EscapeRun(traj, esc)
