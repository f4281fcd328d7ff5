"""Data sets shipped with flowtools (see README.md in this folder for provenance)."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp

from ..data import Dataset, Teacher, load_xy

MALEKNIA_SATO_PATH = Path(__file__).with_name("maleknia_sato_data.dat")

#: The teacher of the minimal model, T(x) = 2 tanh(x) (Maleknia & Sato, Sec. 2).
TWO_TANH = Teacher(lambda x: 2.0 * jnp.tanh(x), d_in=1, d_out=1, name="2 tanh(x)")


def maleknia_sato(noiseless: bool = False) -> Dataset:
    """The published 100-point training set (τ = 0.2), or the noiseless set y = 2 tanh(x) on the same x."""
    data = load_xy(MALEKNIA_SATO_PATH, teacher=TWO_TANH, name="maleknia_sato (τ=0.2)")
    data = Dataset(data.x, data.y, data.teacher, 0.2, data.name)
    return data.noiseless() if noiseless else data


__all__ = ["MALEKNIA_SATO_PATH", "TWO_TANH", "maleknia_sato"]
