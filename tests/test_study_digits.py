"""The digits study in --quick mode: flow vs GD, train/test curves, itineraries, end-point spectra."""

import json
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "studies"))

import digits  # noqa: E402


@pytest.mark.slow
def test_quick_study(tmp_path):
    digits.main(["--quick", "--out", str(tmp_path)])
    for name in ("curves.png", "graph.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    s = json.loads((tmp_path / "summary.json").read_text())
    p = s["problem"]
    assert p["n_params"] == 64 * 2 + 2 + 2 * 10 + 10 and p["constant_pixels"] >= 1
    assert s["flow"]["solver"] == "rkc" and s["flow"]["status"] == "t1_reached"
    # Training lowers the loss; GD at the smallest step tracks the flow far better than at the largest.
    c = s["flow"]["curves"]
    assert c["loss"][-1] < c["loss"][0] and len(c["test_accuracy"]) == len(c["t"])
    d = [g["function_distance_to_flow"] for g in s["gd"]]
    assert d[0] < 0.1 * d[-1]
    assert abs(s["gd"][0]["final_loss"] - s["flow"]["final_loss"]) < 0.05 * s["flow"]["final_loss"]
    # End-point spectra: the dense count is complete, and constant pixels give exact zero directions.
    spec = s["spectra"]["flow"]
    assert spec["complete"] and spec["signature"][1] >= 2 * p["constant_pixels"]
    assert sum(spec["signature"]) == p["n_params"]
    assert len(s["ensemble"]["runs"]) == 2
    for r in s["ensemble"]["runs"]:
        assert r["terminal"] in ("attractor", "unfinished", "diverged")
    assert s["timings"]["peak_rss_gib"] > 0 and np.isfinite(s["timings"]["total_s"])
