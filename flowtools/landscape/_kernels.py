"""The kernels the spectrum methods share: Hessian-vector products ∇²L(θ)v (forward-over-reverse,
jitted), the dense Hessian assembled from them, and the vector operations of the Krylov bases
(Gram–Schmidt with reorthogonalization, Daniel, Gragg, Kaufman & Stewart 1976).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._stored_jit import stored_jit
from ..problem import Problem, dense_hessian_fn
from ..problem._batch import jit_hvp

#: ∇²L(θ)v, jitted: the problem package's kernel, so that both share one compile cache.
hvp = jit_hvp


#: The dense Hessian, traceable (the earlier name of `flowtools.problem.dense_hessian_fn`).
hessian_from_hvps = dense_hessian_fn


def dense_hessian(problem: Problem, theta) -> np.ndarray:
    """The symmetrized dense Hessian ∇²L(θ) as a numpy array (`Problem.hessian`)."""
    return problem.hessian(theta)


def hessian_matvec(problem, theta):
    """(mv, counter): v ↦ ∇²L(θ)v on numpy vectors, and a one-element list counting its calls."""
    th = jnp.asarray(theta)
    counter = [0]

    def mv(v):
        counter[0] += 1
        return np.asarray(hvp(problem, th, jnp.asarray(v)))

    return mv, counter


@stored_jit
def max_curvature(problem, theta):
    """max|λ(H)| at θ by 30 steps of power iteration on Hessian-vector products (seeded start)."""
    v0 = jax.random.normal(jax.random.PRNGKey(0), theta.shape, dtype=theta.dtype)

    def step(_, v):
        w = problem.hvp_fn(theta, v)
        return w / jnp.maximum(jnp.linalg.norm(w), 1e-300)

    v = jax.lax.fori_loop(0, 30, step, v0 / jnp.linalg.norm(v0))
    return jnp.abs(jnp.vdot(v, problem.hvp_fn(theta, v)))


# The vector kernels below use einsum (plain C loops) rather than BLAS gemv: on a loaded 2-core machine a
# multithreaded BLAS competing with XLA's threads ran these products 5× slower (measured: 32 ms vs 6 ms for
# a 40 × 1e5 projection pair).
def vector_norm(w) -> float:
    return math.sqrt(float(np.einsum("i,i->", w, w)))


def orthogonalize(w, basis):
    """Classical Gram–Schmidt against the rows of `basis`, with a second pass when the first one removed
    most of w (Daniel–Gragg–Kaufman–Stewart criterion). Returns (w, coefficients)."""
    if basis.shape[0] == 0:
        return w, np.zeros(0)
    norm0 = vector_norm(w)
    h = np.einsum("ij,j->i", basis, w)
    w = w - np.einsum("ij,i->j", basis, h)
    if vector_norm(w) < 0.7071 * norm0:
        h2 = np.einsum("ij,j->i", basis, w)
        w = w - np.einsum("ij,i->j", basis, h2)
        h = h + h2
    return w, h
