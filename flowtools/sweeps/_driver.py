"""Sweeps: one task over many configurations, on Dask distributed, into a labelled, resumable store.

A sweep runs a task function on each configuration (a dict of scalars with its own `seed`) and keeps
every finished point. The store is a directory:

- `points/<index>.json`: one record per finished point (its configuration, seed, package version,
  scalar outcomes, itinerary and saddle graph), written atomically as the point finishes. The records
  are the ground truth: a point is finished exactly when its record exists.
- `results.zarr`: the xarray Dataset of all points (dimension `point`, the configuration as
  coordinates, scalar outcomes as variables, visits along a second dimension `visit`), rebuilt from the
  records while the sweep runs and at its end. It is written into a new directory and then swapped in
  by replacing a symbolic link, so a reader never sees a half-written store.
- `graph.json`: one `SaddleGraph` merged over all finished points (node-link JSON).
- `sweep.json`: the task and the list of configurations, so a rerun checks it continues the same sweep.

A rerun with `resume=True` skips finished points. Killing the driver, or a worker (`kill -9`), loses
at most the points in flight: records are whole or absent, and one point has one record. A lock file
keeps two drivers from writing to one store.

Workers are Dask worker processes (a `LocalCluster` by default, or any scheduler address). Each gets
one XLA thread (`XLA_FLAGS`; XLA ignores `OMP_NUM_THREADS`), float64, and JAX's persistent compilation
cache, set inside the worker because spawned processes do not inherit `jax.config`. With `workers=0`
the points run serially in this process and Dask is not imported.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import difflib
import functools
import importlib
import importlib.util
import itertools
import json
import math
import os
import pathlib
import re
import shutil
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NamedTuple

import numpy as np
import pydantic

from .. import _checks, io
from ..activations import ACTIVATIONS
from ..dynamics.flow import SOLVERS
from ..problem import LOSSES

__all__ = [
    "sweep", "grid", "SweepResult", "open_results", "load_record", "merged_graph", "merge_stores", "TASKS",
    "flow_itinerary", "gd_itinerary", "critical_points", "escape", "make_problem", "initial_theta",
    "configure_worker", "worker_environment", "pin_to_cpu", "TIMING_OUTCOMES", "SCHEMA",
    "check_configurations", "ConfigError", "check_store", "DamagedRecordWarning", "FAILED", "ERROR",
    "ProblemParameters", "FlowItineraryParameters", "GDItineraryParameters", "CriticalPointsParameters",
    "EscapeParameters", "read_store", "StoreContents",
]

SCHEMA = "flowtools.sweep/1"

#: Outcomes that measure the machine, not the mathematics: they differ between runs of the same point.
TIMING_OUTCOMES = ("wall_time", "compile_time", "run_time")

#: XLA flags giving a worker one compute thread (the Eigen pool and the intra-op pool).
XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

_RESERVED = ("point", "visit", "finished", "version", "error")

#: The status of a point whose task raised (its record holds the exception).
ERROR = "error"
#: The status of a point that never returned: its worker died on it more often than the retries allow,
#: or it could not be run at all (its record holds the cause).
FAILED = "failed"


# ------------------------------------------------------------------------------------ grids
def grid(**axes) -> list[dict]:
    """The Cartesian product of the axes as a list of configurations (the last axis varies fastest).

    A scalar (or string) value is the same for every configuration; a list, tuple or range is an axis.
    `grid(seed=range(4), width=[1, 2], activation="tanh")` gives 8 configurations.
    """
    if not axes:
        raise ValueError("grid needs at least one axis, e.g. grid(seed=range(8), width=[1, 2]).")
    names, values = [], []
    for name, v in axes.items():
        names.append(name)
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            values.append([v])
        else:
            v = list(v)
            if not v:
                raise ValueError(f"axis {name!r} is empty; give it at least one value.")
            values.append(v)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def _scalar(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v
    return None


def _check_configurations(configurations) -> list[dict]:
    if isinstance(configurations, Mapping) or not isinstance(configurations, Iterable):
        raise TypeError("configurations must be a list of dicts (see flowtools.sweeps.grid), "
                        f"got {type(configurations).__name__}.")
    out = []
    for i, cfg in enumerate(configurations):
        if not isinstance(cfg, Mapping):
            raise TypeError(f"configurations[{i}] must be a dict, got {type(cfg).__name__}.")
        clean = {}
        for k, v in cfg.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise ValueError(f"configurations[{i}] has the key {k!r}; keys must be Python identifiers.")
            if k in _RESERVED:
                raise ValueError(f"configurations[{i}] uses the reserved name {k!r}; rename it.")
            s = _scalar(v)
            if s is None:
                raise TypeError(f"configurations[{i}][{k!r}] = {v!r}: values must be int, float, str or "
                                "bool (labels of a sweep point).")
            if isinstance(s, float) and not math.isfinite(s) and k == "seed":
                raise ValueError(f"configurations[{i}]['seed'] must be a finite integer.")
            clean[k] = s
        if "seed" not in clean or isinstance(clean["seed"], bool) or not isinstance(clean["seed"], int) \
                or clean["seed"] < 0:
            raise ValueError(f"configurations[{i}] needs a non-negative integer 'seed' (every random choice "
                             "takes a seed); e.g. grid(seed=range(8), ...).")
        out.append(clean)
    if not out:
        raise ValueError("configurations is empty; give at least one configuration.")
    keys = [json.dumps(c, sort_keys=True) for c in out]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"configurations holds the same configuration twice ({dup}); each point must be "
                         "distinct (vary its seed).")
    return out


# ----------------------------------------------------------------------------- worker set-up
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
    off = os.environ.get("FLOWTOOLS_CACHE", "1").strip().lower() in ("0", "false", "no", "off")
    cache = None if off else _cache.enable_compilation_cache(_cache.compilation_cache_dir())

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


def _start_forkserver() -> bool:
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
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # see `_run_dask`
        forkserver.ensure_running()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return True


# ------------------------------------------------------------------------------ built-in tasks
def _teacher_student(cfg) -> tuple:
    import flowtools as ft

    d_in, k = int(cfg.get("d_in", 4)), int(cfg.get("teacher_width", 2))
    activation = cfg.get("teacher_activation", cfg.get("activation", "tanh"))
    kind = cfg.get("teacher", "random")
    if kind == "orthonormal":
        return ft.problems.orthonormal_teacher(d_in, k, activation)
    if kind != "random":
        raise ValueError(f"teacher={kind!r} is unknown; use 'random' (unit-norm neurons in random directions) "
                         "or 'orthonormal' (v_j = e_j).")
    return ft.problems.random_teacher(d_in, k, activation, seed=int(cfg.get("teacher_seed", 0)))


@functools.lru_cache(maxsize=32)
def _problem(key: tuple):
    import flowtools as ft

    cfg = dict(key)
    kind = cfg.get("problem", "teacher_student")
    if kind == "maleknia_sato":
        return ft.problems.minimal_model(width=int(cfg.get("width", 2)), activation=cfg.get("activation", "tanh"),
                                         loss=cfg.get("loss", "mse")), None
    if kind == "safran_shamir":
        problem = ft.problems.safran_shamir(int(cfg.get("teacher_width", 6)), int(cfg.get("width", 6)),
                                            activation=cfg.get("activation", "relu"),
                                            seed=int(cfg.get("data_seed", 0)))
        return problem, problem.gen_error
    if kind != "teacher_student":
        raise ValueError(f"problem={kind!r} is unknown; use 'teacher_student', 'safran_shamir' or "
                         "'maleknia_sato', or pass your own task function.")
    teacher, theta_t = _teacher_student(cfg)
    data_kind = cfg.get("data", "finite")
    if data_kind not in ("finite", "population"):
        raise ValueError(f"data={data_kind!r} is unknown; use 'finite' (n samples) or 'population'.")
    activation = cfg.get("activation", "tanh")
    problem = ft.problems.teacher_student(
        teacher.d_in, teacher.widths[1], int(cfg.get("width", 2)), teacher=cfg.get("teacher", "random"),
        activation=activation, teacher_activation=cfg.get("teacher_activation", activation), data=data_kind,
        n=int(cfg.get("n", 200)), noise=float(cfg.get("noise", 0.0)), teacher_seed=int(cfg.get("teacher_seed", 0)),
        data_seed=int(cfg.get("data_seed", 0)), loss=cfg.get("loss", "half_mse"), bias=bool(cfg.get("bias", False)),
        n_nodes=cfg.get("n_nodes"))
    if data_kind == "population":
        return problem, problem.gen_error
    model, data = problem.model, problem.data
    # The flow sees the data only (no population error at every saved state); R is evaluated at the end,
    # exactly (2-D Gaussian integrals, flowtools.gaussian) for these depth-2 nets.
    train = ft.Problem(model, ft.Dataset(data.x, data.y, name=data.name), problem.loss_convention)
    from ..gaussian import population_risk

    def gen_error(theta):
        return float(population_risk(model, np.asarray(theta), teacher, theta_t))

    return train, gen_error


_PROBLEM_KEYS = ("problem", "data", "d_in", "teacher", "teacher_width", "teacher_activation", "teacher_seed",
                 "activation", "n",
                 "noise", "data_seed", "width", "bias", "loss", "n_nodes")


def make_problem(config: Mapping):
    """The `Problem` a built-in task solves for `config`, and the population error θ ↦ R(θ) =
    E_x ‖f(x; θ) − T(x)‖² under x ~ N(0, I) (exact, `flowtools.gaussian`; None without a teacher).

    `problem="teacher_student"` (default): x ~ N(0, I_{d_in}) (d_in = 4), a soft-committee teacher of
    `teacher_width` (2) unit-norm neurons with `activation` and output weights 1 (`teacher_seed` 0; with
    `teacher="orthonormal"` the neurons are e_1 … e_k),
    `n` = 200 samples (`data_seed` 0, `noise` 0), a student MLP (d_in, `width`, 1) without biases,
    `loss` "half_mse". With `data="population"` the loss is the population loss over x ~ N(0, I)
    (`flowtools.GaussianInputs`; exact 2-D Gaussian integrals; `n_nodes` Gauss–Hermite nodes per axis for
    activations without a closed form) instead of `n` samples. `problem="safran_shamir"`:
    `flowtools.problems.safran_shamir(teacher_width, width)` (ReLU, population loss, second layer frozen,
    input permutations declared). `problem="maleknia_sato"`: the published 1-D data set and a
    (1, width, 1) net.
    """
    key = tuple(sorted((k, v) for k, v in config.items() if k in _PROBLEM_KEYS))
    return _problem(key)


def initial_theta(problem, config: Mapping) -> np.ndarray:
    """θ0 = `model.init(seed, init_scheme, scale=init_scale)` (defaults "normal", 0.1: near the origin,
    so runs start on the plateau of the origin saddle); its free coordinates when parameters are frozen."""
    theta = problem.model.init(int(config["seed"]), config.get("init_scheme", "normal"),
                               scale=float(config.get("init_scale", 0.1)))
    return problem.free_theta(np.asarray(theta))


def _signature_text(sig) -> str:
    return ",".join(str(int(s)) for s in sig)


def _itinerary_outcomes(problem, gen_error, traj, run: str) -> dict:
    import flowtools as ft

    itin = ft.itinerary(problem, traj)
    graph = ft.SaddleGraph()
    ft.add_to_graph(graph, itin, run)
    passages = itin.visits[:-1] if itin.terminal == "attractor" else itin.visits
    saddles = [v for v in passages if v.signature[0] > 0]
    dwell = [v.dwell for v in saddles]
    att = itin.attractor
    final = traj.final_theta
    out = dict(
        status=str(traj.status), message=traj.message, terminal=itin.terminal,
        final_time=traj.final_time, final_loss=traj.final_loss, final_grad_norm=traj.final_grad_norm,
        final_gen_error=gen_error(final) if gen_error is not None and np.all(np.isfinite(final)) else math.nan,
        n_visits=len(itin.visits), n_saddles=len(saddles),
        plateau=max(dwell) if dwell else 0.0, time_at_saddles=float(sum(dwell)),
        sequence=" > ".join(f"{v.kind}({_signature_text(v.signature)})" for v in itin.visits),
        attractor_kind=att.kind if att is not None else "",
        attractor_loss=att.loss if att is not None else math.nan,
        attractor_signature=_signature_text(att.signature) if att is not None else "",
        attractor_reduces_to=att.reduces_to if att is not None else "",
        solver_steps=int(traj.stats.get("steps", traj.stats.get("accepted_steps", 0)) or 0),
        compile_time=float(traj.stats.get("compile_time", 0.0) or 0.0),
        run_time=float(traj.stats.get("wall_time", 0.0) or 0.0),
    )
    visits = [dict(node=v.node, kind=v.kind, t_in=v.t_in, t_out=v.t_out, loss=v.loss,
                   morse_index=int(v.signature[0]), signature=list(v.signature),
                   theta=[float(x) for x in np.asarray(v.theta).ravel()]) for v in itin.visits]
    return dict(out, itinerary=visits, graph=graph)


def flow_itinerary(config: Mapping) -> dict:
    """Gradient flow from `initial_theta` to t1 (1e6) or ‖∇L‖ ≤ gtol (1e-9), then its itinerary.

    Settings read from `config`: the problem keys (`make_problem`), `seed`, `init_scale`, `init_scheme`,
    `t1`, `gtol`, `solver` ("bdf"), `rtol` (1e-8), `atol` (1e-10), `max_steps` (200000), `n_save` (200).
    """
    import flowtools as ft

    problem, population = make_problem(config)
    traj = ft.gradient_flow(problem, initial_theta(problem, config), float(config.get("t1", 1e6)),
                            gtol=float(config.get("gtol", 1e-9)), solver=config.get("solver", "bdf"),
                            rtol=float(config.get("rtol", 1e-8)), atol=float(config.get("atol", 1e-10)),
                            max_steps=int(config.get("max_steps", 200_000)), n_save=int(config.get("n_save", 200)))
    return _itinerary_outcomes(problem, population, traj, f"seed{config['seed']}")


def gd_itinerary(config: Mapping) -> dict:
    """Gradient descent with step `lr` (0.05) for `steps` (100000) steps or until ‖∇L‖ ≤ gtol (1e-9),
    then its itinerary (time t = kη)."""
    import flowtools as ft

    problem, population = make_problem(config)
    traj = ft.gradient_descent(problem, initial_theta(problem, config), float(config.get("lr", 0.05)),
                               int(config.get("steps", 100_000)), gtol=float(config.get("gtol", 1e-9)))
    return _itinerary_outcomes(problem, population, traj, f"seed{config['seed']}")


def critical_points(config: Mapping) -> dict:
    """Critical points from `n_guesses` (8) random guesses θ ~ N(0, guess_scale²) (1.0) drawn from
    `seed`; counts by kind, the lowest loss, and a graph whose nodes are the distinct points found."""
    import flowtools as ft

    problem, _ = make_problem(config)
    n = int(config.get("n_guesses", 8))
    rng = np.random.default_rng(int(config["seed"]))
    guesses = float(config.get("guess_scale", 1.0)) * rng.standard_normal((n, problem.n_params))
    t0 = time.perf_counter()
    cps = ft.find_critical_points(problem, guesses)
    found = [c for c in cps if c.success]
    graph = ft.SaddleGraph()
    for c in found:
        fp = ft.function_fingerprint(problem, c.theta)
        graph.add_node(fingerprint=fp, signature=c.signature, kind=c.kind, loss=c.loss, theta=c.theta,
                       reduces_to=c.reduces_to, grad_norm=c.grad_norm, eigenvalues=c.eigenvalues, visits=1,
                       d_out=problem.model.d_out, n_train=int(np.asarray(problem.x).shape[0]))
    kinds = [c.kind for c in found]
    return dict(
        status="converged" if found else "failed", n_guesses=n, n_found=len(found), n_distinct=len(graph),
        n_minima=sum(k in ("minimum", "degenerate_minimum") for k in kinds),
        n_saddles=sum(c.signature[0] > 0 for c in found),
        min_loss=min((c.loss for c in found), default=math.nan),
        max_index=max((int(c.signature[0]) for c in found), default=-1),
        run_time=time.perf_counter() - t0, graph=graph)


def escape(config: Mapping) -> dict:
    """Escape time from the origin saddle θ = 0: the flow from `initial_theta` (small `init_scale`)
    until the network output leaves the function-space ball of radius `radius_fraction` (0.5) · RMS(y)
    (`output_scale`, per sample)
    around f = 0 (`flowtools.escape.escape_flow`, stopping at the exit)."""
    from .. import escape as E
    from ..landscape.symmetry import output_scale

    problem, _ = make_problem(config)
    theta0 = initial_theta(problem, config)
    y_rms = output_scale(problem.y)
    run = E.escape_flow(problem, theta0, np.zeros(problem.n_params), float(config.get("radius_fraction", 0.5))
                        * y_rms, metric="function", t_max=float(config.get("t_max", 1e12)),
                        solver=config.get("solver", "tsit5"))
    traj, et = run.trajectory, run.escape
    return dict(status=str(traj.status), message=traj.message, escape_status=et.status,
                escape_time=float(et.time), final_time=traj.final_time,
                final_loss=traj.final_loss, final_grad_norm=traj.final_grad_norm,
                compile_time=float(traj.stats.get("compile_time", 0.0) or 0.0),
                run_time=float(traj.stats.get("wall_time", 0.0) or 0.0))


TASKS: dict[str, Callable] = {
    "flow_itinerary": flow_itinerary,
    "gd_itinerary": gd_itinerary,
    "critical_points": critical_points,
    "escape": escape,
}


# ------------------------------------------------------------------------ declared parameters
class ConfigError(ValueError):
    """A configuration that does not fit its task's declared parameters (raised before any point runs)."""


class ProblemParameters(pydantic.BaseModel):
    """The keys every built-in task reads: the problem (`make_problem`) and θ0 (`initial_theta`).

    Strict: a key the task does not read, a value of the wrong type (a string for a number, a bool for
    an integer) or out of range is an error, not a default silently used."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)

    seed: int = pydantic.Field(ge=0)
    problem: Literal["teacher_student", "safran_shamir", "maleknia_sato"] = "teacher_student"
    data: Literal["finite", "population"] = "finite"
    d_in: int = pydantic.Field(4, ge=1)
    teacher: Literal["random", "orthonormal"] = "random"
    teacher_width: int = pydantic.Field(2, ge=1)
    teacher_activation: Literal[tuple(ACTIVATIONS)] | None = None
    teacher_seed: int = pydantic.Field(0, ge=0)
    activation: Literal[tuple(ACTIVATIONS)] = "tanh"
    n: int = pydantic.Field(200, ge=1)
    noise: float = pydantic.Field(0.0, ge=0)
    data_seed: int = pydantic.Field(0, ge=0)
    width: int = pydantic.Field(2, ge=1)
    bias: bool = False
    loss: Literal[LOSSES] | None = None
    n_nodes: int | None = pydantic.Field(None, ge=1)
    init_scale: float = pydantic.Field(0.1, gt=0)
    init_scheme: Literal["normal", "he", "lecun", "glorot"] = "normal"


class FlowItineraryParameters(ProblemParameters):
    """`flow_itinerary`: the problem keys and the flow's settings."""

    t1: float = pydantic.Field(1e6, gt=0)
    gtol: float = pydantic.Field(1e-9, ge=0)
    solver: Literal[tuple(SOLVERS)] = "bdf"
    rtol: float = pydantic.Field(1e-8, gt=0)
    atol: float = pydantic.Field(1e-10, gt=0)
    max_steps: int = pydantic.Field(200_000, ge=1)
    n_save: int = pydantic.Field(200, ge=2)


class GDItineraryParameters(ProblemParameters):
    """`gd_itinerary`: the problem keys, the step size and the number of steps."""

    lr: float = pydantic.Field(0.05, gt=0)
    steps: int = pydantic.Field(100_000, ge=1)
    gtol: float = pydantic.Field(1e-9, ge=0)


class CriticalPointsParameters(ProblemParameters):
    """`critical_points`: the problem keys and the random guesses."""

    n_guesses: int = pydantic.Field(8, ge=1)
    guess_scale: float = pydantic.Field(1.0, gt=0)


class EscapeParameters(ProblemParameters):
    """`escape`: the problem keys and the exit ball."""

    radius_fraction: float = pydantic.Field(0.5, gt=0)
    t_max: float = pydantic.Field(1e12, gt=0)
    solver: Literal[tuple(SOLVERS)] = "tsit5"


# A task declares its parameters as a pydantic model in its `parameters` attribute (your own tasks may
# too); configurations of tasks without one are checked for scalar values and a seed only.
flow_itinerary.parameters = FlowItineraryParameters
gd_itinerary.parameters = GDItineraryParameters
critical_points.parameters = CriticalPointsParameters
escape.parameters = EscapeParameters


def _describe_error(err: dict, allowed) -> tuple[str, str]:
    """(key, message) for one pydantic error of one configuration."""
    key = str(err["loc"][0]) if err.get("loc") else "?"
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        near = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"the task reads {sorted(allowed)}"
        return key, f"unknown key {key!r} ({hint})"
    if err["type"] == "missing":
        return key, f"{key!r} is required"
    if err["type"] == "literal_error":
        choices = re.findall(r"'([^']*)'", err["ctx"]["expected"])
        near = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return key, f"{key} = {value!r} is not one of {err['ctx']['expected']}{hint}"
    msg = err["msg"][0].lower() + err["msg"][1:]
    return key, f"{key} = {value!r}: {msg}"


def check_configurations(task, configurations) -> list[dict]:
    """Check `configurations` (a list of dicts, see `grid`) against `task`'s declared parameters (its
    `parameters` attribute, a pydantic model: built-in tasks have one) and return them as dicts of plain
    scalars. A configuration keeps only the keys given: defaults are not filled in, so the store is
    labelled by what was asked.

    **Raises:** `ConfigError` (a `ValueError`) naming every offending key once, with the points it
    occurs in: unknown keys (with the nearest declared name), wrong types, values out of range or not
    among the allowed names; `TypeError`/`ValueError` for configurations that are not dicts of scalars
    with a seed.
    """
    configs = _check_configurations(configurations)
    fn, name = _resolve_task(task)
    model = getattr(fn, "parameters", None)
    if model is None:
        return configs
    if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
        raise TypeError(f"task {name!r} has parameters={model!r}; it must be a pydantic model class.")
    allowed = list(model.model_fields)
    problems: dict = {}
    for i, cfg in enumerate(configs):
        try:
            model.model_validate(cfg)
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                problems.setdefault(_describe_error(err, allowed), []).append(i)
    if problems:
        parts = []
        for (_, msg), points in problems.items():
            where = f"point {points[0]}" if len(points) == 1 else f"{len(points)} points, e.g. {points[0]}"
            parts.append(f"{msg} [{where}]")
        raise ConfigError(f"task {name!r} rejects the configuration: " + "; ".join(parts) + ". Fix the keys "
                          f"named ({model.__name__} declares the task's parameters); no point has run.")
    return configs


def _resolve_task(task) -> tuple[Callable, str]:
    if callable(task):
        name = f"{getattr(task, '__module__', '?')}:{getattr(task, '__qualname__', repr(task))}"
        return task, name
    if not isinstance(task, str):
        raise TypeError(f"task must be a callable or a name, got {type(task).__name__}.")
    if task in TASKS:
        return TASKS[task], task
    if ":" in task:
        where, _, attr = task.rpartition(":")
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(pathlib.Path(where).stem, where)
            if spec is None or not os.path.exists(where):
                raise FileNotFoundError(f"task file {where!r} does not exist.")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise ValueError(f"task={task!r}: {where} has no function {attr!r}.")
        return fn, task
    raise ValueError(f"task={task!r} is unknown; use one of {sorted(TASKS)}, 'module:function', "
                     "'path/file.py:function', or pass a callable.")


# ------------------------------------------------------------------------------ running a point
def run_point(task, config: Mapping) -> dict:
    """Run `task` on one configuration and return its record (JSON-able). Exceptions become
    status "error" with the traceback's last line, so one bad point does not stop a sweep."""
    import flowtools

    fn, _ = _resolve_task(task)
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
        s = _scalar(v)
        if s is None:
            raise TypeError(f"task outcome {k!r} = {v!r} is not a scalar (int, float, str, bool); return "
                            "arrays as several scalars, or under 'itinerary'.")
        outcomes[k if k not in config and k not in _RESERVED else f"{k}_outcome"] = s
    outcomes.setdefault("status", "ok")
    outcomes["wall_time"] = wall
    if graph is not None and not isinstance(graph, dict):
        from ..graph import node_link_data

        graph = node_link_data(graph)
    return io.to_jsonable(dict(config=dict(config), seed=int(config["seed"]), version=flowtools.__version__,
                               outcomes=outcomes, error=error, itinerary=itin, graph=graph))


# ------------------------------------------------------------------------------------ the store
class _Store:
    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.points = self.path / "points"

    def record_path(self, index: int) -> pathlib.Path:
        return self.points / f"{index:07d}.json"

    def finished(self) -> dict[int, pathlib.Path]:
        if not self.points.is_dir():
            return {}
        out = {}
        for p in self.points.glob("[0-9]*.json"):
            with contextlib.suppress(ValueError):
                out[int(p.stem)] = p
        return out

    def read(self, warn: bool = True) -> tuple[dict[int, dict], dict[int, tuple[pathlib.Path, str]]]:
        """(records, damaged): the readable, valid records by index, and (path, reason) for the others.
        Each damaged record is reported by a `DamagedRecordWarning` naming its file."""
        records, damaged = {}, {}
        for index, path in sorted(self.finished().items()):
            rec, reason = _read_record(path)
            if reason is None:
                records[index] = rec
            else:
                damaged[index] = (path, reason)
                if warn:
                    warnings.warn(f"{os.fspath(path)}: damaged point record ({reason}); the point counts as "
                                  "not finished (a resume runs it again; `flowtools check STORE "
                                  "--quarantine` moves the file aside).", DamagedRecordWarning, stacklevel=3)
        return records, damaged

    @contextlib.contextmanager
    def lock(self):
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fh = open(self.path / ".lock", "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise RuntimeError(f"another sweep is writing to store={os.fspath(self.path)!r}; wait for it "
                               "or use another store.") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()


class DamagedRecordWarning(UserWarning):
    """A point record that cannot be read or lacks a required field; the point counts as not finished."""


#: Fields every point record holds, and their JSON types.
_RECORD_FIELDS = dict(config=dict, seed=int, version=str, outcomes=dict)


def _record_problem(rec) -> str | None:
    """Why `rec` is not a valid point record (None if it is)."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not an object"
    for name, kind in _RECORD_FIELDS.items():
        if name not in rec:
            return f"no {name!r} field"
        if not isinstance(rec[name], kind) or isinstance(rec[name], bool):
            return f"{name!r} is a {type(rec[name]).__name__}, not a {kind.__name__}"
    if not isinstance(rec["outcomes"].get("status"), str):
        return "no 'status' in its outcomes"
    if rec["config"].get("seed") != rec["seed"]:
        return "its 'seed' differs from its configuration's"
    if rec.get("itinerary") is not None and not isinstance(rec["itinerary"], list):
        return "'itinerary' is not a list"
    graph = rec.get("graph")
    if graph is not None and not (isinstance(graph, dict) and isinstance(graph.get("nodes"), list)
                                  and isinstance(graph.get("links"), list)):
        return "'graph' is not node-link JSON"
    return None


def _read_record(path) -> tuple[dict | None, str | None]:
    """(record, None), or (None, why it is damaged)."""
    try:
        rec = io.read_json(path)
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable: {exc}"
    except (json.JSONDecodeError, io.FileFormatError) as exc:
        return None, f"not valid JSON: {exc}"
    reason = _record_problem(rec)
    return (None, reason) if reason else (rec, None)


def load_record(store, index: int) -> dict:
    """The record of one finished point: config, seed, version, outcomes, itinerary, graph.

    **Raises:** `FileNotFoundError` for a point without a record, `ValueError` naming the file for a
    damaged one."""
    path = _Store(store).record_path(int(index))
    if not path.exists():
        raise FileNotFoundError(f"point {index} of store={os.fspath(store)!r} has not finished.")
    rec, reason = _read_record(path)
    if reason is not None:
        raise ValueError(f"{os.fspath(path)} is a damaged point record ({reason}); rerun the point with "
                         "--resume, or move it aside with `flowtools check STORE --quarantine`.")
    return rec


def check_store(store, *, quarantine: bool = False) -> list[tuple[pathlib.Path, str]]:
    """The damaged point records of `store`: (path, reason) for each record that cannot be read or lacks
    a required field (config, seed, version, outcomes with a status). With `quarantine=True` each is
    moved into `store`/quarantine/ (the returned paths are then the new ones), so that the store reads
    cleanly and a resume runs those points again."""
    st = _Store(store)
    if not (st.path / "sweep.json").exists():
        _sweep_spec(store, "store")  # raises: not a store
    with st.lock() if quarantine else contextlib.nullcontext():
        _, damaged = st.read(warn=False)
        out = []
        for path, reason in damaged.values():
            if quarantine:
                folder = st.path / "quarantine"
                folder.mkdir(exist_ok=True)
                target = folder / path.name
                if target.exists():
                    target = folder / f"{path.stem}.{uuid.uuid4().hex[:8]}{path.suffix}"
                os.replace(path, target)
                path = target
            out.append((path, reason))
    return out


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
    records, _ = _Store(store).read()
    graphs = []
    for index, rec in records.items():
        if all(rec["config"].get(k) == v for k, v in where.items()) and rec.get("graph"):
            graphs.append(_graph_from(rec["graph"], f"point {index}'s graph"))
    return _merge_all(graphs)


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
    spec = _sweep_spec(store, "store")
    configs = spec["configurations"]
    records, _ = _Store(store).read()
    ds, graph = _build(configs, records, _attrs(spec["task"], configs))
    return StoreContents(configs, records, ds, graph)


def _attrs(task_name: str, configs) -> dict:
    """The Dataset attributes every build of a store's results starts from."""
    return dict(schema=SCHEMA, task=task_name, n_points=len(configs))


def _sweep_spec(store, name: str) -> dict:
    path = _Store(store).path / "sweep.json"
    if not path.exists():
        raise FileNotFoundError(f"{name}={os.fspath(store)!r} is not a sweep store (no sweep.json); give the "
                                "folder passed to flowtools.sweep as its store.")
    try:
        spec = io.read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, io.FileFormatError) as exc:
        raise ValueError(f"{os.fspath(path)} cannot be read ({exc}); it describes the sweep, so restore it "
                         "from the sweep's configuration.") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("configurations"), list) or "task" not in spec:
        raise ValueError(f"{os.fspath(path)} lacks the sweep's task or configurations; restore it from the "
                         "sweep's configuration.")
    return spec


def merge_stores(source, store) -> int:
    """Copy the finished points of the sweep store `source` into the sweep store `store`, whose
    configurations include theirs: e.g. part of a grid run elsewhere with a store of its own (the width
    study's `--activations tanh --out …`). Points are matched by configuration, not by index; a point
    that `store` has already finished is kept. Both sweeps must have the same task. `store`'s
    results.zarr and graph.json are rewritten. Returns the number of points copied.

    Raises ValueError, before copying anything, when a finished point of `source` has a configuration
    that is not one of `store`'s."""
    src_spec, dst_spec = _sweep_spec(source, "source"), _sweep_spec(store, "store")
    if src_spec.get("task") != dst_spec.get("task"):
        raise ValueError(f"source={os.fspath(source)!r} ran task {src_spec.get('task')!r} and "
                         f"store={os.fspath(store)!r} task {dst_spec.get('task')!r}; merge stores of one task.")
    configs = dst_spec["configurations"]
    index = {json.dumps(c, sort_keys=True): i for i, c in enumerate(configs)}
    src, dst = _Store(source), _Store(store)
    with dst.lock():
        incoming, unknown = {}, []
        for j, rec in src.read()[0].items():
            i = index.get(json.dumps(rec["config"], sort_keys=True))
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
        _consolidate(dst, configs, {**records, **new}, _attrs(dst_spec["task"], configs))
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


def _write_zarr(store: _Store, ds) -> None:
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

    st = _Store(store)
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
        spec = _sweep_spec(store, "store")
        ds, _ = _build(spec["configurations"], records, _attrs(spec["task"], spec["configurations"]))
    if not grid:
        return ds
    keys = [k for k in ds.coords if k not in ("point", "visit") and ds[k].dims == ("point",)
            and len(np.unique(ds[k].values)) > 1]
    size = int(np.prod([len(np.unique(ds[k].values)) for k in keys]))
    if size != ds.sizes["point"]:
        raise ValueError(f"the points do not form a full grid over {keys} ({ds.sizes['point']} points, "
                         f"{size} grid cells); use grid=False and select with ds.where(...).")
    return ds.set_index(point=keys).unstack("point")


# ------------------------------------------------------------------------------------- results
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
    fn, task_name = _resolve_task(task)
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
    st = _Store(store)
    with st.lock():
        meta_path = st.path / "sweep.json"
        spec = dict(schema=SCHEMA, task=task_name, configurations=configs)
        done = st.finished()
        if meta_path.exists():
            old = _sweep_spec(store, "store")
            if (old.get("task"), old.get("configurations")) != (task_name, configs):
                raise ValueError(f"store={os.fspath(st.path)!r} holds another sweep (task {old.get('task')!r}, "
                                 f"{len(old.get('configurations', []))} configurations); use a new store.")
        if done and not resume:
            raise ValueError(f"store={os.fspath(st.path)!r} already holds {len(done)} finished points; pass "
                             "resume=True (--resume) to continue it, or use a new store.")
        bad = [i for i in done if i >= len(configs)]
        if bad:
            raise ValueError(f"store={os.fspath(st.path)!r} has records for points {bad[:5]} beyond its "
                             f"{len(configs)} configurations; the store is not this sweep's.")
        io.write_json(meta_path, dict(spec, created=_now()))
        st.points.mkdir(parents=True, exist_ok=True)
        for tmp in st.points.glob(".tmp-*"):  # left by a driver killed mid-write
            tmp.unlink(missing_ok=True)
        records, _ = st.read()
        for i in [i for i, r in records.items() if r["config"] != configs[i]]:
            warnings.warn(f"{os.fspath(st.record_path(i))}: the record's configuration is not point {i}'s; "
                          "the point runs again.", DamagedRecordWarning, stacklevel=2)
            del records[i]
        if retry_failed:
            for i in [i for i, r in records.items() if r["outcomes"]["status"] in (ERROR, FAILED)]:
                del records[i]
        todo = [i for i in range(len(configs)) if i not in records]
        n_skipped = len(configs) - len(todo)
        attrs = _attrs(task_name, configs)
        failed: list = []
        next_write = [time.perf_counter() + write_every]

        def finish(i, record):
            t = time.perf_counter()
            io.write_json(st.record_path(i), record)
            records[i] = record
            if record["outcomes"]["status"] == FAILED:
                failed.append((i, record["error"]))
            if write_every and t >= next_write[0]:
                _consolidate(st, configs, records, attrs)
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
            ds, graph = _consolidate(st, configs, records, attrs)
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


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _build(configs, records, attrs):
    """(Dataset, merged SaddleGraph) of the finished `records`."""
    points = sorted(records)
    graphs = [_graph_from(records[i]["graph"], f"point {i}'s graph") if records[i].get("graph") else None
              for i in points]
    graph, ids = _merge_all(graphs, return_ids=True)
    a = dict(attrs, n_finished=len(records), written=_now(), complete=len(records) == len(configs))
    return _dataset(configs, records, a, dict(zip(points, ids))), graph


def _consolidate(st: _Store, configs, records, attrs):
    ds, graph = _build(configs, records, attrs)
    _write_zarr(st, ds)
    graph.to_json(st.path / "graph.json")
    return ds, graph


class _WorkerSetup:
    """A Dask worker plugin running `configure_worker` in every worker (present and future)."""

    name = "flowtools-worker-setup"

    def __init__(self, pin: bool = False):
        self.pin = pin

    def setup(self, worker=None):
        if self.pin and worker is not None and isinstance(worker.name, int):
            pin_to_cpu(worker.name)
        configure_worker()

    def teardown(self, worker=None):
        pass


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
    with the other workers' compiles), else the group with the most points left (its kernels come from
    the persistent cache: only tracing is repeated). At most `depth` points per worker thread are out
    at once, so the choice is made when a worker frees up. The worker is a hint, never a placement:
    the scheduler runs the point on whichever worker is free, and places it again if that one dies.
    """

    def __init__(self, groups: dict, depth: int = 2):
        self.groups = groups
        self.group_of = {i: k for k, q in groups.items() for i in q}
        self.depth = depth
        self.started: set = set()
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
            key = fresh[0] if fresh else max(live, key=lambda k: len(self.groups[k]))
        self.started.add(key)
        self.last[worker] = key
        self.load[worker] = self.load.get(worker, 0) + 1
        return self.groups[key].popleft()

    def done(self, worker):
        self.load[worker] = max(self.load.get(worker, 1) - 1, 0)

    def ran(self, index, worker):
        """Point `index` ran on `worker` (wherever it was meant to go): that worker now holds its kernels."""
        key = self.group_of.get(index)
        if key is not None:
            self.last[worker] = key

    def free_slots(self, workers: dict):
        """(worker, n) for workers (address -> threads) with room, least loaded first."""
        slots = [(w, self.depth * max(int(n), 1) - self.load.get(w, 0)) for w, n in workers.items()]
        return sorted([(w, n) for w, n in slots if n > 0], key=lambda x: -x[1])


class _LocalWorkers:
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

    plugin_cls = type("FlowtoolsWorkerSetup", (_WorkerSetup, WorkerPlugin), {})
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
            if _start_forkserver():  # workers, and restarts after a point killed one, start as forks
                config.enter_context(dask.config.set({
                    "distributed.worker.multiprocessing-method": "forkserver"}))
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   env=worker_environment(), dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
    keeper = _LocalWorkers(cluster, n, n * (retries + 1)) if cluster is not None else None
    timings["cluster"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        # A local cluster with no more workers than CPUs gives each worker a CPU of its own: each worker
        # binds itself (by its name, which a restarted worker keeps), the scheduler places freely.
        pin = cluster is not None and hasattr(os, "sched_getaffinity") and n <= len(os.sched_getaffinity(0))
        client.register_plugin(plugin_cls(pin=pin), name=_WorkerSetup.name)
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
                dispatch.done(worker)
                if ran_on is not None:
                    dispatch.ran(i, ran_on)
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
