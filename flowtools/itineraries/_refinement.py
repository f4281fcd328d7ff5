"""Refining a point of a run to a critical set and labelling it: a Newton-type solve of ∇L = 0 with
fallbacks (`find_critical_point`), then the flow itself toward a degenerate minimum, and the visit record of
the point (kind, Morse signature (n_neg, n_zero, n_pos) of the Hessian, function fingerprint) or of
an unrefined slow region.
"""

from __future__ import annotations

import time

import numpy as np

from ..dynamics.flow import gradient_flow
from ..dynamics.trajectory import Status
from ..landscape import classify, classify_point, find_critical_point, loss_floor_spectrum
from ..landscape.critical import LOSS_FLOOR_NOTE, MATRIX_FREE_MIN
from ..landscape.spectrum import Spectrum, spectrum_or_fallback
from ..landscape.symmetry import function_fingerprint, reduces_to


#: What the message of a spectrum cut off or skipped by the time limit says (`hessian_spectrum`,
#: `skipped_spectrum`).
TIME_LIMIT_NOTE = "time limit"


def skipped_spectrum(problem, spec_opts):
    """The record of a spectrum that the itinerary's time limit left no time for: signature
    (None, None, None), method "skipped"."""
    return Spectrum(np.zeros(0), (None, None, None), float("nan"), spec_opts["rtol_zero"], float("nan"),
                    np.zeros((problem.n_params, 0)), None, False, "skipped", problem.n_params, 0, 0.0,
                    "not computed: the itinerary's time limit ran out")


def out_of_time(spec_opts) -> bool:
    deadline = spec_opts.get("deadline")
    return deadline is not None and time.perf_counter() >= deadline


def time_left(deadline) -> float | None:
    """Seconds left before `deadline` (a `time.perf_counter()` value; None: no limit), at least 1 ms so
    that a phase started at the deadline stops at its first check."""
    return None if deadline is None else max(deadline - time.perf_counter(), 1e-3)


def timed_options(spec_opts) -> dict:
    """`hessian_spectrum` options for a call now: the "deadline" entry (the itinerary's time limit, a
    `time.perf_counter()` value) becomes the `time_limit` left."""
    opts = dict(spec_opts)
    deadline = opts.pop("deadline", None)
    if deadline is not None:
        opts["time_limit"] = min(opts.get("time_limit") or np.inf, time_left(deadline))
    return opts


def train_part(problem, fp) -> np.ndarray:
    """The training-input outputs of a fingerprint, shape (n, d_out)."""
    n, d_out = problem.x.shape[0], problem.model.d_out
    return np.asarray(fp)[: n * d_out].reshape(n, d_out)


def visit_from_point(problem, theta, kind, spectrum, fp, gnorm, status="converged", radius=0.0) -> dict:
    return dict(kind=kind, loss=problem.loss(theta),
                gen_error=problem.gen_error(theta) if problem.has_population else None,
                signature=tuple(None if s is None else int(s) for s in spectrum.signature),
                morse_complete=bool(spectrum.complete), theta=np.asarray(theta),
                grad_norm=float(gnorm), reduces_to=reduces_to(problem, theta),
                fingerprint=fp, eigenvalues=np.asarray(spectrum.eigenvalues), status=status,
                radius=float(radius),
                reason=spectrum.message if spectrum.method in ("finite_difference", "failed", "skipped")
                or LOSS_FLOOR_NOTE in spectrum.message or TIME_LIMIT_NOTE in spectrum.message else "")


def classified(ctx, point, status, cp) -> tuple:
    """(spectrum, kind) of a refined point: the refinement's own when it converged with reusable
    options, else computed; at the loss floor as the landscape's classification has it
    (`loss_floor_spectrum`)."""
    problem = ctx["problem"]
    if status == "converged" and _reusable(cp.spectrum, ctx["spec_opts"]):
        return cp.spectrum, cp.kind  # the refinement already classified this point
    if out_of_time(ctx["spec_opts"]):
        spec = skipped_spectrum(problem, ctx["spec_opts"])
        return spec, classify(spec.signature)
    spec = loss_floor_spectrum(problem, point, spectrum_or_fallback(problem, point,
                                                                    **timed_options(ctx["spec_opts"])))
    return spec, _kind(problem, point, spec)


def _kind(problem, theta, spectrum) -> str:
    """The kind of a refined critical point: the one call into the landscape's classification (from
    the signature alone when the higher-order test cannot be evaluated at θ)."""
    try:
        return classify_point(problem, theta, spectrum)[0]
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return classify(spectrum.signature)


def _reusable(spec, spec_opts) -> bool:
    return (spec is not None and spec.rtol_zero == spec_opts["rtol_zero"]
            and spec_opts.get("method", "auto") in ("auto", spec.method))


def spectrum(problem, theta, spec_opts, known=None):
    """The Hessian spectrum at θ, reusing `known` (a refinement's record of the same point)."""
    if _reusable(known, spec_opts) and known.n_params == len(theta):
        return known
    if out_of_time(spec_opts):
        return skipped_spectrum(problem, spec_opts)
    # Slow regions and the unfinished end keep eigenvalues and signature only.
    return spectrum_or_fallback(problem, theta, **dict(dict(vectors=problem.n_params <= MATRIX_FREE_MIN),
                                                       **timed_options(spec_opts)))


def guess_spectrum(cp, theta):
    """A failed refinement's spectrum, which describes its guess θ (None when it is another point)."""
    if cp is None or cp.success or cp.spectrum is None or cp.guess is None:
        return None
    return cp.spectrum if np.array_equal(np.asarray(cp.guess), np.asarray(theta)) else None


def slow_region(problem, theta, spec_opts, rho, status="unrefined", known=None) -> dict:
    spec = spectrum(problem, theta, spec_opts, known)
    return visit_from_point(problem, theta, "slow_region", spec, function_fingerprint(problem, theta),
                             problem.grad_norm(theta), status=status, radius=rho)


def refine(ctx, theta) -> tuple:
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


#: Seconds per parameter of a continued flow's first segment (`gradient_flow` runs 64 steps before it
#: first checks its time limit), which cannot be interrupted: 29.2 s at 112 510 parameters (10.9 s CPU,
#: load 7.4, the same in a second call), 1.4 s warm and 12 s cold at 1 210.
CONTINUED_FLOW_S_PER_PARAM = 2.6e-4


def flow_fits(problem, spec_opts) -> bool:
    """Whether a continued flow's first segment (`CONTINUED_FLOW_S_PER_PARAM`) fits before the deadline
    of `spec_opts` (always, without one)."""
    deadline = spec_opts.get("deadline")
    return deadline is None or CONTINUED_FLOW_S_PER_PARAM * problem.n_params <= deadline - time.perf_counter()


def refine_passage(ctx, theta, sp) -> dict:
    """Refine one slow passage (fallbacks: see `find_critical_point`; then, where the Hessian has no
    unstable direction, the flow itself) and accept the point only if the run came within the visit
    radius of it during the passage."""
    problem, rho = ctx["problem"], ctx["rho"]
    point, status, cp = refine(ctx, theta)
    flows = point is None and cp is not None and cp.signature[0] == 0 and np.isfinite(cp.grad_norm) and \
        (cp.spectrum is None or cp.spectrum.complete)
    if flows and ctx.get("priced") and not flow_fits(problem, ctx["spec_opts"]):
        flows, status = False, "skipped"  # its first segment would run past the deadline
    if flows and not out_of_time(ctx["spec_opts"]):
        # No unstable direction at the guess: the slow approach to a (degenerate) minimum set, which
        # the implicit flow follows with huge steps. Not once the time is up: the flow's first segment
        # compiles (32 s at 112 510 parameters, load 10), and a compile is not interrupted. Nor from a
        # Lanczos count cut short at 0: that is a lower bound of the index, not "no unstable direction".
        cont = gradient_flow(problem, theta, None, gtol=ctx["near_gtol"] * 1e-4, max_steps=20_000,
                             time_limit=time_left(ctx["spec_opts"].get("deadline")))
        if cont.status == Status.CONVERGED:
            point, status = cont.final_theta, "flow"
    if point is not None:
        fp = function_fingerprint(problem, point)
        ts = ctx["ts"]
        during = (ts >= (ts[0] if sp.at_start else sp.t_start)) & (ts <= sp.t_end)
        d = ctx["distances"](fp)
        if during.any() and float(np.min(d[during])) <= rho:
            spec, kind = classified(ctx, point, status, cp)
            return visit_from_point(problem, point, kind, spec, fp, problem.grad_norm(point), status=status)
    return slow_region(problem, theta, ctx["spec_opts"], rho, status="skipped" if status == "skipped" else
                        "unrefined", known=guess_spectrum(cp, theta))
