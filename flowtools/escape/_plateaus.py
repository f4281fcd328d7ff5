"""Plateaus of a learning curve: the length of the first (`plateau_length`) and every plateau of a
saddle-to-saddle run (`plateaus`), the spans of time a trajectory spends near saddles as read off its loss.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import _checks, _deprecation


@dataclasses.dataclass(frozen=True)
class Plateau:
    """A plateau of a learning curve.

    **Fields:** `length` = t_end − t_start (nan if no end was found), `t_start`, `t_end`, `loss_plateau`
    (the reference loss level of the plateau), `loss_target` (the level whose crossing ends it, method
    "drop"), `method`, `status` ("ended"; "no_drop": the loss never fell far enough, or no flat span
    was followed by a drop; "flat": the curve never decreases), `message`, `lower_bound` (t_last −
    t_start when the plateau had not ended), `loss_exit` (the loss where it ends; `plateaus` only).
    """

    length: float
    t_start: float
    t_end: float
    loss_plateau: float
    loss_target: float
    method: str
    status: str
    message: str
    lower_bound: float
    loss_exit: float = math.nan

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    as_dict = _deprecation.renamed_function(to_dict, "as_dict")


def plateau_length(trajectory, *, method: str = "drop", fraction: float = 0.5, threshold: float = 0.05,
                   t_start: float | None = None, loss_final: float | None = None) -> Plateau:
    """The length of the plateau at the start of a learning curve.

    **Methods:**

    - "drop" (default): L_p = L(t_start) (t_start default t_0) is the plateau level, L_f the final loss
      (or `loss_final`). The plateau ends at the first time the loss reaches
      L_p − fraction·(L_p − L_f), interpolated linearly in log t between saved states (in t when the
      earlier one is t = 0). length = t_end − t_start. `fraction` = 0.5 is the half-way time.
    - "slope": on the saved states with t > 0, the local rate of relative decrease per log-time
      s_k = −Δlog L/Δlog t between consecutive states. The plateau is the longest (in time) run of
      consecutive intervals with s_k < `threshold` that is followed by a drop (a flat run reaching the
      last state is a converged tail or an unfinished plateau, and is not counted); t_start, t_end are
      its ends and L_p the loss at its start. Status "flat" if every interval is flat.

    **Returns:** a `Plateau` (status "no_drop" with a lower bound when the loss never reaches the level).
    """
    method = _checks.choice("method", method, ["drop", "slope"])
    t = _checks.finite_array("trajectory.t", getattr(trajectory, "t", None), ndim=1)
    loss = _checks.finite_array("trajectory.loss", getattr(trajectory, "loss", None), ndim=1)
    if loss.size != t.size or t.size < 2:
        raise ValueError("trajectory needs at least 2 saved states with one loss value each.")
    nan = math.nan
    if method == "drop":
        fraction = float(fraction)
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction}.")
        i0 = 0 if t_start is None else int(np.searchsorted(t, float(t_start)))
        if i0 >= t.size - 1:
            raise ValueError(f"t_start={t_start} leaves fewer than 2 saved states.")
        lp = float(loss[i0])
        lf = float(loss[-1] if loss_final is None else loss_final)
        target = lp - fraction * (lp - lf)
        if not lf < lp:
            return Plateau(nan, float(t[i0]), nan, lp, target, method, "flat",
                           f"the loss never fell below its start value {lp:.6g}", float(t[-1] - t[i0]))
        below = np.flatnonzero(loss[i0:] <= target)
        if below.size == 0:
            lb = float(t[-1] - t[i0])
            return Plateau(nan, float(t[i0]), nan, lp, target, method, "no_drop",
                           f"the loss never reached {target:.6g}; plateau ≥ {lb:.6g}", lb)
        k = i0 + int(below[0])
        ta, tb, la, lb_ = t[k - 1], t[k], loss[k - 1], loss[k]
        frac = 0.0 if la == lb_ else float(np.clip((la - target) / (la - lb_), 0, 1))
        t_end = float(np.exp(np.log(ta) + frac * np.log(tb / ta))) if ta > 0 else float(ta + frac * (tb - ta))
        length = t_end - float(t[i0])
        return Plateau(length, float(t[i0]), t_end, lp, target, method, "ended",
                       f"loss reached {target:.6g} ({fraction:g} of the way from {lp:.6g} to {lf:.6g}) at "
                       f"t={t_end:.6g}", length)
    threshold = _checks.positive("threshold", threshold)
    keep = (t > 0) & (loss > 0)
    tt, ll = t[keep], loss[keep]
    if tt.size < 2:
        raise ValueError("method='slope' needs at least 2 saved states with t > 0 and loss > 0.")
    s = -np.diff(np.log(ll)) / np.diff(np.log(tt))
    flat = s < threshold
    runs, start = [], None  # maximal runs of flat intervals, as (first state, last state)
    for k, f in enumerate(np.append(flat, False)):
        if f and start is None:
            start = k
        elif not f and start is not None:
            runs.append((start, k))
            start = None
    if len(runs) == 1 and runs[0] == (0, tt.size - 1):
        return Plateau(nan, float(tt[0]), nan, float(ll[0]), nan, method, "flat",
                       f"-dlogL/dlogt < {threshold:g} everywhere: the whole curve is flat",
                       float(tt[-1] - tt[0]))
    # A run that reaches the last saved state has not ended (a converged tail, or a plateau still
    # in progress); only runs followed by a drop are plateaus.
    ended = [(a, b) for a, b in runs if b < tt.size - 1]
    if not ended:
        return Plateau(nan, nan, nan, nan, nan, method, "no_drop",
                       f"no span with -dlogL/dlogt < {threshold:g} is followed by a drop", nan)
    a, b = max(ended, key=lambda ab: tt[ab[1]] - tt[ab[0]])
    length = float(tt[b] - tt[a])
    return Plateau(length, float(tt[a]), float(tt[b]), float(ll[a]), nan, method, "ended",
                   f"longest span with -dlogL/dlogt < {threshold:g} followed by a drop: "
                   f"t in [{tt[a]:.6g}, {tt[b]:.6g}]", length)


def _log_loss_noise(s, x, smooth: float) -> tuple[np.ndarray, np.ndarray]:
    """(x̄, σ): a running median of x = log L over ±`smooth` decades of t (s = log10 t), and the local
    noise level of x, 1.4826 × the running median of |x − x̄| over ±4·`smooth` decades (a robust standard
    deviation, estimated from the run itself). σ = 0 and x̄ = x when `smooth` is 0."""
    from ..landscape.slow import running_median

    if smooth <= 0:
        return x.copy(), np.zeros_like(x)
    xs = running_median(s, x, smooth)
    return xs, 1.4826 * running_median(s, np.abs(x - xs), 4 * smooth)


def plateaus(trajectory, *, threshold: float = 0.05, band: float = 0.05, min_decades: float = 0.1,
             smooth: float | None = None, noise_factor: float = 3.0,
             include_unfinished: bool = False) -> list[Plateau]:
    """Every plateau of a learning curve, in time order (saddle-to-saddle runs have several).

    A plateau is a maximal stretch of saved states (t > 0, L > 0) over which log L stays within a band:
    it starts at a state where the curve is flat in log-log coordinates (−Δlog L̄/Δlog t < `threshold`
    to the next state) and extends while max log L̄ − min log L̄ over the stretch is at most
    max(`band`, `noise_factor` · σ), σ the local noise level of log L at its start; it must last at
    least `min_decades` decades of t and be followed by a drop out of the band. Stretches are taken
    greedily from the earliest start; one whose median level lies within the band of the previous
    plateau's, the two spanning at most twice the band, continues it (a noisy run may leave the band
    briefly without leaving the saddle). L̄ is L itself for gradient flow and GD, and for SGD a running
    median over ±`smooth` decades of t with σ the robust spread of log L about it (estimated from the
    run), so that one noisy plateau is one plateau, not a string of fragments.

    A relative slope alone (the rule of `plateau_length(method="slope")`) cuts a plateau short at late
    times, where the saddle's slow drift of L is steep in log t: the band keeps it whole. A flat stretch
    that reaches the last saved state is a converged tail, a noise ball or an unfinished plateau: it is
    returned (status "no_drop", `t_end` nan, `lower_bound` its length so far) only with
    `include_unfinished`.

    **Arguments:** `threshold` (> 0), `band` (> 0, in log L: 0.05 is a 5 % change), `min_decades` (≥ 0),
    `smooth` (decades; None: 0 for deterministic runs, 0.05 for SGD), `noise_factor` (≥ 0).

    **Returns:** a list of `Plateau` (method "level"): `loss_plateau` is the median loss over the
    plateau, `loss_exit` the loss at exit, `t_start` / `t_end` entry and exit, `length` = exit − entry.
    """
    threshold = _checks.positive("threshold", threshold)
    band = _checks.positive("band", band)
    min_decades = _checks.nonnegative("min_decades", min_decades)
    noise_factor = _checks.nonnegative("noise_factor", noise_factor)
    if smooth is None:
        smooth = 0.05 if getattr(trajectory, "method", None) == "sgd" else 0.0
    smooth = _checks.nonnegative("smooth", smooth)
    t = _checks.finite_array("trajectory.t", getattr(trajectory, "t", None), ndim=1)
    loss = _checks.finite_array("trajectory.loss", getattr(trajectory, "loss", None), ndim=1)
    if loss.size != t.size:
        raise ValueError(f"trajectory.loss has {loss.size} values for {t.size} saved times.")
    keep = (t > 0) & (loss > 0)
    tt, ll = t[keep], loss[keep]
    if tt.size < 2:
        raise ValueError("plateaus needs at least 2 saved states with t > 0 and loss > 0.")
    s = np.log10(tt)
    x, sigma = _log_loss_noise(s, np.log(ll), smooth)
    slope = -np.diff(x) / np.diff(np.log(tt))
    m, out, a = tt.size, [], 0
    while a < m - 1:
        if slope[a] >= threshold:
            a += 1
            continue
        width = max(band, noise_factor * float(sigma[a]))
        lo = hi = x[a]
        b = a
        while b + 1 < m and max(hi, x[b + 1]) - min(lo, x[b + 1]) <= width:
            b += 1
            lo, hi = min(lo, x[b]), max(hi, x[b])
        if s[b] - s[a] < min_decades:
            a += 1
            continue
        if out and out[-1].status == "ended":  # a noise-driven gap within one level: rejoin
            a0 = int(np.searchsorted(tt, out[-1].t_start))
            if abs(np.median(x[a:b + 1]) - np.log(out[-1].loss_plateau)) <= width and \
                    np.ptp(x[a0:b + 1]) <= 2 * width:
                out.pop()
                a = a0
        level = float(np.median(ll[a:b + 1]))
        length = float(tt[b] - tt[a])
        if b < m - 1:
            out.append(Plateau(length, float(tt[a]), float(tt[b]), level, math.nan, "level", "ended",
                               f"L within a factor e^{width:.3g} of {level:.6g} for t in [{tt[a]:.6g}, "
                               f"{tt[b]:.6g}], then a drop", length, float(ll[b])))
        elif include_unfinished:
            out.append(Plateau(math.nan, float(tt[a]), math.nan, level, math.nan, "level", "no_drop",
                               f"flat from t={tt[a]:.6g} to the last saved state: a converged tail, a noise "
                               "ball or an unfinished plateau", length, float(ll[b])))
        a = b + 1
    return out
