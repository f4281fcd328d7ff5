"""Compile once, load everywhere: the compile cost of a flow and its itinerary, in fresh processes.

Each process runs `gradient_flow` (default BDF, to ‖∇L‖ ≤ 1e-9) and `itinerary` on a problem twice; the
second run finds every kernel compiled, so first − second is what compiling (or loading) cost. Both
the wall time and the process CPU time of that difference are reported: the machine is shared, and
CPU time is what the load changes least. θ0 is drawn before the timed runs (its `init` time is in
`extra`).

- `compile_flow_itinerary_cold_s`: a new population problem (ReLU teacher–student on the population
  loss, d = 10, k = 4, width 4: `flowtools.gaussian`'s closed form; `--quick`: erf, d = 4, k = 2,
  width 2) in a fresh process with an empty compilation cache and executable store. Target ≤ 5 s.
  In `--full` runs only (about 45 s of CPU).
- `compile_worker_shape_change_s`: a worker that moves to a shape another process compiled. Process A
  (empty cache) runs the finite-data teacher–student (tanh, d = 4, k = 2, n = 200) at widths 2 and 3;
  process B, on A's cache, runs width 2 and then width 3: the row is B's cost at width 3. Target ≤ 0.3 s.
  `baseline_s` is A's cold cost at width 3 in the same run.

`extra` holds where each stored kernel came from (`flowtools._stored_jit.origins`), the flow's own
compile step, and the load average.
"""

from __future__ import annotations

import json
import pathlib
import tempfile

_SCRIPT = r"""
import json, os, sys, time
import numpy as np
import flowtools as ft
try:
    from flowtools import _stored_jit
except ImportError:  # a flowtools without the store for small kernels (for before/after runs)
    _stored_jit = None

def once(problem, theta0):
    wall, cpu = time.perf_counter(), time.process_time()
    traj = ft.gradient_flow(problem, theta0, 1e6, gtol=1e-9, solver="bdf")
    itin = ft.itinerary(problem, traj)
    return dict(wall=time.perf_counter() - wall, cpu=time.process_time() - cpu,
                flow_compile=traj.stats["compile_time"], status=str(traj.status),
                sequence=" > ".join(v.kind for v in itin.visits))

runs = []
for spec in json.loads(sys.argv[1]):
    spec = dict(spec)
    seed, tag = spec.pop("seed"), spec.pop("tag")
    problem = ft.problems.teacher_student(**spec)
    t = time.perf_counter()
    theta0 = np.asarray(problem.model.init(seed, "normal", scale=0.1))
    init_s = time.perf_counter() - t
    for k in _stored_jit.KERNELS if _stored_jit else ():
        k.origins.clear()
    first, again = once(problem, theta0), once(problem, theta0)
    assert first["sequence"] == again["sequence"], (first, again)
    runs.append(dict(tag=tag, n_params=problem.n_params, init_s=init_s, first=first, again=again,
                     overhead_wall=first["wall"] - again["wall"], overhead_cpu=first["cpu"] - again["cpu"],
                     origins=_stored_jit.origins() if _stored_jit else None))
print(json.dumps(dict(runs=runs, load=os.getloadavg()[0])))
"""

_POPULATION = dict(d=10, k=4, width=4, activation="relu", data="population", seed=0, tag="relu_pop_10_4_4")
_POPULATION_QUICK = dict(d=4, k=2, width=2, activation="erf", data="population", seed=0, tag="erf_pop_4_2_2")
_FINITE = [dict(d=4, k=2, width=w, activation="tanh", n=200, seed=0, tag=f"tanh_4_2_{w}") for w in (2, 3)]


def _fresh_process_args(specs, cache):
    """Run `_SCRIPT` on `specs` in a fresh Python whose compilation cache is `cache`; its JSON line."""
    import os
    import subprocess
    import sys
    import time

    env = dict(os.environ, FLOWTOOLS_CACHE_DIR=str(cache), FLOWTOOLS_PROGRESS="0")
    env.pop("FLOWTOOLS_CACHE", None)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(specs)], env=env, capture_output=True,
                         text=True, check=True)
    wall = time.perf_counter() - t
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"no result line from the fresh process; stderr: {out.stderr[-2000:]}")
    return json.loads(lines[-1]), wall


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
             f"{r['first']['flow_compile']:.2f} s); load average {res['load']:.1f} on 2 cores")


def bench_compile_worker_shape_change(quick):
    with tempfile.TemporaryDirectory() as cache:
        a, _ = _fresh_process_args(_FINITE, cache)
        b, wall = _fresh_process_args(_FINITE, cache)
    cold, warm = a["runs"][1], b["runs"][1]
    return dict(
        name="compile_worker_shape_change_s", ours_s=warm["overhead_wall"], baseline_s=cold["overhead_wall"],
        ratio=warm["overhead_wall"] / cold["overhead_wall"], target=0.3 / cold["overhead_wall"],
        baseline="the same shape's cold cost in the process that compiled it (same run); target: ≤ 0.3 s",
        extra=dict(warm=warm, cold=cold, warm_first_shape=b["runs"][0], process_wall_s=wall,
                   load_cold=a["load"], load_warm=b["load"]),
        note=f"{warm['tag']} after {b['runs'][0]['tag']} in a process on a warm store: "
             f"{warm['overhead_wall']:.3f} s wall, {warm['overhead_cpu']:.3f} s CPU (flow's solve "
             f"{warm['first']['flow_compile']:.3f} s); cold {cold['overhead_wall']:.2f} s wall, "
             f"{cold['overhead_cpu']:.2f} s CPU; load average {b['load']:.1f} on 2 cores")


# The cold population entry takes about 45 s of CPU (the flow's solve is most of it): --full only, to
# keep `make bench` within its 10 minutes; `--only compile_flow_itinerary_cold` runs it alone.
BENCHMARKS = [bench_compile_worker_shape_change]
FULL_BENCHMARKS = [bench_compile_flow_itinerary_cold]
