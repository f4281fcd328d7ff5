"""The loss-floor rule: where L(θ) equals its lower bound to round-off, θ is a global minimum and no
direction descends, whatever the numerical Hessian says there (L need not be twice differentiable at
such a point: a ReLU neuron at w = 0, Safran & Shamir 2018). `classify` and the critical-point functions
apply it through `loss_floor_spectrum`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..problem import Problem
from .spectrum import Spectrum

__all__ = ["LOSS_FLOOR_NOTE", "loss_floor_spectrum"]


#: The start of the note that a spectrum's and a `CriticalPoint`'s message carry where the loss-floor rule
#: (`loss_floor_spectrum`) counted negative eigenvalues as zero directions.
LOSS_FLOOR_NOTE = "L is at its lower bound"


def floor_negatives(problem, theta, signature, spectrum) -> int:
    """How many negative directions the loss-floor rule counts as zero at θ: those of `signature`, or (a
    spectrum corrected already) its eigenvalues below −tol_zero; 0 off the floor or without a lower bound."""
    n_neg = signature[0] or 0
    if not n_neg and spectrum is not None and spectrum.eigenvalues is not None:
        n_neg = int(np.sum(np.asarray(spectrum.eigenvalues) < -spectrum.tol_zero))
    if not n_neg:
        return 0
    bound = problem.loss_lower_bound
    if bound is None:
        return 0
    theta = np.asarray(theta, dtype=np.float64)
    scale = max(abs(float(problem.loss(np.zeros_like(theta)))), 1e-300)
    return n_neg if float(problem.loss(theta)) - bound <= 100 * np.finfo(np.float64).eps * scale else 0


def loss_floor_spectrum(problem: Problem, theta, spectrum: Spectrum) -> Spectrum:
    """`spectrum` at θ with the loss-floor rule applied: where L(θ) equals `problem.loss_lower_bound` (0 for
    the built-in losses) to round-off, 100·ε·|L(0)|, θ is a global minimum and no direction descends from
    it. Negative Hessian eigenvalues there show that L is not twice differentiable at θ (a ReLU neuron at
    w = 0: its Gaussian kernel terms are homogeneous of degree 1 in w, so the Hessian depends on the
    direction of approach); they are counted as zero directions, the unstable vectors are dropped, the
    eigenvalues are kept as computed, and the message says so (a note that starts with `LOSS_FLOOR_NOTE`).
    The case met in practice: a ReLU student at the teacher plus a neuron of norm ≈ 1e-15 (Safran & Shamir
    2018, at n = k + 1).

    Off the floor, for a problem without a lower bound (`Problem.from_loss`), or without negative
    eigenvalues, `spectrum` itself is returned. `classify`, `classify_point`, `critical_point_at` and so
    `find_critical_point(s)` apply the rule; a corrected point's kind is "degenerate_minimum".
    """
    n_neg = spectrum.signature[0]
    if not n_neg or not floor_negatives(problem, theta, spectrum.signature, spectrum):
        return spectrum
    n_zero = spectrum.signature[1]
    signature = (0, None if n_zero is None else n_zero + n_neg, spectrum.signature[2])
    vectors = spectrum.unstable_vectors
    return dataclasses.replace(spectrum, signature=signature,
                               unstable_vectors=None if vectors is None else vectors[:, :0],
                               message="; ".join(m for m in (spectrum.message, floor_note(problem, spectrum))
                                                 if m))


def floor_note(problem, spectrum) -> str:
    return (f"{LOSS_FLOOR_NOTE} {problem.loss_lower_bound:g} to round-off, so no direction descends: the "
            f"{spectrum.signature[0]} negative Hessian eigenvalue(s) (smallest "
            f"{float(np.min(spectrum.eigenvalues)):.3g}) show that L is not twice differentiable here "
            "(e.g. a ReLU neuron at w = 0); counted as zero directions")
