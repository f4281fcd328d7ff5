"""One definition of each shared concept: `reduces_to`, the same-set rule, the RMS of y, and
`find_critical_points` as the map of `find_critical_point`."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

import flowtools as ft
from flowtools import escape, graph, sweeps
from flowtools.escape import _basins
from flowtools.itineraries import _itinerary
from flowtools.sweeps import _tasks as sweep_tasks
from flowtools.landscape import critical
from flowtools.graph import SaddleGraph
from flowtools.landscape.symmetry import (function_fingerprint, network_widths, output_distance, output_scale,
                                          reduce_network, reduces_to)

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = dict(problem="teacher_student", activation="tanh", width=2, teacher_width=2, n=40, seed=3,
              init_scale=0.1, t1=1e4)


# ------------------------------------------------------------------------------------ reduces_to
def test_reduces_to_names_the_widths_of_an_irreducible_point():
    problem, _ = sweeps.make_problem(CONFIG)
    theta = problem.model.init(0, "normal", scale=1.0)
    assert not reduce_network(problem.model, theta).reducible
    assert reduces_to(problem, theta) == "4-2-1"
    dead = np.array(theta)
    dead[problem.model.layout[1].W[0]:problem.model.layout[1].W[1]] = 0.0  # both outgoing weights zero
    assert reduces_to(problem, dead) == "4-0-1"


def test_graph_nodes_get_one_reduces_to_from_a_sweep_and_from_an_itinerary():
    """A sweep's `critical_points` task (CriticalPoint.reduces_to) and `add_to_graph` (Visit.reduces_to)
    record the same value for a point, the widths also when it does not reduce."""
    problem, _ = sweeps.make_problem(CONFIG)
    flow = sweeps.flow_itinerary(CONFIG)["graph"].graph
    cps = sweeps.critical_points(dict(CONFIG, n_guesses=4))["graph"].graph
    for g in (flow, cps):
        for _, a in g.nodes(data=True):
            theta = problem.free_theta(np.asarray(a["theta"]))
            assert a["reduces_to"] == critical.critical_point_at(problem, theta).reduces_to != ""
    assert "4-2-1" in {a["reduces_to"] for _, a in flow.nodes(data=True)}  # the attractor fits the teacher
    # The label names a reduction only where there is one: "→ 4-2-1" on a 4-2-1 net would claim one.
    for g in (flow, cps):
        for _, a in g.nodes(data=True):
            assert a["network"] == "4-2-1"
            assert ("→" in a["label"]) == (a["reduces_to"] != "4-2-1"), (a["label"], a["reduces_to"])


def test_node_labels_show_only_real_reductions():
    problem, _ = sweeps.make_problem(CONFIG)
    theta = problem.model.init(0, "normal", scale=1.0)
    dead = np.array(theta)
    dead[problem.model.layout[1].W[0]:problem.model.layout[1].W[1]] = 0.0
    graph = SaddleGraph()
    for th, label in ((theta, "saddle"), (dead, "saddle → 4-0-1")):
        node = graph.add_node(fingerprint=function_fingerprint(problem, th), signature=(1, 0, 9), kind="saddle",
                              loss=float(problem.loss(th)), theta=th, reduces_to=reduces_to(problem, th),
                              network=network_widths(problem))
        assert graph.graph.nodes[node]["label"] == label
    # a node written without its network (a graph saved before nodes recorded it) keeps its arrow
    old = SaddleGraph()
    node = old.add_node(fingerprint=[0.0], signature=(0, 0, 1), kind="minimum", loss=0.0, theta=[0.0],
                        reduces_to="4-2-1")
    assert old.graph.nodes[node]["label"] == "minimum → 4-2-1"


# ---------------------------------------------------------------------------------- RMS of y
def test_output_scale_is_the_per_sample_rms():
    y = np.random.default_rng(0).standard_normal((7, 3))
    assert output_scale(y) == pytest.approx(np.sqrt(np.mean(np.sum(y**2, axis=1))), rel=1e-14)
    assert output_scale(y) == pytest.approx(float(output_distance(y, 0 * y)), rel=1e-14)
    assert output_scale(y[:, 0]) == pytest.approx(np.sqrt(np.mean(y[:, 0] ** 2)), rel=1e-14)


def test_the_sweep_escape_radius_uses_the_per_sample_rms(monkeypatch):
    """With d_out = 2 the escape ball of the sweeps' `escape` task is 0.5·d(y, 0), as in the itineraries
    and the saddle-escape study (a per-element RMS would be √2 smaller)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 3))
    problem = ft.Problem(ft.MLP((3, 2, 2), "tanh", bias=False), ft.Dataset(x, np.tanh(x[:, :2]) * [1.0, 3.0]),
                         "half_mse")
    seen = {}

    def fake_flow(problem, theta0, center, radius, **kw):
        seen["radius"] = radius
        raise RuntimeError("stop")

    monkeypatch.setattr(sweep_tasks, "make_problem", lambda config: (problem, None))
    monkeypatch.setattr(escape, "escape_flow", fake_flow)
    with pytest.raises(RuntimeError, match="stop"):
        sweeps.escape(dict(seed=0, radius_fraction=0.5))
    y = np.asarray(problem.y)
    assert seen["radius"] == pytest.approx(0.5 * np.sqrt(np.mean(np.sum(y**2, axis=1))), rel=1e-14)


def test_no_other_rms_of_y():
    pattern = re.compile(r"np\.mean\((np\.sum\()?np\.asarray\(\w+\.y\)\s*\*\*\s*2")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "flowtools").rglob("*.py"))
            + sorted((ROOT / "studies").glob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)
            and "problem.y) ** 2))  # the probe targets" not in line]
    assert hits == []


# --------------------------------------------------------------------------- the same-set rule
def test_one_same_set_tolerance():
    import inspect

    assert inspect.signature(graph.match_distance).parameters["tol"].default == graph.SAME_SET_TOL
    assert inspect.signature(escape.basin_fractions).parameters["tol"].default == graph.SAME_SET_TOL
    assert graph.SaddleGraph().fingerprint_tol == graph.SAME_SET_TOL


def test_no_private_same_set_rules():
    """Fingerprints are compared only by `match_distance` (and the visit-radius test of an itinerary's
    final approach); no module or study keeps a rule of its own."""
    own_rule = re.compile(r"np\.sqrt\(np\.mean\(\(fp|_same_set\(|fingerprint_distance\(")
    allowed = {"flowtools/landscape/symmetry.py", "flowtools/graph.py"}
    hits = []
    for p in sorted((ROOT / "flowtools").rglob("*.py")) + sorted((ROOT / "studies").glob("*.py")):
        rel = str(p.relative_to(ROOT))
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if own_rule.search(line) and rel not in allowed and "import" not in line \
                    and "<= rho" not in line:
                hits.append(f"{rel}:{i}: {line.strip()}")
    assert hits == []


def test_every_user_goes_through_the_one_rule(monkeypatch):
    calls = []
    real = graph.match_distance

    def counted(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    for module in (graph, _itinerary, _basins):  # where each looks the rule up
        monkeypatch.setattr(module, "match_distance", counted)
    out = sweeps.critical_points(dict(CONFIG, n_guesses=4))
    n = len(calls)
    assert out["n_found"] < 2 or n > 0
    itin = ft.itinerary(*_flow())
    assert len(calls) > n
    n = len(calls)
    escape.basin_fractions([itin, itin])
    assert len(calls) > n


def _flow():
    problem, _ = sweeps.make_problem(CONFIG)
    return problem, ft.gradient_flow(problem, sweeps.initial_theta(problem, CONFIG), 1e4, gtol=1e-9)


# ------------------------------------------------------------------ find_critical_points
def test_find_critical_points_is_the_map_of_find_critical_point():
    """With a budget (max_iter=10) under which the first dense attempt fails for every guess, and a
    fallback rescues one, the batched solve gives what one solve per guess gives."""
    problem, _ = sweeps.make_problem(CONFIG)
    guesses = 1.5 * np.random.default_rng(0).standard_normal((6, problem.n_params))
    many = ft.find_critical_points(problem, guesses, max_iter=10)
    rescued = 0
    for g, a in zip(guesses, many):
        b = ft.find_critical_point(problem, g, max_iter=10)
        assert (a.status, a.signature, a.kind, a.success) == (b.status, b.signature, b.kind, b.success)
        np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=1e-12 * (1 + np.linalg.norm(b.theta)))
        assert [d["status"] for d in a.attempts] == [d["status"] for d in b.attempts]
        rescued += a.success and len(a.attempts) > 1
    assert rescued >= 1  # a guess whose first attempt failed and a fallback converged
    assert sum(not c.success for c in many) >= 1  # and failures keep their status


def test_find_critical_points_takes_the_arguments_of_find_critical_point():
    import inspect

    one = inspect.signature(ft.find_critical_point).parameters
    many = inspect.signature(ft.find_critical_points).parameters
    assert list(one)[2:] == list(many)[2:]
    assert all(one[k].default == many[k].default for k in list(one)[2:])
