"""Compile once, load everywhere: the compile cost of a flow and its itinerary, in fresh processes.

Each process runs `gradient_flow` (default BDF, to ‖∇L‖ ≤ 1e-9) and `itinerary` on a problem twice; the
second run finds every kernel compiled, so first − second is what compiling (or loading) cost. Both
the wall time and the process CPU time of that difference are reported: the machine is shared, and
CPU time is what the load changes least. θ0 is drawn before the timed runs (its `init` time is in
`extra`).

- `compile_flow_itinerary_cold_s`: a new population problem (ReLU teacher–student on the population
  loss, d = 10, k = 4, width 4: `flowtools.gaussian`'s closed form; `--quick`: erf, d = 4, k = 2,
  width 2) in a fresh process with an empty compilation cache and executable store. Target ≤ 5 s.
  In `--full` runs only (about 26 s of CPU).
- `compile_worker_shape_change_s`: a worker that moves to a shape another process compiled. Process A
  (empty cache) runs the finite-data teacher–student (tanh, d = 4, k = 2, n = 200) at widths 2 and 3;
  process B, on A's cache, runs width 2 and then width 3: the row is B's cost at width 3. Target ≤ 0.3 s.
  `baseline_s` is A's cold cost at width 3 in the same run. Processes like B run three times without
  the read-ahead of stored executables (`flowtools._read_ahead`) and three times with it, alternated:
  the row is the median without it, as sweep workers run (they keep every core busy and turn it off),
  the note gives both medians.

- `compile_flow_itinerary_cold_host_s` (`--full`): the cold entry's problem with
  `itinerary(refine_options=dict(dense_loop="host"))` against the default, each in its own fresh process
  with an empty cache, in the same run: what the host-driven dense refinement saves in compiling.
- `compile_flow_itinerary_cold_series_s` (`--full`): the width study's tanh problem (population loss,
  d = 10, k = 4, width 3) with `gaussian_method="series"` against the default 96² Gauss–Hermite rule, each
  in its own fresh process with an empty cache, in the same run: what the series' levels and fallback
  cost in compiling.
- `compile_flow_itinerary_cold_llvm_s` (`--full`): the cold entry with every program compiled at LLVM
  -O1 and -O0 against XLA's default, each in its own fresh process: how much of the cold cost LLVM's
  optimization is, and whether the visits keep their labels.
- `compile_escape_flow_warm_s` (`--full`): the first `escape_flow` of a process on a warm store (ReLU
  population 10-4-4; `--quick`: the minimal model), three processes, against three in which its
  equinox checks are traced to raise (as before they were traced to return NaN: the program then calls
  back into Python and every process compiles it), alternated, medians.
- `refine_dense_loop_warm_s` (`--full`): warm refinements with `dense_loop="host"` against the compiled
  loop on the same problem (CPU time, alternating, median of 3): what the host loop costs per call.

`extra` holds where each stored kernel came from (`flowtools._stored_jit.origins`), the flow's own
compile step, the load average and, for the first run, every program compiled for the store
(`programs`: kernel, the part of the package that asked for it, wall and CPU seconds of trace + lower +
compile; `by_part`: their count and CPU seconds by part) with JAX's own totals of XLA's compile
(`xla_s`) and of tracing + lowering (`trace_lower_s`), from `jax.monitoring`'s duration events.

Run as a script (`python benchmarks/bench_compile.py`), it tries XLA options per small kernel instead:
their compile time and whether they change the kernel's output bits (`main`).
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

from _fresh import fresh_process  # benchmarks/ is on sys.path (run.py or the script's own folder)

_SCRIPT = r"""
import json, os, sys, time, traceback
import numpy as np
import jax
import flowtools as ft
from flowtools import _aot
try:
    from flowtools import _stored_jit
except ImportError:  # a flowtools without the store for small kernels (for before/after runs)
    _stored_jit = None
try:
    from flowtools import _read_ahead
except ImportError:  # a flowtools without the read-ahead (for before/after runs)
    _read_ahead = None

# Every program XLA compiles for the store (the flow's solve and the stored_jit kernels), timed around
# trace + lower + compile, with the part of the package that asked for it.
compiles, _compile_function = [], _aot.compile_function
# the first match in this order names the part (a spectrum inside a classification is "spectra")
PARTS = [("resolve_trajectory", "segment flows"), ("/escape/", "escape flows"),
         ("flow.py:_compiled", "flow solve"), ("trajectory.py:evaluate_states", "saved-state evaluation"),
         ("higher_order.py:", "higher-order test"), ("symmetry.py:", "fingerprints"),
         ("spectrum.py:", "spectra"), ("_loss_floor.py:", "spectra"),
         ("critical.py:", "refinement"), ("_refinement.py:", "refinement")]

def part():
    frames = [f"{f.filename}:{f.name}" for f in traceback.extract_stack() if "/flowtools/" in f.filename]
    for needle, name in PARTS:
        if any(needle in f for f in frames):
            return name
    return "other"

extra_options = {}  # XLA options added to every program's (a spec's "xla_options")

def timed_compile(fn, args, kw, compiler_options, *rest, **kwrest):
    wall, cpu = time.perf_counter(), time.process_time()
    exe = _compile_function(fn, args, kw, dict(compiler_options, **extra_options), *rest, **kwrest)
    compiles.append(dict(kernel=f"{fn.__module__}.{fn.__qualname__}", part=part(),
                         wall=time.perf_counter() - wall, cpu=time.process_time() - cpu))
    return exe
_aot.compile_function = timed_compile
phases = {}
jax.monitoring.register_event_duration_secs_listener(
    lambda event, seconds, **kw: phases.__setitem__(event, phases.get(event, 0.0) + seconds))

def once(problem, theta0, refine):
    wall, cpu = time.perf_counter(), time.process_time()
    traj = ft.gradient_flow(problem, theta0, 1e6, gtol=1e-9, solver="bdf")
    itin = ft.itinerary(problem, traj, refine_options=refine)
    return dict(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu,
                flow_compile=traj.stats["compile_time"], status=str(traj.status),
                sequence=" > ".join(v.kind for v in itin.visits))

runs = []
for spec in json.loads(sys.argv[1]):
    spec = dict(spec)
    seed, tag, refine = spec.pop("seed"), spec.pop("tag"), spec.pop("refine", None)
    extra_options.clear()
    extra_options.update(spec.pop("xla_options", {}))
    if _read_ahead is not None:
        _read_ahead.READ_AHEAD = spec.pop("read_ahead", True)
    problem = ft.problems.teacher_student(**spec)
    t = time.perf_counter()
    theta0 = np.asarray(problem.model.init(seed, "normal", scale=0.1))
    init_s = time.perf_counter() - t
    for k in _stored_jit.KERNELS if _stored_jit else ():
        k.origins.clear()
    del compiles[:]
    phases.clear()
    first = once(problem, theta0, refine)
    programs, xla = list(compiles), dict(phases)
    again = once(problem, theta0, refine)
    assert first["sequence"] == again["sequence"], (first, again)
    by_part = {}
    for c in programs:
        by_part.setdefault(c["part"], [0, 0.0])
        by_part[c["part"]][0] += 1
        by_part[c["part"]][1] += c["cpu"]
    runs.append(dict(tag=tag, n_params=problem.n_params, init_s=init_s, first=first, again=again,
                     overhead_wall=first["wall"] - again["wall"], overhead_cpu=first["cpu"] - again["cpu"],
                     origins=_stored_jit.origins() if _stored_jit else None, programs=programs,
                     read_ahead_hits=getattr(_read_ahead, "hits", None),
                     by_part={k: dict(programs=n, cpu=c) for k, (n, c) in by_part.items()},
                     xla_s=xla.get("/jax/core/compile/backend_compile_duration", 0.0),
                     trace_lower_s=xla.get("/jax/core/compile/jaxpr_trace_duration", 0.0)
                     + xla.get("/jax/core/compile/jaxpr_to_mlir_module_duration", 0.0)))
print(json.dumps(dict(runs=runs, load=os.getloadavg()[0])))
"""

_POPULATION = dict(d=10, k=4, width=4, activation="relu", data="population", seed=0, tag="relu_pop_10_4_4")
_POPULATION_QUICK = dict(d=4, k=2, width=2, activation="erf", data="population", seed=0, tag="erf_pop_4_2_2")
_SERIES = dict(d=10, k=4, width=3, activation="tanh", data="population", seed=0, tag="tanh_pop_10_4_3")
_FINITE = [dict(d=4, k=2, width=w, activation="tanh", n=200, seed=0, tag=f"tanh_4_2_{w}") for w in (2, 3)]


def _fresh_process_args(specs, cache):
    """Run `_SCRIPT` on `specs` in a fresh Python whose compilation cache is `cache`; its JSON line."""
    return fresh_process(_SCRIPT, cache, json.dumps(specs))


def _each_fresh(specs: dict) -> dict:
    """Each spec's run in its own fresh process with an empty cache, in order: its `runs` record and load."""
    out = {}
    for key, spec in specs.items():
        with tempfile.TemporaryDirectory() as cache:
            res, _ = _fresh_process_args([spec], cache)
        out[key] = dict(res["runs"][0], load=res["load"])
    return out


def bench_compile_flow_itinerary_cold(quick):
    spec = _POPULATION_QUICK if quick else _POPULATION
    with tempfile.TemporaryDirectory() as cache:
        res, wall = _fresh_process_args([spec], cache)
    r = res["runs"][0]
    return dict(
        name="compile_flow_itinerary_cold_s", ours_s=r["overhead_wall"], baseline_s=5.0,
        ratio=r["overhead_wall"] / 5.0, target=1.0,
        baseline="target: 5 s for the first flow + itinerary of a new population problem, empty cache",
        extra=dict(r, process_wall_s=wall, load=res["load"]),
        note=f"{spec['tag']} ({r['n_params']} parameters); first − second run in one fresh process: "
             f"{r['overhead_wall']:.2f} s wall, {r['overhead_cpu']:.2f} s CPU (flow's solve "
             f"{r['first']['flow_compile']:.2f} s; XLA {r['xla_s']:.1f} s, tracing + lowering "
             f"{r['trace_lower_s']:.1f} s); {len(r['programs'])} programs, CPU s by part: "
             + ", ".join(f"{k} {v['programs']}: {v['cpu']:.1f}" for k, v in
                         sorted(r["by_part"].items(), key=lambda kv: -kv[1]["cpu"]))
             + f"; load average {res['load']:.1f} on 2 cores")


def _against(name, tag, ours, base, labels, keys, baseline, detail):
    """A same-run comparison of two fresh-process runs (`_each_fresh`): `ours` against `base`, each with its
    first − second-run overhead and `detail(run)`, and whether their visit sequences agree."""
    same = ours["first"]["sequence"] == base["first"]["sequence"]

    def told(label, r):
        return f"{label} {r['overhead_wall']:.2f} s wall, {r['overhead_cpu']:.2f} s CPU ({detail(r)})"

    return dict(
        name=name, ours_s=ours["overhead_wall"], baseline_s=base["overhead_wall"],
        ratio=ours["overhead_wall"] / base["overhead_wall"], baseline=baseline,
        extra={keys[0]: ours, keys[1]: base},
        note=f"{tag}: first − second run, {told(labels[0], ours)} against {told(labels[1], base)}; CPU ratio "
             f"{ours['overhead_cpu'] / base['overhead_cpu']:.2f}; visit sequence "
             + ("the same" if same
                else f"differs: {ours['first']['sequence']} vs {base['first']['sequence']}")
             + f"; load average {ours['load']:.1f} / {base['load']:.1f} on 2 cores")


def bench_compile_flow_itinerary_cold_series(quick):
    """The width study's tanh problem with the Hermite series against the 96² rule, each in its own fresh
    process with an empty cache, in the same run (series first)."""
    spec = dict(_SERIES, width=2, d=4, tag="tanh_pop_4_4_2") if quick else _SERIES
    series, base = _each_fresh({m: dict(spec, gaussian_method=m, tag=f"{spec['tag']}_{m}")
                                for m in ("series", "auto")}).values()
    return _against("compile_flow_itinerary_cold_series_s", spec["tag"], series, base,
                    ("series", "the 96² rule"), ("series", "gauss_hermite"),
                    "the default 96² Gauss–Hermite rule in a fresh process of the same run",
                    lambda r: f"{len(r['programs'])} programs; XLA {r['xla_s']:.1f} s")


def bench_compile_flow_itinerary_cold_host(quick):
    """The cold entry with `itinerary(refine_options=dict(dense_loop="host"))` against the default, each in
    its own fresh process with an empty cache, in the same run (host first)."""
    spec = _POPULATION_QUICK if quick else _POPULATION
    host, base = _each_fresh({loop: dict(spec, refine=dict(dense_loop=loop))
                              for loop in ("host", "compiled")}).values()
    return _against("compile_flow_itinerary_cold_host_s", spec["tag"], host, base,
                    ("dense_loop='host'", "'compiled'"), ("host", "compiled"),
                    'the default dense_loop="compiled" in a fresh process of the same run',
                    lambda r: f"{len(r['programs'])} programs; refinement "
                              f"{r['by_part'].get('refinement', {}).get('cpu', 0.0):.1f} s CPU")


#: LLVM's optimization level for every program of the cold entry (XLA's default is 2).
_LLVM_LEVELS = {"default": {}, "O1": {"xla_backend_optimization_level": 1},
                "O0": {"xla_backend_optimization_level": 0}}


def bench_compile_flow_itinerary_cold_llvm(quick):
    """The cold entry with every program compiled at LLVM -O1 and -O0 against XLA's default, each in its
    own fresh process with an empty cache, in the same run: how much of the cold cost LLVM's optimization
    is, and whether the visits keep their labels (the bits of every program move)."""
    spec = _POPULATION_QUICK if quick else _POPULATION
    runs = _each_fresh({k: dict(spec, xla_options=v, tag=f"{spec['tag']}_{k}")
                        for k, v in _LLVM_LEVELS.items()})
    base = runs["default"]

    def told(key):
        r = runs[key]
        return (f"{key} {r['overhead_wall']:.2f} s wall, {r['overhead_cpu']:.2f} s CPU, warm run "
                f"{r['again']['wall']:.2f} s, visits {r['first']['sequence']}")

    return dict(
        name="compile_flow_itinerary_cold_llvm_s", ours_s=runs["O0"]["overhead_wall"],
        baseline_s=base["overhead_wall"], ratio=runs["O0"]["overhead_wall"] / base["overhead_wall"],
        baseline="XLA's default LLVM level (2) in a fresh process of the same run",
        extra=runs, note=f"{spec['tag']}: first − second run, " + "; ".join(told(k) for k in runs)
        + f"; load average {max(r['load'] for r in runs.values()):.1f} on 2 cores")


def bench_refine_dense_loop_warm(quick):
    """Warm refinements with `dense_loop="host"` against the compiled loop, alternating, median of 3 (CPU
    time of the process): the price per iteration of the host loop's kernel calls once both are
    compiled. ReLU population 10-4-4 (quick: erf 4-2-2), six guesses from `init(seed, scale=0.3)`."""
    import statistics
    import time

    import numpy as np

    import flowtools as ft

    spec = dict(_POPULATION_QUICK if quick else _POPULATION)
    tag = spec.pop("tag")
    spec.pop("seed")
    problem = ft.problems.teacher_student(**spec)
    guesses = [np.asarray(problem.model.init(s, "normal", scale=0.3)) for s in range(6)]
    for loop in ("compiled", "host"):  # compile both
        ft.find_critical_point(problem, guesses[0], dense_loop=loop)
    cpu, wall, points = {"compiled": [], "host": []}, {"compiled": [], "host": []}, {}
    for _ in range(3):
        for loop in ("compiled", "host"):
            w, c = time.perf_counter(), time.process_time()
            points[loop] = [ft.find_critical_point(problem, g, dense_loop=loop) for g in guesses]
            cpu[loop].append(time.process_time() - c)
            wall[loop].append(time.perf_counter() - w)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    its = sum(cp.iterations for cp in points["host"])
    same = sum(a.kind == b.kind and a.signature == b.signature and a.status == b.status
               for a, b in zip(points["host"], points["compiled"]))
    dtheta = max(float(np.max(np.abs(a.theta - b.theta))) for a, b in zip(points["host"], points["compiled"]))
    return dict(name="refine_dense_loop_warm_s", ours_s=med["host"], baseline_s=med["compiled"],
                ratio=med["host"] / med["compiled"], baseline='dense_loop="compiled" (CPU s, same run)',
                extra=dict(cpu=cpu, wall=wall),
                note=f"{tag}: six refinements, {its} iterations: CPU {med['host']:.3f} s host against "
                     f"{med['compiled']:.3f} s compiled (median of 3, alternating); {same}/6 with the same kind, "
                     f"signature and status; max |Δθ| {dtheta:.1e}; load average {os.getloadavg()[0]:.1f}")


def bench_compile_worker_shape_change(quick):
    """Process A compiles both shapes into an empty store; then fresh processes on that store, with the
    read-ahead off and on (`flowtools._read_ahead.READ_AHEAD`) in turn, `pairs` of each: the row is the
    median width-3 overhead without it, as sweep workers run (they turn it off), the note gives both
    (the single runs vary by ±30 % here)."""
    import statistics

    pairs = 2 if quick else 3
    with tempfile.TemporaryDirectory() as cache:
        a, _ = _fresh_process_args(_FINITE, cache)
        runs, loads = {True: [], False: []}, []
        for _ in range(pairs):
            for on in (True, False):
                res, _ = _fresh_process_args([dict(s, read_ahead=on) for s in _FINITE], cache)
                runs[on].append(res["runs"][1])
                loads.append(res["load"])
    cold = a["runs"][1]
    med = {on: {k: statistics.median(r[k] for r in rs) for k in ("overhead_wall", "overhead_cpu")}
           for on, rs in runs.items()}
    warm = med[False]["overhead_wall"]

    def told(on):
        w = sorted(r["overhead_wall"] for r in runs[on])
        return (f"{med[on]['overhead_wall']:.3f} s wall ({w[0]:.3f}–{w[-1]:.3f}), "
                f"{med[on]['overhead_cpu']:.3f} s CPU")

    return dict(
        name="compile_worker_shape_change_s", ours_s=warm, baseline_s=cold["overhead_wall"],
        ratio=warm / cold["overhead_wall"], target=0.3 / cold["overhead_wall"],
        baseline="the same shape's cold cost in the process that compiled it (same run); target: ≤ 0.3 s",
        extra=dict(read_ahead=runs[True], without_read_ahead=runs[False], cold=cold, load_cold=a["load"],
                   loads=loads, median_with_read_ahead_s=med[True]["overhead_wall"]),
        note=f"{cold['tag']} after {a['runs'][0]['tag']} in a process on a warm store, medians of {pairs} "
             f"processes: {told(False)} without the read-ahead (as sweep workers run), {told(True)} with it "
             f"({runs[True][0]['read_ahead_hits']} executables read ahead per process; a process with an "
             f"idle core), alternated; ratio {med[True]['overhead_wall'] / warm:.2f}; cold "
             f"{cold['overhead_wall']:.2f} s wall, "
             f"{cold['overhead_cpu']:.2f} s CPU; load average {max(loads):.1f} on 2 cores")


_ESCAPE_SCRIPT = r"""
import contextlib, json, os, sys, time
import numpy as np
import flowtools as ft
from flowtools import _aot
from flowtools.escape import _flow
if os.environ.get("BENCH_RAISING_CHECKS") == "1":  # the program calls back, as before: not stored
    _aot._checks_return_nan = lambda active: contextlib.nullcontext()
spec = json.loads(sys.argv[1])
problem = (ft.problems.minimal_model(loss="mse") if spec is None else ft.problems.teacher_student(**spec))
theta0 = np.asarray(ft.problems.MINIMAL_MODEL_THETA0 if spec is None
                    else problem.model.init(0, "normal", scale=0.1))
wall, cpu = time.perf_counter(), time.process_time()
run = ft.escape_flow(problem, theta0, theta0, 0.05, t1=1e5)
print(json.dumps(dict(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu,
                      source=list(_flow._COMPILED_FROM.values()), status=str(run.trajectory.status),
                      theta=[float(v).hex() for v in run.trajectory.final_theta], load=os.getloadavg()[0])))
"""


def bench_compile_escape_flow_warm(quick):
    """The first escape flow of a process on a warm store against processes that compile it (its checks
    traced to raise, so its program calls back into Python), alternated, medians of 3 (quick: 2)."""
    import statistics

    spec = None if quick else {k: v for k, v in _POPULATION.items() if k not in ("seed", "tag")}
    tag = "minimal model" if quick else _POPULATION["tag"]
    rounds = 2 if quick else 3
    def run(key, cache):
        os.environ["BENCH_RAISING_CHECKS"] = "1" if key == "raising" else "0"
        try:
            return fresh_process(_ESCAPE_SCRIPT, cache, json.dumps(spec))[0]
        finally:
            os.environ.pop("BENCH_RAISING_CHECKS", None)

    # each kind warms its own cache first: the small kernels are there for both, the solve only for one
    with tempfile.TemporaryDirectory() as stored, tempfile.TemporaryDirectory() as raising:
        caches = {"stored": stored, "raising": raising}
        first = {key: run(key, cache) for key, cache in caches.items()}
        runs = {"stored": [], "raising": []}
        for _ in range(rounds):
            for key in runs:
                runs[key].append(run(key, caches[key]))
    med = {k: statistics.median(r["wall"] for r in v) for k, v in runs.items()}
    same = all(r["theta"] == first["stored"]["theta"] for v in [*runs.values(), first.values()] for r in v)
    return dict(
        name="compile_escape_flow_warm_s", ours_s=med["stored"], baseline_s=med["raising"],
        ratio=med["stored"] / med["raising"], target=1.0,
        baseline="the same first call compiling its program (checks traced to raise), same run",
        extra=dict(runs=runs, first=first),
        note=f"{tag}: first escape_flow of a process on a warm store, medians of {rounds}: "
             f"{med['stored']:.3f} s ({runs['stored'][0]['source'][0]}) against {med['raising']:.3f} s "
             f"({runs['raising'][0]['source'][0]}); final θ {'the same bits' if same else 'DIFFERS'} in "
             f"every process; load average {max(r['load'] for v in runs.values() for r in v):.1f}")


_OPTIONS_SCRIPT = r"""
import json, sys, time
import numpy as np
import jax
import flowtools as ft
from flowtools import _aot

first_call, _compile_function = {}, _aot.compile_function
def capture(fn, args, kw, options, for_store=False):
    first_call.setdefault(f"{fn.__module__}.{fn.__qualname__}", (fn, args, kw, options))
    return _compile_function(fn, args, kw, options, for_store)
_aot.compile_function = capture

spec, option_sets = json.loads(sys.argv[1]), json.loads(sys.argv[2])
problem = ft.problems.teacher_student(**spec)
traj = ft.gradient_flow(problem, np.asarray(problem.model.init(0, "normal", scale=0.1)), 1e6, gtol=1e-9,
                        solver="bdf")
ft.itinerary(problem, traj)
states = [jax.device_put(th) for th in np.asarray(traj.theta)[::max(1, len(traj.t) // 16)]]

def bits(out):
    return [np.asarray(x).tobytes() for x in jax.tree_util.tree_leaves(out) if hasattr(x, "shape")]

rows = []
for name, (fn, args, kw, options) in first_call.items():
    if options:  # the solves, compiled with _cache.compiler_options() already
        continue
    # a kernel of (problem, θ) is also compared at the flow's saved states
    inputs = [args] + ([(args[0], th) for th in states] if len(args) == 2 and not kw
                       and getattr(args[1], "shape", None) == (problem.n_params,) else [])
    reference, row = None, dict(kernel=name, inputs=len(inputs))
    for label, opts in option_sets.items():
        cpu = time.process_time()
        try:
            exe = _compile_function(fn, args, kw, opts)
        except Exception as err:  # an option this jaxlib does not take per compile
            row[label] = dict(error=str(err).splitlines()[0][:120])
            continue
        cpu = time.process_time() - cpu
        out = [bits(exe(*a, **kw)) for a in inputs]
        reference = out if reference is None else reference
        run = time.perf_counter()
        for _ in range(5):
            jax.block_until_ready(exe(*args, **kw))
        row[label] = dict(compile_cpu=cpu, run_s=(time.perf_counter() - run) / 5,
                          inputs_differing=sum(a != b for a, b in zip(out, reference)))
    rows.append(row)
print(json.dumps(dict(spec=spec, rows=rows)))
"""

#: XLA options tried per kernel by `python benchmarks/bench_compile.py` (the first is the reference)
OPTION_SETS = {"default": {}, "older emitters": {"xla_cpu_use_fusion_emitters": False},
               "LLVM -O0": {"xla_backend_optimization_level": 0},
               "no expensive LLVM passes": {"xla_llvm_disable_expensive_passes": True}}
OPTION_PROBLEMS = [dict(d=10, k=4, width=4, activation="relu", data="population"),
                   dict(d=4, k=2, width=3, activation="tanh", data="population"),
                   dict(d=4, k=2, width=3, activation="tanh", n=200)]


def main(argv=None):
    """Per-kernel XLA options: for each small kernel of a flow + itinerary (compiled as the store does,
    with the persistent cache off), the CPU seconds of its compile under each of `OPTION_SETS`, the run
    time, and on how many inputs (its first call and the flow's saved states) its output bits differ
    from XLA's defaults. A faster option that changes bits cannot go on the default path."""
    import argparse
    import os
    import subprocess
    import sys

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.parse_args(argv)
    env = dict(os.environ, FLOWTOOLS_CACHE="0", FLOWTOOLS_PROGRESS="0")
    for spec in OPTION_PROBLEMS:
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", _OPTIONS_SCRIPT, json.dumps(spec),
                              json.dumps(OPTION_SETS)], env=env, capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\n{res['spec']}  (load average {os.getloadavg()[0]:.1f})")
        print(f"{'kernel':<46s} " + " ".join(f"{k:>28s}" for k in OPTION_SETS))
        for row in res["rows"]:
            cells = []
            for label in OPTION_SETS:
                c = row.get(label, {})
                cells.append(c["error"][:28] if "error" in c else
                             f"{c['compile_cpu']:5.2f} s {1e3 * c['run_s']:7.2f} ms "
                             f"{c['inputs_differing']:>2d}/{row['inputs']:<2d}")
            print(f"{row['kernel'].split('.', 1)[1]:<46s} " + " ".join(f"{c:>28s}" for c in cells))
    print("\ncells: compile CPU, run time, inputs whose output bits differ from 'default'")


# The cold population entry takes about 26 s of CPU (the flow's solve a third of it): --full only, to
# keep `make bench` within its 10 minutes; `--only compile_flow_itinerary_cold` runs it alone.
BENCHMARKS = [bench_compile_worker_shape_change]
FULL_BENCHMARKS = [bench_compile_flow_itinerary_cold, bench_compile_flow_itinerary_cold_host,
                   bench_compile_flow_itinerary_cold_series, bench_compile_flow_itinerary_cold_llvm,
                   bench_compile_escape_flow_warm, bench_refine_dense_loop_warm]


if __name__ == "__main__":
    main()
