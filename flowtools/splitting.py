"""Neuron splitting: critical sets of wide two-layer nets built from narrow ones, and their type.

Li, Ding & Sun, "A Geometric Characterization of the Stationary Plateau for Two-Layer Neural Networks"
(arXiv 2606.04327); Fukumizu & Amari (2000); Şimşek et al. (2021). For f(x) = Σ_i v_i σ(w_i · x̃)
(x̃ = (x, 1) with a hidden bias), replacing neuron r of a stationary point by m copies with the same
input weights w_r and output weights λ_j v_r, Σ_j λ_j = 1, gives an affine set (plateau) of stationary
points of the wide net.

Inner Hessian of neuron r (for L = c Σ_k ‖f(x_k) − y_k‖², so c = 1/(2n) for half_mse):

    H_in(r) = 2c Σ_k (v_r · e_k) σ''(w_r · x̃_k) x̃_k x̃_kᵀ,   e_k = f(x_k) − y_k.

Along perturbations u_j of the copies' input weights with Σ_j λ_j u_j = 0 (the function is unchanged to
first order) the loss changes at second order by (1/2) Σ_j λ_j u_jᵀ H_in u_j. This form restricted to the
constraint has inertia (p − 1, q) ⊗ (h₊, h₋), where p, q count positive and negative λ_j and h₊, h₋ the
positive and negative eigenvalues of H_in (Sylvester's law on the bordered form; Σ λ_j = 1 > 0). So the
split adds

    n_split = (p − 1)·h₋ + q·h₊

unstable directions to those of the narrow point: a split minimum stays a (degenerate) minimum iff
n_split = 0, a split saddle is always a saddle, an indefinite H_in always gives saddles, and coefficients
with p ≥ 2 and q ≥ 1 give saddles whatever H_in is (the sure-saddle region).

Why the count is exact (two copies; m copies alike). In the coordinates w = λ_0 w_0 + λ_1 w_1,
ζ = w_0 − w_1, v = a_0 + a_1, η = a_0 − λ_0 v (a linear change of variables, so the Hessian's inertia is
unchanged) the network is f = f_narrow(w, v) + η σ'(w·x̃) ζ·x̃ + ½ λ_0 λ_1 v σ''(w·x̃) (ζ·x̃)² + O(3). At the
split point (ζ = η = 0) every mixed second derivative between ζ or η and the narrow coordinates vanishes,
∂²L/∂η² = 0, ∂²L/∂ζ² = λ_0 λ_1 H_in, and ∂²L/∂η∂ζ = 2c Σ_k e_k σ'(w·x̃_k) x̃_k = ∇_w L_narrow / v = 0. So
H_wide ≅ H_narrow ⊕ λ_0 λ_1 H_in ⊕ 0 (Fukumizu & Amari 2000, Sec. 3). The last step needs v ≠ 0: for a
neuron with zero output weight ("dead") the coupling g = 2c Σ_k e_k σ'(w·x̃_k) x̃_k need not vanish, the
block [[·, g], [gᵀ, 0]] of each extra copy has one negative eigenvalue per rank of g, and the split adds
(m − 1)·rank(g) unstable directions whatever the coefficients (`predict_split` handles this case).
"""

from __future__ import annotations

import dataclasses
import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .landscape.spectrum import DEFAULT_RTOL_ZERO, signature
from .models import MLP
from .problem import Problem

__all__ = ["split_neuron", "add_zero_neuron", "embeddings", "inner_hessian", "predict_split",
           "SplitPrediction", "in_sure_saddle_region", "split_line"]


def _check_two_layer(model: MLP):
    if model.n_layers != 2:
        raise ValueError(f"neuron splitting is implemented for two-layer nets (one hidden layer); "
                         f"got widths={model.widths}.")


def _neuron(neuron, width: int) -> int:
    if isinstance(neuron, (bool, np.bool_)) or not isinstance(neuron, (int, np.integer)):
        raise TypeError(f"neuron must be an integer index of a hidden neuron, got {neuron!r}.")
    if not 0 <= neuron < width:
        raise ValueError(f"neuron must be in [0, {width}) (the hidden width), got {neuron}.")
    return int(neuron)


def _coefficients(coefficients) -> np.ndarray:
    lam = _checks.finite_array("coefficients", coefficients, ndim=1)
    if lam.size < 2:
        raise ValueError(f"coefficients must have at least 2 entries (the copies), got {lam.size}.")
    if abs(lam.sum() - 1.0) > 1e-10:
        raise ValueError(f"coefficients must sum to 1, got sum {lam.sum():.12g}.")
    return lam


def split_neuron(model: MLP, theta, neuron: int, coefficients) -> tuple[MLP, np.ndarray]:
    """Replace hidden neuron `neuron` by len(coefficients) copies with output weights λ_j v.

    Copy 0 stays at the neuron's position; the others are appended after the last hidden neuron.
    Returns the wide model and its θ. If θ is a stationary point of the narrow net, the result is one of
    the wide net (for any λ with Σ λ_j = 1).
    """
    _check_two_layer(model)
    lam = _coefficients(coefficients)
    theta = _checks.theta_vector("theta", theta, model.n_params)
    (W1, b1), (W2, b2) = [(np.asarray(W), None if b is None else np.asarray(b))
                          for W, b in model.unflatten(jnp.asarray(theta))]
    neuron = _neuron(neuron, W1.shape[0])
    extra = lam.size - 1
    W1n = np.concatenate([W1, np.repeat(W1[neuron:neuron + 1], extra, axis=0)])
    b1n = None if b1 is None else np.concatenate([b1, np.repeat(b1[neuron:neuron + 1], extra)])
    W2n = np.concatenate([W2, np.outer(W2[:, neuron], lam[1:])], axis=1)
    W2n[:, neuron] = lam[0] * W2[:, neuron]
    wide = MLP((model.d_in, W1n.shape[0], model.d_out), model.activation, model.bias)
    return wide, np.asarray(wide.flatten([(W1n, b1n), (W2n, b2)]))


def add_zero_neuron(model: MLP, theta, incoming=None) -> tuple[MLP, np.ndarray]:
    """Append a hidden neuron with output weight 0 and the given input weights (default 0).

    The function is unchanged. The result is stationary when the narrow point is and ∂L/∂v_new = 0,
    e.g. incoming = 0 with σ(0) = 0.
    """
    _check_two_layer(model)
    theta = _checks.theta_vector("theta", theta, model.n_params)
    (W1, b1), (W2, b2) = [(np.asarray(W), None if b is None else np.asarray(b))
                          for W, b in model.unflatten(jnp.asarray(theta))]
    fan_in = W1.shape[1] + (b1 is not None)
    w = np.zeros(fan_in) if incoming is None else _checks.finite_array("incoming", incoming, shape=(fan_in,))
    W1n = np.concatenate([W1, w[None, : W1.shape[1]]])
    b1n = None if b1 is None else np.concatenate([b1, w[W1.shape[1]:]])
    W2n = np.concatenate([W2, np.zeros((W2.shape[0], 1))], axis=1)
    wide = MLP((model.d_in, W1n.shape[0], model.d_out), model.activation, model.bias)
    return wide, np.asarray(wide.flatten([(W1n, b1n), (W2n, b2)]))


@dataclasses.dataclass(frozen=True)
class Embedding:
    """One way of embedding an r-neuron point into m neurons: `copies[i]` copies of neuron i (equal
    coefficients 1/copies[i]) and `zeros` zero neurons."""

    copies: tuple[int, ...]
    zeros: int
    model: MLP
    theta: np.ndarray


def embeddings(model: MLP, theta, m: int) -> list[Embedding]:
    """Every embedding of a two-layer point with r hidden neurons into m ≥ r neurons: each of the m − r
    extra neurons is a copy of some neuron (splits, equal coefficients) or a zero neuron."""
    _check_two_layer(model)
    r = model.widths[1]
    m = _checks.positive_int("m", m, minimum=r)
    out = []
    for extra in itertools.combinations_with_replacement(range(r + 1), m - r):
        copies = [1 + extra.count(i) for i in range(r)]
        zeros = extra.count(r)
        mdl, th = model, np.asarray(theta, dtype=float)
        # Split from the last neuron down so that earlier indices stay valid.
        for i in reversed(range(r)):
            if copies[i] > 1:
                mdl, th = split_neuron(mdl, th, i, np.full(copies[i], 1.0 / copies[i]))
        for _ in range(zeros):
            mdl, th = add_zero_neuron(mdl, th)
        out.append(Embedding(tuple(copies), zeros, mdl, th))
    return out


def inner_hessian(problem: Problem, theta, neuron: int) -> np.ndarray:
    """H_in of hidden neuron `neuron` (module docstring), shape (fan_in, fan_in) with the bias last."""
    model = problem.require_mlp("the inner Hessian")
    _check_two_layer(model)
    theta, neuron = _inner_args(problem, theta, neuron)
    return np.asarray(_neuron_curvatures(problem, theta, jnp.asarray(neuron))[0])


def _inner_args(problem: Problem, theta, neuron):
    model = problem.require_mlp("the inner Hessian")
    _check_two_layer(model)
    theta = jnp.asarray(_checks.theta_vector("theta", theta, model.n_params))
    neuron = _neuron(neuron, model.widths[1])
    if not model.activation.smooth:
        raise ValueError(f"the inner Hessian needs a smooth activation; {model.activation.name!r} is not.")
    return theta, neuron


@eqx.filter_jit
def _neuron_curvatures(problem, theta, neuron):
    """(H_in, coupling g, output weights v_r) of hidden neuron `neuron` (a traced index).

    g = 2c Σ_k e_k ⊗ σ'(w·x̃_k) x̃_k, shape (d_out, fan_in): ∂²L/∂v_r∂w_r at a stationary point, zero
    there unless v_r = 0 (then ∇_w L = v_r g vanishes whatever g is).
    """
    model = problem.model
    (W1, b1), (W2, _) = model.unflatten(theta)
    x = problem.x
    w = W1[neuron]
    x_aug = x
    if b1 is not None:
        x_aug = jnp.concatenate([x, jnp.ones((x.shape[0], 1))], axis=1)
        w = jnp.concatenate([w, b1[neuron][None]])
    e = model.apply(theta, x) - problem.y
    sigma = model.activation.fn
    d1 = jax.vmap(jax.grad(lambda z: sigma(z)))
    d2 = jax.vmap(jax.grad(jax.grad(lambda z: sigma(z))))
    z = x_aug @ w
    v = W2[:, neuron]
    c2 = 2.0 * problem.loss_scale
    weights = (e @ v) * d2(z)
    H_in = c2 * (x_aug * weights[:, None]).T @ x_aug
    g = c2 * e.T @ (x_aug * d1(z)[:, None])
    return H_in, g, v


@dataclasses.dataclass(frozen=True)
class SplitPrediction:
    """The predicted type of a split point (module docstring).

    `kind` is "minimum" (degenerate: the plateau directions are flat) or "saddle"; `n_neg` is the
    predicted number of negative Hessian eigenvalues of the wide net: the narrow point's plus
    (p − 1)·h₋ + q·h₊. `margin_inner` is the smallest |eigenvalue| of H_in relative to
    max(largest |eigenvalue| of H_in, largest |eigenvalue| of the narrow Hessian) (the scale on which an
    eigenvalue of H_in counts as zero), `margin_coefficients` the smallest |λ_j|: small margins mean the
    point sits near a change of sign (the tolerance band).
    """

    kind: str
    n_neg: int
    n_neg_narrow: int
    n_split: int
    h_pos: int
    h_neg: int
    p: int
    q: int
    inner_eigenvalues: np.ndarray
    margin_inner: float
    margin_coefficients: float
    dead: bool = False
    coupling_rank: int = 0


def predict_split(problem: Problem, theta, neuron: int, coefficients, *, rtol_zero: float = DEFAULT_RTOL_ZERO,
                  narrow_eigenvalues=None, dead_atol: float = 1e-10) -> SplitPrediction:
    """Predict the type of the point obtained by splitting `neuron` of the stationary point θ of
    the narrow `problem` with `coefficients` (Σ λ_j = 1).

    **Arguments:**

    - `rtol_zero`: an eigenvalue of the narrow Hessian counts as zero when |λ| ≤ rtol_zero · max|λ|; one
      of H_in when |μ| ≤ rtol_zero · max(max|μ|, max|λ|).
    - `narrow_eigenvalues`: the narrow Hessian's eigenvalues, if already known (else computed).
    - `dead_atol`: the neuron is "dead" when max|v_r| ≤ dead_atol. Then the copies all have zero output
      weights, the coefficients do not matter, and the split adds (m − 1)·rank(g) unstable directions,
      g the coupling ∂²L/∂v_r∂w_r (module docstring); `dead` and `coupling_rank` record it.
    """
    lam = _coefficients(coefficients)
    rtol_zero = _checks.positive("rtol_zero", rtol_zero)
    dead_atol = _checks.nonnegative("dead_atol", dead_atol)
    theta_j, neuron = _inner_args(problem, theta, neuron)
    H_in, g, v = (np.asarray(a) for a in _neuron_curvatures(problem, theta_j, jnp.asarray(neuron)))
    mu = np.linalg.eigvalsh(H_in)
    if narrow_eigenvalues is None:
        narrow_eigenvalues = np.linalg.eigvalsh(problem.hessian(theta_j))
    ev = np.asarray(narrow_eigenvalues)
    ev_scale = max(np.max(np.abs(ev)), 1e-300)
    # H_in is judged on the scale of the Hessian, not on its own: at a near-perfect fit, or where σ'' ≈ 0
    # on the data, H_in is round-off (1e-12 of the Hessian) and its signs mean nothing; the curvature it
    # gives the split directions (λ_0 λ_1 μ) is then zero to the same tolerance as the Hessian's.
    scale = max(np.max(np.abs(mu)), ev_scale)
    h_neg, _, h_pos = signature(mu, rtol_zero, scale=scale)
    p, q = int(np.sum(lam > 0)), int(np.sum(lam < 0))
    n_neg_narrow = signature(ev, rtol_zero, scale=ev_scale)[0]
    dead = bool(np.max(np.abs(v)) <= dead_atol)
    rank = 0
    if dead:
        sv = np.linalg.svd(g, compute_uv=False)
        rank = int(np.sum(sv > rtol_zero * ev_scale))
        n_split = (lam.size - 1) * rank
    else:
        n_split = (p - 1) * h_neg + q * h_pos
    n_neg = n_neg_narrow + n_split
    return SplitPrediction(
        kind="minimum" if n_neg == 0 else "saddle", n_neg=n_neg, n_neg_narrow=n_neg_narrow,
        n_split=n_split, h_pos=h_pos, h_neg=h_neg, p=p, q=q, inner_eigenvalues=mu,
        margin_inner=float(np.min(np.abs(mu)) / scale), margin_coefficients=float(np.min(np.abs(lam))),
        dead=dead, coupling_rank=rank)


def in_sure_saddle_region(coefficients) -> bool:
    """True when at least two λ_j are positive and at least one is negative: then the split point is a
    saddle for any nonzero inner Hessian."""
    lam = _coefficients(coefficients)
    return bool(np.sum(lam > 0) >= 2 and np.sum(lam < 0) >= 1)


def split_line(model: MLP, theta, neuron: int, lambdas) -> tuple[MLP, np.ndarray]:
    """Points of the two-copy split line λ ↦ split with coefficients (λ, 1 − λ), one row per λ."""
    lambdas = _checks.finite_array("lambdas", lambdas, ndim=1)
    if lambdas.size == 0:
        raise ValueError("lambdas must hold at least one coefficient λ.")
    rows = [split_neuron(model, theta, neuron, [lam, 1.0 - lam]) for lam in lambdas]
    return rows[0][0], np.stack([r[1] for r in rows])
