"""The losses ℓ(f, y) of a `Problem` and their sample mean.

"half_mse" (ℓ = ½‖f − y‖², so L = (1/2n) Σ_k ‖f(x_k; θ) − y_k‖², Maleknia & Sato, Sec. 2), "mse"
(ℓ = ‖f − y‖²) and "cross_entropy" (ℓ = −Σ_j y_j log softmax(f)_j on one-hot or probability rows).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOSSES = ("half_mse", "mse", "cross_entropy")
LOSS_CONVENTIONS = LOSSES  # the earlier name


def sample_losses(outputs, y, loss: str):
    """ℓ(f_k, y_k) for each row k: shape (n,). Traceable."""
    if loss == "cross_entropy":
        return -jnp.sum(y * jax.nn.log_softmax(outputs, axis=-1), axis=-1)
    r = outputs - y
    return (0.5 if loss == "half_mse" else 1.0) * jnp.sum(r * r, axis=-1)


def mean_loss(outputs, y, loss: str):
    if loss == "cross_entropy":
        return jnp.mean(sample_losses(outputs, y, loss))
    # The same sum as before the loss was generalised: c Σ‖f − y‖², bit for bit.
    r = outputs - y
    c = 1.0 / (2 * y.shape[0]) if loss == "half_mse" else 1.0 / y.shape[0]
    return c * jnp.sum(r * r)


def accuracy(outputs, y):
    return jnp.mean((jnp.argmax(outputs, axis=-1) == jnp.argmax(y, axis=-1)).astype(jnp.float64))
