"""Study: the soft committee machine's symmetric plateau under the population gradient flow.

Teacher and student f(x) = Σ_i g(w_i·x), g(z) = erf(z/√2), K = M hidden units, second layer held at 1
(frozen parameters), inputs x ~ N(0, I_d) (Saad & Solla 1995; Goldt et al. 2019). The teacher's vectors
are orthonormal (T_nm = δ_nm). Training is the population gradient flow of L = ½ E‖f_s − f_t‖²
(`flowtools.GaussianInputs`), from small random initial weights.

The study

1. checks the symmetric plateau against our derivation (docs/studies/soft_committee.md): on the
   manifold w_i = r Σ_n w*_n the gradient vanishes at r² = 1/(K(2K − 1)), where Q_ik = 1/(2K − 1) for all
   i, k, R_in = r, and R = K/3 − (2K²/π) arcsin(1/(2K)); its Hessian against an independent Hessian of
   the hand-written overlap formula, and its Morse signature on the free subspace (first layer only);
2. runs the flow from small init at several scales, records the overlaps Q_ik(t), R_in(t), measures the
   plateau's error and overlaps, and fits the escape time against log(1/scale) (slope 1/|μ|, μ the
   negative Hessian eigenvalue at the plateau);
3. segments the runs into itineraries and merges them into a saddle graph (the plateau visit is one node);
4. repeats the plateau on finite data (n = 2 000, 20 000 samples): the Morse index at the refined plateau
   and the plateau length, against n = ∞.

Outputs in results/soft_committee/: summary.json, overlaps.png, escape.png, finite.png, graph.png,
graph.graphml, graph.json.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import flowtools as ft  # noqa: E402
from flowtools import io  # noqa: E402
from flowtools.landscape import find_critical_point, hessian_spectrum, signature  # noqa: E402
from flowtools.plotting import save_figure  # noqa: E402


def settings(quick: bool, seed: int) -> dict:
    return dict(
        quick=quick, seed=seed, d=10, activation="scaled_erf", loss="half_mse",
        Ks=[2] if quick else [2, 3],
        init_scales=[1e-3, 3e-4, 1e-4] if quick else [1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6],
        seeds_per_scale=1 if quick else 3,
        t1=1e4, gtol=1e-10, n_save=400, t_ref=30.0,
        finite_n=[2000] if quick else [2000, 20000],
        finite_flow=not quick,
        rtol_zero=1e-7,
    )


# ----------------------------------------------------------------------------------------- the setup
def committee(K: int, d: int, seed: int):
    """(model, teacher θ, orthonormal teacher vectors (K, d)) with the second layer at 1."""
    model, theta_t = ft.problems.soft_committee_teacher(K, d, seed=seed)
    return model, theta_t, theta_t[:K * d].reshape(K, d)


def overlaps(W, Wt):
    """Q_ik = w_i·w_k and R_in = w_i·w*_n for W of shape (..., K, d)."""
    return W @ np.swapaxes(W, -1, -2), W @ Wt.T


# ------------------------------------------------------------------------------------ the derivation
def plateau_prediction(K: int) -> dict:
    """The symmetric fixed point of the overlap equations (docs/studies/soft_committee.md)."""
    r = 1.0 / math.sqrt(K * (2 * K - 1))
    return dict(K=K, r=r, Q=1.0 / (2 * K - 1), C=1.0 / (2 * K - 1),
                R=K / 3.0 - 2.0 * K * K / math.pi * math.asin(1.0 / (2 * K)))


def overlap_risk(W, Wt):
    """R = E(Σ g(λ_i) − Σ g(ν_n))², written by hand from E[g(u)g(v)] = (2/π) arcsin(C₁₂/√((1+C₁₁)(1+C₂₂)))
    (Saad & Solla 1995, Eq. 4 up to their factor ½): independent of flowtools.gaussian."""
    Q, Rm, T = W @ W.T, W @ Wt.T, Wt @ Wt.T

    def term(A, da, db):
        return jnp.sum(jnp.arcsin(A / jnp.sqrt(jnp.outer(1.0 + da, 1.0 + db))))

    q, t = jnp.diagonal(Q), jnp.diagonal(T)
    return 2.0 / jnp.pi * (term(Q, q, q) + term(T, t, t) - 2.0 * term(Rm, q, t))


def check_plateau(problem, Wt, K, cfg) -> dict:
    pred = plateau_prediction(K)
    d = Wt.shape[1]
    W = np.tile(pred["r"] * Wt.sum(axis=0), (K, 1))
    theta = W.reshape(-1)
    spec = hessian_spectrum(problem, theta, rtol_zero=cfg["rtol_zero"])
    H_hand = np.asarray(jax.hessian(lambda w: 0.5 * overlap_risk(w.reshape(K, d), jnp.asarray(Wt)))(
        jnp.asarray(theta)))
    ev_hand = np.linalg.eigvalsh(H_hand)
    H = problem.hessian(theta)
    tol = cfg["rtol_zero"] * np.abs(ev_hand).max()
    sig_hand = signature(ev_hand, cfg["rtol_zero"])
    neg = spec.eigenvalues[spec.eigenvalues < 0]
    ev_full, vec_full = np.linalg.eigh(0.5 * (H_hand + H_hand.T))
    unstable = vec_full[:, ev_full < -tol]
    return dict(prediction=pred, theta=theta.tolist(), R=problem.gen_error(theta),
                R_error=abs(problem.gen_error(theta) - pred["R"]), grad_norm=problem.grad_norm(theta),
                signature=list(spec.signature), signature_hand=list(sig_hand),
                hessian_max_abs_difference=float(np.abs(H - H_hand).max()),
                eigenvalues=spec.eigenvalues.tolist(), mu=float(neg.min()) if neg.size else None,
                unstable_vectors=unstable.T.tolist(),
                n_free=problem.n_params)


# ---------------------------------------------------------------------------------------- the runs
def save_grid(cfg):
    """A log grid with the reference time t_ref (on the plateau) among the saved times."""
    return np.unique(np.concatenate([np.geomspace(1e-3, cfg["t1"], cfg["n_save"]), [cfg["t_ref"]]]))


def run_flows(problem, Wt, K, cfg):
    d = Wt.shape[1]
    runs = []
    for scale in cfg["init_scales"]:
        for s in range(cfg["seeds_per_scale"]):
            rng = np.random.default_rng([cfg["seed"], K, s, int(round(-math.log10(scale)))])
            theta0 = scale * rng.standard_normal(K * d) / math.sqrt(d)
            tr = ft.gradient_flow(problem, theta0, cfg["t1"], gtol=cfg["gtol"], save_ts=save_grid(cfg))
            runs.append(dict(scale=scale, seed=s, theta0=theta0, trajectory=tr))
    return runs


def plateau_of(tr, pred_R):
    """The plateau of one run: the stretch where R stays within 5 % of the plateau error `pred_R`; its
    median error, the deepest point, and the exit time: where R crosses ½ pred_R afterwards
    (interpolated linearly in log R between saved states)."""
    R = np.asarray(tr.gen_error)
    on = np.flatnonzero(np.abs(R - pred_R) < 0.05 * pred_R)
    if on.size == 0:
        return None
    after = np.flatnonzero((np.arange(R.size) > on[-1]) & (R < 0.5 * pred_R))
    t_exit = None
    if after.size:
        j = after[0]
        t0, t1, r0, r1 = tr.t[j - 1], tr.t[j], math.log(R[j - 1]), math.log(max(R[j], 1e-300))
        t_exit = float(t0 + (t1 - t0) * (math.log(0.5 * pred_R) - r0) / (r1 - r0))
    mid = on[np.argmin(np.abs(R[on] - pred_R))]
    return dict(t_enter=float(tr.t[on[0]]), t_exit=t_exit, t_mid=float(tr.t[mid]), R=float(np.median(R[on])),
                index=int(mid))


def summarise_runs(runs, Wt, K, pred, cfg_t_ref, check):
    rows = []
    for r in runs:
        tr = r["trajectory"]
        pl = plateau_of(tr, pred["R"])
        row = dict(scale=r["scale"], seed=r["seed"], status=tr.status.value, final_R=float(tr.gen_error[-1]),
                   plateau=pl)
        if pl is not None:
            W = np.asarray(tr.theta[pl["index"]]).reshape(K, -1)
            Q, Rm = overlaps(W, Wt)
            # The symmetry-breaking amplitude at t_ref (on the plateau): the component of θ − θ_plateau in
            # the unstable eigenspace (the spread of the R_in would mix in the flat directions).
            i_ref = int(np.argmin(np.abs(tr.t - cfg_t_ref)))
            V = np.asarray(check["unstable_vectors"])
            amp = float(np.linalg.norm(V @ (np.asarray(tr.theta[i_ref]) - np.asarray(check["theta"]))))
            row.update(plateau_Q=Q.tolist(), plateau_R_in=Rm.tolist(), asymmetry=amp, t_ref=float(tr.t[i_ref]))
        rows.append(row)
    return rows


def escape_fit(rows, mu):
    """Two fits of the plateau exit. (a) t_exit against log(1/δ), δ the amplitude of θ − θ_plateau in the
    unstable eigenspace at the reference time t_ref on the plateau: the linearised flow, δ(t) ∝ e^{|μ| t}, predicts slope 1/|μ|.
    (b) t_exit against log(1/init scale), which has the same slope while δ ∝ scale."""
    ok = [r for r in rows if r["plateau"] and r["plateau"]["t_exit"] is not None]
    if len({r["scale"] for r in ok}) < 2:
        return None
    x = np.log(1.0 / np.array([r["asymmetry"] for r in ok]))
    y = np.array([r["plateau"]["t_exit"] for r in ok])
    slope, intercept = np.polyfit(x, y, 1)
    xs = np.log(1.0 / np.array([r["scale"] for r in ok]))
    slope_s, intercept_s = np.polyfit(xs, [r["plateau"]["t_exit"] for r in ok], 1)
    return dict(slope=float(slope), intercept=float(intercept), slope_predicted=1.0 / abs(mu),
                ratio=float(slope * abs(mu)), points=len(ok),
                scale_slope=float(slope_s), scale_intercept=float(intercept_s), scale_ratio=float(slope_s * abs(mu)))


# ----------------------------------------------------------------------------------------- the graph
def build_graph(problem, runs, pred, cfg):
    graph, by_run = ft.saddle_graph(problem, {f"scale={r['scale']:g},seed={r['seed']}": r["trajectory"]
                                              for r in runs})
    itins = [dict(run=i, scale=r["scale"], nodes=it.nodes, kinds=it.kinds, terminal=it.terminal,
                  visits=it.to_list()) for i, (r, it) in enumerate(zip(runs, by_run.values()))]
    # The plateau node: the visited node whose R is the predicted plateau error.
    plateau_nodes = sorted({n for n, a in graph.graph.nodes(data=True)
                            if a.get("gen_error") is not None and abs(a["gen_error"] - pred["R"]) < 1e-3 * pred["R"]})
    return graph, itins, plateau_nodes


# ------------------------------------------------------------------------------------- finite data
def finite_data(model, theta_t, Wt, K, plateau_theta, theta0, cfg, t_exit_pop):
    rows = []
    for n in cfg["finite_n"]:
        p = ft.problems.soft_committee(K, model.d_in, seed=cfg["seed"], n=n, data_seed=cfg["seed"] + 1)
        cp = find_critical_point(p, plateau_theta)
        row = dict(n=n, success=bool(cp.success), kind=cp.kind, signature=list(cp.signature),
                   morse_index=int(cp.signature[0]), grad_norm=float(cp.grad_norm),
                   R_at_critical_point=p.gen_error(cp.theta), distance=float(np.linalg.norm(cp.theta - plateau_theta)))
        if cfg["finite_flow"]:
            tr = ft.gradient_flow(p, theta0, cfg["t1"], gtol=cfg["gtol"], save_ts=save_grid(cfg))
            R = np.asarray(tr.gen_error)
            pl = plateau_of(tr, p.gen_error(cp.theta))
            row.update(t_exit=pl["t_exit"] if pl else None,
                       t_exit_population=t_exit_pop, curve=dict(t=tr.t.tolist(), R=R.tolist()))
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------ figures
def overlaps_figure(runs, Wt, K, pred, path):
    r = min(runs, key=lambda r: abs(math.log10(r["scale"]) + 3))
    tr = r["trajectory"]
    W = np.asarray(tr.theta).reshape(len(tr.t), K, -1)
    Q, Rm = overlaps(W, Wt)
    t = np.maximum(tr.t, tr.t[1] * 0.5)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].loglog(t, tr.gen_error)
    axes[0].axhline(pred["R"], color="k", ls="--", lw=0.8, label=f"derived plateau R = {pred['R']:.5f}")
    axes[0].set_xlabel("t")
    axes[0].set_ylabel("R(θ(t)) (population)")
    axes[0].legend(fontsize=8)
    for i in range(K):
        for k in range(i, K):
            axes[1].semilogx(t, Q[:, i, k], label=f"Q{i + 1}{k + 1}")
        for n in range(K):
            axes[2].semilogx(t, Rm[:, i, n], label=f"R{i + 1}{n + 1}")
    axes[1].axhline(pred["Q"], color="k", ls="--", lw=0.8, label="derived Q = C = 1/(2K−1)")
    axes[2].axhline(pred["r"], color="k", ls="--", lw=0.8, label="derived r = 1/√(K(2K−1))")
    for ax, name in ((axes[1], "student–student overlaps"), (axes[2], "student–teacher overlaps")):
        ax.set_xlabel("t")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"soft committee machine K = M = {K}, init scale {r['scale']:g}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def escape_figure(rows, fit, path):
    ok = [r for r in rows if r["plateau"] and r["plateau"]["t_exit"]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    x = np.array([r["asymmetry"] for r in ok])
    ax.semilogx(x, [r["plateau"]["t_exit"] for r in ok], "o", mfc="none", label="flow")
    if fit:
        xx = np.geomspace(x.min(), x.max(), 20)
        ax.semilogx(xx, fit["intercept"] + fit["slope"] * np.log(1 / xx), "C1-",
                    label=f"fit slope {fit['slope']:.4g} (1/|μ| = {fit['slope_predicted']:.4g})")
    ax.set_xlabel("amplitude δ in the unstable eigenspace at t_ref = 30 (on the plateau)")
    ax.set_ylabel("plateau exit time (R = R*/2)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.semilogx([r["scale"] for r in ok], [r["plateau"]["t_exit"] for r in ok], "o", mfc="none")
    ax.set_xlabel("init scale")
    ax.set_ylabel("plateau exit time")
    fig.tight_layout()
    save_figure(fig, path)


def finite_figure(finite, pop_tr, pred, path):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.loglog(np.maximum(pop_tr.t, 1e-3), pop_tr.gen_error, label="n = ∞ (population)")
    for row in finite:
        if "curve" in row:
            ax.loglog(np.maximum(row["curve"]["t"], 1e-3), row["curve"]["R"],
                      label=f"n = {row['n']} (Morse index {row['morse_index']})")
    ax.axhline(pred["R"], color="k", ls="--", lw=0.8)
    ax.set_xlabel("t")
    ax.set_ylabel("R (population error)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


# --------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="K = 2, three runs, n = 2000 only")
    ap.add_argument("--out", default="results/soft_committee", help="output folder")
    ap.add_argument("--seed", type=int, default=0, help="seed of every random choice in the study")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = settings(args.quick, args.seed)
    t_start = time.perf_counter()
    timings, by_K = {}, {}
    for K in cfg["Ks"]:
        model, theta_t, Wt = committee(K, cfg["d"], cfg["seed"])
        problem = ft.problems.soft_committee(K, cfg["d"], seed=cfg["seed"])  # the state is W (K·d)
        pred = plateau_prediction(K)
        t = time.perf_counter()
        check = check_plateau(problem, Wt, K, cfg)
        timings[f"K={K} check_s"] = time.perf_counter() - t
        t = time.perf_counter()
        runs = run_flows(problem, Wt, K, cfg)
        rows = summarise_runs(runs, Wt, K, pred, cfg["t_ref"], check)
        fit = escape_fit(rows, check["mu"]) if check["mu"] is not None else None
        timings[f"K={K} flows_s"] = time.perf_counter() - t
        entry = dict(check=check, runs=rows, escape_fit=fit)
        if K == 2:
            t = time.perf_counter()
            graph, itins, plateau_nodes = build_graph(problem, runs, pred, cfg)
            timings["graph_s"] = time.perf_counter() - t
            graph.to_graphml(out / "graph.graphml")
            graph.to_json(out / "graph.json")
            fig, ax = plt.subplots(figsize=(10, 5))
            graph.draw(ax=ax, title=f"soft committee K = M = 2: {len(graph)} nodes, {graph.n_trajectories} runs")
            save_figure(fig, out / "graph.png")
            entry["graph"] = dict(n_nodes=len(graph), plateau_nodes=plateau_nodes,
                                  nodes=graph.summary()["nodes"] if hasattr(graph.summary(), "__getitem__")
                                  else None, itineraries=itins)
            t = time.perf_counter()
            ref = min(runs, key=lambda r: abs(math.log10(r["scale"]) + 3))
            t_exit = next((r["plateau"]["t_exit"] for r in rows
                           if r["scale"] == ref["scale"] and r["seed"] == ref["seed"] and r["plateau"]), None)
            entry["finite"] = finite_data(model, theta_t, Wt, K, np.asarray(check["theta"]), ref["theta0"], cfg,
                                          t_exit)
            timings["finite_s"] = time.perf_counter() - t
            overlaps_figure(runs, Wt, K, pred, out / "overlaps.png")
            escape_figure(rows, fit, out / "escape.png")
            finite_figure(entry["finite"], ref["trajectory"], pred, out / "finite.png")
        by_K[str(K)] = entry
    summary = dict(study="soft_committee", settings=cfg, results=by_K, timings=timings,
                   wall_time_s=time.perf_counter() - t_start,
                   figures=["overlaps.png", "escape.png", "finite.png", "graph.png"])
    io.write_json(out / "summary.json", summary)
    c = by_K["2"]["check"]
    print(f"soft_committee K=2: plateau R {c['R']:.8f} (derived {c['prediction']['R']:.8f}), signature "
          f"{c['signature']} (hand-written Hessian {c['signature_hand']}), μ = {c['mu']:.4g}; escape fit "
          f"{by_K['2']['escape_fit']}; finite n: {[(f['n'], f['morse_index']) for f in by_K['2']['finite']]}; "
          f"{summary['wall_time_s']:.1f} s")
    return summary


if __name__ == "__main__":
    main()
