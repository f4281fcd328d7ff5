"""The landscape-atlas study (studies/landscape_atlas.py) in its --quick form: Müller–Brown and the flagship
net, with files written and every result checked against what is known independently."""

import json
import pathlib

import numpy as np
import pytest

import flowtools as ft

from conftest import run_study
from test_paths import MIN_A, SADDLE_AC, SADDLE_CB, mb_energy_numpy

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "landscape_atlas.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_study(STUDY, ["--quick"], tmp_path_factory, "landscape_atlas")


def test_files_and_muller_brown(quick_run):
    out, summary, _ = quick_run
    for name in ("summary.json", "disconnectivity.png", "atlas_muller_brown.json", "atlas_flagship.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["schema"] == "flowtools.landscape_atlas/1"
    mb = summary["landscapes"][0]
    assert mb["name"] == "muller_brown" and mb["connect"]["status"] == "connected"
    assert len(mb["minima"]) == 3 and len(mb["transition_states"]) == 2
    e_ts = sorted(t["loss"] for t in mb["transition_states"])
    assert e_ts == pytest.approx(sorted([mb_energy_numpy(SADDLE_AC), mb_energy_numpy(SADDLE_CB)]), abs=1e-8)
    assert mb["connect"]["barrier"][0] == pytest.approx(mb_energy_numpy(SADDLE_AC) - mb_energy_numpy(MIN_A),
                                                        abs=1e-8)


def test_flagship(quick_run):
    out, summary, _ = quick_run
    fl = summary["landscapes"][1]
    # The global minimum and the merged-neuron line: no index-1 saddle between them, said so.
    assert fl["connect"]["status"] == "not_connected" and fl["connect"]["bands"] == ["wrong_index"]
    # The sign flip: an index-1 saddle (neuron 1 dead) whose descent returns to the same minimum up to
    # symmetry, stored as one connection with its barrier.
    flip = fl["sign_flip"]
    assert flip["status"] == "converged" and flip["saddle_signature"] == [1, 0, 3]
    (ts,) = fl["transition_states"]
    assert ts["id"] == flip["transition_state"] and len(ts["connects"]) == 1
    assert ts["barriers"][0] == pytest.approx(flip["barrier"], abs=1e-12) and flip["barrier"] > 1e-3
    problem = ft.problems.minimal_model(loss="mse")
    back = ft.Atlas.from_json(problem, out / "atlas_flagship.json")
    theta = back.theta(ts["id"])
    assert abs(theta[0]) < 1e-8 and abs(theta[2]) < 1e-8  # neuron 1 dead
    assert np.linalg.norm(problem.grad(theta)) <= 1e-10
    assert back.disconnectivity_tree().graph["roots"] and len(back.minima()) == 2
