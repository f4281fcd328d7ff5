"""Sharpness λ_max(H) along a GD or SGD run, and the edge of stability.

GD on a quadratic of curvature λ is stable iff ηλ < 2. On neural networks, full-batch GD first sharpens
(λ_max grows along the run, "progressive sharpening") until λ_max reaches 2/η, and then hovers there
while the loss keeps decreasing over long times, non-monotonically: the *edge of stability* (Cohen,
Kaur, Li, Kolter & Talwalkar 2021, "Gradient descent on neural networks typically occurs at the edge of
stability", Sec. 3). Above 2/η a run can also *catapult* (Lewkowycz, Bahri, Dyer, Sohl-Dickstein &
Gur-Ari 2020, "The large learning rate phase of deep learning: the catapult mechanism", Sec. 2): the
loss spikes and the run lands in a flatter region, its sharpness below where it was before the spike.

λ_max comes from Lanczos on Hessian-vector products (`rkc.lanczos_ritz_max`, the solver's own estimate),
warm-started from the previous dominant Ritz vector, so that a few steps suffice along a run. The value
kept is the Ritz value, a lower bound of λ_max (Cauchy interlacing), with its residual ‖Hx − θx‖, which
bounds its distance to an eigenvalue. A GD run tracks it every k steps at *pairs* of consecutive
iterates (steps jk and jk + 1): a period-2 oscillation across a valley, the typical state at the edge
of stability, alternates between two sharpnesses, and sampling every k-th step alone would see only one
of them whenever k is even.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .rkc import lanczos_ritz_max

__all__ = ["SharpnessSeries", "sharpness", "edge_of_stability", "catapults"]

#: Default Lanczos steps per estimate (warm-started, so fewer than from scratch).
LANCZOS_STEPS = 20


def _ritz_values(problem, theta, v0, m):
    """([largest Ritz value, its residual, L(θ)], Ritz vector) after m Lanczos steps from v0."""
    lam, residual, x = lanczos_ritz_max(lambda v: problem.hvp_fn(theta, v), v0, m)
    return jnp.stack([lam, residual, problem.loss_fn(theta)]), x


_ritz = eqx.filter_jit(_ritz_values)


@eqx.filter_jit
def _ritz_pair(problem, theta, v0, m, direction, lr, k, key, batch_size):
    """The values of `_ritz_values` at θ_k and at the next iterate θ_k − η·direction(θ_k, k), in one call."""
    first, x = _ritz_values(problem, theta, v0, m)
    following = theta - lr * direction(problem, theta, k, key, batch_size)
    second, y = _ritz_values(problem, following, x, m)
    return jnp.stack([first, second]), y


def _start_vector(n: int) -> jnp.ndarray:
    return jnp.cos(jnp.arange(n, dtype=jnp.float64) * 1.234567) + 0.1  # fixed and generic


class _Lanczos:
    """λ_max at successive states, each estimate warm-started from the last Ritz vector."""

    def __init__(self, problem, lanczos_steps: int):
        self.problem = problem
        self.m = min(_checks.positive_int("lanczos_steps", lanczos_steps, minimum=2), problem.n_params)
        self.v = _start_vector(problem.n_params)

    def __call__(self, theta):
        values, self.v = _ritz(self.problem, jnp.asarray(theta, dtype=jnp.float64), self.v, self.m)
        lam, residual, loss = np.asarray(values).tolist()  # one transfer
        return lam, residual, loss


def sharpness(problem, theta, *, lanczos_steps: int = LANCZOS_STEPS) -> np.ndarray:
    """λ_max(H) at θ, or at each row of a 2-D θ (one run's states, each estimate warm-started from the
    previous one): Lanczos on Hessian-vector products, `lanczos_steps` products per state.

    **Returns:** a float for one θ, else an array of one λ_max per row (Ritz values: lower bounds that
    converge fast for a λ_max separated from the rest of the spectrum)."""
    theta = np.asarray(theta, dtype=np.float64)
    rows = np.atleast_2d(theta)
    if rows.ndim != 2 or rows.shape[1] != problem.n_params:
        raise ValueError(f"theta must have {problem.n_params} entries (or be an array of rows of that "
                         f"length), got shape {theta.shape}.")
    lanczos = _Lanczos(problem, lanczos_steps)
    lam = np.array([lanczos(row)[0] for row in rows])
    return float(lam[0]) if theta.ndim == 1 else lam


@dataclasses.dataclass
class SharpnessSeries:
    """λ_max(H) sampled along one GD or SGD run.

    **Fields:** `step` (GD steps), `t` (= step · η), `lambda_max` (Ritz values), `residual` (their
    Lanczos residuals), `loss` (the full-batch L at the same states), `lr` (η). `two_over_lr` is the
    stability edge 2/η of GD."""

    step: np.ndarray
    t: np.ndarray
    lambda_max: np.ndarray
    residual: np.ndarray
    loss: np.ndarray
    lr: float

    FIELDS = ("step", "t", "lambda_max", "residual", "loss")

    @property
    def two_over_lr(self) -> float:
        return 2.0 / self.lr

    def __len__(self):
        return len(self.step)

    def join(self, other: "SharpnessSeries") -> "SharpnessSeries":
        """This series followed by the samples of `other` after its last step."""
        keep = other.step > (self.step[-1] if len(self) else -1)
        return SharpnessSeries(*(np.concatenate([getattr(self, f), getattr(other, f)[keep]])
                                 for f in self.FIELDS), lr=other.lr)

    def arrays(self) -> dict:
        return {f: getattr(self, f) for f in self.FIELDS}

    @classmethod
    def from_arrays(cls, arrays: dict, lr: float) -> "SharpnessSeries":
        return cls(*(np.asarray(arrays[f]) for f in cls.FIELDS), lr=float(lr))


class Tracker:
    """Collects λ_max every `every` steps at pairs of iterates (steps jk, jk + 1) during a GD/SGD run.

    `direction(problem, θ, k, key, batch_size)` is the run's update direction at step k (a module-level
    function, so that the compiled pair kernel is shared): the iterate jk + 1 is recomputed from θ_jk
    inside the same call as both estimates, one call per pair."""

    def __init__(self, problem, lr: float, every: int, lanczos_steps: int = LANCZOS_STEPS, *,
                 direction, key, batch_size):
        self.every = _checks.positive_int("sharpness_every", every)
        self.lr = lr
        self.lanczos = _Lanczos(problem, lanczos_steps)
        self.direction, self.key, self.batch_size = direction, key, batch_size
        self.rows: list[tuple] = []

    def steps(self, k0: int, steps: int) -> np.ndarray:
        """The first steps jk of the sampled pairs in [k0, steps] (a resumed run samples k0 again if it is
        one of them: the interrupted run may have stopped before sampling it; `SharpnessSeries.join`
        keeps one)."""
        base = np.arange(0, steps + 1, self.every, dtype=np.int64)
        return base[base >= k0]

    def sample(self, theta, k: int, steps: int) -> None:
        """Sample the pair (k, k + 1), or k alone when it is the run's last step."""
        lz = self.lanczos
        theta = jnp.asarray(theta, dtype=jnp.float64)
        if k + 1 > steps:
            self.rows.append((int(k), *lz(theta)))
            return
        values, lz.v = _ritz_pair(lz.problem, theta, lz.v, lz.m, self.direction, jnp.asarray(self.lr),
                                  jnp.asarray(k, dtype=jnp.int64), self.key, self.batch_size)
        for j, (lam, residual, loss) in enumerate(np.asarray(values).tolist()):
            self.rows.append((int(k) + j, lam, residual, loss))

    def series(self) -> SharpnessSeries:
        a = np.array(self.rows, dtype=np.float64).reshape(-1, 4)
        step = a[:, 0].astype(np.int64)
        return SharpnessSeries(step=step, t=step * self.lr, lambda_max=a[:, 1], residual=a[:, 2],
                               loss=a[:, 3], lr=self.lr)


def catapults(series: SharpnessSeries, *, spike: float = 2.0, drop: float = 0.1) -> list[dict]:
    """Catapult events of a run (Lewkowycz et al. 2020): a loss spike — L rises above `spike` times its
    lowest value since the previous event — after which the sharpness, once L is back below that level,
    is at least a fraction `drop` below its value at the spike's start.

    **Returns:** one dict per event: t_start, t_peak, t_end (the sample where L is back below the
    level, or the last sample), loss_before, loss_peak, sharpness_before, sharpness_after."""
    spike = _checks.positive("spike", spike)
    drop = _checks.positive("drop", drop)
    loss, lam, t = series.loss, series.lambda_max, series.t
    events, i, n = [], 0, len(loss)
    low = 0  # index of the lowest loss since the last event
    while i < n:
        if loss[i] < loss[low]:
            low = i
        if np.isfinite(loss[i]) and loss[i] > spike * loss[low] and loss[low] > 0:
            level = spike * loss[low]
            j = i
            while j + 1 < n and not loss[j + 1] <= level:
                j += 1
            peak = i + int(np.nanargmax(loss[i: j + 1]))
            end = min(j + 1, n - 1)
            # The sharpness before: the largest of the samples from the lowest loss to the spike's
            # start (it grew there: progressive sharpening is what lifts the run off the valley).
            before = float(np.max(lam[low: i + 1]))
            after = float(lam[end])
            if after <= (1.0 - drop) * before:
                events.append(dict(t_start=float(t[i]), t_peak=float(t[peak]), t_end=float(t[end]),
                                   loss_before=float(loss[low]), loss_peak=float(loss[peak]),
                                   sharpness_before=before, sharpness_after=after))
            i, low = end, end
        i += 1
    return events


def edge_of_stability(series: SharpnessSeries, *, window: float = 0.2, rtol: float = 0.03,
                      spike: float = 2.0, drop: float = 0.1) -> dict:
    """The edge-of-stability diagnosis of a sharpness series (Cohen et al. 2021).

    **Arguments:**

    - `window`: the final fraction of the run's sampled time (at least 4 samples) over which the settled
      sharpness is measured: the mean of λ_max there.
    - `rtol`: the run *settles at the edge of stability* when that mean is within `rtol` of 2/η;
      progressive sharpening *reaches* 2/η at the first sample with λ_max ≥ (1 − rtol)·2/η.
    - `spike`, `drop`: the catapult criteria of `catapults`.

    **Returns:** dict(two_over_lr, settled, settled_sharpness, settled_ratio (settled sharpness · η/2),
    settled_spread (max − min of λ_max in the window, over 2/η), window_t ([t_first, t_last] of the
    window), t_reaches_two_over_lr (None if never), sharpness_max, sharpness_final, samples, catapults)."""
    window = _checks.positive("window", window)
    rtol = _checks.positive("rtol", rtol)
    edge = series.two_over_lr
    lam, t = series.lambda_max, series.t
    out = dict(two_over_lr=edge, settled=False, settled_sharpness=None, settled_ratio=None,
               settled_spread=None, window_t=None, t_reaches_two_over_lr=None,
               sharpness_max=float(np.max(lam)) if len(lam) else None,
               sharpness_final=float(lam[-1]) if len(lam) else None, samples=int(len(lam)),
               catapults=catapults(series, spike=spike, drop=drop) if len(lam) else [])
    if len(lam) == 0:
        return out
    reached = np.nonzero(lam >= (1.0 - rtol) * edge)[0]
    if reached.size:
        out["t_reaches_two_over_lr"] = float(t[reached[0]])
    if len(lam) < 4:
        return out
    start = t[0] + (1.0 - min(window, 1.0)) * (t[-1] - t[0])
    inside = np.nonzero(t >= start)[0]
    inside = inside if inside.size >= 4 else np.arange(len(lam) - 4, len(lam))
    mean = float(np.mean(lam[inside]))
    out.update(settled_sharpness=mean, settled_ratio=mean / edge,
               settled_spread=float(np.ptp(lam[inside]) / edge),
               window_t=[float(t[inside[0]]), float(t[inside[-1]])],
               settled=bool(abs(mean / edge - 1.0) <= rtol))
    return out


def message(diagnosis: dict) -> str:
    """The words a run's message gets from its diagnosis ("" when there is nothing to say)."""
    parts = []
    if diagnosis["settled"]:
        w = diagnosis["window_t"]
        reach = diagnosis["t_reaches_two_over_lr"]
        parts.append(f"edge of stability: sharpness settled at {diagnosis['settled_sharpness']:.5g} = "
                     f"{diagnosis['settled_ratio']:.4f} × 2/η (2/η = {diagnosis['two_over_lr']:.5g}) over "
                     f"t ∈ [{w[0]:.4g}, {w[1]:.4g}]"
                     + (f", reached at t = {reach:.4g}" if reach is not None else ""))
    if diagnosis["catapults"]:
        parts.append(f"{len(diagnosis['catapults'])} catapult(s) (loss spike, then sharpness drop), the "
                     f"first at t = {diagnosis['catapults'][0]['t_start']:.4g}")
    return "; ".join(parts)
