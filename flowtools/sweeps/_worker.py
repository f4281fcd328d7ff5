"""Worker set-up: the process that runs sweep points gets one XLA thread, float64 and the compilation
cache; a local cluster's workers start as forks of a preloaded server, bind to a CPU each, and are
replaced when Dask gives up on them."""

from __future__ import annotations

import os
import sys
import warnings

from .. import _checks

#: XLA flags giving a worker one compute thread (the Eigen pool and the intra-op pool).
XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _xla_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a jax without this query: assume it has started
        return True


def configure_worker() -> dict:
    """Set up a process that runs sweep points: one XLA thread, float64, the compilation cache.

    XLA reads its flags once, when its CPU backend starts; in a process where JAX has already computed
    something the thread count stays as it was (and results can differ from single-threaded workers in
    the last bits: summation order). Called on every Dask worker and by serial sweeps; safe to call
    twice. Returns what it set.
    """
    started = _xla_started()
    flags = os.environ.get("XLA_FLAGS", "")
    single = "xla_cpu_multi_thread_eigen=false" in flags or not started
    if not started and "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " " + XLA_SINGLE_THREAD).strip()
    # float64 is already on: a fresh worker imports this module, and with it flowtools/__init__.py,
    # which sets it. The variable carries it to processes this worker starts that import JAX alone.
    os.environ["JAX_ENABLE_X64"] = "1"
    import jax

    from .. import _cache

    # The persistent compilation cache: each worker (and each rerun) loads what another compiled.
    cache = (None if _cache.switched_off("FLOWTOOLS_CACHE")
             else _cache.enable_compilation_cache(_cache.compilation_cache_dir()))

    return dict(single_thread=single, x64=bool(jax.config.jax_enable_x64), cache=cache)


def pin_to_cpu(index: int) -> int | None:
    """Bind this process (all its threads, and the threads they start later) to one CPU, the
    `index`-th of those it may run on (modulo their number). Returns that CPU, or None where the
    platform cannot bind.

    Two local workers on two cores run their points ≈ 7 % faster when each keeps to its own core (the
    same 32 points: 33.2–33.6 s against 35.8–36.1 s): XLA's CPU runtime keeps a thread pool that
    busy-waits between computations, and a bound worker's pool, created after this call, stays on
    that worker's core."""
    index = _checks.positive_int("index", index, minimum=0)
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[index % len(cpus)]
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:  # a thread that has just exited
            pass
    return cpu


def worker_environment() -> dict:
    """Environment variables for spawned worker processes, set before they import jax."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        flags = (flags + " " + XLA_SINGLE_THREAD).strip()
    return {"XLA_FLAGS": flags, "JAX_ENABLE_X64": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "FLOWTOOLS_PROGRESS": "0"}


#: What the local cluster's fork server imports once; its workers start as forks of it.
_FORKSERVER_PRELOAD = ("distributed", "flowtools", "flowtools.sweeps")


def start_forkserver() -> bool:
    """Start the process from which the local cluster forks its workers, with `_FORKSERVER_PRELOAD`
    imported and `worker_environment()` set. Returns False where the platform has no fork server.

    A spawned worker imports JAX and flowtools afresh (≈ 3 s on 2 cores), and a worker that a point
    kills is restarted the same way while the points wait. A fork of this process starts in a fraction
    of that. Forking is safe because importing flowtools starts neither XLA (its backend, and its
    thread pools, start on the first computation: `test_importing_flowtools_does_not_start_xla`) nor
    any thread (OpenBLAS gets one thread here), so each worker still reads its own XLA flags. The server
    ends with this process. One that is already running (from an earlier sweep) is reused."""
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(_FORKSERVER_PRELOAD))
    # The server inherits this process's environment when it starts; set the workers' for that moment.
    env = dict(worker_environment(), PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    saved = {k: os.environ.get(k) for k in [*env, "MALLOC_TRIM_THRESHOLD_"]}
    try:
        os.environ.update(env)
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # see `_driver._run_dask`
        forkserver.ensure_running()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return True


class WorkerSetup:
    """A Dask worker plugin running `configure_worker` in every worker (present and future)."""

    name = "flowtools-worker-setup"

    def __init__(self, pin: bool = False):
        self.pin = pin

    def setup(self, worker=None):
        if self.pin and worker is not None and isinstance(worker.name, int):
            pin_to_cpu(worker.name)
        configure_worker()
        # Workers keep every core busy (pinned, each shares its own): the read-ahead of stored
        # executables (flowtools/_read_ahead.py) has no idle core to load on and only competes. The
        # width study's erf grid (8 seeds, 2 workers, warm store): 24.5 s with it, 23.5 s without.
        os.environ.setdefault("FLOWTOOLS_READ_AHEAD", "0")

    def teardown(self, worker=None):
        pass


class LocalWorkers:
    """Keeps a local cluster at its number of workers.

    Dask's nanny restarts a worker process that dies, but it gives up on one whose new process fails
    while starting (the nanny closes; seen under heavy load, when a worker died again while its nanny
    was still starting it). The cluster then stays a worker short, and with one worker a sweep has none
    left. `check`, called from the driver's loop, replaces each worker whose nanny has closed (or that
    the cluster has dropped) by a new one, with a warning naming the cause, at most `limit` times in
    all; beyond that, `worker_timeout` ends the sweep. Replacements get new names, congruent to the old
    ones modulo the number of workers, so that each still binds to a CPU of its own (`pin_to_cpu`)."""

    def __init__(self, cluster, n: int, limit: int):
        self.cluster, self.n, self.limit = cluster, n, limit
        self.replaced = 0
        self.starting: set = set()  # names requested and not yet among the cluster's workers
        self.replacing: set = set()  # names being replaced (until the cluster's loop has done it)
        self.gave_up = False

    def lost(self) -> list[tuple]:
        """(name, cause) of each worker the cluster should have and has not, nor is starting."""
        from distributed.core import Status

        spec, workers = list(self.cluster.worker_spec), dict(self.cluster.workers)
        out = []
        for name in spec:
            if name in self.replacing:
                continue
            nanny = workers.get(name)
            if nanny is None:
                if name not in self.starting:
                    out.append((name, "the cluster dropped it after it was lost"))
                continue
            self.starting.discard(name)
            if nanny.status in (Status.closing, Status.closed, Status.failed):
                out.append((name, f"its nanny gave up restarting it (nanny {nanny.status.name})"))
        return out

    def check(self) -> None:
        lost = self.lost()
        if not lost:
            return
        room = self.limit - self.replaced
        if room <= 0:
            if not self.gave_up:
                self.gave_up = True
                names = [name for name, _ in lost]
                warnings.warn(f"local worker(s) {names} lost and not replaced: the sweep has replaced "
                              f"{self.replaced} already (at most {self.limit}); it ends after worker_timeout "
                              "without workers", RuntimeWarning, stacklevel=2)
            return
        taken = set(self.cluster.worker_spec)
        pairs = []
        for name, cause in lost[:room]:
            new = name + self.n if isinstance(name, int) else f"{name}-r"
            while new in taken:
                new = new + self.n if isinstance(new, int) else f"{new}-r"
            taken.add(new)
            self.replaced += 1
            self.starting.add(new)
            self.replacing.add(name)
            pairs.append((name, new))
            warnings.warn(f"local worker {name!r} is gone and Dask will not start it again: {cause}. The "
                          f"sweep starts worker {new!r} instead ({self.replaced} of at most {self.limit} "
                          "replacements)", RuntimeWarning, stacklevel=2)
        self.cluster.loop.add_callback(self._replace, pairs)

    def _replace(self, pairs) -> None:  # on the cluster's event loop
        for old, new in pairs:
            self.cluster.worker_spec.pop(old, None)
            self.cluster.workers.pop(old, None)  # closed already: nothing to retire
            self.cluster.worker_spec[new] = self.cluster.new_spec
        self.cluster.scale(len(self.cluster.worker_spec))  # starts the workers named in the spec and missing
