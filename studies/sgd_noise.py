"""SGD noise on a teacher–student plateau: itineraries, noise balls and escape times against batch size.

One scenario: an erf student of width 2 learns an orthonormal erf teacher of width 2 in d = 10 from
n = 2 000 Gaussian samples (half-MSE, no biases), from a small init (N(0, 10⁻⁶) weights). Its runs pass
the origin saddle, then a plateau saddle (a degenerate saddle at L ≈ 0.033 on clean data), then reach
the global minimum. The study runs it under gradient flow, GD (η = 0.5) and SGD at several batch sizes b
and learning rates η, on clean labels and with label noise 0.3, and reports:

- the itineraries and the merged saddle graph of flow + GD + SGD on clean data (one node per critical set);
- the share of noisy-label SGD runs that record the plateau saddle;
- escape times from the plateau saddle's ball (function distance, radius = the itinerary's visit radius,
  exit with hysteresis at twice the radius) over seeds against b, with the flow's for reference;
- the radius of the noise ball around the minimum against η/b.

`python studies/sgd_noise.py [--quick] [--out DIR]`; writes DIR/summary.json, DIR/graph.json,
DIR/graph.graphml and DIR/sgd_noise.png.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time
import warnings

import numpy as np

import flowtools as ft
from flowtools.problems import orthonormal_teacher

FULL = dict(batches=[4, 16, 32, 128], seeds=6, noisy_batches=[16, 32, 128], noisy_lrs=[0.25, 0.5],
            noisy_seeds=4, t_end=400.0)
QUICK = dict(batches=[16, 128], seeds=3, noisy_batches=[32], noisy_lrs=[0.5], noisy_seeds=3, t_end=400.0)
LR = 0.5  # of GD and of the clean-data SGD runs
LABEL_NOISE = 0.3


def make_problem(noise: float) -> ft.Problem:
    teacher = orthonormal_teacher(10, 2, "erf")
    data = ft.teacher_dataset(teacher, 2000, noise=noise, seed=0)
    return ft.Problem(ft.MLP((10, 2, 1), "erf", bias=False), data, "half_mse")


def initial_theta(problem: ft.Problem) -> np.ndarray:
    return np.asarray(problem.model.init(1, "normal", scale=1e-3))


def run(problem, theta0, method, lr, batch, seed, t_end):
    if method == "flow":
        return ft.gradient_flow(problem, theta0, t_end, gtol=1e-8)
    steps = int(round(t_end / lr))
    if method == "gd":
        return ft.gradient_descent(problem, theta0, lr, steps, n_records=300)
    return ft.sgd(problem, theta0, lr, steps, batch_size=batch, seed=seed, n_records=300)


def plateau_saddle(itin):
    """The flow's plateau saddle: its visited saddle with the lowest loss."""
    saddles = [v for v in itin.visits if v.refined and v.signature[0] and v.signature[0] > 0]
    return min(saddles, key=lambda v: v.loss)


def records_saddle(itin, saddle, d_out=1, n_train=2000) -> bool:
    from flowtools.graph import match_distance

    return any(match_distance(vars(v), vars(saddle), d_out, n_train) is not None for v in itin.visits)


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
    log = (lambda *a: None) if args.no_progress else (lambda *a: print(f"[{time.perf_counter() - wall0:6.1f} s]", *a, flush=True))
    t_end = cfg["t_end"]

    # ------------------------------------------------ clean data: flow, GD, SGD; graph; escape times
    problem = make_problem(0.0)
    theta0 = initial_theta(problem)
    graph = ft.SaddleGraph()
    runs, escapes = [], {}
    flow = run(problem, theta0, "flow", None, None, None, t_end)
    flow_itin = ft.itinerary(problem, flow)
    ft.add_to_graph(graph, flow_itin, "flow")
    saddle = plateau_saddle(flow_itin)
    rho = flow_itin.stats["visit_radius"]
    ball = dict(metric="function", problem=problem, radius=rho, exit="hysteresis", exit_radius=2 * rho)

    def record(label, method, lr, batch, seed, traj, itin, noise):
        with warnings.catch_warnings():  # the saves are 1–2 steps apart here; the bracket note is moot
            warnings.simplefilter("ignore", UserWarning)
            esc = ft.escape_time(traj, saddle.theta, refine="none", **ball) if noise == 0 else None
        row = dict(run=label, method=method, lr=lr, batch=batch, seed=seed, label_noise=noise,
                   status=str(traj.status), terminal=itin.terminal, message=itin.message,
                   itinerary=[dict(kind=v.kind, signature=list(v.signature), t_in=v.t_in, t_out=v.t_out,
                                   loss=v.loss, ball_radius=v.ball_radius) for v in itin.visits],
                   slow_regions=sum(v.kind == "slow_region" for v in itin.visits),
                   records_plateau_saddle=records_saddle(itin, saddle_of[noise]),
                   noise_scale=itin.stats["noise_scale"], wall_s=itin.stats["wall_time"])
        if esc is not None:
            row["escape"] = dict(time=esc.time, t_in=esc.t_in, t_out=esc.t_out, status=esc.status)
        runs.append(row)
        log(label, itin)
        return esc

    saddle_of = {0.0: saddle}
    escapes["flow"] = [record("flow", "gradient_flow", None, None, None, flow, flow_itin, 0.0)]
    gd = run(problem, theta0, "gd", LR, None, None, t_end)
    gd_itin = ft.itinerary(problem, gd)
    ft.add_to_graph(graph, gd_itin, "gd")
    escapes["gd"] = [record("gd", "gradient_descent", LR, problem.x.shape[0], None, gd, gd_itin, 0.0)]
    for b in cfg["batches"]:
        escapes[b] = []
        for seed in range(cfg["seeds"]):
            tr = run(problem, theta0, "sgd", LR, b, seed, t_end)
            it = ft.itinerary(problem, tr)
            ft.add_to_graph(graph, it, f"sgd b={b} seed={seed}")
            escapes[b].append(record(f"sgd b={b} seed={seed}", "sgd", LR, b, seed, tr, it, 0.0))
    graph.to_json(out / "graph.json")
    graph.to_graphml(out / "graph.graphml")
    nodes = [dict(node=n, kind=a["kind"], loss=a["loss"], signature=a["signature"], visits=a.get("visits"))
             for n, a in graph.graph.nodes(data=True)]
    escape_table = []
    for key, es in escapes.items():
        dist = ft.escape_time_distribution(es)
        escape_table.append(dict(runs=str(key), batch=None if isinstance(key, str) else key, median=dist.median,
                                 q25=dist.quantiles[0.25], q75=dist.quantiles[0.75], n=dist.n,
                                 n_escaped=dist.n_escaped, message=dist.message))
    flow_plateau = [p.as_dict() for p in ft.plateaus(flow)]

    # ------------------------------------------------ label noise 0.3: plateau saddle, noise balls
    noisy = make_problem(LABEL_NOISE)
    flow_n = ft.itinerary(noisy, run(noisy, theta0, "flow", None, None, None, t_end))
    saddle_of[LABEL_NOISE] = plateau_saddle(flow_n)
    noisy_rows = []
    for lr in cfg["noisy_lrs"]:
        for b in cfg["noisy_batches"]:
            for seed in range(cfg["noisy_seeds"]):
                tr = run(noisy, theta0, "sgd", lr, b, seed, t_end)
                it = ft.itinerary(noisy, tr)
                record(f"noisy sgd lr={lr} b={b} seed={seed}", "sgd", lr, b, seed, tr, it, LABEL_NOISE)
                end = it.visits[-1]
                noisy_rows.append(dict(lr=lr, batch=b, seed=seed, lr_over_b=lr / b,
                                       records_plateau_saddle=runs[-1]["records_plateau_saddle"],
                                       terminal=it.terminal, end_kind=end.kind, ball_radius=end.ball_radius))
    recorded = sum(r["records_plateau_saddle"] for r in noisy_rows)
    balls = [r for r in noisy_rows if r["end_kind"] == "noise_ball"]
    radius_fit = None
    if len({r["lr_over_b"] for r in balls}) >= 2:
        fit = ft.fit_power_law([r["lr_over_b"] for r in balls], [r["ball_radius"] for r in balls], n_boot=200)
        radius_fit = dict(exponent=fit.exponent, ci=list(fit.ci))

    clean_sgd = [r for r in runs if r["method"] == "sgd" and r["label_noise"] == 0]
    summary = dict(
        schema="flowtools.sgd_noise/1", quick=bool(args.quick), settings=dict(cfg, lr=LR, label_noise=LABEL_NOISE),
        escape_time_definition=("function-space ball of radius = the flow itinerary's visit radius around the "
                                "flow's plateau saddle; entry at the radius, exit with hysteresis: the last "
                                "crossing of the radius before the run first goes beyond twice it"),
        plateau_saddle=dict(loss=saddle.loss, signature=list(saddle.signature), visit_radius=rho),
        graph=dict(nodes=nodes, n_nodes=len(nodes), slow_regions=sum(n["kind"] == "slow_region" for n in nodes)),
        clean_sgd=dict(runs=len(clean_sgd), slow_region_visits=sum(r["slow_regions"] for r in clean_sgd),
                       record_plateau_saddle=sum(r["records_plateau_saddle"] for r in clean_sgd)),
        escape=escape_table, flow_plateaus=flow_plateau,
        label_noise=dict(runs=len(noisy_rows), record_plateau_saddle=recorded,
                         share=recorded / len(noisy_rows) if noisy_rows else None,
                         noise_balls=len(balls), table=noisy_rows, radius_vs_lr_over_b=radius_fit),
        runs=runs, figures=["sgd_noise.png"], timing=dict(total_s=time.perf_counter() - wall0))
    plot(summary, out / "sgd_noise.png")
    summary["timing"]["total_s"] = time.perf_counter() - wall0
    ft.io.write_json(out / "summary.json", summary)
    log("done", summary["label_noise"]["share"], summary["graph"]["n_nodes"])
    return summary


def plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    rows = [r for r in summary["escape"] if r["batch"] is not None]
    b = np.array([r["batch"] for r in rows], float)
    med = np.array([r["median"] for r in rows])
    ax1.errorbar(b, med, yerr=[med - np.array([r["q25"] for r in rows]), np.array([r["q75"] for r in rows]) - med],
                 fmt="o", label="SGD: median, quartiles")
    for r, style in zip([r for r in summary["escape"] if r["batch"] is None], ["--", ":"]):
        ax1.axhline(r["median"], ls=style, color="k", label=r["runs"])
    ax1.set(xscale="log", xlabel="batch size b", ylabel="escape time from the plateau saddle",
            title="escape time against batch size (η = 0.5)")
    ax1.legend()
    balls = [r for r in summary["label_noise"]["table"] if r["end_kind"] == "noise_ball"]
    ax2.loglog([r["lr_over_b"] for r in balls], [r["ball_radius"] for r in balls], "o")
    ax2.set(xlabel="η / b", ylabel="noise-ball radius (RMS function distance)",
            title=f"noise balls, label noise {summary['settings']['label_noise']}")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
