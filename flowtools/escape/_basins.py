"""Basin fractions: the share of an ensemble's runs that ends at each attractor, attractors identified up
to symmetry by the same-set rule (`flowtools.graph.match_distance`), with Wilson score intervals (Wilson
1927).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import _checks, _deprecation
from ..graph import SAME_SET_TOL, match_distance


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    as_dict = _deprecation.renamed_function(to_dict, "as_dict")

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
