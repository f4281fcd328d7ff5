"""The deep-linear saddle-to-saddle study in --quick mode."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "studies"))

import deep_linear  # noqa: E402


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("deep_linear")
    deep_linear.main(["--quick", "--out", str(out)])
    for name in ("staircase.png", "escape.png", "gd_vs_flow.png", "summary.json"):
        assert (out / name).stat().st_size > 0
    return json.loads((out / "summary.json").read_text())


def test_learning_times_match_the_closed_form(summary):
    for depth in ("2", "3"):
        r = summary["learning_times"][depth]
        assert max(r["rel_error"]) < 1e-4, r
        assert r["max_loss_error"] < 1e-6
        assert r["predicted"][0] < r["predicted"][1] < r["predicted"][2]  # strongest mode first


def test_saddles_and_their_kinds(summary):
    d2 = summary["critical_points"]["2"]
    d3 = summary["critical_points"]["3"]
    assert d2[0]["kind"] == "saddle"  # the depth-2 origin: an ordinary saddle
    assert [p["kind"] for p in d3] == ["higher_order_saddle"] * 3 + ["degenerate_minimum"]
    for pts in (d2, d3):
        assert [round(p["loss"], 12) for p in pts] == [7.0, 2.5, 0.5, 0.0]  # ½ Σ of the unlearned s²
        assert all(p["grad_norm"] < 1e-12 for p in pts)


def test_escape_laws(summary):
    log_law, power_law = summary["escape_scaling"]
    assert log_law["law"] == "log" and abs(log_law["slope"] / log_law["expected_slope"] - 1) < 0.05
    assert power_law["law"] == "power" and abs(power_law["slope"] - 1) < 0.05
    for sc in (log_law, power_law):
        assert all(abs(t / c - 1) < 0.05 for t, c in zip(sc["tau"], sc["closed_form"]))


def test_gd_approaches_the_flow_as_the_step_shrinks(summary):
    rows = sorted(summary["gd_vs_flow"], key=lambda r: r["lr"])
    assert rows[0]["max_loss_gap"] < rows[-1]["max_loss_gap"]
    for r in rows:
        assert r["status"] == "t1_reached"  # GD ran all its steps
        # GD learns each mode later than the flow, by about the escape-stage factor ηs / log(1 + ηs)
        for got, pred in zip(r["ratio"], r["ratio_escape_stage"]):
            assert got > 1 and abs(got / pred - 1) < 0.05 + r["lr"] / 2, r
