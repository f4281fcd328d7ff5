"""SGD noise on a teacher–student plateau: itineraries, noise balls and escape times against batch size.

One scenario: an erf student of width 2 learns an orthonormal erf teacher of width 2 in d = 10 from
n = 2 000 Gaussian samples (half-MSE, no biases), from a small init (N(0, 10⁻⁶) weights). Its runs pass
the origin saddle, then a plateau saddle (a degenerate saddle at L ≈ 0.033 on clean data), then reach
the global minimum. The study runs it under gradient flow, GD (η = 0.5) and SGD at several batch sizes b
and learning rates η, on clean labels and with label noise 0.3, and reports:

- the itineraries and the merged saddle graph of flow + GD + SGD on clean data (one node per critical set);
- the share of noisy-label SGD runs that record the plateau saddle;
- escape times from the plateau saddle's ball (function distance from the run's drift, radius = the
  flow itinerary's visit radius, exit with hysteresis at twice the radius) over seeds against b, with
  the flow's and GD's;
- the radius of the noise ball around the minimum against η/b, with the linear-noise prediction: near
  a minimum with Hessian H, SGD's iterates have the stationary covariance C of
  C = (I − ηH) C (I − ηH) + (η²/b) Σ (Σ the covariance of the per-sample gradients at the minimum, b
  samples drawn with replacement), so the RMS function distance is r = (tr G C)^{1/2}, G = mean_k ∇f_k ∇f_kᵀ
  the Gauss–Newton matrix; to first order in η, tr HC = η tr Σ / (2b), so r ∝ (η/b)^{1/2}.

`python studies/sgd_noise.py [--quick] [--out DIR]`; writes DIR/summary.json, DIR/graph.json,
DIR/graph.graphml and DIR/sgd_noise.png.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

import flowtools as ft
from flowtools.graph import match_distance
from flowtools.problems import orthonormal_teacher

FULL = dict(batches=[4, 16, 32, 128], seeds=6, noisy_batches=[16, 32, 128], noisy_lrs=[0.25, 0.5],
            noisy_seeds=4, t_end=400.0)
QUICK = dict(batches=[16, 128], seeds=3, noisy_batches=[32], noisy_lrs=[0.5], noisy_seeds=3, t_end=400.0)
LR = 0.5  # of GD and of the clean-data SGD runs
LABEL_NOISE = 0.3
N_RECORDS = 300


def make_problem(noise: float) -> ft.Problem:
    data = ft.teacher_dataset(orthonormal_teacher(10, 2, "erf"), 2000, noise=noise, seed=0)
    return ft.Problem(ft.MLP((10, 2, 1), "erf", bias=False), data, "half_mse")


def initial_theta(problem: ft.Problem) -> np.ndarray:
    return np.asarray(problem.model.init(1, "normal", scale=1e-3))


def run(problem, theta0, method, t_end, lr=LR, batch=None, seed=0):
    if method == "flow":
        return ft.gradient_flow(problem, theta0, t_end, gtol=1e-8)
    steps = int(round(t_end / lr))
    if method == "gd":
        return ft.gradient_descent(problem, theta0, lr, steps, n_records=N_RECORDS)
    return ft.sgd(problem, theta0, lr, steps, batch_size=batch, seed=seed, n_records=N_RECORDS)


def plateau_saddle(itin):
    """The flow's plateau saddle: its visited saddle with the lowest loss."""
    return min((v for v in itin.visits if v.refined and v.signature[0]), key=lambda v: v.loss)


def records(itin, visit) -> bool:
    """Whether the itinerary visits `visit`'s critical set (the node rule)."""
    d_out, n_train = int(itin.stats.get("d_out", 1)), int(itin.stats["n_train"])
    return any(match_distance(vars(v), vars(visit), d_out, n_train) is not None for v in itin.visits)


def predicted_ball_radius(problem, theta, lr, batch) -> float:
    """(tr G C)^{1/2} with C from the discrete Lyapunov equation above, at the minimum θ."""
    n = problem.x.shape[0]
    grads = np.asarray(jax.vmap(jax.grad(problem.batch_loss_fn), in_axes=(None, 0))(
        jnp.asarray(theta), jnp.arange(n)[:, None]))
    sigma = np.cov(grads.T, bias=True)
    jac = np.asarray(jax.jacfwd(lambda th: problem.apply_fn(th, problem.x)[:, 0])(jnp.asarray(theta)))
    gauss_newton = jac.T @ jac / n
    a = np.eye(len(theta)) - lr * problem.hessian(theta)
    cov = scipy.linalg.solve_discrete_lyapunov(a, lr * lr * sigma / batch)
    return float(np.sqrt(np.trace(gauss_newton @ cov)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small version for the tests")
    ap.add_argument("--out", default="results/sgd_noise")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wall0 = time.perf_counter()

    def log(*a):
        if not args.no_progress:
            print(f"[{time.perf_counter() - wall0:6.1f} s]", *a, flush=True)

    t_end, runs = cfg["t_end"], []

    def record(label, problem, traj, saddle, ball=None, **row):
        itin = ft.itinerary(problem, traj)
        row.update(run=label, status=str(traj.status.value), terminal=itin.terminal, message=itin.message,
                   itinerary=[dict(kind=v.kind, signature=list(v.signature), t_in=v.t_in, t_out=v.t_out,
                                   loss=v.loss, ball_radius=v.ball_radius) for v in itin.visits],
                   slow_regions=sum(v.kind == "slow_region" for v in itin.visits),
                   records_plateau_saddle=records(itin, saddle), noise_scale=itin.stats["noise_scale"],
                   itinerary_s=itin.stats["wall_time"])
        if ball is not None:
            with warnings.catch_warnings():  # saves 1–2 steps apart: the coarse-bracket note is moot
                warnings.simplefilter("ignore", UserWarning)
                esc = ft.escape_time(traj, saddle.theta, refine="none", **ball)
            row["escape"] = dict(time=esc.time, t_in=esc.t_in, t_out=esc.t_out, status=esc.status,
                                 exit=esc.exit)
            row["_escape"] = esc
        runs.append(row)
        log(label, itin)
        return itin

    # ------------------------------------------------ clean labels: flow, GD, SGD; graph; escape times
    problem = make_problem(0.0)
    theta0 = initial_theta(problem)
    flow = run(problem, theta0, "flow", t_end)
    flow_itin = ft.itinerary(problem, flow)
    saddle = plateau_saddle(flow_itin)
    rho = flow_itin.stats["visit_radius"]
    ball = dict(metric="function", problem=problem, radius=rho, exit="hysteresis", exit_radius=2 * rho)
    graph = ft.SaddleGraph()
    groups = {"flow": [], "gd": []}
    ft.add_to_graph(graph, record("flow", problem, flow, saddle, ball, method="gradient_flow",
                                  label_noise=0.0, group="flow"), "flow")
    ft.add_to_graph(graph, record("gd", problem, run(problem, theta0, "gd", t_end), saddle, ball,
                                  method="gradient_descent", lr=LR, label_noise=0.0, group="gd"), "gd")
    for b in cfg["batches"]:
        for seed in range(cfg["seeds"]):
            label = f"sgd b={b} seed={seed}"
            it = record(label, problem, run(problem, theta0, "sgd", t_end, LR, b, seed), saddle, ball,
                        method="sgd", lr=LR, batch=b, seed=seed, label_noise=0.0, group=b)
            ft.add_to_graph(graph, it, label)
    graph.to_json(out / "graph.json")
    graph.to_graphml(out / "graph.graphml")
    nodes = [dict(node=n, kind=a["kind"], loss=a["loss"], signature=a["signature"], visits=a.get("visits"))
             for n, a in graph.graph.nodes(data=True)]
    for r in runs:
        groups.setdefault(r["group"], []).append(r.pop("_escape"))
    escape_table = []
    for key, es in groups.items():
        dist = ft.escape_time_distribution(es)
        escape_table.append(dict(runs=str(key), batch=key if isinstance(key, int) else None,
                                 median=dist.median, q25=dist.quantiles[0.25], q75=dist.quantiles[0.75],
                                 n=dist.n,
                                 n_escaped=dist.n_escaped, n_never_entered=dist.n_never_entered,
                                 message=dist.message))
    clean_sgd = [r for r in runs if r["method"] == "sgd"]
    wide = [r for r in clean_sgd if r["batch"] >= 16]

    # ------------------------------------------------ label noise 0.3: plateau saddle, noise balls
    noisy = make_problem(LABEL_NOISE)
    flow_n = ft.itinerary(noisy, run(noisy, theta0, "flow", t_end))
    saddle_n, minimum_n = plateau_saddle(flow_n), flow_n.attractor
    predicted = {}
    noisy_rows = []
    for lr in cfg["noisy_lrs"]:
        for b in cfg["noisy_batches"]:
            predicted[(lr, b)] = predicted_ball_radius(noisy, minimum_n.theta, lr, b)
            for seed in range(cfg["noisy_seeds"]):
                it = record(f"noisy sgd lr={lr} b={b} seed={seed}", noisy,
                            run(noisy, theta0, "sgd", t_end, lr, b, seed), saddle_n, method="sgd", lr=lr,
                            batch=b, seed=seed, label_noise=LABEL_NOISE, group="noisy")
                end = it.visits[-1]
                noisy_rows.append(dict(lr=lr, batch=b, seed=seed, lr_over_b=lr / b,
                                       records_plateau_saddle=runs[-1]["records_plateau_saddle"],
                                       terminal=it.terminal, end_kind=end.kind, ball_radius=end.ball_radius,
                                       predicted_radius=predicted[(lr, b)]))
    recorded = sum(r["records_plateau_saddle"] for r in noisy_rows)
    balls = [r for r in noisy_rows if r["end_kind"] == "noise_ball"]
    radius_fit = None
    if len({r["lr_over_b"] for r in balls}) >= 2:
        fit = ft.fit_power_law([r["lr_over_b"] for r in balls], [r["ball_radius"] for r in balls],
                               n_boot=200)
        radius_fit = dict(exponent=fit.exponent, ci=list(fit.ci), r2=fit.r2, predicted_exponent=0.5)
    radius_table = [dict(lr=lr, batch=b, lr_over_b=lr / b, predicted=p,
                         measured_median=float(np.median([r["ball_radius"] for r in balls
                                                          if (r["lr"], r["batch"]) == (lr, b)] or [np.nan])))
                    for (lr, b), p in predicted.items()]

    summary = dict(
        schema="flowtools.sgd_noise/1", quick=bool(args.quick),
        settings=dict(cfg, lr=LR, label_noise=LABEL_NOISE, n_records=N_RECORDS),
        escape_time_definition=(
            "function distance from the run's drift (running mean of its outputs over ±0.1 decades of t; "
            "the states themselves for flow and GD) to the flow's plateau saddle; ball radius = the flow "
            "itinerary's visit radius; entry at the radius, exit with hysteresis: the last crossing of the "
            "radius before the run first goes beyond twice it"),
        plateau_saddle=dict(loss=saddle.loss, signature=list(saddle.signature), visit_radius=rho),
        graph=dict(nodes=nodes, n_nodes=len(nodes),
                   slow_regions=sum(n["kind"] == "slow_region" for n in nodes)),
        clean_sgd=dict(runs=len(clean_sgd), slow_region_visits=sum(r["slow_regions"] for r in clean_sgd),
                       record_plateau_saddle=sum(r["records_plateau_saddle"] for r in clean_sgd),
                       runs_b16_up=len(wide), slow_region_visits_b16_up=sum(r["slow_regions"] for r in wide)),
        escape=escape_table, flow_plateaus=[p.to_dict() for p in ft.plateaus(flow)],
        label_noise=dict(runs=len(noisy_rows), record_plateau_saddle=recorded,
                         share=recorded / len(noisy_rows) if noisy_rows else None,
                         plateau_saddle=dict(loss=saddle_n.loss, signature=list(saddle_n.signature)),
                         noise_balls=len(balls), table=noisy_rows, radius_vs_lr_over_b=radius_fit,
                         radius_table=radius_table),
        runs=runs, figures=["sgd_noise.png"], timing=dict(total_s=time.perf_counter() - wall0))
    plot(summary, out / "sgd_noise.png")
    summary["timing"]["total_s"] = time.perf_counter() - wall0
    ft.io.write_json(out / "summary.json", summary)
    log("done: label-noise runs recording the plateau saddle", f"{recorded}/{len(noisy_rows)};",
        "graph nodes", len(nodes))
    return summary


def plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    rows = [r for r in summary["escape"] if r["batch"] is not None and r["n_escaped"]]
    b = np.array([r["batch"] for r in rows], float)
    med = np.array([r["median"] for r in rows])
    err = [med - np.array([r["q25"] for r in rows]), np.array([r["q75"] for r in rows]) - med]
    ax1.errorbar(b, med, yerr=err, fmt="o", label="SGD: median, quartiles")
    for r, style in zip([r for r in summary["escape"] if r["batch"] is None], ["--", ":"]):
        ax1.axhline(r["median"], ls=style, color="k", label=r["runs"])
    ax1.set(xscale="log", xlabel="batch size b", ylabel="escape time from the plateau saddle",
            title="escape time against batch size (η = 0.5)")
    ax1.set_xticks(b, [str(int(v)) for v in b])
    ax1.minorticks_off()
    never = [r["runs"] for r in summary["escape"] if r["batch"] is not None and not r["n_escaped"]]
    if never:
        ax1.text(0.02, 0.02, f"b = {', '.join(never)}: no run entered the ball", transform=ax1.transAxes)
    ax1.legend()
    ln = summary["label_noise"]
    balls = [r for r in ln["table"] if r["end_kind"] == "noise_ball"]
    ax2.loglog([r["lr_over_b"] for r in balls], [r["ball_radius"] for r in balls], "o", label="measured")
    pred = sorted((r["lr_over_b"], r["predicted"]) for r in ln["radius_table"])
    ax2.loglog([p[0] for p in pred], [p[1] for p in pred], "k--", label="linear-noise prediction")
    ax2.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.set_xticks([p[0] for p in pred], [f"{p[0]:.3g}" for p in pred])
    ax2.set_yticks([0.03, 0.05, 0.1, 0.15], ["0.03", "0.05", "0.1", "0.15"])
    ax2.set(xlabel="η / b", ylabel="noise-ball radius (RMS function distance)",
            title=f"noise balls, label noise {summary['settings']['label_noise']}")
    ax2.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
