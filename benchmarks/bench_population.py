"""R(θ) at d = 50: the exact reduction to 2-D Gaussian integrals against the Monte Carlo default.

Both evaluate R = E_x ‖f(x; θ) − T(x)‖² for a 50-2-1 student against a 50-2-1 teacher, with erf(z/√2)
units (the soft committee machine; closed form) and with tanh units (the 2-D Gauss–Hermite rule), inside the same jitted `Problem.gen_error_fn`; the Monte Carlo path is the one
`Problem` used for d_in > 2 before the reduction (2^16 seeded samples). Same-run ratio, compiled code
only (compile time excluded by a warm-up call).
"""

from __future__ import annotations

import time

import jax
import numpy as np

import flowtools as ft
from flowtools.problem._batch import jit_gen_error


def _per_call(p, thetas, repeat):
    jax.block_until_ready(jit_gen_error(p, thetas[0]))  # compile
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for th in thetas:
            jax.block_until_ready(jit_gen_error(p, th))
        best = min(best, (time.perf_counter() - t) / len(thetas))
    return best


def gen_error_d50_exact_vs_monte_carlo(quick: bool):
    return [_entry(act, quick) for act in ("scaled_erf", "tanh")]


def _entry(act, quick):
    d = 50
    T = ft.MLP((d, 2, 1), act, bias=False)
    tt = T.init(0, scale=d**-0.5)
    data = ft.teacher_dataset((T, tt), 2000, seed=1)
    S = ft.MLP((d, 2, 1), act, bias=False)
    exact = ft.Problem(S, data)
    mc = ft.Problem(S, data, population=ft.GaussianQuadrature.build(d, "monte_carlo"))
    assert exact.population_method == "exact" and mc.population_method == "monte_carlo"
    thetas = [jax.numpy.asarray(S.init(k, scale=d**-0.5)) for k in range(20)]
    repeat = 2 if quick else 5
    ours = _per_call(exact, thetas, repeat)
    base = _per_call(mc, thetas[:5], repeat)
    th = np.asarray(thetas[0])
    return dict(name=f"R(θ) at d=50, {act}: exact vs Monte Carlo", ours_s=ours, baseline_s=base, ratio=ours / base,
                target=0.01, baseline="Monte Carlo, 2^16 samples (the previous default for d_in > 2)",
                extra=dict(R_exact=exact.gen_error(th), R_monte_carlo=mc.gen_error(th),
                           monte_carlo_stderr=mc.gen_error_stderr(th)))



def pair_rule_graded_vs_gauss_hermite(quick: bool):
    """Loss and gradient of R for a 50-7-1 student against a 50-4-1 teacher (tanh, softplus): the graded
    Gauss–Legendre rule (method="graded") against the default 96² Gauss–Hermite rule, same run, compile
    excluded."""
    from flowtools import gaussian

    out = []
    for act in ("tanh", "softplus"):
        d = 50
        T, S = ft.MLP((d, 4, 1), act, bias=False), ft.MLP((d, 7, 1), act, bias=False)
        tt = T.init(0, scale=d**-0.5)
        thetas = [jax.numpy.asarray(S.init(k, scale=d**-0.5)) for k in range(5)]
        best, value = {}, {}
        for method in ("graded", "gauss_hermite"):
            risk = lambda th, m=method: gaussian.population_risk(S, th, T, tt, method=m)  # noqa: E731
            f = jax.jit(jax.value_and_grad(risk))
            jax.block_until_ready(f(thetas[0]))
            best[method] = np.inf
            for _ in range(2 if quick else 3):
                t = time.perf_counter()
                for th in thetas:
                    jax.block_until_ready(f(th))
                best[method] = min(best[method], (time.perf_counter() - t) / len(thetas))
            value[method] = float(f(thetas[0])[0])
        out.append(dict(name=f"R and ∇R at d=50, {act}, m=7, k=4: graded rule vs Gauss–Hermite 96²",
                        ours_s=best["graded"], baseline_s=best["gauss_hermite"],
                        ratio=best["graded"] / best["gauss_hermite"], target=None,
                        baseline="the 96² Gauss–Hermite rule (method='gauss_hermite')",
                        extra=dict(R_graded=value["graded"], R_gauss_hermite=value["gauss_hermite"])))
    return out


BENCHMARKS = [gen_error_d50_exact_vs_monte_carlo, pair_rule_graded_vs_gauss_hermite]
