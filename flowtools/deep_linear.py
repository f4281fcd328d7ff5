"""Deep linear networks (Saxe, McClelland & Ganguli 2014): whitened data and balanced initializations.

With whitened inputs, Σ_xx = (1/n) Σ_k x_k x_kᵀ = I, the loss of a linear network W_L ⋯ W_1 depends on
the data only through the input–output correlation Σ_yx = (1/n) Σ_k y_k x_kᵀ, and gradient flow from a
small balanced initialization learns the singular modes of Σ_yx one after another, passing the saddles
of rank 0, 1, 2, … (Saxe et al. 2014; Jacot et al. 2021, "Saddle-to-saddle dynamics in deep linear
networks").

- `whitened_dataset(sigma_yx)`: a `Dataset` with Σ_xx = I and the prescribed Σ_yx, both exact to
  round-off (an orthogonal design; targets y = Σ_yx x).
- `balanced_init(model, scale, seed)`: W_l = scale · Q_l Q_{l−1}ᵀ with Q_l semi-orthogonal (d_l × r,
  r the smallest width), so W_{l+1}ᵀW_{l+1} = W_l W_lᵀ exactly: the balancedness that gradient flow
  conserves (Arora et al. 2018), with every nonzero singular value of every layer equal to `scale`.
- `orthogonal_init(model, scale, seed)`: each W_l = scale times a random semi-orthogonal matrix
  (balanced too when all widths are equal).

Closed-form mode dynamics for balanced starts aligned with the modes (`aligned_init`): `mode_time`,
`mode_strength`, `learning_time`, `mode_loss` (depth 2 and 3; the derivation is in the source and on the
deep-linear study page).

Biases, if the model has any, start at zero. The builders accept any `MLP`; they are meant for
`MLP(widths, "linear", bias=False)`.
"""

from __future__ import annotations

import jax
import numpy as np

from . import _checks, _deprecation
from .data import Dataset, Teacher
from .models import MLP

__all__ = ["whitened_dataset", "balanced_init", "orthogonal_init", "aligned_init", "end_to_end", "mode_time",
           "mode_strength", "learning_time", "mode_loss"]


def _rng(key) -> np.random.Generator:
    """A numpy generator seeded from an int or a jax PRNG key (every random choice takes a seed)."""
    if isinstance(key, (int, np.integer)):
        return np.random.default_rng(int(key))
    try:
        data = np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                          else key, dtype=np.uint32).ravel()
    except (AttributeError, TypeError) as err:
        raise TypeError(f"seed must be an int or a jax.random key, got {type(key).__name__}.") from err
    return np.random.default_rng([int(v) for v in data])


def _semi_orthogonal(rng, rows: int, cols: int) -> np.ndarray:
    """A Haar-random rows × cols matrix with orthonormal columns (rows ≥ cols) or rows (rows < cols)."""
    tall = rows >= cols
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # the sign fix makes the distribution Haar (Mezzadri 2007)
    return q if tall else q.T


def whitened_dataset(sigma_yx, n: int | None = None, seed: int = 0, *, name: str | None = None) -> Dataset:
    """A data set with exactly whitened inputs and input–output correlation exactly `sigma_yx`.

    **Arguments:**

    - `sigma_yx`: the target correlation Σ_yx = (1/n) Σ_k y_k x_kᵀ, shape (d_out, d_in) (a 1-D array is
      one output row).
    - `n`: number of samples, at least d_in (default d_in). The inputs are x = √n · Q with Q an n × d_in
      matrix of orthonormal columns (seeded, Haar-random), so Σ_xx = XᵀX/n = I to round-off.
    - `seed`: seed of the design.

    **Returns:** a `Dataset` with targets y = Σ_yx x (a noiseless linear teacher, attached), so
    YᵀX/n = Σ_yx and the global minimum has zero loss.
    """
    s = _checks.finite_array("sigma_yx", sigma_yx)
    if s.ndim == 1:
        s = s[None, :]
    if s.ndim != 2:
        raise ValueError(f"sigma_yx must be a (d_out, d_in) matrix, got shape {s.shape}.")
    d_out, d_in = s.shape
    n = d_in if n is None else _checks.positive_int("n", n)
    if n < d_in:
        raise ValueError(f"n must be at least d_in={d_in} for inputs to be whitened exactly, got n={n}.")
    rng = np.random.default_rng(_checks.positive_int("seed", seed, minimum=0))
    x = np.sqrt(n) * _semi_orthogonal(rng, n, d_in)
    y = x @ s.T
    s_copy = s.copy()
    teacher = Teacher(lambda xx: xx @ s_copy.T, d_in, d_out, "linear teacher Σ_yx")
    return Dataset(x, y, teacher, 0.0, name or f"whitened (n={n}, Σ_yx {d_out}×{d_in})")


def _weights_to_theta(model: MLP, weights) -> np.ndarray:
    theta = np.zeros(model.n_params)
    for sl, W in zip(model.layout, weights):
        theta[sl.W[0]: sl.W[1]] = W.reshape(-1)
    return theta


@_deprecation.renamed_arguments(key="seed")
def balanced_init(model: MLP, scale: float, seed) -> np.ndarray:
    """A small balanced θ: W_l = scale · Q_l Q_{l−1}ᵀ, so W_{l+1}ᵀ W_{l+1} = W_l W_lᵀ for every l.

    **Arguments:** `model` (an `MLP`, meant to be linear without bias), `scale` > 0 (every nonzero
    singular value of every layer; the end-to-end map W_L ⋯ W_1 then has singular values scale^L),
    `seed` (int seed or jax key).

    Q_0 (d_0 × r), …, Q_L (d_L × r) are independent Haar-random matrices with orthonormal columns and
    r = min(widths), so W_l W_lᵀ = scale² Q_l Q_lᵀ = W_{l+1}ᵀ W_{l+1}.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    scale = _checks.positive("scale", scale)
    rng = _rng(seed)
    r = min(model.widths)
    qs = [_semi_orthogonal(rng, d, r) for d in model.widths]
    weights = [scale * qs[l] @ qs[l - 1].T for l in range(1, model.n_layers + 1)]
    return _weights_to_theta(model, weights)


@_deprecation.renamed_arguments(key="seed")
def orthogonal_init(model: MLP, scale: float, seed) -> np.ndarray:
    """θ with each W_l = scale · (a Haar-random semi-orthogonal d_l × d_{l−1} matrix), biases zero.

    **Arguments:** `model`, `scale` > 0 (every singular value of every layer), `seed` (int seed or jax
    key). With equal widths W_l W_lᵀ = W_{l+1}ᵀ W_{l+1} = scale² I: balanced as well.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    scale = _checks.positive("scale", scale)
    rng = _rng(seed)
    weights = [scale * _semi_orthogonal(rng, *sl.W_shape) for sl in model.layout]
    return _weights_to_theta(model, weights)


# ------------------------------------------------------------------------ closed-form mode dynamics
# Derivation (package convention: half_mse L = (1/2n) Σ_k ‖f(x_k) − y_k‖², flow dθ/dt = −∇L, t in the
# flow's own units, so GD with step η at step k sits at t = kη). With Σ_xx = I,
#   L = ½ ‖W_L ⋯ W_1 − Σ_yx‖²_F + ½ (tr Σ_yy − ‖Σ_yx‖²_F),
# and a balanced start aligned with the singular vectors of Σ_yx = Σ_i s_i a_i b_iᵀ keeps every layer
# of the form Σ_i w_i(t) (next basis)(previous basis)ᵀ, each mode i on its own with one weight w per
# layer: ẇ = w^{L−1} (s − w^L). The mode strength u = w^L (its singular value of W_L ⋯ W_1) obeys
#   u̇ = L u^{2 − 2/L} (s − u)                                                      (Saxe et al. 2014)
# Depth 2: u̇ = 2u(s − u), a logistic curve: u(t) = s / (1 + (s/u₀ − 1) e^{−2st}).
# Depth 3: with v = u^{1/3}, c = s^{1/3}, dt = dv / (v² (s − v³)) and partial fractions give
#   t(v) = F(v) − F(v₀),  F(v) = −1/(s v) + (1/s) [ −ln(c − v)/(3c) + ln(v² + cv + c²)/(6c)
#                                                    − arctan((2v + c)/(√3 c)) / (√3 c) ].
# Escape from the origin (u₀ ≪ s, to u = s/2): depth 2 takes (1/(2s)) ln(s/u₀ − 1), a log law in the
# initial scale ε (u₀ = ε²); depth 3 takes ≈ 1/(s u₀^{1/3}) = 1/(s ε), a power law with exponent −1
# (u₀ = ε³).
def _mode_args(s, u0, depth):
    s = _checks.positive("s", s)
    u0 = _checks.positive("u0", u0)
    depth = _checks.positive_int("depth", depth)
    if depth not in (2, 3):
        raise ValueError(f"closed-form mode dynamics are implemented for depth 2 and 3, got depth={depth}.")
    if u0 >= s:
        raise ValueError(f"u0={u0:g} must lie below the mode's singular value s={s:g} (a small start).")
    return s, u0, depth


def _F3(v, s):
    c = s ** (1.0 / 3.0)
    r3 = np.sqrt(3.0)
    return (-1.0 / (s * v) + (-np.log(c - v) / (3 * c) + np.log(v * v + c * v + c * c) / (6 * c)
                                 - np.arctan((2 * v + c) / (r3 * c)) / (r3 * c)) / s)


def mode_time(u, s: float, u0: float, depth: int):
    """The flow time at which a mode of singular value `s` started at strength `u0` reaches strength
    `u` (u0 ≤ u < s), for a balanced, aligned start (closed form; see the module's derivation)."""
    s, u0, depth = _mode_args(s, u0, depth)
    u = np.asarray(u, dtype=np.float64)
    if np.any(u < u0) or np.any(u >= s):
        raise ValueError(f"u must lie in [u0, s) = [{u0:g}, {s:g}).")
    if depth == 2:
        return np.log(u * (s - u0) / (u0 * (s - u))) / (2 * s)
    return _F3(np.cbrt(u), s) - _F3(np.cbrt(u0), s)


def mode_strength(t, s: float, u0: float, depth: int):
    """The strength u(t) of a mode (singular value `s`, start `u0`) under gradient flow: the inverse of
    `mode_time` (explicit for depth 2, bisection on the monotone t(u) to round-off for depth 3)."""
    s, u0, depth = _mode_args(s, u0, depth)
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("t must be non-negative.")
    if depth == 2:
        return s / (1.0 + (s / u0 - 1.0) * np.exp(-2.0 * s * t))
    lo = np.full(t.shape, np.cbrt(u0))
    hi = np.full(t.shape, np.cbrt(s))
    f0 = _F3(np.cbrt(u0), s)
    with np.errstate(divide="ignore", invalid="ignore"):  # v → c gives t → ∞: "not yet", as it should
        for _ in range(200):  # bisection in v = u^{1/3}; t(v) increases on [v0, c)
            mid = 0.5 * (lo + hi)
            below = _F3(mid, s) - f0 < t
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (0.5 * (lo + hi)) ** 3


def learning_time(s: float, u0: float, depth: int, fraction: float = 0.5) -> float:
    """The time a mode needs to reach `fraction` of its singular value `s` from `u0` (default: half)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}.")
    return float(mode_time(fraction * s, s, u0, depth))


def mode_loss(t, singular_values, u0, depth: int):
    """½ Σ_i (s_i − u_i(t))²: the half_mse loss of an aligned balanced run on whitened data with an
    exactly representable target (y = Σ_yx x). `u0`: one start for all modes, or one per mode."""
    s = np.atleast_1d(np.asarray(singular_values, dtype=np.float64))
    u0 = np.broadcast_to(np.asarray(u0, dtype=np.float64), s.shape)
    t = np.asarray(t, dtype=np.float64)
    return 0.5 * sum((si - mode_strength(t, si, ui, depth)) ** 2 for si, ui in zip(s, u0))


def aligned_init(model: MLP, scale: float) -> np.ndarray:
    """θ with W_l = scale · E_l, E_l the d_l × d_{l−1} matrix with ones on its diagonal: balanced, and
    aligned with the singular vectors of a diagonal Σ_yx on `whitened_dataset` inputs, so every mode
    starts at u₀ = scale^L and follows `mode_strength` exactly."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    scale = _checks.positive("scale", scale)
    return _weights_to_theta(model, [scale * np.eye(*sl.W_shape) for sl in model.layout])


def end_to_end(model: MLP, theta) -> np.ndarray:
    """The end-to-end matrix W_L ⋯ W_1 of a linear network without bias, shape (d_out, d_in); its
    singular values are the mode strengths u_i."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    theta = _checks.theta_vector("theta", theta, model.n_params)
    P = np.eye(model.widths[0])
    for sl in model.layout:
        P = theta[sl.W[0]:sl.W[1]].reshape(sl.W_shape) @ P
    return P
