"""The Problem: a model, a data source and a loss as the vector field −∇L on a flat θ, in float64.

L(θ) = E ℓ(f(x; θ), y) + (λ/2)‖θ‖² (Maleknia & Sato, Sec. 2 for ℓ = ½‖f − y‖²), with ∇L, Hessian-vector
products, the dense Hessian and R(θ), on the free coordinates when parameters are frozen.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, gaussian
from ..data import Dataset, GaussianQuadrature, Teacher
from ..models import MLP, FunctionModel
from . import _frozen
from ._batch import (dense_hessian_fn, jit_apply, jit_gen_error, jit_grad, jit_hessian, jit_hvp, jit_loss,
                     jit_test_accuracy, jit_test_loss, jit_value_and_grad)
from ._losses import LOSSES, accuracy, sample_losses
from ._sources import DataSource, FiniteData


class Problem(eqx.Module):
    """The vector field −∇L of a training problem, with everything the analysis needs, in float64.

    **Arguments:**

    - `model`: an `MLP` or a `FunctionModel` (see `Problem.from_function` for a plain function).
    - `data`: a `Dataset` whose widths match the model, or a `DataSource`.
    - `loss`: "half_mse" (default), "mse" or "cross_entropy".
    - `population`: a `GaussianQuadrature` for R(θ); chosen automatically when the data set has a
      teacher: Gauss–Hermite for d_in ≤ 2; for d_in > 2 the exact reduction to 2-D Gaussian integrals
      (`flowtools.gaussian`, method "exact") when the model is a depth-2 `MLP` and the teacher a
      depth-2 network (`Teacher.from_network` or a (MLP, θ) pair), Monte Carlo otherwise.
    - `weight_decay`: λ ≥ 0; adds (λ/2)‖θ‖² over the model's full θ (frozen entries add a constant).
    - `frozen`: parameters held fixed: a boolean mask over the model's θ (True = frozen), an integer
      index array, or (for an `MLP`) group names "W2", "b1", "layer2" (= W2 and b2), or a list of them.
    - `frozen_at`: the model's full θ whose frozen entries are held (required with `frozen`).
    - `test_data`: a held-out `Dataset`; `test_loss` / `test_accuracy` evaluate it, and runs record
      them along the trajectory. It never enters L.
    - `symmetry`: an `InputSymmetry`, the permutations (and sign flips) of input coordinates that leave
      the data distribution and the teacher unchanged; critical sets, attractors and basin fractions are
      then identified up to it (`flowtools.landscape.input_symmetry`). Checked on seeded random points.

    All methods take the state θ (the free coordinates; all of θ when nothing is frozen) of length
    `n_params` and are jitted. A `Problem` is a pytree whose arrays are leaves, so it can be passed
    into jitted code without recompiling for new data of the same shape — or another squared-error
    convention: "half_mse" and "mse" are one loss family whose weight `loss_weight` (½ or 1) is a
    leaf, so a flow compiled for one serves the other.
    """

    model: MLP | FunctionModel = eqx.field(static=True)
    loss_family: str = eqx.field(static=True)  # "squared" or "cross_entropy": what the code computes
    loss_weight: jax.Array  # ℓ = w‖f − y‖²: ½ for half_mse, 1 for mse (and 1 for cross_entropy)
    loss_name: "_Label" = eqx.field(static=True)  # the convention's name; not used by any computation
    population_method: str | None = eqx.field(static=True)
    source: DataSource
    weight_decay: jax.Array
    frozen_base: jax.Array | None
    test: FiniteData | None
    pop_x: jax.Array | None
    pop_w: jax.Array | None
    pop_t: jax.Array | None
    pop_model: MLP | None = eqx.field(static=True)  # the teacher network of an exact R
    free: "_frozen.Index | None" = eqx.field(static=True)
    meta: "_DataMeta" = eqx.field(static=True)

    def __init__(self, model, data, loss: str = "half_mse",
                 population: GaussianQuadrature | None = None, *, weight_decay: float = 0.0,
                 frozen=None, frozen_at=None, test_data: Dataset | None = None, symmetry=None):
        if not isinstance(model, (MLP, FunctionModel)):
            raise TypeError(f"model must be a flowtools.MLP or a flowtools.FunctionModel, got "
                            f"{type(model).__name__}; wrap a function f(theta, x) with "
                            "Problem.from_function or FunctionModel.")
        self.model = model
        loss = _checks.choice("loss", loss, LOSSES)
        self.loss_name = _Label(loss)
        self.loss_family = "cross_entropy" if loss == "cross_entropy" else "squared"
        self.loss_weight = jnp.asarray(_WEIGHTS[loss], dtype=jnp.float64)
        if self.loss_convention == "cross_entropy" and model.d_out < 2:
            raise ValueError(f"loss='cross_entropy' needs a model with d_out ≥ 2 outputs (one logit per "
                             f"class), got d_out={model.d_out}; for two classes use d_out=2.")
        wd = float(weight_decay) if isinstance(weight_decay, (int, float, np.floating, np.integer)) \
            and not isinstance(weight_decay, bool) else None
        if wd is None or not math.isfinite(wd) or wd < 0:
            raise ValueError(f"weight_decay must be a finite number ≥ 0 (λ in (λ/2)‖θ‖²), "
                             f"got {weight_decay!r}.")
        self.weight_decay = jnp.asarray(wd, dtype=jnp.float64)

        if isinstance(data, DataSource):
            if population is not None:
                raise ValueError("population applies to a Dataset with a teacher; a DataSource brings "
                                 "its own gen_error.")
            self._check_widths(data.d_in, data.d_out, "data", labels_ok=False)
            data.check(model, self.loss_convention)
            self.source = data
            self.meta = _DataMeta(None, None, type(data).__name__, None)
            self.pop_x = self.pop_w = self.pop_t = None
            self.population_method = "source" if data.has_gen_error else None
        elif isinstance(data, Dataset):
            y = self._targets(data, "data")
            self.source = FiniteData(jnp.asarray(data.x), jnp.asarray(y))
            # d_in ≤ 2 keeps the tensor Gauss–Hermite rule (1000 nodes in 1-D, more accurate for tanh
            # than the 2-D pair rule); above it, depth-2 nets get R by the 2-D reduction.
            exact = population is None and data.d_in > 2 and gaussian.has_exact_risk(model, data.teacher)
            if population is None and data.teacher is not None and not exact:
                population = GaussianQuadrature.build(data.d_in)
                custom = None
            else:
                custom = population
            if population is not None and data.teacher is None:
                raise ValueError("population needs a data set with a teacher (Dataset.teacher).")
            self.meta = _DataMeta(data.teacher, data.noise, data.name, custom)
            if exact:
                # R by the 2-D reduction (flowtools.gaussian): no sample, no sampling error.
                self.pop_x = self.pop_w = None
                self.pop_t = jnp.asarray(data.teacher.theta)
                self.pop_model = data.teacher.model
                self.population_method = "exact"
            elif population is None:
                self.pop_x = self.pop_w = self.pop_t = None
                self.population_method = None
            else:
                if population.x.shape[1] != data.d_in:
                    raise ValueError(f"population has d_in={population.x.shape[1]} but the data has "
                                     f"d_in={data.d_in}.")
                self.pop_x = jnp.asarray(population.x)
                self.pop_w = jnp.asarray(population.weights)
                self.pop_t = jnp.asarray(data.teacher(population.x))
                self.population_method = population.method
        else:
            raise TypeError(f"data must be a flowtools.Dataset or a DataSource, got {type(data).__name__}; "
                            "build one with Dataset(x, y) or load_xy(path).")

        if test_data is None:
            self.test = None
        elif isinstance(test_data, Dataset):
            self._check_widths(test_data.d_in, test_data.d_out, "test_data")
            y_test = self._targets(test_data, "test_data")
            self.test = FiniteData(jnp.asarray(test_data.x), jnp.asarray(y_test))
        else:
            raise TypeError(f"test_data must be a flowtools.Dataset or None, got {type(test_data).__name__}.")

        if not hasattr(self, "pop_model"):
            self.pop_model = None
        self.free, self.frozen_base = _frozen.frozen(model, frozen, frozen_at)
        if symmetry is not None:
            from ..landscape.input_symmetry import check_symmetry

            check_symmetry(self, symmetry)
            self.meta.symmetry = symmetry

    @property
    def loss_convention(self) -> str:
        """The loss: "half_mse", "mse" or "cross_entropy"."""
        return self.loss_name.value

    # ------------------------------------------------------------ construction helpers
    def _check_widths(self, d_in, d_out, name, labels_ok=True):
        m = self.model
        ok_out = d_out == m.d_out or (labels_ok and self.loss_convention == "cross_entropy" and d_out == 1)
        if d_in != m.d_in or not ok_out:
            widths = f" (widths={m.widths})" if isinstance(m, MLP) else ""
            raise ValueError(f"{name} has d_in={d_in}, d_out={d_out} but the model expects "
                             f"d_in={m.d_in}, d_out={m.d_out}{widths}.")

    def _targets(self, data: Dataset, name: str) -> np.ndarray:
        """Targets as used by the loss: integer labels become one-hot rows for cross-entropy."""
        self._check_widths(data.d_in, data.d_out, name)
        y = np.asarray(data.y, dtype=np.float64)
        if self.loss_convention != "cross_entropy":
            return y
        k = self.model.d_out
        if y.shape[1] == 1:
            labels = y[:, 0]
            bad = (labels != np.round(labels)) | (labels < 0) | (labels > k - 1)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"{name}.y holds integer class labels for cross_entropy, which must lie "
                                 f"in 0 … {k - 1} (d_out={k}); row {i} is {float(labels[i]):g}.")
            return np.eye(k)[labels.astype(np.int64)]
        if (y < 0).any() or not np.allclose(y.sum(axis=1), 1.0, rtol=0, atol=1e-12):
            raise ValueError(f"{name}.y for cross_entropy must be one column of integer labels or rows of "
                             f"class probabilities (≥ 0, summing to 1, e.g. one-hot) of width {k}.")
        return y

    @classmethod
    def from_function(cls, fn: Callable, theta0_or_n_params, data, loss: str = "half_mse", *,
                      d_out: int | None = None, name: str | None = None, **kwargs) -> "Problem":
        """A Problem on your own model f(θ, x) (jax.numpy, θ flat of length n_params).

        `theta0_or_n_params` is an initial θ (its length sets n_params) or the number of parameters.
        `d_in` is read from the data; `d_out` too, unless given (cross-entropy with integer labels
        needs it). Other keywords go to `Problem`.
        """
        if isinstance(theta0_or_n_params, (int, np.integer)) and not isinstance(theta0_or_n_params, bool):
            n = int(theta0_or_n_params)
        else:
            n = np.asarray(theta0_or_n_params).size
        d_in = data.d_in if isinstance(data, (Dataset, DataSource)) else None
        if d_in is None:
            raise TypeError(f"data must be a flowtools.Dataset or a DataSource, got {type(data).__name__}.")
        d_out = data.d_out if d_out is None else d_out
        return cls(FunctionModel(fn, n, d_in, d_out, name), data, loss, **kwargs)

    @classmethod
    def from_loss(cls, fn: Callable, n_params: int, **kwargs) -> "Problem":
        """A Problem whose loss is a plain energy: L(θ) = fn(θ), fn a twice-differentiable jax.numpy
        function of a flat θ of length `n_params` returning a scalar.

        Flows, critical points, spectra, itineraries and transition paths then work on any energy.
        The problem's "function" (fingerprints, `function_distance`) is θ itself, so function-space
        distances are Euclidean distances in θ (`flowtools.objective`). Other keywords
        (`weight_decay`, `frozen`, `frozen_at`) go to `Problem`.
        """
        from ..objective import Objective, check_energy, objective_model

        n = _checks.positive_int("n_params", n_params)
        check_energy(fn, n)
        return cls(objective_model(n), Objective(fn, n), "mse", **kwargs)

    def _replace(self, **changes) -> "Problem":
        kw = dict(model=self.model, data=self.data if isinstance(self.source, FiniteData) else self.source,
                  loss=self.loss_convention, population=self.meta.population,
                  weight_decay=float(self.weight_decay), frozen=self.frozen_mask if self.free else None,
                  frozen_at=None if self.frozen_base is None else np.asarray(self.frozen_base),
                  test_data=self.test_data, symmetry=self.symmetry)
        kw.update(changes)
        if kw["population"] is not None and isinstance(kw["data"], Dataset) and kw["data"].teacher is None:
            kw["population"] = None  # the new data has no teacher: there is no R to compute
        return Problem(kw.pop("model"), kw.pop("data"), kw.pop("loss"), kw.pop("population"), **kw)

    def with_data(self, data) -> "Problem":
        """The same model, loss, weight decay, frozen set, population rule and test set on other data."""
        return self._replace(data=data)

    def with_loss(self, loss: str) -> "Problem":
        """The same model and data (and everything else) under another loss."""
        return self._replace(loss=loss)

    def with_weight_decay(self, weight_decay: float) -> "Problem":
        return self._replace(weight_decay=weight_decay)

    def with_symmetry(self, symmetry) -> "Problem":
        """The same problem with a declared input symmetry (an `InputSymmetry`, or None for none)."""
        return self._replace(symmetry=symmetry)

    @property
    def symmetry(self):
        """The declared `InputSymmetry` (None: the network's own symmetries only)."""
        return self.meta.symmetry

    def with_test_data(self, test_data: Dataset | None) -> "Problem":
        return self._replace(test_data=test_data)

    def freeze(self, frozen, at) -> "Problem":
        """The same problem with the parameters `frozen` (mask, indices or MLP group names) held at the
        entries of `at` (a full θ). Replaces any earlier frozen set."""
        return self._replace(frozen=frozen, frozen_at=at)

    @property
    def loss_lower_bound(self) -> float | None:
        """A lower bound of L attained by a perfect fit: 0 for the built-in losses on finite data or on the
        Gaussian population (squared errors, cross-entropy, weight decay are all ≥ 0); None for an energy
        of your own (`from_loss`) or a data source with its own loss, where nothing bounds L."""
        from ..population import GaussianInputs

        return 0.0 if isinstance(self.source, (FiniteData, GaussianInputs)) else None

    # ------------------------------------------------------------ data views
    @property
    def x(self):
        """Inputs on which the network's function is compared (the training inputs of a finite set)."""
        return self.source.x

    @property
    def y(self):
        """Targets at `x` (one-hot rows for cross-entropy with integer labels)."""
        return self.source.y

    @property
    def data(self) -> Dataset:
        """The training set as a `Dataset` (one-hot targets for cross-entropy)."""
        if not isinstance(self.source, FiniteData):
            raise ValueError(f"this problem's data source is a {type(self.source).__name__}, not a finite "
                             "Dataset; use problem.source.")
        return Dataset(np.asarray(self.x), np.asarray(self.y), self.teacher, self.meta.noise, self.meta.name)

    @property
    def test_data(self) -> Dataset | None:
        return None if self.test is None else Dataset(np.asarray(self.test.x), np.asarray(self.test.y),
                                                      name="test")

    @property
    def teacher(self) -> Teacher | None:
        return self.meta.teacher

    @property
    def is_mlp(self) -> bool:
        return isinstance(self.model, MLP)

    @property
    def is_classification(self) -> bool:
        """True for cross-entropy, and for squared error on one-hot targets (d_out ≥ 2)."""
        if self.loss_convention == "cross_entropy":
            return True
        if self.model.d_out < 2 or not isinstance(self.source, FiniteData):
            return False
        y = np.asarray(self.y)
        return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))

    # ------------------------------------------------------------ frozen parameters
    @property
    def n_params(self) -> int:
        """Length of the state θ: the free coordinates (all of the model's θ when nothing is frozen)."""
        return self.model.n_params if self.free is None else self.free.size

    @property
    def frozen_mask(self) -> np.ndarray:
        """Boolean mask over the model's full θ: True where a parameter is frozen."""
        mask = np.zeros(self.model.n_params, dtype=bool)
        if self.free is not None:
            mask[:] = True
            mask[self.free.index] = False
        return mask

    @property
    def param_names(self) -> list[str]:
        """Names of the state's coordinates (MLP names; θ[i] for a FunctionModel)."""
        names = self.model.param_names if self.is_mlp else [f"θ[{i}]" for i in range(self.model.n_params)]
        return names if self.free is None else [names[i] for i in self.free.index]

    def full_theta_fn(self, theta):
        """The model's full θ for a state θ (traceable)."""
        if self.free is None:
            return theta
        return self.frozen_base.at[self.free.index].set(theta)

    def full_theta(self, theta) -> np.ndarray:
        """The model's full θ for a state θ: the free coordinates placed among the frozen values."""
        theta = self._theta(theta)
        return np.asarray(self.full_theta_fn(theta))

    def free_theta(self, theta_full) -> np.ndarray:
        """The state (free coordinates) of a full θ; the frozen entries of `theta_full` are dropped."""
        theta_full = _checks.theta_vector("theta_full", theta_full, self.model.n_params)
        return theta_full if self.free is None else theta_full[self.free.index]

    def require_mlp(self, what: str) -> MLP:
        """The model, for code that works on an MLP's own flat θ; a clear error when the model is not an
        `MLP`, when parameters are frozen, or when the loss is not squared error."""
        if not self.is_mlp:
            raise TypeError(f"{what} needs an MLP model; this problem's model is {self.model!r}.")
        if self.free is not None:
            raise TypeError(f"{what} needs a problem without frozen parameters.")
        if self.loss_convention == "cross_entropy":
            raise ValueError(f"{what} is derived for squared error; this problem uses cross_entropy.")
        return self.model

    def mlp_theta(self, theta, what: str = "this operation") -> tuple[MLP, np.ndarray]:
        """(MLP, full θ) for symmetry-aware code; a clear error when the model is not an `MLP`."""
        if not self.is_mlp:
            raise TypeError(f"{what} needs an MLP model (neurons, permutations, sign flips); this "
                            f"problem's model is {self.model!r}.")
        return self.model, self.full_theta(theta)

    # ------------------------------------------------------------ traceable parts
    @property
    def loss_scale(self) -> float:
        """c in L = c Σ‖f − y‖²: 1/(2n) for half_mse, 1/n for mse (squared error on finite data only)."""
        if self.loss_family != "squared" or not isinstance(self.source, FiniteData):
            raise ValueError("loss_scale is defined for squared error on a finite data set; this problem "
                             f"uses loss={self.loss_convention!r} on a {type(self.source).__name__}.")
        # The traced weight, never the (static, equal-comparing) convention name: inside a compiled
        # function the name is that of whichever convention was traced first.
        return self.loss_weight / self.x.shape[0]

    @property
    def has_population(self) -> bool:
        return self.pop_x is not None or self.population_method in ("source", "exact")

    def apply_fn(self, theta, x):
        """Network outputs f(x; θ) for a state θ (traceable)."""
        return self.model.apply(self.full_theta_fn(theta), x)

    def _weighted(self, value):
        """The loss of the family scaled to the convention: w · (mean of ‖f − y‖²) for squared error.
        w is ½ or 1, a power of two, so this equals the directly scaled sum bit for bit."""
        return self.loss_weight * value if self.loss_family == "squared" else value

    def _family_loss(self) -> str:
        return "mse" if self.loss_family == "squared" else "cross_entropy"

    def loss_fn(self, theta):
        """L(θ), traceable (use inside your own jitted code)."""
        full = self.full_theta_fn(theta)
        return self._weighted(self.source.data_loss(self.model, full, self._family_loss())) + \
            0.5 * self.weight_decay * jnp.sum(full * full)

    def batch_loss_fn(self, theta, idx):
        """L on the samples `idx` with the same loss and weight decay (the stochastic-gradient loss)."""
        if not isinstance(self.source, FiniteData):
            raise ValueError("mini-batches need a finite data set.")
        full = self.full_theta_fn(theta)
        out = self.model.apply(full, self.x[idx])
        return self._weighted(jnp.mean(sample_losses(out, self.y[idx], self._family_loss()))) + \
            0.5 * self.weight_decay * jnp.sum(full * full)

    def grad_fn(self, theta):
        return jax.grad(self.loss_fn)(theta)

    def hvp_fn(self, theta, v):
        return jax.jvp(self.grad_fn, (theta,), (v,))[1]

    def hessian_fn(self, theta, batch: int | None = None):
        """The dense Hessian ∇²L(θ), traceable: `dense_hessian_fn(self, theta, batch=batch)`."""
        return dense_hessian_fn(self, theta, batch=batch)

    def gen_error_fn(self, theta):
        """R(θ) = E_x ‖f(x; θ) − T(x)‖² (traceable); needs a population."""
        full = self.full_theta_fn(theta)
        if self.population_method == "source":
            return self.source.gen_error(self.model, full)
        if self.population_method == "exact":
            return gaussian.population_risk(self.model, full, self.pop_model, self.pop_t)
        r = self.model.apply(full, self.pop_x) - self.pop_t
        return jnp.sum(self.pop_w * jnp.sum(r * r, axis=-1))

    def test_loss_fn(self, theta):
        """The data loss (no weight decay) on the held-out set (traceable)."""
        return self._weighted(self.test.data_loss(self.model, self.full_theta_fn(theta), self._family_loss()))

    def test_accuracy_fn(self, theta):
        """Fraction of held-out samples whose largest output is the target class (traceable)."""
        return accuracy(self.apply_fn(theta, self.test.x), self.test.y)

    # ---------------------------------------------------------- jitted API
    def _theta(self, theta):
        # device_put, not jnp.asarray: the latter compiles a small kernel for each new shape (30 ms of a
        # worker's move to a new shape)
        return jax.device_put(_checks.theta_vector("theta", theta, self.n_params))

    def loss(self, theta) -> float:
        """Training loss L(θ)."""
        return float(jit_loss(self, self._theta(theta)))

    def grad(self, theta) -> np.ndarray:
        """∇L(θ)."""
        return np.asarray(jit_grad(self, self._theta(theta)))

    def value_and_grad(self, theta):
        v, g = jit_value_and_grad(self, self._theta(theta))
        return float(v), np.asarray(g)

    def grad_norm(self, theta) -> float:
        return float(np.linalg.norm(self.grad(theta)))

    def hvp(self, theta, v) -> np.ndarray:
        """Hessian-vector product H(θ) v by forward-over-reverse differentiation."""
        v = jax.device_put(_checks.theta_vector("v", v, self.n_params))
        return np.asarray(jit_hvp(self, self._theta(theta), v))

    def hessian(self, theta) -> np.ndarray:
        """The dense Hessian ∇²L(θ) on the state, shape (n_params, n_params)."""
        return np.asarray(jit_hessian(self, self._theta(theta)))

    def gen_error(self, theta) -> float:
        """Population error R(θ) under x ~ N(0, I). Raises if the data set has no teacher."""
        self._require_population()
        return float(jit_gen_error(self, self._theta(theta)))

    def gen_error_stderr(self, theta) -> float:
        """Standard error of R(θ): 0 for Gauss–Hermite or an exact source, the Monte Carlo standard
        error otherwise."""
        self._require_population()
        if self.population_method in ("gauss_hermite", "source", "exact"):
            return 0.0
        r = np.asarray(jit_apply(self, self._theta(theta), self.pop_x) - self.pop_t)
        sq = np.sum(r * r, axis=-1)
        return float(np.std(sq, ddof=1) / np.sqrt(sq.size))

    def test_loss(self, theta) -> float:
        """Loss on the held-out `test_data` (without weight decay)."""
        self._require_test()
        return float(jit_test_loss(self, self._theta(theta)))

    def test_accuracy(self, theta) -> float:
        """Classification accuracy on the held-out `test_data`."""
        self._require_test()
        return float(jit_test_accuracy(self, self._theta(theta)))

    def predict(self, theta, x) -> np.ndarray:
        """Network outputs f(x; θ), shape (n, d_out)."""
        x = _checks.finite_array("x", x)
        x = x[:, None] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[1] != self.model.d_in:
            raise ValueError(f"x must have shape (n, {self.model.d_in}), got {x.shape}.")
        return np.asarray(jit_apply(self, self._theta(theta), jnp.asarray(x)))

    def function_space(self, outputs):
        """The network function as every function-space distance compares it (traceable): the outputs
        themselves for squared error, the class probabilities softmax(f) for cross-entropy. Logits are
        defined only up to a common shift (the loss, and so the flow, cannot tell f from f + c·1), and a
        classifier that fits its labels has logits growing without bound while its probabilities settle."""
        return jax.nn.softmax(outputs, axis=-1) if self.loss_family == "cross_entropy" else outputs

    def function_values(self, theta, x) -> np.ndarray:
        """`function_space` of the outputs f(x; θ), shape (n, d_out): what `function_distance` compares."""
        return np.asarray(self.function_space(self.predict(theta, x)))

    def _require_population(self):
        if not self.has_population:
            raise ValueError("gen_error needs a data set with a teacher; build it with "
                             "teacher_dataset(...) or pass teacher= to Dataset / load_xy.")

    def _require_test(self):
        if self.test is None:
            raise ValueError("this problem has no held-out set; pass test_data=Dataset(...) to Problem "
                             "or use problem.with_test_data(...).")

    def __repr__(self):
        extra = ""
        if float(self.weight_decay):
            extra += f", weight_decay={float(self.weight_decay):g}"
        if self.free is not None:
            extra += f", free={self.n_params}/{self.model.n_params}"
        if self.test is not None:
            extra += f", n_test={self.test.x.shape[0]}"
        return (f"Problem({self.model!r}, n={self.x.shape[0]}, loss={self.loss_convention!r}, "
                f"population={self.population_method}{extra})")


_WEIGHTS = {"half_mse": 0.5, "mse": 1.0, "cross_entropy": 1.0}


class _Label:
    """A name carried beside the computation (the loss convention). It compares equal to any other
    `_Label`, so that problems differing only in it share compiled code: nothing traced reads it."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Label)

    def __hash__(self):
        return 1

    def __repr__(self):
        return repr(self.value)


class _DataMeta:
    """Where the data came from (teacher, noise level, name, a user's population rule) and the declared
    input symmetry. Not used by any computation: the teacher enters only through the precomputed `pop_t`. It compares equal to
    any other `_DataMeta`, so that problems differing only in their data (e.g. τ = 0.2 and τ = 0 on the
    same x) share compiled code."""

    __slots__ = ("teacher", "noise", "name", "population", "symmetry")

    def __init__(self, teacher, noise, name, population, symmetry=None):
        self.teacher, self.noise, self.name, self.population = teacher, noise, name, population
        self.symmetry = symmetry

    def __eq__(self, other):
        return isinstance(other, _DataMeta)

    def __hash__(self):
        return 0
