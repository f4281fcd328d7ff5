"""Transition-path benchmarks: the cost of a 64-parameter band of 16 images.

The net is `MLP((7, 8, 1), "tanh", bias=False)` (64 parameters) on 200 teacher–student samples from a
teacher of the same widths (noise 0.1); the ends are two minima from gradient flows (seeds 0 and 3), the
second aligned to the first. The entry times a fixed number of relaxation steps (the band need not
converge) and compares one jitted, vmapped band-force evaluation with a Python loop over the images calling
`Problem.value_and_grad`.

Run through the harness (`python benchmarks/run.py --only paths`) or directly:
`python benchmarks/bench_paths.py` runs the full `transition_path` (20 000 steps at most) and prints it.
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import flowtools as ft  # noqa: E402
from flowtools.landscape.paths import band_force  # noqa: E402


def _setup():
    teacher = ft.MLP((7, 8, 1), "tanh", bias=False)
    theta_t = np.random.default_rng(1).normal(size=teacher.n_params)
    data = ft.teacher_dataset((teacher, theta_t), 200, noise=0.1, seed=1)
    problem = ft.Problem(ft.MLP((7, 8, 1), "tanh", bias=False), data, "mse")
    ends = [ft.gradient_flow(problem, np.random.default_rng(s).normal(scale=0.5, size=problem.n_params),
                             np.inf, gtol=1e-9).final_theta for s in (0, 3)]
    return problem, ends[0], ends[1]


def band_64(quick: bool) -> dict:
    problem, a, b = _setup()
    steps = 500 if quick else 5000
    kw = dict(n_images=16, max_iter=steps, descend=False, refine_ends=False)
    ft.transition_path(problem, a, b, **dict(kw, max_iter=2))  # compile
    t0 = time.perf_counter()
    path = ft.transition_path(problem, a, b, **kw)
    ours = time.perf_counter() - t0
    band = jnp.asarray(path.images)
    force = eqx.filter_jit(band_force)
    jax.block_until_ready(force(problem, band, 0.1, True))
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(force(problem, band, 0.1, True))
    jitted = (time.perf_counter() - t0) / reps
    problem.value_and_grad(a)
    t0 = time.perf_counter()
    for _ in range(reps):
        for th in path.images:
            problem.value_and_grad(th)
    loop = (time.perf_counter() - t0) / reps
    return dict(name="band force, 64 parameters × 16 images", ours_s=jitted, baseline_s=loop,
                ratio=jitted / loop, baseline="a Python loop of Problem.value_and_grad over the images",
                extra=dict(steps=path.iterations, relax_s=ours, ms_per_step=1e3 * ours / path.iterations,
                           max_force=path.max_force, status=path.status),
                note="relax_s: the whole jitted relaxation of `steps` steps (ends fixed, no refinement)")


BENCHMARKS = [band_64]


if __name__ == "__main__":
    problem, a, b = _setup()
    for run in range(2):  # the first run includes compilation
        t0 = time.perf_counter()
        path = ft.transition_path(problem, a, b, n_images=16)
        print(f"run {run}: {time.perf_counter() - t0:.1f} s  {path}\n  {path.message}")
