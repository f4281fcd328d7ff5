"""Refinement near degenerate critical sets, on the width study's warm itinerary points: the default dense
Levenberg–Marquardt loop ("plain", each attempt run to max_iter before the fallbacks), the same loop with
slow attempts stopped at a window mark (`slow_window=25`) and `find_critical_point(corrector=True)`.

Each point (population loss, d = 10, a k = 4 teacher, a width-3 erf student by default;
`studies/width_sweep.py`) runs its gradient flow once; then its itinerary is built under each setting,
alternating, three times each (the median is reported, all warm). The entry prints, per setting, the
itinerary's wall time, the refinement iterations (all attempts), the refinements that needed a fallback
and the unrefined passages, and checks that the settings visit the same critical sets as the first
(`graph.match_distance`, the same-set rule). Run directly for the per-refinement table:

    python benchmarks/bench_refine.py [--seeds 0 1 2 3 4 5 6 7] [--activation erf] [--width 3]
        [--gaussian-method series] [--settings plain slow corrector]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
from unittest import mock

import jax

jax.config.update("jax_enable_x64", True)

import flowtools as ft  # noqa: E402
from flowtools import sweeps  # noqa: E402
from flowtools.graph import match_distance  # noqa: E402
from flowtools.itineraries import _refinement  # noqa: E402  (the refinement call is counted where it is made)

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "studies"))


#: The refinement settings compared (`itinerary(…, refine_options=…)`): the default loop, run to max_iter
#: before every fallback; one that stops a slow attempt at a window mark; the corrector.
SETTINGS = {"plain": {}, "slow": dict(slow_window=25), "corrector": dict(corrector=True)}


def _configs(activation, seeds, width=3, gaussian_method=None):
    import width_sweep

    rule = {} if gaussian_method is None else dict(gaussian_method=gaussian_method)
    return [dict(c, **rule) for c in width_sweep.configurations(width_sweep.FULL, 0, "population")
            if c["activation"] == activation and c["width"] == width and c["seed"] in seeds]


def _trajectory(config):
    """The flow of `sweeps.flow_itinerary` (its settings), once per point."""
    problem, _ = sweeps.make_problem(config)
    traj = ft.gradient_flow(problem, sweeps.initial_theta(problem, config), float(config.get("t1", 1e6)),
                            gtol=float(config.get("gtol", 1e-9)), solver=config.get("solver", "bdf"),
                            rtol=float(config.get("rtol", 1e-8)), atol=float(config.get("atol", 1e-10)),
                            max_steps=int(config.get("max_steps", 200_000)),
                            n_save=int(config.get("n_save", 200)))
    return problem, traj


def _itinerary(problem, traj, options):
    """(itinerary, wall time, refinement records [(iterations, attempts, status)])."""
    calls = []
    solve = _refinement.find_critical_point

    def counted(*args, **kwargs):
        cp = solve(*args, **kwargs)
        calls.append((cp.iterations, cp.attempts, cp.status))
        return cp

    with mock.patch.object(_refinement, "find_critical_point", counted):
        t = time.perf_counter()
        itin = ft.itinerary(problem, traj, refine_options=dict(options))
        wall = time.perf_counter() - t
    return itin, wall, calls


def _same_sets(problem, a, b) -> bool:
    if len(a.visits) != len(b.visits):
        return False
    d_out, n_train = problem.model.d_out, problem.x.shape[0]
    return all(va.kind == vb.kind and match_distance(vars(va), vars(vb), d_out, n_train) is not None
               for va, vb in zip(a.visits, b.visits))


def compare(activation="erf", seeds=(0, 2, 6), repeat=3, verbose=False, settings=("plain", "corrector"),
            width=3, gaussian_method=None):
    """Per point and setting (`SETTINGS`; the first is the reference): median wall time, iterations,
    fallbacks, unrefined; and whether each setting's sets agree with the reference's."""
    rows = []
    for config in _configs(activation, seeds, width, gaussian_method):
        problem, traj = _trajectory(config)
        for key in settings:
            _itinerary(problem, traj, SETTINGS[key])  # warm: compile each
        runs = {key: [] for key in settings}
        for _ in range(repeat):
            for key in settings:
                runs[key].append(_itinerary(problem, traj, SETTINGS[key]))
        out = dict(seed=config["seed"])
        for key in settings:
            itin, _, calls = runs[key][-1]
            out[key] = dict(time=statistics.median(r[1] for r in runs[key]),
                            iterations=sum(c[0] for c in calls),
                            fallbacks=sum(len(c[1]) > 1 for c in calls),
                            failed=sum(c[2] != "converged" for c in calls),
                            visits=" > ".join(f"{v.kind}{tuple(v.signature)}" for v in itin.visits))
            if verbose:
                for it, attempts, status in calls:
                    print(f"  seed {config['seed']} {key:9s} {status:10s} iterations {it:4d}  "
                          + " ".join(f"{a['status']}:{a['iterations']}" for a in attempts))
        out["same_sets"] = all(_same_sets(problem, runs[settings[0]][-1][0], runs[key][-1][0])
                               for key in settings[1:])
        rows.append(out)
    return rows


def _entry(name, rows, ours, base, baseline):
    t = {key: sum(r[key]["time"] for r in rows) for key in (ours, base)}
    its = {key: sum(r[key]["iterations"] for r in rows) for key in (ours, base)}
    same = all(r["same_sets"] for r in rows)
    return dict(name=name, ours_s=t[ours], baseline_s=t[base], ratio=t[ours] / t[base], baseline=baseline,
                extra={f"iterations_{base}": its[base], f"iterations_{ours}": its[ours], "same_sets": same},
                note=f"refinement iterations {its[base]} {base}, {its[ours]} {ours}; "
                     + ("the same critical sets (graph.match_distance)" if same
                        else "the itineraries visit different critical sets"))


def refine_stall(quick: bool):
    """The itinerary points of width-3 erf students (seeds 0, 2, 6; quick: 0), with and without the
    corrector."""
    rows = compare(seeds=(0,) if quick else (0, 2, 6), repeat=1 if quick else 3)
    return _entry("refine_stall (itinerary, width 3 erf)", rows, "corrector", "plain",
                  "find_critical_point without corrector")


def refine_slow(quick: bool, full: bool = False):
    """slow_window=25 (slow attempts stop at a window mark) against the default loop, each attempt run to
    max_iter: width-3 erf students (seeds 0, 2, 6; quick: 0); with --full also the series tanh width-6
    students of the width study (seeds 0, 4, 5), where a slow passage ran four attempts of 200 iterations."""
    rows = compare(seeds=(0,) if quick else (0, 2, 6), repeat=1 if quick else 3, settings=("plain", "slow"))
    out = [_entry("refine_slow (itinerary, width 3 erf)", rows, "slow", "plain",
                  "find_critical_point, each attempt to max_iter")]
    if full:
        rows = compare("tanh", (0, 4, 5), 3, settings=("plain", "slow"), width=6, gaussian_method="series")
        out.append(_entry("refine_slow (itinerary, width 6 tanh, series)", rows, "slow", "plain",
                          "find_critical_point, each attempt to max_iter"))
    return out


BENCHMARKS = [refine_stall]
FULL_BENCHMARKS = [refine_slow]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--activation", default="erf")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--width", type=int, default=3)
    ap.add_argument("--gaussian-method", choices=["auto", "series"], default=None)
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["plain", "slow", "corrector"],
                    help="the first is the reference of the same-sets check")
    args = ap.parse_args()
    sweeps.configure_worker()
    keys = tuple(args.settings)
    rows = compare(args.activation, args.seeds, args.repeat, verbose=True, settings=keys, width=args.width,
                   gaussian_method=args.gaussian_method)
    for r in rows:
        print(f"seed {r['seed']}: same critical sets: {r['same_sets']}")
        for key in keys:
            s = r[key]
            print(f"  {key:9s} {s['time']:6.3f} s  iterations {s['iterations']:4d}  fallbacks {s['fallbacks']}  "
                  f"not converged {s['failed']}  {s['visits']}")
    for key in keys:
        print(f"total {key:9s} {sum(r[key]['time'] for r in rows):7.3f} s  "
              f"iterations {sum(r[key]['iterations'] for r in rows)}")


if __name__ == "__main__":
    main()
