"""Deep linear networks (Saxe, McClelland & Ganguli 2014): whitened data and balanced initializations.

With whitened inputs, Σ_xx = (1/n) Σ_k x_k x_kᵀ = I, the loss of a linear network W_L ⋯ W_1 depends on
the data only through the input–output correlation Σ_yx = (1/n) Σ_k y_k x_kᵀ, and gradient flow from a
small balanced initialization learns the singular modes of Σ_yx one after another, passing the saddles
of rank 0, 1, 2, … (Saxe et al. 2014; Jacot et al. 2021, "Saddle-to-saddle dynamics in deep linear
networks").

- `whitened_dataset(sigma_yx)`: a `Dataset` with Σ_xx = I and the prescribed Σ_yx, both exact to
  round-off (an orthogonal design; targets y = Σ_yx x).
- `balanced_init(model, scale, key)`: W_l = scale · Q_l Q_{l−1}ᵀ with Q_l semi-orthogonal (d_l × r,
  r the smallest width), so W_{l+1}ᵀW_{l+1} = W_l W_lᵀ exactly: the balancedness that gradient flow
  conserves (Arora et al. 2018), with every nonzero singular value of every layer equal to `scale`.
- `orthogonal_init(model, scale, key)`: each W_l = scale times a random semi-orthogonal matrix
  (balanced too when all widths are equal).

Biases, if the model has any, start at zero. The builders accept any `MLP`; they are meant for
`MLP(widths, "linear", bias=False)`.
"""

from __future__ import annotations

import jax
import numpy as np

from . import _checks
from .data import Dataset, Teacher
from .models import MLP

__all__ = ["whitened_dataset", "balanced_init", "orthogonal_init"]


def _rng(key) -> np.random.Generator:
    """A numpy generator seeded from an int or a jax PRNG key (every random choice takes a key)."""
    if isinstance(key, (int, np.integer)):
        return np.random.default_rng(int(key))
    try:
        data = np.asarray(jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                          else key, dtype=np.uint32).ravel()
    except (AttributeError, TypeError) as err:
        raise TypeError(f"key must be an int seed or a jax.random key, got {type(key).__name__}.") from err
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


def balanced_init(model: MLP, scale: float, key) -> np.ndarray:
    """A small balanced θ: W_l = scale · Q_l Q_{l−1}ᵀ, so W_{l+1}ᵀ W_{l+1} = W_l W_lᵀ for every l.

    **Arguments:** `model` (an `MLP`, meant to be linear without bias), `scale` > 0 (every nonzero
    singular value of every layer; the end-to-end map W_L ⋯ W_1 then has singular values scale^L),
    `key` (int seed or jax key).

    Q_0 (d_0 × r), …, Q_L (d_L × r) are independent Haar-random matrices with orthonormal columns and
    r = min(widths), so W_l W_lᵀ = scale² Q_l Q_lᵀ = W_{l+1}ᵀ W_{l+1}.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    scale = _checks.positive("scale", scale)
    rng = _rng(key)
    r = min(model.widths)
    qs = [_semi_orthogonal(rng, d, r) for d in model.widths]
    weights = [scale * qs[l] @ qs[l - 1].T for l in range(1, model.n_layers + 1)]
    return _weights_to_theta(model, weights)


def orthogonal_init(model: MLP, scale: float, key) -> np.ndarray:
    """θ with each W_l = scale · (a Haar-random semi-orthogonal d_l × d_{l−1} matrix), biases zero.

    **Arguments:** `model`, `scale` > 0 (every singular value of every layer), `key` (int seed or jax
    key). With equal widths W_l W_lᵀ = W_{l+1}ᵀ W_{l+1} = scale² I: balanced as well.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    scale = _checks.positive("scale", scale)
    rng = _rng(key)
    weights = [scale * _semi_orthogonal(rng, *sl.W_shape) for sl in model.layout]
    return _weights_to_theta(model, weights)
