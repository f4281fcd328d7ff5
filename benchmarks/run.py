"""Run every benchmark in benchmarks/bench_*.py, print a table and write results/benchmarks/summary.json.

Each module defines `BENCHMARKS`, a list of functions `fn(quick: bool) -> dict | list[dict]`. An entry
dict has `name`, `ours_s`, `baseline_s`, `ratio` (= ours_s / baseline_s, both measured in this run),
`baseline` (what was compared against), and optionally `target` (the ratio to stay under), `extra`
(other numbers) and `note`.

Usage: python benchmarks/run.py [--quick] [--only SUBSTRING ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import flowtools as ft  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def _modules():
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = mod
        spec.loader.exec_module(mod)
        yield path.stem, mod


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--only", nargs="*", default=None, help="run entries whose function name contains one of these")
    ap.add_argument("--out", default="results/benchmarks/summary.json")
    args = ap.parse_args(argv)
    entries = []
    for mod_name, mod in _modules():
        for fn in getattr(mod, "BENCHMARKS", []):
            if args.only and not any(s in fn.__name__ for s in args.only):
                continue
            t = time.perf_counter()
            print(f"[{mod_name}] {fn.__name__} …", flush=True)
            res = fn(args.quick)
            for e in res if isinstance(res, list) else [res]:
                e.setdefault("module", mod_name)
                e["seconds_in_benchmark"] = round(time.perf_counter() - t, 2)
                entries.append(e)
    print()
    print(f"{'entry':<44s} {'ours_s':>10s} {'baseline_s':>11s} {'ratio':>8s} {'target':>7s}  baseline")
    for e in entries:
        target = e.get("target")
        flag = "" if target is None else ("  ok" if e["ratio"] <= target else "  MISSED")
        print(f"{e['name']:<44s} {e['ours_s']:>10.4g} {e['baseline_s']:>11.4g} {e['ratio']:>8.3g} "
              f"{'' if target is None else f'≤{target:g}':>7s}  {e.get('baseline', '')}{flag}")
        if e.get("note"):
            print(f"{'':<44s} note: {e['note']}")
    summary = dict(
        flowtools_version=ft.__version__, jax_version=jax.__version__, backend=jax.default_backend(),
        devices=[str(d) for d in jax.devices()], machine=platform.machine(), python=platform.python_version(),
        quick=args.quick, entries=entries,
    )
    ft.io.write_json(args.out, summary)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
