"""The driver: `sweep` runs a task on every configuration, serially or on Dask workers, handing points
out group by group so that compiled kernels are shared, and writes each finished point's record;
`run_point` runs one."""

from __future__ import annotations

import collections
import contextlib
import os
import time
import traceback
import uuid
import warnings
from collections.abc import Iterable, Mapping

import numpy as np

from .. import _checks, io
from ._grid import RESERVED, scalar
from ._parameters import check_configurations, upgrade_configuration
from ._results import SweepResult, consolidate, dataset_attrs
from ._store import SCHEMA, DamagedRecordWarning, Store, now, sweep_spec
from ._tasks import canonical_task_name, resolve_task
from ._worker import LocalWorkers, WorkerSetup, configure_worker, start_forkserver, worker_environment

#: Outcomes that measure the machine, not the mathematics: they differ between runs of the same point.
TIMING_OUTCOMES = ("wall_time", "compile_time", "run_time")

#: The status of a point whose task raised (its record holds the exception).
ERROR = "error"
#: The status of a point that never returned: its worker died on it more often than the retries allow,
#: or it could not be run at all (its record holds the cause).
FAILED = "failed"


def run_point(task, config: Mapping) -> dict:
    """Run `task` on one configuration and return its record (JSON-able). Exceptions become
    status "error" with the traceback's last line, so one bad point does not stop a sweep."""
    import flowtools

    fn, _ = resolve_task(task)
    t0 = time.perf_counter()
    try:
        raw = dict(fn(dict(config)))
        error = ""
    except Exception as exc:  # noqa: BLE001 — recorded in the point's status
        raw = dict(status="error")
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    wall = time.perf_counter() - t0
    graph = raw.pop("graph", None)
    itin = raw.pop("itinerary", None)
    outcomes = {}
    for k, v in raw.items():
        s = scalar(v)
        if s is None:
            raise TypeError(f"task outcome {k!r} = {v!r} is not a scalar (int, float, str, bool); return "
                            "arrays as several scalars, or under 'itinerary'.")
        outcomes[k if k not in config and k not in RESERVED else f"{k}_outcome"] = s
    outcomes.setdefault("status", "ok")
    outcomes["wall_time"] = wall
    if graph is not None and not isinstance(graph, dict):
        from ..graph import node_link_data

        graph = node_link_data(graph)
    return io.to_jsonable(dict(config=dict(config), seed=int(config["seed"]), version=flowtools.__version__,
                               outcomes=outcomes, error=error, itinerary=itin, graph=graph))

def _progress(total, enable):
    from ..dynamics.progress import progress_bar

    # None: shown whenever stderr is a terminal; the bar stays on screen after the sweep
    return progress_bar(total, "sweep", enable, threshold=-1, unit="point", leave=True)


def sweep(task, configurations, store, *, workers: int | None = None, scheduler: str | None = None,
          client=None, resume: bool = False, retry_failed: bool = False, retries: int = 1,
          worker_timeout: float = 120.0, progress: bool | None = None, write_every: float = 10.0,
          group_by=None) -> SweepResult:
    """Run `task` on every configuration; keep each finished point in `store`.

    **Arguments:**

    - `task`: a name from `TASKS` ("flow_itinerary", "gd_itinerary", "critical_points", "escape"),
      "module:function", "path/to/file.py:function", or a callable `config -> dict`. The dict holds
      scalar outcomes (int, float, str, bool) and optionally "itinerary" (a list of visit dicts with
      node, kind, t_in, t_out, loss, morse_index) and "graph" (a `SaddleGraph`). A task with a
      `parameters` attribute (a pydantic model; the built-in tasks have one) has every configuration
      checked against it before any point runs (`check_configurations`).
    - `configurations`: a list of dicts of scalars, each with its integer `seed` (see `grid`).
    - `store`: a directory (created if needed).
    - `workers`: the number of worker processes of a local Dask cluster (default: the CPU count);
      0 runs the points serially in this process without Dask.
    - `scheduler`: the address of a running Dask scheduler ("tcp://host:8786"); `client`: an existing
      `distributed.Client`. Either replaces the local cluster.
    - `resume`: continue a store that already holds finished points of the same sweep (they are
      skipped). Without it, such a store is an error. Damaged records count as not finished.
    - `retry_failed`: resume, and run again the points whose task raised (status "error") or whose
      worker died (status "failed").
    - `retries`: how many times a point whose worker died is run again, on any live worker, before it
      is recorded as failed (the local cluster's `distributed.scheduler.allowed-failures`; a cluster of
      your own applies its scheduler's setting).
    - `worker_timeout`: seconds without any live worker after which the points still out are given up
      (listed in `failed`, left unfinished for a resume).
    - `progress`: a progress bar (default: when stderr is a terminal; FLOWTOOLS_PROGRESS=0 hides it).
    - `write_every`: the least number of seconds between rewrites of results.zarr while the sweep
      runs (records are written at once; the Dataset is rebuilt from them). A rewrite also waits 50
      times as long as the previous one took, so the driver spends at most ~2% of the time on it.
    - `group_by`: which points share compiled kernels, as configuration keys or a function
      `config -> hashable` (default: points that differ only in `seed`). Points go out group by group,
      so each group compiles in few workers and the others load it from the cache.

    **Returns:** a `SweepResult`.

    **Raises:** `ConfigError` for configurations the task's parameters reject; `ValueError` for a store
    of another sweep, or one holding finished points without `resume`.
    """
    t_start = time.perf_counter()
    timings = dict(setup=0.0, cluster=0.0, workers=0.0, points=0.0, write=0.0, close=0.0)
    configs = check_configurations(task, configurations)
    fn, task_name = resolve_task(task)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 0):
        raise ValueError(f"workers must be a non-negative int (0 = serial, no Dask), got {workers!r}.")
    retries = _checks.positive_int("retries", retries, minimum=0)
    worker_timeout = float(worker_timeout)
    if not worker_timeout > 0:
        raise ValueError(f"worker_timeout must be a positive number of seconds, got {worker_timeout!r}.")
    if group_by is not None and not callable(group_by):
        if isinstance(group_by, str) or not isinstance(group_by, Iterable) \
                or not all(isinstance(k, str) for k in group_by):
            raise TypeError(f"group_by must be a list of configuration keys or a function config -> key, got "
                            f"{group_by!r}.")
        group_by = tuple(group_by)
        unknown = sorted({k for k in group_by if not any(k in c for c in configs)})
        if unknown:
            raise ValueError(f"group_by names {unknown}, which no configuration has; use keys of the "
                             f"configurations, e.g. {sorted(configs[0])}.")
    write_every = float(write_every)
    if not write_every >= 0:
        raise ValueError(f"write_every must be a non-negative number of seconds, got {write_every!r}.")
    resume = resume or retry_failed
    st = Store(store)
    with st.lock():
        meta_path = st.path / "sweep.json"
        spec = dict(schema=SCHEMA, task=task_name, configurations=configs)
        done = st.finished()
        if meta_path.exists():
            old = sweep_spec(store, "store")
            old_configs = [upgrade_configuration(task_name, c) if isinstance(c, dict) else c
                           for c in old.get("configurations", [])]
            if (canonical_task_name(str(old.get("task"))), old_configs) != (task_name, configs):
                raise ValueError(f"store={os.fspath(st.path)!r} holds another sweep (task {old.get('task')!r}, "
                                 f"{len(old.get('configurations', []))} configurations); use a new store.")
        if done and not resume:
            raise ValueError(f"store={os.fspath(st.path)!r} already holds {len(done)} finished points; pass "
                             "resume=True (--resume) to continue it, or use a new store.")
        bad = [i for i in done if i >= len(configs)]
        if bad:
            raise ValueError(f"store={os.fspath(st.path)!r} has records for points {bad[:5]} beyond its "
                             f"{len(configs)} configurations; the store is not this sweep's.")
        io.write_json(meta_path, dict(spec, created=now()))
        st.points.mkdir(parents=True, exist_ok=True)
        for tmp in st.points.glob(".tmp-*"):  # left by a driver killed mid-write
            tmp.unlink(missing_ok=True)
        records, _ = st.read()
        for r in records.values():  # written before a key was renamed
            r["config"] = upgrade_configuration(task_name, r["config"])
        for i in [i for i, r in records.items() if r["config"] != configs[i]]:
            warnings.warn(f"{os.fspath(st.record_path(i))}: the record's configuration is not point {i}'s; "
                          "the point runs again.", DamagedRecordWarning, stacklevel=2)
            del records[i]
        if retry_failed:
            for i in [i for i, r in records.items() if r["outcomes"]["status"] in (ERROR, FAILED)]:
                del records[i]
        todo = [i for i in range(len(configs)) if i not in records]
        n_skipped = len(configs) - len(todo)
        attrs = dataset_attrs(task_name, configs)
        failed: list = []
        next_write = [time.perf_counter() + write_every]

        def finish(i, record):
            t = time.perf_counter()
            io.write_json(st.record_path(i), record)
            records[i] = record
            if record["outcomes"]["status"] == FAILED:
                failed.append((i, record["error"]))
            if write_every and t >= next_write[0]:
                consolidate(st, configs, records, attrs)
                now = time.perf_counter()
                next_write[0] = now + max(write_every, 50 * (now - t))
            timings["write"] += time.perf_counter() - t

        bar = _progress(len(todo), progress)
        timings["setup"] = time.perf_counter() - t_start
        try:
            if todo and (workers == 0 and scheduler is None and client is None):
                t = time.perf_counter()
                configure_worker()
                timings["workers"] = time.perf_counter() - t
                for i in todo:
                    try:
                        record = run_point(fn if callable(task) else task_name, configs[i])
                    except Exception as exc:  # noqa: BLE001 — e.g. a non-scalar outcome: recorded
                        record = _failed_record(configs[i], f"{type(exc).__name__}: {exc}")
                    finish(i, record)
                    bar.update()
            elif todo:
                _run_dask(fn if callable(task) else task_name, configs, todo, finish, failed, bar,
                          workers=workers, scheduler=scheduler, client=client, group_by=group_by,
                          timings=timings, retries=retries, worker_timeout=worker_timeout)
        finally:
            bar.close()
            t = time.perf_counter()
            ds, graph = consolidate(st, configs, records, attrs)
            timings["write"] += time.perf_counter() - t
    wall = time.perf_counter() - t_start
    if workers == 0 and scheduler is None and client is None:
        timings["points"] = wall - sum(timings.values())
    errors = [(i, r.get("error", "")) for i, r in sorted(records.items()) if r["outcomes"]["status"] == ERROR]
    return SweepResult(st.path, ds, graph, len(configs), len(todo) - len(failed), n_skipped, failed, wall,
                       timings, errors)


def _failed_record(config: Mapping, cause: str) -> dict:
    """The record of a point that did not return: status "failed", and why."""
    import flowtools

    return io.to_jsonable(dict(config=dict(config), seed=int(config["seed"]), version=flowtools.__version__,
                               outcomes=dict(status=FAILED), error=cause, itinerary=None, graph=None))

def _compile_groups(configs, todo, group_by) -> dict:
    """Points grouped by what their compiled programs depend on: `group_by` keys (default: every key
    but `seed`, since points that differ only in their seed share shapes and compiled kernels)."""
    groups: dict = {}
    for i in todo:
        cfg = configs[i]
        if callable(group_by):
            key = group_by(cfg)
        elif group_by is None:
            key = tuple(sorted((k, v) for k, v in cfg.items() if k != "seed"))
        else:
            key = tuple(cfg.get(k) for k in group_by)
        groups.setdefault(key, []).append(i)
    return {k: collections.deque(v) for k, v in groups.items()}


class _Dispatcher:
    """Chooses the next point so that each compiled program is built as few times as possible.

    When a worker frees up, the next point is the next of the group that worker ran last (its kernels
    are in memory); when that group is empty, a group no worker has started (compiled now, in parallel
    with the other workers' compiles), else the group with the most points left among those with a
    finished point (their kernels come from the persistent cache: only tracing is repeated), else the
    largest group. One point per worker thread is out at once (`depth`): the scheduler hands a queued
    point to whichever worker frees up first, so with two out per worker the second point of a group
    that is compiling went to the other worker, which compiled it again (6 of the width study's 21
    groups, about 410 s of worker time). The worker is a hint, never a placement: the scheduler runs the point
    on whichever worker is free, and places it again if that one dies; the worker that ran a point is
    the one whose slot it frees and whose group it sets (`done`).
    """

    def __init__(self, groups: dict, depth: int = 1):
        self.groups = groups
        self.group_of = {i: k for k, q in groups.items() for i in q}
        self.depth = depth
        self.started: set = set()
        self.compiled: set = set()  # groups with a finished point: their kernels are in the cache
        self.last: dict = {}       # worker address -> group it ran last
        self.load: dict = {}       # worker address -> points assigned and not finished

    def remaining(self) -> int:
        return sum(len(q) for q in self.groups.values())

    def next_for(self, worker):
        mine = self.last.get(worker)
        if mine is not None and self.groups.get(mine):
            key = mine
        else:
            live = [k for k, q in self.groups.items() if q]
            if not live:
                return None
            fresh = [k for k in live if k not in self.started]
            ready = [k for k in live if k in self.compiled] or live
            key = fresh[0] if fresh else max(ready, key=lambda k: len(self.groups[k]))
        self.started.add(key)
        self.last[worker] = key
        self.load[worker] = self.load.get(worker, 0) + 1
        return self.groups[key].popleft()

    def done(self, index, ran_on, hint=None):
        """Point `index`, sent out for worker `hint`, finished on worker `ran_on` (None where no worker
        reported: a failed point). The worker that ran it has a free slot (the hint's, where the hint ran
        no point) and holds the kernels of the point's group."""
        slot = ran_on if self.load.get(ran_on, 0) > 0 else hint
        self.load[slot] = max(self.load.get(slot, 1) - 1, 0)
        key = self.group_of.get(index)
        if key is not None and ran_on is not None:
            self.last[ran_on] = key
            self.compiled.add(key)

    def free_slots(self, workers: dict):
        """(worker, n) for workers (address -> threads) with room, least loaded first."""
        slots = [(w, self.depth * max(int(n), 1) - self.load.get(w, 0)) for w, n in workers.items()]
        return sorted([(w, n) for w, n in slots if n > 0], key=lambda x: -x[1])

def _run_on_worker(task, config) -> tuple[dict, str | None]:
    """`run_point` on a Dask worker: the record, and the address of the worker that ran it."""
    from distributed import get_worker

    record = run_point(task, config)
    try:
        address = get_worker().address
    except ValueError:  # not on a worker
        address = None
    return record, address


#: Seconds to fetch a finished point's record from its worker before taking the worker for dead.
_GATHER_TIMEOUT = 5.0


def _run_dask(task, configs, todo, finish, failed, bar, *, workers, scheduler, client, group_by=None,
              timings=None, retries=1, worker_timeout=120.0):
    import logging

    import dask
    from distributed import Client, LocalCluster, wait
    from distributed.diagnostics.plugin import WorkerPlugin

    plugin_cls = type("FlowtoolsWorkerSetup", (WorkerSetup, WorkerPlugin), {})
    timings = {} if timings is None else timings
    cluster = None
    own_client = client is None
    config = contextlib.ExitStack()
    t = time.perf_counter()
    if client is None:
        if scheduler is not None:
            client = Client(scheduler)
        else:
            n = workers if workers is not None else (os.cpu_count() or 1)
            # Points are ordered by _Dispatcher; stealing would move them to workers that lack their kernels.
            # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which also freezes glibc's mmap
            # threshold: every array above 128 kB is then mapped and unmapped afresh, and a point takes
            # 1.5–1.7× as long as in a plain process (docs/sweeps.md). None unsets it.
            # A worker holds only the point it runs (saturation 1.0; the others wait at the scheduler), so
            # a point that kills its worker takes no other point's retries with it; after `retries`
            # deaths it ends as KilledWorker. The nanny restarts a dead worker.
            config.enter_context(dask.config.set({
                "distributed.scheduler.work-stealing": False,
                "distributed.scheduler.worker-saturation": 1.0,
                "distributed.scheduler.allowed-failures": retries,
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}))
            if start_forkserver():  # workers, and restarts after a point killed one, start as forks
                config.enter_context(dask.config.set({
                    "distributed.worker.multiprocessing-method": "forkserver"}))
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   env=worker_environment(), dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
    keeper = LocalWorkers(cluster, n, n * (retries + 1)) if cluster is not None else None
    timings["cluster"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        # A local cluster with no more workers than CPUs gives each worker a CPU of its own: each worker
        # binds itself (by its name, which a restarted worker keeps), the scheduler places freely.
        pin = cluster is not None and hasattr(os, "sched_getaffinity") and n <= len(os.sched_getaffinity(0))
        client.register_plugin(plugin_cls(pin=pin), name=WorkerSetup.name)
        timings["workers"] = time.perf_counter() - t
        t_points = time.perf_counter()
        token = uuid.uuid4().hex[:8]
        dispatch = _Dispatcher(_compile_groups(configs, todo, group_by))
        futures: dict = {}

        def submit():
            if not dispatch.remaining():
                return
            live = client.nthreads() or {None: 1}  # no worker yet: the points wait at the scheduler
            for worker, room in dispatch.free_slots(live):
                for _ in range(room):
                    i = dispatch.next_for(worker)
                    if i is None:
                        return
                    fut = client.submit(_run_on_worker, task, configs[i], key=f"flowtools-point-{i}-{token}",
                                        pure=False)
                    futures[fut] = (i, worker)

        submit()
        no_worker_since = None
        while futures:
            try:
                done = wait(list(futures), timeout=1.0, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                done = ()
            for fut in done:
                i, worker = futures[fut]
                try:
                    record, ran_on = fut.result(timeout=_GATHER_TIMEOUT)
                except TimeoutError:
                    # Done, but its result was on a worker that died before handing it over: the scheduler
                    # runs the point again. Wait for it as for any other (worker_timeout bounds the wait).
                    continue
                except Exception as exc:  # noqa: BLE001 — KilledWorker and the like: recorded as failed
                    if type(exc).__name__ == "KilledWorker":
                        runs = getattr(exc, "allowed_failures", retries) + 1
                        last = getattr(getattr(exc, "last_worker", None), "address", "?")
                        cause = (f"KilledWorker: the worker running this point died each time it ran "
                                 f"({runs} run(s); the last on {last}): a crash inside the task (os._exit, "
                                 "a segfault) or the process killed from outside (out of memory)")
                    else:
                        cause = f"{type(exc).__name__}: {exc}"
                    record, ran_on = _failed_record(configs[i], cause), None
                del futures[fut]
                dispatch.done(i, ran_on, worker)
                submit()  # keep the workers busy while this record is written
                finish(i, record)
                fut.release()
                bar.update()
            if keeper is not None:
                keeper.check()
            if client.nthreads():
                no_worker_since = None
                if not done:
                    submit()  # a worker that joined
            elif no_worker_since is None:
                no_worker_since = time.perf_counter()
            elif time.perf_counter() - no_worker_since > worker_timeout:
                cause = f"no live worker for {worker_timeout:g} s; the point is not finished (resume runs it)"
                for fut, (i, _) in futures.items():
                    fut.cancel()
                    failed.append((i, cause))
                futures.clear()
                while (i := dispatch.next_for(None)) is not None:
                    failed.append((i, cause))
        timings["points"] = time.perf_counter() - t_points - timings.get("write", 0.0)
    finally:
        t = time.perf_counter()
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
        config.close()
        timings["close"] = time.perf_counter() - t
