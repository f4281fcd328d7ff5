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

__all__ = ["save_figure", "plot_learning_curves", "draw_saddle_graph"]


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


def draw_saddle_graph(sg, ax=None, *, title: str | None = None):
    """Disconnectivity-style drawing of a `SaddleGraph`.

    y = training loss (log scale); x spreads nodes of similar loss apart; colour = Morse index;
    marker size ∝ visits; edge width ∝ fraction of trajectories; labels = kind and `reduces_to`.
    """
    g = sg.graph
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5.5))
    nodes = list(g.nodes)
    if not nodes:
        ax.text(0.5, 0.5, "empty graph", ha="center", transform=ax.transAxes)
        return ax
    loss = np.array([max(float(g.nodes[n]["loss"]), 1e-300) for n in nodes])
    index = np.array([int(g.nodes[n].get("morse_index", -1)) for n in nodes])
    visits = np.array([int(g.nodes[n].get("visits", 0)) for n in nodes])
    # x: order nodes by Morse index (high index on the left, attractors on the right), spreading ties.
    order = np.lexsort((loss, -index))
    x = np.empty(len(nodes))
    x[order] = np.arange(len(nodes))
    pos = {n: (x[i], loss[i]) for i, n in enumerate(nodes)}
    max_index = max(int(index.max()), 1)
    cmap = plt.get_cmap("viridis_r", max_index + 1)
    for u, v, e in g.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        width = 0.8 + 6.0 * float(e.get("fraction", 0.0))
        style = "--" if e.get("source") == "unstable_manifold" else "-"
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", lw=width, ls=style, color="0.45", alpha=0.8,
                                    shrinkA=8, shrinkB=8))
    sizes = 60 + 240 * np.sqrt(visits / max(visits.max(), 1))
    sc = ax.scatter(x, loss, c=np.clip(index, 0, None), cmap=cmap, vmin=-0.5, vmax=max_index + 0.5,
                    s=sizes, edgecolor="k", zorder=3)
    for i, n in enumerate(nodes):
        a = g.nodes[n]
        txt = f"{n}: {a.get('label', a.get('kind', ''))}"
        if a.get("attractor"):
            txt += " (attractor)"
        # Alternate label offsets so that nodes of similar loss do not print over each other.
        ax.annotate(txt, (x[i], loss[i]), textcoords="offset points",
                    xytext=(8, 8 if order.tolist().index(i) % 2 == 0 else -14), fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks([])
    ax.set_xlim(-0.7, len(nodes) + 0.9)  # room for the last labels
    ax.set_ylabel("training loss L")
    cb = plt.colorbar(sc, ax=ax, ticks=range(max_index + 1))
    cb.set_label("Morse index (unstable directions)")
    ax.set_title(title or f"saddle graph: {g.number_of_nodes()} nodes, {sg.n_trajectories} trajectories "
                          "(dashed: unstable manifold)", fontsize=9)
    return ax
