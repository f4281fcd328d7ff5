"""The saddle-escape study in --quick mode: files, summary schema, identity residual."""

import importlib.util
import json
import math
import pathlib

import pytest

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "saddle_escape.py"


def _load():
    spec = importlib.util.spec_from_file_location("saddle_escape_study", STUDY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("saddle_escape")
    _load().main(["--quick", "--out", str(out), "--no-progress"])
    return out, json.loads((out / "summary.json").read_text())


def test_files_written(quick):
    out, summary = quick
    for name in ["summary.json", *summary["figures"]]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert not list(out.glob(".*tmp*"))  # atomic writes left no temporaries


def test_summary_schema(quick):
    _, s = quick
    assert s["schema"] == "flowtools.saddle_escape/1" and s["quick"] is True
    for key in ["escape_time_definition", "exponent_definition", "settings", "seeds", "table",
                "r2_linearization", "identity", "activation_classes", "runs", "failed_runs", "timing"]:
        assert key in s
    assert s["seeds"]["init"] == [0] and "bootstrap" in s["seeds"]
    sweeps = {row["sweep"] for row in s["table"]}
    assert sweeps == {"r", "L", "class"}
    for row in s["table"]:
        for key in ["r", "L", "activation", "activation_class", "exponent", "ci", "r_minus_2", "n_escaped"]:
            assert key in row
        assert row["r_minus_2"] == row["r"] - 2
        assert row["exponent"] is not None and row["ci"][0] <= row["exponent"] <= row["ci"][1]
    assert {c["kind"] for c in s["activation_classes"].values()} == {"homogeneous", "cubic", "constant"}
    assert all(run["escape_status"] == "escaped" for run in s["runs"])


def test_identity_residual_along_flows(quick):
    _, s = quick
    ident = s["identity"]
    assert ident["max_rel_residual"] <= 1e-8
    assert ident["n_states"] > 100
    assert ident["integrated_max_rel_error"] < 1e-3


def test_scaling_in_the_quick_sweep(quick):
    """Even the 3-point quick sweep puts tanh's exponents near r − 2 for r = 3, 4, and the r = 2 log-law
    slope near 1/λ_u (loose bounds: this is a smoke test; the full study reports the numbers)."""
    _, s = quick
    tanh = {row["r"]: row for row in s["table"] if row["sweep"] == "r"}
    assert abs(tanh[3]["exponent"] - 1) < 0.1 and abs(tanh[4]["exponent"] - 2) < 0.1
    lin = s["r2_linearization"][0]
    assert math.isclose(lin["log_slope"], lin["inverse_lambda_u"], rel_tol=0.1)
