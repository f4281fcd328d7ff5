"""Ensembles: `run_ensemble` against the same members run one by one, on whatever backend JAX uses (CPU
here; run `python benchmarks/run.py --only ensemble` on a GPU machine for GPU figures).

ratio = ensemble_s / one_by_one_s for the whole ensemble (below 1: batching pays). The ensemble runs
with its default `batched="auto"` (the path it took is in `extra["path"]`); the flow entry also times
`batched=True`. Every timing is the median of 3 rounds (flows: 5) that alternate the sides, compile
excluded. With `batched="auto"` flows run one by one, so that ratio is 1 up to the machine's noise.
One-by-one times for large ensembles are extrapolated from the first 16 members (said so in `note`).
`ensemble_library_fusions` times the vmapped GD chunk compiled with and without XLA:CPU's library
fusions, the cause of the old 3.6× loss at B = 256.
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


def _rounds(*fns, rounds=ROUNDS):
    """Median wall time of each function over `rounds` alternating rounds, and each one's last result."""
    times, outs = [[] for _ in fns], [None] * len(fns)
    for _ in range(rounds):
        for j, fn in enumerate(fns):
            t = time.perf_counter()
            outs[j] = jax.block_until_ready(fn())
            times[j].append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times], outs


def _entry(kind, B, horizon, ens_s, seq_s, measured, members, reference, extra=None):
    diff = max(float(np.max(np.abs(a.final_theta - b.final_theta))) for a, b in zip(members, reference))
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
        ft.run_ensemble("gradient_flow", problem, th[:2], batched=True, **opts)  # compile
        ft.run_ensemble("gradient_flow", problem, th, batched=True, **opts)
        ft.gradient_flow(problem, th[0], **opts)
        (ens_s, vmap_s, seq_s), (res, vmapped, ref) = _rounds(
            lambda: ft.run_ensemble("gradient_flow", problem, th, **opts),
            lambda: ft.run_ensemble("gradient_flow", problem, th, batched=True, **opts),
            lambda: [ft.gradient_flow(problem, t, **opts) for t in th[:m]], rounds=5)
        seq_s *= B / m
        vmap_diff = max(float(np.max(np.abs(a.final_theta - b.final_theta))) for a, b in zip(vmapped, ref))
        out.append(_entry("flow", B, t1, ens_s, seq_s, m, res[:m], ref,
                          dict(batched_true_s=vmap_s, batched_true_ratio=vmap_s / seq_s,
                               batched_true_max_abs_diff=vmap_diff)))
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
