"""Transition paths between two minima: the climbing-image nudged elastic band.

A band of images θ_0 … θ_{N−1} joins two minima (θ_0, θ_{N−1} fixed). Each interior image i moves under
the nudged force (Henkelman, Uberuaga & Jónsson, J. Chem. Phys. 113, 9901, 2000, Eqs. 2–5)

    F_i = −∇L(θ_i)|_⊥ + k (‖θ_{i+1} − θ_i‖ − ‖θ_i − θ_{i−1}‖) τ_i,

the true force without its component along the tangent τ_i, plus a spring force only along τ_i (which
keeps the images evenly spaced without cutting corners). τ_i is the "improved tangent" of Henkelman &
Jónsson (J. Chem. Phys. 113, 9978, 2000, Eqs. 8–11): the segment towards the higher neighbour, blended by
energy differences at extrema of the band, which avoids kinks. The highest image climbs (Eq. 5):
F = −∇L + 2(∇L·τ)τ, no spring, i.e. it goes up along the band and down across it, towards the saddle.
Climbing starts once the plain band has settled (max‖F‖ below `climb_after` × the first max‖F‖).

The band is relaxed by projected-velocity dynamics ("quick-min", Jónsson, Mills & Jacobsen 1998) with
the adaptive step of FIRE (Bitzek, Koskinen, Gähler, Moseler & Gumbsch, Phys. Rev. Lett. 97, 170201,
2006), inside one jitted `lax.while_loop`; the band force is vmapped over the images. The climbing
image is then refined with `find_critical_point` to a critical point, whose Hessian index is checked,
and gradient flow along ± its unstable eigenvector (`unstable_manifold`) says which minima it connects.

For an `MLP`, the second minimum is first moved to its image under hidden-neuron permutations (and sign
flips for odd σ) closest to the first (`align_minimum`), so that the band is not needlessly long.
"""

from __future__ import annotations

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from .. import _checks
from ..problem import Problem
from ._kernels import max_curvature
from .critical import CriticalPoint, critical_point_at, find_critical_point
from .manifolds import UnstableManifold, unstable_manifold
from .symmetry import flatten_layers, flip_neuron, function_distance, layer_arrays, permute_neurons

__all__ = ["TransitionPath", "transition_path", "align_minimum", "band_force"]

# Stop codes of the jitted band relaxation.
_RUNNING, _CONVERGED, _MAX_ITER, _NON_FINITE = -1, 0, 1, 4
_CODE_NAMES = {_CONVERGED: "converged", _MAX_ITER: "max_iter", _NON_FINITE: "non_finite"}


# --------------------------------------------------------------------------------------- alignment
def align_minimum(problem: Problem, theta_ref, theta) -> np.ndarray:
    """The image of `theta` under hidden-neuron permutations (and sign flips, for odd σ) closest to
    `theta_ref`; `theta` itself for a model that is not an `MLP`.

    Layer by layer from the input, neurons are matched by the linear assignment problem
    (`scipy.optimize.linear_sum_assignment`) on squared distances between their (incoming weights, bias,
    outgoing weights); for odd σ each pair is compared up to the sign flip that leaves the function
    unchanged. The network function is the same before and after. With frozen parameters the matching
    runs on the full θ and is kept only when it leaves every frozen entry as it was (e.g. output weights
    all frozen at 1, as in `flowtools.problems.safran_shamir`); otherwise `theta` is returned.
    """
    theta = _checks.theta_vector("theta", theta, problem.n_params)
    theta_ref = _checks.theta_vector("theta_ref", theta_ref, problem.n_params)
    if not problem.is_mlp:
        return theta
    if problem.free is not None:
        full = _align_full(problem.model, problem.full_theta(theta_ref), problem.full_theta(theta))
        mask = problem.frozen_mask
        if np.array_equal(full[mask], np.asarray(problem.frozen_base)[mask]):
            return problem.free_theta(full)
        return theta
    return _align_full(problem.model, theta_ref, theta)


def _align_full(model, theta_ref, theta) -> np.ndarray:
    odd = bool(model.activation.odd)
    ref, out = layer_arrays(model, theta_ref), layer_arrays(model, theta)

    def neurons(layers, l):
        W, b = layers[l - 1]
        inc = W if b is None else np.concatenate([W, b[:, None]], axis=1)
        return np.concatenate([inc, layers[l][0].T], axis=1)

    for l in model.hidden_layers:
        a, b = neurons(ref, l), neurons(out, l)
        cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        flip = np.zeros_like(cost, dtype=bool)
        if odd:
            # A sign flip negates incoming and outgoing weights alike.
            flipped = ((a[:, None, :] + b[None, :, :]) ** 2).sum(-1)
            flip = flipped < cost
            cost = np.minimum(cost, flipped)
        rows, cols = linear_sum_assignment(cost)
        for i, j in zip(rows, cols):
            if flip[i, j]:
                flip_neuron(out, l, j)
        order = np.empty(len(rows), dtype=np.int64)
        order[rows] = cols
        permute_neurons(out, l, order)
    return flatten_layers(out)


# ---------------------------------------------------------------------------------------- the band
def _tangents(R, E):
    """Improved tangents τ_i of the interior images (Henkelman & Jónsson 2000b, Eqs. 8–11), unit rows."""
    tp, tm = R[2:] - R[1:-1], R[1:-1] - R[:-2]
    Ep, Ei, Em = E[2:], E[1:-1], E[:-2]
    up = (Ep > Ei) & (Ei > Em)
    down = (Ep < Ei) & (Ei < Em)
    dmax = jnp.maximum(jnp.abs(Ep - Ei), jnp.abs(Em - Ei))[:, None]
    dmin = jnp.minimum(jnp.abs(Ep - Ei), jnp.abs(Em - Ei))[:, None]
    mixed = jnp.where((Ep > Em)[:, None], tp * dmax + tm * dmin, tp * dmin + tm * dmax)
    tau = jnp.where(up[:, None], tp, jnp.where(down[:, None], tm, mixed))
    norm = jnp.linalg.norm(tau, axis=1, keepdims=True)
    # A flat stretch (equal energies) has mixed = 0: fall back to the plain secant.
    tau = jnp.where(norm > 0, tau, tp + tm)
    return tau / jnp.maximum(jnp.linalg.norm(tau, axis=1, keepdims=True), 1e-300), tp, tm


def band_force(problem: Problem, band, spring, climb):
    """The nudged-elastic-band force on the interior images of `band` (N, n) (traceable).

    Returns (F of shape (N − 2, n), energies (N,), index of the climbing image among all N).
    With `climb` true the highest interior image feels −∇L + 2(∇L·τ)τ instead.
    """
    E, G = jax.vmap(jax.value_and_grad(problem.loss_fn))(band)
    tau, tp, tm = _tangents(band, E)
    g = G[1:-1]
    g_par = jnp.sum(g * tau, axis=1, keepdims=True)
    stretch = jnp.linalg.norm(tp, axis=1) - jnp.linalg.norm(tm, axis=1)
    F = -(g - g_par * tau) + spring * stretch[:, None] * tau
    ci = jnp.argmax(E[1:-1])
    F_ci = -g[ci] + 2.0 * g_par[ci] * tau[ci]
    F = F.at[ci].set(jnp.where(climb, F_ci, F[ci]))
    return F, E, ci + 1


@eqx.filter_jit
def _relax(problem, band, spring, ftol, climb_tol, max_iter, dt_max, max_step, climb_on):
    """Relax the interior images by projected-velocity dynamics ("quick-min", the optimizer of the
    original band: Jónsson, Mills & Jacobsen 1998) with FIRE's adaptive step (Bitzek et al. 2006):
    the velocity keeps only its component along the current force (none when it points uphill), the
    step grows by 1.1 after 5 downhill steps up to dt_max and halves on an uphill one.

    FIRE's own velocity mixing was tried first: on bands of nets (64 parameters) it pumped energy into
    the band through the discontinuities of the tangent (max‖F‖ grew from 10⁻³ to 1 over 2·10⁴ steps);
    the projection cannot."""
    n_min, f_inc, f_dec = 5, 1.1, 0.5

    def force(x, climb):
        R = jnp.concatenate([band[:1], x, band[-1:]])
        return band_force(problem, R, spring, climb)

    def fmax(F):
        return jnp.max(jnp.linalg.norm(F, axis=1))

    x0 = band[1:-1]
    F0, _, _ = force(x0, False)
    climb0 = climb_on & (fmax(F0) <= climb_tol)
    F0, _, _ = force(x0, climb0)
    state = dict(x=x0, v=jnp.zeros_like(x0), F=F0, dt=0.1 * dt_max, n_pos=jnp.asarray(0), it=jnp.asarray(0),
                 climb=climb0, code=jnp.asarray(_RUNNING), fmax=fmax(F0), climb_it=jnp.where(climb0, 0, -1))

    def cond(s):
        return s["code"] == _RUNNING

    def body(s):
        x, v, F = s["x"], s["v"], s["F"]
        f_hat = F / jnp.maximum(jnp.linalg.norm(F), 1e-300)
        P = jnp.sum(v * f_hat)
        uphill = P <= 0
        v = jnp.where(uphill, 0.0, P * f_hat)
        grow = (~uphill) & (s["n_pos"] > n_min)
        dt = jnp.where(uphill, s["dt"] * f_dec,
                       jnp.where(grow, jnp.minimum(s["dt"] * f_inc, dt_max), s["dt"]))
        n_pos = jnp.where(uphill, 0, s["n_pos"] + 1)
        v = v + dt * F
        dx = dt * v
        dn = jnp.linalg.norm(dx)
        dx = jnp.where(dn > max_step, dx * (max_step / dn), dx)
        x = x + dx
        climb = s["climb"] | (climb_on & (s["fmax"] <= climb_tol))
        F, E, _ = force(x, climb)
        fm = fmax(F)
        it = s["it"] + 1
        ok = jnp.all(jnp.isfinite(F)) & jnp.all(jnp.isfinite(E))
        done = (fm <= ftol) & (climb | ~climb_on)
        code = jnp.where(~ok, _NON_FINITE, jnp.where(done, _CONVERGED,
                                                     jnp.where(it >= max_iter, _MAX_ITER, _RUNNING)))
        climb_it = jnp.where(climb & (s["climb_it"] < 0), it, s["climb_it"])
        return dict(x=x, v=v, F=F, dt=dt, n_pos=n_pos, it=it, climb=climb, code=code, fmax=fm,
                    climb_it=climb_it)

    s = jax.lax.while_loop(cond, body, state)
    return s["x"], s["fmax"], s["it"], s["code"], s["climb_it"]


@eqx.filter_jit
def _energies(problem, band):
    return jax.vmap(problem.loss_fn)(band)


# ---------------------------------------------------------------------------------------- result
@dataclasses.dataclass
class TransitionPath:
    """A transition path between two minima.

    **Fields:**

    - `images` (N, n): the relaxed band, ends included; `energies` (N,); `arc_length` (N,): the
      cumulative distance along the band.
    - `start`, `end`: the end minima (`CriticalPoint`s; `end` is the aligned image of the given one).
    - `saddle`: the refined `CriticalPoint` from the climbing image (None when no refinement ran).
    - `barriers`: (L(saddle) − L(start), L(saddle) − L(end)); from the highest image when the
      refinement failed.
    - `descent`: the `UnstableManifold` of the saddle (its two branches, ±u₁); `reached`: the minima
      the descent reached, one per branch (`CriticalPoint`s); `connects`: whether they are the two ends.
    - `status`: "converged" (band converged, an index-1 saddle, its descent reaches both ends),
      "max_iter" / "non_finite" (the band), "saddle_failed" (refinement), "wrong_index" (the refined
      point is not an index-1 saddle) or "not_connected" (its descent reaches other minima); `message`.
    - `iterations` (band steps), `max_force` (band force at the end), `climb_iteration`, `spring`,
      `wall_time`.
    """

    images: np.ndarray
    energies: np.ndarray
    arc_length: np.ndarray
    start: CriticalPoint
    end: CriticalPoint
    saddle: CriticalPoint | None
    barriers: tuple
    descent: UnstableManifold | None
    reached: list
    connects: bool
    status: str
    message: str
    iterations: int
    max_force: float
    climb_iteration: int
    spring: float
    wall_time: float

    @property
    def success(self) -> bool:
        return self.status == "converged"

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dict(images=self.images.tolist(), energies=self.energies.tolist(),
                    arc_length=self.arc_length.tolist(), start=self.start.to_dict(), end=self.end.to_dict(),
                    saddle=None if self.saddle is None else self.saddle.to_dict(),
                    barriers=list(self.barriers), reached=[r.to_dict() for r in self.reached],
                    connects=self.connects, status=self.status, message=self.message,
                    iterations=self.iterations, max_force=self.max_force,
                    climb_iteration=self.climb_iteration, spring=self.spring, wall_time=self.wall_time)

    def __repr__(self):
        return (f"TransitionPath({self.status!r}, barriers=({self.barriers[0]:.6g}, {self.barriers[1]:.6g}), "
                f"images={len(self.energies)}, iterations={self.iterations})")


def _end_point(problem, theta, gtol, name):
    cp = find_critical_point(problem, theta, gtol=gtol)
    if cp.success:
        return cp, ""
    return critical_point_at(problem, theta, success=False, status=cp.status, message=cp.message), \
        f"; {name} did not refine to a critical point ({cp.message})"


def transition_path(problem: Problem, theta_a, theta_b, *, n_images: int = 16, spring: float | None = None,
                    climb: bool = True, climb_after: float = 0.05, ftol: float | None = None,
                    max_iter: int = 20_000, max_step: float | None = None, align: bool = True,
                    refine_ends: bool = True, gtol: float = 1e-10, descend: bool = True,
                    connect_tol: float = 1e-5, refine_options: dict | None = None,
                    descent_options: dict | None = None) -> TransitionPath:
    """The minimum-energy path between two minima by a climbing-image nudged elastic band, its saddle
    and the minima that saddle connects.

    **Arguments:**

    - `problem`: any `Problem` (an `MLP`, a `FunctionModel`, or `Problem.from_loss`).
    - `theta_a`, `theta_b`: the two minima (or points near them; see `refine_ends`).
    - `n_images`: images of the band, the two ends included (≥ 3).
    - `spring`: the spring constant k (energy / length²); default max‖∇L‖ over the first band divided
      by its length.
    - `climb`, `climb_after`: use a climbing image; it starts once max‖F‖ ≤ climb_after × the first
      max‖F‖ (≥ 1: from the first step; 0: once the plain band has converged to `ftol`).
    - `ftol`: the band has converged when every image's force norm is ≤ ftol (default 1e-4 × the first
      max‖F‖).
    - `max_iter`: relaxation steps; `max_step`: the largest move of the band in one step (default 1/10 of
      the first spacing between images).
    - `align`: for an `MLP`, replace θ_b by its symmetry image closest to θ_a (`align_minimum`).
    - `refine_ends`: refine both ends to critical points (`find_critical_point`, `gtol`) first.
    - `gtol`, `refine_options`: the saddle refinement (`find_critical_point`, radius: the band's
      spacing × 2 by default).
    - `descend`, `connect_tol`, `descent_options`: follow ± the saddle's unstable eigenvector by
      gradient flow (`unstable_manifold` with `descent_options`); an end is reached when a branch's
      refined end point lies within `connect_tol` of it in function space (`function_distance`).

    **Returns:** a `TransitionPath`; its `status` and `message` say how it ended.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    theta_a = _checks.theta_vector("theta_a", theta_a, problem.n_params)
    theta_b = _checks.theta_vector("theta_b", theta_b, problem.n_params)
    n_images = _checks.positive_int("n_images", n_images, minimum=3)
    max_iter = _checks.positive_int("max_iter", max_iter)
    climb_after = _checks.nonnegative("climb_after", climb_after)
    connect_tol = _checks.positive("connect_tol", connect_tol)
    gtol = _checks.positive("gtol", gtol)
    t0 = time.perf_counter()
    notes = ""
    if refine_ends:
        start, na = _end_point(problem, theta_a, gtol, "theta_a")
        end, nb = _end_point(problem, theta_b, gtol, "theta_b")
        notes += na + nb
    else:
        start, end = critical_point_at(problem, theta_a), critical_point_at(problem, theta_b)
    a = np.asarray(start.theta)
    b = align_minimum(problem, a, end.theta) if align else np.asarray(end.theta)
    if not np.array_equal(b, end.theta):
        end = dataclasses.replace(end, theta=b, spectrum=None)
    length = float(np.linalg.norm(b - a))
    if length == 0.0:
        raise ValueError("theta_a and theta_b are the same point (after alignment): there is no path "
                         "to find; pass two different minima.")
    s = np.linspace(0.0, 1.0, n_images)[:, None]
    band = (1 - s) * a + s * b
    _, g = jax.vmap(jax.value_and_grad(problem.loss_fn))(jnp.asarray(band))
    gmax = float(np.max(np.linalg.norm(np.asarray(g), axis=1)))
    if not np.isfinite(gmax):
        raise ValueError("the loss or its gradient is not finite on the straight band between theta_a and "
                         "theta_b.")
    k = gmax / length if spring is None else _checks.positive("spring", spring)
    k = k if k > 0 else 1.0
    spacing = length / (n_images - 1)
    max_step = 0.1 * spacing if max_step is None else _checks.positive("max_step", max_step)
    F0, _, _ = band_force(problem, jnp.asarray(band), k, False)
    f0 = float(jnp.max(jnp.linalg.norm(F0, axis=1)))
    ftol = 1e-4 * max(f0, 1e-300) if ftol is None else _checks.positive("ftol", ftol)
    climb_tol = max(climb_after * f0, ftol)  # climbing always starts before the band can converge
    # The relaxation is a damped dynamics: stable while dt·ω < 2 for the stiffest mode, ω² the largest
    # curvature of the energy (at the ends) or of the spring chain (4k).
    stiff = max(float(max_curvature(problem, jnp.asarray(a))), float(max_curvature(problem, jnp.asarray(b))),
                4 * k)
    dt_max = 1.0 / np.sqrt(stiff)
    f64 = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731
    x, fmax, it, code, climb_it = _relax(problem, jnp.asarray(band), f64(k), f64(ftol),
                                         f64(climb_tol), jnp.asarray(max_iter),
                                         f64(dt_max), f64(max_step), jnp.asarray(bool(climb)))
    images = np.concatenate([a[None], np.asarray(x), b[None]])
    energies = np.asarray(_energies(problem, jnp.asarray(images)))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(images, axis=0), axis=1))])
    code, it, fmax, climb_it = int(code), int(it), float(fmax), int(climb_it)
    i_top = 1 + int(np.argmax(energies[1:-1]))
    top = float(energies[i_top])

    def result(status, message, saddle=None, descent=None, reached=(), connects=False):
        e_s = top if saddle is None or not saddle.success else saddle.loss
        return TransitionPath(images, energies, arc, start, end, saddle, (e_s - start.loss, e_s - end.loss),
                              descent, list(reached), connects, status, message + notes, it, fmax, climb_it,
                              float(k), time.perf_counter() - t0)

    band_msg = f"band of {n_images} images: max|F| = {fmax:.3g} (ftol {ftol:.3g}) after {it} steps"
    if code == _NON_FINITE:
        return result("non_finite", f"the loss or its gradient became non-finite on the band; {band_msg}")
    if code != _CONVERGED:
        return result("max_iter", f"the band did not converge within max_iter={max_iter}; {band_msg}")
    opts = dict(gtol=gtol, radius=2.0 * spacing)
    opts.update(refine_options or {})
    saddle = find_critical_point(problem, images[i_top], **opts)
    if not saddle.success:
        return result("saddle_failed", f"{band_msg}; the climbing image did not refine to a critical point: "
                      f"{saddle.message}", saddle)
    if saddle.morse_index != 1:
        return result("wrong_index", f"{band_msg}; the climbing image refined to a critical point of index "
                      f"{saddle.morse_index} (signature {saddle.signature}), not an index-1 saddle", saddle)
    if not descend:
        return result("converged", f"{band_msg}; index-1 saddle at L = {saddle.loss:.10g} (descent not run)",
                      saddle)
    manifold = unstable_manifold(problem, saddle, **(descent_options or {}))
    reached = [manifold.targets[br.target] for br in manifold.branches]
    hit = [[function_distance(problem, r.theta, e.theta) <= connect_tol for e in (start, end)]
           for r in reached]
    connects = len(reached) == 2 and ((hit[0][0] and hit[1][1]) or (hit[0][1] and hit[1][0]))
    desc = ", ".join(f"{br.label} → {r.kind} L = {r.loss:.10g}" for br, r in zip(manifold.branches, reached))
    if not connects:
        return result("not_connected", f"{band_msg}; index-1 saddle at L = {saddle.loss:.10g}, but its "
                      f"descent does not reach both ends ({desc})", saddle, manifold, reached)
    return result("converged", f"{band_msg}; index-1 saddle at L = {saddle.loss:.10g}; descent: {desc}",
                  saddle, manifold, reached, True)
