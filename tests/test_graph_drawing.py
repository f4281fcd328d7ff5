"""SaddleGraph.summary() and draw() at scale: a short table, and a drawing that stays readable for many
nodes, high Morse indices and nearly equal losses."""

import json
import re

import matplotlib
import matplotlib.text
import numpy as np
import pytest

import flowtools as ft
from flowtools.graph import GraphSummary, SaddleGraph
from flowtools.plotting import save_figure

matplotlib.use("Agg")


def _wide_ensemble(n_nodes=40, max_index=151, loss=lambda i: 0.449892 + 1e-7 * i, n_params=1000, seed=0):
    """A synthetic graph like an 8-run ensemble of a wide net: many nodes with large θ and spectra."""
    rng = np.random.default_rng(seed)
    g = SaddleGraph()
    ids = []
    for i in range(n_nodes):
        idx = 0 if i == 0 else (max_index if i == 1 else int(rng.integers(1, max_index + 1)))
        g_id = g.add_node(fingerprint=rng.standard_normal(6), signature=(idx, 3, n_params - idx - 3),
                          kind="minimum" if idx == 0 else "degenerate_saddle", loss=loss(idx),
                          theta=rng.standard_normal(n_params), eigenvalues=rng.standard_normal(n_params),
                          reduces_to="64-12-10", grad_norm=1e-13)
        ids.append(g_id)
    g.graph.nodes[ids[0]]["attractor"] = True
    for r in range(8):
        seq = sorted(rng.choice(ids[1:], size=5, replace=False),
                     key=lambda n: -g.graph.nodes[n]["morse_index"]) + [ids[0]]
        g.add_itinerary(seq, [(float(k), k + 1.0) for k in range(len(seq))], method="gradient_flow",
                        run=f"run{r}")
    return g, ids


def test_summary_prints_a_short_table_and_keeps_the_full_data():
    g, ids = _wide_ensemble()
    s = g.summary()
    assert isinstance(s, GraphSummary) and isinstance(s, dict)
    full = json.dumps(ft.io.to_jsonable(s), allow_nan=False)
    assert len(full) > 300_000  # every θ and eigenvalue is in the data …
    text = str(s)
    assert len(text) < 6000 and text == repr(s)  # … but not in what prints
    lines = text.splitlines()
    assert lines[0].startswith("SaddleGraph: 40 nodes") and "signature" in lines[1] and "L" in lines[1]
    assert "more nodes" in text  # 40 nodes > 30 rows: the rest is announced
    every = s.table(max_rows=None)
    assert all(f"\n{n} " in every for n in ids) and "more nodes" not in every
    assert "(151, 3, 846)" in every
    # sorted by decreasing loss; numbers printed so that close losses differ
    losses = [float(re.split(r"\s{2,}", line)[3]) for line in every.splitlines()[3:43]]
    assert losses == sorted(losses, reverse=True) and len(set(losses)) > 10
    assert set(s) == {"n_trajectories", "nodes", "edges"} and len(s["nodes"][0]["theta"]) == 1000
    light = g.summary(theta=False)
    assert "theta" not in light["nodes"][0] and "eigenvalues" not in light["nodes"][0]


def _label_boxes(ax):
    r = ax.figure.canvas.get_renderer()
    # the text alone, without the leader line an Annotation includes in its extent
    return [matplotlib.text.Text.get_window_extent(t, r) for t in ax.texts if t.get_text()]


def _check_readable(ax, max_colour_ticks=11):
    fig = ax.figure
    fig.canvas.draw()
    cbar_ax = [a for a in fig.axes if a is not ax][0]
    ticks = [t.get_text() for t in cbar_ax.get_yticklabels() if t.get_text()]
    assert 2 <= len(ticks) <= max_colour_ticks
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and len(set(labels)) == len(labels)  # no two y ticks read the same
    box = ax.get_window_extent(fig.canvas.get_renderer())
    boxes = _label_boxes(ax)
    assert boxes
    for b in boxes:  # on the canvas
        assert b.x0 >= box.x0 - 1 and b.x1 <= box.x1 + 1 and b.y0 >= box.y0 - 1 and b.y1 <= box.y1 + 1
    for i, a in enumerate(boxes):  # no two labels overlap
        for b in boxes[i + 1:]:
            assert not a.overlaps(b) or a.intersection(a, b).width * a.intersection(a, b).height < 1.0
    return boxes


def test_drawing_high_index_close_losses(tmp_path):
    g, _ = _wide_ensemble()
    ax = g.draw()
    assert ax.get_yscale() == "linear"  # losses within 2e-5: a log axis would repeat one tick label
    boxes = _check_readable(ax)
    assert len(boxes) >= 20
    save_figure(ax.figure, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 5000


def test_drawing_equal_losses():
    g, _ = _wide_ensemble(n_nodes=20, loss=lambda i: 0.449892)
    ax = g.draw()
    ax.figure.canvas.draw()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.449892"]
    assert "0.449892" in ax.get_ylabel()


def test_drawing_spread_losses_and_zero_loss():
    g, ids = _wide_ensemble(n_nodes=30, max_index=12, loss=lambda i: 0.0 if i == 0 else 10.0 ** (-3 + 0.2 * i))
    ax = g.draw()
    assert ax.get_yscale() == "log"
    _check_readable(ax)
    assert "drawn at" in ax.get_ylabel()  # the zero loss sits on a marked floor


@pytest.mark.parametrize("max_index", [2, 10, 40])
def test_colour_scale_is_per_index_or_binned(max_index):
    g, _ = _wide_ensemble(n_nodes=12, max_index=max_index)
    ax = g.draw(labels=False)
    ax.figure.canvas.draw()
    cbar_ax = [a for a in ax.figure.axes if a is not ax][0]
    ticks = [t.get_text() for t in cbar_ax.get_yticklabels() if t.get_text()]
    if max_index <= 10:
        assert len(ticks) == max_index + 1
    else:
        assert len(ticks) <= 11 and "binned" in cbar_ax.get_ylabel()


def _index_graph(n_nodes=48, seed=1):
    """A synthetic graph of `n_nodes` nodes with Morse indices 0–3 and a few above, over three decades."""
    rng = np.random.default_rng(seed)
    g = SaddleGraph()
    ids, index = [], []
    for i in range(n_nodes):
        idx = i % 4 if i < 60 else 4 + i % 5
        ids.append(g.add_node(fingerprint=rng.standard_normal(6), signature=(idx, 0, 20 - idx),
                              kind="minimum" if idx == 0 else "saddle", loss=10.0 ** (-3 + 3 * rng.random()),
                              theta=rng.standard_normal(20), grad_norm=1e-12))
        index.append(idx)
    g.graph.nodes[ids[0]]["attractor"] = True
    for r in range(6):
        seq = sorted(rng.choice(ids[1:], size=4, replace=False),
                     key=lambda n: -g.graph.nodes[n]["morse_index"])
        g.add_itinerary(seq + [ids[0]], [(float(k), k + 1.0) for k in range(5)], method="gradient_flow",
                        run=f"run{r}")
    return g, ids, np.array(index)


def test_indices_0_to_3_get_distinct_colours_and_labels_never_overlap():
    g, ids, index = _index_graph(n_nodes=120)
    ax = g.draw()
    fig = ax.figure
    fig.canvas.draw()
    colours = ax.collections[-1].get_facecolors()
    by_index = {int(i): tuple(np.round(colours[k], 3)) for k, i in enumerate(index)}
    assert len({by_index[i] for i in range(4)}) == 4  # index-1 and index-3 saddles no longer share a colour
    assert by_index[0] != by_index[5] and by_index[3] != by_index[4]
    boxes = _check_readable(ax)  # every drawn label on the canvas, no two overlapping
    assert 20 <= len(boxes) < len(ids)  # 120 nodes: many labels fit, not all …
    tables = [t.get_text() for t in fig.texts if "node" in t.get_text() and "signature" in t.get_text()]
    listed = {line.split()[0] for t in tables for line in t.splitlines()[1:]}
    drawn = {t.get_text().split(":")[0] for t in ax.texts if t.get_text()}
    assert drawn | listed == set(ids) and not drawn & listed  # … and the rest are in the table below
    assert "listed below" in ax.get_title()
    cbar = [a for a in fig.axes if a is not ax][0]
    assert [t.get_text() for t in cbar.get_yticklabels()][:4] == ["0", "1", "2", "3"]


def test_loss_axis_named_for_the_loss_and_empty_graph_keeps_title():
    g, _, _ = _index_graph(n_nodes=8)
    assert g.draw(labels=False).get_ylabel().startswith("loss L")  # unknown: not claimed to be training
    g.graph.graph["loss_label"] = "population loss"
    assert g.draw(labels=False).get_ylabel().startswith("population loss L")
    from flowtools.plotting import draw_saddle_graph

    ax = draw_saddle_graph(g, labels=False, loss_name="cross-entropy")
    assert ax.get_ylabel().startswith("cross-entropy")
    assert g.draw(labels=False, loss_name="test loss").get_ylabel().startswith("test loss L")
    ax = SaddleGraph().draw(title="width 7, tanh")
    assert ax.get_title() == "width 7, tanh" and "empty" in ax.texts[0].get_text()
    assert SaddleGraph().draw().get_title().startswith("saddle graph: 0 nodes")


def test_itinerary_names_the_loss_of_its_problem():
    from flowtools.itineraries import problem_loss_label
    from flowtools.problems import safran_shamir

    assert problem_loss_label(ft.problems.minimal_model(loss="mse")) == "training loss"
    assert problem_loss_label(safran_shamir(2)) == "population loss"
    x = np.random.default_rng(0).standard_normal((12, 2))
    labels = (x[:, :1] > 0).astype(float)
    ce = ft.Problem(ft.MLP((2, 3, 2), "tanh"), ft.Dataset(x, labels), "cross_entropy")
    assert problem_loss_label(ce) == "cross-entropy (training)"


def test_add_to_graph_records_the_loss_and_says_when_runs_disagree():
    from flowtools.itineraries import Itinerary, Visit, add_to_graph

    def run(label, seed):
        fp = np.random.default_rng(seed).standard_normal(4)
        v = Visit(kind="minimum", t_in=0.0, t_out=1.0, loss=1e-3, gen_error=None, signature=(0, 0, 3),
                  theta=np.zeros(3), grad_norm=1e-12, reduces_to="", fingerprint=fp, eigenvalues=np.ones(3))
        return Itinerary([v], "attractor", "gradient_flow", "", stats=dict(loss_label=label))

    g = SaddleGraph()
    add_to_graph(g, run("population loss", 0), "a")
    add_to_graph(g, run("population loss", 1), "b")
    assert g.graph.graph["loss_label"] == "population loss"
    assert g.draw(labels=False).get_ylabel().startswith("population loss L")
    add_to_graph(g, run("training loss", 2), "c")
    assert g.graph.graph["loss_label"] == "loss (mixed)"
