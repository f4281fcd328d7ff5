"""Saddle escape: escape times from trajectories, the linearized prediction, plateau lengths, bottleneck
initializations, a flow that stops on escape, and scaling-law fits with bootstrap confidence intervals.

Escape time (definition used throughout flowtools). Given a ball B = {θ : d(θ, c) ≤ radius} around a
point c, with d either the parameter distance ‖θ − c‖₂ or the function distance
d_f(θ, c) = ( (1/n) Σ_k ‖f(x_k; θ) − f(x_k; c)‖² )^{1/2} on the problem's training inputs (the package's
one function distance, `flowtools.landscape.symmetry.function_distance`), the escape
time of a trajectory is t_out − t_in: t_in is when it first enters B (t_0 when it starts inside) and
t_out the first time after t_in at which it is outside B again. Both crossing times are interpolated
between the two saved states that bracket them (see `escape_time`).

Near a nondegenerate saddle with unstable eigenvalue λ_u of −∇²L, a start at distance d_0 along the
unstable direction grows like d_0 e^{λ_u t}, so the escape time is log(radius/d_0)/λ_u + O(1)
(`linearized_escape_time`). For the deep-network saddle at the origin with r bottleneck layers at scale
ε, papers/004 predicts τ = Θ(ε^{−(r−2)}) for r ≥ 3 and τ = Θ(log 1/ε) for r = 2 (`fit_power_law`,
`fit_log_law`).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from . import _checks
from .dynamics.flow import SOLVERS
from .dynamics.results import RESULTS, from_diffrax, result_name
from .dynamics.stiff import start_event
from .dynamics.trajectory import Trajectory, build_trajectory, first_non_finite, solution_states
from .graph import SAME_SET_TOL, match_distance
from .landscape.symmetry import function_distances, output_distance
from .models import MLP
from .problem import Problem

__all__ = [
    "EscapeTime", "escape_time", "distances", "linearized_escape_time",
    "EscapeDistribution", "escape_time_distribution",
    "Plateau", "plateau_length", "plateaus",
    "Basin", "BasinFractions", "basin_fractions", "wilson_interval",
    "ScalingFit", "fit_power_law", "fit_log_law",
    "bottleneck_layers", "bottleneck_init", "bottleneck_saddle",
    "EscapeRun", "escape_flow",
]

_METRICS = ("parameter", "function")


# ------------------------------------------------------------------------------------ distances
def _center_theta(center, n_params: int) -> np.ndarray:
    theta = getattr(center, "theta", center)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim == 2 and theta.shape[0] >= 1 and hasattr(center, "theta"):
        raise TypeError("center has a 2-D .theta (a trajectory?); pass a single point, e.g. traj.theta[-1].")
    return _checks.theta_vector("center", theta, n_params)


def distances(thetas, center, *, metric: str = "parameter", problem: Problem | None = None) -> np.ndarray:
    """Distance of each row of `thetas` to `center`.

    **Arguments:**

    - `thetas`: parameters, shape (m, n_params) (or one vector).
    - `center`: a θ vector, or an object with a `.theta` attribute (e.g. a critical point).
    - `metric`: "parameter" (‖θ − c‖₂) or "function" (RMS output difference on the problem's training
      inputs, ((1/n) Σ_k ‖f(x_k; θ) − f(x_k; c)‖²)^{1/2}); "function" needs `problem`.

    **Returns:** an array of shape (m,).
    """
    metric = _checks.choice("metric", metric, _METRICS)
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    if metric == "function":
        if not isinstance(problem, Problem):
            raise ValueError("metric='function' needs problem=<the flowtools.Problem> for its inputs.")
        n_params = problem.n_params
    else:
        n_params = thetas.shape[1]
    thetas = _checks.theta_batch("thetas", thetas, n_params)
    c = _center_theta(center, n_params)
    if metric == "parameter":
        return np.linalg.norm(thetas - c[None, :], axis=1)
    return function_distances(problem, thetas, c)


# ---------------------------------------------------------------------------------- escape time
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

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    metric = _checks.choice("metric", metric, _METRICS)
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
        from .itineraries import drift as running_drift
        from .problem import training_outputs

        if metric == "function":
            if not isinstance(problem, Problem):
                raise ValueError("metric='function' needs problem=<the flowtools.Problem> for its inputs.")
            c = _center_theta(center, problem.n_params)
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

    def as_dict(self) -> dict:
        return dict(times=self.times.tolist(), median=self.median,
                    quantiles={str(q): v for q, v in self.quantiles.items()}, n=self.n,
                    n_escaped=self.n_escaped, n_never_left=self.n_never_left,
                    n_never_entered=self.n_never_entered, lower_bounds=self.lower_bounds.tolist(),
                    message=self.message)


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
    from .dynamics.flow import gradient_flow

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


# ---------------------------------------------------------------------------------- plateaus
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

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    from .landscape.slow import running_median

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


# ------------------------------------------------------------------------------ basins
@dataclasses.dataclass(frozen=True)
class Basin:
    """One attractor (up to symmetry) and the share of runs that ended there.

    **Fields:** `label` (a graph node id, or "a0", "a1", … for itineraries without nodes), `members`
    (the node ids merged into it), `kind`, `loss`, `signature` (of its representative), `count`,
    `fraction` = count / n_runs, `ci` (the Wilson score interval at the `BasinFractions` confidence).
    """

    label: str
    members: tuple
    kind: str
    loss: float
    signature: tuple
    count: int
    fraction: float
    ci: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class BasinFractions:
    """The attractor fractions of an ensemble (`basin_fractions`): `basins` (largest first), `n_runs`,
    `n_unattracted` (runs that ended unfinished or diverged) with its own `unattracted_ci`,
    `confidence`."""

    basins: tuple
    n_runs: int
    n_unattracted: int
    unattracted_ci: tuple[float, float]
    confidence: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        lines = [f"{self.n_runs} runs, {len(self.basins)} attractor(s) up to symmetry "
                 f"({100 * self.confidence:g}% Wilson intervals):"]
        for b in self.basins:
            lines.append(f"  {b.label:<6s} {b.kind:<18s} L={b.loss:.6g} {b.count:>4d} runs  "
                         f"{b.fraction:.3f} [{b.ci[0]:.3f}, {b.ci[1]:.3f}]")
        if self.n_unattracted:
            lines.append(f"  not attracted: {self.n_unattracted} [{self.unattracted_ci[0]:.3f}, "
                         f"{self.unattracted_ci[1]:.3f}]")
        return "\n".join(lines)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion k/n (Wilson 1927): the p with
    |k/n − p| ≤ z √(p(1 − p)/n), z the two-sided normal quantile at `confidence`."""
    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n and n >= 1, got k={k}, n={n}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}.")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (0.0 if k == 0 else max(0.0, mid - half)), (1.0 if k == n else min(1.0, mid + half))


_ATTRACTOR_KINDS = ("minimum", "degenerate_minimum", "noise_ball")


def basin_fractions(source, *, d_out: int = 1, tol: float = SAME_SET_TOL, confidence: float = 0.95) -> BasinFractions:
    """The fractions of runs that end at each attractor, attractors identified up to symmetry.

    **Arguments:**

    - `source`: a list of `Itinerary` objects (their last visit when `terminal == "attractor"`), or a
      `SaddleGraph` (its attractor nodes: `ends`, kept by `add_to_graph` and summed by `merge`, is the
      number of runs that ended at a node, whatever passed through it; `n_trajectories` is the number of
      runs).
    - `d_out`: the network's output dimension (to read the fingerprints).
    - `tol`: two attractors are one up to symmetry when they are one critical set under the same-set rule
      (`flowtools.graph.match_distance`, default `SAME_SET_TOL`): a function distance (on the
      fingerprints, the training and probe inputs) of at most tol · (1 + d(f, 0)). Only the function
      is compared, not the Morse signature: the zero count of a degenerate minimum varies along its
      critical set, its function does not.
    - `confidence`: of the Wilson intervals.

    **Returns:** a `BasinFractions`.
    """
    tol = _checks.positive("tol", tol)
    d_out = _checks.positive_int("d_out", d_out)
    items = []  # (member id, kind, loss, signature, fingerprint, count)
    if hasattr(source, "graph") and hasattr(source, "n_trajectories"):
        n_runs = int(source.n_trajectories)
        has_ends = any("ends" in a for _, a in source.graph.nodes(data=True))
        for node, a in source.graph.nodes(data=True):
            # `ends`: the runs that ended at the node; graphs written before it was kept have only
            # `visits`, which also counts runs that passed through a minimum node.
            count = int(a.get("ends", 0)) if has_ends else int(a.get("visits", 0))
            if a.get("kind") in _ATTRACTOR_KINDS and count > 0:
                items.append((str(node), a["kind"], float(a["loss"]), tuple(a.get("signature") or ()),
                              np.asarray(a["fingerprint"], float), count))
    else:
        runs = list(source)
        if not all(hasattr(r, "visits") and hasattr(r, "terminal") for r in runs):
            raise TypeError("source must be a SaddleGraph or a list of Itinerary objects (with .visits and "
                            ".terminal).")
        n_runs = len(runs)
        for i, r in enumerate(runs):
            if r.terminal == "attractor" and r.visits:
                v = r.visits[-1]
                items.append((v.node or f"run{i}", v.kind, float(v.loss), tuple(v.signature),
                              np.asarray(v.fingerprint, float), 1))
    if n_runs == 0:
        raise ValueError("basin_fractions needs at least one run.")
    groups: list[dict] = []
    for member, kind, loss, sig, fp, count in items:
        for g in groups:
            if match_distance(dict(fingerprint=g["fp"], signature=g["sig"], kind=g["kind"]),
                              dict(fingerprint=fp, signature=sig, kind=kind), d_out, 0, tol) is not None:
                g["count"] += count
                if member not in g["members"]:
                    g["members"].append(member)
                break
        else:
            groups.append(dict(fp=fp, kind=kind, loss=loss, sig=sig, count=count, members=[member]))
    groups.sort(key=lambda g: -g["count"])
    basins = []
    for j, g in enumerate(groups):
        label = g["members"][0] if not g["members"][0].startswith("run") else f"a{j}"
        basins.append(Basin(label, tuple(g["members"]), g["kind"], g["loss"], g["sig"], g["count"],
                            g["count"] / n_runs, wilson_interval(g["count"], n_runs, confidence)))
    attracted = sum(b.count for b in basins)
    if attracted > n_runs:
        raise ValueError(f"{attracted} attractor visits for {n_runs} runs: a minimum node was passed through "
                         "(GD overshoot?); pass the itineraries instead of the graph.")
    un = n_runs - attracted
    return BasinFractions(tuple(basins), n_runs, un, wilson_interval(un, n_runs, confidence), confidence)


# ------------------------------------------------------------------------------ scaling fits
@dataclasses.dataclass(frozen=True)
class ScalingFit:
    """A least-squares scaling law with a bootstrap confidence interval.

    **Fields:**

    - `law`: "power" (y = A x^p, fitted as log y = log A + p log x) or "log" (y = a + b log x).
    - `slope`: p (power) or b (log); `exponent` is an alias.
    - `intercept`: log A (power) or a (log).
    - `ci`, `intercept_ci`: the bootstrap percentile intervals at `confidence` (default 95%).
    - `r2`: coefficient of determination of the fitted (transformed) regression.
    - `n`: number of points; `n_boot`, `seed`: the bootstrap's settings; `resampled`: "points" or
      "groups"; `intercepts`: "common" or "per_group" (see `fit_power_law`). With per-group intercepts
      `r2` is the within-group r².
    """

    law: str
    slope: float
    intercept: float
    ci: tuple[float, float]
    intercept_ci: tuple[float, float]
    r2: float
    n: int
    n_boot: int
    seed: int
    confidence: float
    resampled: str
    intercepts: str = "common"

    @property
    def exponent(self) -> float:
        return self.slope

    def predict(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self.law == "power":
            return np.exp(self.intercept) * x**self.slope
        return self.intercept + self.slope * np.log(x)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _ols(u, v, g=None, n_groups=0):
    """Least-squares slope and intercept along the last axis (batched over leading axes).

    With integer group codes `g` (same shape as u) each group gets its own intercept and the slope is
    shared (within-group regression); the returned intercept is the mean of the groups' intercepts.
    Also returns the centred sum of squares of u (0 means no slope can be fitted)."""
    if g is None:
        um, vm = u.mean(axis=-1, keepdims=True), v.mean(axis=-1, keepdims=True)
    else:
        onehot = (g[..., None] == np.arange(n_groups)).astype(np.float64)  # (..., n, G)
        count = onehot.sum(axis=-2)
        with np.errstate(invalid="ignore", divide="ignore"):
            gu = np.einsum("...ng,...n->...g", onehot, u) / count
            gv = np.einsum("...ng,...n->...g", onehot, v) / count
        um = np.take_along_axis(np.nan_to_num(gu), g, axis=-1)
        vm = np.take_along_axis(np.nan_to_num(gv), g, axis=-1)
    suu = np.sum((u - um) ** 2, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty groups in a resample, or no slope at all
        slope = np.sum((u - um) * (v - vm), axis=-1) / suu
        if g is None:
            intercept = vm[..., 0] - slope * um[..., 0]
        else:
            intercept = np.nanmean(gv - slope[..., None] * gu, axis=-1)
    return slope, intercept, suu


def _fit(law, u, v, n_boot, seed, confidence, groups, resample, intercepts):
    n = u.size
    if n < 3:
        raise ValueError(f"a scaling fit needs at least 3 points, got {n}.")
    if np.unique(u).size < 2:
        raise ValueError("a scaling fit needs at least 2 distinct x values.")
    n_boot = _checks.positive_int("n_boot", n_boot, minimum=0)
    seed = _checks.positive_int("seed", seed, minimum=0)
    resample = _checks.choice("resample", resample, ["points", "groups"])
    intercepts = _checks.choice("intercepts", intercepts, ["common", "per_group"])
    confidence = float(confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}.")
    codes, n_groups = None, 0
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups must have one label per point ({n}), got shape {groups.shape}.")
        labels, codes = np.unique(groups, return_inverse=True)
        n_groups = labels.size
    elif resample == "groups" or intercepts == "per_group":
        raise ValueError(f"resample={resample!r}, intercepts={intercepts!r} need groups= "
                         "(a label per point).")
    g = codes if intercepts == "per_group" else None
    slope, intercept, suu = _ols(u, v, g, n_groups)
    if not suu > 1e-24 * (1.0 + np.sum(u**2)):
        raise ValueError("no group has 2 distinct x values; the slope is undetermined.")
    if g is None:
        fitted = intercept + slope * u
        center = v.mean()
    else:  # within-group r²: the share of the variation about each group's mean that the slope explains
        gmean_v = np.array([v[codes == k].mean() for k in range(n_groups)])[codes]
        gmean_u = np.array([u[codes == k].mean() for k in range(n_groups)])[codes]
        fitted = gmean_v + slope * (u - gmean_u)
        center = gmean_v
    sst = np.sum((v - center) ** 2)
    r2 = float(1 - np.sum((v - fitted) ** 2) / sst) if sst > 0 else 1.0
    rng = np.random.default_rng(seed)
    if resample == "points":
        idx = rng.integers(0, n, size=(n_boot, n))
    else:
        members = [np.flatnonzero(codes == k) for k in range(n_groups)]
        picks = rng.integers(0, n_groups, size=(n_boot, n_groups))
        # groups may differ in size, so the resamples differ in length: fit them one by one
        idx = [np.concatenate([members[j] for j in row]) for row in picks]
    ci = icpt = (math.nan, math.nan)
    if n_boot > 0:
        if resample == "points":
            bs, bi, bsuu = _ols(u[idx], v[idx], None if g is None else g[idx], n_groups)
        else:
            res = [_ols(u[i], v[i], None if g is None else g[i], n_groups) for i in idx]
            bs, bi, bsuu = (np.array([r[j] for r in res]) for j in range(3))
        # A resample with one distinct x (per group) has no slope; drop it. Its centred sum of squares is
        # round-off, not 0 (2e-30 for x = 1/(0.03, 0.01, 0.003)), so compare with the round-off scale of
        # Σu² rather than with 0.
        roundoff = (np.sum(u[idx] ** 2, axis=-1) if resample == "points"
                    else np.array([np.sum(u[i] ** 2) for i in idx]))
        ok = bsuu > 1e-24 * (1.0 + roundoff)
        if np.sum(ok) >= max(10, n_boot // 2):
            lo, hi = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
            ci = tuple(float(q) for q in np.percentile(bs[ok], [lo, hi]))
            icpt = tuple(float(q) for q in np.percentile(bi[ok], [lo, hi]))
    return ScalingFit(law, float(slope), float(intercept), ci, icpt, r2, n, n_boot, seed, confidence,
                      resample, intercepts)


def _xy(x, y, positive_y):
    x = _checks.finite_array("x", x, ndim=1)
    y = _checks.finite_array("y", y, ndim=1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}.")
    if np.any(x <= 0):
        raise ValueError("x must be positive (it enters through log x).")
    if positive_y and np.any(y <= 0):
        raise ValueError("y must be positive for a power law (it enters through log y).")
    return x, y


def fit_power_law(x, y, n_boot: int = 2000, seed: int = 0, *, confidence: float = 0.95,
                  groups=None, resample: str = "points", intercepts: str = "common") -> ScalingFit:
    """Fit y = A x^p by least squares on (log x, log y), with a bootstrap CI for p and log A.

    **Arguments:**

    - `x`, `y`: positive data, one point each.
    - `n_boot`, `seed`: the bootstrap resamples the points with replacement `n_boot` times
      (`numpy.random.default_rng(seed)`); the CI is the percentile interval at `confidence`.
    - `groups`: optional label per point (e.g. the initialization seed), used by:
    - `resample`: "points" (default) or "groups" (resample whole groups: a cluster bootstrap).
    - `intercepts`: "common" (one line) or "per_group" (a shared exponent with one prefactor per group,
      i.e. a within-group regression; `intercept` is then the mean of the groups' log-prefactors).
      Use it when groups differ by a constant factor, as escape times from different initial
      directions do.

    For escape times, pass x = 1/ε so that the exponent is directly comparable with r − 2.

    **Returns:** a `ScalingFit` with law "power".
    """
    x, y = _xy(x, y, True)
    return _fit("power", np.log(x), np.log(y), n_boot, seed, confidence, groups, resample, intercepts)


def fit_log_law(x, y, n_boot: int = 2000, seed: int = 0, *, confidence: float = 0.95,
                groups=None, resample: str = "points", intercepts: str = "common") -> ScalingFit:
    """Fit y = a + b log x by least squares, with a bootstrap CI for b and a (as `fit_power_law`).

    For the r = 2 escape law τ = a + b log(1/ε), pass x = 1/ε; b estimates 1/λ_u.

    **Returns:** a `ScalingFit` with law "log".
    """
    x, y = _xy(x, y, False)
    return _fit("log", np.log(x), y, n_boot, seed, confidence, groups, resample, intercepts)


# ------------------------------------------------------------------------ bottleneck networks
def bottleneck_layers(model: MLP, r: int, layers: Sequence[int] | None = None) -> tuple[int, ...]:
    """The 1-based indices of the r bottleneck layers: `layers` if given, else the last r layers
    (L − r + 1 … L, the output side). With σ(0) = 0 and no biases, setting those layers to zero gives a
    critical set for r ≥ 2 (every gradient contains a product of at least r − 1 of them)."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    L = model.n_layers
    r = _checks.positive_int("r", r)
    if r > L:
        raise ValueError(f"r={r} bottleneck layers need a network with at least r layers; it has {L}.")
    if layers is None:
        return tuple(range(L - r + 1, L + 1))
    layers = tuple(int(l) for l in layers)
    if len(layers) != r or len(set(layers)) != r or not all(1 <= l <= L for l in layers):
        raise ValueError(f"layers must be {r} distinct layer indices in 1 … {L}, got {layers}.")
    return tuple(sorted(layers))


def bottleneck_init(model: MLP, key, eps: float, r: int, layers: Sequence[int] | None = None, *,
                    scheme: str = "he") -> jax.Array:
    """He-normal θ (papers/004) with the r bottleneck layers' weights multiplied by ε.

    **Arguments:** `model`, `key` (int seed or jax key), `eps` > 0, `r` (number of bottleneck layers),
    `layers` (1-based; default: the last r, see `bottleneck_layers`), `scheme` (passed to `model.init`).

    With the same key, different ε give the same direction: only the bottleneck layers are rescaled.
    """
    eps = _checks.positive("eps", eps)
    chosen = bottleneck_layers(model, r, layers)
    scales = [eps if l in chosen else 1.0 for l in range(1, model.n_layers + 1)]
    return model.init(key, scheme, layer_scales=scales)


def bottleneck_saddle(model: MLP, theta, r: int, layers: Sequence[int] | None = None) -> np.ndarray:
    """θ with the bottleneck layers (weights and biases) set to zero: the point of the critical set
    nearest to a bottleneck initialization (a critical point when σ(0) = 0, r ≥ 2 and those layers have
    no bias). Its network function is 0 whenever the output layer is a bottleneck layer."""
    chosen = bottleneck_layers(model, r, layers)
    theta = np.array(_checks.theta_vector("theta", theta, model.n_params))
    for l in chosen:
        sl = model.layout[l - 1]
        theta[sl.W[0]:sl.W[1]] = 0.0
        if sl.b is not None:
            theta[sl.b[0]:sl.b[1]] = 0.0
    return theta


# --------------------------------------------------------------------- flow that stops on escape
@dataclasses.dataclass
class EscapeRun:
    """The result of `escape_flow`: the saved `trajectory` and its `escape` (an `EscapeTime`)."""

    trajectory: Trajectory
    escape: EscapeTime


def _distance_traced(problem, metric, theta, ref):
    if metric == "parameter":
        return jnp.linalg.norm(theta - ref)
    return output_distance(problem.apply_fn(theta, problem.x), ref)


@eqx.filter_jit
def _solve_escape(problem, theta0, ref, radius, t1, ts, rtol, atol, pcoeff, icoeff, max_norm, *,
                  solver, max_steps, metric):
    term = diffrax.ODETerm(lambda t, y, args: -args.grad_fn(y))
    controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pcoeff, icoeff=icoeff)
    # One real-valued event, so that a bisection on the solver's dense interpolant locates the exit time
    # inside the last step: positive once the distance exceeds the radius, or ‖θ‖ exceeds max_norm, or
    # θ stops being finite. Which of these happened is read off the final state afterwards.
    def cond(t, y, args, **kw):
        finite = jnp.all(jnp.isfinite(y))
        safe = jnp.where(finite, y, 0.0)
        value = jnp.maximum(_distance_traced(args, metric, safe, ref) / radius - 1.0,
                            jnp.linalg.norm(safe) / max_norm - 1.0)
        return jnp.where(finite, value, 1.0)

    # optimistix's bisection stops when the bracket is below atol + rtol·t *and* |cond| < atol, so atol
    # (on a relative distance) must exceed the change of cond across one float spacing of t.
    event = diffrax.Event(cond, root_finder=optx.Bisection(rtol=1e-13, atol=1e-7), direction=True)
    steps = ("num_steps", "num_accepted_steps", "num_rejected_steps")

    def solve(_):
        sol = diffrax.diffeqsolve(term, solver, jnp.zeros_like(t1), t1, None, theta0, args=problem,
                                  saveat=diffrax.SaveAt(t0=True, ts=ts, t1=True),
                                  stepsize_controller=controller, event=event, max_steps=max_steps,
                                  throw=False)
        counts = {k: jnp.asarray(sol.stats[k], jnp.int64) for k in steps}
        return sol.ts, sol.ys, from_diffrax(sol.result, RESULTS.escaped), counts

    def stop_at_start(_):  # sol's layout: slot 0 is t0, then the save times, the last slot the end
        n = ts.shape[0] + 2
        t_out = jnp.full((n,), jnp.inf, dtype=t1.dtype).at[0].set(0.0).at[-1].set(0.0)
        y_out = jnp.full((n, theta0.shape[0]), jnp.inf, dtype=theta0.dtype)
        y_out = y_out.at[0].set(theta0).at[-1].set(theta0)
        return t_out, y_out, RESULTS.non_finite, {k: jnp.asarray(0, jnp.int64) for k in steps}

    # As gradient_flow's solvers do (`stiff.start_event`): where L or ∇L is not finite at θ0 the run ends
    # at t0 before its first step (the quantity named afterwards), instead of rejecting every attempt
    # until max_steps.
    bad_start = start_event(problem, theta0, -problem.grad_fn(theta0)) != RESULTS.successful
    ts_out, ys, code, stats = jax.lax.cond(bad_start, stop_at_start, solve, None)
    safe = jnp.where(jnp.isfinite(ys), ys, 0.0)  # unused save slots hold inf

    def evaluate(th):
        v, g = jax.value_and_grad(problem.loss_fn)(th)
        return v, jnp.linalg.norm(g)

    loss, gnorm = jax.vmap(evaluate)(safe)
    return ts_out, ys, loss, gnorm, code, stats


_COMPILED: dict = {}


def escape_flow(problem: Problem, theta0, center, radius: float, *, metric: str = "function",
                t_max: float = 1e12, solver: str = "tsit5", rtol: float = 1e-8, atol: float = 1e-12,
                n_save: int = 300, t_first: float = 1e-3, save_ts=None, max_steps: int = 1_000_000,
                max_norm: float = 1e6, pcoeff: float = 0.3, icoeff: float = 0.4) -> EscapeRun:
    """Gradient flow from θ0 (inside the ball) until it leaves the ball of `radius` around `center`.

    The solve (diffrax) carries the event d(θ(t), c) − radius; when it changes sign a bisection on the
    solver's dense interpolant locates the exit time t_out (to ~1e-13 relative), and the solve stops
    there with θ(t_out) as its last saved state. The escape time is t_out − t0 (the flow starts inside:
    t_in = t0). States are also saved at `save_ts` if given (increasing, positive; its length sets the
    compiled shape, so keep it fixed across calls), else at `n_save` log-spaced times in
    [t_first, t_max]. Stopping at the exit keeps the solve cheap: after escape the flow usually turns
    stiff, which would cost an explicit solver many steps.

    The default solver is explicit (Tsit5): near a bottleneck saddle the Hessian is tiny, so adaptive
    explicit steps grow with t, and each step costs a few gradients instead of a Jacobian factorization.
    Pass an implicit solver name (e.g. "kvaerno5") for stiff starts.

    **Returns:** an `EscapeRun`. Its trajectory has status "t1_reached" with a message saying it stopped
    on leaving the ball, or the usual "t1_reached" (at t_max, never left), "max_steps", "diverged",
    "non_finite" (at t0, before the first step, where L or ∇L is not finite at θ0; the message names
    the first non-finite quantity), "failed"; `meta["stopped_on_exit"]` records which. Its `gen_error`
    is None (not evaluated, to keep runs cheap). `stats` has the step counts, wall time and compile time.

    **Raises:** `ValueError` if θ0 starts outside the ball.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    metric = _checks.choice("metric", metric, _METRICS)
    theta0 = _checks.theta_vector("theta0", theta0, problem.n_params)
    c = _center_theta(center, problem.n_params)
    radius = _checks.positive("radius", radius)
    t_max = _checks.positive("t_max", t_max)
    t_first = _checks.positive("t_first", t_first)
    if t_first >= t_max:
        raise ValueError(f"t_first={t_first} must be below t_max={t_max}.")
    n_save = _checks.positive_int("n_save", n_save, minimum=2)
    max_steps = _checks.positive_int("max_steps", max_steps)
    solver_key = _checks.choice("solver", solver, SOLVERS)
    d0 = float(distances(theta0, c, metric=metric, problem=problem)[0])
    if d0 > radius and np.isfinite(d0):  # non-finite outputs at θ0: the run ends non_finite at t0
        raise ValueError(f"theta0 is outside the ball ({metric} distance {d0:.4g} > radius {radius:g}); "
                         "escape_flow measures escapes from a ball the flow starts in.")
    ref = c if metric == "parameter" else np.asarray(problem.apply_fn(jnp.asarray(c), problem.x))
    if save_ts is None:
        ts = np.geomspace(t_first, t_max, n_save)
    else:
        ts = _checks.finite_array("save_ts", save_ts, ndim=1)
        if ts.size < 1 or ts[0] <= 0 or np.any(np.diff(ts) <= 0) or ts[-1] > t_max:
            raise ValueError("save_ts must be increasing, positive and at most t_max.")
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731  arrays, so new values don't recompile
    args = (problem, jnp.asarray(theta0), jnp.asarray(ref), f(radius), f(t_max), jnp.asarray(ts), f(rtol),
            f(atol), f(pcoeff), f(icoeff), f(max_norm))
    kw = dict(solver=SOLVERS[solver_key](), max_steps=max_steps, metric=metric)
    leaves, treedef = jax.tree_util.tree_flatten(args)
    key = (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves), solver_key, max_steps, metric)
    compile_time = 0.0
    if key not in _COMPILED:
        t_c = time.perf_counter()
        _COMPILED[key] = _solve_escape.lower(*args, **kw).compile()
        compile_time = time.perf_counter() - t_c
    t_run = time.perf_counter()
    ts_out, ys, loss, gnorm, code, stats = jax.block_until_ready(_COMPILED[key](*args, **kw))
    wall = time.perf_counter() - t_run

    ts_out, ys, loss, gnorm = solution_states(ts_out, ys, loss, gnorm)
    name = result_name(code)
    t_end = float(ts_out[-1])
    y_end = ys[-1]
    # The one event stands for leaving the ball, ‖θ‖ > max_norm or a non-finite θ: which one is read off
    # the final state (a non-finite one is named by `build_trajectory`, before divergence and failure).
    finite = first_non_finite(ys, loss, gnorm) is None
    if name == "escaped" and not finite:
        name = "non_finite"
    elif name == "escaped" and np.linalg.norm(y_end) >= max_norm * (1 - 1e-9):
        name = "diverged"
    note = ""
    if name == "failed" and finite:
        # The exit was bracketed but the bisection missed its tolerance (cond changes by more than its
        # atol across one float spacing of t): accept the bracket end if it lies on the sphere.
        d_end = float(distances(y_end, c, metric=metric, problem=problem)[0])
        if abs(d_end / radius - 1) <= 1e-6:
            name, note = "escaped", f"; exit bracketed to |d/radius − 1| = {abs(d_end / radius - 1):.1e}"
    stopped = name == "escaped" and finite
    stats = dict(steps=int(stats["num_steps"]), accepted_steps=int(stats["num_accepted_steps"]),
                 rejected_steps=int(stats["num_rejected_steps"]), wall_time=wall,
                 compile_time=compile_time)
    meta = dict(solver=solver_key, rtol=rtol, atol=atol, t1=t_max, max_norm=max_norm, pcoeff=pcoeff,
                icoeff=icoeff, max_steps=max_steps, loss=problem.loss_convention, metric=metric,
                radius=radius, stopped_on_exit=bool(stopped))
    traj = build_trajectory(problem, ts_out, ys, name, method="gradient_flow", kind="escape", stats=stats,
                            meta=meta, values=(loss, gnorm, None), held_out=False, t1=t_max,
                            max_norm=max_norm, max_steps=max_steps, metric=metric, radius=radius, note=note)
    if stopped:
        tau = t_end - float(ts_out[0])
        esc = EscapeTime(tau, float(ts_out[0]), t_end, "escaped",
                         f"started inside, left at t={t_end:.10g} (event root)", True, tau, metric, radius,
                         "event", d0)
    else:
        esc = escape_time(traj, c, radius, metric=metric, problem=problem)
    return EscapeRun(traj, esc)
