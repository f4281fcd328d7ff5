"""Views of saddle graphs, runs and spectra: HTML for notebooks, and `view`, one self-contained page to
explore a saddle graph in a browser (nodes placed by loss and coloured by Morse index, hover and click
for a node's data, runs, loss curves and spectrum).

The notebook views (`_repr_html_` of `SaddleGraph`, `Itinerary`, `Trajectory`, `Spectrum`,
`SweepResult`) are built here from plain HTML tables and inline SVG, with every text escaped. The page
uses Bokeh with its scripts inlined (`bokeh.resources.INLINE`), so it works offline.
"""

from __future__ import annotations

import html
import math

import numpy as np

__all__ = ["view", "page", "load_groups", "html_table", "svg_curve"]

_STYLE = ("border-collapse:collapse;font-size:12px;font-family:monospace;margin:2px 0",
          "border-bottom:1px solid #999;padding:1px 6px;text-align:left",
          "padding:1px 6px;text-align:left")


def _text(v) -> str:
    """A cell's text: numbers in a short form that keeps close values apart, None and NaN as "–"."""
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "–" if not math.isfinite(float(v)) else format(float(v), ".6g")
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join("?" if s is None else _text(s) for s in v) + ")"
    return str(v)


def html_table(rows, header=None, *, caption: str | None = None, more: int = 0, what: str = "rows") -> str:
    """An HTML table of `rows` (sequences of cells; every cell escaped), with an optional `header` row,
    a `caption`, and a last line saying that `more` further `what` are not shown."""
    table, th, td = _STYLE
    out = [f'<table style="{table}">']
    if caption:
        out.append(f'<caption style="text-align:left;font-weight:bold">{html.escape(caption)}</caption>')
    if header:
        out.append("<tr>" + "".join(f'<th style="{th}">{html.escape(str(h))}</th>' for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="{td}">{html.escape(_text(c))}</td>' for c in row) + "</tr>")
    if more:
        n = len(header or (rows[0] if rows else [1]))
        out.append(f'<tr><td style="{td}" colspan="{n}">… {int(more)} more {html.escape(what)}</td></tr>')
    out.append("</table>")
    return "".join(out)


def svg_curve(x, y, *, logx: bool = True, logy: bool = True, width: int = 260, height: int = 90,
              label: str = "", colour: str = "#0072B2") -> str:
    """A small inline SVG line plot of y against x (non-positive values dropped on a log axis), with the
    ranges written in its corners; empty string when fewer than two points remain."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & ((x > 0) if logx else True) & ((y > 0) if logy else True)
    x, y = x[keep], y[keep]
    if x.size < 2:
        return ""
    u, v = (np.log10(x) if logx else x), (np.log10(y) if logy else y)
    pad = 4.0

    def scale(a, lo, hi, n):
        return pad + (a - lo) / (hi - lo if hi > lo else 1.0) * (n - 2 * pad)

    px = scale(u, u.min(), u.max(), width)
    py = height - scale(v, v.min(), v.max(), height)
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
    fmt = lambda a: format(float(a), ".3g")  # noqa: E731
    caption = html.escape(f"{label}: {fmt(y.max())} → {fmt(y[-1])}  (t {fmt(x.min())}–{fmt(x.max())}"
                          f"{', log-log' if logx and logy else ''})")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 14}" '
            f'role="img" aria-label="{caption}"><rect width="{width}" height="{height}" fill="#fafafa" '
            f'stroke="#ccc"/><polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
            f'<text x="2" y="{height + 11}" font-size="9" font-family="sans-serif">{caption}</text></svg>')


def _block(title: str, *parts: str) -> str:
    head = "font-weight:bold;font-family:sans-serif;font-size:13px"
    return (f'<div class="flowtools-view"><div style="{head}">{html.escape(title)}</div>' + "".join(parts)
            + "</div>")


# ---------------------------------------------------------------------------- notebook views
def graph_html(sg, *, max_rows: int = 15) -> str:
    """A `SaddleGraph` as HTML: its counts and loss, then its nodes (by decreasing loss) and edges (by
    decreasing count), `max_rows` of each."""
    g = sg.graph
    nodes = sorted(g.nodes(data=True), key=lambda na: (-_finite(na[1].get("loss")), str(na[0])))
    loss = g.graph.get("loss_label", "loss")
    rows = [(n, a.get("kind", ""), a.get("signature"), a.get("loss"), a.get("grad_norm"), a.get("visits", 0),
             bool(a.get("attractor")), a.get("reduces_to") or "") for n, a in nodes[:max_rows]]
    header = ("node", "kind", "signature", f"L ({loss})", "‖∇L‖", "visits", "attractor", "reduces_to")
    edges = sorted(g.edges(data=True), key=lambda e: (-int(e[2].get("count", 0)), str(e[0])))
    erows = [(f"{u} → {v}", e.get("count", 0), e.get("fraction"), e.get("median_transit_time"),
              e.get("source", "")) for u, v, e in edges[:max_rows]]
    title = (f"SaddleGraph: {g.number_of_nodes()} nodes, {g.number_of_edges()} edges, "
             f"{sg.n_trajectories} trajectories")
    parts = [html_table(rows, header, caption="nodes", more=max(len(nodes) - max_rows, 0), what="nodes")]
    if erows:
        parts.append(html_table(erows, ("edge", "count", "fraction", "median transit t", "origin"),
                                caption="edges", more=max(len(edges) - max_rows, 0), what="edges"))
    return _block(title, *parts)


def itinerary_html(itin, *, max_rows: int = 30) -> str:
    """An `Itinerary` as HTML: how it ended, then one row per visit."""
    rows = [(v.node or "", v.kind, tuple(v.signature), v.t_in, v.t_out, v.dwell, v.loss, v.grad_norm,
             v.status, v.reduces_to) for v in itin.visits[:max_rows]]
    head = html_table([("terminal", itin.terminal), ("method", itin.method), ("message", itin.message),
                       ("refined share", itin.refined_share)])
    return _block(f"Itinerary: {len(itin.visits)} visits ⇒ {itin.terminal}", head, html_table(
        rows, ("node", "kind", "signature", "t_in", "t_out", "dwell", "L", "‖∇L‖", "status", "reduces_to"),
        caption="visits", more=max(len(itin.visits) - max_rows, 0), what="visits"))


def trajectory_html(tr) -> str:
    """A `Trajectory` as HTML: status, message and final values, and its loss and ‖∇L‖ curves."""
    rows = [("method", tr.method), ("status", tr.status.value), ("message", tr.message),
            ("t end", tr.final_time), ("L end", tr.final_loss), ("‖∇L‖ end", tr.final_grad_norm),
            ("saved states", len(tr))]
    if tr.gen_error is not None:
        rows.append(("R end", float(tr.gen_error[-1])))
    for key in ("steps", "accepted_steps", "rejected_steps", "gradient_evaluations", "wall_time"):
        if key in tr.stats:
            rows.append((key.replace("_", " "), tr.stats[key]))
    curves = svg_curve(tr.t, tr.loss, label="L") + " " + svg_curve(tr.t, tr.grad_norm, label="‖∇L‖",
                                                                    colour="#D55E00")
    return _block(f"Trajectory ({tr.method}): {tr.status.value}", html_table(rows), f"<div>{curves}</div>")


def spectrum_html(sp, *, n_show: int = 8) -> str:
    """A `Spectrum` as HTML: the signature and how it was computed, and the extreme eigenvalues."""
    rows = [("signature (n_neg, n_zero, n_pos)", tuple(sp.signature)), ("method", sp.method),
            ("complete", sp.complete), ("λ_min", sp.min_eigenvalue), ("λ_max", sp.max_eigenvalue),
            ("zero tolerance", sp.tol_zero), ("parameters", sp.n_params),
            ("Hessian-vector products", sp.matvecs)]
    if sp.message:
        rows.append(("message", sp.message))
    lam = np.asarray(sp.eigenvalues, dtype=float)
    shown = lam[:n_show]
    eig = html_table([(i, v) for i, v in enumerate(shown)], ("i", "λ_i (ascending)"), caption="eigenvalues",
                     more=max(lam.size - n_show, 0), what="eigenvalues")
    return _block(f"Spectrum: signature {_text(tuple(sp.signature))}", html_table(rows), eig)


def sweep_result_html(res, *, max_rows: int = 10) -> str:
    """A `SweepResult` as HTML: the counts and time, the store, the phases, and failures and errors."""
    g = res.graph
    rows = [("points", res.n_points), ("run now", res.n_run), ("skipped (finished before)", res.n_skipped),
            ("failed", len(res.failed)), ("errors", len(res.errors)), ("wall time (s)", res.wall_time),
            ("store", str(res.store))]
    if g is not None:
        rows.append(("merged graph", f"{g.graph.number_of_nodes()} nodes, {g.graph.number_of_edges()} edges"))
    parts = [html_table(rows)]
    if res.timings:
        parts.append(html_table(list(res.timings.items()), ("phase", "seconds"), caption="timings"))
    for name, items in (("failed", res.failed), ("errors", res.errors)):
        if items:
            parts.append(html_table([tuple(x) for x in items[:max_rows]], ("point", "cause"), caption=name,
                                    more=max(len(items) - max_rows, 0), what="points"))
    return _block(f"SweepResult: {res.n_points} points", *parts)


def _finite(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return -math.inf
    return f if math.isfinite(f) else -math.inf


# ------------------------------------------------------------------------------- the page
def load_groups(path) -> tuple[list[dict], str]:
    """What `view` shows, read from `path`: a saddle-graph file (node-link JSON or GraphML), a sweep
    store (a folder with sweep.json), or a study's results folder (its graph files).

    **Returns:** (groups, kind) with kind "graph", "store" or "folder"; each group a dict with `name`,
    `graph` (a `SaddleGraph`), `runs` (a list of dicts name, nodes, t_in, t_out, loss, one per run, or
    None when the source holds no per-run itineraries) and `basins` (a `BasinFractions` or None).

    **Raises:** `FileNotFoundError` for a missing path or a folder with no graph; `ValueError` (a
    `flowtools.io.FileFormatError`) for a file that is not a saddle graph."""
    import os
    import pathlib

    from .graph import SaddleGraph

    p = pathlib.Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"path={os.fspath(path)!r} does not exist; give a saddle-graph JSON or "
                                "GraphML file, a sweep store or a study's results folder.")
    if p.is_dir() and (p / "sweep.json").exists():
        return _store_groups(p), "store"
    if p.is_file():
        g = SaddleGraph.from_graphml(p) if p.suffix.lower() == ".graphml" else SaddleGraph.from_json(p)
        return [_graph_group(p.stem, g)], "graph"
    # A sweep store inside the folder contributes its merged graph.json, not its point records.
    stores = [d.parent for d in p.rglob("sweep.json")]
    inside = lambda f: any(s in f.parents and f != s / "graph.json" for s in stores)  # noqa: E731
    files = sorted(f for f in p.rglob("*.json") if not inside(f) and _is_graph_file(f))
    json_stems = {f.with_suffix("") for f in files}
    files += sorted(f for f in p.rglob("*.graphml") if f.with_suffix("") not in json_stems)
    if not files:
        raise FileNotFoundError(f"path={os.fspath(path)!r} holds no saddle graph (node-link *.json or "
                                "*.graphml) and no sweep store (sweep.json).")
    groups = []
    for f in files:
        g = SaddleGraph.from_graphml(f) if f.suffix == ".graphml" else SaddleGraph.from_json(f)
        groups.append(_graph_group(str(f.relative_to(p).with_suffix("")), g))
    return groups, "folder"


def _is_graph_file(f) -> bool:
    import json

    if f.name in ("summary.json", "sweep.json") or f.stat().st_size > 200e6:
        return False
    try:
        with open(f, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("nodes", "links"))


def _basins(graph):
    from .escape import basin_fractions

    d_out = max([int(a.get("d_out", 1)) for _, a in graph.graph.nodes(data=True)] or [1])
    try:
        return basin_fractions(graph, d_out=d_out)
    except (ValueError, TypeError):
        return None


def _graph_group(name, graph) -> dict:
    return dict(name=name, graph=graph, runs=None, basins=_basins(graph) if graph.n_trajectories else None)


def _store_groups(store) -> list[dict]:
    """One group for all points of a sweep store and one per value of each configuration key that
    varies (seed aside); node ids are those of the graph merged over all points."""
    from . import sweeps
    from .graph import SaddleGraph

    configs, records, ds, merged = sweeps.read_store(store)
    finished = sorted(records)
    varying = [k for k in dict.fromkeys(k for c in configs for k in c)
               if k != "seed" and len({repr(c.get(k)) for c in configs}) > 1]
    runs = {}
    for i in finished:
        cfg = records[i]["config"]
        label = ", ".join(f"{k}={cfg.get(k)}" for k in varying + ["seed"] if k in cfg)
        if "visit_node" in ds:
            nodes = [str(n) for n in ds["visit_node"].values[i] if str(n)]
            m = len(nodes)
            runs[i] = dict(name=f"point {i}: {label}", nodes=nodes,
                           t_in=[float(x) for x in ds["visit_t_in"].values[i][:m]],
                           t_out=[float(x) for x in ds["visit_t_out"].values[i][:m]],
                           loss=[float(x) for x in ds["visit_loss"].values[i][:m]])
    selections = [("all points", {})]
    for k in varying:
        for v in sorted({c.get(k) for c in configs if k in c}, key=repr):
            selections.append((f"{k} = {v}", {k: v}))
    groups = []
    for name, where in selections:
        points = [i for i in finished if all(records[i]["config"].get(k) == v for k, v in where.items())]
        if not points:
            continue
        if runs:
            sub = _subgraph(merged, [runs[i] for i in points])
        else:
            sub = merged if not where else SaddleGraph()
        # From the group's own graph, so that the basins carry the page's node ids.
        basins = _basins(sub if runs else sweeps.merged_graph(store, **where) if where else merged)
        groups.append(dict(name=f"{name} ({len(points)} runs)", graph=sub,
                           runs=[runs[i] for i in points] if runs else None, basins=basins))
    return groups


def _subgraph(merged, runs):
    """The nodes and transitions of `runs` (visits by merged node id), with the merged graph's node
    attributes and visit and edge counts of these runs only."""
    from .graph import SaddleGraph

    out = SaddleGraph(merged.fingerprint_tol)
    g = out.graph
    g.graph.update({k: v for k, v in merged.graph.graph.items() if k != "n_trajectories"})
    g.graph["n_trajectories"] = len(runs)
    for r in runs:
        for n in dict.fromkeys(r["nodes"]):
            if n not in g:
                g.add_node(n, **dict(merged.graph.nodes[n], visits=0))
            g.nodes[n]["visits"] += 1
        for (a, b), (t_out, t_in) in zip(zip(r["nodes"], r["nodes"][1:]), zip(r["t_out"], r["t_in"][1:])):
            if not g.has_edge(a, b):
                src = merged.graph.edges[a, b].get("source", "itinerary") if merged.graph.has_edge(a, b) \
                    else "itinerary"
                g.add_edge(a, b, count=0, transit_times=[], source=src, methods=[], runs=[])
            e = g.edges[a, b]
            e["count"] += 1
            e["transit_times"].append(t_in - t_out)
            e["runs"].append(r["name"])
    for _, _, e in g.edges(data=True):
        out._refresh_edge(e)
    return out


def _index_classes(indices):
    """For each Morse index: (colour, legend class). Indices 0–3 have their own colours
    (`flowtools.plotting.INDEX_COLOURS`), higher ones the blues of the static figure; −1 (unknown) grey."""
    from matplotlib import colors

    from .plotting import index_colours

    known = np.array([i for i in indices if i >= 0] or [0])
    cmap, norm, _ = index_colours(known)
    bounds = norm.boundaries
    out = {}
    for i in set(indices):
        if i < 0:
            out[i] = ("#9a9a9a", "unknown index")
            continue
        b = int(norm(i))
        lo, hi = int(math.ceil(bounds[b])), int(math.floor(bounds[b + 1]))
        name = {0: "0: minima", 1: "1: index-1 saddles", 2: "2: index-2 saddles", 3: "3: index-3 saddles"}
        label = name.get(i, f"index {lo}" if lo == hi else f"index {lo}–{hi}") if lo == hi or i <= 3 \
            else f"index {lo}–{hi}"
        out[i] = (colors.to_hex(cmap(b)), label)
    return out


def _node_columns(group, y_of, classes, shared: dict) -> tuple[dict, dict]:
    """The node and edge columns of one group for the page (positions, colours, texts, JSON). A node's
    JSON without its visits (the part that groups share, θ included) goes once into `shared` (text →
    number); the column `json` holds that number and `has_visits` whether the node records visits."""
    import json

    from . import io

    g = group["graph"].graph
    # by index, so that the legend lists 0, 1, 2, 3, … in order
    nodes = sorted(g.nodes, key=lambda n: (int(g.nodes[n].get("morse_index", -1)), str(n)))
    index = [int(g.nodes[n].get("morse_index", -1)) for n in nodes]
    loss = [float(g.nodes[n].get("loss", np.nan)) for n in nodes]
    # x: the Morse index (high on the left, as in the static figure), nodes of one index spread by loss
    x = np.zeros(len(nodes))
    for i in set(index):
        members = sorted([k for k in range(len(nodes)) if index[k] == i], key=lambda k: -_finite(loss[k]))
        for r, k in enumerate(members):
            x[k] = i + (0.0 if len(members) == 1 else 0.7 * (r / (len(members) - 1) - 0.5))
    visits = np.array([int(g.nodes[n].get("visits", 0)) for n in nodes])
    runs_of = {n: set() for n in nodes}
    for u, v, e in g.edges(data=True):
        for r in e.get("runs") or []:
            runs_of[u].add(r)
            runs_of[v].add(r)
    if group["runs"] is not None:
        for r in group["runs"]:
            for n in r["nodes"]:
                if n in runs_of:
                    runs_of[n].add(r["name"])
    skip = ("fingerprint", "visits")
    cols = dict(
        id=[str(n) for n in nodes], x=x.tolist(), y=[y_of(v) for v in loss], loss=loss,
        loss_text=[_text(v) for v in loss], index=index,
        kind=[str(g.nodes[n].get("kind", "")) for n in nodes],
        signature=[_text(g.nodes[n].get("signature")) for n in nodes],
        grad_norm=[_text(float(g.nodes[n].get("grad_norm", np.nan))) for n in nodes],
        visits=visits.tolist(), reduces_to=[str(g.nodes[n].get("reduces_to") or "–") for n in nodes],
        attractor=["yes" if g.nodes[n].get("attractor") else "no" for n in nodes],
        colour=[classes[i][0] for i in index], index_class=[classes[i][1] for i in index],
        rim=["crimson" if g.nodes[n].get("attractor") else "#333333" for n in nodes],
        size=(9 + 15 * np.sqrt(visits / max(int(visits.max(initial=0)), 1))).tolist(),
        eig=[[float(v) for v in g.nodes[n].get("eigenvalues") or []] for n in nodes],
        runs=[sorted(runs_of[n]) for n in nodes],
        json=[shared.setdefault(json.dumps(io.to_jsonable(dict(
            id=n, **{k: v for k, v in g.nodes[n].items() if k not in skip},
            fingerprint=g.nodes[n].get("fingerprint", [])))), len(shared)) for n in nodes],
        has_visits=["visits" in g.nodes[n] for n in nodes],
    )
    pos = {n: (cols["x"][k], cols["y"][k]) for k, n in enumerate(nodes)}
    n_runs = max(group["graph"].n_trajectories, 1)
    edges = list(g.edges(data=True))
    ecols = dict(
        src=[str(u) for u, _, _ in edges], dst=[str(v) for _, v, _ in edges],
        x0=[pos[u][0] for u, _, _ in edges], y0=[pos[u][1] for u, _, _ in edges],
        x1=[pos[v][0] for _, v, _ in edges], y1=[pos[v][1] for _, v, _ in edges],
        count=[int(e.get("count", 0)) for _, _, e in edges],
        width=[0.8 + 7.0 * min(int(e.get("count", 0)) / n_runs, 1.0) for _, _, e in edges],
        colour=["#7b3294" if "unstable_manifold" in str(e.get("source", "")) else "#777777"
                for _, _, e in edges],
        json=[json.dumps(io.to_jsonable({"from": u, "to": v, **e})) for u, v, e in edges],
    )
    return cols, ecols


def _basins_html(basins) -> str:
    if basins is None:
        return "<i>No basin fractions: the source records no runs that ended at a minimum.</i>"
    rows = [(b.label, b.kind, b.loss, b.count, b.fraction, f"[{b.ci[0]:.3f}, {b.ci[1]:.3f}]")
            for b in basins.basins]
    if basins.n_unattracted:
        rows.append(("–", "not attracted", None, basins.n_unattracted, basins.n_unattracted / basins.n_runs,
                     f"[{basins.unattracted_ci[0]:.3f}, {basins.unattracted_ci[1]:.3f}]"))
    return html_table(rows, ("node", "kind", "L", "runs", "fraction",
                             f"{100 * basins.confidence:g}% Wilson interval"),
                      caption=f"Basin fractions over {basins.n_runs} runs")


def _group_summary(group) -> str:
    g = group["graph"]
    return (f"{g.graph.number_of_nodes()} nodes, {g.graph.number_of_edges()} edges, "
            f"{g.n_trajectories} runs")


def page(groups, *, title: str = "saddle graph") -> str:
    """The HTML of the explorer for `groups` (from `load_groups`): one self-contained page with Bokeh's
    scripts inlined (`bokeh.resources.INLINE`)."""
    import json

    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models import (Arrow, BasicTicker, BoxSelectTool, Button, ColumnDataSource, CustomJS, Div,
                              HoverTool, Legend, Select, Span, TapTool, TextInput, VeeHead)
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    from . import io
    from .plotting import loss_axis, loss_label

    if not groups:
        raise ValueError("groups is empty; load_groups gives at least one group.")
    all_loss = np.array([float(a.get("loss", np.nan)) for gr in groups
                         for _, a in gr["graph"].graph.nodes(data=True)] or [1.0])
    scale, _, floor, note = loss_axis(all_loss)
    finite = all_loss[np.isfinite(all_loss)]
    fill = float(np.median(finite)) if finite.size else 1.0

    def y_of(v):
        if not math.isfinite(v):
            return fill  # a node without a loss sits at the median, its hover says "–"
        return max(v, floor) if scale == "log" else v

    classes = _index_classes([int(a.get("morse_index", -1)) for gr in groups
                              for _, a in gr["graph"].graph.nodes(data=True)])
    node_data, edge_data, run_data, shared = [], [], [], {}
    for gr in groups:
        n, e = _node_columns(gr, y_of, classes, shared)
        node_data.append(ColumnDataSource(n, name=f"nodes {gr['name']}"))
        edge_data.append(ColumnDataSource(e))
        runs = gr["runs"] or []
        run_data.append(ColumnDataSource({k: [r[k] for r in runs]
                                          for k in ("name", "nodes", "t_in", "t_out", "loss")}))
    nodes = ColumnDataSource(dict(node_data[0].data), name="nodes")
    edges = ColumnDataSource(dict(edge_data[0].data), name="edges")
    first = groups[0]["graph"]
    ylabel = loss_label(first) + " L" + (" (log)" if scale == "log" else "") + note

    fig = figure(name="graph", width=760, height=560, y_axis_type=scale, tools="pan,wheel_zoom,reset,save",
                 title=title, x_axis_label="Morse index (high on the left; one index spread by loss)",
                 y_axis_label=ylabel)
    fig.x_range.flipped = True
    fig.xaxis.ticker = BasicTicker(min_interval=1)
    fig.segment("x0", "y0", "x1", "y1", source=edges, line_width="width", line_color="colour",
                line_alpha=0.55)
    fig.add_layout(Arrow(end=VeeHead(size=7, fill_color="#555555", line_color="#555555"), x_start="x0",
                         y_start="y0", x_end="x1", y_end="y1", source=edges, line_alpha=0.0))
    if floor is not None and note:
        fig.add_layout(Span(location=floor, dimension="width", line_dash="dotted", line_color="#999999"))
    r_nodes = fig.scatter("x", "y", source=nodes, size="size", fill_color="colour", line_color="rim",
                          line_width=1.5, name="node_glyphs",
                          selection_line_color="black", selection_line_width=3,
                          # unselected nodes keep their colours (the default fades them)
                          nonselection_fill_alpha=1.0, nonselection_line_alpha=1.0)
    # The legend is drawn from empty renderers of one colour each: a legend of the node renderer itself
    # loses its swatches while a node is selected (Bokeh 3.9).
    items = []
    for _, (colour, label) in sorted(classes.items(), key=lambda kv: (kv[0] < 0, kv[0])):
        if label not in [lab for lab, _ in items]:
            items.append((label, [fig.scatter(x=[math.nan], y=[math.nan], size=10, fill_color=colour,
                                              line_color="#333333")]))
    legend = Legend(items=items, title="Morse index", label_text_font_size="9pt")
    fig.add_layout(legend, "right")  # beside the plot, where it hides no node
    fig.legend.label_text_font_size = "9pt"
    hover_div = Div(name="hover", text="Hover over a node for its data; click it for its runs and spectrum.",
                    width=760)
    hover = HoverTool(renderers=[r_nodes], tooltips=[
        ("node", "@id"), ("kind", "@kind"), ("signature", "@signature"), ("L", "@loss_text"),
        ("‖∇L‖", "@grad_norm"), ("visits", "@visits"), ("reduces to", "@reduces_to"),
        ("attractor", "@attractor")])
    hover.callback = CustomJS(args=dict(nodes=nodes, out=hover_div), code="""
        const ix = cb_data.index.indices;
        if (ix.length == 0) return;
        const esc = s => String(s).replace(/[&<>"]/g, c => '&#' + c.charCodeAt(0) + ';');
        const d = nodes.data, k = ix[0];
        out.text = `node ${esc(d.id[k])}: ${esc(d.kind[k])}, signature ${esc(d.signature[k])}, ` +
                   `L = ${esc(d.loss_text[k])}, ‖∇L‖ = ${esc(d.grad_norm[k])}, visits ${d.visits[k]}, ` +
                   `reduces to ${esc(d.reduces_to[k])}`;
    """)
    fig.add_tools(hover, TapTool(renderers=[r_nodes]), BoxSelectTool(renderers=[r_nodes]))

    spec = ColumnDataSource(dict(i=[], lam=[], colour=[]), name="spectrum")
    fspec = figure(name="spectrum_plot", width=420, height=230, title="Hessian spectrum of the selected node",
                   x_axis_label="i (ascending)", y_axis_label="eigenvalue λ_i", tools="pan,wheel_zoom,reset",
                   visible=False)  # shown once a node is selected: empty axes have no range to draw
    fspec.scatter("i", "lam", source=spec, color="colour", size=5)
    fspec.add_layout(Span(location=0, dimension="width", line_color="#999999"))
    curves = ColumnDataSource(dict(xs=[], ys=[], name=[]), name="curves")
    dwell = ColumnDataSource(dict(x0=[], x1=[], y=[], name=[]), name="dwell")
    fruns = figure(name="runs_plot", width=420, height=260, x_axis_type="log", y_axis_type=scale,
                   title="Runs through the node: L at each visit (thick: at the node)",
                   x_axis_label="t (t ≤ 0 drawn at the first positive time / 10)", y_axis_label="L",
                   tools="pan,wheel_zoom,reset", visible=False)
    fruns.multi_line("xs", "ys", source=curves, line_color="#0072B2", line_alpha=0.6)
    fruns.segment("x0", "y", "x1", "y", source=dwell, line_width=6, line_color="#D55E00")
    details = Div(name="details", width=420, text="<i>Click a node (or search its id) to see its runs and "
                  "spectrum.</i>")
    counts = Div(name="counts", text=_group_summary(groups[0]), width=380)
    basins = Div(name="basins", text=_basins_html(groups[0]["basins"]), width=760)
    names = [gr["name"] for gr in groups]
    select = Select(name="group", title="Group", value=names[0], options=names, visible=len(groups) > 1)
    search = TextInput(name="search", title="Find node by id", placeholder="e.g. n3", width=180)
    download = Button(name="download", label="Download selection as JSON", width=220)
    graph_attrs = [json.dumps(io.to_jsonable(dict(gr["graph"].graph.graph))) for gr in groups]

    select.js_on_change("value", CustomJS(args=dict(
        select=select, nodes=nodes, edges=edges, node_data=node_data, edge_data=edge_data, counts=counts,
        basins=basins, counts_text=[_group_summary(gr) for gr in groups],
        basins_text=[_basins_html(gr["basins"]) for gr in groups]), code="""
        const g = select.options.indexOf(select.value);
        nodes.selected.indices = [];
        nodes.data = Object.assign({}, node_data[g].data);
        edges.data = Object.assign({}, edge_data[g].data);
        counts.text = counts_text[g];
        basins.text = basins_text[g];
    """))
    nodes.selected.js_on_change("indices", CustomJS(args=dict(
        nodes=nodes, select=select, run_data=run_data, details=details, spec=spec, curves=curves,
        dwell=dwell, fspec=fspec, fruns=fruns), code=_TAP_JS))
    search.js_on_change("value", CustomJS(args=dict(nodes=nodes, details=details), code="""
        const q = cb_obj.value.trim();
        if (!q) return;
        const k = nodes.data.id.indexOf(q);
        if (k < 0) {
            const shown = q.replace(/[&<>"]/g, c => '&#' + c.charCodeAt(0) + ';');
            details.text = `<b>No node ${shown} in this group.</b>`;
            return;
        }
        nodes.selected.indices = [k];
    """))
    download.js_on_event("button_click", CustomJS(args=dict(
        nodes=nodes, edges=edges, select=select, graph_attrs=graph_attrs, node_json=list(shared)), code="""
        const d = nodes.data, e = edges.data;
        const g = select.options.indexOf(select.value);
        let pick = nodes.selected.indices;
        if (pick.length == 0) pick = d.id.map((_, k) => k);
        const ids = new Set(pick.map(k => d.id[k]));
        const out = {directed: true, multigraph: false, graph: JSON.parse(graph_attrs[g]),
                     nodes: pick.map(k => Object.assign(JSON.parse(node_json[d.json[k]]),
                                                        d.has_visits[k] ? {visits: d.visits[k]} : {})),
                     links: []};
        for (let j = 0; j < e.src.length; j++)
            if (ids.has(e.src[j]) && ids.has(e.dst[j])) out.links.push(JSON.parse(e.json[j]));
        const text = JSON.stringify(out);
        window.flowtools_download = text;
        const a = document.createElement('a');
        a.href = URL.createObjectURL(new Blob([text], {type: 'application/json'}));
        a.download = 'subgraph.json';
        document.body.appendChild(a);
        a.click();
        a.remove();
    """))
    help_text = Div(text=(f"<b>{html.escape(title)}</b> — nodes placed by loss and coloured by Morse index; "
                          "edge width: share of runs that took the transition (purple: found on an unstable "
                          "manifold); red rim: attractor. Box-select or shift-click several nodes before "
                          "downloading."), width=760)
    layout = row(column(help_text, row(select, search, download), counts, fig, hover_div, basins),
                 column(details, fspec, fruns))
    return file_html(layout, INLINE, title=title)


_TAP_JS = """
const esc = s => String(s).replace(/[&<>"]/g, c => '&#' + c.charCodeAt(0) + ';');
const sel = nodes.selected.indices;
if (sel.length == 0) {
    details.text = '<i>Click a node (or search its id) to see its runs and spectrum.</i>';
    spec.data = {i: [], lam: [], colour: []};
    curves.data = {xs: [], ys: [], name: []};
    dwell.data = {x0: [], x1: [], y: [], name: []};
    fspec.visible = false;
    fruns.visible = false;
    return;
}
const d = nodes.data, k = sel[sel.length - 1], id = d.id[k];
const lam = Array.from(d.eig[k] || []);
spec.data = {i: lam.map((_, j) => j), lam: lam, colour: lam.map(v => v < 0 ? '#D55E00' : '#0072B2')};
const runs = run_data[select.options.indexOf(select.value)].data;
const xs = [], ys = [], names = [], x0 = [], x1 = [], y = [], dn = [];
for (let r = 0; r < runs.name.length; r++) {
    const nodes_r = Array.from(runs.nodes[r]);
    if (!nodes_r.includes(id)) continue;
    const t_in = Array.from(runs.t_in[r]), t_out = Array.from(runs.t_out[r]), loss = Array.from(runs.loss[r]);
    const pos = t_in.concat(t_out).filter(t => t > 0);
    const low = pos.length ? Math.min(...pos) / 10 : 1e-3;
    const cx = [], cy = [];
    for (let j = 0; j < nodes_r.length; j++) {
        cx.push(Math.max(t_in[j], low), Math.max(t_out[j], low));
        cy.push(loss[j], loss[j]);
        if (nodes_r[j] == id) { x0.push(Math.max(t_in[j], low)); x1.push(Math.max(t_out[j], low));
                                y.push(loss[j]); dn.push(runs.name[r]); }
    }
    xs.push(cx); ys.push(cy); names.push(runs.name[r]);
}
curves.data = {xs: xs, ys: ys, name: names};
dwell.data = {x0: x0, x1: x1, y: y, name: dn};
fspec.visible = lam.length > 0;
fruns.visible = xs.length > 0;
const through = runs.name.length ? names : Array.from(d.runs[k]);
const shown = through.slice(0, 40).map(r => `<li>${esc(r)}</li>`).join('');
const more = through.length > 40 ? `<li>… ${through.length - 40} more</li>` : '';
const curve_note = runs.name.length ? '' :
    '<br><i>This source stores no per-run itineraries (view the sweep store for loss curves).</i>';
details.text = `<b>node ${esc(id)}</b>: ${esc(d.kind[k])}, signature ${esc(d.signature[k])}<br>` +
    `L = ${esc(d.loss_text[k])}, ‖∇L‖ = ${esc(d.grad_norm[k])}, visits ${d.visits[k]}, ` +
    `reduces to ${esc(d.reduces_to[k])}, ${lam.length} stored eigenvalues<br>` +
    `<b>${through.length} run(s) through it:</b><ul class="runs" style="margin:2px 0;max-height:150px;` +
    `overflow-y:auto">${shown}${more}</ul>${curve_note}`;
"""


def view(path, out=None, *, open_browser: bool = False, title: str | None = None):
    """Write the interactive explorer of `path` (a saddle-graph JSON or GraphML file, a sweep store, or
    a study's results folder) to one self-contained HTML file that works offline (`out`, default
    `<path>.html` beside a file, `<folder>/view.html` for a folder), and open it in a browser with
    `open_browser=True`. Returns the path written (atomically)."""
    import os
    import pathlib
    import webbrowser

    from . import io

    p = pathlib.Path(os.fspath(path))
    groups, kind = load_groups(p)
    if out is None:
        out = p / "view.html" if p.is_dir() else p.with_suffix(".html")
    out = pathlib.Path(os.fspath(out))
    what = {"graph": "saddle graph", "store": "sweep store", "folder": "results"}[kind]
    text = page(groups, title=title or f"{what}: {p.name}")
    io.atomic_write_text(out, text)
    if open_browser:
        webbrowser.open(out.resolve().as_uri())
    return out
