"""The terminal state of a run that did not diverge: an attractor (a minimum set the run reaches or is
demonstrably approaching, a kink of L where no direction descends, a stable periodic orbit of the GD
map (GD at the edge of stability: Cohen et al., ICLR 2021), or the noise ball around a minimum that an
SGD run hovers in) or "unfinished".
"""

from __future__ import annotations

import numpy as np

from ..dynamics.floor import kink_test, sampled_minimum_test
from ..dynamics.flow import gradient_flow
from ..dynamics.trajectory import Status
from ..landscape.spectrum import spectrum_or_fallback
from ..landscape.symmetry import function_fingerprint, reduces_to
from ._refinement import (classified, flow_fits, guess_spectrum, out_of_time, refine, time_left,
                          timed_options, visit_from_point)


def noise_ball(ctx, thetas, rho_out, approach_window):
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
    point, status, cp = refine(ctx, np.mean(thetas[tail], axis=0))
    if point is None:
        return None
    spec, kind = classified(ctx, point, status, cp)
    if kind not in ("minimum", "degenerate_minimum"):
        return None
    fp = function_fingerprint(problem, point)
    d = ctx["distances"](fp, raw_states=True)[tail]
    half = d.size // 2
    rms = lambda v: float(np.sqrt(np.mean(v * v)))  # noqa: E731
    if np.max(ctx["distances"](fp)[tail]) > rho_out or rms(d[half:]) < 0.5 * rms(d[:half]):
        return None
    info = visit_from_point(problem, point, "noise_ball", spec, fp, problem.grad_norm(point), status=status)
    info["ball_radius"] = rms(d)
    message = (f"hovering in a noise ball around a {kind} (RMS function distance {info['ball_radius']:.3g} "
               f"over the last {tail.size} states, at most {np.max(d):.3g}; loss at the minimum "
               f"{info['loss']:.6g})")
    return "attractor", message, info, bool(spec.signature[1])


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
    spec = spectrum_or_fallback(problem, end, **timed_options(ctx["spec_opts"]))
    info = visit_from_point(problem, end, "degenerate_minimum", spec, function_fingerprint(problem, end),
                             g_end, status="kink")
    info["reason"] = reason
    return ("attractor", f"stopped at a kink of L where no sampled direction descends (one-sided |grad L| = "
            f"{g_end:.3g}): a non-smooth minimum", info, True)


def terminal_state(ctx, trajectory, thetas, y_rms, attractor_gtol, approach_window):
    """Judge the end of a run that did not diverge: (terminal, message, visit info or None, degenerate)."""
    problem, rho, rtol_zero, distances = ctx["problem"], ctx["rho"], ctx["rtol_zero"], ctx["distances"]
    end = thetas[-1]
    periodic = _periodic_terminal(ctx, trajectory, end, attractor_gtol)
    if periodic is not None:
        return periodic
    finite = np.all(np.isfinite(trajectory.theta), axis=1)
    g_end = float(trajectory.grad_norm[finite][-1])
    point, status, cp = refine(ctx, end)
    ctx["end_spectrum"], ctx["end_status"] = guess_spectrum(cp, end), status
    unfinished = ("unfinished", f"the run ended with |grad L| = {g_end:.3g} away from any minimum", None, False)
    if point is None and g_end <= attractor_gtol and ctx.get("priced") and \
            not flow_fits(problem, ctx["spec_opts"]):
        ctx["end_status"] = "skipped"  # the continued flow's first segment would run past the limit
    elif point is None and g_end <= attractor_gtol and not out_of_time(ctx["spec_opts"]):
        # Degenerate minima are approached algebraically and Newton-type refinement converges only
        # slowly onto them: follow the flow itself (an implicit solver takes huge steps there) until
        # ‖∇L‖ ≤ 1e-12, then take that point as the refined one. Not once the time is up: its first
        # segment compiles (32 s at 112 510 parameters, load 10), and a compile is not interrupted.
        cont = gradient_flow(problem, end, None, gtol=1e-12, max_steps=20_000,
                             time_limit=time_left(ctx["spec_opts"].get("deadline")))
        if cont.status == Status.CONVERGED:
            point, status = cont.final_theta, "flow"
    if point is None:
        return _kink_terminal(ctx, trajectory, end, g_end) or unfinished
    spec, kind = classified(ctx, point, status, cp)
    fp = function_fingerprint(problem, point)
    info = visit_from_point(problem, point, kind, spec, fp, problem.grad_norm(point), status=status)
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
    from ..dynamics.periodic import periodic_orbit

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
