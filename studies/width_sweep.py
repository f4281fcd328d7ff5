"""Width sweep: how often gradient flow reaches the global minimum as the student widens (Şimšek et al. 2021;
Brea et al. 2023).

Setting (default, `--data population`). Teacher–student regression on the population loss
L = ½ E_x (f(x; θ) − T(x))², x ~ N(0, I_10), exact (`flowtools.GaussianInputs`: closed forms for erf, the
Hermite series for softplus and tanh, `--gaussian-method`): a soft-committee
teacher of k = 4 unit-norm neurons with output weights 1 (`flowtools.sweeps.make_problem`), students
(10, m, 1) without biases for m = 1 … k + 3, activations erf, softplus and tanh, teacher and student
sharing the activation. `--data finite` (and `--quick`): x ~ N(0, I_4), k = 2, n = 200 noiseless
samples, activations tanh, erf, softplus (R evaluated exactly at the end of each run with
`flowtools.gaussian.population_risk`). Each run starts at θ0 ~ N(0, 0.1²) (near the origin saddle)
and follows the gradient flow ("bdf") to ‖∇L‖ ≤ 1e-9 or t = 1e6; its itinerary gives the saddles
visited, their dwell times and the attractor.

Measured, per (activation, m):
1. the fraction of runs reaching the global minimum: attractor loss within 1e-8·mean(y²) of the lowest
   attractor loss of that (activation, m), with a Wilson 95% interval; whether that loss is 0 (m ≥ k);
2. the distinct attractors up to symmetry (`flowtools.escape.basin_fractions` on the merged saddle
   graph of the group), each with its loss, run fraction and Wilson interval;
3. the saddles visited (distinct saddle nodes, mean saddle visits per run) and the plateau length (the
   longest dwell at a saddle).

Runs go through `flowtools.sweeps.sweep` (Dask workers; resumable store in <out>/store). Writes
<out>/{summary.json, global_minimum.png, attractors.png, plateaus.png}. `--quick` is a reduced version
for tests (finite data, one activation, k = 1, widths 1–2, 3 seeds, serial).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import flowtools as ft  # noqa: E402
from flowtools import sweeps  # noqa: E402
from flowtools.plotting import save_figure  # noqa: E402

SCHEMA = "flowtools.width_sweep/1"

FIXED = dict(problem="teacher_student", d_in=4, n=200, noise=0.0, teacher_seed=0, data_seed=0,
             loss="half_mse", init_scale=0.1, t1=1e6, gtol=1e-9, solver="bdf")
# The population loss (exact Gaussian expectations): a soft committee of k = 4 neurons in d = 10.
FIXED_POPULATION = dict(problem="teacher_student", data="population", d_in=10, teacher_seed=0, data_seed=0,
                        loss="half_mse", init_scale=0.1, t1=1e6, gtol=1e-9, solver="bdf")
# The papers' setting (Safran & Shamir 2018; Şimšek et al. 2021): an orthonormal teacher v_j = e_j and
# standard initialization w ~ N(0, I/d) (LeCun), far from the origin saddle.
FIXED_PAPERS = dict(FIXED_POPULATION, teacher="orthonormal", init_scheme="lecun", init_scale=1.0)
FULL = dict(teacher_width=4, activations=["erf", "softplus", "tanh"], seeds=64, extra_width=3)
# ReLU is closed-form and exact at aligned neurons (flowtools.gaussian), so the papers' setting includes it.
FULL_PAPERS = dict(teacher_width=4, activations=["erf", "relu", "softplus", "tanh"], seeds=64, extra_width=3)
FULL_FINITE = dict(teacher_width=2, activations=["tanh", "erf", "softplus"], seeds=64, extra_width=3)
QUICK = dict(teacher_width=1, activations=["tanh"], seeds=3, extra_width=1)
GLOBAL_TOL = 1e-8  # × mean(y²): attractor losses this close to the best are the global minimum
ZERO_TOL = 1e-12  # × mean(y²): a loss this small is 0 (the exact population loss rounds at ~1e-16)


def configurations(settings, seed0: int = 0, data: str = "finite", papers: bool = False) -> list[dict]:
    k = settings["teacher_width"]
    fixed = FIXED_PAPERS if papers else FIXED_POPULATION if data == "population" else FIXED
    return sweeps.grid(activation=settings["activations"], width=list(range(1, k + settings["extra_width"] + 1)),
                       seed=range(seed0, seed0 + settings["seeds"]), teacher_width=k, **fixed)


def population_rule(method: str | None, data: str) -> dict:
    """The configuration keys of the population loss's rule: the Hermite series unless `method` is "auto"
    (the library's 96² Gauss–Hermite rule, which the store then does not name, as before the series);
    none for finite data, which refuses a `method`."""
    if data != "population":
        if method is not None:
            raise ValueError("--gaussian-method is a population-loss setting: drop --data finite (and --quick)")
        return {}
    method = method or "series"
    return {} if method == "auto" else dict(gaussian_method=method)


def check_store(store, configs, data: str, seed0: int = 0, papers: bool = False) -> None:
    """Refuse (SystemExit) a store whose sweep is not `configs`: `--no-run` analyses a store under the
    settings its options describe, so a store written with other options would be labelled with settings
    it was not run with."""
    spec = pathlib.Path(store) / "sweep.json"
    if not spec.exists():
        raise SystemExit(f"--no-run: {store} is not a sweep store (no sweep.json); run the study first.")
    stored = ft.io.read_json(spec)["configurations"]

    def key(cs):
        return sorted(json.dumps(c, sort_keys=True) for c in json.loads(json.dumps(cs)))

    if key(stored) == key(configs):
        return
    hint = ""
    for flags, settings, d, pp in (("--quick", QUICK, "finite", False), ("--data finite", FULL_FINITE, "finite", False),
                                   ("--data population", FULL, "population", False),
                                   ("--papers", FULL_PAPERS, "population", True)):
        for method in ((None, "auto") if d == "population" else (None,)):
            rule = population_rule(method, d)
            if key(stored) == key([dict(c, **rule) for c in configurations(settings, seed0, d, pp)]):
                more = f" --gaussian-method {method}" if method else ""
                hint = f" It matches the options {flags}{more}: rerun with them."
    first = stored[0] if stored else {}
    raise SystemExit(
        f"--no-run: the store {store} holds a sweep of {len(stored)} points (data="
        f"{first.get('data', 'finite')}, teacher_width={first.get('teacher_width')}, activations "
        f"{sorted({c.get('activation') for c in stored})}), not the {len(configs)} points these options "
        f"describe (data={data}); give the options the store was written with (--quick, --data, --seeds, "
        f"--seed, --activations, --gaussian-method).{hint}")


def analyse(store, configs) -> list[dict]:
    """One row per (activation, width): global-minimum fraction, attractors, saddles, plateaus."""
    ds = sweeps.open_results(store).load()
    groups = []
    for where, idx in sweeps.point_groups(ds, ("activation", "width")):
        act, width = where["activation"], where["width"]
        problem, _ = sweeps.make_problem(configs[idx[0]])
        y2 = float(np.mean(np.asarray(problem.y) ** 2))  # the probe targets for the population loss
        terminal = ds["terminal"].values[idx]
        att_loss = ds["attractor_loss"].values[idx]
        attracted = terminal == "attractor"
        best = float(np.nanmin(att_loss[attracted])) if attracted.any() else math.nan
        hit = attracted & (att_loss <= best + GLOBAL_TOL * y2)
        n, k = int(idx.size), int(hit.sum())
        graph = sweeps.merged_graph(store, **where)
        # A group whose runs all failed before their itinerary has no graph and no basins.
        basins = ft.escape.basin_fractions(graph).basins if graph.n_trajectories else []
        saddle_nodes = [nd for nd, a in graph.graph.nodes(data=True)
                        if a.get("signature") and a["signature"][0] > 0 and a.get("kind") != "slow_region"]
        plateau = ds["plateau"].values[idx]
        plateau = plateau[np.isfinite(plateau) & (plateau > 0)]
        statuses = {s: int(np.sum(ds["status"].values[idx] == s)) for s in np.unique(ds["status"].values[idx])}
        groups.append(dict(
            activation=act, width=int(width), n_runs=n, n_attracted=int(attracted.sum()),
            global_min_loss=best, global_min_is_zero=bool(abs(best) <= ZERO_TOL * y2),
            global_fraction=k / n, global_ci=list(ft.escape.wilson_interval(k, n)),
            n_attractors=len(basins),
            basins=[dict(label=b.label, kind=b.kind, loss=b.loss, count=b.count, fraction=b.fraction,
                         ci=list(b.ci), is_global=bool(b.loss <= best + GLOBAL_TOL * y2)) for b in basins],
            distinct_saddles=len(saddle_nodes),
            mean_saddle_visits=float(np.mean(ds["n_saddles"].values[idx])),
            plateau_median=float(np.median(plateau)) if plateau.size else math.nan,
            plateau_quartiles=[float(q) for q in np.percentile(plateau, [25, 75])] if plateau.size else [],
            plateau_lengths=[float(p) for p in plateau],
            statuses=statuses,
            sequences=_top_sequences(ds["sequence"].values[idx]),
        ))
    return groups


def _top_sequences(seqs, top: int = 3) -> list:
    vals, counts = np.unique(np.asarray(seqs, dtype=str), return_counts=True)
    order = np.argsort(-counts)[:top]
    return [dict(sequence=str(vals[i]), count=int(counts[i])) for i in order]


def draw(groups, teacher_width, out):
    acts = list(dict.fromkeys(g["activation"] for g in groups))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for j, act in enumerate(acts):
        rows = [g for g in groups if g["activation"] == act]
        w = np.array([g["width"] for g in rows]) + 0.06 * (j - (len(acts) - 1) / 2)
        f = np.array([g["global_fraction"] for g in rows])
        lo = f - np.array([g["global_ci"][0] for g in rows])
        hi = np.array([g["global_ci"][1] for g in rows]) - f
        ax.errorbar(w, f, yerr=[lo, hi], marker="o", capsize=3, label=act)
    ax.axvline(teacher_width, color="k", ls=":", lw=1)
    ax.text(teacher_width, 1.02, " teacher width", fontsize=8, va="bottom")
    ax.set(xlabel="student width m", ylabel="fraction of runs reaching the global minimum", ylim=(-0.03, 1.08),
           xticks=sorted({g["width"] for g in groups}))
    ax.legend(title="activation (Wilson 95%)", fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, out / "global_minimum.png")

    fig, axes = plt.subplots(1, len(acts), figsize=(4.2 * len(acts), 3.8), squeeze=False)
    for ax, act in zip(axes[0], acts):
        rows = [g for g in groups if g["activation"] == act]
        for g in rows:
            bottom = 0.0
            others = 0
            for b in sorted(g["basins"], key=lambda b: b["loss"]):
                color = "tab:green" if b["is_global"] else plt.cm.Oranges(0.35 + 0.15 * (others % 4))
                others += not b["is_global"]
                ax.bar(g["width"], b["fraction"], bottom=bottom, color=color, edgecolor="white", width=0.7)
                bottom += b["fraction"]
            if bottom < 1 - 1e-12:
                ax.bar(g["width"], 1 - bottom, bottom=bottom, color="lightgrey", edgecolor="white", width=0.7)
            ax.text(g["width"], 1.02, str(g["n_attractors"]), ha="center", fontsize=8)
        ax.set(title=f"{act}: attractors (number on top)", xlabel="student width m", ylim=(0, 1.1),
               xticks=[g["width"] for g in rows])
    axes[0][0].set_ylabel("fraction of runs (green: global minimum;\norange: other attractors; grey: none)")
    save_figure(fig, out / "attractors.png")

    fig, axes = plt.subplots(1, len(acts), figsize=(4.2 * len(acts), 3.8), squeeze=False)
    for ax, act in zip(axes[0], acts):
        rows = [g for g in groups if g["activation"] == act and g["plateau_lengths"]]
        if rows:
            ax.boxplot([g["plateau_lengths"] for g in rows], positions=[g["width"] for g in rows], widths=0.5)
            ax.set_xticks([g["width"] for g in rows],
                          [f"{g['width']}\n{g['mean_saddle_visits']:.1f}" for g in rows])
        ax.set_yscale("log")
        ax.set(title=f"{act}: longest saddle dwell per run", ylabel="plateau length (flow time)",
               xlabel="student width m\n(below: mean saddle visits per run)")
    save_figure(fig, out / "plateaus.png")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a reduced sweep for the tests (serial)")
    ap.add_argument("--out", default="results/width_sweep")
    ap.add_argument("--seed", type=int, default=0, help="the first initialisation seed")
    ap.add_argument("--workers", type=int, default=None, help="Dask worker processes (0: serial; default: "
                    "the CPU count, serial in --quick)")
    ap.add_argument("--scheduler", default=None, help="a Dask scheduler address")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per point (default 64; 3 in --quick)")
    ap.add_argument("--data", choices=["finite", "population"], default=None,
                    help="the population loss (flowtools.GaussianInputs; k = 4, d = 10; default of a full "
                    "run) or n = 200 samples (k = 2, d = 4; default of --quick)")
    ap.add_argument("--activations", nargs="+", default=None, metavar="NAME",
                    help="only these of the setting's activations (a store holds one grid: give this "
                    "part its own --out)")
    ap.add_argument("--papers", action="store_true", help="the papers' setting: population loss, an "
                    "orthonormal teacher (v_j = e_j) and standard initialization w ~ N(0, I/d)")
    ap.add_argument("--gaussian-method", choices=["series", "auto"], default=None,
                    help="the population loss's rule for activations without a closed form (tanh, "
                    "softplus): 'series' (the default: the Hermite series of flowtools.GaussianInputs, "
                    "certified to 1e-12) or 'auto' (the library's default, 96² Gauss–Hermite nodes: the rule "
                    "of the study's table before 2026-12-07)")
    ap.add_argument("--no-run", action="store_true", help="analyse the store as it is (e.g. while a sweep "
                    "is still running on it) without running points")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    data = args.data or ("finite" if args.quick else "population")
    if args.papers and data != "population":
        ap.error("--papers is a population-loss setting: drop --data finite (and --quick), or drop --papers")
    settings = dict(QUICK if args.quick else FULL_PAPERS if args.papers else FULL if data == "population"
                    else FULL_FINITE)
    if args.seeds is not None:
        settings["seeds"] = ft._checks.positive_int("seeds", args.seeds)
    if args.activations is not None:
        for a in args.activations:
            ft._checks.choice("activations", a, settings["activations"])
        settings["activations"] = [a for a in settings["activations"] if a in args.activations]
    workers = args.workers if args.workers is not None else (0 if args.quick else None)
    configs = configurations(settings, args.seed, data, args.papers)
    try:
        rule = population_rule(args.gaussian_method, data)
    except ValueError as err:
        ap.error(str(err))
    configs = [dict(c, **rule) for c in configs]
    t0 = time.perf_counter()
    if args.no_run:
        check_store(out / "store", configs, data, args.seed, args.papers)
        ds = sweeps.open_results(out / "store")
        result = dict(n_run=0, n_skipped=int(ds["finished"].sum()), failed=[])
        graph = sweeps.merged_graph(out / "store")  # from the records, current even after a killed driver
    else:
        r = sweeps.sweep("flow_itinerary", configs, out / "store", workers=workers, scheduler=args.scheduler,
                         resume=True)
        result, graph = dict(n_run=r.n_run, n_skipped=r.n_skipped, failed=r.failed), r.graph
    sweep_s = time.perf_counter() - t0
    groups = analyse(out / "store", configs)
    draw(groups, settings["teacher_width"], out)
    fixed = dict(FIXED_PAPERS if args.papers else FIXED_POPULATION if data == "population" else FIXED, **rule)
    summary = dict(study="width_sweep", schema=SCHEMA, quick=args.quick, settings=dict(settings, **fixed),
                   papers=args.papers,
                   seed=args.seed, data=data, n_points=len(configs),
                   n_finished=sum(g["n_runs"] for g in groups), **result, sweep_s=sweep_s,
                   total_s=time.perf_counter() - t0, version=ft.__version__, groups=groups,
                   graph=dict(nodes=len(graph), trajectories=graph.n_trajectories))
    ft.io.write_json(out / "summary.json", summary)
    for g in groups:
        print(f"{g['activation']:>8s} m={g['width']}: global {g['global_fraction']:.2f} "
              f"[{g['global_ci'][0]:.2f}, {g['global_ci'][1]:.2f}] (L*={g['global_min_loss']:.3g}), "
              f"{g['n_attractors']} attractor(s), saddles/run {g['mean_saddle_visits']:.2f}, "
              f"plateau median {g['plateau_median']:.3g}")
    print(f"{summary['n_finished']} of {len(configs)} points finished ({result['n_run']} run now) in "
          f"{sweep_s:.1f} s; results in {out}")
    return summary


if __name__ == "__main__":
    main()
