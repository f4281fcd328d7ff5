"""Published problems, built the one way the package, its studies and its tests use.

- `orthonormal_teacher`: a depth-2 teacher whose k hidden neurons are the first k unit vectors of R^d,
  output weights 1.
- `safran_shamir`: the ReLU landscape of Safran & Shamir (ICML 2018, "Spurious local minima are common
  in two-layer ReLU neural networks", Eq. (1)): a student x ↦ Σ_i relu(w_i·x) of n neurons with the
  second layer frozen at 1 and no biases, the teacher of k orthonormal ReLUs (d = k), x ~ N(0, I_d),
  and the population loss F(W) = ½ E_x (f(x; W) − T(x))², exact (`flowtools.gaussian`). Its input
  symmetry (every permutation of the d coordinates maps the teacher and N(0, I) to themselves) is
  declared, so critical sets and basins are counted up to it.
- `safran_shamir_init`: their initialisation, w_i ~ N(0, I/d) (Xavier).
- `minimal_model`: the published minimal model of Maleknia & Sato (arXiv 2604.02393): f(x; θ) =
  v1 tanh(w1 x) + v2 tanh(w2 x), no biases, on their 100-point data set y = 2 tanh(x) + ξ, τ = 0.2 (or
  the noiseless set on the same x); `MINIMAL_MODEL_THETA0` is their reference run's initial condition.
- `fukumizu_amari`: the same student on the target T(x) = 2 tanh(x) − tanh(4x) of Fukumizu & Amari
  (Neural Networks 13, 2000), n seeded inputs x ~ N(0, s²).
- `random_teacher`: k unit-norm neurons in seeded random directions, output weights 1 (the soft
  committee teacher of Saad & Solla 1995).
- `teacher_student`: a depth-2 student learning a depth-2 teacher (random or orthonormal) from n
  seeded samples or from the population (x ~ N(0, I_d)), optionally with the second layer frozen at 1.
- `soft_committee`: Saad & Solla (Phys. Rev. E 52, 4225, 1995): K scaled-erf neurons, second layer frozen at 1, an
  orthonormal teacher of K neurons in d dimensions, population or n samples.
- `deep_linear`: a linear network of equal widths on whitened data with prescribed singular values
  (Saxe, McClelland & Ganguli 2014; `flowtools.deep_linear`).
- `digits`: a tanh MLP (64, hidden, 10) on the 8×8 handwritten digits (`flowtools.datasets`).
"""

from __future__ import annotations

import numpy as np

import jax.numpy as jnp

from . import _checks
from .data import Dataset, GaussianQuadrature, Teacher, teacher_dataset
from .landscape.input_symmetry import InputSymmetry
from .models import MLP
from .population import METHODS as GAUSSIAN_METHODS, GaussianInputs
from .problem import Problem

__all__ = ["orthonormal_teacher", "safran_shamir", "safran_shamir_init", "MINIMAL_MODEL_THETA0", "minimal_model",
           "fukumizu_amari", "fukumizu_amari_target", "random_teacher", "teacher_student", "soft_committee",
           "soft_committee_teacher", "deep_linear", "digits"]

#: The initial condition (w1, w2, v1, v2) of Maleknia & Sato's reference run (learning rate 0.01 on the
#: plain mean of squared errors).
MINIMAL_MODEL_THETA0 = np.array([-0.13, 0.13, 0.16, -0.15])


def orthonormal_teacher(d: int, k: int, activation="relu") -> tuple[MLP, np.ndarray]:
    """(MLP (d, k, 1) without biases, θ): hidden neurons v_j = e_j (j < k), output weights 1."""
    d = _checks.positive_int("d", d)
    k = _checks.positive_int("k", k)
    if k > d:
        raise ValueError(f"k={k} orthonormal teacher neurons need d ≥ k input dimensions, got d={d}.")
    teacher = MLP((d, k, 1), activation, bias=False)
    return teacher, np.concatenate([np.eye(k, d).ravel(), np.ones(k)])


def safran_shamir(k: int, n: int | None = None, *, d: int | None = None, activation="relu",
                  n_probe: int = 256, seed: int = 0, symmetric: bool = True) -> Problem:
    """The population-loss landscape of Safran & Shamir (2018): n student neurons (default n = k) against
    k orthonormal teacher neurons in d = k dimensions (or `d` ≥ k), second layer frozen at 1, no biases.

    **Arguments:**

    - `k`: teacher neurons; `n`: student neurons (default k); `d`: input dimension (default k).
    - `activation`: of teacher and student (the paper's is ReLU).
    - `n_probe`, `seed`: the probe sample on which network functions are compared (`GaussianInputs`).
    - `symmetric`: declare the input symmetry — permutations of the k teacher coordinates among
      themselves, and of the d − k others among themselves (`InputSymmetry`).

    **Returns:** a `Problem` whose state is the student's first-layer weights W (n × d, row-major).
    """
    k = _checks.positive_int("k", k)
    n = k if n is None else _checks.positive_int("n", n)
    d = k if d is None else _checks.positive_int("d", d)
    teacher, theta_t = orthonormal_teacher(d, k, activation)
    student = MLP((d, n, 1), activation, bias=False)
    at = np.concatenate([np.zeros(n * d), np.ones(n)])
    blocks = [tuple(range(k))] + ([tuple(range(k, d))] if d > k else [])
    sym = InputSymmetry(permutations=blocks) if symmetric else None
    return Problem(student, GaussianInputs((teacher, theta_t), n_probe=n_probe, seed=seed), "half_mse",
                   frozen="W2", frozen_at=at, symmetry=sym)


def safran_shamir_init(problem: Problem, seed: int) -> np.ndarray:
    """The free θ (W, row-major) with w_i ~ N(0, I/d): the model's "lecun" init, seeded."""
    seed = _checks.positive_int("seed", seed, minimum=0)
    return problem.free_theta(np.asarray(problem.model.init(seed, "lecun")))


def _second_layer_at_one(model: MLP, k: int) -> np.ndarray:
    """θ with every weight 0 except the k output weights, which are 1 (the value `frozen="W2"` pins)."""
    at = np.zeros(model.n_params)
    at[-k:] = 1.0
    return at


# ------------------------------------------------------------------------------- the minimal model
def minimal_model(*, noiseless: bool = False, loss: str = "mse", width: int = 2,
                  activation: str = "tanh") -> Problem:
    """The minimal model of Maleknia & Sato (arXiv 2604.02393): f(x; θ) = Σ_i v_i tanh(w_i x)
    without biases (θ = (w1, w2, v1, v2) for width 2) on their published data set: n = 100, x ~ N(0, 1),
    y = 2 tanh(x) + ξ with ξ ~ N(0, τ²), τ = 0.2.

    **Arguments:**

    - `noiseless`: the set y = 2 tanh(x) (τ = 0) on the same inputs instead.
    - `loss`: "mse", the plain mean of their reference code (default), or "half_mse", the (1/2n) Σ of the
      paper; GD with η on "mse" is GD with 2η on "half_mse".
    - `width`, `activation`: of the student (the published model: 2, tanh).

    **Returns:** a `Problem` whose generalization error R(θ) = E_x (f(x; θ) − 2 tanh(x))² is computed by
    Gauss–Hermite quadrature. The reference run starts at `MINIMAL_MODEL_THETA0`.
    """
    from .datasets import maleknia_sato

    width = _checks.positive_int("width", width)
    loss = _checks.choice("loss", loss, ("mse", "half_mse"))
    return Problem(MLP((1, width, 1), activation, bias=False), maleknia_sato(noiseless=bool(noiseless)), loss)


def fukumizu_amari_target(x):
    """T(x) = 2 tanh(x) − tanh(4x), the target of Fukumizu & Amari (2000) used with the minimal model."""
    return 2.0 * jnp.tanh(x) - jnp.tanh(4.0 * x)


def fukumizu_amari(*, n: int = 100, input_std: float = 2.0, seed: int = 0, width: int = 2,
                   loss: str = "half_mse") -> Problem:
    """The 1-input tanh student of the minimal model, f(x) = Σ_i v_i tanh(w_i x), on the target
    T(x) = 2 tanh(x) − tanh(4x) of Fukumizu & Amari ("Local minima and plateaus in hierarchical
    structures of multilayer perceptrons", Neural Networks 13, 2000), without noise.

    **Arguments:**

    - `n`, `input_std`, `seed`: n seeded inputs x ~ N(0, input_std²). The default s = 2 is where the
      one-neuron net has a finite optimum on this target; at s = 1 its best fit is the linear limit
      w → 0, v → ∞ (`studies/fukumizu_amari.py`).
    - `width`: student neurons (1 gives the narrow net whose critical points, duplicated, give the lines
      of critical points of the 2-neuron net; Fukumizu & Amari 2000, Sec. 3).
    - `loss`: "half_mse" (default) or "mse".

    **Returns:** a `Problem` whose generalization error is taken under x ~ N(0, input_std²)
    (Gauss–Hermite quadrature).
    """
    n = _checks.positive_int("n", n)
    s = _checks.positive("input_std", input_std)
    width = _checks.positive_int("width", width)
    loss = _checks.choice("loss", loss, ("mse", "half_mse"))
    rng = np.random.default_rng(_checks.positive_int("seed", seed, minimum=0))
    teacher = Teacher(fukumizu_amari_target, 1, 1, "2 tanh(x) - tanh(4x)")
    x = s * rng.standard_normal((n, 1))
    data = Dataset(x, np.asarray(teacher(x)), teacher, 0.0, f"FA target, x ~ N(0, {s:g}²), n={n}")
    base = GaussianQuadrature.build(1)
    population = GaussianQuadrature(base.x * s, base.weights, base.method)  # R under N(0, s²)
    return Problem(MLP((1, width, 1), "tanh", bias=False), data, loss, population)


# ------------------------------------------------------------------------------- teacher–student
def random_teacher(d: int, k: int, activation="tanh", *, seed: int = 0) -> tuple[MLP, np.ndarray]:
    """(MLP (d, k, 1) without biases, θ): k unit-norm hidden neurons in random directions (seeded), output
    weights 1 — the soft-committee teacher of Saad & Solla (1995)."""
    d = _checks.positive_int("d", d)
    k = _checks.positive_int("k", k)
    teacher = MLP((d, k, 1), activation, bias=False)
    rng = np.random.default_rng(_checks.positive_int("seed", seed, minimum=0))
    w = rng.standard_normal((k, d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return teacher, np.concatenate([w.ravel(), np.ones(k)])


def teacher_student(d: int = 4, k: int = 2, width: int = 2, *, teacher: str = "random", activation="tanh",
                    teacher_activation=None, data: str = "finite", n: int = 200, noise: float = 0.0,
                    teacher_seed: int = 0, data_seed: int = 0, loss: str = "half_mse", bias: bool = False,
                    frozen_second_layer: bool = False, n_nodes: int | None = None,
                    gaussian_method: str = "auto") -> Problem:
    """A depth-2 student (d, width, 1) learning a depth-2 teacher of k neurons with output weights 1, with
    x ~ N(0, I_d) (Saad & Solla 1995; Safran & Shamir 2018; Şimşek et al. 2021).

    **Arguments:**

    - `d`, `k`, `width`: input dimension, teacher neurons, student neurons.
    - `teacher`: "random" (unit-norm neurons in directions drawn with `teacher_seed`, `random_teacher`) or
      "orthonormal" (v_j = e_j, `orthonormal_teacher`; needs d ≥ k).
    - `activation`: of the student; `teacher_activation`: of the teacher (default: the same).
    - `data`: "finite" (`n` samples drawn with `data_seed`, additive Gaussian `noise`) or "population"
      (the exact population loss, `GaussianInputs`; `data_seed` seeds its probe sample, `n_nodes` sets its
      Gauss–Hermite rule for activations without a closed form, `gaussian_method` its `method`, e.g.
      "series" for the Hermite series).
    - `loss`: "half_mse" (default) or "mse"; `bias`: student biases.
    - `frozen_second_layer`: freeze the student's output weights at 1 (the committee machine; needs
      `bias=False`); the state is then W (width × d, row-major).

    **Returns:** a `Problem` (with the finite data set, its `gen_error` is the population error under the
    teacher).
    """
    t_act = activation if teacher_activation is None else teacher_activation
    kind = _checks.choice("teacher", teacher, ("random", "orthonormal"))
    data = _checks.choice("data", data, ("finite", "population"))
    loss = _checks.choice("loss", loss, ("mse", "half_mse"))
    width = _checks.positive_int("width", width)
    gaussian_method = _checks.choice("gaussian_method", gaussian_method, GAUSSIAN_METHODS)
    if kind == "orthonormal":
        t_model, theta_t = orthonormal_teacher(d, k, t_act)
    else:
        t_model, theta_t = random_teacher(d, k, t_act, seed=teacher_seed)
    if frozen_second_layer and bias:
        raise ValueError("frozen_second_layer=True freezes the output weights of a committee machine without "
                         "biases; pass bias=False.")
    student = MLP((t_model.d_in, width, 1), activation, bias=bool(bias))
    if data == "population":
        nodes = {} if n_nodes is None else dict(n_nodes=_checks.positive_int("n_nodes", n_nodes))
        source = GaussianInputs((t_model, theta_t), seed=_checks.positive_int("data_seed", data_seed, minimum=0),
                                method=gaussian_method, **nodes)
    else:
        source = teacher_dataset((t_model, theta_t), n, noise=noise, seed=data_seed)
    if frozen_second_layer:
        return Problem(student, source, loss, frozen="W2", frozen_at=_second_layer_at_one(student, width))
    return Problem(student, source, loss)


def soft_committee_teacher(K: int, d: int, *, seed: int = 0) -> tuple[MLP, np.ndarray]:
    """(MLP (d, K, 1) scaled erf without biases, θ): K orthonormal teacher vectors (the rows of a seeded
    QR factor) and output weights 1 (Saad & Solla 1995)."""
    K = _checks.positive_int("K", K)
    d = _checks.positive_int("d", d)
    if K > d:
        raise ValueError(f"K={K} orthonormal teacher vectors need d ≥ K input dimensions, got d={d}.")
    rng = np.random.default_rng(_checks.positive_int("seed", seed, minimum=0))
    Wt = np.linalg.qr(rng.standard_normal((d, K)))[0].T
    model = MLP((d, K, 1), "scaled_erf", bias=False)
    return model, np.asarray(model.flatten([(Wt, None), (np.ones((1, K)), None)]))


def soft_committee(K: int = 2, d: int = 100, *, seed: int = 0, n: int | None = None,
                   data_seed: int | None = None) -> Problem:
    """The soft committee machine of Saad & Solla ("On-line learning in soft committee machines", Phys. Rev.
    E 52, 4225, 1995): a student f(x) = Σ_i g(w_i·x) of K neurons, g(u) = erf(u/√2), the second layer frozen
    at 1, learning a teacher of K orthonormal vectors (`soft_committee_teacher`, seeded by `seed`) with
    x ~ N(0, I_d) under the half mean squared error.

    **Arguments:**

    - `K`, `d`: neurons of student and teacher, input dimension (d ≥ K).
    - `seed`: the teacher's directions.
    - `n`: None for the population loss (exact, `GaussianInputs`; the limit of on-line learning), or a
      number of samples drawn with `data_seed` (default seed + 1).

    **Returns:** a `Problem` whose state is W (K × d, row-major).
    """
    model, theta_t = soft_committee_teacher(K, d, seed=seed)
    if n is None:
        source = GaussianInputs((model, theta_t))
    else:
        data_seed = seed + 1 if data_seed is None else data_seed
        source = teacher_dataset((model, theta_t), n, seed=data_seed)
    return Problem(model, source, frozen="W2", frozen_at=_second_layer_at_one(model, K))


# ------------------------------------------------------------------------------- deep linear, digits
def deep_linear(depth: int = 2, singular_values=(3.0, 2.0, 1.0), *, n: int | None = None,
                seed: int = 0) -> Problem:
    """A linear network W_depth ⋯ W_1 of equal widths without biases on whitened data (Σ_xx = I) whose
    input–output correlation Σ_yx is diagonal with `singular_values` (Saxe, McClelland & Ganguli, ICLR
    2014, arXiv 1312.6120; `flowtools.deep_linear.whitened_dataset`), under the half mean squared error.

    `n` samples (default: the width), `seed` their orthogonal design. Gradient flow from a small balanced
    start learns the modes one after another (their Eqs. 8–12; `flowtools.deep_linear.mode_time`).
    """
    from .deep_linear import whitened_dataset

    depth = _checks.positive_int("depth", depth)
    s = _checks.finite_array("singular_values", singular_values, ndim=1)
    if s.size == 0 or np.any(s <= 0):
        raise ValueError(f"singular_values must be a non-empty list of positive numbers, got {singular_values!r}.")
    m = s.size
    return Problem(MLP((m,) * (depth + 1), "linear", bias=False), whitened_dataset(np.diag(s), n, seed))


def digits(hidden: int = 16, *, n_train: int = 1497, n_test: int | None = None, seed: int = 0,
           loss: str = "cross_entropy", activation: str = "tanh", bias: bool = True) -> Problem:
    """An MLP (64, hidden, 10) on the 8×8 handwritten digits (UCI; `flowtools.datasets.load_digits`,
    pixels scaled to [0, 1]), split by a seeded shuffle into `n_train` training and `n_test` test images
    (default: the other 300), with the test set as the problem's `test_data`.

    `loss`: "cross_entropy" over the 10 classes (default; integer labels) or "mse"/"half_mse" on one-hot
    targets.
    """
    from .datasets import load_digits

    hidden = _checks.positive_int("hidden", hidden)
    loss = _checks.choice("loss", loss, ("cross_entropy", "mse", "half_mse"))
    train, test = load_digits(n_train=n_train, n_test=n_test, seed=seed, one_hot=loss != "cross_entropy")
    return Problem(MLP([64, hidden, 10], activation=activation, bias=bias), train, loss=loss, test_data=test)
