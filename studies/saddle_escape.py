"""Saddle escape in deep nonlinear networks: escape time vs the bottleneck scale ε.

The law tested is τ★ = Θ(ε^{−(r−2)}) of "A Theory of Saddle Escape in Deep Nonlinear Networks" (preprint,
2026), for He-normal initializations with r bottleneck layers rescaled by ε.

Setting. Teacher–student regression with d_in = d_out = 4: x ~ N(0, I_4), y = A x with A = Q diag(2, 1,
0.5, 0.25) Rᵀ (Q, R random orthogonal, seeded), n = 128, no noise, half-MSE loss. Student: MLP of depth
L (L weight layers) and width 6, no biases, He-normal init with the last r layers multiplied by ε
(`flowtools.escape.bottleneck_init`). Zeroing those r layers gives the saddle (a critical set for
σ(0) = 0 and r ≥ 2) at which the network function is 0.

Escape time. τ is the time at which the gradient flow leaves the function-space ball of radius
ρ·RMS(y), ρ = 0.5, around that saddle: the first time the RMS network output on the training inputs
reaches half the RMS target (`flowtools.escape.escape_flow`; exit located by an event root find).

What it measures:
1. r sweep (L fixed) and L sweep (r fixed) for tanh: τ over ε ∈ [1e-3, 1e-1], fitted τ ∝ ε^{−p} with a
   bootstrap 95% CI, compared with p = r − 2; for r = 2 also τ = a + b log(1/ε), with b compared with
   1/λ_u from the Hessian at the saddle.
2. Activation classes (φ_σ(z) = z σ'(z) − σ(z) at 0, `flowtools.universality.activation_class`) and the
   escape law per class at r = 2, 3.
3. The norm-imbalance identity (★) along every measured trajectory: relative rate residual at each saved
   state, and the integrated form.

Writes results/saddle_escape/{summary.json, escape_vs_eps_r.png, escape_vs_eps_L.png,
escape_by_class.png, identity_residual.png}. `--quick` is a reduced version for tests (≤ 60 s).
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import platform
import time

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import flowtools as ft  # noqa: E402
from flowtools import escape as E  # noqa: E402
from flowtools import universality as U  # noqa: E402
from flowtools.landscape.symmetry import output_scale  # noqa: E402

SCHEMA = "flowtools.saddle_escape/1"

FULL = dict(
    eps=[float(e) for e in np.geomspace(1e-3, 1e-1, 7)],
    seeds=[0, 1, 2],
    r_sweep=dict(L=5, activation="tanh", r=[2, 3, 4, 5]),
    L_sweep=dict(r=3, activation="tanh", L=[3, 4, 5, 6]),
    class_sweep=dict(L=5, r=[2, 3], activations=["linear", "gelu", "tanh", "softplus", "sigmoid"]),
    class_seeds=[0, 1],
    bias_check=True,
    classify="all",
)
QUICK = dict(
    eps=[1e-3, 1e-2, 1e-1],
    seeds=[0],
    r_sweep=dict(L=4, activation="tanh", r=[2, 3, 4]),
    L_sweep=dict(r=3, activation="tanh", L=[4]),  # one depth only: each depth is another compile
    class_sweep=dict(L=4, r=[2, 3], activations=["linear", "tanh", "softplus"]),
    class_seeds=[0],
    bias_check=False,
    classify="used",
)
TASK = dict(d=4, width=6, n=128, singular_values=[2.0, 1.0, 0.5, 0.25], teacher_seed=0, data_seed=1,
            loss="half_mse", radius_fraction=0.5, t1=1e12, n_save=250, t_first=1e-2, rtol=1e-8,
            atol=1e-12, solver="tsit5", max_steps=200_000, n_boot=2000)


# ------------------------------------------------------------------------------------- setting
def make_data(task) -> ft.Dataset:
    rng = np.random.default_rng(task["teacher_seed"])
    d = task["d"]
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    R, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = Q @ np.diag(task["singular_values"]) @ R.T
    x = np.random.default_rng(task["data_seed"]).standard_normal((task["n"], d))
    # No Teacher object attached: the population error is not needed here and would be evaluated at
    # every saved state (Monte Carlo for d_in = 4).
    return ft.Dataset(x, x @ A.T, name=f"linear teacher d={d}, n={task['n']}")


def make_problem(task, data, L, activation, bias=False):
    widths = (task["d"],) + (task["width"],) * (L - 1) + (task["d"],)
    return ft.Problem(ft.MLP(widths, activation, bias=bias), data, task["loss"])


# ------------------------------------------------------------------------------------- runs
_BASE: dict = {}


def initial_point(model, seed, eps, r):
    """`bottleneck_init(model, seed, eps, r)`, drawing the He-normal direction once per (model, seed, r)
    and rescaling the bottleneck layers by ε (model.init multiplies the same normal draws by ε)."""
    key = (model, seed, r)
    if key not in _BASE:
        _BASE[key] = np.asarray(E.bottleneck_init(model, seed, 1.0, r))
    theta = _BASE[key].copy()
    for l in E.bottleneck_layers(model, r):
        sl = model.layout[l - 1]
        theta[sl.W[0]:sl.W[1]] *= eps
    return theta


def measure(problem, r, eps, seed, task, save_ts=None):
    model = problem.model
    theta0 = initial_point(model, seed, eps, r)
    center = E.bottleneck_saddle(model, theta0, r)
    radius = task["radius_fraction"] * output_scale(problem.y)
    run = E.escape_flow(problem, theta0, center, radius, metric="function", t1=task["t1"],
                        solver=task["solver"], rtol=task["rtol"], atol=task["atol"],
                        n_save=task["n_save"], t_first=task["t_first"], save_ts=save_ts,
                        max_steps=task["max_steps"])
    tr, esc = run.trajectory, run.escape
    row = dict(L=model.n_layers, r=r, activation=model.activation.name, eps=eps, seed=seed,
               escape_time=esc.time, escape_status=esc.status, lower_bound=esc.lower_bound,
               run_status=tr.status.value, message=tr.message, steps=tr.stats["steps"],
               wall_time=tr.stats["wall_time"], compile_time=tr.stats["compile_time"],
               loss_start=float(tr.loss[0]), loss_at_stop=float(tr.loss[-1]))
    return row, tr


def dense_grid(t_out, task):
    """n_save save times concentrated at the end of [0, t_out]: half log-spaced from t_first, half
    log-spaced in the time left before t_out (the escape itself takes a short time at the end of a
    long plateau). Same length as the default grid, so the compiled solve is reused."""
    n = task["n_save"]
    a = np.geomspace(task["t_first"], t_out / 2, n // 2)
    b = t_out - np.geomspace(0.499 * t_out, 1e-9 * t_out, n - n // 2)
    return np.concatenate([a, b])


def fit_group(rows, r, n_boot, seed):
    """Fits of τ against 1/ε over the escaped runs of one setting.

    Headline: τ = A_s (1/ε)^p with one prefactor A_s per initialization seed and a shared exponent p
    (escape times from different He-normal directions differ by a constant factor); 95% bootstrap CI
    over points. Also the pooled one-line fit, the fit restricted to ε ≤ 1e-2, and for r = 2 the log law
    τ = a_s + b log(1/ε)."""
    ok = [q for q in rows if q["escape_status"] == "escaped"]
    out = dict(n_runs=len(rows), n_escaped=len(ok), r_minus_2=r - 2)
    if len({q["eps"] for q in ok}) < 2 or len(ok) < 3:
        out.update(exponent=None, ci=[None, None], note="fewer than 3 escaped runs at 2 distinct ε")
        return out
    x = np.array([1 / q["eps"] for q in ok])
    y = np.array([q["escape_time"] for q in ok])
    g = np.array([q["seed"] for q in ok])
    per_seed = len(np.unique(g)) > 1
    kw = dict(groups=g, intercepts="per_group") if per_seed else {}
    fit = E.fit_power_law(x, y, n_boot, seed, **kw)
    out.update(exponent=fit.exponent, ci=list(fit.ci), r2=fit.r2, intercept=fit.intercept,
               intercepts=fit.intercepts, ci_contains_r_minus_2=bool(fit.ci[0] <= r - 2 <= fit.ci[1]),
               deviation=fit.exponent - (r - 2))
    pooled = E.fit_power_law(x, y, n_boot, seed)
    out.update(exponent_pooled=pooled.exponent, ci_pooled=list(pooled.ci), r2_pooled=pooled.r2)
    small = x >= 99.0  # ε ≤ 1e-2: the asymptotic end of the range
    if len(np.unique(x[small])) >= 2 and small.sum() >= 3:
        kws = dict(groups=g[small], intercepts="per_group") if per_seed else {}
        fs = E.fit_power_law(x[small], y[small], n_boot, seed, **kws)
        out.update(exponent_small_eps=fs.exponent, ci_small_eps=list(fs.ci))
    if r == 2:
        fl = E.fit_log_law(x, y, n_boot, seed, **kw)
        out.update(log_slope=fl.slope, log_slope_ci=list(fl.ci), log_r2=fl.r2, log_intercept=fl.intercept)
    return out


def lambda_u_at_saddle(problem, r, seed):
    """Largest unstable eigenvalue of −∇²L at the bottleneck saddle reached from seed's direction."""
    theta0 = E.bottleneck_init(problem.model, seed, 1.0, r)
    center = E.bottleneck_saddle(problem.model, theta0, r)
    ev = np.linalg.eigvalsh(problem.hessian(center))
    return float(-ev[0]), float(np.linalg.norm(problem.grad(center)))


# ----------------------------------------------------------------------------------- figures
def save_figure(fig, path):
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def fitted_lines(sel, f, ax, color, style, law="power"):
    """Draw the fit of one setting: per seed, the shared slope through that seed's centroid (the
    per-seed prefactors of the within-seed regression)."""
    for s in sorted({q["seed"] for q in sel}):
        e = np.array([q["eps"] for q in sel if q["seed"] == s])
        tau = np.array([q["escape_time"] for q in sel if q["seed"] == s])
        eg = np.geomspace(e.min(), e.max(), 50)
        u, ug = np.log(1 / e), np.log(1 / eg)
        if law == "power":
            a = np.mean(np.log(tau)) - f["exponent"] * np.mean(u)
            ax.loglog(eg, np.exp(a + f["exponent"] * ug), style, color=color, lw=1)
        else:
            a = np.mean(tau) - f["log_slope"] * np.mean(u)
            ax.loglog(eg, a + f["log_slope"] * ug, style, color=color, lw=1.2)


def plot_sweep(rows, fits, key, values, title, path):
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(values)))
    for v, col in zip(values, colors):
        sel = [q for q in rows if q[key] == v and q["escape_status"] == "escaped"]
        if not sel:
            continue
        e = np.array([q["eps"] for q in sel])
        tau = np.array([q["escape_time"] for q in sel])
        f = fits[v]
        lab = f"{key}={v}"
        if f.get("exponent") is not None:
            lab += f": p={f['exponent']:.3f} [{f['ci'][0]:.3f}, {f['ci'][1]:.3f}] (r−2={f['r_minus_2']})"
        if f.get("log_slope") is not None:
            lab += f"; log law b={f['log_slope']:.3f} (dotted)"
        ax.loglog(e, tau, "o", color=col, ms=4, alpha=0.8, label=lab)
        if f.get("log_slope") is not None:
            fitted_lines(sel, f, ax, col, ":", law="log")
        elif f.get("exponent") is not None:
            fitted_lines(sel, f, ax, col, "-")
    ax.set_xlabel("bottleneck scale ε")
    ax.set_ylabel("escape time τ")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    save_figure(fig, path)


def plot_classes(rows, fits, classes, path):
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw=dict(width_ratios=[1, 1.2]))
    z = np.linspace(-3, 3, 301)
    colors = dict(zip(classes, plt.cm.tab10(np.arange(len(classes)))))
    for name, c in classes.items():
        ax0.plot(z, np.asarray(U.phi_sigma(name)(jnp.asarray(z))), color=colors[name],
                 label=f"{name} ({c['kind']})")
    ax0.set_xlabel("z")
    ax0.set_ylabel("φ_σ(z) = z σ'(z) − σ(z)")
    ax0.set_ylim(-1.5, 1.5)
    ax0.axhline(0, color="k", lw=0.5)
    ax0.legend(fontsize=7)
    ax0.set_title("activation classes by the leading order of φ_σ at 0", fontsize=10)
    for (act, r), f in fits.items():
        sel = [q for q in rows if q["activation"] == act and q["r"] == r and q["escape_status"] == "escaped"]
        if not sel:
            continue
        e = np.array([q["eps"] for q in sel])
        tau = np.array([q["escape_time"] for q in sel])
        mk = "o" if r == 2 else "s"
        lab = f"{act} ({classes[act]['kind']}), r={r}"
        if f.get("exponent") is not None:
            lab += f": p={f['exponent']:.2f} [{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]"
        ax1.loglog(e, tau, mk, color=colors[act], ms=4, alpha=0.8, label=lab)
        if f.get("exponent") is not None:
            fitted_lines(sel, f, ax1, colors[act], "-" if r == 3 else "--")
    ax1.set_xlabel("bottleneck scale ε")
    ax1.set_ylabel("escape time τ")
    ax1.set_title("escape time per class (r = 2 circles/dashed, r = 3 squares/solid)", fontsize=9)
    ax1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)


def plot_identity(examples, path):
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, chk in examples:
        t = chk.t[1:]
        ax0.semilogx(t, np.max(chk.rel_residual[1:], axis=1), lw=1, label=label)
        l = int(np.argmax(np.abs(chk.delta_imbalance[-1])))  # the layer whose imbalance moved most
        ax1.semilogx(t, chk.delta_imbalance[1:, l], "-", lw=1.5, label=f"{label}: ΔI_{l + 1}")
        ax1.semilogx(t, chk.integrated_rhs[1:, l], "k:", lw=1)
    ax0.set_yscale("log")
    ax0.set_xlabel("t")
    ax0.set_ylabel("relative residual of (★), max over layers")
    ax0.axhline(1e-8, color="r", lw=0.8, ls="--")
    ax0.legend(fontsize=7)
    ax1.set_xlabel("t")
    ax1.set_ylabel("ΔI_l(t) (solid) and ∫ rhs dt (dotted)")
    ax1.set_title("layer l whose imbalance moved most", fontsize=9)
    ax1.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


# ------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced sweep for tests (≤ 60 s)")
    ap.add_argument("--out", default="results/saddle_escape")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = QUICK if args.quick else FULL
    task = dict(TASK)
    t_start = time.perf_counter()
    data = make_data(task)

    # planned runs: (sweep, L, activation, r, eps, seed)
    plan = []
    rs, Ls, cs = cfg["r_sweep"], cfg["L_sweep"], cfg["class_sweep"]
    for r in rs["r"]:
        plan += [("r", rs["L"], rs["activation"], r, e, s) for e in cfg["eps"] for s in cfg["seeds"]]
    for L in Ls["L"]:
        plan += [("L", L, Ls["activation"], Ls["r"], e, s) for e in cfg["eps"] for s in cfg["seeds"]]
    for act in cs["activations"]:
        for r in cs["r"]:
            plan += [("class", cs["L"], act, r, e, s) for e in cfg["eps"] for s in cfg["class_seeds"]]
    # identical settings are measured once and shared between sweeps
    unique = list(dict.fromkeys((L, a, r, e, s) for _, L, a, r, e, s in plan))

    problems, results, trajs = {}, {}, {}
    hide = args.no_progress or os.environ.get("FLOWTOOLS_PROGRESS") == "0"
    with tqdm(total=len(unique), desc="saddle escape runs", unit="run", disable=hide) as bar:
        for L, act, r, eps, seed in unique:
            if (L, act) not in problems:
                problems[(L, act)] = make_problem(task, data, L, act)
            row, tr = measure(problems[(L, act)], r, eps, seed, task)
            results[(L, act, r, eps, seed)] = row
            trajs[(L, act, r, eps, seed)] = tr
            bar.set_postfix_str(f"L={L} {act} r={r} ε={eps:.1e} τ={row['escape_time']:.4g}")
            bar.update(1)

    def rows_of(sweep):
        return [dict(results[(L, a, r, e, s)], sweep=sweep) for sw, L, a, r, e, s in plan if sw == sweep]

    rows_r, rows_L, rows_c = rows_of("r"), rows_of("L"), rows_of("class")
    fits_r = {r: fit_group([q for q in rows_r if q["r"] == r], r, task["n_boot"], args.seed) for r in rs["r"]}
    fits_L = {L: fit_group([q for q in rows_L if q["L"] == L], Ls["r"], task["n_boot"], args.seed)
              for L in Ls["L"]}
    fits_c = {(a, r): fit_group([q for q in rows_c if q["activation"] == a and q["r"] == r], r,
                                task["n_boot"], args.seed) for a in cs["activations"] for r in cs["r"]}

    used = {rs["activation"], Ls["activation"], *cs["activations"]}
    names = list(ft.ACTIVATIONS) if cfg["classify"] == "all" else [a for a in ft.ACTIVATIONS if a in used]
    classes = {name: U.activation_class(name).to_dict() for name in names}

    table = []
    for r, f in fits_r.items():
        table.append(dict(sweep="r", r=r, L=rs["L"], activation=rs["activation"],
                          activation_class=classes[rs["activation"]]["kind"], **f))
    for L, f in fits_L.items():
        table.append(dict(sweep="L", r=Ls["r"], L=L, activation=Ls["activation"],
                          activation_class=classes[Ls["activation"]]["kind"], **f))
    for (a, r), f in fits_c.items():
        table.append(dict(sweep="class", r=r, L=cs["L"], activation=a,
                          activation_class=classes[a]["kind"], **f))

    # r = 2: log-law slope per seed against 1/λ_u at that seed's saddle
    linearization = []
    p2 = problems[(rs["L"], rs["activation"])] if 2 in rs["r"] else None
    if p2 is not None:
        for s in cfg["seeds"]:
            lam, gnorm = lambda_u_at_saddle(p2, 2, s)
            sel = [q for q in rows_r if q["r"] == 2 and q["seed"] == s and q["escape_status"] == "escaped"]
            entry = dict(seed=s, lambda_u=lam, inverse_lambda_u=1 / lam, grad_norm_at_saddle=gnorm)
            if len(sel) >= 3:
                fl = E.fit_log_law([1 / q["eps"] for q in sel], [q["escape_time"] for q in sel],
                                   task["n_boot"], args.seed)
                entry.update(log_slope=fl.slope, log_slope_ci=list(fl.ci),
                             slope_times_lambda_u=fl.slope * lam)
            linearization.append(entry)

    # identity (★): the rate form at every saved state of every measured trajectory; the integrated
    # form on re-runs saved densely up to the exit (one per (L, σ, r): smallest ε, first seed)
    checks, dense_checks, per_model, examples = [], [], {}, []
    for key, tr in trajs.items():
        L, act, r, eps, seed = key
        chk = U.imbalance_residual(problems[(L, act)], tr)
        checks.append(chk)
        pm = per_model.setdefault(f"L={L} {act}", dict(n_trajectories=0, n_states=0, max_rel_residual=0.0,
                                                      integrated_max_rel_error=None))
        pm["n_trajectories"] += 1
        pm["n_states"] += int(chk.t.size)
        pm["max_rel_residual"] = max(pm["max_rel_residual"], chk.max_rel_residual)
    configs = sorted({(L, a, r) for L, a, r, _, _ in trajs})
    for L, act, r in configs:
        eps, seed = min(cfg["eps"]), min(s for (L2, a2, r2, e, s) in trajs if (L2, a2, r2) == (L, act, r))
        row = results[(L, act, r, eps, seed)]
        if row["escape_status"] != "escaped":
            continue
        _, tr2 = measure(problems[(L, act)], r, eps, seed, task, save_ts=dense_grid(row["escape_time"], task))
        chk = U.imbalance_residual(problems[(L, act)], tr2)
        checks.append(chk)
        dense_checks.append(chk)
        pm = per_model[f"L={L} {act}"]
        pm["n_trajectories"] += 1
        pm["n_states"] += int(chk.t.size)
        pm["max_rel_residual"] = max(pm["max_rel_residual"], chk.max_rel_residual)
        pm["integrated_max_rel_error"] = max(pm["integrated_max_rel_error"] or 0.0, chk.integrated_rel_error)
        if r == 3 and L == cs["L"]:
            examples.append((f"{act} r=3 ε={eps:g}", chk))
    if cfg["bias_check"]:  # one run with biases: the identity with the ‖b_l‖² term
        pb = make_problem(task, data, cs["L"], "gelu", bias=True)
        row_b, _ = measure(pb, 2, 1e-2, 0, task)
        _, tr_b = measure(pb, 2, 1e-2, 0, task, save_ts=dense_grid(row_b["escape_time"], task))
        chk_b = U.imbalance_residual(pb, tr_b)
        checks.append(chk_b)
        dense_checks.append(chk_b)
        per_model[f"L={cs['L']} gelu bias=True"] = dict(
            n_trajectories=1, n_states=int(chk_b.t.size), max_rel_residual=chk_b.max_rel_residual,
            integrated_max_rel_error=chk_b.integrated_rel_error)
        examples.append(("gelu with biases r=2 ε=0.01", chk_b))
    identity = dict(
        max_rel_residual=max(c.max_rel_residual for c in checks),
        max_abs_residual=max(c.max_abs_residual for c in checks),
        integrated_max_rel_error=max(c.integrated_rel_error for c in dense_checks),
        integrated_max_abs_error=max(c.integrated_abs_error for c in dense_checks),
        integrated_n_trajectories=len(dense_checks),
        n_trajectories=len(checks), n_states=int(sum(c.t.size for c in checks)),
        per_model=per_model,
        definition=("rate residual |lhs − rhs| / max(|2⟨W_l,Ẇ_l⟩| + |2⟨b_l,ḃ_l⟩| + |2⟨W_{l+1},Ẇ_{l+1}⟩|, "
                    "2 Σ|g φ_σ(h)|) "
                    "at each saved state of every trajectory; integrated (densely saved re-runs only): "
                    "max |ΔI − ∫rhs dt| / ∫ scale dt, Hermite quadrature on the save grid, so it includes "
                    "the ODE solver's and the quadrature's error"),
    )

    # figures
    plot_sweep(rows_r, fits_r, "r", rs["r"],
               f"{rs['activation']}, L={rs['L']}: τ vs ε per r (lines: power-law fits; dotted: log law)",
               out / "escape_vs_eps_r.png")
    plot_sweep(rows_L, fits_L, "L", Ls["L"], f"{Ls['activation']}, r={Ls['r']}: τ vs ε per depth L",
               out / "escape_vs_eps_L.png")
    plot_classes(rows_c, fits_c, {a: classes[a] for a in cs["activations"]}, out / "escape_by_class.png")
    plot_identity(examples, out / "identity_residual.png")

    all_rows = rows_r + rows_L + rows_c
    total = time.perf_counter() - t_start
    summary = dict(
        schema=SCHEMA, study="saddle_escape", quick=bool(args.quick),
        escape_time_definition=(
            f"first time t at which the RMS network output on the training inputs, "
            f"((1/n) Σ_k ‖f(x_k; θ(t))‖²)^(1/2), reaches {task['radius_fraction']} × RMS(y), i.e. the flow "
            "leaves the function-space ball of that radius around the bottleneck saddle (bottleneck layers "
            "zeroed, f ≡ 0); started inside, so t_in = 0; the exit time is located by bisection on the "
            "solver's dense output (diffrax event)"),
        exponent_definition=("p in τ = A_s (1/ε)^p: least squares on (log 1/ε, log τ) over the escaped runs "
                             "with one prefactor A_s per init seed and a shared p (within-seed regression); "
                             "95% percentile bootstrap over points (2000 resamples); predicted p = r − 2. "
                             "exponent_pooled: one common prefactor; exponent_small_eps: ε ≤ 1e-2 only; "
                             "log_slope: b in τ = a_s + b log(1/ε) (r = 2)"),
        settings=dict(task=task, sweeps={k: v for k, v in cfg.items()}, bootstrap_seed=args.seed,
                      init="He-normal (model.init 'he'), last r layers × ε, no biases; init seed = run seed",
                      jax=jax.__version__, python=platform.python_version()),
        seeds=dict(init=sorted(set(cfg["seeds"]) | set(cfg["class_seeds"])), bootstrap=args.seed,
                   teacher=task["teacher_seed"], data=task["data_seed"]),
        table=table,
        r2_linearization=linearization,
        identity=identity,
        activation_classes=classes,
        runs=all_rows,
        failed_runs=[q for q in all_rows if q["escape_status"] != "escaped"],
        timing=dict(total_s=total, runs=len(unique), identity_reruns=len(dense_checks),
                    solve_wall_s=float(sum(q["wall_time"] for q in results.values())),
                    compile_s=float(sum(q["compile_time"] for q in results.values()))),
        figures=["escape_vs_eps_r.png", "escape_vs_eps_L.png", "escape_by_class.png",
                 "identity_residual.png"],
    )
    ft.io.write_json(out / "summary.json", summary)

    print(f"{'sweep':<6}{'r':>3}{'L':>3} {'σ':<9}{'class':<12}{'p':>8}  {'95% CI':<20}{'r−2':>4}  log-law b")
    for q in table:
        p = "—" if q.get("exponent") is None else f"{q['exponent']:.3f}"
        ci = "" if q.get("exponent") is None else f"[{q['ci'][0]:.3f}, {q['ci'][1]:.3f}]"
        b = f"{q['log_slope']:.3f}" if q.get("log_slope") is not None else ""
        print(f"{q['sweep']:<6}{q['r']:>3}{q['L']:>3} {q['activation']:<9}{q['activation_class']:<12}{p:>8}  "
              f"{ci:<20}{q['r_minus_2']:>4}  {b}")
    for e in linearization:
        print(f"r=2 seed {e['seed']}: 1/λ_u = {e['inverse_lambda_u']:.4f}, log-law slope b = "
              f"{e.get('log_slope', math.nan):.4f}")
    print(f"identity (★): max relative rate residual {identity['max_rel_residual']:.2e} over "
          f"{identity['n_states']} states; integrated max rel error "
          f"{identity['integrated_max_rel_error']:.2e}")
    print(f"wrote {out}/ in {total:.1f} s")
    return summary


if __name__ == "__main__":
    main()
