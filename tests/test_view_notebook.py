"""Notebook views: `_repr_html_` of SaddleGraph, Itinerary, Trajectory, Spectrum and SweepResult is
well-formed, escaped HTML that holds the key numbers; `_repr_pretty_` is short."""

import pathlib
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import flowtools as ft
from flowtools.dynamics.trajectory import Status, Trajectory
from flowtools.graph import SaddleGraph
from flowtools.itineraries import Itinerary, Visit
from flowtools.sweeps import SweepResult


def _parse(text: str) -> ET.Element:
    """Parse the HTML strictly (every tag closed, every attribute quoted, no stray '<' or '&')."""
    return ET.fromstring(f"<root>{text}</root>")


def _cells(root) -> list[str]:
    return ["".join(c.itertext()) for c in root.iter() if c.tag in ("td", "th", "caption")]


class _Printer:
    def __init__(self):
        self.out = ""

    def text(self, s):
        self.out += s


def _pretty(obj) -> str:
    p = _Printer()
    obj._repr_pretty_(p, False)
    return p.out


def _graph(n=20):
    rng = np.random.default_rng(0)
    g = SaddleGraph()
    ids = [g.add_node(fingerprint=rng.standard_normal(4), signature=(i % 4, 0, 9 - i % 4),
                      kind="minimum" if i % 4 == 0 else "saddle", loss=0.5 / (i + 1), theta=np.zeros(9),
                      grad_norm=1e-11 * (i + 1), reduces_to="1-2-1" if i == 3 else "") for i in range(n)]
    g.add_itinerary([ids[3], ids[2], ids[0]], [(0, 1), (2, 3), (4, 5)], method="gradient_flow", run="seed0")
    g.graph.nodes[ids[0]]["attractor"] = True
    return g, ids


def test_saddle_graph_html_lists_nodes_edges_and_counts():
    g, ids = _graph()
    g.graph.nodes[ids[5]]["kind"] = "saddle <b>&"  # escaped, not markup
    root = _parse(g._repr_html_())
    cells = _cells(root)
    assert "SaddleGraph: 20 nodes, 2 edges, 1 trajectories" in "".join(root.itertext())
    assert "n0" in cells and "0.5" in cells and "(3, 0, 6)" in cells and "1-2-1" in cells
    assert "n3 → n2" in cells and "… 5 more nodes" in cells  # 15 rows shown of 20
    assert not any(e.tag == "b" for e in root.iter()) and "saddle <b>&" in cells
    assert _pretty(g) == repr(g) == "SaddleGraph(20 nodes, 2 edges, 1 trajectories)"


def _visit(kind, sig, t_in, t_out, loss, node):
    return Visit(kind=kind, t_in=t_in, t_out=t_out, loss=loss, gen_error=None, signature=sig,
                 theta=np.zeros(3), grad_norm=1e-10, reduces_to="", fingerprint=np.zeros(2),
                 eigenvalues=np.zeros(3), node=node)


def test_itinerary_html_has_one_row_per_visit_and_how_it_ended():
    vs = [_visit("saddle", (1, 0, 2), 0.0, 12.5, 0.25, "n1"),
          _visit("minimum", (0, 0, 3), 40.0, 40.0, 1e-9, "n0")]
    it = Itinerary(vs, "attractor", "gradient_flow", "converged: |grad L| <= gtol")
    root = _parse(it._repr_html_())
    cells = _cells(root)
    assert "Itinerary: 2 visits ⇒ attractor" in "".join(root.itertext())
    assert {"n1", "(1, 0, 2)", "12.5", "0.25", "1e-09", "converged: |grad L| <= gtol"} <= set(cells)
    assert _pretty(it) == repr(it)
    long = Itinerary([_visit("saddle", (1, 0, 2), float(i), i + 0.5, 0.1, f"n{i}") for i in range(9)],
                     "unfinished", "gradient_flow", "")
    assert "4 more" in _pretty(long) and len(_pretty(long)) < len(repr(long))


def test_trajectory_html_holds_status_final_values_and_an_inline_loss_curve():
    t = np.logspace(-2, 3, 40)
    loss = 0.3 * np.exp(-t / 100) + 1e-6
    tr = Trajectory(t=t, theta=np.zeros((40, 3)), loss=loss, grad_norm=loss * 2, gen_error=None,
                    status=Status.T1_REACHED, message="reached t1 = 1000", stats=dict(steps=321),
                    method="gradient_flow")
    text = tr._repr_html_()
    root = _parse(text)
    cells = _cells(root)
    assert {"t1_reached", "reached t1 = 1000", "1000", format(loss[-1], ".6g"), "40", "321"} <= set(cells)
    svgs = [e for e in root.iter() if e.tag.endswith("svg")]
    assert len(svgs) == 2  # L and ‖∇L‖
    line = [e for e in svgs[0].iter() if e.tag.endswith("polyline")][0]
    points = np.array([p.split(",") for p in line.get("points").split()], dtype=float)
    assert len(points) == 40 and np.all(np.diff(points[:, 0]) > 0)  # one vertex per saved state, in t order
    assert points[-1, 1] > points[0, 1]  # the loss falls: the curve ends lower (SVG y points down)
    assert _pretty(tr) == repr(tr)


def test_spectrum_html_holds_signature_and_extreme_eigenvalues():
    p = ft.problems.minimal_model(loss="mse")
    sp = ft.hessian_spectrum(p, np.array([0.3, -0.2, 0.1, 0.4]), method="dense")
    cells = _cells(_parse(sp._repr_html_()))
    assert _text_sig(sp.signature) in cells
    assert format(sp.min_eigenvalue, ".6g") in cells and format(sp.max_eigenvalue, ".6g") in cells
    assert "dense" in cells and _pretty(sp) == repr(sp)


def _text_sig(sig):
    return "(" + ", ".join(str(int(s)) for s in sig) + ")"


def test_sweep_result_html_holds_counts_and_failures(tmp_path):
    g, _ = _graph(4)
    res = SweepResult(store=pathlib.Path(tmp_path), dataset=None, graph=g, n_points=6, n_run=4, n_skipped=1,
                      failed=[(5, "worker died <3 times>")], wall_time=12.25, timings=dict(points=9.5),
                      errors=[(2, "ValueError: width must be positive")])
    cells = _cells(_parse(res._repr_html_()))
    assert {"6", "4", "1", "12.25", "9.5", "worker died <3 times>", "ValueError: width must be positive",
            str(tmp_path), "4 nodes, 2 edges"} <= set(cells)
    assert _pretty(res) == repr(res)


@pytest.mark.parametrize("values", [[], [1.0], [np.nan, 2.0]])
def test_svg_curve_with_too_few_points_is_empty(values):
    from flowtools.view import svg_curve

    assert svg_curve(np.arange(1, len(values) + 1), values) == ""
