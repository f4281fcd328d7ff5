"""The reduced 2-D Gaussian expectations against Monte Carlo, closed forms against quadrature, and
derivatives of the population risk against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools import gaussian

N_MC = 10**6


def _nets(act, d, bias, k_s=3, k_t=2, d_out=2):
    S = ft.MLP((d, k_s, d_out), act, bias=bias)
    T = ft.MLP((d, k_t, d_out), act, bias=bias)
    return S, S.init(1, scale=1.0 / np.sqrt(d)), T, T.init(2, scale=1.0 / np.sqrt(d))


def _monte_carlo(S, ts, T, tt, n=N_MC, chunk=100_000, seed=12345):
    """Mean and standard error of ‖f_s − f_t‖² over n fresh Gaussian inputs, generated in chunks."""
    f = jax.jit(lambda x: jnp.sum((S.apply(ts, x) - T.apply(tt, x)) ** 2, axis=-1))
    rng = np.random.default_rng(seed)
    s1 = s2 = 0.0
    for _ in range(n // chunk):
        sq = np.asarray(f(rng.standard_normal((chunk, S.d_in))))
        s1 += sq.sum()
        s2 += (sq * sq).sum()
    mean = s1 / n
    return mean, np.sqrt((s2 / n - mean**2) / (n - 1))


SLOW = pytest.mark.slow


@pytest.mark.parametrize("act,d", [("erf", 50), ("tanh", 5)] + [
    pytest.param(a, d, marks=SLOW) for a, d in [("erf", 5), ("relu", 5), ("relu", 50), ("tanh", 50),
                                                ("softplus", 5), ("softplus", 50)]])
def test_population_risk_matches_monte_carlo(act, d):
    # Biases on at d = 5 (the 2-D rule and the bias closed forms), off at d = 50 (pure closed forms for
    # erf and ReLU): both paths meet an independent sample of 10^6 inputs within 3 standard errors.
    bias = d == 5
    S, ts, T, tt = _nets(act, d, bias)
    R = float(gaussian.population_risk(S, ts, T, tt))
    mc, se = _monte_carlo(S, ts, T, tt)
    assert abs(R - mc) < 3 * se, (R, mc, se)
    assert se < 0.01 * mc  # the check has teeth: the error bar is a percent of R or less


@pytest.mark.parametrize("act", ["erf", "scaled_erf", "relu"])
def test_closed_forms_match_quadrature(act):
    rng = np.random.default_rng(0)
    c11, c22 = rng.uniform(0.05, 3.0, (2, 30))
    # Near |ρ| = 1, not at it: there √(C₁₁C₂₂ − C₁₂²) of a rounded C₁₂ is √ε ≈ 1e-8 in either path.
    rho = np.concatenate([rng.uniform(-0.999, 0.999, 28), [0.999999, -0.999999]])
    c12 = rho * np.sqrt(c11 * c22)
    exact = gaussian.pair_expectation(act, act, 0.0, 0.0, c11, c12, c22)
    quad = gaussian.pair_expectation(act, act, 0.0, 0.0, c11, c12, c22, method="quadrature", n_nodes=200)
    np.testing.assert_allclose(exact, quad, rtol=0, atol=1e-10)
    # Means with biases (erf-type and ReLU closed forms) against the 1-D rule.
    a = rng.normal(size=30)
    np.testing.assert_allclose(gaussian.mean_expectation(act, a, c11),
                               gaussian.mean_expectation(act, a, c11, method="quadrature", n_nodes=200),
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("fn", [gaussian.population_risk, gaussian.population_rule])
def test_population_functions_name_a_bad_theta(fn):
    T, S = ft.MLP((6, 2, 1), "tanh", bias=False), ft.MLP((6, 3, 1), "tanh", bias=False)
    with pytest.raises(ValueError, match="theta_s contains 21 NaN"):
        fn(S, np.full(S.n_params, np.nan), T, T.init(0), method="series")
    with pytest.raises(ValueError, match="theta_t must be a flat vector of length 14"):
        fn(S, S.init(0), T, np.zeros(15), method="series")


@pytest.mark.slow
@pytest.mark.parametrize("act", ["relu", "erf", "linear"])
def test_population_risk_closed_form_matches_quadrature_path(act):
    for bias in (False, True):
        S, ts, T, tt = _nets(act, 7, bias)
        exact = gaussian.population_risk(S, ts, T, tt)
        quad = gaussian.population_risk(S, ts, T, tt, method="quadrature", n_nodes=128)
        assert abs(exact - quad) < 1e-10 * max(1.0, abs(exact))


@pytest.mark.slow
def test_known_values():
    # Linear teacher and student: R = ‖V_s W_s − V_t W_t‖_F² exactly.
    S, ts, T, tt = _nets("linear", 4, False)
    (Ws, _), (Vs, _) = S.unflatten(ts)
    (Wt, _), (Vt, _) = T.unflatten(tt)
    assert np.isclose(gaussian.population_risk(S, ts, T, tt), np.sum((Vs @ Ws - Vt @ Wt) ** 2), rtol=1e-13)
    # A student equal to its teacher has zero risk (any activation, any path).
    for act in ("erf", "tanh", "relu"):
        S, ts, _, _ = _nets(act, 6, True)
        ss, _, _ = gaussian.population_terms(S, ts, S, ts)
        # Zero up to the rule's accuracy: the 2-D rule is not symmetric in (u, v), so the (i, j) and
        # (j, i) orderings of a pair agree only to ~1e-12.
        assert abs(gaussian.population_risk(S, ts, S, ts)) < 1e-10 * ss
    # Saad & Solla's single-unit overlaps: E[g(u)²] = (2/π) arcsin(Q/(1+Q)) for g = erf(·/√2).
    Q = 0.7
    val = gaussian.pair_expectation("scaled_erf", "scaled_erf", 0, 0, Q, Q, Q)
    assert np.isclose(val, 2 / np.pi * np.arcsin(Q / (1 + Q)), rtol=1e-14)


def _fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("act,bias", [("tanh", True)] + [
    pytest.param(a, b, marks=SLOW) for a, b in [("erf", False), ("scaled_erf", True), ("softplus", False),
                                                ("relu", False), ("relu", True)]])
def test_gradient_and_hessian_match_finite_differences(act, bias):
    S, ts, T, tt = _nets(act, 4, bias, k_s=2, k_t=2, d_out=1)
    ts, tt = np.asarray(ts), np.asarray(tt)
    R = jax.jit(lambda th: gaussian.population_risk(S, th, T, tt))
    grad = jax.jit(jax.grad(lambda th: gaussian.population_risk(S, th, T, tt)))
    np.testing.assert_allclose(grad(ts), _fd_grad(lambda th: float(R(th)), ts), rtol=1e-6, atol=1e-8)
    H = np.asarray(jax.hessian(lambda th: gaussian.population_risk(S, th, T, tt))(ts))
    H_fd = np.stack([_fd_grad(lambda th: np.asarray(grad(th))[i], ts, h=1e-5) for i in range(ts.size)])
    np.testing.assert_allclose(H, H_fd, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(H, H.T, atol=1e-12)


@pytest.mark.parametrize("act", ["tanh", pytest.param("erf", marks=SLOW), pytest.param("softplus", marks=SLOW)])
def test_derivatives_at_singular_covariances(act):
    # At the global minimum every student unit coincides with a teacher unit (a singular 2×2
    # covariance); Price's theorem keeps the gradient zero and the Hessian finite, positive
    # semidefinite and equal to the Gauss–Newton matrix 2 E[J Jᵀ].
    S, ts, _, _ = _nets(act, 3, True, k_s=2, d_out=1)
    f = lambda th: gaussian.population_risk(S, th, S, ts)  # noqa: E731
    g = np.asarray(jax.grad(f)(ts))
    H = np.asarray(jax.hessian(f)(ts))
    # Zero to the rule's accuracy (~1e-9 for tanh at n = 96; exact for the erf closed form).
    assert np.all(np.isfinite(H)) and np.abs(g).max() < 1e-8
    x = np.random.default_rng(0).standard_normal((200_000, 3))
    J = np.asarray(jax.jacfwd(lambda th: S.apply(th, x)[:, 0])(ts))
    gn = 2 * J.T @ J / x.shape[0]
    assert np.linalg.eigvalsh(H).min() > -1e-10
    np.testing.assert_allclose(H, gn, atol=0.03 * np.abs(gn).max())  # Monte Carlo of the Jacobian


def test_vectorised_and_traceable():
    c11 = np.array([0.5, 1.0, 2.0])
    vals = jax.jit(lambda c: gaussian.pair_expectation("tanh", "tanh", 0.1, -0.2, c, 0.3 * c, c))(c11)
    for i, c in enumerate(c11):
        assert np.isclose(vals[i], gaussian.pair_expectation("tanh", "tanh", 0.1, -0.2, c, 0.3 * c, c))
    S, ts, T, tt = _nets("tanh", 5, False)
    batch = jnp.stack([ts, 0.5 * ts])
    r = jax.vmap(lambda th: gaussian.population_risk(S, th, T, tt))(batch)
    assert np.isclose(r[1], gaussian.population_risk(S, 0.5 * ts, T, tt))


def test_mixed_activations_use_the_rule():
    # A tanh student against an erf teacher: no closed form, still matches Monte Carlo.
    S = ft.MLP((3, 2, 1), "tanh", bias=False)
    T = ft.MLP((3, 2, 1), "erf", bias=False)
    ts, tt = S.init(3, scale=0.6), T.init(4, scale=0.6)
    assert not gaussian.has_closed_form("tanh", "erf")
    R = float(gaussian.population_risk(S, ts, T, tt))
    mc, se = _monte_carlo(S, ts, T, tt, n=200_000)
    assert abs(R - mc) < 3 * se


def test_bad_inputs():
    deep = ft.MLP((3, 2, 2, 1), "tanh")
    S = ft.MLP((3, 2, 1), "tanh")
    with pytest.raises(ValueError, match="student must be a depth-2 MLP"):
        gaussian.population_risk(deep, deep.init(0), S, S.init(0))
    with pytest.raises(ValueError, match="share"):
        T = ft.MLP((4, 2, 1), "tanh")
        gaussian.population_risk(S, S.init(0), T, T.init(0))
    with pytest.raises(ValueError, match="method="):
        gaussian.population_risk(S, S.init(0), S, S.init(0), method="simpson")
