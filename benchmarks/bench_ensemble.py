"""Ensembles: batched (vmapped) runs against one-by-one runs of the same members, on whatever backend
JAX uses (CPU here; run `python benchmarks/run.py --only ensemble` on a GPU machine for GPU figures).

ratio = batched_s / one_by_one_s for the whole ensemble (below 1: batching pays). One-by-one times for
large ensembles are extrapolated from the first members (said so in `note`).
"""

from __future__ import annotations

import time

import jax
import numpy as np

import flowtools as ft

THETA0_STD = 0.5


def _problem():
    return ft.problems.minimal_model(loss="mse")


def _members(B, seed=0):
    return THETA0_STD * np.random.default_rng(seed).standard_normal((B, 4))


def _time(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _entry(kind, B, steps_or_t1, batched_s, seq_s, measured, extra):
    note = "" if measured == B else f"one-by-one time extrapolated from {measured} of {B} members"
    return dict(name=f"ensemble_{kind}_batched_vs_one_by_one_B{B}", ours_s=batched_s, baseline_s=seq_s,
                ratio=batched_s / seq_s, baseline="the same members run one by one (one compiled kernel)",
                note=note, extra=dict(extra, backend=jax.default_backend(), members=B, horizon=steps_or_t1,
                                      per_member_batched_s=batched_s / B, per_member_one_by_one_s=seq_s / B))


def gd_batched(quick: bool, full: bool = False):
    problem = _problem()
    steps = 2_000 if quick else 20_000
    sizes = [4, 64] if quick else [16, 256, 4096] if full else [16, 256]
    out = []
    for B in sizes:
        th = _members(B)
        warm = dict(lr=0.01, steps=steps, n_records=50)
        ft.run_ensemble("gradient_descent", problem, th, batched=True, progress=False,
                        **dict(warm, steps=10))  # compiles for this batch shape
        res, batched_s = _time(lambda: ft.run_ensemble("gradient_descent", problem, th, batched=True,
                                                       progress=False, **warm))
        m = min(B, 16)
        ft.gradient_descent(problem, th[0], 0.01, steps, n_records=50)
        ref, seq_s = _time(lambda: [ft.gradient_descent(problem, t, 0.01, steps, n_records=50) for t in th[:m]])
        diff = max(float(np.max(np.abs(a.final_theta - b.final_theta))) for a, b in zip(res[:m], ref))
        out.append(_entry("gd", B, steps, batched_s, seq_s * B / m, m, dict(max_abs_diff_vs_one_by_one=diff)))
    return out


def flow_batched(quick: bool, full: bool = False):
    problem = _problem()
    t1 = 200.0 if quick else 2_000.0
    sizes = [4] if quick else [16, 256] if full else [16]
    out = []
    for B in sizes:
        th = _members(B)
        opts = dict(t1=t1, n_save=50)
        ft.run_ensemble("gradient_flow", problem, th, batched=True, progress=False, **opts)  # compile
        res, batched_s = _time(lambda: ft.run_ensemble("gradient_flow", problem, th, batched=True,
                                                       progress=False, **opts))
        m = min(B, 16)
        ft.gradient_flow(problem, th[0], **opts)
        ref, seq_s = _time(lambda: [ft.gradient_flow(problem, t, **opts) for t in th[:m]])
        diff = max(float(np.max(np.abs(a.final_theta - b.final_theta))) for a, b in zip(res[:m], ref))
        out.append(_entry("flow", B, t1, batched_s, seq_s * B / m, m, dict(max_abs_diff_vs_one_by_one=diff)))
    return out


BENCHMARKS = [gd_batched, flow_batched]
