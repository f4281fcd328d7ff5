"""The SGD-noise study in --quick mode: files, the merged graph, the plateau saddle under label noise,
escape times against batch size, noise balls."""

import pathlib

import pytest

from conftest import run_study

STUDY = pathlib.Path(__file__).resolve().parents[1] / "studies" / "sgd_noise.py"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out, summary, _ = run_study(STUDY, ["--quick"], tmp_path_factory, "sgd_noise")
    return out, summary


def test_files_and_schema(quick):
    out, s = quick
    for name in ["summary.json", "graph.json", "graph.graphml", *s["figures"]]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert not list(out.glob(".*tmp*"))
    assert s["schema"] == "flowtools.sgd_noise/1" and s["quick"] is True
    for key in ["escape_time_definition", "plateau_saddle", "graph", "escape", "label_noise", "runs"]:
        assert key in s


def test_merged_graph_has_one_node_per_critical_set(quick):
    # flow, GD and SGD on clean data: origin saddle, plateau saddle, minimum; no slow regions
    _, s = quick
    kinds = sorted(n["kind"] for n in s["graph"]["nodes"])
    assert s["graph"]["slow_regions"] == 0 and s["clean_sgd"]["slow_region_visits_b16_up"] == 0
    assert len(kinds) == 3, kinds
    assert sum(k.endswith("saddle") for k in kinds) == 2
    assert s["clean_sgd"]["record_plateau_saddle"] == s["clean_sgd"]["runs"]


def test_label_noise_runs_record_the_plateau_saddle_and_end_in_a_noise_ball(quick):
    _, s = quick
    ln = s["label_noise"]
    assert ln["share"] >= 0.9, ln["table"]
    assert ln["noise_balls"] == ln["runs"]
    assert all(0 < r["ball_radius"] < 2 * s["plateau_saddle"]["visit_radius"] for r in ln["table"])
    # the measured radius against the linear-noise prediction from the gradient covariance at the minimum
    for row in ln["radius_table"]:
        assert abs(row["measured_median"] / row["predicted"] - 1) < 0.2, row


def test_escape_time_is_flat_in_batch_size_within_its_spread(quick):
    # For b ≥ 16 the loss-based plateau is as long as the flow's; so must the escape time be: each
    # batch size's median lies within the quartile range pooled over the batch sizes, and every median
    # within a factor 1.5 of the flow's escape time.
    _, s = quick
    rows = [r for r in s["escape"] if r["batch"] is not None and r["batch"] >= 16]
    assert len(rows) >= 2 and all(r["n_escaped"] == r["n"] for r in rows)
    lo, hi = min(r["q25"] for r in rows), max(r["q75"] for r in rows)
    assert all(lo <= r["median"] <= hi for r in rows)
    flow = next(r for r in s["escape"] if r["runs"] == "flow")["median"]
    assert all(flow / 1.5 <= r["median"] <= 1.5 * flow for r in rows), (flow, rows)
