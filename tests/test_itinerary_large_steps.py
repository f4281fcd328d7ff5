"""Itineraries of GD at large steps: every run records the set it starts near, whatever its step."""

import numpy as np
import pytest

import flowtools as ft

from conftest import PUBLISHED_THETA0


@pytest.mark.parametrize("lr", [0.5, 1.3])
def test_start_saddle_is_recorded_at_any_step(minimal_mse, lr):
    # η = 1.3 diverges (its first step already leaves the origin's visit radius); η = 0.5 converges
    gd = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr, 20_000, max_norm=1e4)
    it = ft.itinerary(minimal_mse, gd)
    first = it.visits[0]
    assert first.kind == "saddle" and first.signature == (2, 0, 2) and first.t_in == 0.0
    np.testing.assert_allclose(first.theta, 0.0, atol=1e-12)  # the origin
    assert it.terminal == ("diverged" if lr > 1.2 else "attractor")
