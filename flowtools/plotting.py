"""Figures: learning curves, saddle graphs, spectra along trajectories. All savers are atomic."""

from __future__ import annotations

import io as _io
import os

import matplotlib

if os.environ.get("MPLBACKEND") is None:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import io  # noqa: E402

__all__ = ["save_figure", "plot_learning_curves", "plot_sharpness", "draw_saddle_graph", "draw_disconnectivity"]


def save_figure(fig, path, *, dpi: int = 130) -> None:
    """Save a figure atomically (the format follows the file's extension) and close it."""
    buf = _io.BytesIO()
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    io.atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)


def plot_learning_curves(trajectories, labels=None, ax=None, *, gen_error: bool = True, styles=None):
    """Training loss (solid) and generalization error (dashed) against t on log-log axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4))
    labels = labels or [tr.method for tr in trajectories]
    for i, (tr, lab) in enumerate(zip(trajectories, labels)):
        color = f"C{i}"
        ls = (styles or {}).get(lab, "-")
        m = tr.t > 0
        ax.loglog(tr.t[m], tr.loss[m], ls, color=color, label=f"{lab}: training L")
        if gen_error and tr.gen_error is not None:
            ax.loglog(tr.t[m], tr.gen_error[m], ls, color=color, alpha=0.55, lw=2.5,
                      label=f"{lab}: generalization R")
    ax.set_xlabel("t  (GD: t = kη)")
    ax.set_ylabel("error")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def plot_sharpness(trajectories, labels=None, ax=None):
    """λ_max(H) against t for GD/SGD runs tracked with `sharpness_every`, each with its 2/η line
    (dotted, same colour) and its catapults (crosses at their peaks); log-scaled t."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.4))
    labels = labels or [f"η = {tr.meta.get('lr'):.3g}" for tr in trajectories]
    for i, (tr, lab) in enumerate(zip(trajectories, labels)):
        series = tr.sharpness
        if series is None:
            raise ValueError(f"trajectory {i} ({lab}) has no sharpness series: run it with "
                             "sharpness_every=k.")
        color, m = f"C{i % 10}", series.t > 0
        ax.plot(series.t[m], series.lambda_max[m], color=color, lw=1.0, label=lab)
        ax.axhline(series.two_over_lr, color=color, ls=":", lw=1.0)
        for event in (tr.stats.get("edge_of_stability") or {}).get("catapults", []):
            k = int(np.argmin(np.abs(series.t - event["t_peak"])))
            ax.plot(series.t[k], series.lambda_max[k], "x", color=color, ms=7)
    ax.set_xscale("log")
    ax.set_xlabel("t = kη")
    ax.set_ylabel("λ_max(H)  (dotted: 2/η)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def loss_axis(loss):
    """(scale, values drawn, floor, note): log when the positive losses span more than a decade, else
    linear (with an offset when they are close, so the ticks differ)."""
    pos = loss[np.isfinite(loss) & (loss > 0)]
    if pos.size == 0:
        return "linear", loss, None, ""
    hi, lo = float(pos.max()), float(pos.min())
    if hi / lo <= 10.0 and np.all(loss > 0):
        return "linear", loss, None, ""
    # Log scale; exact zeros and losses far below the rest are drawn on a floor and said so.
    floor = max(lo, hi * 1e-12)
    below = loss < floor
    note = f"  (≤ {floor:.1e} drawn at {floor:.1e})" if np.any(below) else ""
    return "log", np.where(below, floor, loss), floor, note


#: Colours of Morse indices 0–3 (minimum, index-1, -2, -3 saddles): four hues that read apart, also in grey
#: and for red–green colour blindness (Okabe–Ito); higher indices take shades of blue, one per index up to
#: 10, else integer bins.
INDEX_COLOURS = ("#009E73", "#E69F00", "#D55E00", "#CC79A7")


def index_colours(index):
    """(cmap, norm, ticks): indices 0–3 in `INDEX_COLOURS`; above 3 one blue per index up to 10, else
    ≤ 7 integer bins."""
    from matplotlib import colors, ticker

    top = max(int(index.max()), 1)
    low = min(top, 3)
    bounds = list(np.arange(-0.5, low + 1.0))
    ticks = list(np.arange(low + 1))
    if top > 3:
        if top <= 10:
            edges = np.arange(4, top + 2)
        else:
            locator = ticker.MaxNLocator(nbins=6, integer=True, steps=[1, 2, 2.5, 5, 10])
            edges = locator.tick_values(4, top + 1)
            edges = np.unique(np.concatenate([[4], edges[(edges > 4) & (edges <= top)], [top + 1]]))
        bounds += list(edges[1:] - 0.5)
        ticks += list(edges[:-1])
    n_high = len(bounds) - 1 - (low + 1)
    high = [plt.get_cmap("Blues")(v) for v in np.linspace(0.45, 0.95, n_high)] if n_high else []
    cmap = colors.ListedColormap(list(INDEX_COLOURS[:low + 1]) + high)
    return cmap, colors.BoundaryNorm(bounds, cmap.N), np.array(ticks)


def loss_label(sg, loss_name: str | None = None) -> str:
    """The name of the loss on a saddle graph's axis: `loss_name` if given, else the graph's
    `loss_label` metadata (set by `add_to_graph`: "training loss", "population loss", "cross-entropy
    (training)", "objective"), else "loss"."""
    name = loss_name or sg.graph.graph.get("loss_label") or "loss"
    return str(name)


def _box_distance(b, p) -> float:
    dx = max(b[0] - p[0], 0.0, p[0] - b[2])
    dy = max(b[1] - p[1], 0.0, p[1] - b[3])
    return float(np.hypot(dx, dy))


def _place_labels(ax, xy, texts, order, marker_px, *, fontsize=7, leaders: bool = True):
    """Greedy label placement in display space: each label (in `order`, most important first) takes
    the first of 16 offsets around its marker where it overlaps no marker, no placed label and stays in
    the axes; labels with no free spot are left out. `leaders=False`: only spots nearer to the label's
    own marker than to any other, no far spots with leader lines. Returns the indices left out."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    pts = ax.transData.transform(xy)
    placed = []
    markers = [(px - r, py - r, px + r, py + r) for (px, py), r in zip(pts, marker_px)]

    def overlaps(a, b, pad=1.0):
        return not (a[2] + pad <= b[0] or b[2] + pad <= a[0] or a[3] + pad <= b[1] or b[3] + pad <= a[1])

    dpi_scale = fig.dpi / 72.0
    omitted = []
    for i in order:
        t = ax.annotate(texts[i], xy[i], textcoords="offset points", xytext=(0, 0), fontsize=fontsize,
                        ha="left", va="bottom", zorder=4)
        bb = t.get_window_extent(renderer)
        w, h = bb.width, bb.height
        r = marker_px[i] + 2
        px, py = pts[i]
        candidates = []
        for dist in (r, r + 0.7 * h, r + 1.8 * h, r + 3.0 * h, r + 4.5 * h):
            candidates += [(dist, dist), (dist, -dist - h), (-dist - w, dist), (-dist - w, -dist - h),
                           (dist, -h / 2), (-dist - w, -h / 2), (-w / 2, dist), (-w / 2, -dist - h)]
        # First pass: only spots nearer to the label's own marker than to any other; second pass: far
        # spots that are not, with a leader line to the marker.
        spot = None
        for strict in (True, False) if leaders else (True,):
            for dx, dy in candidates:
                cand = (px + dx, py + dy, px + dx + w, py + dy + h)
                inside = cand[0] >= box.x0 and cand[2] <= box.x1 and cand[1] >= box.y0 and cand[3] <= box.y1
                if not inside or any(overlaps(cand, b) for b in placed) or \
                        any(overlaps(cand, m, 0.0) for j, m in enumerate(markers) if j != i):
                    continue
                far = abs(dx) > 1.5 * r + w or abs(dy) > 1.5 * r + h
                own = _box_distance(cand, pts[i])
                ambiguous = any(_box_distance(cand, pts[j]) < own for j in range(len(pts)) if j != i)
                if ambiguous and (strict or not far):
                    continue
                spot = (dx, dy, far, cand)
                break
            if spot is not None:
                break
        t.remove()
        if spot is None:
            omitted.append(i)
            continue
        dx, dy, far, cand = spot
        leader = None
        if far:
            leader = dict(arrowstyle="-", lw=0.7, color="0.35", shrinkA=0, shrinkB=marker_px[i] / dpi_scale,
                          relpos=(0.0 if dx > 0 else 1.0, 0.0 if dy > 0 else 1.0))
        ax.annotate(texts[i], xy[i], textcoords="offset points", xytext=(dx / dpi_scale, dy / dpi_scale),
                    fontsize=fontsize, ha="left", va="bottom", zorder=4, arrowprops=leader)
        placed.append(cand)
    return omitted


def draw_saddle_graph(sg, ax=None, *, title: str | None = None, labels: bool = True,
                      loss_name: str | None = None, table: bool = True):
    """Disconnectivity-style drawing of a `SaddleGraph`, readable at any size.

    - y = the loss, named by `loss_name` or the graph's metadata (`loss_label`): log scale when the
      losses span more than a decade, else linear with an offset (so nodes of nearly equal loss get
      distinct ticks); exact zeros sit on a marked floor.
    - x = Morse index order (high index on the left, attractors on the right), ties spread by loss.
    - colour = Morse index: indices 0–3 in four distinct hues (`INDEX_COLOURS`), higher ones in blues,
      one per index up to 10, else integer bins.
    - marker area ∝ √visits, edge width ∝ fraction of trajectories, dashed = unstable manifold.
    - labels (`labels=True`): node id, kind and `reduces_to`, placed so that they overlap neither each
      other nor the markers and stay on the canvas; attractors and frequently visited nodes first. Labels
      with no free spot are left out of the plot and listed in a table below it (`table=True`; the
      title says how many; `sg.summary()` lists every node).
    - an empty graph keeps its title and says it is empty.
    """
    g = sg.graph
    nodes = list(g.nodes)
    if ax is None:
        width = float(np.clip(5.5 + 0.12 * len(nodes), 7.5, 16.0))
        _, ax = plt.subplots(figsize=(width, 5.5))
    if not nodes:
        ax.text(0.5, 0.5, "empty graph (no nodes)", ha="center", transform=ax.transAxes)
        ax.set_title(title or f"saddle graph: 0 nodes, {sg.n_trajectories} trajectories", fontsize=9)
        ax.set_ylabel(loss_label(sg, loss_name))
        return ax
    loss = np.array([float(g.nodes[n].get("loss", np.nan)) for n in nodes])
    index = np.array([int(g.nodes[n].get("morse_index", -1)) for n in nodes])
    visits = np.array([int(g.nodes[n].get("visits", 0)) for n in nodes])
    attractor = np.array([bool(g.nodes[n].get("attractor")) for n in nodes])
    scale, y, floor, note = loss_axis(loss)
    # x: order nodes by Morse index (high index on the left, attractors on the right), spreading ties.
    order = np.lexsort((-np.nan_to_num(loss), -index))
    x = np.empty(len(nodes))
    x[order] = np.arange(len(nodes))
    pos = {n: (x[i], y[i]) for i, n in enumerate(nodes)}
    cmap, norm, ticks = index_colours(index)
    for u, v, e in g.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        width = 0.6 + 5.0 * float(e.get("fraction", 0.0))
        style = "--" if e.get("source") == "unstable_manifold" else "-"
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", lw=width, ls=style, color="0.45", alpha=0.7,
                                    shrinkA=7, shrinkB=7))
    sizes = 40 + 200 * np.sqrt(visits / max(visits.max(), 1))
    sc = ax.scatter(x, y, c=np.clip(index, 0, None), cmap=cmap, norm=norm, s=sizes,
                    edgecolor=np.where(attractor, "crimson", "k"), linewidths=np.where(attractor, 2.0, 0.8),
                    zorder=3)
    ax.set_yscale(scale)
    if scale == "linear":
        from matplotlib import ticker

        fmt = ticker.ScalarFormatter(useOffset=True, useMathText=True)
        fmt.set_powerlimits((-3, 4))
        ax.yaxis.set_major_formatter(fmt)
        span = float(np.nanmax(y) - np.nanmin(y))
        mid = float(np.nanmean(y))
        pad = 0.12 * span if span > 0 else max(abs(mid) * 1e-6, 1e-12)
        ax.set_ylim(np.nanmin(y) - pad, np.nanmax(y) + pad)
    else:
        lo, hi = np.nanmin(y), np.nanmax(y)
        ax.set_ylim(lo / 10 ** (0.08 * np.log10(hi / lo) + 0.05), hi * 10 ** (0.08 * np.log10(hi / lo) + 0.05))
    if floor is not None and note:
        ax.axhline(floor, color="0.6", lw=0.8, ls=":", zorder=1)
    ax.set_xlim(-0.6, len(nodes) - 0.4)
    ax.set_xticks([])
    ax.set_xlabel("nodes by Morse index (high → low), then loss")
    ylabel = loss_label(sg, loss_name) + " L" + note
    if scale == "linear" and np.nanmax(y) > np.nanmin(y) and (np.nanmax(y) - np.nanmin(y)) < 1e-3 * abs(np.nanmean(y)):
        ylabel += f"\nall within {np.nanmax(y) - np.nanmin(y):.2g} of each other"
    elif scale == "linear" and np.nanmax(y) == np.nanmin(y):
        ylabel += f"\nall nodes at L = {np.nanmax(y):.10g}"
        ax.set_yticks([np.nanmax(y)], [f"{np.nanmax(y):.6g}"])
    ax.set_ylabel(ylabel)
    cb = plt.colorbar(sc, ax=ax, ticks=ticks, spacing="proportional")
    cb.set_label("Morse index (unstable directions)" + ("" if len(ticks) == index.max() + 1 else ", binned"))
    omitted = []
    if labels:
        texts = []
        for n in nodes:
            a = g.nodes[n]
            text = f"{n}: {a.get('label', a.get('kind', ''))}" + (" (attractor)" if a.get("attractor") else "")
            if len(nodes) > 12:
                text = text.replace("degenerate_", "deg. ")
            texts.append(text)
        priority = np.lexsort((-visits, ~attractor))
        marker_px = np.sqrt(sizes) / 2 * ax.figure.dpi / 72.0
        # Above 60 nodes, far spots with leader lines make a tangle: those labels go to the table.
        omitted = _place_labels(ax, np.column_stack([x, y]), texts, priority, marker_px,
                                leaders=len(nodes) <= 60)
    if omitted and table:
        _omitted_table(ax, [nodes[i] for i in omitted], g)
    where = "listed below" if table else "see summary()"
    extra = f"; {len(omitted)} label{'s' if len(omitted) > 1 else ''} {where}" if omitted else ""
    ax.set_title((title or f"saddle graph: {g.number_of_nodes()} nodes, {sg.n_trajectories} trajectories "
                           "(dashed: unstable manifold; red rim: attractor)") + extra, fontsize=9)
    return ax


def _omitted_table(ax, nodes, g, *, rows: int = 40, fontsize: float = 6.0):
    """The nodes whose labels found no free spot, as a monospaced table below the axes (in columns of
    `rows` rows), so that every node of the drawing can be read off."""
    lines = []
    for n in sorted(nodes, key=lambda n: (-int(g.nodes[n].get("morse_index", -1)), str(n))):
        a = g.nodes[n]
        sig = a.get("signature")
        sig = "-" if sig is None else "(" + ",".join("?" if v is None else str(v) for v in sig) + ")"
        kind = str(a.get("kind", "")).replace("degenerate_", "deg. ")
        lines.append(f"{str(n):<6.6} {kind:<16.16} {sig:<14.14} L={float(a.get('loss', np.nan)):<11.6g}"
                     f" v={int(a.get('visits', 0))}")
    header = f"{'node':<6} {'kind':<16} {'signature':<14} {'L':<13} visits"
    cols = [lines[i:i + rows] for i in range(0, len(lines), rows)]
    fig = ax.figure
    pos = ax.get_position()
    y = pos.y0 - 0.09
    fig.text(pos.x0, y + 0.03, f"Nodes without a label in the plot ({len(lines)}):", fontsize=fontsize + 1,
             va="top", ha="left")
    for j, col in enumerate(cols):
        # a monospaced character is about 0.6 em wide: columns of 64 characters side by side
        fig.text(pos.x0 + j * 64 * 0.6 * fontsize / 72.0 / fig.get_figwidth(), y, "\n".join([header] + col),
                 family="monospace", fontsize=fontsize, va="top", ha="left")


def _tree_order(tree, node, loss):
    """Leaves below `node` left to right: at each join the branch holding the lower minimum first."""
    kids = sorted(tree.successors(node), key=lambda c: min(loss[m] for m in tree.nodes[c]["minima"]))
    if not kids:
        return [node]
    return [leaf for c in kids for leaf in _tree_order(tree, c, loss)]


def draw_disconnectivity(atlas, ax=None, *, title: str | None = None, labels: bool = True,
                         loss_name: str | None = None):
    """The disconnectivity graph of an `Atlas` (Becker & Karplus 1997; Wales, Miller & Walsh 1998).

    Each minimum is a branch ending at its loss (y); branches join at the loss of the transition state
    that first connects their groups (`disconnectivity_tree`), the lower minimum's branch to the left.
    Groups that no known transition state connects rise to the top of the plot as separate trees (the
    title counts them). y is linear: barriers are differences of losses. The axis is named by
    `loss_name` or the atlas graph's `loss_label`. Returns the axes; `ax.disconnectivity` holds the
    drawn coordinates (`x` of every tree node, the `tree`).
    """
    import networkx as nx

    from .landscape.atlas import disconnectivity_tree

    tree = disconnectivity_tree(atlas)
    loss = {n: float(a["loss"]) for n, a in tree.nodes(data=True)}
    if ax is None:
        _, ax = plt.subplots(figsize=(float(np.clip(3.0 + 0.35 * len(atlas.minima()), 5.0, 14.0)), 4.5))
    ax.set_ylabel(loss_label(atlas.graph, loss_name))
    if not tree.number_of_nodes():
        ax.text(0.5, 0.5, "empty atlas (no minima)", ha="center", transform=ax.transAxes)
        ax.set_title(title or "disconnectivity graph: 0 minima", fontsize=9)
        return ax
    roots = tree.graph["roots"]
    x, order = {}, []
    for r in roots:
        order += _tree_order(tree, r, loss)
    for i, leaf in enumerate(order):
        x[leaf] = float(i)
    for n in reversed(list(nx.topological_sort(tree))):
        kids = list(tree.successors(n))
        if kids:
            x[n] = float(np.mean([x[c] for c in kids]))
    values = np.array(list(loss.values()))
    span = float(values.max() - values.min()) or max(abs(float(values.max())), 1.0)
    top = float(values.max()) + 0.08 * span
    for n in tree.nodes:
        for c in tree.successors(n):
            ax.plot([x[c], x[n]], [loss[c], loss[n]], color="0.15", lw=1.2, solid_capstyle="round")
    for r in roots:
        ax.plot([x[r], x[r]], [loss[r], top], color="0.15", lw=1.2)
    leaves = [n for n in tree.nodes if tree.nodes[n]["minimum"]]
    joins = [n for n in tree.nodes if not tree.nodes[n]["minimum"]]
    ax.scatter([x[n] for n in leaves], [loss[n] for n in leaves], s=22, color=INDEX_COLOURS[0], zorder=3,
               label="minimum")
    if joins:
        ax.scatter([x[n] for n in joins], [loss[n] for n in joins], s=22, color=INDEX_COLOURS[1], marker="s",
                   zorder=3, label="transition state")
    if labels:
        for n in leaves:
            ax.annotate(n, (x[n], loss[n]), xytext=(0, -4), textcoords="offset points", ha="center", va="top",
                        fontsize=7)
        for n in joins:
            ax.annotate(tree.nodes[n]["ts"], (x[n], loss[n]), xytext=(4, 2), textcoords="offset points",
                        fontsize=6, color="0.35")
    ax.set_xticks([])
    ax.set_xlim(-0.7, len(order) - 0.3)
    ax.set_ylim(float(values.min()) - 0.08 * span, top)
    ax.legend(fontsize=7, loc="best", frameon=False)
    n_groups = len(roots)
    apart = f"; {n_groups} groups not connected" if n_groups > 1 else ""
    ax.set_title(title or f"disconnectivity graph: {len(leaves)} minima, {len(joins)} joins{apart}", fontsize=9)
    ax.disconnectivity = dict(x=x, tree=tree)
    return ax
