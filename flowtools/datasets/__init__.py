"""Data sets shipped with flowtools (see README.md in this folder for provenance)."""

from __future__ import annotations

import gzip
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .. import _checks
from ..data import Dataset, Teacher, load_xy

MALEKNIA_SATO_PATH = Path(__file__).with_name("maleknia_sato_data.dat")
DIGITS_PATH = Path(__file__).with_name("digits.csv.gz")

#: The teacher of the minimal model, T(x) = 2 tanh(x) (Maleknia & Sato, Sec. 2).
TWO_TANH = Teacher(lambda x: 2.0 * jnp.tanh(x), d_in=1, d_out=1, name="2 tanh(x)", probe=False)

_DIGITS_SCALES = ("unit", "standard", "raw")


def maleknia_sato(noiseless: bool = False) -> Dataset:
    """The published 100-point training set (τ = 0.2), or the noiseless set y = 2 tanh(x) on the same x."""
    data = load_xy(MALEKNIA_SATO_PATH, teacher=TWO_TANH, name="maleknia_sato (τ=0.2)")
    data = Dataset(data.x, data.y, data.teacher, 0.2, data.name)
    return data.noiseless() if noiseless else data


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1 797 digits as (pixels, labels): pixels (1797, 64) in 0..16 (8×8, row-major), labels 0..9."""
    with gzip.open(DIGITS_PATH, "rt") as fh:
        arr = np.loadtxt(fh, delimiter=",", comments="#", dtype=np.int64)
    return arr[:, :64].astype(np.float64), arr[:, 64]


def load_digits(n_train: int = 1497, n_test: int | None = None, *, seed: int = 0, scale: str = "unit",
                one_hot: bool = False) -> tuple[Dataset, Dataset]:
    """The 8×8 handwritten digits (UCI; scikit-learn's `load_digits`), split into train and test sets.

    **Arguments:**

    - `n_train`: training images (default 1 497); `n_test`: test images (default: all the rest, 300).
    - `seed`: the shuffle before the split.
    - `scale`: "unit" (pixels / 16, in [0, 1]), "standard" (each pixel centred and divided by its
      standard deviation on the training set; pixels constant on the training set become 0) or "raw"
      (counts 0..16).
    - `one_hot`: targets as one-hot rows of length 10 (for squared error); default: the integer
      label 0..9 as one float column.

    **Returns:** (train, test) `Dataset`s. Several pixels are constant (0) on every image: the weights
    reading them are exact zero directions of the Hessian.
    """
    n_train = _checks.positive_int("n_train", n_train)
    scale = _checks.choice("scale", scale, _DIGITS_SCALES)
    seed = _checks.positive_int("seed", seed, minimum=0)
    x, labels = digits_arrays()
    total = x.shape[0]
    if n_test is None:
        n_test = total - n_train
    else:
        n_test = _checks.positive_int("n_test", n_test, minimum=0)
    if n_train + n_test > total or n_test < 0:
        raise ValueError(f"n_train={n_train} plus n_test={n_test} exceeds the {total} digits; lower them.")
    order = np.random.default_rng(seed).permutation(total)
    tr, te = order[:n_train], order[n_train:n_train + n_test]
    if scale == "unit":
        x = x / 16.0
    elif scale == "standard":
        mu, sd = x[tr].mean(axis=0), x[tr].std(axis=0)
        x = (x - mu) / np.where(sd > 0, sd, 1.0)
    y = np.eye(10)[labels] if one_hot else labels[:, None].astype(np.float64)
    kind = "one-hot" if one_hot else "labels"
    train = Dataset(x[tr], y[tr], name=f"digits train n={n_train} ({scale}, {kind}, seed={seed})")
    if n_test == 0:
        return train, None
    test = Dataset(x[te], y[te], name=f"digits test n={n_test} ({scale}, {kind}, seed={seed})")
    return train, test


def labels_of(data: Dataset) -> np.ndarray:
    """Integer class labels of a digits `Dataset`, whether its targets are one-hot or labels."""
    y = np.asarray(data.y)
    return np.argmax(y, axis=1) if y.shape[1] > 1 else np.rint(y[:, 0]).astype(np.int64)


__all__ = ["MALEKNIA_SATO_PATH", "DIGITS_PATH", "TWO_TANH", "maleknia_sato", "load_digits", "digits_arrays",
           "labels_of"]
