"""Data sources: where the expectation E_(x,y) ℓ(f(x; θ), y) of the loss is taken.

`DataSource` is the interface (a population source such as `flowtools.population.GaussianInputs`
subclasses it); `FiniteData` is a finite sample, whose expectation is the sample mean.
"""

from __future__ import annotations

import equinox as eqx
import jax

from ._losses import mean_loss


class DataSource(eqx.Module):
    """Where the loss's expectation E_(x,y) ℓ(f(x; θ), y) is taken. Subclass it to add a source.

    A source provides:

    - `x`, `y`: inputs (n, d_in) and targets (n, d_out) on which the network's function is compared
      (training inputs for a finite set; a fixed probe sample for a population source). Itineraries
      use them to identify critical sets by their function.
    - `data_loss(model, theta, loss)`: the expectation, traceable, on the model's full θ. `Problem`
      calls it with loss "mse" (ℓ = ‖f − y‖²) for both squared-error conventions and applies the ½ of
      "half_mse" itself, as data, or with "cross_entropy".
    - `gen_error(model, theta)`: R(θ) = E_x‖f(x; θ) − T(x)‖², traceable, or None when the source has
      no teacher (then `has_gen_error` is False).

    Array fields are pytree leaves, so a new source of the same shapes does not recompile.
    """

    @property
    def d_in(self) -> int:
        return self.x.shape[1]

    @property
    def d_out(self) -> int:
        return self.y.shape[1]

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def data_loss(self, model, theta, loss: str):
        raise NotImplementedError(f"{type(self).__name__} must define data_loss(model, theta, loss).")

    has_gen_error = False

    def gen_error(self, model, theta):
        return None

    def check(self, model, loss: str) -> None:
        """Raise a clear error if this source cannot serve `model` under `loss` (called by `Problem`)."""


class FiniteData(DataSource):
    """A finite sample: L = (1/n) Σ_k ℓ(f(x_k; θ), y_k)."""

    x: jax.Array
    y: jax.Array

    def data_loss(self, model, theta, loss: str):
        return mean_loss(model.apply(theta, self.x), self.y, loss)
