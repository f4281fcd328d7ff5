"""The Hermite-series pair rule (`method="series"`): against mpmath and the graded rule at several norms,
correlations (±1 included) and biases; its Price-theorem derivatives against finite differences; its tail
bound against the true truncation error; the fallback to the graded rule at large norms."""

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import flowtools as ft
from flowtools import _graded_rule, _hermite_series, gaussian
from flowtools.activations import get_activation

MP_ACTS = {"tanh": mp.tanh, "softplus": lambda x: mp.log1p(mp.exp(x)) if x < 0 else x + mp.log1p(mp.exp(-x))}


def _mp_mean(f, lo=-9, hi=9, points=()):
    with mp.workdps(25):
        phi = lambda z: mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi)  # noqa: E731
        return float(mp.quad(lambda z: f(z) * phi(z), sorted({lo, hi, *points})))


def _grid(s1, s2, rhos, a=0.0, b=0.0):
    rho = np.asarray(rhos, float)
    return (np.full_like(rho, a), np.full_like(rho, b), np.full_like(rho, s1 * s1), rho * s1 * s2,
            np.full_like(rho, s2 * s2))


def _scale(act, a, b, c11, c22):
    """√(E[σ(u)²]E[σ(v)²]), the Cauchy–Schwarz bound on |E[σ(u)σ(v)]|."""
    fn = get_activation(act).fn
    e1 = _hermite_series.coefficients(fn, jnp.asarray(a), jnp.asarray(c11), 1, 0.25)[1]
    e2 = _hermite_series.coefficients(fn, jnp.asarray(b), jnp.asarray(c22), 1, 0.25)[1]
    return np.sqrt(np.asarray(e1) * np.asarray(e2))


@pytest.mark.parametrize("act", ["tanh", "softplus"])
@pytest.mark.parametrize("s1, s2, a, b", [(1.0, 1.5, 0.0, 0.0), (1.5, 0.5, 0.7, -0.4)])
def test_series_against_mpmath_at_aligned_and_independent_pairs(act, s1, s2, a, b):
    f = MP_ACTS[act]
    pts = [-a / s1, -b / s2]
    refs = [_mp_mean(lambda z: f(a + s1 * z) * f(b + sign * s2 * z), points=pts) for sign in (1, -1)]
    refs.append(_mp_mean(lambda z: f(a + s1 * z), points=pts) * _mp_mean(lambda z: f(b + s2 * z), points=pts))
    args = _grid(s1, s2, [1.0, -1.0, 0.0], a, b)
    got = np.asarray(gaussian.pair_expectation(act, act, *args, method="series"))
    scale = _scale(act, *args[:3], args[4])
    assert np.max(np.abs(got - refs) / scale) < 2e-15


@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_series_against_graded_rule(act):
    # Norms 0.3–1.6, biases 0 and (0.7, −1.3); two batches: moderate correlations (the first level, K = 31)
    # and ones near ±1 (K = 255).
    for rhos in ([0.0, 0.2, -0.45], [0.5, 0.9, 0.999, 1.0, -1.0, -0.97]):
        cases = [_grid(s1, s2, rhos, a, b) for s1, s2 in [(0.3, 0.5), (1.0, 1.0), (1.6, 1.2)]
                 for a, b in [(0.0, 0.0), (0.7, -1.3)]]
        args = [np.concatenate(x) for x in zip(*cases)]
        got = np.asarray(gaussian.pair_expectation(act, act, *args, method="series"))
        ref = np.asarray(gaussian.pair_expectation(act, act, *args, method="quadrature"))
        assert np.max(np.abs(got - ref) / _scale(act, *args[:3], args[4])) < 1e-13


X0 = np.array([0.3, -0.5, 1.2, 0.6, 0.9])   # a, b, C11, C12, C22: ρ = 0.58


def _series_fn(act):
    return lambda x: gaussian.pair_expectation(act, act, *x, method="series")


@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_series_price_derivatives_against_finite_differences(act):
    f = _series_fn(act)
    g = np.asarray(jax.grad(f)(jnp.asarray(X0)))
    h = 1e-4
    fd = np.array([(float(f(X0 + h * e)) - float(f(X0 - h * e))) / (2 * h) for e in np.eye(5)])
    assert np.max(np.abs(g - fd)) < 1e-9  # O(h²) of central differences of an O(1) function


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_series_hessian_against_finite_differences(act):
    grad = jax.jit(jax.grad(_series_fn(act)))
    hess = np.asarray(jax.jacfwd(grad)(jnp.asarray(X0)))
    h = 1e-4
    fd2 = np.array([(np.asarray(grad(X0 + h * e)) - np.asarray(grad(X0 - h * e))) / (2 * h)
                    for e in np.eye(5)])
    assert np.all(np.isfinite(hess)) and np.max(np.abs(hess - fd2)) < 1e-8


@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_tail_bound_is_an_upper_bound_of_the_truncation_error(act):
    fn = get_activation(act).fn
    checked = 0
    for terms in (7, 15, 31):
        for s1, s2 in [(0.5, 1.0), (1.0, 1.5), (2.0, 2.0)]:
            for rho in (0.5, 0.9, 0.99, 1.0, -1.0):
                a, b = np.array(0.4), np.array(-0.2)
                c1, e1 = _hermite_series.coefficients(fn, a, np.array(s1 * s1), terms, 0.5)
                c2, e2 = _hermite_series.coefficients(fn, b, np.array(s2 * s2), terms, 0.5)
                r = jnp.asarray(rho)
                value = float(_hermite_series.series(c1, c2, r))
                bound = float(_hermite_series.tail_bound(c1, e1, c2, e2, r))
                ref = float(gaussian.pair_expectation(act, act, a, b, s1 * s1, rho * s1 * s2, s2 * s2,
                                                      method="quadrature"))
                scale = float(np.sqrt(e1 * e2))
                error = abs(value - ref)
                assert error <= bound + 5e-15 * scale, (terms, s1, s2, rho, error, bound)  # + round-off
                checked += error > 1e-13 * scale   # cases where the truncation is visible
    assert checked >= 10


def test_fallback_to_the_graded_rule_at_large_norms():
    # tanh at norm 3 and ρ = 0.999: no series level passes, so the whole batch takes the graded rule.
    args = _grid(3.0, 3.0, [0.999, 0.2])
    fn = get_activation("tanh").fn
    for level in _hermite_series.LEVELS:
        assert not bool(gaussian._jit_series_terms(fn, fn, *map(jnp.asarray, args), level)[1])
    d = 10
    T, S = ft.MLP((d, 2, 1), "tanh", bias=False), ft.MLP((d, 2, 1), "tanh", bias=False)
    assert gaussian.population_rule(S, S.init(0, scale=3 * d**-0.5), T, T.init(0, scale=3 * d**-0.5),
                                    method="series") == "graded"
    # Beyond a level's slope limit the series is not used even where the tail is small (ρ = 0).
    args = _grid(5.0, 0.5, [0.0])
    for level in _hermite_series.LEVELS:
        assert not bool(gaussian._jit_series_terms(fn, fn, *map(jnp.asarray, args), level)[1])


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_population_risk_and_gradient_match_the_graded_rule(act):
    d = 20
    T, S = ft.MLP((d, 3, 1), act, bias=False), ft.MLP((d, 4, 1), act, bias=False)
    tt = T.init(0, scale=d**-0.5)
    for th, level in [(S.init(1, scale=d**-0.5), "series, K = 31"),      # random directions
                      (S.init(0, scale=d**-0.5), "series, K = 255"),     # three units on the teacher's
                      (S.init(1, scale=4 * d**-0.5), "graded")]:         # norms ≈ 4: the fallback
        if act == "softplus" and level != "graded":
            level = None  # softplus coefficients decay fast: both states may pass at K = 31
        got = gaussian.population_rule(S, th, T, tt, method="series")
        assert got.startswith("series") if level is None else got == level
        f = {m: jax.value_and_grad(lambda x, m=m: gaussian.population_risk(S, x, T, tt, method=m))(
            jnp.asarray(th)) for m in ("series", "graded")}
        (r, g), (r0, g0) = f["series"], f["graded"]
        # R is a difference of O(0.1–1) terms (6e-5 where three units sit on the teacher's): 1e-15 is their
        # round-off.
        assert abs(float(r - r0)) <= 1e-12 * abs(float(r0)) + 1e-15
        assert np.max(np.abs(g - g0)) <= 1e-12 * np.max(np.abs(g0)) + 1e-15


def test_population_rule_names_the_rule():
    d = 10
    T, S = ft.MLP((d, 2, 1), "erf", bias=False), ft.MLP((d, 2, 1), "erf", bias=False)
    assert gaussian.population_rule(S, S.init(0), T, T.init(1), method="series") == "closed form"
    T, S = ft.MLP((d, 2, 1), "tanh", bias=False), ft.MLP((d, 2, 1), "tanh", bias=False)
    assert gaussian.population_rule(S, S.init(0), T, T.init(1)) == "gauss_hermite"
    assert gaussian.population_rule(S, S.init(0), T, T.init(1), method="graded") == "graded"
    with pytest.raises(ValueError, match="method"):
        gaussian.population_rule(S, S.init(0), T, T.init(1), method="hermite")


def test_erf_units_with_biases_take_the_series_per_neuron():
    """erf has no closed form with biases: under "series" its pairs go through the series per neuron (not
    per pair, nor named "graded" while the series ran), within 1e-12 of the graded rule in R and ∇R."""
    d = 6
    T, S = ft.MLP((d, 2, 1), "erf", bias=True), ft.MLP((d, 3, 1), "erf", bias=True)
    tt, th = T.init(0, scale=d**-0.5), jnp.asarray(S.init(1, scale=d**-0.5))
    assert gaussian._per_neuron(S.activation, T.activation, "series", has_bias=True)
    assert not gaussian._per_neuron(S.activation, T.activation, "series", has_bias=False)
    assert gaussian.population_rule(S, th, T, tt, method="series").startswith("series, K = ")
    (r, g), (r0, g0) = (jax.value_and_grad(lambda x, m=m: gaussian.population_risk(S, x, T, tt, method=m))(th)
                        for m in ("series", "graded"))
    assert abs(float(r - r0)) <= 1e-12 * abs(float(r0))
    assert np.max(np.abs(g - g0)) <= 1e-12 * np.max(np.abs(g0))


def test_population_rule_judges_only_the_blocks_the_series_computes():
    """A tanh student with biases and an erf teacher without: the teacher's own pairs take the closed form,
    so their failing tail bounds (two nearly parallel units of norm 4) do not make the rule "graded"."""
    S, T = ft.MLP((2, 3, 1), "tanh", bias=True), ft.MLP((2, 2, 1), "erf", bias=False)
    th = jnp.asarray(np.random.default_rng(1).normal(size=S.n_params) * 0.4)
    tt = T.flatten([(jnp.array([[4.0, 0.0], [3.9, 0.4]]), None), (jnp.array([[1.0, -1.0]]), None)])
    assert gaussian.population_rule(S, th, T, tt, method="series") == "series, K = 255"


@pytest.mark.slow
def test_mixed_activations_with_biases_match_the_graded_rule():
    # tanh student, softplus teacher, hidden and output biases: the cross pairs and the two Gram matrices
    # go through separate series batches.
    d = 10
    T, S = ft.MLP((d, 3, 1), "softplus", bias=True), ft.MLP((d, 2, 1), "tanh", bias=True)
    tt, th = T.init(0, scale=d**-0.5), jnp.asarray(S.init(1, scale=d**-0.5))
    assert gaussian.population_rule(S, th, T, tt, method="series") == "series, K = 31"
    (r, g), (r0, g0) = (jax.value_and_grad(lambda x, m=m: gaussian.population_risk(S, x, T, tt, method=m))(th)
                        for m in ("series", "graded"))
    assert abs(float(r - r0)) <= 1e-12 * abs(float(r0))
    assert np.max(np.abs(g - g0)) <= 1e-12 * np.max(np.abs(g0))


def _gram_inputs(seed, aligned, d=30, k=6):
    """(a, C) for k units in dimension d: |ρ| ≤ 0.2 between random directions at this seed."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(k, d)) / np.sqrt(d)
    if aligned:  # units on each other (ρ = 1 and −1): the first level cannot pass
        W[1], W[2] = W[0], -0.8 * W[0]
    a = 0.3 * rng.normal(size=k)
    C = W @ W.T
    return jnp.asarray(a), jnp.asarray(np.where(np.eye(k, dtype=bool), np.sum(W * W, 1), C))


def _pair_by_pair(A, r, s, a, C):
    """M^(r,s) pair by pair, each pair with its own series level or the graded rule; the diagonal by the 1-D
    rule: an independent evaluation of the Gram matrices."""
    off = ~np.eye(C.shape[0], dtype=bool)
    c = jnp.diagonal(C)
    pairs = gaussian._price_pair(A, A, r, s, "series", True)(a[:, None], a[None, :], c[:, None],
                                                           jnp.where(off, C, 0.0), c[None, :])
    return jnp.where(off, pairs, jnp.diag(gaussian._price_square(A, r, s)(a, c)))


def test_gram_fallback_takes_every_order_in_one_graded_pass():
    # Norms near 5 (slopes beyond both levels' limits): the bundle falls back to the graded rule, every
    # order in one pass (gaussian._gram_pairs), which must equal each order's own graded rule.
    A = get_activation("tanh")
    pairs = _hermite_series.price_closure(((0, 0),))
    rng = np.random.default_rng(5)
    W = 5.0 * rng.normal(size=(3, 8)) / np.sqrt(8)
    a, C = jnp.asarray(0.3 * rng.normal(size=3)), jnp.asarray(W @ W.T)
    assert not any(bool(_hermite_series.gram_values(gaussian._derivative, A, pairs, a, C, level)[1])
                   for level in _hermite_series.LEVELS)
    got = jax.jit(_hermite_series.gram_set(gaussian._derivative, gaussian._gram_pairs, A, True, pairs))(a, C)
    c = jnp.diagonal(C)
    for (r, s), m in zip(pairs, got):
        f1, f2 = gaussian._derivative(A, r), gaussian._derivative(A, s)
        for i in range(3):
            for j in range(3):
                if i == j:
                    ref = _graded_rule.mean(lambda u: f1(u) * f2(u), a[i], c[i])
                else:
                    ref = gaussian._graded_pair(f1, f2, a[i], a[j], C[i, i], C[i, j], C[j, j], True)
                assert abs(float(m[i, j] - ref)) <= 1e-15 * max(1.0, abs(float(ref))), (r, s, i, j)


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "softplus"])
def test_gram_bundle_matches_the_pair_by_pair_rule(act):
    # R's matrix and its five Price derivatives from one evaluation (one coefficient pass for σ, σ′, σ″)
    # against the same matrices pair by pair, each with its own level (_pair_by_pair), at random
    # directions (the first level) and with aligned units (K = 255).
    A = get_activation(act)
    pairs = _hermite_series.price_closure(((0, 0),))
    bundle = jax.jit(_hermite_series.gram_set(gaussian._derivative, gaussian._gram_pairs, A, True, pairs))
    value = jax.jit(_hermite_series.gram(gaussian._derivative, gaussian._gram_pairs, A, True, 0, 0))
    reference = jax.jit(lambda a, C: [_pair_by_pair(A, r, s, a, C) for r, s in pairs]
                        + [jnp.diagonal(_pair_by_pair(A, r, r, a, C)) for r in range(3)])
    for aligned, passing in [(False, 0), (True, 1)]:
        a, C = _gram_inputs(3, aligned)
        for i, level in enumerate(_hermite_series.LEVELS):
            ok = _hermite_series.gram_values(gaussian._derivative, A, pairs, a, C, level)[1]
            if act == "tanh" or i >= passing:
                assert bool(ok) == (i >= passing), (aligned, level)
        got, ref = bundle(a, C), reference(a, C)
        energy = [np.abs(np.asarray(e)) for e in ref[len(pairs):]]
        got = dict(zip(pairs, got))
        for (r, s), m0 in zip(pairs, ref):
            m = got[(r, s)]
            scale = np.sqrt(energy[r][:, None] * energy[s][None, :])
            assert np.max(np.abs(np.asarray(m - m0)) / scale) < 1e-14, (aligned, r, s)
        # R alone (no derivatives asked) by its own evaluation: the same matrix to the round-off of its sums.
        scale = np.sqrt(energy[0][:, None] * energy[0][None, :])
        assert np.max(np.abs(np.asarray(value(a, C) - got[(0, 0)])) / scale) < 1e-14


@pytest.mark.slow
def test_population_hessian_through_the_gram_bundle_against_finite_differences():
    d = 4
    T, S = ft.MLP((d, 2, 1), "tanh", bias=True), ft.MLP((d, 2, 1), "tanh", bias=True)
    tt, th = T.init(0, scale=d**-0.5), jnp.asarray(S.init(1, scale=d**-0.5))
    assert gaussian.population_rule(S, th, T, tt, method="series") == "series, K = 31"
    grad = jax.jit(jax.grad(lambda x: gaussian.population_risk(S, x, T, tt, method="series")))
    hess = np.asarray(jax.jit(jax.hessian(lambda x: gaussian.population_risk(S, x, T, tt, method="series")))(th))
    h = 1e-5
    fd2 = np.array([(np.asarray(grad(th + h * e)) - np.asarray(grad(th - h * e))) / (2 * h)
                    for e in np.eye(th.size)])
    assert np.all(np.isfinite(hess)) and np.max(np.abs(hess - fd2)) < 1e-8 * max(1.0, np.max(np.abs(hess)))
    assert np.max(np.abs(hess - hess.T)) < 1e-13 * np.max(np.abs(hess))


def test_series_under_vmap_equals_one_state_at_a_time():
    # A flow evaluates its saved states under vmap: each state takes its own level (a mapped batch, not a
    # batched cond that would run the graded fallback of every order too), with the same bits as one by one.
    T, tt = ft.problems.random_teacher(4, 2, "tanh", seed=0)
    S = ft.MLP((4, 2, 1), "tanh", bias=False)
    states = jnp.stack([jnp.asarray(S.init(i, scale=s)) for i, s in enumerate((0.3, 0.5, 2.5))])
    vg = jax.value_and_grad(lambda x: gaussian.population_risk(S, x, T, tt, method="series"))
    batched = jax.jit(jax.vmap(vg))(states)
    one = [jax.jit(vg)(x) for x in states]
    assert np.array_equal(np.asarray(batched[0]), np.array([float(v) for v, _ in one]))
    assert np.array_equal(np.asarray(batched[1]), np.stack([np.asarray(g) for _, g in one]))


def test_hessian_orders_at_a_unit_on_another_take_k511_and_match_the_graded_rule():
    # The end of a width-5 tanh flow: a student unit of norm 1.1 on a teacher unit of norm 1 (ρ ≈ 1). The
    # Hessian's orders (up to σ⁗, whose tail decays slowest) fail at K = 255 and pass at K = 511; the
    # matrices there (the level `gram_set` takes) must match the graded rule, every order.
    A = get_activation("tanh")
    pairs = _hermite_series.price_closure(_hermite_series.price_closure(((0, 0),)))
    rng = np.random.default_rng(4)
    W = rng.normal(size=(3, 10))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    W[1] = 1.1 * W[0] + 1e-3 * W[2]
    a, C = jnp.asarray([0.0, 0.05, -0.1]), jnp.asarray(W @ W.T)
    passes = [bool(_hermite_series.gram_values(gaussian._derivative, A, pairs, a, C, level)[1])
              for level in _hermite_series.LEVELS]
    assert passes == [False, False, True]
    got = _hermite_series.gram_values(gaussian._derivative, A, pairs, a, C, _hermite_series.LEVELS[2])[0]
    ref = jax.jit(lambda a, C: gaussian._gram_pairs(A, True, pairs, a, C))(a, C)
    energy = {r: np.abs(np.diagonal(np.asarray(ref[pairs.index((r, r))]))) for r in range(3)}
    energy.update({r: np.asarray(_graded_rule.mean(lambda u, r=r: gaussian._derivative(A, r)(u) ** 2, a,
                                                   jnp.diagonal(C))) for r in (3, 4)})
    for (r, s), m, m0 in zip(pairs, got, ref):
        scale = np.sqrt(energy[r][:, None] * energy[s][None, :])
        assert np.max(np.abs(np.asarray(m - m0)) / scale) < 1e-13, (r, s)


@pytest.mark.parametrize("act", ["tanh", "erf"])
def test_odd_units_without_biases_take_the_parity_path(act):
    # An odd σ with zero means: the parity path (positive nodes only, the coefficients of one parity, exact
    # zeros where r + s is odd) against the general path on the same nodes, at random directions (K = 31),
    # with aligned units (K = 255) and for the Hessian's orders at a unit on another (K = 511).
    A = get_activation(act)
    assert A.odd
    first = _hermite_series.price_closure(((0, 0),))
    second = _hermite_series.price_closure(first)
    rng = np.random.default_rng(4)
    W = rng.normal(size=(3, 10))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    W[1] = 1.1 * W[0] + 1e-3 * W[2]
    near = jnp.asarray(W @ W.T)
    cases = [(first, _gram_inputs(3, False)[1]), (first, _gram_inputs(3, True)[1]), (second, near)]
    for pairs, C in cases:
        a = jnp.zeros(C.shape[0])
        for level in _hermite_series.LEVELS:
            got, ok = _hermite_series.gram_values(gaussian._derivative, A, pairs, a, C, level, odd=True)
            ref, ok_ref = _hermite_series.gram_values(gaussian._derivative, A, pairs, a, C, level)
            assert bool(ok) == bool(ok_ref), (pairs, level)
            energy = {r: np.asarray(_graded_rule.mean(lambda u, r=r: gaussian._derivative(A, r)(u) ** 2,
                                                      a, jnp.diagonal(C))) for r in range(5)}
            for (r, s), m, m0 in zip(pairs, got, ref):
                if (r + s) % 2:
                    assert not np.any(np.asarray(m)), (r, s)  # exactly 0: the integrand is odd
                scale = np.sqrt(energy[r][:, None] * energy[s][None, :])
                assert np.max(np.abs(np.asarray(m - m0)) / scale) < 1e-15, (level, r, s)


def test_parity_path_against_mpmath():
    # Two tanh units without biases, v = λu (ρ = ±1: a 1-D integral) and a third orthogonal to both
    # (ρ = 0, where E[σ(u)σ(w)] = E[σ(u)]E[σ(w)] = 0 for an odd σ): the matrices R and ∇R use, from the
    # bundle the loss calls, against mpmath at 25 digits.
    A = get_activation("tanh")
    pairs = _hermite_series.price_closure(((0, 0),))
    W = np.array([[0.8, 0.0, 0.0], [-1.2, 0.0, 0.0], [0.0, 0.9, 0.3]])
    C = jnp.asarray(W @ W.T)
    bundle = _hermite_series.gram_set(gaussian._derivative, gaussian._gram_pairs, A, False, pairs)
    got = dict(zip(pairs, jax.jit(bundle)(jnp.zeros(3), C)))
    d = [mp.tanh, lambda x: 1 - mp.tanh(x) ** 2, lambda x: -2 * mp.tanh(x) * (1 - mp.tanh(x) ** 2)]
    norms = np.linalg.norm(W, axis=1) * np.sign(W[:, 0] + W[:, 1])
    for (r, s), m in got.items():
        for i, j in [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 2)]:
            if i != j and 2 in (i, j):  # independent units
                ref = _mp_mean(lambda z: d[r](norms[i] * z)) * _mp_mean(lambda z: d[s](norms[j] * z))
            else:  # one unit, or two on one line
                ref = _mp_mean(lambda z: d[r](norms[i] * z) * d[s](norms[j] * z))
            assert abs(float(m[i, j]) - ref) < 2e-15, (r, s, i, j)


def test_tanh_population_hessian_without_biases_against_finite_differences():
    # The parity path under forward-over-reverse: the Hessian of R for a 5-3-1 tanh student without biases
    # against central differences of ∇R, and ∇R against the graded rule.
    d = 5
    T, S = ft.MLP((d, 2, 1), "tanh", bias=False), ft.MLP((d, 3, 1), "tanh", bias=False)
    tt, th = T.init(0, scale=d**-0.5), jnp.asarray(S.init(1, scale=d**-0.5))
    risk = lambda x, m="series": gaussian.population_risk(S, x, T, tt, method=m)  # noqa: E731
    assert gaussian.population_rule(S, th, T, tt, method="series").startswith("series")
    grad = jax.jit(jax.grad(risk))
    g_ref = np.asarray(jax.jit(jax.grad(lambda x: risk(x, "graded")))(th))
    assert np.max(np.abs(np.asarray(grad(th)) - g_ref)) < 1e-14 * np.max(np.abs(g_ref))
    hess = np.asarray(jax.jit(jax.hessian(risk))(th))
    h = 1e-5
    fd2 = np.array([(np.asarray(grad(th + h * e)) - np.asarray(grad(th - h * e))) / (2 * h)
                    for e in np.eye(th.size)])
    assert np.all(np.isfinite(hess)) and np.max(np.abs(hess - fd2)) < 1e-8 * max(1.0, np.max(np.abs(hess)))
    assert np.max(np.abs(hess - hess.T)) < 1e-13 * np.max(np.abs(hess))
