"""The modified equation of gradient descent (backward error analysis).

GD with step η follows, to second order in η, the gradient flow of the modified loss

    L̃(θ) = L(θ) + (η/4) ‖∇L(θ)‖²,   dθ/dt = −∇L̃ = −∇L − (η/2) H ∇L

(Hairer, Lubich & Wanner, Geometric Numerical Integration, Ch. IX; Barrett & Dherin 2021, "Implicit
gradient regularization", Eq. 1). So ‖θ_GD(kη) − θ_flow(kη)‖ = O(η) against the plain flow but O(η²)
against the modified flow, on bounded time intervals.
"""

from __future__ import annotations

import dataclasses

import jax

import jax.numpy as jnp

from .. import _checks
from ..problem import Problem

__all__ = ["ModifiedLossProblem", "modified_equation_problem"]


class ModifiedLossProblem(Problem):
    """A `Problem` whose loss is L + (η/4)‖∇L‖² (everything else — data, model, R — unchanged)."""

    lr: jax.Array

    def __init__(self, problem: Problem, lr: float):
        for field in dataclasses.fields(Problem):  # every field, so new Problem settings carry over
            object.__setattr__(self, field.name, getattr(problem, field.name))
        self.lr = jnp.asarray(_checks.positive("lr", lr))

    def base_loss_fn(self, theta):
        return Problem.loss_fn(self, theta)

    def loss_fn(self, theta):
        g = jax.grad(self.base_loss_fn)(theta)
        return self.base_loss_fn(theta) + 0.25 * self.lr * jnp.sum(g * g)


def modified_equation_problem(problem: Problem, lr: float) -> ModifiedLossProblem:
    """The problem whose gradient flow is GD's modified equation at step `lr` (module docstring)."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    return ModifiedLossProblem(problem, lr)
