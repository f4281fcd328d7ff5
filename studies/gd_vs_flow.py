"""Gradient descent against gradient flow: convergence order, modified equation, itineraries, edge of
stability.

For the minimal model (published data, "mse") and a 2-8-1 tanh teacher–student net, GD with step η is
compared with the gradient flow at matched times t = kη:

1. the deviation max_{t ≤ T} ‖θ_GD(t) − θ_flow(t)‖ over η, and its fitted order (expected 1);
2. the same against the modified-equation flow dθ/dt = −∇(L + (η/4)‖∇L‖²) (expected 2);
3. whether GD's itinerary has the flow's node sequence, and where they part;
4. the sharpness λ_max(H) along the GD path against 2/η (`gradient_descent(sharpness_every=…)`: the
   settled sharpness, the edge-of-stability flag, catapults; a GD run ending on a period-2 orbit);
5. the η at which GD stops converging to the flow's attractor, against 2/λ_max there.

Outputs in results/gd_vs_flow/: deviation.png, sharpness.png, summary.json. `--quick` for the tests.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import flowtools as ft  # noqa: E402
from flowtools.dynamics.modified import modified_equation_problem  # noqa: E402
from flowtools.dynamics.sharpness import sharpness  # noqa: E402
from flowtools.escape import fit_power_law  # noqa: E402
from flowtools.graph import SaddleGraph  # noqa: E402
from flowtools.itineraries import add_to_graph, itinerary  # noqa: E402
from flowtools.plotting import save_figure  # noqa: E402


def make_cases(seed: int) -> dict:
    """The two problems, their initial conditions and horizons."""
    minimal = ft.problems.minimal_model(loss="mse")
    teacher = ft.MLP((2, 4, 1), "tanh", bias=False)
    t_theta = teacher.init(seed, "normal", scale=1.0)
    data = ft.teacher_dataset((teacher, t_theta), 200, noise=0.0, seed=seed)
    student = ft.MLP((2, 8, 1), "tanh", bias=False)
    ts = ft.Problem(student, data, "mse")
    return {
        "minimal_model": dict(problem=minimal, theta0=ft.problems.MINIMAL_MODEL_THETA0.copy(),
                              order_T=20.0, itinerary_T=2e4),
        "tanh_2_8_1": dict(problem=ts, theta0=np.asarray(student.init(seed + 1, "normal", scale=0.1)),
                           order_T=20.0, itinerary_T=2e4),
    }


def matched_deviation(problem, theta0, eta, T, n_points=50, rtol=1e-11, atol=1e-13):
    """max over matched times t = kη ≤ T of the GD–flow and GD–modified-flow distances."""
    steps = int(round(T / eta))
    rec = np.unique(np.linspace(0, steps, n_points + 1).astype(int))
    gd = ft.gradient_descent(problem, theta0, eta, steps, record_steps=rec)
    ts = gd.t[1:]
    gf = ft.gradient_flow(problem, theta0, ts[-1], save_ts=ts, rtol=rtol, atol=atol)
    mf = ft.gradient_flow(modified_equation_problem(problem, eta), theta0, ts[-1], save_ts=ts, rtol=rtol, atol=atol)
    if not (len(gf) == len(gd) == len(mf)):
        raise RuntimeError("flow and GD saved different numbers of states")
    return (float(np.max(np.linalg.norm(gd.theta - gf.theta, axis=1))),
            float(np.max(np.linalg.norm(gd.theta - mf.theta, axis=1))))


def _labels(it, nodes):
    """Node ids for visits of critical sets; slow regions by kind and signature only (they are not
    critical sets, and two runs' slow passages are never exactly the same function)."""
    return [f"slow_region{tuple(v.signature)}" if v.kind == "slow_region" else n
            for v, n in zip(it.visits, nodes)]


def study_case(name, case, cfg, rng_seed, bar):
    problem, theta0 = case["problem"], case["theta0"]
    out = dict(name=name, n_params=problem.n_params, loss=problem.loss_convention)

    # the flow's attractor and its sharpness
    flow = ft.gradient_flow(problem, theta0, None, gtol=1e-10, max_steps=500_000)
    flow_it = itinerary(problem, flow)
    lam_max = float(np.linalg.eigvalsh(problem.hessian(flow.final_theta))[-1])
    out["flow"] = dict(status=flow.status.value, t_end=flow.final_time, final_loss=flow.final_loss,
                       sequence=None,
                       terminal=flow_it.terminal, kinds=flow_it.kinds, lambda_max_attractor=lam_max,
                       edge_of_stability_lr=2.0 / lam_max)

    # 1–2: orders
    etas = np.asarray(cfg["order_etas"])
    dev, dev_mod = [], []
    for eta in etas:
        d1, d2 = matched_deviation(problem, theta0, eta, cfg["order_T"] or case["order_T"])
        dev.append(d1)
        dev_mod.append(d2)
        bar.update(1)
    fit1 = fit_power_law(etas, dev, n_boot=cfg["n_boot"], seed=rng_seed)
    fit2 = fit_power_law(etas, dev_mod, n_boot=cfg["n_boot"], seed=rng_seed)
    out["order"] = dict(T=cfg["order_T"] or case["order_T"], etas=etas, deviation_flow=dev, deviation_modified=dev_mod,
                        order_flow=fit1.exponent, order_flow_ci=list(fit1.ci),
                        order_modified=fit2.exponent, order_modified_ci=list(fit2.ci))

    # 3–5: sweep η up to past 2/λ_max
    sweep = np.geomspace(cfg["sweep_min_factor"] * 2 / lam_max, cfg["sweep_max_factor"] * 2 / lam_max,
                         cfg["n_sweep"])
    graph = SaddleGraph()
    flow_nodes = add_to_graph(graph, flow_it, run="flow")
    flow_labels = _labels(flow_it, flow_nodes)
    rows = []
    for eta in sweep:
        horizon = cfg["itinerary_T"] or case["itinerary_T"]
        steps = int(min(round(horizon / eta), cfg["max_gd_steps"]))
        gd = ft.gradient_descent(problem, theta0, eta, steps, gtol=1e-10, max_norm=1e4,
                                 sharpness_every=max(1, steps // cfg["sharpness_samples"]))
        it = itinerary(problem, gd)
        nodes = add_to_graph(graph, it, run=f"gd eta={eta:.4g}")
        lam_path = gd.sharpness.lambda_max
        eos = gd.stats["edge_of_stability"]
        labels = _labels(it, nodes)
        same = labels == flow_labels
        part = next((i for i, (a, b) in enumerate(zip(labels, flow_labels)) if a != b),
                    min(len(labels), len(flow_labels)))
        converged_to_flow = (it.terminal == "attractor" and flow_it.terminal == "attractor"
                             and nodes[-1] == flow_nodes[-1])
        rows.append(dict(lr=float(eta), lr_times_lambda_max=float(eta * lam_max), steps=steps,
                         capped=bool(steps * eta < 0.999 * horizon),
                         status=gd.status.value, terminal=it.terminal, kinds=it.kinds,
                         same_node_sequence=bool(same), parts_at_visit=None if same else int(part),
                         reaches_flow_attractor=bool(converged_to_flow), final_loss=gd.final_loss,
                         final_grad_norm=gd.final_grad_norm, sharpness_max=float(np.max(lam_path)),
                         sharpness_final=sharpness(problem, gd.final_theta), two_over_lr=float(2 / eta),
                         attractor_kind=it.kinds[-1] if it.terminal == "attractor" else None,
                         edge_of_stability=eos["settled"], settled_sharpness=eos["settled_sharpness"],
                         t_reaches_two_over_lr=eos["t_reaches_two_over_lr"], catapults=eos["catapults"],
                         periodic_orbit=it.stats.get("periodic_orbit"),
                         t=gd.sharpness.t, sharpness_path=lam_path))
        bar.update(1)
    out["sweep"] = rows
    out["flow"]["sequence"] = flow_labels
    # The smallest η beyond the largest one that still reaches the flow's attractor (runs capped
    # before the horizon do not count either way).
    full = [r for r in rows if not r["capped"]]
    ok = [r["lr"] for r in full if r["reaches_flow_attractor"]]
    stop = [r["lr"] for r in full if not r["reaches_flow_attractor"] and (not ok or r["lr"] > max(ok))]
    out["lr_gd_stops_reaching_flow_attractor"] = min(stop) if stop else None
    out["largest_lr_reaching_flow_attractor"] = max(ok) if ok else None
    out["graph"] = graph.summary()
    return out


def settings(quick: bool, seed: int) -> dict:
    return dict(quick=quick, seed=seed,
                order_etas=[0.08, 0.04, 0.02, 0.01] if quick else [0.08, 0.04, 0.02, 0.01, 0.005, 0.0025],
                n_sweep=2 if quick else 10, sweep_min_factor=0.3 if quick else 0.003, sweep_max_factor=1.3,
                max_gd_steps=50_000 if quick else 4_000_000, n_boot=200 if quick else 2000,
                sharpness_samples=500 if quick else 2000,
                order_T=5.0 if quick else None, itinerary_T=2e3 if quick else None)


def draw(results, out):
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2))
    for ax, (name, r) in zip(np.atleast_1d(axes), results.items()):
        o = r["order"]
        eta = np.asarray(o["etas"])
        ax.loglog(eta, o["deviation_flow"], "o-", label=f"GD vs flow: order {o['order_flow']:.3f}")
        ax.loglog(eta, o["deviation_modified"], "s-", label=f"GD vs modified flow: order {o['order_modified']:.3f}")
        ax.loglog(eta, o["deviation_flow"][0] * (eta / eta[0]), "k:", lw=1, label="slope 1")
        ax.loglog(eta, o["deviation_modified"][0] * (eta / eta[0]) ** 2, "k--", lw=1, label="slope 2")
        ax.set(xlabel="η", ylabel=f"max ‖θ_GD(kη) − θ(kη)‖, t ≤ {o['T']:g}", title=name)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    save_figure(fig, out / "deviation.png")

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2))
    for ax, (name, r) in zip(np.atleast_1d(axes), results.items()):
        for i, row in enumerate(r["sweep"]):
            m = row["t"] > 0
            ax.loglog(row["t"][m], row["sharpness_path"][m], color=f"C{i % 10}", lw=1.2,
                      label=f"η = {row['lr']:.3g} ({row['terminal']})")
            ax.axhline(row["two_over_lr"], color=f"C{i % 10}", ls=":", lw=0.8)
        ax.set(xlabel="t = kη", ylabel="λ_max(H) along GD  (dotted: 2/η)", title=name)
        ax.legend(fontsize=6)
    save_figure(fig, out / "sharpness.png")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer step sizes and shorter sweeps (< 60 s)")
    ap.add_argument("--out", default="results/gd_vs_flow")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    cfg = settings(args.quick, args.seed)
    t0 = time.perf_counter()
    cases = make_cases(args.seed)
    results = {}
    total = len(cases) * (len(cfg["order_etas"]) + cfg["n_sweep"])
    with tqdm(total=total, desc="gd_vs_flow", disable=ft.dynamics.progress.disabled()) as bar:
        for name, case in cases.items():
            results[name] = study_case(name, case, cfg, args.seed, bar)
    draw(results, out)
    summary = dict(study="gd_vs_flow", settings=cfg, cases=results, total_s=time.perf_counter() - t0)
    ft.io.write_json(out / "summary.json", summary)
    for name, r in results.items():
        o = r["order"]
        print(f"\n{name} ({r['n_params']} parameters); flow ends {r['flow']['terminal']} with "
              f"λ_max = {r['flow']['lambda_max_attractor']:.4g} (2/λ_max = {r['flow']['edge_of_stability_lr']:.4g})")
        print(f"  order GD→flow: {o['order_flow']:.3f}  95% CI [{o['order_flow_ci'][0]:.3f}, {o['order_flow_ci'][1]:.3f}]")
        print(f"  order GD→modified flow: {o['order_modified']:.3f}  95% CI "
              f"[{o['order_modified_ci'][0]:.3f}, {o['order_modified_ci'][1]:.3f}]")
        print(f"  {'η':>9s} {'ηλ_max':>7s} {'status':<11s} {'terminal':<11s} same-seq  flow-attractor  λ_max(end)  2/η"
              "  settled λ_max (edge of stability)")
        for row in r["sweep"]:
            print(f"  {row['lr']:9.4g} {row['lr_times_lambda_max']:7.3f} {row['status']:<11s} {row['terminal']:<11s} "
                  f"{str(row['same_node_sequence']):<9s} {str(row['reaches_flow_attractor']) + (' (capped)' if row['capped'] else ''):<15s} "
                  f"{row['sharpness_final']:10.4g} {row['two_over_lr']:8.4g}  {row['settled_sharpness']:.5g}"
                  + (" (edge of stability)" if row["edge_of_stability"] else "")
                  + (f" → {row['attractor_kind']}" if row["attractor_kind"] else ""))
        print(f"  GD reaches the flow's attractor up to η = {r['largest_lr_reaching_flow_attractor']} and stops at "
              f"η = {r['lr_gd_stops_reaching_flow_attractor']} (2/λ_max = {r['flow']['edge_of_stability_lr']:.4g})")
    print(f"\nwrote {out}/ in {time.perf_counter() - t0:.1f} s")
    return summary


if __name__ == "__main__":
    main()
