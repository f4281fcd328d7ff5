"""A plain objective as a Problem (`Problem.from_loss`), checked on the Müller–Brown potential against an
independent numpy/scipy computation of its stationary points."""

import numpy as np
import pytest
from scipy.optimize import root

import flowtools as ft
from flowtools.objective import MULLER_BROWN, muller_brown

P = {k: np.asarray(v) for k, v in MULLER_BROWN.items()}


def mb_numpy(x, y):
    dx, dy = x - P["x0"], y - P["y0"]
    return float(np.sum(P["A"] * np.exp(P["a"] * dx * dx + P["b"] * dx * dy + P["c"] * dy * dy)))


def mb_grad_numpy(z):
    dx, dy = z[0] - P["x0"], z[1] - P["y0"]
    e = P["A"] * np.exp(P["a"] * dx * dx + P["b"] * dx * dy + P["c"] * dy * dy)
    return np.array([np.sum(e * (2 * P["a"] * dx + P["b"] * dy)),
                     np.sum(e * (P["b"] * dx + 2 * P["c"] * dy))])


def mb_hess_numpy(z, h=1e-6):
    return np.stack([(mb_grad_numpy(z + h * e) - mb_grad_numpy(z - h * e)) / (2 * h) for e in np.eye(2)])


@pytest.fixture(scope="module")
def stationary_points():
    """Stationary points in the window [−1.5, 1.2] × [−0.2, 2] from scipy's root finder on the numpy
    gradient, started on a 25 × 25 grid, deduplicated; each with its Morse index (numpy Hessian)."""
    found = []
    for x in np.linspace(-1.5, 1.2, 25):
        for y in np.linspace(-0.2, 2.0, 25):
            with np.errstate(over="ignore", invalid="ignore"):  # starts that wander far off
                sol = root(mb_grad_numpy, [x, y], jac=mb_hess_numpy, method="hybr", tol=1e-14)
            z = sol.x
            if not sol.success or np.linalg.norm(mb_grad_numpy(z)) > 1e-8:
                continue
            if not (-1.5 <= z[0] <= 1.2 and -0.2 <= z[1] <= 2.0):
                continue
            if all(np.linalg.norm(z - w) > 1e-6 for w, _ in found):
                found.append((z, int(np.sum(np.linalg.eigvalsh(mb_hess_numpy(z)) < 0))))
    return found


def test_independent_stationary_points(stationary_points):
    indices = sorted(i for _, i in stationary_points)
    assert indices.count(0) == 3 and indices.count(1) == 2


@pytest.fixture(scope="module")
def mb():
    return ft.Problem.from_loss(muller_brown, 2)


def test_loss_and_gradient(mb):
    rng = np.random.default_rng(0)
    for z in rng.uniform([-1.5, -0.2], [1.2, 2.0], size=(5, 2)):
        assert mb.loss(z) == pytest.approx(mb_numpy(*z), rel=1e-13, abs=1e-12)
        np.testing.assert_allclose(mb.grad(z), mb_grad_numpy(z), rtol=1e-11, atol=1e-10)


def test_critical_points_match_independent(mb, stationary_points):
    for z, index in stationary_points:
        guess = z + np.array([0.01, -0.01])
        cp = ft.find_critical_point(mb, guess, gtol=1e-10)
        assert cp.success, cp.message
        assert cp.grad_norm <= 1e-10
        assert np.linalg.norm(cp.theta - z) <= 1e-8
        assert abs(cp.loss - mb_numpy(*z)) <= 1e-8
        assert cp.morse_index == index
        assert cp.kind == ("minimum" if index == 0 else "saddle")
        spec = ft.hessian_spectrum(mb, cp.theta)
        np.testing.assert_allclose(spec.eigenvalues, np.linalg.eigvalsh(mb_hess_numpy(z)), rtol=1e-6)


def test_flow_reaches_a_minimum(mb, stationary_points):
    minima = [z for z, i in stationary_points if i == 0]
    traj = ft.gradient_flow(mb, [0.0, 1.0], np.inf, gtol=1e-9)
    assert traj.status.value == "converged"
    assert min(np.linalg.norm(traj.final_theta - z) for z in minima) < 1e-7


def test_function_is_theta(mb):
    a, b = np.array([0.1, 0.2]), np.array([0.4, -0.2])
    assert ft.function_distance(mb, a, b) == pytest.approx(np.linalg.norm(a - b), rel=1e-14)
    np.testing.assert_array_equal(mb.predict(a, np.zeros((1, 1)))[0], a)


def test_weight_decay_and_dimension():
    p = ft.Problem.from_loss(lambda th: (th ** 4).sum(), 5, weight_decay=0.3)
    th = np.linspace(-1, 1, 5)
    assert p.n_params == 5
    assert p.loss(th) == pytest.approx(np.sum(th ** 4) + 0.15 * np.sum(th ** 2), rel=1e-14)


def test_bad_input():
    with pytest.raises(ValueError, match="scalar"):
        ft.Problem.from_loss(lambda th: th * 2, 3)
    with pytest.raises(ValueError, match="fn\\(theta\\) failed"):
        ft.Problem.from_loss(lambda th: th[0] @ np.ones(4), 3)
    with pytest.raises(TypeError, match="callable"):
        ft.Problem.from_loss(3.0, 3)
    with pytest.raises(ValueError, match="n_params"):
        ft.Problem.from_loss(muller_brown, 0)
    with pytest.raises(ValueError, match="loss='mse'"):
        ft.Problem.from_loss(muller_brown, 2).with_loss("half_mse")


def test_itinerary_on_an_objective(mb, stationary_points):
    """A flow started next to a saddle visits it, then ends at a minimum. A plain objective has no targets,
    so the itinerary's default visit radius (0.1·RMS of y) is 0: pass one in θ units."""
    saddles = [z for z, i in stationary_points if i == 1]
    minima = [z for z, i in stationary_points if i == 0]
    s = min(saddles, key=lambda z: z[0])  # the saddle between A and C
    traj = ft.gradient_flow(mb, s + 1e-4, np.inf, gtol=1e-9)
    it = ft.itinerary(mb, traj, visit_radius=0.05)
    kinds = [v.kind for v in it.visits]
    assert kinds == ["saddle", "minimum"]
    assert np.linalg.norm(it.visits[0].theta - s) < 1e-8
    assert min(np.linalg.norm(it.visits[1].theta - z) for z in minima) < 1e-8
