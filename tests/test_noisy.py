"""Noisy runs: escape times with hysteresis and their distributions, plateaus of flow, GD and SGD, the
itinerary of an SGD run with label noise (plateau saddle recorded, noise-ball attractor)."""

import math

import numpy as np
import pytest

import flowtools as ft
from flowtools.problems import orthonormal_teacher


def _traj(t, d):
    return ft.Trajectory(t=np.asarray(t, float), theta=np.asarray(d, float)[:, None],
                         loss=np.ones(len(t)), grad_norm=np.ones(len(t)), gen_error=None, status=ft.Status.T1_REACHED,
                         message="", stats={}, method="sgd")


def test_escape_exit_rules_on_a_run_that_wanders_across_the_radius():
    # inside 0–3, out to 1.2 (below the exit radius 2) at 4, back in at 5, then out to 3 at 8 and beyond
    t = np.arange(11.0)
    d = np.array([0.1, 0.5, 0.8, 0.9, 1.2, 0.9, 0.8, 1.5, 3.0, 0.5, 4.0])  # returns once at t = 9
    tr = _traj(t, d)
    first = ft.escape_time(tr, np.zeros(1), 1.0, exit="first", interpolation="linear", drift=False)
    hyst = ft.escape_time(tr, np.zeros(1), 1.0, exit="hysteresis", interpolation="linear", drift=False)
    last = ft.escape_time(tr, np.zeros(1), 1.0, exit="last", interpolation="linear", drift=False)
    assert first.exit == "first" and 3 < first.t_out < 4
    assert hyst.exit == "hysteresis" and 6 < hyst.t_out < 7  # the last crossing before d > 2
    assert last.exit == "last" and 9 < last.t_out < 10
    assert ft.escape_time(tr, np.zeros(1), 1.0).exit == "hysteresis"  # the default for SGD
    with pytest.raises(ValueError, match="exit_radius"):
        ft.escape_time(tr, np.zeros(1), 1.0, exit_radius=0.5)
    with pytest.raises(ValueError, match="exit"):
        ft.escape_time(tr, np.zeros(1), 1.0, exit="never")


def test_escape_time_distribution_counts_and_quantiles():
    t = np.arange(6.0)
    runs = [_traj(t, [0, 0, k, 2, 3, 3]) for k in (0.5, 0.9, 3.0)] + [_traj(t, [0, 0, 0, 0, 0, 0])]
    es = [ft.escape_time(r, np.zeros(1), 1.0, interpolation="linear", drift=False) for r in runs]
    dist = ft.escape_time_distribution(es, quantiles=(0.5,))
    times = np.sort([e.time for e in es if e.escaped])
    assert dist.n == 4 and dist.n_escaped == 3 and dist.n_never_left == 1
    assert dist.median == pytest.approx(np.median(times)) and dist.quantiles[0.5] == dist.median
    assert dist.lower_bounds.tolist() == [5.0] and "understates" in dist.message
    with pytest.raises(TypeError, match="EscapeTime"):
        ft.escape_time_distribution([1.0])
    with pytest.raises(ValueError, match="empty"):
        ft.escape_time_distribution([])
    assert math.isnan(ft.escape_time_distribution(es[3:]).median)


@pytest.fixture(scope="module")
def scenario():
    """The teacher–student plateau of studies/sgd_noise.py, with label noise 0.3."""
    data = ft.teacher_dataset(orthonormal_teacher(10, 2, "erf"), 2000, noise=0.3, seed=0)
    problem = ft.Problem(ft.MLP((10, 2, 1), "erf", bias=False), data, "half_mse")
    theta0 = np.asarray(problem.model.init(1, "normal", scale=1e-3))
    flow = ft.gradient_flow(problem, theta0, 400.0, gtol=1e-8)
    return problem, theta0, flow, ft.itinerary(problem, flow)


def _plateau_saddle(itin):
    return min((v for v in itin.visits if v.signature[0]), key=lambda v: v.loss)


@pytest.mark.parametrize("method", ["flow", "gd", "sgd"])
def test_plateaus_default_finds_the_main_plateau_once(scenario, method):
    problem, theta0, flow, itin = scenario
    saddle = _plateau_saddle(itin)
    tr = {"flow": lambda: flow, "gd": lambda: ft.gradient_descent(problem, theta0, 0.5, 800),
          "sgd": lambda: ft.sgd(problem, theta0, 0.5, 800, batch_size=32, seed=0)}[method]()
    near = [p for p in ft.plateaus(tr) if abs(math.log(p.loss_plateau / saddle.loss)) < 0.25]
    assert len(near) == 1, ft.plateaus(tr)  # found, and not fragmented
    p = near[0]
    assert p.t_start < 13 and p.t_end > 24  # the flow's saddle window is t ∈ [9, 38]


def test_sgd_itinerary_records_the_plateau_saddle_and_ends_in_a_noise_ball(scenario):
    problem, theta0, _, itin = scenario
    saddle = _plateau_saddle(itin)
    tr = ft.sgd(problem, theta0, 0.5, 800, batch_size=32, seed=0)
    it = ft.itinerary(problem, tr)
    assert it.terminal == "attractor" and it.visits[-1].kind == "noise_ball", it
    assert [v.kind for v in it.visits].count("slow_region") == 0, it
    hits = [v for v in it.visits if abs(v.loss - saddle.loss) < 1e-8]
    assert len(hits) == 1 and hits[0].dwell > 10  # one visit, not a window of zero length
    assert it.stats["exit_radius"] == pytest.approx(2 * it.stats["visit_radius"])
    assert it.stats["noise_scale"] > 0.01
    ball = it.visits[-1].ball_radius
    assert 0 < ball < it.stats["exit_radius"]
    g = ft.SaddleGraph()
    ft.add_to_graph(g, itin, "flow")
    ft.add_to_graph(g, it, "sgd")
    assert g.graph.number_of_nodes() == 3  # the noise ball is the minimum's node
    end = [a for _, a in g.graph.nodes(data=True) if a.get("attractor")]
    assert len(end) == 1 and end[0]["noise_ball_radius"] == pytest.approx(ball)
    with pytest.raises(ValueError, match="exit_radius"):
        ft.itinerary(problem, tr, visit_radius=0.1, exit_radius=0.05)
    short = ft.itinerary(problem, tr, time_limit=1e-3)  # a spent budget is said, and the end still judged
    assert short.stats["budget_exhausted"] and "time limit" in short.message
    assert short.terminal == "attractor" and short.visits[-1].kind == "noise_ball"
