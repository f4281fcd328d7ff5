"""Run the benchmarks in benchmarks/bench_*.py, print a table and write results/benchmarks/summary.json.

Three modes:

- default (`make bench`): every entry at the sizes that answer its question, in about 10 minutes on two
  cores (the total is printed and checked against `--budget`);
- `--full`: also the long sweeps and the largest sizes (an hour or more on two cores);
- `--quick`: the smallest sizes, a smoke run.

Adding an entry is one line: put its function in the module's `BENCHMARKS` list (default and full runs)
or `FULL_BENCHMARKS` list (full runs only). A new `benchmarks/bench_<topic>.py` is found by its name.
An entry is `fn(quick: bool) -> dict | list[dict]`, or `fn(quick: bool, full: bool)` when it has a
longer form for `--full`. A dict has `name`, `ours_s`, `baseline_s`, `ratio` (= ours_s / baseline_s,
both measured in this run), `baseline` (what was compared against), and optionally `target` (the ratio
to stay under), `extra` (other numbers) and `note`.

Usage: python benchmarks/run.py [--quick | --full] [--only SUBSTRING ...] [--list] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import pathlib
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import flowtools as ft  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_BUDGET_S = 600.0


def _modules():
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = mod
        spec.loader.exec_module(mod)
        yield path.stem, mod


def registered(full: bool):
    """(module name, function, full_only) for every registered entry of the run."""
    out = []
    for mod_name, mod in _modules():
        out += [(mod_name, fn, False) for fn in getattr(mod, "BENCHMARKS", [])]
        if full:
            out += [(mod_name, fn, True) for fn in getattr(mod, "FULL_BENCHMARKS", [])]
    return out


def call(fn, quick: bool, full: bool):
    """Call an entry with the mode it understands."""
    if "full" in inspect.signature(fn).parameters:
        return fn(quick, full=full)
    return fn(quick)


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smallest sizes, for a smoke run")
    mode.add_argument("--full", action="store_true", help="also the long sweeps and the largest sizes")
    ap.add_argument("--only", nargs="*", default=None,
                    help="run entries whose module or function name contains one of these")
    ap.add_argument("--list", action="store_true", help="list the entries of the run and exit")
    ap.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                    help="wall-time budget of a default run in seconds (reported, not enforced)")
    ap.add_argument("--out", default="results/benchmarks/summary.json")
    args = ap.parse_args(argv)
    run_mode = "quick" if args.quick else "full" if args.full else "default"
    selected = [(m, fn, f) for m, fn, f in registered(args.full)
                if not args.only or any(s in fn.__name__ or s in m for s in args.only)]
    if args.list:
        for m, fn, full_only in selected:
            print(f"{m}.{fn.__name__}{'  (--full only)' if full_only else ''}")
        return
    entries, timing, cpu_timing = [], [], {}
    load_start, t_run, cpu_run = _load(), time.perf_counter(), _cpu()
    for mod_name, fn, _ in selected:
        t, cpu = time.perf_counter(), _cpu()
        print(f"[{mod_name}] {fn.__name__} …", flush=True)
        res = call(fn, args.quick, args.full)
        seconds = round(time.perf_counter() - t, 2)
        timing.append((f"{mod_name}.{fn.__name__}", seconds))
        cpu_timing[f"{mod_name}.{fn.__name__}"] = round(_cpu() - cpu, 2)
        print(f"[{mod_name}] {fn.__name__}: {seconds:.1f} s wall, {cpu_timing[timing[-1][0]]:.1f} s CPU, "
              f"load {_load()}", flush=True)
        for e in res if isinstance(res, list) else [res]:
            e.setdefault("module", mod_name)
            e["seconds_in_benchmark"] = seconds
            entries.append(e)
    total, total_cpu = time.perf_counter() - t_run, _cpu() - cpu_run
    print()
    print(f"{'entry':<44s} {'ours_s':>10s} {'baseline_s':>11s} {'ratio':>8s} {'target':>7s}  baseline")
    for e in entries:
        target = e.get("target")
        flag = "" if target is None else ("  ok" if e["ratio"] <= target else "  MISSED")
        print(f"{e['name']:<44s} {e['ours_s']:>10.4g} {e['baseline_s']:>11.4g} {e['ratio']:>8.3g} "
              f"{'' if target is None else f'≤{target:g}':>7s}  {e.get('baseline', '')}{flag}")
        if e.get("note"):
            print(f"{'':<44s} note: {e['note']}")
    load_end = _load()
    # CPU time (all threads, and child processes) bounds the wall time on an idle machine from above as
    # long as one core is always busy; on a loaded machine the wall time is not a measure of the run.
    print(f"\nwall and CPU time per function ({run_mode} run):")
    for name, seconds in timing:
        print(f"  {name:<50s} {seconds:8.1f} s wall {cpu_timing[name]:8.1f} s CPU")
    print(f"  {'total':<50s} {total:8.1f} s wall {total_cpu:8.1f} s CPU   (load average at start "
          f"{load_start}, at end {load_end})")
    if run_mode == "default" and not args.only and total > args.budget:
        print(f"  the default run took {total:.0f} s, over its budget of {args.budget:.0f} s: move the "
              "longest entry's long form behind --full")
    summary = dict(
        flowtools_version=ft.__version__, jax_version=jax.__version__, backend=jax.default_backend(),
        devices=[str(d) for d in jax.devices()], machine=platform.machine(), python=platform.python_version(),
        cpu_count=os.cpu_count(), mode=run_mode, quick=args.quick, full=args.full, total_seconds=total,
        total_cpu_seconds=total_cpu, budget_seconds=args.budget, load_average_start=load_start,
        load_average_end=load_end, seconds_per_function=dict(timing), cpu_seconds_per_function=cpu_timing,
        entries=entries,
    )
    ft.io.write_json(args.out, summary)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
