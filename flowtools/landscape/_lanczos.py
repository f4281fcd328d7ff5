"""Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017): for a probe z, zᵀf(H)z is approximated by the
Gauss quadrature of an m-step Lanczos run from z, whose nodes are the Ritz values θⱼ and whose weights are
the squared first components of the Ritz vectors (Golub & Meurant 2010, ch. 6).
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels import orthogonalize, vector_norm


def lanczos_quadrature(mv, n: int, *, n_probes: int, steps: int, rng) -> tuple[list, float]:
    """The quadrature rules of `n_probes` Rademacher probes, `steps` Lanczos steps each (full
    reorthogonalization), for the matrix-vector product `mv` of a symmetric n × n operator.

    **Returns:** ([(nodes, weights) per probe], max|node|); the weights of each rule sum to 1.
    """
    all_nodes, scale = [], 0.0
    for _ in range(n_probes):
        z = rng.choice([-1.0, 1.0], size=n)
        V = np.zeros((steps + 1, n))
        V[0] = z / math.sqrt(n)
        alpha, beta = np.zeros(steps), np.zeros(steps)
        m = steps
        for j in range(steps):
            w = mv(V[j])
            w, h = orthogonalize(w, V[: j + 1])
            alpha[j] = h[j]
            if j:
                beta[j - 1] = h[j - 1]
            b = vector_norm(w)
            if b < 1e-12 * max(np.abs(alpha[: j + 1]).max(), 1e-300):
                m = j + 1
                break
            V[j + 1] = w / b
            beta[j] = b
        Tm = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
        nodes, Y = np.linalg.eigh(Tm)
        all_nodes.append((nodes, Y[0] ** 2))
        scale = max(scale, float(np.max(np.abs(nodes))))
    return all_nodes, scale
