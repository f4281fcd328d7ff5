"""Universality classes of activations ("A Theory of Saddle Escape in Deep Nonlinear Networks", 2026):
φ_σ(z) = z σ'(z) − σ(z) and the leading order of its Taylor series at 0.

Near z = 0, φ_σ(z) = Σ_k (k − 1) s_k z^k where σ(z) = Σ_k s_k z^k, so φ_σ(0) = −σ(0), the linear term is
always zero, the z² coefficient is σ''(0)/2 and the z³ coefficient σ'''(0)/3. The leading order sorts
activations into the paper's four classes: homogeneous (φ ≡ 0), quadratic (GELU, SiLU), cubic (tanh,
erf) and constant (σ(0) ≠ 0: sigmoid, softplus).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _deprecation
from ..activations import Activation, get_activation

#: The four classes of the paper, plus "higher" for an analytic φ_σ whose leading order is ≥ 4 (or that
#: is flat at 0 without vanishing), which the paper does not name.
ACTIVATION_CLASSES = ("homogeneous", "quadratic", "cubic", "constant", "higher")


def phi_sigma(activation: str | Activation | Callable) -> Callable:
    """φ_σ(z) = z σ'(z) − σ(z), elementwise, with σ' by forward-mode autodiff.

    **Arguments:** `activation`: a registry name, an `Activation` or an elementwise callable.

    **Returns:** a traceable function of an array z (any shape), returning φ_σ(z) of the same shape.
    """
    sigma = get_activation(activation).fn

    def phi(z):
        z = jnp.asarray(z, dtype=jnp.float64)
        s, ds = jax.jvp(sigma, (z,), (jnp.ones_like(z),))
        return z * ds - s

    return phi


def taylor_coefficients(fn: Callable, order: int, at: float = 0.0) -> np.ndarray:
    """Taylor coefficients c_k = f^{(k)}(at) / k!, k = 0 … order, of a scalar function, by nested
    forward-mode derivatives in one jitted call (exact up to rounding for the low orders used here)."""
    order = _checks.positive_int("order", order, minimum=0)

    def derivatives(z):
        out, f = [], lambda s: jnp.reshape(fn(jnp.reshape(s, ())), ())
        for _ in range(order + 1):
            out.append(f(z))
            f = (lambda g: lambda s: jax.jvp(g, (s,), (jnp.ones_like(s),))[1])(f)
        return jnp.stack(out)

    d = np.asarray(jax.jit(derivatives)(jnp.asarray(at, dtype=jnp.float64)))
    return d / np.array([math.factorial(k) for k in range(order + 1)], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class ActivationClass:
    """The universality class of an activation σ, from the leading behaviour of φ_σ at 0.

    **Fields:**

    - `activation`: the activation's name.
    - `kind`: "homogeneous" (φ ≡ 0), "quadratic" (φ ~ c z²), "cubic" (φ ~ c z³), "constant"
      (φ(0) = −σ(0) ≠ 0) or "higher" (leading order ≥ 4, or flat at 0 without vanishing).
    - `order`: the leading order q of φ_σ(z) ~ c z^q (None for homogeneous, or when flat).
    - `coefficient`: the leading coefficient c (0.0 for homogeneous).
    - `taylor`: the Taylor coefficients of φ_σ at 0, orders 0 … max_order (empty for non-smooth σ).
    - `smooth`: the registry's smoothness flag.
    - `note`: how the class was decided.
    """

    activation: str
    kind: str
    order: int | None
    coefficient: float
    taylor: tuple[float, ...]
    smooth: bool
    note: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    as_dict = _deprecation.renamed_function(to_dict, "as_dict")


def activation_class(activation: str | Activation | Callable, *, max_order: int = 4,
                     tol: float = 1e-10, grid_max: float = 4.0, n_grid: int = 801) -> ActivationClass:
    """Classify σ by the leading Taylor order of φ_σ(z) = z σ'(z) − σ(z) at z = 0.

    For a smooth σ (registry flag) the Taylor coefficients of φ_σ up to `max_order` come from nested
    autodiff; the first one above `tol` (relative to max(1, |σ'(0)|)) fixes the class: order 0 →
    "constant", 2 → "quadratic", 3 → "cubic", ≥ 4 → "higher". If all vanish, φ_σ is checked on a grid
    of `n_grid` points in [−grid_max, grid_max]: ≡ 0 → "homogeneous", otherwise "higher" (flat at 0).

    A non-smooth σ (e.g. ReLU) has no Taylor expansion at its kink; it is "homogeneous" if φ_σ vanishes
    on the grid with the points within 1e-6 of 0 removed (φ ≡ 0 almost everywhere), and a `ValueError`
    is raised otherwise.

    **Returns:** an `ActivationClass`.
    """
    act = get_activation(activation)
    max_order = _checks.positive_int("max_order", max_order, minimum=3)
    tol = _checks.positive("tol", tol)
    phi = phi_sigma(act)
    z = np.linspace(-grid_max, grid_max, n_grid)
    sig_scale = max(1.0, float(np.max(np.abs(np.asarray(act.fn(jnp.asarray(z)))))))
    if not act.smooth:
        zz = z[np.abs(z) > 1e-6]
        vals = np.asarray(phi(jnp.asarray(zz)))
        if np.max(np.abs(vals)) <= tol * sig_scale:
            return ActivationClass(act.name, "homogeneous", None, 0.0, (), False,
                                   "non-smooth: φ_σ = 0 on a grid away from the kink (a.e. identity)")
        raise ValueError(f"activation {act.name!r} is flagged non-smooth and φ_σ does not vanish away "
                         "from 0; it has no Taylor class. Flag it smooth if it is C^∞ near 0.")
    coeffs = taylor_coefficients(phi, max_order)
    dsig0 = abs(taylor_coefficients(act.fn, 1)[1])
    thresh = tol * max(1.0, dsig0)
    lead = next((k for k, c in enumerate(coeffs) if abs(c) > thresh), None)
    taylor = tuple(float(c) for c in coeffs)
    if lead is None:
        vals = np.asarray(phi(jnp.asarray(z)))
        if np.max(np.abs(vals)) <= tol * sig_scale:
            return ActivationClass(act.name, "homogeneous", None, 0.0, taylor, True,
                                   f"Taylor coefficients of φ_σ vanish to order {max_order} and φ_σ = 0 "
                                   "on the grid")
        return ActivationClass(act.name, "higher", None, 0.0, taylor, True,
                               f"Taylor coefficients vanish to order {max_order} but φ_σ ≠ 0 on the grid")
    kind = {0: "constant", 2: "quadratic", 3: "cubic"}.get(lead, "higher")
    if lead == 1:  # φ's linear coefficient is (1 − 1) s_1 = 0 identically; seeing one means a bug upstream
        raise RuntimeError(f"φ_σ of {act.name!r} has a linear Taylor term {coeffs[1]:.3g}; it must be 0.")
    return ActivationClass(act.name, kind, lead, float(coeffs[lead]), taylor, True,
                           f"leading Taylor order {lead} of φ_σ at 0 (|c| > {thresh:.1e})")
