"""The `flowtools` command: `flowtools sweep CONFIG.toml …`, `flowtools merge SOURCE STORE`,
`flowtools check STORE`, `flowtools view PATH [--open]` and `flowtools studies [NAME [ARGS…]]`.

`flowtools sweep` exits 0 when every point returned, 1 when a point failed (its worker died) or
errored (its task raised), and 2 for a configuration or store it refuses before running anything.
`flowtools check` exits 1 when it finds damaged records and leaves them in place.

A sweep configuration is a TOML file:

```toml
task = "flow_itinerary"          # a built-in task, "module:function" or "file.py:function"
store = "results/sweeps/widths"  # the store directory (relative to the current directory)

[grid]                           # axes: the Cartesian product is the list of points
seed = [0, 1, 2, 3]
width = [1, 2, 3]

[fixed]                          # the same for every point
activation = "tanh"
```

Instead of `[grid]`, `[[points]]` tables list the configurations one by one (a ragged sweep); `[fixed]`
is added to each. A key is in [fixed] or varied, not both. Every configuration is checked against the
task's declared parameters before any point runs (`flowtools.sweeps.check_configurations`).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import pathlib
import sys
import tomllib

from .dynamics.progress import disabled as progress_disabled

__all__ = ["main", "read_config", "studies_directory", "list_studies"]


def read_config(path) -> tuple[str, list[dict], str | None]:
    """(task, configurations, store) from a sweep TOML file."""
    from .sweeps import grid

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {os.fspath(path)!r} does not exist.")
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{os.fspath(path)} is not valid TOML: {exc}") from None
    unknown = set(cfg) - {"task", "store", "grid", "fixed", "points"}
    if unknown:
        raise ValueError(f"{os.fspath(path)}: unknown keys {sorted(unknown)}; use task, store, grid, fixed, points.")
    if "task" not in cfg:
        raise ValueError(f"{os.fspath(path)} needs a task (e.g. task = \"flow_itinerary\").")
    fixed = dict(cfg.get("fixed", {}))
    if ("grid" in cfg) == ("points" in cfg):
        raise ValueError(f"{os.fspath(path)} needs exactly one of [grid] or [[points]].")
    if "grid" in cfg:
        varied = [dict(c) for c in grid(**cfg["grid"])]
        where = "[grid]"
    else:
        varied = [dict(p) for p in cfg["points"]]
        where = "[[points]]"
    both = sorted({k for c in varied for k in c} & set(fixed))
    if both:
        names = ", ".join(repr(k) for k in both)
        raise ValueError(f"{os.fspath(path)}: {names} in both [fixed] and {where}; "
                         f"a key is either fixed or varied, so keep it in one of them.")
    return cfg["task"], [dict(fixed, **c) for c in varied], cfg.get("store")


def studies_directory() -> pathlib.Path:
    """The studies/ folder: $FLOWTOOLS_STUDIES, else beside the package (a source checkout), else ./studies."""
    env = os.environ.get("FLOWTOOLS_STUDIES")
    candidates = [pathlib.Path(env)] if env else []
    candidates += [pathlib.Path(__file__).resolve().parents[1] / "studies", pathlib.Path.cwd() / "studies"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError("no studies/ folder found; set FLOWTOOLS_STUDIES to the studies directory of a "
                            "flowtools checkout.")


def list_studies() -> dict[str, str]:
    """{name: first line of the study's docstring} for every studies/*.py (private files excluded)."""
    out = {}
    for p in sorted(studies_directory().glob("*.py")):
        if p.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        out[p.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def _run_study(name: str, args: list[str]):
    studies = list_studies()
    if name not in studies:
        raise SystemExit(f"flowtools studies: no study {name!r}; choose from {', '.join(studies)}.")
    path = studies_directory() / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"flowtools_study_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args)


#: Exit codes of `flowtools sweep` and `flowtools check`.
EXIT_OK, EXIT_POINTS_FAILED, EXIT_USAGE = 0, 1, 2


def _usage_error(command: str, exc: BaseException) -> int:
    """One paragraph on stderr, no traceback."""
    print(f"flowtools {command}: {exc}", file=sys.stderr)
    return EXIT_USAGE


def _sweep(ns) -> int:
    from . import sweeps

    try:
        task, configs, store = read_config(ns.config)
        store = ns.store or store
        if not store:
            raise ValueError("give a store, in the config file (store = \"…\") or with --store.")
        configs = sweeps.check_configurations(task, configs)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        return _usage_error("sweep", exc)
    workers = ns.workers
    if ns.serial:
        workers = 0
    try:
        result = sweeps.sweep(task, configs, store, workers=workers, scheduler=ns.scheduler, resume=ns.resume,
                              retry_failed=ns.retry_failed, retries=ns.retries,
                              progress=None if progress_disabled() else True)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        return _usage_error("sweep", exc)
    print(result)
    if "status" in result.dataset:
        import collections

        done = result.dataset["finished"].values
        counts = collections.Counter(str(s) for s in result.dataset["status"].values[done])
        print("status:", ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    print(f"open with: flowtools.sweeps.open_results({os.fspath(result.store)!r})")
    records = os.fspath(pathlib.Path(result.store) / "points")
    if result.failed or result.errors:
        print(f"{len(result.failed)} failed (a worker died on the point, or none was left), "
              f"{len(result.errors)} errors (the task raised); the records, with the cause in 'error', "
              f"are in {records}/. Rerun only those points with --retry-failed.", file=sys.stderr)
        for i, msg in (result.failed + result.errors)[:5]:
            print(f"  point {i}: {msg.splitlines()[-1] if msg else ''}", file=sys.stderr)
        return EXIT_POINTS_FAILED
    return EXIT_OK


def _check(ns) -> int:
    from . import sweeps

    try:
        damaged = sweeps.check_store(ns.store, quarantine=ns.quarantine)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        return _usage_error("check", exc)
    if not damaged:
        print(f"{ns.store}: every point record reads.")
        return EXIT_OK
    verb = "moved to" if ns.quarantine else "damaged"
    print(f"{ns.store}: {len(damaged)} damaged point record(s)"
          + (f", moved into {os.path.join(ns.store, 'quarantine')}/" if ns.quarantine else "") + ":")
    for path, reason in damaged:
        print(f"  {verb} {os.fspath(path)}: {reason}")
    if ns.quarantine:
        print("rerun the sweep with --resume to run those points again.")
        return EXIT_OK
    print("readers skip them (the points count as not finished); --quarantine moves them aside.")
    return EXIT_POINTS_FAILED


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="flowtools", description=(
        "Run a sweep described by a TOML file, check a sweep store for damaged records, merge the finished "
        "points of one sweep store into another, or list and run the studies. Explore a saddle graph, a "
        "sweep store or a study's results in a browser with flowtools view."))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sweep", help="Run a sweep described by a TOML file.")
    p.add_argument("config", help="The sweep's TOML file.")
    p.add_argument("--workers", type=int, default=None,
                   help="The number of local worker processes (default: one per CPU).")
    p.add_argument("--scheduler", default=None, help="The address of a running Dask scheduler.")
    p.add_argument("--resume", action="store_true", help="Continue a store, skipping its finished points.")
    p.add_argument("--store", default=None, help="The store directory; overrides the one in the config file.")
    p.add_argument("--serial", action="store_true", help="Run the points in this process, without Dask.")
    p.add_argument("--retry-failed", action="store_true",
                   help="Resume, and run again only the points that failed or errored.")
    p.add_argument("--retries", type=int, default=1,
                   help="How many times a point whose worker died is run again before it is recorded as "
                   "failed (default 1).")
    c = sub.add_parser("check", help="List the damaged point records of a sweep store.")
    c.add_argument("store", help="The store directory.")
    c.add_argument("--quarantine", action="store_true",
                   help="Move damaged records into STORE/quarantine/, so that a resume runs those points again.")
    m = sub.add_parser("merge", help="Copy the finished points of one sweep store into another whose sweep "
                       "includes their configurations (flowtools.sweeps.merge_stores).")
    m.add_argument("source", help="The store to copy from, e.g. part of a grid run on another machine.")
    m.add_argument("store", help="The store of the full sweep.")
    v = sub.add_parser("view", help="Write an interactive page (one HTML file that works offline) to explore "
                       "a saddle graph, a sweep store or a study's results.")
    v.add_argument("path", help="A saddle-graph JSON or GraphML file, a sweep store, or a study's results "
                   "folder.")
    v.add_argument("--out", default=None, help="The HTML file to write (default: PATH.html beside a file, "
                   "PATH/view.html for a folder).")
    v.add_argument("--open", action="store_true", help="Open the page in the default web browser.")
    v.add_argument("--title", default=None, help="The page's title (default: what PATH is, and its name).")
    s = sub.add_parser("studies", help="List the studies, or run one: flowtools studies NAME [--quick …].")
    s.add_argument("name", nargs="?", help="The study to run; without it, the studies are listed.")
    s.add_argument("args", nargs=argparse.REMAINDER, help="Arguments passed to the study, e.g. --quick.")
    ns = parser.parse_args(argv)
    if ns.command == "sweep":
        if ns.workers is not None and ns.workers < 0:
            parser.error("--workers must be ≥ 0 (0 = serial)")
        if ns.retries < 0:
            parser.error("--retries must be ≥ 0")
        return _sweep(ns)
    if ns.command == "check":
        return _check(ns)
    if ns.command == "view":
        from .view import view

        try:
            out = view(ns.path, ns.out, open_browser=ns.open, title=ns.title)
        except (FileNotFoundError, ValueError) as exc:
            return _usage_error("view", exc)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); open it in a browser (it works offline)")
        return EXIT_OK
    if ns.command == "merge":
        from . import sweeps

        try:
            n = sweeps.merge_stores(ns.source, ns.store)
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f"flowtools merge: {exc}") from None
        print(f"copied {n} point(s) from {ns.source} into {ns.store}")
        return 0
    if ns.name is None:
        for name, line in list_studies().items():
            print(f"{name:22s} {line}")
        return 0
    _run_study(ns.name, ns.args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
