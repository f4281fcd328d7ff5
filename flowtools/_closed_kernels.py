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

u⊥ is taken from the difference u ∓ w (the sign of u·w), which float64 holds exactly when u is near ±w
(Sterbenz), so the perpendicular part of a nearly aligned pair keeps its relative accuracy.

The population risk of f_s = Σ_p α_p σ(x_p·x) against f_t = Σ_p β_p σ(y_p·x) is R = ‖Σ_p e_p‖² with
e_p = α_p φ(x_p) − β_p φ(y_p) = δ_p φ(x_p) + β_p (φ(x_p) − φ(y_p)), δ = α − β, once student and teacher
neurons are paired (p ↔ nearest teacher neuron). Then every term is a difference
dK(w; a, b) = K(w, a) − K(w, b) or dg(w; a, b) = g(w, a) − g(w, b) over a pair a ≈ b, and these have
closed forms in Δ = a − b (exact in float64) without cancellation: for ReLU
dK = ‖w‖ (Δq + (π − θ_a) Δp − Δθ p_b)/2π, dg = ((π − θ_a) Δ − Δθ b + Δq ŵ)/2π, with Δp = Δ·ŵ,
Δq = Δ⊥·(a⊥ + b⊥)/(q_a + q_b), Δθ = atan2(Δq p_b − Δp q_b, p_a p_b + q_a q_b); for erf the same with
D_b − D_a = −2(1 + 2‖w‖²) Δ·(a + b) + 4(w·Δ)(w·(a + b)). So R and ∇R keep their relative accuracy as
W → V, and R is exactly 0 at W = V. Second derivatives come from the plain sums of K with M and N.
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
    """The part of u orthogonal to w, from u ∓ w (exact when u is near ±w; exactly 0 for u = 0)."""
    sign = jnp.sign(_dot(u, w))
    r = u - sign[..., None] * w
    return r - _dot(r, wh)[..., None] * wh


# ------------------------------------------------------------------ kernel values, gradients, differences
def _relu_terms(w, a, b):
    """K(w, a), dK(w; a, b), g(w, a), dg(w; a, b) for the ReLU arc-cosine kernel (broadcast over pairs)."""
    nw, wh = _unit(w)
    delta = a - b
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


def _erf_terms(w, a, b):
    """The same for erf units (vectors already scaled by α)."""
    delta = a - b
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


def _linear_terms(w, a, b):
    delta = a - b
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


# ------------------------------------------------------------------ the paired risk
def _paired_parts(kind, X, A, Y, B, need_teacher=True):
    """R and its gradient in the paired form (module docstring); row p of X is paired with row p of Y."""
    terms = _TERMS[kind]
    delta = A - B
    kxx, dkx, gxx, dgx = terms(X[:, None, :], X[None, :, :], Y[None, :, :])
    kyy, dky, gyy, dgy = terms(Y[:, None, :], Y[None, :, :], X[None, :, :])  # dky = dK(y_p; y_q, x_q)
    value = (jnp.sum((delta @ delta.T) * kxx) + 2.0 * jnp.sum((delta @ B.T) * dkx)
             + jnp.sum((B @ B.T) * (dkx + dky)))
    gX = 2.0 * (jnp.einsum("pq,pqd->pd", A @ delta.T, gxx) + jnp.einsum("pq,pqd->pd", A @ B.T, dgx))
    gA = 2.0 * (kxx @ delta + dkx @ B)
    if not need_teacher:
        return value, (gX, gA, None, None)
    gY = 2.0 * (jnp.einsum("pq,pqd->pd", -(B @ delta.T), gyy) + jnp.einsum("pq,pqd->pd", B @ A.T, dgy))
    gB = 2.0 * (-(kyy @ delta) + dky @ A)
    return value, (gX, gA, gY, gB)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _paired_gradient(kind, with_teacher, X, A, Y, B):
    """(∂R/∂X, ∂R/∂A), and (∂R/∂Y, ∂R/∂B) when `with_teacher`, in the paired form."""
    grads = _paired_parts(kind, X, A, Y, B, need_teacher=with_teacher)[1]
    return grads if with_teacher else grads[:2]


@_paired_gradient.defjvp
def _paired_gradient_jvp(kind, with_teacher, primals, tangents):
    # The Hessian needs no cancellation-free form: the plain sums give it to round-off in absolute terms.
    argnums = (0, 1, 2, 3) if with_teacher else (0, 1)
    hvp = jax.jvp(jax.grad(functools.partial(_plain_risk, kind), argnums=argnums), primals, tangents)[1]
    return _paired_gradient(kind, with_teacher, *primals), hvp


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _paired_value(kind, X, A, Y, B):
    return _paired_parts(kind, X, A, Y, B, need_teacher=False)[0]


def _paired_value_jvp(kind, primals, tangents):
    out = _paired_value(kind, *primals)
    live = [not isinstance(t, SymbolicZero) for t in tangents]
    if not any(live):
        return out, jnp.zeros_like(out)
    # Usually only the student moves: then the teacher's half of the gradient is not formed.
    with_teacher = live[2] or live[3]
    grads = _paired_gradient(kind, with_teacher, *primals)
    return out, sum(jnp.vdot(g, t) for g, t, on in zip(grads, tangents, live) if on)


_paired_value.defjvp(_paired_value_jvp, symbolic_zeros=True)


def _pairing(X, Y):
    """Row order of Y that pairs each row of X with its nearest row of Y when that is a bijection
    (the identity otherwise: every pairing is exact, a close one is also accurate)."""
    d2 = jnp.sum((X[:, None, :] - Y[None, :, :]) ** 2, axis=-1)
    nearest = jnp.argmin(d2, axis=1)
    n = X.shape[0]
    bijective = jnp.all(jnp.sort(nearest) == jnp.arange(n))
    return jnp.where(bijective, nearest, jnp.arange(n))


def paired_risk(kind: str, Xs, As, Xt, At):
    """R = E ‖Σ_j As_j σ(Xs_j·x) − Σ_t At_t σ(Xt_t·x)‖², x ~ N(0, I), in the paired form.

    `Xs` (ks, d), `As` (ks, d_out) are the student's input and output weights (erf vectors scaled by
    α), `Xt`, `At` the teacher's. R and ∇R keep their relative accuracy as the student approaches the
    teacher (R = 0 exactly at Xs = Xt, As = At, up to a permutation of neurons); Hessian-vector products
    come from the plain sums and are finite where R is C².
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    ks, kt = Xs.shape[0], Xt.shape[0]
    n = max(ks, kt)
    # Zero rows (zero input and output weights) are neurons that contribute nothing: K(w, 0) = 0.
    pad = lambda M, k: jnp.pad(M, ((0, n - k), (0, 0)))  # noqa: E731
    X, A, Y, B = pad(Xs, ks), pad(As, ks), pad(Xt, kt), pad(At, kt)
    order = _pairing(jax.lax.stop_gradient(X), jax.lax.stop_gradient(Y))
    return _paired_value(kind, X, A, Y[order], B[order])
