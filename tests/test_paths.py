"""Transition paths: the climbing-image nudged elastic band (flowtools.landscape.paths), checked on the
Müller–Brown potential against saddles computed independently with scipy, and on the flagship net."""

import numpy as np
import pytest
from scipy.optimize import root

import flowtools as ft
from flowtools.landscape import align_minimum, lowest_mode, neuron_symmetries, saddle_search, transition_path
from flowtools.objective import MULLER_BROWN, muller_brown

P = {k: np.asarray(v) for k, v in MULLER_BROWN.items()}


def mb_grad_numpy(z):
    dx, dy = z[0] - P["x0"], z[1] - P["y0"]
    e = P["A"] * np.exp(P["a"] * dx * dx + P["b"] * dx * dy + P["c"] * dy * dy)
    return np.array([np.sum(e * (2 * P["a"] * dx + P["b"] * dy)),
                     np.sum(e * (P["b"] * dx + 2 * P["c"] * dy))])


def mb_energy_numpy(z):
    dx, dy = z[0] - P["x0"], z[1] - P["y0"]
    return float(np.sum(P["A"] * np.exp(P["a"] * dx * dx + P["b"] * dx * dy + P["c"] * dy * dy)))


def stationary(guess):
    sol = root(mb_grad_numpy, guess, method="hybr", tol=1e-14)
    assert np.linalg.norm(mb_grad_numpy(sol.x)) < 1e-9  # (hybr may report "xtol too small" at round-off)
    return sol.x


# Rough locations (Müller & Brown 1979); the exact points are solved for with scipy.
MIN_A, MIN_B, MIN_C = stationary([-0.56, 1.44]), stationary([0.62, 0.03]), stationary([-0.05, 0.47])
SADDLE_AC, SADDLE_CB = stationary([-0.82, 0.62]), stationary([0.21, 0.29])


@pytest.fixture(scope="module")
def mb():
    return ft.Problem.from_loss(muller_brown, 2)


@pytest.mark.parametrize("ends, saddle", [((MIN_A, MIN_C), SADDLE_AC), ((MIN_C, MIN_B), SADDLE_CB)])
def test_muller_brown_band_finds_the_saddle(mb, ends, saddle):
    a, b = ends
    path = transition_path(mb, a + 0.01, b - 0.01)  # the ends are refined first
    assert path.status == "converged", path.message
    assert path.saddle.morse_index == 1 and path.saddle.grad_norm <= 1e-10
    assert np.linalg.norm(path.saddle.theta - saddle) <= 1e-8
    e_s = mb_energy_numpy(saddle)
    assert path.barriers[0] == pytest.approx(e_s - mb_energy_numpy(a), abs=1e-8)
    assert path.barriers[1] == pytest.approx(e_s - mb_energy_numpy(b), abs=1e-8)
    # Descent from the saddle along ± its unstable direction reaches both ends.
    ends_reached = sorted(min(range(2), key=lambda i: np.linalg.norm(r.theta - (a, b)[i]))
                          for r in path.reached)
    assert ends_reached == [0, 1]
    assert all(min(np.linalg.norm(r.theta - a), np.linalg.norm(r.theta - b)) < 1e-8 for r in path.reached)
    assert path.energies.shape == (16,) and path.images.shape == (16, 2)
    assert np.all(np.diff(path.arc_length) > 0)
    assert path.energies.max() <= e_s + 1e-8  # no image above the saddle of a converged band


def test_muller_brown_two_barriers_are_reported_as_such(mb):
    """A → B passes the intermediate minimum C: the climbing image finds the higher saddle, whose descent
    reaches A and C, not B; the status says so."""
    path = transition_path(mb, MIN_A, MIN_B)
    assert path.status == "not_connected"
    assert np.linalg.norm(path.saddle.theta - SADDLE_AC) <= 1e-8
    assert "does not reach both ends" in path.message


# ------------------------------------------------------------------------------------------ the net
@pytest.fixture(scope="module")
def flagship(minimal_mse):
    cp = ft.find_critical_point(minimal_mse, [0.55, 2.15, 1.61, 0.67], gtol=1e-10)
    assert cp.kind == "minimum"
    return minimal_mse, cp.theta


def test_flagship_band_between_sign_flip_images(flagship):
    """θ and its image with hidden neuron 1 flipped (w1, v1) → (−w1, −v1) are two minima with one
    function; the band between them (no alignment) crosses the index-1 saddle where neuron 1 is dead."""
    problem, a = flagship
    b = a * np.array([-1.0, 1.0, -1.0, 1.0])
    path = transition_path(problem, a, b, align=False)
    assert path.status == "converged", path.message
    s = path.saddle
    assert s.morse_index == 1 and s.signature == (1, 0, 3)
    assert abs(s.theta[0]) < 1e-8 and abs(s.theta[2]) < 1e-8
    assert path.barriers[0] == pytest.approx(path.barriers[1], abs=1e-12) and path.barriers[0] > 1e-3
    # The two descent branches end at the two ends in θ (not only in function).
    finals = [br.final_theta for br in path.descent.branches]
    near = sorted(int(np.linalg.norm(f - b) < np.linalg.norm(f - a)) for f in finals)
    assert near == [0, 1]
    assert all(min(np.linalg.norm(f - a), np.linalg.norm(f - b)) < 1e-4 for f in finals)


def test_flagship_aligned_ends_coincide(flagship):
    problem, a = flagship
    b = neuron_symmetries(problem.model, a, seed=5)
    assert np.linalg.norm(b - a) > 0.1
    np.testing.assert_allclose(align_minimum(problem, a, b), a, atol=1e-14)
    with pytest.raises(ValueError, match="same point"):
        transition_path(problem, a, b)


def test_flagship_minimum_to_degenerate_line(flagship):
    """The second minimum set of the flagship problem (neurons merged, reduces to 1-1-1) is a line whose
    minimum segment the band reaches without crossing a saddle: the refined top is not index 1, and the
    result says so instead of reporting a saddle."""
    problem, a = flagship
    line = ft.find_critical_point(problem, [1.004, 1.004, -0.62, 2.59], gtol=1e-10)
    assert line.kind == "degenerate_minimum"
    path = transition_path(problem, a, line.theta)
    assert path.status == "wrong_index", path.message
    assert path.saddle.morse_index == 0


@pytest.mark.parametrize("widths, act, bias", [((2, 4, 1), "tanh", True), ((3, 4, 3, 2), "relu", True),
                                               ((1, 5, 1), "erf", False)])
def test_align_minimum_undoes_symmetries(widths, act, bias):
    model = ft.MLP(widths, act, bias=bias)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, widths[0]))
    problem = ft.Problem(model, ft.Dataset(x, rng.standard_normal((20, widths[-1]))))
    theta = rng.standard_normal(model.n_params)
    image = neuron_symmetries(model, theta, seed=2)
    aligned = align_minimum(problem, theta, image)
    np.testing.assert_allclose(aligned, theta, atol=1e-12)
    np.testing.assert_allclose(problem.predict(aligned, x), problem.predict(image, x), atol=1e-12)
    # A perturbed image is matched to the nearest one, and the function is unchanged.
    noisy = image + 1e-3 * rng.standard_normal(model.n_params)
    aligned = align_minimum(problem, theta, noisy)
    assert np.linalg.norm(aligned - theta) < 0.01
    np.testing.assert_allclose(problem.predict(aligned, x), problem.predict(noisy, x), atol=1e-12)


def test_bad_input(mb):
    with pytest.raises(ValueError, match="theta_b"):
        transition_path(mb, MIN_A, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="n_images"):
        transition_path(mb, MIN_A, MIN_C, n_images=2)
    with pytest.raises(ValueError, match="same point"):
        transition_path(mb, MIN_A, MIN_A)
    with pytest.raises(TypeError, match="Problem"):
        transition_path(muller_brown, MIN_A, MIN_C)
    path = transition_path(mb, MIN_A, MIN_C, max_iter=5)
    assert path.status == "max_iter" and "did not converge" in path.message


# ------------------------------------------------------------------------- single-ended: the dimer
def test_lowest_mode_matches_dense(minimal_mse):
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(4)
    lam, V = lowest_mode(minimal_mse, theta, n_modes=2)
    w, U = np.linalg.eigh(minimal_mse.hessian(theta))
    np.testing.assert_allclose(lam, w[:2], rtol=1e-8, atol=1e-10)
    for i in range(2):
        assert abs(abs(V[:, i] @ U[:, i]) - 1.0) < 1e-8


@pytest.mark.parametrize("minimum, saddles, options", [
    (MIN_C, [SADDLE_AC, SADDLE_CB], dict(n_random=4)),
    (MIN_B, [SADDLE_CB], dict(n_random=4)),
    # From A its softest mode leads past AC; one of the seeded random starts 0.2 away reaches it.
    (MIN_A, [SADDLE_AC], dict(n_random=8, displacement=0.2)),
])
def test_saddle_search_muller_brown(mb, minimum, saddles, options):
    search = saddle_search(mb, minimum, max_iter=150, **options)
    assert search.status == "converged"
    for s in search.saddles:
        assert s.morse_index == 1 and s.grad_norm <= 1e-10
    for known in saddles:
        assert min(np.linalg.norm(s.theta - known) for s in search.saddles) <= 1e-8
        assert any(abs(s.loss - mb_energy_numpy(known)) <= 1e-8 for s in search.saddles)


def test_saddle_search_flagship(flagship):
    problem, a = flagship
    search = saddle_search(problem, a, n_modes=2, max_iter=150)
    assert search.saddles, search.message
    assert all(s.morse_index == 1 and s.grad_norm <= 1e-10 for s in search.saddles)
    # The saddle lies on the boundary of a's basin: one branch of its unstable manifold returns to a.
    manifold = ft.unstable_manifold(problem, search.saddles[0])
    assert any(t.kind == "minimum" and ft.function_distance(problem, t.theta, a) < 1e-8
               for t in manifold.targets)


def test_saddle_search_bad_input(mb):
    with pytest.raises(ValueError, match="not a minimum"):
        saddle_search(mb, SADDLE_AC)
    with pytest.raises(ValueError, match="start direction"):
        saddle_search(mb, MIN_C, n_modes=0)
    with pytest.raises(ValueError, match="theta_min"):
        saddle_search(mb, [0.0])


def _neb_force_numpy(problem, R, k, climb):
    """The climbing-image band force written out from Henkelman & Jónsson (2000), one image at a time."""
    E = np.array([problem.loss(r) for r in R])
    G = np.array([problem.grad(r) for r in R])
    top = 1 + int(np.argmax(E[1:-1]))
    out = []
    for i in range(1, len(R) - 1):
        tp, tm = R[i + 1] - R[i], R[i] - R[i - 1]
        if E[i + 1] > E[i] > E[i - 1]:
            tau = tp
        elif E[i + 1] < E[i] < E[i - 1]:
            tau = tm
        else:
            hi = max(abs(E[i + 1] - E[i]), abs(E[i - 1] - E[i]))
            lo = min(abs(E[i + 1] - E[i]), abs(E[i - 1] - E[i]))
            tau = tp * hi + tm * lo if E[i + 1] > E[i - 1] else tp * lo + tm * hi
        tau = tau / np.linalg.norm(tau)
        g = G[i]
        if climb and i == top:
            out.append(-g + 2 * (g @ tau) * tau)
        else:
            out.append(-(g - (g @ tau) * tau) + k * (np.linalg.norm(tp) - np.linalg.norm(tm)) * tau)
    return np.array(out)


@pytest.mark.parametrize("climb", [False, True])
def test_band_force_matches_the_formula(minimal_mse, climb):
    from flowtools.landscape.paths import band_force

    rng = np.random.default_rng(4)
    R = np.linspace(0, 1, 7)[:, None] * rng.standard_normal(4) + 0.3 * rng.standard_normal((7, 4))
    F, E, top = band_force(minimal_mse, R, 0.7, climb)
    expected = _neb_force_numpy(minimal_mse, R, 0.7, climb)
    np.testing.assert_allclose(np.asarray(F), expected, rtol=1e-10, atol=1e-13)
    assert int(top) == 1 + int(np.argmax(np.asarray(E)[1:-1]))


def test_result_is_json(mb, tmp_path):
    from flowtools.io import read_json, write_json

    path = transition_path(mb, MIN_C, MIN_B)
    write_json(tmp_path / "path.json", path.to_dict())
    back = read_json(tmp_path / "path.json")
    assert back["status"] == "converged" and len(back["images"]) == 16
    assert back["saddle"]["signature"] == [1, 0, 1]
    search = saddle_search(mb, MIN_B, max_iter=100)
    write_json(tmp_path / "search.json", search.to_dict())
    assert read_json(tmp_path / "search.json")["status"] == search.status


def test_align_minimum_with_frozen_output_weights():
    """Safran–Shamir nets freeze every output weight at 1: permuting hidden neurons (rows of W) is still a
    symmetry, and the alignment undoes it; with unequal frozen weights it is not, and θ is returned."""
    problem = ft.problems.safran_shamir(3)
    rng = np.random.default_rng(4)
    theta = rng.standard_normal(problem.n_params)
    image = theta.reshape(3, 3)[[2, 0, 1]].ravel()
    np.testing.assert_allclose(align_minimum(problem, theta, image), theta, atol=1e-14)
    uneven = problem.freeze("W2", np.concatenate([np.zeros(9), [1.0, 2.0, 3.0]]))
    assert np.array_equal(align_minimum(uneven, theta, image), image)
