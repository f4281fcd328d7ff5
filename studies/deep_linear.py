"""Saddle-to-saddle dynamics in deep linear networks (Saxe, McClelland & Ganguli 2014; Jacot et al. 2021).

3-3-3 (depth 2) and 3-3-3-3 (depth 3) linear networks without bias on exactly whitened inputs with
Σ_yx = diag(3, 2, 1), half_mse loss, gradient flow in its own time units:

1. each mode's learning time (half its singular value) from an aligned balanced start, against the
   closed form of `flowtools.deep_linear` (derivation on docs/studies/deep_linear.md);
2. the staircase of the loss, with every plateau found by `flowtools.escape.plateaus`;
3. the exact rank-0, rank-1, rank-2 critical points and the global minimum: signature and kind (at depth 3
   the saddles have positive semidefinite Hessians and are higher-order saddles);
4. the itinerary of a run from a small random balanced start, for several save grids;
5. the escape time from the origin against the init scale ε: a log law at depth 2, a power law with
   exponent 1 in 1/ε at depth 3 (bootstrap CIs);
6. gradient descent against the flow over the step size η.

Outputs in results/deep_linear/: staircase.png, escape.png, gd_vs_flow.png, summary.json. `--quick` for
the tests.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import flowtools as ft  # noqa: E402
from flowtools import deep_linear as DL  # noqa: E402
from flowtools.escape import escape_flow, fit_log_law, fit_power_law, plateaus  # noqa: E402
from flowtools.itineraries import itinerary  # noqa: E402
from flowtools.landscape import classify_point, critical_point_at  # noqa: E402
from flowtools.plotting import save_figure  # noqa: E402

SIGMA = (3.0, 2.0, 1.0)


def make_problem(depth: int):
    problem = ft.problems.deep_linear(depth, SIGMA)
    return problem, problem.model


def learning_times(depth, eps, n_save):
    """Flow from the aligned start W_l = ε I; each mode's half-way time measured and in closed form."""
    problem, model = make_problem(depth)
    u0 = eps**depth
    t_pred = [DL.learning_time(s, u0, depth) for s in SIGMA]
    T = 1.5 * t_pred[-1]
    ts = np.linspace(0, T, n_save + 1)[1:]  # n_save = 100 as in the re-solves below: one compilation
    tr = ft.gradient_flow(problem, DL.aligned_init(model, eps), T, save_ts=ts, rtol=1e-10, atol=1e-14,
                          solver="tsit5")
    u = np.array([np.diag(DL.end_to_end(model, th)) for th in tr.theta])  # the modes stay on the diagonal
    measured = []
    for i, s in enumerate(SIGMA):
        k = int(np.argmax(u[:, i] >= s / 2))
        # re-solve the bracketing interval with 100 saves, then interpolate logit(u/s) linearly in t
        fine = ft.gradient_flow(problem, tr.theta[k - 1], tr.t[k], t0=tr.t[k - 1], rtol=1e-10, atol=1e-14,
                                save_ts=np.linspace(tr.t[k - 1], tr.t[k], 101)[1:], solver="tsit5")
        uf = np.array([DL.end_to_end(model, th)[i, i] for th in fine.theta])
        j = int(np.argmax(uf >= s / 2))
        ta, tb, ua, ub = fine.t[j - 1], fine.t[j], uf[j - 1], uf[j]
        lg = lambda v: np.log(v / (s - v))  # noqa: E731
        measured.append(float(ta + (tb - ta) * (lg(s / 2) - lg(ua)) / (lg(ub) - lg(ua))))
    loss_err = float(np.max(np.abs(tr.loss - DL.mode_loss(tr.t, SIGMA, u0, depth))))
    return dict(depth=depth, eps=eps, u0=u0, predicted=t_pred, measured=measured,
                rel_error=[abs(m / p - 1) for m, p in zip(measured, t_pred)], max_loss_error=loss_err,
                status=tr.status.value), tr


def exact_points(depth):
    """The balanced critical points of rank 0, 1, 2 and the global minimum: signature and kind."""
    problem, model = make_problem(depth)
    rows = []
    for rank in range(4):
        s = np.array([SIGMA[i] if i < rank else 0.0 for i in range(3)])
        theta = np.zeros(model.n_params)
        for sl in model.layout:
            theta[sl.W[0]:sl.W[1]] = np.diag(s ** (1.0 / depth)).ravel()
        cp = critical_point_at(problem, theta)
        rows.append(dict(rank=rank, loss=cp.loss, grad_norm=cp.grad_norm, signature=list(cp.signature),
                         kind=cp.kind, order=None if cp.higher_order is None else cp.higher_order.order,
                         n_escape_directions=0 if cp.escape_directions is None
                         else int(cp.escape_directions.shape[1])))
    return rows


def _itinerary_row(problem, tr, **extra):
    """The itinerary's visits, each also with the kind `classify_point` (higher-order test) gives it."""
    it = itinerary(problem, tr)
    visits = []
    for v in it.visits:
        kind2 = classify_point(problem, v.theta)[0] if v.kind != "slow_region" else v.kind
        visits.append(dict(kind=v.kind, kind_higher_order=kind2, signature=list(v.signature), loss=v.loss,
                           t_in=v.t_in, t_out=v.t_out))
    return dict(extra, terminal=it.terminal, status=tr.status.value, visits=visits,
                sequence=" → ".join(f"{v['kind']}{tuple(v['signature'])}" for v in visits),
                sequence_higher_order=" → ".join(f"{v['kind_higher_order']}{tuple(v['signature'])}"
                                                 for v in visits))


def itineraries(depth, eps, seed, n_saves, lrs, t_gd):
    """Itineraries of one random balanced run: the flow saved on several grids, and GD at several η."""
    problem, model = make_problem(depth)
    theta0 = DL.balanced_init(model, eps, seed)
    out = []
    for n_save in n_saves:
        tr = ft.gradient_flow(problem, theta0, t_gd, n_save=n_save)
        out.append(_itinerary_row(problem, tr, method="gradient_flow", n_save=n_save))
    for lr in lrs:
        tr = ft.gradient_descent(problem, theta0, lr, int(np.ceil(t_gd / lr)), gtol=1e-10, n_records=400)
        out.append(_itinerary_row(problem, tr, method="gradient_descent", lr=lr))
    return out


def escape_scaling(depth, eps_list):
    """Escape time from the origin (end-to-end map reaching ‖W‖_F = s₁/2, event-located) against ε."""
    problem, model = make_problem(depth)
    radius = SIGMA[0] / 2  # the function distance to the origin's function is ‖W_L ⋯ W_1‖_F
    tau, pred = [], []
    for eps in eps_list:
        run = escape_flow(problem, DL.aligned_init(model, eps), np.zeros(model.n_params), radius,
                          metric="function", t1=1e7)
        tau.append(run.escape.time)
        pred.append(DL.learning_time(SIGMA[0], eps**depth, depth))
    x = 1 / np.asarray(eps_list)
    fit = (fit_log_law if depth == 2 else fit_power_law)(x, np.asarray(tau), n_boot=2000, seed=0)
    expected = 1 / SIGMA[0] if depth == 2 else 1.0  # slope in log(1/ε) = 1/s₁; exponent = depth − 2
    return dict(depth=depth, eps=list(eps_list), tau=tau, closed_form=pred, law=fit.law, slope=fit.slope,
                ci=list(fit.ci), r2=fit.r2, expected_slope=expected)


def gd_versus_flow(depth, eps, lrs, n_points):
    """GD at step η against the flow at matched times t = kη from the same aligned start."""
    problem, model = make_problem(depth)
    theta0 = DL.aligned_init(model, eps)
    u0 = eps**depth
    T = 1.5 * DL.learning_time(SIGMA[-1], u0, depth)
    rows = []
    for lr in lrs:
        steps = int(np.ceil(T / lr))
        gd = ft.gradient_descent(problem, theta0, lr, steps, record_steps=np.arange(steps + 1))
        u = np.array([np.diag(DL.end_to_end(model, th)) for th in gd.theta])
        times = []
        for i, s in enumerate(SIGMA):
            k = int(np.argmax(u[:, i] >= s / 2)) if np.any(u[:, i] >= s / 2) else None
            times.append(None if k is None else float(gd.t[k]))  # first step at or past half-way
        flow = [DL.learning_time(s, u0, depth) for s in SIGMA]
        # The escape stage dominates for a small start: per step w grows by (1 + ηs) (GD) instead of
        # e^{ηs} (flow) at depth 2, so GD's time is longer by the factor ηs / log(1 + ηs).
        predicted = [lr * s / np.log1p(lr * s) for s in SIGMA]
        flow_loss = DL.mode_loss(np.asarray(gd.t), SIGMA, u0, depth)
        rows.append(dict(lr=lr, steps=steps, status=gd.status.value, learning_times=times, closed_form=flow,
                         ratio=[None if t is None else t / f for t, f in zip(times, flow)],
                         ratio_escape_stage=predicted,
                         max_loss_gap=float(np.max(np.abs(gd.loss - flow_loss))), t=gd.t.tolist(),
                         loss=gd.loss.tolist()))
    return rows


def figures(out, runs, scaling, gd_rows):
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4))
    for ax, (depth, (row, tr)) in zip(np.atleast_1d(axes), runs.items()):
        t = np.linspace(1e-3, tr.t[-1], 800)
        ax.plot(tr.t, tr.loss, lw=2.5, alpha=0.5, label="gradient flow")
        ax.plot(t, DL.mode_loss(t, SIGMA, row["u0"], depth), "k--", lw=1, label="closed form")
        for p in plateaus(tr):
            ax.axvspan(p.t_start, p.t_end, color="0.85", zorder=0)
        for tp in row["predicted"]:
            ax.axvline(tp, color="C3", lw=0.6)
        ax.set(xlabel="t", ylabel="L (half_mse)", title=f"depth {depth}, ε = {row['eps']:g}")
        ax.legend()
    save_figure(fig, out / "staircase.png")

    fig, axes = plt.subplots(1, len(scaling), figsize=(5.5 * len(scaling), 4))
    for ax, sc in zip(np.atleast_1d(axes), scaling):
        x = 1 / np.asarray(sc["eps"])
        ax.plot(x, sc["tau"], "o", label="escape_flow (event)")
        ax.plot(x, sc["closed_form"], "k--", lw=1, label="closed form")
        ax.set(xscale="log", yscale="log" if sc["law"] == "power" else "linear", xlabel="1/ε",
               ylabel="escape time",
               title=f"depth {sc['depth']}: {sc['law']} law, slope {sc['slope']:.3f} "
                     f"[{sc['ci'][0]:.3f}, {sc['ci'][1]:.3f}]")
        ax.legend()
    save_figure(fig, out / "escape.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in gd_rows:
        ax.plot(r["t"], r["loss"], label=f"GD η = {r['lr']:g}")
    t = np.asarray(gd_rows[0]["t"])
    ax.plot(t, DL.mode_loss(t, SIGMA, gd_rows[0]["u0"], gd_rows[0]["depth"]), "k--", lw=1, label="flow")
    ax.set(xlabel="t = kη", ylabel="L", title=f"depth {gd_rows[0]['depth']}: GD against the flow")
    ax.legend()
    save_figure(fig, out / "gd_vs_flow.png")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer runs and coarser grids (for the tests)")
    ap.add_argument("--out", default="results/deep_linear")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    t_start = time.perf_counter()
    depths = (2, 3)
    eps_modes = {2: 1e-3, 3: 1e-2} if quick else {2: 1e-4, 3: 1e-3}
    def step(name):
        print(f"[{time.perf_counter() - t_start:7.1f} s] {name}", flush=True)

    step("mode learning times")
    runs = {d: learning_times(d, eps_modes[d], 100) for d in depths}
    step("exact critical points")
    points = {d: exact_points(d) for d in depths}
    n_saves = () if quick else (100, 200, 400, 800, 1600)  # itineraries: full mode only (CPU budget)
    step("itineraries")
    it_lrs = () if quick else (0.01, 0.2)
    its = {d: itineraries(d, 1e-2 if d == 2 else 5e-2, args.seed, n_saves, it_lrs, 100.0 if d == 2 else 400.0)
           for d in depths}
    eps_list = [1e-2, 3e-3, 1e-3] if quick else list(np.geomspace(1e-2, 1e-4, 7))
    step("escape scaling")
    scaling = [escape_scaling(d, eps_list) for d in depths]
    lrs = (0.05, 0.2) if quick else (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
    step("GD against the flow")
    gd_rows = gd_versus_flow(2, 1e-3, lrs, 200)
    for r in gd_rows:
        r.update(depth=2, u0=1e-6)
    figures(out, runs, scaling, gd_rows)
    summary = dict(
        setting=dict(sigma_yx=list(SIGMA), widths={2: "3-3-3", 3: "3-3-3-3"}, loss="half_mse",
                     data="whitened_dataset (Σ_xx = I exactly)", quick=quick, seed=args.seed),
        learning_times={str(d): runs[d][0] for d in depths},
        critical_points={str(d): points[d] for d in depths},
        itineraries={str(d): its[d] for d in depths},
        escape_scaling=scaling,
        gd_vs_flow=[{k: v for k, v in r.items() if k not in ("t", "loss")} for r in gd_rows],
        wall_time=time.perf_counter() - t_start,
    )
    ft.io.write_json(out / "summary.json", summary)
    for d in depths:
        r = runs[d][0]
        print(f"depth {d}: learning times {np.round(r['measured'], 4)} vs closed form "
              f"{np.round(r['predicted'], 4)} (max rel. error {max(r['rel_error']):.1e}); "
              f"max |L − L_closed| = {r['max_loss_error']:.1e}")
        for p in points[d]:
            print(f"  rank {p['rank']}: {p['kind']} {tuple(p['signature'])} L = {p['loss']:.4g}")
        for it in its[d]:
            how = f"n_save={it['n_save']}" if it["method"] == "gradient_flow" else f"GD η={it['lr']:g}"
            print(f"  itinerary ({how}): {it['sequence']} ⇒ {it['terminal']}\n"
                  f"    with the higher-order test: {it['sequence_higher_order']}")
    for sc in scaling:
        print(f"depth {sc['depth']}: {sc['law']} law slope {sc['slope']:.4f} CI {np.round(sc['ci'], 4)} "
              f"(expected {sc['expected_slope']:.4f})")
    for r in gd_rows:
        print(f"GD η={r['lr']:g}: learning times {r['learning_times']} (flow {np.round(r['closed_form'], 3)}); "
              f"ratio GD/flow {np.round(r['ratio'], 4)} vs escape-stage ηs/log(1+ηs) "
              f"{np.round(r['ratio_escape_stage'], 4)}; max |L_GD − L_flow| = {r['max_loss_gap']:.3g}")
    print(f"wall time {summary['wall_time']:.1f} s")
    return summary


if __name__ == "__main__":
    main()
