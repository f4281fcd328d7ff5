"""Certified critical points of the ReLU population loss (flowtools.landscape.certify): the interval
enclosures contain the loss, gradient and Hessian that jax computes, and the Krawczyk test certifies the
k = n = 8 spurious minimum of Safran & Shamir while it refuses a point with ‖∇F‖ = 1e-3."""

import numpy as np
import pytest
from mpmath import iv

import flowtools as ft
from flowtools.landscape import certify as C


def _contains(z, value, slack=0.0):
    return float(z.a) - slack <= value <= float(z.b) + slack


def test_enclosures_contain_the_jax_values():
    problem = ft.problems.safran_shamir(3)
    theta = np.random.default_rng(2).standard_normal(problem.n_params)
    d, n, b, V, a, c = C._relu_setup(problem)
    old = iv.prec
    iv.prec = 80
    try:
        W = [C._vec(iv, w) for w in theta.reshape(n, d)]
        F, g, H = C._loss_grad_hessian(iv, W, [C._vec(iv, v) for v in V], C._vec(iv, a), C._vec(iv, b), c, True)
    finally:
        iv.prec = old
    # jax's float64 values lie within the (tight) intervals up to its own round-off
    assert _contains(F, problem.loss(theta), 1e-15)
    assert all(_contains(z, v, 1e-14) for z, v in zip(g, problem.grad(theta)))
    hj = problem.hessian(theta)
    assert all(_contains(H[i][j], hj[i, j], 1e-14) for i in range(n * d) for j in range(n * d))
    assert max(float(z.delta) for z in g) < 1e-18  # a point: the intervals are narrow


def test_a_non_critical_point_is_refused_and_bad_input():
    problem = ft.problems.safran_shamir(3)
    theta = np.random.default_rng(2).standard_normal(problem.n_params)
    cert = C.certify_relu_critical_point(problem, theta)
    assert not cert.certified and cert.morse_index is None and "refused" in cert.message
    with pytest.raises(ValueError, match="two-layer ReLU"):
        C.certify_relu_critical_point(ft.problems.safran_shamir(3, activation="erf"), theta)
    with pytest.raises(ValueError, match="theta"):
        C.certify_relu_critical_point(problem, theta[:4])
    with pytest.raises(ValueError, match="radius"):
        C.certify_relu_critical_point(problem, theta, radius=0.0)


@pytest.mark.slow
def test_spurious_minimum_certified_and_a_near_point_refused():
    problem = ft.problems.safran_shamir(8)
    end = ft.gradient_flow(problem, ft.problems.safran_shamir_init(problem, 3), np.inf, gtol=1e-10).final_theta
    cp = ft.find_critical_point(problem, end, gtol=1e-12)
    assert cp.loss == pytest.approx(0.0215080, abs=5e-8)
    cert = C.certify_relu_critical_point(problem, cp.theta, radius=1e-8)
    assert cert.certified and cert.morse_index == 0, cert.message
    # cp.loss is a float sum of O(1) terms: within ~1e-16 of the certified value on either side (the
    # flow's own round-off moves it across the exact value from one release to the next).
    assert cert.contraction < 1 and cert.loss[0] - 1e-15 <= cp.loss <= cert.loss[1] + 1e-15
    # A point with ‖∇F‖ ≈ 1e-3, along the softest Hessian direction: no critical point within 1e-8, refused.
    lam, Q = np.linalg.eigh(problem.hessian(cp.theta))
    step = 1e-3 / lam[0]
    step *= 1e-3 / problem.grad_norm(cp.theta + step * Q[:, 0])
    near = cp.theta + step * Q[:, 0]
    assert problem.grad_norm(near) == pytest.approx(1e-3, rel=0.05)
    refused = C.certify_relu_critical_point(problem, near, radius=1e-8)
    assert not refused.certified and "refused" in refused.message
