"""The default tolerances of a gradient flow (`gradient_flow(rtol="auto", atol="auto")`).

A flow to a finite t1 is usually run for the network's function along the way: the outputs at the
saved times. What a user needs there is accuracy in function space, well below what separates GD from
the flow (GD follows the flow to first order in η), not parameters to eight digits. On a large net the
second-order RKC solver that `solver="auto"` picks is held by accuracy at rtol 1e-8, so the tolerance
decides the cost: on 64-16-10 digits (1 210 parameters, half-MSE) to t = 2 000, rtol 1e-6 puts the
outputs on the training images 4.4e-5 (RMS) from a reference flow at rtol 1e-10, 1/230 of GD at
η = 0.1's distance from it (1.0e-2), for 0.30 of the CPU time of rtol 1e-8
(`benchmarks/bench_large.py`, `flow_default_vs_gd_digits` and `flow_default_accuracy_digits`;
docs/benchmarks.md, "The default path against GD").

A run that stops at ‖∇L‖ ≤ gtol hands its end point to Newton and the Hessian (the itineraries'
continued flows), and small nets are cheap at any tolerance: both keep rtol 1e-8, atol 1e-10.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_TOLERANCES", "HORIZON_TOLERANCES", "HORIZON_MIN_PARAMS", "auto_tolerances",
           "resolve_tolerances"]

#: rtol="auto", atol="auto": these tolerances, except where `auto_tolerances` gives `HORIZON_TOLERANCES`.
DEFAULT_TOLERANCES = (1e-8, 1e-10)
#: The tolerances of a finite-horizon flow without gtol of more than `HORIZON_MIN_PARAMS` parameters.
HORIZON_TOLERANCES = (1e-6, 1e-8)
#: Above this many parameters `HORIZON_TOLERANCES` apply: the size at which `solver="auto"` switches
#: to RKC (`flow.AUTO_RKC_MIN_PARAMS`), where the flow was measured.
HORIZON_MIN_PARAMS = 1000


def auto_tolerances(n_params: int, t1: float, gtol: float | None = None) -> tuple[float, float, str]:
    """(rtol, atol, rule) for rtol="auto" / atol="auto": `HORIZON_TOLERANCES` for a flow to a finite
    t1 without gtol of more than `HORIZON_MIN_PARAMS` parameters, `DEFAULT_TOLERANCES` otherwise;
    `rule` names the case."""
    if n_params > HORIZON_MIN_PARAMS and math.isfinite(t1) and gtol is None:
        return (*HORIZON_TOLERANCES, f"finite t1 on more than {HORIZON_MIN_PARAMS} parameters")
    return (*DEFAULT_TOLERANCES, "default")


def resolve_tolerances(n_params: int, t1: float, gtol, rtol, atol):
    """(rtol, atol, rule): numbers for the "auto" ones from `auto_tolerances`, the given ones as they
    are; `rule` describes what "auto" chose (None when both were given).

    **Raises:** `TypeError` for a string other than "auto" (a number given as text included)."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, str) and value != "auto":
            raise TypeError(f"{name} must be a positive number or 'auto', got {value!r}.")
    if not (isinstance(rtol, str) or isinstance(atol, str)):
        return rtol, atol, None
    auto_rtol, auto_atol, rule = auto_tolerances(n_params, t1, gtol)
    rtol, atol = (auto_rtol if rtol == "auto" else rtol), (auto_atol if atol == "auto" else atol)
    return rtol, atol, f"auto ({rule}): rtol {auto_rtol:g}, atol {auto_atol:g}"
