"""The graded pair rule for steep units against mpmath at 30 digits (and nested adaptive quadrature where the
pair is truly 2-D); its Price-theorem derivatives against finite differences; the Gauss–Hermite rule (still
the default where no closed form exists) with the error it has."""

import math

import jax
import mpmath as mp
import numpy as np
import pytest
from scipy import integrate

import flowtools as ft
from flowtools import gaussian

ACTS = {"tanh": mp.tanh, "softplus": lambda x: mp.log1p(mp.exp(x)) if x < 0 else x + mp.log1p(mp.exp(-x))}
NP_ACTS = {"tanh": np.tanh, "softplus": lambda x: np.logaddexp(0.0, x)}


def _phi(z):
    return mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi)


def _mp_1d(f, s):
    """∫ f(z) φ(z) dz with breakpoints at the steep point 0 and ±1/s."""
    with mp.workdps(30):
        return float(mp.quad(lambda z: f(z) * _phi(z), [-9, -1 / mp.mpf(s), 0, 1 / mp.mpf(s), 9]))


def _aligned(act, s1, s2, sign):
    f = ACTS[act]
    return _mp_1d(lambda z: f(s1 * z) * f(sign * s2 * z), max(s1, s2))


def _nested(act, s1, s2, rho):
    """Nested adaptive Gauss–Kronrod (QUADPACK) in Cholesky coordinates, breakpoints at the steep points."""
    f = NP_ACTS[act]
    l21, l22 = s2 * rho, s2 * math.sqrt(1 - rho * rho)
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731

    def inner(m):
        p = -m / l22
        pts = [x for x in (p - 1 / l22, p, p + 1 / l22) if -9 < x < 9]
        return integrate.quad(lambda z: f(m + l22 * z) * phi(z), -9, 9, points=pts or None, limit=200,
                              epsabs=1e-17, epsrel=1e-15)[0]

    h = 1 / max(s1, abs(l21))
    return integrate.quad(lambda z: f(s1 * z) * inner(l21 * z) * phi(z), -9, 9, points=[-h, 0, h], limit=200,
                          epsabs=1e-17, epsrel=1e-15)[0]


def _pair(act, s1, s2, rho, method="graded"):
    return float(gaussian.pair_expectation(act, act, 0.0, 0.0, s1 * s1, rho * s1 * s2, s2 * s2, method=method))


@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_steep_pairs_match_mpmath(act):
    cases = []
    for s1, s2 in [(1.0, 1.0), (3.0, 3.0), (10.0, 10.0), (2.0, 10.0), (0.5, 5.0)]:
        scale = math.sqrt(_aligned(act, s1, s1, 1) * _aligned(act, s2, s2, 1))
        for sign in (1, -1):  # aligned and anti-aligned units: a 1-D integral
            cases.append((s1, s2, float(sign), _aligned(act, s1, s2, sign), scale))
        means = [_mp_1d(lambda z, s=s: ACTS[act](s * z), s) for s in (s1, s2)]  # ρ = 0: a product of means
        cases.append((s1, s2, 0.0, means[0] * means[1], scale))
    errors = {c[:3]: abs(_pair(act, *c[:3]) - c[3]) / c[4] for c in cases}
    assert max(errors.values()) < 1e-13, errors
    # The check has teeth: the 96² Gauss–Hermite rule is off by 1e-4 or more at norm 10 for both units.
    old = abs(_pair(act, 10.0, 10.0, 1.0, method="gauss_hermite") - cases[4][3]) / cases[4][4]
    assert old > 1e-5, old


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("act,s1,s2,rho", [("tanh", 5.0, 10.0, 0.9), ("softplus", 10.0, 3.0, 0.999)])
def test_steep_pairs_match_nested_adaptive_quadrature(act, s1, s2, rho):
    ref = _nested(act, s1, s2, rho)
    scale = math.sqrt(_aligned(act, s1, s1, 1) * _aligned(act, s2, s2, 1))
    assert abs(_pair(act, s1, s2, rho) - ref) < 1e-13 * scale


def test_price_derivatives_of_the_graded_rule_match_finite_differences():
    # ∂/∂C through Price's theorem (σ'' and σ'σ' under the same rule) at steep, nearly aligned units.
    c = np.array([25.0, 0.999 * 5.0 * 8.0, 64.0])
    f = jax.jit(lambda c: gaussian.pair_expectation("tanh", "tanh", 0.0, 0.0, c[0], c[1], c[2], method="graded"))
    grad = jax.jit(jax.grad(f))
    g = np.asarray(grad(c))
    h = 1e-4
    fd = np.array([(float(f(c + h * e)) - float(f(c - h * e))) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-10)
    # With biases (the outer rule graded around both steep points) and a zero-variance unit.
    fb = jax.jit(lambda a: gaussian.pair_expectation("softplus", "tanh", a[0], a[1], 9.0, -2.0, 4.0, method="graded"))
    a = np.array([0.7, -1.3])
    gb = np.asarray(jax.grad(fb)(a))
    fd = np.array([(float(fb(a + h * e)) - float(fb(a - h * e))) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(gb, fd, rtol=1e-7, atol=1e-10)
    assert np.isfinite(float(gaussian.pair_expectation("tanh", "tanh", 0.3, 0.1, 0.0, 0.0, 4.0, method="graded")))


def test_means_with_biases_match_mpmath():
    for act, a, s in [("tanh", 2.0, 10.0), ("softplus", -3.0, 5.0), ("tanh", 0.0, 0.0)]:
        f = ACTS[act]
        if s == 0:
            ref = float(f(a))
        else:
            with mp.workdps(30):
                p = -a / s
                ref = float(mp.quad(lambda z: f(a + s * z) * _phi(z), [-9, p - 1 / s, p, p + 1 / s, 9]))
        val = float(gaussian.mean_expectation(act, a, s * s, method="quadrature"))
        assert abs(val - ref) < 1e-13 * max(1.0, abs(ref)), (act, a, s, val, ref)


@pytest.mark.slow
def test_price_hessian_of_the_graded_rule_matches_finite_differences():
    c = np.array([25.0, 0.999 * 5.0 * 8.0, 64.0])
    f = jax.jit(lambda c: gaussian.pair_expectation("tanh", "tanh", 0.0, 0.0, c[0], c[1], c[2], method="graded"))
    grad = jax.jit(jax.grad(f))
    h = 1e-4
    H = np.asarray(jax.hessian(f)(c))
    H_fd = np.stack([(np.asarray(grad(c + h * e)) - np.asarray(grad(c - h * e))) / (2 * h)
                     for e in np.eye(3)])
    np.testing.assert_allclose(H, H_fd, rtol=1e-6, atol=1e-9)


def test_gaussian_inputs_choose_the_rule():
    T = ft.MLP((3, 2, 1), "tanh", bias=False)
    S = ft.MLP((3, 2, 1), "tanh", bias=False)
    tt, ts = 3.0 * np.asarray(T.init(0)), np.asarray(S.init(1))
    for method in ("auto", "graded", "gauss_hermite"):
        source = ft.GaussianInputs((T, tt), method=method)
        assert float(source.gen_error(S, ts)) == float(gaussian.population_risk(S, ts, T, tt, method=method))
    with pytest.raises(ValueError, match="method="):
        ft.GaussianInputs((T, tt), method="simpson")


def test_graded_rule_under_vmap_maps_one_state_at_a_time():
    """Vmapped over states (a flow's saved states, the higher-order test's 512 rows), the graded rule runs
    one state at a time: its ~300² nodes per pair and order are not multiplied by the batch (at width 7 the
    higher-order test asked for 150 GB), and the values equal one-by-one evaluation to round-off."""
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    d = 10
    T, S = ft.MLP((d, 4, 1), "tanh", bias=False), ft.MLP((d, 3, 1), "tanh", bias=False)
    tt = T.init(0, scale=d**-0.5)
    states = jnp.stack([jnp.asarray(S.init(i, scale=d**-0.5)) for i in range(8)])
    vg = jax.value_and_grad(lambda th: gaussian.population_risk(S, th, T, tt, method="graded"))

    def temp_bytes(batch):
        stats = jax.jit(jax.vmap(vg)).lower(states[:batch]).compile().memory_analysis()
        if stats is None:
            pytest.skip("this backend reports no memory analysis")
        return stats.temp_size_in_bytes

    assert temp_bytes(8) <= 2 * temp_bytes(1)  # was 9×: 170 MB against 19 MB
    value, grad = jax.jit(jax.vmap(vg))(states)
    for i in range(len(states)):
        v1, g1 = jax.jit(vg)(states[i])
        np.testing.assert_allclose(float(value[i]), float(v1), rtol=1e-14, atol=1e-16)
        np.testing.assert_allclose(np.asarray(grad[i]), np.asarray(g1), rtol=1e-12, atol=1e-15)
