"""A landscape atlas: minima and the transition states that connect them, and their disconnectivity tree.

The atlas is the database of energy-landscape exploration (pele's `Database` and `DoubleEndedConnect`;
Wales, *Energy Landscapes*, Cambridge 2003, ch. 6): minima, index-1 saddles ("transition states"), and
for each transition state the two minima that steepest descent from it reaches. It is stored as a
`SaddleGraph`, so an atlas merges with the graphs of gradient-flow runs: a transition state is a
node of kind "saddle" (signature (1, …)), and its two connections are edges transition state → minimum
with `source="transition_path"` and `barrier` = L(ts) − L(minimum).

`Atlas.connect(a, b)` connects two minima as `DoubleEndedConnect` does: a shortest path (Dijkstra)
through the complete graph of known minima, where known connections cost nothing and an untried pair
costs its squared distance after symmetry alignment; each untried pair on it gets a climbing-image band
(`transition_path`), whose saddle and descent are added whatever minima they join (a band that passes an
intermediate minimum thereby adds that minimum, and the next round joins the rest). It repeats until `a`
and `b` are connected or no untried pair is left on the shortest path.

The barrier between two minima is the minimax over connected paths of the highest transition state
(the lowest "pass"); `disconnectivity_tree` records at which loss each group of minima joins (Becker &
Karplus, J. Chem. Phys. 106, 1495, 1997; Wales, Miller & Walsh, Nature 394, 758, 1998).
"""

from __future__ import annotations

import dataclasses
import itertools

import networkx as nx
import numpy as np

from .. import _checks
from ..problem import Problem
from .critical import CriticalPoint, critical_point_at, find_critical_point
from .input_symmetry import orbit_fingerprint
from .paths import TransitionPath, align_minimum, transition_path
from .symmetry import network_widths

__all__ = ["Atlas", "ConnectResult", "disconnectivity_tree"]

_MINIMUM_KINDS = ("minimum", "degenerate_minimum")
#: The edge origin of a transition state's connections.
TRANSITION_PATH = "transition_path"


@dataclasses.dataclass
class ConnectResult:
    """How `Atlas.connect` ended: `connected`, the `barrier` (L of the lowest pass − L(a), L of it − L(b);
    None when not connected), the `pass_node` (the highest transition state on the lowest path), the
    minima of that `path` (node ids, a … b), the `attempts` (one dict per band: ends, status,
    message, the transition state added), `status` ("connected" or "not_connected") and `message`."""

    a: str
    b: str
    connected: bool
    barrier: tuple | None
    pass_node: str | None
    path: list
    attempts: list
    status: str
    message: str


class Atlas:
    """Minima and transition states of one problem, with connections verified by descent.

    **Arguments:**

    - `problem`: the `Problem` whose landscape this is.
    - `graph`: a `SaddleGraph` to start from (e.g. the merged graph of flow runs: its minima become the
      atlas's minima); default an empty one.
    - `fingerprint_tol`: a new graph's rule for "the same critical set" (`SaddleGraph`). Points are
      fingerprinted up to the problem's declared input symmetry (`orbit_fingerprint`).
    """

    def __init__(self, problem: Problem, graph=None, *, fingerprint_tol: float = 1e-4):
        from ..graph import SaddleGraph  # (the graph module imports the landscape package)
        from ..itineraries import problem_loss_label

        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a flowtools.Problem, got {type(problem).__name__}.")
        if graph is not None and not isinstance(graph, SaddleGraph):
            raise TypeError(f"graph must be a flowtools.SaddleGraph or None, got {type(graph).__name__}.")
        self.problem = problem
        self.graph = SaddleGraph(fingerprint_tol) if graph is None else graph
        self._tried: set = set()
        self.graph.graph.graph.setdefault("loss_label", problem_loss_label(problem))

    # ------------------------------------------------------------------------------------- store
    @property
    def nx(self) -> nx.DiGraph:
        return self.graph.graph

    def minima(self) -> list[str]:
        """Node ids of the minima (kinds "minimum" and "degenerate_minimum"), lowest loss first."""
        nodes = [n for n, a in self.nx.nodes(data=True) if a.get("kind") in _MINIMUM_KINDS]
        return sorted(nodes, key=lambda n: self.nx.nodes[n]["loss"])

    def transition_states(self) -> list[str]:
        """Node ids of the transition states (index-1 saddles whose descent was followed into minima),
        lowest loss first."""
        ts = {u for u, _, e in self.nx.edges(data=True) if TRANSITION_PATH in e.get("source", "").split("+")}
        return sorted(ts, key=lambda n: self.nx.nodes[n]["loss"])

    def loss(self, node: str) -> float:
        return float(self.nx.nodes[self._node(node)]["loss"])

    def theta(self, node: str) -> np.ndarray:
        return np.asarray(self.nx.nodes[self._node(node)]["theta"], dtype=np.float64)

    def connections(self, ts: str) -> list[str]:
        """The minima a transition state connects (one, for a degenerate rearrangement)."""
        return [v for _, v, e in self.nx.out_edges(self._node(ts), data=True)
                if TRANSITION_PATH in e.get("source", "").split("+")]

    def _node(self, node) -> str:
        if node not in self.nx:
            raise KeyError(f"{node!r} is not a node of this atlas; its minima are {self.minima()}.")
        return node

    def _add(self, cp: CriticalPoint) -> str:
        return self.graph.add_node(
            fingerprint=orbit_fingerprint(self.problem, cp.theta), signature=cp.signature, kind=cp.kind,
            loss=cp.loss, theta=cp.theta, gen_error=cp.gen_error, reduces_to=cp.reduces_to,
            grad_norm=cp.grad_norm, eigenvalues=cp.eigenvalues, d_out=self.problem.model.d_out,
            n_train=int(np.asarray(self.problem.x).shape[0]), network=network_widths(self.problem))

    def add_minimum(self, theta, *, refine: bool = True, gtol: float = 1e-10) -> str:
        """Add a minimum (refined from θ by `find_critical_point` with `refine`) and return its node id
        (that of the same minimum, up to symmetry, when it is already there).

        **Raises:** `ValueError` when θ does not refine to a minimum (its status and kind are named)."""
        if isinstance(theta, CriticalPoint):
            cp = theta
        else:
            theta = _checks.theta_vector("theta", theta, self.problem.n_params)
            cp = find_critical_point(self.problem, theta, gtol=gtol) if refine else \
                critical_point_at(self.problem, theta)
        if not cp.success or cp.kind not in _MINIMUM_KINDS:
            raise ValueError(f"theta is not a minimum: the refinement ended {cp.status!r} at a point of kind "
                             f"{cp.kind!r}, signature {cp.signature} ({cp.message}). Pass a point near a "
                             "minimum, e.g. the end of a gradient flow.")
        return self._add(cp)

    def add_path(self, path: TransitionPath) -> str | None:
        """Add what a `transition_path` found: its index-1 saddle and the two minima its descent reached
        (which need not be the band's ends), joined by `transition_path` edges with their barriers; when
        both are one minimum up to symmetry, one edge. Returns the transition state's node id, or None
        when the band gave no verified transition state (no index-1 saddle, or a descent branch that did
        not end at a minimum)."""
        if not isinstance(path, TransitionPath):
            raise TypeError(f"path must be a TransitionPath, got {type(path).__name__}.")
        s = path.saddle
        if s is None or not s.success or s.morse_index != 1 or len(path.reached) != 2:
            return None
        if any(not r.success or r.kind not in _MINIMUM_KINDS for r in path.reached):
            return None
        minima = [self._add(r) for r in path.reached]
        ts = self._add(s)
        # Both branches may fall into one minimum up to symmetry (a degenerate rearrangement, e.g. a
        # neuron's sign flip through the point where it is dead): one edge, and no join in the tree.
        for m in dict.fromkeys(minima):
            self.graph.add_transition(ts, m, origin=TRANSITION_PATH, count=0)
            e = self.nx.edges[ts, m]
            e["barrier"] = float(s.loss - self.loss(m))
            e["kind"] = TRANSITION_PATH
        return ts

    # ----------------------------------------------------------------------------------- queries
    def _minimum_graph(self) -> nx.Graph:
        """Minima joined by transition states; each edge holds its lowest transition state."""
        g = nx.Graph()
        g.add_nodes_from(self.minima())
        for ts in self.transition_states():
            ends = self.connections(ts)
            if len(ends) != 2:
                continue
            u, v = ends
            e = self.loss(ts)
            if not g.has_edge(u, v) or e < g.edges[u, v]["loss"]:
                g.add_edge(u, v, loss=e, ts=ts)
        return g

    def connected(self, a: str, b: str) -> bool:
        """Whether minima `a` and `b` are joined through known transition states."""
        g = self._minimum_graph()
        return nx.has_path(g, self._node(a), self._node(b))

    def lowest_pass(self, a: str, b: str) -> tuple[str | None, list]:
        """(the highest transition state on the path between `a` and `b` whose highest transition state is
        lowest, the minima along that path); (None, []) when they are not connected."""
        g = self._minimum_graph()
        a, b = self._node(a), self._node(b)
        if not nx.has_path(g, a, b):
            return None, []
        # The minimax path lies on a minimum spanning tree (Hu 1961).
        tree = nx.minimum_spanning_tree(g, weight="loss")
        nodes = nx.shortest_path(tree, a, b)
        if len(nodes) == 1:
            return None, nodes
        top = max(zip(nodes, nodes[1:]), key=lambda uv: tree.edges[uv]["loss"])
        return tree.edges[top]["ts"], nodes

    def barrier(self, a: str, b: str) -> tuple[float, float] | None:
        """(L(pass) − L(a), L(pass) − L(b)) for the lowest pass between minima `a` and `b`
        (`lowest_pass`); None when they are not connected."""
        ts, _ = self.lowest_pass(a, b)
        if ts is None:
            return None
        e = self.loss(ts)
        return e - self.loss(a), e - self.loss(b)

    # ------------------------------------------------------------------------------------ connect
    def _distance2(self, u, v) -> float:
        a, b = self.theta(u), self.theta(v)
        return float(np.sum((align_minimum(self.problem, a, b) - a) ** 2))

    def connect(self, a: str, b: str, *, max_rounds: int = 10, **path_options) -> ConnectResult:
        """Connect minima `a` and `b` through transition states (pele's `DoubleEndedConnect`).

        Each round takes the shortest path from `a` to `b` through all known minima, where a connected pair
        costs 0 and an untried pair its squared aligned distance, and runs `transition_path` (with
        `path_options`) on every untried pair along it, adding what it finds (`add_path`). Stops once `a`
        and `b` are connected, when the shortest path has no untried pair left, or after `max_rounds`.

        **Returns:** a `ConnectResult`.
        """
        a, b = self._node(a), self._node(b)
        for n in (a, b):
            if self.nx.nodes[n].get("kind") not in _MINIMUM_KINDS:
                raise ValueError(f"{n!r} is a {self.nx.nodes[n].get('kind')}, not a minimum: connect joins "
                                 f"minima ({self.minima()}).")
        if a == b:
            raise ValueError("a and b are the same minimum: there is nothing to connect.")
        max_rounds = _checks.positive_int("max_rounds", max_rounds)
        attempts = []
        for _ in range(max_rounds):
            if self.connected(a, b):
                break
            known = self._minimum_graph()
            full = nx.Graph()
            full.add_nodes_from(self.minima())
            for u, v in itertools.combinations(self.minima(), 2):
                if known.has_edge(u, v):
                    full.add_edge(u, v, weight=0.0)
                elif frozenset((u, v)) not in self._tried:
                    full.add_edge(u, v, weight=self._distance2(u, v))
            if not nx.has_path(full, a, b):
                break
            route = nx.dijkstra_path(full, a, b)
            todo = [(u, v) for u, v in zip(route, route[1:]) if not known.has_edge(u, v)]
            if not todo:
                break
            for u, v in todo:
                self._tried.add(frozenset((u, v)))
                path = transition_path(self.problem, self.theta(u), self.theta(v), **path_options)
                ts = self.add_path(path)
                attempts.append(dict(ends=[u, v], status=path.status, message=path.message, transition_state=ts,
                                     iterations=path.iterations, wall_time=path.wall_time))
        ts, nodes = self.lowest_pass(a, b)
        if ts is None:
            tried = "; ".join(f"{x['ends'][0]}–{x['ends'][1]}: {x['status']}" for x in attempts) or "no band run"
            return ConnectResult(a, b, False, None, None, [], attempts, "not_connected",
                                 f"{a} and {b} are not connected after {len(attempts)} band(s) ({tried})")
        bar = self.barrier(a, b)
        return ConnectResult(a, b, True, bar, ts, nodes, attempts, "connected",
                             f"{a} and {b} are connected through {len(nodes) - 1} transition state(s); "
                             f"the lowest pass is {ts} at L = {self.loss(ts):.10g} (barriers {bar[0]:.6g} from {a}, "
                             f"{bar[1]:.6g} from {b}); {len(attempts)} band(s) run")

    # ---------------------------------------------------------------------------------- the tree
    def disconnectivity_tree(self) -> nx.DiGraph:
        """The disconnectivity tree of the atlas's minima (`disconnectivity_tree`)."""
        return disconnectivity_tree(self)

    def draw(self, ax=None, *, title: str | None = None, labels: bool = True, loss_name: str | None = None):
        """The disconnectivity graph (`flowtools.plotting.draw_disconnectivity`). Returns the axes."""
        from ..plotting import draw_disconnectivity

        return draw_disconnectivity(self, ax=ax, title=title, labels=labels, loss_name=loss_name)

    # ------------------------------------------------------------------------------------- files
    def to_json(self, path) -> None:
        """Write the atlas's graph as node-link JSON (atomically; `SaddleGraph.to_json`)."""
        self.graph.to_json(path)

    @classmethod
    def from_json(cls, problem: Problem, path) -> "Atlas":
        from ..graph import SaddleGraph

        return cls(problem, SaddleGraph.from_json(path))

    def __repr__(self):
        return f"Atlas({len(self.minima())} minima, {len(self.transition_states())} transition states)"


def disconnectivity_tree(atlas: Atlas) -> nx.DiGraph:
    """The tree in which minima join at the loss of the transition state that first connects them.

    Transition states are taken in increasing loss; each one that joins two groups of minima not yet
    joined (union–find, i.e. Kruskal's algorithm) adds an inner node at its loss whose two children are
    those groups. Leaves are the minima (attribute `loss`, `minimum=True`); inner nodes carry `loss` (the
    transition state's), `ts` (its id) and `minima` (the minima below). Groups that no transition state
    joins stay separate roots (`roots` in the graph's attributes). This is the disconnectivity graph
    with one level per transition state (Becker & Karplus 1997; Wales, Miller & Walsh 1998).
    """
    if not isinstance(atlas, Atlas):
        raise TypeError(f"atlas must be a flowtools.landscape.Atlas, got {type(atlas).__name__}.")
    tree = nx.DiGraph()
    top = {}
    for m in atlas.minima():
        tree.add_node(m, loss=atlas.loss(m), minimum=True, minima=[m])
        top[m] = m
    parent = {m: m for m in top}

    def find(m):
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    g = atlas._minimum_graph()
    for u, v, e in sorted(g.edges(data=True), key=lambda t: t[2]["loss"]):
        ru, rv = find(u), find(v)
        if ru == rv:
            continue
        node = f"join:{e['ts']}"
        tree.add_node(node, loss=float(e["loss"]), ts=e["ts"], minimum=False,
                      minima=tree.nodes[top[ru]]["minima"] + tree.nodes[top[rv]]["minima"])
        tree.add_edge(node, top[ru])
        tree.add_edge(node, top[rv])
        parent[rv] = ru
        top[ru] = node
    tree.graph["roots"] = sorted({top[find(m)] for m in top}, key=lambda n: tree.nodes[n]["loss"])
    return tree
