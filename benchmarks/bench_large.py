"""Benchmarks at 10³–10⁵ parameters: the RKC flow against GD on digits, peak memory, and the hand-written
Krylov–Schur Lanczos against scipy's ARPACK (`eigsh`) for the Morse index.

The default run has the 1 210-parameter flow against GD (about a minute on an idle 2-core machine);
--full adds the 2 410-parameter net, the peak-RSS check and the ARPACK comparison (tens of minutes).
Run alone: python benchmarks/run.py --full --only digits arpack
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import flowtools as ft  # noqa: E402
from flowtools.datasets import load_digits  # noqa: E402
from flowtools.dynamics.descent import gradient_descent  # noqa: E402
from flowtools.dynamics.flow import gradient_flow  # noqa: E402
from flowtools.landscape.planted import planted_saddle  # noqa: E402
from flowtools.landscape._kernels import hessian_matvec  # noqa: E402
from flowtools.landscape.spectrum import hessian_spectrum  # noqa: E402


def _load():
    return float(open("/proc/loadavg").read().split()[0]) if os.path.exists("/proc/loadavg") else math.nan


def _digits_problem(hidden, n_train=1497):
    train, _ = load_digits(n_train=n_train, one_hot=True)
    model = ft.MLP([64, hidden, 10], activation="tanh")
    return ft.Problem(model, train), model.init(0, "glorot", scale=0.1)



def _flow_vs_gd(hidden, T, rtol, lr=0.1):
    prob, th0 = _digits_problem(hidden)
    # Compile both first (short runs), so that the ratio compares solving, not compiling.
    gradient_flow(prob, th0, 1.0, solver="rkc", rtol=rtol, atol=rtol * 1e-2)
    gradient_descent(prob, th0, lr, 10)
    load0 = _load()
    t = time.perf_counter()
    flow = gradient_flow(prob, th0, T, solver="rkc", rtol=rtol, atol=rtol * 1e-2)
    flow_s = time.perf_counter() - t
    t = time.perf_counter()
    gd = gradient_descent(prob, th0, lr, int(round(T / lr)))
    gd_s = time.perf_counter() - t
    return dict(
        name=f"flow_rkc_vs_gd digits 64-{hidden}-10 t={T:g}", ours_s=flow_s, baseline_s=gd_s,
        ratio=flow_s / gd_s, baseline=f"GD η={lr} for {int(round(T / lr))} steps (same run)",
        target=1.0 if hidden == 16 else None,
        extra=dict(n_params=prob.n_params, rtol=rtol, flow_status=str(flow.status),
                   flow_solve_s=flow.stats["wall_time"], gradient_evaluations=flow.stats["gradient_evaluations"],
                   hvp_evaluations=flow.stats["hvp_evaluations"], steps=flow.stats["steps"],
                   gd_gradient_evaluations=int(round(T / lr)),
                   function_distance_flow_gd=ft.function_distance(prob, flow.theta[-1], gd.theta[-1]),
                   loss_flow=float(flow.loss[-1]), loss_gd=float(gd.loss[-1]), loadavg=[load0, _load()]),
        note="one-hot half-MSE, glorot init ×0.1; the function distance is the RMS output difference "
             "on the training images")


def flow_vs_gd_digits(quick: bool, full: bool = False):
    """RKC gradient flow vs GD at η = 0.1 on digits to t = 2000 (quick: t = 100): 1 210 parameters, and
    with --full also 2 410."""
    T = 100.0 if quick else 2000.0
    return [_flow_vs_gd(16, T, 1e-4)] + ([_flow_vs_gd(32, T, 1e-4)] if full else [])


def _timed_runs(fns: dict, rounds: int):
    """Alternate the runs `fns` (name → function) for `rounds` rounds; median wall and CPU seconds of
    each and its last result."""
    wall, cpu, out = {k: [] for k in fns}, {k: [] for k in fns}, {}
    for _ in range(rounds):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            out[name] = fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return ({k: float(np.median(v)) for k, v in wall.items()}, {k: float(np.median(v)) for k, v in cpu.items()},
            out, wall)


def _progress(*parts):
    print("   ", *parts, file=sys.stderr, flush=True)


def flow_default_vs_gd_digits(quick: bool):
    """The default `gradient_flow` on digits 64-16-10 (1 210 parameters: solver "auto" = RKC, and for a
    finite t1 above 1 000 parameters tolerances "auto" = rtol 1e-6, atol 1e-8) to t = 2000 (quick:
    t = 200) against GD at η = 0.1: the two alternate, median of 3 rounds, wall and CPU time. Beside
    them, once, the flow at the earlier default rtol 1e-8 (atol 1e-10), and the function distances
    (RMS output difference on the training images) of the default and of GD to it; the distances to a
    tight reference are `flow_default_accuracy_digits`."""
    T, lr, rounds = (200.0 if quick else 2000.0), 0.1, 3
    prob, th0 = _digits_problem(16)
    steps = int(round(T / lr))
    tight = dict(rtol=1e-8, atol=1e-10)
    for kw in ({}, tight):  # compile outside the timing (the tolerances are traced: one compile)
        gradient_flow(prob, th0, 1.0, **kw)
    gradient_descent(prob, th0, lr, 10)
    load0 = _load()
    wall, cpu, out, walls = _timed_runs({"gd": lambda: gradient_descent(prob, th0, lr, steps),
                                          "default": lambda: gradient_flow(prob, th0, T)}, rounds)
    _progress("gd / default, medians:", wall, cpu)
    once_wall, once_cpu, once, _ = _timed_runs({"rtol_1e-8": lambda: gradient_flow(prob, th0, T, **tight)}, 1)
    wall.update(once_wall), cpu.update(once_cpu), out.update(once)
    default = out["default"]
    extra = dict(n_params=prob.n_params, solver=default.meta["solver"], rtol=default.meta["rtol"],
                 atol=default.meta["atol"], tolerance_rule=default.meta["tolerance_rule"],
                 rounds=rounds, wall_rounds=walls, loadavg=[load0, _load()],
                 ratio_cpu=cpu["default"] / cpu["gd"])
    for name, run in out.items():
        extra[name] = _run_row(prob, run, wall[name], cpu[name], wall["gd"], cpu["gd"], steps,
                               out["rtol_1e-8"].theta[-1], "function_distance_to_rtol_1e-8")
    return dict(name=f"flow_default_vs_gd digits 64-16-10 t={T:g}", ours_s=wall["default"], baseline_s=wall["gd"],
                ratio=wall["default"] / wall["gd"], baseline=f"GD η={lr} for {steps} steps (same run, alternating)",
                target=0.5, extra=extra,
                note="default = tolerances 'auto' (rtol 1e-6 here); rtol 1e-8 and function distances in extra")


def _run_row(prob, run, wall, cpu, gd_wall, gd_cpu, gd_steps, ref, key):
    row = dict(wall_s=wall, cpu_s=cpu, ratio_to_gd=wall / gd_wall, cpu_ratio_to_gd=cpu / gd_cpu)
    row[key] = ft.function_distance(prob, run.theta[-1], ref)
    if run.method == "gradient_descent":
        row["gradient_evaluations"] = gd_steps
    else:
        row.update(status=str(run.status), steps=run.stats.get("steps"),
                   gradient_evaluations=run.stats.get("gradient_evaluations"),
                   hvp_evaluations=run.stats.get("hvp_evaluations"))
    return row


def flow_default_accuracy_digits(quick: bool):
    """The function-space error of the default flow of `flow_default_vs_gd_digits` (one run each, to
    t = 2000; quick: t = 200): the default (rtol 1e-6 there), the earlier default rtol 1e-8 and GD at
    η = 0.1, each as a function distance (RMS output difference on the training images) to a reference
    flow by another method than the default's RKC, BDF at rtol 1e-10 (atol 1e-12). The ratio is the
    default's distance over GD's (target ≤ 1/100: the flow's error far below what separates GD from it)."""
    T, lr = (200.0 if quick else 2000.0), 0.1
    prob, th0 = _digits_problem(16)
    steps = int(round(T / lr))
    reference = dict(solver="bdf", rtol=1e-10, atol=1e-12)
    load0 = _load()
    wall, cpu, out, _ = _timed_runs({"reference": lambda: gradient_flow(prob, th0, T, **reference),
                                     "gd": lambda: gradient_descent(prob, th0, lr, steps),
                                     "default": lambda: gradient_flow(prob, th0, T),
                                     "rtol_1e-8": lambda: gradient_flow(prob, th0, T, rtol=1e-8, atol=1e-10)}, 1)
    ref = out["reference"].theta[-1]
    extra = dict(n_params=prob.n_params, rtol=out["default"].meta["rtol"], loadavg=[load0, _load()],
                 note_times="one run each, compile included")
    for name, run in out.items():
        extra[name] = _run_row(prob, run, wall[name], cpu[name], wall["gd"], cpu["gd"], steps, ref,
                               "function_distance_to_reference")
    d_default = extra["default"]["function_distance_to_reference"]
    d_gd = extra["gd"]["function_distance_to_reference"]
    return dict(name=f"flow_default_accuracy digits 64-16-10 t={T:g}", ours_s=d_default, baseline_s=d_gd,
                ratio=d_default / d_gd, target=0.01,
                baseline="GD η=0.1's function distance to the reference (the ratio compares distances, not times)",
                extra=extra, note="reference: BDF at rtol 1e-10, atol 1e-12")


_RSS_SCRIPT = r"""
import json, resource, sys, time
import jax; jax.config.update("jax_enable_x64", True)
import flowtools as ft
from flowtools.datasets import load_digits
from flowtools.dynamics.flow import gradient_flow
hidden, T = int(sys.argv[1]), float(sys.argv[2])
train, _ = load_digits(one_hot=True)
model = ft.MLP([64, hidden, 10], activation="tanh")
prob = ft.Problem(model, train)
th0 = model.init(0, "glorot", scale=0.1)
t = time.perf_counter()
traj = gradient_flow(prob, th0, T, rtol=1e-4, atol=1e-6)
flow_s = time.perf_counter() - t
rss_flow = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
spec = ft.hessian_spectrum(prob, traj.theta[-1], vectors=False)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(dict(flow_s=flow_s, solver=traj.meta["solver"], rss_flow_gib=rss_flow, rss_gib=rss,
                      morse=list(spec.signature), spectrum_method=spec.method, spectrum_s=spec.wall_time)))
"""


def peak_rss_digits(quick: bool):
    """Peak RSS (GiB) of a default flow plus an end-point spectrum at 2 410 parameters, in a fresh process."""
    T = 100.0 if quick else 2000.0
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, "32", str(T)], capture_output=True, text=True,
                         check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    wall = time.perf_counter() - t
    return dict(name="peak_rss flow+spectrum digits 64-32-10", ours_s=res["rss_gib"], baseline_s=1.5,
                ratio=res["rss_gib"] / 1.5, baseline="target 1.5 GiB (values in GiB, not seconds)",
                target=1.0, extra=dict(res, process_wall_s=wall, loadavg=_load()))


# ------------------------------------------------------------------ itineraries at 10³ parameters
_ITIN_SCRIPT = r"""
import json, resource, sys, time, warnings
import jax; jax.config.update("jax_enable_x64", True)
import numpy as np
import flowtools as ft
from flowtools.datasets import load_digits
from flowtools.itineraries import itinerary
hidden = int(sys.argv[1])
train, test = load_digits(n_train=1497, n_test=300, seed=0)
model = ft.MLP([64, hidden, 10], activation="tanh")
prob = ft.Problem(model, train, loss="cross_entropy", test_data=test)
th0 = np.asarray(model.init(0, "glorot", scale=0.1))
t = time.perf_counter()
flow = ft.gradient_flow(prob, th0, 2000.0, rtol=1e-5, atol=1e-7)
flow_s = time.perf_counter() - t
rss_flow = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
t, cpu = time.perf_counter(), time.process_time()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    it = itinerary(prob, flow)
itin_s, itin_cpu = time.perf_counter() - t, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(dict(n_params=prob.n_params, flow_s=flow_s, solver=flow.meta["solver"], flow_steps=len(flow.t),
                      rss_flow_gib=rss_flow, itinerary_s=itin_s, itinerary_cpu_s=itin_cpu, rss_gib=rss, itinerary=repr(it),
                      statuses=[v.status for v in it.visits], terminal=it.terminal,
                      budget_exhausted=it.stats["budget_exhausted"], resolved_states=it.stats["resolved_states"])))
"""


def _itinerary_run(hidden):
    load0 = _load()
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _ITIN_SCRIPT, str(hidden)], capture_output=True, text=True,
                         check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(process_wall_s=time.perf_counter() - t, loadavg=[load0, _load()])
    return res


def itinerary_digits_1210_s(quick: bool):
    """Wall time of one default `itinerary` of the 64-16-10 digits flow (cross-entropy, t = 2000), in a
    fresh process (includes the first calls' compilation). Target ≤ 20 s. `extra.itinerary_cpu_s` (all
    threads) bounds the wall time on an idle machine from above when the machine is loaded."""
    res = _itinerary_run(16)
    return dict(name="itinerary_digits_1210_s", ours_s=res["itinerary_s"], baseline_s=20.0,
                ratio=res["itinerary_s"] / 20.0, baseline="target 20 s", target=1.0, extra=res,
                note="default itinerary(problem, flow): resolution, matrix-free refinement, spectra")


def flow_itinerary_rss_2410_gib(quick: bool):
    """Peak RSS (GiB) of a default flow plus its default itinerary at 2 410 parameters (64-32-10), in a
    fresh process. Target ≤ 1.5 GiB."""
    res = _itinerary_run(32)
    return dict(name="flow_itinerary_rss_2410_gib", ours_s=res["rss_gib"], baseline_s=1.5,
                ratio=res["rss_gib"] / 1.5, baseline="target 1.5 GiB (values in GiB, not seconds)",
                target=1.0, extra=res)


# ------------------------------------------------------------ an itinerary at 10⁵ parameters
_ITIN_1E5_SCRIPT = r"""
import json, resource, sys, time, warnings
import jax; jax.config.update("jax_enable_x64", True)
import numpy as np
import flowtools as ft
from flowtools.datasets import load_digits
from flowtools.itineraries import itinerary
limit = float(sys.argv[1])
train, test = load_digits(n_train=1497, n_test=300, seed=0)
model = ft.MLP([64, 1500, 10], activation="tanh")
prob = ft.Problem(model, train, loss="cross_entropy", test_data=test)
th0 = np.asarray(model.init(0, "glorot", scale=0.1))
t = time.perf_counter()
flow = ft.gradient_flow(prob, th0, 500.0, solver="rkc", rtol=1e-8, atol=1e-10)  # the published run's tolerances
flow_s = time.perf_counter() - t
rss_flow = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
t, cpu = time.perf_counter(), time.process_time()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    it = itinerary(prob, flow, time_limit=limit)
itin_s, itin_cpu = time.perf_counter() - t, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(dict(n_params=prob.n_params, flow_s=flow_s, flow_status=str(flow.status),
                      flow_steps=len(flow.t),
                      rss_flow_gib=rss_flow, itinerary_s=itin_s, itinerary_cpu_s=itin_cpu, rss_gib=rss,
                      time_limit=limit, cut_off=it.stats["cut_off"], terminal=it.terminal,
                      visits=[(v.kind, v.status, v.signature[0], v.morse_complete) for v in it.visits],
                      refinements=it.stats["refinements"], message=it.message[-300:],
                      resolve={k: it.stats.get(k) for k in ("resolve_s", "resolve_budget_s", "resolve_max_states",
                                                            "resolved_states")})))
"""


def itinerary_digits_1e5(quick: bool):
    """The 64-1500-10 digits classifier (112 510 parameters, cross-entropy): the RKC flow to t = 500, then
    `itinerary(…, time_limit=120)` in a fresh process: wall time, what the limit cut off, and peak RSS.
    "Must show": ≤ 120 s and ≤ 4 GiB. Several minutes: --full only."""
    load0 = _load()
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _ITIN_1E5_SCRIPT, "120"], capture_output=True, text=True,
                         check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(process_wall_s=time.perf_counter() - t, loadavg=[load0, _load()])
    return [dict(name="itinerary_digits_112510_s", ours_s=res["itinerary_s"], baseline_s=120.0,
                 ratio=res["itinerary_s"] / 120.0, baseline="target 120 s", target=1.0, extra=res,
                 note="what the time limit cut off is extra.cut_off"),
            dict(name="itinerary_digits_112510_rss_gib", ours_s=res["rss_gib"], baseline_s=4.0,
                 ratio=res["rss_gib"] / 4.0, baseline="target 4 GiB (values in GiB, not seconds)",
                 target=1.0,
                 extra=dict(rss_flow_gib=res["rss_flow_gib"]))]


# ------------------------------------------------------------- Krylov–Schur Lanczos vs ARPACK (eigsh)
def arpack_morse_index(matvec, n, *, rtol_zero=1e-7, nev=8, tol=1e-9):
    """The Morse index by scipy's eigsh (ARPACK) on a LinearOperator: λ_max first (for the zero
    threshold), then the nev smallest, doubling nev until the largest of them is ≥ −tol. Returns
    (index or None when ARPACK failed, the ARPACK errors met)."""
    import scipy.sparse.linalg as sla

    op = sla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    top = sla.eigsh(op, k=1, which="LA", tol=1e-6, v0=v0, return_eigenvectors=False)
    scale = float(np.max(np.abs(top)))
    # ARPACK's test ‖r‖ ≤ tol·|θ| cannot be met by the (many, exact) zero eigenvalues a Morse count has to
    # step into: a first attempt on H itself ran for over 6 minutes at n = 997 without returning. Shift
    # by the scale, H + sI, so that zero maps to s and the relative test is an absolute one.
    shift = scale
    op = sla.LinearOperator((n, n), matvec=lambda v: matvec(v) + shift * v, dtype=np.float64)
    failures = []
    while True:
        k = min(nev, n - 2)
        # Basis max(2k + 1, k + 32) as our Lanczos, doubled on ARPACK's error 3 ("no shifts could be
        # applied"), which the planted saddle's large exact null space triggers.
        ncv = min(max(2 * k + 1, k + 32), n - 1)
        for attempt in range(4):
            try:
                vals = sla.eigsh(op, k=k, which="SA", tol=tol, v0=v0, ncv=ncv, return_eigenvectors=False) - shift
                break
            except sla.ArpackError as err:
                failures.append(f"k={k} ncv={ncv}: {str(err)[:40]}")
                ncv = min(2 * ncv, n - 1)
        else:
            return None, failures
        scale = max(scale, float(np.max(np.abs(vals))))
        thr = rtol_zero * scale
        if np.max(vals) >= -thr or nev >= n - 2:
            return int(np.sum(vals < -thr)), failures
        nev *= 2


def _planted(n_target):
    if n_target == 1_000:
        return planted_saddle(10, 256, 3, 20, 60)
    if n_target == 10_000:
        return planted_saddle(30, 512, 3, 20, 297)
    return planted_saddle(100, 1024, 1, 20, 958)


def lanczos_vs_arpack(quick: bool):
    """Hand-written Krylov–Schur Lanczos vs scipy eigsh (ARPACK) for the Morse index at 10³–10⁵ params."""
    entries = []
    for n_target in ((1_000, 10_000) if quick else (1_000, 10_000, 100_000)):
        p, th, p_live, th_live = _planted(n_target)
        planted = 20 + hessian_spectrum(p_live, th_live, method="dense", warn=False).n_neg
        hessian_spectrum(p, th, method="lanczos", max_matvecs=20, warn=False)  # compile
        t = time.perf_counter()
        ours = hessian_spectrum(p, th, method="lanczos", vectors=False, warn=False)
        ours_s = time.perf_counter() - t
        mv, counter = hessian_matvec(p, th)
        t = time.perf_counter()
        arpack, failures = arpack_morse_index(mv, p.n_params)
        arpack_s = time.perf_counter() - t
        entries.append(dict(
            name=f"lanczos_vs_arpack morse n={p.n_params}", ours_s=ours_s, baseline_s=arpack_s,
            ratio=ours_s / arpack_s, baseline="scipy.sparse.linalg.eigsh (ARPACK), same jitted HVP",
            extra=dict(n_params=p.n_params, planted_index=planted, ours_index=ours.n_neg,
                       ours_complete=ours.complete, ours_matvecs=ours.matvecs, arpack_index=arpack,
                       arpack_errors=failures,
                       arpack_matvecs=counter[0], loadavg=_load()),
            note="ARPACK cannot lock and deflate: it is asked for nev smallest, nev doubling until one is ≥ −tol"))
    return entries


BENCHMARKS = [flow_vs_gd_digits]
# The itinerary entries (about a minute each) are --full only: the default run is at its 10-minute budget.
FULL_BENCHMARKS = [flow_default_vs_gd_digits, flow_default_accuracy_digits, peak_rss_digits, itinerary_digits_1210_s, flow_itinerary_rss_2410_gib,
                   lanczos_vs_arpack, itinerary_digits_1e5]
