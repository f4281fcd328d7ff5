"""Ensembles: `run_ensemble` against the same members run one by one, on whatever backend JAX uses (CPU
here; run `python benchmarks/run.py --only ensemble` on a GPU machine for GPU figures).

ratio = ensemble_s / one_by_one_s for the whole ensemble (below 1: batching pays). GD runs with its
default `batched="auto"` (the path it took is in `extra["path"]`). The flow entry times `batched=True`
against one by one, and says what `batched="auto"` chose: when auto runs flows one by one it is the
loop itself, so the row compares batched=True with the loop and has no target; when auto batches, the
target ≤ 1 applies to it. `ensemble_flow_rules_vs_jax_rules` times the batched flow traced with
`ensemble.batched_flow_rules` against the same kernel traced with JAX's own vmap rules (caches cleared
between the two traces). Every timing is the median of 3 rounds (flows: 5) that alternate the sides,
compile excluded, with the process CPU time beside the wall time (`extra`). One-by-one times for large
ensembles are extrapolated from the first 16 members (said so in `note`). `ensemble_library_fusions`
times the vmapped GD chunk compiled with and without XLA:CPU's library fusions, the cause of the old
3.6× loss at B = 256.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import flowtools as ft
from flowtools.dynamics import descent, ensemble

THETA0_STD = 0.5
ROUNDS = 3


def _problem():
    return ft.problems.minimal_model(loss="mse")


def _members(B, seed=0):
    return THETA0_STD * np.random.default_rng(seed).standard_normal((B, 4))


def _rounds(*fns, rounds=ROUNDS, cpu=None):
    """Median wall time of each function over `rounds` alternating rounds, and each one's last result;
    with a list `cpu`, the median process CPU time of each is appended to it."""
    times, cpus, outs = [[] for _ in fns], [[] for _ in fns], [None] * len(fns)
    for _ in range(rounds):
        for j, fn in enumerate(fns):
            t, c = time.perf_counter(), time.process_time()
            outs[j] = jax.block_until_ready(fn())
            times[j].append(time.perf_counter() - t)
            cpus[j].append(time.process_time() - c)
    if cpu is not None:
        cpu.extend(float(np.median(c)) for c in cpus)
    return [float(np.median(t)) for t in times], outs


def _max_diff(members, reference):
    return max(float(np.max(np.abs(a.final_theta - b.final_theta))) for a, b in zip(members, reference))


def _entry(kind, B, horizon, ens_s, seq_s, measured, members, reference, extra=None):
    diff = _max_diff(members, reference)
    note = "" if measured == B else f"one-by-one time extrapolated from {measured} of {B} members"
    return dict(name=f"ensemble_{kind}_vs_one_by_one_B{B}", ours_s=ens_s, baseline_s=seq_s,
                ratio=ens_s / seq_s, target=1.0,
                baseline="the same members run one by one (one compiled kernel)", note=note,
                extra=dict(extra or {}, path=members[0].stats["ensemble"], backend=jax.default_backend(),
                           members=B, horizon=horizon, per_member_ensemble_s=ens_s / B,
                           per_member_one_by_one_s=seq_s / B, max_abs_diff_vs_one_by_one=diff,
                           load_average=[round(x, 2) for x in os.getloadavg()]))


def gd_batched(quick: bool, full: bool = False):
    problem = _problem()
    steps = 2_000 if quick else 10_000
    sizes = [4, 64, 256, 4096] if full else [4, 64, 256]
    out = []
    for B in sizes:
        th = _members(B)
        kw = dict(lr=0.01, steps=steps, n_records=50, progress=False)
        m = min(B, 16)
        ft.run_ensemble("gradient_descent", problem, th, **dict(kw, steps=10))  # compiles this block shape
        ft.gradient_descent(problem, th[0], **kw)
        (ens_s, seq_s), (res, ref) = _rounds(
            lambda: ft.run_ensemble("gradient_descent", problem, th, **kw),
            lambda: [ft.gradient_descent(problem, t, **kw) for t in th[:m]])
        out.append(_entry("gd", B, steps, ens_s, seq_s * B / m, m, res[:m], ref))
    return out


def flow_batched(quick: bool, full: bool = False):
    problem = _problem()
    t1 = 200.0 if quick else 2_000.0
    sizes = [16, 256] if full else [16]
    out = []
    for B in sizes:
        th = _members(B)
        opts = dict(t1=t1, n_save=50, progress=False)
        m = min(B, 16)
        # JAX's rules first, caches cleared around it: the jitted solve's batched trace is cached.
        jax.clear_caches()
        ensemble._batched_flow(problem, th, opts, flow_rules=False)
        jax.clear_caches()
        ft.run_ensemble("gradient_flow", problem, th, batched=True, **opts)  # compiles
        ft.gradient_flow(problem, th[0], **opts)
        auto = ft.run_ensemble("gradient_flow", problem, th[:m], **opts)[0].stats["ensemble"]
        sides = [lambda: ft.run_ensemble("gradient_flow", problem, th, batched=True, **opts),
                 lambda: [ft.gradient_flow(problem, t, **opts) for t in th[:m]],
                 lambda: ensemble._batched_flow(problem, th, opts, flow_rules=False)]
        if auto["path"] == "batched":
            sides.append(lambda: ft.run_ensemble("gradient_flow", problem, th, **opts))
        cpu = []
        times, res = _rounds(*sides, rounds=5, cpu=cpu)
        vmap_s, seq_s, jax_rules_s = times[0], times[1] * B / m, times[2]
        vmapped, ref, jax_rules = res[:3]
        cpu[1] *= B / m
        extra = dict(batched_true_cpu_s=cpu[0], one_by_one_cpu_s=cpu[1], cpu_ratio=cpu[0] / cpu[1],
                     auto=auto, jax_rules_s=jax_rules_s, jax_rules_cpu_s=cpu[2])
        if auto["path"] == "batched":
            extra.update(auto_s=times[3], auto_ratio=times[3] / seq_s, auto_cpu_s=cpu[3])
        row = _entry("flow", B, t1, vmap_s, seq_s, m, vmapped[:m], ref, extra)
        row.update(name=f"ensemble_flow_batched_vs_one_by_one_B{B}",
                   target=1.0 if auto["path"] == "batched" else None,
                   note=(row["note"] + "; " if row["note"] else "")
                   + f"ours: batched=True (CPU ratio {cpu[0] / cpu[1]:.2f}); batched='auto' runs "
                   + auto["path"].replace("_", " "))
        out.append(row)
        out.append(dict(name=f"ensemble_flow_rules_vs_jax_rules_B{B}", ours_s=vmap_s, baseline_s=jax_rules_s,
                        ratio=vmap_s / jax_rules_s,
                        baseline="the same batched flow traced with JAX's own vmap rules",
                        note=f"CPU ratio {cpu[0] / cpu[2]:.2f}",
                        extra=dict(ours_cpu_s=cpu[0], baseline_cpu_s=cpu[2], cpu_ratio=cpu[0] / cpu[2],
                                   max_abs_diff=_max_diff(vmapped, jax_rules), members=B, horizon=t1,
                                   load_average=[round(x, 2) for x in os.getloadavg()])))
    return out


def library_fusions(quick: bool):
    """The vmapped GD chunk (B = 64, minimal model) compiled as `run_ensemble` compiles it against the
    same kernel with XLA:CPU's default options (library fusions on)."""
    problem = _problem()
    B, steps = 64, 500 if quick else 2_000
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    args = (problem, jnp.asarray(_members(B)), f(0.01), descent._i64(steps), descent._i64(0), f(0.0),
            f(1e6), jnp.stack([jax.random.PRNGKey(0)] * B), None)
    lowered = ensemble._batched_chunk.lower(*args)
    ours = lowered.compile(compiler_options=ensemble.batched_compiler_options())
    default = lowered.compile()
    ours(*args), default(*args)
    (ours_s, default_s), (a, b) = _rounds(lambda: ours(*args), lambda: default(*args))
    return dict(name="ensemble_library_fusions_off_vs_on_B64", ours_s=ours_s, baseline_s=default_s,
                ratio=ours_s / default_s, baseline="the same vmapped GD chunk, XLA:CPU default options",
                extra=dict(options=ensemble.batched_compiler_options(), steps=steps, members=B,
                           us_per_step_off=1e6 * ours_s / steps, us_per_step_on=1e6 * default_s / steps,
                           max_abs_diff=float(jnp.max(jnp.abs(a[0] - b[0]))), backend=jax.default_backend(),
                           load_average=[round(x, 2) for x in os.getloadavg()]))


BENCHMARKS = [gd_batched, flow_batched, library_fusions]
