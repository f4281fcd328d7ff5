"""Trajectory: the saved states of one run, and how and why the run ended."""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import io
from .._stored_jit import stored_jit
from .results import STATUS, Status, message, result_name
from .sharpness import SharpnessSeries

__all__ = ["Trajectory", "Status", "build_trajectory"]


@dataclasses.dataclass
class Trajectory:
    """States saved along a gradient-flow or gradient-descent run.

    **Fields:**

    - `t`: times, shape (m,). For GD, t = kη (`step` holds k).
    - `theta`: parameters, shape (m, n_params); the last row is the final state.
    - `loss`, `grad_norm`: L and ‖∇L‖ at each saved state.
    - `gen_error`: R(θ) at each saved state, or None without a teacher.
    - `status`, `message`: how the run ended, in words a user can act on.
    - `stats`: counters (steps accepted / rejected, gradient evaluations, wall and compile time…).
    - `method`: "gradient_flow", "gradient_descent" or "sgd".
    - `meta`: the settings of the run (loss convention, lr, solver, tolerances, seed…).
    - `step`: GD step numbers (None for flows).
    - `test_loss`, `test_accuracy`: loss and classification accuracy on the problem's held-out
      `test_data` at each saved state, or None (no test set; accuracy only for classification).
    - `solver_state`: for an unfinished flow whose solver can continue exactly ("bdf", "rkc"), the
      solver's state at the last saved point (arrays by name), which `gradient_flow(resume=…)`
      restores; else None.
    - `sharpness`: λ_max(H) sampled along a GD/SGD run (`gradient_descent(sharpness_every=k)`), a
      `SharpnessSeries` with its own steps and times, or None (not tracked).
    """

    t: np.ndarray
    theta: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    gen_error: np.ndarray | None
    status: Status
    message: str
    stats: dict
    method: str
    meta: dict = dataclasses.field(default_factory=dict)
    step: np.ndarray | None = None
    test_loss: np.ndarray | None = None
    test_accuracy: np.ndarray | None = None
    solver_state: dict | None = None
    sharpness: SharpnessSeries | None = None

    # ------------------------------------------------------------- access
    @property
    def final_theta(self) -> np.ndarray:
        return self.theta[-1]

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def final_grad_norm(self) -> float:
        return float(self.grad_norm[-1])

    @property
    def final_time(self) -> float:
        return float(self.t[-1])

    @property
    def converged(self) -> bool:
        return self.status == Status.CONVERGED

    def __len__(self):
        return len(self.t)

    def __repr__(self):
        return (f"Trajectory({self.method}, status={self.status.value!r}, t_end={self.final_time:.6g}, "
                f"L={self.final_loss:.6g}, |grad|={self.final_grad_norm:.3g}, saved={len(self)})")

    def _repr_html_(self):  # notebooks
        from ..view import trajectory_html

        return trajectory_html(self)

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(repr(self))

    def summary(self) -> str:
        """One line: method, status, final time, loss and gradient norm, and the message."""
        return f"{self.method:<17s} {self.status.value:<11s} t={self.final_time:<11.5g} " \
               f"L={self.final_loss:.10g}  |grad L|={self.final_grad_norm:.3g}  ({self.message})"

    # ----------------------------------------------------------- joining
    def join(self, other: "Trajectory") -> "Trajectory":
        """This run followed by `other`, which continued from this run's last state (e.g. with
        `resume=`): one trajectory with the saves of both (the shared state once), `other`'s status,
        message and settings, and the counters and times of both added up."""
        if other.method != self.method:
            raise ValueError(f"cannot join a {self.method} run and a {other.method} run.")
        if not (np.isclose(other.t[0], self.t[-1], rtol=1e-12, atol=0)
                and np.array_equal(other.theta[0], self.theta[-1])):
            raise ValueError(f"the second run must start where the first ends (t={self.final_time:g} and "
                             f"its final θ); it starts at t={float(other.t[0]):g}.")

        def cat(a, b):
            return None if a is None or b is None else np.concatenate([a, b[1:]])

        stats = dict(other.stats)
        # Counts add up; the event step and the gradient floor (of the final state) are the second run's.
        for key, value in self.stats.items():
            if key in stats and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and isinstance(stats[key], (int, float)) \
                    and key not in ("event_step", "gradient_floor", "hessian_norm"):
                stats[key] = stats[key] + value
        meta = dict(other.meta, segments=int(self.meta.get("segments", 1)) + int(other.meta.get("segments", 1)))
        return Trajectory(t=cat(self.t, other.t), theta=cat(self.theta, other.theta),
                          loss=cat(self.loss, other.loss), grad_norm=cat(self.grad_norm, other.grad_norm),
                          gen_error=cat(self.gen_error, other.gen_error), status=other.status,
                          message=other.message, stats=stats, method=other.method, meta=meta,
                          step=cat(self.step, other.step), test_loss=cat(self.test_loss, other.test_loss),
                          test_accuracy=cat(self.test_accuracy, other.test_accuracy),
                          solver_state=other.solver_state,
                          sharpness=(self.sharpness.join(other.sharpness)
                                     if self.sharpness is not None and other.sharpness is not None
                                     else other.sharpness))

    # ------------------------------------------------------------ saving
    def save(self, path) -> None:
        """Write the arrays to `path` (.npz) and the status, stats and settings to `path`.json.

        Both writes are atomic.
        """
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = dict(t=self.t, theta=self.theta, loss=self.loss, grad_norm=self.grad_norm)
        if self.gen_error is not None:
            arrays["gen_error"] = self.gen_error
        if self.step is not None:
            arrays["step"] = self.step
        for name in ("test_loss", "test_accuracy"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        for name, value in (self.solver_state or {}).items():
            arrays[_SOLVER_STATE + name] = value
        for name, value in (self.sharpness.arrays() if self.sharpness is not None else {}).items():
            arrays[_SHARPNESS + name] = value
        io.write_npz(path, **arrays)
        meta = dict(status=self.status.value, message=self.message, stats=self.stats,
                    method=self.method, meta=self.meta, format="flowtools.Trajectory/1")
        io.write_json(path[:-4] + ".json", meta)

    @classmethod
    def load(cls, path) -> "Trajectory":
        """Read a trajectory written by `save`.

        **Raises:** `FileNotFoundError` when a file is missing; `flowtools.io.FileFormatError` (a
        ValueError naming the path and the field) when a file is truncated or garbage, a field is
        missing, or the arrays' shapes disagree (every per-state array must have one entry per time).
        """
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = io.read_npz(path, required=("t", "theta", "loss", "grad_norm"))
        json_path = path[:-4] + ".json"
        meta = io.read_json(json_path, required=("status", "message", "stats", "method", "meta"))
        _check_saved(path, json_path, arrays, meta)
        return cls(
            t=arrays["t"], theta=arrays["theta"], loss=arrays["loss"], grad_norm=arrays["grad_norm"],
            gen_error=arrays.get("gen_error"), status=Status(meta["status"]), message=meta["message"],
            stats=meta["stats"], method=meta["method"], meta=meta["meta"], step=arrays.get("step"),
            test_loss=arrays.get("test_loss"), test_accuracy=arrays.get("test_accuracy"),
            solver_state={k[len(_SOLVER_STATE):]: v for k, v in arrays.items()
                          if k.startswith(_SOLVER_STATE)} or None,
            sharpness=(SharpnessSeries.from_arrays({k[len(_SHARPNESS):]: v for k, v in arrays.items()
                                                    if k.startswith(_SHARPNESS)}, meta["meta"].get("lr"))
                       if _SHARPNESS + "step" in arrays else None),
        )


_METHODS = ("gradient_flow", "gradient_descent", "sgd")


def _check_saved(path, json_path, arrays, meta) -> None:
    """Check a saved trajectory's arrays and record before building it; errors name file and field."""
    bad = lambda msg: io.FileFormatError(f"{msg}; the file is damaged or was not written by "  # noqa: E731
                                         "Trajectory.save.")
    t = arrays["t"]
    if t.ndim != 1 or t.size == 0 or not np.issubdtype(t.dtype, np.number):
        raise bad(f"{path}: field 't' must be a non-empty 1-D array of times, got shape {t.shape}")
    m = t.shape[0]
    theta = arrays["theta"]
    if theta.ndim != 2 or theta.shape[0] != m or not np.issubdtype(theta.dtype, np.number):
        raise bad(f"{path}: field 'theta' must have shape ({m}, n_params), one row per time in 't' "
                  f"({m} times), got {theta.shape}")
    for name in ("loss", "grad_norm", "gen_error", "step", "test_loss", "test_accuracy"):
        a = arrays.get(name)
        if a is not None and (a.shape != (m,) or not np.issubdtype(a.dtype, np.number)):
            raise bad(f"{path}: field {name!r} must have shape ({m},), one entry per time in 't', "
                      f"got {a.shape}")
    if meta["status"] not in {s.value for s in Status}:
        raise bad(f"{json_path}: field 'status' is {meta['status']!r}, not one of "
                  f"{[s.value for s in Status]}")
    if meta["method"] not in _METHODS:
        raise bad(f"{json_path}: field 'method' is {meta['method']!r}, not one of {list(_METHODS)}")
    for name, kind in (("message", str), ("stats", dict), ("meta", dict)):
        if not isinstance(meta[name], kind):
            raise bad(f"{json_path}: field {name!r} must be a {kind.__name__}, "
                      f"got {type(meta[name]).__name__}")


_SOLVER_STATE = "solver_state."  # prefix of the solver-state arrays in a saved .npz
_SHARPNESS = "sharpness."  # prefix of the sharpness series in a saved .npz


def first_non_finite(theta, loss, grad_norm) -> str | None:
    """Which of θ, L, ∇L is first non-finite at the last of these states ("theta", "L", "grad L"),
    or None when all are finite."""
    for name, value in (("theta", theta[-1]), ("L", loss[-1]), ("grad L", grad_norm[-1])):
        if not np.all(np.isfinite(value)):
            return name
    return None


def solution_states(ts, ys, *more):
    """A solve's saved (times, states, …) without its unused save slots (time inf) and repeated times
    (a save time equal to the final time duplicates the final save)."""
    ts = np.asarray(ts)
    keep = np.isfinite(ts)
    arrays = [np.asarray(a)[keep] for a in (ts, ys, *more)]
    _, first = np.unique(arrays[0], return_index=True)
    first = np.sort(first)
    return tuple(a[first] for a in arrays)


# Statuses that a non-finite final state overrides: a run that ends on NaN or Inf says so.
_ENDED_EARLY = (Status.CONVERGED, Status.DIVERGED, Status.MAX_STEPS, Status.FAILED)


def build_trajectory(problem, t, theta, result, *, method: str, kind: str, stats: dict, meta: dict,
                     step=None, values=None, check_finite: bool = True, held_out: bool = True,
                     **fields) -> Trajectory:
    """The `Trajectory` of a run from its saved states and its result: the one place where a
    `RESULTS` item becomes a `Status` and a message (`results.MESSAGES`).

    **Arguments:**

    - `t`, `theta`: the saved times and states (the last row is the final state); `step`: GD step
      numbers (None for flows).
    - `result`: a concrete `RESULTS` item, or a member name ("time_limit", "running", …).
    - `method`: the `Trajectory.method`; `kind`: the message variant ("flow", "map", "map_start",
      "escape").
    - `stats`, `meta`: the counters and settings to store.
    - `values`: (L, ‖∇L‖, R or None) at the states when already computed; else `evaluate_states`.
    - `check_finite`: a run that ends converged, diverged, at max_steps or failed on a non-finite θ,
      L or ∇L gets status "non_finite" (the solvers test ∇L only after accepted steps).
    - `held_out`: evaluate the problem's test set at the states (`held_out_metrics`).
    - `fields`: the message's values (t1, gtol, max_norm, steps, …); `at` ("t=…" or "step k"),
      `loss`, `grad_norm` and `bad` (the first non-finite quantity) are filled in here.
    """
    t, theta = np.asarray(t), np.asarray(theta)
    loss, gnorm, gen = evaluate_states(problem, theta) if values is None else values
    name = result if isinstance(result, str) else result_name(result)
    bad = first_non_finite(theta, loss, gnorm)
    if check_finite and bad is not None and STATUS[name] in _ENDED_EARLY:
        name = "non_finite"
    at = f"t={float(t[-1]):.6g}" if step is None else f"step {int(step[-1])}"
    words = message(name, kind, **dict(dict(at=at, loss=float(loss[-1]), grad_norm=float(gnorm[-1]),
                                            bad=bad or "grad L"), **fields))
    extra = {}
    if held_out:
        from ..problem import held_out_metrics

        extra = held_out_metrics(problem, theta)
    return Trajectory(t=t, theta=theta, loss=loss, grad_norm=gnorm, gen_error=gen, status=STATUS[name],
                      message=words, stats=stats, method=method, meta=meta,
                      step=None if step is None else np.asarray(step), **extra)


def evaluate_states(problem, theta: np.ndarray, chunk: int | None = None):
    """L, ‖∇L‖ and R (or None) at each row of `theta`.

    The rows go through one jitted, vmapped kernel in fixed-size chunks (`chunk` rows, default
    `flowtools.problem.state_chunk`): the same compiled kernel for any number of states, and memory
    O(chunk · samples · parameters) rather than O(states · samples · parameters)."""
    from ..problem import map_states, state_vmap_width

    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape[0] == 0:
        return np.zeros(0), np.zeros(0), (np.zeros(0) if problem.has_population else None)
    width = state_vmap_width(problem)
    loss, gnorm, gen = map_states(lambda p, th: _evaluate(p, th, width), problem, theta, chunk)
    return loss, gnorm, gen


@stored_jit
def _evaluate(problem, theta, width):
    def one(th):
        l, g = jax.value_and_grad(problem.loss_fn)(th)
        r = problem.gen_error_fn(th) if problem.has_population else None
        return l, jnp.linalg.norm(g), r

    return jax.lax.map(one, theta, batch_size=min(width, theta.shape[0]))
