"""Gradient flow dθ/dt = −∇L(θ), integrated by a stiff solver.

Near critical points the Hessian's eigenvalues spread over many decades, and an explicit method would
be held to steps of about 2/λ_max for the whole horizon, so the solvers are implicit. The default is
"bdf" (`dynamics/bdf.py`): scipy's variable-order BDF/NDF compiled into one `lax.while_loop`, with
Newton–Krylov corrections that let one Hessian serve many steps. It replaced diffrax's Kvaerno5
(ESDIRK, still available as "kvaerno5", and any diffrax solver can be passed), because Kvaerno5
linearises and LU-factorises at every step: to ‖∇L‖ ≤ 1e-10 on a 61-parameter teacher–student net it
took 10⁴ steps and about 70 s, where "bdf" takes ~1300 steps and about 1 s and scipy's LSODA ~3 s
(see benchmarks/bench_dynamics.py for the measured ratios against scipy at 4, 61 and 201 parameters).
"ros34pw2" (`dynamics/rosenbrock.py`) is a Rosenbrock-W method with a reused, eigendecomposed
Hessian: fast on small problems, but third order, so it needs many steps at tight tolerances.

Runs stop at t1, when ‖∇L‖ ≤ gtol (checked after each accepted step), when ‖θ‖ > max_norm (diverged)
or when ∇L stops being finite, and say which. flowtools' own solvers ("bdf", "ros34pw2") also count
their gradient, Hessian and Hessian-vector-product evaluations exactly (`Trajectory.stats`); their
step counts include rejected attempts, as diffrax's do. `pcoeff`/`icoeff` configure diffrax's PI
controller and "ros34pw2"'s; BDF has its own step-size rules.
"""

from __future__ import annotations

import dataclasses
import math
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _aot, _checks
from ..problem import Problem
from .bdf import BDF
from .driver import ChunkedDriver
from .floor import FLOOR_FACTOR, gradient_floor, kink_test, sampled_minimum_test
from .rkc import RKC
from .rosenbrock import RosenbrockW
from .save_times import log_time_grid, save_grid
from .tolerances import resolve_tolerances
from . import stiff
from .stiff import AbstractFlowSolver, AbstractSegmentedSolver, one_blas_thread
from .progress import progress_bar, wanted
from .results import RESULTS, event_result, from_diffrax
from .trajectory import Status, Trajectory, build_trajectory, solution_states

__all__ = ["gradient_flow", "SOLVERS", "log_time_grid"]

SOLVERS = {
    "kvaerno3": diffrax.Kvaerno3,
    "kvaerno4": diffrax.Kvaerno4,
    "kvaerno5": diffrax.Kvaerno5,
    "kencarp3": diffrax.KenCarp3,
    "kencarp4": diffrax.KenCarp4,
    "kencarp5": diffrax.KenCarp5,
    "implicit_euler": diffrax.ImplicitEuler,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
    "bosh3": diffrax.Bosh3,
    "heun": diffrax.Heun,
    "bdf": BDF,
    "ros34pw2": RosenbrockW,
    "rkc": RKC,
}

#: solver="auto" uses "rkc" (no Hessian, memory O(n)) above this many parameters and "bdf" up to it
#: (measured on digits nets to t = 200 at rtol = 1e-8: BDF is ahead at 85 parameters, RKC 1.6–4× ahead
#: from 160 to 610; BDF keeps the edge on long runs to convergence, where its steps reach 10⁶).
AUTO_RKC_MIN_PARAMS = 1000

def _vector_field(t, theta, problem):
    return -problem.grad_fn(theta)


def _segmented(solver) -> bool:
    """Whether the solver can run in segments (resume from its own state): wall-time budgets,
    checkpoints, progress between segments, and saves at accepted steps."""
    return isinstance(solver, AbstractSegmentedSolver)


@eqx.filter_jit
def _solve(problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol, max_norm, state_in=None,
           resume=None, step_limit=None, *, solver, max_steps, progress, save_steps=False,
           return_state=False):
    if _segmented(solver):
        return solver.solve(problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol,
                            max_norm, max_steps=max_steps, progress=progress, state_in=state_in,
                            resume=resume, step_limit=step_limit, save_steps=save_steps,
                            return_state=return_state)
    if isinstance(solver, AbstractFlowSolver):
        return solver.solve(problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol,
                            max_norm, max_steps=max_steps, progress=progress)
    term = diffrax.ODETerm(_vector_field)
    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff)

    def grad_norm(t, y, args, **kw):
        return jnp.linalg.norm(args.grad_fn(y))

    event = diffrax.Event({
        "converged": lambda t, y, args, **kw: grad_norm(t, y, args) <= gtol,
        "diverged": lambda t, y, args, **kw: jnp.linalg.norm(y) > max_norm,
        "non_finite": lambda t, y, args, **kw: ~jnp.isfinite(grad_norm(t, y, args) + jnp.sum(y)),
    })
    meter = diffrax.TqdmProgressMeter() if progress else diffrax.NoProgressMeter()
    sol = diffrax.diffeqsolve(
        term, solver, t0, t1, dt0, theta0, args=problem,
        saveat=diffrax.SaveAt(t0=True, ts=ts, t1=True), stepsize_controller=controller,
        event=event, max_steps=max_steps, throw=False, progress_meter=meter,
    )
    mask = sol.event_mask
    result = from_diffrax(sol.result, event_result(mask["converged"], mask["diverged"], mask["non_finite"]))
    return sol.ts, sol.ys, result, mask, sol.stats


_COMPILED: dict = {}


def _compiled(args, kw):
    """The compiled solve for these argument shapes and static settings, and its compile time (0 if
    this process already had it). Compiling ahead of time keeps compile time out of the wall time;
    a later process loads the executable from disk (`flowtools._aot`) without tracing the solver."""
    return _aot.compiled_once(_solve.__wrapped__, args, kw, _COMPILED, _COMPILED_FROM)


#: where each compiled solve came from ("loaded", "compiled", …; see `flowtools._aot.compiled`)
_COMPILED_FROM: dict = {}


def prepare_flow(problem: Problem, theta0, t1=None, *, gtol=None, solver="auto", rtol="auto",
                 atol="auto", t0=0.0, dt0=None, save_ts=None, n_save=200, t_first=None,
                 max_steps=200_000, max_norm=1e6, pcoeff=0.3, icoeff=0.4, progress=False, grid_t0=None,
                 carry=None, pad_slots=None):
    """Validate `gradient_flow`'s arguments; return the jitted solve's (args, static kwargs, settings).

    `grid_t0`: where the default log grid starts (a resumed run continues its original grid).
    `carry`: (solver name, `AbstractSegmentedSolver.carry` dict) of the run being resumed; when the solver
    is the same, it `restore`s that state and the solve continues it instead of starting afresh."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    theta0 = jax.device_put(_checks.theta_vector("theta0", theta0, problem.n_params))
    t0 = _checks.nonnegative("t0", t0) if t0 != 0 else 0.0
    if t1 is None:
        t1 = math.inf
    t1 = _checks.positive("t1", t1, allow_inf=True)
    if t1 <= t0:
        raise ValueError(f"t1={t1} must be greater than t0={t0}.")
    if gtol is not None:
        gtol = _checks.positive("gtol", gtol)
    if math.isinf(t1) and gtol is None:
        raise ValueError("t1 is infinite (or None): give gtol so the run knows when to stop.")
    rtol, atol, tolerance_rule = resolve_tolerances(problem.n_params, t1, gtol, rtol, atol)
    rtol = _checks.positive("rtol", rtol)
    atol = _checks.positive("atol", atol)
    max_steps = _checks.positive_int("max_steps", max_steps)
    max_norm = _checks.positive("max_norm", max_norm, allow_inf=True)
    pcoeff, icoeff = _checks.nonnegative("pcoeff", pcoeff), _checks.positive("icoeff", icoeff)
    if isinstance(solver, str):
        if solver == "auto":
            solver = "rkc" if problem.n_params > AUTO_RKC_MIN_PARAMS else "bdf"
        key = _checks.choice("solver", solver, SOLVERS)
        solver_obj = SOLVERS[key]()
    elif isinstance(solver, (diffrax.AbstractSolver, AbstractFlowSolver)):
        solver_obj, key = solver, type(solver).__name__
    else:
        raise TypeError(f"solver must be a name in {sorted(SOLVERS)}, a diffrax solver or a flowtools "
                        f"AbstractFlowSolver subclass, got {solver!r}.")
    if dt0 is None:
        dt0 = None if math.isfinite(t1) else 1e-2
    else:
        dt0 = _checks.positive("dt0", dt0)

    n_save = _checks.positive_int("n_save", n_save, minimum=2)
    save_steps = save_ts is None and math.isinf(t1) and _segmented(solver_obj)
    ts = save_grid(t0, t1, save_ts=save_ts, n_save=n_save, t_first=t_first, grid_t0=grid_t0,
                   save_steps=save_steps)
    if pad_slots is not None:
        pad_slots = _checks.positive_int("pad_slots", pad_slots)
    if pad_slots is not None and _segmented(solver_obj) and not save_steps:
        ts = np.concatenate([ts, np.full(max(pad_slots - ts.size, 0), np.inf)])

    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731  arrays, so values don't recompile
    args = (problem, theta0, f(t0), f(t1), None if dt0 is None else f(dt0), jnp.asarray(ts), f(rtol),
            f(atol), f(pcoeff), f(icoeff), f(gtol if gtol is not None else -1.0), f(max_norm))
    if _segmented(solver_obj):
        # The step budget is a traced step_limit: runs with other budgets share one compilation.
        n_slots = ts.size + 2
        restored = carry is not None and carry[1] is not None and carry[0] == key
        state = (solver_obj.restore(carry[1], n_slots, t0, theta0) if restored
                 else solver_obj.blank_state(problem.n_params, n_slots))
        args = args + (state, jnp.asarray(restored), jnp.asarray(max_steps, jnp.int64))
        kw = dict(solver=solver_obj, max_steps=None, progress=False, save_steps=save_steps)
    else:
        kw = dict(solver=solver_obj, max_steps=max_steps, progress=wanted(progress) and math.isfinite(t1))
    settings = dict(solver=key, rtol=rtol, atol=atol, tolerance_rule=tolerance_rule, gtol=gtol, t1=t1,
                    max_norm=max_norm, pcoeff=pcoeff, icoeff=icoeff, max_steps=max_steps,
                    t0=t0 if grid_t0 is None else grid_t0, n_save=n_save, t_first=t_first,
                    save_ts=None if save_ts is None else [float(v) for v in np.ravel(save_ts)],
                    save_grid="steps" if save_steps else ("log" if save_ts is None else "given"))
    return args, kw, settings


def gradient_flow(problem: Problem, theta0=None, t1: float | None = None, *, gtol: float | None = None,
                  solver: str | diffrax.AbstractSolver | AbstractFlowSolver = "auto",
                  rtol: float | str = "auto", atol: float | str = "auto", t0: float = 0.0, dt0: float | None = None, save_ts=None,
                  n_save: int = 200, t_first: float | None = None, max_steps: int = 200_000,
                  max_norm: float = 1e6, pcoeff: float = 0.3, icoeff: float = 0.4,
                  progress: bool = False, time_limit: float | None = None, checkpoint=None,
                  checkpoint_every: float = 60.0, resume=None, pad_slots: int | None = None) -> Trajectory:
    """Integrate the gradient flow dθ/dt = −∇L(θ) from θ(t0) = theta0.

    **Arguments:**

    - `problem`: the `Problem`; its loss convention sets the time scale (t = kη matches GD).
    - `theta0`: initial flat parameters (None when resuming).
    - `t1`: final time; None or inf runs until ‖∇L‖ ≤ gtol (then `gtol` is required).
    - `gtol`: stop when ‖∇L‖₂ ≤ gtol (checked after each accepted step).
    - `solver`: a name from `SOLVERS`, a diffrax solver instance, or a `BDF` / `RosenbrockW` instance
      with non-default settings. Default "auto": "bdf" up to `AUTO_RKC_MIN_PARAMS` = 1000
      parameters, "rkc" (Runge–Kutta–Chebyshev, no Hessian) above.
    - `rtol`, `atol`: the step-size controller's tolerances. Default "auto"
      (`tolerances.auto_tolerances`): 1e-8 and 1e-10; for a finite t1 without gtol on more than 1 000
      parameters 1e-6 and 1e-8, chosen in function space (on 64-16-10 digits to t = 2 000 the outputs are 4.4e-5 (RMS)
      from a flow at rtol 1e-10, GD at η = 0.1 1.0e-2). `meta["rtol"]` and `meta["atol"]` hold the
      values used, `meta["tolerance_rule"]` the rule (None when both were given).
    - `save_ts`: times at which to save. Default with a finite t1: `n_save` log-spaced times from
      `t_first` (default 1e-3, or t1·1e-6 if smaller) to t1. Default when t1 is None: with "bdf",
      every stride-th accepted step, the stride doubling whenever `n_save` states are held, so the
      saves follow the solver's steps (dense where the state changes fast) and end where the run ends;
      with other solvers, log-spaced times out to 1e12. t0 and the final time are always saved.
    - `max_steps`: the solver's step budget.
    - `max_norm`: declare divergence when ‖θ‖ exceeds it.
    - `pcoeff`, `icoeff`: the PI controller's coefficients for diffrax solvers and "ros34pw2" (0.3,
      0.4 reject far fewer steps on these problems than a pure I-controller); unused by "bdf".
    - `progress`: show a progress bar ("bdf" and "rkc": steps and t, updated between segments;
      diffrax solvers: diffrax's bar, finite t1 only).
    - `time_limit`: a wall-time budget in seconds ("bdf" and "rkc"): the run stops at the end of the
      first segment of steps that finishes after it, with status "time_limit" and its last state
      saved.
    - `checkpoint`, `checkpoint_every`: write the trajectory so far to this path (`Trajectory.save`,
      atomic) every `checkpoint_every` seconds of wall time, with status "running", and the finished
      trajectory at the end ("bdf" and "rkc").
    - `resume`: a `Trajectory` (or the path of a saved one) of an unfinished flow — "time_limit",
      "running" or "max_steps" — to continue from its last state, with the same arguments otherwise
      (tolerances left at "auto" take the interrupted run's);
      the result joins both parts (`Trajectory.join`). "bdf" and "rkc" keep their solver state in
      the trajectory (`Trajectory.solver_state`; "bdf": differences, order, step, Hessian and its LU
      factors; "rkc": step sizes, error memory, λ_max and its Ritz vector), so the resumed run takes
      the steps of an uninterrupted one and equals it bit for bit. Other solvers, or a trajectory
      without that state, restart at the saved point, equal to the solver's tolerance.
    - `pad_slots`: pad the save grid with never-reached slots (time inf) to this many ("bdf" and
      "rkc", finite t1 or given `save_ts`), so that a run with fewer save times uses the compiled
      solve of a run with more (`flowtools.dynamics.save_times.save_slots(traj.meta)`):
      `resolve_trajectory`'s segments run the flow's own executable. The states and steps are the same.

    **Returns:** a `Trajectory` whose status is "converged", "t1_reached", "max_steps", "diverged",
    "non_finite", "time_limit" or "failed", with the step counts and the wall and compile times in
    `stats` (for "bdf" and "ros34pw2" also `gradient_evaluations`, `jacobian_evaluations` = Hessians,
    `hvp_evaluations`, `factorizations`).
    """
    previous, grid_t0, carry = None, None, None
    if resume is not None:
        previous = resume if isinstance(resume, Trajectory) else Trajectory.load(resume)
        if previous.method != "gradient_flow":
            raise ValueError(f"resume must be a gradient_flow Trajectory, got a {previous.method} run.")
        if previous.status not in (Status.TIME_LIMIT, Status.RUNNING, Status.MAX_STEPS):
            return previous  # it ended for good: nothing to continue
        theta0, t0, grid_t0 = previous.final_theta, previous.final_time, float(previous.t[0])
        carry = (previous.meta.get("solver"), previous.solver_state)
        # tolerances left at "auto" continue with the ones the interrupted run used
        rtol = previous.meta.get("rtol", rtol) if isinstance(rtol, str) else rtol
        atol = previous.meta.get("atol", atol) if isinstance(atol, str) else atol
    elif theta0 is None:
        raise TypeError("gradient_flow needs theta0 (or resume=a Trajectory to continue).")
    if time_limit is not None:
        time_limit = _checks.positive("time_limit", time_limit)
    checkpoint_every = _checks.positive("checkpoint_every", checkpoint_every)
    args, kw, settings = prepare_flow(
        problem, theta0, t1, gtol=gtol, solver=solver, rtol=rtol, atol=atol, t0=t0, dt0=dt0,
        save_ts=save_ts, n_save=n_save, t_first=t_first, max_steps=max_steps, max_norm=max_norm,
        pcoeff=pcoeff, icoeff=icoeff, progress=progress, grid_t0=grid_t0, carry=carry, pad_slots=pad_slots)
    if not _segmented(kw["solver"]):
        if time_limit is not None or checkpoint is not None:
            raise ValueError("time_limit and checkpoint need a solver that runs in segments "
                             "(solver='bdf' or 'rkc').")
        compiled, compile_time = _compiled(args, kw)
        t_run = time.perf_counter()
        with one_blas_thread(problem.n_params):
            out = jax.block_until_ready(compiled(*args, **kw))
        wall = time.perf_counter() - t_run
        traj = _joined(previous, to_trajectory(problem, *out, settings, wall, compile_time))
    else:
        traj = _segmented_flow(problem, args, kw, settings, previous, time_limit, checkpoint,
                               checkpoint_every, progress)
    if time_limit is not None or checkpoint is not None:
        return traj  # a budgeted or checkpointed run is continued with resume=, not here
    rtol, atol = settings["rtol"], settings["atol"]  # a pinned problem keeps the tolerances used here

    def rerun(pinned, theta, t_start):
        return gradient_flow(pinned, theta, t1, gtol=gtol, solver=solver, rtol=rtol, atol=atol,
                             t0=t_start, n_save=n_save, max_steps=max_steps, max_norm=max_norm,
                             pcoeff=pcoeff, icoeff=icoeff, progress=progress)
    return slide_past_kink(problem, traj, rerun)


def slide_past_kink(problem: Problem, traj: Trajectory, rerun) -> Trajectory:
    """Continue a flow whose solver stalled at a kink of L, with the parameters that jump pinned.

    When a ReLU neuron reaches w = 0 while the rest of the network still moves, ∇L jumps across the
    kink and an implicit solver's steps collapse (status "failed" or "max_steps"). The flow itself
    goes on (a Filippov sliding motion): the pinned parameters stay at the kink as long as it is a
    minimum along them, and the others follow −∇L. So the parameters whose gradient entries jump
    (`kink_test`), when no sampled direction along them lowers L, are frozen at their values and `rerun(pinned_problem, free_state, t_end)` continues
    from there; the result is joined to the run, with the pinned names and time in `stats["pinned"]`,
    `stats["pinned_at"]`. At the end the kink must still be a minimum along every sampled direction
    (`sampled_minimum_test` on the full problem); otherwise the status is "failed" and says so.
    """
    if traj.status not in (Status.FAILED, Status.MAX_STEPS) or not np.all(np.isfinite(traj.final_theta)):
        return traj
    end = traj.final_theta
    kink = kink_test(problem, end)
    idx = kink["coordinates"]
    if not kink["kink"] or idx.size == 0 or idx.size >= problem.n_params:
        return traj
    # Sliding needs the kink to hold the pinned parameters: L must rise along them from here (a dead
    # ReLU neuron). Where it descends along them (a unit whose hyperplane crosses a data point), the
    # flow crosses the kink instead, and pinning would change the dynamics.
    if not sampled_minimum_test(problem, end, coordinates=idx)["minimum"]:
        return traj
    mask = problem.frozen_mask.copy()
    mask[np.flatnonzero(~mask)[idx]] = True
    pinned = problem.freeze(mask, problem.full_theta(end))
    keep = np.setdiff1d(np.arange(problem.n_params), idx)
    cont = rerun(pinned, end[keep], traj.final_time)
    thetas = np.repeat(end[None, :], len(cont.t), axis=0)
    thetas[:, keep] = cont.theta
    names = [problem.param_names[i] for i in idx]
    note = (f"{len(idx)} parameter(s) ({', '.join(names[:6])}{', …' if len(names) > 6 else ''}) pinned at a "
            f"kink of L from t={traj.final_time:.6g} on (∇L jumps there by {kink['jumps'][-1]:.3g}; "
            "|grad L| after that is over the other parameters)")
    status, message = cont.status, f"{cont.message}; {note}"
    if status == Status.CONVERGED:
        test = sampled_minimum_test(problem, thetas[-1])
        if not test["minimum"]:
            status = Status.FAILED
            message = (f"{cont.message}, but L descends from the end along a sampled direction (by "
                       f"{-test['worst']:.3g}): the pinned parameters would move again; {note}")
    stats = dict(cont.stats, pinned=[str(n) for n in (cont.stats.get("pinned") or [])] + names,
                 pinned_at=float(traj.final_time))
    sliding = dataclasses.replace(cont, theta=thetas, status=status, message=message, stats=stats,
                                  solver_state=None)
    return traj.join(sliding)


def _joined(previous, traj):
    return traj if previous is None else previous.join(traj)


# The first segment of a segmented run: long enough to be cheap, short enough that a wall-time budget
# or a checkpoint is honoured soon; later segments aim at _SEGMENT_S seconds each.
_FIRST_SEGMENT = 64
_SEGMENT_S = 1.0


def _segmented_flow(problem, args, kw, settings, previous, time_limit, checkpoint, checkpoint_every,
                    progress):
    """Run a segment-capable solver: in one call, or in segments between which Python checks the
    wall-time budget, writes checkpoints and updates the progress bar."""
    kw = dict(kw, return_state=True)
    compiled, compile_time = _compiled(args, kw)
    max_steps, t1 = settings["max_steps"], settings["t1"]
    in_segments = time_limit is not None or checkpoint is not None or bool(progress)
    head, state, resumed = args[:-3], args[-3], bool(args[-2])
    solver = kw["solver"]
    # The bar counts time to a finite t1, and steps (out of max_steps) otherwise.
    by_time = math.isfinite(t1)
    bar = progress_bar(total=t1 - float(args[2]) if by_time else max_steps, desc="gradient_flow",
                       enable=bool(progress))
    bar.unit, bar.unit_scale = ("" if by_time else "step"), not by_time
    driver = ChunkedDriver(time_limit=time_limit, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                           chunked=in_segments, first=_FIRST_SEGMENT, smallest=16, largest=1_000_000,
                           seconds=_SEGMENT_S)
    done_steps, interrupted = 0, None

    def running(wall):
        part = to_trajectory(problem, *out, settings, wall, compile_time, interrupted=Status.RUNNING)
        part.solver_state = solver.carry(state)
        return _joined(previous, part)

    try:
        while True:
            limit = min(max_steps, done_steps + driver.size) if in_segments else max_steps
            t_seg = time.perf_counter()
            with one_blas_thread(problem.n_params):
                out, state = jax.block_until_ready(compiled(
                    *head, state, jnp.asarray(resumed or done_steps > 0), jnp.asarray(limit, jnp.int64),
                    **kw))
            steps = int(state.n_steps)
            bar.update(float(state.t) - float(args[2]) - bar.n if by_time else steps - done_steps)
            bar.set_postfix_str(f"t={float(state.t):.4g}", refresh=False)
            seg_steps, done_steps = steps - done_steps, steps
            if not (bool(out[2] == RESULTS.max_steps_reached) and steps < max_steps):
                break  # finished: t1, an event, max_steps or a failure
            interrupted = driver.between(seg_steps, t_seg, running)
            if interrupted is not None:
                break
    finally:
        bar.close()
    wall = driver.elapsed()
    traj = to_trajectory(problem, *out, settings, wall, compile_time, interrupted=interrupted)
    if traj.status in (Status.TIME_LIMIT, Status.MAX_STEPS):
        traj.solver_state = solver.carry(state)  # what `resume` needs to take the same steps
    traj = _joined(previous, traj)
    if checkpoint is not None:
        traj.save(checkpoint)
    return traj


def to_trajectory(problem, ts_out, ys, result, mask, stats, settings, wall, compile_time,
                  interrupted=None) -> Trajectory:
    """Turn one solution (trimmed of unused save slots) into a `Trajectory` with a status (`result`, a
    `RESULTS` item; `mask` is unused, kept for the solve's layout); `interrupted` (Status.TIME_LIMIT
    or Status.RUNNING) marks a run stopped between segments."""
    del mask
    t1, gtol, max_norm, max_steps = (settings[k] for k in ("t1", "gtol", "max_norm", "max_steps"))
    ts_out, ys = solution_states(ts_out, ys)
    if interrupted is not None:
        result = {Status.TIME_LIMIT: "time_limit", Status.RUNNING: "running"}[interrupted]
    meta = dict(settings, t1=t1 if math.isfinite(t1) else None, loss=problem.loss_convention)
    traj = build_trajectory(problem, ts_out, ys, result, method="gradient_flow", kind="flow", stats={},
                            meta=meta, t1=t1, gtol=gtol, max_norm=max_norm, max_steps=max_steps, wall=wall)
    loss, gnorm = traj.loss, traj.grad_norm
    status, message = traj.status, traj.message

    stats_out = {}
    if (status in (Status.FAILED, Status.MAX_STEPS, Status.T1_REACHED) and gtol is not None
            and np.all(np.isfinite(ys[-1])) and np.isfinite(gnorm[-1])):
        # gtol may lie below what the problem allows: a run that sits at the floor has converged.
        floor = gradient_floor(problem, ys[-1])
        stats_out.update(gradient_floor=floor["floor"], hessian_norm=floor["hessian_norm"])
        if gnorm[-1] <= FLOOR_FACTOR * floor["floor"]:
            kink = kink_test(problem, ys[-1])
            stats_out.update(kink=kink["kink"])
            if kink["kink"]:
                # A large "floor" can also mean that ∇L jumps at the end point: say which it is, and
                # call the run converged only where no direction descends from the kink.
                where = (f"at t={ts_out[-1]:.6g} at a point where L is not differentiable (a kink, such as "
                         f"a ReLU neuron at w = 0: ∇L jumps by {kink['jumps'][-1]:.3g} across steps of both "
                         f"{kink['deltas'][0]:g} and {kink['deltas'][-1]:g})")
                test = sampled_minimum_test(problem, ys[-1])
                stats_out.update(kink_minimum=test["minimum"])
                if test["minimum"]:
                    status, message = Status.CONVERGED, (
                        f"the flow stopped {where}, and no sampled direction descends from it: |grad L| = "
                        f"{gnorm[-1]:.3g} is a one-sided gradient there, not a rounding floor "
                        f"({status.value} otherwise)")
                else:
                    message = (f"the solver stalled {where}, while L still descends from there (by "
                               f"{-test['worst']:.3g} along a sampled direction): the implicit solver cannot "
                               "step across the kink or along it")
            else:
                status, message = Status.CONVERGED, (
                    f"|grad L| = {gnorm[-1]:.3g} at t={ts_out[-1]:.6g} is at the attainable floor "
                    f"{floor['floor']:.3g} (gtol={gtol:g} lies below it): converged to the accuracy the "
                    f"problem allows ({status.value} otherwise)")
        else:
            message += f"; the attainable floor of |grad L| is {floor['floor']:.3g}"
    stats_out.update(
        steps=int(stats["num_steps"]), accepted_steps=int(stats["num_accepted_steps"]),
        rejected_steps=int(stats["num_rejected_steps"]), wall_time=wall, compile_time=compile_time,
        # 1: the solve ran LAPACK on one BLAS thread (`stiff.one_blas_thread`); 0: the library's own count
        blas_threads=int(problem.n_params <= stiff.ONE_BLAS_THREAD_MAX_PARAMS),
    )
    # Exact evaluation counts, where the solver keeps them (flowtools' own solvers do).
    for key in ("gradient_evaluations", "jacobian_evaluations", "hvp_evaluations", "factorizations",
                "newton_failures", "error_test_failures"):
        if key in stats:
            stats_out[key] = int(stats[key])
    traj.status, traj.message, traj.stats = status, message, stats_out
    return traj
