"""Frozen parameters: the free coordinates of θ and the values at which the others are held.

A `Problem` with a frozen set acts on θ_free only; `frozen` turns the `frozen` / `frozen_at`
arguments (a mask, indices or MLP group names, and a full θ) into the free indices and the base θ.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..models import MLP


class Index:
    """The free coordinates' indices into the model's θ, hashable (once) for use as static data."""

    __slots__ = ("index", "_hash")

    def __init__(self, index: np.ndarray):
        self.index = np.asarray(index, dtype=np.int64)
        self.index.setflags(write=False)
        self._hash = hash(self.index.tobytes())

    @property
    def size(self) -> int:
        return int(self.index.size)

    def __eq__(self, other):
        return isinstance(other, Index) and np.array_equal(self.index, other.index)

    def __hash__(self):
        return self._hash


def _mlp_groups(model: MLP, names: Sequence[str]) -> np.ndarray:
    mask = np.zeros(model.n_params, dtype=bool)
    L = model.n_layers
    valid = [f"W{l}" for l in range(1, L + 1)] + [f"b{l}" for l in range(1, L + 1) if model.bias[l - 1]] + \
        [f"layer{l}" for l in range(1, L + 1)]
    for name in names:
        if not isinstance(name, str) or name not in valid:
            raise ValueError(f"frozen group {name!r} is not a parameter group of {model!r}; "
                             f"use one of {valid}.")
        l = int(name.lstrip("Wblayer"))
        sl = model.layout[l - 1]
        parts = [sl.W] if name[0] == "W" else [sl.b] if name[0] == "b" else [sl.W] + ([sl.b] if sl.b else [])
        for a, b in parts:
            mask[a:b] = True
    return mask


def frozen(model, frozen, frozen_at):
    """(free indices or None, full base θ or None) from the `frozen` / `frozen_at` arguments."""
    if frozen is None:
        if frozen_at is not None:
            raise ValueError("frozen_at is given but frozen is None; pass frozen= (mask, indices or group "
                             "names) to hold parameters fixed.")
        return None, None
    n = model.n_params
    if isinstance(frozen, str) or (isinstance(frozen, (list, tuple)) and frozen
                                   and all(isinstance(f, str) for f in frozen)):
        if not isinstance(model, MLP):
            raise ValueError("frozen group names ('W2', 'b1', 'layer2') need an MLP; for a FunctionModel "
                             f"pass a boolean mask of length {n}.")
        mask = _mlp_groups(model, [frozen] if isinstance(frozen, str) else list(frozen))
    else:
        arr = np.asarray(frozen)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise ValueError(f"frozen mask must be a boolean array of shape ({n},) (one entry per "
                                 f"parameter of the model), got shape {arr.shape}.")
            mask = arr.copy()
        elif np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1:
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise ValueError(f"frozen indices must lie in [0, {n}), got min {arr.min()}, "
                                 f"max {arr.max()}.")
            mask = np.zeros(n, dtype=bool)
            mask[arr] = True
        else:
            raise ValueError(f"frozen must be a boolean mask of shape ({n},), an integer index array, or "
                             f"MLP group names; got an array of dtype {arr.dtype} and shape {arr.shape}.")
    if mask.all():
        raise ValueError("frozen holds every parameter fixed; leave at least one free.")
    if frozen_at is None:
        raise ValueError(f"frozen needs frozen_at: the model's full θ (length {n}) whose frozen entries "
                         "are held fixed.")
    base = _checks.theta_vector("frozen_at", frozen_at, n)
    return Index(np.flatnonzero(~mask)), jnp.asarray(base)
