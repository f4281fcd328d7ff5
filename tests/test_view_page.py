"""`flowtools view` without a browser: what it reads (a graph file, a results folder), the page it
writes (self-contained: no script or style fetched from elsewhere), and the errors it gives."""

import json
import re

import numpy as np
import pytest

from flowtools import cli
from flowtools.graph import SaddleGraph
from flowtools.view import _index_classes, load_groups, view


def _graph(seed=0, n=8):
    rng = np.random.default_rng(seed)
    g = SaddleGraph()
    ids = [g.add_node(fingerprint=rng.standard_normal(4), signature=(i % 5, 0, 6 - i % 5),
                      kind="minimum" if i % 5 == 0 else "saddle", loss=10.0 ** -(i % 5), theta=np.zeros(6),
                      eigenvalues=np.arange(6) - i % 5 + 0.5) for i in range(n)]
    g.add_itinerary([ids[3], ids[1], ids[0]], [(0, 1), (2, 3), (4, 5)], method="gradient_flow", run="seed0")
    g.graph.nodes[ids[0]]["attractor"] = True
    return g


def test_page_is_self_contained_and_holds_every_node(tmp_path):
    g = _graph()
    g.to_json(tmp_path / "g.json")
    out = view(tmp_path / "g.json")
    text = out.read_text()
    assert not re.search(r"<(script|link)[^>]+(src|href)=", text)  # no CDN: every script is inline
    assert "Bokeh" in text and 1e6 < out.stat().st_size <= 10e6
    data = json.loads(re.search(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', text,
                                re.S).group(1))
    ids = set()

    def walk(o):
        if isinstance(o, dict):
            attrs = o.get("attributes")
            if isinstance(attrs, dict) and attrs.get("name") == "nodes" and "data" in attrs:
                ids.update(dict(attrs["data"]["entries"])["id"])  # the node source the plot draws
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(data)
    assert ids == set(g.graph.nodes)


def test_results_folder_gives_one_group_per_graph_file(tmp_path):
    _graph(0).to_json(tmp_path / "saddle_graph_a.json")
    (tmp_path / "sub").mkdir()
    _graph(1, n=5).to_graphml(tmp_path / "sub" / "graph.graphml")
    (tmp_path / "summary.json").write_text(json.dumps(dict(nodes=[], links=[])))  # a summary is not a graph
    store = tmp_path / "store"  # a sweep store inside: its merged graph.json, not its point records
    (store / "points").mkdir(parents=True)
    (store / "sweep.json").write_text(json.dumps(dict(task="flow_itinerary", configurations=[])))
    _graph(2, n=4).to_json(store / "graph.json")
    _graph(3, n=6).to_json(store / "points" / "0.json")
    groups, kind = load_groups(tmp_path)
    assert kind == "folder"
    assert [(gr["name"], len(gr["graph"])) for gr in groups] == [("saddle_graph_a", 8), ("store/graph", 4),
                                                                 ("sub/graph", 5)]
    assert groups[0]["basins"].basins[0].label == "n0"


def test_index_classes_tell_0_to_3_apart():
    classes = _index_classes([0, 1, 2, 3, 4, 7, 37, 40, -1])
    assert len({classes[i][0] for i in (0, 1, 2, 3)}) == 4
    assert classes[0][1] == "0: minima" and classes[-1][1] == "unknown index"
    assert classes[37][1].startswith("index ") and "–" in classes[37][1]  # binned above 10 indices
    assert classes[37][0] not in {classes[i][0] for i in (0, 1, 2, 3)}


def test_cli_view_writes_the_page_and_refuses_bad_paths(tmp_path, capsys):
    _graph().to_json(tmp_path / "g.json")
    assert cli.main(["view", str(tmp_path / "g.json"), "--out", str(tmp_path / "page.html")]) == 0
    assert "page.html" in capsys.readouterr().out and (tmp_path / "page.html").exists()
    assert cli.main(["view", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert cli.main(["view", str(tmp_path / "bad.json")]) == 2
    assert "bad.json" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["view", str(tmp_path / "empty")]) == 2
    assert "holds no saddle graph" in capsys.readouterr().err


def test_view_open_uses_the_web_browser(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    _graph().to_json(tmp_path / "g.json")
    out = view(tmp_path / "g.json", open_browser=True)
    assert opened == [out.resolve().as_uri()]


@pytest.mark.parametrize("bad", ["nodes", "links"])
def test_a_file_that_is_not_a_graph_names_the_field(tmp_path, bad):
    data = dict(nodes=[], links=[])
    data[bad] = "x"
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=bad):
        view(tmp_path / "g.json")


def test_view_reads_stores_only_through_public_sweeps_functions():
    import inspect

    import flowtools.view

    assert not re.search(r"sweeps\._\w", inspect.getsource(flowtools.view))


@pytest.mark.slow
def test_store_groups_read_through_the_public_reader(tmp_path):
    """`load_groups` reads a sweep store with `flowtools.sweeps.read_store`; the merged graph keeps the
    loss label of its points."""
    import flowtools.sweeps as S

    configs = S.grid(seed=[0], width=[1, 2], activation="tanh", d_in=2, n=30, t1=1e4)
    S.sweep("flow_itinerary", configs, tmp_path / "store", workers=0, progress=False)
    contents = S.read_store(tmp_path / "store")
    assert contents.configurations == configs and sorted(contents.records) == [0, 1]
    assert contents.graph.n_trajectories == 2 and contents.graph.graph.graph["loss_label"] == "training loss"
    assert int(contents.dataset["finished"].sum()) == 2
    groups, _ = load_groups(tmp_path / "store")
    assert groups[0]["graph"].graph.graph["loss_label"] == "training loss"
    assert len(groups[0]["graph"]) == len(S.merged_graph(tmp_path / "store"))
    with pytest.raises(FileNotFoundError, match="not a sweep store"):
        S.read_store(tmp_path)


_BASE, _STEP = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 0.0, 0.0])


def _split_point(config):
    """A sweep task of one itinerary whose nodes trip a lookup by fingerprint in the merged graph: seed 0
    a saddle at f, seed 1 the same saddle (within the tolerance of f) with a smaller ‖∇L‖, so that the
    node's representative moves away from f, seed 2 another saddle nearer f than that representative,
    seed 3 a higher-order saddle (n_neg = 0) of the minimum's function. Every run ends at the minimum."""
    from flowtools.landscape.symmetry import fingerprint_distance

    # the matching radius around f, in units of _STEP: tol · (1 + d(f, 0)) / d(_STEP, 0)
    r = 1e-4 * (1 + fingerprint_distance(_BASE, 0 * _BASE, 1)) / fingerprint_distance(_STEP, 0 * _STEP, 1)
    seed = config["seed"]
    offset, grad = [(0.0, 1e-6), (0.8 * r, 1e-12), (-0.5 * r, 1e-6), (9.0, 1e-6)][seed]
    g = SaddleGraph()
    visits = [(g.add_node(fingerprint=_BASE + offset * _STEP, grad_norm=grad, signature=(1, 0, 3),
                          kind="saddle", loss=0.5, theta=[seed, 0]), "saddle", 1)]
    at_minimum = dict(fingerprint=_BASE + 20 * _STEP, loss=0.1, theta=[seed, 1])
    if seed == 3:
        junction = g.add_node(signature=(0, 1, 3), kind="higher_order_saddle", grad_norm=1e-9, **at_minimum)
        visits.append((junction, "higher_order_saddle", 0))
    end = g.add_node(signature=(0, 0, 4), kind="minimum", grad_norm=1e-10, **at_minimum)
    visits.append((end, "minimum", 0))
    g.graph.nodes[end]["attractor"] = True
    times = [(2.0 * k, 2.0 * k + 1) for k in range(len(visits))]
    g.add_itinerary([n for n, _, _ in visits], times, method="gradient_flow", run=f"seed{seed}")
    loss = {n: g.graph.nodes[n]["loss"] for n in g.graph}
    return dict(status="ok", graph=g, itinerary=[dict(node=n, kind=kind, t_in=a, t_out=b, loss=loss[n],
                                                      morse_index=index)
                                                 for (n, kind, index), (a, b) in zip(visits, times)])


def _same_counts(page_graph, merged):
    p, g = page_graph.graph, merged.graph
    assert sorted(p.nodes) == sorted(g.nodes)
    assert {n: p.nodes[n]["visits"] for n in p} == {n: g.nodes[n]["visits"] for n in g}
    assert {e: p.edges[e]["count"] for e in p.edges} == {e: g.edges[e]["count"] for e in g.edges}


def test_store_page_and_store_agree_on_every_node(tmp_path):
    """The visits of a store's records carry the ids the merge gave their nodes, so the page's "all
    points" group, built from the visits, holds every node of the store's graph.json with the same visits
    and edge counts, and each visit names a node of its own kind."""
    import flowtools.sweeps as S

    S.sweep(_split_point, S.grid(seed=[0, 1, 2, 3]), tmp_path / "store", workers=0, progress=False)
    merged = SaddleGraph.from_json(tmp_path / "store" / "graph.json")
    assert len(merged) == 5  # two saddles near f, the far saddle, the higher-order saddle, the minimum
    ds = S.open_results(tmp_path / "store")
    seq = [[str(n) for n in row if str(n)] for row in ds["visit_node"].values]
    kinds = [[str(k) for k in row if str(k)] for row in ds["visit_kind"].values]
    assert [len(s) for s in seq] == [2, 2, 2, 3]  # no visit without its node
    assert seq[0][0] == seq[1][0] != seq[2][0]  # seed 0 and 1 were merged; seed 2 was kept apart
    assert all(merged.graph.nodes[n]["kind"] == k for s, ks in zip(seq, kinds) for n, k in zip(s, ks))
    groups, _ = load_groups(tmp_path / "store")
    assert groups[0]["name"].startswith("all points")
    _same_counts(groups[0]["graph"], merged)
    page = view(tmp_path / "store").read_text()
    assert f"{len(merged)} nodes, {merged.graph.number_of_edges()} edges, 4 runs" in page


@pytest.mark.slow
def test_store_page_keeps_the_unfinished_ends_of_a_real_sweep(tmp_path):
    """Flows stopped at t1 = 1 end in an "unfinished" node; each such visit names it, so the page holds
    every node of the store's merged graph."""
    import flowtools.sweeps as S

    configs = S.grid(seed=[0], width=[1, 2], activation="tanh", d_in=2, n=30, t1=1.0)
    res = S.sweep("flow_itinerary", configs, tmp_path / "store", workers=0, progress=False)
    assert list(res.dataset["terminal"].values) == ["unfinished", "unfinished"]
    groups, _ = load_groups(tmp_path / "store")
    _same_counts(groups[0]["graph"], res.graph)
    assert any(a["kind"] == "unfinished" for _, a in groups[0]["graph"].graph.nodes(data=True))
