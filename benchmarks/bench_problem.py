"""Problem: the dense Hessian by `jax.hessian` (the default) against a vmapped Hessian-vector product
over the identity, which builds the same matrix. Both jitted and warmed up; median of 5 calls each."""

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
    """ratio = jax.hessian / vmap(hvp); above 1 would favour switching the default."""
    cases = [((2, 3, 3, 1), 200), ((1, 50, 2), 200)]
    if not quick:
        cases += [((10, 20, 1), 2000), ((64, 16, 10), 300)]
    out = []
    for widths, n in cases:
        model = ft.MLP(widths, "tanh")
        rng = np.random.default_rng(0)
        data = ft.Dataset(rng.standard_normal((n, widths[0])), rng.standard_normal((n, widths[-1])))
        p = ft.Problem(model, data)
        theta = jnp.asarray(model.init(0))
        eye = jnp.eye(p.n_params)
        ours = _median_time(jax.jit(lambda th: p.hessian_fn(th)), theta)
        base = _median_time(jax.jit(lambda th: jax.vmap(lambda v: p.hvp_fn(th, v))(eye)), theta)
        out.append(dict(name=f"hessian_vs_vmapped_hvp n={p.n_params}", ours_s=ours, baseline_s=base,
                        ratio=ours / base, baseline="vmap of the Hessian-vector product over the identity",
                        extra=dict(n_params=p.n_params, n_samples=n)))
    return out


BENCHMARKS = [hessian_vs_vmapped_hvp]
