"""Problem: the dense Hessian by the package's builder (`dense_hessian_fn`: Hessian-vector products of
the unit vectors, `state_vmap_width` at a time) against `jax.jacfwd(grad)` and against one vmap of the
Hessian-vector product over the whole identity, which build the same matrix. All jitted and warmed up;
median of 5 calls each, in the same run."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import flowtools as ft


def _median_time(fn, theta, repeat=5):
    fn(theta).block_until_ready()  # compile
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(theta).block_until_ready()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def hessian_vs_vmapped_hvp(quick: bool):
    """ratio = builder / jax.jacfwd(grad); extra holds one vmap over the identity. Above 1 would favour
    switching the builder."""
    cases = [((2, 3, 1), 200), ((2, 3, 3, 1), 200), ((1, 50, 2), 200)]
    if not quick:
        cases += [((10, 20, 1), 2000), ((64, 16, 10), 300)]
    out = []
    for widths, n in cases:
        model = ft.MLP(widths, "tanh")
        rng = np.random.default_rng(0)
        data = ft.Dataset(rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1])))
        p = ft.Problem(model, data)
        theta = jnp.asarray(model.init(0))
        ours = _median_time(jax.jit(lambda th: p.hessian_fn(th)), theta)
        base = _median_time(jax.jit(jax.jacfwd(p.grad_fn)), theta)
        vmapped = _median_time(jax.jit(lambda th: jax.vmap(lambda v: p.hvp_fn(th, v))(
            jnp.eye(th.shape[0], dtype=th.dtype))), theta)
        out.append(dict(name=f"hessian_vs_vmapped_hvp n={p.n_params}", ours_s=ours, baseline_s=base,
                        ratio=ours / base, baseline="jax.jacfwd(grad)",
                        extra=dict(n_params=p.n_params, n_samples=n, vmap_all_s=vmapped)))
    return out


BENCHMARKS = [hessian_vs_vmapped_hvp]
