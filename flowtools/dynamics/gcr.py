"""GCR, the generalized conjugate residual method (Eisenstat, Elman & Schultz, SIAM J. Numer. Anal. 20,
1983), keeping its directions between right-hand sides: the Krylov solve of the BDF corrector's
Newton–Krylov iteration when all corrections of an attempt share one operator (`bdf.BDF(recycle=True)`).
With the pairs (u_i, A u_i) of earlier solves kept, a new right-hand side is first projected onto them
at no cost in products with A (a recycled Krylov space, as in Parks et al., SIAM J. Sci. Comput. 28, 2006)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

__all__ = ["gcr"]


def gcr(A, b, U, C, n_pairs, rtol, m, small=lambda r: jnp.asarray(False)):
    """GCR (Eisenstat, Elman & Schultz 1983) for A x = b from x0 = 0 that keeps its search directions:
    U holds directions u_i and C their images c_i = A u_i, orthonormal, in the first `n_pairs` rows.
    The stored pairs are used first (no products with A), then at most m new directions are added
    (one product each, while rows are free) until the residual is ≤ rtol·‖b‖ or `small`(residual) is
    true with at least one pair in use (so that a small right-hand side still gets a correction, not
    zero, which the Newton test would take for convergence). With no stored pairs it is GMRES in exact
    arithmetic; for a second right-hand side with the same A, the pairs already span most of what it
    needs. Returns (x, new products, converged, U, C, n_pairs)."""
    cap = U.shape[0]
    beta = jnp.linalg.norm(b)
    stored = (jnp.arange(cap) < n_pairs)[:, None]
    alpha = jnp.where(stored[:, 0], C @ b, 0.0)
    x, r = alpha @ U, b - alpha @ C
    rows = jnp.arange(cap)

    def cond(s):
        j, k, _, r, _, _ = s
        return (j < m) & (k < cap) & (jnp.linalg.norm(r) > rtol * beta) & ~(small(r) & (k > 0))

    def body(s):
        j, k, x, r, U, C = s
        u, c = r, A(r)
        below = (rows < k)[:, None]
        for _ in range(2):  # classical Gram–Schmidt, twice
            a = jnp.where(below[:, 0], C @ c, 0.0)
            c, u = c - a @ C, u - a @ U
        cn = jnp.linalg.norm(c)
        inv = jnp.where(cn > 0, 1.0 / jnp.where(cn > 0, cn, 1.0), 0.0)
        u, c = u * inv, c * inv
        g = c @ r
        return j + 1, k + 1, x + g * u, r - g * c, U.at[k].set(u), C.at[k].set(c)

    i0 = jnp.asarray(0, jnp.int64)
    j, k, x, r, U, C = lax.while_loop(cond, body, (i0, jnp.asarray(n_pairs, jnp.int64), x, r, U, C))
    ok = (jnp.linalg.norm(r) <= rtol * beta) | (small(r) & (k > 0))
    return x, j, ok, U, C, k
