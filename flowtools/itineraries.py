"""Itineraries: a trajectory as a sequence of visits to critical sets, ending in an attractor or not.

The slow passages of a run (local minima of ‖∇L‖ over log-time) are refined by a Newton-type solve of
∇L = 0. A passage whose refinement converges to a critical point that the run actually came close to (in
function space) is a visit to that critical set; otherwise it is a "slow_region" visit, labelled with the
local Hessian signature. A visit's window [t_in, t_out] is the stretch of saved states around the passage
whose network function stays within `visit_radius` (RMS over the training inputs) of the visited one.

The terminal state is "attractor" only when the run ends next to a critical set with no negative Hessian
eigenvalue beyond tolerance and it is really approaching it (converged, or, for degenerate minima that
are approached algebraically, loss and distance both still decreasing onto a refined critical point
whose loss the run has essentially reached); "diverged" for diverged or non-finite runs; otherwise
"unfinished". A slow passage is never called an attractor.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import _checks
from .dynamics.trajectory import Status, Trajectory
from .graph import SaddleGraph
from .dynamics.flow import gradient_flow
from .landscape import critical_point_at, find_critical_point, hessian_spectrum, slow_points
from .landscape.symmetry import fingerprint_distance, function_fingerprint, output_distance, reduce_network
from .problem import Problem, training_outputs

__all__ = ["Visit", "Itinerary", "itinerary", "add_to_graph"]

TERMINALS = ("attractor", "diverged", "unfinished")


@dataclasses.dataclass
class Visit:
    """One passage of a trajectory near a critical set (or through a slow region)."""

    kind: str
    t_in: float
    t_out: float
    loss: float
    gen_error: float | None
    signature: tuple
    theta: np.ndarray
    grad_norm: float
    reduces_to: str
    fingerprint: np.ndarray
    eigenvalues: np.ndarray
    node: str | None = None

    @property
    def dwell(self) -> float:
        return self.t_out - self.t_in

    def to_dict(self) -> dict:
        return dict(node=self.node, kind=self.kind, t_in=self.t_in, t_out=self.t_out, dwell=self.dwell,
                    loss=self.loss, gen_error=self.gen_error, signature=list(self.signature),
                    grad_norm=self.grad_norm, reduces_to=self.reduces_to, theta=self.theta.tolist())


@dataclasses.dataclass
class Itinerary:
    """The visits of one run, in order, and how it ended (`terminal`: attractor / diverged /
    unfinished). When `terminal == "attractor"` the last visit is the attractor."""

    visits: list[Visit]
    terminal: str
    method: str
    message: str
    degenerate: bool = False

    @property
    def nodes(self) -> list[str | None]:
        return [v.node for v in self.visits]

    @property
    def kinds(self) -> list[str]:
        return [v.kind for v in self.visits]

    @property
    def attractor(self) -> Visit | None:
        return self.visits[-1] if self.terminal == "attractor" else None

    def to_list(self) -> list[dict]:
        """[{node, t_in, t_out}, …] as written to summary.json."""
        return [dict(node=v.node, t_in=v.t_in, t_out=v.t_out) for v in self.visits]

    def __repr__(self):
        seq = " → ".join(f"{v.kind}{tuple(v.signature)}" for v in self.visits)
        return f"Itinerary({self.method}: {seq} ⇒ {self.terminal})"


def _train_part(problem, fp) -> np.ndarray:
    """The training-input outputs of a fingerprint, shape (n, d_out)."""
    n, d_out = problem.x.shape[0], problem.model.d_out
    return np.asarray(fp)[: n * d_out].reshape(n, d_out)


def _distance_to_fp(problem, theta, fp) -> float:
    """`function_distance` over the training inputs between f(θ) and a fingerprint."""
    f = np.asarray(problem.predict(theta, np.asarray(problem.x)))
    return float(output_distance(f, _train_part(problem, fp)))


def _outputs(problem, thetas) -> np.ndarray:
    """Network outputs on the training inputs for each row of `thetas`, shape (m, n, d_out)."""
    return training_outputs(problem, thetas)


def _reduces_to(problem, theta) -> str:
    """The widths θ reduces to, or "" when it does not reduce (always "" for a model that is not an MLP)."""
    if not problem.is_mlp:
        return ""
    red = reduce_network(*problem.mlp_theta(theta))
    return red.reduces_to if red.reducible else ""


def _visit_from_point(problem, theta, kind, spectrum, fp, gnorm) -> dict:
    return dict(kind=kind, loss=problem.loss(theta),
                gen_error=problem.gen_error(theta) if problem.has_population else None,
                signature=tuple(int(s) for s in spectrum.signature), theta=np.asarray(theta),
                grad_norm=float(gnorm), reduces_to=_reduces_to(problem, theta),
                fingerprint=fp, eigenvalues=np.asarray(spectrum.eigenvalues))


def itinerary(problem: Problem, trajectory: Trajectory, *, visit_radius: float | None = None,
              refine_radius: float = 1.0, rtol_zero: float = 1e-7, attractor_gtol: float = 1e-5,
              approach_window: int = 8, min_depth: float = 0.05) -> Itinerary:
    """Segment a trajectory (gradient flow or GD) into visits of critical sets and a terminal state.

    **Arguments:**

    - `visit_radius`: function-space radius (RMS over the training inputs) of a visit's window.
      Default: 0.1 · RMS(y).
    - `refine_radius`: how far (in parameter norm, relative to 1 + ‖θ‖) Newton may move a slow point
      and still call the result the critical point it is near.
    - `rtol_zero`: relative tolerance for zero Hessian eigenvalues (see `hessian_spectrum`).
    - `attractor_gtol`: a run that did not reach its own gtol may still end at an attractor only if its
      final ‖∇L‖ is below this and it is demonstrably approaching a minimum set.
    - `approach_window`: how many final saved states must show decreasing loss and distance.
    - `min_depth`: the least depth, in decades of ‖∇L‖, of a slow passage (see `slow_points`). Slow
      passages near degenerate saddles can be shallow: the minimal model's passage near the optimal
      region dips by only 0.1 decade. Spurious dips cost a refinement each and are dropped unless
      they lead to a critical set the run came close to, or are real slow regions.
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a flowtools.Trajectory, got {type(trajectory).__name__}.")
    if trajectory.theta.shape[1] != problem.n_params:
        raise ValueError(f"trajectory has {trajectory.theta.shape[1]} parameters but the problem's model "
                         f"has {problem.n_params}.")
    y_rms = float(np.sqrt(np.mean(np.sum(np.asarray(problem.y) ** 2, axis=1))))  # d(f, 0) for f = y
    rho = _checks.positive("visit_radius", visit_radius) if visit_radius is not None else 0.1 * max(y_rms, 1e-12)
    refine_radius = _checks.positive("refine_radius", refine_radius)
    attractor_gtol = _checks.positive("attractor_gtol", attractor_gtol)

    finite = np.all(np.isfinite(trajectory.theta), axis=1)
    thetas, ts = trajectory.theta[finite], trajectory.t[finite]
    outputs = _outputs(problem, thetas)

    def distances(fp):
        return output_distance(outputs, _train_part(problem, fp)[None])

    # ----------------------------------------------------------- passages
    candidates = []  # (slow-point index, visit info), in time order
    for sp in slow_points(trajectory, min_depth=_checks.positive("min_depth", min_depth)):
        idx = int(sp.index)
        if idx >= len(thetas) - 1:
            continue  # the end of the run is judged below
        candidates.append((idx, _classify_passage(problem, thetas[idx], refine_radius, rtol_zero, rho)))

    # ------------------------------------------------------------ terminal
    status = trajectory.status
    degenerate, end_info = False, None
    if status in (Status.DIVERGED, Status.NON_FINITE):
        terminal, message = "diverged", trajectory.message
    else:
        terminal, message, end_info, degenerate = _terminal(
            problem, trajectory, thetas, distances, refine_radius, rtol_zero, rho, y_rms,
            attractor_gtol, approach_window)
        if end_info is not None:
            candidates.append((len(thetas) - 1, end_info))

    # ------------------------------------------------------------- windows
    # Each saved state belongs to the nearest candidate set in function space, if within `rho`; a
    # visit's window is the run of states around its slow point that belong to it.
    if candidates:
        d = np.stack([distances(info["fingerprint"]) for _, info in candidates])
        owner = np.where(d.min(axis=0) <= rho, d.argmin(axis=0), -1)
    visits: list[Visit] = []
    for j, (idx, info) in enumerate(candidates):
        lo = hi = idx
        if owner[idx] == j:
            while lo > 0 and owner[lo - 1] == j:
                lo -= 1
            while hi + 1 < len(owner) and owner[hi + 1] == j:
                hi += 1
        v = Visit(t_in=float(ts[lo]), t_out=float(ts[hi]), **info)
        if visits and _same_set(visits[-1], v):
            visits[-1].t_out = max(visits[-1].t_out, v.t_out)
            continue
        visits.append(v)
    if terminal == "attractor":
        # A slow region without unstable directions, right before the attractor and within
        # `visit_radius` of it in function space, is the slow (algebraic) approach to a degenerate
        # minimum, not a separate visit.
        d_out = problem.model.d_out
        while len(visits) >= 2 and visits[-2].kind == "slow_region" and visits[-2].signature[0] == 0 and \
                fingerprint_distance(visits[-2].fingerprint, visits[-1].fingerprint, d_out) <= rho:
            visits[-1].t_in = visits[-2].t_in
            del visits[-2]
    return Itinerary(visits, terminal, trajectory.method, message, degenerate)


def _terminal(problem, trajectory, thetas, distances, refine_radius, rtol_zero, rho, y_rms,
              attractor_gtol, approach_window):
    """Judge the end of a run that did not diverge: (terminal, message, visit info or None, degenerate)."""
    end = thetas[-1]
    finite = np.all(np.isfinite(trajectory.theta), axis=1)
    g_end = float(trajectory.grad_norm[finite][-1])
    unfinished = ("unfinished", f"the run ended with |grad L| = {g_end:.3g} away from any minimum", None, False)
    cp = find_critical_point(problem, end, radius=refine_radius * (1 + np.linalg.norm(end)))
    if not cp.success and g_end <= attractor_gtol:
        # Degenerate minima are approached algebraically and Newton-type refinement converges only
        # slowly onto them: follow the flow itself (an implicit solver takes huge steps there) until
        # ‖∇L‖ ≤ 1e-12, then take that point as the refined one.
        cont = gradient_flow(problem, end, None, gtol=1e-12, max_steps=20_000)
        if cont.status == Status.CONVERGED:
            cp = critical_point_at(problem, cont.final_theta, spectrum_options=dict(rtol_zero=rtol_zero),
                                   guess=end)
    if not cp.success:
        return unfinished
    spec = hessian_spectrum(problem, cp.theta, rtol_zero=rtol_zero)
    n_neg = int(spec.signature[0])
    if n_neg > 0:
        return ("unfinished", f"the run ended next to a critical point with {n_neg} unstable direction(s) "
                f"(|grad L| = {g_end:.3g}): not an attractor", None, False)
    fp = function_fingerprint(problem, cp.theta)
    d_hist = distances(fp)
    loss_hist = trajectory.loss[finite]
    gap = float(loss_hist[-1] - cp.loss)
    tail = slice(-min(approach_window, len(loss_hist)), None)
    approaching = (np.all(np.diff(loss_hist[tail]) <= 1e-15 * (1 + abs(loss_hist[-1])))
                   and np.all(np.diff(d_hist[tail]) <= 1e-12 * (1 + y_rms)) and d_hist[-1] <= rho)
    if trajectory.status == Status.CONVERGED:
        message = "converged to a critical set with no unstable direction"
    elif (g_end <= attractor_gtol and approaching
          and gap <= 2 * g_end * np.linalg.norm(end - cp.theta) + 1e-13 * (1 + abs(cp.loss))):
        # Near a minimum set L − L* ≲ ‖∇L‖·dist (quadratic or flatter): the run has essentially
        # reached the set's loss, and is still moving onto it.
        message = (f"approaching a minimum set (|grad L| = {g_end:.3g}, loss gap {gap:.3g}, "
                   f"function distance {d_hist[-1]:.3g}, both decreasing)")
    else:
        return unfinished
    degenerate = bool(spec.signature[1] and spec.signature[1] > 0)
    kind = "degenerate_minimum" if degenerate else "minimum"
    return "attractor", message, _visit_from_point(problem, cp.theta, kind, spec, fp, cp.grad_norm), degenerate


def _classify_passage(problem, theta, refine_radius, rtol_zero, rho) -> dict:
    cp = find_critical_point(problem, theta, radius=refine_radius * (1 + np.linalg.norm(theta)))
    if cp.success:
        fp = function_fingerprint(problem, cp.theta)
        if _distance_to_fp(problem, theta, fp) <= rho:
            spec = hessian_spectrum(problem, cp.theta, rtol_zero=rtol_zero)
            return _visit_from_point(problem, cp.theta, _kind(spec.signature), spec, fp, cp.grad_norm)
    spec = hessian_spectrum(problem, theta, rtol_zero=rtol_zero)
    fp = function_fingerprint(problem, theta)
    return _visit_from_point(problem, theta, "slow_region", spec, fp, problem.grad_norm(theta))


def _kind(sig) -> str:
    n_neg, n_zero, _ = sig
    if n_neg == 0:
        return "degenerate_minimum" if n_zero else "minimum"
    return "degenerate_saddle" if n_zero else "saddle"


def _same_set(a: Visit, b: Visit, tol: float = 1e-4) -> bool:
    if tuple(a.signature) != tuple(b.signature) or a.kind != b.kind:
        return False
    d = np.sqrt(np.mean((a.fingerprint - b.fingerprint) ** 2))
    return d <= tol * (1 + np.sqrt(np.mean(a.fingerprint ** 2)))


def add_to_graph(graph: SaddleGraph, itin: Itinerary, run: str) -> list[str]:
    """Add an itinerary's visits as nodes (matched up to symmetry) and its transitions as edges; set
    each visit's `node`. Returns the node sequence."""
    nodes = []
    for v in itin.visits:
        v.node = graph.add_node(fingerprint=v.fingerprint, signature=v.signature, kind=v.kind, loss=v.loss,
                                theta=v.theta, gen_error=v.gen_error, reduces_to=v.reduces_to,
                                grad_norm=v.grad_norm, eigenvalues=v.eigenvalues)
        nodes.append(v.node)
    if itin.terminal == "attractor":
        graph.graph.nodes[nodes[-1]]["attractor"] = True
        graph.graph.nodes[nodes[-1]]["degenerate"] = bool(itin.degenerate)
    graph.add_itinerary(nodes, [(v.t_in, v.t_out) for v in itin.visits], method=itin.method, run=run)
    return nodes
