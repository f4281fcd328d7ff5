"""Itineraries: a trajectory as a sequence of visits to critical sets, ending in an attractor or not.

The run is first resolved (`resolve_trajectory`): wherever two saved states are too far apart in function
space, log-time or log‖∇L‖, the segment between them is re-solved from the saved state with the run's own
dynamics, so that the passages found do not depend on the save grid or on t1. The slow passages of the
resolved run (local minima of ‖∇L‖ over log-time, the first state included: a run started near a critical
set begins with a visit to it) are refined by a Newton-type solve of ∇L = 0 with fallbacks. A passage
whose refinement converges to a critical point that the run came close to (in function space, during the
slow passage) is a visit to that critical set; otherwise it is a "slow_region" visit, labelled with the
local Hessian signature. A visit's window [t_in, t_out] is the stretch of states around the passage whose
network function stays within `visit_radius` (`function_distance`) of the visited one, starting where the
run first enters that radius after the previous visit.

The terminal state is "attractor" only when the run ends next to a critical set with no negative Hessian
eigenvalue beyond tolerance and it is really approaching it (converged, or, for degenerate minima that
are approached algebraically, loss and distance both still decreasing onto a refined critical point
whose loss the run has essentially reached, or, for a non-isolated minimum set with a kernel along it,
moving onto a refined point of the set however slowly); "diverged" for diverged or non-finite runs; otherwise
"unfinished". A slow passage is never called an attractor. An unfinished run ends in an explicit
"unfinished" visit at its last state, so its path keeps its edges in the saddle graph.

Visits of one critical set are one node wherever on the set the refinement lands: identity is the
network function (fingerprint, invariant under neuron symmetries), never the signature, which varies
along a degenerate set or a plateau manifold; unrefined slow regions also share n_neg (see
docs/itineraries.md for the rule and its tolerances). A visit whose Hessian spectrum cannot be computed
is kept, with the reason (`Visit.reason`).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from types import SimpleNamespace

import numpy as np

from . import _checks, _deprecation
from .dynamics.floor import kink_test, sampled_minimum_test
from .dynamics.flow import gradient_flow
from .dynamics.progress import progress_bar
from .dynamics.trajectory import Status, Trajectory
from .graph import SaddleGraph, match_distance
from .landscape import classify, classify_point, find_critical_point, loss_floor_spectrum, slow_points
from .landscape.critical import LOSS_FLOOR_NOTE, MATRIX_FREE_MIN
from .landscape.input_symmetry import orbit_fingerprint
from .landscape.spectrum import spectrum_or_fallback
from .landscape.slow import resolve_trajectory
from .landscape.symmetry import (fingerprint_distance, function_fingerprint, output_distance, output_scale,
                                 reduces_to)
from .problem import Problem, training_outputs

__all__ = ["Visit", "Itinerary", "itinerary", "add_to_graph", "refinement_share", "saddle_graph", "auto_time_limits",
           "function_noise_scale", "drift"]

TERMINALS = ("attractor", "diverged", "unfinished")
NOISE_WINDOW = 0.1  # decades of t: the running mean that separates an SGD run's drift from its noise


@dataclasses.dataclass
class Visit:
    """One passage of a trajectory near a critical set (or through a slow region).

    `status` says how the point was obtained: "converged" (refined to gtol), "near_critical" (the best
    refinement iterate, ‖∇L‖ ≤ `near_gtol`), "flow" (the flow itself continued onto the set),
    "unrefined" (a slow region: every refinement failed), "skipped" (the itinerary's or the
    refinement's time budget ran out before the refinement succeeded),
    "terminal" (the explicit end of an unfinished run), or "kink" (the flow stopped where ∇L jumps, so
    the flow's own end point is the critical point; see `reason`). `ball_radius`: for an attractor of kind
    "noise_ball", the measured radius of the ball (RMS function distance of the run's last states from
    the minimum); 0 otherwise. `morse_complete` is False when the Morse
    index signature[0] is only a lower bound (an incomplete Lanczos count). `t` is the time of the slow point; `radius`
    the function-space radius within which other passages count as the same one (0 for refined
    critical sets, whose identity is exact). `reason` is empty unless the Hessian spectrum could not be
    computed as usual: then it says why, and whether the signature comes from a central-difference
    Hessian of ∇L or is unknown (signature (None, None, None), kind "unclassified"); the visit is kept.
    At the loss floor it says that negative eigenvalues were counted as zero (`loss_floor_spectrum`).
    """

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
    status: str = "converged"
    t: float | None = None
    radius: float = 0.0
    morse_complete: bool = True
    reason: str = ""
    ball_radius: float = 0.0

    @property
    def dwell(self) -> float:
        return self.t_out - self.t_in

    def to_dict(self) -> dict:
        return dict(node=self.node, kind=self.kind, t_in=self.t_in, t_out=self.t_out, dwell=self.dwell,
                    loss=self.loss, gen_error=self.gen_error, signature=list(self.signature),
                    grad_norm=self.grad_norm, reduces_to=self.reduces_to, status=self.status,
                    reason=self.reason, ball_radius=self.ball_radius, theta=self.theta.tolist())

    @property
    def refined(self) -> bool:
        return self.status in ("converged", "near_critical", "flow", "kink")


@dataclasses.dataclass
class Itinerary:
    """The visits of one run, in order, and how it ended (`terminal`: attractor / diverged /
    unfinished). When `terminal == "attractor"` the last visit is the attractor; when it is
    "unfinished" the last visit is the explicit "unfinished" end (status "terminal").

    `stats`: wall time, refinements tried, states added by the resolution, whether the time budget ran
    out (`budget_exhausted`)."""

    visits: list[Visit]
    terminal: str
    method: str
    message: str
    degenerate: bool = False
    stats: dict = dataclasses.field(default_factory=dict)

    @property
    def passages(self) -> list[Visit]:
        """The visits that are slow passages: all but the attractor and the "unfinished" end."""
        out = [v for v in self.visits if v.status != "terminal"]
        return out[:-1] if self.terminal == "attractor" else out

    @property
    def refined_share(self) -> float:
        """The share of slow passages refined to a critical set (1.0 for a run without passages)."""
        p = self.passages
        return sum(v.refined for v in p) / len(p) if p else 1.0

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

    def _repr_html_(self):  # notebooks
        from .view import itinerary_html

        return itinerary_html(self)

    def _repr_pretty_(self, printer, cycle):  # IPython: a long itinerary prints its ends
        if len(self.visits) <= 6:
            printer.text(repr(self))
            return
        part = lambda vs: " → ".join(f"{v.kind}{tuple(v.signature)}" for v in vs)  # noqa: E731
        printer.text(f"Itinerary({self.method}: {part(self.visits[:3])} → … {len(self.visits) - 5} more → "
                     f"{part(self.visits[-2:])} ⇒ {self.terminal})")


def problem_loss_label(problem) -> str:
    """What the run's loss is, in words: "population loss" (Gaussian inputs, the expectation),
    "objective" (a plain function of θ), "cross-entropy (training)" or "training loss"."""
    from .objective import Objective
    from .population import GaussianInputs

    if isinstance(problem.source, GaussianInputs):
        return "population loss"
    if isinstance(problem.source, Objective):
        return "objective"
    return "cross-entropy (training)" if problem.loss_family == "cross_entropy" else "training loss"


def _train_part(problem, fp) -> np.ndarray:
    """The training-input outputs of a fingerprint, shape (n, d_out)."""
    n, d_out = problem.x.shape[0], problem.model.d_out
    return np.asarray(fp)[: n * d_out].reshape(n, d_out)


def _visit_from_point(problem, theta, kind, spectrum, fp, gnorm, status="converged", radius=0.0) -> dict:
    return dict(kind=kind, loss=problem.loss(theta),
                gen_error=problem.gen_error(theta) if problem.has_population else None,
                signature=tuple(None if s is None else int(s) for s in spectrum.signature),
                morse_complete=bool(spectrum.complete), theta=np.asarray(theta),
                grad_norm=float(gnorm), reduces_to=reduces_to(problem, theta),
                fingerprint=fp, eigenvalues=np.asarray(spectrum.eigenvalues), status=status,
                radius=float(radius),
                reason=spectrum.message if spectrum.method in ("finite_difference", "failed")
                or LOSS_FLOOR_NOTE in spectrum.message else "")


def _classified(ctx, point, status, cp) -> tuple:
    """(spectrum, kind) of a refined point: the refinement's own when it converged with reusable
    options, else computed; at the loss floor as the landscape's classification has it
    (`loss_floor_spectrum`)."""
    problem = ctx["problem"]
    if status == "converged" and _reusable(cp.spectrum, ctx["spec_opts"]):
        return cp.spectrum, cp.kind  # the refinement already classified this point
    spec = loss_floor_spectrum(problem, point, spectrum_or_fallback(problem, point, **ctx["spec_opts"]))
    return spec, _kind(problem, point, spec)


def _kind(problem, theta, spectrum) -> str:
    """The kind of a refined critical point: the one call into the landscape's classification (from
    the signature alone when the higher-order test cannot be evaluated at θ)."""
    try:
        return classify_point(problem, theta, spectrum)[0]
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return classify(spectrum.signature)


_REFINE_KEYS = tuple(k for k in inspect.signature(find_critical_point).parameters
                     if k not in ("problem", "theta_guess"))


def _refine_options(refine_options) -> dict:
    if refine_options is None:
        return {}
    if not isinstance(refine_options, dict):
        raise TypeError(f"refine_options must be a dict of find_critical_point options, got "
                        f"{type(refine_options).__name__}.")
    unknown = sorted(set(refine_options) - set(_REFINE_KEYS))
    if unknown:
        raise ValueError(f"refine_options has unknown option(s) {unknown}; find_critical_point accepts "
                         f"{list(_REFINE_KEYS)}.")
    return dict(refine_options)


@_deprecation.renamed_arguments(refine="refine_options")
def itinerary(problem: Problem, trajectory: Trajectory, *, visit_radius: float | None = None,
              refine_options: dict | None = None, refine_radius: float = 1.0, rtol_zero: float = 1e-7,
              attractor_gtol: float = 1e-5, approach_window: int = 8, min_depth: float = 0.05,
              resolve: bool = True, near_gtol: float = 1e-8, time_limit: float | str | None = "auto",
              progress: bool | None = None, smooth: float | None = None,
              spectrum_options: dict | None = None, exit_radius: float | None = None) -> Itinerary:
    """Segment a trajectory (gradient flow, GD or SGD) into visits of critical sets and a terminal state.

    **Arguments:**

    - `visit_radius`: function-space radius (`function_distance` over the training inputs) of a
      visit's window, and the tolerance within which unrefined slow regions count as one passage.
      Default: 0.1 · d(y, 0) = 0.1 · sqrt(mean_k ‖y_k‖²).
    - `refine_options`: options passed to `find_critical_point` for every refinement (e.g.
      `dict(max_iter=50, time_limit=10.0, gtol=1e-10)`); unknown keys raise `ValueError`.
    - `refine_radius`: how far (in parameter norm, relative to 1 + ‖θ‖) Newton may move a slow point
      and still call the result the critical point it is near (unless `refine_options` gives `radius`).
    - `rtol_zero`: relative tolerance for zero Hessian eigenvalues (see `hessian_spectrum`).
    - `attractor_gtol`: a run that did not reach its own gtol may still end at an attractor only if its
      final ‖∇L‖ is below this and it is demonstrably approaching a minimum set.
    - `approach_window`: how many final saved states must show decreasing loss and distance.
    - `min_depth`: the least depth, in decades of ‖∇L‖, of a slow passage (see `slow_points`). Slow
      passages near degenerate saddles can be shallow: the minimal model's passage near the optimal
      region dips by only 0.1 decade.
    - `resolve`: re-solve the segments of the run that the save grid leaves unresolved
      (`resolve_trajectory` with max_jump = visit_radius / 2), so that the passages do not depend on
      the save grid. False analyses the saved states only.
    - `near_gtol`: a refinement that failed to reach its gtol but whose best iterate has ‖∇L‖ ≤
      `near_gtol` is kept as that critical set (status "near_critical") instead of being discarded.
    - `time_limit`: wall-time budget in seconds for the whole itinerary; once spent, the remaining
      passages are recorded unrefined (status "skipped") and `stats["budget_exhausted"]` is True.
      "auto" (default): no limit up to `MATRIX_FREE_MIN` parameters; above it
      `auto_time_limits(n)` (15 s + 5 ms per parameter for the itinerary, 2 s + 2 ms per parameter
      per refinement, unless `refine_options` gives `time_limit`). None: no limit. A per-refinement budget
      is `refine_options=dict(time_limit=…)`; the end of the run is always judged, within a refinement
      budget.
    - `progress`: a progress bar over the passages (None: when stderr is a terminal and there are
      at least 4 passages; FLOWTOOLS_PROGRESS=0 hides it).
    - `spectrum_options`: passed to every `hessian_spectrum` call that labels a visit (e.g.
      `dict(method="lanczos")`); a Lanczos signature is (n_neg, None, None) and a visit whose count is
      only a lower bound has `morse_complete` False.
    - `smooth`: the running-median half-width of `slow_points`, in decades of t. Default: 0 for
      gradient flow and GD (deterministic, and resolved: a median over several GD steps at large η
      would flatten real dips), 0.05 for SGD.
    - `exit_radius`: the radius at which a visit ends (hysteresis: a visit begins where the run comes
      within `visit_radius` and lasts until it first moves beyond `exit_radius`, its window closing at
      the last state within `visit_radius` before that). Default: `visit_radius` for gradient flow and
      GD (no hysteresis), 2·ρ for SGD.

    **Noisy runs (SGD).** Mini-batch noise puts a floor under the full-batch ‖∇L‖ that can lie above a
    plateau's own ‖∇L‖, so gradient dips miss slow passages. For SGD the passages are also found from
    the loss: each plateau of `flowtools.plateaus` (a band in log L wider than the run's own noise) is
    refined from the iterate average over it, and kept when the run's drift came within `exit_radius`
    of the refined critical set during the plateau (else it is a slow region); unrefined dips of ‖∇L‖
    are not passages of a noisy run. Distances to critical sets are taken from the run's drift, the
    running mean of its outputs over ±0.1 decades of t (`NOISE_WINDOW`, `drift`); what it leaves, the run's
    noise scale in function space, is `stats["noise_scale"]` (`function_noise_scale`). Visits use
    hysteresis (`exit_radius`), and an unrefined slow region
    within the exit radius of a refined visit is that visit's noise, not a passage. A run that ends
    hovering around a minimum is an attractor of kind "noise_ball" (`Visit.ball_radius`: the RMS
    function distance of its last states from the minimum) instead of "unfinished".
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"trajectory must be a flowtools.Trajectory, got {type(trajectory).__name__}.")
    if trajectory.theta.shape[1] != problem.n_params:
        raise ValueError(f"trajectory has {trajectory.theta.shape[1]} parameters but the problem's model "
                         f"has {problem.n_params}.")
    wall0 = time.perf_counter()
    y_rms = output_scale(problem.y)
    rho = _checks.positive("visit_radius", visit_radius) if visit_radius is not None else 0.1 * max(y_rms, 1e-12)
    refine_radius = _checks.positive("refine_radius", refine_radius)
    attractor_gtol = _checks.positive("attractor_gtol", attractor_gtol)
    near_gtol = _checks.positive("near_gtol", near_gtol)
    min_depth = _checks.positive("min_depth", min_depth)
    opts = _refine_options(refine_options)
    if isinstance(time_limit, str):
        _checks.choice("time_limit", time_limit, ["auto"])
        time_limit, per_refine = auto_time_limits(problem.n_params)
        if per_refine is not None:
            opts.setdefault("time_limit", per_refine)
    elif time_limit is not None:
        time_limit = _checks.positive("time_limit", time_limit)
    if spectrum_options is not None and not isinstance(spectrum_options, dict):
        raise TypeError("spectrum_options must be a dict of hessian_spectrum options, got "
                        f"{type(spectrum_options).__name__}.")
    spec_opts = dict(spectrum_options or {}, rtol_zero=rtol_zero)
    opts.setdefault("spectrum_options", dict(spec_opts))

    def remaining():
        return None if time_limit is None else max(time_limit - (time.perf_counter() - wall0), 0.0)

    traj = trajectory
    if resolve:
        budget = remaining()
        traj = resolve_trajectory(problem, trajectory, max_jump=0.5 * rho,
                                  time_limit=None if budget is None else 0.5 * budget)
    finite = np.all(np.isfinite(traj.theta), axis=1)
    thetas, ts = traj.theta[finite], traj.t[finite]
    outputs = training_outputs(problem, thetas)
    d_out, n_train = problem.model.d_out, int(np.asarray(problem.x).shape[0])

    def distances(fp):
        return output_distance(outputs, _train_part(problem, fp)[None])

    ctx = dict(problem=problem, opts=opts, refine_radius=refine_radius, rtol_zero=rtol_zero, rho=rho,
               spec_opts=spec_opts,
               near_gtol=near_gtol, distances=distances, ts=ts)
    noisy = trajectory.method == "sgd"
    noise = function_noise_scale(ts, outputs) if noisy else 0.0
    if noisy:  # distances from the run's drift: its noise does not carry it in and out of a radius
        raw, smooth_outputs = outputs, drift(ts, outputs)

        def distances(fp, raw_states=False):
            return output_distance(raw if raw_states else smooth_outputs, _train_part(problem, fp)[None])

        ctx["distances"] = distances
    if exit_radius is not None:
        rho_out = _checks.positive("exit_radius", exit_radius)
        if rho_out < rho:
            raise ValueError(f"exit_radius={rho_out:g} is below visit_radius={rho:g}; a visit must end at "
                             "a radius at least as large as the one it begins at.")
    else:
        rho_out = 2 * rho if noisy else rho

    # ----------------------------------------------------------- passages
    if smooth is None:
        smooth = 0.0 if trajectory.method in ("gradient_flow", "gradient_descent") else 0.05
    smooth = _checks.nonnegative("smooth", smooth)
    index_of = {int(i): k for k, i in enumerate(np.nonzero(finite)[0])}
    sps = [sp for sp in slow_points(traj, min_depth=min_depth, include_start=True, smooth=smooth)
           if index_of.get(int(sp.index), len(thetas)) < len(thetas) - 1]  # the end is judged below
    candidates = []  # (row, visit info), in time order
    n_refinements, exhausted = 0, False
    bar = _progress(len(sps), progress)
    try:
        for sp in sps:
            # A run's start is judged at its first state (slow_points skips t = 0; at large η one GD
            # step already leaves the set the run starts near).
            idx = 0 if sp.at_start else index_of.get(int(sp.index))
            if idx is None:
                continue
            budget = remaining()
            if budget is not None and budget <= 0:
                exhausted = True
                info = _slow_region(problem, thetas[idx], spec_opts, rho, "skipped")
            else:
                o = dict(opts)
                if budget is not None:
                    o["time_limit"] = min(o.get("time_limit") or np.inf, budget)
                info = _refine_passage(dict(ctx, opts=o), thetas[idx], sp)
                n_refinements += 1
            # The first state is a candidate only as a critical set: a run that does not start near
            # one has no visit there.
            # A noisy run's unrefined dip is its noise, not a passage (see `_plateau_passages`).
            if not (sp.at_start and info["status"] not in ("converged", "near_critical")) and \
                    not (noisy and info["kind"] == "slow_region" and info["status"] == "unrefined"):
                candidates.append((idx, info))
            bar.update(1)
    finally:
        bar.close()
    if noisy and remaining() is not None and remaining() <= 0:
        exhausted = True  # the loss's plateaus are not refined
    elif noisy:
        o = dict(opts)
        if remaining() is not None:
            o["time_limit"] = min(o.get("time_limit") or np.inf, remaining())
        found = _plateau_passages(dict(ctx, rho=rho_out, opts=o), traj, thetas)
        candidates = sorted(candidates + found, key=lambda c: c[0])

    # ------------------------------------------------------------ terminal
    status = trajectory.status
    degenerate, end_info = False, None
    if status in (Status.DIVERGED, Status.NON_FINITE):
        terminal, message = "diverged", trajectory.message
    else:
        budget = remaining()
        if budget is not None:  # the end is always judged, within one refinement's budget at least
            o = dict(opts)
            o["time_limit"] = max(min(o.get("time_limit") or np.inf, budget), o.get("time_limit") or 1.0)
            ctx = dict(ctx, opts=o)
        terminal, message, end_info, degenerate = _terminal(
            ctx, traj, thetas, y_rms, attractor_gtol, approach_window)
        if end_info is not None:
            candidates.append((len(thetas) - 1, end_info))

    # ------------------------------------------------------------- windows
    if noisy and terminal == "unfinished":
        ball = _noise_ball(ctx, thetas, rho_out, approach_window)
        if ball is not None:
            terminal, message, end_info, degenerate = ball
            candidates.append((len(thetas) - 1, end_info))
    visits = _windows(candidates, distances, ts, rho, rho_out)
    if noisy:
        visits = _without_noise(visits, distances, ts, rho_out)
    merged: list[Visit] = []
    for v in visits:
        if merged and match_distance(vars(merged[-1]), vars(v), d_out, n_train) is not None:  # one set
            merged[-1] = _merge(merged[-1], v)
        else:
            merged.append(v)
    visits = merged
    if terminal == "attractor" and end_info["kind"] == "noise_ball":  # merged with a visit of its minimum
        visits[-1] = dataclasses.replace(visits[-1], kind="noise_ball", ball_radius=end_info["ball_radius"])
    if terminal == "attractor":
        # A slow region without unstable directions, right before the attractor and within
        # `visit_radius` of it in function space, is the slow (algebraic) approach to a degenerate
        # minimum, not a separate visit.
        while len(visits) >= 2 and visits[-2].kind == "slow_region" and visits[-2].signature[0] == 0 and \
                fingerprint_distance(visits[-2].fingerprint, visits[-1].fingerprint, d_out) <= rho:
            visits[-1].t_in = visits[-2].t_in
            del visits[-2]
    elif terminal == "unfinished":
        end = thetas[-1]
        spec = _spectrum(problem, end, spec_opts, ctx.get("end_spectrum"))
        info = _visit_from_point(problem, end, "unfinished", spec, function_fingerprint(problem, end),
                                 problem.grad_norm(end), status="terminal", radius=rho)
        info["reason"] = ctx.get("end_reason", info["reason"])
        visits.append(Visit(t_in=float(ts[-1]), t_out=float(ts[-1]), t=float(ts[-1]), **info))
    if problem.symmetry is not None:
        # A declared input symmetry: visits are identified (in the graph, in basin fractions) by their
        # canonical representative's function, so points of one orbit of the full group are one set.
        for v in visits:
            v.fingerprint = orbit_fingerprint(problem, v.theta)
    stats = dict(wall_time=time.perf_counter() - wall0, refinements=n_refinements, noise_scale=noise,
                 visit_radius=rho, exit_radius=rho_out,
                 budget_exhausted=exhausted, resolved_states=int(traj.stats.get("resolved_states", 0)),
                 states=int(len(thetas)), d_out=d_out, n_train=n_train,
                 loss_label=problem_loss_label(problem))
    if "periodic_orbit" in ctx:
        stats["periodic_orbit"] = ctx["periodic_orbit"]
    itin = Itinerary(visits, terminal, trajectory.method, message, degenerate, stats)
    if exhausted:
        itin.message += f"; the time limit of {time_limit:g} s ran out: later passages are unrefined"
    return itin


def auto_time_limits(n_params: int) -> tuple[float | None, float | None]:
    """The default wall-time budgets (itinerary, per refinement) in seconds for `n_params` parameters:
    (None, None) up to `MATRIX_FREE_MIN` (small problems refine in well under a second), else
    (15 + 0.005·n, 2 + 0.002·n): 21 s and 4.4 s at 1 210 parameters, 27 s and 6.8 s at 2 410. The
    refinement's cost grows about linearly in n per Hessian-vector product."""
    if n_params <= MATRIX_FREE_MIN:
        return None, None
    return 15.0 + 0.005 * n_params, 2.0 + 0.002 * n_params


def _progress(total, enable):
    # None: shown from 4 passages on, when stderr is a terminal
    return progress_bar(total, "itinerary", enable, threshold=3, unit="passage")


def _reusable(spec, spec_opts) -> bool:
    return (spec is not None and spec.rtol_zero == spec_opts["rtol_zero"]
            and spec_opts.get("method", "auto") in ("auto", spec.method))


def _spectrum(problem, theta, spec_opts, known=None):
    """The Hessian spectrum at θ, reusing `known` (a refinement's record of the same point)."""
    if _reusable(known, spec_opts) and known.n_params == len(theta):
        return known
    # Slow regions and the unfinished end keep eigenvalues and signature only.
    return spectrum_or_fallback(problem, theta,
                                **dict(dict(vectors=problem.n_params <= MATRIX_FREE_MIN), **spec_opts))


def _guess_spectrum(cp, theta):
    """A failed refinement's spectrum, which describes its guess θ (None when it is another point)."""
    if cp is None or cp.success or cp.spectrum is None or cp.guess is None:
        return None
    return cp.spectrum if np.array_equal(np.asarray(cp.guess), np.asarray(theta)) else None


def _slow_region(problem, theta, spec_opts, rho, status="unrefined", known=None) -> dict:
    spec = _spectrum(problem, theta, spec_opts, known)
    return _visit_from_point(problem, theta, "slow_region", spec, function_fingerprint(problem, theta),
                             problem.grad_norm(theta), status=status, radius=rho)


def _refine(ctx, theta) -> tuple:
    """(point, status, CriticalPoint) from a guess: the converged solve, or its best iterate when that
    reached ‖∇L‖ ≤ near_gtol, or (None, "unrefined", cp)."""
    o = dict(ctx["opts"])
    o.setdefault("radius", ctx["refine_radius"] * (1 + np.linalg.norm(theta)))
    try:
        cp = find_critical_point(ctx["problem"], theta, **o)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None, "unrefined", None  # the guess's own record is built by the caller
    if cp.success:
        return cp.theta, "converged", cp
    if cp.best_grad_norm is not None and cp.best_grad_norm <= ctx["near_gtol"]:
        return cp.best_theta, "near_critical", cp
    return None, ("skipped" if cp.status == "time_limit" else "unrefined"), cp


def _refine_passage(ctx, theta, sp) -> dict:
    """Refine one slow passage (fallbacks: see `find_critical_point`; then, where the Hessian has no
    unstable direction, the flow itself) and accept the point only if the run came within the visit
    radius of it during the passage."""
    problem, rho = ctx["problem"], ctx["rho"]
    point, status, cp = _refine(ctx, theta)
    if point is None and cp is not None and cp.signature[0] == 0 and np.isfinite(cp.grad_norm):
        # No unstable direction at the guess: the slow approach to a (degenerate) minimum set, which
        # the implicit flow follows with huge steps.
        cont = gradient_flow(problem, theta, None, gtol=ctx["near_gtol"] * 1e-4, max_steps=20_000)
        if cont.status == Status.CONVERGED:
            point, status = cont.final_theta, "flow"
    if point is not None:
        fp = function_fingerprint(problem, point)
        ts = ctx["ts"]
        during = (ts >= (ts[0] if sp.at_start else sp.t_start)) & (ts <= sp.t_end)
        d = ctx["distances"](fp)
        if during.any() and float(np.min(d[during])) <= rho:
            spec, kind = _classified(ctx, point, status, cp)
            return _visit_from_point(problem, point, kind, spec, fp, problem.grad_norm(point), status=status)
    return _slow_region(problem, theta, ctx["spec_opts"], rho, status="skipped" if status == "skipped" else
                        "unrefined", known=_guess_spectrum(cp, theta))


def _windows(candidates, distances, ts, rho, rho_out=None) -> list[Visit]:
    """Each candidate's window: the contiguous stretch of states around its slow point within `rho_out`
    of it (default `rho`), from the first to the last of its states within `rho` (hysteresis: the run
    enters at `rho` and leaves at `rho_out`; the whole stretch when none is within `rho`); consecutive
    windows are split where the run becomes nearer (in function space) to the next candidate than to
    the previous one."""
    m = len(ts)
    rho_out = rho if rho_out is None else rho_out
    spans = []
    for idx, info in candidates:
        d = distances(info["fingerprint"])
        lo = hi = idx
        if d[idx] <= rho_out:
            while lo > 0 and d[lo - 1] <= rho_out:
                lo -= 1
            while hi + 1 < m and d[hi + 1] <= rho_out:
                hi += 1
            near = lo + np.flatnonzero(d[lo:hi + 1] <= rho)
            if near.size:  # else (a noisy run's passage that came within rho_out only): that stretch
                lo, hi = int(near[0]), int(near[-1])
        spans.append([lo, hi, d])
    for j in range(1, len(candidates)):
        (ia, _), (ib, _) = candidates[j - 1], candidates[j]
        a, b = spans[j - 1], spans[j]
        if a[1] < b[0]:
            continue
        if ib <= ia:
            b[0] = b[1] = ib
            continue
        between = np.arange(ia + 1, ib + 1)
        nearer_b = between[b[2][between] < a[2][between]]
        cut = int(nearer_b[0]) if nearer_b.size else ib
        a[1] = min(a[1], cut - 1)
        b[0] = max(b[0], cut)
    out = []
    for (idx, info), (lo, hi, _) in zip(candidates, spans):
        lo, hi = min(lo, idx), max(hi, idx) if hi >= idx else idx
        out.append(Visit(t_in=float(ts[lo]), t_out=float(ts[hi]), t=float(ts[idx]), **info))
    return out


def drift(ts, values, window: float = NOISE_WINDOW) -> np.ndarray:
    """The running mean of a run's saved values (its outputs, shape (m, n, d_out), or its states, shape
    (m, n_params)) over ±`window` decades of t, states at t ≤ 0 kept as they are: the run's drift, its
    noise averaged out."""
    ts = np.asarray(ts, dtype=float)
    outputs = np.asarray(values, dtype=float)
    out = outputs.copy()
    pos = np.flatnonzero(ts > 0)
    if pos.size:
        s = np.log10(ts[pos])
        lo = np.searchsorted(s, s - window, side="left")
        hi = np.searchsorted(s, s + window, side="right")
        csum = np.concatenate([np.zeros((1,) + outputs.shape[1:]), np.cumsum(outputs[pos], axis=0)])
        out[pos] = (csum[hi] - csum[lo]) / (hi - lo).reshape((-1,) + (1,) * (outputs.ndim - 1))
    return out


def function_noise_scale(ts, outputs, window: float = NOISE_WINDOW) -> float:
    """The noise scale of a run in function space, estimated from the run itself: the median over its
    saved states (t > 0) of the `output_distance` between a state's training outputs (shape
    (m, n, d_out)) and their running mean over ±`window` decades of t. The mean follows the drift; what
    is left is the noise (SGD); for a deterministic run saved densely enough to be smooth it is near 0."""
    pos = np.flatnonzero(np.asarray(ts) > 0)
    if pos.size < 3:
        return 0.0
    return float(np.median(output_distance(np.asarray(outputs)[pos], drift(ts, outputs, window)[pos])))


def _plateau_passages(ctx, traj, thetas) -> list:
    """Slow passages of a noisy run found from its loss (`plateaus`, whose band is at least the run's
    own noise): each plateau is refined from the iterate average over it and is a visit candidate, at its
    state nearest the refined set, of that set when the run's drift came within ρ of it during the
    plateau, else a slow region at the iterate average. A noisy run's unrefined dips of ‖∇L‖ are not
    passages: the full-batch ‖∇L‖ of its states has a noise floor that can lie above a plateau's own."""
    from .escape import plateaus

    ts, out = ctx["ts"], []
    for p in plateaus(traj):
        span = np.flatnonzero((ts >= p.t_start) & (ts <= p.t_end))
        if span.size == 0:
            continue
        guess = np.mean(thetas[span], axis=0)
        info = _refine_passage(ctx, guess, SimpleNamespace(t_start=p.t_start, t_end=p.t_end, at_start=False))
        d = ctx["distances"](info["fingerprint"])
        out.append((int(span[np.argmin(d[span])]), info))
    return out


def _noise_ball(ctx, thetas, rho_out, approach_window):
    """A noisy run's end hovering around a minimum: (terminal, message, visit info, degenerate) of an
    attractor of kind "noise_ball", or None. The iterate average over the last tenth of the run (at
    least `approach_window` states) is refined; the end is a noise ball when that is a minimum, every
    one of those states lies within `rho_out` of it, and they are not closing in on it (the RMS distance
    of the later half of them is at least half that of the earlier half: a run still converging is
    judged as today)."""
    problem, ts = ctx["problem"], ctx["ts"]
    tail = np.flatnonzero(ts >= ts[0] + 0.9 * (ts[-1] - ts[0]))
    if tail.size < approach_window:
        tail = np.arange(max(len(ts) - approach_window, 0), len(ts))
    if tail.size < 4:
        return None
    point, status, cp = _refine(ctx, np.mean(thetas[tail], axis=0))
    if point is None:
        return None
    spec, kind = _classified(ctx, point, status, cp)
    if kind not in ("minimum", "degenerate_minimum"):
        return None
    fp = function_fingerprint(problem, point)
    d = ctx["distances"](fp, raw_states=True)[tail]
    half = d.size // 2
    rms = lambda v: float(np.sqrt(np.mean(v * v)))  # noqa: E731
    if np.max(ctx["distances"](fp)[tail]) > rho_out or rms(d[half:]) < 0.5 * rms(d[:half]):
        return None
    info = _visit_from_point(problem, point, "noise_ball", spec, fp, problem.grad_norm(point), status=status)
    info["ball_radius"] = rms(d)
    message = (f"hovering in a noise ball around a {kind} (RMS function distance {info['ball_radius']:.3g} "
               f"over the last {tail.size} states, at most {np.max(d):.3g}; loss at the minimum "
               f"{info['loss']:.6g})")
    return "attractor", message, info, bool(spec.signature[1])


def _without_noise(visits, distances, ts, rho_out) -> list[Visit]:
    """A noisy run's visits without the unrefined slow regions that lie within `rho_out` of a refined
    visit in the itinerary: those are the run's noise around that set, not passages of their own."""
    refined = [v for v in visits if v.refined or v.kind == "noise_ball"]
    keep = []
    for v in visits:
        if v.kind == "slow_region" and not v.refined:
            i = int(np.clip(np.searchsorted(ts, v.t), 0, len(ts) - 1))
            if any(distances(w.fingerprint)[i] <= rho_out for w in refined):
                continue
        keep.append(v)
    return keep


def _kink_terminal(ctx, trajectory, end, g_end):
    """The end of a flow that stopped at a kink of L (`kink_test`), where no refinement can bring ∇L to 0.

    A ReLU neuron that reaches w = 0 with a negative output weight is the common case: L rises linearly
    in w from there, so the flow stops in finite time with a one-sided ‖∇L‖ > 0. Such a point is an
    attractor when no sampled direction lowers L (`sampled_minimum_test`); it is recorded as a
    degenerate minimum (its Hessian is not the second derivative of L, so the signature is the
    computed one, not a Morse index), with the tests' numbers in the visit's reason. Otherwise None.
    """
    problem = ctx["problem"]
    kink = kink_test(problem, end)
    if not kink["kink"]:
        return None
    test = sampled_minimum_test(problem, end)
    reason = (
        f"L is not differentiable here (∇L jumps by {kink['jumps'][-1]:.3g} across steps of both "
        f"{kink['deltas'][0]:g} and {kink['deltas'][-1]:g}; e.g. a ReLU neuron at w = 0), so the Hessian "
        f"signature is not a Morse index; L changes by ≥ {test['worst']:.3g} along {test['n_directions']} "
        f"sampled directions at radii {', '.join(f'{r:g}' for r in test['radii'])}")
    if not test["minimum"] or trajectory.status != Status.CONVERGED:
        ctx["end_reason"] = reason  # for the explicit "unfinished" end
        why = (f"from which a sampled direction descends (by {-test['worst']:.3g})" if not test["minimum"]
               else f"and the flow ended {trajectory.status.value}")
        return ("unfinished", f"the run stopped at a kink of L (|grad L| = {g_end:.3g}) {why}: not an "
                "attractor", None, False)
    spec = spectrum_or_fallback(problem, end, **ctx["spec_opts"])
    info = _visit_from_point(problem, end, "degenerate_minimum", spec, function_fingerprint(problem, end),
                             g_end, status="kink")
    info["reason"] = reason
    return ("attractor", f"stopped at a kink of L where no sampled direction descends (one-sided |grad L| = "
            f"{g_end:.3g}): a non-smooth minimum", info, True)


def _terminal(ctx, trajectory, thetas, y_rms, attractor_gtol, approach_window):
    """Judge the end of a run that did not diverge: (terminal, message, visit info or None, degenerate)."""
    problem, rho, rtol_zero, distances = ctx["problem"], ctx["rho"], ctx["rtol_zero"], ctx["distances"]
    end = thetas[-1]
    periodic = _periodic_terminal(ctx, trajectory, end, attractor_gtol)
    if periodic is not None:
        return periodic
    finite = np.all(np.isfinite(trajectory.theta), axis=1)
    g_end = float(trajectory.grad_norm[finite][-1])
    point, status, cp = _refine(ctx, end)
    ctx["end_spectrum"] = _guess_spectrum(cp, end)
    unfinished = ("unfinished", f"the run ended with |grad L| = {g_end:.3g} away from any minimum", None, False)
    if point is None and g_end <= attractor_gtol:
        # Degenerate minima are approached algebraically and Newton-type refinement converges only
        # slowly onto them: follow the flow itself (an implicit solver takes huge steps there) until
        # ‖∇L‖ ≤ 1e-12, then take that point as the refined one.
        cont = gradient_flow(problem, end, None, gtol=1e-12, max_steps=20_000)
        if cont.status == Status.CONVERGED:
            point, status = cont.final_theta, "flow"
    if point is None:
        return _kink_terminal(ctx, trajectory, end, g_end) or unfinished
    spec, kind = _classified(ctx, point, status, cp)
    fp = function_fingerprint(problem, point)
    info = _visit_from_point(problem, point, kind, spec, fp, problem.grad_norm(point), status=status)
    d_hist = distances(fp)
    if spec.signature[0] is None:  # kept, unclassified: without a spectrum nothing says "minimum"
        return ("unfinished", f"the run ended at a critical point (|grad L| = {g_end:.3g}) whose Hessian "
                f"spectrum could not be computed ({spec.message}): not judged an attractor", info, False)
    n_neg = int(spec.signature[0])
    if n_neg > 0 or kind not in ("minimum", "degenerate_minimum"):
        if d_hist[-1] <= rho:  # the run ends inside a saddle's radius: that is its last visit
            return ("unfinished", f"the run ended next to a {kind} with {n_neg} unstable direction(s) "
                    f"(|grad L| = {g_end:.3g}): not an attractor", info, False)
        return unfinished
    loss_hist = trajectory.loss[finite]
    loss_star = problem.loss(point)
    gap = float(loss_hist[-1] - loss_star)
    tail = slice(-min(approach_window, len(loss_hist)), None)
    approaching = (np.all(np.diff(loss_hist[tail]) <= 1e-15 * (1 + abs(loss_hist[-1])))
                   and np.all(np.diff(d_hist[tail]) <= 1e-12 * (1 + y_rms)) and d_hist[-1] <= rho)
    # At a minimum to round-off: the loss gap is at the level of the loss's own rounding error
    # (≈ n·ε·L for a sum of n terms; ε·(1 + y²) for a zero-loss fit) and the function is on the set.
    eps = np.finfo(float).eps
    round_off = 1e3 * eps * (abs(loss_star) + eps * (1 + y_rms ** 2))
    # …or at the set to the run's own accuracy: within the flow solver's error tolerance of a point of
    # the set (GD: within round-off of θ), which is as close as the saved state can be.
    meta = trajectory.meta
    scale = 1.0 + float(np.linalg.norm(point))
    if trajectory.method == "gradient_flow" and meta.get("atol") is not None:
        rtol = float(meta.get("rtol") or 0.0)
        state_tol = 10.0 * np.sqrt(len(point)) * (float(meta["atol"]) + rtol * scale)
    else:
        state_tol = 1e3 * eps * scale
    at_set = float(np.linalg.norm(end - point)) <= state_tol
    if trajectory.status == Status.CONVERGED:
        message = "converged to a critical set with no unstable direction"
    elif (abs(gap) <= round_off or at_set) and d_hist[-1] <= rho and g_end <= attractor_gtol:
        message = (f"at a minimum set to the run's accuracy (|grad L| = {g_end:.3g}, loss gap {gap:.3g}, "
                   f"distance {np.linalg.norm(end - point):.3g} in θ)")
    elif (g_end <= attractor_gtol and approaching
          and gap <= 2 * g_end * np.linalg.norm(end - point) + 1e-13 * (1 + abs(loss_star))):
        # Near a minimum set L − L* ≲ ‖∇L‖·dist (quadratic or flatter): the run has essentially
        # reached the set's loss, and is still moving onto it.
        message = (f"approaching a minimum set (|grad L| = {g_end:.3g}, loss gap {gap:.3g}, "
                   f"function distance {d_hist[-1]:.3g}, both decreasing)")
    elif (spec.signature[1] and approaching
          and gap <= 2 * g_end * np.linalg.norm(end - point) + 1e-13 * (1 + abs(loss_star))):
        # A non-isolated minimum set (a kernel along it) is approached sublinearly, so ‖∇L‖ can stay
        # above attractor_gtol for a long time; the refined point is on the set, no direction descends,
        # and the run is still moving onto it: waiting would only confirm it.
        message = (f"approaching a non-isolated minimum set (kernel of dimension {spec.signature[1]}) "
                   f"sublinearly: |grad L| = {g_end:.3g}, loss gap {gap:.3g}, function distance "
                   f"{d_hist[-1]:.3g}, both decreasing")
    else:
        return unfinished
    degenerate = bool(spec.signature[1] and spec.signature[1] > 0)
    return "attractor", message, info, degenerate


def _periodic_terminal(ctx, trajectory, end, attractor_gtol):
    """GD that ends on a stable periodic orbit of its map (`periodic_orbit`, recognised from the last
    state): ("attractor", message, visit info, False), the orbit in ctx["periodic_orbit"]; else None.
    The visit stands for the orbit: its lowest-loss point (the same whatever phase the run ends in), the
    loss averaged over a period, the multipliers' moduli as eigenvalues and their signature."""
    problem = ctx["problem"]
    lr = trajectory.meta.get("lr")
    if trajectory.method != "gradient_descent" or lr is None or problem.grad_norm(end) <= attractor_gtol:
        return None  # not the GD map, or next to a fixed point: the critical-point rules judge it
    from .dynamics.periodic import periodic_orbit

    orbit = periodic_orbit(problem, end, lr)
    if orbit is None or not orbit.stable:
        return None
    i = orbit.representative
    point = orbit.points[i]
    fp = function_fingerprint(problem, point)
    if float(ctx["distances"](fp)[-1]) > ctx["rho"] and float(ctx["distances"](
            function_fingerprint(problem, orbit.points[0]))[-1]) > ctx["rho"]:
        return None
    ctx["periodic_orbit"] = orbit.to_dict()
    info = dict(kind=orbit.kind, loss=orbit.mean_loss,
                gen_error=float(np.mean([problem.gen_error(x) for x in orbit.points]))
                if problem.has_population else None,
                signature=orbit.signature, morse_complete=True, theta=np.asarray(point),
                grad_norm=float(orbit.grad_norms[i]), reduces_to=reduces_to(problem, point), fingerprint=fp,
                eigenvalues=orbit.multipliers, status="converged", radius=0.0, reason="")
    message = (f"on a stable {orbit.kind} of the GD map (largest multiplier |μ| = {orbit.spectral_radius:.4g}, "
               f"{orbit.distance:.3g} from it in θ): losses {', '.join(f'{x:.6g}' for x in orbit.losses)}, "
               f"sharpness {', '.join(f'{x:.5g}' for x in orbit.sharpness)} (mean "
               f"{np.mean(orbit.sharpness):.5g}; 2/η = {orbit.two_over_lr:.5g})")
    return "attractor", message, info, False


def _merge(a: Visit, b: Visit) -> Visit:
    """One visit from two consecutive visits of the same set: the better-refined representative, the
    union of the windows."""
    keep = b if (b.refined and not a.refined) or (b.refined == a.refined and b.grad_norm < a.grad_norm) else a
    out = dataclasses.replace(keep, t_in=min(a.t_in, b.t_in), t_out=max(a.t_out, b.t_out), t=a.t)
    return out


def add_to_graph(graph: SaddleGraph, itin: Itinerary, run: str) -> list[str]:
    """Add an itinerary's visits as nodes (matched by function and index, see `SaddleGraph.find_node`)
    and its transitions as edges; set each visit's `node`. Returns the node sequence."""
    nodes = []
    d_out = int(itin.stats.get("d_out", 1))
    for v in itin.visits:
        v.node = graph.add_node(fingerprint=v.fingerprint, signature=v.signature, kind=v.kind, loss=v.loss,
                                theta=v.theta, gen_error=v.gen_error, reduces_to=v.reduces_to,
                                grad_norm=v.grad_norm, eigenvalues=v.eigenvalues, radius=v.radius,
                                d_out=d_out, n_train=int(itin.stats.get("n_train", 0)))
        nodes.append(v.node)
    if itin.stats.get("loss_label"):  # what the loss axis of a drawing is called; "mixed" if runs disagree
        old, new = graph.graph.graph.get("loss_label"), itin.stats["loss_label"]
        graph.graph.graph["loss_label"] = new if old in (None, new) else "loss (mixed)"
    if itin.terminal == "attractor":
        end = graph.graph.nodes[nodes[-1]]
        end["attractor"] = True
        end["degenerate"] = bool(itin.degenerate)
        end["ends"] = int(end.get("ends", 0)) + 1  # runs that end here (visits also counts passages)
        if itin.visits[-1].kind == "noise_ball":  # the largest noise ball measured around this minimum
            end["noise_ball_radius"] = max(float(end.get("noise_ball_radius", 0.0)),
                                           itin.visits[-1].ball_radius)
    graph.add_itinerary(nodes, [(v.t_in, v.t_out) for v in itin.visits], method=itin.method, run=run)
    return nodes


def refinement_share(itineraries) -> dict:
    """The share of slow passages refined to a critical set, per run and over an ensemble.

    **Returns:** dict(passages, refined, share, per_run) with per_run a list of (refined, passages).
    """
    per_run = [(sum(v.refined for v in it.passages), len(it.passages)) for it in itineraries]
    refined = sum(r for r, _ in per_run)
    total = sum(n for _, n in per_run)
    return dict(passages=total, refined=refined, share=refined / total if total else 1.0, per_run=per_run)


def saddle_graph(problem: Problem, runs, *, graph: SaddleGraph | None = None, progress: bool | str = False,
                 **itinerary_options) -> tuple[SaddleGraph, dict[str, Itinerary]]:
    """The saddle graph of several runs on one problem: the `itinerary` of each trajectory, merged with
    `add_to_graph` (nodes are critical sets matched by network function and Morse signature).

    **Arguments:**

    - `problem`: the `Problem` every run solved.
    - `runs`: a mapping run name → `Trajectory`, or a sequence of trajectories (named "0", "1", …).
    - `graph`: add to this `SaddleGraph` (default: a new one).
    - `progress`: a bar over the runs; a string names it.
    - `itinerary_options`: passed to `itinerary` for every run (e.g. `visit_radius`, `min_depth`).

    **Returns:** (graph, {run name: Itinerary}) in the order of `runs`; each visit's `node` is set.
    """
    from collections.abc import Mapping

    if isinstance(runs, Trajectory):
        raise TypeError("runs must be a mapping name → Trajectory or a sequence of trajectories; wrap a single "
                        "run as [trajectory] or {'name': trajectory}.")
    items = list(runs.items()) if isinstance(runs, Mapping) else [(str(i), tr) for i, tr in enumerate(runs)]
    for name, tr in items:
        if not isinstance(tr, Trajectory):
            raise TypeError(f"runs[{name!r}] is a {type(tr).__name__}, not a Trajectory; pass the trajectories "
                            "that gradient_flow, gradient_descent or run_ensemble return.")
    graph = SaddleGraph() if graph is None else graph
    if not isinstance(graph, SaddleGraph):
        raise TypeError(f"graph must be a SaddleGraph or None, got {type(graph).__name__}.")
    bar = progress_bar(len(items), progress if isinstance(progress, str) else "itineraries",
                       bool(progress), unit="run")
    itins = {}
    with bar:
        for name, tr in items:
            itins[name] = itinerary(problem, tr, **itinerary_options)
            add_to_graph(graph, itins[name], run=str(name))
            bar.update()
    return graph, itins
