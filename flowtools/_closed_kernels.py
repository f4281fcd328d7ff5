"""Closed-form Gaussian kernels of weight vectors, accurate where neurons align, and the paired population risk.

For x ~ N(0, I) and weight vectors w, u, K(w, u) = E[σ(w·x) σ(u·x)] with
g(w, u) = ∂K/∂w (so ∂K/∂u = g(u, w)):

- ReLU, the arc-cosine kernel (Cho & Saul 2009). In the frame of w, p = u·ŵ, u⊥ = u − p ŵ, q = ‖u⊥‖,
  θ = atan2(q, p):  K = ‖w‖ (q + (π − θ) p) / 2π,  g = ((π − θ) u + q ŵ) / 2π  (Safran & Shamir 2018).
  Its second derivatives are finite limits at θ = 0 and θ = π (κ(θ) = π − πθ²/2 + θ³/3 + … is C²):
  ∂g/∂u = M(w, u) = E[H(w·x) H(u·x) x xᵀ] = (π − θ)/2π I + (‖d‖ s sᵀ/‖s‖ − ‖s‖ d dᵀ/‖d‖)/4π with
  s = ŵ + û, d = ŵ − û, and ∂g/∂w = N(w, u) = E[δ(w·x) relu(u·x) x xᵀ] = (q P⊥ + u⊥ u⊥ᵀ/q)/(2π ‖w‖),
  P⊥ the projector orthogonal to w. At w = 0 the conventions K = 0, g = u/4 (the mean over directions
  of ŵ) hold, as in the covariance form.
- erf(αz) (Williams 1997), vectors scaled by α: K = (2/π) atan2(2 w·u, √D) with
  D = (1 + 2‖w‖²)(1 + 2‖u‖²) − 4(w·u)² = 1 + 2‖w‖² + 2‖u‖² + 4‖w∧u‖² ≥ 1, and
  g = (4/π) (u − 2(w·u) w/(1 + 2‖w‖²)) / √D.
- linear: K = w·u, g = u.

u⊥ is taken from the difference u ∓ w (the sign of u·w) where that is shorter than u, which float64 holds
exactly when u is near ±w (Sterbenz), so the perpendicular part of a nearly aligned pair keeps its relative
accuracy; a short u next to a long w is taken as it is.

The population risk of f_s = Σ_p α_p σ(x_p·x) against f_t = Σ_t β_t σ(y_t·x) is R = ‖r‖² with
r = Σ_p α_p φ(x_p) − Σ_t β_t φ(y_t) (φ the feature map of K). Its global minima are rarely the teacher
alone: odd units (erf, linear) may flip, (x, α) ↦ (−x, −α); positively homogeneous units (ReLU, linear)
may rescale, (x, α) ↦ (cx, α/c), c > 0; and extra student units may duplicate a teacher unit with the
output weight split (α₁ + α₂ = β), or carry α = 0, or x = 0. So each student unit first takes the sign
that brings it nearest a teacher unit (odd units), and then an anchor λ_p y_t(p): erf the nearest of y_t
and 0 (λ = 1, or λ = 0 for no teacher unit); ReLU and linear the projection onto the teacher unit of the
smallest angle, λ = 1 + (x − y)·y/‖y‖² (exactly 1 at x = y), or 0 where no angle is acute. With
φ(λy) = λφ(y),

  r = Σ_p α_p D_p + Σ_t δ_t φ(y_t),   D_p = φ(x_p) − φ(λ_p y_t(p)),   δ_t = Σ_{p → t} λ_p α_p − β_t,

an identity for every choice of anchors; a close choice makes every D_p and δ_t small near a minimum. So
R = Σ (α_p·α_q) dK(x_p; x_q, a_q) + Σ ((δ_t − β_t)·α_q) dK(y_t; x_q, a_q) + Σ (δ_t·δ_u) K(y_t, y_u),
with a_q = λ_q y_t(q) and dK(w; a, b) = K(w, a) − K(w, b), and ∇R likewise through
dg(w; a, b) = g(w, a) − g(w, b). These differences have closed forms in Δ = a − b without
cancellation: for ReLU dK = ‖w‖ (Δq + (π − θ_a) Δp − Δθ p_b)/2π, dg = ((π − θ_a) Δ − Δθ b + Δq ŵ)/2π,
with Δp = Δ·ŵ, Δq = Δ⊥·(a⊥ + b⊥)/(q_a + q_b), Δθ = atan2(Δq p_b − Δp q_b, p_a p_b + q_a q_b); for erf
the same with D_b − D_a = −2(1 + 2‖w‖²) Δ·(a + b) + 4(w·Δ)(w·(a + b)). Δ = x − λy and δ are formed with
error-free products and sums (Dekker 1971; Knuth 1969), and R's terms are summed pairwise with their
rounding errors carried (a plain sum of terms ~100× R erred by 7e-16 at a k = 8 spurious ReLU minimum,
F = 0.0215). So R and ∇R keep their relative accuracy as the
student approaches any of these minima, and R is exactly 0 at the teacher, its permutations, sign
flips, split duplicates and zero-weight units. Second derivatives come from the plain sums of K with M
and N.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

KINDS = ("relu", "erf", "linear")
_TWO_PI = 2.0 * np.pi


def _dot(a, b):
    return jnp.sum(a * b, axis=-1)


def _safe_div(num, den):
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _norm(x):
    return jnp.sqrt(_dot(x, x))


def _unit(x):
    n = _norm(x)
    return n, _safe_div(x, n[..., None])


def _perp(u, w, wh):
    """The part of u orthogonal to w, from u ∓ w where that is shorter than u (exact when u is near ±w),
    from u itself otherwise (a short u next to a long w keeps its relative accuracy; exactly 0 for u = 0)."""
    uw = _dot(u, w)
    sign = jnp.where(2.0 * jnp.abs(uw) > _dot(w, w), jnp.sign(uw), 0.0)
    r = u - sign[..., None] * w
    return r - _dot(r, wh)[..., None] * wh


# ------------------------------------------------------------------ kernel values, gradients, differences
def _relu_terms(w, a, b, delta=None):
    """K(w, a), dK(w; a, b), g(w, a), dg(w; a, b) for the ReLU arc-cosine kernel (broadcast over pairs);
    `delta` is a − b when the caller holds it more accurately than the rounded b does."""
    nw, wh = _unit(w)
    delta = a - b if delta is None else delta
    pa, pb, dp = _dot(a, wh), _dot(b, wh), _dot(delta, wh)
    a_perp, b_perp = _perp(a, w, wh), _perp(b, w, wh)
    qa, qb = _norm(a_perp), _norm(b_perp)
    dq = _safe_div(_dot(delta - dp[..., None] * wh, a_perp + b_perp), qa + qb)
    ta = jnp.arctan2(qa, pa)
    den = pa * pb + qa * qb
    # For pairs more than π/2 apart nothing cancels; there the direct difference avoids atan2's ±π cut.
    dt = jnp.where(den > 0.0, jnp.arctan2(dq * pb - dp * qb, den), ta - jnp.arctan2(qb, pb))
    k = nw * (qa + (jnp.pi - ta) * pa) / _TWO_PI
    dk = nw * (dq + (jnp.pi - ta) * dp - dt * pb) / _TWO_PI
    g = ((jnp.pi - ta)[..., None] * a + qa[..., None] * wh) / _TWO_PI
    dg = ((jnp.pi - ta)[..., None] * delta - dt[..., None] * b + dq[..., None] * wh) / _TWO_PI
    return k, dk, g, dg


def _erf_terms(w, a, b, delta=None):
    """The same for erf units (vectors already scaled by α)."""
    delta = a - b if delta is None else delta
    nw2 = 1.0 + 2.0 * _dot(w, w)
    wa, wb, wd = _dot(w, a), _dot(w, b), _dot(w, delta)
    sa = jnp.sqrt(nw2 * (1.0 + 2.0 * _dot(a, a)) - 4.0 * wa * wa)
    sb = jnp.sqrt(nw2 * (1.0 + 2.0 * _dot(b, b)) - 4.0 * wb * wb)
    dd = -2.0 * nw2 * _dot(delta, a + b) + 4.0 * wd * (wa + wb)  # D_b − D_a
    k = (2.0 / jnp.pi) * jnp.arctan2(2.0 * wa, sa)
    dk = (2.0 / jnp.pi) * jnp.arctan2(2.0 * (wd * sb + wb * dd / (sa + sb)), sa * sb + 4.0 * wa * wb)
    proj = lambda u, wu: u - (2.0 * wu / nw2)[..., None] * w  # noqa: E731
    g = (4.0 / jnp.pi) * proj(a, wa) / sa[..., None]
    dg = (4.0 / jnp.pi) * (proj(delta, wd) / sa[..., None]
                           + proj(b, wb) * (dd / (sa * sb * (sa + sb)))[..., None])
    return k, dk, g, dg


def _linear_terms(w, a, b, delta=None):
    delta = a - b if delta is None else delta
    shape = jnp.broadcast_shapes(w.shape, a.shape, b.shape)
    return _dot(w, a), _dot(w, delta), jnp.broadcast_to(a, shape), jnp.broadcast_to(delta, shape)


_TERMS = {"relu": _relu_terms, "erf": _erf_terms, "linear": _linear_terms}


# ------------------------------------------------------------------ the plain kernel (second derivatives)
def _relu_m(w, u, t):
    """M(w, u) t = E[H(w·x) H(u·x) x xᵀ] t: ∂g/∂u, finite and continuous at θ = 0 and θ = π."""
    _, wh = _unit(w)
    _, uh = _unit(u)
    s, d = wh + uh, wh - uh
    ns, nd = _norm(s), _norm(d)
    theta = 2.0 * jnp.arctan2(nd, ns)
    return ((jnp.pi - theta)[..., None] * t
            + (_safe_div(nd, ns) * _dot(s, t))[..., None] * s / 2.0
            - (_safe_div(ns, nd) * _dot(d, t))[..., None] * d / 2.0) / _TWO_PI


def _relu_n(w, u, t):
    """N(w, u) t = E[δ(w·x) relu(u·x) x xᵀ] t: ∂g/∂w, zero in the limit θ → 0 (taken 0 at w = 0)."""
    nw, wh = _unit(w)
    up = _perp(u, w, wh)
    q = _norm(up)
    tp = t - _dot(t, wh)[..., None] * wh
    return _safe_div(q[..., None] * tp + _safe_div(_dot(up, t), q)[..., None] * up,
                     (_TWO_PI * nw)[..., None])


@jax.custom_jvp
def _relu_g(w, u):
    return _relu_terms(w, u, u)[2]


@_relu_g.defjvp
def _relu_g_jvp(primals, tangents):
    (w, u), (dw, du) = primals, tangents
    return _relu_g(w, u), _relu_n(w, u, dw) + _relu_m(w, u, du)


@jax.custom_jvp
def _relu_k(w, u):
    return _relu_terms(w, u, u)[0]


@_relu_k.defjvp
def _relu_k_jvp(primals, tangents):
    (w, u), (dw, du) = primals, tangents
    return _relu_k(w, u), _dot(_relu_g(w, u), dw) + _dot(_relu_g(u, w), du)


def kernel(kind: str, w, u):
    """K(w, u) = E[σ(w·x) σ(u·x)], x ~ N(0, I), broadcast over leading axes; its first and second
    derivatives are exact and finite also at aligned and anti-aligned pairs (ReLU: from g, M, N)."""
    if kind == "relu":
        return _relu_k(w, u)
    if kind == "erf":
        wu = _dot(w, u)
        return (2.0 / jnp.pi) * jnp.arctan2(
            2.0 * wu, jnp.sqrt((1.0 + 2.0 * _dot(w, w)) * (1.0 + 2.0 * _dot(u, u)) - 4.0 * wu * wu))
    return _dot(w, u)


def _plain_risk(kind, X, A, Y, B):
    """R = Σ (AAᵀ)∘K(X, X) − 2 Σ (ABᵀ)∘K(X, Y) + Σ (BBᵀ)∘K(Y, Y): the form behind the Hessian."""
    K = lambda P, Q: kernel(kind, P[:, None, :], Q[None, :, :])  # noqa: E731
    return (jnp.sum((A @ A.T) * K(X, X)) - 2.0 * jnp.sum((A @ B.T) * K(X, Y))
            + jnp.sum((B @ B.T) * K(Y, Y)))


# ------------------------------------------------------------------ the anchored risk
def _two_sum(a, b):
    """a + b = s + e exactly (Knuth 1969)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def two_product(a, b):
    """a·b = p + e exactly (Dekker 1971, Veltkamp's splitting)."""
    p = a * b
    split = lambda x: (x * 134217729.0) - ((x * 134217729.0) - x)  # noqa: E731  (2^27 + 1)
    ah, bh = split(a), split(b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _accurate_sum(terms):
    """Σ terms, pairwise with every rounding error carried (Knuth's two-sum at each level): the error is
    that of the terms themselves, not of partial sums many times larger than R near a minimum of R."""
    x = jnp.concatenate([t.ravel() for t in terms])
    n = 1 << max(int(x.shape[0]) - 1, 0).bit_length()
    x = jnp.pad(x, (0, n - x.shape[0]))
    e = jnp.zeros_like(x)
    while x.shape[0] > 1:
        x, err = _two_sum(x[0::2], x[1::2])
        e = e[0::2] + e[1::2] + err
    return x[0] + e[0]


def _cluster_offsets(P, A, lam, B):
    """δ_t = Σ_{p → t} λ_p α_p − β_t, compensated: split units (α_p summing to β_t) and rescaled ReLU units
    (λ_p α_p = β_t) leave δ at round-off of its own size, as the gradient's relative accuracy needs."""
    h, l = two_product(lam[:, None], A)

    def step(carry, x):
        s, e = carry
        p, hp, lp = x
        s, err = _two_sum(s, p[:, None] * hp[None, :])
        return (s, e + err + p[:, None] * lp[None, :]), None

    (s, e), _ = jax.lax.scan(step, (-B, jnp.zeros_like(B)), (P, h, l))
    return s + e


def _anchored_parts(kind, X, A, Y, B, P, lam, need_teacher=True):
    """R and its gradient in the anchored form (module docstring). Student neuron p has the anchor
    λ_p y_t(p) (row p of the 0/1 matrix P picks t(p); a zero row anchors it at 0)."""
    m = X.shape[0]
    anchor, low = two_product(lam[:, None], P @ Y)  # λ_p y_t = anchor + low exactly (P @ Y is exact)
    delta = (X - anchor) - low  # x_p − anchor is exact near the anchor (Sterbenz)
    rows = jnp.concatenate([X, Y])
    k, dk, g, dg = _TERMS[kind](rows[:, None, :], rows[None, :, :], jnp.concatenate([anchor, Y])[None, :, :],
                                jnp.concatenate([delta, jnp.zeros_like(Y)])[None, :, :])
    dkx, kxy, dky, kyy = dk[:m, :m], k[:m, m:], dk[m:, :m], k[m:, m:]
    dc = _cluster_offsets(P, A, lam, B)
    value = _accurate_sum([(A @ A.T) * dkx, ((dc - B) @ A.T) * dky, (dc @ dc.T) * kyy])
    gX = 2.0 * (jnp.einsum("pq,pqd->pd", A @ A.T, dg[:m, :m]) + jnp.einsum("pt,ptd->pd", A @ dc.T, g[:m, m:]))
    gA = 2.0 * (dkx @ A + kxy @ dc)
    if not need_teacher:
        return value, (gX, gA, None, None)
    gY = -2.0 * (jnp.einsum("tq,tqd->td", B @ A.T, dg[m:, :m])
                 + jnp.einsum("tu,tud->td", B @ dc.T, g[m:, m:]))
    gB = -2.0 * (dky @ A + kyy @ dc)
    return value, (gX, gA, gY, gB)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _paired_gradient(kind, with_teacher, X, A, Y, B, P, lam):
    """(∂R/∂X, ∂R/∂A), and (∂R/∂Y, ∂R/∂B) when `with_teacher`, in the anchored form."""
    grads = _anchored_parts(kind, X, A, Y, B, P, lam, need_teacher=with_teacher)[1]
    return grads if with_teacher else grads[:2]


@_paired_gradient.defjvp
def _paired_gradient_jvp(kind, with_teacher, primals, tangents):
    # The Hessian needs no cancellation-free form: the plain sums give it to round-off in absolute terms.
    # The anchors (P, μ) are constants: R does not depend on them.
    argnums = (0, 1, 2, 3) if with_teacher else (0, 1)
    plain_grad = jax.grad(functools.partial(_plain_risk, kind), argnums=argnums)
    hvp = jax.jvp(plain_grad, primals[:4], tangents[:4])[1]
    return _paired_gradient(kind, with_teacher, *primals), hvp


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _paired_value(kind, X, A, Y, B, P, lam):
    return _anchored_parts(kind, X, A, Y, B, P, lam, need_teacher=False)[0]


def _paired_value_jvp(kind, primals, tangents):
    out = _paired_value(kind, *primals)
    live = [not isinstance(t, SymbolicZero) for t in tangents[:4]]
    if not any(live):
        return out, jnp.zeros_like(out)
    # Usually only the student moves: then the teacher's half of the gradient is not formed.
    with_teacher = live[2] or live[3]
    grads = _paired_gradient(kind, with_teacher, *primals)
    return out, sum(jnp.vdot(g, t) for g, t, on in zip(grads, tangents, live) if on)


_paired_value.defjvp(_paired_value_jvp, symbolic_zeros=True)


def _anchors(kind, X, Y):
    """Signs s, one-hot rows P and scales λ of the anchors λ_p y_t(p) of the student neurons.

    Odd units (erf, linear) take x_p ↦ s_p x_p, α_p ↦ s_p α_p with s_p = sign(x_p·y_t): the same function.
    erf anchors x_p at the nearest of y_t and 0; positively homogeneous units (ReLU, linear) at the
    projection λ_p y_t onto the teacher neuron of the smallest angle, or at 0 when no angle is acute.
    Every choice is an identity; a close anchor is also accurate.
    """
    xy = X @ Y.T
    yy = jnp.sum(Y * Y, axis=1)
    live = yy > 0
    if kind == "erf":
        score = 2.0 * jnp.abs(xy) - yy  # ‖x‖² − ‖x − s y‖²
    else:
        score = (jnp.abs(xy) if kind == "linear" else xy) / jnp.sqrt(jnp.where(live, yy, 1.0))
    score = jnp.where(live, score, -jnp.inf)
    t = jnp.argmax(score, axis=1)
    on = jnp.take_along_axis(score, t[:, None], axis=1)[:, 0] > 0
    sign = jnp.where(on & (kind != "relu"), jnp.sign(jnp.take_along_axis(xy, t[:, None], axis=1)[:, 0]), 1.0)
    P = jnp.where(on[:, None], jax.nn.one_hot(t, Y.shape[0], dtype=X.dtype), 0.0)
    if kind == "erf":
        return sign, P, jnp.ones(X.shape[0], X.dtype)
    yt = P @ Y
    # λ = 1 + (x − y)·y/‖y‖²: exactly 1 at x = y_t; a float, so λ y_t and λ α split exactly (Dekker).
    lam = 1.0 + _safe_div(_dot(sign[:, None] * X - yt, yt), _dot(yt, yt))
    return sign, P, (jnp.maximum(lam, 0.0) if kind == "relu" else lam)  # relu(λz) = λ relu(z) needs λ ≥ 0


def paired_risk(kind: str, Xs, As, Xt, At):
    """R = E ‖Σ_j As_j σ(Xs_j·x) − Σ_t At_t σ(Xt_t·x)‖², x ~ N(0, I), in the anchored form.

    `Xs` (ks, d), `As` (ks, d_out) are the student's input and output weights (erf vectors scaled by
    α), `Xt`, `At` the teacher's. R and ∇R keep their relative accuracy as the student approaches a
    global minimum: the teacher up to a permutation, sign flips of odd units and rescaling of ReLU
    units, with extra neurons that duplicate a teacher neuron (output weights split), have zero output
    weights or zero input weights. R = 0 exactly at the teacher and at its permutations, sign flips,
    duplicates and zero-weight extensions. Hessian-vector products come from the plain sums and are
    finite where R is C².
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    sign, P, lam = jax.lax.stop_gradient(_anchors(kind, Xs, Xt))
    return _paired_value(kind, sign[:, None] * Xs, sign[:, None] * As, Xt, At, P, lam)
