"""The built-in tasks: each builds a problem from a configuration (`make_problem`), draws θ0
(`initial_theta`) and returns the point's outcomes; `TASKS` and `resolve_task` find a task by name.

`escape_times` is the task "escape" (also reachable as `flowtools.sweeps.escape`); it measures escape
times with `flowtools.escape.escape_flow`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
import pathlib
import time
from collections.abc import Callable, Mapping

import numpy as np


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
        n_nodes=cfg.get("n_nodes"), gaussian_method=cfg.get("gaussian_method", "auto"))
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
                 "noise", "data_seed", "width", "bias", "loss", "n_nodes", "gaussian_method")


def make_problem(config: Mapping):
    """The `Problem` a built-in task solves for `config`, and the population error θ ↦ R(θ) =
    E_x ‖f(x; θ) − T(x)‖² under x ~ N(0, I) (exact, `flowtools.gaussian`; None without a teacher).

    `problem="teacher_student"` (default): x ~ N(0, I_{d_in}) (d_in = 4), a soft-committee teacher of
    `teacher_width` (2) unit-norm neurons with `activation` and output weights 1 (`teacher_seed` 0; with
    `teacher="orthonormal"` the neurons are e_1 … e_k),
    `n` = 200 samples (`data_seed` 0, `noise` 0), a student MLP (d_in, `width`, 1) without biases,
    `loss` "half_mse". With `data="population"` the loss is the population loss over x ~ N(0, I)
    (`flowtools.GaussianInputs`; exact 2-D Gaussian integrals; `n_nodes` Gauss–Hermite nodes per axis for
    activations without a closed form; `gaussian_method`, e.g. "series", its `method`) instead of `n` samples. `problem="safran_shamir"`:
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
                       d_out=problem.model.d_out, n_train=int(np.asarray(problem.x).shape[0]),
                       network=ft.landscape.symmetry.network_widths(problem))
    kinds = [c.kind for c in found]
    return dict(
        status="converged" if found else "failed", n_guesses=n, n_found=len(found), n_distinct=len(graph),
        n_minima=sum(k in ("minimum", "degenerate_minimum") for k in kinds),
        n_saddles=sum(c.signature[0] > 0 for c in found),
        min_loss=min((c.loss for c in found), default=math.nan),
        max_index=max((int(c.signature[0]) for c in found), default=-1),
        run_time=time.perf_counter() - t0, graph=graph)


def escape_times(config: Mapping) -> dict:
    """Escape time from the origin saddle θ = 0: the flow from `initial_theta` (small `init_scale`)
    until the network output leaves the function-space ball of radius `radius_fraction` (0.5) · RMS(y)
    (`output_scale`, per sample)
    around f = 0 (`flowtools.escape.escape_flow`, stopping at the exit).

    The task "escape"; `flowtools.sweeps.escape` is this function under its former name."""
    from .. import escape as E
    from ..landscape.symmetry import output_scale

    problem, _ = make_problem(config)
    theta0 = initial_theta(problem, config)
    y_rms = output_scale(problem.y)
    run = E.escape_flow(problem, theta0, np.zeros(problem.n_params), float(config.get("radius_fraction", 0.5))
                        * y_rms, metric="function", t1=float(config.get("t1", config.get("t_max", 1e12))),
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
    "escape": escape_times,
}


def canonical_task_name(name: str) -> str:
    """The name a store records for `name`: a built-in task by its `TASKS` name, also when spelt as stores
    written before the package split spell it ("flowtools.sweeps:flow_itinerary")."""
    where, _, attr = name.rpartition(":")
    return attr if where in ("flowtools.sweeps", "flowtools.sweeps._tasks") and attr in TASKS else name


def resolve_task(task) -> tuple[Callable, str]:
    """(function, name) of `task`: a callable, a name in `TASKS`, "module:function" or "file.py:function"."""
    if callable(task):
        for name, fn in TASKS.items():  # a built-in task is recorded by its name, wherever it is defined
            if task is fn:
                return task, name
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
