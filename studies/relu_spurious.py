"""Spurious local minima of two-layer ReLU networks (Safran & Shamir, ICML 2018), with the library alone.

Setting (`flowtools.problems.safran_shamir`): a student x ↦ Σ_{i ≤ n} relu(w_i·x) with the second layer
frozen at 1 and no biases, a teacher of k orthonormal ReLUs v_j = e_j in d = k dimensions, x ~ N(0, I_k),
and the population loss F(W) = ½ E_x (f(x; W) − T(x))², exact (arc-cosine kernel). Runs start at
w_i ~ N(0, I/d) (the "lecun" init) and follow the gradient flow ("bdf") to ‖∇F‖ ≤ 1e-9 or t = 1e6; each
run's itinerary gives the saddles it passed and its attractor. The problem declares its input symmetry
(every permutation of the k coordinates maps the teacher and the inputs to themselves), so critical
sets, attractors and basins are counted up to the full group: hidden-neuron permutations × S_k.

Measured, per (k, n) for k = n (and n = k + 1, k + 2: mild over-parameterization):
1. the fraction of runs ending at a spurious minimum (attractor loss above the global minimum F = 0),
   with a Wilson 95 % interval, from `flowtools.escape.basin_fractions` on the merged saddle graph;
2. the distinct spurious minima up to the group, with their losses, Morse signatures, smallest Hessian
   eigenvalues and run fractions;
3. the saddles the runs passed (distinct saddle nodes, their losses and indices);
4. an **independent classification** of the same runs: the loss, gradient and a finite-difference
   Hessian of every end point from a separate numpy implementation of F (the closed form of Cho & Saul
   2009, angles by Kahan's formula), compared run for run with the library's basin assignment.

Runs go through `flowtools.sweeps.sweep` (task "flow_itinerary", problem "safran_shamir"; resumable store
in <out>/store). Writes <out>/{summary.json, spurious_fraction.png, minima.png}. `--quick`: k = 4, n = 4
and 5, 4 seeds, serial (for the tests).
"""

from __future__ import annotations

import argparse
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

SCHEMA = "flowtools.relu_spurious/1"
FIXED = dict(problem="safran_shamir", activation="relu", init_scheme="lecun", init_scale=1.0, t1=1e6,
             gtol=1e-9, solver="bdf", data_seed=0)
FULL = dict(ks=list(range(6, 13)), extras=[0, 1, 2], seeds=200)
QUICK = dict(ks=[4], extras=[0, 1], seeds=4)
GLOBAL_TOL = 1e-8  # × F(0): an end point with F below this is at the global minimum (F = 0)


def configurations(settings, seed0: int = 0) -> list[dict]:
    out = []
    for k in settings["ks"]:
        for e in settings["extras"]:
            out += sweeps.grid(seed=range(seed0, seed0 + settings["seeds"]), teacher_width=k, width=k + e,
                               **FIXED)
    return out


# ------------------------------------------------------------------- an independent implementation of F
def _kernels_and_grads(A, B):
    """K(a, b) = E[relu(a·x) relu(b·x)] = ‖a‖‖b‖(sin θ + (π − θ) cos θ)/(2π) for every row pair of A and B,
    and ∂K/∂a, with θ = 2 atan2(‖â − b̂‖, ‖â + b̂‖) (accurate at every angle). A zero row gives K = 0."""
    na, nb = np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1)
    ua = A / np.where(na > 0, na, 1.0)[:, None]
    ub = B / np.where(nb > 0, nb, 1.0)[:, None]
    th = 2.0 * np.arctan2(np.linalg.norm(ua[:, None] - ub[None], axis=2),
                          np.linalg.norm(ua[:, None] + ub[None], axis=2))
    live = (na[:, None] > 0) & (nb[None, :] > 0)
    K = np.where(live, na[:, None] * nb[None, :] * (np.sin(th) + (np.pi - th) * np.cos(th)) / (2 * np.pi), 0.0)
    G = ((np.pi - th)[:, :, None] * B[None] + (nb[None, :] * np.sin(th))[:, :, None] * ua[:, None]) / (2 * np.pi)
    return K, np.where(live[:, :, None], G, 0.0)


def independent_loss_grad(W, V):
    """F(W) = ½ Σ_ij [K(w_i, w_j) − 2 K(w_i, v_j) + K(v_i, v_j)] and ∇F, in plain numpy."""
    kww, gww = _kernels_and_grads(W, W)
    kwv, gwv = _kernels_and_grads(W, V)
    kvv, _ = _kernels_and_grads(V, V)
    # ∂/∂w_i of ½ Σ_pq K(w_p, w_q) = Σ_q ∂₁K(w_i, w_q)
    return 0.5 * kww.sum() - kwv.sum() + 0.5 * kvv.sum(), gww.sum(axis=1) - gwv.sum(axis=1)


def independent_class(W, V, f0: float, h: float = 1e-6) -> dict:
    """Global minimum / spurious minimum / not a minimum, from the loss, the gradient and the smallest
    eigenvalue of a central-difference Hessian of the independent gradient."""
    f, G = independent_loss_grad(W, V)
    n = W.size
    H = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        H[:, j] = (independent_loss_grad(W + e.reshape(W.shape), V)[1]
                   - independent_loss_grad(W - e.reshape(W.shape), V)[1]).ravel() / (2 * h)
    lam = float(np.linalg.eigvalsh(0.5 * (H + H.T))[0])
    gnorm = float(np.linalg.norm(G))
    if f <= GLOBAL_TOL * f0:
        kind = "global"
    elif gnorm <= 1e-6 and lam > 1e-5:
        kind = "spurious"
    else:
        kind = "not_a_minimum"
    return dict(loss=float(f), grad_norm=gnorm, min_eigenvalue=lam, kind=kind)


# ------------------------------------------------------------------------------------------ analysis
def analyse(store, configs, check_limit: int | None = None) -> list[dict]:
    """One row per (k, n): spurious fraction, distinct spurious minima, saddles, and the run-by-run
    comparison with the independent classification."""
    ds = sweeps.open_results(store).load()
    groups = []
    for where, idx in sweeps.point_groups(ds, ("teacher_width", "width")):
        k, n = where["teacher_width"], where["width"]
        problem, _ = sweeps.make_problem(configs[idx[0]])
        f0 = float(problem.loss(np.zeros(problem.n_params)))
        V = np.eye(k)
        graph = sweeps.merged_graph(store, **where)
        basins = ft.escape.basin_fractions(graph).basins if graph.n_trajectories else []
        spurious = [b for b in basins if b.loss > GLOBAL_TOL * f0]
        n_runs = int(idx.size)
        # Run by run: the library's verdict from the run's own attractor, the independent one from its
        # end point.
        agree, rows = 0, []
        for i in idx[: check_limit or idx.size]:
            rec = sweeps.load_record(store, int(i))
            visits = rec.get("itinerary") or []
            last = visits[-1] if visits else {}
            terminal = rec["outcomes"].get("terminal", "")
            lib = ("global" if terminal == "attractor" and last.get("loss", math.inf) <= GLOBAL_TOL * f0
                   else "spurious" if terminal == "attractor" else "not_a_minimum")
            theta = np.asarray(last.get("theta", []), dtype=float)
            if theta.size != n * k:
                rows.append(dict(point=int(i), library=lib, independent="missing"))
                continue
            ind = independent_class(theta.reshape(n, k), V, f0)
            agree += ind["kind"] == lib
            rows.append(dict(point=int(i), library=lib, independent=ind["kind"], loss=ind["loss"],
                             grad_norm=ind["grad_norm"], min_eigenvalue=ind["min_eigenvalue"]))
        n_checked = len(rows)
        n_spur = sum(b.count for b in spurious)  # every run, whatever --check-limit checks
        saddle_nodes = [(nd, a) for nd, a in graph.graph.nodes(data=True)
                        if a.get("signature") and a["signature"][0] and a["signature"][0] > 0
                        and a.get("kind") != "slow_region"]
        wall = ds["wall_time"].values[idx]
        groups.append(dict(
            k=int(k), n=int(n), n_runs=n_runs, f0=f0,
            spurious_fraction=n_spur / n_runs, spurious_ci=list(ft.escape.wilson_interval(n_spur, n_runs)),
            n_spurious_minima=len(spurious),
            spurious_minima=[dict(label=b.label, loss=b.loss, signature=list(b.signature), count=b.count,
                                  fraction=b.fraction, ci=list(b.ci)) for b in spurious],
            n_attractors=len(basins),
            terminals={t: int(np.sum(ds["terminal"].values[idx] == t))
                       for t in np.unique(ds["terminal"].values[idx])},
            statuses={s: int(np.sum(ds["status"].values[idx] == s)) for s in np.unique(ds["status"].values[idx])},
            saddles=sorted([dict(node=str(nd), loss=float(a["loss"]), signature=list(a["signature"]),
                                 visits=int(a.get("visits", 0))) for nd, a in saddle_nodes],
                           key=lambda s: -s["visits"])[:12],
            n_saddles=len(saddle_nodes),
            independent_checked=n_checked, independent_agree=agree,
            independent_disagreements=[r for r in rows if r["independent"] != r["library"]][:10],
            min_end_loss=float(min((r.get("loss", math.inf) for r in rows), default=math.nan)),
            wall_median=float(np.median(wall)), wall_quartiles=[float(q) for q in np.percentile(wall, [25, 75])],
        ))
    return groups


def draw(groups, out):
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for e in sorted({g["n"] - g["k"] for g in groups}):
        rows = [g for g in groups if g["n"] - g["k"] == e]
        ks = np.array([g["k"] for g in rows]) + 0.08 * e
        f = np.array([g["spurious_fraction"] for g in rows])
        lo = f - np.array([g["spurious_ci"][0] for g in rows])
        hi = np.array([g["spurious_ci"][1] for g in rows]) - f
        ax.errorbar(ks, f, yerr=[lo, hi], marker="o", capsize=3, label=f"n = k + {e}" if e else "n = k")
    ax.set(xlabel="teacher neurons k (d = k)", ylabel="fraction of runs at a spurious minimum",
           xticks=sorted({g["k"] for g in groups}), ylim=(-0.03, None))
    ax.legend(title="student width (Wilson 95%)", fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, out / "spurious_fraction.png")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for g in groups:
        for m in g["spurious_minima"]:
            ax.scatter(g["k"] + 0.08 * (g["n"] - g["k"]), m["loss"], s=20 + 200 * m["fraction"],
                       color=f"C{g['n'] - g['k']}", alpha=0.7)
    ax.set(xlabel="teacher neurons k", ylabel="population loss F at the spurious minimum", yscale="log",
           title="distinct spurious minima up to symmetry\n(area: share of runs; colour: n − k)")
    ax.grid(alpha=0.3)
    save_figure(fig, out / "minima.png")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a reduced sweep for the tests (serial)")
    ap.add_argument("--out", default="results/relu_spurious")
    ap.add_argument("--seed", type=int, default=0, help="the first initialisation seed")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per (k, n) (default 200; 4 in --quick)")
    ap.add_argument("--ks", type=int, nargs="+", default=None, help="teacher widths k (default 6 … 12)")
    ap.add_argument("--extras", type=int, nargs="+", default=None, help="n − k values (default 0 1 2)")
    ap.add_argument("--workers", type=int, default=None, help="Dask worker processes (0: serial; default: "
                    "the CPU count, serial in --quick)")
    ap.add_argument("--scheduler", default=None, help="a Dask scheduler address")
    ap.add_argument("--check-limit", type=int, default=None,
                    help="check at most this many runs per (k, n) against the independent implementation")
    ap.add_argument("--no-run", action="store_true", help="analyse the store as it is, without running points")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    settings = dict(QUICK if args.quick else FULL)
    if args.seeds is not None:
        settings["seeds"] = ft._checks.positive_int("seeds", args.seeds)
    if args.ks is not None:
        settings["ks"] = [ft._checks.positive_int("ks", k) for k in args.ks]
    if args.extras is not None:
        settings["extras"] = [int(ft._checks.nonnegative("extras", e)) for e in args.extras]
    workers = args.workers if args.workers is not None else (0 if args.quick else None)
    configs = configurations(settings, args.seed)
    t0 = time.perf_counter()
    if args.no_run:
        result = dict(n_run=0, n_skipped=int(sweeps.open_results(out / "store")["finished"].sum()), failed=[])
    else:
        r = sweeps.sweep("flow_itinerary", configs, out / "store", workers=workers, scheduler=args.scheduler,
                         progress=not args.quick, resume=True)
        result = dict(n_run=r.n_run, n_skipped=r.n_skipped, failed=list(r.failed))
    sweep_s = time.perf_counter() - t0
    groups = analyse(out / "store", configs, args.check_limit)
    draw(groups, out)
    summary = dict(schema=SCHEMA, settings=settings, fixed=FIXED, seed0=args.seed, n_points=len(configs),
                   sweep_s=sweep_s, **result, groups=groups)
    ft.io.write_json(out / "summary.json", summary)
    for g in groups:
        print(f"k={g['k']:2d} n={g['n']:2d}: spurious {g['spurious_fraction']:.3f} "
              f"[{g['spurious_ci'][0]:.3f}, {g['spurious_ci'][1]:.3f}] of {g['n_runs']}; "
              f"{g['n_spurious_minima']} distinct spurious minima "
              f"{[round(m['loss'], 7) for m in g['spurious_minima']]}; {g['n_saddles']} saddles; "
              f"independent check {g['independent_agree']}/{g['independent_checked']}; "
              f"median point {g['wall_median']:.2f} s")
    return summary


if __name__ == "__main__":
    main()
