"""The flagship study in --quick mode: every output file, the summary schema, and the paper's scenario."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "studies"))

import minimal_model  # noqa: E402

from flowtools.graph import SaddleGraph  # noqa: E402

FILES = ["learning_curves.png", "parameter_trajectories.png", "hessian_eigenvalues.png", "prop31_chi2.png",
         "saddle_graph.png", "saddle_graph.graphml", "saddle_graph.json", "summary.json",
         "saddle_graph_tau0.png", "saddle_graph_tau0.graphml", "saddle_graph_tau0.json"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("minimal_model")
    minimal_model.main(["--quick", "--out", str(out), "--seed", "0"])
    return out, json.loads((out / "summary.json").read_text())


def test_every_output_is_written(study):
    out, _ = study
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.glob(".tmp-*")), "a temporary file was left behind"


def test_summary_schema(study):
    _, s = study
    assert s["param_names"] == ["w1", "w2", "v1", "v2"]
    for key in ("critical_points", "runs", "graph", "basins", "settings"):
        assert key in s
    cp = s["critical_points"]["tau0.2"][0]
    for key in ("id", "theta", "loss", "gen_error", "grad_norm", "eigenvalues", "signature", "kind", "reduces_to"):
        assert key in cp
    assert set(cp["theta"]) == set(s["param_names"])
    for run in s["runs"]:
        for key in ("name", "method", "loss_convention", "lr", "status", "final_theta", "itinerary"):
            assert key in run
        assert all(set(v) == {"node", "t_in", "t_out"} for v in run["itinerary"])
    g = s["graph"]["tau0.2"]
    assert {"nodes", "edges"} <= set(g)
    assert all({"count", "fraction"} <= set(e) for e in g["edges"])
    assert s["settings"]["seed"] == 0
    assert abs(sum(s["basins"].values()) - s["ensemble"]["terminals"]["attractor"] / s["ensemble"]["n"]) < 1e-12


def test_published_scenario_and_gd_flow_agreement(study):
    _, s = study
    runs = {r["name"]: r for r in s["runs"]}
    gd, gf = runs["tau0.2/gd"], runs["tau0.2/gf"]
    assert [v["node"] for v in gd["itinerary"]] == [v["node"] for v in gf["itinerary"]]
    assert gd["itinerary_kinds"][0] == "saddle"
    assert gd["terminal"] == "attractor"
    clean = runs["tau0/gd"]
    assert clean["terminal"] == "attractor" and clean["final_gen_error"] < 1e-6


def test_ensemble_terminals_are_allowed(study):
    _, s = study
    nodes = {n["id"]: n for n in s["graph"]["tau0.2"]["nodes"]}
    for run in s["ensemble"]["runs"]:
        assert run["terminal"] in ("attractor", "diverged", "unfinished")
        if run["terminal"] == "attractor":
            last = nodes[run["itinerary"][-1]["node"]]
            assert last["kind"] in ("minimum", "degenerate_minimum") and last["signature"][0] == 0


def test_graph_files_load_back(study):
    out, s = study
    g = SaddleGraph.from_graphml(out / "saddle_graph.graphml")
    h = SaddleGraph.from_json(out / "saddle_graph.json")
    assert len(g) == len(h) == len(s["graph"]["tau0.2"]["nodes"])
    assert any(e.get("source", "").find("unstable_manifold") >= 0 for *_, e in g.graph.edges(data=True))
