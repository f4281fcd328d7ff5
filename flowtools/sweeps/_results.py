"""What a store's records become: the xarray Dataset of all points (results.zarr, swapped in atomically),
the SaddleGraph merged over them (graph.json), their reading and merging, and the `SweepResult` of a run."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import time
import uuid
import warnings
from typing import NamedTuple

import numpy as np

from .. import io
from ._parameters import upgrade_configuration
from ._store import SCHEMA, Store, now, sweep_spec
from ._tasks import canonical_task_name


def _graph_from(data, where: str = "a sweep record's graph"):
    from ..graph import node_link_graph

    g = node_link_graph(data, where)
    if g.n_trajectories == 1:
        # A point's graph holds one run: its attractor node is where that run ended (records written
        # before nodes kept `ends`).
        for _, a in g.graph.nodes(data=True):
            if a.get("attractor") and "ends" not in a:
                a["ends"] = 1
    return g


def _merge_all(graphs, *, return_ids: bool = False):
    """One SaddleGraph from many, merged pairwise in a balanced tree (in order, so the result does not
    depend on which worker finished first). With `return_ids=True`, also, for each input graph, the id
    its nodes got in the result ({} for None), composed through the tree's merges."""
    from ..graph import SaddleGraph

    # each entry: a graph and, for each input graph it holds, (input position, its node → this graph's node)
    level = [(g, [(k, {n: n for n in g.graph})]) for k, g in enumerate(graphs) if g is not None]
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            if i + 1 == len(level):
                nxt.append(level[i])
                continue
            (a, held_a), (b, held_b) = level[i], level[i + 1]
            out, to_a, to_b = a.merge(b, return_ids=True)
            nxt.append((out, [(k, {n: to[m] for n, m in ids.items()})
                              for held, to in ((held_a, to_a), (held_b, to_b)) for k, ids in held]))
        level = nxt
    merged, held = level[0] if level else (SaddleGraph(), [])
    if not return_ids:
        return merged
    ids = [{} for _ in graphs]
    for k, m in held:
        ids[k] = m
    return merged, ids


def merged_graph(store, **where):
    """The SaddleGraph merged over the finished points of `store` whose configuration matches `where`
    (e.g. `merged_graph(store, activation="tanh", width=3)`; no filter: all points)."""
    records, _ = Store(store).read()
    graphs = []
    for index, rec in records.items():
        if all(rec["config"].get(k) == v for k, v in where.items()) and rec.get("graph"):
            graphs.append(_graph_from(rec["graph"], f"point {index}'s graph"))
    return _merge_all(graphs)


class PointGroup(NamedTuple):
    """One group of `point_groups`: its configuration values `where` (a dict of Python scalars, as
    `merged_graph(store, **where)` takes them) and the indices `points` of its finished points."""

    where: dict
    points: np.ndarray


def point_groups(ds, by) -> list[PointGroup]:
    """The finished points of a sweep grouped by configuration keys, one `PointGroup` per combination of
    values that has a finished point.

    **Arguments:** `ds`, the sweep's Dataset (`open_results(store).load()`); `by`, a configuration key or a
    sequence of them, e.g. `("activation", "width")`.

    **Returns:** a list of `PointGroup`. The first key's values come in the sweep's order (where each first
    appears), each further key's in ascending order within the values before it: the rows of a table of
    the sweep.

    **Raises:** `ValueError` when `by` is empty or names a key that is not a configuration key of `ds`."""
    by = (by,) if isinstance(by, str) else tuple(by)
    if not by:
        raise ValueError("point_groups: `by` names no key; give configuration keys, e.g. by=('width',).")
    missing = [k for k in by if k not in ds.coords or ds[k].dims != ("point",)]
    if missing:
        keys = [k for k in ds.coords if k not in ("point", "visit")]
        raise ValueError(f"point_groups: {missing} are not configuration keys of this sweep; by= takes some "
                         f"of {keys}.")
    columns = [np.asarray(ds[k].values) for k in by]
    groups = []

    def split(level, mask, where):
        values = columns[level][mask].tolist()
        values = list(dict.fromkeys(values)) if level == 0 else sorted(set(values))
        for v in values:
            sub = mask & (columns[level] == v)
            if level + 1 < len(by):
                split(level + 1, sub, {**where, by[level]: v})
                continue
            points = np.flatnonzero(sub & np.asarray(ds["finished"].values, dtype=bool))
            if points.size:
                groups.append(PointGroup({**where, by[level]: v}, points))

    split(0, np.ones(ds.sizes["point"], dtype=bool), {})
    return groups


class StoreContents(NamedTuple):
    """What `read_store` returns: the sweep's `configurations`, the finished points' `records` by point
    index, the results `dataset` built from them and the SaddleGraph `graph` merged over them."""

    configurations: list
    records: dict
    dataset: object
    graph: object


def read_store(store) -> StoreContents:
    """A sweep store read from its point records in one pass (a `StoreContents`); damaged records are
    skipped with a `DamagedRecordWarning`, as by `open_results`.

    **Raises:** `FileNotFoundError` when `store` is not a sweep store, `ValueError` when its sweep.json
    cannot be read."""
    spec = sweep_spec(store, "store")
    configs = spec["configurations"]
    records, _ = Store(store).read()
    ds, graph = _build(configs, records, dataset_attrs(spec["task"], configs))
    return StoreContents(configs, records, ds, graph)


def dataset_attrs(task_name: str, configs) -> dict:
    """The Dataset attributes every build of a store's results starts from."""
    return dict(schema=SCHEMA, task=task_name, n_points=len(configs))


def merge_stores(source, store) -> int:
    """Copy the finished points of the sweep store `source` into the sweep store `store`, whose
    configurations include theirs: e.g. part of a grid run elsewhere with a store of its own (the width
    study's `--activations tanh --out …`). Points are matched by configuration, not by index; a point
    that `store` has already finished is kept. Both sweeps must have the same task. `store`'s
    results.zarr and graph.json are rewritten. Returns the number of points copied.

    Raises ValueError, before copying anything, when a finished point of `source` has a configuration
    that is not one of `store`'s."""
    src_spec, dst_spec = sweep_spec(source, "source"), sweep_spec(store, "store")
    if src_spec.get("task") != dst_spec.get("task"):
        raise ValueError(f"source={os.fspath(source)!r} ran task {src_spec.get('task')!r} and "
                         f"store={os.fspath(store)!r} task {dst_spec.get('task')!r}; merge stores of one task.")
    configs = dst_spec["configurations"]
    task = canonical_task_name(str(dst_spec.get("task")))  # configurations compare under renamed keys
    index = {json.dumps(upgrade_configuration(task, c), sort_keys=True): i for i, c in enumerate(configs)}
    src, dst = Store(source), Store(store)
    with dst.lock():
        incoming, unknown = {}, []
        for j, rec in src.read()[0].items():
            i = index.get(json.dumps(upgrade_configuration(task, rec["config"]), sort_keys=True))
            if i is None:
                unknown.append(j)
            else:
                incoming[i] = rec
        if unknown:
            raise ValueError(f"points {unknown[:5]} of source={os.fspath(source)!r} have configurations that "
                             f"store={os.fspath(store)!r} does not hold (e.g. {src.record_path(unknown[0])}); "
                             "merge into a store whose sweep includes them.")
        records = dst.read()[0]  # a damaged record counts as not finished: a good one replaces it
        new = {i: rec for i, rec in incoming.items() if i not in records}
        for i, rec in new.items():
            io.write_json(dst.record_path(i), rec)
        consolidate(dst, configs, {**records, **new}, dataset_attrs(dst_spec["task"], configs))
    return len(new)


def _dataset(configs: list[dict], records: dict[int, dict], attrs: dict, node_ids: dict):
    """The xarray Dataset of a sweep: every configuration, finished or not. `node_ids`: for each finished
    point, its graph's node ids → those of the merged graph (from `_merge_all`)."""
    import xarray as xr

    n = len(configs)
    coords = {"point": np.arange(n)}
    keys = list(dict.fromkeys(k for c in configs for k in c))
    for k in keys:
        coords[k] = ("point", _column([c.get(k) for c in configs]))
    finished = np.zeros(n, dtype=bool)
    finished[list(records)] = True
    data = {"finished": ("point", finished)}
    out_keys = list(dict.fromkeys(k for r in records.values() for k in r["outcomes"]))
    for k in out_keys:
        data[k] = ("point", _column([records[i]["outcomes"].get(k) if i in records else None for i in range(n)]))
    data["version"] = ("point", _column([records[i]["version"] if i in records else None for i in range(n)]))
    data["error"] = ("point", _column([records[i].get("error", "") if i in records else None for i in range(n)]))
    # Visits along a second dimension, padded; node ids are those of the merged graph.
    width = max((len(r.get("itinerary") or []) for r in records.values()), default=0)
    if width:
        cols = {name: [[None] * width for _ in range(n)] for name in ("node", "kind", "t_in", "t_out", "loss",
                                                                       "morse_index")}
        nodes_text = [None] * n
        for i, r in records.items():
            seq = []
            for j, v in enumerate(r.get("itinerary") or []):
                node = node_ids.get(i, {}).get(v["node"], "")
                seq.append(node)
                for name in cols:
                    cols[name][i][j] = node if name == "node" else v[name]
            nodes_text[i] = " > ".join(seq)
        for name, rows in cols.items():
            data[f"visit_{name}"] = (("point", "visit"), np.stack([_column(row) for row in rows]) if name in (
                "node", "kind") else np.array([[np.nan if x is None else float(x) for x in row] for row in rows]))
        data["nodes"] = ("point", _column(nodes_text))
        coords["visit"] = np.arange(width)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _column(values):
    """A 1-D array from Python scalars with None for missing: float (NaN) if any value is a number,
    bool if all present values are bool, else str ("")."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.array(values, dtype=bool)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, str) for v in present):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in present) and len(present) == len(values):
            return np.array(values, dtype=np.int64)
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values], dtype=str)


def _write_zarr(store: Store, ds) -> None:
    """Write the Dataset to a new generation directory, then point results.zarr at it atomically."""
    gens = store.path / ".zarr"
    gens.mkdir(exist_ok=True)
    target = gens / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr v3: consolidated metadata and fixed-width strings notes
        ds.to_zarr(target, mode="w", consolidated=True)
    link = store.path / "results.zarr"
    tmp_link = store.path / f".results.zarr.{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.relpath(target, store.path), tmp_link)
    os.replace(tmp_link, link)
    for old in gens.iterdir():
        if old != target:
            shutil.rmtree(old, ignore_errors=True)


def open_results(store, *, grid: bool = False):
    """The sweep's xarray Dataset (opened lazily from `store`/results.zarr).

    The point records are the store's truth: where they hold more finished points than results.zarr
    (a driver killed between two rewrites, or before the first), the Dataset is built from them in
    memory instead, and nothing is written. With `grid=True`, the `point` dimension is unstacked into
    one dimension per varying configuration key (only for a full Cartesian grid of finished and
    unfinished points). A damaged record (`check_store`) is skipped with a `DamagedRecordWarning`: its
    point shows as not finished.
    """
    import xarray as xr

    st = Store(store)
    path = st.path / "results.zarr"
    if not path.exists() and not st.finished():
        raise FileNotFoundError(f"{os.fspath(path)!r} does not exist; run flowtools.sweep with "
                                f"store={os.fspath(store)!r} first.")
    records, _ = st.read()
    ds = None
    if path.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_zarr(path, consolidated=True)
    if ds is None or set(np.flatnonzero(ds["finished"].values).tolist()) != set(records):
        spec = sweep_spec(store, "store")
        ds, _ = _build(spec["configurations"], records, dataset_attrs(spec["task"], spec["configurations"]))
    if not grid:
        return ds
    keys = [k for k in ds.coords if k not in ("point", "visit") and ds[k].dims == ("point",)
            and len(np.unique(ds[k].values)) > 1]
    size = int(np.prod([len(np.unique(ds[k].values)) for k in keys]))
    if size != ds.sizes["point"]:
        raise ValueError(f"the points do not form a full grid over {keys} ({ds.sizes['point']} points, "
                         f"{size} grid cells); use grid=False and select with ds.where(...).")
    return ds.set_index(point=keys).unstack("point")


@dataclasses.dataclass
class SweepResult:
    """What `sweep` did: the store, the Dataset and merged SaddleGraph of all finished points, and counts.

    `n_run` points ran now and returned, `n_skipped` were already finished. `failed` lists (index, cause)
    for points of this run that did not return: a worker died on them more often than `retries` allows
    (their records have status "failed" and the cause in `error`), or no worker was alive for
    `worker_timeout` seconds (no record: they are not finished). `errors` lists (index, message) for the
    store's points whose task raised (status "error").
    `timings` splits `wall_time` into phases (seconds): "setup" (store checks, reading records),
    "cluster" (starting the local cluster or connecting), "workers" (worker set-up: importing JAX),
    "points" (from the first point handed out to the last one back), "write" (records, results.zarr
    and graph.json, all rewrites), "close" (stopping the cluster).
    """

    store: pathlib.Path
    dataset: object
    graph: object
    n_points: int
    n_run: int
    n_skipped: int
    failed: list
    wall_time: float
    timings: dict = dataclasses.field(default_factory=dict)
    errors: list = dataclasses.field(default_factory=list)

    def __repr__(self):
        return (f"SweepResult({self.n_points} points: {self.n_run} run, {self.n_skipped} skipped, "
                f"{len(self.failed)} failed, {len(self.errors)} errors, {self.wall_time:.1f} s; "
                f"store={os.fspath(self.store)!r})")

    def _repr_html_(self):  # notebooks
        from ..view import sweep_result_html

        return sweep_result_html(self)

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(repr(self))

def _build(configs, records, attrs):
    """(Dataset, merged SaddleGraph) of the finished `records`."""
    points = sorted(records)
    graphs = [_graph_from(records[i]["graph"], f"point {i}'s graph") if records[i].get("graph") else None
              for i in points]
    graph, ids = _merge_all(graphs, return_ids=True)
    a = dict(attrs, n_finished=len(records), written=now(), complete=len(records) == len(configs))
    return _dataset(configs, records, a, dict(zip(points, ids))), graph


def consolidate(st: Store, configs, records, attrs):
    """Rebuild the Dataset and merged graph from `records` and write results.zarr and graph.json."""
    ds, graph = _build(configs, records, attrs)
    _write_zarr(st, ds)
    graph.to_json(st.path / "graph.json")
    return ds, graph
