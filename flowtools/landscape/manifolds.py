"""Where the unstable manifold of a saddle leads.

For a critical point θ* with unstable eigenvectors u₁ … u_k (Hessian eigenvalues below −tol), gradient
flow started at θ* + δu for a small δ follows the unstable manifold to first order (the stable
component is O(δ²)). We integrate from θ* ± δuᵢ for every i and, when k ≥ 2, from θ* + δu for `n_samples`
directions u drawn uniformly on the unit sphere of the unstable eigenspace (seeded). Each end state is
refined with `find_critical_point` and classified; targets are deduplicated by network function
(`function_distance`) together with the Morse signature, so the symmetry images of one minimum (and all
points of one line of critical points of the same type) are one target. The fractions of the sphere
samples that reach each target estimate the measure of the unstable sphere flowing into it.

A **higher-order saddle** (positive semidefinite Hessian, descent at third or higher order; see
`higher_order_test`) has no unstable eigenvector. Its flows start at θ* + δe for each of its escape
directions e (labels "e1", "e2", …), and `fractions` count those branches. There the flow leaves like
d(t) ~ 1/(c t) rather than e^{λt}, so the escape from δ takes a time of order 1/(c δ): a larger δ
(e.g. 1e-2) keeps it short.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from .. import _checks
from ..dynamics.flow import gradient_flow
from ..problem import Problem
from .critical import CriticalPoint, classify_point, critical_point_at, find_critical_point
from .symmetry import function_distance

__all__ = ["ManifoldBranch", "UnstableManifold", "unstable_manifold", "match_target"]


@dataclasses.dataclass
class ManifoldBranch:
    """One flow along the unstable manifold.

    **Fields:** `label` ("+u1", "−u2", "sphere[7]"), `direction` (unit vector in θ-space), `final_theta`,
    `status` (of the flow), `t_end`, `loss`, `grad_norm` (at the end of the flow), `target` (index into
    `UnstableManifold.targets`).
    """

    label: str
    direction: np.ndarray
    final_theta: np.ndarray
    status: str
    t_end: float
    loss: float
    grad_norm: float
    target: int

    def to_dict(self) -> dict:
        return dict(label=self.label, direction=self.direction.tolist(),
                    final_theta=self.final_theta.tolist(), status=self.status, t_end=self.t_end,
                    loss=self.loss, grad_norm=self.grad_norm,
                    target=self.target)


@dataclasses.dataclass
class UnstableManifold:
    """The targets of the unstable manifold of one critical point.

    **Fields:**

    - `critical_point`: the saddle; `delta`, `seed`.
    - `branches`: the flows from θ* ± δuᵢ along the eigenvectors.
    - `samples`: the flows from uniformly sampled unstable directions (empty for index 1).
    - `targets`: distinct `CriticalPoint`s reached (a failed refinement gives a "slow_region" target).
    - `fractions`: for each target, the fraction of `samples` reaching it (for index 1: of the two
      branches).
    """

    critical_point: CriticalPoint
    delta: float
    seed: int
    branches: list[ManifoldBranch]
    samples: list[ManifoldBranch]
    targets: list[CriticalPoint]
    fractions: list[float]
    wall_time: float = 0.0

    def summary(self) -> str:
        lines = [f"unstable manifold of a {self.critical_point.kind} with signature "
                 f"{self.critical_point.signature} (L={self.critical_point.loss:.8g}), δ={self.delta:g}:"]
        for i, (cp, frac) in enumerate(zip(self.targets, self.fractions)):
            hits = [b.label for b in self.branches if b.target == i]
            lines.append(f"  target {i}: {cp.kind:<18s} signature={cp.signature} L={cp.loss:.10g} "
                         f"reduces_to={cp.reduces_to}  fraction={frac:.3f}  branches={hits}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dict(critical_point=self.critical_point.to_dict(), delta=self.delta, seed=self.seed,
                    branches=[b.to_dict() for b in self.branches],
                    samples=[b.to_dict() for b in self.samples],
                    targets=[t.to_dict() for t in self.targets], fractions=list(self.fractions),
                    wall_time=self.wall_time)


def match_target(problem: Problem, cp: CriticalPoint, targets: list[CriticalPoint], *, tol: float = 1e-6,
                 n_probe: int = 256) -> int | None:
    """Index of the target in `targets` with the same kind, signature and function (RMS distance ≤ tol)."""
    for i, other in enumerate(targets):
        if other.kind != cp.kind or tuple(other.signature) != tuple(cp.signature):
            continue
        if function_distance(problem, cp.theta, other.theta, n_probe=n_probe) <= tol:
            return i
    return None


def unstable_manifold(problem: Problem, critical_point, *, delta: float = 1e-3, n_samples: int | None = None,
                      seed: int = 0, t1: float | None = None, gtol: float = 1e-8, max_steps: int = 200_000,
                      flow_options: dict | None = None, refine_options: dict | None = None,
                      dedup_tol: float = 1e-6) -> UnstableManifold:
    """Follow the unstable directions of a saddle (or the escape directions of a higher-order saddle)
    with gradient flow and report where they end.

    **Arguments:**

    - `problem`: the `Problem`.
    - `critical_point`: a `CriticalPoint` (with its spectrum) or a θ (classified here, higher-order
      test included).
    - `delta`: the distance of the starting points from θ*.
    - `n_samples`: directions sampled uniformly on the unstable sphere (default 32 when the index is
      ≥ 2, else 0).
    - `seed`: for the sphere samples.
    - `t1`, `gtol`, `max_steps`, `flow_options`: passed to `gradient_flow` (default: run until
      ‖∇L‖ ≤ gtol).
    - `refine_options`: passed to `find_critical_point` for each end state (default radius 0.5).
    - `dedup_tol`: targets with the same kind and signature and an RMS function distance ≤ dedup_tol
      are the same target.

    **Returns:** an `UnstableManifold`.

    **Raises:** `ValueError` when the point has no unstable or escape direction (a minimum, or a
    degenerate minimum that passed the higher-order test).
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    if not isinstance(critical_point, CriticalPoint):
        theta = _checks.theta_vector("critical_point", critical_point, problem.n_params)
        critical_point = critical_point_at(problem, theta)
    if critical_point.spectrum is None:
        critical_point = critical_point_at(problem, critical_point.theta)
    U = np.asarray(critical_point.spectrum.unstable_vectors)
    k = U.shape[1]
    escape_dirs = None
    if k == 0 and critical_point.kind == "degenerate_minimum" and critical_point.higher_order is None:
        kind, test = classify_point(problem, critical_point.theta, critical_point.spectrum)
        if kind == "higher_order_saddle":
            critical_point = dataclasses.replace(critical_point, kind=kind, higher_order=test,
                                                 escape_directions=test.escape_directions)
    if k == 0 and critical_point.escape_directions is not None and critical_point.escape_directions.shape[1]:
        escape_dirs = np.asarray(critical_point.escape_directions)
    if k == 0 and escape_dirs is None:
        raise ValueError(f"the point has no unstable direction (signature {critical_point.signature}, kind "
                         f"{critical_point.kind!r}); its unstable manifold is the point itself.")
    delta = _checks.positive("delta", delta)
    if n_samples is None:
        n_samples = 32 if k >= 2 else 0
    if escape_dirs is not None:
        n_samples = 0  # the descent cone of a higher-order saddle is not a subspace to sample
    n_samples = _checks.positive_int("n_samples", n_samples, minimum=0)
    t1 = math.inf if t1 is None else t1
    flow_kw = dict(gtol=gtol, max_steps=max_steps)
    flow_kw.update(flow_options or {})
    refine_kw = dict(radius=0.5)
    refine_kw.update(refine_options or {})
    theta_star = np.asarray(critical_point.theta)
    targets: list[CriticalPoint] = []
    t_start = time.perf_counter()

    def follow(label, u):
        traj = gradient_flow(problem, theta_star + delta * u, t1, **flow_kw)
        end = traj.final_theta
        cp = find_critical_point(problem, end, **refine_kw)
        idx = match_target(problem, cp, targets, tol=dedup_tol)
        if idx is None:
            targets.append(cp)
            idx = len(targets) - 1
        return ManifoldBranch(label, u, np.asarray(end), traj.status.value, traj.final_time, traj.final_loss,
                              traj.final_grad_norm, idx)

    branches = []
    if escape_dirs is not None:
        for i in range(escape_dirs.shape[1]):
            branches.append(follow(f"e{i + 1}", escape_dirs[:, i]))
    for i in range(k):
        for sign, name in ((1.0, "+"), (-1.0, "-")):
            branches.append(follow(f"{name}u{i + 1}", sign * U[:, i]))
    samples = []
    if n_samples:
        rng = np.random.default_rng(seed)
        for j in range(n_samples):
            z = rng.standard_normal(k)
            samples.append(follow(f"sphere[{j}]", U @ (z / np.linalg.norm(z))))
    counted = samples if samples else branches
    fractions = [sum(b.target == i for b in counted) / len(counted) for i in range(len(targets))]
    return UnstableManifold(critical_point, delta, seed, branches, samples, targets, fractions,
                            time.perf_counter() - t_start)
