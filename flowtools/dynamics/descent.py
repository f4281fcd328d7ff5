"""The gradient-descent map θ_{k+1} = θ_k − η ∇L(θ_k), and online / mini-batch SGD.

The iteration runs inside jit in chunks (`lax.fori_loop`), so a step costs about as much as a
hand-written jitted loop; Python only sees chunk boundaries, where it records states on a log-spaced
grid of steps and updates the progress bar. A chunk in which a stop condition occurred is replayed
step by step from its start (the map is deterministic), so the exact step of convergence, divergence
or overflow is reported, not the chunk's end.
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import _checks
from ..problem import Problem
from . import sharpness as _sharpness
from .driver import ChunkedDriver
from .progress import progress_bar
from .results import RESULTS, event_result, status_of
from .trajectory import Status, Trajectory, build_trajectory, evaluate_states, first_non_finite

__all__ = ["gradient_descent", "sgd", "record_schedule"]

# With a wall-time budget or checkpoints, chunks start at _FIRST_CHUNK steps and then aim at _CHUNK_S
# seconds each (`driver.ChunkedDriver`), so that the budget is honoured soon after it runs out.
_FIRST_CHUNK = 1024
_CHUNK_S = 1.0


def record_schedule(steps: int, n_records: int = 200) -> np.ndarray:
    """Step numbers 0 = k_0 < k_1 < … < k_m = steps, log-spaced from 1 (integers, unique)."""
    if steps == 0:
        return np.array([0])
    grid = np.unique(np.round(np.logspace(0, np.log10(steps), max(n_records - 1, 1))).astype(np.int64))
    return np.unique(np.concatenate([[0], grid, [steps]]))


def _direction(problem: Problem, theta, k, key, batch_size):
    """The update direction at step k: the full gradient, or a seeded mini-batch gradient."""
    if batch_size is None:
        return problem.grad_fn(theta)
    # Samples drawn with replacement; the key depends on the step only, so results do not depend on
    # how the run is chunked.
    idx = jax.random.randint(jax.random.fold_in(key, k), (batch_size,), 0, problem.x.shape[0])
    return jax.grad(problem.batch_loss_fn)(theta, idx)


# Steps per unrolled block. The stop test (a reduction over ∇L) runs once per block: testing every step
# doubled the cost of a step on the minimal model. A block whose test fires is replayed step by step, so
# the reported step is exact; a dip of ‖∇L‖ below gtol shorter than a block can go unseen.
_BLOCK = 8


@eqx.filter_jit
def _chunk(problem, theta, lr, n, k0, gtol_sq, max_norm, key, batch_size):
    """n steps from step k0. Returns θ_{k0+n} and whether a stop condition may have occurred."""

    def step(th, k, hit, test):
        g = _direction(problem, th, k, key, batch_size)
        if test:
            gsq = jnp.sum(g * g)
            if batch_size is None:
                hit = hit | (gsq <= gtol_sq)
            hit = hit | ~jnp.isfinite(gsq)
        return th - lr * g, hit

    def block(b, carry):
        th, hit = carry
        k = k0 + b * _BLOCK
        for j in range(_BLOCK):
            th, hit = step(th, k + j, hit, test=(j == _BLOCK - 1))
        return th, hit

    def single(i, carry):
        th, hit = carry
        return step(th, k0 + i, hit, test=True)

    n_blocks = n // _BLOCK
    carry = lax.fori_loop(0, n_blocks, block, (theta, jnp.asarray(False)))
    th, hit = lax.fori_loop(n_blocks * _BLOCK, n, single, carry)
    norm = jnp.linalg.norm(th)
    return th, hit | ~jnp.isfinite(norm) | (norm > max_norm)


@eqx.filter_jit
def _replay(problem, theta, lr, n, k0, gtol_sq, max_norm, key, batch_size):
    """Step one at a time from step k0 until a stop condition; returns (steps done, θ, result), the
    result a `RESULTS` item (`successful`: none within n steps)."""

    def result_at(th, g):
        gsq = jnp.sum(g * g)
        return event_result((batch_size is None) & (gsq <= gtol_sq), jnp.linalg.norm(th) > max_norm,
                            ~jnp.isfinite(gsq) | ~jnp.all(jnp.isfinite(th)))

    def cond(c):
        i, _, result = c
        return (i < n) & (result == RESULTS.successful)

    def body(c):
        i, th, _ = c
        g = _direction(problem, th, k0 + i, key, batch_size)
        result = result_at(th, g)
        ok = result == RESULTS.successful
        # Keep θ_k (the last good iterate) when the step k has a stop condition.
        th = jnp.where(ok, th - lr * g, th)
        return jnp.where(ok, i + 1, i), th, result

    return lax.while_loop(cond, body, (jnp.asarray(0), theta, RESULTS.successful))


def make_schedule(steps: int, n_records: int, record_steps=None) -> np.ndarray:
    """The recording steps: `record_steps` (plus 0 and `steps`), or `n_records` log-spaced ones."""
    if record_steps is None:
        return record_schedule(steps, _checks.positive_int("n_records", n_records, minimum=2))
    schedule = np.unique(np.asarray(record_steps, dtype=np.int64))
    if schedule.size == 0 or schedule[0] < 0 or schedule[-1] > steps:
        raise ValueError(f"record_steps must lie in [0, steps={steps}].")
    return np.unique(np.concatenate([[0], schedule, [steps]]))


def _i64(v):
    return jnp.asarray(v, dtype=jnp.int64)


def _previous_run(resume, method, problem, same=None):
    """The `Trajectory` to continue (`resume` is one, or the path of a saved one), checked against
    this call: the method, the problem's size and the settings in `same` (name → value) must match."""
    previous = resume if isinstance(resume, Trajectory) else Trajectory.load(resume)
    if previous.method != method or previous.step is None:
        raise ValueError(f"resume must be a {method} Trajectory, got a {previous.method} run.")
    if previous.theta.shape[1] != problem.n_params:
        raise ValueError(f"resume is a run with {previous.theta.shape[1]} parameters; this problem has "
                         f"{problem.n_params}: resume a run of this problem.")
    for name, value in (same or {}).items():
        if previous.meta.get(name) != value:
            raise ValueError(f"{name}={value!r} differs from the resumed run's {name}="
                             f"{previous.meta.get(name)!r}; pass {name}={previous.meta.get(name)!r} to "
                             "continue it.")
    return previous


def _run(problem, theta0, lr, steps, *, gtol, max_norm, n_records, record_steps, chunk_size,
         progress, batch_size, seed, method, time_limit=None, checkpoint=None, checkpoint_every=60.0,
         resume=None, record_gtol=None, sharpness_every=None, lanczos_steps=_sharpness.LANCZOS_STEPS):
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    previous, k0 = None, 0
    if resume is not None:
        same = None if batch_size is None else dict(batch_size=batch_size, seed=seed)
        previous = _previous_run(resume, method, problem, same)
        if previous.status not in (Status.TIME_LIMIT, Status.RUNNING):
            return previous  # it ended for good: nothing to continue
        theta0, k0 = previous.final_theta, int(previous.step[-1])
    elif theta0 is None:
        raise TypeError(f"{method} needs theta0 (or resume=a Trajectory to continue).")
    if time_limit is not None:
        time_limit = _checks.positive("time_limit", time_limit)
    checkpoint_every = _checks.positive("checkpoint_every", checkpoint_every)
    theta = jnp.asarray(_checks.theta_vector("theta0", theta0, problem.n_params))
    lr = _checks.positive("lr", lr)
    steps = _checks.positive_int("steps", steps, minimum=0)
    gtol = 0.0 if gtol is None else _checks.positive("gtol", gtol)
    max_norm = _checks.positive("max_norm", max_norm, allow_inf=True)
    chunk_size = _checks.positive_int("chunk_size", chunk_size)
    schedule = make_schedule(steps, n_records, record_steps)
    if k0 > steps:
        raise ValueError(f"resume is at step {k0}, beyond steps={steps}.")
    schedule = np.concatenate([[k0], schedule[schedule > k0]])
    key = jax.random.PRNGKey(0 if seed is None else seed)
    tracker = None if sharpness_every is None else _sharpness.Tracker(
        problem, lr, sharpness_every, lanczos_steps, direction=_direction, key=key, batch_size=batch_size)
    sampled = set() if tracker is None else set(tracker.steps(k0, steps).tolist())
    recorded_set = set(schedule.tolist())
    targets = np.union1d(schedule[1:], np.array(sorted(sampled - {k0}), dtype=np.int64))
    # Every number passed to the jitted kernels is an array: eqx.filter_jit treats Python scalars as
    # static and would recompile for each new value.
    gtol_sq = jnp.asarray(gtol * gtol)
    max_norm_j = jnp.asarray(max_norm)
    lr_j = jnp.asarray(lr)

    t_start = time.perf_counter()
    # A zero-length chunk compiles without stepping: its time is the compile time (≈0 when cached).
    jax.block_until_ready(_chunk(problem, theta, lr_j, _i64(0), _i64(0), gtol_sq, max_norm_j, key,
                                 batch_size))
    compile_time = time.perf_counter() - t_start

    settings = dict(lr=lr, steps=steps, gtol=gtol, max_norm=max_norm, batch_size=batch_size, seed=seed,
                    k0=k0)
    recorded_steps, recorded = [k0], [np.asarray(theta)]
    k, code, event_step, n_replayed = k0, RESULTS.successful, None, 0
    budgeted = time_limit is not None or checkpoint is not None
    driver = ChunkedDriver(time_limit=time_limit, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                           chunked=budgeted, first=_FIRST_CHUNK, smallest=64, largest=chunk_size,
                           seconds=_CHUNK_S, share=None, started=t_start)

    def running(elapsed):
        part = finish(problem, recorded_steps + [k], recorded + [np.asarray(theta)], RESULTS.running, None,
                      n_replayed, settings, elapsed - compile_time, compile_time, method)
        part.sharpness = None if tracker is None else tracker.series()
        return _diagnose(part if previous is None else previous.join(part))

    bar = progress_bar(total=steps, desc=method, enable=progress)
    bar.update(k0)
    try:
        if k0 in sampled:
            tracker.sample(theta, k0, steps)
        for target in targets:
            while k < target and event_step is None and bool(code == RESULTS.successful):
                n = int(min(driver.size, target - k))
                t_chunk = time.perf_counter()
                new, hit = _chunk(problem, theta, lr_j, _i64(n), _i64(k), gtol_sq, max_norm_j, key,
                                  batch_size)
                if bool(hit):
                    i, th, c = _replay(problem, theta, lr_j, _i64(n), _i64(k), gtol_sq, max_norm_j,
                                       key, batch_size)
                    i = int(i)
                    n_replayed += i + 1
                    if bool(c != RESULTS.successful):
                        k, theta, event_step, code = k + i, th, k + i, c
                        bar.update(i)
                        break
                theta, k = new, k + n
                bar.update(n)
                if budgeted and k < steps and driver.between(n, t_chunk, running) == Status.TIME_LIMIT:
                    code = RESULTS.time_limit
            if event_step is not None or bool(code != RESULTS.successful):
                break
            if k in sampled:
                tracker.sample(theta, k, steps)
            if k in recorded_set:
                recorded_steps.append(k)
                recorded.append(np.asarray(theta))
        if recorded_steps[-1] != k:  # stopped between records (an event or the budget)
            recorded_steps.append(k)
            recorded.append(np.asarray(theta))
        jax.block_until_ready(theta)
    finally:
        bar.close()
    wall = time.perf_counter() - t_start

    traj = finish(problem, recorded_steps, recorded, code, event_step, n_replayed, settings,
                  wall - compile_time, compile_time, method)
    traj.sharpness = None if tracker is None else tracker.series()
    if previous is not None:
        traj = previous.join(traj)
    if record_gtol is not None:
        traj = _stop_at_recorded_gtol(traj, record_gtol)
    traj = _diagnose(traj)
    if checkpoint is not None:
        traj.save(checkpoint)
    return traj


def _diagnose(traj: Trajectory) -> Trajectory:
    """A run with a sharpness series gets its edge-of-stability diagnosis in `stats` and, when there is
    something to say, in its message; its status is unchanged."""
    series = traj.sharpness
    if series is None:
        return traj
    keep = series.step <= traj.step[-1]  # SGD's gtol may end the run at an earlier record
    traj.sharpness = series = _sharpness.SharpnessSeries(*(getattr(series, f)[keep] for f in series.FIELDS),
                                                         lr=series.lr)
    if len(series) == 0:
        return traj
    diagnosis = _sharpness.edge_of_stability(series)
    traj.stats["edge_of_stability"] = diagnosis
    words = _sharpness.message(diagnosis)
    traj.message += "; " + words if words else ""
    return traj


def _stop_at_recorded_gtol(traj: Trajectory, gtol: float) -> Trajectory:
    """SGD's `gtol`: a run that ran all its steps ends at its first record with full ‖∇L‖ ≤ gtol."""
    hits = np.nonzero(traj.grad_norm <= gtol)[0]
    if hits.size and traj.status == Status.T1_REACHED:
        i = int(hits[0]) + 1
        for name in ("t", "theta", "loss", "grad_norm", "gen_error", "step", "test_loss", "test_accuracy"):
            arr = getattr(traj, name)
            if arr is not None:
                setattr(traj, name, arr[:i])
        traj.status = Status.CONVERGED
        traj.message = f"full |grad L| <= gtol={gtol:g} at recorded step {int(traj.step[-1])}"
    traj.meta["gtol"] = gtol
    return traj


def finish(problem, recorded_steps, recorded, code, event_step, n_replayed, settings, wall,
           compile_time, method) -> Trajectory:
    """Build the `Trajectory` of a GD/SGD run from its recorded states and result (a `RESULTS` item)."""
    recorded_steps, recorded = list(recorded_steps), list(recorded)
    if len(recorded_steps) > 1 and recorded_steps[-1] == recorded_steps[-2]:
        # An event at the first step of a chunk that began on a recorded step: that state is already
        # recorded (the batched ensemble path appends it a second time).
        recorded_steps, recorded = recorded_steps[:-1], recorded[:-1]
    thetas = np.stack(recorded)
    lr, steps, gtol, max_norm = (settings[key] for key in ("lr", "steps", "gtol", "max_norm"))
    status = status_of(code)
    loss, gnorm, gen = evaluate_states(problem, thetas)
    if (status == Status.NON_FINITE and len(thetas) > 1
            and not (np.isfinite(loss[-1]) and np.isfinite(gnorm[-1]))):
        # θ_k is finite but L or ∇L overflowed there. Keep θ_{k−1}, the last iterate with a finite
        # gradient, so that no recorded value is NaN: the map is deterministic, so re-run it from the
        # previous record (no stop conditions: those steps passed them).
        k0, n = int(recorded_steps[-2]), int(event_step) - 1 - int(recorded_steps[-2])
        if n == 0:
            thetas, recorded_steps = thetas[:-1], recorded_steps[:-1]
        else:
            seed = settings.get("seed")
            _, th, _ = _replay(problem, jnp.asarray(thetas[-2]), jnp.asarray(lr), _i64(n), _i64(k0),
                               jnp.asarray(-1.0), jnp.asarray(np.inf), jax.random.PRNGKey(seed or 0),
                               settings.get("batch_size"))
            thetas[-1], recorded_steps[-1] = np.asarray(th), int(event_step) - 1
            n_replayed += n
        loss, gnorm, gen = evaluate_states(problem, thetas)
    k = int(recorded_steps[-1])
    if status == Status.T1_REACHED and gtol > 0 and gnorm[-1] <= gtol:
        code = RESULTS.converged  # the last iterate itself satisfies the tolerance
    kind = ("map_start" if status == Status.NON_FINITE and k == event_step
            and first_non_finite(thetas, loss, gnorm) else "map")
    steps_arr = np.asarray(recorded_steps, dtype=np.int64)
    k0 = int(settings.get("k0", 0))
    stats = dict(steps=k - k0, gradient_evaluations=int(k - k0 + n_replayed), replayed_steps=n_replayed,
                 event_step=event_step, wall_time=wall, compile_time=compile_time)
    meta = dict(lr=lr, loss=problem.loss_convention, gtol=gtol or None, max_norm=max_norm,
                steps_requested=steps, batch_size=settings.get("batch_size"), seed=settings.get("seed"))
    return build_trajectory(problem, steps_arr * lr, thetas, code, method=method, kind=kind, stats=stats,
                            meta=meta, step=steps_arr, values=(loss, gnorm, gen), check_finite=False,
                            steps=steps, gtol=gtol, max_norm=max_norm, event_step=event_step, k=k)


def gradient_descent(problem: Problem, theta0, lr: float, steps: int, *, gtol: float | None = None,
                     max_norm: float = 1e6, n_records: int = 200, record_steps=None,
                     chunk_size: int = 65536, progress: bool | None = None,
                     time_limit: float | None = None, checkpoint=None, checkpoint_every: float = 60.0,
                     resume=None, sharpness_every: int | None = None,
                     lanczos_steps: int = _sharpness.LANCZOS_STEPS) -> Trajectory:
    """Full-batch gradient descent θ_{k+1} = θ_k − η ∇L(θ_k).

    **Arguments:**

    - `problem`: the `Problem` (its loss convention fixes what η means).
    - `theta0`: the initial flat parameter vector.
    - `lr`: the step size η > 0.
    - `steps`: the number of steps to run at most.
    - `gtol`: stop at the first iterate with ‖∇L‖ ≤ gtol (None: never).
    - `max_norm`: declare divergence when ‖θ‖ exceeds it.
    - `n_records`, `record_steps`: record on `n_records` log-spaced steps, or on the given steps.
    - `chunk_size`: steps per jitted chunk (only affects speed).
    - `progress`: show a progress bar (None: only for runs of more than 10⁵ steps).
    - `time_limit`: a wall-time budget in seconds: the run stops after the first chunk of steps that
      ends past it, with status "time_limit" and its last iterate recorded.
    - `checkpoint`, `checkpoint_every`: write the trajectory so far to this path (`Trajectory.save`,
      atomic) every `checkpoint_every` seconds, with status "running", and the result at the end.
    - `resume`: a "time_limit" or "running" `Trajectory` of this run (or its path): continue from its
      last iterate with the same arguments otherwise (theta0 may be None). The map is deterministic,
      so the joined result has exactly the iterates of an uninterrupted run, plus the state at the
      interruption.
    - `sharpness_every`: track the sharpness λ_max(H) every k steps, at steps jk and jk + 1 (both
      phases of a period-2 oscillation), by `lanczos_steps` Hessian-vector products warm-started from
      the last estimate (`flowtools.dynamics.sharpness`). None (default): not tracked.

    **Returns:** a `Trajectory` with t = kη, its `step` array, and a status: "converged",
    "t1_reached" (all steps run), "diverged", "non_finite" or "time_limit", with the step at which it
    happened in `stats["event_step"]`. With `sharpness_every`, `trajectory.sharpness` holds the series
    (with the 2/η line, `two_over_lr`) and `stats["edge_of_stability"]` its diagnosis
    (`sharpness.edge_of_stability`: the settled sharpness against 2/η, when progressive sharpening
    reached 2/η, catapult events); a run that settles at 2/η says so in its message, and its status
    stays what it is ("t1_reached" for a run that ran all its steps).
    """
    return _run(problem, theta0, lr, steps, gtol=gtol, max_norm=max_norm, n_records=n_records,
                record_steps=record_steps, chunk_size=chunk_size, progress=progress,
                batch_size=None, seed=None, method="gradient_descent", time_limit=time_limit,
                checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                sharpness_every=sharpness_every, lanczos_steps=lanczos_steps)


def sgd(problem: Problem, theta0, lr: float, steps: int, *, batch_size: int = 1, seed: int = 0,
        gtol: float | None = None, max_norm: float = 1e6, n_records: int = 200, record_steps=None,
        chunk_size: int = 65536, progress: bool | None = None, time_limit: float | None = None,
        checkpoint=None, checkpoint_every: float = 60.0, resume=None, sharpness_every: int | None = None,
        lanczos_steps: int = _sharpness.LANCZOS_STEPS) -> Trajectory:
    """Online (`batch_size=1`) or mini-batch stochastic gradient descent.

    Each step draws `batch_size` samples with replacement using a key derived from `seed` and the
    step number, so a run is reproducible and independent of chunking. The loss on the batch uses
    the problem's convention. `gtol` is checked on the full gradient at the recorded steps only.
    Recorded L, ‖∇L‖ and R are full-batch values.

    `time_limit`, `checkpoint`, `checkpoint_every` and `resume` are those of `gradient_descent`. The
    batch of step k is re-derived from (`seed`, k), so a resumed run draws the batches the
    uninterrupted run draws and has its iterates bit for bit; `resume` needs the same `seed` and
    `batch_size` as the run it continues. `sharpness_every` and `lanczos_steps` are those of
    `gradient_descent`; the sharpness is the full-batch loss's.

    **Raises:** `ValueError` if `batch_size` is below 1 or above the number of samples, if `seed` is
    negative, or if `resume` is a run of another method, problem size, `seed` or `batch_size`; plus the
    errors of `gradient_descent`.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    batch_size = _checks.positive_int("batch_size", batch_size)
    if batch_size > problem.x.shape[0]:
        raise ValueError(f"batch_size={batch_size} exceeds the number of samples {problem.x.shape[0]}.")
    seed = _checks.positive_int("seed", seed, minimum=0)
    if gtol is not None:
        gtol = _checks.positive("gtol", gtol)
    return _run(problem, theta0, lr, steps, gtol=None, max_norm=max_norm, n_records=n_records,
                record_steps=record_steps, chunk_size=chunk_size, progress=progress,
                batch_size=batch_size, seed=seed, method="sgd", time_limit=time_limit,
                checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                record_gtol=gtol, sharpness_every=sharpness_every, lanczos_steps=lanczos_steps)
