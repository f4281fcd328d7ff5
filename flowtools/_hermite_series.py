"""Gaussian pair expectations as a Hermite (Mehler) series in the correlation, with a certified tail.

For u = a + s₁z₁, v = b + s₂z₂ with corr(z₁, z₂) = ρ, Mehler's formula (Mehler 1866; O'Donnell 2014,
"Analysis of Boolean Functions", Prop. 11.33) gives

    E[σ₁(u) σ₂(v)] = Σ_k ρ^k c_k(σ₁; a, s₁) c_k(σ₂; b, s₂),   c_k(σ; a, s) = E[σ(a + s z) h_k(z)],

with h_k = He_k / √k! the orthonormal probabilists' Hermite polynomials. The coefficients belong to one
neuron, not to a pair: K + 1 one-dimensional integrals per neuron, then one dot product per pair, instead of a
2-D rule per pair. By Parseval, Σ_k c_k² = E[σ(a + s z)²], so the tail after K terms obeys (Cauchy–Schwarz)

    |Σ_{k>K} ρ^k c_k d_k| ≤ |ρ|^{K+1} √(T₁ T₂),   T = E[σ(a + s z)²] − Σ_{k≤K} c_k²,

computed from the same integrals (`tail_bound`), plus an allowance `ROUNDOFF`·E[σ²] in each T for the
round-off of the subtraction. The coefficients of tanh(s z) decay like exp(−(π/2s)√(2k)) (the poles of tanh
at ±iπ/2s; softplus: ±iπ/s), so at ρ ≈ 1 K = 255 terms leave T ≤ 3e-14·E[σ²] for tanh up to s ≈ 1.6 and
for softplus up to s ≈ 4, while at |ρ| ≤ 0.5 (random directions) 31 terms suffice. A Hessian needs the orders
up to σ⁗, whose coefficients decay more slowly (c_k(σ′) = √(k+1) c_{k+1}(σ)/s): at ρ ≈ 1, T(σ⁗) at K = 255 is
5e-13·E at s = 1 and 4e-10 at s = 1.2 for tanh, so a student unit on a teacher unit of norm 1 fails there; at
K = 511 it is ≤ 6e-16 up to s = 1.2 and 3e-11 at s = 1.6. `LEVELS` lists the tries, cheapest first; the caller
(flowtools.gaussian) takes the first whose bound passes, else the graded rule.

The integrals: composite Gauss–Legendre, `PANEL_NODES` nodes on each panel over |z| ≤ `CUTOFF`. The panels
are fixed, so the matrix w_j h_k(z_j) is built once (by the three-term recurrence of the normalized
polynomials, h_{k+1} = (z h_k − √k h_{k−1}) / √(k+1), never He_k itself) and the coefficients of a batch of
neurons are one matrix product. If σ(a + s z) is analytic in the strip |Im z| < τ/s, the 16-point rule on a
panel of half-width p errs by O(r^(−32)), r = x + √(x² + 1), x = τ/(s p) (the Bernstein ellipse; Trefethen
2008, Thm. 4.5). Each level's slope limit keeps x ≥ π/2 for tanh (τ = π/2; softplus, sigmoid, silu: τ = π;
gelu is entire): r ≥ 3.4 and r^(−32) ≤ 1e-17. A user's activation with poles nearer the real axis than
tanh's needs `method="graded"`. The panels resolve h_k up to each level's K (zeros ≥ 0.14 apart at
K = 255, ≥ 0.1 at K = 511); truncating at |z| = 9 was checked against the graded rule (tests/test_gaussian_series.py). The
nodes are symmetric and h_k(−z) = (−1)^k h_k(z), so the even and odd coefficients are two products over the
positive half (`fold`): half the work of one product over all nodes.

For the Gram matrix of one activation (`gram`), R and the five Price derivatives its gradient needs
(E[σ′σ], E[σ″σ], E[σ′σ′], …; Price 1958) come from one evaluation of σ, σ′, σ″ at the nodes, one
coefficient pass and one table of ρ^k, with one `lax.cond` on all six bounds (`gram_set`); the Hessian
takes one more evaluation, of the orders up to four. For an odd σ (tanh) without biases, σ^(r) has the
parity of r + 1: half its coefficients vanish, M^(r,s) = 0 when r + s is odd, and the positive nodes suffice
(`gram_values_odd`: half the evaluations and products, the zeros exact).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

#: The tries (K, panel width, slope limit), cheapest first: the series keeps k = 0 … K, on composite
#: Gauss–Legendre panels of that width, for slopes √c up to the limit (panel width × limit ≤ 2, see above).
#: K = 511 stops at slope 2: its coefficients of σ … σ⁗ on panels of 0.5 are within 7e-15·√E[σ^(r)²] of those
#: on panels of 0.25 up to s = 2.5 (2e-13 at s = 3); beyond s = 2 its tails fail at ρ ≈ 1 anyway.
LEVELS = ((31, 1.0, 2.0), (255, 0.5, 4.0), (511, 0.5, 2.0))
#: Gauss–Legendre nodes per panel.
PANEL_NODES = 16
#: The integration range |z| ≤ CUTOFF (Gaussian mass beyond: 2e-19).
CUTOFF = 9.0
#: The series serves a batch when every pair's tail bound is ≤ TOLERANCE·√(E[σ₁²]E[σ₂²]).
TOLERANCE = 1e-13
#: Relative allowance for the round-off of T = E[σ²] − Σ c_k² (a few ulps of a sum of K squares).
ROUNDOFF = 16.0 * np.finfo(np.float64).eps


@functools.lru_cache(maxsize=None)
def basis(terms: int, panel: float):
    """(z, w, G): the nodes, the weights w_j φ(z_j) of the composite rule, and G[j, k] = w_j h_k(z_j)."""
    t, wt = np.polynomial.legendre.leggauss(PANEL_NODES)
    edges = np.linspace(-CUTOFF, CUTOFF, int(round(2.0 * CUTOFF / panel)) + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    z = (lo + 0.5 * (hi - lo) * (t + 1.0)).ravel()
    w = (0.5 * (hi - lo) * wt).ravel() * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    g = np.empty((terms + 1, z.size))
    g[0] = w
    g[1] = z * w
    for k in range(1, terms):
        g[k + 1] = (z * g[k] - np.sqrt(k) * g[k - 1]) / np.sqrt(k + 1.0)
    return z, w, np.ascontiguousarray(g.T)


@functools.lru_cache(maxsize=None)
def half_basis(terms: int, panel: float):
    """(z⁺, w⁺, G⁺): the positive half of the (symmetric) nodes, their weights and G⁺[j, k] = w_j h_k(z_j).
    Since h_k(−z) = (−1)^k h_k(z), c_k = Σ_{z⁺} G⁺[j, k] (f(z_j) ± f(−z_j)) (+ for even k): two products of
    half the size each, so half the work of `basis`'s one."""
    z, w, g = basis(terms, panel)
    pos = z > 0
    assert 2 * int(pos.sum()) == z.size  # no node at 0 (the panel edges include it)
    return z[pos], w[pos], np.ascontiguousarray(g[pos])


def fold(f_pos, f_neg, terms: int, panel: float):
    """c_k for k = 0 … terms from the values f(±z⁺) on the last axis (`half_basis`)."""
    _, _, g = half_basis(terms, panel)
    even = (f_pos + f_neg) @ g[:, 0::2]
    odd = (f_pos - f_neg) @ g[:, 1::2]
    if odd.shape[-1] < even.shape[-1]:
        odd = jnp.concatenate([odd, jnp.zeros_like(even[..., :1])], axis=-1)
    return jnp.stack([even, odd], axis=-1).reshape(even.shape[:-1] + (-1,))[..., :terms + 1]


def coefficients(f, a, c, terms: int, panel: float):
    """(c_k for k = 0 … terms, E[f(u)²]) for u = a + √c z, z ~ N(0, 1); shapes a.shape + (terms + 1,) and
    a.shape."""
    z, w, _ = half_basis(terms, panel)
    a, c = jnp.broadcast_arrays(a, c)
    s = jnp.sqrt(jnp.maximum(c, 0.0))
    fz = f(jnp.concatenate([a[..., None] + s[..., None] * z, a[..., None] - s[..., None] * z], axis=-1))
    f_pos, f_neg = fz[..., :z.size], fz[..., z.size:]
    return fold(f_pos, f_neg, terms, panel), (f_pos * f_pos + f_neg * f_neg) @ w


def correlation(c11, c12, c22):
    """ρ = C₁₂ / √(C₁₁C₂₂) in [−1, 1]; 0 where a unit is flat (its coefficients beyond c₀ vanish)."""
    d = jnp.sqrt(jnp.maximum(c11, 0.0) * jnp.maximum(c22, 0.0))
    ok = d > 0
    return jnp.where(ok, jnp.clip(c12 / jnp.where(ok, d, 1.0), -1.0, 1.0), 0.0)


def powers(rho, n: int):
    """ρ^k for k = 0 … n − 1 on a new last axis, as ρ^(mq + r) = (ρ^m)^q ρ^r with m ≈ √n (2√n products, no
    pow; relative error ≤ 2√n ulps)."""
    m = max(int(np.ceil(np.sqrt(n))), 1)
    low = [jnp.ones_like(rho)]
    for _ in range(m):
        low.append(low[-1] * rho)
    step = low.pop()
    high = [jnp.ones_like(rho)]
    for _ in range(-(-n // m) - 1):
        high.append(high[-1] * step)
    table = jnp.stack(high, axis=-1)[..., :, None] * jnp.stack(low, axis=-1)[..., None, :]
    return table.reshape(rho.shape + (-1,))[..., :n]


def series(c1, c2, rho):
    """Σ_k ρ^k c1_k c2_k (coefficients on the last axis, broadcast against ρ)."""
    return jnp.sum(powers(rho, c1.shape[-1]) * c1 * c2, axis=-1)


def tail_bound(c1, e1, c2, e2, rho):
    """|ρ|^(K+1) √(T₁T₂) ≥ |Σ_{k>K} ρ^k c1_k c2_k| (Parseval and Cauchy–Schwarz), T = E[f²] − Σ_{k≤K} c_k²
    plus the round-off allowance; K + 1 = the length of the coefficient axis."""
    t1 = jnp.maximum(e1 - jnp.sum(c1 * c1, axis=-1), 0.0) + ROUNDOFF * e1
    t2 = jnp.maximum(e2 - jnp.sum(c2 * c2, axis=-1), 0.0) + ROUNDOFF * e2
    return jnp.abs(rho) ** c1.shape[-1] * jnp.sqrt(t1 * t2)


def pair_terms(f1, f2, a, b, c11, c12, c22, level):
    """(value, ok) of the Hermite series of E[f₁(u)f₂(v)] at one of `LEVELS` for a batch of pairs: ok when
    every pair's certified tail is within TOLERANCE of its Cauchy–Schwarz scale √(E[f₁²]E[f₂²]) and every
    slope within the level's limit. The coefficients are computed on the shapes of (a, c11) and (b, c22),
    once per neuron, and broadcast over the pairs."""
    terms, panel, slope_limit = level

    def per_neuron(f, mean, var):  # on flat arrays, so that equal neuron sets are one computation (CSE)
        mean, var = jnp.broadcast_arrays(mean, var)
        c, e = coefficients(f, mean.ravel(), var.ravel(), terms, panel)
        return c.reshape(mean.shape + (terms + 1,)), e.reshape(mean.shape)

    c1, e1 = per_neuron(f1, a, c11)
    c2, e2 = per_neuron(f2, b, c22)
    rho = correlation(c11, c12, c22)
    bound = tail_bound(c1, e1, c2, e2, rho)
    ok = (jnp.all(bound <= TOLERANCE * jnp.sqrt(e1 * e2))
          & jnp.all(c11 <= slope_limit**2) & jnp.all(c22 <= slope_limit**2))
    return series(c1, c2, rho), ok


# ------------------------------------------------------------------ Gram matrices of one activation
# For one activation and neurons u_i = a_i + s_i z_i with covariance C (diagonal c = s²), the matrices
# M^(r,s)_ij = E[σ^(r)(u_i) σ^(s)(u_j)]: off the diagonal the series at one of LEVELS, on it the 1-D rule on
# the same nodes (ρ = 1 is where the series needs the most terms). Every order shares one evaluation of the
# activation at the nodes and one matrix product for the coefficients, and the table of ρ^k is built once;
# the JVP needs the orders (r, s) … (r + 2, s + 2) at once (Price's theorem), so it asks for them together.

def gram_values(derivative, act, pairs, a, C, level=LEVELS[0], odd=False):
    """([M^(r,s) for (r, s) in pairs], ok) at one level; ok when every slope is within the level's limit and
    every off-diagonal tail bound within TOLERANCE of √(E[(σ^(r))²] E[(σ^(s))²]). `derivative(act, r)` is
    σ^(r) as an elementwise function. `odd`: σ is odd and every mean a is 0, so that
    σ^(r)(−x) = (−1)^(r+1) σ^(r)(x) (`gram_values_odd`)."""
    if odd:
        return gram_values_odd(derivative, act, pairs, C, level)
    terms, panel, slope_limit = level
    z, w, _ = half_basis(terms, panel)
    n, h = C.shape[0], z.size
    c = jnp.diagonal(C)
    slope = jnp.sqrt(jnp.maximum(c, 0.0))[:, None]
    u = jnp.concatenate([a[:, None] + slope * z, a[:, None] - slope * z], axis=-1)
    orders = sorted({o for pair in pairs for o in pair})
    values = jnp.concatenate([derivative(act, o)(u) for o in orders])
    coef = fold(values[:, :h], values[:, h:], terms, panel)           # one pass for every order
    values = {o: values[i * n:(i + 1) * n] for i, o in enumerate(orders)}
    coef = {o: coef[i * n:(i + 1) * n] for i, o in enumerate(orders)}

    def mean(x, y):  # E[x y] by the 1-D rule
        return (x[:, :h] * y[:, :h] + x[:, h:] * y[:, h:]) @ w

    energy = {o: mean(values[o], values[o]) for o in orders}
    return _series_matrices(pairs, coef, energy, lambda r, s: mean(values[r], values[s]), C, c, level)


def gram_values_odd(derivative, act, pairs, C, level):
    """`gram_values` for an odd σ and zero means. σ^(r) then has the parity of r + 1, so its coefficients
    c_k vanish for k of the other parity, M^(r,s) vanishes when r + s is odd (E[σ^(r)(u)σ^(s)(v)] changes
    sign under (u, v) → (−u, −v)), and the 1-D rule needs the positive nodes only: half the evaluations and
    half the products of `gram_values`."""
    terms, panel, slope_limit = level
    z, w, g = half_basis(terms, panel)
    n = C.shape[0]
    c = jnp.diagonal(C)
    u = jnp.sqrt(jnp.maximum(c, 0.0))[:, None] * z
    orders = sorted({o for pair in pairs for o in pair})
    values = {o: derivative(act, o)(u) for o in orders}
    # c_k = 2 Σ_{z⁺} G⁺[j, k] σ^(r)(z_j) for k of the parity of r + 1 (and 0 otherwise): the odd functions in
    # one product with the odd columns, the even ones in one with the even columns.
    coef = {}
    for parity in (0, 1):
        group = [o for o in orders if o % 2 == parity]
        if group:
            prod = (2.0 * jnp.concatenate([values[o] for o in group])) @ g[:, 1 - parity::2]
            coef.update({o: prod[i * n:(i + 1) * n] for i, o in enumerate(group)})
    # Every 1-D mean in one product: E[σ^(r)σ^(s)] = 2 Σ_{z⁺} w_j σ^(r)(z_j) σ^(s)(z_j) when r + s is even.
    squares = sorted({(o, o) for o in orders} | {tuple(sorted(p)) for p in pairs if sum(p) % 2 == 0})
    means = dict(zip(squares, (2.0 * jnp.stack([values[r] * values[s] for r, s in squares])) @ w))
    energy = {o: means[o, o] for o in orders}
    return _series_matrices(pairs, coef, energy, lambda r, s: means[tuple(sorted((r, s)))], C, c, level,
                            odd=True)


def _series_matrices(pairs, coef, energy, diagonal, C, c, level, odd=False):
    """([M^(r,s) for (r, s) in pairs], ok) from each order's coefficients `coef[r]` and E[(σ^(r))²]
    `energy[r]` (per neuron) and the 1-D means `diagonal(r, s)`: the series off the diagonal, with each
    pair's tail bound. `odd`: the coefficients hold only the k of σ^(r)'s parity (`gram_values_odd`), and
    pairs with r + s odd are exactly 0."""
    terms, _, slope_limit = level
    tail = {o: jnp.maximum(energy[o] - jnp.sum(coef[o] * coef[o], axis=-1), 0.0) + ROUNDOFF * energy[o]
            for o in energy}
    off = ~np.eye(C.shape[0], dtype=bool)
    rho = jnp.where(off, correlation(c[:, None], C, c[None, :]), 0.0)
    # ρ^k for the k that carry the coefficients: all of them, or those of one parity (from ρ²)
    tables = {} if odd else {None: powers(rho, terms + 1)}
    reach = jnp.abs(rho) ** (terms + 1)
    ok = jnp.all(c <= slope_limit**2)
    out = []
    for r, s in pairs:
        if odd and (r + s) % 2:
            out.append(jnp.zeros_like(C))  # exactly: the integrand is odd
            continue
        parity = 1 - r % 2 if odd else None
        if parity not in tables:
            tables[parity] = powers(rho * rho, coef[r].shape[-1]) * (rho[..., None] if parity else 1.0)
        bound = reach * jnp.sqrt(tail[r][:, None] * tail[s][None, :])
        ok &= jnp.all(bound <= TOLERANCE * jnp.sqrt(energy[r][:, None] * energy[s][None, :]))
        value = jnp.sum(tables[parity] * coef[r][:, None, :] * coef[s][None, :, :], axis=-1)
        out.append(jnp.where(off, value, jnp.diag(diagonal(r, s))))
    return out, ok


def _first_level(derivative, act, pairs, a, C, otherwise, odd=False):
    """`gram_values` at the first of LEVELS that passes, else `otherwise()`; only the branch taken runs."""
    result = otherwise
    for level in reversed(LEVELS):
        def attempt(level=level, otherwise=result):
            values, ok = gram_values(derivative, act, pairs, a, C, level, odd)
            return jax.lax.cond(ok, lambda: tuple(values), otherwise)
        result = attempt
    return result()


def _price_orders(r, s):
    """M^(r,s) and the orders of its Price derivatives: ∂/∂a_i, ∂/∂a_j, 2∂/∂C_ii, 2∂/∂C_jj, ∂/∂C_ij."""
    return ((r, s), (r + 1, s), (r, s + 1), (r + 2, s), (r, s + 2), (r + 1, s + 1))


def price_closure(pairs):
    """The orders that the JVP of M^(r,s) for every (r, s) in `pairs` needs (the pairs themselves included)."""
    return tuple(sorted({q for p in pairs for q in _price_orders(*p)}))


@functools.lru_cache(maxsize=None)
def gram_set(derivative, fallback, act, has_bias: bool, pairs: tuple):
    """(M^(r,s)(a, C) for (r, s) in `pairs`), C's diagonal the variances: one evaluation at the first of LEVELS
    where all pass, else all by `fallback(act, has_bias, pairs, a, C)` (one pass of the graded rule for every
    order: a flow inlines this evaluation at three orders in several kernels, and a per-pair fallback with
    its own levels multiplied its compile); one `lax.cond` per level. Differentiable to any order by Price's theorem,
    dM_ij = M^(r+1,s) da_i + M^(r,s+1) da_j + ½M^(r+2,s) dC_ii + ½M^(r,s+2) dC_jj + M^(r+1,s+1) dC_ij
    (on the diagonal too), with every matrix of the next order from one more evaluation
    (`gram_set` of `price_closure(pairs)`): R is one evaluation, R and ∇R one more, the Hessian a third."""

    # Under vmap (a flow's saved states) a batched `lax.cond` runs both branches, the graded fallback of every
    # order included (19.6 GiB for a width-3 flow's states): map the batch instead, so each state runs one.
    @jax.custom_batching.sequential_vmap
    def evaluate(a, C):
        # For an odd σ and zero means, M^(r,s) = 0 when r + s is odd (`gram_values_odd`): exactly, on every
        # branch, the graded fallback included.
        odd = act.odd and not has_bias
        live = tuple(p for p in pairs if not (odd and sum(p) % 2))
        values = {}
        if live:
            fell_back = lambda: tuple(fallback(act, has_bias, live, a, C))  # noqa: E731
            values = dict(zip(live, _first_level(derivative, act, live, a, C, fell_back, odd)))
        return tuple(values[p] if p in values else jnp.zeros_like(C) for p in pairs)

    @jax.custom_jvp
    def m(a, C):
        return evaluate(a, C)

    @m.defjvp
    def m_jvp(primals, tangents):
        da, dC = tangents
        wider = price_closure(pairs)
        values = dict(zip(wider, gram_set(derivative, fallback, act, has_bias, wider)(*primals)))
        dd = jnp.diagonal(dC)
        tangent = tuple(values[(r + 1, s)] * da[:, None] + values[(r, s + 1)] * da[None, :]
                        + 0.5 * (values[(r + 2, s)] * dd[:, None] + values[(r, s + 2)] * dd[None, :])
                        + values[(r + 1, s + 1)] * dC for r, s in pairs)
        return tuple(values[pair] for pair in pairs), tangent

    return m


def gram(derivative, fallback, act, has_bias: bool, r: int, s: int):
    """M^(r,s)(a, C) alone (`gram_set`)."""
    one = gram_set(derivative, fallback, act, has_bias, ((r, s),))
    return lambda a, C: one(a, C)[0]
