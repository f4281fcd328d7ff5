"""How a run ended: one result code inside jit (`RESULTS`), mapped once to the public `Status`.

The jitted solvers (flowtools' own "bdf", "rkc", "ros34pw2", diffrax's through `from_diffrax`, the GD
map's replay and `escape_flow`) all report a `RESULTS` item, an `equinox.Enumeration` as diffrax's own
`RESULTS` is. Outside jit, `status_of` maps it to `Status` and `message` words it from the one table
`MESSAGES`, so that the same code means the same thing in every module.
"""

from __future__ import annotations

import enum

import diffrax
import equinox as eqx
import numpy as np

__all__ = ["Status", "RESULTS", "STATUS", "MESSAGES", "status_of", "result_name", "message", "from_diffrax",
           "event_result"]


class Status(str, enum.Enum):
    """How a run ended. Every run ends with exactly one of these."""

    CONVERGED = "converged"  # ‖∇L‖ ≤ gtol
    T1_REACHED = "t1_reached"  # reached the final time t1 (GD: ran all requested steps)
    MAX_STEPS = "max_steps"  # the solver's step budget ran out before t1
    DIVERGED = "diverged"  # ‖θ‖ exceeded max_norm
    NON_FINITE = "non_finite"  # θ, L or ∇L became NaN or Inf
    FAILED = "failed"  # the solver reported another failure (see the message)
    TIME_LIMIT = "time_limit"  # the wall-time budget ran out; continue with resume=
    RUNNING = "running"  # a checkpoint written while the run was still going; continue with resume=

    def __str__(self):
        return self.value


class RESULTS(eqx.Enumeration):
    successful = "reached the final time t1 (GD: ran all requested steps)"
    converged = "‖∇L‖ ≤ gtol"
    diverged = "‖θ‖ exceeded max_norm"
    non_finite = "θ, L or ∇L became NaN or Inf"
    max_steps_reached = "the step budget ran out before t1"
    failed = "the solver failed (a diffrax error, or the step size fell below rounding level)"
    escaped = "the flow left the ball (escape_flow's event)"
    time_limit = "the wall-time budget ran out between segments"
    running = "a checkpoint written while the run was still going"


#: every `RESULTS` member's `Status` (the one mapping; `status_of` uses it)
STATUS = {
    "successful": Status.T1_REACHED,
    "converged": Status.CONVERGED,
    "diverged": Status.DIVERGED,
    "non_finite": Status.NON_FINITE,
    "max_steps_reached": Status.MAX_STEPS,
    "failed": Status.FAILED,
    "escaped": Status.T1_REACHED,  # escape_flow's trajectory ends on the sphere by design
    "time_limit": Status.TIME_LIMIT,
    "running": Status.RUNNING,
}

_RESUME = "continue with resume=this trajectory"

#: the messages, by (result name, kind of run): "flow" (gradient_flow), "map" (GD/SGD), "escape"
#: (escape_flow); `at` is "t=…" for flows and "step k" for the map.
MESSAGES = {
    ("successful", "flow"): "reached t1={t1:g}; |grad L| = {grad_norm:.3g}",
    ("successful", "map"): "ran all {steps} steps; |grad L| = {grad_norm:.3g}",
    ("successful", "escape"): "reached t1={t1:g} without leaving the ball",
    ("converged", "flow"): "|grad L| <= gtol={gtol:g} at {at}",
    ("converged", "map"): "|grad L| <= gtol={gtol:g} at {at}",
    ("diverged", "flow"): "|theta| exceeded max_norm={max_norm:g} at {at}",
    ("diverged", "map"): "|theta| exceeded max_norm={max_norm:g} at {at}",
    ("diverged", "escape"): "|theta| exceeded max_norm={max_norm:g} at {at}",
    ("non_finite", "flow"): "{bad} is non-finite at {at} (L = {loss:.3g}, |grad L| = {grad_norm:.3g})",
    ("non_finite", "escape"): "{bad} is non-finite at {at} (L = {loss:.3g}, |grad L| = {grad_norm:.3g})",
    ("non_finite", "map"): ("non-finite gradient or parameters at step {event_step}; the last iterate with a "
                            "finite gradient (step {k}) is kept (try a smaller lr)"),
    ("non_finite", "map_start"): ("{bad} is non-finite at the starting point (step {k}, L = {loss:.3g}, "
                                  "|grad L| = {grad_norm:.3g})"),
    ("max_steps_reached", "flow"): ("max_steps={max_steps} reached at {at} before t1={t1:g}; raise max_steps "
                                    "or loosen rtol/atol"),
    ("max_steps_reached", "escape"): ("max_steps={max_steps} reached at {at} before leaving the ball; raise "
                                      "max_steps or use an implicit solver"),
    ("failed", "flow"): ("the solver failed at {at} (a diffrax error, or the step size fell below rounding "
                         "level)"),
    ("failed", "escape"): "the solver failed at {at} (diffrax result code)",
    ("escaped", "escape"): "stopped on leaving the ball ({metric} distance > {radius:g}) at {at}{note}",
    ("time_limit", "flow"): "wall-time budget used up at {at} after {wall:.3g} s; " + _RESUME,
    ("time_limit", "map"): "wall-time budget used up at {at} of {steps}; " + _RESUME,
    ("running", "flow"): "checkpoint of a run in progress at {at}; " + _RESUME,
    ("running", "map"): "checkpoint of a run in progress at {at} of {steps}; " + _RESUME,
}

_NAMES = {int(np.asarray(item._value)): name for name, item in RESULTS._name_to_item.items()}


def result_name(result) -> str:
    """The member name of a concrete `RESULTS` item (or of its integer value)."""
    if isinstance(result, RESULTS):
        result = result._value
    value = int(np.asarray(result))
    if value not in _NAMES:
        raise ValueError(f"{value} is not a flowtools RESULTS code (0…{len(_NAMES) - 1}).")
    return _NAMES[value]


def status_of(result) -> Status:
    """The public `Status` of a concrete `RESULTS` item."""
    return STATUS[result_name(result)]


def message(result, kind: str, **fields) -> str:
    """The message for `result` (a `RESULTS` item or member name) in a run of `kind`, from `MESSAGES`."""
    name = result if isinstance(result, str) else result_name(result)
    if (name, kind) not in MESSAGES:
        raise ValueError(f"no message for result {name!r} in a {kind!r} run.")
    return MESSAGES[name, kind].format(**fields)


def event_result(converged, diverged, non_finite):
    """The `RESULTS` item of the stop tests (traced booleans), non-finite first, then divergence."""
    out = RESULTS.where(converged, RESULTS.converged, RESULTS.successful)
    out = RESULTS.where(diverged, RESULTS.diverged, out)
    return RESULTS.where(non_finite, RESULTS.non_finite, out)


def from_diffrax(result, event):
    """Map a diffrax solution's result to `RESULTS` (traced); `event` is the item an event stands for."""
    R = diffrax.RESULTS
    out = RESULTS.where(result == R.max_steps_reached, RESULTS.max_steps_reached, RESULTS.failed)
    out = RESULTS.where(result == R.event_occurred, event, out)
    return RESULTS.where(result == R.successful, RESULTS.successful, out)

