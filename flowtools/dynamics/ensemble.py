"""Ensembles: many initial conditions through the same dynamics, one by one or batched (vmapped).

One-by-one runs reuse one compiled kernel. Batched runs vmap the same kernel over blocks of initial
conditions. Either way each member gets its own `Trajectory`, equal to the one a single run returns (up
to floating-point reassociation in batched arithmetic), and `stats["ensemble"]` says which path ran.

Why batching used to lose on the CPU (measured on the minimal model, docs/benchmarks.md): XLA:CPU hands
elementwise and reduction fusions above a size threshold to the YNNPACK library. For the vmapped GD
chunk the threshold falls between 16 and 64 members, and a step then cost 15–65× more (20 µs → 1.3 ms
from B = 16 to B = 64), while XLA's own kernels keep the cost per member flat (≈ 1.3–2 µs from B = 4 to
1024). Batched kernels are therefore compiled with those library fusions off.

Batched flows are traced with two vmap rules of their own (`batched_flow_rules`): a `lax.cond` whose
branch differs between members runs each branch only when some member takes it (JAX's rule runs every
branch for every member, so every step paid for a Hessian, an LU and Newton–Krylov's GMRES), and
`x.at[i].set(v)` with per-member i is a masked select (XLA:CPU expands that scatter into a loop over the
members). Members stay bit for bit their single runs, and `batched=True` takes 0.53–0.70 of the
time it took with JAX's rules (0.61–0.67 of the CPU time); but a batch still steps until its slowest
member ends, each Newton or GMRES loop runs as long as its slowest member's, and each member's gradient
costs the same batched or not, so on the minimal model a batched flow of 16 members still takes
1.02–1.41× the loop (1.05–1.19× its CPU time; docs/benchmarks.md) and `batched="auto"` runs flows one
by one.
"""

from __future__ import annotations

import contextlib
import functools
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jax_core
from jax.interpreters import batching

from .. import _cache, _checks, _executables
from ..problem import Problem
from . import descent, flow
from .progress import progress_bar
from .results import RESULTS
from .stiff import one_blas_thread
from .trajectory import Trajectory

__all__ = ["run_ensemble"]

_METHODS = ("gradient_flow", "gradient_descent", "sgd")
# The options the batched GD/SGD path implements; with any other (sharpness_every, time_limit,
# checkpoint, resume…) batched="auto" runs one by one.
_BATCHED_DESCENT_OPTIONS = {"lr", "steps", "gtol", "max_norm", "chunk_size", "n_records", "record_steps",
                            "batch_size"}
# Largest block: per member, a GD step on the minimal model costs 1.3 µs in blocks of 64–256 and 2.0 µs
# in one block of 1024 (cache traffic of B × n_samples intermediates).
_MAX_BLOCK = 256
# Bytes of B × n_samples × n_params float64 intermediates a block may hold (a bound on its working set).
_BLOCK_BYTES = 8 << 20


def run_ensemble(method: str, problem: Problem, thetas, *, batched: bool | str = "auto",
                 block_size: int | None = None, progress: bool | None = None,
                 **options) -> list[Trajectory]:
    """Run `method` ("gradient_flow", "gradient_descent" or "sgd") from each row of `thetas`.

    **Arguments:**

    - `method`: which dynamics; `options` are passed to `gradient_flow`, `gradient_descent` or `sgd`
      (for GD and SGD, `lr` and `steps` are required). For SGD, `seed` is one integer s (member i
      uses seed s + i) or a sequence of one seed per member; member i is then the run
      `sgd(problem, thetas[i], seed=its seed, ...)`.
    - `thetas`: initial conditions, shape (batch, n_params).
    - `batched`: True vmaps the members through one kernel, in blocks of `block_size`; False runs them
      one by one; "auto" (default) batches GD and SGD ensembles of two or more members whose options
      the batched path implements and whose blocks hold more than one member, and runs flows (slower
      batched on the CPU, see the module docstring) and everything else one by one.
    - `block_size`: members per vmapped block (None: up to 256, fewer when n_samples × n_params is
      large, so that a block's intermediates stay under 8 MiB); blocks are equal-sized, and members
      that stop early (converged, diverged) leave the blocks between chunks.
    - `progress`: show a progress bar over members (None: when there are more than 8).

    **Returns:** a list of `Trajectory`, one per row of `thetas`, in order. Each member's
    `stats["ensemble"]` says how it ran: `{"path": "batched", "block_size": …, "blocks": …}` or
    `{"path": "one_by_one", "reason": …}`.
    """
    method = _checks.choice("method", method, _METHODS)
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    if not (isinstance(batched, bool) or batched == "auto"):
        raise ValueError(f"batched={batched!r} is not supported; choose True, False or 'auto'.")
    thetas = _checks.theta_batch("thetas", thetas, problem.n_params)
    if block_size is not None:
        block_size = _checks.positive_int("block_size", block_size)
    if progress is None:
        progress = len(thetas) > 8
    per_member = [{} for _ in thetas]
    if method == "sgd":
        options = dict(options)
        for i, seed in enumerate(_member_seeds(options.pop("seed", 0), len(thetas))):
            per_member[i]["seed"] = seed
    reason = "batched=False"
    if batched == "auto":
        batched, reason = _auto(method, problem, len(thetas), options, block_size)
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
        return _label(out, dict(path="one_by_one", reason=reason))
    if method == "gradient_flow":
        return _label(_batched_flow(problem, thetas, options),
                      dict(path="batched", block_size=len(thetas), blocks=1))
    seeds = [own["seed"] for own in per_member] if method == "sgd" else None
    return _batched_descent(problem, thetas, options, progress, method, seeds, block_size)


def _auto(method: str, problem: Problem, n_members: int, options: dict, block_size) -> tuple[bool, str]:
    """The `batched="auto"` policy: (batch?, why not when it does not)."""
    if method == "gradient_flow":
        return False, "auto: flows run one by one (a batched flow is not faster on the CPU)"
    if n_members < 2:
        return False, "auto: a single member"
    other = sorted(set(options) - _BATCHED_DESCENT_OPTIONS)
    if other:
        return False, f"auto: the batched path does not implement {', '.join(other)}"
    if (block_size or default_block_size(problem, n_members)) == 1:
        return False, "auto: blocks of one member at this problem size"
    return True, ""


def _label(members: list[Trajectory], how: dict) -> list[Trajectory]:
    for m in members:
        m.stats["ensemble"] = dict(how)
    return members


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


# XLA:CPU's library (YNNPACK) fusions, off for batched kernels (module docstring). Probed once, as
# `_cache.compiler_options` does: a jaxlib that does not know the option compiles as before.
_NO_LIBRARY_FUSIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def batched_compiler_options() -> dict:
    """XLA options for the vmapped ensemble kernels: the package's CPU options, with XLA:CPU's library
    fusions off where this jaxlib knows the option ({} off the CPU)."""
    options = _cache.compiler_options()
    if jax.default_backend() != "cpu":
        return options
    return dict(options, **_NO_LIBRARY_FUSIONS) if _cache.options_supported(_NO_LIBRARY_FUSIONS) else options


_COMPILED: dict = _executables.executable_memo()


def _compiled(fn, *args, **kw):
    """`fn` (an `eqx.filter_jit` function) compiled for these arguments with `batched_compiler_options`,
    once per process and signature (array shapes and dtypes, the other leaves by value); returns the
    executable and its compile time (0.0 when it was already compiled)."""
    options = batched_compiler_options()
    leaves, treedef = jax.tree_util.tree_flatten((args, kw))
    key = (fn, treedef, tuple(sorted(options.items())),
           tuple((jnp.shape(x), jnp.result_type(x)) if eqx.is_array(x) else ("static", x) for x in leaves))
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    _executables.make_room()
    t = time.perf_counter()
    _COMPILED[key] = fn.lower(*args, **kw).compile(compiler_options=options)
    return _COMPILED[key], time.perf_counter() - t


def _any_cond_rule(select_rule, axis_data, args, dims, *, branches, **params):
    """vmap of `lax.cond` whose branch index differs between members: each branch runs, for the whole
    batch, only when some member takes it (an unbatched `lax.cond` on any(index == i)), and each member
    then selects its own branch's outputs. JAX's own rule (`select_rule`) runs every branch for every
    member at every call; a member's values are the same either way."""
    if (dims[0] is None or "branches_platforms" in params
            or any(branch.effects for branch in branches)
            or any(jax.dtypes.issubdtype(a.dtype, jax.dtypes.extended) for a in branches[0].out_avals)):
        return select_rule(axis_data, args, dims, branches=branches, **params)
    size = axis_data.size
    index, *ops = (batching.bdim_at_front(x, d, size) for x, d in zip(args, dims))
    outs = []
    for i, branch in enumerate(branches):
        run = jax.vmap(jax_core.jaxpr_as_fun(branch), axis_size=size)
        skip = [jnp.zeros((size,) + a.shape, a.dtype) for a in branch.out_avals]
        outs.append(lax.cond(jnp.any(index == i), lambda run=run: list(run(*ops)), lambda skip=skip: skip))
    picks = [lax.select_n(lax.broadcast_in_dim(index, out[0].shape, (0,)), *out) for out in zip(*outs)]
    return picks, [0] * len(picks)


def _point_scatter_rule(scatter_rule, axis_data, args, dims, *, dimension_numbers, mode, **params):
    """vmap of `x.at[i].set(v)` (`lax.scatter`, one index per member, full slices on the other axes)
    with per-member indices: a select against a one-hot mask, instead of the scatter that XLA:CPU
    expands into a loop over the members (several per BDF step, more per GMRES iteration). The values
    are copied, as by the scatter: bit for bit the same. Any other scatter goes to JAX's own rule
    (`scatter_rule`)."""
    operand, indices, updates = args
    dn = dimension_numbers
    shape = operand.shape if dims[0] is None else operand.shape[:dims[0]] + operand.shape[dims[0] + 1:]
    ishape = indices.shape if dims[1] is None else indices.shape[:dims[1]] + indices.shape[dims[1] + 1:]
    window = [d for d in range(len(shape)) if d not in dn.inserted_window_dims]
    point = (dims[1] is not None and len(ishape) == 1 and not dn.operand_batching_dims
             and sorted(dn.inserted_window_dims) == sorted(dn.scatter_dims_to_operand_dims)
             and tuple(dn.update_window_dims) == tuple(range(len(window)))
             and mode in (lax.GatherScatterMode.FILL_OR_DROP, lax.GatherScatterMode.CLIP,
                          lax.GatherScatterMode.PROMISE_IN_BOUNDS))
    if point:
        size = axis_data.size
        operand, indices, updates = (batching.bdim_at_front(x, d, size) for x, d in zip(args, dims))
        point = updates.shape[1:] == tuple(shape[d] for d in window)
    if not point:
        return scatter_rule(axis_data, args, dims, dimension_numbers=dimension_numbers, mode=mode, **params)
    mask = jnp.ones(operand.shape, bool)
    for k, d in enumerate(dn.scatter_dims_to_operand_dims):
        i = indices[:, k]
        if mode != lax.GatherScatterMode.FILL_OR_DROP:  # out of bounds: clipped, not dropped
            i = jnp.clip(i, 0, shape[d] - 1)
        at = i.reshape((size,) + (1,) * len(shape))
        mask = mask & (lax.broadcasted_iota(i.dtype, operand.shape, d + 1) == at)
    updates = jnp.expand_dims(updates, tuple(d + 1 for d in sorted(dn.inserted_window_dims)))
    return jnp.where(mask, updates.astype(operand.dtype), operand), 0


@contextlib.contextmanager
def batched_flow_rules():
    """While tracing in this context, `jax.vmap` keeps a batched flow's per-member branching cheap:
    `lax.cond` with a batched predicate runs a branch only when some member takes it (`_any_cond_rule`),
    instead of every branch for every member, and `x.at[i].set(v)` with per-member i is a masked
    select (`_point_scatter_rule`). The batched flow is traced in it; each
    member computes the same values as its single run. (The rule table is JAX's, global while the
    context lasts: another thread that traces a vmap meanwhile gets the same per-member values.)"""
    rules = batching.fancy_primitive_batchers
    ours = {lax.cond_p: _any_cond_rule, lax.scatter_p: _point_scatter_rule}
    saved = {p: rules[p] for p in ours}
    if any(isinstance(r, functools.partial) and r.func is ours[p] for p, r in saved.items()):
        yield  # already on
        return
    for p, rule in ours.items():
        rules[p] = functools.partial(rule, saved[p])
    try:
        yield
    finally:
        rules.update(saved)


@eqx.filter_jit
def _batched_solve(batch, rest, **kw):
    with batched_flow_rules():
        return jax.vmap(lambda th0: flow._solve(rest[0], th0, *rest[1:], **kw))(batch)


@eqx.filter_jit
def _batched_solve_select(batch, rest, **kw):
    """`_batched_solve` with JAX's own vmap rules (benchmarks). JAX caches the batched trace of the
    jitted `flow._solve`: `jax.clear_caches()` before tracing one variant after the other."""
    return jax.vmap(lambda th0: flow._solve(rest[0], th0, *rest[1:], **kw))(batch)


@eqx.filter_jit
def _batched_chunk(problem, theta, lr, n, k, gtol_sq, max_norm, keys, batch_size):
    return jax.vmap(lambda th, key: descent._chunk(problem, th, lr, n, k, gtol_sq, max_norm, key, batch_size)
                    )(theta, keys)


def _batched_flow(problem, thetas, options, flow_rules: bool = True) -> list[Trajectory]:
    options = dict(options, progress=False)
    t1 = options.pop("t1", None)
    args, kw, settings = flow.prepare_flow(problem, thetas[0], t1, **options)
    batch = jnp.asarray(thetas)
    rest = (args[0],) + args[2:]
    if flow_rules:  # the rules also apply where JAX lowers a primitive through vmap (LU pivots)
        with batched_flow_rules():
            solve, compile_time = _compiled(_batched_solve, batch, rest, **kw)
    else:
        solve, compile_time = _compiled(_batched_solve_select, batch, rest, **kw)
    t = time.perf_counter()
    with one_blas_thread(problem.n_params):  # as `gradient_flow` runs its LU factors
        ts, ys, result, mask, stats = jax.block_until_ready(solve(batch, rest, **kw))
    wall = time.perf_counter() - t
    pick = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i] if jnp.ndim(a) else a, tree)  # noqa: E731
    return [flow.to_trajectory(problem, ts[i], ys[i], pick(result, i), pick(mask, i), pick(stats, i),
                               settings, wall / len(thetas), compile_time / len(thetas))
            for i in range(len(thetas))]


def default_block_size(problem: Problem, n_members: int) -> int:
    """Members per vmapped GD/SGD block: at most `_MAX_BLOCK`, and few enough that B × n_samples ×
    n_params float64 values fit in `_BLOCK_BYTES`; blocks are then evened out so that they are all
    the same size (one compiled kernel, at most blocks − 1 padded lanes)."""
    per_member = 8 * max(int(problem.x.shape[0]), 1) * problem.n_params
    cap = int(max(1, min(_MAX_BLOCK, _BLOCK_BYTES // per_member)))
    return _even_blocks(n_members, cap)


def _even_blocks(n_members: int, cap: int) -> int:
    blocks = -(-n_members // cap)
    return -(-n_members // blocks)


def _batched_descent(problem, thetas, options, progress, method, seeds, block_size) -> list[Trajectory]:
    """Vmapped GD or SGD chunks over equal blocks of members (SGD: each member with its own key); a
    member whose chunk reports a stop condition is finished by a single replay, exactly as
    `gradient_descent` or `sgd` would, and leaves the blocks: between chunks the members still running
    are packed into as few blocks as they fill (the last one padded with a repeated member)."""
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

    B = len(thetas)
    block = default_block_size(problem, B) if block_size is None else _even_blocks(B, min(block_size, B))
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    # SGD's gtol is tested on the recorded states afterwards, as in `sgd`; GD's inside the loop.
    lr_j, gtol_sq, max_norm_j = f(lr), f(0.0 if method == "sgd" else gtol * gtol), f(max_norm)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (seeds or [0] * B)])
    theta = jnp.asarray(thetas)

    chunk, compile_time = _compiled(_batched_chunk, problem, theta[:block], lr_j, descent._i64(0),
                                    descent._i64(0), gtol_sq, max_norm_j, keys[:block], batch_size)
    t_run = time.perf_counter()
    done = np.zeros(B, bool)
    results = [dict(steps=[0], thetas=[np.asarray(thetas[i])], k=0, event=None, code=RESULTS.successful,
                    replayed=0)
               for i in range(B)]
    k = 0
    bar = progress_bar(steps, f"ensemble ({method})", progress, threshold=0)
    try:
        for target in schedule[1:]:
            while k < target and not done.all():
                n = int(min(chunk_size, target - k))
                running = np.nonzero(~done)[0]
                for start in range(0, len(running), block):
                    members = running[start:start + block]
                    lanes = np.pad(members, (0, block - len(members)), mode="edge")
                    whole = len(running) == block == B  # one block of every member: no gather
                    th_block = theta if whole else theta[lanes]
                    new, hit = chunk(problem, th_block, lr_j, descent._i64(n), descent._i64(k), gtol_sq,
                                     max_norm_j, keys if whole else keys[lanes], batch_size)
                    hit = np.asarray(hit)[:len(members)]
                    for j in np.nonzero(hit)[0]:
                        i = members[j]
                        steps_done, th, code = descent._replay(
                            problem, th_block[j], lr_j, descent._i64(n), descent._i64(k), gtol_sq,
                            max_norm_j, keys[i], batch_size)
                        steps_done = int(steps_done)
                        results[i]["replayed"] += steps_done + 1
                        if bool(code != RESULTS.successful):
                            done[i] = True
                            r = results[i]
                            r.update(k=k + steps_done, event=k + steps_done, code=code)
                            r["steps"].append(k + steps_done)
                            r["thetas"].append(np.asarray(th))
                    # A stopped member's row is never read again.
                    theta = new if whole else theta.at[members].set(new[:len(members)])
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
    wall = time.perf_counter() - t_run
    settings = dict(lr=lr, steps=steps, gtol=gtol, max_norm=max_norm)
    if method == "sgd":
        settings.update(gtol=0.0, batch_size=batch_size)
    how = dict(path="batched", block_size=block, blocks=-(-B // block))
    out = []
    for i, r in enumerate(results):
        own = settings if seeds is None else dict(settings, seed=seeds[i])
        traj = descent.finish(problem, r["steps"], r["thetas"], r["code"], r["event"], r["replayed"], own,
                              wall / B, compile_time / B, method=method)
        if method == "sgd" and gtol > 0:
            traj = descent._stop_at_recorded_gtol(traj, gtol)
        out.append(traj)
    return _label(out, how)
