"""The landscape atlas (flowtools.landscape.atlas) and disconnectivity graphs: Müller–Brown, whose three
minima and two saddles are solved for independently with scipy (tests/test_paths.py), and the
Safran–Shamir ReLU landscape (k = n = 8: a spurious minimum and the global one)."""

import numpy as np
import pytest

import flowtools as ft
from flowtools.landscape import Atlas, disconnectivity_tree
from flowtools.objective import muller_brown

from test_paths import MIN_A, MIN_B, MIN_C, SADDLE_AC, SADDLE_CB, mb_energy_numpy

E = {k: mb_energy_numpy(v) for k, v in dict(A=MIN_A, B=MIN_B, C=MIN_C, AC=SADDLE_AC, CB=SADDLE_CB).items()}


@pytest.fixture(scope="module")
def mb():
    return ft.Problem.from_loss(muller_brown, 2)


@pytest.fixture(scope="module")
def mb_atlas(mb):
    """A and B only, then connected: the band A–B passes C, so connect must find C and both saddles."""
    atlas = Atlas(mb)
    a, b = atlas.add_minimum(MIN_A + 0.02), atlas.add_minimum(MIN_B - 0.02)
    result = atlas.connect(a, b)
    return atlas, a, b, result


def _named(atlas, points):
    """The atlas node at each independently computed point (exactly one each)."""
    out = {}
    for name, p in points.items():
        hits = [n for n in atlas.nx.nodes if np.linalg.norm(atlas.theta(n) - p) <= 1e-8]
        assert len(hits) == 1, (name, hits)
        out[name] = hits[0]
    return out


def test_connect_finds_the_intermediate_minimum_and_both_saddles(mb_atlas):
    atlas, a, b, result = mb_atlas
    assert result.status == "connected" and result.connected, result.message
    assert len(atlas.minima()) == 3 and len(atlas.transition_states()) == 2
    n = _named(atlas, dict(A=MIN_A, B=MIN_B, C=MIN_C, AC=SADDLE_AC, CB=SADDLE_CB))
    assert (n["A"], n["B"]) == (a, b)
    for key, node in n.items():
        assert atlas.loss(node) == pytest.approx(E[key], abs=1e-8)
        assert atlas.nx.nodes[node]["grad_norm"] <= 1e-10
    assert sorted(atlas.connections(n["AC"])) == sorted([n["A"], n["C"]])
    assert sorted(atlas.connections(n["CB"])) == sorted([n["C"], n["B"]])
    # The first band (A–B) found the A–C saddle but not a connection of A and B; the second (C–B) joined.
    assert [x["status"] for x in result.attempts] == ["not_connected", "converged"]
    assert result.path == [n["A"], n["C"], n["B"]] and result.pass_node == n["AC"]
    assert result.barrier == pytest.approx((E["AC"] - E["A"], E["AC"] - E["B"]), abs=1e-8)
    # Each connection carries its barrier.
    for ts in (n["AC"], n["CB"]):
        for m in atlas.connections(ts):
            assert atlas.nx.edges[ts, m]["barrier"] == pytest.approx(atlas.loss(ts) - atlas.loss(m), abs=1e-12)
            assert atlas.nx.edges[ts, m]["source"] == "transition_path"


def test_barriers_are_minimax_over_paths(mb_atlas):
    atlas, a, b, _ = mb_atlas
    n = _named(atlas, dict(A=MIN_A, B=MIN_B, C=MIN_C, AC=SADDLE_AC, CB=SADDLE_CB))
    assert atlas.barrier(n["C"], n["B"]) == pytest.approx((E["CB"] - E["C"], E["CB"] - E["B"]), abs=1e-8)
    assert atlas.barrier(n["B"], n["A"]) == pytest.approx((E["AC"] - E["B"], E["AC"] - E["A"]), abs=1e-8)
    assert atlas.lowest_pass(n["B"], n["C"]) == (n["CB"], [n["B"], n["C"]])
    assert atlas.connected(n["A"], n["B"])
    # Already connected: connect runs no band.
    again = atlas.connect(n["B"], n["A"])
    assert again.connected and again.attempts == []


def test_disconnectivity_tree(mb_atlas):
    """B and C join at the C–B saddle; A joins them at the A–C saddle (Müller–Brown's known tree)."""
    atlas, *_ = mb_atlas
    n = _named(atlas, dict(A=MIN_A, B=MIN_B, C=MIN_C, AC=SADDLE_AC, CB=SADDLE_CB))
    tree = disconnectivity_tree(atlas)
    low, high = f"join:{n['CB']}", f"join:{n['AC']}"
    assert tree.graph["roots"] == [high]
    assert set(tree.successors(low)) == {n["B"], n["C"]}
    assert set(tree.successors(high)) == {n["A"], low}
    assert tree.nodes[low]["loss"] == pytest.approx(E["CB"], abs=1e-8)
    assert tree.nodes[high]["loss"] == pytest.approx(E["AC"], abs=1e-8)
    assert sorted(tree.nodes[high]["minima"]) == sorted([n["A"], n["B"], n["C"]])


def test_disconnectivity_drawing(mb_atlas, tmp_path):
    atlas, *_ = mb_atlas
    n = _named(atlas, dict(A=MIN_A, B=MIN_B, C=MIN_C, AC=SADDLE_AC, CB=SADDLE_CB))
    ax = atlas.draw()
    x = ax.disconnectivity["x"]
    # Leaves left to right: the lowest minimum's branch first at every join (A | B, C), joins above their
    # children, every branch drawn from a minimum's loss to its join's loss.
    assert x[n["A"]] < x[n["B"]] < x[n["C"]]
    assert x[f"join:{n['CB']}"] == pytest.approx((x[n["B"]] + x[n["C"]]) / 2)
    segments = [(tuple(line.get_xdata()), np.asarray(line.get_ydata())) for line in ax.get_lines()]
    assert any(xs == (x[n["C"]], x[f"join:{n['CB']}"]) and np.allclose(ys, (E["C"], E["CB"]), atol=1e-8)
               for xs, ys in segments)
    assert ax.get_ylabel() == "objective" and "3 minima, 2 joins" in ax.get_title()
    ft.plotting.save_figure(ax.figure, tmp_path / "dg.png")
    assert (tmp_path / "dg.png").stat().st_size > 1000


def test_disconnected_groups_and_empty_atlas(mb):
    atlas = Atlas(mb)
    ax = atlas.draw(title="nothing yet")
    assert ax.get_title() == "nothing yet"
    a, c = atlas.add_minimum(MIN_A), atlas.add_minimum(MIN_C)
    assert atlas.add_minimum(MIN_A + 1e-3) == a  # the same minimum, refined
    tree = disconnectivity_tree(atlas)
    assert sorted(tree.graph["roots"]) == sorted([a, c]) and tree.number_of_edges() == 0
    assert atlas.barrier(a, c) is None and not atlas.connected(a, c)
    assert "2 groups not connected" in atlas.draw().get_title()
    failed = atlas.connect(a, c, max_iter=5)  # the band cannot converge in 5 steps
    assert failed.status == "not_connected" and failed.barrier is None
    assert failed.attempts[0]["status"] == "max_iter" and "max_iter" in failed.message
    # The pair is not tried again.
    assert atlas.connect(a, c).attempts == []


def test_round_trip_and_merge_with_flow_graphs(mb_atlas, mb, tmp_path):
    atlas, a, b, _ = mb_atlas
    atlas.to_json(tmp_path / "atlas.json")
    back = Atlas.from_json(mb, tmp_path / "atlas.json")
    assert back.minima() == atlas.minima() and back.transition_states() == atlas.transition_states()
    assert back.barrier(a, b) == pytest.approx(atlas.barrier(a, b), abs=1e-12)
    # Merged with the graph of a gradient-flow run: the flow's minimum is the atlas's minimum, and the
    # transition-state edges keep their kind and barrier.
    traj = ft.gradient_flow(mb, MIN_C + np.array([0.05, -0.03]), np.inf, gtol=1e-9)
    flows = ft.SaddleGraph()
    ft.add_to_graph(flows, ft.itinerary(mb, traj, visit_radius=0.05), "run0")
    merged = flows.merge(atlas.graph)
    assert merged.graph.graph["loss_label"] == "objective"
    assert len(merged) == 5
    merged_atlas = Atlas(mb, merged)
    assert len(merged_atlas.minima()) == 3 and len(merged_atlas.transition_states()) == 2
    n = _named(merged_atlas, dict(A=MIN_A, B=MIN_B))  # node ids are the merged graph's own
    assert merged_atlas.barrier(n["A"], n["B"]) == pytest.approx(atlas.barrier(a, b), abs=1e-12)
    ts = merged_atlas.transition_states()[0]
    assert {merged.graph.edges[ts, m]["kind"] for m in merged_atlas.connections(ts)} == {"transition_path"}


def test_bad_input(mb, mb_atlas):
    atlas, a, b, _ = mb_atlas
    with pytest.raises(TypeError, match="Problem"):
        Atlas(muller_brown)
    with pytest.raises(ValueError, match="not a minimum"):
        Atlas(mb).add_minimum(SADDLE_AC)
    with pytest.raises(KeyError, match="not a node"):
        atlas.barrier(a, "m99")
    ts = atlas.transition_states()[0]
    with pytest.raises(ValueError, match="not a minimum"):
        atlas.connect(a, ts)
    with pytest.raises(ValueError, match="same minimum"):
        atlas.connect(a, a)
    with pytest.raises(TypeError, match="TransitionPath"):
        atlas.add_path("a path")


# ------------------------------------------------------------------------------- Safran–Shamir
@pytest.mark.slow
def test_safran_shamir_spurious_minimum_barrier():
    """k = n = 8: the spurious minimum (F = 0.0215080, reached from seed 3) and the global minimum (seed 0)
    join through one index-1 saddle; descent from it reaches both, and the barrier is reported."""
    problem = ft.problems.safran_shamir(8)
    ends = [ft.gradient_flow(problem, ft.problems.safran_shamir_init(problem, s), np.inf, gtol=1e-10).final_theta
            for s in (3, 0)]
    atlas = Atlas(problem)
    spurious, best = (atlas.add_minimum(t) for t in ends)
    assert atlas.loss(spurious) == pytest.approx(0.0215080, abs=5e-8) and atlas.loss(best) < 1e-15
    result = atlas.connect(spurious, best)
    assert result.connected, result.message
    ts = result.pass_node
    assert atlas.nx.nodes[ts]["signature"][0] == 1 and atlas.nx.nodes[ts]["grad_norm"] <= 1e-10
    # Independently: the Hessian at the saddle from numpy has exactly one negative eigenvalue.
    lam = np.linalg.eigvalsh(problem.hessian(atlas.theta(ts)))
    assert (lam < -1e-8).sum() == 1 and lam[1] > 1e-8
    assert atlas.barrier(spurious, best) == pytest.approx((6.50361e-4, 0.0221584), rel=1e-5)
