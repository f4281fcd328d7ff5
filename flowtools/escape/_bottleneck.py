"""Bottleneck networks ("A Theory of Saddle Escape in Deep Nonlinear Networks", 2026): the r bottleneck
layers of an MLP, the He-normal initialization with their weights scaled by ε, and the saddle reached by
zeroing them (a critical set for r ≥ 2 when σ(0) = 0 and those layers have no bias).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from .. import _checks, _deprecation
from ..models import MLP


def bottleneck_layers(model: MLP, r: int, layers: Sequence[int] | None = None) -> tuple[int, ...]:
    """The 1-based indices of the r bottleneck layers: `layers` if given, else the last r layers
    (L − r + 1 … L, the output side). With σ(0) = 0 and no biases, setting those layers to zero gives a
    critical set for r ≥ 2 (every gradient contains a product of at least r − 1 of them)."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
    L = model.n_layers
    r = _checks.positive_int("r", r)
    if r > L:
        raise ValueError(f"r={r} bottleneck layers need a network with at least r layers; it has {L}.")
    if layers is None:
        return tuple(range(L - r + 1, L + 1))
    layers = tuple(int(l) for l in layers)
    if len(layers) != r or len(set(layers)) != r or not all(1 <= l <= L for l in layers):
        raise ValueError(f"layers must be {r} distinct layer indices in 1 … {L}, got {layers}.")
    return tuple(sorted(layers))


@_deprecation.renamed_arguments(key="seed", eps="scale")
def bottleneck_init(model: MLP, seed, scale: float, r: int, layers: Sequence[int] | None = None, *,
                    scheme: str = "he") -> jax.Array:
    """He-normal θ ("A Theory of Saddle Escape in Deep Nonlinear Networks", 2026)
    with the r bottleneck layers' weights multiplied by ε = `scale`.

    **Arguments:** `model`, `seed` (int or jax key), `scale` = ε > 0, `r` (number of bottleneck layers),
    `layers` (1-based; default: the last r, see `bottleneck_layers`), `scheme` (passed to `model.init`).

    With the same seed, different ε give the same direction: only the bottleneck layers are rescaled.
    """
    scale = _checks.positive("scale", scale)
    chosen = bottleneck_layers(model, r, layers)
    scales = [scale if l in chosen else 1.0 for l in range(1, model.n_layers + 1)]
    return model.init(seed, scheme, layer_scales=scales)


def bottleneck_saddle(model: MLP, theta, r: int, layers: Sequence[int] | None = None) -> np.ndarray:
    """θ with the bottleneck layers (weights and biases) set to zero: the point of the critical set
    nearest to a bottleneck initialization (a critical point when σ(0) = 0, r ≥ 2 and those layers have
    no bias). Its network function is 0 whenever the output layer is a bottleneck layer."""
    chosen = bottleneck_layers(model, r, layers)
    theta = np.array(_checks.theta_vector("theta", theta, model.n_params))
    for l in chosen:
        sl = model.layout[l - 1]
        theta[sl.W[0]:sl.W[1]] = 0.0
        if sl.b is not None:
            theta[sl.b[0]:sl.b[1]] = 0.0
    return theta
