"""Gaussian expectations over pairs of pre-activations, and the exact population risk of depth-2 nets.

For x ~ N(0, I_d) and a depth-2 network f(x) = V σ(W x + b) + c, every term of
E_x ‖f_s(x) − f_t(x)‖² is an expectation over one pair (u, v) = (w_i·x + b_i, w'_j·x + b'_j) of
pre-activations, a 2-D Gaussian with covariance [[w_i·w_i, w_i·w'_j], [·, w'_j·w'_j]]. So the population
risk is a sum of 2-D integrals in any input dimension d (Saad & Solla 1995; Goldt et al. 2019; the
reduction behind MLPGradientFlow.jl, Brea et al. 2023).

Closed forms:

- erf-type units σ(z) = erf(αz) (`"erf"`, α = 1; `"scaled_erf"`, α = 1/√2), no bias:
  E[σ(u)σ(v)] = (2/π) arcsin(2α²C₁₂ / √((1 + 2α²C₁₁)(1 + 2α²C₂₂)))  (Williams 1997; Saad & Solla 1995);
  with a bias, the mean E[erf(α(u + a))] = erf(αa / √(1 + 2α²C)).
- ReLU, no bias: the arc-cosine kernel of Cho & Saul (2009),
  E[relu(u)relu(v)] = (√det + C₁₂ (π − θ)) / (2π), det = C₁₁C₂₂ − C₁₂², θ = atan2(√det, C₁₂);
  with a bias, the mean a Φ(a/s) + s φ(a/s).
- linear units: E[(u + a)(v + b)] = C₁₂ + ab.

Accuracy at the edges of the landscape. arccos of a rounded cosine and √(C₁₁C₂₂ − C₁₂²) of rounded
products lose half the digits where neurons align (arccos(1 − δ) ≈ √(2δ)): R came out at −6e-9 for
W = I + 1e-8·D against V = I, and ∂²/∂C₁₂² of the ReLU kernel blows up like 1/sin θ, so Hessians were NaN
there although the loss is C² (κ(θ) = sin θ + (π − θ) cos θ = π − πθ²/2 + θ³/3 + …). Therefore:

- In covariances (`pair_expectation`), det comes from a compensated product (Dekker 1971) and θ from
  atan2, so the kernel is exact to round-off of the given C's at |ρ| = 1 as well.
- For depth-2 nets without hidden biases and closed-form units (ReLU, erf-type, linear),
  `population_risk` and `population_terms` work with the weight vectors (`flowtools._closed_kernels`):
  angles from atan2(‖u⊥‖, u·ŵ) with u⊥ taken from the difference u ∓ w, exact in float64 near ±w;
  Hessians from the closed-form limits of E[H(w·x)H(u·x)xxᵀ] and E[δ(w·x)relu(u·x)xxᵀ].
- `population_risk` anchors each student neuron at a teacher neuron (after a sign flip for odd units,
  at a rescaled one for ReLU, or at 0) and writes R and ∇R through K(w, a) − K(w, b) and
  ∂K(w, a)/∂w − ∂K(w, b)/∂w in closed form in Δ = a − b, so nothing O(1) cancels to O(‖Δ‖), also at
  redundant global minima (split, flipped, rescaled or zero units; `flowtools._closed_kernels`). Measured against mpmath at 50 digits in Safran & Shamir's setting (V = I,
  W = I + εD, second layer frozen at 1, k = 3, 6, 10; tests/test_gaussian_edges.py): ∇R to 1e-16–3e-16
  relative for ε from 1e-12 to 1e-2 (the sums of pair terms: 1e-4 at ε = 1e-12, 8e-2 at ε = 1e-8);
  R = 0 exactly at W = V and at its permutations, and R ≥ 0 on the grid; R itself is a sum of O(ε)
  differences, with absolute error O(ε_mach·ε) (relative ≤ 5e-5 at ε = 1e-12); Hessians finite at
  aligned, anti-aligned and coincident units, within 3e-8 of central differences of ∇R (h = 1e-7, the
  O(h) error of a C² function). At a zero unit, K = 0 and ∂K/∂w = u/4 (the mean over directions of ŵ).
  The jitted gradient at k = 10 ReLU costs 39 µs (54 µs for the covariance form it replaces).

ReLU with biases: the inner expectation over v given u in closed form (the mean above), the outer one by
Gauss–Legendre on the half-line u > 0 where the integrand is smooth (spectral convergence: 1e-15 at 32
nodes). Everything else (tanh, sigmoid, softplus, gelu, silu, user callables, erf with biases) uses
a tensor-product Gauss–Hermite rule of `n_nodes` (96) nodes per axis. It is fast but not exact for steep
units: tanh is analytic only in the strip |Im z| < π/(2‖w‖), so its error grows with the norm, 3e-11 of
√(E[σ(u)²]E[σ(v)²]) at norm 1, 1e-5 at 2, 6e-4 at 3, 1e-2 at 5, 5e-2 at 10 (softplus: 9e-14 at 2, 5e-10
at 3, 9e-5 at 10). `method="graded"` keeps the closed forms and replaces that rule by composite
Gauss–Legendre in the Cholesky coordinates of the pair, on panels graded geometrically around the point
where the unit turns (`flowtools._graded_rule`): its error does not grow with the weight norm, within
2e-15 of mpmath and nested adaptive quadrature for tanh and softplus pairs at norms 0.5–10 and
correlations 0, 0.5, 0.9, 0.999, ±1 (tests/test_gaussian_graded.py, benchmarks/pair_rule_accuracy.py),
at 23–150× the cost and far more memory (300² nodes per pair). For smooth σ the derivatives with respect to means and covariances come from Price's
theorem (Price 1958): ∂E[g]/∂a = E[σ'…], ∂E[g]/∂C₁₂ = E[σ₁'σ₂'], ∂E[g]/∂C₁₁ = ½E[σ₁''σ₂], each by the
same rule, so gradients and Hessians stay exact and finite where the Cholesky factor is singular (a student
unit equal to a teacher unit, zero weights). Without a closed form, ReLU pairs go through the half-line
rule above, never through a 2-D rule (a kink converges algebraically).

`method="series"` keeps the closed forms and writes every other pair as a Hermite series in the
correlation, E[σ(a + s₁z₁)σ(b + s₂z₂)] = Σ_k ρ^k c_k(a, s₁) c_k(b, s₂) (Mehler's formula;
`flowtools._hermite_series`): the coefficients are 1-D integrals per neuron, so a pair costs one dot product
of K + 1 terms instead of 96² evaluations of σ. Parseval's identity bounds the tail after K terms by
|ρ|^(K+1) √(T₁T₂), T = E[σ²] − Σ_{k≤K} c_k², from the same integrals. A batch of pairs takes K = 31 terms
where every pair's bound is ≤ 1e-13 of √(E[σ(u)²]E[σ(v)²]) and the slopes are ≤ 2, else K = 255 (slopes ≤ 4),
else K = 511 (slopes ≤ 2), else the graded rule for the whole batch (`lax.cond`, so only the branch taken runs; under `vmap` both run);
the diagonal E[σ(u_i)²] of a Gram matrix comes from the 1-D rule. Price's theorem gives the derivatives
as series of σ', σ''. For the Gram matrix of one activation, R and its five Price derivatives come from one
evaluation of σ, σ', σ'' at the nodes, one coefficient pass and one check for all six
(`_hermite_series.gram`); where that fails at every level, the graded rule takes every order in one pass (a batch under vmap is mapped, so each state runs one branch). K = 31 serves random directions (|ρ| ≲ 0.5); K = 255 serves
ρ = ±1 for tanh up to norm ≈ 1.6 and softplus up to ≈ 4 (the width study's flows stay at norms ≤ 1.6); K = 511
serves the Hessian's orders (up to σ⁗) at ρ ≈ 1 for tanh at norms just above 1, where a student unit sits on a
teacher unit.
`population_rule` says which rule R used. Measured (tests/test_gaussian_series.py): within 2e-15 of
mpmath at ρ = ±1 and ρ = 0, within 1e-13 of the graded rule at norms 0.3–1.6, ρ from −1 to 1 and
biases; R and ∇R within 1e-12 relative (or 1e-15 absolute where R is a small difference) of the graded
rule. Speed at d = 50 against the 96² rule: see docs/api/population.md. It stays opt-in: its first
compile takes longer (it compiles the graded fallback too), and "auto" switching would move the width
study's published losses by the Gauss–Hermite error (≤ 2e-6 for tanh), which has not been rerun.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from . import _checks, _closed_kernels, _graded_rule, _hermite_series
from ._closed_kernels import two_product
from .activations import ACTIVATIONS, Activation, get_activation
from .models import MLP

__all__ = ["pair_expectation", "mean_expectation", "population_risk", "population_terms",
           "has_closed_form", "has_exact_risk", "population_rule", "DEFAULT_NODES"]

#: Nodes per axis of `method="gauss_hermite"` (and of the half-line rule for ReLU with biases).
DEFAULT_NODES = 96
_METHODS = ["auto", "series", "graded", "quadrature", "gauss_hermite"]
#: Methods that use the closed forms where they exist.
_CLOSED_METHODS = ("auto", "series", "graded")
#: Methods whose pairs without a closed form go through the Hermite series (with its graded fallback).
_SERIES_METHODS = ("series",)

_ERF_SCALE = {"erf": 1.0, "scaled_erf": 1.0 / np.sqrt(2.0)}


def _erf_alpha(act: Activation) -> float | None:
    for name, alpha in _ERF_SCALE.items():
        if act == ACTIVATIONS[name]:
            return alpha
    return None


def _kind(act: Activation) -> str:
    if _erf_alpha(act) is not None:
        return "erf"
    if act == ACTIVATIONS["relu"]:
        return "relu"
    if act == ACTIVATIONS["linear"]:
        return "linear"
    return "other"


def _vector_kind(act_a: Activation, act_b: Activation):
    """(kind, α_a, α_b) when E[σ_a(w·x) σ_b(u·x)] without biases has a closed form in the vectors, else None."""
    ka, kb = _kind(act_a), _kind(act_b)
    if ka != kb:
        return None
    if ka == "erf":
        return "erf", _erf_alpha(act_a), _erf_alpha(act_b)
    if ka in ("relu", "linear"):
        return ka, 1.0, 1.0
    return None


def has_closed_form(act_a, act_b, bias: bool = False) -> bool:
    """Whether E[σ_a(u)σ_b(v)] has a closed form here (otherwise the 2-D rule is used)."""
    ka, kb = _kind(get_activation(act_a)), _kind(get_activation(act_b))
    if ka == kb == "linear":
        return True
    return not bias and ka == kb and ka in ("erf", "relu")


# ------------------------------------------------------------------ Gauss–Hermite machinery
@functools.lru_cache(maxsize=None)
def _hermite(n: int):
    """Probabilists' Gauss–Hermite nodes and weights normalised to the N(0, 1) density."""
    z, w = scipy.special.roots_hermitenorm(n)
    w = w / np.sqrt(2.0 * np.pi)
    keep = w > 1e-30 * w.max()  # tail nodes cannot change a float64 sum
    return z[keep], w[keep]


@functools.lru_cache(maxsize=None)
def _derivative(act: Activation, order: int):
    """σ^(order) as an elementwise function (forward-mode, so it works on any array shape)."""
    if order == 0:
        return act.fn
    lower = _derivative(act, order - 1)
    return lambda z: jax.jvp(lower, (z,), (jnp.ones_like(z),))[1]


def _safe_sqrt(x):
    return jnp.sqrt(jnp.maximum(x, 0.0))


def _cholesky(c11, c12, c22):
    l11 = _safe_sqrt(c11)
    pos = l11 > 0
    l21 = jnp.where(pos, c12 / jnp.where(pos, l11, 1.0), 0.0)
    l22 = _safe_sqrt(c22 - l21 * l21)
    return l11, l21, l22


def _gh_pair(f1, f2, n, a, b, c11, c12, c22):
    z, w = _hermite(n)
    l11, l21, l22 = _cholesky(c11, c12, c22)
    e = (...,) + (None,)
    u = a[e] + l11[e] * z                                                   # (..., n)
    v = (b[..., None, None] + l21[..., None, None] * z[:, None]
         + l22[..., None, None] * z[None, :])                               # (..., n, n)
    inner = jnp.sum(w * f2(v), axis=-1)
    return jnp.sum(w * f1(u) * inner, axis=-1)


def _gh_mean(f, n, a, c):
    z, w = _hermite(n)
    return jnp.sum(w * f(a[..., None] + _safe_sqrt(c)[..., None] * z), axis=-1)


def _graded_pair(f1, f2, a, b, c11, c12, c22, has_bias):
    a, b, c11, c12, c22 = jnp.broadcast_arrays(a, b, c11, c12, c22)
    l11, l21, l22 = _cholesky(c11, c12, c22)
    return _graded_rule.pair(f1, f2, a, b, l11, l21, l22, has_bias)


_jit_series_terms = jax.jit(_hermite_series.pair_terms, static_argnums=(0, 1, 7))


def _series_pair(f1, f2, a, b, c11, c12, c22, has_bias):
    """The Hermite series at the first of `_hermite_series.LEVELS` that passes for the whole batch, else the
    graded rule for the whole batch (one branch runs)."""
    shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in (a, b, c11, c12, c22)))
    result = lambda: _graded_pair(f1, f2, a, b, c11, c12, c22, has_bias)  # noqa: E731
    for level in reversed(_hermite_series.LEVELS):
        def attempt(level=level, otherwise=result):
            value, ok = _hermite_series.pair_terms(f1, f2, a, b, c11, c12, c22, level)
            return jax.lax.cond(ok, lambda: jnp.broadcast_to(value, shape), otherwise)
        result = attempt
    return result()


def _rule_pair(f1, f2, n, a, b, c11, c12, c22, has_bias):
    """The graded rule (n None), the Hermite series with its fallback (n "series") or the n² Gauss–Hermite
    rule."""
    if n is None:
        return _graded_pair(f1, f2, a, b, c11, c12, c22, has_bias)
    if n == "series":
        return _series_pair(f1, f2, a, b, c11, c12, c22, has_bias)
    return _gh_pair(f1, f2, n, a, b, c11, c12, c22)


def _rule_mean(f, n, a, c):
    if n is None or n == "series":  # one 1-D rule per neuron: the graded one is cheap here
        return _graded_rule.mean(f, *jnp.broadcast_arrays(a, c))
    return _gh_mean(f, n, a, c)


@functools.lru_cache(maxsize=None)
def _price_pair(act_a: Activation, act_b: Activation, na: int, nb: int, n: int | str | None,
                has_bias: bool = True):
    """E[σ_a^(na)(u) σ_b^(nb)(v)] with its JVP from Price's theorem (exact, finite when C is singular);
    by the graded rule (n None), the Hermite series (n "series") or the n² Gauss–Hermite rule."""
    f1, f2 = _derivative(act_a, na), _derivative(act_b, nb)

    def rule(a, b, c11, c12, c22):
        return _rule_pair(f1, f2, n, a, b, c11, c12, c22, has_bias)

    if n is None or n == "series":
        # The graded rule holds ~300² nodes per pair and order (and the series' fallback is that rule, which a
        # batched `lax.cond` runs too): vmapped over states it multiplies that by the batch (150 GB for the
        # higher-order test's 512 rows at width 7). Map a batch one state at a time instead.
        rule = jax.custom_batching.sequential_vmap(rule)

    @jax.custom_jvp
    def g(a, b, c11, c12, c22):
        return rule(a, b, c11, c12, c22)

    @g.defjvp
    def g_jvp(primals, tangents):
        da, db, d11, d12, d22 = tangents
        out = g(*primals)
        pa = _price_pair(act_a, act_b, na + 1, nb, n, has_bias)(*primals)
        pb = _price_pair(act_a, act_b, na, nb + 1, n, has_bias)(*primals)
        p11 = _price_pair(act_a, act_b, na + 2, nb, n, has_bias)(*primals)
        p12 = _price_pair(act_a, act_b, na + 1, nb + 1, n, has_bias)(*primals)
        p22 = _price_pair(act_a, act_b, na, nb + 2, n, has_bias)(*primals)
        return out, pa * da + pb * db + 0.5 * p11 * d11 + p12 * d12 + 0.5 * p22 * d22

    return g


@functools.lru_cache(maxsize=None)
def _price_mean(act: Activation, order: int, n: int | str | None):
    f = _derivative(act, order)

    @jax.custom_jvp
    def m(a, c):
        return _rule_mean(f, n, a, c)

    @m.defjvp
    def m_jvp(primals, tangents):
        da, dc = tangents
        return (m(*primals), _price_mean(act, order + 1, n)(*primals) * da
                + 0.5 * _price_mean(act, order + 2, n)(*primals) * dc)

    return m


@functools.lru_cache(maxsize=None)
def _price_square(act: Activation, i: int, j: int):
    """E[σ^(i)(u) σ^(j)(u)], u ~ N(a, c), by the first series level's panels where its slope limit holds
    for the batch, else by the graded 1-D rule; with its JVP from Price's theorem:
    ∂/∂a = E[σ^(i+1)σ^(j)] + E[σ^(i)σ^(j+1)], ∂/∂c = ½ ∂²/∂a²."""
    fi, fj = _derivative(act, i), _derivative(act, j)

    def product(u):
        return fi(u) * fj(u)

    @jax.custom_jvp
    def m(a, c):
        a, c = jnp.broadcast_arrays(a, c)
        # The first series level's panels where its slope limit holds (no extra evaluations), else graded.
        terms, panel, slope_limit = _hermite_series.LEVELS[0]
        z, w, _ = _hermite_series.basis(terms, panel)
        s = jnp.sqrt(jnp.maximum(c, 0.0))
        uniform = lambda: product(a[..., None] + s[..., None] * z) @ w  # noqa: E731
        return jax.lax.cond(jnp.all(c <= slope_limit**2), uniform, lambda: _graded_rule.mean(product, a, c))

    @m.defjvp
    def m_jvp(primals, tangents):
        da, dc = tangents
        d1 = _price_square(act, i + 1, j)(*primals) + _price_square(act, i, j + 1)(*primals)
        d2 = (_price_square(act, i + 2, j)(*primals) + 2.0 * _price_square(act, i + 1, j + 1)(*primals)
              + _price_square(act, i, j + 2)(*primals))
        return m(*primals), d1 * da + 0.5 * d2 * dc

    return m


# ------------------------------------------------------------------ closed forms
def _erf_pair(alpha_a, alpha_b, c11, c12, c22):
    s = 2.0 * alpha_a * alpha_b * c12 / jnp.sqrt((1.0 + 2.0 * alpha_a**2 * c11) * (1.0 + 2.0 * alpha_b**2 * c22))
    return (2.0 / jnp.pi) * jnp.arcsin(s)


def _det(c11, c12, c22):
    """C₁₁C₂₂ − C₁₂² to a few ulps of the products even when they cancel (rounded products lose √ε in θ)."""
    p1, e1 = two_product(c11, c22)
    p2, e2 = two_product(c12, c12)
    return jnp.maximum((p1 - p2) + (e1 - e2), 0.0)


def _relu_angle(c11, c12, c22):
    """θ = atan2(√det, C₁₂): no arccos of a rounded cosine (arccos(1 − δ) ≈ √(2δ)); π/2 for a zero unit."""
    return jnp.where(c11 * c22 > 0, jnp.arctan2(jnp.sqrt(_det(c11, c12, c22)), c12), 0.5 * jnp.pi)


@jax.custom_jvp
def _relu_pair(c11, c12, c22):
    return (jnp.sqrt(_det(c11, c12, c22)) + c12 * (jnp.pi - _relu_angle(c11, c12, c22))) / (2.0 * jnp.pi)


@_relu_pair.defjvp
def _relu_pair_jvp(primals, tangents):
    # Price's theorem for the kernel: ∂/∂C₁₂ = E[H(u)H(v)] = (π − θ)/(2π), ∂/∂C₁₁ = √det / (4π C₁₁).
    # Its second derivatives blow up like 1/sin θ in these coordinates; the population risk of weight
    # vectors uses flowtools._closed_kernels, where the limits are finite.
    c11, c12, c22 = primals
    d11, d12, d22 = tangents
    det = jnp.sqrt(_det(c11, c12, c22))
    g11 = jnp.where(c11 > 0, det / (4.0 * jnp.pi * jnp.where(c11 > 0, c11, 1.0)), 0.0)
    g22 = jnp.where(c22 > 0, det / (4.0 * jnp.pi * jnp.where(c22 > 0, c22, 1.0)), 0.0)
    g12 = (jnp.pi - _relu_angle(c11, c12, c22)) / (2.0 * jnp.pi)
    return _relu_pair(c11, c12, c22), g11 * d11 + g12 * d12 + g22 * d22


@functools.lru_cache(maxsize=None)
def _legendre(n: int):
    return np.polynomial.legendre.leggauss(n)


def _half_line(a, l, g, n):
    """∫ relu(a + l z) g(z) φ(z) dz by Gauss–Legendre on {a + l z > 0}, where the integrand is smooth."""
    pos = l > 0
    z0 = jnp.where(pos, -a / jnp.where(pos, l, 1.0), -10.0)
    lo = jnp.clip(z0, -10.0, 10.0)
    hi = jnp.maximum(lo, 0.0) + 10.0  # φ(10) ≈ 8e-23
    t, wt = _legendre(n)
    e = (...,) + (None,)
    z = 0.5 * (hi - lo)[e] * t + 0.5 * (hi + lo)[e]
    f = jax.nn.relu(a[e] + l[e] * z) * g(z) * jax.scipy.stats.norm.pdf(z)
    val = 0.5 * (hi - lo) * jnp.sum(wt * f, axis=-1)
    return val, pos


def _relu_pair_bias(a, b, c11, c12, c22, n):
    """E[relu(u) relu(v)] with means: the inner expectation over v | u in closed form (the ReLU mean),
    the outer one on the half-line u > 0."""
    l11, l21, l22 = _cholesky(c11, c12, c22)
    e = (...,) + (None,)
    val, pos = _half_line(a, l11, lambda z: _relu_mean(b[e] + l21[e] * z, (l22 * l22)[e]), n)
    return jnp.where(pos, val, jax.nn.relu(a) * _relu_mean(b, c22))


def _relu_mean_quadrature(a, c, n):
    val, pos = _half_line(a, _safe_sqrt(c), lambda z: 1.0, n)
    return jnp.where(pos, val, jax.nn.relu(a))


def _relu_mean(a, c):
    s = _safe_sqrt(c)
    pos = s > 0
    ss = jnp.where(pos, s, 1.0)
    val = a * jax.scipy.stats.norm.cdf(a / ss) + ss * jax.scipy.stats.norm.pdf(a / ss)
    return jnp.where(pos, val, jax.nn.relu(a))


# ------------------------------------------------------------------ public expectations
def _broadcast(*xs):
    xs = [jnp.asarray(x, dtype=jnp.float64) for x in xs]
    return jnp.broadcast_arrays(*xs)


def pair_expectation(act_a, act_b, mean_a, mean_b, c_aa, c_ab, c_bb, *, n_nodes: int = DEFAULT_NODES,
                     method: str = "auto"):
    """E[σ_a(u) σ_b(v)] for (u, v) Gaussian with means (mean_a, mean_b) and covariance
    [[c_aa, c_ab], [c_ab, c_bb]]; vectorised over broadcast arrays, traceable and differentiable.

    `method="auto"` uses a closed form where one exists (see the module docstring) and the
    tensor-product Gauss–Hermite rule with `n_nodes` per axis otherwise, accurate only for small norms
    (96 nodes, E[tanh(sz)²]: 1e-11 at s = 1, 6e-6 at s = 2, 4e-4 at s = 3, 4e-2 at s = 10);
    `"graded"` the closed forms and otherwise the graded rule (`flowtools._graded_rule`, within 1e-13 of
    mpmath for norms up to 32, 23–150× slower); `"series"` the closed forms and otherwise the Hermite series
    in the correlation with a certified tail, falling back to the graded rule where the tail bound is not
    within 1e-13 (module docstring); `"quadrature"` forces the graded rule everywhere (for checks);
    `"gauss_hermite"` forces the Gauss–Hermite rule everywhere.
    """
    act_a, act_b = get_activation(act_a), get_activation(act_b)
    method = _checks.choice("method", method, _METHODS)
    n_nodes = _checks.positive_int("n_nodes", n_nodes, minimum=2)
    a, b, c11, c12, c22 = _broadcast(mean_a, mean_b, c_aa, c_ab, c_bb)
    has_bias = not (_is_zero(a) and _is_zero(b))
    return _jit_pair(act_a, act_b, n_nodes, method, has_bias, a, b, c11, c12, c22)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _jit_pair(act_a, act_b, n, method, has_bias, a, b, c11, c12, c22):
    return _pair(act_a, act_b, a, b, c11, c12, c22, n, method, has_bias)


def _pair(act_a, act_b, a, b, c11, c12, c22, n, method, has_bias):
    """`has_bias` is a static hint (None: decide from the values, possible only outside tracing)."""
    ka, kb = _kind(act_a), _kind(act_b)
    if has_bias is None:
        has_bias = not (_is_zero(a) and _is_zero(b))
    if method in _CLOSED_METHODS:
        if ka == kb == "linear":
            return c12 + a * b
        if not has_bias and ka == kb == "erf":
            return _erf_pair(_erf_alpha(act_a), _erf_alpha(act_b), c11, c12, c22)
        if ka == kb == "relu" and not has_bias:
            return _relu_pair(c11, c12, c22)
    if ka == kb == "relu":
        return _relu_pair_bias(a, b, c11, c12, c22, n)
    rule = _rule(method, n)
    if act_a.smooth and act_b.smooth:
        return _price_pair(act_a, act_b, 0, 0, rule, has_bias)(a, b, c11, c12, c22)
    # A kink converges algebraically in the Hermite series: non-smooth units take the graded rule.
    return _rule_pair(act_a.fn, act_b.fn, None if rule == "series" else rule, a, b, c11, c12, c22, has_bias)


def _rule(method, n):
    """The rule for pairs without a closed form: None (graded), "series", or n (Gauss–Hermite n²)."""
    if method in ("quadrature", "graded"):
        return None
    if method in _SERIES_METHODS:
        return "series"
    return n


def _own_rule(act_a, act_b, has_bias) -> bool:
    """Whether the pairs of (act_a, act_b) have a rule of their own: a closed form, or ReLU's."""
    return has_closed_form(act_a, act_b, has_bias) or _kind(act_a) == _kind(act_b) == "relu"


def _per_neuron(act_a, act_b, method, has_bias=False) -> bool:
    """Whether the pairs of (act_a, act_b) go through the Hermite series, whose cost is per neuron (erf
    units with biases do: they have no closed form here)."""
    return (method in _SERIES_METHODS and act_a.smooth and act_b.smooth
            and not _own_rule(act_a, act_b, has_bias))


def _block_biases(ms, mt, method, s_bias: bool, t_bias: bool) -> tuple[bool, list]:
    """How `population_terms` splits R: (one Gram matrix for student and teacher, the bias flag of the
    student–teacher, student–student and teacher–teacher pairs). One activation through the series
    makes one Gram matrix with either model's biases; otherwise the cross pairs take either model's and
    each model's own pairs its own."""
    has_bias = s_bias or t_bias
    joint = ms == mt and _per_neuron(ms, mt, method, has_bias)
    return joint, [has_bias] * 3 if joint else [has_bias, s_bias, t_bias]


def _is_zero(x):
    try:
        return bool(np.all(np.asarray(x) == 0.0))
    except jax.errors.TracerArrayConversionError:
        return False


def mean_expectation(act, mean, var, *, n_nodes: int = DEFAULT_NODES, method: str = "auto"):
    """E[σ(u)] for u ~ N(mean, var); closed forms for erf-type, ReLU and linear units, a quadrature rule
    otherwise (`method` as in `pair_expectation`)."""
    act = get_activation(act)
    method = _checks.choice("method", method, _METHODS)
    n_nodes = _checks.positive_int("n_nodes", n_nodes, minimum=2)
    a, c = _broadcast(mean, var)
    return _jit_mean(act, n_nodes, method, a, c)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _jit_mean(act, n, method, a, c):
    return _mean(act, a, c, n, method)


def _mean(act, a, c, n, method):
    kind = _kind(act)
    if method in _CLOSED_METHODS:
        if kind == "erf":
            alpha = _erf_alpha(act)
            return jax.scipy.special.erf(alpha * a / jnp.sqrt(1.0 + 2.0 * alpha**2 * c))
        if kind == "relu":
            return _relu_mean(a, c)
        if kind == "linear":
            return a
    if kind == "relu":
        return _relu_mean_quadrature(a, c, n)
    rule = _rule(method, n)
    if act.smooth:
        return _price_mean(act, 0, rule)(a, c)
    return _rule_mean(act.fn, rule, a, c)


def _second_moment(act, a, c, n, method, has_bias):
    """E[σ(u)²], u ~ N(a, c): the diagonal terms (the ReLU kernel is not differentiable at ρ = 1)."""
    if method in _CLOSED_METHODS and _kind(act) == "relu":
        if not has_bias:
            return 0.5 * c
        # E[relu(a + s z)²] = (a² + s²) Φ(a/s) + a s φ(a/s)
        s = _safe_sqrt(c)
        ok = s > 0
        ss = jnp.where(ok, s, 1.0)
        val = (a * a + c) * jax.scipy.stats.norm.cdf(a / ss) + a * ss * jax.scipy.stats.norm.pdf(a / ss)
        return jnp.where(ok, val, jax.nn.relu(a) ** 2)
    if method in _CLOSED_METHODS or act.smooth or _kind(act) == "relu":
        return _pair(act, act, a, a, c, c, c, n, method, has_bias)
    sq = Activation(f"{act.name}^2", lambda z: act.fn(z) ** 2, smooth=False)
    return _rule_mean(sq.fn, _rule(method, n), a, c)


# ------------------------------------------------------------------ population risk
def has_exact_risk(student, teacher) -> bool:
    """Whether R(θ) reduces to 2-D expectations: a depth-2 `MLP` student and a `Teacher` built from a
    depth-2 `MLP` with the same input and output widths."""
    t_model = getattr(teacher, "model", None)
    return (isinstance(student, MLP) and student.n_layers == 2 and isinstance(t_model, MLP)
            and t_model.n_layers == 2 and getattr(teacher, "theta", None) is not None
            and t_model.d_in == student.d_in and t_model.d_out == student.d_out)


def _depth2(name, model):
    if not isinstance(model, MLP):
        raise TypeError(f"{name} must be a flowtools.MLP, got {type(model).__name__}.")
    if model.n_layers != 2:
        raise ValueError(f"{name} must be a depth-2 MLP (widths (d_in, k, d_out)), got widths={model.widths}; "
                         "deeper nets need Monte Carlo (GaussianQuadrature).")


def _theta(name, theta, model):
    """θ as a float64 array; checked (a flat, finite vector of the model's length) unless traced."""
    if isinstance(theta, jax.core.Tracer):
        return jnp.asarray(theta, jnp.float64)
    return jnp.asarray(_checks.theta_vector(name, theta, model.n_params))


def _parts(model, theta):
    (W, b), (V, c) = model.unflatten(theta)
    return W, b, V, c


def _self_term(act, W, b, V, n, method):
    """E‖V σ(Wx + b)‖² = Σ_i (VᵀV)_ii E[σ(u_i)²] + 2 Σ_{i<j} (VᵀV)_ij E[σ(u_i)σ(u_j)]."""
    k = W.shape[0]
    C = W @ W.T
    A = V.T @ V
    has_bias = b is not None
    bb = jnp.zeros(k) if b is None else b
    if _per_neuron(act, act, method, has_bias):
        return jnp.sum(A * _series_gram(act, W, bb, n, method, has_bias))
    diag = _second_moment(act, bb, jnp.diagonal(C), n, method, has_bias)
    out = jnp.sum(jnp.diagonal(A) * diag)
    if k > 1:
        i, j = np.triu_indices(k, 1)
        off = _pair(act, act, bb[i], bb[j], C[i, i], C[i, j], C[j, j], n, method, has_bias)
        out = out + 2.0 * jnp.sum(A[i, j] * off)
    return out


def _series_gram(act, W, b, n, method, has_bias):
    """The k × k matrix E[σ(u_i)σ(u_j)], u = Wx + b, by the Hermite series: the coefficients once per neuron,
    the diagonal E[σ(u_i)²] by a 1-D rule, where the series would need the most terms (ρ = 1); R and its
    Price derivatives from one evaluation at the first level (`_hermite_series.gram`), else `_gram_pairs`."""
    k = W.shape[0]
    C = jnp.where(np.eye(k, dtype=bool), jnp.sum(W * W, axis=1), W @ W.T)
    return _hermite_series.gram(_derivative, _gram_pairs, act, has_bias, 0, 0)(b, C)


def _gram_pairs(act, has_bias, pairs, a, C):
    """(E[σ^(r)(u_i)σ^(s)(u_j)] for (r, s) in `pairs`) by the graded rule, every order in one pass (the nodes
    once, each derivative evaluated on them; the diagonal by the 1-D rule): the fallback of
    `_hermite_series.gram_set`."""
    off = ~np.eye(C.shape[0], dtype=bool)
    c = jnp.diagonal(C)
    left, right = sorted({r for r, _ in pairs}), sorted({s for _, s in pairs})
    i, j = [left.index(r) for r, _ in pairs], [right.index(s) for _, s in pairs]

    def f1(u):  # every order of the pairs, stacked on a leading axis that the rules carry through
        return jnp.stack([_derivative(act, r)(u) for r in left])[np.asarray(i)]

    def f2(v):
        return jnp.stack([_derivative(act, s)(v) for s in right])[np.asarray(j)]

    # One pair at a time: all k² pairs at once held 300² nodes × orders × k² values (357 MiB for R and ∇R at
    # k = 8), and XLA allocates a branch's buffers on every call, the branch not taken included.
    k = C.shape[0]
    row, col = np.divmod(np.arange(k * k), k)
    pair = jax.lax.map(lambda x: _graded_pair(f1, f2, *x, has_bias),
                       (a[row], a[col], c[row], jnp.where(off, C, 0.0)[row, col], c[col]))
    pair = pair.T.reshape((len(pairs), k, k))
    square = _graded_rule.mean(lambda u: f1(u) * f2(u), a, c)
    return tuple(jnp.where(off, pair[p], jnp.diag(square[p])) for p in range(len(pairs)))


def _series_terms_joint(act, Ws, bs, Vs, Wt, bt, Vt, n, method, has_bias):
    """(E‖f_s‖², E[f_s·f_t], E‖f_t‖²) for a student and teacher with one activation: student and teacher
    neurons in one Gram matrix, so each neuron's coefficients are computed once."""
    ks = Ws.shape[0]
    P = _series_gram(act, jnp.concatenate([Ws, Wt]), jnp.concatenate([bs, bt]), n, method, has_bias)
    V = jnp.concatenate([Vs, Vt], axis=1)
    G = (V.T @ V) * P
    return jnp.sum(G[:ks, :ks]), jnp.sum(G[:ks, ks:]), jnp.sum(G[ks:, ks:])


def population_terms(student: MLP, theta_s, teacher: MLP, theta_t, *, n_nodes: int = DEFAULT_NODES,
                     method: str = "auto"):
    """(E‖f_s‖², E[f_s·f_t], E‖f_t‖²) under x ~ N(0, I), traceable in θ_s and θ_t."""
    ms, mt = student.activation, teacher.activation
    Ws, bs, Vs, cs = _parts(student, theta_s)
    Wt, bt, Vt, ct = _parts(teacher, theta_t)
    has_bias = bs is not None or bt is not None
    ks, kt = Ws.shape[0], Wt.shape[0]
    bs0 = jnp.zeros(ks) if bs is None else bs
    bt0 = jnp.zeros(kt) if bt is None else bt
    Css = jnp.sum(Ws * Ws, axis=1)
    Ctt = jnp.sum(Wt * Wt, axis=1)
    closed = _vector_kind(ms, mt) if method in ("auto", "series") and not has_bias else None
    if closed is not None:
        # Kernels of the weight vectors themselves: angles without cancellation, and Hessians that stay
        # finite where neurons align (flowtools._closed_kernels).
        kind, alpha_s, alpha_t = closed
        Xs, Xt = alpha_s * Ws, alpha_t * Wt
        K = lambda P, Q: _closed_kernels.kernel(kind, P[:, None, :], Q[None, :, :])  # noqa: E731
        ss, st, tt = (jnp.sum((Vs.T @ Vs) * K(Xs, Xs)), jnp.sum((Vs.T @ Vt) * K(Xs, Xt)),
                      jnp.sum((Vt.T @ Vt) * K(Xt, Xt)))
        return _output_biases(ms, mt, ss, st, tt, Vs, Vt, cs, ct, bs0, bt0, Css, Ctt, n_nodes, method)
    if _block_biases(ms, mt, method, bs is not None, bt is not None)[0]:
        ss, st, tt = _series_terms_joint(ms, Ws, bs0, Vs, Wt, bt0, Vt, n_nodes, method, has_bias)
        return _output_biases(ms, mt, ss, st, tt, Vs, Vt, cs, ct, bs0, bt0, Css, Ctt, n_nodes, method)
    Cst = Ws @ Wt.T
    if _per_neuron(ms, mt, method, has_bias):  # the series' coefficients once per neuron, not per pair
        c_ss, c_tt = Css[:, None], Ctt[None, :]
    else:
        c_ss, c_tt = jnp.broadcast_to(Css[:, None], (ks, kt)), jnp.broadcast_to(Ctt[None, :], (ks, kt))
    cross = _pair(ms, mt, bs0[:, None], bt0[None, :], c_ss, Cst, c_tt, n_nodes, method, has_bias)
    st = jnp.sum((Vs.T @ Vt) * cross)
    ss = _self_term(ms, Ws, bs, Vs, n_nodes, method)
    tt = _self_term(mt, Wt, bt, Vt, n_nodes, method)
    return _output_biases(ms, mt, ss, st, tt, Vs, Vt, cs, ct, bs0, bt0, Css, Ctt, n_nodes, method)


def _output_biases(ms, mt, ss, st, tt, Vs, Vt, cs, ct, bs0, bt0, Css, Ctt, n_nodes, method):
    """Output biases: f = V σ + c adds c·c' and the means V E[σ] to the second moments."""
    if cs is not None or ct is not None:
        mean_s = Vs @ _mean(ms, bs0, Css, n_nodes, method)
        mean_t = Vt @ _mean(mt, bt0, Ctt, n_nodes, method)
        cs0 = jnp.zeros(Vs.shape[0]) if cs is None else cs
        ct0 = jnp.zeros(Vt.shape[0]) if ct is None else ct
        ss = ss + jnp.dot(cs0, cs0) + 2.0 * jnp.dot(cs0, mean_s)
        tt = tt + jnp.dot(ct0, ct0) + 2.0 * jnp.dot(ct0, mean_t)
        st = st + jnp.dot(cs0, mean_t) + jnp.dot(ct0, mean_s) + jnp.dot(cs0, ct0)
    return ss, st, tt


def population_rule(student: MLP, theta_s, teacher: MLP, theta_t, *, n_nodes: int = DEFAULT_NODES,
                    method: str = "auto") -> str:
    """Which rule `population_risk(..., method=method)` uses for R at (θ_s, θ_t): "closed form",
    "series, K = 31", "series, K = 255" or "series, K = 511" (the Hermite series and its number of terms), "graded" (the series'
    fallback, or `method="graded"`), or "gauss_hermite". With the series, each Price derivative in ∇R
    decides on its own tail bound (the same way, usually the same level)."""
    _depth2("student", student)
    _depth2("teacher", teacher)
    method = _checks.choice("method", method, _METHODS)
    n_nodes = _checks.positive_int("n_nodes", n_nodes, minimum=2)
    ms, mt = student.activation, teacher.activation
    Ws, bs, _, _ = _parts(student, _theta("theta_s", theta_s, student))
    Wt, bt, _, _ = _parts(teacher, _theta("theta_t", theta_t, teacher))
    has_bias = bs is not None or bt is not None
    pairs = [(ms, mt), (ms, ms), (mt, mt)]
    if method in _CLOSED_METHODS and all(has_closed_form(x, y, has_bias) for x, y in pairs):
        return "closed form"
    rule = _rule(method, n_nodes)
    flags = _block_biases(ms, mt, method, bs is not None, bt is not None)[1]
    series = [_per_neuron(x, y, method, f) for (x, y), f in zip(pairs, flags)]
    own = [_own_rule(x, y, f) for (x, y), f in zip(pairs, flags)]
    if rule is None or (rule == "series" and not all(a or b for a, b in zip(series, own))):
        return "graded"
    if rule != "series":
        return "gauss_hermite"
    bs = jnp.zeros(Ws.shape[0]) if bs is None else bs
    bt = jnp.zeros(Wt.shape[0]) if bt is None else bt
    blocks = [(ms, mt, Ws, bs, Wt, bt, False), (ms, ms, Ws, bs, Ws, bs, True), (mt, mt, Wt, bt, Wt, bt, True)]
    blocks = [b for b, by_series in zip(blocks, series) if by_series]
    if not blocks:
        return "closed form"
    for level in _hermite_series.LEVELS:
        ok = True
        for act_a, act_b, Wa, ba, Wb, bb, same in blocks:
            C = Wa @ Wb.T
            if same:  # the diagonal goes through a 1-D rule, not the series
                C = jnp.where(np.eye(C.shape[0], dtype=bool), 0.0, C)
            ca, cb = jnp.sum(Wa * Wa, 1), jnp.sum(Wb * Wb, 1)
            ok &= bool(_jit_series_terms(act_a.fn, act_b.fn, ba[:, None], bb[None, :], ca[:, None], C,
                                         cb[None, :], level)[1])
        if ok:
            return f"series, K = {level[0]}"
    return "graded"


def population_risk(student: MLP, theta_s, teacher: MLP, theta_t, *, n_nodes: int = DEFAULT_NODES,
                    method: str = "auto"):
    """R = E_{x ~ N(0, I_d)} ‖f_s(x; θ_s) − f_t(x; θ_t)‖² for depth-2 MLPs, exact in any d.

    Reduced to 2-D Gaussian expectations over pairs of pre-activations (student–student,
    student–teacher, teacher–teacher): closed forms for erf-type, ReLU and linear units, the
    Gauss–Hermite rule with `n_nodes` per axis otherwise (off by 1e-5 at weight norm 2 and 5e-2 at 10 for
    tanh; module docstring). Traceable and differentiable in both θ's; `method` as in
    `pair_expectation`: "graded" for the accurate rule where no closed form exists, "series" for the
    Hermite series that is as accurate (it falls back to "graded") and faster than the default rule
    (`population_rule` says which rule was used).
    """
    _depth2("student", student)
    _depth2("teacher", teacher)
    if student.d_in != teacher.d_in or student.d_out != teacher.d_out:
        raise ValueError(f"student widths {student.widths} and teacher widths {teacher.widths} must share "
                         "d_in and d_out.")
    method = _checks.choice("method", method, _METHODS)
    n_nodes = _checks.positive_int("n_nodes", n_nodes, minimum=2)
    return _risk(student, teacher, n_nodes, method, _theta("theta_s", theta_s, student),
                 _theta("theta_t", theta_t, teacher))


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _risk(student, teacher, n_nodes, method, theta_s, theta_t):
    Ws, bs, Vs, cs = _parts(student, theta_s)
    Wt, bt, Vt, ct = _parts(teacher, theta_t)
    closed = _vector_kind(student.activation, teacher.activation) if method in ("auto", "series") else None
    if closed is None or bs is not None or bt is not None:
        ss, st, tt = population_terms(student, theta_s, teacher, theta_t, n_nodes=n_nodes, method=method)
        return ss - 2.0 * st + tt
    kind, alpha_s, alpha_t = closed
    # The anchored form: cancellation-free differences between each student neuron and its anchor on a
    # teacher neuron, so R and ∇R keep their relative accuracy down to a global minimum, where R = 0.
    risk = _closed_kernels.paired_risk(kind, alpha_s * Ws, Vs.T, alpha_t * Wt, Vt.T)
    if cs is None and ct is None:
        return risk
    # Output biases: E‖f_s − f_t‖² gains ‖c_s − c_t‖² + 2 (c_s − c_t)·(V_s E[σ_s] − V_t E[σ_t]).
    zero = jnp.zeros(Vs.shape[0])
    dc = (zero if cs is None else cs) - (zero if ct is None else ct)
    mean_s = Vs @ _mean(student.activation, jnp.zeros(Ws.shape[0]), jnp.sum(Ws * Ws, axis=1), n_nodes, method)
    mean_t = Vt @ _mean(teacher.activation, jnp.zeros(Wt.shape[0]), jnp.sum(Wt * Wt, axis=1), n_nodes, method)
    return risk + jnp.dot(dc, dc) + 2.0 * jnp.dot(dc, mean_s - mean_t)
