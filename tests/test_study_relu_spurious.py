"""The ReLU spurious-minima study (studies/relu_spurious.py) in its --quick form: files, the store, every
run classified, and the library's verdicts equal to an independent numpy classification run for run."""

import json
import pathlib

import numpy as np
import pytest

import flowtools as ft
from flowtools import sweeps

from conftest import run_study

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "relu_spurious.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_study(STUDY, ["--quick"], tmp_path_factory, "relu_spurious")


def test_outputs_are_written_and_every_run_is_classified(quick_run):
    out, summary, _ = quick_run
    for name in ("summary.json", "spurious_fraction.png", "minima.png", "store/graph.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["schema"] == "flowtools.relu_spurious/1"
    ds = sweeps.open_results(out / "store").load()
    assert bool(ds["finished"].all()) and ds.sizes["point"] == summary["n_points"] == 8
    # Every run reaches a minimum to the accuracy the loss allows: converged, an attractor, no error.
    assert set(ds["status"].values.tolist()) == {"converged"}
    assert set(ds["terminal"].values.tolist()) == {"attractor"}
    assert [(g["k"], g["n"]) for g in summary["groups"]] == [(4, 4), (4, 5)]


def test_library_verdicts_equal_an_independent_classification(quick_run):
    _, summary, _ = quick_run
    for g in summary["groups"]:
        assert g["independent_checked"] == g["n_runs"] == 4
        assert g["independent_agree"] == g["independent_checked"], g["independent_disagreements"]
        assert g["min_end_loss"] >= -1e-15 * g["f0"]
        lo, hi = g["spurious_ci"]
        assert lo <= g["spurious_fraction"] <= hi


def test_independent_loss_and_gradient_match_the_library(quick_run):
    # The study's own numpy F and ∇F (Kahan angles) against the library's exact population loss, at a
    # generic point and next to the teacher, where the library's paired form matters.
    _, _, module = quick_run
    p = ft.problems.safran_shamir(4)
    rng = np.random.default_rng(0)
    for W in (rng.standard_normal((4, 4)) / 2, np.eye(4) + 1e-6 * rng.standard_normal((4, 4))):
        f, G = module.independent_loss_grad(W, np.eye(4))
        assert abs(f - float(p.loss(W.ravel()))) <= 1e-14 * max(1.0, abs(f))
        g_lib = np.asarray(p.grad(W.ravel()))
        assert np.linalg.norm(G.ravel() - g_lib) <= 1e-9 * np.linalg.norm(g_lib) + 1e-15
