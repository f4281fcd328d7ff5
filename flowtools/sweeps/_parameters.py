"""Declared parameters: each built-in task's keys as a strict pydantic model, and the check of a sweep's
configurations against them before any point runs."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Literal

import pydantic

from .. import _deprecation
from ..activations import ACTIVATIONS
from ..dynamics.flow import SOLVERS
from ..problem import LOSSES
from ._grid import RESERVED, scalar
from ._tasks import critical_points, escape_times, flow_itinerary, gd_itinerary, resolve_task


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
    gaussian_method: Literal["auto", "series", "graded", "gauss_hermite"] = "auto"
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
    """`escape_times` (the task "escape"): the problem keys and the exit ball."""

    radius_fraction: float = pydantic.Field(0.5, gt=0)
    t1: float = pydantic.Field(1e12, gt=0)
    solver: Literal[tuple(SOLVERS)] = "tsit5"


# A task declares its parameters as a pydantic model in its `parameters` attribute (your own tasks may
# too); configurations of tasks without one are checked for scalar values and a seed only.
flow_itinerary.parameters = FlowItineraryParameters
gd_itinerary.parameters = GDItineraryParameters
critical_points.parameters = CriticalPointsParameters
escape_times.parameters = EscapeParameters

#: Keys renamed in 0.2.0, by task: the old key is read as the new one (in configurations, with a
#: `FutureWarning`, and silently in the configurations a store was written with, so that it resumes)
#: until flowtools 0.3.0.
RENAMED_KEYS: dict[str, dict[str, str]] = {"escape": {"t_max": "t1"}}


def upgrade_configuration(task_name: str, config: Mapping) -> dict:
    """`config` with each key that task `task_name` renamed under its new name (`RENAMED_KEYS`)."""
    out = dict(config)
    for old, new in RENAMED_KEYS.get(task_name, {}).items():
        if old in out:
            if new in out:
                raise ConfigError(f"task {task_name!r}: a configuration has both {old!r} and {new!r}; "
                                  f"{old!r} is the deprecated spelling of {new!r}, give only {new!r}.")
            out[new] = out.pop(old)
    return out


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
            if k in RESERVED:
                raise ValueError(f"configurations[{i}] uses the reserved name {k!r}; rename it.")
            s = scalar(v)
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
    labelled by what was asked (a renamed key, `RENAMED_KEYS`, under its new name).

    **Raises:** `ConfigError` (a `ValueError`) naming every offending key once, with the points it
    occurs in: unknown keys (with the nearest declared name), wrong types, values out of range or not
    among the allowed names; `TypeError`/`ValueError` for configurations that are not dicts of scalars
    with a seed.
    """
    configs = _check_configurations(configurations)
    fn, name = resolve_task(task)
    for old, new in RENAMED_KEYS.get(name, {}).items():
        if any(old in cfg for cfg in configs):
            _deprecation.warn_renamed(f"the configuration key {old!r} of task {name!r}", repr(new))
            configs = [upgrade_configuration(name, cfg) for cfg in configs]
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
