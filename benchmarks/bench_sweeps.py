"""Sweeps: a 2-worker Dask sweep against a serial loop, and a warm compilation cache against a cold one.

`sweep_vs_serial_loop`: the same flow + itinerary points (teacher–student, d_in = 4, k = 2, widths 2
and 3) run (a) by a plain Python loop over `flowtools.sweeps.flow_itinerary` in one fresh process and
(b) by `flowtools.sweep(..., workers=2)` in another fresh process, each with its own empty compilation
cache, so compile time, imports and (for b) the cluster start and the zarr writes are all included.
Target: ratio ≤ 0.6 on 2 cores (ideal 0.5).

`compile_cache_warm_vs_cold`: the compile time reported by `gradient_flow` in a fresh process whose
cache directory is empty, then in a second fresh process on the same directory.

Both run in subprocesses, so the numbers include nothing this process compiled before.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

_LOOP = """
import json, sys, time
t0 = time.perf_counter()
import flowtools.sweeps as S
configs = json.loads(sys.argv[1])
for c in configs:
    S.flow_itinerary(c)
print(json.dumps(dict(seconds=time.perf_counter() - t0)))
"""

_SWEEP = """
import json, sys, time
def main():
    t0 = time.perf_counter()
    import flowtools.sweeps as S
    r = S.sweep("flow_itinerary", json.loads(sys.argv[1]), sys.argv[2], workers=2, progress=False)
    assert not r.failed and r.n_run == len(json.loads(sys.argv[1])), r
    print(json.dumps(dict(seconds=time.perf_counter() - t0)))
if __name__ == "__main__":
    main()
"""

_COMPILE = """
import json, numpy as np
import flowtools as ft
import flowtools.sweeps as S
problem, _ = S.make_problem(dict(width=3, activation="tanh"))
traj = ft.gradient_flow(problem, S.initial_theta(problem, dict(seed=0)), 1e4, gtol=1e-9)
print(json.dumps(dict(compile_s=traj.stats["compile_time"], cache=ft.compilation_cache_dir())))
"""


def _python(code, args, cache_dir, cwd):
    env = dict(os.environ, FLOWTOOLS_CACHE_DIR=str(cache_dir), FLOWTOOLS_PROGRESS="0")
    env.pop("XLA_FLAGS", None)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, capture_output=True, text=True,
                         timeout=3600)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1]), wall


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def sweep_vs_serial_loop(quick: bool) -> dict:
    import flowtools.sweeps as S

    seeds = 4 if quick else 16
    widths = [2] if quick else [2, 3]
    configs = S.grid(width=widths, seed=range(seeds), activation="tanh", d_in=4, teacher_width=2, n=200,
                     t1=1e6, gtol=1e-9)
    load_start = _load()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        loop, loop_wall = _python(_LOOP, [json.dumps(configs)], tmp / "cache_loop", tmp)
        sweep, sweep_wall = _python(_SWEEP, [json.dumps(configs), str(tmp / "store")], tmp / "cache_sweep", tmp)
    return dict(name=f"sweep 2 workers vs serial loop ({len(configs)} flows)", ours_s=sweep_wall,
                baseline_s=loop_wall, ratio=sweep_wall / loop_wall, target=0.6,
                baseline="a Python loop over the same points in one process",
                extra=dict(points=len(configs), widths=widths, seeds=seeds, loop_inner_s=loop["seconds"],
                           sweep_inner_s=sweep["seconds"], load_average_start=load_start,
                           load_average_end=_load(), cpu_count=os.cpu_count()),
                note="fresh processes with empty compilation caches: imports, compiles, cluster start and "
                     "zarr writes included; the machine's other load inflates both sides")


def compile_cache_warm_vs_cold(quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        cold, cold_wall = _python(_COMPILE, [], tmp / "cache", tmp)
        warm, warm_wall = _python(_COMPILE, [], tmp / "cache", tmp)
    return dict(name="flow compile time, warm cache vs cold", ours_s=warm["compile_s"], baseline_s=cold["compile_s"],
                ratio=warm["compile_s"] / cold["compile_s"], baseline="a fresh process with an empty cache",
                extra=dict(process_wall_cold_s=cold_wall, process_wall_warm_s=warm_wall, load_average=_load()),
                note="teacher–student (4, 3, 1) tanh, default BDF flow; second process on the same cache")


BENCHMARKS = [sweep_vs_serial_loop, compile_cache_warm_vs_cold]
