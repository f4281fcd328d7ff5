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

__all__ = ["SlowPoint", "slow_points"]


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


def _running_median(s, y, half_width):
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
    ys = _running_median(s, y, smooth)
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
