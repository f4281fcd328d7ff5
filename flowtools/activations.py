"""Activation functions: a registry of named σ with the properties the analysis needs.

Each activation records whether it is smooth (Hessian-based analysis is meaningful) and whether it is
odd (σ(−z) = −σ(z), which adds the sign-flip symmetry (w_i, v_i) → (−w_i, −v_i) of a hidden neuron).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp

__all__ = ["Activation", "get_activation", "ACTIVATIONS"]


@dataclasses.dataclass(frozen=True)
class Activation:
    """A scalar activation σ applied elementwise.

    **Arguments:**

    - `name`: a label used in files and figures.
    - `fn`: the elementwise function, written with `jax.numpy`.
    - `smooth`: whether σ is C² (Hessians, Morse indices and splitting theory need it).
    - `odd`: whether σ(−z) = −σ(z); then each hidden neuron has a sign-flip symmetry.
    """

    name: str
    fn: Callable = dataclasses.field(compare=False)
    smooth: bool = True
    odd: bool = False

    def __call__(self, z):
        return self.fn(z)

    def __hash__(self):
        return hash((self.name, id(self.fn), self.smooth, self.odd))

    def __eq__(self, other):
        return (
            isinstance(other, Activation)
            and self.name == other.name
            and self.fn is other.fn
            and (self.smooth, self.odd) == (other.smooth, other.odd)
        )


def _gelu(z):
    # The exact (erf) form, not the tanh approximation: φ_σ(z) = z σ'(z) − σ(z) ~ z² near 0.
    return 0.5 * z * (1.0 + jsp.erf(z / jnp.sqrt(2.0)))


def _linear(z):
    return z


def _scaled_erf(z):
    # g(z) = erf(z/√2) of the soft committee machine (Saad & Solla 1995; Goldt et al. 2019).
    return jsp.erf(z / jnp.sqrt(2.0))


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("tanh", jnp.tanh, smooth=True, odd=True),
        Activation("erf", jsp.erf, smooth=True, odd=True),
        Activation("scaled_erf", _scaled_erf, smooth=True, odd=True),
        Activation("sigmoid", jax.nn.sigmoid, smooth=True, odd=False),
        Activation("softplus", jax.nn.softplus, smooth=True, odd=False),
        Activation("gelu", _gelu, smooth=True, odd=False),
        Activation("silu", jax.nn.silu, smooth=True, odd=False),
        Activation("linear", _linear, smooth=True, odd=True),
        Activation("relu", jax.nn.relu, smooth=False, odd=False),
    ]
}


def get_activation(activation: str | Activation | Callable) -> Activation:
    """Return the `Activation` for a name, an `Activation`, or a user callable.

    A plain callable is wrapped as smooth and not odd; wrap it in `Activation` yourself to say
    otherwise.

    **Raises:** `ValueError` for an unknown name, `TypeError` for anything else.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        key = activation.lower()
        if key not in ACTIVATIONS:
            raise ValueError(
                f"activation={activation!r} is unknown; choose one of "
                f"{sorted(ACTIVATIONS)} or pass a callable."
            )
        return ACTIVATIONS[key]
    if callable(activation):
        name = getattr(activation, "__name__", "custom")
        return Activation(name, activation, smooth=True, odd=False)
    raise TypeError(
        f"activation must be a name, an Activation or a callable, got {type(activation).__name__}."
    )
