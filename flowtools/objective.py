"""A plain objective E(θ) as a `Problem`: flows, critical points, spectra and paths on any energy.

`Problem` speaks of a model, data and a loss. A differentiable function E of a flat θ fits it as a data
source whose expectation *is* E: `Objective.data_loss` ignores the model's outputs and returns E(θ), under
the "mse" convention (weight 1), so L(θ) = E(θ) (+ (λ/2)‖θ‖² with weight decay).

Function-space tools (fingerprints, `function_distance`, the nodes of a saddle graph) compare networks by
their outputs. A plain objective has no outputs, so its "function" is θ itself: the model is
f(θ, x) = θ on a single input, and every function-space distance is the Euclidean distance ‖θ_a − θ_b‖.

`muller_brown` is the standard two-dimensional test energy of transition-path methods (Müller & Brown,
Theor. Chim. Acta 53, 75, 1979).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .problem import DataSource

__all__ = ["Objective", "objective_model", "muller_brown", "MULLER_BROWN"]


def _theta_as_outputs(theta, x):
    """f(θ, x) = θ at every input: the "function" of a plain objective is its parameter vector."""
    return jnp.broadcast_to(theta, (x.shape[0], theta.shape[0]))


def objective_model(n_params: int):
    """The `FunctionModel` of an objective with `n_params` parameters (outputs = θ, one input)."""
    from .models import FunctionModel

    return FunctionModel(_theta_as_outputs, n_params, 1, n_params, name="objective")


class Objective(DataSource):
    """A data source whose loss is a given energy E(θ), traceable; see the module notes.

    `x` is one input (zeros, shape (1, 1)) and `y` zeros of shape (1, n_params), so that the model's
    outputs (θ itself) have somewhere to be compared. `fn` is static: problems built on the same
    function share compiled code.
    """

    x: jax.Array
    y: jax.Array
    fn: Callable = eqx.field(static=True)

    def __init__(self, fn: Callable, n_params: int):
        self.fn = fn
        self.x = jnp.zeros((1, 1))
        self.y = jnp.zeros((1, n_params))

    def data_loss(self, model, theta, loss: str):
        return jnp.asarray(self.fn(theta), dtype=jnp.float64)

    def check(self, model, loss: str) -> None:
        if loss != "mse":
            raise ValueError(f"an Objective is the loss itself and takes loss='mse' (weight 1, L = E); got "
                             f"loss={loss!r}. Build it with Problem.from_loss(fn, n_params).")


def check_energy(fn, n_params: int) -> None:
    """Raise a clear error unless fn(θ) traces to a real scalar for θ of shape (n_params,)."""
    if not callable(fn):
        raise TypeError(f"fn must be a callable E(theta) returning a scalar, got {type(fn).__name__}.")
    try:
        out = jax.eval_shape(fn, jax.ShapeDtypeStruct((n_params,), jnp.float64))
    except Exception as err:  # the user's function could not be traced at this shape
        raise ValueError(f"fn(theta) failed for theta of shape ({n_params},): {type(err).__name__}: "
                         f"{err}. Write fn in jax.numpy on a flat theta of length n_params.") from None
    shape = getattr(out, "shape", None)
    if shape != ():
        raise ValueError(f"fn(theta) must return a scalar for theta of shape ({n_params},); it returned "
                         f"shape {shape}. Sum or reduce inside fn.")
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"fn(theta) must return a floating-point scalar, got dtype {out.dtype}.")


# ---------------------------------------------------------------------------------- test energies
#: The constants of the Müller–Brown potential (Müller & Brown 1979, Table 1 of most later uses):
#: E(x, y) = Σ_k A_k exp(a_k (x − x0_k)² + b_k (x − x0_k)(y − y0_k) + c_k (y − y0_k)²).
MULLER_BROWN = dict(
    A=np.array([-200.0, -100.0, -170.0, 15.0]),
    a=np.array([-1.0, -1.0, -6.5, 0.7]),
    b=np.array([0.0, 0.0, 11.0, 0.6]),
    c=np.array([-10.0, -10.0, -6.5, 0.7]),
    x0=np.array([1.0, 0.0, -0.5, -1.0]),
    y0=np.array([0.0, 0.5, 1.5, 1.0]),
)


def muller_brown(theta):
    """The Müller–Brown potential at θ = (x, y) (traceable). Three minima and two index-1 saddles lie
    in the window [−1.5, 1.2] × [−0.2, 2]."""
    p = MULLER_BROWN
    dx = theta[0] - p["x0"]
    dy = theta[1] - p["y0"]
    return jnp.sum(p["A"] * jnp.exp(p["a"] * dx * dx + p["b"] * dx * dy + p["c"] * dy * dy))
