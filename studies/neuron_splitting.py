"""Study: neuron splitting and the inner Hessian (Li, Ding & Sun, "A Geometric Characterization of
the Stationary Plateau for Two-Layer Neural Networks", arXiv 2606.04327).

Splitting hidden neuron r of a stationary point θ of a narrow two-layer net into m copies with output
weights λ_j v_r (Σ λ_j = 1) gives a stationary point of the wide net. flowtools.splitting predicts its
Morse index from the narrow point's index and the inertia of the inner Hessian H_in(r):

    n_neg(wide) = n_neg(narrow) + (p − 1)·h₋ + q·h₊       (p, q: positive / negative λ_j)

(for a "dead" neuron, v_r = 0, the split instead adds (m − 1)·rank of the coupling ∂²L/∂v_r∂w_r).
This study checks the prediction against the full Hessian of the wide net, for

- σ ∈ {tanh, erf, softplus, gelu}, d_in ∈ {1, 2}, with and without biases (teacher–student data: a seeded
  3-neuron teacher of the same σ, n = 64 Gaussian inputs, no noise, half_mse);
- narrow students with 1 and 2 hidden neurons, whose critical points (minima and saddles of every index)
  are found by `find_critical_points` from many guesses (the saved states of a seeded GD ensemble, which
  pass near saddles and end near minima, plus random points) and kept one per critical set (the
  same-set rule, `flowtools.graph.match_distance`, tolerance 1e-6) and Morse signature;
- every neuron of every narrow point (dead ones included) split into 2 and 3 copies on coefficient grids
  that include negative coefficients and coefficients > 1.

Zero tolerance and tolerance band. An eigenvalue is zero when |μ| ≤ 1e-7·max|μ| (RTOL_ZERO, the toolkit's
default). A sample lies in the *tolerance band* (near a change of sign, where a numerical count cannot be
trusted) when min_j |λ_j| < 0.02 (alive neurons), or H_in has an eigenvalue within a factor 10 of its
zero threshold (margin_inner < 1e-6; H_in is judged on the scale of the narrow Hessian, see
`predict_split`), or the wide or narrow Hessian has an eigenvalue within a factor 10 of its zero
threshold (either side), or the split neuron is nearly dead (1e-10 < max|v_r| < 1e-4). The agreement
table counts both sides of the band separately.

Outputs in results/neuron_splitting/: summary.json (schema in docs/studies/neuron_splitting.md),
samples.json (every sample), table.md, split_lines.png, agreement.png. `--quick` covers every σ with
one (d_in, bias) each and narrow width 1 (< 60 s); the full run takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from collections import defaultdict

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import flowtools as ft  # noqa: E402
from flowtools import io, splitting  # noqa: E402
from flowtools.graph import match_distance  # noqa: E402
from flowtools.landscape import DEFAULT_RTOL_ZERO, find_critical_points, function_fingerprint, signature  # noqa: E402
from flowtools.plotting import save_figure  # noqa: E402

RTOL_ZERO = DEFAULT_RTOL_ZERO  # zero eigenvalue: |μ| ≤ RTOL_ZERO · max|μ|
SAME_TOL = 1e-6  # the same-set rule's tolerance for deduplicating narrow points
BAND = dict(coefficient=0.02, inner=1e-6, eigenvalue_factor=10.0, dead_atol=1e-10, alive_atol=1e-4)
ACTIVATIONS = ("tanh", "erf", "softplus", "gelu")

TWO_COPIES = (-1.0, -0.5, -0.2, 0.1, 0.3, 0.5, 0.7, 0.9, 1.2, 1.5, 2.0, 0.005, -0.005)
THREE_COPIES = ((1 / 3, 1 / 3, 1 / 3), (0.2, 0.3, 0.5), (0.7, 0.6, -0.3), (1.5, -0.8, 0.3),
                (-0.5, -0.5, 2.0), (2.0, -0.4, -0.6), (0.6, 0.5, -0.1), (1.2, 0.3, -0.5), (0.005, 0.495, 0.5))


def settings(quick: bool, seed: int) -> dict:
    if quick:
        cases = [("tanh", 2, False), ("erf", 2, True), ("softplus", 1, True), ("gelu", 1, False)]
        widths = (1,)
    else:
        cases = [(a, d, b) for a in ACTIVATIONS for d in (1, 2) for b in (False, True)]
        widths = (1, 2)
    return dict(quick=quick, seed=seed, cases=cases, narrow_widths=widths, n=64, teacher_width=3,
                teacher_scale=1.5, n_inits=8 if quick else 12, init_scale=0.7, gd_lr=0.02, gd_steps=20_000,
                gd_records=8 if quick else 10, n_random=8 if quick else 16, guess_scale=1.5,
                newton_radius=2.0, newton_max_iter=200, max_points=8,
                two_copies=TWO_COPIES if not quick else (-1.0, -0.2, 0.3, 0.5, 1.5, 0.005),
                three_copies=THREE_COPIES if not quick else THREE_COPIES[:6],
                rtol_zero=RTOL_ZERO, band=BAND, loss="half_mse",
                line_lambdas=np.linspace(-1.0, 2.0, 61 if quick else 151).tolist())


# ------------------------------------------------------------------------------------------- data
def teacher_problem(activation: str, d_in: int, bias: bool, cfg: dict, case_seed: int):
    """Seeded teacher MLP((d_in, 3, 1)) of the same σ; x ~ N(0, I), y = T(x), no noise."""
    teacher = ft.MLP((d_in, cfg["teacher_width"], 1), activation, bias=bias)
    theta_t = np.asarray(teacher.init(case_seed, scale=cfg["teacher_scale"]))
    data = ft.teacher_dataset((teacher, theta_t), cfg["n"], seed=case_seed)
    return data, theta_t


@eqx.filter_jit
def _hessians(problem, thetas):
    return jax.vmap(lambda th: (problem.hessian_fn(th), jnp.linalg.norm(problem.grad_fn(th))))(thetas)


def hessian_eigenvalues(problem, thetas, *, grad_norms: bool = False):
    """Eigenvalues (ascending) of the full Hessian at each row of `thetas` (one vmapped jitted call),
    and the gradient norms when asked."""
    H, g = (np.asarray(a) for a in _hessians(problem, jnp.asarray(np.atleast_2d(thetas))))
    ev = np.linalg.eigvalsh(0.5 * (H + np.swapaxes(H, 1, 2)))
    return (ev, g) if grad_norms else ev


def count(ev: np.ndarray, rtol: float = RTOL_ZERO):
    """The signature (`landscape.signature`) and the zero tolerance it used."""
    return (*signature(ev, rtol), rtol * float(np.max(np.abs(ev))))


def near_threshold(ev: np.ndarray, factor: float, rtol: float = RTOL_ZERO) -> bool:
    """An eigenvalue within `factor` of the zero threshold (either side): its count is not robust."""
    tol = rtol * float(np.max(np.abs(ev)))
    a = np.abs(ev)
    return bool(np.any((a > tol / factor) & (a < tol * factor)))


# ----------------------------------------------------------------------------- narrow points
def narrow_critical_points(problem, cfg, rng) -> list:
    """Critical points of the narrow net, one per critical set (`flowtools.graph.match_distance`, with
    tolerance SAME_TOL) and Morse signature.

    Guesses: the saved states of a batched GD ensemble from random initializations (they pass near the
    saddles on the way and end near minima) plus plain random points; each is refined by the vmapped
    Newton-type solve `find_critical_points` (which finds saddles of any index as well as minima)."""
    n = problem.n_params
    guesses = [cfg["guess_scale"] * rng.standard_normal((cfg["n_random"], n))]
    if cfg["n_inits"]:
        inits = cfg["init_scale"] * rng.standard_normal((cfg["n_inits"], n))
        runs = ft.run_ensemble("gradient_descent", problem, inits, batched=True, lr=cfg["gd_lr"],
                               steps=cfg["gd_steps"], n_records=cfg["gd_records"], progress=False)
        guesses += [tr.theta[1:] for tr in runs]
    guesses = np.concatenate(guesses)
    guesses = guesses[np.all(np.isfinite(guesses), axis=1) & (np.linalg.norm(guesses, axis=1) < 50)]
    # First attempts only (fallback=False): the documented numbers come from these point sets.
    found = [c for c in find_critical_points(problem, guesses, radius=cfg["newton_radius"],
                                             max_iter=cfg["newton_max_iter"], fallback=False)
             if c.success and np.all(np.isfinite(c.theta))]
    points, prints = [], []
    d_out, n_train = problem.model.d_out, int(np.asarray(problem.x).shape[0])
    for cp in sorted(found, key=lambda c: (c.loss, c.grad_norm)):
        fp = function_fingerprint(problem, cp.theta)
        # One point per critical set and signature (every signature seen is split), to a tolerance
        # SAME_TOL stricter than the graph's.
        dup = any(tuple(cp.signature) == tuple(p.signature)
                  and match_distance(dict(fingerprint=fp, signature=cp.signature, kind=cp.kind),
                                     dict(fingerprint=q, signature=p.signature, kind=p.kind), d_out, n_train,
                                     SAME_TOL) is not None
                  for p, q in zip(points, prints))
        if not dup:
            points.append(cp)
            prints.append(fp)
    return points[: cfg["max_points"]]


def coefficient_grid(cfg, copies: int) -> list[np.ndarray]:
    if copies == 2:
        return [np.array([lam, 1.0 - lam]) for lam in cfg["two_copies"]]
    return [np.array(c, dtype=float) for c in cfg["three_copies"]]


def output_weights(model, theta, neuron) -> np.ndarray:
    _, out = model.neuron_indices(1, neuron)
    return np.asarray(theta)[out]


# --------------------------------------------------------------------------------------- one case
def run_case(activation, d_in, bias, width, cfg, case_seed, rng):
    """Narrow critical points of one case, every split of them, and the wide Hessians' verdicts.

    Returns (narrow records, samples, case info, the narrow problem)."""
    data, theta_t = teacher_problem(activation, d_in, bias, cfg, case_seed)
    narrow = ft.MLP((d_in, width, 1), activation, bias=bias)
    problem = ft.Problem(narrow, data, cfg["loss"])
    points = narrow_critical_points(problem, cfg, rng)
    case = dict(activation=activation, d_in=d_in, bias=bias, narrow_width=width)
    narrow_records, samples = [], []
    wide_problems = {}
    for ip, cp in enumerate(points):
        rec = dict(case, id=ip, kind=cp.kind, signature=list(cp.signature), loss=cp.loss,
                   grad_norm=cp.grad_norm, reduces_to=cp.reduces_to, theta=cp.theta.tolist(),
                   narrow_eigenvalues=np.asarray(cp.eigenvalues).tolist(), neurons=[])
        narrow_records.append(rec)
        narrow_near = near_threshold(np.asarray(cp.eigenvalues), cfg["band"]["eigenvalue_factor"])
        for r in range(width):
            v = output_weights(narrow, cp.theta, r)
            vmax = float(np.max(np.abs(v)))
            H_in = splitting.inner_hessian(problem, cp.theta, r)
            mu = np.linalg.eigvalsh(H_in)
            rec["neurons"].append(dict(neuron=r, v_max=vmax, inner_eigenvalues=mu.tolist()))
            for m in (2, 3):
                grid = coefficient_grid(cfg, m)
                rows, preds = [], []
                for lam in grid:
                    preds.append(splitting.predict_split(
                        problem, cp.theta, r, lam, rtol_zero=cfg["rtol_zero"],
                        narrow_eigenvalues=cp.eigenvalues, dead_atol=cfg["band"]["dead_atol"]))
                    wide, th = splitting.split_neuron(narrow, cp.theta, r, lam)
                    rows.append(th)
                if wide.widths not in wide_problems:
                    wide_problems[wide.widths] = ft.Problem(wide, data, cfg["loss"])
                pw = wide_problems[wide.widths]
                evs, gnorms = hessian_eigenvalues(pw, np.stack(rows), grad_norms=True)
                for lam, pred, ev, gn in zip(grid, preds, evs, gnorms):
                    n_neg, n_zero, n_pos, tol = count(ev)
                    nonzero = np.abs(ev)[np.abs(ev) > tol]
                    reasons = []
                    if not pred.dead and pred.margin_coefficients < cfg["band"]["coefficient"]:
                        reasons.append("coefficient")
                    if not pred.dead and pred.margin_inner < cfg["band"]["inner"]:
                        reasons.append("inner")
                    if near_threshold(ev, cfg["band"]["eigenvalue_factor"]):
                        reasons.append("wide_eigenvalue")
                    if narrow_near:
                        reasons.append("narrow_eigenvalue")
                    if cfg["band"]["dead_atol"] < vmax < cfg["band"]["alive_atol"]:
                        reasons.append("nearly_dead")
                    kind = "minimum" if n_neg == 0 else "saddle"
                    samples.append(dict(
                        case, narrow_id=ip, narrow_kind=cp.kind, narrow_n_neg=int(cp.signature[0]),
                        neuron=r, copies=m, coefficients=lam.tolist(), dead=pred.dead,
                        sure_saddle_region=splitting.in_sure_saddle_region(lam),
                        h_pos=pred.h_pos, h_neg=pred.h_neg, p=pred.p, q=pred.q,
                        predicted_n_neg=pred.n_neg, predicted_kind=pred.kind,
                        numerical_signature=[n_neg, n_zero, n_pos], numerical_kind=kind,
                        grad_norm=gn, smallest_nonzero_abs=float(nonzero.min()) if nonzero.size else 0.0,
                        zero_tol=tol, margin_inner=pred.margin_inner,
                        margin_coefficients=pred.margin_coefficients, in_band=bool(reasons),
                        band_reasons=reasons, agree_n_neg=pred.n_neg == n_neg, agree_kind=pred.kind == kind))
    info = dict(case, teacher_theta=theta_t.tolist(), n_points=len(points),
                n_minima=sum(p.signature[0] == 0 for p in points),
                n_saddles=sum(p.signature[0] > 0 for p in points))
    return narrow_records, samples, info, problem


# ------------------------------------------------------------------------------------ aggregation
def agreement_table(samples) -> list[dict]:
    rows = defaultdict(lambda: dict(n=0, outside_agree=0, outside_disagree=0, inside_agree=0,
                                    inside_disagree=0, outside_kind_agree=0, inside_kind_agree=0))
    for s in samples:
        key = (s["activation"], s["d_in"], s["bias"], s["narrow_width"], s["narrow_kind"], s["copies"])
        r = rows[key]
        r["n"] += 1
        side = "inside" if s["in_band"] else "outside"
        r[f"{side}_{'agree' if s['agree_n_neg'] else 'disagree'}"] += 1
        r[f"{side}_kind_agree"] += int(s["agree_kind"])
    return [dict(activation=k[0], d_in=k[1], bias=k[2], narrow_width=k[3], narrow_kind=k[4], copies=k[5],
                 **v) for k, v in sorted(rows.items(), key=lambda kv: tuple(map(str, kv[0])))]


def totals(samples) -> dict:
    out = [s for s in samples if not s["in_band"]]
    ins = [s for s in samples if s["in_band"]]
    frac = lambda xs, key: (sum(s[key] for s in xs) / len(xs)) if xs else None  # noqa: E731
    reasons = defaultdict(int)
    for s in ins:
        for r in s["band_reasons"]:
            reasons[r] += 1
    return dict(n_samples=len(samples), n_outside_band=len(out), n_inside_band=len(ins),
                outside_n_neg_agreement=frac(out, "agree_n_neg"),
                outside_kind_agreement=frac(out, "agree_kind"),
                inside_n_neg_agreement=frac(ins, "agree_n_neg"),
                inside_kind_agreement=frac(ins, "agree_kind"),
                outside_disagreements=sum(not s["agree_n_neg"] for s in out),
                inside_disagreements=sum(not s["agree_n_neg"] for s in ins),
                band_reasons=dict(reasons),
                max_grad_norm=max((s["grad_norm"] for s in samples), default=None))


def claims(samples) -> dict:
    """The paper's qualitative claims, checked on the numerical signatures."""
    saddle_splits = [s for s in samples if s["narrow_n_neg"] > 0 and not s["in_band"]]
    saddle_band = [s for s in samples if s["narrow_n_neg"] > 0 and s["in_band"]]
    sure = [s for s in samples if s["copies"] == 3 and s["sure_saddle_region"] and not s["dead"]
            and s["narrow_n_neg"] == 0 and not s["in_band"]]
    min_splits = [s for s in samples if s["narrow_n_neg"] == 0 and not s["dead"] and not s["in_band"]]
    indefinite = [s for s in min_splits if s["h_pos"] > 0 and s["h_neg"] > 0]
    definite = [s for s in min_splits if (s["h_pos"] == 0) != (s["h_neg"] == 0)]
    return dict(
        saddle_split_total=len(saddle_splits),
        saddle_split_numerical_saddles=sum(s["numerical_kind"] == "saddle" for s in saddle_splits),
        saddle_split_inside_band_total=len(saddle_band),
        saddle_split_inside_band_numerical_saddles=sum(s["numerical_kind"] == "saddle" for s in saddle_band),
        sure_saddle_total=len(sure),
        sure_saddle_numerical_saddles=sum(s["numerical_kind"] == "saddle" for s in sure),
        minimum_split_indefinite_inner_total=len(indefinite),
        minimum_split_indefinite_inner_saddles=sum(s["numerical_kind"] == "saddle" for s in indefinite),
        minimum_split_definite_inner_total=len(definite),
        minimum_split_definite_inner_minima=sum(s["numerical_kind"] == "minimum" for s in definite),
    )


def table_markdown(table) -> str:
    head = ("| σ | d_in | bias | narrow width | narrow kind | copies | samples "
            "| outside band: agree / disagree | inside band: agree / disagree |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['activation']} | {r['d_in']} | {'yes' if r['bias'] else 'no'} | {r['narrow_width']} | "
             f"{r['narrow_kind']} | {r['copies']} | {r['n']} | "
             f"{r['outside_agree']} / {r['outside_disagree']} | "
             f"{r['inside_agree']} / {r['inside_disagree']} |" for r in table]
    return head + "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ figures
def split_line_figure(lines, path):
    n = len(lines)
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 3.9 * rows), squeeze=False)
    for ax, line in zip(axes.ravel(), lines):
        lam = np.asarray(line["lambdas"])
        ev = np.asarray(line["eigenvalues"])
        pred = np.asarray(line["predicted_n_neg"])
        num = np.asarray(line["numerical_n_neg"])
        for k in range(min(3, ev.shape[1])):
            ax.plot(lam, ev[:, k], lw=1.6 if k == 0 else 1.0, label=f"eigenvalue {k + 1} (ascending)")
        lo, hi = float(np.min(ev[:, :3])), float(np.max(ev[:, :3]))
        for i in range(len(lam) - 1):
            p_i = pred[i] if pred[i] >= 0 else pred[i + 1]
            color = "tab:green" if p_i == 0 else "tab:red"
            ax.axvspan(lam[i], lam[i + 1], color=color, alpha=0.08, lw=0)
        bad = (pred != num) & (pred >= 0)  # pred = −1 marks the junctions λ = 0, 1 (a zero coefficient)
        if np.any(bad):
            ax.plot(lam[bad], np.zeros(bad.sum()), "kx", label="prediction ≠ Hessian")
        ax.set_yscale("symlog", linthresh=max(1e-6, 1e-3 * max(abs(lo), abs(hi))))
        ax.axhline(0, color="k", lw=0.6)
        for b in (0, 1):
            ax.axvline(b, color="0.4", lw=0.6, ls=":")
        ax.set_xlabel("λ  (copies' output weights λ v, (1 − λ) v)")
        ax.set_ylabel("smallest Hessian eigenvalues")
        inner = ", ".join(f"{m:.3g}" for m in line["inner"])
        ax.set_title(f"{line['label']}\nH_in eigenvalues [{inner}]; green: predicted minimum, red: saddle",
                     fontsize=8)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)


def agreement_figure(table, path):
    labels = [f"{r['activation']} d{r['d_in']} {'b' if r['bias'] else 'nb'} r{r['narrow_width']} "
              f"{r['narrow_kind'][:10]} m{r['copies']}" for r in table]
    y = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(table) + 1.5))
    left = np.zeros(len(table))
    for key, color, lab in (("outside_agree", "tab:green", "outside band: agree"),
                            ("outside_disagree", "tab:red", "outside band: disagree"),
                            ("inside_agree", "palegreen", "inside band: agree"),
                            ("inside_disagree", "salmon", "inside band: disagree")):
        vals = np.array([r[key] for r in table], dtype=float)
        ax.barh(y, vals, left=left, color=color, label=lab)
        left += vals
    ax.set_yticks(y, labels, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("split samples (predicted n_neg vs full Hessian)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def split_lines(cases_narrow, cfg) -> list[dict]:
    """For the lowest-loss narrow minimum of each σ (width 1, first (d_in, bias) with one), the Hessian
    spectrum of the 2-copy split line λ ∈ [−1, 2]."""
    out = []
    for act in ACTIVATIONS:
        cands = [(rec, prob) for rec, prob in cases_narrow
                 if rec["activation"] == act and rec["narrow_width"] == 1 and rec["signature"][0] == 0
                 and rec["neurons"][0]["v_max"] > BAND["alive_atol"]]
        if not cands:
            continue
        rec, problem = min(cands, key=lambda rp: (rp[0]["d_in"], rp[0]["bias"], rp[0]["loss"]))
        lambdas = np.asarray(cfg["line_lambdas"])
        theta = np.asarray(rec["theta"])
        wide, rows = splitting.split_line(problem.model, theta, 0, lambdas)
        ev = hessian_eigenvalues(ft.Problem(wide, problem.data, cfg["loss"]), rows)
        pred = [splitting.predict_split(problem, theta, 0, [lam, 1 - lam], rtol_zero=cfg["rtol_zero"],
                                        narrow_eigenvalues=rec["narrow_eigenvalues"]).n_neg
                if abs(lam) > 1e-12 and abs(1 - lam) > 1e-12 else -1 for lam in lambdas]
        num = [count(e)[0] for e in ev]
        label = f"{act}, d_in={rec['d_in']}, bias={rec['bias']}, narrow 1 neuron, L={rec['loss']:.4g}"
        out.append(dict(label=label,
                        activation=act, lambdas=lambdas.tolist(), eigenvalues=ev[:, :4].tolist(),
                        predicted_n_neg=pred, numerical_n_neg=num,
                        inner=rec["neurons"][0]["inner_eigenvalues"]))
    return out


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every σ once, narrow width 1 (< 60 s)")
    ap.add_argument("--out", default="results/neuron_splitting", help="output folder")
    ap.add_argument("--seed", type=int, default=0, help="seed of every random choice in the study")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = settings(args.quick, args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()

    narrow_all, samples, infos, cases_narrow = [], [], [], []
    jobs = [(a, d, b, w) for (a, d, b) in cfg["cases"] for w in cfg["narrow_widths"]]
    for act, d_in, bias, width in tqdm(jobs, desc="splitting cases"):
        case_seed = args.seed * 1000 + cfg["cases"].index((act, d_in, bias))
        t = time.perf_counter()
        recs, smp, info, problem = run_case(act, d_in, bias, width, cfg, case_seed, rng)
        info["wall_s"] = time.perf_counter() - t
        narrow_all += recs
        samples += smp
        infos.append(info)
        cases_narrow += [(r, problem) for r in recs]

    table = agreement_table(samples)
    tot = totals(samples)
    cl = claims(samples)
    lines = split_lines(cases_narrow, cfg)
    split_line_figure(lines, out / "split_lines.png")
    agreement_figure(table, out / "agreement.png")
    disagreements = [s for s in samples if not s["agree_n_neg"]]
    summary = dict(
        study="neuron_splitting", settings=cfg, wall_time_s=time.perf_counter() - t_start,
        rule="n_neg(wide) = n_neg(narrow) + (p-1)*h_neg + q*h_pos  (dead neuron: + (m-1)*rank(coupling))",
        zero_tolerance=dict(rtol_zero=RTOL_ZERO, meaning="|mu| <= rtol_zero * max|mu|"),
        band=dict(BAND, definition=("min|lambda_j| < coefficient (alive neurons), or margin_inner < inner, "
                                    "or a wide/narrow Hessian eigenvalue within eigenvalue_factor of the "
                                    "zero threshold, or dead_atol < max|v_r| < alive_atol")),
        totals=tot, claims=cl, table=table, cases=infos,
        narrow_points=[{k: v for k, v in r.items() if k != "theta"} for r in narrow_all],
        disagreements=disagreements[:50],
        split_lines=[{k: v for k, v in ln.items() if k != "eigenvalues"} for ln in lines],
        figures=["split_lines.png", "agreement.png"],
    )
    io.write_json(out / "samples.json", samples)
    io.atomic_write_text(out / "table.md", table_markdown(table))
    io.write_json(out / "summary.json", summary)
    print(f"neuron_splitting: {tot['n_samples']} samples, outside band {tot['n_outside_band']} "
          f"(n_neg agreement {tot['outside_n_neg_agreement']}), inside band {tot['n_inside_band']} "
          f"(agreement {tot['inside_n_neg_agreement']}); {summary['wall_time_s']:.1f} s")
    return summary


if __name__ == "__main__":
    main()
