"""Transition-path benchmarks: the cost of a 64-parameter band of 16 images.

The net is `MLP((7, 8, 1), "tanh", bias=False)` (64 parameters) on 200 teacher–student samples from a
teacher of the same widths (noise 0.1); the ends are two minima from gradient flows (seeds 0 and 3), the
second aligned to the first. The entry times a fixed number of relaxation steps (the band need not
converge) and compares one jitted, vmapped band-force evaluation with a Python loop over the images calling
`Problem.value_and_grad`.

`band_64_relu` times a whole `transition_path` (band, saddle refinement, descent) on the 64-parameter
Safran–Shamir landscape (k = n = 8, population loss) between the spurious minimum reached from seed 3 and
the global minimum from seed 0: a second call, after the first has compiled everything.

Run through the harness (`python benchmarks/run.py --only paths`) or directly:
`python benchmarks/bench_paths.py` runs the full `transition_path` (20 000 steps at most) and prints it;
`python benchmarks/bench_paths.py --diagnose` prints why that band does not converge: the norm and the
Hessian's condition number at each of the four flow ends (seeds 0–3), and for the band between ends 0 and 3
under a few settings, max‖F‖ after 5 000 steps and what the highest image refines to.
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


def _ends(problem, seeds):
    return [ft.gradient_flow(problem, np.random.default_rng(s).normal(scale=0.5, size=problem.n_params),
                             np.inf, gtol=1e-9).final_theta for s in seeds]


def _setup():
    teacher = ft.MLP((7, 8, 1), "tanh", bias=False)
    theta_t = np.random.default_rng(1).normal(size=teacher.n_params)
    data = ft.teacher_dataset((teacher, theta_t), 200, noise=0.1, seed=1)
    problem = ft.Problem(ft.MLP((7, 8, 1), "tanh", bias=False), data, "mse")
    return (problem, *_ends(problem, (0, 3)))


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


def band_64_relu(quick: bool) -> dict:
    problem = ft.problems.safran_shamir(8)
    ends = [ft.gradient_flow(problem, ft.problems.safran_shamir_init(problem, s), np.inf, gtol=1e-10).final_theta
            for s in (3, 0)]
    ft.transition_path(problem, *ends)  # compile
    t0 = time.perf_counter()
    path = ft.transition_path(problem, *ends)
    wall = time.perf_counter() - t0
    return dict(name="transition_path, 64 params × 16 images (ReLU)", ours_s=wall, baseline_s=30.0,
                ratio=wall / 30.0, target=1.0, baseline="target: 30 s for a 64-parameter band of 16 images",
                extra=dict(steps=path.iterations, status=path.status, barrier=path.barriers[0],
                           saddle_loss=None if path.saddle is None else path.saddle.loss),
                note="band, saddle refinement and descent, after a compiling call")


BENCHMARKS = [band_64, band_64_relu]


def diagnose():
    import warnings

    warnings.simplefilter("ignore")
    problem, _, _ = _setup()
    ends = _ends(problem, range(4))
    for s, th in enumerate(ends):
        lam = np.linalg.eigvalsh(problem.hessian(th))
        print(f"end {s}: |θ| = {np.linalg.norm(th):.4g}, ‖∇L‖ = {problem.grad_norm(th):.2g}, λ_max = {lam[-1]:.3g}, "
              f"λ_min = {lam[0]:.3g}, κ = {lam[-1] / lam[0]:.3g}")
    a, b = ends[0], ends[3]
    k0 = ft.transition_path(problem, a, b, max_iter=2, refine_ends=False, descend=False).spring
    for name, kw in [("default", {}), ("no climbing image", dict(climb=False)),
                     ("climbing later (climb_after=0.002)", dict(climb_after=0.002)),
                     ("spring × 10", dict(spring=10 * k0)), ("spring × 0.1", dict(spring=0.1 * k0)),
                     ("32 images", dict(n_images=32))]:
        t0 = time.perf_counter()
        path = ft.transition_path(problem, a, b, max_iter=5000, refine_ends=False, descend=False, **kw)
        wall = time.perf_counter() - t0
        top = 1 + int(np.argmax(path.energies[1:-1]))
        cp = ft.find_critical_point(problem, path.images[top], gtol=1e-10,
                                    radius=2 * np.linalg.norm(path.images[1] - path.images[0]))
        print(f"{name:<36s} {wall:5.1f} s  max|F| = {path.max_force:.2g} after {path.iterations} steps; top image "
              f"L/L(a) = {path.energies[top] / path.energies[0]:.3f}, refines: {cp.status}, signature {cp.signature}")


if __name__ == "__main__":
    import sys

    if "--diagnose" in sys.argv:
        diagnose()
        sys.exit()
    problem, a, b = _setup()
    for run in range(2):  # the first run includes compilation
        t0 = time.perf_counter()
        path = ft.transition_path(problem, a, b, n_images=16)
        print(f"run {run}: {time.perf_counter() - t0:.1f} s  {path}\n  {path.message}")
