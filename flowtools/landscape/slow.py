"""Slow points of a trajectory: local minima of ‖∇L‖ over log-time (plateaus and slow passages).

A trajectory that passes a saddle slows down near it: ‖∇L‖ dips by orders of magnitude and recovers. The
dips are the candidates for critical points (`find_critical_point` refines them); a dip without a
critical point nearby is a slow region.

**Rule.** Take the saved states with t > 0 and a finite, positive ‖∇L‖; let y = log₁₀‖∇L‖ and
s = log₁₀ t.

1. Smooth y with a running median over ±`smooth` decades of s (default 0.05): a noisy ‖∇L‖ (SGD, GD
   oscillation) does not create dips of its own. `smooth=0` disables it.
2. A candidate is a local minimum of the smoothed curve (the first sample of a run of equal values).
   The last saved state is a candidate too (a run that converges ends at its deepest point); the first is
   not, unless `include_start`.
3. Its depth, in decades: on each side, the rise is the highest smoothed y between the candidate and the
   nearest strictly lower point on that side, minus the candidate's y; a side without a lower point is
   "open" (the data end before the curve comes back down: the run started inside the plateau, or stopped
   while leaving it), and its rise is only a lower bound. The depth is the smallest rise of the closed
   sides, or the largest rise when both sides are open (the deepest point of the run). A candidate is
   kept when depth ≥ `min_depth` (default 0.5: ‖∇L‖ at least 3.2 times larger on the closed sides).
   Example: a run started near the origin of the minimal model sits on the plateau from its first saved
   state; the plateau's depth is its rise on the right, toward the later, lower part of the run.
4. Each kept dip is reported at the raw (unsmoothed) minimum of ‖∇L‖ within ±`smooth` decades, with the
   extent [t_start, t_end] of the region where the smoothed y stays within half the depth of the dip.
   When several candidates fall in one region (noise), only the deepest is kept.

Trajectories with fewer than 3 usable states have no interior dips; their last state is reported when
`include_end` is set.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _checks
from ..dynamics.trajectory import Trajectory

__all__ = ["SlowPoint", "slow_points", "resolve_trajectory"]


@dataclasses.dataclass
class SlowPoint:
    """One dip of ‖∇L‖ along a trajectory.

    **Fields:** `index` (row of the trajectory), `t`, `theta`, `grad_norm`, `loss`, `gen_error` (or
    None), `depth` (decades of ‖∇L‖ on the shallower side), `t_start`, `t_end` (extent of the slow
    region), `at_end` (the last state of the run), `at_start` (the first one).
    """

    index: int
    t: float
    theta: np.ndarray
    grad_norm: float
    loss: float
    gen_error: float | None
    depth: float
    t_start: float
    t_end: float
    at_end: bool = False
    at_start: bool = False

    def to_dict(self, *, theta: bool = True) -> dict:
        out = dict(index=self.index, t=self.t, grad_norm=self.grad_norm, loss=self.loss,
                   gen_error=self.gen_error, depth=self.depth, t_start=self.t_start, t_end=self.t_end,
                   at_end=self.at_end, at_start=self.at_start)
        if theta:
            out["theta"] = np.asarray(self.theta).tolist()
        return out

    def __repr__(self):
        where = " (end)" if self.at_end else " (start)" if self.at_start else ""
        return (f"SlowPoint(t={self.t:.6g}{where}, |grad|={self.grad_norm:.3g}, L={self.loss:.8g}, "
                f"depth={self.depth:.2f} decades, region=[{self.t_start:.3g}, {self.t_end:.3g}])")


def running_median(s, y, half_width):
    """The median of y over the window |s′ − sᵢ| ≤ half_width around each sᵢ (s ascending)."""
    if half_width <= 0:
        return y.copy()
    lo = np.searchsorted(s, s - half_width, side="left")
    hi = np.searchsorted(s, s + half_width, side="right")
    return np.array([np.median(y[a:b]) for a, b in zip(lo, hi)])


def _side_rise(y, i, direction):
    """(rise, closed): the highest y between i and the nearest strictly lower point in `direction` (±1)
    minus y[i], and whether such a lower point exists (else the rise runs to the end of the data)."""
    side = y[:i][::-1] if direction < 0 else y[i + 1:]
    if side.size == 0:
        return None
    lower = np.nonzero(side < y[i])[0]
    stretch = side if lower.size == 0 else side[: lower[0]]
    return (float(stretch.max() - y[i]) if stretch.size else 0.0), bool(lower.size)


def slow_points(trajectory: Trajectory, *, min_depth: float = 0.5, smooth: float = 0.05,
                include_end: bool = True, include_start: bool = False) -> list[SlowPoint]:
    """The dips of ‖∇L‖ over log-time along `trajectory`, in time order (rule in the module notes).

    **Arguments:**

    - `trajectory`: a `Trajectory` (gradient flow, GD or SGD).
    - `min_depth`: the least depth of a dip, in decades of ‖∇L‖.
    - `smooth`: half-width in decades of log t of the running median applied first (0: none).
    - `include_end`, `include_start`: whether the last / first saved state may be reported.

    **Returns:** a list of `SlowPoint`.
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a flowtools.Trajectory, got {type(trajectory).__name__}.")
    min_depth = _checks.nonnegative("min_depth", min_depth)
    smooth = _checks.nonnegative("smooth", smooth)
    t = np.asarray(trajectory.t, dtype=np.float64)
    g = np.asarray(trajectory.grad_norm, dtype=np.float64)
    usable = np.nonzero((t > 0) & np.isfinite(g) & (g > 0))[0]
    if usable.size == 0:
        return []

    def make(idx_raw, depth, lo, hi, at_end, at_start):
        gen = None if trajectory.gen_error is None else float(trajectory.gen_error[idx_raw])
        return SlowPoint(int(idx_raw), float(t[idx_raw]), np.asarray(trajectory.theta[idx_raw]),
                         float(g[idx_raw]), float(trajectory.loss[idx_raw]), gen, float(depth),
                         float(t[lo]), float(t[hi]), at_end, at_start)

    if usable.size < 3:
        if not include_end:
            return []
        last = usable[-1]
        return [make(last, 0.0, last, last, True, False)]

    s = np.log10(t[usable])
    y = np.log10(g[usable])
    ys = running_median(s, y, smooth)
    m = ys.size
    out = []
    for i in range(m):
        at_start, at_end = i == 0, i == m - 1
        if at_start and not include_start or at_end and not include_end:
            continue
        left_ok = at_start or ys[i] < ys[i - 1]
        right_ok = at_end or ys[i] <= ys[i + 1]
        if not (left_ok and right_ok):
            continue
        sides = [r for r in (_side_rise(ys, i, -1), _side_rise(ys, i, +1)) if r is not None]
        closed = [rise for rise, is_closed in sides if is_closed]
        depth = min(closed) if closed else max(rise for rise, _ in sides)
        if depth < min_depth:
            continue
        # Raw minimum within ±smooth decades, and the extent of the region within half the depth.
        win = np.nonzero(np.abs(s - s[i]) <= smooth)[0] if smooth > 0 else np.array([i])
        j = i if at_end or at_start else win[np.argmin(y[win])]
        at_end, at_start = j == m - 1, j == 0
        level = ys[i] + 0.5 * depth
        lo = i
        while lo > 0 and ys[lo - 1] <= level:
            lo -= 1
        hi = i
        while hi < m - 1 and ys[hi + 1] <= level:
            hi += 1
        out.append(make(usable[j], depth, usable[lo], usable[hi], at_end, at_start))
    # Residual noise can leave several candidates inside one dip: keep the deepest per region.
    kept: list[SlowPoint] = []
    for sp in sorted(out, key=lambda p: (-p.depth, p.index)):
        if not any(k.t_start <= sp.t <= k.t_end for k in kept):
            kept.append(sp)
    return sorted(kept, key=lambda p: p.index)


# ------------------------------------------------------------------------------- grid resolution
def _dynamics_only(problem):
    """The same dynamics without the per-state extras (population error, held-out set) that a solver
    run evaluates at every saved state: segments only need θ. Falls back to the problem itself."""
    try:
        if getattr(problem, "population_method", None) == "source":
            return problem  # the loss itself is the population loss
        if problem.has_population or getattr(problem, "test", None) is not None:
            from ..data import Dataset

            d = problem.data  # without its teacher: no population error to evaluate
            return problem._replace(data=Dataset(d.x, d.y, name=d.name), population=None, test_data=None)
    except (AttributeError, TypeError, ValueError):
        pass
    return problem


def _segment_flow(problem, trajectory, i, n_inner):
    """States of the same flow strictly inside (t_i, t_{i+1}), re-solved from the saved state θ_i."""
    from ..dynamics.flow import SOLVERS, gradient_flow
    from ..dynamics.save_times import save_slots

    t, meta = trajectory.t, trajectory.meta  # a _View
    a, b = float(t[i]), float(t[i + 1])
    frac = np.arange(1, n_inner + 1) / (n_inner + 1)
    ts = a * (b / a) ** frac if a > 0 else a + (b - a) * frac
    solver = meta.get("solver", "bdf")
    opts = {k: meta[k] for k in ("rtol", "atol", "pcoeff", "icoeff", "max_norm") if meta.get(k) is not None}
    # Padded to the flow's number of save slots, the segment runs the flow's own compiled solve.
    seg = gradient_flow(problem, trajectory.theta[i], b, t0=a, save_ts=ts,
                        solver=solver if solver in SOLVERS else "bdf", pad_slots=save_slots(meta), **opts)
    inner = (seg.t > a) & (seg.t < b)
    return seg.t[inner], seg.theta[inner]


def _segment_gd(problem, trajectory, i, n_inner):
    """The GD map's own states strictly between the recorded steps k_i and k_{i+1}."""
    from ..dynamics.descent import gradient_descent

    k0, k1 = int(trajectory.step[i]), int(trajectory.step[i + 1])
    lr = float(trajectory.meta["lr"])
    span = k1 - k0
    if k0 > 0:
        ks = np.unique(np.round(k0 * (k1 / k0) ** (np.arange(1, n_inner + 1) / (n_inner + 1))).astype(int))
    else:
        ks = np.unique(np.round(np.linspace(0, span, n_inner + 2)[1:-1]).astype(int) + k0)
    ks = ks[(ks > k0) & (ks < k1)] - k0
    if ks.size == 0:
        return np.zeros(0), np.zeros((0, trajectory.theta.shape[1])), np.zeros(0, dtype=np.int64)
    seg = gradient_descent(problem, trajectory.theta[i], lr, int(ks[-1]), record_steps=ks)
    keep = (seg.step > 0) & (seg.step < span)
    return k0 * lr + seg.t[keep], seg.theta[keep], k0 + seg.step[keep]


def resolve_trajectory(problem, trajectory: Trajectory, *, max_jump: float, max_log_step: float = 0.1,
                       max_grad_step: float = 1.0, n_inner: int = 8, rounds: int = 4,
                       max_states: int = 20_000, time_limit: float | None = None) -> Trajectory:
    """The same run sampled finely enough that no passage can hide between two saved states.

    Between consecutive saved states i, i+1 (t_i > 0) the run is *unresolved* when the network function
    moves by more than `max_jump` (`function_distance` over the training inputs), log₁₀ t grows by more
    than `max_log_step`, or log₁₀‖∇L‖ changes by more than `max_grad_step` decades. Each unresolved
    segment is re-solved from its saved start with the run's own dynamics — the flow with the run's
    solver and tolerances, or the GD map itself (its states are exact) — with `n_inner` states inside
    (⌈jump / max_jump⌉ − 1 of them rounded up to a power of two, at most `n_inner`, when only the function jump exceeds its limit), and the check repeats on the new segments for up to `rounds` rounds (so the resolution is
    (n_inner + 1)^rounds finer where needed, and untouched where the user's grid already suffices).
    SGD runs and runs without settings are returned unchanged.

    L, ‖∇L‖, R and the held-out metrics are evaluated at the added states only: the saved states keep
    the run's own values, which are those `evaluate_states` gives (checked bit for bit at one saved
    state evaluated beside the added ones; where it differs, a trajectory of another problem, every
    state is evaluated again).

    **Returns:** a `Trajectory` with the added states merged in time order; `stats["resolved_states"]`
    counts them and `stats["resolve_rounds"]` the rounds used.
    """
    return resolve_with_outputs(problem, trajectory, max_jump=max_jump, max_log_step=max_log_step,
                                max_grad_step=max_grad_step, n_inner=n_inner, rounds=rounds,
                                max_states=max_states, time_limit=time_limit)[0]


def resolve_with_outputs(problem, trajectory: Trajectory, *, max_jump: float, max_log_step: float = 0.1,
                         max_grad_step: float = 1.0, n_inner: int = 8, rounds: int = 4,
                         max_states: int = 20_000, time_limit: float | None = None,
                         outputs: np.ndarray | None = None) -> tuple[Trajectory, np.ndarray | None]:
    """`resolve_trajectory`, with the training outputs (`training_outputs`) of the states: `outputs`
    gives those of the saved states when already computed (one row per saved state; rows of non-finite
    states are not read), and the second value holds those of the returned trajectory's states (NaN
    rows for non-finite states; None where the run is returned unchanged and `outputs` was None)."""
    import time as _time

    from ..dynamics.trajectory import evaluate_states
    from ..problem import training_outputs
    from .symmetry import output_distance

    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a flowtools.Trajectory, got {type(trajectory).__name__}.")
    max_jump = _checks.positive("max_jump", max_jump)
    max_log_step = _checks.positive("max_log_step", max_log_step, allow_inf=True)
    max_grad_step = _checks.positive("max_grad_step", max_grad_step, allow_inf=True)
    n_inner = _checks.positive_int("n_inner", n_inner)
    rounds = _checks.positive_int("rounds", rounds, minimum=0)
    if trajectory.method == "gradient_flow":
        segment = _segment_flow
    elif trajectory.method == "gradient_descent" and trajectory.step is not None and "lr" in trajectory.meta:
        segment = _segment_gd
    else:
        return trajectory, outputs
    if outputs is not None and np.shape(outputs)[0] != len(trajectory.t):
        raise ValueError(f"outputs has {np.shape(outputs)[0]} rows but the trajectory has "
                         f"{len(trajectory.t)} saved states; pass training_outputs(problem, "
                         "trajectory.theta) or None.")
    start = _time.perf_counter()
    light = _dynamics_only(problem)
    finite = np.all(np.isfinite(trajectory.theta), axis=1) & np.isfinite(trajectory.grad_norm)
    t = np.asarray(trajectory.t)[finite]
    theta = np.asarray(trajectory.theta)[finite]
    step = None if trajectory.step is None else np.asarray(trajectory.step)[finite]
    gnorm = np.asarray(trajectory.grad_norm)[finite]
    if outputs is not None:
        out = np.asarray(outputs)[finite]
    else:
        out = training_outputs(problem, theta) if len(theta) else np.zeros((0, 0, 1))
    src = np.arange(len(t))  # the row of each state among the saved ones; -1: added
    added, used, longest, per_state = 0, 0, 0.0, 0.0
    todo = np.arange(len(t) - 1)
    for used in range(1, rounds + 1):
        lg = np.log10(np.maximum(gnorm, 1e-300))
        jump = np.asarray(output_distance(out[todo], out[todo + 1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            dlog = np.where(t[todo] > 0, np.log10(t[todo + 1] / np.where(t[todo] > 0, t[todo], 1.0)), 0.0)
        bad = (jump > max_jump) | (dlog > max_log_step) | (np.abs(lg[todo + 1] - lg[todo]) > max_grad_step)
        bad &= t[todo] > 0 if segment is _segment_flow else step[todo + 1] - step[todo] > 1
        # A segment unresolved only by its function jump gets the states that split it into pieces
        # of ≤ max_jump if the motion were even (the next round catches uneven motion); the others n_inner.
        only_jump = (dlog <= max_log_step) & (np.abs(lg[todo + 1] - lg[todo]) <= max_grad_step)
        with np.errstate(invalid="ignore"):
            need = np.where(only_jump, np.ceil(jump / max_jump) - 1, n_inner)
        need = np.clip(np.nan_to_num(need, nan=n_inner), 1, n_inner)
        # Powers of two: every distinct count is one more compiled solve (save_ts has a static length).
        n_seg = np.minimum(2 ** np.ceil(np.log2(need)), n_inner).astype(int)[bad]
        todo = todo[bad]
        if todo.size == 0:
            used -= 1
            break
        new_t, new_theta, new_step = [], [], []
        for i, n_i in zip(todo, n_seg):
            # A segment cannot be interrupted: under a time limit none starts unless the longest one so
            # far would still fit, with the evaluation of every state at the end (the run's losses and
            # gradients, and held-out metrics: about two evaluations per state at the pace measured).
            if time_limit is not None and (_time.perf_counter() - start + longest
                                           + 2 * per_state * (len(t) + added) > time_limit):
                break
            if added >= max_states:
                break
            t_seg = _time.perf_counter()
            # The flow's segments take the problem the flow ran on (one compiled solve serves both).
            res = segment(problem if segment is _segment_flow else light,
                          _View(t, theta, trajectory, step), i, int(n_i))
            longest = max(longest, _time.perf_counter() - t_seg)
            new_t.append(res[0])
            new_theta.append(res[1])
            if segment is _segment_gd:
                new_step.append(res[2])
            added += len(res[0])
        if not new_t:
            break
        nt = np.concatenate(new_t)
        nth = np.concatenate(new_theta)
        ok = np.all(np.isfinite(nth), axis=1)
        nt, nth = nt[ok], nth[ok]
        t_eval = _time.perf_counter()
        _, ng, _ = evaluate_states(light, nth)
        per_state = max(per_state, (_time.perf_counter() - t_eval) / max(len(nth), 1))
        t_all = np.concatenate([t, nt])
        order = np.argsort(t_all, kind="stable")
        is_new = np.concatenate([np.zeros(len(t), bool), np.ones(len(nt), bool)])[order]
        src = np.concatenate([src, np.full(len(nt), -1)])[order]
        t = t_all[order]
        theta = np.concatenate([theta, nth])[order]
        gnorm = np.concatenate([gnorm, np.asarray(ng)])[order]
        out = np.concatenate([out, training_outputs(problem, nth)])[order]
        if step is not None:
            step = np.concatenate([step, np.concatenate(new_step)[ok]])[order]
        # next round: the segments that touch a new state
        todo = np.unique(np.concatenate([np.nonzero(is_new)[0] - 1, np.nonzero(is_new)[0]]))
        todo = todo[(todo >= 0) & (todo < len(t) - 1)]
        if time_limit is not None and _time.perf_counter() - start > time_limit or added >= max_states:
            break
    if added == 0:
        return trajectory, outputs
    stats = dict(trajectory.stats, resolved_states=int(added), resolve_rounds=int(used))
    values = _state_values(problem, trajectory, finite, theta, src)
    return dataclasses.replace(trajectory, t=t, theta=theta, stats=stats, step=step, **values), out


def _state_values(problem, trajectory, finite, theta, src) -> dict:
    """L, ‖∇L‖, R and (where the run has them) the held-out metrics at every row of `theta`: evaluated
    at the added rows (`src` < 0) and taken from the run at the saved ones (`src`: their rows among its
    `finite` states) when one saved state, evaluated beside the added ones, reproduces the run's values
    bit for bit; else evaluated at every row."""
    from ..dynamics.trajectory import evaluate_states
    from ..problem import held_out_metrics

    held = getattr(trajectory, "test_loss", None) is not None

    def at(rows):
        loss, gnorm, gen = evaluate_states(problem, theta[rows])
        vals = dict(loss=np.asarray(loss), grad_norm=np.asarray(gnorm),
                    gen_error=None if gen is None else np.asarray(gen))
        return dict(vals, **held_out_metrics(problem, theta[rows])) if held else vals

    new, saved = np.flatnonzero(src < 0), np.flatnonzero(src >= 0)
    if saved.size:
        got = at(np.append(new, saved[-1]))
        run = {k: getattr(trajectory, k) for k in got}
        run = {k: None if v is None else np.asarray(v)[finite] for k, v in run.items()}
        if all((got[k] is None) == (run[k] is None)
               and (got[k] is None or np.array_equal(got[k][-1], run[k][src[saved[-1]]], equal_nan=True))
               for k in got):
            values = {}
            for k, v in got.items():
                if v is not None:
                    values[k] = np.empty(len(theta), dtype=v.dtype)
                    values[k][new], values[k][saved] = v[:-1], run[k][src[saved]]
                else:
                    values[k] = None
            return values
    return at(np.arange(len(theta)))


@dataclasses.dataclass
class _View:
    """The (t, θ, step) arrays of a trajectory being resolved, with the original's settings."""

    t: np.ndarray
    theta: np.ndarray
    base: Trajectory
    step: np.ndarray | None = None

    @property
    def meta(self):
        return self.base.meta
