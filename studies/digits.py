"""Gradient flow against gradient descent on handwritten digits: a classification example at 10³ parameters.

Setting: the 8×8 digits shipped with flowtools (1 497 training and 300 test images), a 64-16-10 tanh
net (1 210 parameters) from a small Glorot init (×0.1), softmax cross-entropy with integer labels.

1. Gradient flow (the default solver: Runge–Kutta–Chebyshev above 10³ parameters, no Hessian) to t = T,
   and GD at three step sizes to the same time t = kη; the function-space distance of each GD run from
   the flow at t = T (RMS output difference on the training images).
2. Train and test loss and accuracy along every run, side by side (the problem's held-out set).
3. The flow's itinerary, and the saddle graph of an ensemble of flows from different inits.
4. End-point spectra (dense eigh of the 1 210 × 1 210 Hessian from batched Hessian-vector products) and
   Morse signatures, with the number of constant pixels (exact zero directions) and whether the zero
   count depends on `rtol_zero`.
5. Wall times of every part and the peak RSS.

Outputs in results/digits/: curves.png, graph.png, spectrum.png, summary.json. `--quick` for the tests.
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import flowtools as ft  # noqa: E402
from flowtools.datasets import labels_of  # noqa: E402
from flowtools.graph import SaddleGraph  # noqa: E402
from flowtools.itineraries import add_to_graph, itinerary  # noqa: E402
from flowtools.landscape.spectrum import ZeroToleranceWarning, constant_features  # noqa: E402
from flowtools.plotting import save_figure  # noqa: E402


def settings(quick: bool, seed: int) -> dict:
    if quick:
        return dict(quick=True, seed=seed, n_train=100, n_test=100, hidden=2, T=50.0, lrs=[0.1, 0.5, 2.0],
                    n_ensemble=2, rtol=1e-5, loss="cross_entropy", init_scale=0.1, solver="rkc", min_depth=1.0)
    return dict(quick=False, seed=seed, n_train=1497, n_test=300, hidden=16, T=2000.0, lrs=[0.1, 0.5, 2.0],
                n_ensemble=8, rtol=1e-5, loss="cross_entropy", init_scale=0.1, solver="auto", min_depth=0.05)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20



def _curves(traj) -> dict:
    return dict(t=traj.t, loss=traj.loss, test_loss=traj.test_loss, test_accuracy=traj.test_accuracy)


def train_accuracy(problem, theta) -> float:
    pred = np.argmax(problem.predict(theta, problem.data.x), axis=1)
    return float(np.mean(pred == labels_of(problem.data)))


def run(cfg: dict) -> dict:
    timings, out = {}, {}
    problem = ft.problems.digits(cfg["hidden"], n_train=cfg["n_train"], n_test=cfg["n_test"], seed=cfg["seed"],
                                 loss=cfg["loss"])
    model, train, test = problem.model, problem.data, problem.test_data
    init = lambda s: np.asarray(model.init(s, "glorot", scale=cfg["init_scale"]))  # noqa: E731
    theta0 = init(cfg["seed"])
    T = cfg["T"]
    out["problem"] = dict(n_params=problem.n_params, n_train=train.n, n_test=test.n, loss=cfg["loss"],
                          widths=[64, cfg["hidden"], 10], constant_pixels=constant_features(problem))

    # 1–2. flow and GD, train and test curves
    t = time.perf_counter()
    flow = ft.gradient_flow(problem, theta0, T, rtol=cfg["rtol"], atol=cfg["rtol"] * 1e-2, solver=cfg["solver"])
    timings["flow_s"] = time.perf_counter() - t
    out["flow"] = dict(status=flow.status.value, solver=flow.meta["solver"], stats=flow.stats,
                       final_loss=float(flow.loss[-1]), final_test_loss=float(flow.test_loss[-1]),
                       final_test_accuracy=float(flow.test_accuracy[-1]),
                       final_train_accuracy=train_accuracy(problem, flow.theta[-1]),
                       max_test_accuracy=float(np.max(flow.test_accuracy)), curves=_curves(flow))
    out["gd"], ends = [], {"flow": flow.theta[-1]}
    for lr in cfg["lrs"]:
        t = time.perf_counter()
        gd = ft.gradient_descent(problem, theta0, lr, int(round(T / lr)))
        wall = time.perf_counter() - t
        timings[f"gd_lr={lr:g}_s"] = wall
        ends[f"gd lr={lr:g}"] = gd.theta[-1]
        out["gd"].append(dict(lr=lr, steps=int(round(T / lr)), status=gd.status.value, wall_s=wall,
                              final_loss=float(gd.loss[-1]), final_test_loss=float(gd.test_loss[-1]),
                              final_test_accuracy=float(gd.test_accuracy[-1]),
                              final_train_accuracy=train_accuracy(problem, gd.theta[-1]),
                              function_distance_to_flow=ft.function_distance(problem, gd.theta[-1], flow.theta[-1]),
                              curves=_curves(gd)))
    timings["flow_over_gd_smallest_lr"] = timings["flow_s"] / out["gd"][0]["wall_s"]

    # 3. itineraries and the ensemble's saddle graph
    graph = SaddleGraph()
    runs = []
    t = time.perf_counter()
    for i in range(cfg["n_ensemble"]):
        traj = flow if i == 0 else ft.gradient_flow(problem, init(cfg["seed"] + 1000 + i), T, rtol=cfg["rtol"],
                                                    atol=cfg["rtol"] * 1e-2, solver=cfg["solver"])
        t_it = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZeroToleranceWarning)
            it = itinerary(problem, traj, min_depth=cfg["min_depth"])
        nodes = add_to_graph(graph, it, run=f"flow seed {i}")
        runs.append(dict(seed=i, nodes=nodes, kinds=it.kinds, terminal=it.terminal,
                         signatures=[list(v.signature) for v in it.visits],
                         statuses=[v.status for v in it.visits], grad_norms=[v.grad_norm for v in it.visits],
                         budget_exhausted=bool(it.stats["budget_exhausted"]),
                         itinerary_s=time.perf_counter() - t_it, peak_rss_gib=peak_rss_gib(),
                         final_loss=float(traj.loss[-1]),
                         final_test_accuracy=float(traj.test_accuracy[-1])))
    timings["ensemble_s"] = time.perf_counter() - t
    out["ensemble"] = dict(runs=runs, n_nodes=len(graph), summary=str(graph.summary()) if runs else "")
    out["itinerary_flow"] = runs[0] if runs else None

    # 4. end-point spectra
    t = time.perf_counter()
    spectra = {}
    for name, theta in ends.items():
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            spec = ft.hessian_spectrum(problem, theta, vectors=False)
        spectra[name] = dict(signature=list(spec.signature), method=spec.method, complete=spec.complete,
                             rtol_zero=spec.rtol_zero, rtol_sensitivity=spec.rtol_sensitivity,
                             zero_count_warning=any(issubclass(w.category, ZeroToleranceWarning) for w in rec),
                             wall_s=spec.wall_time, eigenvalues=spec.eigenvalues)
    timings["spectra_s"] = time.perf_counter() - t
    out["spectra"] = spectra
    timings["peak_rss_gib"] = peak_rss_gib()
    out["timings"] = timings
    return out, graph


def draw(res, graph, out: pathlib.Path):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    series = [("flow", res["flow"]["curves"], "k")] + [
        (f"GD η={g['lr']:g}", g["curves"], f"C{i}") for i, g in enumerate(res["gd"])]
    for label, c, col in series:
        t = np.asarray(c["t"])
        m = t > 0
        axes[0].loglog(t[m], np.asarray(c["loss"])[m], color=col, label=f"{label} train")
        axes[0].loglog(t[m], np.asarray(c["test_loss"])[m], color=col, ls="--", label=f"{label} test")
        axes[1].semilogx(t[m], np.asarray(c["test_accuracy"])[m], color=col, label=label)
    axes[0].set(xlabel="t = kη", ylabel="cross-entropy (solid: train, dashed: test)")
    axes[0].legend(fontsize=6)
    axes[1].set(xlabel="t = kη", ylabel="test accuracy")
    axes[1].legend(fontsize=7)
    lam = np.asarray(res["spectra"]["flow"]["eigenvalues"])
    floor = 1e-20 * np.max(np.abs(lam))  # exact zeros (constant pixels) drawn at the floor
    axes[2].semilogy(np.arange(lam.size), np.maximum(np.abs(lam), floor), ".", ms=2, color="k", label="|λ|")
    axes[2].semilogy(np.flatnonzero(lam < 0), np.abs(lam[lam < 0]), ".", ms=3, color="C3", label="λ < 0")
    axes[2].axhline(res["spectra"]["flow"]["rtol_zero"] * np.max(np.abs(lam)), color="C0", ls=":",
                    label="zero threshold")
    axes[2].set_ylim(bottom=floor / 3)
    axes[2].set(xlabel="index (ascending λ)", ylabel="|λ| at the flow's end point",
                title=f"signature {tuple(res['spectra']['flow']['signature'])}")
    axes[2].legend(fontsize=7)
    save_figure(fig, out / "curves.png")
    if not res["ensemble"]["runs"]:
        return
    fig, ax = plt.subplots(figsize=(7, 5))
    graph.draw(ax=ax, title=f"saddle graph of {len(res['ensemble']['runs'])} flows on digits")
    save_figure(fig, out / "graph.png")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 training images, a 64-2-10 net, t = 50, 2 runs")
    ap.add_argument("--out", default="results/digits")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ensemble", type=int, default=None,
                    help="runs in the itinerary ensemble (default 8, quick 2; 0 skips the itineraries)")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    cfg = settings(args.quick, args.seed)
    if args.ensemble is not None:
        cfg["n_ensemble"] = max(0, args.ensemble)
    t0 = time.perf_counter()
    res, graph = run(cfg)
    draw(res, graph, out)
    res["timings"]["total_s"] = time.perf_counter() - t0
    ft.io.write_json(out / "summary.json", dict(study="digits", settings=cfg, **res))
    p, f, tm = res["problem"], res["flow"], res["timings"]
    print(f"digits: {p['n_params']} parameters, {p['n_train']} train / {p['n_test']} test images, "
          f"{p['constant_pixels']} constant pixels")
    print(f"  flow ({f['solver']}) to t={cfg['T']:g}: {tm['flow_s']:.1f} s, {f['status']}, train loss "
          f"{f['final_loss']:.4g}, test loss {f['final_test_loss']:.4g}, test accuracy {f['final_test_accuracy']:.3f}")
    for g in res["gd"]:
        print(f"  GD η={g['lr']:g} ({g['steps']} steps): {g['wall_s']:.1f} s, train loss {g['final_loss']:.4g}, "
              f"test accuracy {g['final_test_accuracy']:.3f}, distance to flow {g['function_distance_to_flow']:.3g}")
    s = res["spectra"]["flow"]
    print(f"  end-point signature {tuple(s['signature'])} ({s['method']}); depends on rtol_zero: "
          f"{s['rtol_sensitivity'] is not None}")
    if res["itinerary_flow"]:
        print(f"  flow itinerary: {res['itinerary_flow']['kinds']} → {res['itinerary_flow']['terminal']}; "
              f"ensemble graph: {res['ensemble']['n_nodes']} nodes")
    print(f"  peak RSS {tm['peak_rss_gib']:.2f} GiB; wrote {out}/ in {tm['total_s']:.1f} s")
    return res


if __name__ == "__main__":
    main()
