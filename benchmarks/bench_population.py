"""R(θ) at d = 50: the exact reduction to 2-D Gaussian integrals against the Monte Carlo default.

Both evaluate R = E_x ‖f(x; θ) − T(x)‖² for a 50-2-1 student against a 50-2-1 teacher, with erf(z/√2)
units (the soft committee machine; closed form) and with tanh units (the 2-D Gauss–Hermite rule), inside the same jitted `Problem.gen_error_fn`; the Monte Carlo path is the one
`Problem` used for d_in > 2 before the reduction (2^16 seeded samples). Same-run ratio, compiled code
only (compile time excluded by a warm-up call).
"""

from __future__ import annotations

import os
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


def _rel(x, ref):
    """max |x − ref| / max |ref| (for R: the relative difference); the absolute difference where ref = 0."""
    scale = float(np.max(np.abs(np.asarray(ref))))
    return float(np.max(np.abs(np.asarray(x) - np.asarray(ref)))) / (scale if scale > 0 else 1.0)


def _in_solve(risk, thetas, n):
    """A jitted scan of n loss + gradient evaluations (the students in turn), as a compiled solve calls them:
    no per-call dispatch."""
    stack = jax.numpy.stack([thetas[i % len(thetas)] for i in range(n)])
    vg = jax.value_and_grad(risk)

    def step(acc, th):
        v, g = vg(th)
        return acc + v + jax.numpy.sum(g), None

    run = jax.jit(lambda st: jax.lax.scan(step, 0.0, st)[0])
    return lambda: run(stack)


def pair_rule_series_vs_gauss_hermite(quick: bool, full: bool = False):
    """R and ∇R at d = 50 against a 50-4-1 teacher (tanh, softplus; students of width 4, and 7 in `--full`):
    the Hermite series (method="series") against today's 96² Gauss–Hermite rule, alternating in the same
    run (per call, compile excluded; `ratio` from the best rounds, `ratio_median` the median of the
    per-round ratios), at five random students (seeds 1–5: directions nearly orthogonal, |ρ| ≤ 0.45, the
    first level K = 31) and at a student whose first units equal the teacher's (seed 0: ρ = 1, K = 255).
    Differences to the Gauss–Hermite rule and to the graded rule (accurate to 2e-15). Beside the per-call
    ratio, `in_solve_*`: 50 evaluations of R and ∇R inside one jitted `lax.scan` (as a flow's compiled
    solve calls them, without the per-call dispatch), series against Gauss–Hermite, alternating; wall and
    CPU time (`time.process_time`) per evaluation. Each timed round follows an untimed one of the same
    program: a program's first call after the other's ran slower (the series' scan at 17–19 µs per
    evaluation right after the 96² rule's, 14–15 µs after its own), a cost of the alternation that a solve,
    running one program, does not pay."""
    from flowtools import gaussian

    out = []
    d = 50
    for act in ("tanh", "softplus"):
        for m in ((4, 7) if full else (4,)):
            T, S = ft.MLP((d, 4, 1), act, bias=False), ft.MLP((d, m, 1), act, bias=False)
            tt = T.init(0, scale=d**-0.5)
            states = {"random": [jax.numpy.asarray(S.init(k, scale=d**-0.5)) for k in range(1, 6)],
                      "aligned": [jax.numpy.asarray(S.init(0, scale=d**-0.5))]}
            f = {meth: jax.jit(jax.value_and_grad(
                lambda th, meth=meth: gaussian.population_risk(S, th, T, tt, method=meth)))
                for meth in ("series", "gauss_hermite", "graded")}
            extra = {}
            for state, thetas in states.items():
                times = {meth: [] for meth in ("series", "gauss_hermite")}
                for meth in times:
                    jax.block_until_ready(f[meth](thetas[0]))  # compile
                batch = thetas * (5 // len(thetas))
                for _ in range(7 if quick else 21):
                    for meth in times:
                        for th in batch:  # untimed: the program's first calls after the other's (see above)
                            jax.block_until_ready(f[meth](th))
                        t = time.perf_counter()
                        for th in batch:
                            jax.block_until_ready(f[meth](th))
                        times[meth].append((time.perf_counter() - t) / len(batch))
                ratios = np.array(times["series"]) / np.array(times["gauss_hermite"])
                solve = {meth: _in_solve(lambda th, meth=meth: gaussian.population_risk(S, th, T, tt, method=meth),
                                         thetas, 50) for meth in times}
                wall, cpu = {meth: [] for meth in times}, {meth: [] for meth in times}
                for meth in times:
                    jax.block_until_ready(solve[meth]())  # compile
                for _ in range(3 if quick else 7):
                    for meth in times:
                        jax.block_until_ready(solve[meth]())  # untimed, as above
                        t, c = time.perf_counter(), time.process_time()
                        jax.block_until_ready(solve[meth]())
                        wall[meth].append((time.perf_counter() - t) / 50)
                        cpu[meth].append((time.process_time() - c) / 50)
                in_solve = np.array(wall["series"]) / np.array(wall["gauss_hermite"])
                in_solve_cpu = np.array(cpu["series"]) / np.array(cpu["gauss_hermite"])
                vals = {meth: [f[meth](th) for th in thetas] for meth in f}
                def diff(meth, i):
                    return max(_rel(a[i], b[i]) for a, b in zip(vals["series"], vals[meth]))
                # The machine is shared: the median of the per-round ratios, and the ratio of the best rounds.
                extra[state] = dict(
                    series_s=float(np.min(times["series"])),
                    gauss_hermite_s=float(np.min(times["gauss_hermite"])),
                    ratio=float(np.min(times["series"]) / np.min(times["gauss_hermite"])),
                    ratio_median=float(np.median(ratios)), speedup_median=float(np.median(1.0 / ratios)),
                    in_solve_series_s=float(np.median(wall["series"])),
                    in_solve_gauss_hermite_s=float(np.median(wall["gauss_hermite"])),
                    in_solve_ratio_median=float(np.median(in_solve)),
                    in_solve_cpu_ratio_median=float(np.median(in_solve_cpu)),
                    rule=gaussian.population_rule(S, thetas[0], T, tt, method="series"),
                    rel_diff_R_vs_graded=diff("graded", 0), rel_diff_grad_vs_graded=diff("graded", 1),
                    rel_diff_R_vs_gauss_hermite=diff("gauss_hermite", 0),
                    rel_diff_grad_vs_gauss_hermite=diff("gauss_hermite", 1),
                    # at a global minimum (R = 0, m = k) relative differences are ratios of round-off
                    abs_diff_R_vs_graded=max(abs(float(a[0] - b[0]))
                                             for a, b in zip(vals["series"], vals["graded"])),
                    R=float(vals["graded"][0][0]))
            r = extra["random"]
            out.append(dict(name=f"R and ∇R at d=50, {act}, m={m}, k=4: Hermite series vs Gauss–Hermite 96²",
                            ours_s=r["series_s"], baseline_s=r["gauss_hermite_s"], ratio=r["ratio"],
                            target=0.05,
                            baseline="the 96² Gauss–Hermite rule (method='auto' today)",
                            extra=dict(load=os.getloadavg()[0], **{f"{k}_{state}": v for state, e in extra.items()
                                                                   for k, v in e.items()})))
    return out


def population_flow_series_vs_gauss_hermite(quick: bool, full: bool = False):
    """The width study's flow (d = 10, a random tanh teacher of k = 4 unit-norm neurons, a tanh student of
    width 5 from N(0, 0.1²), BDF, gtol 1e-9) to t = 10⁵ (10³ in `--quick`; softplus too in `--full`): the
    Hermite series (method="series") against the default 96² Gauss–Hermite rule, alternating in the same run,
    median of 3 (1 in `--quick`) after one compiling run of each (its time reported apart); wall and CPU time
    (`time.process_time`), the load, and the solver's counts and final loss for each rule."""
    out = []
    t1, reps = (1e3, 1) if quick else (1e5, 3)
    for act in (("tanh", "softplus") if full else ("tanh",)):
        T, tt = ft.problems.random_teacher(10, 4, act, seed=0)
        S = ft.MLP((10, 5, 1), act, bias=False)
        th0 = S.init(0, "normal", scale=0.1)
        problems = {m: ft.Problem(S, ft.GaussianInputs((T, tt), method=m)) for m in ("series", "auto")}

        def run(m):
            t, c = time.perf_counter(), time.process_time()
            tr = ft.gradient_flow(problems[m], th0, t1, solver="bdf", gtol=1e-9, n_save=200)
            return time.perf_counter() - t, time.process_time() - c, tr

        first = {m: run(m) for m in problems}  # compiles
        wall, cpu = {m: [] for m in problems}, {m: [] for m in problems}
        for i in range(reps):
            for m in (("series", "auto") if i % 2 == 0 else ("auto", "series")):
                w, c, tr = run(m)
                wall[m].append(w)
                cpu[m].append(c)
        extra = dict(load=os.getloadavg()[0], t1=t1)
        for m, (w, c, tr) in first.items():
            extra.update({f"{m}_first_wall_s": w, f"{m}_first_cpu_s": c, f"{m}_cpu_s": float(np.median(cpu[m])),
                          f"{m}_status": str(tr.status), f"{m}_steps": int(tr.stats["steps"]),
                          f"{m}_hvp": int(tr.stats["hvp_evaluations"]),
                          f"{m}_final_loss": float(problems[m].loss(np.asarray(tr.theta)[-1]))})
        extra["cpu_ratio"] = extra["series_cpu_s"] / extra["auto_cpu_s"]
        ours, base = float(np.median(wall["series"])), float(np.median(wall["auto"]))
        out.append(dict(name=f"population flow, d=10, {act}, m=5, k=4, t={t1:g}: Hermite series vs Gauss–Hermite 96²",
                        ours_s=ours, baseline_s=base, ratio=ours / base, target=1.0,
                        baseline="the default rule (method='auto': the 96² Gauss–Hermite rule)", extra=extra))
    return out


BENCHMARKS = [gen_error_d50_exact_vs_monte_carlo, pair_rule_graded_vs_gauss_hermite,
              pair_rule_series_vs_gauss_hermite]
# The series flow compiles for about 40 s of CPU time (its Hessian-vector product carries three levels and the
# graded fallback): full runs only, so that `make bench` stays within 10 minutes.
FULL_BENCHMARKS = [population_flow_series_vs_gauss_hermite]
