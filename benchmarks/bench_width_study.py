"""The width study end to end (`studies/width_sweep.py`, population loss, d = 10, k = 4; 2 Dask workers):
the Hermite-series rule (`--gaussian-method series`) against the 96² Gauss–Hermite rule on the same reduced
grid, each in a fresh process with a fresh store, and (`--full`) the full grid of 1 344 runs with the series
against the 45-minute goal.

- `width_study_rules` (`--full`): seeds 0 and 1 of every (activation, width). Both runs find the executable cache as the earlier entries left it. Ours: the series;
  baseline: the 96² rule. The entry checks that both give every group the same fraction of runs reaching the
  global minimum and the same number of attractors.
- `width_study_full` (`--full`): the published grid with the series, 2 workers; ours is its wall time, the
  baseline the 45-minute goal (2 700 s): a ratio ≤ 1 meets it. Its groups are compared with the published
  table (docs/studies/width_sweep.md) by the entry's caller, not here.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "width_sweep.py"
GOAL_S = 45 * 60.0


def _run(out, *args):
    """(wall seconds, summary) of one study run in a fresh process."""
    env = dict(os.environ, FLOWTOOLS_PROGRESS="0")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-W", "ignore", str(STUDY), "--out", str(out), *args], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"width_sweep.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return wall, json.loads((pathlib.Path(out) / "summary.json").read_text())


def _outcomes(summary):
    return {(g["activation"], g["width"]): (g["global_fraction"], g["n_attractors"]) for g in summary["groups"]}


def width_study_rules(quick: bool):
    """The series rule against the 96² rule on the width study's reduced grid."""
    args = ["--seeds", "2", "--workers", "2"]  # --full only: `quick` does not apply
    with tempfile.TemporaryDirectory() as tmp:
        t_series, series = _run(pathlib.Path(tmp) / "series", *args, "--gaussian-method", "series")
        t_rule, rule = _run(pathlib.Path(tmp) / "rule", *args, "--gaussian-method", "auto")
    same = _outcomes(series) == _outcomes(rule)
    return dict(name="width_study_rules (reduced grid)", ours_s=t_series, baseline_s=t_rule,
                ratio=t_series / t_rule, baseline="the same grid with the 96² Gauss–Hermite rule",
                extra=dict(points=series["n_points"], same_outcomes=same, load=os.getloadavg()[0]),
                note=f"{series['n_points']} runs per rule, fresh stores; "
                     + ("the same global-minimum fractions and attractor counts" if same
                        else "the rules' groups DIFFER in global-minimum fraction or attractor count"))


def width_study_full(quick: bool):
    """The full grid with the series rule, 2 workers, against the 45-minute goal."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, summary = _run(pathlib.Path(tmp) / "series", "--workers", "2", "--gaussian-method", "series")
    return dict(name="width_study_full (series, 2 workers)", ours_s=wall, baseline_s=GOAL_S, ratio=wall / GOAL_S,
                target=1.0, baseline="the 45-minute goal (2 700 s)",
                extra=dict(points=summary["n_points"], finished=summary["n_finished"],
                           load=os.getloadavg()[0]),
                note=f"{summary['n_finished']} of {summary['n_points']} runs; compare the groups with "
                     "docs/studies/width_sweep.md")


FULL_BENCHMARKS = [width_study_rules, width_study_full]
