"""Scaling-law fits with bootstrap confidence intervals: y = A x^p (`fit_power_law`) and y = a + b log x
(`fit_log_law`). For the deep-network saddle at the origin with r bottleneck layers at scale ε, "A Theory of
Saddle Escape in Deep Nonlinear Networks" (2026) predicts the escape time τ = Θ(ε^{−(r−2)}) for r ≥ 3 and τ
= Θ(log 1/ε) for r = 2.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from .. import _checks, _deprecation


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    as_dict = _deprecation.renamed_function(to_dict, "as_dict")


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
