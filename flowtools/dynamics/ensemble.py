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
from .trajectory import Trajectory

__all__ = ["run_ensemble"]

_METHODS = ("gradient_flow", "gradient_descent")


def run_ensemble(method: str, problem: Problem, thetas, *, batched: bool = False,
                 progress: bool | None = None, **options) -> list[Trajectory]:
    """Run `method` ("gradient_flow" or "gradient_descent") from each row of `thetas`.

    **Arguments:**

    - `method`: which dynamics; `options` are passed to `gradient_flow` or `gradient_descent`
      (for GD, `lr` and `steps` are required).
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
    if not batched:
        run = flow.gradient_flow if method == "gradient_flow" else descent.gradient_descent
        out = []
        bar = progress_bar(len(thetas), f"ensemble ({method})", progress, threshold=0)
        try:
            for th in thetas:
                out.append(run(problem, th, progress=False, **options))
                bar.update(1)
        finally:
            bar.close()
        return out
    if method == "gradient_flow":
        return _batched_flow(problem, thetas, options)
    return _batched_descent(problem, thetas, options, progress)


_COMPILED_FLOWS: dict = {}


@eqx.filter_jit
def _batched_solve(batch, rest, **kw):
    return jax.vmap(lambda th0: flow._solve(rest[0], th0, *rest[1:], **kw))(batch)


@eqx.filter_jit
def _batched_chunk(problem, theta, lr, n, k, gtol_sq, max_norm, key):
    return jax.vmap(lambda th: descent._chunk(problem, th, lr, n, k, gtol_sq, max_norm, key, None))(theta)


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
    ts, ys, code, mask, stats = jax.block_until_ready(_COMPILED_FLOWS[key](batch, rest, **kw))
    wall = time.perf_counter() - t
    pick = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i] if jnp.ndim(a) else a, tree)  # noqa: E731
    return [flow.to_trajectory(problem, ts[i], ys[i], code[i], pick(mask, i), pick(stats, i),
                               settings, wall / len(thetas), compile_time / len(thetas))
            for i in range(len(thetas))]


def _batched_descent(problem, thetas, options, progress) -> list[Trajectory]:
    """Vmapped GD chunks for the whole batch; a member whose chunk reports a stop condition is finished
    by a single replay, exactly as `gradient_descent` would, and frozen afterwards."""
    opts = dict(options)
    for name in ("lr", "steps"):
        if name not in opts:
            raise TypeError(f"run_ensemble('gradient_descent', …) needs {name}=…")
    lr = _checks.positive("lr", opts.pop("lr"))
    steps = _checks.positive_int("steps", opts.pop("steps"), minimum=0)
    gtol = opts.pop("gtol", None)
    gtol = 0.0 if gtol is None else _checks.positive("gtol", gtol)
    max_norm = _checks.positive("max_norm", opts.pop("max_norm", 1e6), allow_inf=True)
    chunk_size = _checks.positive_int("chunk_size", opts.pop("chunk_size", 65536))
    n_records = opts.pop("n_records", 200)
    record_steps = opts.pop("record_steps", None)
    if opts:
        raise TypeError(f"unexpected option(s) for gradient_descent: {sorted(opts)}.")
    schedule = descent.make_schedule(steps, n_records, record_steps)

    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    lr_j, gtol_sq, max_norm_j = f(lr), f(gtol * gtol), f(max_norm)
    key = jax.random.PRNGKey(0)

    def chunk(theta, problem, n, k):
        return _batched_chunk(problem, theta, lr_j, n, k, gtol_sq, max_norm_j, key)

    B = len(thetas)
    theta = jnp.asarray(thetas)
    done = np.zeros(B, bool)
    results = [dict(steps=[0], thetas=[np.asarray(thetas[i])], k=0, event=None, code=0, replayed=0)
               for i in range(B)]
    t_start = time.perf_counter()
    jax.block_until_ready(chunk(theta, problem, descent._i64(0), descent._i64(0)))
    compile_time = time.perf_counter() - t_start
    k = 0
    bar = progress_bar(steps, "ensemble (gradient_descent)", progress, threshold=0)
    try:
        for target in schedule[1:]:
            while k < target and not done.all():
                n = int(min(chunk_size, target - k))
                new, hit = chunk(theta, problem, descent._i64(n), descent._i64(k))
                for i in np.nonzero(np.asarray(hit) & ~done)[0]:
                    j, th, code = descent._replay(problem, theta[i], lr_j, descent._i64(n),
                                                  descent._i64(k), gtol_sq, max_norm_j, key, None)
                    j, code = int(j), int(code)
                    results[i]["replayed"] += j + 1
                    if code != descent._OK:
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
    return [descent.finish(problem, r["steps"], r["thetas"], r["code"], r["event"], r["replayed"],
                           settings, wall / B, compile_time / B, method="gradient_descent")
            for r in results]
