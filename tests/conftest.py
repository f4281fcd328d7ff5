import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import flowtools as ft  # noqa: E402


@pytest.fixture(scope="session")
def published_data():
    return ft.datasets.maleknia_sato()


@pytest.fixture(scope="session")
def minimal_model():
    return ft.MLP((1, 2, 1), "tanh", bias=False)


@pytest.fixture(scope="session")
def minimal_mse(minimal_model, published_data):
    return ft.Problem(minimal_model, published_data, "mse")


@pytest.fixture(scope="session")
def minimal_half(minimal_model, published_data):
    return ft.Problem(minimal_model, published_data, "half_mse")


#: The published initial condition (w1, w2, v1, v2) of Maleknia & Sato's reference run.
PUBLISHED_THETA0 = np.array([-0.13, 0.13, 0.16, -0.15])
