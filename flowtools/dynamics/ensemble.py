"""Ensembles: many initial conditions through the same dynamics, one by one or batched (vmapped).

One-by-one runs reuse one compiled kernel. Batched runs vmap the same kernel over the initial
conditions: on CPU this helps the fixed-step GD map, but rarely adaptive flows (a batch runs until its
slowest member finishes); on a GPU both gain. Either way each member gets its own `Trajectory`, equal to
the one a single run returns (up to floating-point reassociation in batched arithmetic).
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..problem import Problem
from . import descent, flow
from .progress import progress_bar
from .results import RESULTS
from .trajectory import Trajectory

__all__ = ["run_ensemble"]

_METHODS = ("gradient_flow", "gradient_descent", "sgd")


def run_ensemble(method: str, problem: Problem, thetas, *, batched: bool = False,
                 progress: bool | None = None, **options) -> list[Trajectory]:
    """Run `method` ("gradient_flow", "gradient_descent" or "sgd") from each row of `thetas`.

    **Arguments:**

    - `method`: which dynamics; `options` are passed to `gradient_flow`, `gradient_descent` or `sgd`
      (for GD and SGD, `lr` and `steps` are required). For SGD, `seed` is one integer s (member i
      uses seed s + i) or a sequence of one seed per member; member i is then the run
      `sgd(problem, thetas[i], seed=its seed, ...)`.
    - `thetas`: initial conditions, shape (batch, n_params).
    - `batched`: vmap all members through one kernel instead of running them one by one.
    - `progress`: show a progress bar over members (None: when there are more than 8).

    **Returns:** a list of `Trajectory`, one per row of `thetas`, in order.
    """
    method = _checks.choice("method", method, _METHODS)
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    thetas = _checks.theta_batch("thetas", thetas, problem.n_params)
    if progress is None:
        progress = len(thetas) > 8
    per_member = [{} for _ in thetas]
    if method == "sgd":
        options = dict(options)
        for i, seed in enumerate(_member_seeds(options.pop("seed", 0), len(thetas))):
            per_member[i]["seed"] = seed
    if not batched:
        run = {"gradient_flow": flow.gradient_flow, "gradient_descent": descent.gradient_descent,
               "sgd": descent.sgd}[method]
        out = []
        bar = progress_bar(len(thetas), f"ensemble ({method})", progress, threshold=0)
        try:
            for th, own in zip(thetas, per_member):
                out.append(run(problem, th, progress=False, **own, **options))
                bar.update(1)
        finally:
            bar.close()
        return out
    if method == "gradient_flow":
        return _batched_flow(problem, thetas, options)
    seeds = [own["seed"] for own in per_member] if method == "sgd" else None
    return _batched_descent(problem, thetas, options, progress, method, seeds)


def _member_seeds(seed, n: int) -> list[int]:
    """One seed per member: s, s + 1, …, s + n − 1 from an integer s, or a sequence of n seeds."""
    if isinstance(seed, (str, bytes)) or np.ndim(seed) == 0:
        seed = _checks.positive_int("seed", seed, minimum=0)
        return list(range(seed, seed + n))
    seeds = list(np.atleast_1d(np.asarray(seed, dtype=object)))
    if len(seeds) != n:
        raise ValueError(f"seed must be one integer or a sequence of one seed per member ({n}), got "
                         f"{len(seeds)} seed(s).")
    return [_checks.positive_int(f"seed[{i}]", s, minimum=0) for i, s in enumerate(seeds)]


_COMPILED_FLOWS: dict = {}


@eqx.filter_jit
def _batched_solve(batch, rest, **kw):
    return jax.vmap(lambda th0: flow._solve(rest[0], th0, *rest[1:], **kw))(batch)


@eqx.filter_jit
def _batched_chunk(problem, theta, lr, n, k, gtol_sq, max_norm, keys, batch_size):
    return jax.vmap(lambda th, key: descent._chunk(problem, th, lr, n, k, gtol_sq, max_norm, key, batch_size)
                    )(theta, keys)


def _batched_flow(problem, thetas, options) -> list[Trajectory]:
    options = dict(options, progress=False)
    t1 = options.pop("t1", None)
    args, kw, settings = flow.prepare_flow(problem, thetas[0], t1, **options)
    batch = jnp.asarray(thetas)
    rest = (args[0],) + args[2:]
    key = (jax.tree_util.tree_structure((batch, rest)),
           tuple((jnp.shape(x), jnp.result_type(x)) for x in jax.tree_util.tree_leaves((batch, rest))),
           kw["solver"], kw["max_steps"])
    compile_time = 0.0
    if key not in _COMPILED_FLOWS:
        t = time.perf_counter()
        _COMPILED_FLOWS[key] = _batched_solve.lower(batch, rest, **kw).compile()
        compile_time = time.perf_counter() - t
    t = time.perf_counter()
    ts, ys, result, mask, stats = jax.block_until_ready(_COMPILED_FLOWS[key](batch, rest, **kw))
    wall = time.perf_counter() - t
    pick = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i] if jnp.ndim(a) else a, tree)  # noqa: E731
    return [flow.to_trajectory(problem, ts[i], ys[i], pick(result, i), pick(mask, i), pick(stats, i),
                               settings, wall / len(thetas), compile_time / len(thetas))
            for i in range(len(thetas))]


def _batched_descent(problem, thetas, options, progress, method, seeds) -> list[Trajectory]:
    """Vmapped GD or SGD chunks for the whole batch (SGD: each member with its own key); a member whose
    chunk reports a stop condition is finished by a single replay, exactly as `gradient_descent` or
    `sgd` would, and frozen afterwards."""
    opts = dict(options)
    for name in ("lr", "steps"):
        if name not in opts:
            raise TypeError(f"run_ensemble('{method}', …) needs {name}=…")
    lr = _checks.positive("lr", opts.pop("lr"))
    steps = _checks.positive_int("steps", opts.pop("steps"), minimum=0)
    gtol = opts.pop("gtol", None)
    gtol = 0.0 if gtol is None else _checks.positive("gtol", gtol)
    max_norm = _checks.positive("max_norm", opts.pop("max_norm", 1e6), allow_inf=True)
    chunk_size = _checks.positive_int("chunk_size", opts.pop("chunk_size", 65536))
    n_records = opts.pop("n_records", 200)
    record_steps = opts.pop("record_steps", None)
    batch_size = None
    if method == "sgd":
        batch_size = _checks.positive_int("batch_size", opts.pop("batch_size", 1))
        if batch_size > problem.x.shape[0]:
            raise ValueError(f"batch_size={batch_size} exceeds the number of samples {problem.x.shape[0]}.")
    if "sharpness_every" in opts or "lanczos_steps" in opts:
        raise TypeError("batched ensembles do not track the sharpness: pass batched=False to run each "
                        "member with sharpness_every.")
    if opts:
        raise TypeError(f"unexpected option(s) for {method}: {sorted(opts)}.")
    schedule = descent.make_schedule(steps, n_records, record_steps)

    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    # SGD's gtol is tested on the recorded states afterwards, as in `sgd`; GD's inside the loop.
    lr_j, gtol_sq, max_norm_j = f(lr), f(0.0 if method == "sgd" else gtol * gtol), f(max_norm)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (seeds or [0] * len(thetas))])

    def chunk(theta, problem, n, k):
        return _batched_chunk(problem, theta, lr_j, n, k, gtol_sq, max_norm_j, keys, batch_size)

    B = len(thetas)
    theta = jnp.asarray(thetas)
    done = np.zeros(B, bool)
    results = [dict(steps=[0], thetas=[np.asarray(thetas[i])], k=0, event=None, code=RESULTS.successful,
                    replayed=0)
               for i in range(B)]
    t_start = time.perf_counter()
    jax.block_until_ready(chunk(theta, problem, descent._i64(0), descent._i64(0)))
    compile_time = time.perf_counter() - t_start
    k = 0
    bar = progress_bar(steps, f"ensemble ({method})", progress, threshold=0)
    try:
        for target in schedule[1:]:
            while k < target and not done.all():
                n = int(min(chunk_size, target - k))
                new, hit = chunk(theta, problem, descent._i64(n), descent._i64(k))
                for i in np.nonzero(np.asarray(hit) & ~done)[0]:
                    j, th, code = descent._replay(problem, theta[i], lr_j, descent._i64(n),
                                                  descent._i64(k), gtol_sq, max_norm_j, keys[i], batch_size)
                    j = int(j)
                    results[i]["replayed"] += j + 1
                    if bool(code != RESULTS.successful):
                        done[i] = True
                        r = results[i]
                        r.update(k=k + j, event=k + j, code=code)
                        r["steps"].append(k + j)
                        r["thetas"].append(np.asarray(th))
                # Frozen members keep their state.
                theta = jnp.where(jnp.asarray(done)[:, None], theta, new)
                k += n
                bar.update(n)
            theta_np = np.asarray(theta)
            for i in np.nonzero(~done)[0]:
                results[i]["k"] = k
                results[i]["steps"].append(k)
                results[i]["thetas"].append(theta_np[i])
            if done.all():
                break
    finally:
        bar.close()
    wall = time.perf_counter() - t_start - compile_time
    settings = dict(lr=lr, steps=steps, gtol=gtol, max_norm=max_norm)
    if method == "sgd":
        settings.update(gtol=0.0, batch_size=batch_size)
    out = []
    for i, r in enumerate(results):
        own = settings if seeds is None else dict(settings, seed=seeds[i])
        traj = descent.finish(problem, r["steps"], r["thetas"], r["code"], r["event"], r["replayed"], own,
                              wall / B, compile_time / B, method=method)
        if method == "sgd" and gtol > 0:
            traj = descent._stop_at_recorded_gtol(traj, gtol)
        out.append(traj)
    return out
