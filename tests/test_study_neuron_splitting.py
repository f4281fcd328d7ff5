"""The neuron-splitting study (studies/neuron_splitting.py) in its --quick form: files and key numbers."""

import importlib.util
import json
import pathlib

import pytest

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "neuron_splitting.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("neuron_splitting_study", STUDY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("neuron_splitting")
    summary = module.main(["--quick", "--out", str(out)])
    return out, summary


def test_outputs_are_written(quick_run):
    out, summary = quick_run
    for name in ("summary.json", "samples.json", "table.md", "split_lines.png", "agreement.png"):
        assert (out / name).stat().st_size > 0, name
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["study"] == "neuron_splitting"
    assert on_disk["totals"]["n_samples"] == summary["totals"]["n_samples"]
    assert "| σ | d_in | bias |" in (out / "table.md").read_text()


def test_every_activation_and_both_copy_counts_are_covered(quick_run):
    _, summary = quick_run
    table = summary["table"]
    assert {r["activation"] for r in table} == {"tanh", "erf", "softplus", "gelu"}
    assert {r["copies"] for r in table} == {2, 3}
    assert {r["d_in"] for r in table} == {1, 2} and {r["bias"] for r in table} == {False, True}
    # Every σ has a narrow minimum whose split line is plotted.
    assert {ln["activation"] for ln in summary["split_lines"]} == {"tanh", "erf", "softplus", "gelu"}


def test_prediction_agrees_with_the_full_hessian_outside_the_band(quick_run):
    _, summary = quick_run
    tot = summary["totals"]
    assert tot["n_outside_band"] >= 50
    assert tot["outside_n_neg_agreement"] == 1.0 and tot["outside_kind_agreement"] == 1.0
    assert tot["outside_disagreements"] == 0
    assert sum(r["outside_disagree"] for r in summary["table"]) == 0
    # The band is populated on purpose (coefficients ±0.005) and documented.
    assert tot["n_inside_band"] >= 1 and "coefficient" in tot["band_reasons"]
    assert tot["max_grad_norm"] < 1e-9  # every split point is stationary


def test_paper_claims(quick_run):
    _, summary = quick_run
    c = summary["claims"]
    assert c["saddle_split_total"] > 0 and c["saddle_split_numerical_saddles"] == c["saddle_split_total"]
    assert c["sure_saddle_total"] > 0 and c["sure_saddle_numerical_saddles"] == c["sure_saddle_total"]
    assert c["minimum_split_indefinite_inner_saddles"] == c["minimum_split_indefinite_inner_total"]
    # Definite H_in: a mixture of minima and saddles along the coefficient grid.
    assert 0 < c["minimum_split_definite_inner_minima"] < c["minimum_split_definite_inner_total"]
