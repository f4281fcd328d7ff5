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

__all__ = ["html_table", "svg_curve"]

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
    return (f'<div class="flowtools-view"><div style="font-weight:bold;font-family:sans-serif;font-size:13px">'
            f'{html.escape(title)}</div>' + "".join(parts) + "</div>")


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
            ("zero tolerance", sp.tol_zero), ("parameters", sp.n_params), ("Hessian-vector products", sp.matvecs)]
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
