"""The GD-vs-flow study in --quick mode."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "studies"))

import gd_vs_flow  # noqa: E402


def test_quick_study(tmp_path):
    gd_vs_flow.main(["--quick", "--out", str(tmp_path)])
    for name in ("deviation.png", "sharpness.png", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    s = json.loads((tmp_path / "summary.json").read_text())
    for name, case in s["cases"].items():
        o = case["order"]
        assert o["order_flow_ci"][0] <= o["order_flow"] <= o["order_flow_ci"][1]
        assert 0.9 <= o["order_flow"] <= 1.1, name
        assert 1.8 <= o["order_modified"] <= 2.2, name
        rows = case["sweep"]
        assert rows[-1]["lr"] > case["flow"]["edge_of_stability_lr"]  # the sweep goes past 2/λ_max
        for r in rows:
            assert r["terminal"] in ("attractor", "diverged", "unfinished")
            if r["terminal"] == "attractor" and not r["capped"] and r["attractor_kind"].endswith("minimum"):
                # GD can only converge where the sharpness is below 2/η
                assert r["sharpness_final"] <= r["two_over_lr"] * (1 + 1e-6)
            if r["periodic_orbit"] is not None:
                # a period-2 orbit straddles 2/η
                orbit = r["periodic_orbit"]
                assert abs(orbit["mean_sharpness"] / orbit["two_over_lr"] - 1) <= 0.02
