"""The Fukumizu–Amari study (studies/fukumizu_amari.py) in its --quick form: files, the critical line's
segments, the plateau-time laws and the saddle graph's line nodes."""

import importlib.util
import json
import pathlib

import pytest

from flowtools.graph import SaddleGraph

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "fukumizu_amari.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("fukumizu_amari_study", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("fukumizu_amari")
    summary = module.main(["--quick", "--out", str(out)])
    return out, summary


def test_outputs_are_written(quick_run):
    out, _ = quick_run
    for name in ("summary.json", "line.png", "plateau.png", "profile.png", "graph.png", "graph.graphml",
                 "graph.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["study"] == "fukumizu_amari"


def test_one_neuron_optimum_exists_only_for_wide_enough_inputs(quick_run):
    _, summary = quick_run
    ex = summary["one_neuron_existence"]
    # x ~ N(0, 1): the profile loss increases monotonically, the optimum is at w → 0 (at infinity).
    assert ex["input_std=1"]["profile_monotone_increasing"] and ex["input_std=1"]["at_grid_edge"]
    assert not ex["input_std=2"]["at_grid_edge"] and ex["input_std=2"]["interior_minima"] == 1
    # The failed solve at s = 1: the record's grad_norm is its guess's (the grid point), the stalled
    # iterate's is best_grad_norm, and the message quotes the latter.
    rec = ex["input_std=1"]["find_critical_point"]
    assert not rec["success"] and rec["status"] == "stalled"
    assert rec["best_grad_norm"] < 1e-9 < 1e-6 < rec["grad_norm"]
    assert f"{rec['best_grad_norm']:.3g}" in rec["message"]
    assert rec["theta"] == [ex["input_std=1"]["w_grid_best"], ex["input_std=1"]["v_grid_best"]]
    opt = summary["one_neuron_optimum"]
    assert opt["signature"] == [0, 0, 2] and opt["grad_norm"] < 1e-10 and opt["inner_hessian"] > 0


def test_line_segments_and_their_signatures(quick_run):
    _, summary = quick_run
    line = summary["line"]
    assert line["all_agree"]
    sigs = [tuple(s["signature"]) for s in line["segments"]]
    # saddles for λ < 0, a junction at 0, minima on (0, 1), a junction at 1, saddles for λ > 1.
    assert sigs == [(1, 1, 2), (0, 2, 2), (0, 1, 3), (0, 2, 2), (1, 1, 2)]
    assert line["segments"][0]["lambda_max"] < 0 < line["segments"][2]["lambda_min"]
    assert line["segments"][2]["lambda_max"] < 1 < line["segments"][4]["lambda_min"]
    for s in line["segments"]:
        if s["predicted"]:
            assert s["predicted"] == (["minimum"] if s["signature"][0] == 0 else ["saddle"])
    assert [j["signature"] for j in line["junctions"]] == [[0, 2, 2], [0, 2, 2]]


def test_plateau_time_laws(quick_run):
    _, summary = quick_run
    pl = summary["plateau"]
    fit = pl["junction_fit"]
    assert -1.15 < fit["exponent"] < -0.95  # power law T ∝ δ^-1 at the junction
    small = [r for r in pl["runs"] if r["kind"] == "junction" and r["delta"] <= 1e-3]
    assert small and all(abs(r["time_over_predicted"] - 1) < 0.05 for r in small)  # T ≈ π v*/(H_in δ)
    sf = pl["saddle_fits"]["-0.5"]
    assert sf["slope"] == pytest.approx(sf["slope_predicted"], rel=0.02)  # log law, slope 1/|μ|
    assert pl["minimum_segment"]["never_left"] == pl["minimum_segment"]["runs"] > 0
    assert pl["cone"]["outcome_agree"] == pl["cone"]["runs"] > 0
    for r in pl["runs"]:
        if r["kind"] == "cone" and r["status"] == "never_left":
            assert r["final_lambda"] == pytest.approx(r["predicted_final_lambda"], rel=0.02)


def test_saddle_graph_holds_the_one_neuron_line_with_correct_signatures(quick_run):
    """MUST SHOW: the graph has the one-neuron critical line as nodes (its segments) with the correct
    signatures, and the ensemble's attractor is the minimum segment."""
    out, summary = quick_run
    for graph in (SaddleGraph.from_json(out / "graph.json"), SaddleGraph.from_graphml(out / "graph.graphml")):
        nodes = {a["segment"]: a for _, a in graph.graph.nodes(data=True) if a.get("origin") == "split_line"}
        assert set(nodes) == {"minimum", "saddle", "junction"}
        assert nodes["minimum"]["signature"] == [0, 1, 3] and nodes["minimum"]["kind"] == "degenerate_minimum"
        assert nodes["saddle"]["signature"] == [1, 1, 2] and nodes["saddle"]["kind"] == "degenerate_saddle"
        assert nodes["junction"]["signature"] == [0, 2, 2]
        assert all(a["reduces_to"] == "1-1-1" for a in nodes.values())
        # Ensemble runs end on the minimum segment (a non-isolated attractor).
        assert nodes["minimum"]["attractor"] and nodes["minimum"]["visits"] >= 1
    g = summary["graph"]
    assert g["line_nodes"]["minimum"]["attractor"]
    # The unstable manifold of the saddle segment leads to the global minimum (L ≈ 0) on one side.
    assert any(m["target_kind"] == "minimum" and m["target_loss"] < 1e-20 for m in g["unstable_manifold"])
