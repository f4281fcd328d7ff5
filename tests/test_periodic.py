"""Periodic orbits of the GD map (flowtools.dynamics.periodic) and their place in itineraries.

Closed form: for E(x, y) = x²/2 − x⁴/4 + y²/4, GD with step η maps x ↦ x − η(x − x³). The symmetric
2-cycle x ↦ −x solves 2x = η(x − x³), i.e. x*² = 1 − 2/η (η > 2); on it G'(x*) = 1 − η(1 − 3x*²) = 2η − 5,
so its multipliers are (2η − 5)² along x and (1 − η/2)² along y: stable for 2 < η < 3."""

import numpy as np
import pytest

import flowtools as ft
from flowtools.dynamics.periodic import periodic_orbit

from conftest import PUBLISHED_THETA0


@pytest.fixture(scope="module")
def quartic():
    return ft.Problem.from_loss(lambda th: th[0] ** 2 / 2 - th[0] ** 4 / 4 + th[1] ** 2 / 4, 2)


@pytest.mark.parametrize("lr", [2.2, 2.8])
def test_gd_ends_on_the_closed_form_two_cycle(quartic, lr):
    gd = ft.gradient_descent(quartic, np.array([0.05, 0.3]), lr, 2_000)
    orbit = periodic_orbit(quartic, gd.final_theta, lr)
    assert orbit is not None and orbit.period == 2 and orbit.kind == "period-2 orbit"
    x_star = np.sqrt(1 - 2 / lr)
    np.testing.assert_allclose(np.sort(orbit.points[:, 0]), [-x_star, x_star], rtol=1e-12)
    np.testing.assert_allclose(orbit.points[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.sort(orbit.multipliers), np.sort([(2 * lr - 5) ** 2, (1 - lr / 2) ** 2]),
                               atol=1e-10)
    assert orbit.stable and orbit.signature == (0, 0, 2) and orbit.residual < 1e-12
    # λ_max(H) = max(E_xx, E_yy) = max(1 − 3x*², 1/2) at both points
    np.testing.assert_allclose(orbit.sharpness, max(1 - 3 * x_star ** 2, 0.5), rtol=1e-10)
    np.testing.assert_allclose(orbit.losses, x_star ** 2 / 2 - x_star ** 4 / 4, rtol=1e-12)


def test_unstable_two_cycle_has_multiplier_above_one(quartic):
    lr = 3.2  # beyond the period-doubling of the cycle: (2η − 5)² = 1.96
    x_star = np.sqrt(1 - 2 / lr)
    orbit = periodic_orbit(quartic, np.array([1.001 * x_star, 0.0]), lr)
    assert orbit is not None and not orbit.stable
    np.testing.assert_allclose(orbit.multipliers, [(2 * lr - 5) ** 2, (1 - lr / 2) ** 2], rtol=1e-10)
    assert orbit.signature == (1, 0, 1)


def test_fixed_points_are_not_orbits(quartic, minimal_mse):
    assert periodic_orbit(quartic, np.zeros(2), 1.0) is None
    gd = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 0.5, 20_000)  # converges: 3.44 < 2/η = 4
    assert periodic_orbit(minimal_mse, gd.final_theta, 0.5) is None
    with pytest.raises(ValueError, match="max_period"):
        periodic_orbit(quartic, np.zeros(2), 1.0, max_period=1)


def test_itinerary_ends_on_the_quartic_two_cycle(quartic):
    lr = 2.5
    gd = ft.gradient_descent(quartic, np.array([0.05, 0.3]), lr, 2_000)
    it = ft.itinerary(quartic, gd)
    assert it.terminal == "attractor" and it.attractor.kind == "period-2 orbit"
    assert "period-2 orbit" in it.message
    orbit = it.stats["periodic_orbit"]
    assert orbit["period"] == 2 and orbit["stable"]
    np.testing.assert_allclose(np.abs(np.asarray(orbit["points"])[:, 0]), np.sqrt(1 - 2 / lr), rtol=1e-12)


@pytest.mark.parametrize("lr", [0.77, 1.12])
def test_minimal_model_ends_on_a_period_two_orbit(minimal_mse, lr):
    gd = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr, 20_000, max_norm=1e4)
    assert gd.status == ft.Status.T1_REACHED
    it = ft.itinerary(minimal_mse, gd)
    assert it.terminal == "attractor" and it.kinds[-1] == "period-2 orbit", it
    end = it.attractor
    assert end.signature[0] == 0 and np.all(end.eigenvalues < 1)
    orbit = it.stats["periodic_orbit"]
    # the orbit straddles 2/η: its mean sharpness is 2/η within 2 %, one point above, one below
    assert abs(orbit["mean_sharpness"] * lr / 2 - 1) <= 0.02
    assert min(orbit["sharpness"]) < 2 / lr < max(orbit["sharpness"])
    # G maps one point onto the other
    a, b = np.asarray(orbit["points"])
    np.testing.assert_allclose(a - lr * minimal_mse.grad(a), b, atol=1e-12)
    assert end.loss == pytest.approx(np.mean(orbit["losses"]))
    graph = ft.SaddleGraph()
    nodes = ft.add_to_graph(graph, it, run="gd")
    assert graph.graph.nodes[nodes[-1]]["attractor"] and graph.graph.nodes[nodes[-1]]["kind"] == "period-2 orbit"
