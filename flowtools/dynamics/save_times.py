"""The save grid of a flow's compiled solve: the times at which `gradient_flow` saves, with never-reached
slots (time inf) that let runs with fewer save times share the executable of a run with more.

A solve's save times are an array of static length, so each length is another compiled program. The
segmented solvers interpolate at the save times (dense output, Hairer, Nørsett & Wanner, *Solving
Ordinary Differential Equations I*, §II.6) and never step to them, so a slot that is never reached
changes no step. A resumed run pads the times still ahead to its original number of slots;
`resolve_trajectory`'s segments pad their few inner times to the flow's number (`save_slots`) and
run the flow's own executable.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _checks

__all__ = ["log_time_grid", "save_grid", "save_slots"]


def log_time_grid(t_first: float, t_last: float, n: int) -> np.ndarray:
    """n log-spaced times from t_first to t_last (both included)."""
    return np.geomspace(t_first, t_last, n)


def save_grid(t0, t1, *, save_ts=None, n_save=200, t_first=None, grid_t0=None, save_steps=False):
    """The save times of a flow's compiled solve (never-reached slots hold inf): `gradient_flow`'s
    `save_ts`, or its default grid (rule in its docstring); `grid_t0`: where a resumed run's grid
    started; `save_steps`: saves at accepted steps (the slots are filled by the solver)."""
    if save_steps:
        # No final time to lay a grid on: save every stride-th accepted step (`stiff.save_step`).
        ts = np.zeros(n_save + n_save % 2)
    elif save_ts is None:
        start = t0 if grid_t0 is None else grid_t0
        t_last = t1 if math.isfinite(t1) else 1e12
        lo = start + (t_first if t_first is not None else min(1e-3, (t_last - start) * 1e-6))
        ts = log_time_grid(lo, t_last, n_save)
        ts = ts[(ts > start) & (ts <= t_last)]
    else:
        ts = _checks.finite_array("save_ts", save_ts, ndim=1)
        if np.any(np.diff(ts) <= 0) or ts.size == 0 or ts[0] < t0 or (ts[-1] > t1):
            raise ValueError("save_ts must be increasing and lie in [t0, t1].")
    if grid_t0 is not None:
        # A resumed run saves at the times still ahead, padded to the original number of slots (an
        # inf time is never reached) so that it reuses the original run's compilation.
        ts = np.concatenate([ts[ts > t0], np.full(int(np.sum(ts <= t0)), np.inf)])
    if ts.size == 0:  # nothing left to save between t0 and the end: one slot that is never reached
        ts = np.array([np.inf])
    return ts


def save_slots(meta) -> int | None:
    """The number of save slots of the solve that ran a flow with these settings (`Trajectory.meta`):
    a later solve with fewer save times pads to it (`gradient_flow(pad_slots=…)`) and so runs the same
    compiled solve. None where a solve with given save times cannot share it (saves at accepted steps,
    settings missing)."""
    try:
        if meta.get("save_grid") not in ("log", "given"):
            return None
        t1 = math.inf if meta.get("t1") is None else float(meta["t1"])
        return int(save_grid(float(meta["t0"]), t1, save_ts=meta.get("save_ts"), n_save=int(meta["n_save"]),
                             t_first=meta.get("t_first")).size)
    except (KeyError, TypeError, ValueError):
        return None
