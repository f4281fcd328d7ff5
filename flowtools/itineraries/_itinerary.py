"""`itinerary`: a trajectory segmented into visits of critical sets and a terminal state, the one
algorithm whose stages (resolve, slow passages, refinement, terminal state, windows) share one context.
The saddle → saddle → attractor sequence of a run, as in Jacot et al., "Saddle-to-saddle dynamics in deep
linear networks" (arXiv 2106.15933).
"""

from __future__ import annotations

import dataclasses
import inspect
import time

import numpy as np

from .. import _checks, _deprecation
from ..dynamics.progress import progress_bar
from ..dynamics.trajectory import Status, Trajectory
from ..graph import match_distance
from ..landscape import find_critical_point, slow_points
from ..landscape.critical import MATRIX_FREE_MIN, check_solver_options
from ..landscape.input_symmetry import orbit_fingerprint
from ..landscape.slow import resolve_with_outputs
from ..landscape.symmetry import (fingerprint_distance, function_fingerprint, network_widths, output_distance,
                                  output_scale)
from ..problem import Problem, state_chunk, training_outputs
from ._passages import drift, function_noise_scale, merge, plateau_passages, windows, without_noise
from ._records import Itinerary, Visit, problem_loss_label
from ._refinement import (TIME_LIMIT_NOTE, refine_passage, slow_region, spectrum, time_left, timed_options,
                          train_part, visit_from_point)
from ._terminal import noise_ball, terminal_state


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
    try:
        check_solver_options(**refine_options)
    except (ValueError, TypeError) as err:
        raise type(err)(f"refine_options: {err}") from None
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
    - `time_limit`: wall-time budget in seconds for the whole itinerary, every phase included: the
      resolution gets at most half of it, the passages stop `END_RESERVE` of it before the limit (those
      left are recorded unrefined, status "skipped", without a spectrum), the end is judged within what
      is left, and every refinement, spectrum and continued flow gets the time left to its phase.
      Given in seconds, it also caps the states resolving adds to what evaluating them allows
      (`resolve_budget`), gives each classifying spectrum the time left after its solve, starts a
      continued flow only where its first segment fits, and stops the end's refinement `END_WRAPUP`
      of it early; "auto" resolves for half its budget and times refinements as before.
      `stats["cut_off"]` names the phases cut ("resolve", "refinement": a passage's refinement
      stopped at a limit in seconds, "passages", "end", "spectra"), `stats["budget_exhausted"]` says
      whether passages were skipped. Not interrupted: a first compile and one solver step.
      "auto" (default): no limit up to `MATRIX_FREE_MIN` parameters; above it
      `auto_time_limits(n)` (15 s + 5 ms per parameter for the itinerary, 2 s + 2 ms per parameter
      per refinement, unless `refine_options` gives `time_limit`). None: no limit. A per-refinement budget
      is `refine_options=dict(time_limit=…)`.
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
    # Resolving's cap (`resolve_budget`) applies to a limit given in seconds; "auto" resolves as before
    # (the documented itineraries of 1–10 thousand parameters were taken with it).
    priced = time_limit is not None and not isinstance(time_limit, str)
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
    # The time limit bounds every phase: resolving the run (half of it at most), the passages (up to
    # END_RESERVE of it before the deadline), then the end. Each refinement, spectrum and continued flow
    # gets the time left to its phase (`timed_options`, `time_left`).
    deadline = None if time_limit is None else wall0 + time_limit
    passages_deadline = None if time_limit is None else deadline - END_RESERVE * time_limit
    if deadline is not None:
        spec_opts["deadline"] = deadline
    cut_off = []

    def remaining(until=deadline):
        return None if until is None else max(until - time.perf_counter(), 0.0)

    traj, outputs, resolve_stats = trajectory, None, {}
    if resolve:
        budget = remaining()
        limit, cap = (None if budget is None else 0.5 * budget), RESOLVE_MAX_STATES
        if priced:
            # Resolving keeps its half with the evaluation of the added states at its end (`resolve_budget`),
            # priced by the outputs of the saved states, which it and the passages reuse: after the first
            # chunk of states where there are more (the first call may compile).
            t_out = time.perf_counter()
            saved = trajectory.theta[np.all(np.isfinite(trajectory.theta), axis=1)]
            k = state_chunk(problem) if len(saved) > state_chunk(problem) else 0
            first = training_outputs(problem, saved[:k]) if k else None
            t_rest = time.perf_counter()
            outputs = training_outputs(problem, saved[k:])
            per_state = (time.perf_counter() - t_rest) / max(len(saved) - k, 1)
            if k:
                outputs = np.concatenate([first, outputs])
            limit, cap = resolve_budget(0.5 * budget - (time.perf_counter() - t_out), per_state)
            resolve_stats = dict(resolve_budget_s=0.5 * budget, resolve_max_states=cap,
                                 resolve_state_cost_s=per_state)
        if cap > 0:
            given = None
            if outputs is not None:  # one row per saved state, as resolving takes them
                given = np.full((len(trajectory.t),) + outputs.shape[1:], np.nan)
                given[np.all(np.isfinite(trajectory.theta), axis=1)] = outputs
            traj, resolved_outputs = resolve_with_outputs(problem, trajectory, max_jump=0.5 * rho,
                                                          time_limit=limit, max_states=cap, outputs=given)
            if traj is not trajectory:
                outputs = resolved_outputs
        if budget is not None:
            resolve_stats["resolve_s"] = time.perf_counter() - wall0
            resolve_stats.setdefault("resolve_budget_s", 0.5 * budget)
            if cap < RESOLVE_MAX_STATES and (cap == 0 or traj.stats.get("resolved_states", 0) >= cap) \
                    or resolve_stats["resolve_s"] >= 0.5 * budget:
                cut_off.append("resolve")
    finite = np.all(np.isfinite(traj.theta), axis=1)
    thetas, ts = traj.theta[finite], traj.t[finite]
    if outputs is None:
        outputs = training_outputs(problem, thetas)
    elif traj is not trajectory:  # resolving's, one row per state of the run it returned
        outputs = outputs[finite]
    d_out, n_train = problem.model.d_out, int(np.asarray(problem.x).shape[0])

    def distances(fp):
        return output_distance(outputs, train_part(problem, fp)[None])

    ctx = dict(problem=problem, opts=opts, refine_radius=refine_radius, rtol_zero=rtol_zero, rho=rho,
               spec_opts=spec_opts,
               near_gtol=near_gtol, distances=distances, ts=ts, priced=priced)
    noisy = trajectory.method == "sgd"
    noise = function_noise_scale(ts, outputs) if noisy else 0.0
    if noisy:  # distances from the run's drift: its noise does not carry it in and out of a radius
        raw, smooth_outputs = outputs, drift(ts, outputs)

        def distances(fp, raw_states=False):
            return output_distance(raw if raw_states else smooth_outputs, train_part(problem, fp)[None])

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
    n_refinements, exhausted, stopped = 0, False, 0
    bar = _progress(len(sps), progress)
    try:
        for sp in sps:
            # A run's start is judged at its first state (slow_points skips t = 0; at large η one GD
            # step already leaves the set the run starts near).
            idx = 0 if sp.at_start else index_of.get(int(sp.index))
            if idx is None:
                continue
            budget = remaining(passages_deadline)
            pass_opts = spec_opts if deadline is None else dict(spec_opts, deadline=passages_deadline)
            if budget is not None and budget <= 0:
                exhausted = True
                info = slow_region(problem, thetas[idx], pass_opts, rho, "skipped")
            else:
                o = dict(opts)
                if budget is not None:
                    o["time_limit"] = min(o.get("time_limit") or np.inf, budget)
                    o["spectrum_options"] = phase_options(o["spectrum_options"], passages_deadline, priced)
                info = refine_passage(dict(ctx, opts=o, spec_opts=pass_opts), thetas[idx], sp)
                n_refinements += 1
                # A refinement stopped by the passages' deadline (not by a per-refinement limit)
                stopped += (priced and info["status"] == "skipped"
                            and (opts.get("time_limit") or np.inf) >= budget)
            # The first state is a candidate only as a critical set: a run that does not start near
            # one has no visit there.
            # A noisy run's unrefined dip is its noise, not a passage (see `plateau_passages`).
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
            o["time_limit"] = min(o.get("time_limit") or np.inf, remaining(passages_deadline) or 1e-3)
            o["spectrum_options"] = phase_options(o["spectrum_options"], passages_deadline, priced)
        found = plateau_passages(dict(ctx, rho=rho_out, opts=o), traj, thetas)
        candidates = sorted(candidates + found, key=lambda c: c[0])

    # ------------------------------------------------------------ terminal
    status = trajectory.status
    degenerate, end_info = False, None
    if status in (Status.DIVERGED, Status.NON_FINITE):
        terminal, message = "diverged", trajectory.message
    else:
        if deadline is not None:  # the end is judged within the time left (END_RESERVE of the limit)
            o = dict(opts)
            # Under a limit in seconds the end's record is built after its refinement stops: that is kept
            # out of the refinement's time (`END_WRAPUP`).
            end_by = deadline - END_WRAPUP * time_limit if priced else deadline
            o["time_limit"] = min(o.get("time_limit") or np.inf, time_left(end_by))
            o["spectrum_options"] = phase_options(o["spectrum_options"], end_by, priced)
            ctx = dict(ctx, opts=o)
        terminal, message, end_info, degenerate = terminal_state(
            ctx, traj, thetas, y_rms, attractor_gtol, approach_window)
        if end_info is not None:
            candidates.append((len(thetas) - 1, end_info))

    # ------------------------------------------------------------- windows
    if noisy and terminal == "unfinished":
        ball = noise_ball(ctx, thetas, rho_out, approach_window)
        if ball is not None:
            terminal, message, end_info, degenerate = ball
            candidates.append((len(thetas) - 1, end_info))
    visits = windows(candidates, distances, ts, rho, rho_out)
    if noisy:
        visits = without_noise(visits, distances, ts, rho_out)
    merged: list[Visit] = []
    for v in visits:
        if merged and match_distance(vars(merged[-1]), vars(v), d_out, n_train) is not None:  # one set
            merged[-1] = merge(merged[-1], v)
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
        spec = spectrum(problem, end, spec_opts, ctx.get("end_spectrum"))
        info = visit_from_point(problem, end, "unfinished", spec, function_fingerprint(problem, end),
                                 problem.grad_norm(end), status="terminal", radius=rho)
        info["reason"] = ctx.get("end_reason", info["reason"])
        visits.append(Visit(t_in=float(ts[-1]), t_out=float(ts[-1]), t=float(ts[-1]), **info))
    if problem.symmetry is not None:
        # A declared input symmetry: visits are identified (in the graph, in basin fractions) by their
        # canonical representative's function, so points of one orbit of the full group are one set.
        for v in visits:
            v.fingerprint = orbit_fingerprint(problem, v.theta)
    if stopped:
        cut_off.append("refinement")
    if exhausted:
        cut_off.append("passages")
    if ctx.get("end_status") == "skipped":  # the end's refinement ran out of time
        cut_off.append("end")
    if any(TIME_LIMIT_NOTE in (v.reason or "") for v in visits):
        cut_off.append("spectra")
    stats = dict(wall_time=time.perf_counter() - wall0, refinements=n_refinements, noise_scale=noise,
                 visit_radius=rho, exit_radius=rho_out,
                 budget_exhausted=exhausted, cut_off=cut_off, time_limit=time_limit, resolved_states=int(traj.stats.get("resolved_states", 0)),
                 states=int(len(thetas)), d_out=d_out, n_train=n_train,
                 loss_label=problem_loss_label(problem), network=network_widths(problem))
    stats.update(resolve_stats)
    if "periodic_orbit" in ctx:
        stats["periodic_orbit"] = ctx["periodic_orbit"]
    itin = Itinerary(visits, terminal, trajectory.method, message, degenerate, stats)
    if cut_off:
        itin.message += (f"; the time limit of {time_limit:g} s ran out (cut off: {', '.join(cut_off)})"
                         + (": later passages are unrefined" if exhausted else ""))
    return itin


#: The share of `time_limit` kept for judging the end of the run: the passages stop before it.
END_RESERVE = 0.2
#: The share of a `time_limit` in seconds kept after the end's refinement for recording the end: at
#: 112 510 parameters its kink test, reduction, fingerprint and the unfinished visit's record took 3.7 s
#: after a refinement stopped at the limit of 120 s (load 9.4).
END_WRAPUP = 0.03
#: `resolve_trajectory`'s own cap on added states, the one used without a time limit.
RESOLVE_MAX_STATES = 20_000
#: `resolve_trajectory`'s most states inside one segment (its `n_inner`).
RESOLVE_INNER = 8
#: The cost of one added state at the end of resolving, in units of its training outputs: the loss and
#: gradient, held-out metrics, and its outputs (in the resolve's rounds). Measured on the 64-1500-10
#: digits net (112 510 parameters, 64 states, load 7): loss and gradient 4.2–5.4, held-out metrics 0.2,
#: so 6.4–7.6 in all. The saved states keep the run's values (`resolve_trajectory`).
RESOLVE_EVAL_COST = 8.0
#: The share of resolving's half that its final evaluation of the added states may take.
RESOLVE_EVAL_SHARE = 0.25


def resolve_budget(seconds: float, per_state: float) -> tuple[float, int]:
    """(time_limit, max_states) for `resolve_trajectory` within `seconds`, one state's outputs costing
    `per_state` seconds: the states it may add are capped so that evaluating them at its end (with the
    one saved state that checks the run's values, and one segment's states past the cap) takes at most
    `RESOLVE_EVAL_SHARE` of the time, and that evaluation is reserved out of its own time limit
    (`resolve_trajectory` stops starting segments at its limit but evaluates the added states after it).
    max_states 0: nothing can be added in time."""
    seconds = max(seconds, 0.0)
    one = RESOLVE_EVAL_COST * max(per_state, 1e-9)
    # The cap is checked before each segment, whose states (up to RESOLVE_INNER) can carry past it.
    cap = int(min(RESOLVE_MAX_STATES, max(RESOLVE_EVAL_SHARE * seconds / one - RESOLVE_INNER - 1, 0)))
    return max(seconds - one * (cap + RESOLVE_INNER + 1), 0.0), cap


def phase_options(spec_opts, deadline, live: bool) -> dict:
    """The spectrum options of a refinement in a phase ending at `deadline`. `live` (a limit in seconds):
    the deadline itself, so that the classification spectrum gets the time left after the solve
    (`find_critical_point`); else the time left at the refinement's start, as "auto" has always had it
    (the documented itineraries were taken with it)."""
    opts = dict(spec_opts, deadline=deadline)
    return opts if live else timed_options(opts)


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
