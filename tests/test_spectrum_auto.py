"""The automatic dense/Lanczos choice, flagged lower bounds, and the rtol_zero warning."""

import warnings

import numpy as np
import pytest

import flowtools as ft
from flowtools.datasets import load_digits
from flowtools.landscape.spectrum import ZeroToleranceWarning, _sensitivity, constant_features, hessian_spectrum


@pytest.fixture(scope="module")
def digits_point():
    # A small-init point of a 64-3-10 tanh net on 200 digits: a continuum of negative eigenvalues.
    train, _ = load_digits(n_train=200, n_test=0, one_hot=True)
    model = ft.MLP([64, 3, 10], activation="tanh")
    prob = ft.Problem(model, train)
    return prob, np.asarray(model.init(0, "glorot", scale=0.5))


def test_auto_count_equals_dense_where_lanczos_cannot_finish(digits_point):
    prob, th = digits_point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroToleranceWarning)
        dense = hessian_spectrum(prob, th, method="dense")
        # Force the Lanczos branch (dense_max below n) with a budget too small for the continuum.
        auto = hessian_spectrum(prob, th, dense_max=50, max_matvecs=60)
    assert dense.n_neg > 5
    assert auto.complete and auto.method == "dense" and auto.n_neg == dense.n_neg
    assert "did not complete" in auto.message
    # Without room for the dense Hessian the lower bound is returned, flagged and warned about.
    with pytest.warns(RuntimeWarning, match="lower bound"):
        lb = hessian_spectrum(prob, th, dense_max=50, max_matvecs=60, max_dense_bytes=1e3)
    assert not lb.complete and lb.method == "lanczos" and lb.n_neg <= dense.n_neg
    assert "LOWER BOUND" in lb.message


def test_constant_pixels_and_rtol_zero_warning(digits_point):
    prob, th = digits_point
    n_const = constant_features(prob)
    assert n_const >= 1  # blank border pixels of the digits
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        spec = hessian_spectrum(prob, th, method="dense")
    # Each constant pixel's weights into the 3 hidden units are exact zero directions.
    assert spec.n_zero >= 3 * n_const
    flagged = [w for w in rec if issubclass(w.category, ZeroToleranceWarning)]
    assert (spec.rtol_sensitivity is not None) == bool(flagged)
    # The sensitivity check itself, on spectra built to straddle the threshold or not.
    lam = np.array([-1.0, -3e-9, 0.0, 1e-12, 2.0])
    assert _sensitivity(lam, (1, 3, 1), 1e-7, 2.0, True) is None
    lam2 = np.array([-1.0, -1.5e-7, 0.0, 1.0, 2.0])
    assert _sensitivity(lam2, (1, 2, 2), 1e-7, 2.0, True) == ((2, 1, 2), (1, 2, 2))
