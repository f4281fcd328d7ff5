"""The passages of a run through critical sets: each visit's window in time (hysteresis between the
entry and exit radii in function space), the merging of consecutive visits of one set, and, for noisy
runs (SGD), the drift and noise scale in function space, passages read off the loss's plateaus and the
noise that is not a passage (the drift and noise of SGD as in the stochastic-differential-equation view
of Mandt, Hoffman & Blei 2017).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np

from ..landscape.symmetry import output_distance
from ._records import Visit
from ._refinement import refine_passage

NOISE_WINDOW = 0.1  # decades of t: the running mean that separates an SGD run's drift from its noise


def windows(candidates, distances, ts, rho, rho_out=None) -> list[Visit]:
    """Each candidate's window: the contiguous stretch of states around its slow point within `rho_out`
    of it (default `rho`), from the first to the last of its states within `rho` (hysteresis: the run
    enters at `rho` and leaves at `rho_out`; the whole stretch when none is within `rho`); consecutive
    windows are split where the run becomes nearer (in function space) to the next candidate than to
    the previous one."""
    m = len(ts)
    rho_out = rho if rho_out is None else rho_out
    spans = []
    for idx, info in candidates:
        d = distances(info["fingerprint"])
        lo = hi = idx
        if d[idx] <= rho_out:
            while lo > 0 and d[lo - 1] <= rho_out:
                lo -= 1
            while hi + 1 < m and d[hi + 1] <= rho_out:
                hi += 1
            near = lo + np.flatnonzero(d[lo:hi + 1] <= rho)
            if near.size:  # else (a noisy run's passage that came within rho_out only): that stretch
                lo, hi = int(near[0]), int(near[-1])
        spans.append([lo, hi, d])
    for j in range(1, len(candidates)):
        (ia, _), (ib, _) = candidates[j - 1], candidates[j]
        a, b = spans[j - 1], spans[j]
        if a[1] < b[0]:
            continue
        if ib <= ia:
            b[0] = b[1] = ib
            continue
        between = np.arange(ia + 1, ib + 1)
        nearer_b = between[b[2][between] < a[2][between]]
        cut = int(nearer_b[0]) if nearer_b.size else ib
        a[1] = min(a[1], cut - 1)
        b[0] = max(b[0], cut)
    out = []
    for (idx, info), (lo, hi, _) in zip(candidates, spans):
        lo, hi = min(lo, idx), max(hi, idx) if hi >= idx else idx
        out.append(Visit(t_in=float(ts[lo]), t_out=float(ts[hi]), t=float(ts[idx]), **info))
    return out


def drift(ts, values, window: float = NOISE_WINDOW) -> np.ndarray:
    """The running mean of a run's saved values (its outputs, shape (m, n, d_out), or its states, shape
    (m, n_params)) over ±`window` decades of t, states at t ≤ 0 kept as they are: the run's drift, its
    noise averaged out."""
    ts = np.asarray(ts, dtype=float)
    outputs = np.asarray(values, dtype=float)
    out = outputs.copy()
    pos = np.flatnonzero(ts > 0)
    if pos.size:
        s = np.log10(ts[pos])
        lo = np.searchsorted(s, s - window, side="left")
        hi = np.searchsorted(s, s + window, side="right")
        csum = np.concatenate([np.zeros((1,) + outputs.shape[1:]), np.cumsum(outputs[pos], axis=0)])
        out[pos] = (csum[hi] - csum[lo]) / (hi - lo).reshape((-1,) + (1,) * (outputs.ndim - 1))
    return out


def function_noise_scale(ts, outputs, window: float = NOISE_WINDOW) -> float:
    """The noise scale of a run in function space, estimated from the run itself: the median over its
    saved states (t > 0) of the `output_distance` between a state's training outputs (shape
    (m, n, d_out)) and their running mean over ±`window` decades of t. The mean follows the drift; what
    is left is the noise (SGD); for a deterministic run saved densely enough to be smooth it is near 0."""
    pos = np.flatnonzero(np.asarray(ts) > 0)
    if pos.size < 3:
        return 0.0
    return float(np.median(output_distance(np.asarray(outputs)[pos], drift(ts, outputs, window)[pos])))


def plateau_passages(ctx, traj, thetas) -> list:
    """Slow passages of a noisy run found from its loss (`plateaus`, whose band is at least the run's
    own noise): each plateau is refined from the iterate average over it and is a visit candidate, at its
    state nearest the refined set, of that set when the run's drift came within ρ of it during the
    plateau, else a slow region at the iterate average. A noisy run's unrefined dips of ‖∇L‖ are not
    passages: the full-batch ‖∇L‖ of its states has a noise floor that can lie above a plateau's own."""
    from ..escape import plateaus

    ts, out = ctx["ts"], []
    for p in plateaus(traj):
        span = np.flatnonzero((ts >= p.t_start) & (ts <= p.t_end))
        if span.size == 0:
            continue
        guess = np.mean(thetas[span], axis=0)
        info = refine_passage(ctx, guess, SimpleNamespace(t_start=p.t_start, t_end=p.t_end, at_start=False))
        d = ctx["distances"](info["fingerprint"])
        out.append((int(span[np.argmin(d[span])]), info))
    return out


def without_noise(visits, distances, ts, rho_out) -> list[Visit]:
    """A noisy run's visits without the unrefined slow regions that lie within `rho_out` of a refined
    visit in the itinerary: those are the run's noise around that set, not passages of their own."""
    refined = [v for v in visits if v.refined or v.kind == "noise_ball"]
    keep = []
    for v in visits:
        if v.kind == "slow_region" and not v.refined:
            i = int(np.clip(np.searchsorted(ts, v.t), 0, len(ts) - 1))
            if any(distances(w.fingerprint)[i] <= rho_out for w in refined):
                continue
        keep.append(v)
    return keep


def merge(a: Visit, b: Visit) -> Visit:
    """One visit from two consecutive visits of the same set: the better-refined representative, the
    union of the windows."""
    keep = b if (b.refined and not a.refined) or (b.refined == a.refined and b.grad_norm < a.grad_norm) else a
    out = dataclasses.replace(keep, t_in=min(a.t_in, b.t_in), t_out=max(a.t_out, b.t_out), t=a.t)
    return out
