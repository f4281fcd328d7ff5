"""Argument checks shared by the public functions.

Every public entry point validates its arguments here, in Python, so that bad input fails with an error
that names the argument and the fix instead of deep inside a traced JAX function.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def _not_a_number(value) -> bool:
    # float() would read "1e-8" and True as numbers: a string or a bool here is a mistake.
    return isinstance(value, (str, bytes, bool, np.bool_))


def _as_float(name: str, value, kind: str) -> float:
    """`value` as a float, or a TypeError saying that `name` must be a `kind` number."""
    if _not_a_number(value):
        raise TypeError(f"{name} must be a {kind} number, got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a {kind} number, got {value!r}.") from None


def positive(name: str, value, *, allow_inf: bool = False) -> float:
    """Return `value` as a float, or raise if it is not a positive finite number."""
    v = _as_float(name, value, "positive")
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return v


def nonnegative(name: str, value) -> float:
    v = _as_float(name, value, "non-negative")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}.")
    return v


def positive_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    return int(value)


def choice(name: str, value, options: Iterable[str]) -> str:
    options = list(options)
    if not isinstance(value, str) or value.lower() not in options:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {options}.")
    return value.lower()


def finite_array(name: str, value, *, ndim: int | None = None, shape=None) -> np.ndarray:
    """Convert to a float64 numpy array and check its shape and that every entry is finite."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers.") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}.")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or Inf value(s); clean or drop them first.")
    return arr


def theta_vector(name: str, value, n_params: int) -> np.ndarray:
    """A flat parameter vector of length `n_params`, finite."""
    arr = finite_array(name, value)
    if arr.ndim != 1 or arr.shape[0] != n_params:
        raise ValueError(
            f"{name} must be a flat vector of length {n_params} (the model's n_params), "
            f"got shape {arr.shape}; use model.flatten(...) to build one."
        )
    return arr


def theta_batch(name: str, value, n_params: int) -> np.ndarray:
    """A batch of parameter vectors, shape (batch, n_params), finite."""
    arr = finite_array(name, value)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n_params:
        raise ValueError(
            f"{name} must have shape (batch, {n_params}), got {arr.shape}."
        )
    return arr
