"""Flagship study: the saddle → saddle → attractor scenario of the minimal model (Maleknia & Sato).

Student f(x) = v1 tanh(w1 x) + v2 tanh(w2 x), teacher T(x) = 2 tanh(x), the published 100-point data
set (τ = 0.2) and the noiseless set (τ = 0) on the same x, loss "mse" and η = 0.01 as in the published
reference run. The study

1. reruns the published GD run (2·10⁶ steps) and the matching gradient flow, for τ = 0.2 and τ = 0;
2. segments every run into its itinerary (visits of critical sets, then attractor / diverged /
   unfinished) and merges them into a saddle graph;
3. runs an ensemble of random initial conditions (gradient flow) for basins and Thm. 3.1's uniqueness;
4. follows the unstable manifolds of every saddle found;
5. checks Sec. 4.1's count of unstable directions and Prop. 3.1's χ² law by Monte Carlo.

Outputs in results/minimal_model/ (see docs/studies/minimal_model.md for the schema of summary.json).
Run `python studies/minimal_model.py --quick` for the fast version used by the tests.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _minimal_model_checks as checks  # noqa: E402

import flowtools as ft  # noqa: E402
from flowtools import landscape  # noqa: E402
from flowtools.plotting import plot_learning_curves, save_figure  # noqa: E402

THETA0 = ft.problems.MINIMAL_MODEL_THETA0.copy()  # published initial condition (w1, w2, v1, v2)
LR = 0.01
STEPS = 2_000_000
LOSS = "mse"


def settings(quick: bool, seed: int) -> dict:
    return dict(
        quick=quick, seed=seed, lr=LR, gd_steps=STEPS, loss=LOSS, theta0=THETA0.tolist(),
        flow_t1=STEPS * LR, flow_gtol=1e-12, rtol=1e-8, atol=1e-10,
        n_ensemble=24 if quick else 256, ensemble_init_std=0.5, ensemble_t1=1e7, ensemble_gtol=1e-10,
        manifold_samples=8 if quick else 64, manifold_delta=1e-3,
        mc_hessian_samples=1000 if quick else 100_000, mc_noise_draws=500 if quick else 20_000,
        plateau_radius=0.2,
    )


def run_pair(problem, name, cfg):
    """The published GD run and the matching gradient flow (to t1, then continued to gtol)."""
    gd = ft.gradient_descent(problem, THETA0, cfg["lr"], cfg["gd_steps"])
    gf = ft.gradient_flow(problem, THETA0, cfg["flow_t1"], rtol=cfg["rtol"], atol=cfg["atol"])
    gf_end = ft.gradient_flow(problem, THETA0, None, gtol=cfg["flow_gtol"], rtol=cfg["rtol"],
                              atol=cfg["atol"], max_steps=500_000)
    return {f"{name}/gd": gd, f"{name}/gf": gf, f"{name}/gf_to_gtol": gf_end}


def draw_parameter_trajectories(runs, path):
    """(w1, w2) and (v1, v2) planes with the singular and optimal regions drawn, including their images
    under the sign flips (w_i, v_i) → (−w_i, −v_i) of the odd tanh."""
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 5.2))
    s = np.linspace(-3.5, 3.5, 2)
    ax, ax2 = axes
    for sign in (1, -1):
        ax.plot(s, sign * s, color="0.6", lw=6, alpha=0.35,
                label="singular: w1 = ±w2 (duplicated neuron)" if sign == 1 else None)
    for a in (1, -1):
        ax.axvline(a, color="gold", lw=1.2, ls=":", label="optimal: w1 = ±1, v1 = ±2, v2 = 0 (any w2)" if a == 1 else None)
        ax.axhline(a, color="gold", lw=1.2, ls=":")
        for b in (1, -1):
            ax.plot([a], [b], "*", color="gold", ms=15, mec="k",
                    label="optimal: w1 = ±w2 = ±1 (split teacher)" if (a, b) == (1, 1) else None)
    ax.plot([0], [0], "o", color="crimson", ms=9, label="singular: origin")
    for a in (1, -1):
        for b in (1, -1):
            # a v1 + b v2 = 2 when w1 = a, w2 = b
            ax2.plot(s, (2 - a * s) / b, color="gold", lw=1.6,
                     label="optimal: ±v1 ± v2 = 2 (w1, w2 = ±1)" if (a, b) == (1, 1) else None)
    ax2.axhline(0, color="0.6", lw=6, alpha=0.35, label="singular: v1 = 0 or v2 = 0")
    ax2.axvline(0, color="0.6", lw=6, alpha=0.35)
    for i, (name, tr) in enumerate(runs.items()):
        th = tr.theta
        kw = dict(color=f"C{i}", lw=1.6, ls="-" if "gd" in name else "--", label=name)
        ax.plot(th[:, 0], th[:, 1], **kw)
        ax.plot(th[-1, 0], th[-1, 1], "o", color=f"C{i}", mec="k")
        ax2.plot(th[:, 2], th[:, 3], **kw)
        ax2.plot(th[-1, 2], th[-1, 3], "o", color=f"C{i}", mec="k")
    ax.set(xlabel="w1", ylabel="w2", xlim=(-1.5, 2.6), ylim=(-1.5, 1.5), title="input weights")
    ax2.set(xlabel="v1", ylabel="v2", xlim=(-0.5, 2.6), ylim=(-2.2, 1.0), title="output weights")
    for a in axes:
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    save_figure(fig, path)


def draw_hessian_along(problem, tr, path, title):
    """The four Hessian eigenvalues along a trajectory (symlog), with the visit windows shaded."""
    import jax

    hess = jax.jit(jax.vmap(problem.hessian_fn))
    ev = np.linalg.eigvalsh(np.asarray(hess(tr.theta)))
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    m = tr.t > 0
    for j in range(ev.shape[1]):
        ax.plot(tr.t[m], ev[m, j], lw=1.5, label=f"λ{j + 1}")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="t = kη", ylabel="Hessian eigenvalue", title=title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    return ev


def draw_chi2(scaled, n, path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    xs = np.linspace(scaled.min(), scaled.max(), 300)
    axes[0].hist(scaled, bins=60, density=True, alpha=0.6, label="2n L / τ² on M (Monte Carlo)")
    axes[0].plot(xs, stats.chi2(df=n).pdf(xs), "k", label=f"χ²({n})")
    axes[0].legend(fontsize=8)
    axes[0].set_xlabel("2n L / τ²")
    q = np.sort(scaled)
    theo = stats.chi2(df=n).ppf((np.arange(1, q.size + 1) - 0.5) / q.size)
    axes[1].plot(theo, q, ".", ms=2)
    axes[1].plot(theo, theo, "k", lw=1)
    axes[1].set(xlabel=f"χ²({n}) quantiles", ylabel="sample quantiles", title="Q–Q plot")
    save_figure(fig, path)


def cp_record(node, attrs, names):
    return dict(id=node, theta=dict(zip(names, attrs["theta"])), loss=attrs["loss"],
                gen_error=attrs["gen_error"], grad_norm=attrs["grad_norm"], eigenvalues=attrs["eigenvalues"],
                signature=attrs["signature"], kind=attrs["kind"], reduces_to=attrs["reduces_to"] or None,
                visits=attrs.get("visits", 0), attractor=bool(attrs.get("attractor", False)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small ensemble and Monte Carlo sizes (< 60 s)")
    ap.add_argument("--out", default="results/minimal_model", help="output folder")
    ap.add_argument("--seed", type=int, default=0, help="seed of every random choice in the study")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = settings(args.quick, args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    timings = {}

    problems = {"tau0.2": ft.problems.minimal_model(loss=LOSS),
                "tau0": ft.problems.minimal_model(noiseless=True, loss=LOSS)}
    noisy = problems["tau0.2"].data
    names = problems["tau0.2"].model.param_names

    # 1. published runs ------------------------------------------------------------------
    t = time.perf_counter()
    runs = {}
    for key, prob in problems.items():
        runs.update(run_pair(prob, key, cfg))
    timings["published_runs_s"] = time.perf_counter() - t

    # 2. itineraries and the graph -------------------------------------------------------
    t = time.perf_counter()
    graphs, itins = {}, {}
    for key, prob in problems.items():
        graphs[key], per_key = ft.saddle_graph(prob, {n: tr for n, tr in runs.items() if n.split("/")[0] == key})
        itins.update(per_key)
    timings["itineraries_s"] = time.perf_counter() - t

    # 3. ensemble (τ = 0.2) ----------------------------------------------------------------
    t = time.perf_counter()
    prob = problems["tau0.2"]
    thetas0 = cfg["ensemble_init_std"] * rng.standard_normal((cfg["n_ensemble"], 4))
    ens = ft.run_ensemble("gradient_flow", prob, thetas0, t1=cfg["ensemble_t1"], gtol=cfg["ensemble_gtol"],
                          rtol=cfg["rtol"], atol=cfg["atol"], max_steps=200_000, progress=True)
    _, by_run = ft.saddle_graph(prob, {f"ensemble/{i}": tr for i, tr in enumerate(ens)}, graph=graphs["tau0.2"],
                                progress="ensemble itineraries")
    ens_itins = list(by_run.values())
    timings["ensemble_s"] = time.perf_counter() - t

    # 4. unstable manifolds of every saddle ----------------------------------------------
    t = time.perf_counter()
    manifolds = []
    for key, g in graphs.items():
        for node, a in list(g.graph.nodes(data=True)):
            if a["kind"] not in ("saddle", "degenerate_saddle"):
                continue
            cp = landscape.find_critical_point(problems[key], np.asarray(a["theta"]), radius=0.1)
            if not cp.success:
                continue
            um = landscape.unstable_manifold(problems[key], cp, delta=cfg["manifold_delta"],
                                             n_samples=cfg["manifold_samples"] if cp.signature[0] >= 2 else 0,
                                             seed=cfg["seed"], t1=cfg["ensemble_t1"],
                                             gtol=cfg["ensemble_gtol"])
            for i, (tcp, frac) in enumerate(zip(um.targets, um.fractions)):
                if not tcp.success:
                    continue
                times = [b.t_end for b in um.branches + um.samples if b.target == i]
                fp = landscape.function_fingerprint(problems[key], tcp.theta)
                node_t = g.add_node(fingerprint=fp, signature=tcp.signature, kind=tcp.kind, loss=tcp.loss,
                                    theta=tcp.theta, gen_error=tcp.gen_error, reduces_to=tcp.reduces_to,
                                    grad_norm=tcp.grad_norm, eigenvalues=tcp.eigenvalues,
                                    network=landscape.symmetry.network_widths(problems[key]))
                if tcp.kind in ("minimum", "degenerate_minimum"):
                    g.graph.nodes[node_t]["attractor"] = True
                median_t = float(np.median(times)) if times else None
                g.add_unstable_connection(node, node_t, fraction=frac, time=median_t)
                manifolds.append(dict(graph=key, source=node, target=node_t, fraction=frac, time=median_t,
                                      target_kind=tcp.kind, target_signature=list(tcp.signature),
                                      target_loss=tcp.loss, target_gen_error=tcp.gen_error))
    timings["unstable_manifolds_s"] = time.perf_counter() - t

    # 5. Monte Carlo checks --------------------------------------------------------------
    t = time.perf_counter()
    half = problems["tau0.2"].with_loss("half_mse")
    sec41 = checks.sec41_counts(half, rng, cfg["mc_hessian_samples"], cfg["plateau_radius"])
    chi2 = checks.prop31_chi2(noisy.x, 0.2, cfg["mc_noise_draws"], rng)
    draw_chi2(chi2.pop("scaled_samples"), chi2["n"], out / "prop31_chi2.png")
    timings["monte_carlo_s"] = time.perf_counter() - t

    # basins and uniqueness (Thm. 3.1) ----------------------------------------------------
    g = graphs["tau0.2"]
    basins, terminals = {}, {"attractor": 0, "diverged": 0, "unfinished": 0}
    for it in ens_itins:
        terminals[it.terminal] += 1
        if it.terminal == "attractor":
            basins[it.visits[-1].node] = basins.get(it.visits[-1].node, 0) + 1
    basins = {k: v / len(ens_itins) for k, v in basins.items()}
    for node, frac in basins.items():
        g.graph.nodes[node]["basin_fraction"] = frac

    # figures ----------------------------------------------------------------------------
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for ax, key, title in [(axes[0], "tau0", "τ = 0 (noiseless)"), (axes[1], "tau0.2", "τ = 0.2 (published)")]:
        plot_learning_curves([runs[f"{key}/gd"], runs[f"{key}/gf"]], ["GD η=0.01", "gradient flow"], ax=ax,
                             styles={"gradient flow": "--"})
        ax.set_title(title)
    save_figure(fig, out / "learning_curves.png")
    draw_parameter_trajectories({k: runs[k] for k in ("tau0.2/gd", "tau0.2/gf", "tau0/gd")},
                                out / "parameter_trajectories.png")
    eig = draw_hessian_along(problems["tau0.2"], runs["tau0.2/gd"], out / "hessian_eigenvalues.png",
                             "Hessian eigenvalues along the published GD run (τ = 0.2)")
    for key, gr in graphs.items():
        ax = gr.draw(title=f"saddle graph, {key.replace('tau', 'τ = ')}: "
                           f"{gr.graph.number_of_nodes()} nodes, {gr.n_trajectories} runs")
        save_figure(ax.figure, out / f"saddle_graph_{key}.png")
        gr.to_graphml(out / f"saddle_graph_{key}.graphml")
        gr.to_json(out / f"saddle_graph_{key}.json")
    # the published-data graph under the plain names too
    save_figure(graphs["tau0.2"].draw().figure, out / "saddle_graph.png")
    graphs["tau0.2"].to_graphml(out / "saddle_graph.graphml")
    graphs["tau0.2"].to_json(out / "saddle_graph.json")

    # summary ----------------------------------------------------------------------------
    def run_record(name, tr, it):
        return dict(name=name, method=tr.method, loss_convention=LOSS,
                    lr=tr.meta.get("lr"), status=tr.status.value, message=tr.message,
                    final_theta=dict(zip(names, tr.final_theta)), final_loss=tr.final_loss,
                    final_gen_error=float(tr.gen_error[-1]), final_grad_norm=tr.final_grad_norm,
                    stats=tr.stats, terminal=it.terminal, itinerary=it.to_list(),
                    itinerary_kinds=it.kinds)

    summary = dict(
        study="minimal_model", settings=cfg, param_names=names,
        critical_points={key: [cp_record(n, a, names) for n, a in gr.graph.nodes(data=True)]
                         for key, gr in graphs.items()},
        runs=[run_record(name, tr, itins[name]) for name, tr in runs.items()],
        ensemble=dict(n=len(ens), terminals=terminals,
                      statuses={s: sum(tr.status.value == s for tr in ens) for s in {tr.status.value for tr in ens}},
                      runs=[dict(name=f"ensemble/{i}", theta0=dict(zip(names, thetas0[i])),
                                 status=tr.status.value, terminal=it.terminal, itinerary=it.to_list())
                            for i, (tr, it) in enumerate(zip(ens, ens_itins))]),
        graph={key: gr.summary() for key, gr in graphs.items()},
        basins=basins,
        unstable_manifolds=manifolds,
        sec41_unstable_directions=sec41,
        prop31_chi2=chi2,
        hessian_along_published_gd=dict(t=runs["tau0.2/gd"].t, eigenvalues=eig),
        timings=dict(timings, total_s=time.perf_counter() - t_start),
    )
    ft.io.write_json(out / "summary.json", summary)
    print_table(summary, runs, itins)
    print(f"\nwrote {out}/ in {time.perf_counter() - t_start:.1f} s")
    return summary


def print_table(summary, runs, itins):
    print(f"\n{'run':<20s} {'status':<11s} {'t_end':>10s} {'L':>12s} {'R':>12s} {'|∇L|':>9s}  itinerary")
    for name, tr in runs.items():
        seq = " → ".join(f"{v.kind}[{v.signature[0]}]" for v in itins[name].visits)
        print(f"{name:<20s} {tr.status.value:<11s} {tr.final_time:>10.4g} {tr.final_loss:>12.6g} "
              f"{tr.gen_error[-1]:>12.6g} {tr.final_grad_norm:>9.2g}  {seq} ⇒ {itins[name].terminal}")
    ens = summary["ensemble"]
    print(f"\nensemble of {ens['n']}: terminals {ens['terminals']}")
    g = summary["graph"]["tau0.2"]
    for node, frac in sorted(summary["basins"].items(), key=lambda kv: -kv[1]):
        a = next(n for n in g["nodes"] if n["id"] == node)
        print(f"  attractor {node}: basin {frac:.3f}  L = {a['loss']:.6g}  R = {a['gen_error']:.6g}  "
              f"{a['kind']} {a['signature']}")
    s41 = summary["sec41_unstable_directions"]
    print("\nSec. 4.1 unstable directions (histogram of counts 0,1,2,…):")
    for k, v in s41.items():
        print(f"  {k:<18s} {v['histogram']}")
    c = summary["prop31_chi2"]
    print(f"\nProp. 3.1: mean L on M = {c['mean_L']:.5g} (τ²/2 = {c['expected_mean_L']:.5g}), "
          f"KS p = {c['ks_pvalue']:.3f}, spread over M = {c['max_spread_over_M']:.2g}, "
          f"min |∇L| on M = {c['min_grad_norm_on_M']:.3g}")


if __name__ == "__main__":
    main()
