"""Grids of configurations: the Cartesian product of axes; each point is a dict of scalar labels
with its seed."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

#: Names a configuration may not use: the Dataset's dimensions and the variables every store holds.
RESERVED = ("point", "visit", "finished", "version", "error")


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


def scalar(v):
    """`v` as a plain Python bool, int, float or str (numpy scalars too), or None for anything else."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v
    return None
