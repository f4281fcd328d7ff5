"""The closed-form population risk at the edges of the landscape (aligned, anti-aligned, coincident and
zero-norm neurons, the global minimum) against an independent implementation in mpmath at 50 digits.

Setting of Safran & Shamir (2018): student x ↦ Σ_i σ(w_i·x), teacher of k orthonormal units (V = I),
x ~ N(0, I_k); the student sits at W = I + εD, the float64 point W_fl being the point."""

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import flowtools as ft
from flowtools import _closed_kernels, gaussian

mp.mp.dps = 50
EPSILONS = [0.0, 1e-12, 1e-8, 1e-6, 1e-2]


# ------------------------------------------------------------------ the reference, in mpmath
def _mp(x):
    return [mp.mpf(float(v)) for v in np.ravel(x)]  # float64 → mpf is exact


def _mp_dot(a, b):
    return mp.fsum(x * y for x, y in zip(a, b))


def _mp_wedge(w, u):
    """‖w ∧ u‖ from the 2×2 minors: each product of two float64 numbers is exact at 50 digits."""
    n = len(w)
    return mp.sqrt(mp.fsum((w[i] * u[j] - w[j] * u[i]) ** 2 for i in range(n) for j in range(i + 1, n)))


def mp_kernel(kind, w, u):
    """E[σ(w·x) σ(u·x)]: ReLU by Cho & Saul's arc-cosine formula, erf by Williams' arcsine formula."""
    if kind == "relu":
        s, c = _mp_wedge(w, u), _mp_dot(w, u)
        return (s + (mp.pi - mp.atan2(s, c)) * c) / (2 * mp.pi)
    return 2 / mp.pi * mp.asin(2 * _mp_dot(w, u) / mp.sqrt((1 + 2 * _mp_dot(w, w)) * (1 + 2 * _mp_dot(u, u))))


def mp_kernel_grad(kind, w, u):
    """∂K(w, u)/∂w, differentiated by hand from the formulas above (checked by mpmath.diff below)."""
    if kind == "relu":
        nw = mp.sqrt(_mp_dot(w, w))
        if nw == 0:
            return [x / 4 for x in u]  # the convention at a zero unit: the mean over directions of ŵ
        s, c = _mp_wedge(w, u), _mp_dot(w, u)
        theta = mp.atan2(s, c)
        return [((mp.pi - theta) * ui + s * wi / nw**2) / (2 * mp.pi) for wi, ui in zip(w, u)]
    c, nw2, nu2 = _mp_dot(w, u), 1 + 2 * _mp_dot(w, w), 1 + 2 * _mp_dot(u, u)
    root = mp.sqrt(nw2 * nu2 - 4 * c * c)
    return [4 / mp.pi * (ui - 2 * c * wi / nw2) / root for wi, ui in zip(w, u)]


def mp_risk_and_gradient(kind, Ws, As, Wt, At):
    """R = Σ_ij (AsAsᵀ)_ij K(w_i, w_j) − 2 Σ (AsAtᵀ) K(w_i, v_t) + Σ (AtAtᵀ) K(v_s, v_t) and (∂R/∂Ws, ∂R/∂As)."""
    Ws, Wt = [_mp(w) for w in Ws], [_mp(v) for v in Wt]
    As, At = [_mp(a) for a in As], [_mp(b) for b in At]
    units = [(w, a, 1) for w, a in zip(Ws, As)] + [(v, b, -1) for v, b in zip(Wt, At)]
    R = mp.fsum(s1 * s2 * _mp_dot(a1, a2) * mp_kernel(kind, w1, w2)
                for w1, a1, s1 in units for w2, a2, s2 in units)
    gW, gA = [], []
    for w, a in zip(Ws, As):
        gw = [mp.mpf(0)] * len(w)
        ga = [mp.mpf(0)] * len(a)
        for u, b, s in units:
            coef = 2 * s * _mp_dot(a, b)
            gw = [x + coef * y for x, y in zip(gw, mp_kernel_grad(kind, w, u))]
            ga = [x + 2 * s * mp_kernel(kind, w, u) * bo for x, bo in zip(ga, b)]
        gW.append(gw)
        gA.append(ga)
    return R, np.array(gW, dtype=float), np.array(gA, dtype=float)


def test_reference_gradient_matches_mpmath_diff():
    # The hand-derived reference gradient against mpmath's own numerical derivative at 50 digits.
    rng = np.random.default_rng(5)
    Ws, As, Wt, At = rng.standard_normal((3, 3)), rng.standard_normal((3, 2)), np.eye(3), rng.standard_normal((3, 2))
    E, F = rng.standard_normal((3, 3)), rng.standard_normal((3, 2))
    for kind in ("relu", "erf"):
        _, gW, gA = mp_risk_and_gradient(kind, Ws, As, Wt, At)
        along = mp.diff(lambda t: _mp_risk_at(kind, Ws, As, Wt, At, E, F, t), 0)
        assert abs(float(along) - (np.sum(gW * E) + np.sum(gA * F))) < 1e-13 * abs(float(along))


def _mp_risk_at(kind, Ws, As, Wt, At, E, F, t):
    """R at (Ws + tE, As + tF) with t an mpf (so mpmath.diff sees the exact line)."""
    Wm = [[mp.mpf(float(x)) + t * mp.mpf(float(e)) for x, e in zip(r, re)] for r, re in zip(Ws, E)]
    Am = [[mp.mpf(float(x)) + t * mp.mpf(float(f)) for x, f in zip(r, rf)] for r, rf in zip(As, F)]
    units = ([(w, a, 1) for w, a in zip(Wm, Am)]
             + [(_mp(v), _mp(b), -1) for v, b in zip(Wt, At)])
    return mp.fsum(s1 * s2 * _mp_dot(a1, a2) * mp_kernel(kind, w1, w2)
                   for w1, a1, s1 in units for w2, a2, s2 in units)


# ------------------------------------------------------------------ kernels of one pair
def _pairs():
    """(w, u) at angles 0 (coincident and scaled), 1e-12, 1e-6, 0.3, π/2, π − 1e-6, π, and zero norms."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(3)
    e = np.cross(w, rng.standard_normal(3))
    e /= np.linalg.norm(e)
    wh = w / np.linalg.norm(w)
    out = [(w, w.copy()), (w, 1.7 * w)]
    for theta in [1e-12, 1e-6, 0.3, np.pi / 2, np.pi - 1e-6]:
        out.append((w, 1.3 * (np.cos(theta) * wh + np.sin(theta) * e)))
    out += [(w, -0.8 * w), (np.zeros(3), w), (w, np.zeros(3))]
    return out


@pytest.mark.parametrize("kind", ["relu", "erf"])
def test_kernel_and_gradient_at_edges(kind):
    K = jax.jit(lambda w, u: _closed_kernels.kernel(kind, w, u))
    dK = jax.jit(jax.grad(lambda w, u: _closed_kernels.kernel(kind, w, u)))
    H = jax.jit(jax.hessian(lambda wu: _closed_kernels.kernel(kind, wu[:3], wu[3:])))
    for w, u in _pairs():
        scale = max(np.linalg.norm(w) * np.linalg.norm(u), 1e-300)
        ref = mp_kernel(kind, _mp(w), _mp(u))
        assert abs(float(K(w, u)) - float(ref)) <= 4e-16 * max(scale, 1.0), (w, u)
        g_ref = np.array(mp_kernel_grad(kind, _mp(w), _mp(u)), dtype=float)
        assert np.max(np.abs(np.asarray(dK(w, u)) - g_ref)) <= 4e-16 * max(np.linalg.norm(u), 1.0), (w, u)
        if np.linalg.norm(w) > 0 and np.linalg.norm(u) > 0:  # C² away from zero units
            assert np.all(np.isfinite(np.asarray(H(np.concatenate([w, u])))))


@pytest.mark.parametrize("kind", ["relu", "erf"])
@pytest.mark.parametrize("eps", [1e-12, 1e-8, 1e-3])
def test_differences_keep_relative_accuracy(kind, eps):
    # dK(w; a, b) = K(w, a) − K(w, b) and dg = g(w, a) − g(w, b) for a = b + εΔ: errors of round-off
    # relative to their own size, or to ε_mach·‖Δ‖ (the scale of the risk's terms) where the kernel is flat
    # (the anti-aligned frame w = −a, where ReLU's K ∝ (π − θ)³). A plain difference errs by ε_mach·‖a‖.
    rng = np.random.default_rng(1)
    b = rng.standard_normal(3)
    a = b + eps * rng.standard_normal(3)
    terms = jax.jit(_closed_kernels._TERMS[kind])
    for w in (rng.standard_normal(3), a, -a):
        _, dk, _, dg = terms(w, a, b)
        mw, ma, mb = _mp(w), _mp(a), _mp(b)
        dk_ref = mp_kernel(kind, mw, ma) - mp_kernel(kind, mw, mb)
        dg_ref = np.array([x - y for x, y in zip(mp_kernel_grad(kind, mw, ma), mp_kernel_grad(kind, mw, mb))],
                          dtype=float)
        floor = 4e-16 * np.linalg.norm(a - b)
        assert abs(float(dk) - float(dk_ref)) <= 1e-13 * abs(float(dk_ref)) + floor * np.linalg.norm(w)
        assert np.linalg.norm(np.asarray(dg) - dg_ref) <= 1e-13 * np.linalg.norm(dg_ref) + floor


def test_covariance_kernel_near_alignment():
    # pair_expectation in (C₁₁, C₁₂, C₂₂): the angle from atan2 of a compensated determinant keeps the
    # kernel at round-off of the given covariances (arccos of the rounded cosine lost √ε ≈ 1e-8 here).
    c11, c22 = 1.3, 0.7
    for delta in [0.0, 1e-15, 1e-12, 1e-8, 1e-4]:
        for sign in (1.0, -1.0):
            c12 = sign * np.sqrt(c11 * c22) * (1.0 - delta)
            det = mp.mpf(c11) * mp.mpf(c22) - mp.mpf(c12) ** 2
            root = mp.sqrt(max(det, 0))
            ref = (root + mp.mpf(c12) * (mp.pi - mp.atan2(root, mp.mpf(c12)))) / (2 * mp.pi)
            got = float(gaussian.pair_expectation("relu", "relu", 0.0, 0.0, c11, c12, c22))
            assert abs(got - float(ref)) <= 1e-15, (delta, sign, got, float(ref))


# ------------------------------------------------------------------ the risk near the global minimum
def _safran_shamir(k, act):
    net = ft.MLP((k, k, 1), act, bias=False)
    teacher = np.concatenate([np.eye(k).ravel(), np.ones(k)])
    D = np.random.default_rng(0).standard_normal((k, k))
    risk = lambda W: gaussian.population_risk(net, jnp.concatenate([W.ravel(), jnp.ones(k)]), net, teacher)  # noqa: E731
    return risk, D


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_risk_and_gradient_near_teacher(act):
    k = 3
    risk, D = _safran_shamir(k, act)
    R, G = jax.jit(risk), jax.jit(jax.grad(risk))
    R0, G0, _ = mp_risk_and_gradient(act, np.zeros((k, k)), np.ones((k, 1)), np.eye(k), np.ones((k, 1)))
    for eps in EPSILONS:
        W = np.eye(k) + eps * D
        r_ref, g_ref, _ = mp_risk_and_gradient(act, W, np.ones((k, 1)), np.eye(k), np.ones((k, 1)))
        r, g = float(R(W)), np.asarray(G(W))
        assert r >= -1e-15 * float(R0)
        if eps == 0.0:
            assert r == 0.0 and np.all(g == 0.0)
            continue
        # R is a sum of O(ε) differences: its absolute error is O(ε_mach·ε), so relative 1e-5 at ε = 1e-12.
        assert abs(r - float(r_ref)) <= 1e-14 * eps + 1e-14 * float(r_ref)
        assert np.linalg.norm(g - g_ref) <= 1e-10 * np.linalg.norm(g_ref), eps
    # A permutation of the teacher's neurons is the teacher: R = 0 exactly there too.
    P = np.eye(k)[[2, 0, 1]]
    assert float(R(P)) == 0.0 and np.all(np.asarray(G(P)) == 0.0)


@pytest.mark.parametrize("act,ks", [("relu", 3), ("relu", 4), ("relu", 2), ("erf", 3), ("erf", 4)])
def test_gradient_with_output_weights_anti_aligned_and_zero_units(act, ks):
    # Trainable output weights, two outputs, ks ≠ kt, one unit anti-aligned with a teacher unit, one near
    # another, and (ks ≥ 3) one zero unit: every entry of ∇R against the reference.
    rng = np.random.default_rng(ks)
    d, kt = 3, 3
    Wt, At = np.eye(d), rng.standard_normal((kt, 2))
    Ws = rng.standard_normal((ks, d))
    Ws[0] = -Wt[0]
    Ws[1] = Wt[1] + 1e-9 * rng.standard_normal(d)
    if ks >= 3:
        Ws[2] = 0.0
    As = rng.standard_normal((ks, 2))
    S, T = ft.MLP((d, ks, 2), act, bias=False), ft.MLP((d, kt, 2), act, bias=False)
    tt = np.concatenate([Wt.ravel(), At.T.ravel()])
    risk = lambda W, A: gaussian.population_risk(S, jnp.concatenate([W.ravel(), A.T.ravel()]), T, tt)  # noqa: E731
    r_ref, gW_ref, gA_ref = mp_risk_and_gradient(act, Ws, As, Wt, At)
    gW, gA = jax.grad(risk, argnums=(0, 1))(Ws, As)
    assert abs(float(risk(Ws, As)) - float(r_ref)) <= 1e-14 * float(r_ref)
    scale = np.linalg.norm(np.concatenate([gW_ref.ravel(), gA_ref.ravel()]))
    assert np.max(np.abs(np.asarray(gW) - gW_ref)) <= 1e-14 * scale
    assert np.max(np.abs(np.asarray(gA) - gA_ref)) <= 1e-14 * scale


def test_scaled_erf_teacher():
    # erf student against a scaled_erf teacher: the paired form on α-scaled vectors.
    rng = np.random.default_rng(3)
    S, T = ft.MLP((3, 3, 1), "erf", bias=False), ft.MLP((3, 3, 1), "scaled_erf", bias=False)
    ts, tt = rng.standard_normal(12), rng.standard_normal(12)
    Ws, As = ts[:9].reshape(3, 3), ts[9:].reshape(3, 1)
    Wt, At = tt[:9].reshape(3, 3) / np.sqrt(2.0), tt[9:].reshape(3, 1)
    r_ref, gW_ref, _ = mp_risk_and_gradient("erf", Ws, As, Wt, At)
    assert abs(float(gaussian.population_risk(S, ts, T, tt)) - float(r_ref)) <= 1e-14 * float(r_ref)
    g = jax.grad(lambda t: gaussian.population_risk(S, t, T, tt))(ts)
    np.testing.assert_allclose(np.asarray(g[:9]).reshape(3, 3), gW_ref, rtol=0, atol=1e-14 * np.abs(gW_ref).max())


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_hessian_at_aligned_neurons_matches_finite_differences(act):
    # The ReLU loss is C² (not C³) where a student unit aligns with a teacher unit: the Hessian is the
    # finite limit. Central differences of the gradient have an O(h) error there (h = 1e-7).
    k = 3
    risk, D = _safran_shamir(k, act)
    G, H = jax.jit(jax.grad(risk)), jax.jit(jax.hessian(risk))
    h = 1e-7
    for eps in [0.0, 1e-10, 1e-8, 1e-6]:
        W = np.eye(k) + eps * D
        Hx = np.asarray(H(W)).reshape(k * k, k * k)
        assert np.all(np.isfinite(Hx))
        fd = np.stack([(np.asarray(G(W + h * E.reshape(k, k))) - np.asarray(G(W - h * E.reshape(k, k)))).ravel()
                       / (2 * h) for E in np.eye(k * k)], axis=1)
        assert np.max(np.abs(Hx - fd)) <= 1e-6, eps
    if act == "relu":
        # At W = V, in closed form: diagonal blocks ∂²/∂w_i² = I (from K(w, w) = ‖w‖²/2; N(v_i, v_j) of the
        # student and teacher sums cancel), off-diagonal blocks 2 M(e_i, e_j) with
        # M(e_0, e_1) = ¼ I + (s sᵀ − d dᵀ)/4π, s = e_0 + e_1, d = e_0 − e_1.
        Hv = np.asarray(H(np.eye(k))).reshape(k, k, k, k).transpose(0, 2, 1, 3)  # [i, j] blocks
        np.testing.assert_allclose(Hv[0, 0], np.eye(k), rtol=0, atol=1e-15)
        e0, e1 = np.eye(k)[0], np.eye(k)[1]
        s, d = e0 + e1, e0 - e1
        M = 0.25 * np.eye(k) + (np.outer(s, s) - np.outer(d, d)) / (4 * np.pi)
        np.testing.assert_allclose(Hv[0, 1], 2 * M, rtol=0, atol=1e-15)


def test_problem_population_loss_k6_relu_is_nonnegative():
    # Through the user's path (Problem, Gaussian inputs, frozen second layer): L ≥ 0 near the global
    # minimum at k = 6, exactly 0 at it, with a finite Hessian there.
    k = 6
    net = ft.MLP((k, k, 1), "relu", bias=False)
    teacher = np.concatenate([np.eye(k).ravel(), np.ones(k)])
    at = teacher.copy()
    prob = ft.Problem(net, ft.GaussianInputs((net, teacher)), frozen="W2", frozen_at=at)
    L = prob.loss
    rng = np.random.default_rng(7)
    L0 = float(L(np.zeros(k * k)))
    values = [float(L((np.eye(k) + eps * rng.standard_normal((k, k))).ravel()))
              for eps in [1e-14, 1e-12, 1e-10, 1e-8, 1e-6] for _ in range(4)]
    assert min(values) >= -1e-15 * L0 and min(values) > 0.0
    assert float(L(np.eye(k).ravel())) == 0.0
    assert np.all(np.isfinite(prob.hessian(np.eye(k).ravel())))


@pytest.mark.parametrize("act", ["relu", "erf", "linear"])
def test_output_biases_and_terms_match_quadrature(act):
    # Output biases without hidden ones keep the paired form (plus the mean terms); population_terms uses
    # the vector kernels. Both against the covariance path with quadrature forced.
    S, T = ft.MLP((4, 3, 2), act, bias=(False, True)), ft.MLP((4, 2, 2), act, bias=(False, True))
    ts, tt = S.init(1, scale=0.7), T.init(2, scale=0.7)
    tol = 1e-12 if act != "erf" else 1e-11  # erf: the 2-D Gauss–Hermite rule, 200 nodes per axis
    R = float(gaussian.population_risk(S, ts, T, tt))
    Rq = float(gaussian.population_risk(S, ts, T, tt, method="quadrature", n_nodes=200))
    assert abs(R - Rq) <= tol * Rq
    terms = gaussian.population_terms(S, ts, T, tt)
    terms_q = gaussian.population_terms(S, ts, T, tt, method="quadrature", n_nodes=200)
    np.testing.assert_allclose(np.array(terms), np.array(terms_q), rtol=tol, atol=0)


# ------------------------------------------------------------------ redundant minima, trainable output weights
def _redundant_minimum(act):
    """(W*, A*, V, B) with f_s = f_t: an orthonormal teacher (k = 4, d = 5, output weights 1) and a student
    of m = 7 neurons that holds it redundantly. erf: unit 1 sign-flipped (w = −v, a = −1), unit 0 split
    (a = 0.25 + 0.75), one extra unit with a = 0 and one with w = 0. ReLU: unit 1 rescaled (w = 1.75 v,
    a = 1/1.75), unit 0 split, the same zero units."""
    d, k, m = 5, 4, 7
    rng = np.random.default_rng(11)
    V, B = np.eye(k, d), np.ones((k, 1))
    W, A = np.zeros((m, d)), np.zeros((m, 1))
    W[:k], A[:k, 0] = V, 1.0
    if act == "erf":
        W[1], A[1] = -V[1], -1.0
    else:
        W[1], A[1] = 1.75 * V[1], 1.0 / 1.75
    W[4], A[0], A[4] = V[0], 0.25, 0.75  # a split neuron
    W[5], A[5] = rng.standard_normal(d), 0.0  # output weight 0
    W[6], A[6] = 0.0, rng.standard_normal()  # input weights 0
    return W, A, V, B


def _risk_fn(act, m, k, d):
    S, T = ft.MLP((d, m, 1), act, bias=False), ft.MLP((d, k, 1), act, bias=False)

    def risk(W, A, V, B):
        return gaussian.population_risk(S, jnp.concatenate([W.ravel(), A.T.ravel()]), T,
                                        jnp.concatenate([V.ravel(), B.T.ravel()]))
    return jax.jit(risk), jax.jit(jax.grad(risk, argnums=(0, 1)))


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_redundant_minima_with_trainable_output_weights(act):
    # Around a global minimum with split, sign-flipped or rescaled units and zero units (the minima the
    # width study's flows reach): R ≥ 0 and R, ∇R against mpmath for W = W* + εD, A = A* + εE. Pairing
    # units one to one with teacher units gave, at ε = 1e-12, R = 0 (erf; true 1.4e-23) and 1.7e-16 (ReLU;
    # true 6.7e-24), and ∇R to 3e-5 and 1e-4 relative.
    W0, A0, V, B = _redundant_minimum(act)
    (m, d), k = W0.shape, V.shape[0]
    R, G = _risk_fn(act, m, k, d)
    rng = np.random.default_rng(12)
    D, E = rng.standard_normal(W0.shape), rng.standard_normal(A0.shape)
    _, gW0_ref, gA0_ref = mp_risk_and_gradient(act, np.zeros_like(W0), A0, V, B)
    r0 = float(R(np.zeros_like(W0), np.ones_like(A0), V, B))
    g0 = np.linalg.norm(np.concatenate([gW0_ref.ravel(), gA0_ref.ravel()]))
    for eps in EPSILONS:
        W, A = W0 + eps * D, A0 + eps * E
        r = float(R(W, A, V, B))
        gW, gA = (np.asarray(x) for x in G(W, A, V, B))
        g = np.concatenate([gW.ravel(), gA.ravel()])
        assert r >= 0.0, (eps, r)
        if eps == 0.0:
            # erf: exactly the teacher's function; ReLU: 1.75·v and 1/1.75 round, R ~ ε_mach².
            assert r <= (0.0 if act == "erf" else 1e-30 * r0), r
            assert np.linalg.norm(g) <= 1e-15 * g0, np.linalg.norm(g)
            continue
        r_ref, gW_ref, gA_ref = mp_risk_and_gradient(act, W, A, V, B)
        g_ref = np.concatenate([gW_ref.ravel(), gA_ref.ravel()])
        assert abs(r - float(r_ref)) <= 1e-14 * eps + 1e-14 * float(r_ref), (eps, r, float(r_ref))
        assert np.linalg.norm(g - g_ref) <= 1e-10 * np.linalg.norm(g_ref), (eps, np.linalg.norm(g - g_ref))
        if eps >= 1e-6:
            # And a central difference of R along (D, E), with h ≪ ε so that it sees the point's own slope
            # (below ε = 1e-6 the step h·D is not representable next to W's O(1) entries).
            h = 1e-3 * eps
            Wp, Ap, Wm, Am = W + h * D, A + h * E, W - h * D, A - h * E
            fd = float(R(Wp, Ap, V, B)) - float(R(Wm, Am, V, B))
            slope = np.sum(gW * (Wp - Wm)) + np.sum(gA * (Ap - Am))
            assert abs(fd - slope) <= 1e-5 * abs(slope), (eps, fd, slope)


@pytest.mark.parametrize("act", ["relu", "erf", "linear"])
def test_teacher_gradient_and_every_anchor(act):
    # ∂R/∂(V, B) as well, two outputs, at a point where every anchor kind occurs: a unit near a teacher
    # unit, one near its negative, a rescaled one, one at no acute angle to any teacher unit, a zero one.
    rng = np.random.default_rng(13)
    d, k, m = 4, 3, 6
    V, B = rng.standard_normal((k, d)), rng.standard_normal((k, 2))
    W = rng.standard_normal((m, d))
    W[0], W[1], W[2] = V[0] + 1e-9 * W[0], -V[1] + 1e-9 * W[1], 1.5 * V[2] + 1e-9 * W[2]
    W[3] = -np.sum(V, axis=0)
    W[4] = 0.0
    A = rng.standard_normal((m, 2))
    S, T = ft.MLP((d, m, 2), act, bias=False), ft.MLP((d, k, 2), act, bias=False)

    def risk(W, A, V, B):
        return gaussian.population_risk(S, jnp.concatenate([W.ravel(), A.T.ravel()]), T,
                                        jnp.concatenate([V.ravel(), B.T.ravel()]))
    grads = [np.asarray(x) for x in jax.grad(risk, argnums=(0, 1, 2, 3))(W, A, V, B)]
    if act == "linear":  # R = ‖AᵀW − BᵀV‖²_F
        M = A.T @ W - B.T @ V
        ref = [2 * A @ M, 2 * W @ M.T, -2 * B @ M, -2 * V @ M.T]
        r_ref = np.sum(M * M)
    else:
        r_ref, gW, gA = mp_risk_and_gradient(act, W, A, V, B)
        # The teacher's gradient is the student's with the roles exchanged and R's sign unchanged.
        _, gV, gB = mp_risk_and_gradient(act, V, B, W, A)
        ref = [gW, gA, gV, gB]
    assert abs(float(risk(W, A, V, B)) - float(r_ref)) <= 1e-14 * float(r_ref)
    scale = max(np.linalg.norm(x) for x in ref)
    for got, want in zip(grads, ref):
        assert np.max(np.abs(got - want)) <= 1e-14 * scale


def test_width_study_papers_minimum_is_nonnegative():
    # Through the user's path: the width study's papers setting (erf, orthonormal teacher k = 4, d = 10,
    # population half-MSE, trainable output weights), m = 7 students that hold the teacher with a
    # sign-flipped and a split unit and zero units: L = 0 exactly there, L ≥ 0 nearby (one-to-one
    # pairing gave L down to −6.7e-16 = −7.2e-16·L(0) at ε ≤ 1e-10).
    from flowtools import sweeps

    cfg = dict(problem="teacher_student", data="population",
               d_in=10, teacher="orthonormal", teacher_width=4, activation="erf", width=7, loss="half_mse")
    problem, _ = sweeps.make_problem(cfg)
    rng = np.random.default_rng(14)
    W = np.zeros((7, 10))
    W[:4] = np.eye(4, 10)
    a = np.array([0.5, -1.0, 1.0, -1.0, 0.5, 0.0, 0.0])
    W[1], W[3] = -W[1], -W[3]
    W[4] = W[0]
    W[5] = rng.standard_normal(10) / np.sqrt(10)
    theta = np.concatenate([W.ravel(), a])
    L0 = problem.loss(np.zeros_like(theta))
    assert problem.loss(theta) == 0.0 and np.all(problem.grad(theta) == 0.0)
    values = [problem.loss(theta + eps * rng.standard_normal(theta.size))
              for eps in [1e-14, 1e-12, 1e-10] for _ in range(3)]
    assert min(values) > 0.0 and min(values) >= -1e-15 * L0
