"""The saddle graph of runs: an itinerary's visits added as nodes and its transitions as edges
(`add_to_graph`), the graph of several runs (`saddle_graph`) and the share of passages refined to a
critical set (`refinement_share`). Nodes are critical sets identified by network function (the
same-set rule, `flowtools.graph.match_distance`), edges the saddle → saddle → attractor transitions of
the runs (Jacot et al., arXiv 2106.15933).
"""

from __future__ import annotations

from ..dynamics.progress import progress_bar
from ..dynamics.trajectory import Trajectory
from ..graph import SaddleGraph
from ..problem import Problem
from ._itinerary import itinerary
from ._records import Itinerary


def add_to_graph(graph: SaddleGraph, itin: Itinerary, run: str) -> list[str]:
    """Add an itinerary's visits as nodes (matched by function and index, see `SaddleGraph.find_node`)
    and its transitions as edges; set each visit's `node`. Returns the node sequence."""
    nodes = []
    d_out = int(itin.stats.get("d_out", 1))
    for v in itin.visits:
        v.node = graph.add_node(fingerprint=v.fingerprint, signature=v.signature, kind=v.kind, loss=v.loss,
                                theta=v.theta, gen_error=v.gen_error, reduces_to=v.reduces_to,
                                grad_norm=v.grad_norm, eigenvalues=v.eigenvalues, radius=v.radius,
                                d_out=d_out, n_train=int(itin.stats.get("n_train", 0)),
                                network=itin.stats.get("network"))
        nodes.append(v.node)
    if itin.stats.get("loss_label"):  # what the loss axis of a drawing is called; "mixed" if runs disagree
        old, new = graph.graph.graph.get("loss_label"), itin.stats["loss_label"]
        graph.graph.graph["loss_label"] = new if old in (None, new) else "loss (mixed)"
    if itin.terminal == "attractor":
        end = graph.graph.nodes[nodes[-1]]
        end["attractor"] = True
        end["degenerate"] = bool(itin.degenerate)
        end["ends"] = int(end.get("ends", 0)) + 1  # runs that end here (visits also counts passages)
        if itin.visits[-1].kind == "noise_ball":  # the largest noise ball measured around this minimum
            end["noise_ball_radius"] = max(float(end.get("noise_ball_radius", 0.0)),
                                           itin.visits[-1].ball_radius)
    graph.add_itinerary(nodes, [(v.t_in, v.t_out) for v in itin.visits], method=itin.method, run=run)
    return nodes


def refinement_share(itineraries) -> dict:
    """The share of slow passages refined to a critical set, per run and over an ensemble.

    **Returns:** dict(passages, refined, share, per_run) with per_run a list of (refined, passages).
    """
    per_run = [(sum(v.refined for v in it.passages), len(it.passages)) for it in itineraries]
    refined = sum(r for r, _ in per_run)
    total = sum(n for _, n in per_run)
    return dict(passages=total, refined=refined, share=refined / total if total else 1.0, per_run=per_run)


def saddle_graph(problem: Problem, runs, *, graph: SaddleGraph | None = None, progress: bool | str = False,
                 **itinerary_options) -> tuple[SaddleGraph, dict[str, Itinerary]]:
    """The saddle graph of several runs on one problem: the `itinerary` of each trajectory, merged with
    `add_to_graph` (nodes are critical sets matched by network function and Morse signature).

    **Arguments:**

    - `problem`: the `Problem` every run solved.
    - `runs`: a mapping run name → `Trajectory`, or a sequence of trajectories (named "0", "1", …).
    - `graph`: add to this `SaddleGraph` (default: a new one).
    - `progress`: a bar over the runs; a string names it.
    - `itinerary_options`: passed to `itinerary` for every run (e.g. `visit_radius`, `min_depth`).

    **Returns:** (graph, {run name: Itinerary}) in the order of `runs`; each visit's `node` is set.
    """
    from collections.abc import Mapping

    if isinstance(runs, Trajectory):
        raise TypeError("runs must be a mapping name → Trajectory or a sequence of trajectories; wrap a single "
                        "run as [trajectory] or {'name': trajectory}.")
    items = list(runs.items()) if isinstance(runs, Mapping) else [(str(i), tr) for i, tr in enumerate(runs)]
    for name, tr in items:
        if not isinstance(tr, Trajectory):
            raise TypeError(f"runs[{name!r}] is a {type(tr).__name__}, not a Trajectory; pass the trajectories "
                            "that gradient_flow, gradient_descent or run_ensemble return.")
    graph = SaddleGraph() if graph is None else graph
    if not isinstance(graph, SaddleGraph):
        raise TypeError(f"graph must be a SaddleGraph or None, got {type(graph).__name__}.")
    bar = progress_bar(len(items), progress if isinstance(progress, str) else "itineraries",
                       bool(progress), unit="run")
    itins = {}
    with bar:
        for name, tr in items:
            itins[name] = itinerary(problem, tr, **itinerary_options)
            add_to_graph(graph, itins[name], run=str(name))
            bar.update()
    return graph, itins
