"""The population (infinite-data) loss: Gaussian inputs x ~ N(0, I_d) labelled by a teacher network.

`GaussianInputs` is a `DataSource`: with it a `Problem` has L(θ) = ½ E_x ‖f(x; θ) − T(x)‖² (half_mse,
the default; "mse" drops the ½) and R(θ) = E_x ‖f(x; θ) − T(x)‖², both exact for a depth-2 student
and a depth-2 teacher in any input dimension, by the reduction to 2-D Gaussian expectations of
`flowtools.gaussian` (Saad & Solla 1995; Goldt et al. 2019). ∇L, Hessian-vector products and the
Hessian come by autodiff through those expectations, so flows, GD, critical points, spectra,
itineraries, graphs and escape times work on it unchanged.

The source also carries a fixed probe sample x (seeded) with the teacher's outputs y: the network's
function is compared there (itineraries identify critical sets by their function). It never enters L.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, gaussian
from .data import Teacher, as_teacher
from .models import MLP
from .problem import DataSource

__all__ = ["GaussianInputs"]


#: `GaussianInputs(method=...)`: the rules for pairs of units without a closed form (`flowtools.gaussian`)
METHODS = ("auto", "series", "graded", "gauss_hermite")


class GaussianInputs(DataSource):
    """Inputs x ~ N(0, I_{d_in}) with targets T(x) from a depth-2 teacher network: the population loss.

    **Arguments:**

    - `teacher`: a (MLP, θ) pair or a `Teacher` built with `Teacher.from_network`; the MLP must have
      widths (d_in, k, d_out).
    - `n_probe`: size of the probe sample on which functions are compared (not used by L or R).
    - `seed`: seed of the probe sample.
    - `method`: "auto" (closed forms, else the n_nodes² Gauss–Hermite rule: fast, off by 3e-11 at tanh
      weight norm 1 and 1e-5 at norm 2), "graded" (closed forms, else a graded Gauss–Legendre rule
      accurate to 2e-15 at every weight norm up to 10, 23–150× slower and memory-hungry in ensembles),
      "series" (closed forms, else the Hermite series in the correlation with a certified tail, falling
      back to the graded rule where the tail is not small enough; `flowtools.gaussian`), or
      "gauss_hermite" (the Gauss–Hermite rule everywhere).
    - `n_nodes`: nodes per axis of `method="gauss_hermite"` and of the half-line rule for ReLU with
      biases (`flowtools.gaussian`).

    Use it as the data of a `Problem`: `Problem(student, GaussianInputs((T, θ_T)))`, with a depth-2
    `MLP` student and loss "half_mse" (default) or "mse".
    """

    x: jax.Array
    y: jax.Array
    teacher_theta: jax.Array
    teacher_model: MLP = eqx.field(static=True)
    n_nodes: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    has_gen_error = True

    def __init__(self, teacher, *, n_probe: int = 256, seed: int = 0, n_nodes: int = gaussian.DEFAULT_NODES,
                 method: str = "auto"):
        if isinstance(teacher, tuple) and len(teacher) == 2 and isinstance(teacher[0], MLP):
            teacher = as_teacher(teacher)
        if not isinstance(teacher, Teacher) or teacher.model is None:
            raise TypeError("teacher must be a (MLP, theta) pair or a Teacher.from_network(...); the population "
                            f"loss needs the teacher's network, got {type(teacher).__name__}.")
        if teacher.model.n_layers != 2:
            raise ValueError(f"teacher must be a depth-2 MLP (widths (d_in, k, d_out)), got "
                             f"widths={teacher.model.widths}; for deeper teachers train on a finite "
                             "teacher_dataset.")
        n_probe = _checks.positive_int("n_probe", n_probe)
        self.n_nodes = _checks.positive_int("n_nodes", n_nodes, minimum=2)
        self.method = _checks.choice("method", method, METHODS)
        rng = np.random.default_rng(_checks.positive_int("seed", seed, minimum=0))
        x = rng.standard_normal((n_probe, teacher.d_in))
        self.x = jnp.asarray(x)
        self.y = jnp.asarray(teacher(x))
        self.teacher_model = teacher.model
        self.teacher_theta = jnp.asarray(teacher.theta, dtype=jnp.float64)

    def check(self, model, loss: str) -> None:
        if not isinstance(model, MLP) or model.n_layers != 2:
            raise ValueError(f"GaussianInputs needs a depth-2 MLP student (widths (d_in, k, d_out)), got "
                             f"{model!r}; deeper or custom models need a finite data set.")
        if loss not in ("half_mse", "mse"):
            raise ValueError(f"GaussianInputs supports loss 'half_mse' or 'mse' (squared error against the "
                             f"teacher), got loss={loss!r}.")

    def gen_error(self, model, theta):
        return gaussian.population_risk(model, theta, self.teacher_model, self.teacher_theta,
                                        n_nodes=self.n_nodes, method=self.method)

    def data_loss(self, model, theta, loss: str):
        return (0.5 if loss == "half_mse" else 1.0) * self.gen_error(model, theta)

    def __repr__(self):
        return f"GaussianInputs(teacher={self.teacher_model!r}, n_probe={self.x.shape[0]})"
