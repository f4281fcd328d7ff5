"""`flowtools view` on every study's results, in headless Chromium: each study's --quick run, then its
page (no console errors, the node count of its first graph, a signature on hover, the runs on click).
The studies that write no saddle-graph file get the clear error instead of a page. Slow: each study
runs in full --quick form (see tests/test_study_*.py for their own checks)."""

import pathlib

import pytest
from conftest import run_study
from test_view_browser import _check_page, _reason, _screenshot, browser  # noqa: F401

from flowtools.view import load_groups, view

STUDIES = pathlib.Path(__file__).resolve().parents[1] / "studies"

#: study → the arguments of its tests' --quick run
ARGV = {
    "fukumizu_amari": ["--quick"], "landscape_atlas": ["--quick"],
    "minimal_model": ["--quick", "--seed", "0"],
    "relu_spurious": ["--quick"], "sgd_noise": ["--quick"],
    "soft_committee": ["--quick"], "width_sweep": ["--quick"],
}
#: studies whose results hold no saddle-graph file (no node-link JSON, GraphML or sweep store)
NO_GRAPH_FILE = {"deep_linear": ["--quick"], "digits": ["--quick"], "gd_vs_flow": ["--quick"],
                 "neuron_splitting": ["--quick"], "saddle_escape": ["--quick", "--no-progress"]}

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(bool(_reason), reason=_reason or "ok")]


def test_every_study_is_listed():
    assert {p.stem for p in STUDIES.glob("[!_]*.py")} == set(ARGV) | set(NO_GRAPH_FILE)


@pytest.mark.parametrize("name", sorted(ARGV))
def test_study_page(name, browser, tmp_path_factory, tmp_path):  # noqa: F811
    out, _, _ = run_study(STUDIES / f"{name}.py", ARGV[name], tmp_path_factory, name)
    groups, kind = load_groups(out)
    page = view(out)
    res = _check_page(browser, page, groups[0])
    print(f"{name}: {kind}, {len(groups)} group(s), first {groups[0]['name']!r} with "
          f"{groups[0]['graph'].graph.number_of_nodes()} nodes, page {page.stat().st_size / 1e6:.2f} MB, "
          f"loads in {res['load']:.2f} s, checked node {res['node']}")
    assert res["node"] is not None, f"{name}'s first graph has no node"
    _screenshot(browser, f"study_{name}.png", tmp_path)


@pytest.mark.parametrize("name", sorted(NO_GRAPH_FILE))
def test_study_without_graph_file_gets_a_clear_error(name, tmp_path_factory):
    out, _, _ = run_study(STUDIES / f"{name}.py", NO_GRAPH_FILE[name], tmp_path_factory, name)
    with pytest.raises(FileNotFoundError, match="holds no saddle graph"):
        view(out)
