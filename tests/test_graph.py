import json
import math

import numpy as np
import pytest

import flowtools as ft
from flowtools.graph import SaddleGraph


def _canon(g: SaddleGraph) -> str:
    """A comparable text of a graph (NaN-safe: JSON writes NaN as null)."""
    return json.dumps(ft.io.to_jsonable([sorted(g.graph.nodes(data=True)), sorted(g.graph.edges(data=True)),
                                         {k: v for k, v in g.graph.graph.items()}]), sort_keys=True)


def _example() -> tuple[SaddleGraph, str, str, str]:
    g = SaddleGraph()
    a = g.add_node(fingerprint=[0.0, 0.0, 0.0], signature=(2, 0, 2), kind="saddle", loss=1.6, theta=[0, 0, 0, 0],
                   gen_error=1.58, reduces_to="1-0-1", grad_norm=1e-15, eigenvalues=[-1, -1, 1, 1])
    b = g.add_node(fingerprint=[1.0, 2.0, 3.0], signature=(1, 1, 2), kind="degenerate_saddle", loss=0.043,
                   theta=[1, 1, 1, 1], reduces_to="1-1-1")
    c = g.add_node(fingerprint=[1.1, 2.0, 3.0], signature=(0, 0, 4), kind="minimum", loss=0.040,
                   theta=[2, -0.5, 0.7, -1.6], gen_error=0.0027)
    g.graph.nodes[c]["attractor"] = True
    g.add_itinerary([a, b, c], [(0.0, 1.2), (3.0, 200.0), (210.0, 2e4)], method="gradient_descent", run="gd")
    g.add_itinerary([a, c], [(0.0, 1.0), (5.0, 2e4)], method="gradient_flow", run="gf")
    g.add_unstable_connection(a, b, fraction=0.5, time=4.0)
    return g, a, b, c


def test_nodes_are_matched_by_function_and_signature():
    g, a, b, c = _example()
    # Same function (to tolerance) and signature: the same node.
    assert g.find_node([1.0, 2.0, 3.0 + 1e-9], (1, 1, 2)) == b
    # Same function, no unstable direction: another critical set (a saddle and a minimum segment of one
    # line), whereas another saddle signature of the same function is the same set (a plateau manifold).
    assert g.find_node([1.0, 2.0, 3.0], (0, 1, 3)) is None
    assert g.find_node([1.0, 2.0, 3.0], (3, 0, 1)) == b
    # Other function: another node.
    assert g.find_node([1.0, 2.5, 3.0], (1, 1, 2)) is None
    assert len(g) == 3


def test_one_node_per_critical_set_records_its_signatures():
    """Points of one plateau manifold (the same function) with different signatures are one node, which
    records every signature seen and their range; a slow region within a visit radius must still share
    n_neg to match."""
    g, a, b, c = _example()
    assert g.add_node(fingerprint=[1.0, 2.0, 3.0 + 1e-9], signature=(3, 0, 1), kind="saddle", loss=0.043,
                      theta=[1, 1, 1, 1.1]) == b
    assert g.graph.nodes[b]["signatures"] == [[1, 1, 2], [3, 0, 1]]
    assert g.graph.nodes[b]["signature_range"] == [[1, 3], [0, 1], [1, 2]]
    slow = dict(fingerprint=[1.0, 2.05, 3.0], kind="slow_region", loss=0.05, theta=[0, 0, 0, 0], radius=0.1)
    assert g.add_node(signature=(1, 0, 3), **slow) == b
    assert g.add_node(signature=(2, 0, 2), **slow) != b
    # The record survives a merge and both file formats.
    merged = g.merge(SaddleGraph())
    node = merged.find_node([1.0, 2.0, 3.0], (1, 1, 2))
    assert merged.graph.nodes[node]["signatures"][:2] == [[1, 1, 2], [3, 0, 1]]


def test_edge_counts_fractions_and_transit_times():
    g, a, b, c = _example()
    assert g.n_trajectories == 2
    e = g.graph.edges[a, b]
    assert e["count"] == 1 and e["fraction"] == pytest.approx(0.5)
    assert e["median_transit_time"] == pytest.approx(3.0 - 1.2)
    assert set(e["source"].split("+")) == {"itinerary", "unstable_manifold"}
    assert e["manifold_fraction"] == 0.5 and e["manifold_time"] == 4.0
    assert g.graph.edges[b, c]["count"] == 1
    assert g.graph.edges[a, c]["count"] == 1
    assert g.graph.nodes[a]["visits"] == 2 and g.graph.nodes[b]["visits"] == 1
    assert g.attractors() == [c]


def test_unknown_node_in_transition_raises():
    g, a, _, _ = _example()
    with pytest.raises(KeyError, match="not in the graph"):
        g.add_transition(a, "nope")


def test_round_trip_json_and_graphml(tmp_path):
    g, *_ = _example()
    g.to_json(tmp_path / "g.json")
    g.to_graphml(tmp_path / "g.graphml")
    assert _canon(SaddleGraph.from_json(tmp_path / "g.json")) == _canon(g)
    assert _canon(SaddleGraph.from_graphml(tmp_path / "g.graphml")) == _canon(g)
    back = SaddleGraph.from_json(tmp_path / "g.json")
    assert math.isnan(back.graph.nodes["n1"]["gen_error"])  # NaN survives JSON's null


def test_merge_adds_counts_and_matches_nodes():
    g, a, b, c = _example()
    h = SaddleGraph()
    c2 = h.add_node(fingerprint=[1.1, 2.0, 3.0], signature=(0, 0, 4), kind="minimum", loss=0.040,
                    theta=[-2, 0.5, -0.7, 1.6])  # a symmetric copy: same function
    d = h.add_node(fingerprint=[5.0, 5.0, 5.0], signature=(0, 0, 4), kind="minimum", loss=0.5, theta=[9, 9, 9, 9])
    h.add_itinerary([d, c2], [(0, 1), (2, 3)], method="gradient_flow", run="x")
    m = g.merge(h)
    assert len(m) == 4
    assert m.n_trajectories == 3
    mc = m.find_node([1.1, 2.0, 3.0], (0, 0, 4))
    md = m.find_node([5.0, 5.0, 5.0], (0, 0, 4))
    assert m.graph.edges[md, mc]["count"] == 1
    assert m.graph.edges[md, mc]["fraction"] == pytest.approx(1 / 3)


def test_merge_returns_the_id_each_node_got():
    """`merge(return_ids=True)` says where each input node went. A later `find_node` may not: a
    higher-order saddle (n_neg = 0) of a minimum's function, looked up by signature alone, names the
    minimum, a node the merge kept apart."""
    g, h = SaddleGraph(), SaddleGraph()
    m = g.add_node(fingerprint=[1.0, 2.0, 3.0], signature=(0, 0, 4), kind="minimum", loss=0.1, theta=[0, 0])
    s = g.add_node(fingerprint=[5.0, 5.0, 5.0], signature=(1, 0, 3), kind="saddle", loss=0.5, theta=[1, 1])
    j = h.add_node(fingerprint=[1.0, 2.0, 3.0], signature=(0, 1, 3), kind="higher_order_saddle", loss=0.1,
                   theta=[0, 1])
    s2 = h.add_node(fingerprint=[5.0, 5.0, 5.0 + 1e-9], signature=(1, 0, 3), kind="saddle", loss=0.5,
                    theta=[1, 2])
    out, ids_g, ids_h = g.merge(h, return_ids=True)
    assert set(ids_g) == {m, s} and set(ids_h) == {j, s2}
    assert len(out) == 3 and set(ids_g.values()) | set(ids_h.values()) == set(out.graph.nodes)
    assert ids_h[s2] == ids_g[s] and ids_h[j] not in (ids_g[m], ids_g[s])
    assert out.graph.nodes[ids_h[j]]["kind"] == "higher_order_saddle"
    assert out.find_node([1.0, 2.0, 3.0], (0, 1, 3)) == ids_g[m]  # the lookup by signature alone
    assert _canon(out) == _canon(g.merge(h))

def test_merge_keeps_graph_metadata():
    g, *_ = _example()
    h = SaddleGraph()
    h.add_node(fingerprint=[5.0, 5.0, 5.0], signature=(0, 0, 4), kind="minimum", loss=0.5, theta=[9, 9, 9, 9])
    g.graph.graph.update(loss_label="population loss", study="width", k=8)
    h.graph.graph.update(loss_label="population loss", study="width", k=10, seed=3)
    m = g.merge(h)
    meta = m.graph.graph
    assert (meta["loss_label"], meta["study"]) == ("population loss", "width")
    assert "k" not in meta and "seed" not in meta  # they disagree, or one graph does not say: not kept
    # Merged in a tree (as sweeps merge points), a dropped value does not come back from a third graph.
    third = SaddleGraph()
    third.add_node(fingerprint=[7.0, 7.0, 7.0], signature=(0, 0, 4), kind="minimum", loss=0.1, theta=[1, 1, 1, 1])
    third.graph.graph.update(loss_label="population loss", study="width", k=12)
    assert "k" not in m.merge(third).graph.graph and m.merge(third).graph.graph["study"] == "width"
    assert meta["n_trajectories"] == g.n_trajectories and meta["fingerprint_tol"] == g.fingerprint_tol
    h.graph.graph["loss_label"] = "training loss"
    assert g.merge(h).graph.graph["loss_label"] == "loss (mixed)"
    empty = SaddleGraph()
    empty.graph.graph["k"] = 3
    assert SaddleGraph().merge(g).graph.graph["loss_label"] == "population loss"
    assert empty.merge(g).graph.graph["k"] == 8  # an empty graph has no say


def test_draw_writes_png(tmp_path):
    from flowtools.plotting import save_figure

    g, *_ = _example()
    ax = g.draw()
    save_figure(ax.figure, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 5000


def test_bad_tolerance():
    with pytest.raises(ValueError, match="fingerprint_tol"):
        SaddleGraph(fingerprint_tol=0)


def test_summary_is_plain_json():
    g, *_ = _example()
    s = g.summary()
    json.dumps(ft.io.to_jsonable(s), allow_nan=False)
    assert {"nodes", "edges", "n_trajectories"} <= set(s)
    assert all({"source", "target", "count", "fraction"} <= set(e) for e in s["edges"])
    assert np.isclose(sum(e["count"] for e in s["edges"]), 3)


def test_one_degenerate_set_is_one_node_whatever_its_zero_count():
    # Refinement can land anywhere on a degenerate minimum set; the zero count varies there (10 or 11
    # zero eigenvalues): the node is identified by function and index only.
    g = SaddleGraph()
    a = g.add_node(fingerprint=[1.0, 2.0, 3.0], signature=(0, 10, 12), kind="degenerate_minimum", loss=0.0,
                   theta=[0.0], grad_norm=1e-14)
    b = g.add_node(fingerprint=[1.0, 2.0, 3.0 + 1e-9], signature=(0, 11, 11), kind="degenerate_minimum",
                   loss=0.0, theta=[1.0], grad_norm=1e-15)
    assert a == b and len(g) == 1
    assert g.graph.nodes[a]["signature"] == [0, 11, 11]  # the better-converged representative
    # another index is another critical set
    assert g.add_node(fingerprint=[1.0, 2.0, 3.0], signature=(1, 10, 11), kind="degenerate_saddle", loss=0.0,
                      theta=[0.0]) != a


def test_slow_regions_of_one_passage_share_a_node():
    g = SaddleGraph()
    a = g.add_node(fingerprint=[0.50, 0.50, 0.50], signature=(3, 0, 19), kind="slow_region", loss=0.03,
                   theta=[0.0], radius=0.08)
    # another run's slow region on the same plateau: same index, function within the visit radius
    assert g.add_node(fingerprint=[0.52, 0.47, 0.55], signature=(3, 1, 18), kind="slow_region", loss=0.03,
                      theta=[0.1], radius=0.08) == a
    # same function, other index: another node; far function: another node
    assert g.add_node(fingerprint=[0.50, 0.50, 0.50], signature=(2, 0, 20), kind="slow_region", loss=0.03,
                      theta=[0.0], radius=0.08) != a
    assert g.add_node(fingerprint=[0.9, 0.5, 0.5], signature=(3, 0, 19), kind="slow_region", loss=0.03,
                      theta=[0.0], radius=0.08) != a
    # an "unfinished" end is never merged into a critical set
    assert g.add_node(fingerprint=[0.50, 0.50, 0.50], signature=(3, 0, 19), kind="unfinished", loss=0.03,
                      theta=[0.0], radius=0.08) != a
    # function distance with d_out = 2: sqrt(mean over inputs of the summed squared error)
    h = SaddleGraph()
    n = h.add_node(fingerprint=[0.0, 0.0, 0.0, 0.0], signature=(1, 0, 1), kind="slow_region", loss=1.0,
                   theta=[0.0], radius=0.1, d_out=2)
    # d = sqrt(((0.08² + 0.08²) + 0) / 2) = 0.08 ≤ 0.1 (the mean over all entries would be 0.057)
    assert h.find_node([0.08, 0.08, 0.0, 0.0], (1, 0, 1), kind="slow_region", d_out=2) == n
    assert h.find_node([0.12, 0.12, 0.0, 0.0], (1, 0, 1), kind="slow_region", d_out=2) is None


def test_unfinished_ends_match_on_the_training_inputs_whatever_their_index():
    """An unfinished end is not a critical point: ends of two runs are one node when their functions
    agree within the visit radius on the training inputs (the first n_train entries), whatever their
    Hessian index and their outputs on the probe inputs."""
    g = SaddleGraph()
    a = g.add_node(fingerprint=[1.0, 0.0, 5.0, -5.0], signature=(209, 140, 861), kind="unfinished", loss=0.005,
                   theta=[0.0], radius=0.1, n_train=2)
    assert g.add_node(fingerprint=[0.98, 0.01, -3.0, 4.0], signature=(198, 139, 873), kind="unfinished",
                      loss=0.005, theta=[0.1], radius=0.1, n_train=2) == a
    assert g.add_node(fingerprint=[0.5, 0.0, 5.0, -5.0], signature=(209, 140, 861), kind="unfinished",
                      loss=0.3, theta=[0.2], radius=0.1, n_train=2) != a  # another function on the data
    # Refined critical sets (radius 0) keep their exact identity on the whole fingerprint; the index
    # varies along one set (a plateau manifold), so it does not split a node.
    s = g.add_node(fingerprint=[1.0, 0.0, 5.0, -5.0], signature=(3, 0, 1), kind="saddle", loss=0.1, theta=[0.0],
                   n_train=2)
    assert g.add_node(fingerprint=[1.0, 0.0, -3.0, 4.0], signature=(3, 0, 1), kind="saddle", loss=0.1,
                      theta=[0.0], n_train=2) != s
    assert g.add_node(fingerprint=[1.0, 0.0, 5.0, -5.0], signature=(2, 0, 2), kind="saddle", loss=0.1,
                      theta=[0.0], n_train=2) == s
