"""Critical points: a Newton-type solve of ∇L(θ) = 0 that converges to saddles of every index.

Minimizing L only finds minima. We instead solve the nonlinear system r(θ) = ∇L(θ) = 0, whose Jacobian is
the Hessian H (symmetric, indefinite, and singular on the lines and planes of critical points that
networks have), by a trust-region Levenberg–Marquardt method on ½‖∇L‖² (Moré 1978; Nocedal & Wright,
Numerical Optimization, §10.3):

- **dense** (n ≤ `dense_max`): at each iterate H = QΛQᵀ; in eigen-coordinates a = Qᵀg the step is
  cᵢ = −λᵢaᵢ / (λᵢ² + μ), i.e. −(H² + μI)⁻¹Hg, with μ the smallest value ≥ μ_min that keeps ‖c‖ within
  the trust radius Δ (found by bisection on log μ). The floor μ_min = ‖g‖² (Yamashita & Fukushima 2001;
  Fan & Yuan 2005) makes the step a regularized pseudo-inverse Newton step −H⁺g: components
  with λᵢ² ≫ μ_min get the full Newton step, nearly singular ones almost none, and the iteration converges
  quadratically also onto lines and planes of critical points (a local error bound holds there), where
  undamped Newton would slide along the nearly flat directions. As ‖g‖ → 0 the last steps are plain
  pseudo-inverse Newton polish steps. Δ follows the usual ratio test ρ = actual / predicted decrease of
  ‖g‖². The whole loop is one jitted `lax.while_loop`, vmapped over many guesses by
  `find_critical_points`. With `corrector=True` each trial point is first moved back to the floor of the
  curved valley it runs along (docs/landscape.md, "Creeping along a degenerate valley").
- **matrix_free** (large n): the same Levenberg–Marquardt step from conjugate gradients on
  (H² + μI)c = −Hg with Hessian-vector products, μ adapted by the ratio test.

A point is reported as critical only if ‖∇L‖ ≤ `gtol`, re-checked with an independent gradient
evaluation, and it lies within `radius` of the guess. Otherwise the record says so (success False,
kind "slow_region") and describes the *guess*, never the failed iterate: a stall at a local minimum of
‖∇L‖² that is not a critical point, a walk out of the radius (toward a critical point at infinity, as
saturating σ have), or the iteration budget.

The solvers live one per private module: `_lm_dense`, `_lm_matrix_free`, `_newton_minres`; `_lm_chunks`
runs the Levenberg–Marquardt ones in chunks under a wall-time deadline.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from .. import _checks, _deprecation
from ..problem import Problem
from ._lm_chunks import lm_in_chunks
from ._newton_minres import newton_minres
from ._stop_codes import CODE_NAMES, CONVERGED, MAX_ITER, NON_FINITE
from ._loss_floor import LOSS_FLOOR_NOTE, floor_negatives, floor_note, loss_floor_spectrum
from .higher_order import HigherOrderTest, higher_order_test
from .spectrum import DEFAULT_RTOL_ZERO, Spectrum, hessian_spectrum, spectrum_or_fallback
from .symmetry import reduces_to, symmetrize_neurons

__all__ = ["CriticalPoint", "find_critical_point", "find_critical_points", "classify", "classify_point",
           "KINDS", "critical_point_at", "MATRIX_FREE_MIN", "loss_floor_spectrum", "LOSS_FLOOR_NOTE",
           "check_solver_options"]

KINDS = ("minimum", "saddle", "degenerate_minimum", "degenerate_saddle", "higher_order_saddle", "slow_region",
         "unclassified")

#: Above this many parameters `find_critical_point` ("auto") refines matrix-free (Levenberg–Marquardt
#: with conjugate gradients on Hessian-vector products) and never forms the Hessian. Measured on the
#: 64-16-10 digits net (1 210 parameters, 1 497 images; docs/itineraries.md): one dense iteration (the
#: Hessian from 1 210 products plus eigh) took 31.9 s and one matrix-free iteration 1.26 s in the same
#: run (load ≈ 13.5), and the dense refinement of one passage had run for minutes. Below 1 000 the
#: dense solve keeps its quadratic convergence onto critical lines at a cost that stays small.
MATRIX_FREE_MIN = 1000


@dataclasses.dataclass
class CriticalPoint:
    """A critical point of L (or, when the solve failed, the slow point it started from).

    **Fields:**

    - `theta`, `loss`, `gen_error` (None without a teacher), `grad_norm` (independently re-evaluated).
    - `eigenvalues`: all Hessian eigenvalues ("dense"), or the computed extreme ones ("lanczos").
    - `signature`: (n_neg, n_zero, n_pos); `kind`: one of `KINDS` (see `classify`). At the loss floor
      negative eigenvalues count as zero directions (`loss_floor_spectrum`; `message` says so), while
      `eigenvalues` stay as computed.
    - `reduces_to`: the widths of the smallest network with the same function, e.g. "1-1-1" ("" for a
      model that is not an `MLP`).
    - `success`, `status` ("converged", "max_iter", "left_radius", "stalled", "non_finite", "slow"),
      `message`.
    - `iterations`, `distance` (‖θ − guess‖), `guess`, `spectrum` (the `Spectrum`), `wall_time`.
    - `best_theta`, `best_grad_norm`: the iterate with the smallest ‖∇L‖ (θ itself on success);
      `attempts`: one dict per solver attempt (damping scale, iterations, status, ‖∇L‖ reached; with
      `corrector`, the steps it corrected).
    - `escape_directions`: for a "higher_order_saddle", unit vectors (n, k) along which L decreases
      at higher order (from `higher_order_test`); else None. `higher_order`: the test's record, when run.

    A failed solve (`success` False) has kind "slow_region" and describes the guess: its θ, gradient
    norm and local signature.
    """

    theta: np.ndarray
    loss: float
    gen_error: float | None
    grad_norm: float
    eigenvalues: np.ndarray
    signature: tuple
    kind: str
    reduces_to: str
    success: bool
    status: str
    message: str
    iterations: int = 0
    distance: float = 0.0
    guess: np.ndarray | None = None
    spectrum: Spectrum | None = dataclasses.field(default=None, repr=False)
    wall_time: float = 0.0
    best_theta: np.ndarray | None = dataclasses.field(default=None, repr=False)
    best_grad_norm: float | None = None
    attempts: list = dataclasses.field(default_factory=list, repr=False)
    escape_directions: np.ndarray | None = dataclasses.field(default=None, repr=False)
    higher_order: HigherOrderTest | None = dataclasses.field(default=None, repr=False)

    @property
    def morse_index(self) -> int:
        return int(self.signature[0])

    @property
    def unstable_vectors(self) -> np.ndarray:
        """Orthonormal eigenvectors of the negative Hessian eigenvalues, shape (n, n_neg)."""
        return self.spectrum.unstable_vectors

    def to_dict(self, *, theta: bool = True) -> dict:
        """A JSON-ready dict (numpy values converted)."""
        out = dict(loss=self.loss, gen_error=self.gen_error, grad_norm=self.grad_norm,
                   eigenvalues=np.asarray(self.eigenvalues).tolist(), signature=list(self.signature),
                   kind=self.kind, reduces_to=self.reduces_to, success=self.success, status=self.status,
                   message=self.message, iterations=self.iterations, distance=self.distance,
                   wall_time=self.wall_time)
        if self.spectrum is not None:
            out.update(spectrum_method=self.spectrum.method, tol_zero=self.spectrum.tol_zero,
                       spectrum_complete=self.spectrum.complete)
        if self.higher_order is not None:
            out["higher_order"] = self.higher_order.to_dict()
        if theta:
            out["theta"] = np.asarray(self.theta).tolist()
        return out

    def __repr__(self):
        return (f"CriticalPoint({self.kind}, signature={self.signature}, L={self.loss:.10g}, "
                f"|grad|={self.grad_norm:.3g}, reduces_to={self.reduces_to!r}, status={self.status!r})")


@_deprecation.renamed_arguments(options="higher_order_options")
def classify(signature, success: bool = True, *, problem: Problem | None = None, theta=None,
             spectrum: Spectrum | None = None, higher_order_options: dict | None = None) -> str:
    """The kind of a point: minimum, saddle, degenerate_…, higher_order_saddle, or slow_region.

    From the signature (n_neg, n_zero, n_pos) alone: n_neg > 0 is a (degenerate_)saddle, n_neg = 0 a
    (degenerate_)minimum. A positive semidefinite singular Hessian (n_neg = 0 < n_zero) does not decide
    a minimum: when `problem` and `theta` are given, `higher_order_test` (with `spectrum`, the dense
    spectrum at θ, computed when None; `higher_order_options` are passed on) decides between
    "degenerate_minimum" and "higher_order_saddle". Without them such a point stays "degenerate_minimum"
    (second order only).
    With an unknown n_zero (a Lanczos signature) the point is called nondegenerate; with an unknown
    n_neg (a spectrum that could not be computed, `spectrum_or_fallback`), or a `spectrum` whose count
    stopped early (`complete` False) at a lower bound of 0, it is "unclassified".
    With `problem` and `theta`, a point where L is at its lower bound to round-off is a global minimum
    whatever its numerical Hessian says: negative eigenvalues there make it a "degenerate_minimum"
    (`loss_floor_spectrum` gives the signature that goes with it).
    """
    return _classify(signature, success, problem, theta, spectrum, higher_order_options)[0]


@_deprecation.renamed_arguments(options="higher_order_options")
def classify_point(problem: Problem, theta, spectrum: Spectrum | None = None, *, success: bool = True,
                   higher_order_options: dict | None = None) -> tuple[str, HigherOrderTest | None]:
    """`classify` a point from its problem, θ and (dense) spectrum; also returns the higher-order test
    record (None when the signature decided). The escape directions of a "higher_order_saddle" are
    `test.escape_directions`. At the loss floor the kind follows `loss_floor_spectrum`."""
    if spectrum is None:
        spectrum = hessian_spectrum(problem, theta, rtol_zero=DEFAULT_RTOL_ZERO)
    return _classify(spectrum.signature, success, problem, theta, spectrum, higher_order_options)


def _classify(signature, success, problem, theta, spectrum, options):
    if not success:
        return "slow_region", None
    n_neg, n_zero = signature[0], signature[1]
    if n_neg is None:  # the spectrum could not be computed (`spectrum_or_fallback`)
        return "unclassified", None
    if not n_neg and spectrum is not None and not spectrum.complete:
        return "unclassified", None  # a Lanczos count cut short: 0 is only a lower bound of the index
    if problem is not None and theta is not None and floor_negatives(problem, theta, signature, spectrum):
        return "degenerate_minimum", None  # a global minimum; its negative eigenvalues are not descent
    degenerate = bool(n_zero)
    if n_neg:
        return ("degenerate_saddle" if degenerate else "saddle"), None
    if not degenerate:
        return "minimum", None
    if problem is None or theta is None:
        return "degenerate_minimum", None
    test = higher_order_test(problem, theta, spectrum, **(options or {}))
    return ("higher_order_saddle" if test.saddle else "degenerate_minimum"), test


# ------------------------------------------------------------------------------------- public API
def _settings(problem, theta_guess, radius, gtol, max_iter, method, dense_max):
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    gtol = _checks.positive("gtol", gtol)
    max_iter = _checks.positive_int("max_iter", max_iter)
    method = _checks.choice("method", method, ["auto", "dense", "matrix_free"])
    if method == "auto":
        method = "dense" if problem.n_params <= dense_max else "matrix_free"
    if radius is not None:
        radius = _checks.positive("radius", radius, allow_inf=True)
    return gtol, max_iter, method, radius


def check_solver_options(*, method="auto", lm_scale=1.0, rcond=1e-12, corrector=False, dense_loop="compiled",
                         slow_window=0, time_limit=None, **_) -> tuple:
    """The checks of `find_critical_point`'s solver options that need no problem: (lm_scale, rcond,
    corrector, dense_loop, slow_window, time_limit), or a ValueError / TypeError naming the option.
    `itinerary` runs them on its `refine_options` before its first refinement, whose failures it would
    otherwise record as unrefined passages."""
    lm_scale = _checks.positive("lm_scale", lm_scale)
    rcond = _checks.nonnegative("rcond", rcond)
    if not isinstance(corrector, (bool, np.bool_)):
        raise TypeError(f"corrector must be True or False, got {corrector!r}.")
    corrector = bool(corrector)
    dense_loop = _checks.choice("dense_loop", dense_loop, ("compiled", "host"))
    if dense_loop == "host" and (corrector or method == "matrix_free"):
        raise ValueError("dense_loop='host' drives the dense loop without the corrector; it cannot run with "
                         + ("corrector=True" if corrector else "method='matrix_free'")
                         + ": pass dense_loop='compiled' (the default), or drop the other option.")
    slow_window = _checks.positive_int("slow_window", slow_window, minimum=0)
    if time_limit is not None:
        time_limit = _checks.positive("time_limit", time_limit)
    return lm_scale, rcond, corrector, dense_loop, slow_window, time_limit


def _default_radius(theta):
    return 1.0 + float(np.linalg.norm(theta))


def critical_point_at(problem: Problem, theta, *, success: bool = True, status: str = "converged",
                      message: str = "", spectrum_options: dict | None = None, reduce_atol: float = 1e-6,
                      guess=None, iterations: int = 0, wall_time: float = 0.0,
                      higher_order_options: dict | None = None) -> CriticalPoint:
    """Build the `CriticalPoint` record of θ (L, ‖∇L‖, R, spectrum, kind, reduction) without solving.

    A converged point with a positive semidefinite singular Hessian gets the higher-order test
    (`higher_order_test`, options `higher_order_options`); a failed one is a slow region. At the loss
    floor the spectrum and signature are those of `loss_floor_spectrum`, and the message says so.
    `spectrum_options` as in `find_critical_point` (a `deadline` entry included).
    """
    theta = np.asarray(theta, dtype=np.float64)
    opts = dict(rtol_zero=DEFAULT_RTOL_ZERO)
    if not success and problem.n_params > MATRIX_FREE_MIN:
        opts["vectors"] = False  # a slow region's record needs its signature, not eigenvectors
    opts.update(spectrum_options or {})
    deadline = opts.pop("deadline", None)
    if deadline is not None:  # a solve before this spectrum has spent part of the time
        opts["time_limit"] = min(opts.get("time_limit") or np.inf, max(deadline - time.perf_counter(), 1e-3))
    spec = spectrum_or_fallback(problem, theta, **opts)
    if success:  # a slow region's record describes its guess as computed
        floor = loss_floor_spectrum(problem, theta, spec)
        if floor is not spec:
            message = "; ".join(m for m in (message, floor_note(problem, spec)) if m)
            spec = floor
    loss, g = problem.value_and_grad(theta)
    gen = problem.gen_error(theta) if problem.has_population else None
    reduced = reduces_to(problem, theta, atol=reduce_atol)
    dist = 0.0 if guess is None else float(np.linalg.norm(theta - guess))
    kind, test = _classify(spec.signature, success, problem, theta, spec, higher_order_options)
    if kind == "higher_order_saddle":
        message = f"{message}; {test.message}" if message else test.message
    return CriticalPoint(theta=theta, loss=loss, gen_error=gen, grad_norm=float(np.linalg.norm(g)),
                         eigenvalues=spec.eigenvalues, signature=spec.signature,
                         kind=kind, reduces_to=reduced, success=success,
                         status=status, message=message, iterations=iterations, distance=dist,
                         guess=None if guess is None else np.asarray(guess), spectrum=spec,
                         wall_time=wall_time,
                         escape_directions=test.escape_directions if kind == "higher_order_saddle" else None,
                         higher_order=test)


def _finish(problem, guess, theta, gnorm_solver, it, code, radius, gtol, spectrum_options, reduce_atol,
            wall, higher_order_options=None):
    code = int(code)
    g_check = problem.grad(theta) if np.all(np.isfinite(theta)) else np.full(problem.n_params, np.nan)
    gnorm = float(np.linalg.norm(g_check))
    dist = float(np.linalg.norm(theta - guess))
    ok = code == CONVERGED and math.isfinite(gnorm) and gnorm <= gtol and dist <= radius
    if ok:
        msg = f"|grad L| = {gnorm:.3g} <= gtol={gtol:g} after {it} iterations, {dist:.3g} from the guess"
        return critical_point_at(problem, theta, success=True, status="converged", message=msg,
                                 spectrum_options=spectrum_options, reduce_atol=reduce_atol, guess=guess,
                                 iterations=it, wall_time=wall, higher_order_options=higher_order_options)
    status = CODE_NAMES.get(code, "failed")
    if code == CONVERGED:  # the independent check disagrees (round-off in the solver's gradient)
        status = "stalled"
    reason = {
        "max_iter": f"no critical point after max_iter={it} iterations (best |grad L| = {gnorm_solver:.3g})",
        "left_radius": f"the iterates left the radius {radius:g} around the guess",
        "stalled": f"stalled at |grad L| = {gnorm_solver:.3g}: a local minimum of |grad L|² that is not a "
                   f"critical point, or round-off above gtol={gtol:g}",
        "non_finite": "the gradient became non-finite",
        "slow": f"|grad L| = {gnorm_solver:.3g} after {it} iterations, falling too slowly to reach "
                f"gtol={gtol:g} within max_iter (a creep along a degenerate valley, or a stall)",
    }.get(status, "failed")
    msg = f"{reason}; this record describes the guess (a slow region, not a critical point)"
    return critical_point_at(problem, guess, success=False, status=status, message=msg,
                             spectrum_options=spectrum_options, reduce_atol=reduce_atol, guess=guess,
                             iterations=it, wall_time=wall)


def _symmetric_start(problem, theta):
    """The guess moved onto the symmetric subspace of its aligned neurons (None if there is none, or
    for models that are not plain MLPs)."""
    if not getattr(problem, "is_mlp", True) or problem.model.n_params != problem.n_params:
        return None
    # 0.9, not higher: on the 2-hidden erf plateau (d = 10, n = 2000) the slow point of one run in 11 had
    # cosine 0.93 between its neurons, and the solve from its symmetric image converged to the plateau's
    # critical set 0.017 away in function space. Acceptance is decided by the caller, in function space.
    return symmetrize_neurons(problem.model, theta, min_cosine=0.9)


def find_critical_point(problem: Problem, theta_guess, *, radius: float | None = None, gtol: float = 1e-12,
                        max_iter: int = 200, method: str = "auto", dense_max: int = MATRIX_FREE_MIN,
                        initial_trust: float | None = None, rcond: float = 1e-12, lm_scale: float = 1.0,
                        cg_iter: int = 200, fallback: bool = True, time_limit: float | None = None,
                        spectrum_options: dict | None = None, reduce_atol: float = 1e-6,
                        higher_order_options: dict | None = None, newton: bool = True,
                        corrector: bool = False, dense_loop: str = "compiled",
                        slow_window: int = 0) -> CriticalPoint:
    """Solve ∇L(θ) = 0 near `theta_guess`; minima and saddles of every index alike.

    **Arguments:**

    - `problem`, `theta_guess`: the problem and the starting point (e.g. a slow point of a trajectory).
    - `radius`: give up when the iterates leave the ball of this radius around the guess
      (default 1 + ‖guess‖).
    - `gtol`: success means ‖∇L‖ ≤ gtol, checked independently at the returned point.
    - `max_iter`: iteration budget of each attempt.
    - `method`: "dense" (eigendecomposition trust-region LM, exact Hessians), "matrix_free" (LM with
      CG on Hessian-vector products; no Hessian is ever formed) or "auto" (dense up to `dense_max`
      parameters, default `MATRIX_FREE_MIN`). Above `dense_max` the classification of the result
      uses `hessian_spectrum`'s own automatic choice and the higher-order test is skipped (it needs
      the dense kernel); pass `dense_max` to move the threshold.
    - `initial_trust`: the first trust radius (default 0.1·(1 + ‖guess‖), at most `radius`).
    - `rcond`, `lm_scale`: the damping μ never drops below max(lm_scale·‖∇L‖², (rcond·max|λ|)²)
      (Levenberg–Marquardt regularization that keeps the step well defined on critical manifolds).
    - `cg_iter`: CG iterations per matrix-free step.
    - `fallback`: when the first attempt fails (iteration budget, stall at a local minimum of ‖∇L‖²),
      try in turn: (1) the guess moved onto the symmetric subspace of its nearly aligned hidden
      neurons (`symmetrize_neurons`, cosine ≥ 0.9: the plateaus of teacher–student nets lie near it,
      and on finite data the unrestricted solve often stalls at a "ghost", a local minimum of ‖∇L‖² beside the
      symmetric critical point); (2) a restart from the best iterate with 100× less damping floor
      (closer to Newton); (3) one with 100× more (closer to a gradient step on ½‖∇L‖²). Every attempt
      keeps the same `radius` around the original guess; the first that converges is returned.
    - `time_limit`: wall-time budget in seconds for the whole solve (checked between chunks of
      iterations sized to a few seconds of work: 25 small dense iterations, 1 matrix-free one);
      on expiry the best iterate so far is reported (status "time_limit").
    - `spectrum_options`: passed to `hessian_spectrum` for the classification (e.g. `rtol_zero`);
      a `deadline` entry (a `time.perf_counter()` value) gives that spectrum the time left to it when
      it starts, after the solve, as its `time_limit`.
    - `reduce_atol`: tolerance of `reduce_network` for `reduces_to`.
    - `newton`: matrix-free only: first try inexact Newton–MINRES steps on H itself within a trust
      region (at most min(max_iter, 50) steps), and fall back to the Levenberg–Marquardt loop from the
      guess when they do not converge. MINRES works with H's condition number where CG on H² works
      with its square: it refines plateau passages the Levenberg–Marquardt loop cannot (docs,
      "At 10³ parameters and more"). False: the Levenberg–Marquardt loop only.
    - `higher_order_options`: passed to `higher_order_test`, which decides the kind of a point with a
      positive semidefinite singular Hessian ("degenerate_minimum" or "higher_order_saddle").
    - `corrector`: dense only: after each step, one more gradient moves the trial point back to the
      floor of the curved valley it runs along (a Newton step in the stiff eigendirections of the same
      Hessian, kept when it lowers ‖∇L‖), so that near a degenerate critical set the trust region grows
      to the Newton step instead of creeping at ~2 % per iteration. On the width study's width-3 erf
      points it turned 5 of 7 first attempts that ran out of iterations into converged ones in 20–44
      (docs/landscape.md, "Creeping along a degenerate valley"). Off by default: it can converge to
      another point of the same critical set, or where the plain solve gave up. Each attempt's dict
      holds `corrected`, the number of steps it corrected.
    - `dense_loop`: dense only, without `corrector`: "compiled" (default) runs the Levenberg–Marquardt
      loop as one compiled program; "host" runs it from Python, one iteration at a time, through the
      Hessian and ∇L kernels that the spectrum and the checks compile anyway and two small kernels
      (`_lm_dense.solve_dense_host`). A new problem then compiles ≈ 4 s less of CPU on a 44-parameter
      population problem, and warm refinements take about 2× as long (docs/benchmarks.md, "Compile
      once"); its iterates agree with the compiled loop's to round-off, not bit for bit (XLA rounds
      differently across program boundaries), so it is opt-in. Each attempt's dict then holds
      `dense_loop`.
    - `slow_window`: dense only: every `slow_window` iterations (e.g. 25) an attempt extrapolates
      ‖∇L‖ at its rate over the last `slow_window` iterations through the iterations it has left; one
      that would still end above `gtol` stops there (status "slow") and the fallbacks start, instead of
      creeping through all `max_iter` iterations. 0 (default): never. On the width study's series tanh
      width-6 and width-7 itineraries it cut the refinement iterations 4–6× and the itinerary time
      2.6–5.1×, but 5 of 16 itineraries tried labelled a passage differently (the fallbacks start from an
      iterate farther from the set), hence opt-in (docs/landscape.md, "Noticing a slow attempt").

    **Returns:** a `CriticalPoint`. On failure `success` is False, `kind` is "slow_region" and the
    record describes the guess; `status` and `message` say why, and `best_theta`, `best_grad_norm`
    hold the iterate with the smallest gradient reached, so that a near-critical iterate is never
    lost.
    """
    theta_guess = _checks.theta_vector("theta_guess", theta_guess, problem.n_params)
    lm_scale, rcond, corrector, dense_loop, slow_window, time_limit = check_solver_options(
        method=method, lm_scale=lm_scale, rcond=rcond, corrector=corrector, dense_loop=dense_loop,
        slow_window=slow_window, time_limit=time_limit)
    gtol, max_iter, method, radius = _settings(problem, theta_guess, radius, gtol, max_iter, method,
                                               dense_max)
    radius = _default_radius(theta_guess) if radius is None else radius
    delta0 = initial_trust if initial_trust is not None else 0.1 * (1.0 + float(np.linalg.norm(theta_guess)))
    delta0 = min(_checks.positive("initial_trust", delta0), radius)
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + time_limit
    g_guess = float(np.linalg.norm(problem.grad(theta_guess)))
    best, best_g = theta_guess, g_guess
    attempts = []
    plans = [(theta_guess, lm_scale, delta0)]
    total_it, code, timed_out = 0, MAX_ITER, False
    if method == "matrix_free" and newton:
        theta, gnorm, it, code, timed_out = newton_minres(problem, theta_guess, theta_guess, radius, gtol,
                                                           min(max_iter, 50), delta0, deadline)
        total_it += it
        attempts.append(dict(method="newton_minres", iterations=it, status=CODE_NAMES.get(code, "failed"),
                             grad_norm=gnorm))
        if np.all(np.isfinite(theta)) and np.isfinite(gnorm) and gnorm < best_g and \
                np.linalg.norm(theta - theta_guess) <= radius:
            best, best_g = theta, gnorm
        if code == CONVERGED or timed_out:
            plans = []
    while plans:
        start, scale, d0 = plans.pop(0)
        mu0 = d0 if method == "dense" else 0.0
        chunk = 1 if method == "matrix_free" else max(1, min(25, 25_000 // problem.n_params))
        theta, gnorm, it, code, timed_out, kept = lm_in_chunks(
            problem, start, theta_guess, radius, gtol, max_iter, mu0, rcond, scale, method, cg_iter, deadline,
            chunk, corrector, dense_loop, slow_window)
        total_it += it
        attempts.append(dict(lm_scale=scale, iterations=it, status=CODE_NAMES.get(code, "failed"),
                             grad_norm=gnorm))
        if corrector and method == "dense":
            attempts[-1]["corrected"] = kept
        elif dense_loop == "host" and method == "dense":
            attempts[-1]["dense_loop"] = "host"
        if np.all(np.isfinite(theta)) and np.isfinite(gnorm) and gnorm < best_g and \
                np.linalg.norm(theta - theta_guess) <= radius:
            best, best_g = theta, gnorm
        if code == CONVERGED or timed_out or not fallback or code == NON_FINITE:
            break
        if sum(a.get("method") != "newton_minres" for a in attempts) == 1:
            d1 = min(0.1 * (1.0 + float(np.linalg.norm(best))), radius)
            plans = [(best, scale * 1e-2, d1), (None, scale * 1e2, d1)]
            sym = _symmetric_start(problem, theta_guess)
            if sym is not None:
                plans.insert(0, (sym, scale, d1))
        elif plans and plans[0][0] is None:
            plans[0] = (best,) + plans[0][1:]
    if code != CONVERGED:
        theta = best
    wall = time.perf_counter() - t0
    if problem.n_params > dense_max:
        higher_order_options = dict(higher_order_options or {})
        higher_order_options.setdefault("dense_max", dense_max)
    cp = _finish(problem, theta_guess, np.asarray(theta), float(best_g if code != CONVERGED else gnorm),
                 total_it, code, radius, gtol, spectrum_options, reduce_atol, wall, higher_order_options)
    if timed_out and not cp.success:
        cp.status = "time_limit"
        cp.message = (f"the time limit of {time_limit:g} s ran out (best |grad L| = {best_g:.3g}); "
                      "this record describes the guess")
    cp.best_theta, cp.best_grad_norm, cp.attempts = np.asarray(best), float(best_g), attempts
    if cp.success:
        cp.best_theta, cp.best_grad_norm = cp.theta, cp.grad_norm
    return cp


def find_critical_points(problem: Problem, guesses, *, radius: float | None = None, gtol: float = 1e-12,
                         max_iter: int = 200, method: str = "auto", dense_max: int = MATRIX_FREE_MIN,
                         initial_trust: float | None = None, rcond: float = 1e-12, lm_scale: float = 1.0,
                         cg_iter: int = 200, fallback: bool = True, time_limit: float | None = None,
                         spectrum_options: dict | None = None, reduce_atol: float = 1e-6,
                         higher_order_options: dict | None = None, newton: bool = True,
                         corrector: bool = False, dense_loop: str = "compiled",
                         slow_window: int = 0) -> list[CriticalPoint]:
    """`find_critical_point` from each row of `guesses`, with the same arguments: element i is
    `find_critical_point(problem, guesses[i], ...)`, fallbacks, budget, Newton–MINRES and statuses
    included. Each guess keeps its own default radius (1 + ‖guess‖) and first trust radius unless given;
    `time_limit` applies to each guess.

    The guesses are solved one after another with one compiled solver: a vmapped first attempt ran every
    lane to the slowest one's iteration count and was 2× slower on CPU (32 guesses, 4-4-1 tanh net).
    """
    guesses = _checks.theta_batch("guesses", guesses, problem.n_params)
    return [find_critical_point(problem, g, radius=radius, gtol=gtol, max_iter=max_iter, method=method,
                                dense_max=dense_max, initial_trust=initial_trust, rcond=rcond, lm_scale=lm_scale,
                                cg_iter=cg_iter, fallback=fallback, time_limit=time_limit,
                                spectrum_options=spectrum_options, reduce_atol=reduce_atol,
                                higher_order_options=higher_order_options, newton=newton,
                                corrector=corrector, dense_loop=dense_loop, slow_window=slow_window)
            for g in guesses]
