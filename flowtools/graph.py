"""SaddleGraph: the saddle → saddle → attractor connections seen over many runs, as a networkx DiGraph.

A node is a critical set up to symmetry: it is identified by its network function (a fingerprint of
outputs on the training inputs and a probe set), not by raw parameters nor by the Hessian signature
(which varies along a degenerate set, and on a plateau manifold even in its negative count): points with
the same function are one node, whatever their signatures, and the node records every signature seen
(`signatures`, `signature_range`). Minima and saddles stay apart, so a whole line of split critical
points is one node per segment kind (docs/itineraries.md). Passages matched only within a visit radius (slow
regions, unfinished ends, which are not critical sets) must also share n_neg.
Edges are the transitions seen in itineraries, with their count, the fraction of trajectories that made
them and the median transit time; connections found on unstable manifolds are marked
`source="unstable_manifold"`.

Node and edge attributes are plain values (str, int, float, bool, lists), so the graph round-trips
through node-link JSON and GraphML (lists are JSON-encoded strings in GraphML).
"""

from __future__ import annotations

import json
import os

import networkx as nx
import numpy as np

from . import io
from .landscape.symmetry import fingerprint_distance

__all__ = ["SaddleGraph", "GraphSummary", "node_link_data", "node_link_graph"]

# The same-set tolerance: two refined points are one function when their fingerprints lie within
# SAME_SET_TOL · (1 + d(f, 0)) of each other (`match_distance`).
SAME_SET_TOL = 1e-4

_LIST_ATTRS = ("theta", "fingerprint", "signature", "signatures", "signature_range", "transit_times", "eigenvalues",
               "methods", "runs")


class SaddleGraph:
    """A directed graph of critical sets (nodes) and observed transitions (edges).

    **Arguments:**

    - `fingerprint_tol`: the tolerance of the same-set rule (`match_distance`, default `SAME_SET_TOL`):
      two refined points are one function when the function distance of their fingerprints is at most
      `fingerprint_tol` · (1 + d(f, 0)), d the per-sample `output_distance` (`output_scale`).
    """

    def __init__(self, fingerprint_tol: float = SAME_SET_TOL):
        if not fingerprint_tol > 0:
            raise ValueError(f"fingerprint_tol must be positive, got {fingerprint_tol!r}.")
        self.fingerprint_tol = float(fingerprint_tol)
        self.graph = nx.DiGraph(fingerprint_tol=self.fingerprint_tol, n_trajectories=0)

    # ----------------------------------------------------------------- nodes
    @property
    def n_trajectories(self) -> int:
        return int(self.graph.graph.get("n_trajectories", 0))

    def find_node(self, fingerprint, signature, *, kind: str | None = None, radius: float = 0.0,
                  d_out: int = 1, n_train: int = 0) -> str | None:
        """The id of the node of the same critical set, or None.

        **Rule** (`match_distance`): the same group (minima and degenerate minima; saddles of every
        kind, unclassified points and slow regions; "unfinished" and "diverged" ends apart), and either
        for refined critical sets (radius 0) the same function — a `function_distance` between
        fingerprints of at most fingerprint_tol · (1 + d(f, 0)) — whatever the signatures (a connected
        critical set has one function, while its zero count, and on a plateau manifold its n_neg, vary
        along it), except that a point with n_neg = 0 and one with n_neg > 0 stay apart (the junction of
        a split line, a higher-order saddle, is not part of the line's saddle segment); or, for an unrefined slow region or an "unfinished" end (which carry the visit radius
        of their itinerary), the same n_neg = signature[0] and the same function or a distance within
        that radius on the first `n_train` inputs of the fingerprint (the training inputs, where the
        radius is measured), so the same passage seen by different runs is one node. An "unfinished" end is not a critical point: its n_neg is not
        compared. The nearest match wins.
        """
        fp = np.asarray(fingerprint, dtype=float)
        best, best_d = None, np.inf
        for node, attrs in self.graph.nodes(data=True):
            mine = kind
            if kind is None:  # no kind given: the group the signature implies (any, if it is unknown)
                n_neg = None if signature is None else signature[0]
                mine = attrs.get("kind") if n_neg is None else ("minimum" if n_neg == 0 else "saddle")
            d = match_distance(dict(fingerprint=fp, signature=signature, kind=mine, radius=radius),
                               attrs, int(attrs.get("d_out", d_out)), n_train or int(attrs.get("n_train", 0)),
                               self.fingerprint_tol)
            if d is not None and d < best_d:
                best, best_d = node, d
        return best

    def add_node(self, *, fingerprint, signature, kind: str, loss: float, theta,
                 gen_error: float | None = None, reduces_to: str | None = None,
                 grad_norm: float | None = None, eigenvalues=None, visits: int = 0, radius: float = 0.0,
                 d_out: int = 1, n_train: int = 0, signatures=None, network: str | None = None) -> str:
        """Add a critical set (or return the id of the matching existing node, see `find_node`) and
        count `visits`. `radius`: the function-space radius of an unrefined slow region or an unfinished
        end (0 for a critical set); `d_out`: the network's number of outputs (to read the fingerprint);
        `n_train`: how many of the fingerprint's inputs are training inputs (0: unknown, all);
        `network`: the widths of the network θ belongs to (`landscape.symmetry.network_widths`), so that the
        node's label shows "→ `reduces_to`" only where the set reduces to a smaller network.

        A matching node keeps its representative θ unless the new one has a smaller ‖∇L‖; it keeps the
        largest radius seen, and adds `signature` (and `signatures`, more signatures seen on the same
        set, e.g. by another graph) to its `signatures`, the distinct signatures seen on the node;
        `signature_range` is [[min, max] of n_neg, of n_zero, of n_pos] over them (None where unknown).
        """
        node = self.find_node(fingerprint, signature, kind=kind, radius=radius, d_out=d_out, n_train=n_train)
        sig = [None if s is None else int(s) for s in signature] if signature is not None else None
        attrs = dict(kind=str(kind), loss=float(loss), theta=[float(v) for v in np.ravel(theta)],
                     fingerprint=[float(v) for v in np.ravel(fingerprint)], signature=sig,
                     morse_index=-1 if sig is None else sig[0],
                     gen_error=float("nan") if gen_error is None else float(gen_error),
                     reduces_to=reduces_to or "", grad_norm=float("nan") if grad_norm is None else float(grad_norm),
                     eigenvalues=[] if eigenvalues is None else [float(v) for v in np.ravel(eigenvalues)],
                     radius=float(radius), d_out=int(d_out), n_train=int(n_train), network=network or "")
        seen = [sig] + [None if t is None else [None if s is None else int(s) for s in t]
                        for t in (signatures or [])]
        if node is None:
            node = f"n{self.graph.number_of_nodes()}"
            while node in self.graph:
                node += "_"
            self.graph.add_node(node, visits=int(visits), label=_label(attrs), **attrs)
            _add_signatures(self.graph.nodes[node], seen)
            return node
        data = self.graph.nodes[node]
        _add_signatures(data, seen)
        data["visits"] = int(data.get("visits", 0)) + int(visits)
        old = data.get("grad_norm", np.nan)
        radius = max(float(radius), float(data.get("radius", 0.0)))
        if grad_norm is not None and (not np.isfinite(old) or grad_norm < old):
            data.update(attrs)
            data["label"] = _label(data)
        data["radius"] = radius
        return node

    # ----------------------------------------------------------------- edges
    def add_transition(self, source: str, target: str, *, transit_time: float | None = None,
                       origin: str = "itinerary", method: str | None = None, run: str | None = None,
                       count: int = 1) -> None:
        """Record `count` observed transitions source → target."""
        for n in (source, target):
            if n not in self.graph:
                raise KeyError(f"node {n!r} is not in the graph; add it with add_node first.")
        if self.graph.has_edge(source, target):
            e = self.graph.edges[source, target]
        else:
            self.graph.add_edge(source, target, count=0, transit_times=[], source="", methods=[], runs=[])
            e = self.graph.edges[source, target]
        e["count"] += int(count)
        if transit_time is not None and np.isfinite(transit_time):
            e["transit_times"].append(float(transit_time))
        origins = set(filter(None, e["source"].split("+"))) | {origin}
        e["source"] = "+".join(sorted(origins))
        if method and method not in e["methods"]:
            e["methods"].append(method)
        if run and run not in e["runs"]:
            e["runs"].append(run)
        self._refresh_edge(e)

    def add_unstable_connection(self, source: str, target: str, *, fraction: float | None = None,
                                time: float | None = None) -> None:
        """An edge found by following the unstable manifold of `source` (source="unstable_manifold")."""
        self.add_transition(source, target, origin="unstable_manifold", count=0)
        e = self.graph.edges[source, target]
        if fraction is not None:
            e["manifold_fraction"] = float(fraction)
        if time is not None:
            e["manifold_time"] = float(time)

    def add_itinerary(self, nodes: list[str], times: list[tuple[float, float]], *, method: str,
                      run: str) -> None:
        """Record one trajectory's node sequence (already added nodes) with each visit's (t_in, t_out)."""
        self.graph.graph["n_trajectories"] = self.n_trajectories + 1
        for node in dict.fromkeys(nodes):
            self.graph.nodes[node]["visits"] = int(self.graph.nodes[node].get("visits", 0)) + 1
        for (a, (_, a_out)), (b, (b_in, _)) in zip(zip(nodes, times), zip(nodes[1:], times[1:])):
            self.add_transition(a, b, transit_time=b_in - a_out, method=method, run=run)
        for _, _, e in self.graph.edges(data=True):
            self._refresh_edge(e)

    def _refresh_edge(self, e):
        n = max(self.n_trajectories, 1)
        e["fraction"] = e["count"] / n
        e["median_transit_time"] = float(np.median(e["transit_times"])) if e["transit_times"] else float("nan")

    # ------------------------------------------------------------ combining
    def merge(self, other: "SaddleGraph", *, return_ids: bool = False):
        """A new graph holding both graphs' nodes (matched by fingerprint and signature) and edges, and
        their metadata (`graph.graph`): a value both graphs agree on, or that of the one graph that has
        nodes; a value they disagree on, or that one of two graphs with nodes lacks, is dropped, except
        `loss_label`, which becomes "loss (mixed)" when both give it and they differ (as `add_to_graph`
        does).

        With `return_ids=True`, returns (graph, ids_self, ids_other): each input node's id in the new
        graph. A later `find_node` on the result may name another node: a node's representative (the
        fingerprint of its smallest ‖∇L‖) moves as nodes merge, and the nearest match wins."""
        out = SaddleGraph(min(self.fingerprint_tol, other.fingerprint_tol))
        fixed = ("fingerprint_tol", "n_trajectories")
        metas = [{k: v for k, v in g.graph.graph.items() if k not in fixed} for g in (self, other) if len(g)]
        metas = metas or [{k: v for k, v in g.graph.graph.items() if k not in fixed} for g in (self, other)]
        for key in dict.fromkeys(k for m in metas for k in m):
            values = [m[key] for m in metas if key in m]
            if key == "loss_label":
                out.graph.graph[key] = values[0] if all(v == values[0] for v in values) else "loss (mixed)"
            elif len(values) == len(metas) and all(v == values[0] for v in values):
                out.graph.graph[key] = values[0]
        ids = []
        for g in (self, other):
            mapping = {}
            ids.append(mapping)
            for node, a in g.graph.nodes(data=True):
                mapping[node] = out.add_node(
                    fingerprint=a["fingerprint"], signature=a["signature"], kind=a["kind"], loss=a["loss"],
                    theta=a["theta"], gen_error=a.get("gen_error"), reduces_to=a.get("reduces_to"),
                    grad_norm=a.get("grad_norm"), eigenvalues=a.get("eigenvalues"), visits=a.get("visits", 0),
                    radius=a.get("radius", 0.0), d_out=a.get("d_out", 1), n_train=a.get("n_train", 0),
                    signatures=a.get("signatures"), network=a.get("network"))
                extra = {k: v for k, v in a.items() if k in ("attractor", "degenerate", "basin_fraction")}
                target = out.graph.nodes[mapping[node]]
                target.update(extra)
                if "ends" in a:
                    target["ends"] = int(target.get("ends", 0)) + int(a["ends"])
            out.graph.graph["n_trajectories"] = out.n_trajectories + g.n_trajectories
            for u, v, e in g.graph.edges(data=True):
                uu, vv = mapping[u], mapping[v]
                if not out.graph.has_edge(uu, vv):
                    out.graph.add_edge(uu, vv, count=0, transit_times=[], source="", methods=[], runs=[])
                f = out.graph.edges[uu, vv]
                f["count"] += e["count"]
                f["transit_times"] += list(e["transit_times"])
                f["source"] = "+".join(sorted(set(filter(None, (f["source"] + "+" + e["source"]).split("+")))))
                f["methods"] = sorted(set(f["methods"]) | set(e["methods"]))
                f["runs"] = sorted(set(f["runs"]) | set(e["runs"]))
                for key in ("manifold_fraction", "manifold_time", "kind"):
                    if key in e:
                        f[key] = e[key]
                if "barrier" in e:  # a transition state's connection: keep the lower barrier seen
                    f["barrier"] = min(float(e["barrier"]), float(f.get("barrier", np.inf)))
        for _, _, e in out.graph.edges(data=True):
            out._refresh_edge(e)
        return (out, *ids) if return_ids else out

    # ---------------------------------------------------------------- files
    def to_json(self, path) -> None:
        """Write node-link JSON (atomic; `node_link_data`)."""
        io.write_json(path, node_link_data(self))

    @classmethod
    def from_json(cls, path) -> "SaddleGraph":
        """Read node-link JSON written by `to_json` (`node_link_graph`).

        **Raises:** `FileNotFoundError`; `flowtools.io.FileFormatError` (a ValueError naming the path
        and the field) for a truncated or garbage file, a node or link without a required attribute,
        or a link to a node the file does not list."""
        path = os.fspath(path)
        return node_link_graph(io.read_json(path, required=("nodes", "links")), path)

    def to_graphml(self, path) -> None:
        """Write GraphML (atomic); list attributes are stored as JSON strings."""
        g = self.graph.copy()
        for _, a in g.nodes(data=True):
            _encode(a)
        for _, _, a in g.edges(data=True):
            _encode(a)
        text = "\n".join(nx.generate_graphml(g, prettyprint=True))
        io.atomic_write_text(path, text)

    @classmethod
    def from_graphml(cls, path) -> "SaddleGraph":
        """Read GraphML written by `to_graphml`.

        **Raises:** `FileNotFoundError`; `flowtools.io.FileFormatError` (a ValueError naming the path
        and the field) for a truncated or garbage file, an attribute that does not decode, or a node or
        edge without a required attribute."""
        import xml.etree.ElementTree as ET

        if not os.path.exists(path):
            raise FileNotFoundError(f"path={os.fspath(path)!r} does not exist.")
        path = os.fspath(path)
        try:
            raw = nx.read_graphml(path)
        except (ET.ParseError, nx.NetworkXError, KeyError, ValueError, IndexError) as err:
            raise io.FileFormatError(f"{path} is not readable GraphML ({type(err).__name__}: {err}); the "
                                     "file is truncated or not a flowtools graph: write it again.") from None
        g = cls(_loaded_tol(path, raw.graph))
        graph = nx.DiGraph(**{k: v for k, v in raw.graph.items() if k not in ("node_default", "edge_default")})
        for n, a in raw.nodes(data=True):
            graph.add_node(n, **_decode(dict(a), path, f"node {n!r}"))
        for u, v, a in raw.edges(data=True):
            graph.add_edge(u, v, **_decode(dict(a), path, f"edge {u!r} → {v!r}"))
        _check_loaded(path, graph, list(raw.nodes))
        g.graph = graph
        return g

    # -------------------------------------------------------------- queries
    def attractors(self) -> list[str]:
        return [n for n, a in self.graph.nodes(data=True) if a.get("attractor")]

    def summary(self, *, theta: bool = True) -> "GraphSummary":
        """The nodes and edges: a `GraphSummary`, i.e. the full data as a plain dict (for summary.json:
        `n_trajectories`, `nodes` with every attribute but the fingerprint, `edges`) that prints as a
        short table (`print(graph.summary())`). `theta=False` leaves out θ and the eigenvalues."""
        skip = {"fingerprint"} if theta else {"fingerprint", "theta", "eigenvalues"}
        nodes = [dict(id=n, **{k: v for k, v in a.items() if k not in skip})
                 for n, a in self.graph.nodes(data=True)]
        edges = [dict(source=u, target=v, count=e["count"], fraction=e["fraction"],
                      median_transit_time=e["median_transit_time"], origin=e["source"],
                      methods=e["methods"]) for u, v, e in self.graph.edges(data=True)]
        return GraphSummary(n_trajectories=self.n_trajectories, nodes=nodes, edges=edges)

    def draw(self, ax=None, *, title: str | None = None, labels: bool = True, loss_name: str | None = None):
        """A disconnectivity-style drawing (`flowtools.plotting.draw_saddle_graph`): y = the loss, named by
        `loss_name` or the graph's `loss_label` (log when it spans decades, else linear with an offset),
        colour = Morse index (binned above 10 indices), size = visits, edge width = frequency, labels =
        id, kind and `reduces_to`, placed without overlaps. Returns the axes."""
        from .plotting import draw_saddle_graph

        return draw_saddle_graph(self, ax=ax, title=title, labels=labels, loss_name=loss_name)

    def __len__(self):
        return self.graph.number_of_nodes()

    def __repr__(self):
        return (f"SaddleGraph({self.graph.number_of_nodes()} nodes, {self.graph.number_of_edges()} edges, "
                f"{self.n_trajectories} trajectories)")

    def _repr_html_(self):  # notebooks
        from .view import graph_html

        return graph_html(self)

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(repr(self))


class GraphSummary(dict):
    """A `SaddleGraph`'s nodes and edges as a plain dict (`n_trajectories`, `nodes`, `edges`; JSON-ready,
    every stored θ and eigenvalue included) that prints as a table a person reads: one row per node
    (id, kind, signature, L, ‖∇L‖, visits, attractor, reduces_to, edges in/out), sorted by decreasing
    loss, then one row per edge. `table(max_rows=None)` gives every row; `dict(summary)` the data."""

    def table(self, max_rows: int | None = 30) -> str:
        nodes = sorted(self.get("nodes", []), key=lambda a: (-_num(a.get("loss")), str(a.get("id"))))
        edges = sorted(self.get("edges", []), key=lambda e: (-int(e.get("count", 0)), str(e.get("source"))))
        n_in, n_out = {}, {}
        for e in edges:
            n_out[e["source"]] = n_out.get(e["source"], 0) + 1
            n_in[e["target"]] = n_in.get(e["target"], 0) + 1
        rows = [(str(a.get("id")), str(a.get("kind", "")), _signature(a.get("signature")),
                 _fmt(a.get("loss"), ".10g"), _fmt(a.get("grad_norm"), ".2e"), str(a.get("visits", 0)),
                 "yes" if a.get("attractor") else "", str(a.get("reduces_to") or ""),
                 f"{n_in.get(a.get('id'), 0)}/{n_out.get(a.get('id'), 0)}") for a in nodes]
        out = [f"SaddleGraph: {len(nodes)} nodes, {len(edges)} edges, "
               f"{self.get('n_trajectories', 0)} trajectories"]
        out += _rows(("node", "kind", "signature", "L", "|grad L|", "visits", "attractor", "reduces_to",
                      "in/out"), rows, max_rows, "nodes")
        erows = [(f"{e['source']} -> {e['target']}", str(e.get("count", 0)), _fmt(e.get("fraction"), ".3g"),
                  _fmt(e.get("median_transit_time"), ".3g"), str(e.get("origin", ""))) for e in edges]
        if erows:
            out.append("")
            out += _rows(("edge", "count", "fraction", "median transit t", "origin"), erows, max_rows, "edges")
        return "\n".join(out)

    def __str__(self):
        return self.table()

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(self.table())


def _num(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f if np.isfinite(f) else float("-inf")


def _fmt(v, spec) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "-"
    return format(f, spec) if np.isfinite(f) else "-"


def _signature(sig) -> str:
    return "-" if sig is None else "(" + ", ".join("?" if s is None else str(int(s)) for s in sig) + ")"


def _rows(header, rows, max_rows, what):
    shown = rows if max_rows is None else rows[:max_rows]
    widths = [max([len(h)] + [len(r[i]) for r in shown]) for i, h in enumerate(header)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in shown]
    if len(shown) < len(rows):
        out.append(f"… {len(rows) - len(shown)} more {what} (table(max_rows=None) shows all)")
    return out


def match_distance(a: dict, b: dict, d_out: int, n_train: int = 0, tol: float = SAME_SET_TOL) -> float | None:
    """The function distance between two visits or nodes (dicts with fingerprint, signature, kind,
    radius) when they are the same critical set, else None.

    The one rule for "the same critical set", used by the saddle graph (`SaddleGraph.find_node`), the
    merging of an itinerary's visits, `basin_fractions`, the sweeps' `critical_points` task and the
    studies. Two points are one set when they are in the same group (minima; saddles and slow regions;
    unfinished and diverged ends apart) and their functions agree: the function distance of their
    fingerprints (`fingerprint_distance`, per sample, in the units of y) is at most tol · (1 + d(f, 0)),
    d(f, 0) the fingerprint's own `output_scale`. The Morse signature is not compared beyond n_neg = 0
    against n_neg > 0: a connected critical set has one function while its zero count, and on a plateau
    manifold its n_neg, vary along it. Unrefined slow regions and unfinished ends (radius > 0) also
    match within their radius on the training inputs, when their n_neg agree.
    """
    if _group(a.get("kind")) != _group(b.get("kind")):
        return None
    fa, fb = np.asarray(a["fingerprint"], dtype=float), np.asarray(b["fingerprint"], dtype=float)
    if fa.shape != fb.shape:
        return None
    d = float(fingerprint_distance(fa, fb, d_out))
    same_function = d <= tol * (1.0 + float(fingerprint_distance(fa, np.zeros_like(fa), d_out)))
    radius = max(float(a.get("radius", 0.0)), float(b.get("radius", 0.0)))
    sa, sb = a.get("signature"), b.get("signature")
    n_a, n_b = (None if s is None or s[0] is None else int(s[0]) for s in (sa, sb))
    if same_function and radius == 0:
        # One function, one critical set, although n_neg varies along a plateau manifold; but a point
        # without unstable direction (the junction of a split line) is not part of a saddle segment.
        return d if n_a is None or n_b is None or (n_a == 0) == (n_b == 0) else None
    if n_a != n_b and _group(a.get("kind")) != "unfinished":
        return None
    if same_function:
        return d
    if radius > 0:
        m = n_train * d_out if 0 < n_train * d_out <= fa.size else fa.size
        d_train = float(fingerprint_distance(fa[:m], fb[:m], d_out))
        if d_train <= radius:
            return d_train
    return None


def _add_signatures(data: dict, seen) -> None:
    """Add the signatures in `seen` to a node's `signatures` (distinct, in order) and `signature_range`."""
    sigs = [list(t) for t in data.get("signatures") or []]
    for t in seen:
        if t is not None and list(t) not in sigs:
            sigs.append(list(t))
    data["signatures"] = sigs
    rng = []
    for i in range(3):
        vals = [t[i] for t in sigs if len(t) > i and t[i] is not None]
        rng.append([min(vals), max(vals)] if vals else None)
    data["signature_range"] = rng


def _group(kind) -> str:
    # A minimum set and a saddle of the same function and n_neg are different sets: the junction of a
    # split line (a higher-order saddle) ends the line's minimum segment without being part of it.
    if kind in ("unfinished", "diverged"):
        return kind
    if str(kind).endswith(" orbit"):  # a periodic orbit of the GD map is not a critical set
        return "orbit"
    return "minimum" if kind in ("minimum", "degenerate_minimum", "noise_ball") else "set"


def _label(a) -> str:
    # A graph saved before nodes recorded their own network (no `network`) keeps the arrow it had.
    red = f" → {a['reduces_to']}" if a.get("reduces_to") and a["reduces_to"] != a.get("network") else ""
    return f"{a['kind']}{red}"


def _encode(a):
    for k in list(a):
        v = a[k]
        if isinstance(v, (list, tuple)) or v is None:
            a[k] = json.dumps(io.to_jsonable(v))
            a[k + "__json"] = True


def _decode(a, path=None, where=""):
    for k in [k for k in a if k.endswith("__json")]:
        key = k[: -len("__json")]
        try:
            a[key] = json.loads(a[key])
        except (TypeError, json.JSONDecodeError, KeyError):
            raise io.FileFormatError(f"{path}: {where} attribute {key!r} is not valid JSON: "
                                     f"{str(a.get(key))[:60]!r}.") from None
        del a[k]
    return a


# What `merge`, `summary` and `find_node` read from every node and edge of a loaded graph.
#: The node-link layout: endpoints under "from"/"to", so the edge attribute "source" (itinerary /
#: unstable_manifold) keeps its name.
_NODE_LINK = dict(edges="links", source="from", target="to")


def node_link_data(graph) -> dict:
    """A saddle graph (a `SaddleGraph` or its networkx DiGraph) as a node-link dict (networkx's
    `node_link_data` with links under "links" and endpoints under "from"/"to"); `node_link_graph`
    reads it back. The one writer of the package's node-link graphs."""
    g = graph.graph if isinstance(graph, SaddleGraph) else graph
    return nx.node_link_data(g, **_NODE_LINK)


def node_link_graph(data, path: str = "node-link data") -> SaddleGraph:
    """The `SaddleGraph` a node-link dict (`node_link_data`) describes, checked as a file is: the one
    reader of the package's node-link graphs. `path` names the source in error messages; JSON nulls in
    the float fields come back as NaN.

    **Raises:** `flowtools.io.FileFormatError` naming `path` and the field, for a missing or malformed
    "nodes" or "links", a node or link without a required attribute, or a link to an unlisted node."""
    path = os.fspath(path)
    io.require_fields(path, data, ("nodes", "links"))
    for key in ("nodes", "links"):
        if not isinstance(data[key], list):
            raise io.FileFormatError(f"{path}: field {key!r} must be a list, "
                                     f"got {type(data[key]).__name__}.")
    for i, node in enumerate(data["nodes"]):
        io.require_fields(path, node, ("id",), f"nodes[{i}]")
    for i, link in enumerate(data["links"]):
        io.require_fields(path, link, ("from", "to"), f"links[{i}]")
    graph_attrs = data.get("graph", {})
    if not isinstance(graph_attrs, dict):
        raise io.FileFormatError(f"{path}: field 'graph' must be an object, "
                                 f"got {type(graph_attrs).__name__}.")
    g = SaddleGraph(_loaded_tol(path, graph_attrs))
    g.graph = nx.node_link_graph(data, directed=True, **_NODE_LINK)
    _check_loaded(path, g.graph, [n["id"] for n in data["nodes"]])
    _restore_nan(g.graph)
    return g


_NODE_FIELDS = ("kind", "fingerprint", "signature", "loss", "theta")
_EDGE_FIELDS = ("count", "transit_times", "source", "methods")


def _loaded_tol(path, attrs) -> float:
    try:
        tol = float(attrs.get("fingerprint_tol", 1e-4))
    except (TypeError, ValueError):
        tol = float("nan")
    if not tol > 0:
        raise io.FileFormatError(f"{path}: graph attribute 'fingerprint_tol' must be a positive number, "
                                 f"got {attrs.get('fingerprint_tol')!r}.")
    return tol


def _check_loaded(path, graph, listed) -> None:
    """Check a loaded graph before anything uses it: every link joins listed nodes, every node and
    edge has the attributes `merge` and `summary` read, and the counts are numbers."""
    listed = set(listed)
    for u, v in graph.edges:
        for end in (u, v):
            if end not in listed:
                raise io.FileFormatError(f"{path}: the link {u!r} → {v!r} refers to node {end!r}, which the "
                                         "file does not list; the file is damaged or was edited by hand.")
    for n, a in graph.nodes(data=True):
        missing = [k for k in _NODE_FIELDS if k not in a]
        if missing:
            raise io.FileFormatError(f"{path}: node {n!r} lacks the field(s) {missing}.")
        fp = a["fingerprint"]
        if not isinstance(fp, list) or not all(isinstance(x, (int, float)) or x is None for x in fp):
            raise io.FileFormatError(f"{path}: node {n!r} field 'fingerprint' must be a list of numbers.")
    for u, v, e in graph.edges(data=True):
        missing = [k for k in _EDGE_FIELDS if k not in e]
        if missing:
            raise io.FileFormatError(f"{path}: edge {u!r} → {v!r} lacks the field(s) {missing}.")
        if isinstance(e["count"], bool) or not isinstance(e["count"], (int, float)) or e["count"] < 0:
            raise io.FileFormatError(f"{path}: edge {u!r} → {v!r} field 'count' must be a number ≥ 0, "
                                     f"got {e['count']!r}.")
        e.setdefault("runs", [])
    try:
        graph.graph["n_trajectories"] = int(graph.graph.get("n_trajectories", 0))
    except (TypeError, ValueError):
        raise io.FileFormatError(f"{path}: graph attribute 'n_trajectories' must be an integer, got "
                                 f"{graph.graph.get('n_trajectories')!r}.") from None
    for _, _, e in graph.edges(data=True):
        e.setdefault("fraction", e["count"] / max(graph.graph["n_trajectories"], 1))
        e.setdefault("median_transit_time", float("nan"))


def _restore_nan(graph):
    """JSON has no NaN: write_json stores it as null; turn those back into NaN floats."""
    for _, a in graph.nodes(data=True):
        for k in ("gen_error", "grad_norm", "loss"):
            if a.get(k) is None:
                a[k] = float("nan")
    for _, _, a in graph.edges(data=True):
        if a.get("median_transit_time") is None:
            a["median_transit_time"] = float("nan")
