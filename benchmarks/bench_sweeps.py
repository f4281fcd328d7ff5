"""Sweeps: a 2-worker Dask sweep against a serial loop, and a warm compilation cache against a cold one.

`sweep_vs_serial_loop`: the same flow + itinerary points (teacher–student, d_in = 4, k = 2, widths 2
and 3, 16 seeds each, n = 2000 samples) run (a) by a plain Python loop over `flowtools.sweeps.flow_itinerary` in one fresh
process and (b) by `flowtools.sweep(..., workers=2)` in another fresh process, each with its own empty
compilation cache, so imports, compiles, the cluster start and (for b) the store writes are all
included. Both sides compute the same points and the entry checks that they agree (node sequences,
final losses). Also measured: two loops side by side over alternate points, each in its own fresh
process, unbound, as one would start them by hand (`extra.split_s`): what running the sweep by hand on
both cores gives (each loop compiles every shape, and the loops' XLA pools busy-wait on each other's
core; docs/sweeps.md, "Speed"); with `--full`, `sweep(..., workers=0)` (serial, same store writes,
no Dask). The entry also records the CPU time of each side (all processes; less sensitive to the
machine's other load than wall time) and the phases of the 2-worker sweep (`SweepResult.timings`).
Target: ratio ≤ 0.6 on 2 cores (ideal 0.5).

`sweep_vs_serial_work_size` (`--full`): the same comparison with 64 seeds per width (128 points), i.e.
four times the work against the same fixed costs (imports, cluster start, one compile per shape).

`compile_cache_warm_vs_cold`: the compile time reported by `gradient_flow` in a fresh process whose
cache directory is empty, then in a second fresh process on the same directory.

All run in subprocesses, so the numbers include nothing this process compiled before.
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
t_import = time.perf_counter() - t0
configs = json.loads(sys.argv[1])
seen, first, rest, out = set(), 0.0, 0.0, []
for c in configs:
    t = time.perf_counter()
    r = S.flow_itinerary(c)
    dt = time.perf_counter() - t
    key = json.dumps({k: v for k, v in c.items() if k != "seed"}, sort_keys=True)
    first, rest = (first, rest + dt) if key in seen else (first + dt, rest)
    seen.add(key)
    out.append(dict(sequence=r["sequence"], terminal=r["terminal"], final_loss=r["final_loss"]))
print(json.dumps(dict(seconds=time.perf_counter() - t0, import_s=t_import, first_points_s=first,
                      other_points_s=rest, outcomes=out)))
"""

_SWEEP = """
import json, sys, time
def main():
    t0 = time.perf_counter()
    import flowtools.sweeps as S
    t_import = time.perf_counter() - t0
    configs = json.loads(sys.argv[1])
    r = S.sweep("flow_itinerary", configs, sys.argv[2], workers=int(sys.argv[3]), progress=False)
    assert not r.failed and r.n_run == len(configs), r
    seconds = time.perf_counter() - t0
    recs = [S.load_record(sys.argv[2], i)["outcomes"] for i in range(len(configs))]
    print(json.dumps(dict(seconds=seconds, import_s=t_import, timings=r.timings,
                          point_wall_sum_s=sum(o["wall_time"] for o in recs),
                          outcomes=[dict(sequence=o["sequence"], terminal=o["terminal"],
                                         final_loss=o["final_loss"]) for o in recs])))
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
    """(its JSON line, wall seconds, CPU seconds of it and all its child processes)."""
    outs, wall, cpu = _side_by_side([(code, args, cache_dir)], cwd)
    return outs[0], wall, cpu


def _side_by_side(runs, cwd):
    """Start every (code, args, cache_dir) as its own Python process at once and wait for all:
    (their JSON lines, wall seconds until the last ends, CPU seconds of all of them)."""
    t, c = time.perf_counter(), os.times()
    procs = []
    for code, args, cache_dir in runs:
        env = dict(os.environ, FLOWTOOLS_CACHE_DIR=str(cache_dir), FLOWTOOLS_PROGRESS="0")
        env.pop("XLA_FLAGS", None)
        procs.append(subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=cwd,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=3600) for p in procs]
    wall, c2 = time.perf_counter() - t, os.times()
    for p, (_, err) in zip(procs, results):
        if p.returncode != 0:
            raise RuntimeError(err[-3000:])
    cpu = (c2.children_user + c2.children_system) - (c.children_user + c.children_system)
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in results], wall, cpu


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _agree(a, b) -> dict:
    """Whether two runs of the same points agree: node sequences, terminals, final losses."""
    same_seq = all(x["sequence"] == y["sequence"] and x["terminal"] == y["terminal"] for x, y in zip(a, b))
    rel = max(abs(x["final_loss"] - y["final_loss"]) / max(abs(x["final_loss"]), abs(y["final_loss"]), 1e-300)
              for x, y in zip(a, b))
    return dict(same_sequences=bool(same_seq and len(a) == len(b)), max_rel_final_loss_diff=rel)


def _compare(configs, label: str, serial_sweep: bool = True) -> dict:
    load_start = _load()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        loop, loop_wall, loop_cpu = _python(_LOOP, [json.dumps(configs)], tmp / "cache_loop", tmp)
        sweep, sweep_wall, sweep_cpu = _python(_SWEEP, [json.dumps(configs), str(tmp / "store"), "2"],
                                               tmp / "cache_sweep", tmp)
        # The hand-made alternative: two loops side by side over alternate points, no Dask.
        halves, split_wall, split_cpu = _side_by_side(
            [(_LOOP, [json.dumps(configs[h::2])], tmp / f"cache_half{h}") for h in (0, 1)], tmp)
        split_outcomes = [None] * len(configs)
        split_outcomes[0::2], split_outcomes[1::2] = halves[0]["outcomes"], halves[1]["outcomes"]
        serial = None
        if serial_sweep:
            serial, serial_wall, serial_cpu = _python(_SWEEP, [json.dumps(configs), str(tmp / "store0"), "0"],
                                                      tmp / "cache_serial", tmp)
    phases = dict(driver_import=sweep["import_s"], **sweep["timings"])
    extra = dict(points=len(configs), loop_cpu_s=loop_cpu, sweep_cpu_s=sweep_cpu, cpu_ratio=sweep_cpu / loop_cpu,
                 loop_phases=dict(import_s=loop["import_s"], first_point_per_shape_s=loop["first_points_s"],
                                  other_points_s=loop["other_points_s"]),
                 sweep_phases=phases, sweep_point_wall_sum_s=sweep["point_wall_sum_s"],
                 agreement=_agree(loop["outcomes"], sweep["outcomes"]), load_average_start=load_start,
                 split_s=split_wall, split_cpu_s=split_cpu, split_ratio_to_loop=split_wall / loop_wall,
                 sweep_over_split=sweep_wall / split_wall,
                 agreement_split=_agree(loop["outcomes"], split_outcomes),
                 load_average_end=_load(), cpu_count=os.cpu_count())
    if serial is not None:
        extra.update(serial_sweep_s=serial_wall, serial_sweep_cpu_s=serial_cpu,
                     ratio_to_serial_sweep=sweep_wall / serial_wall,
                     serial_sweep_phases=dict(driver_import=serial["import_s"], **serial["timings"]),
                     agreement_serial_sweep=_agree(serial["outcomes"], sweep["outcomes"]))
    return dict(name=label, ours_s=sweep_wall, baseline_s=loop_wall, ratio=sweep_wall / loop_wall, target=0.6,
                baseline="a Python loop over the same points in one process", extra=extra,
                note="fresh processes with empty compilation caches: imports, compiles, cluster start and "
                     "zarr writes included; the machine's other load inflates both sides")


def _configs(seeds, widths, n):
    import flowtools.sweeps as S

    return S.grid(width=widths, seed=range(seeds), activation="tanh", d_in=4, teacher_width=2, n=n,
                  t1=1e6, gtol=1e-9)


def sweep_vs_serial_loop(quick: bool, full: bool = False) -> dict:
    """32 points of 2 000 samples (≈ 2 s of work each after compilation, the scale of a research sweep's
    point); `--quick`: 4 points of 200. The serial sweep (`workers=0`, same store) runs in `--full` only."""
    seeds, widths, n = (4, [2], 200) if quick else (16, [2, 3], 2000)
    configs = _configs(seeds, widths, n)
    e = _compare(configs, f"sweep 2 workers vs serial loop ({len(configs)} flows, n = {n})", serial_sweep=full)
    e["extra"]["n"] = n
    return e


def sweep_vs_serial_work_size(quick: bool) -> list[dict]:
    """The default entry's points (n = 2000, widths 2 and 3) with 64 seeds per width instead of 16 (the
    width study's ≥ 64 seeds per point): the same fixed costs against four times the work."""
    seeds = 8 if quick else 64
    configs = _configs(seeds, [2, 3], 2000)
    e = _compare(configs, f"sweep vs loop, {seeds} seeds per width, n = 2000 ({len(configs)} flows)",
                 serial_sweep=False)
    e["extra"].update(n=2000, seeds_per_width=seeds,
                      loop_s_per_point_after_compile=e["extra"]["loop_phases"]["other_points_s"] / (len(configs) - 2))
    return [e]


def compile_cache_warm_vs_cold(quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        cold, cold_wall, _ = _python(_COMPILE, [], tmp / "cache", tmp)
        warm, warm_wall, _ = _python(_COMPILE, [], tmp / "cache", tmp)
    return dict(name="flow compile time, warm cache vs cold", ours_s=warm["compile_s"], baseline_s=cold["compile_s"],
                ratio=warm["compile_s"] / cold["compile_s"], baseline="a fresh process with an empty cache",
                extra=dict(process_wall_cold_s=cold_wall, process_wall_warm_s=warm_wall, load_average=_load()),
                note="teacher–student (4, 3, 1) tanh, default BDF flow; second process on the same cache")


# The sweep entry (about 140 s) is --full only since the speed entries of 2026-12-06 brought the default
# run to 703 s against its 600 s budget.
BENCHMARKS = [compile_cache_warm_vs_cold]
FULL_BENCHMARKS = [sweep_vs_serial_loop, sweep_vs_serial_work_size]
