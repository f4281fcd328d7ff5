"""Landscape benchmarks: dense Hessians, Lanczos vs. dense spectra, the Morse index of a ~1e5-parameter
net, and the critical-point sweep on teacher–student nets (our LM vs. scipy's MINPACK LM).

Run through the harness (`python benchmarks/run.py --only landscape`) or directly:
`python benchmarks/bench_landscape.py sweep` prints the full critical-point counts (2 input sizes × 8 widths ×
3 activations × 50 guesses).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

jax.config.update("jax_enable_x64", True)

import flowtools as ft  # noqa: E402
from flowtools.landscape.planted import planted_saddle  # noqa: E402
from flowtools.landscape import (  # noqa: E402
    estimate_negative_count,
    find_critical_points,
    hessian_spectrum,
)
from flowtools.landscape.spectrum import dense_hessian  # noqa: E402


def _timed(fn, repeat=1):
    fn()  # warm-up: compile
    t = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - t) / repeat, out


def _random_problem(widths, act="tanh", n=64, seed=0):
    teacher = ft.MLP((widths[0], 3, 1), "tanh")
    data = ft.teacher_dataset((teacher, teacher.init(seed + 1)), n, noise=0.1, seed=seed)
    return ft.Problem(ft.MLP(widths, act), data)


# ------------------------------------------------------------------------------------------ benchmarks
def hessian_dense_vs_n(quick: bool):
    """Our jitted exact Hessian vs. central finite differences of the jitted gradient (2n gradients)."""
    sizes = [(2, 8, 1), (3, 20, 20, 1)]
    if not quick:
        sizes += [(5, 30, 30, 1), (2, 40, 40, 1)]
    out = []
    for widths in sizes:
        p = _random_problem(widths)
        th = np.asarray(p.model.init(0))
        ours, H = _timed(lambda: dense_hessian(p, th), repeat=3)

        def fd():
            eps = 1e-5
            cols = []
            for i in range(p.n_params):
                e = np.zeros(p.n_params)
                e[i] = eps
                cols.append((p.grad(th + e) - p.grad(th - e)) / (2 * eps))
            return np.array(cols)

        base, H_fd = _timed(fd)
        out.append(dict(name=f"hessian_dense n={p.n_params}", ours_s=ours, baseline_s=base, ratio=ours / base,
                        baseline="central finite differences of the jitted gradient (2n calls)", target=1.0,
                        extra=dict(n_params=p.n_params, max_abs_diff=float(np.max(np.abs(H - H_fd))))))
    return out


def lanczos_vs_dense(quick: bool, full: bool = False):
    """Morse index by Lanczos vs. dense eigh on a planted saddle with a known index."""
    cases = [(10, 256, 3, 12, 60)]
    if not quick:
        cases += [(10, 256, 3, 12, 130)]
    if full:
        cases += [(10, 256, 3, 20, 230)]
    out = []
    for d, n, k_live, n_dead, n_idle in cases:
        p, th, p_live, th_live = planted_saddle(d, n, k_live, n_dead, n_idle)
        planted = n_dead + hessian_spectrum(p_live, th_live, method="dense").n_neg
        hessian_spectrum(p, th, method="lanczos", max_matvecs=20)  # compile the Hessian-vector product
        ours, lz = _timed(lambda: hessian_spectrum(p, th, method="lanczos"))
        base, dn = _timed(lambda: hessian_spectrum(p, th, method="dense"))
        agree = None
        if lz.n_neg == dn.n_neg:
            agree = float(np.max(np.abs(lz.eigenvalues[: lz.n_neg] - dn.eigenvalues[: dn.n_neg])))
        out.append(dict(name=f"lanczos_vs_dense n={p.n_params}", ours_s=ours, baseline_s=base,
                        ratio=ours / base,
                        baseline="dense Hessian + numpy eigh", target=1.0,
                        extra=dict(n_params=p.n_params, planted_index=planted, lanczos_index=lz.n_neg,
                                   dense_signature=list(dn.signature), complete=lz.complete,
                                   matvecs=lz.matvecs, max_eigenvalue_diff=agree)))
    return out


def _dense_extrapolation(n_target, hvp_seconds):
    """Estimated time of the dense route at n_target: building H (n_target Hessian-vector products, the
    measured cost of one times n) plus numpy eigh, timed on random symmetric matrices of n = 1000 and 2000
    and extrapolated as c·n³."""
    rng = np.random.default_rng(0)
    times = {}
    for n in (1000, 2000):
        A = rng.standard_normal((n, n))
        A = A + A.T
        times[n], _ = _timed(lambda: np.linalg.eigvalsh(A))
    c = min(t / n**3 for n, t in times.items())  # the least contended measurement
    return c * n_target**3 + n_target * hvp_seconds, times


def _hvp_seconds(p, th):
    from flowtools.landscape._kernels import hvp
    thj, v = jnp.asarray(th), jnp.ones(p.n_params)
    t, _ = _timed(lambda: jax.block_until_ready(hvp(p, thj, v)), repeat=10)
    return t


def _load():
    return os.getloadavg()[0]


def _planted_count(p, th, target_s, planted, *, compare=True, repeat=1):
    """A timed Morse count at a planted saddle (wall and CPU seconds), and, with `compare`, the same
    count in the same run by the earlier configuration: a 40-vector basis and forward-over-reverse
    products recomputing the network at θ in each (alternated `repeat` times, medians)."""
    from flowtools.landscape._kernels import hessian_matvec
    from flowtools.landscape._krylov_schur import lanczos_spectrum

    hessian_spectrum(p, th, method="lanczos", max_matvecs=20, warn=False)  # compile
    ours, earlier, spec, old = [], [], None, None
    for _ in range(repeat):
        load, t, c = _load(), time.perf_counter(), time.process_time()
        spec = hessian_spectrum(p, th, method="lanczos", vectors=False)
        ours.append((time.perf_counter() - t, time.process_time() - c, load))
        if compare:
            mv, counter = hessian_matvec(p, th)
            t, c = time.perf_counter(), time.process_time()
            old = lanczos_spectrum(mv, p.n_params, rtol_zero=1e-7, k=6, k_top=1, max_matvecs=5000, ncv=40,
                                   conv_rtol=1e-9, seed=0, max_index=p.n_params)
            earlier.append((time.perf_counter() - t, time.process_time() - c, counter[0]))
    wall = float(np.median([o[0] for o in ours]))
    extra = dict(n_params=p.n_params, planted_index=planted, index=spec.n_neg, complete=spec.complete,
                 matvecs=spec.matvecs, seconds=wall, cpu_seconds=float(np.median([o[1] for o in ours])),
                 target_seconds=target_s, loadavg=[o[2] for o in ours] + [_load()],
                 smallest=spec.eigenvalues[:3].tolist(), message=spec.message,
                 peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    if compare:
        extra.update(earlier_seconds=float(np.median([e[0] for e in earlier])),
                     earlier_cpu_seconds=float(np.median([e[1] for e in earlier])),
                     earlier_matvecs=earlier[-1][2], earlier_index=old["n_neg"],
                     earlier_complete=old["complete"])
    return wall, extra


def morse_index_1e5_params(quick: bool, full: bool = False):
    """Morse index of a 100-980-1 tanh net (99 859 parameters) at a planted saddle of index 20: the
    "Must show" row (≤ 10 s), with the earlier 40-vector configuration as the same-run baseline."""
    n_idle = 958 if not quick else 200
    p, th, p_live, th_live = planted_saddle(100, 1024, 1, 20, n_idle)
    planted = 20 + hessian_spectrum(p_live, th_live, method="dense").n_neg
    # The default run alternates once (the earlier configuration alone takes 20-60 s); --full 3 times.
    ours, extra = _planted_count(p, th, 10.0, planted, repeat=3 if full else 1)
    hvp_s = _hvp_seconds(p, th)
    base, measured = _dense_extrapolation(p.n_params, hvp_s)
    extra.update(hvp_seconds=hvp_s, dense_extrapolated_s=base,
                 dense_measured=", ".join(f"n={n}: {s:.2f}s" for n, s in measured.items()))
    entries = [dict(name=f"morse_index planted n={p.n_params}", ours_s=ours,
                    baseline_s=extra["earlier_seconds"], ratio=ours / extra["earlier_seconds"],
                    baseline="the earlier configuration in the same run (40-vector basis, forward-over-"
                             "reverse products); dense would need an n×n matrix of 80 GB "
                             "(extra.dense_extrapolated_s)",
                    target=None,
                    extra=extra,
                    note="Must show: ≤ 10 s (extra.seconds against extra.target_seconds; the wall time "
                         "follows the machine's load, extra.cpu_seconds less so)")]
    if full:
        # A random point of a 10-300-300-1 net: hundreds of negative eigenvalues in a continuum; Lanczos
        # gives a certified lower bound within its budget, stochastic Lanczos quadrature an estimate.
        teacher = ft.MLP((10, 4, 1), "tanh")
        data = ft.teacher_dataset((teacher, teacher.init(1)), 256, noise=0.1, seed=0)
        q = ft.Problem(ft.MLP((10, 300, 300, 1), "tanh"), data)
        thq = np.asarray(q.model.init(0, "he"))
        hessian_spectrum(q, thq, method="lanczos", max_matvecs=20)
        t = time.perf_counter()
        lz = hessian_spectrum(q, thq, method="lanczos", max_matvecs=600)
        t_lz = time.perf_counter() - t
        t = time.perf_counter()
        est = estimate_negative_count(q, thq, n_probe=8, steps=100, relative_thresholds=(1e-3, 1e-2))
        t_slq = time.perf_counter() - t
        base_q, _ = _dense_extrapolation(q.n_params, _hvp_seconds(q, thq))
        entries.append(dict(name=f"morse_index random point n={q.n_params}", ours_s=t_lz + t_slq,
                            baseline_s=base_q,
                            ratio=(t_lz + t_slq) / base_q,
                            baseline="dense: n Hessian-vector products + eigh extrapolated as n³",
                            extra=dict(n_params=q.n_params, lanczos_lower_bound=lz.n_neg,
                                       lanczos_complete=lz.complete, lanczos_seconds=t_lz,
                                       slq_estimate=est["estimate"], slq_stderr=est["stderr"],
                                       slq_below_1e_3_scale=est["by_threshold"][1e-3],
                                       slq_below_1e_2_scale=est["by_threshold"][1e-2], scale=est["scale"],
                                       slq_seconds=t_slq),
                            note="exact index out of reach (dense continuum of negative eigenvalues): "
                                 "interlacing lower bound + stochastic Lanczos quadrature estimates; at "
                                 "tol = 1e-7·scale the quadrature cannot separate the near-zero bulk"))
    return entries


def _teacher_student(d, k, act, n=40, noise=0.1):
    teacher = ft.MLP((d, 2, 1), "tanh")
    data = ft.teacher_dataset((teacher, teacher.init(7)), n, noise=noise, seed=d)
    return ft.Problem(ft.MLP((d, k, 1), act), data)


def sweep(configs, n_guesses, *, scipy_baseline=True, verbose=False):
    """Critical points from random guesses on teacher–student nets: counts by kind, and scipy's
    MINPACK Levenberg–Marquardt (`scipy.optimize.root(method="lm")` on ∇L with the Hessian as Jacobian)
    from the same guesses as the baseline."""
    counts, base_counts = Counter(), Counter()
    ours_s = base_s = 0.0
    for d, k, act in configs:
        p = _teacher_student(d, k, act)
        guesses = np.stack([np.asarray(p.model.init(s)) for s in range(n_guesses)])
        t = time.perf_counter()
        cps = find_critical_points(p, guesses)
        ours_s += time.perf_counter() - t
        row = Counter()
        for cp in cps:
            ok = cp.success and np.linalg.norm(p.grad(cp.theta)) <= 1e-10
            assert ok or not cp.success, "a non-critical point was reported as critical"
            row["found" if cp.success else "failed"] += 1
            row[cp.kind] += 1
        counts.update(row)
        if scipy_baseline:
            t = time.perf_counter()
            for g in guesses:
                r = scipy.optimize.root(p.grad, g, jac=p.hessian, method="lm", options=dict(maxiter=2000))
                good = bool(np.all(np.isfinite(r.x))) and np.linalg.norm(p.grad(r.x)) <= 1e-10 \
                    and np.linalg.norm(r.x - g) <= 1 + np.linalg.norm(g)
                base_counts["found" if good else "failed"] += 1
            base_s += time.perf_counter() - t
        if verbose:
            tally = " ".join(f"{key}={v}" for key, v in sorted(row.items()))
            print(f"d={d} k={k} {act:<9s} n={p.n_params:<3d} {tally}", flush=True)
    return counts, base_counts, ours_s, base_s


def critical_point_sweep(quick: bool, full: bool = False):
    """Default: 4 nets × 12 guesses, each also solved by scipy (about a minute). `--full`: the whole sweep,
    2 input sizes × 8 widths × 3 activations × 50 guesses, with scipy's per-guess baseline (most of an
    hour on two cores)."""
    if quick:
        configs = [(1, 3, "tanh"), (2, 4, "softplus")]
        n_guesses = 10
    elif full:
        configs = [(d, k, act) for d in (1, 2) for act in ("tanh", "softplus", "gelu") for k in range(1, 9)]
        n_guesses = 50
    else:
        configs = [(1, 3, "tanh"), (2, 4, "softplus"), (2, 6, "gelu"), (1, 8, "tanh")]
        n_guesses = 12
    counts, base, ours_s, base_s = sweep(configs, n_guesses)
    total = len(configs) * n_guesses
    return dict(name=f"critical_points teacher-student ({total} guesses)", ours_s=ours_s / total,
                baseline_s=base_s / total, ratio=ours_s / base_s,
                baseline="scipy.optimize.root(method='lm') on grad L with the Hessian (per guess)",
                extra=dict(ours=dict(counts), scipy_found=base.get("found", 0),
                           scipy_failed=base.get("failed", 0)),
                note="found = |grad L| <= 1e-12 within the radius 1 + |guess|; ours solves guess by guess "
                     "with find_critical_point's fallbacks (compile time included)")


def morse_index_1e6_params(quick: bool):
    """Morse index of a 100-9 804-1 tanh net (1 000 009 parameters) at a planted saddle of index 20: the
    "Must show" row (≤ 120 s). One count (146 products, about a minute of CPU; 155 s of wall time at load
    8, with building the saddle and its dense live part on top): --full only."""
    p, th, p_live, th_live = planted_saddle(100, 1024, 1, 20, 9783)
    planted = 20 + hessian_spectrum(p_live, th_live, method="dense").n_neg
    ours, extra = _planted_count(p, th, 120.0, planted, compare=False)
    return dict(name=f"morse_index planted n={p.n_params}", ours_s=ours, baseline_s=120.0,
                ratio=ours / 120.0, baseline="target 120 s", target=1.0, extra=extra)


BENCHMARKS = [hessian_dense_vs_n, lanczos_vs_dense, morse_index_1e5_params, critical_point_sweep]
FULL_BENCHMARKS = [morse_index_1e6_params]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "sweep":
        configs = [(d, k, act) for d in (1, 2) for act in ("tanh", "softplus", "gelu") for k in range(1, 9)]
        counts, base, ours_s, base_s = sweep(configs, 50, scipy_baseline="--scipy" in sys.argv, verbose=True)
        print("ours:", dict(counts), f"({ours_s:.1f} s)")
        if base:
            print("scipy lm:", dict(base), f"({base_s:.1f} s)")
    else:
        for fn in BENCHMARKS:  # the smallest sizes
            for e in (lambda r: r if isinstance(r, list) else [r])(fn(True)):
                print(e)
