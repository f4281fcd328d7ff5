"""Hessian spectra: dense vs. Lanczos signatures, a planted saddle with a known Morse index."""

import numpy as np
import pytest

import flowtools as ft
from flowtools.landscape import estimate_negative_count, hessian_spectrum, morse_index, signature
from flowtools.landscape.planted import planted_saddle


def test_signature_helper():
    assert signature([-2.0, -1e-12, 0.0, 3.0]) == (1, 2, 1)
    assert signature([-2.0, 1e-3, 3.0], rtol_zero=1e-2) == (1, 1, 1)


def test_origin_spectrum_dense_and_lanczos(minimal_half):
    x, y = np.asarray(minimal_half.x).ravel(), np.asarray(minimal_half.y).ravel()
    m = np.mean(x * y)
    for method in ("dense", "lanczos"):
        spec = hessian_spectrum(minimal_half, np.zeros(4), method=method)
        assert spec.signature == (2, 0, 2) and spec.complete
        np.testing.assert_allclose(np.sort(spec.eigenvalues), [-m, -m, m, m], rtol=1e-10)
        U = spec.unstable_vectors
        assert U.shape == (4, 2)
        H = minimal_half.hessian(np.zeros(4))
        np.testing.assert_allclose(U.T @ H @ U, -m * np.eye(2), atol=1e-10)


@pytest.mark.parametrize("widths,act", [((1, 3, 1), "tanh"), ((2, 5, 1), "softplus"), ((2, 4, 3, 1), "gelu")])
def test_lanczos_equals_dense_small_nets(widths, act):
    teacher = ft.MLP((widths[0], 2, 1), "tanh")
    data = ft.teacher_dataset((teacher, teacher.init(3)), 30, noise=0.1, seed=1)
    p = ft.Problem(ft.MLP(widths, act), data)
    for seed in range(2):
        th = np.asarray(p.model.init(seed))
        d = hessian_spectrum(p, th, method="dense")
        lz = hessian_spectrum(p, th, method="lanczos")
        assert lz.signature == d.signature and lz.complete
        np.testing.assert_allclose(np.sort(lz.eigenvalues), d.eigenvalues, atol=1e-10 * d.scale)


@pytest.mark.parametrize("d,n,n_dead,n_idle", [
    (10, 256, 6, 60),  # 901 parameters
    pytest.param(10, 256, 12, 150, marks=pytest.mark.slow),  # 1981
    pytest.param(10, 256, 20, 230, marks=pytest.mark.slow),  # 3037
])
def test_lanczos_morse_index_equals_dense_on_planted_saddle(d, n, n_dead, n_idle):
    p, th, p_live, th_live = planted_saddle(d, n, 3, n_dead, n_idle)
    assert np.linalg.norm(p.grad(th)) < 1e-12
    live_index = hessian_spectrum(p_live, th_live, method="dense").n_neg
    dense = hessian_spectrum(p, th, method="dense")
    lz = hessian_spectrum(p, th, method="lanczos")
    assert dense.n_neg == n_dead + live_index  # the planted index
    assert lz.complete and lz.signature[0] == dense.signature[0]
    assert lz.signature[1:] == (None, None)
    np.testing.assert_allclose(lz.eigenvalues[: lz.n_neg], dense.eigenvalues[: dense.n_neg],
                               atol=1e-9 * dense.scale)
    # Unstable eigenvectors: orthonormal, with Rayleigh quotients equal to the negative eigenvalues.
    U = lz.unstable_vectors
    np.testing.assert_allclose(U.T @ U, np.eye(U.shape[1]), atol=1e-8)
    HU = np.stack([p.hvp(th, u) for u in U.T], axis=1)
    np.testing.assert_allclose(np.sort(np.diag(U.T @ HU)), lz.eigenvalues[: lz.n_neg], atol=1e-8 * lz.scale)
    assert morse_index(p, th, method="lanczos") == dense.n_neg


def test_budget_exhausted_gives_lower_bound():
    p, th, _, _ = planted_saddle(10, 256, 3, 12, 60)
    exact = hessian_spectrum(p, th, method="dense").n_neg
    lz = hessian_spectrum(p, th, method="lanczos", max_matvecs=60)
    assert not lz.complete and lz.n_neg <= exact
    with pytest.raises(RuntimeError):
        morse_index(p, th, method="lanczos", max_matvecs=60)


def test_count_cut_short_at_zero_is_not_a_minimum():
    # A saddle whose Lanczos count stops before its first negative eigenvalue has n_neg = 0 as a lower
    # bound only: the classification must not read that as a minimum.
    from flowtools.landscape import classify, classify_point
    p, th, _, _ = planted_saddle(10, 256, 3, 12, 60)
    assert hessian_spectrum(p, th, method="dense").n_neg > 0
    short = hessian_spectrum(p, th, method="lanczos", max_matvecs=2, warn=False)
    assert not short.complete and short.n_neg == 0
    assert classify(short.signature, problem=p, theta=th, spectrum=short) == "unclassified"
    assert classify_point(p, th, short)[0] == "unclassified"
    full = hessian_spectrum(p, th, method="lanczos")
    assert full.complete and classify_point(p, th, full)[0] in ("saddle", "degenerate_saddle")


def test_stochastic_count_estimate():
    teacher = ft.MLP((2, 2, 1), "tanh")
    data = ft.teacher_dataset((teacher, teacher.init(3)), 40, noise=0.1, seed=1)
    p = ft.Problem(ft.MLP((2, 10, 10, 1), "tanh"), data)
    th = np.asarray(p.model.init(0))
    exact = hessian_spectrum(p, th, method="dense").n_neg
    # With steps = n the quadrature is exact and only the probe sampling remains (Hutchinson).
    est = estimate_negative_count(p, th, n_probe=12, steps=p.n_params)
    assert abs(est["estimate"] - exact) < 4 * est["stderr"]
    with pytest.warns(FutureWarning, match=r"estimate_negative_count\(n_probes=\.\.\.\) .* use n_probe="):
        old = estimate_negative_count(p, th, n_probes=12, steps=p.n_params)
    assert old["estimate"] == est["estimate"] and old["stderr"] == est["stderr"]


def test_krylov_schur_expansion_is_a_lanczos_basis():
    # The expansion step shared by Krylov–Schur and its locking variant: A V = V T + β v_(m+1) e_mᵀ with
    # V orthonormal; on a rank-3 matrix the basis runs into invariant subspaces, restarts with fresh
    # vectors (coupling 0) and, once it spans the space, T has A's eigenvalues.
    from flowtools.landscape import _krylov_schur as ks

    rng = np.random.default_rng(0)
    n = 10
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    full = Q @ np.diag(np.linspace(-3.0, 4.0, n)) @ Q.T
    low = Q[:, :3] @ np.diag([-2.0, 1.0, 3.0]) @ Q[:, :3].T
    locked = np.zeros((0, n))
    for A, m_want in ((full, 6), (low, n)):
        calls = []
        V, T = np.zeros((n + 1, n)), np.zeros((n + 1, n + 1))
        V[0] = rng.standard_normal(n)
        V[0] /= np.linalg.norm(V[0])
        m, beta, exhausted, products = ks._extend(lambda v: calls.append(1) or A @ v, V, T, 0, m_want, n,
                                                  locked, np.random.default_rng(1))
        assert products == len(calls) == m
        Vm = V[:m].T
        np.testing.assert_allclose(Vm.T @ Vm, np.eye(m), atol=1e-12)
        e_m = np.eye(m)[m - 1]
        np.testing.assert_allclose(A @ Vm, Vm @ T[:m, :m] + beta * np.outer(V[m], e_m), atol=1e-12)
        if A is full:
            assert (m, exhausted) == (6, False) and beta > 0
        else:
            assert (m, exhausted, beta) == (n, True, 0.0)
            np.testing.assert_allclose(np.linalg.eigvalsh(T[:n, :n]), np.linalg.eigvalsh(A), atol=1e-12)


def test_time_limit_cuts_a_lanczos_count_to_its_lower_bound():
    p, th, _, _ = planted_saddle(10, 256, 3, 12, 60)
    exact = hessian_spectrum(p, th, method="dense").n_neg
    full = hessian_spectrum(p, th, method="lanczos", vectors=False)
    assert full.complete and full.n_neg == exact
    with pytest.warns(RuntimeWarning, match="lower bound"):
        cut = hessian_spectrum(p, th, method="auto", dense_max=10, vectors=False, time_limit=1e-6)
    # Stopped before its first product: no dense fallback, the count a flagged lower bound.
    assert cut.method == "lanczos" and not cut.complete and cut.matvecs == 0
    assert cut.n_neg <= exact and "time limit of 1e-06 s ran out" in cut.message
    with pytest.raises(ValueError, match="time_limit"):
        hessian_spectrum(p, th, method="lanczos", time_limit=0.0)


def test_small_basis_budget_keeps_the_planted_index_exact():
    # max_basis_bytes forces the basis down to its floor (40 vectors, below the operator's rank), so the
    # count restarts; the planted index stays exact and the scale, taken from the count's own Ritz
    # values (no separate run for λ_max), matches the dense spectrum's.
    p, th, p_live, th_live = planted_saddle(10, 256, 3, 6, 60)
    dense = hessian_spectrum(p, th, method="dense")
    small = hessian_spectrum(p, th, method="lanczos", max_basis_bytes=1.0)
    roomy = hessian_spectrum(p, th, method="lanczos")
    assert dense.n_neg == 6 + hessian_spectrum(p_live, th_live, method="dense").n_neg
    assert small.complete and roomy.complete and small.n_neg == roomy.n_neg == dense.n_neg
    for spec in (small, roomy):
        assert "scale max|λ| from the count's Ritz values" in spec.message
        np.testing.assert_allclose(spec.scale, dense.scale, rtol=1e-6)
        np.testing.assert_allclose(spec.eigenvalues[-1], dense.eigenvalues[-1], rtol=1e-6)
        np.testing.assert_allclose(spec.eigenvalues[: spec.n_neg], dense.eigenvalues[: dense.n_neg],
                                   atol=1e-9 * dense.scale)
    with pytest.raises(ValueError, match="max_basis_bytes"):
        hessian_spectrum(p, th, method="lanczos", max_basis_bytes=0)


def test_count_is_judged_at_the_final_scale():
    # An explicit low-rank operator (n = 300, above the size where one Krylov space takes all n
    # eigenvalues) with eigenvalues on both sides of the zero threshold tol = 1e-7·max|λ|: -2e-7 counts
    # as negative, -5e-8 as zero, whatever scale the count held when it locked them.
    from flowtools.landscape._krylov_schur import lanczos_spectrum

    rng = np.random.default_rng(3)
    n = 300
    lam = np.concatenate([[-0.5, -0.3, -0.2, -2e-7, -5e-8], np.linspace(0.01, 0.9, 30), [1.0]])
    Q, _ = np.linalg.qr(rng.standard_normal((n, lam.size)))
    A = (Q * lam) @ Q.T
    out = lanczos_spectrum(lambda v: A @ v, n, rtol_zero=1e-7, k=6, k_top=2, max_matvecs=2000, ncv=None,
                           conv_rtol=1e-9, seed=0, max_index=n)
    exact = signature(np.concatenate([lam, np.zeros(n - lam.size)]), 1e-7)
    assert out["complete"] and out["n_neg"] == exact[0] == 4
    assert out["scale_source"] == "the count's Ritz values"
    np.testing.assert_allclose(out["scale"], 1.0, rtol=1e-9)
    np.testing.assert_allclose(out["eigenvalues"][-2:], [0.9, 1.0], rtol=1e-9)
    np.testing.assert_allclose(np.sort(out["eigenvalues"][:4]), lam[:4], atol=1e-12)
    U = out["unstable"]
    assert U.shape == (n, 4)
    np.testing.assert_allclose(np.sort(np.diag(U.T @ A @ U)), lam[:4], atol=1e-12)


def test_repeated_negative_eigenvalues_are_all_counted():
    # A Krylov sequence sees one copy of a repeated eigenvalue; the locking round's fresh starts find the
    # others. The round ends at an invariant subspace (rank 29 of 400), so the verification round searches
    # its complement, where the operator is round-off: it stops after one product instead of filling a
    # basis of 256 vectors with noise.
    from flowtools.landscape._krylov_schur import lanczos_spectrum

    rng = np.random.default_rng(4)
    n = 400
    lam = np.concatenate([[-0.5, -0.5, -0.5, -0.2], np.linspace(0.05, 1.0, 25)])
    Q, _ = np.linalg.qr(rng.standard_normal((n, lam.size)))
    A = (Q * lam) @ Q.T
    calls = []
    out = lanczos_spectrum(lambda v: calls.append(1) or A @ v, n, rtol_zero=1e-7, k=6, k_top=1,
                           max_matvecs=3000, ncv=None, conv_rtol=1e-9, seed=1, max_index=n)
    assert out["complete"] and out["n_neg"] == 4 and out["rounds"] == 2
    assert out["verified_on"] is not None and len(calls) < 2 * lam.size
    np.testing.assert_allclose(np.sort(out["eigenvalues"][:4]), [-0.5, -0.5, -0.5, -0.2], atol=1e-12)
    U = out["unstable"]
    np.testing.assert_allclose(U.T @ U, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(np.sort(np.diag(U.T @ A @ U)), [-0.5, -0.5, -0.5, -0.2], atol=1e-12)
