"""Activation functions: a registry of named σ with the properties the analysis needs.

Each activation records whether it is smooth (Hessian-based analysis is meaningful) and whether it is
odd (σ(−z) = −σ(z), which adds the sign-flip symmetry (w_i, v_i) → (−w_i, −v_i) of a hidden neuron).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np

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


#: the probe every user activation is checked on once: a batch of pre-activations (n, width)
_PROBE = np.linspace(-2.0, 2.0, 6).reshape(3, 2)
#: where a user activation declared odd is checked: σ(−z) = −σ(z) to `_ODD_RTOL` of max |σ| there
_ODD_PROBE = np.linspace(0.125, 12.0, 96)
_ODD_RTOL = 1e-12
_checked: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # fn → the `odd` flags checked


def check_activation(act: Activation) -> Activation:
    """Evaluate `act` once on a probe batch (3, 2) and check that it acts elementwise: it returns an
    array of the input's shape, of a floating dtype, finite; and, when it is declared `odd`, that
    σ(−z) = −σ(z) on 96 points of [0.125, 12] (to 1e-12 of max |σ| there: the population loss's series
    and the sign-flip symmetry rely on it). Raises `ValueError` / `TypeError` naming the activation and
    what it returned; the built-in activations are not probed."""
    if ACTIVATIONS.get(act.name) == act:
        return act
    try:
        if act.odd in _checked.get(act.fn, ()):
            return act
    except TypeError:  # not weakly referenceable: probe every time (a few microseconds)
        pass
    label = f"activation {act.name!r}"
    try:
        out = act.fn(jnp.asarray(_PROBE))
    except Exception as err:  # noqa: BLE001 - the user's function failed on a plain float64 batch
        raise TypeError(f"{label} failed on a float64 array of shape (3, 2): {type(err).__name__}: "
                        f"{err}. An activation takes an array of pre-activations and returns "
                        "σ applied elementwise, written with jax.numpy.") from None
    shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
    if shape != _PROBE.shape:
        raise ValueError(f"{label} must act elementwise and keep its input's shape: on an array of shape "
                         f"(3, 2) it returned {type(out).__name__} of shape {shape}. Write σ(z) so that "
                         "it maps each entry of z (e.g. jnp.tanh(z)), without sums or reshapes.")
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{label} must return floating-point values, got dtype {dtype} on a float64 "
                        "input; avoid integer casts and comparisons as outputs.")
    if not bool(jnp.all(jnp.isfinite(out))):
        raise ValueError(f"{label} returned non-finite values on inputs in [-2, 2]: "
                         f"{np.asarray(out).ravel().tolist()}.")
    if act.odd:
        _check_odd(act, label)
    try:
        _checked[act.fn] = _checked.get(act.fn, frozenset()) | {act.odd}
    except TypeError:
        pass
    return act


def _check_odd(act: Activation, label: str) -> None:
    """Raise `ValueError` when `act`, declared odd, has σ(−z) ≠ −σ(z) on `_ODD_PROBE` (evaluated as a
    batch (48, 2), as the shape probe is)."""
    z = jnp.asarray(_ODD_PROBE.reshape(-1, 2))
    plus = np.asarray(act.fn(z), dtype=float).ravel()
    minus = np.asarray(act.fn(-z), dtype=float).ravel()
    if not (np.all(np.isfinite(plus)) and np.all(np.isfinite(minus))):
        i = int(np.argmin(np.isfinite(plus) & np.isfinite(minus)))
        raise ValueError(f"{label} returned non-finite values at z = ±{_ODD_PROBE[i]:g} (σ(z) = {plus[i]}, "
                         f"σ(−z) = {minus[i]}) while its declaration odd=True was checked on [-12, 12].")
    gap = np.abs(plus + minus)
    scale = max(float(np.max(np.abs(plus))), np.finfo(float).tiny)
    if float(np.max(gap)) > _ODD_RTOL * scale:
        i = int(np.argmax(gap))
        raise ValueError(f"{label} is declared odd=True, but σ(−z) ≠ −σ(z): at z = {_ODD_PROBE[i]:g}, "
                         f"σ(z) = {plus[i]:.17g} and σ(−z) = {minus[i]:.17g}. Declare odd=False (the "
                         "default) unless σ(−z) = −σ(z) for every z: the population loss's series and "
                         "the sign-flip symmetry of hidden neurons rely on it.")


def get_activation(activation: str | Activation | Callable) -> Activation:
    """Return the `Activation` for a name, an `Activation`, or a user callable.

    A plain callable is wrapped as smooth and not odd; wrap it in `Activation` yourself to say
    otherwise.

    A callable (or an `Activation` not in `ACTIVATIONS`) is checked once on a probe batch
    (`check_activation`): it must keep its input's shape and return finite floating-point values.

    **Raises:** `ValueError` for an unknown name or an activation that fails the probe, `TypeError`
    for anything else.
    """
    if isinstance(activation, Activation):
        return check_activation(activation)
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
        return check_activation(Activation(name, activation, smooth=True, odd=False))
    raise TypeError(
        f"activation must be a name, an Activation or a callable, got {type(activation).__name__}."
    )
