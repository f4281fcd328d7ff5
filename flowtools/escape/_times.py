"""Escape times: how long a trajectory stays in a ball around a point, their distribution over an
ensemble, and the linearized prediction.

Escape time (definition used throughout flowtools). Given a ball B = {θ : d(θ, c) ≤ radius} around a
point c, with d either the parameter distance ‖θ − c‖₂ or the function distance
d_f(θ, c) = ( (1/n) Σ_k ‖f(x_k; θ) − f(x_k; c)‖² )^{1/2} on the problem's training inputs (the package's
one function distance, `flowtools.landscape.symmetry.function_distance`), the escape
time of a trajectory is t_out − t_in: t_in is when it first enters B (t_0 when it starts inside) and
t_out the first time after t_in at which it is outside B again. Both crossing times are interpolated
between the two saved states that bracket them (see `escape_time`).

Near a nondegenerate saddle with unstable eigenvalue λ_u of −∇²L, a start at distance d_0 along the
unstable direction grows like d_0 e^{λ_u t}, so the escape time is log(radius/d_0)/λ_u + O(1)
(`linearized_escape_time`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from .. import _checks, _deprecation
from ..landscape.symmetry import output_distance
from ..problem import Problem
from ._distances import METRICS, center_theta, distances


@dataclasses.dataclass(frozen=True)
class EscapeTime:
    """When a trajectory entered and left a ball, and how that was decided.

    **Fields:**

    - `time`: t_out − t_in, or nan when it did not both enter and leave (see `status`).
    - `t_in`, `t_out`: the interpolated crossing times (t_in = t_0 when it started inside; nan if
      unknown).
    - `status`: "escaped", "never_left" (inside at the last saved state) or "never_entered".
    - `message`: the status in words, with the lower bound when it never left.
    - `started_inside`: whether d(θ(t_0), c) ≤ radius.
    - `lower_bound`: for "never_left", t_last − t_in (the escape time is at least this); else = time.
    - `metric`, `radius`, `interpolation`: the settings used (`interpolation` is "event" when
      `escape_flow` located t_out by root finding on its event).
    - `d0`: the distance at t_0.
    - `exit`: the exit rule used ("first", "hysteresis" or "last"; see `escape_time`).
    """

    time: float
    t_in: float
    t_out: float
    status: str
    message: str
    started_inside: bool
    lower_bound: float
    metric: str
    radius: float
    interpolation: str
    d0: float
    exit: str = "first"

    @property
    def escaped(self) -> bool:
        return self.status == "escaped"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    as_dict = _deprecation.renamed_function(to_dict, "as_dict")


def _crossing(t_a, t_b, d_a, d_b, level, interpolation):
    """Time at which d crosses `level` between (t_a, d_a) and (t_b, d_b).

    Linear interpolation of log d (of d if either is 0) against s = log t ("log", when t_a > 0) or s = t
    ("linear"). log d linear in t is exact for exponential growth d_0 e^{λt} (linear saddle); log d
    linear in log t is exact for power laws d ∝ t^p.
    """
    if d_a == d_b:
        return float(t_b)
    use_log_d = d_a > 0 and d_b > 0 and level > 0
    ya, yb, yl = (np.log(d_a), np.log(d_b), np.log(level)) if use_log_d else (d_a, d_b, level)
    frac = float(np.clip((yl - ya) / (yb - ya), 0.0, 1.0))
    if interpolation == "log" and t_a > 0:
        return float(np.exp(np.log(t_a) + frac * (np.log(t_b) - np.log(t_a))))
    return float(t_a + frac * (t_b - t_a))


def escape_time(trajectory, center, radius: float, *, metric: str = "parameter",
                problem: Problem | None = None, interpolation: str = "log", refine: str = "auto",
                coarse: float = 0.01, exit: str = "auto", exit_radius: float | None = None,
                drift: bool | None = None) -> EscapeTime:
    """The time a trajectory spends between entering and leaving the ball of `radius` around `center`.

    **Arguments:**

    - `trajectory`: a `Trajectory` (or anything with `t` and `theta`).
    - `center`: a θ vector, or an object with `.theta` (e.g. a critical point).
    - `radius`: the ball's radius, in the units of `metric`.
    - `metric`: "parameter" or "function" (see `distances`; "function" needs `problem`).
    - `interpolation`: how crossing times between saved states are found: "log" interpolates log d
      linearly in log t (right for log-spaced saves; falls back to t when the earlier time is 0),
      "linear" interpolates log d linearly in t (exact for exponential growth near a linear saddle).
    - `refine`: "auto" (default) re-solves the flow across each bracketing pair of saves when it can
      (a gradient-flow trajectory and `problem` given), else interpolates and warns when the bracket is
      coarse; "solve" requires the re-solve; "none" only interpolates (and warns when coarse).
    - `coarse`: a bracket wider than `coarse` × the escape time is coarse.
    - `exit`: which exit ends the stay. "first": the first exit after t_in. "hysteresis": the last
      crossing of `radius` before the run first goes beyond `exit_radius` (default 2 × `radius`), so a
      noisy run that wanders back and forth across the radius makes one stay. "last": the last crossing
      of `radius` after which the run never returns. "auto" (default): "first" for gradient flow and GD
      (deterministic: a run that leaves a saddle's ball does not wander back across it), "hysteresis"
      for SGD and for trajectories of unknown method that are not gradient flow or GD.
    - `drift`: measure distances from the run's drift, the running mean of its states (or, for
      metric "function", of its training outputs) over ±0.1 decades of t, the rule of noisy itineraries
      (`flowtools.itineraries.NOISE_WINDOW`), so that single noisy states do not cross the radius.
      None (default): True for SGD, False otherwise.

    Re-solving: the flow is integrated again from the saved state before the crossing over the bracket
    (the same solver and tolerances, 64 equally spaced saves), the crossing is bracketed on that grid,
    and this is done twice; the crossing time is then known to about 1e-4 of the original bracket
    before interpolation (`interpolation` is then "resolved"). An interpolated crossing in a bracket
    wider than `coarse` × the escape time raises a `UserWarning`: on the default log-spaced save grid
    interpolation read 34.6 for an event-located exit at 33.2.

    The ball is closed: a state is inside when d ≤ radius. t_in is t_0 if the first state is inside,
    else the interpolated first entry; t_out is the interpolated first exit after t_in.

    **Returns:** an `EscapeTime`. A trajectory that never leaves gets status "never_left", time nan and
    the lower bound t_last − t_in; one that never enters gets "never_entered". Nothing is silent.
    """
    radius = _checks.positive("radius", radius)
    exit = _checks.choice("exit", exit, ["auto", "first", "hysteresis", "last"])
    method = getattr(trajectory, "method", None)
    if exit == "auto":
        exit = "first" if method in ("gradient_flow", "gradient_descent") else "hysteresis"
    if exit_radius is None:
        exit_radius = 2.0 * radius
    elif _checks.positive("exit_radius", exit_radius) < radius:
        raise ValueError(f"exit_radius={exit_radius:g} is below radius={radius:g}; pass exit_radius ≥ "
                         "radius.")
    interpolation = _checks.choice("interpolation", interpolation, ["log", "linear"])
    metric = _checks.choice("metric", metric, METRICS)
    refine = _checks.choice("refine", refine, ["auto", "solve", "none"])
    coarse = _checks.positive("coarse", coarse)
    is_flow = getattr(trajectory, "method", None) == "gradient_flow"
    if refine == "solve" and not (is_flow and isinstance(problem, Problem)):
        raise ValueError("refine='solve' needs a gradient-flow Trajectory and problem=<its Problem>; "
                         "use refine='none' to interpolate between saved states.")
    resolve = refine != "none" and is_flow and isinstance(problem, Problem)
    t = _checks.finite_array("trajectory.t", getattr(trajectory, "t", None), ndim=1)
    theta = np.asarray(getattr(trajectory, "theta", None), dtype=np.float64)
    if theta.ndim != 2 or theta.shape[0] != t.size or t.size == 0:
        raise ValueError(f"trajectory.theta must have shape ({t.size}, n_params), got {theta.shape}.")
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("trajectory.t must be strictly increasing.")
    good = np.all(np.isfinite(theta), axis=1)
    note = ""
    if not good[0]:
        raise ValueError("trajectory.theta[0] is not finite; there is no escape time to measure.")
    if not np.all(good):  # a run that ended non-finite: use the states before the first bad one
        k = int(np.argmin(good))
        note = f" (states from t={t[k]:.6g} on are non-finite and were ignored)"
        t, theta = t[:k], theta[:k]
    if drift is None:
        drift = method == "sgd"
    if drift:
        from ..itineraries import drift as running_drift
        from ..problem import training_outputs

        if metric == "function":
            if not isinstance(problem, Problem):
                raise ValueError("metric='function' needs problem=<the flowtools.Problem> for its inputs.")
            c = center_theta(center, problem.n_params)
            d = output_distance(running_drift(t, training_outputs(problem, theta)),
                                training_outputs(problem, c[None]))
        else:
            d = distances(running_drift(t, theta), center)
    else:
        d = distances(theta, center, metric=metric, problem=problem)
    inside = d <= radius
    common = dict(metric=metric, radius=radius, exit=exit,
                  interpolation="resolved" if resolve else interpolation, d0=float(d[0]))
    brackets = []

    def cross(i):  # the crossing between saves i − 1 and i
        brackets.append(float(t[i] - t[i - 1]))
        if resolve:
            meta = getattr(trajectory, "meta", None) or {}
            return _resolved_crossing(problem, meta, t[i - 1], t[i], d[i - 1], d[i], theta[i - 1], center,
                                      radius, metric, interpolation)
        return _crossing(t[i - 1], t[i], d[i - 1], d[i], radius, interpolation)

    nan = math.nan
    if inside[0]:
        i_in, t_in, started = 0, float(t[0]), True
    else:
        hits = np.flatnonzero(inside)
        if hits.size == 0:
            return EscapeTime(nan, nan, nan, "never_entered",
                              f"never within {metric} distance {radius:g} of the center "
                              f"(closest {np.min(d):.4g} at t={t[np.argmin(d)]:.6g}){note}", False, nan,
                              **common)
        i_in = int(hits[0])
        t_in = cross(i_in)
        started = False
    outs = np.flatnonzero(~inside[i_in:])
    if outs.size == 0:
        lb = float(t[-1] - t_in)
        return EscapeTime(nan, t_in, nan, "never_left",
                          f"still inside at the last saved state t={t[-1]:.6g} (distance {d[-1]:.4g} ≤ "
                          f"{radius:g}); escape time ≥ {lb:.6g}. Run longer.{note}", started, lb, **common)
    i_out = i_in + int(outs[0])
    if exit != "first":
        beyond = np.flatnonzero(d[i_in:] > exit_radius) if exit == "hysteresis" else np.array([], int)
        stop = i_in + int(beyond[0]) if beyond.size else d.size  # the stay ends before this state
        back = i_in + np.flatnonzero(inside[i_in:stop])
        if stop == d.size and inside[-1]:  # inside at the end: it never left
            i_out = d.size
        else:
            i_out = int(back[-1]) + 1 if back.size else i_out
        if i_out >= d.size:
            lb = float(t[-1] - t_in)
            return EscapeTime(nan, t_in, nan, "never_left",
                              f"inside at the last saved state t={t[-1]:.6g} (distance {d[-1]:.4g}) or never "
                              f"beyond exit_radius={exit_radius:g} after entering; escape time ≥ {lb:.6g}. "
                              f"Run longer.{note}", started, lb, **common)
    t_out = cross(i_out)
    tau = t_out - t_in
    if not resolve and brackets and max(brackets) > coarse * tau:
        if is_flow:
            advice = ("Pass problem= with the gradient-flow trajectory to re-solve the bracket, save more "
                      "densely, or use escape_flow.")
        elif method in ("gradient_descent", "sgd"):
            advice = "Record more steps (record_steps= or a larger n_records)."
        else:
            advice = "Save more densely."
        warnings.warn(f"escape_time: a crossing lies between saved states {max(brackets):.4g} apart, more "
                      f"than {coarse:g} of the escape time {tau:.4g}; the interpolated time may be off by "
                      f"a few percent. {advice}", UserWarning, stacklevel=2)
    return EscapeTime(tau, t_in, t_out, "escaped",
                      f"{'started inside' if started else f'entered at t={t_in:.6g}'}, left at "
                      f"t={t_out:.6g} ({exit} exit){note}", started, tau, **common)


@dataclasses.dataclass(frozen=True)
class EscapeDistribution:
    """Escape times of an ensemble (e.g. SGD runs over seeds) from one ball.

    **Fields:** `times` (the escaped runs' times, sorted), `median`, `quantiles` ({q: time} over the
    escaped runs), `n` (runs), `n_escaped`, `n_never_left` (censored: still inside at their end; their
    lower bounds are `lower_bounds`), `n_never_entered`, `message`. With censored runs the median and
    quantiles of the escaped runs understate the ensemble's.
    """

    times: np.ndarray
    median: float
    quantiles: dict
    n: int
    n_escaped: int
    n_never_left: int
    n_never_entered: int
    lower_bounds: np.ndarray
    message: str

    def to_dict(self) -> dict:
        return dict(times=self.times.tolist(), median=self.median,
                    quantiles={str(q): v for q, v in self.quantiles.items()}, n=self.n,
                    n_escaped=self.n_escaped, n_never_left=self.n_never_left,
                    n_never_entered=self.n_never_entered, lower_bounds=self.lower_bounds.tolist(),
                    message=self.message)

    as_dict = _deprecation.renamed_function(to_dict, "as_dict")


def escape_time_distribution(escapes, quantiles=(0.1, 0.25, 0.75, 0.9)) -> EscapeDistribution:
    """The distribution of escape times over an ensemble: `escapes` is a sequence of `EscapeTime` (one
    per run, e.g. per SGD seed, all from `escape_time` with the same ball and exit rule).

    **Returns:** an `EscapeDistribution` (median and `quantiles` of the escaped runs; nan when none
    escaped). **Raises:** `TypeError` for an entry that is not an `EscapeTime`, `ValueError` for an empty
    sequence or a quantile outside [0, 1].
    """
    escapes = list(escapes)
    if not escapes:
        raise ValueError("escapes is empty; pass one EscapeTime per run.")
    for i, e in enumerate(escapes):
        if not isinstance(e, EscapeTime):
            raise TypeError(f"escapes[{i}] is a {type(e).__name__}, not an EscapeTime (from escape_time).")
    qs = tuple(float(q) for q in quantiles)
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"quantiles must lie in [0, 1], got {qs}.")
    times = np.sort(np.array([e.time for e in escapes if e.escaped], dtype=float))
    bounds = np.array([e.lower_bound for e in escapes if e.status == "never_left"], dtype=float)
    n_entered_not = sum(e.status == "never_entered" for e in escapes)
    med = float(np.median(times)) if times.size else math.nan
    qd = {q: (float(np.quantile(times, q)) if times.size else math.nan) for q in qs}
    msg = f"{times.size} of {len(escapes)} runs escaped; median {med:.4g}"
    if bounds.size:
        msg += (f"; {bounds.size} still inside at their end (escape time ≥ {bounds.min():.4g}): the "
                "median understates the ensemble's")
    if n_entered_not:
        msg += f"; {n_entered_not} never entered the ball"
    return EscapeDistribution(times, med, qd, len(escapes), int(times.size), int(bounds.size),
                              int(n_entered_not), bounds, msg)


def _resolved_crossing(problem, meta, t_a, t_b, d_a, d_b, theta_a, center, radius, metric, interpolation,
                       levels: int = 2, n_fine: int = 64):
    """The crossing time of d(θ(t), c) = radius in (t_a, t_b], from the flow re-solved from θ(t_a)."""
    from ..dynamics.flow import gradient_flow

    opts = {k: meta[k] for k in ("solver", "rtol", "atol") if k in meta}
    t_a, t_b, d_a, d_b = float(t_a), float(t_b), float(d_a), float(d_b)
    th_a = np.asarray(theta_a)
    side = d_a <= radius
    for _ in range(levels):
        tr = gradient_flow(problem, th_a, t_b, t0=t_a, save_ts=np.linspace(t_a, t_b, n_fine + 1)[1:], **opts)
        tt, th = np.asarray(tr.t), np.asarray(tr.theta)
        ok = np.all(np.isfinite(th), axis=1)
        tt, th = tt[ok], th[ok]
        dd = distances(th, center, metric=metric, problem=problem)
        flip = np.flatnonzero((dd <= radius) != side)
        if flip.size == 0 or flip[0] == 0:  # the re-solve does not cross: keep the saved bracket
            break
        k = int(flip[0])
        t_a, t_b, th_a, d_a, d_b = float(tt[k - 1]), float(tt[k]), th[k - 1], float(dd[k - 1]), float(dd[k])
    return _crossing(t_a, t_b, d_a, d_b, radius, interpolation)


def linearized_escape_time(d0: float, radius: float, lambda_u: float) -> float:
    """log(radius/d0)/λ_u: the time for d_0 e^{λ_u t} to reach `radius` (linear flow near a saddle whose
    unstable eigenvalue of −∇²L is λ_u > 0, started on the unstable direction)."""
    d0 = _checks.positive("d0", d0)
    radius = _checks.positive("radius", radius)
    lambda_u = _checks.positive("lambda_u", lambda_u)
    return math.log(radius / d0) / lambda_u
