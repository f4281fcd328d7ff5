"""Certified critical points of the two-layer ReLU population loss, by interval arithmetic.

For a student x ↦ Σ_i b_i relu(w_i·x) (output weights b frozen), a teacher x ↦ Σ_j a_j relu(v_j·x) and
x ~ N(0, I), the population loss is F(W) = c · E (f − T)², c = ½ ("half_mse") or 1 ("mse"), with

    E relu(u·x) relu(v·x) = k(u, v) = |u||v| (sin θ + (π − θ) cos θ) / 2π        (Cho & Saul 2009)

and θ the angle between u and v. Its gradient in u is g(u, v) = (|v| sin θ û + (π − θ) v) / 2π, and with
t = (v̂ − cos θ û)/sin θ, r = (û − cos θ v̂)/sin θ (unit vectors),

    ∂g/∂u = |v| sin θ (I − ûûᵀ + t tᵀ) / (2π|u|),    ∂g/∂v = (sin θ (û v̂ᵀ + t rᵀ) + (π − θ) I) / 2π.

All of it is evaluated in interval arithmetic (mpmath's `iv`, outward rounding), θ = atan2(sin θ, cos θ)
from the cancellation-free wedge norm |u ∧ v|. The Krawczyk test (Krawczyk 1969; Moore, Kearfott & Cloud,
*Introduction to Interval Analysis*, 2009, §8.2) then proves a critical point: for the box X = θ̃ ± r and
any matrix Y (here the inverse of the floating-point Hessian at θ̃),

    K(X) = θ̃ − Y ∇F(θ̃) + (I − Y ∇²F(X)) (X − θ̃)  ⊂  int X

implies that X holds exactly one critical point. If, in addition, the interval Cholesky factorisation of
∇²F(X) succeeds (every pivot interval positive), every Hessian in X is positive definite: the critical
point is a strict minimum, Morse index 0. This is how Safran & Shamir (ICML 2018) proved that their
spurious minima exist.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from .. import _checks
from ..problem import Problem

__all__ = ["Certificate", "certify_relu_critical_point"]


@dataclasses.dataclass
class Certificate:
    """The outcome of `certify_relu_critical_point`.

    - `certified`: a unique critical point lies in the box θ ± `radius` (max-norm).
    - `morse_index`: 0 when every Hessian in the box is proven positive definite, else None (not proven).
    - `loss`: an interval enclosure [lo, hi] of F(θ); `grad_bound`: max |∂F/∂θ_i(θ)| (upper bound).
    - `contraction`: max over coordinates of |K_i − θ_i| / radius (< 1 is needed); `message`, `wall_time`.
    """

    certified: bool
    morse_index: int | None
    radius: float
    loss: tuple
    grad_bound: float
    contraction: float
    message: str
    wall_time: float


def _relu_setup(problem: Problem):
    from ..population import GaussianInputs

    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
    model = problem.model
    ok = (problem.is_mlp and model.n_layers == 2 and not np.any(model.bias) and model.d_out == 1
          and model.activation.name == "relu" and isinstance(problem.source, GaussianInputs)
          and problem.free is not None and problem.n_params == model.widths[0] * model.widths[1]
          and float(problem.weight_decay) == 0.0 and problem.loss_convention in ("half_mse", "mse"))
    teacher = getattr(problem.source, "teacher_model", None)
    ok = ok and teacher is not None and teacher.n_layers == 2 and not np.any(teacher.bias) \
        and teacher.activation.name == "relu"
    if not ok:
        raise ValueError("certify_relu_critical_point needs a two-layer ReLU student without biases whose "
                         "output weights are frozen, on the population loss of a two-layer ReLU teacher "
                         "(\"half_mse\" or \"mse\", no weight decay), e.g. flowtools.problems.safran_shamir(k).")
    d, n = model.widths[0], model.widths[1]
    full = np.asarray(problem.frozen_base, dtype=np.float64)
    b = full[n * d:n * d + n]
    th = np.asarray(problem.source.teacher_theta, dtype=np.float64)
    k = teacher.widths[1]
    V, a = th[:k * d].reshape(k, d), th[k * d:k * d + k]
    c = 0.5 if problem.loss_convention == "half_mse" else 1.0
    return d, n, b, V, a, c


def certify_relu_critical_point(problem: Problem, theta, *, radius: float = 1e-8, prec: int = 80) -> Certificate:
    """Prove, by the Krawczyk test in interval arithmetic, that the box θ ± `radius` holds exactly one
    critical point of a two-layer ReLU population loss, and try to prove it a strict minimum.

    **Arguments:**

    - `problem`: a two-layer ReLU student with frozen output weights on the population loss of a two-layer
      ReLU teacher (`flowtools.problems.safran_shamir`).
    - `theta`: the numerical critical point (the free θ, i.e. W row by row).
    - `radius`: half-width of the box in every coordinate.
    - `prec`: the working precision in bits of the intervals.

    **Returns:** a `Certificate`. A box that holds no critical point is never certified; one that does may
    still be refused when the enclosures are too wide (then the message says which test failed).
    """
    from mpmath import iv

    d, n, b, V, a, c = _relu_setup(problem)
    theta = _checks.theta_vector("theta", theta, problem.n_params)
    radius = _checks.positive("radius", radius)
    prec = _checks.positive_int("prec", prec, minimum=53)
    t0 = time.perf_counter()
    old = iv.prec
    iv.prec = prec
    try:
        return _certify(problem, theta, radius, d, n, b, V, a, c, iv, t0)
    finally:
        iv.prec = old


def _outward(x) -> tuple[float, float]:
    """The float interval [lo, hi] that contains the interval x: its endpoints rounded outward (float() of
    an endpoint rounds to nearest, which can cut off up to half an ulp of the enclosure)."""
    import mpmath

    with mpmath.workprec(1024):  # exact for the endpoints of any working precision used here
        lo, hi = mpmath.mpf(x.a), mpmath.mpf(x.b)
        flo, fhi = float(lo), float(hi)
        if mpmath.mpf(flo) > lo:
            flo = float(np.nextafter(flo, -np.inf))
        if mpmath.mpf(fhi) < hi:
            fhi = float(np.nextafter(fhi, np.inf))
    return flo, fhi


def _vec(iv, x):
    return [iv.mpf(float(v)) for v in x]


def _kernel_parts(iv, u, v, want_hessian):
    """k(u, v), g = ∂k/∂u, and (∂g/∂u, ∂g/∂v) as interval lists."""
    d = len(u)
    pi = iv.pi
    nu = iv.sqrt(sum(x * x for x in u))
    nv = iv.sqrt(sum(x * x for x in v))
    dot = sum(x * y for x, y in zip(u, v))
    wedge = iv.sqrt(sum((u[i] * v[j] - u[j] * v[i]) ** 2 for i in range(d) for j in range(i + 1, d)))
    s, co = wedge / (nu * nv), dot / (nu * nv)
    th = iv.atan2(s, co)
    k = nu * nv * (s + (pi - th) * co) / (2 * pi)
    uh, vh = [x / nu for x in u], [x / nv for x in v]
    g = [(nv * s * uh[i] + (pi - th) * v[i]) / (2 * pi) for i in range(d)]
    if not want_hessian:
        return k, g, None, None
    if not s.a > 0:
        raise ZeroDivisionError("parallel neurons")
    t = [(vh[i] - co * uh[i]) / s for i in range(d)]
    r = [(uh[i] - co * vh[i]) / s for i in range(d)]
    f = nv * s / (2 * pi * nu)
    gu = [[f * ((1 if i == j else 0) - uh[i] * uh[j] + t[i] * t[j]) for j in range(d)] for i in range(d)]
    gv = [[(s * (uh[i] * vh[j] + t[i] * r[j]) + ((pi - th) if i == j else 0)) / (2 * pi) for j in range(d)]
          for i in range(d)]
    return k, g, gu, gv


def _loss_grad_hessian(iv, W, V, a, b, c, want_hessian):
    """F, ∇F (list over i·d + l) and ∇²F (nested lists) of W (n rows of d intervals)."""
    n, d = len(W), len(W[0])
    F = iv.mpf(0)
    G = [[iv.mpf(0)] * d for _ in range(n)]
    H = [[[[iv.mpf(0)] * d for _ in range(d)] for _ in range(n)] for _ in range(n)] if want_hessian else None
    for i in range(n):
        for j in range(n):
            if i == j:
                nw2 = sum(x * x for x in W[i])
                F += c * b[i] * b[i] * nw2 / 2
                G[i] = [G[i][l] + c * 2 * b[i] * b[i] * W[i][l] / 2 for l in range(d)]
                if want_hessian:
                    for l in range(d):
                        H[i][i][l][l] += c * b[i] * b[i]
                continue
            k, g, gu, gv = _kernel_parts(iv, W[i], W[j], want_hessian)
            F += c * b[i] * b[j] * k
            G[i] = [G[i][l] + c * 2 * b[i] * b[j] * g[l] for l in range(d)]
            if want_hessian:
                for l in range(d):
                    for m in range(d):
                        H[i][i][l][m] += c * 2 * b[i] * b[j] * gu[l][m]
                        H[i][j][l][m] += c * 2 * b[i] * b[j] * gv[l][m]
        for j in range(len(V)):
            k, g, gu, _ = _kernel_parts(iv, W[i], V[j], want_hessian)
            F -= c * 2 * b[i] * a[j] * k
            G[i] = [G[i][l] - c * 2 * b[i] * a[j] * g[l] for l in range(d)]
            if want_hessian:
                for l in range(d):
                    for m in range(d):
                        H[i][i][l][m] -= c * 2 * b[i] * a[j] * gu[l][m]
    for j in range(len(V)):
        for m in range(len(V)):
            if j == m:
                F += c * a[j] * a[j] * sum(x * x for x in V[j]) / 2
            else:
                F += c * a[j] * a[m] * _kernel_parts(iv, V[j], V[m], False)[0]
    grad = [G[i][l] for i in range(n) for l in range(d)]
    hess = None
    if want_hessian:
        hess = [[H[i][j][l][m] for j in range(n) for m in range(d)] for i in range(n) for l in range(d)]
    return F, grad, hess


def _cholesky_positive(iv, H) -> bool:
    n = len(H)
    L = [[iv.mpf(0)] * n for _ in range(n)]
    for j in range(n):
        dj = H[j][j] - sum(L[j][k] * L[j][k] for k in range(j))
        if not dj.a > 0:
            return False
        L[j][j] = iv.sqrt(dj)
        for i in range(j + 1, n):
            L[i][j] = (H[i][j] - sum(L[i][k] * L[j][k] for k in range(j))) / L[j][j]
    return True


def _certify(problem, theta, radius, d, n, b, V, a, c, iv, t0):
    Wt = theta.reshape(n, d)
    Vi = [_vec(iv, v) for v in V]
    ai, bi = _vec(iv, a), _vec(iv, b)
    F, grad, _ = _loss_grad_hessian(iv, [_vec(iv, w) for w in Wt], Vi, ai, bi, c, False)
    box = [[iv.mpf([float(x) - radius, float(x) + radius]) for x in w] for w in Wt]
    loss = _outward(F)
    gmax = max(float(max(abs(g.a), abs(g.b))) for g in grad)

    def result(ok, index, contraction, message):
        return Certificate(ok, index, radius, loss, gmax, contraction, message, time.perf_counter() - t0)

    try:
        _, _, HX = _loss_grad_hessian(iv, box, Vi, ai, bi, c, True)
    except ZeroDivisionError:
        return result(False, None, float("inf"), "refused: two neurons in the box may be parallel (the loss is "
                      "not twice differentiable there)")
    Y = np.linalg.inv(np.asarray(problem.hessian(theta), dtype=np.float64))
    N = n * d
    x = [iv.mpf(float(v)) for v in theta]
    dx = [iv.mpf([-radius, radius])] * N
    Yg = [sum(iv.mpf(float(Y[p, q])) * grad[q] for q in range(N)) for p in range(N)]
    worst = 0.0
    inside = True
    for p in range(N):
        row = [iv.mpf(float(Y[p, q])) for q in range(N)]
        acc = -Yg[p]
        for m in range(N):
            ym = sum(row[q] * HX[q][m] for q in range(N))
            acc += ((1 if p == m else 0) - ym) * dx[m]
        lo, hi = float(acc.a), float(acc.b)  # K_p − θ_p
        worst = max(worst, max(abs(lo), abs(hi)) / radius)
        inside = inside and lo > -radius and hi < radius
    if not inside:
        return result(False, None, worst, "refused: the Krawczyk image is not inside the box of radius "
                      f"{radius:g} (max |K − θ| / radius = {worst:.3g}; max |∂F/∂θ| at θ ≤ {gmax:.3g})")
    index = 0 if _cholesky_positive(iv, HX) else None
    what = "a strict minimum (every Hessian in the box positive definite)" if index == 0 else \
        "its Morse index not proven (the interval Cholesky test failed)"
    return result(True, index, worst, f"certified: exactly one critical point within {radius:g} of θ "
                  f"(max |K − θ| / radius = {worst:.3g}), {what}; F ∈ [{loss[0]:.12g}, {loss[1]:.12g}]")
