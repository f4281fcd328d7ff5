"""Refinement near degenerate critical sets: `find_critical_point(corrector=True)` against the plain dense
Levenberg–Marquardt loop, on the width study's warm width-3 itinerary points.

Each point (population loss, d = 10, a k = 4 erf teacher, a width-3 student; `studies/width_sweep.py`)
runs its gradient flow once; then its itinerary is built with and without the corrector, alternating,
three times each (the median is reported, both warm). The entry prints, per setting, the itinerary's wall
time, the refinement iterations (all attempts), the refinements that needed a fallback and the unrefined
passages, and checks that both itineraries visit the same critical sets (`graph.match_distance`, the
same-set rule). Run directly for the per-refinement table:

    python benchmarks/bench_refine.py [--seeds 0 1 2 3 4 5 6 7] [--activation erf]
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


def _configs(activation, seeds):
    import width_sweep

    return [c for c in width_sweep.configurations(width_sweep.FULL, 0, "population")
            if c["activation"] == activation and c["width"] == 3 and c["seed"] in seeds]


def _trajectory(config):
    """The flow of `sweeps.flow_itinerary` (its settings), once per point."""
    problem, _ = sweeps.make_problem(config)
    traj = ft.gradient_flow(problem, sweeps.initial_theta(problem, config), float(config.get("t1", 1e6)),
                            gtol=float(config.get("gtol", 1e-9)), solver=config.get("solver", "bdf"),
                            rtol=float(config.get("rtol", 1e-8)), atol=float(config.get("atol", 1e-10)),
                            max_steps=int(config.get("max_steps", 200_000)),
                            n_save=int(config.get("n_save", 200)))
    return problem, traj


def _itinerary(problem, traj, corrector):
    """(itinerary, wall time, refinement records [(iterations, attempts, status)])."""
    calls = []
    solve = _refinement.find_critical_point

    def counted(*args, **kwargs):
        cp = solve(*args, **kwargs)
        calls.append((cp.iterations, cp.attempts, cp.status))
        return cp

    with mock.patch.object(_refinement, "find_critical_point", counted):
        t = time.perf_counter()
        itin = ft.itinerary(problem, traj, refine_options=dict(corrector=corrector))
        wall = time.perf_counter() - t
    return itin, wall, calls


def _same_sets(problem, a, b) -> bool:
    if len(a.visits) != len(b.visits):
        return False
    d_out, n_train = problem.model.d_out, problem.x.shape[0]
    return all(va.kind == vb.kind and match_distance(vars(va), vars(vb), d_out, n_train) is not None
               for va, vb in zip(a.visits, b.visits))


def compare(activation="erf", seeds=(0, 2, 6), repeat=3, verbose=False):
    """Per point and setting: median wall time, iterations, fallbacks, unrefined; and whether the sets agree."""
    rows = []
    for config in _configs(activation, seeds):
        problem, traj = _trajectory(config)
        for corrector in (False, True):
            _itinerary(problem, traj, corrector)  # warm: compile both
        runs = {False: [], True: []}
        for _ in range(repeat):
            for corrector in (False, True):
                runs[corrector].append(_itinerary(problem, traj, corrector))
        out = dict(seed=config["seed"])
        for corrector, key in ((False, "plain"), (True, "corrector")):
            itin, _, calls = runs[corrector][-1]
            out[key] = dict(time=statistics.median(r[1] for r in runs[corrector]),
                            iterations=sum(c[0] for c in calls),
                            fallbacks=sum(len(c[1]) > 1 for c in calls),
                            failed=sum(c[2] != "converged" for c in calls),
                            visits=" > ".join(f"{v.kind}{tuple(v.signature)}" for v in itin.visits))
            if verbose:
                for it, attempts, status in calls:
                    print(f"  seed {config['seed']} {key:9s} {status:10s} iterations {it:4d}  "
                          + " ".join(f"{a['status']}:{a['iterations']}" for a in attempts))
        out["same_sets"] = _same_sets(problem, runs[False][-1][0], runs[True][-1][0])
        rows.append(out)
    return rows


def refine_stall(quick: bool):
    """The itinerary points of width-3 erf students (seeds 0, 2, 6; quick: 0) with and without the corrector."""
    rows = compare(seeds=(0,) if quick else (0, 2, 6), repeat=1 if quick else 3)
    ours = sum(r["corrector"]["time"] for r in rows)
    base = sum(r["plain"]["time"] for r in rows)
    its = {key: sum(r[key]["iterations"] for r in rows) for key in ("plain", "corrector")}
    same = all(r["same_sets"] for r in rows)
    return dict(name="refine_stall (itinerary, width 3 erf)", ours_s=ours, baseline_s=base, ratio=ours / base,
                baseline="find_critical_point without corrector",
                extra=dict(iterations_plain=its["plain"], iterations_corrector=its["corrector"], same_sets=same),
                note=f"refinement iterations {its['plain']} plain, {its['corrector']} corrected; "
                     + ("the same critical sets (graph.match_distance)" if same
                        else "the itineraries visit different critical sets"))


BENCHMARKS = [refine_stall]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--activation", default="erf")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sweeps.configure_worker()
    rows = compare(args.activation, args.seeds, args.repeat, verbose=True)
    for r in rows:
        print(f"seed {r['seed']}: same critical sets: {r['same_sets']}")
        for key in ("plain", "corrector"):
            s = r[key]
            print(f"  {key:9s} {s['time']:6.3f} s  iterations {s['iterations']:4d}  fallbacks {s['fallbacks']}  "
                  f"not converged {s['failed']}  {s['visits']}")
    for key in ("plain", "corrector"):
        print(f"total {key:9s} {sum(r[key]['time'] for r in rows):7.3f} s  "
              f"iterations {sum(r[key]['iterations'] for r in rows)}")


if __name__ == "__main__":
    main()
