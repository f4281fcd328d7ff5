"""The width study (studies/width_sweep.py) in its --quick form: files, the store, and the headline numbers
(global-minimum fractions with Wilson intervals, attractors, plateaus) are consistent."""

import json
import pathlib

import numpy as np
import pytest

from flowtools import escape, sweeps
from flowtools.sweeps import _tasks as sweep_tasks

from conftest import run_study

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "width_sweep.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_study(STUDY, ["--quick"], tmp_path_factory, "width_sweep")


def test_outputs_are_written(quick_run):
    out, summary, _ = quick_run
    for name in ("summary.json", "global_minimum.png", "attractors.png", "plateaus.png", "store/graph.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["study"] == "width_sweep"
    ds = sweeps.open_results(out / "store")
    assert bool(ds["finished"].all()) and ds.sizes["point"] == summary["n_points"] == 6
    assert sorted(set(ds["seed"].values.tolist())) == [0, 1, 2]


def test_headline_numbers_are_consistent(quick_run):
    _, summary, module = quick_run
    k = summary["settings"]["teacher_width"]
    widths = [g["width"] for g in summary["groups"]]
    assert widths == list(range(1, k + summary["settings"]["extra_width"] + 1))
    for g in summary["groups"]:
        assert g["n_runs"] == 3
        lo, hi = g["global_ci"]
        assert 0 <= lo <= g["global_fraction"] <= hi <= 1
        assert (lo, hi) == pytest.approx(escape.wilson_interval(round(g["global_fraction"] * 3), 3))
        # The teacher is realisable from width k on and the data are noiseless: the best attractor fits them.
        if g["width"] >= k:
            assert g["global_min_is_zero"] and g["global_min_loss"] < 1e-20
        assert g["n_attractors"] == len(g["basins"]) >= 1
        assert any(b["is_global"] for b in g["basins"])
        for b in g["basins"]:
            assert b["ci"][0] <= b["fraction"] <= b["ci"][1]
        assert all(p > 0 for p in g["plateau_lengths"])
        assert sum(g["statuses"].values()) == 3


def test_global_minimum_rule(quick_run):
    """A run counts as reaching the global minimum only if it ends at an attractor whose loss is within
    GLOBAL_TOL·mean(y²) of the best one: recompute the fraction from the store."""
    out, summary, module = quick_run
    ds = sweeps.open_results(out / "store").load()
    for g in summary["groups"]:
        sel = ds["width"].values == g["width"]
        att = ds["terminal"].values[sel] == "attractor"
        loss = ds["attractor_loss"].values[sel]
        best = np.nanmin(loss[att])
        problem, _ = sweeps.make_problem(module.configurations(module.QUICK)[0])
        tol = module.GLOBAL_TOL * float(np.mean(np.asarray(problem.y) ** 2))
        assert g["global_fraction"] == pytest.approx(np.mean(att & (loss <= best + tol)))


def test_no_run_refuses_a_store_of_other_settings(quick_run):
    """`--no-run` on the --quick store without --quick must not relabel its 6 finite-data points as the
    1 344-point population sweep; with --quick it analyses them under their own settings."""
    out, summary, module = quick_run
    before = (out / "summary.json").read_bytes()
    with pytest.raises(SystemExit, match=r"holds a sweep of 6 points \(data=finite.*--quick"):
        module.main(["--no-run", "--out", str(out)])
    assert (out / "summary.json").read_bytes() == before
    again = module.main(["--no-run", "--quick", "--out", str(out)])
    assert (again["data"], again["n_points"], again["n_run"]) == ("finite", 6, 0)
    assert again["settings"] == summary["settings"] and again["groups"] == summary["groups"]


def test_papers_setting_is_the_published_one():
    """`--papers`: the population loss with an orthonormal teacher v_j = e_j and standard (LeCun)
    initialization, ReLU among the activations; it refuses the finite-data setting."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("width_sweep_papers", STUDY)
    ws = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ws)
    configs = ws.configurations(ws.FULL_PAPERS, 0, "population", papers=True)
    assert {c["teacher"] for c in configs} == {"orthonormal"}
    assert {(c["init_scheme"], c["init_scale"], c["data"]) for c in configs} == {("lecun", 1.0, "population")}
    assert "relu" in {c["activation"] for c in configs}
    _, theta_t = sweep_tasks._teacher_student(next(c for c in configs if c["activation"] == "relu"))
    np.testing.assert_array_equal(theta_t[:40].reshape(4, 10), np.eye(4, 10))
    with pytest.raises(SystemExit):
        ws.main(["--papers", "--quick"])


def test_gaussian_method_series_reaches_the_problem_and_refuses_finite_data():
    """`--gaussian-method series` puts the Hermite series into every run's population loss; it is a
    population-loss option, so the finite-data setting refuses it before running anything."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("width_sweep_series", STUDY)
    ws = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ws)
    config = dict(ws.configurations(ws.FULL, 0, "population")[-1], gaussian_method="series")
    problem, _ = sweep_tasks.make_problem(config)
    assert problem.source.method == "series"
    assert sweep_tasks.make_problem(ws.configurations(ws.FULL, 0, "population")[-1])[0].source.method == "auto"
    with pytest.raises(SystemExit):
        ws.main(["--quick", "--gaussian-method", "series"])


def test_population_runs_default_to_the_series_and_auto_keeps_the_earlier_stores():
    """The population loss's default rule is the Hermite series; "auto" writes the configurations of the
    stores made before it (no `gaussian_method` key), and finite data takes no rule."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("width_sweep_rule", STUDY)
    ws = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ws)
    assert ws.population_rule(None, "population") == {"gaussian_method": "series"}
    assert ws.population_rule("series", "population") == {"gaussian_method": "series"}
    assert ws.population_rule("auto", "population") == {}
    assert ws.population_rule(None, "finite") == {}
    with pytest.raises(ValueError, match="population-loss setting"):
        ws.population_rule("auto", "finite")


def test_no_run_names_the_rule_a_population_store_was_written_with(tmp_path):
    """A store of the 96² rule (no rule in its configurations, as before the series) checked against the
    default options is refused with the option that reads it; a series store checked with `auto` likewise."""
    import importlib.util

    import flowtools as ft

    spec = importlib.util.spec_from_file_location("width_sweep_check", STUDY)
    ws = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ws)
    plain = ws.configurations(ws.FULL, 0, "population")
    series = [dict(c, **ws.population_rule(None, "population")) for c in plain]
    for written, asked, flags in ((plain, series, "--data population --gaussian-method auto"),
                                  (series, plain, "--data population:")):
        store = tmp_path / flags.replace(" ", "_").replace(":", "")
        store.mkdir()
        ft.io.write_json(store / "sweep.json", dict(configurations=written))
        with pytest.raises(SystemExit, match=flags):
            ws.check_store(store, asked, "population")
        ws.check_store(store, written, "population")  # the options it was written with pass
