"""Problem: a model, a training set and a loss convention, with L, ∇L, Hessians and R on flat θ.

Loss conventions (Maleknia & Sato, Sec. 2 and their reference code):

- "half_mse" (default): L(θ) = (1/2n) Σ_k ‖f(x_k; θ) − y_k‖²
- "mse":                L(θ) = (1/n)  Σ_k ‖f(x_k; θ) − y_k‖²

GD with step η on "mse" equals GD with step 2η on "half_mse". Gradient-flow time t and GD step k are
related by t = kη for the same convention.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks
from .data import Dataset, GaussianPopulation, Teacher
from .models import MLP

jax.config.update("jax_enable_x64", True)

__all__ = ["Problem", "LOSS_CONVENTIONS", "training_outputs"]

LOSS_CONVENTIONS = ("half_mse", "mse")


class Problem(eqx.Module):
    """The vector field −∇L of a training problem, with everything the analysis needs, in float64.

    **Arguments:**

    - `model`: an `MLP`.
    - `data`: a `Dataset` whose widths match the model.
    - `loss`: "half_mse" (default) or "mse".
    - `population`: a `GaussianPopulation` for R(θ); built automatically when the data set has a
      teacher (Gauss–Hermite for d_in ≤ 2, Monte Carlo otherwise).

    All methods take a flat θ of length `model.n_params` and are jitted. A `Problem` is a pytree whose
    arrays are leaves, so it can be passed into jitted code without recompiling for new data of the
    same shape.
    """

    model: MLP = eqx.field(static=True)
    loss_convention: str = eqx.field(static=True)
    population_method: str | None = eqx.field(static=True)
    x: jax.Array
    y: jax.Array
    pop_x: jax.Array | None
    pop_w: jax.Array | None
    pop_t: jax.Array | None
    meta: "_DataMeta" = eqx.field(static=True)

    def __init__(self, model: MLP, data: Dataset, loss: str = "half_mse",
                 population: GaussianPopulation | None = None):
        if not isinstance(model, MLP):
            raise TypeError(f"model must be a flowtools.MLP, got {type(model).__name__}.")
        if not isinstance(data, Dataset):
            raise TypeError(f"data must be a flowtools.Dataset, got {type(data).__name__}; "
                            "build one with Dataset(x, y) or load_xy(path).")
        if data.d_in != model.d_in or data.d_out != model.d_out:
            raise ValueError(
                f"data has d_in={data.d_in}, d_out={data.d_out} but the model expects "
                f"d_in={model.d_in}, d_out={model.d_out} (widths={model.widths})."
            )
        self.model = model
        self.loss_convention = _checks.choice("loss", loss, LOSS_CONVENTIONS)
        self.meta = _DataMeta(data.teacher, data.noise, data.name)
        self.x = jnp.asarray(data.x)
        self.y = jnp.asarray(data.y)
        if population is None and data.teacher is not None:
            population = GaussianPopulation.build(data.d_in)
        if population is not None and data.teacher is None:
            raise ValueError("population needs a data set with a teacher (Dataset.teacher).")
        if population is None:
            self.pop_x = self.pop_w = self.pop_t = None
            self.population_method = None
        else:
            self.pop_x = jnp.asarray(population.x)
            self.pop_w = jnp.asarray(population.weights)
            self.pop_t = jnp.asarray(data.teacher(population.x))
            self.population_method = population.method

    # ------------------------------------------------------------ pure parts
    @property
    def data(self) -> Dataset:
        """The training set as a `Dataset`."""
        return Dataset(np.asarray(self.x), np.asarray(self.y), self.teacher, self.meta.noise, self.meta.name)

    @property
    def teacher(self) -> Teacher | None:
        return self.meta.teacher

    def with_data(self, data: Dataset) -> "Problem":
        """The same model and loss convention on another data set."""
        return Problem(self.model, data, self.loss_convention)

    def with_loss(self, loss: str) -> "Problem":
        """The same model and data under another loss convention."""
        return Problem(self.model, self.data, loss)

    @property
    def n_params(self) -> int:
        return self.model.n_params

    @property
    def loss_scale(self) -> float:
        """c in L = c Σ‖f − y‖²: 1/(2n) for half_mse, 1/n for mse."""
        n = self.x.shape[0]
        return 1.0 / (2 * n) if self.loss_convention == "half_mse" else 1.0 / n

    @property
    def has_population(self) -> bool:
        return self.pop_x is not None

    def loss_fn(self, theta):
        """L(θ), traceable (use inside your own jitted code)."""
        r = self.model.apply(theta, self.x) - self.y
        return self.loss_scale * jnp.sum(r * r)

    def batch_loss_fn(self, theta, idx):
        """L on the samples `idx` with the same convention (the stochastic-gradient loss)."""
        r = self.model.apply(theta, self.x[idx]) - self.y[idx]
        c = 0.5 if self.loss_convention == "half_mse" else 1.0
        return c * jnp.mean(jnp.sum(r * r, axis=-1))

    def grad_fn(self, theta):
        return jax.grad(self.loss_fn)(theta)

    def hvp_fn(self, theta, v):
        return jax.jvp(self.grad_fn, (theta,), (v,))[1]

    def hessian_fn(self, theta):
        return jax.hessian(self.loss_fn)(theta)

    def gen_error_fn(self, theta):
        """R(θ) = E_x ‖f(x; θ) − T(x)‖² (traceable); needs a population."""
        r = self.model.apply(theta, self.pop_x) - self.pop_t
        return jnp.sum(self.pop_w * jnp.sum(r * r, axis=-1))

    # ---------------------------------------------------------- jitted API
    def _theta(self, theta):
        return jnp.asarray(_checks.theta_vector("theta", theta, self.n_params))

    def loss(self, theta) -> float:
        """Training loss L(θ)."""
        return float(_jit_loss(self, self._theta(theta)))

    def grad(self, theta) -> np.ndarray:
        """∇L(θ)."""
        return np.asarray(_jit_grad(self, self._theta(theta)))

    def value_and_grad(self, theta):
        v, g = _jit_value_and_grad(self, self._theta(theta))
        return float(v), np.asarray(g)

    def grad_norm(self, theta) -> float:
        return float(np.linalg.norm(self.grad(theta)))

    def hvp(self, theta, v) -> np.ndarray:
        """Hessian-vector product H(θ) v by forward-over-reverse differentiation."""
        v = jnp.asarray(_checks.theta_vector("v", v, self.n_params))
        return np.asarray(_jit_hvp(self, self._theta(theta), v))

    def hessian(self, theta) -> np.ndarray:
        """The dense Hessian ∇²L(θ), shape (n_params, n_params)."""
        return np.asarray(_jit_hessian(self, self._theta(theta)))

    def gen_error(self, theta) -> float:
        """Population error R(θ) under x ~ N(0, I). Raises if the data set has no teacher."""
        self._require_population()
        return float(_jit_gen_error(self, self._theta(theta)))

    def gen_error_stderr(self, theta) -> float:
        """Standard error of R(θ): 0 for Gauss–Hermite, the Monte Carlo standard error otherwise."""
        self._require_population()
        if self.population_method == "gauss_hermite":
            return 0.0
        r = np.asarray(self.model.apply(self._theta(theta), self.pop_x) - self.pop_t)
        sq = np.sum(r * r, axis=-1)
        return float(np.std(sq, ddof=1) / np.sqrt(sq.size))

    def predict(self, theta, x) -> np.ndarray:
        """Network outputs f(x; θ), shape (n, d_out)."""
        x = _checks.finite_array("x", x)
        x = x[:, None] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[1] != self.model.d_in:
            raise ValueError(f"x must have shape (n, {self.model.d_in}), got {x.shape}.")
        return np.asarray(_jit_apply(self, self._theta(theta), jnp.asarray(x)))

    def _require_population(self):
        if not self.has_population:
            raise ValueError("gen_error needs a data set with a teacher; build it with "
                             "teacher_dataset(...) or pass teacher= to Dataset / load_xy.")

    def __repr__(self):
        return (f"Problem({self.model!r}, n={self.x.shape[0]}, loss={self.loss_convention!r}, "
                f"population={self.population_method})")


class _DataMeta:
    """Where the data came from (teacher, noise level, name). Not used by any computation: the teacher
    enters only through the precomputed `pop_t`. It compares equal to any other `_DataMeta`, so that
    problems differing only in their data (e.g. τ = 0.2 and τ = 0 on the same x) share compiled code."""

    __slots__ = ("teacher", "noise", "name")

    def __init__(self, teacher, noise, name):
        self.teacher, self.noise, self.name = teacher, noise, name

    def __eq__(self, other):
        return isinstance(other, _DataMeta)

    def __hash__(self):
        return 0


def training_outputs(problem: "Problem", thetas) -> np.ndarray:
    """f(x_k; θ) on the training inputs for each row of `thetas`, shape (m, n, d_out), in one jitted call.

    Rows are padded to a power of two so that batches of similar size share one compiled kernel.
    """
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    m = thetas.shape[0]
    size = 1 << max(0, (m - 1).bit_length())
    padded = np.concatenate([thetas, np.repeat(thetas[-1:], size - m, axis=0)]) if size > m else thetas
    return np.asarray(_jit_batch_outputs(problem, jnp.asarray(padded)))[:m]


@eqx.filter_jit
def _jit_batch_outputs(problem, thetas):
    return jax.vmap(lambda th: problem.model.apply(th, problem.x))(thetas)


@eqx.filter_jit
def _jit_loss(problem, theta):
    return problem.loss_fn(theta)


@eqx.filter_jit
def _jit_grad(problem, theta):
    return problem.grad_fn(theta)


@eqx.filter_jit
def _jit_value_and_grad(problem, theta):
    return jax.value_and_grad(problem.loss_fn)(theta)


@eqx.filter_jit
def _jit_hvp(problem, theta, v):
    return problem.hvp_fn(theta, v)


@eqx.filter_jit
def _jit_hessian(problem, theta):
    return problem.hessian_fn(theta)


@eqx.filter_jit
def _jit_gen_error(problem, theta):
    return problem.gen_error_fn(theta)


@eqx.filter_jit
def _jit_apply(problem, theta, x):
    return problem.model.apply(theta, x)
