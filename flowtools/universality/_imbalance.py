"""The norm-imbalance identity of gradient flow and its rate.

"A Theory of Saddle Escape in Deep Nonlinear Networks" (2026, Theorem 1) rests on one exact
identity. For an MLP with hidden layers h_l = W_l a_{l−1} + b_l, a_l = σ(h_l), let g_l = ∂L/∂a_l (per
sample, for the loss L *with* its 1/(2n) or 1/n factor) and φ_σ(z) = z σ'(z) − σ(z). Then along the
gradient flow θ̇ = −∇L, for every hidden layer l,

    d/dt (‖W_l‖_F² + ‖b_l‖² − ‖W_{l+1}‖_F²) = −2 Σ_samples Σ_i g_{l,i} φ_σ(h_{l,i}).        (★)

Derivation (ours; the paper states the bias-free case). With δ_l = ∂L/∂h_l = g_l ⊙ σ'(h_l),
∂L/∂W_l = Σ_k δ_l^k a_{l−1}^kᵀ and ∂L/∂b_l = Σ_k δ_l^k, so

    ⟨W_l, ∂L/∂W_l⟩ + ⟨b_l, ∂L/∂b_l⟩ = Σ_k δ_l^k · (W_l a_{l−1}^k + b_l) = Σ_k Σ_i g_{l,i} σ'(h_{l,i}) h_{l,i},
    ⟨W_{l+1}, ∂L/∂W_{l+1}⟩ = Σ_k δ_{l+1}^k · W_{l+1} a_l^k = Σ_k g_l^k · a_l^k = Σ_k Σ_i g_{l,i} σ(h_{l,i}),

and d/dt ‖X‖² = 2⟨X, Ẋ⟩ = −2⟨X, ∂L/∂X⟩ gives (★). The bias of layer l+1 does not enter. Without a
bias in layer l the ‖b_l‖² term is absent, which is the paper's form. If one insists on the plain
‖W_l‖² − ‖W_{l+1}‖² in a layer with a bias, its rate is the right side of (★) plus 2 Σ_k δ_l^k · b_l.
For φ_σ ≡ 0 (linear, and ReLU away from 0) the imbalance is conserved (Du, Hu & Lee 2018).

Note that the rate form of (★) is an algebraic identity about ∇L at one θ; what makes it a statement about
the dynamics is integrating it along θ(t). `imbalance_residual` checks both.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _deprecation
from ..models import MLP
from ..problem import Problem
from ._activation_class import phi_sigma


def _check_model(problem):
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    problem.require_mlp("the norm-imbalance identity")
    if problem.model.n_layers < 2:
        raise ValueError("the norm-imbalance identity needs at least one hidden layer.")


def _imbalance(model: MLP, theta):
    """I_l = ‖W_l‖² + ‖b_l‖² − ‖W_{l+1}‖² for l = 1 … L−1 (traceable)."""
    layers = model.unflatten(theta)
    out = []
    for l in range(model.n_layers - 1):
        (W, b), (W_next, _) = layers[l], layers[l + 1]
        v = jnp.sum(W * W) - jnp.sum(W_next * W_next)
        if b is not None:
            v = v + jnp.sum(b * b)
        out.append(v)
    return jnp.stack(out)


def norm_imbalance(model: MLP, theta) -> np.ndarray:
    """The imbalances I_l = ‖W_l‖_F² + ‖b_l‖² − ‖W_{l+1}‖_F², l = 1 … L−1 (the ‖b_l‖² term only for
    layers with a bias).

    **Arguments:** `model`, and `theta`: one flat vector, or a batch of shape (m, n_params).

    **Returns:** shape (L−1,) for one vector, (m, L−1) for a batch.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    single = np.ndim(theta) == 1
    thetas = _checks.theta_batch("theta", theta, model.n_params)
    m = thetas.shape[0]
    size = 1 << max(0, (m - 1).bit_length())
    pad = np.concatenate([thetas, np.repeat(thetas[-1:], size - m, axis=0)]) if size > m else thetas
    out = np.asarray(_batched_imbalance(model, jnp.asarray(pad)))[:m]
    return out[0] if single else out


def _forward_with_taps(model: MLP, theta, x, taps):
    """f(x; θ) with `taps[l]` added to the activation a_l of hidden layer l (zero taps = model.apply),
    and the list of pre-activations h_l. ∂f/∂taps[l] at taps = 0 is ∂f/∂a_l."""
    sigma = model.activation.fn
    a, hs = x, []
    layers = model.unflatten(theta)
    for l, (W, b) in enumerate(layers):
        h = a @ W.T
        if b is not None:
            h = h + b
        if l < model.n_layers - 1:
            hs.append(h)
            a = sigma(h) + taps[l]
        else:
            a = h
    return a, hs


def _rate_terms(problem: Problem, theta):
    """(lhs, rhs, scale), each shape (L−1,), at one θ (traceable). See `norm_imbalance_rate`."""
    model = problem.model
    n = problem.x.shape[0]
    taps0 = [jnp.zeros((n, model.widths[l]), dtype=theta.dtype) for l in model.hidden_layers]

    def loss_of(th, taps):
        f, _ = _forward_with_taps(model, th, problem.x, taps)
        r = f - problem.y
        return problem.loss_scale * jnp.sum(r * r)

    grad_theta, g = jax.grad(loss_of, argnums=(0, 1))(theta, taps0)  # g[l] = ∂L/∂a_l, shape (n, h_l)
    _, hs = _forward_with_taps(model, theta, problem.x, taps0)
    phi = phi_sigma(model.activation)
    layers = model.unflatten(theta)
    dlayers = model.unflatten(grad_theta)  # same layout: (∂L/∂W_l, ∂L/∂b_l)
    lhs, rhs, scale = [], [], []
    for l in range(model.n_layers - 1):
        (W, b), (dW, db) = layers[l], dlayers[l]
        W_next, dW_next = layers[l + 1][0], dlayers[l + 1][0]
        t_in = -2.0 * jnp.sum(W * dW)  # d/dt ‖W_l‖² = 2⟨W_l, −∂L/∂W_l⟩
        t_b = -2.0 * jnp.sum(b * db) if b is not None else jnp.zeros((), theta.dtype)
        t_out = -2.0 * jnp.sum(W_next * dW_next)
        terms = g[l] * phi(hs[l])
        right = -2.0 * jnp.sum(terms)
        lhs.append(t_in + t_b - t_out)
        rhs.append(right)
        # the size of the numbers summed on either side: rounding error is relative to this
        scale.append(jnp.maximum(jnp.abs(t_in) + jnp.abs(t_b) + jnp.abs(t_out),
                                 2.0 * jnp.sum(jnp.abs(terms))))
    return jnp.stack(lhs), jnp.stack(rhs), jnp.stack(scale)


@eqx.filter_jit
def _batched_rates(problem, thetas):
    return jax.vmap(lambda th: _rate_terms(problem, th))(thetas)


def _relative(lhs, rhs, scale):
    diff = np.abs(lhs - rhs)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, np.inf, 0.0))
    return diff, rel


@dataclasses.dataclass(frozen=True)
class ImbalanceRate:
    """Both sides of identity (★) at one θ, one entry per hidden layer l = 1 … L−1.

    **Fields:**

    - `lhs`: d/dt I_l computed from the flow's velocity −∇L (autodiff of the problem's loss):
      2⟨W_l, −∂L/∂W_l⟩ + 2⟨b_l, −∂L/∂b_l⟩ − 2⟨W_{l+1}, −∂L/∂W_{l+1}⟩.
    - `rhs`: −2 Σ_samples Σ_i g_{l,i} φ_σ(h_{l,i}) with g_l = ∂L/∂a_l (autodiff through the activations).
    - `scale`: max(|2⟨W_l, Ẇ_l⟩| + |2⟨b_l, ḃ_l⟩| + |2⟨W_{l+1}, Ẇ_{l+1}⟩|, 2 Σ |g_{l,i} φ_σ(h_{l,i})|):
      the size of the numbers summed on either side (both sides cancel: e.g. for σ(0) ≠ 0 the terms
      −σ(0) g sum to nearly 0 once the mean output is fitted), against which rounding is measured.
    - `abs_residual` = |lhs − rhs|; `rel_residual` = abs_residual / scale (0 where both sides are 0).
    """

    lhs: np.ndarray
    rhs: np.ndarray
    scale: np.ndarray
    abs_residual: np.ndarray
    rel_residual: np.ndarray

    @property
    def max_rel_residual(self) -> float:
        return float(np.max(self.rel_residual))


def norm_imbalance_rate(problem: Problem, theta) -> ImbalanceRate:
    """Both sides of the norm-imbalance identity (★) (module docstring) at θ, for every hidden layer.

    The left side is the rate of I_l = ‖W_l‖² + ‖b_l‖² − ‖W_{l+1}‖² along θ̇ = −∇L, from the problem's
    own gradient; the right side is the formula −2 Σ g φ_σ(h) with g_l = ∂L/∂a_l. Both use the problem's
    loss with its 1/(2n) or 1/n factor, so they agree to rounding for every θ.

    **Returns:** an `ImbalanceRate`.
    """
    _check_model(problem)
    theta = jnp.asarray(_checks.theta_vector("theta", theta, problem.n_params))
    lhs, rhs, scale = (np.asarray(v) for v in _batched_rates(problem, theta[None, :]))
    lhs, rhs, scale = lhs[0], rhs[0], scale[0]
    diff, rel = _relative(lhs, rhs, scale)
    return ImbalanceRate(lhs, rhs, scale, diff, rel)


@eqx.filter_jit
def _batched_check(problem, thetas):
    """Per row of `thetas`: lhs, rhs, scale of (★), d rhs/dt along θ̇ = −∇L, and the imbalances."""

    def one(th):
        velocity = -problem.grad_fn(th)
        (lhs, rhs, scale), (_, drhs, _) = jax.jvp(lambda t: _rate_terms(problem, t), (th,), (velocity,))
        return lhs, rhs, scale, drhs, _imbalance(problem.model, th)

    return jax.vmap(one)(thetas)


@eqx.filter_jit
def _batched_imbalance(model, thetas):
    return jax.vmap(lambda th: _imbalance(model, th))(thetas)


@dataclasses.dataclass(frozen=True)
class ImbalanceCheck:
    """Identity (★) checked along a saved trajectory.

    **Fields:**

    - `t`: the saved times, shape (m,).
    - `lhs`, `rhs`, `rel_residual`: the rate check at each saved state, shape (m, L−1)
      (see `ImbalanceRate`).
    - `max_rel_residual`, `max_abs_residual`: the worst rate residual over states and layers.
    - `delta_imbalance`: I_l(t) − I_l(t_0), shape (m, L−1).
    - `integrated_rhs`: ∫_{t_0}^{t} rhs dt by cubic Hermite quadrature on the saved grid (the time
      derivative of rhs along −∇L by forward-mode autodiff), shape (m, L−1).
    - `integrated_abs_error`: max |delta_imbalance − integrated_rhs|.
    - `integrated_rel_error`: that, divided by max over layers of ∫ scale dt (the accumulated size of
      the terms whose difference is integrated). It includes the ODE solver's error and the quadrature
      error of the save grid, so it is a consistency check, not a test of (★) to rounding.
    - `applies`: False for a GD or SGD trajectory, where only the rate check is meaningful
      (the integrated form holds for the flow, and for GD only up to O(η)).
    """

    t: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    rel_residual: np.ndarray
    max_rel_residual: float
    max_abs_residual: float
    delta_imbalance: np.ndarray
    integrated_rhs: np.ndarray
    integrated_abs_error: float
    integrated_rel_error: float
    applies: bool

    def to_dict(self) -> dict:
        return dict(max_rel_residual=self.max_rel_residual, max_abs_residual=self.max_abs_residual,
                    integrated_abs_error=self.integrated_abs_error,
                    integrated_rel_error=self.integrated_rel_error, integrated_applies=self.applies,
                    n_states=int(self.t.size), n_layers=int(self.lhs.shape[1]))

    as_dict = _deprecation.renamed_function(to_dict, "as_dict")


def imbalance_residual(problem: Problem, trajectory) -> ImbalanceCheck:
    """Check identity (★) along a trajectory: pointwise at each saved state, and integrated in time.

    1. Rate check: `norm_imbalance_rate` at every saved state; reports the largest relative residual.
    2. Integrated check: I_l(t) − I_l(t_0) against ∫ rhs dt, the integral by cubic Hermite quadrature
       on the saved grid, ∫_{t_k}^{t_{k+1}} f ≈ h (f_k + f_{k+1})/2 + h² (f'_k − f'_{k+1})/12, with
       f' = d rhs/dt along −∇L by forward-mode autodiff. Its error is the solver's plus O(h⁵ f⁽⁴⁾), so save
       densely (e.g. a few hundred log-spaced times) for a tight check.

    **Arguments:** `problem`, and `trajectory` (a `Trajectory`, or anything with `t` and `theta`).

    **Returns:** an `ImbalanceCheck`.
    """
    _check_model(problem)
    t = _checks.finite_array("trajectory.t", getattr(trajectory, "t", None), ndim=1)
    thetas = _checks.theta_batch("trajectory.theta", getattr(trajectory, "theta", None), problem.n_params)
    if thetas.shape[0] != t.size:
        raise ValueError(f"trajectory has {t.size} times but {thetas.shape[0]} states.")
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("trajectory.t must be strictly increasing.")
    m = t.size
    # pad to a power of two (at least 256) so trajectories of different lengths share a compiled kernel
    size = max(256, 1 << max(0, (m - 1).bit_length()))
    pad = np.concatenate([thetas, np.repeat(thetas[-1:], size - m, axis=0)]) if size > m else thetas
    lhs, rhs, scale, df, imb = (np.asarray(v)[:m] for v in _batched_check(problem, jnp.asarray(pad)))
    diff, rel = _relative(lhs, rhs, scale)
    f = rhs
    h = np.diff(t)[:, None]
    pieces = h * (f[:-1] + f[1:]) / 2 + h**2 * (df[:-1] - df[1:]) / 12
    integrated = np.concatenate([np.zeros((1, f.shape[1])), np.cumsum(pieces, axis=0)])
    delta = imb - imb[0]
    int_abs = float(np.max(np.abs(delta - integrated))) if m > 1 else 0.0
    acc_scale = np.sum(h * (scale[:-1] + scale[1:]) / 2, axis=0) if m > 1 else np.zeros(1)
    denom = float(np.max(acc_scale)) if m > 1 else 0.0
    int_rel = int_abs / denom if denom > 0 else (0.0 if int_abs == 0 else math.inf)
    applies = getattr(trajectory, "method", "gradient_flow") == "gradient_flow"
    return ImbalanceCheck(t=t, lhs=lhs, rhs=rhs, rel_residual=rel, max_rel_residual=float(np.max(rel)),
                          max_abs_residual=float(np.max(diff)), delta_imbalance=delta,
                          integrated_rhs=integrated, integrated_abs_error=int_abs,
                          integrated_rel_error=float(int_rel), applies=applies)
