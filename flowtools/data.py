"""Training sets, teachers, and the population (generalization) error under Gaussian inputs.

R(θ) = E_{x ~ N(0, I)} ‖f(x; θ) − T(x)‖² (Maleknia & Sato, Eq. 3). For d_in ≤ 2 it is computed by
tensor-product Gauss–Hermite quadrature; for d_in > 2 by Monte Carlo on a fixed seeded sample, with its
standard error. The quadrature error depends on the weights: tanh(w x) has poles at distance π/(2|w|)
from the real axis, and Gauss–Hermite converges only like exp(−c√k) in the number of nodes k. The
1-D default (1000 nodes) is accurate to ~1e-13 relative for |w| ≲ 3 and ~1e-8 for |w| ≈ 5 (120 nodes
gave 4e-4 at the minimal model's overfitting point, w1 ≈ 2.15); the 2-D default (48² nodes) to ~1e-7
for ‖w‖ ≲ 1. Raise `n_nodes` for larger weights.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
import scipy.special

from . import _checks, _deprecation
from .models import MLP

__all__ = ["Dataset", "load_xy", "teacher_dataset", "Teacher", "GaussianQuadrature"]

_POPULATION_STREAM = 0x52  # spawn key of the Monte Carlo population's random stream


@dataclasses.dataclass(frozen=True)
class Teacher:
    """A target function T(x): inputs (n, d_in) → outputs (n, d_out), written in jax.numpy.

    Build it from a callable, or from a teacher network with `Teacher.from_network(model, theta)`.
    """

    fn: Callable
    d_in: int
    d_out: int
    name: str = "teacher"
    #: The teacher network and its θ when built by `from_network` (the exact R of depth-2 nets uses them).
    model: MLP | None = dataclasses.field(default=None, compare=False)
    theta: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    #: Check a callable on probe inputs (`_probe_teacher`); False for teachers built at import time, whose
    #: probe would start XLA before a sweep worker sets its thread flags.
    probe: dataclasses.InitVar[bool] = True

    @classmethod
    def from_network(cls, model: MLP, theta, name: str | None = None) -> "Teacher":
        theta = jnp.asarray(_checks.theta_vector("theta", theta, model.n_params))
        return cls(lambda x: model.apply(theta, x), model.d_in, model.d_out, name or repr(model), model,
                   np.asarray(theta))

    def __post_init__(self, probe: bool = True):
        if not callable(self.fn):
            raise TypeError(f"teacher fn must be a callable x -> y, got {type(self.fn).__name__}.")
        object.__setattr__(self, "d_in", _checks.positive_int("d_in", self.d_in))
        object.__setattr__(self, "d_out", _checks.positive_int("d_out", self.d_out))
        if self.model is None and probe:  # a network's outputs have the right shape by construction
            _probe_teacher(self.fn, self.d_in, self.name, self.d_out)

    def __call__(self, x):
        x = jnp.asarray(x, dtype=jnp.float64)
        out = self.fn(x)
        n = jnp.shape(x)[0]
        if jnp.size(out) != n * self.d_out:
            raise ValueError(f"teacher {self.name!r} returned outputs of shape {jnp.shape(out)} for {n} "
                             f"inputs; it must return ({n}, {self.d_out}), one row per input.")
        return jnp.reshape(out, (n, self.d_out))


#: the probe a teacher callable is checked on: 3 inputs, not all zero (a teacher may divide by ‖x‖)
def _teacher_probe(d_in: int) -> np.ndarray:
    return np.linspace(-1.0, 1.5, 3 * d_in).reshape(3, d_in)


def _probe_teacher(fn, d_in: int, name: str, d_out: int | None = None) -> int:
    """Evaluate a teacher callable once on 3 probe inputs; check one finite float row per input (of
    width d_out when given). Returns d_out. Errors name the teacher and what it returned."""
    label = f"teacher {name!r}"
    try:
        y = fn(jnp.asarray(_teacher_probe(d_in)))
    except Exception as err:  # noqa: BLE001 - the user's callable failed on a plain input batch
        raise TypeError(f"{label} failed on inputs x of shape (3, {d_in}): {type(err).__name__}: "
                        f"{str(err).rstrip('.')}. A teacher maps a batch x of shape (n, d_in) to targets "
                        "(n, d_out).") from None
    shape, dtype = getattr(y, "shape", None), getattr(y, "dtype", None)
    if shape is None or len(shape) not in (1, 2) or shape[0] != 3:
        raise ValueError(f"{label} must return one row per input: for x of shape (3, {d_in}) it returned "
                         f"{type(y).__name__} of shape {shape}, expected (3, d_out) or (3,).")
    width = 1 if len(shape) == 1 else shape[1]
    if d_out is not None and width != d_out:
        raise ValueError(f"{label} returned rows of width {width} but d_out={d_out}.")
    if dtype is None or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(f"{label} must return real numbers, got dtype {dtype}.")
    if not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError(f"{label} returned non-finite targets on the probe inputs x of shape (3, {d_in}).")
    return width


def as_teacher(teacher, d_in: int | None = None) -> Teacher:
    """Accept a `Teacher`, a (model, θ) pair, or a callable with `d_in` given.

    A callable is checked once on 3 probe inputs (`_probe_teacher`): it must return one finite row per
    input; the error names the callable and what it returned."""
    if isinstance(teacher, Teacher):
        return teacher
    if isinstance(teacher, tuple) and len(teacher) == 2 and isinstance(teacher[0], MLP):
        return Teacher.from_network(*teacher)
    if callable(teacher):
        if d_in is None:
            raise ValueError("d_in is required when teacher is a plain callable.")
        d_in = _checks.positive_int("d_in", d_in)
        name = getattr(teacher, "__name__", "teacher")
        d_out = _probe_teacher(teacher, d_in, name)
        return Teacher(teacher, d_in, d_out, name)
    raise TypeError(f"teacher must be a Teacher, a (MLP, theta) pair, or a callable x -> y, got "
                    f"{type(teacher).__name__}.")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A training set: inputs x of shape (n, d_in) and targets y of shape (n, d_out), float64.

    1-D x or y are read as one column. Every value must be finite. `teacher` and `noise` record how the
    set was generated, when known; the teacher enables the population error.
    """

    x: np.ndarray
    y: np.ndarray
    teacher: Teacher | None = None
    noise: float | None = None
    name: str = "dataset"

    def __post_init__(self):
        x = _checks.finite_array("x", self.x)
        y = _checks.finite_array("y", self.y)
        if x.ndim == 1:
            x = x[:, None]
        if y.ndim == 1:
            y = y[:, None]
        if x.ndim != 2 or y.ndim != 2:
            raise ValueError(f"x and y must be 1-D or 2-D arrays, got shapes {x.shape} and {y.shape}.")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y must have the same number of samples, got {x.shape[0]} and {y.shape[0]}."
            )
        if x.shape[0] == 0:
            raise ValueError("x and y must contain at least one sample.")
        if self.teacher is not None and self.teacher.d_in != x.shape[1]:
            raise ValueError(f"teacher takes d_in={self.teacher.d_in} but x has {x.shape[1]} columns.")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def d_in(self) -> int:
        return self.x.shape[1]

    @property
    def d_out(self) -> int:
        return self.y.shape[1]

    def with_targets(self, y, *, noise: float | None = None, name: str | None = None) -> "Dataset":
        """The same inputs and teacher with new targets (e.g. the noiseless set y = T(x))."""
        return Dataset(self.x, y, self.teacher, noise, name or self.name)

    def noiseless(self) -> "Dataset":
        """The same inputs with y = T(x) exactly (τ = 0); needs a teacher."""
        if self.teacher is None:
            raise ValueError("noiseless() needs a dataset with a teacher.")
        return self.with_targets(np.asarray(self.teacher(self.x)), noise=0.0, name=f"{self.name} (τ=0)")


def load_xy(path, *, d_in: int | None = None, teacher=None, name: str | None = None) -> Dataset:
    """Read a whitespace- or comma-separated text file of samples, one per row.

    The first `d_in` columns are x and the rest y (default: all but the last column are x). Lines
    starting with '#' are skipped.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path={path!r} does not exist.")
    with open(path) as fh:
        rows = [
            line.replace(",", " ").split()
            for line in fh
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if not rows:
        raise ValueError(f"path={path!r} holds no data rows.")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"path={path!r}: rows have different numbers of columns {sorted(widths)}.")
    try:
        arr = np.array(rows, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"path={path!r} holds a non-numeric entry: {err}") from None
    n_cols = arr.shape[1]
    if n_cols < 2:
        raise ValueError(f"path={path!r} needs at least two columns (x and y), found {n_cols}.")
    d_in = n_cols - 1 if d_in is None else _checks.positive_int("d_in", d_in)
    if d_in >= n_cols:
        raise ValueError(f"d_in={d_in} leaves no y column in a file with {n_cols} columns.")
    t = None if teacher is None else as_teacher(teacher, d_in)
    return Dataset(arr[:, :d_in], arr[:, d_in:], t, None, name or os.path.basename(path))


def teacher_dataset(teacher, n: int, *, noise: float = 0.0, seed: int = 0, d_in: int | None = None,
                    name: str | None = None) -> Dataset:
    """Teacher–student data: x ~ N(0, I_{d_in}), y = T(x) + noise · ξ, ξ ~ N(0, I), seeded.

    `teacher` is a `Teacher`, a (MLP, θ) pair, or a callable (then `d_in` is required).
    """
    t = as_teacher(teacher, d_in)
    n = _checks.positive_int("n", n)
    noise = _checks.nonnegative("noise", noise)
    rng = np.random.default_rng(_checks.positive_int("seed", seed, minimum=0))
    x = rng.standard_normal((n, t.d_in))
    y = np.asarray(t(x)) + noise * rng.standard_normal((n, t.d_out))
    return Dataset(x, y, t, noise, name or f"teacher n={n} noise={noise} seed={seed}")


@dataclasses.dataclass(frozen=True)
class GaussianQuadrature:
    """Nodes and weights for expectations over x ~ N(0, I_{d_in}): a quadrature rule, not a data source
    (for the population loss as training data see `flowtools.population.GaussianInputs`).

    `method="gauss_hermite"` builds the tensor-product rule with `n_nodes` per dimension;
    `"monte_carlo"` draws `n_samples` points with `seed` (weights 1/n_samples). `"auto"` picks
    Gauss–Hermite for d_in ≤ 2 and Monte Carlo otherwise.
    """

    x: np.ndarray
    weights: np.ndarray
    method: str

    @classmethod
    def build(cls, d_in: int, method: str = "auto", *, n_nodes: int | None = None,
              n_samples: int = 2**16, seed: int = 0) -> "GaussianQuadrature":
        d_in = _checks.positive_int("d_in", d_in)
        method = _checks.choice("method", method, ["auto", "gauss_hermite", "monte_carlo"])
        if method == "auto":
            method = "gauss_hermite" if d_in <= 2 else "monte_carlo"
        if method == "gauss_hermite":
            if d_in > 3:
                raise ValueError("method='gauss_hermite' is limited to d_in ≤ 3; use 'monte_carlo'.")
            k = _checks.positive_int("n_nodes", n_nodes or (1000 if d_in == 1 else 48))
            # Probabilists' Hermite rule integrates against exp(−x²/2); normalize to the N(0,1) density.
            # scipy's rule stays accurate for thousands of nodes (numpy's hermegauss overflows past ~500).
            nodes, w = scipy.special.roots_hermitenorm(k)
            w = w / np.sqrt(2.0 * np.pi)
            # Nodes far in the tail carry weights below 1e-30 of the largest: they cannot change a sum in
            # float64, only cost evaluations.
            keep = w > 1e-30 * w.max()
            nodes, w = nodes[keep], w[keep]
            grids = np.meshgrid(*([nodes] * d_in), indexing="ij")
            wgrids = np.meshgrid(*([w] * d_in), indexing="ij")
            x = np.stack([g.ravel() for g in grids], axis=1)
            weights = np.prod(np.stack([g.ravel() for g in wgrids], axis=1), axis=1)
            return cls(x, weights, "gauss_hermite")
        n_samples = _checks.positive_int("n_samples", n_samples, minimum=2)
        # A stream of its own: teacher_dataset(seed=s) draws from default_rng(s), and the Monte Carlo
        # sample must not repeat the training inputs (R would equal the training error).
        rng = np.random.default_rng(np.random.SeedSequence(_checks.positive_int("seed", seed, minimum=0),
                                                           spawn_key=(_POPULATION_STREAM,)))
        x = rng.standard_normal((n_samples, d_in))
        return cls(x, np.full(n_samples, 1.0 / n_samples), "monte_carlo")


# Renamed in 0.2.0: the rule is a quadrature, and "population" names the data source GaussianInputs.
__getattr__ = _deprecation.renamed_attributes(__name__, {"GaussianPopulation": "GaussianQuadrature"})
