"""Certified critical points of the ReLU population loss (flowtools.landscape.certify): the interval
enclosures contain the loss, gradient and Hessian that jax computes, and the Krawczyk test certifies the
k = n = 8 spurious minimum of Safran & Shamir while it refuses a point with ‖∇F‖ = 1e-3."""

import numpy as np
import pytest
import mpmath
from mpmath import iv

import flowtools as ft
from flowtools.landscape import certify as C


def _contains(z, value, slack=0.0):
    return float(z.a) - slack <= value <= float(z.b) + slack


def _mp_relu_loss(W, V):
    """½ E(Σ relu(w_i·x) − Σ relu(v_j·x))², x ~ N(0, I), at 50 digits, from the arc-cosine kernel
    E relu(u·x) relu(v·x) = |u||v| (sin φ + (π − φ) cos φ) / (2π) (Cho & Saul 2009)."""
    with mpmath.workdps(50):
        def kernel(u, v):
            u, v = [mpmath.mpf(float(x)) for x in u], [mpmath.mpf(float(x)) for x in v]
            nu, nv = mpmath.sqrt(mpmath.fsum(x * x for x in u)), mpmath.sqrt(mpmath.fsum(x * x for x in v))
            phi = mpmath.acos(max(min(mpmath.fsum(x * y for x, y in zip(u, v)) / (nu * nv), 1), -1))
            return nu * nv * (mpmath.sin(phi) + (mpmath.pi - phi) * mpmath.cos(phi)) / (2 * mpmath.pi)

        total = (mpmath.fsum(kernel(u, w) for u in W for w in W) - 2 * mpmath.fsum(kernel(u, v) for u in W for v in V)
                 + mpmath.fsum(kernel(v, t) for v in V for t in V))
        return total / 2


def test_the_loss_enclosure_is_rounded_outward():
    """The float endpoints of a tight enclosure contain it: rounding each endpoint to nearest can cut off
    up to half an ulp (an upper end 0.0215080371715214212408 read as 0.02150803717152141928)."""
    old, iv.prec = iv.prec, 80  # the certificate's working precision
    try:
        x = iv.mpf(["0.02150803717152142123970327983", "0.02150803717152142124084292792"])
        lo, hi = C._outward(x)
        with mpmath.workprec(200):
            assert mpmath.mpf(lo) <= mpmath.mpf(x.a) and mpmath.mpf(x.b) <= mpmath.mpf(hi)
            assert mpmath.mpf(float(x.b)) < mpmath.mpf(x.b)  # what rounding to nearest gave
    finally:
        iv.prec = old
    assert hi - lo <= 2 * np.spacing(hi)


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
    # The enclosure holds F(θ) computed independently at 50 digits, and the library's float loss (a sum
    # of O(1) terms) lies within round-off of it, on either side.
    exact = _mp_relu_loss(np.asarray(cp.theta).reshape(8, 8), np.eye(8))
    assert cert.contraction < 1 and mpmath.mpf(cert.loss[0]) <= exact <= mpmath.mpf(cert.loss[1])
    assert abs(cp.loss - float(exact)) <= 1e-15
    # A point with ‖∇F‖ ≈ 1e-3, along the softest Hessian direction: no critical point within 1e-8, refused.
    lam, Q = np.linalg.eigh(problem.hessian(cp.theta))
    step = 1e-3 / lam[0]
    step *= 1e-3 / problem.grad_norm(cp.theta + step * Q[:, 0])
    near = cp.theta + step * Q[:, 0]
    assert problem.grad_norm(near) == pytest.approx(1e-3, rel=0.05)
    refused = C.certify_relu_critical_point(problem, near, radius=1e-8)
    assert not refused.certified and "refused" in refused.message
