"""The soft committee study (studies/soft_committee.py) in its --quick form: the derived symmetric plateau
against the population numerics, the escape law, the saddle graph and finite data."""

import importlib.util
import json
import math
import pathlib

import pytest

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "soft_committee.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("soft_committee_study", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("soft_committee")
    return out, module.main(["--quick", "--out", str(out)])


def test_outputs_are_written(quick_run):
    out, _ = quick_run
    for name in ("summary.json", "overlaps.png", "escape.png", "finite.png", "graph.png", "graph.graphml",
                 "graph.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["study"] == "soft_committee"


def test_plateau_matches_the_derivation(quick_run):
    _, summary = quick_run
    c = summary["results"]["2"]["check"]
    assert c["prediction"]["R"] == pytest.approx(2 / 3 - 8 / math.pi * math.asin(0.25), rel=1e-15)
    assert c["R_error"] < 1e-14 and c["grad_norm"] < 1e-13
    # One unstable direction; d − K = 8 pair directions flat to second order (derived) and one more zero.
    assert c["signature"] == [1, 9, 10] == c["signature_hand"]
    assert c["hessian_max_abs_difference"] < 1e-12
    for run in summary["results"]["2"]["runs"]:
        pl = run["plateau"]
        assert pl is not None and pl["R"] == pytest.approx(c["prediction"]["R"], rel=1e-3)
        for row in run["plateau_Q"]:
            assert row == pytest.approx([1 / 3, 1 / 3], abs=3e-3)
        for row in run["plateau_R_in"]:
            assert row == pytest.approx([1 / math.sqrt(6)] * 2, abs=3e-3)


def test_escape_time_follows_the_unstable_eigenvalue(quick_run):
    _, summary = quick_run
    fit = summary["results"]["2"]["escape_fit"]
    assert fit["points"] == 3 and abs(fit["ratio"] - 1) < 0.1  # slope = 1/|μ|


def test_plateau_is_one_node_and_finite_data_distorts_its_index(quick_run):
    _, summary = quick_run
    g = summary["results"]["2"]["graph"]
    assert len(g["plateau_nodes"]) == 1
    for it in g["itineraries"]:
        assert it["nodes"][0] == g["plateau_nodes"][0] and it["terminal"] == "attractor"
        assert it["kinds"][-1] == "minimum"
    (finite,) = summary["results"]["2"]["finite"]
    assert finite["n"] == 2000 and finite["success"] and finite["morse_index"] > 1
