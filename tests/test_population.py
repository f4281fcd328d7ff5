"""The population loss as a training objective, exact R on finite data, and the Monte Carlo sample."""

import jax
import numpy as np
import pytest

import flowtools as ft
from flowtools import gaussian


def test_monte_carlo_sample_is_independent_of_the_training_set():
    # Both default to seed 0; the Monte Carlo sample must still not be the training inputs, or R at
    # n = 2^16 equals the training error exactly. A depth-3 teacher keeps R on Monte Carlo.
    T = ft.MLP((10, 2, 2, 1), "erf", bias=False)
    data = ft.teacher_dataset((T, T.init(0)), n=2**16)
    pop = ft.GaussianPopulation.build(10, "monte_carlo")
    assert not np.allclose(pop.x[:5], data.x[:5])
    p = ft.Problem(ft.MLP((10, 2, 2, 1), "erf", bias=False), data)
    assert p.population_method == "monte_carlo"
    th = p.model.init(1)
    assert 2 * p.loss(th) != pytest.approx(p.gen_error(th), rel=1e-6)
    assert abs(2 * p.loss(th) - p.gen_error(th)) < 5 * np.hypot(p.gen_error_stderr(th), p.gen_error_stderr(th))
