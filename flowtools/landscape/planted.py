"""A critical point with a known Morse index, for validating spectra and critical-point solvers.

Used by the tests and the benchmarks of the landscape layer (Lanczos against dense, the Morse index of a
~1e5-parameter net).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..data import Dataset
from ..models import MLP
from ..problem import Problem

__all__ = ["planted_saddle"]


def planted_saddle(d, n, k_live, n_dead, n_idle, noise=0.1, seed=0):
    """A critical point of a d-(k_live + n_dead + n_idle)-1 tanh net whose Morse index is known.

    Live neurons are random; dead neurons have random incoming and zero outgoing weights; idle neurons are
    all zero. Targets y = f_live + ξ with ξ ⊥ span(live Jacobian, [x, 1], dead features), so θ is critical,
    each idle neuron adds only zero eigenvalues and each dead neuron exactly one negative one (a 2×2 block
    [[0, c], [c, s]] per neuron, c = mean(e σ'(w·x̃) x̃) ≠ 0): index = n_dead + index(live Hessian).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    xt = np.hstack([x, np.ones((n, 1))])
    live = MLP((d, k_live, 1), "tanh")
    th_live = jnp.asarray(live.init(seed + 1, "he"))
    f_live = np.asarray(live.apply(th_live, jnp.asarray(x))).ravel()
    J = np.asarray(jax.jacfwd(lambda th: live.apply(th, jnp.asarray(x)).ravel())(th_live))
    W_dead = 2.0 * rng.standard_normal((n_dead, d + 1)) / np.sqrt(d + 1)
    Q, _ = np.linalg.qr(np.hstack([J, xt, np.tanh(xt @ W_dead.T)]))
    xi = rng.standard_normal(n)
    xi -= Q @ (Q.T @ xi)
    xi *= noise * np.sqrt(n) / np.linalg.norm(xi)
    (W1, b1), (W2, b2) = [(np.asarray(W), np.asarray(b)) for W, b in live.unflatten(th_live)]
    width = k_live + n_dead + n_idle
    layers = [(np.vstack([W1, W_dead[:, :d], np.zeros((n_idle, d))]),
               np.concatenate([b1, W_dead[:, d], np.zeros(n_idle)])),
              (np.concatenate([W2.ravel(), np.zeros(n_dead + n_idle)])[None, :], b2)]
    model = MLP((d, width, 1), "tanh")
    data = Dataset(x, f_live + xi, name="planted saddle")
    return (Problem(model, data), np.asarray(model.flatten(layers)), Problem(live, data),
            np.asarray(th_live))
