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
"""

from __future__ import annotations

import numpy as np

from . import _checks
from .landscape.input_symmetry import InputSymmetry
from .models import MLP
from .population import GaussianInputs
from .problem import Problem

__all__ = ["orthonormal_teacher", "safran_shamir", "safran_shamir_init"]


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
