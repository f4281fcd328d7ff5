"""GMRES (Saad & Schultz 1986) without restart, in one `lax.while_loop`: the Krylov solve of the BDF
corrector's Newton–Krylov iteration at a fresh linearisation (`bdf.BDF(recycle=False)`), with Givens
rotations and classical Gram–Schmidt applied twice."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["gmres"]


def gmres(A, b, M, rtol, m):
    """Right-preconditioned GMRES from x0 = 0 with at most m iterations (no restart), stopping when the
    residual is ≤ rtol·‖b‖. Returns (x, iterations = products with A, converged)."""
    n = b.shape[0]
    beta = jnp.linalg.norm(b)
    V = jnp.zeros((m + 1, n), b.dtype).at[0].set(b / jnp.where(beta > 0, beta, 1.0))
    R = jnp.zeros((m + 1, m), b.dtype)
    g = jnp.zeros(m + 1, b.dtype).at[0].set(beta)
    rows = jnp.arange(m + 1)

    def cond(s):
        j, _, _, _, _, g = s
        return (j < m) & (jnp.abs(g[j]) > rtol * beta)

    def body(s):
        j, V, R, cs, sn, g = s
        w = A(M(V[j]))
        below = rows <= j
        h = jnp.zeros(m + 1, b.dtype)
        for _ in range(2):  # classical Gram–Schmidt, twice
            hh = jnp.where(below, V @ w, 0.0)
            w = w - hh @ V
            h = h + hh
        hn = jnp.linalg.norm(w)
        h = h.at[j + 1].set(hn)
        V = V.at[j + 1].set(w / jnp.where(hn > 0, hn, 1.0))

        def rotate(i, h):
            a, c = h[i], h[i + 1]
            return h.at[i].set(cs[i] * a + sn[i] * c).at[i + 1].set(-sn[i] * a + cs[i] * c)

        h = lax.fori_loop(0, j, rotate, h)
        r = jnp.hypot(h[j], h[j + 1])
        safe = jnp.where(r > 0, r, 1.0)
        c_j = jnp.where(r > 0, h[j] / safe, 1.0)
        s_j = jnp.where(r > 0, h[j + 1] / safe, 0.0)
        h = h.at[j].set(r).at[j + 1].set(0.0)
        g = g.at[j + 1].set(-s_j * g[j]).at[j].set(c_j * g[j])
        return j + 1, V, R.at[:, j].set(h), cs.at[j].set(c_j), sn.at[j].set(s_j), g

    init = (jnp.asarray(0, jnp.int64), V, R, jnp.zeros(m, b.dtype), jnp.zeros(m, b.dtype), g)
    j, V, R, _, _, g = lax.while_loop(cond, body, init)
    used = jnp.arange(m) < j
    Rj = jnp.where(used[:, None] & used[None, :], R[:m], jnp.eye(m, dtype=b.dtype))
    y = jax.scipy.linalg.solve_triangular(Rj, jnp.where(used, g[:m], 0.0), lower=False)
    converged = jnp.abs(g[j]) <= rtol * beta
    return M(y @ V[:m]), j, converged
