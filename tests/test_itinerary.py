"""Itineraries of the minimal model (Maleknia & Sato) and the terminal-state rules."""

import numpy as np
import pytest

import flowtools as ft
from flowtools.graph import SaddleGraph
from flowtools.itineraries import add_to_graph, itinerary

THETA0 = np.array([-0.13, 0.13, 0.16, -0.15])
TEACHER_ON_M = np.array([1.0, 1.0, 1.0, 1.0])  # f = tanh(x) + tanh(x) = 2 tanh(x): a point of M


@pytest.fixture(scope="module")
def published():
    """The published runs (GD 2e6 steps at η = 0.01 on "mse", and the flow to t = 2e4), τ = 0.2 and 0."""
    out = {}
    for name, data in [("noisy", ft.datasets.maleknia_sato()), ("clean", ft.datasets.maleknia_sato(noiseless=True))]:
        p = ft.Problem(ft.MLP((1, 2, 1), "tanh", bias=False), data, "mse")
        gd = ft.gradient_descent(p, THETA0, 0.01, 2_000_000)
        gf = ft.gradient_flow(p, THETA0, 2e4)
        out[name] = (p, gd, gf, itinerary(p, gd), itinerary(p, gf))
    return out


def test_published_gd_itinerary_is_saddle_saddle_attractor(published):
    p, gd, _, it, _ = published["noisy"]
    assert it.terminal == "attractor"
    first, *middle, last = it.visits
    # 1. the plateau: the origin, a nondegenerate saddle of index 2
    assert first.kind == "saddle" and first.signature == (2, 0, 2)
    assert np.linalg.norm(first.theta) < 1e-8
    # 2. a slow passage near the optimal region: small generalization error, one unstable direction
    assert len(middle) >= 1
    near_opt = min(middle, key=lambda v: v.gen_error)
    assert near_opt.signature[0] == 1
    assert near_opt.gen_error < 1e-3
    assert near_opt.t_in > first.t_out
    # 3. the attractor: training error below the teacher's, generalization error above it
    teacher_loss = p.loss(TEACHER_ON_M)
    assert last.kind in ("minimum", "degenerate_minimum") and last.signature[0] == 0
    assert last.loss < teacher_loss
    assert last.gen_error > p.gen_error(TEACHER_ON_M) + 1e-4
    assert last.gen_error > near_opt.gen_error
    # the windows are ordered and do not overlap
    for a, b in zip(it.visits, it.visits[1:]):
        assert a.t_out <= b.t_in


def test_noiseless_run_ends_at_the_teacher(published):
    p, gd, gf, it_gd, it_gf = published["clean"]
    for it in (it_gd, it_gf):
        assert it.terminal == "attractor"
        assert it.visits[0].signature == (2, 0, 2)
        end = it.visits[-1]
        assert end.signature[0] == 0
        assert end.gen_error < 1e-10 and end.loss < 1e-10
    # GD after 2e6 steps has not converged to 1e-7: the attractor is degenerate (algebraic approach).
    assert gd.final_grad_norm > 1e-7
    assert it_gd.degenerate


def test_gd_and_flow_give_the_same_node_sequence(published):
    for name in ("noisy", "clean"):
        _, _, _, it_gd, it_gf = published[name]
        g = SaddleGraph()
        nodes_gd = add_to_graph(g, it_gd, run="gd")
        nodes_gf = add_to_graph(g, it_gf, run="gf")
        assert nodes_gd == nodes_gf
        assert g.n_trajectories == 2
        for u, v in zip(nodes_gd, nodes_gd[1:]):
            assert g.graph.edges[u, v]["count"] == 2
            assert set(g.graph.edges[u, v]["methods"]) == {"gradient_descent", "gradient_flow"}


def test_converged_at_a_saddle_is_not_an_attractor(minimal_mse):
    # Started exactly at the origin the flow does not move: ‖∇L‖ = 0 ≤ gtol, status "converged" —
    # but the Hessian has two negative eigenvalues, so the itinerary must not call it an attractor.
    tr = ft.gradient_flow(minimal_mse, np.zeros(4), 10.0, gtol=1e-12)
    assert tr.status == ft.Status.CONVERGED
    it = itinerary(minimal_mse, tr)
    assert it.terminal == "unfinished"
    assert "unstable" in it.message


def test_stopped_on_the_plateau_is_unfinished(minimal_mse):
    tr = ft.gradient_descent(minimal_mse, THETA0, 0.01, 50)  # still near the origin
    it = itinerary(minimal_mse, tr)
    assert it.terminal == "unfinished"


def test_diverged_run_is_labelled_diverged(minimal_mse):
    tr = ft.gradient_descent(minimal_mse, np.array([3.0, -3.0, 3.0, 3.0]), 50.0, 1000)
    assert tr.status in (ft.Status.DIVERGED, ft.Status.NON_FINITE)
    it = itinerary(minimal_mse, tr)
    assert it.terminal == "diverged"


def test_ensemble_itineraries_end_in_allowed_states(minimal_mse):
    rng = np.random.default_rng(3)
    thetas = 0.5 * rng.standard_normal((6, 4))
    runs = ft.run_ensemble("gradient_flow", minimal_mse, thetas, t1=1e6, gtol=1e-10)
    for tr in runs:
        it = itinerary(minimal_mse, tr)
        assert it.terminal in ("attractor", "diverged", "unfinished")
        if it.terminal == "attractor":
            assert it.visits[-1].kind in ("minimum", "degenerate_minimum")
            assert it.visits[-1].signature[0] == 0
        for v in it.visits[:-1] if it.terminal == "attractor" else it.visits:
            assert v.kind != "minimum" or v.signature[0] == 0


def test_bad_arguments(minimal_mse):
    tr = ft.gradient_descent(minimal_mse, THETA0, 0.01, 10)
    with pytest.raises(TypeError, match="trajectory"):
        itinerary(minimal_mse, "not a trajectory")
    with pytest.raises(ValueError, match="visit_radius"):
        itinerary(minimal_mse, tr, visit_radius=-1.0)
    other = ft.Problem(ft.MLP((1, 3, 1), "tanh", bias=False), ft.datasets.maleknia_sato(), "mse")
    with pytest.raises(ValueError, match="parameters"):
        itinerary(other, tr)
