"""Problem: L, ∇L, Hessian-vector products, Hessians and R(θ), checked against finite differences,
hand-written formulas and independent quadrature."""

import jax
import numpy as np
import pytest
import scipy.integrate

import flowtools as ft

H_FD = 1e-5  # central differences: truncation O(h²) ≈ 1e-10, rounding O(ε/h) ≈ 1e-11


def fd_problem(activation, bias, hidden):
    widths = (2, 3, 1) if hidden == 1 else (2, 3, 2, 1)
    model = ft.MLP(widths, activation, bias=bias)
    rng = np.random.default_rng([len(activation), int(bias), hidden])
    x = rng.standard_normal((16, 2))
    y = np.sin(x[:, :1]) + 0.3 * x[:, 1:] ** 2
    problem = ft.Problem(model, ft.Dataset(x, y), "half_mse")
    theta = 0.8 * rng.standard_normal(model.n_params)
    return problem, theta


def central_differences(fn, theta, h):
    """Row i: (fn(θ + h e_i) − fn(θ − h e_i)) / 2h."""
    eye = np.eye(theta.size)
    return np.array([(np.asarray(fn(theta + h * e)) - np.asarray(fn(theta - h * e))) / (2 * h) for e in eye])


# Four activations, one from each class of φ_σ(z) = z σ'(z) − σ(z) near 0 (odd: tanh; ~z²: gelu, silu;
# φ(0) ≠ 0: softplus), on every combination of bias and depth; erf and sigmoid on two of them.
FD_CASES = [(a, b, h) for a in ["tanh", "softplus", "gelu", "silu"] for b in (False, True) for h in (1, 2)]
FD_CASES += [("erf", False, 1), ("erf", True, 2), ("sigmoid", False, 2), ("sigmoid", True, 1)]


@pytest.mark.parametrize("activation, bias, hidden", FD_CASES)
def test_derivatives_match_finite_differences(activation, bias, hidden):
    problem, theta = fd_problem(activation, bias, hidden)

    g = problem.grad(theta)
    g_fd = central_differences(problem.loss, theta, H_FD)
    assert np.linalg.norm(g) > 1e-2  # a generic point, not a critical one
    assert np.linalg.norm(g_fd - g) <= 1e-7 * np.linalg.norm(g)

    H = problem.hessian(theta)
    H_fd = central_differences(problem.grad, theta, H_FD)  # row i = ∂∇L/∂θ_i
    assert np.linalg.norm(H_fd - H) <= 1e-7 * np.linalg.norm(H)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-13 * np.abs(H).max())

    v = np.random.default_rng(0).standard_normal(theta.size)
    Hv = H @ v
    np.testing.assert_allclose(problem.hvp(theta, v), Hv, rtol=0, atol=1e-12 * np.linalg.norm(Hv))


def test_value_and_grad_and_grad_norm(minimal_half):
    theta = np.array([0.3, -0.8, 1.2, 0.5])
    loss, g = minimal_half.value_and_grad(theta)
    assert loss == minimal_half.loss(theta)
    np.testing.assert_allclose(g, minimal_half.grad(theta), rtol=1e-15, atol=1e-17)
    assert minimal_half.grad_norm(theta) == pytest.approx(np.linalg.norm(g), rel=1e-15)


# ----------------------------------------------------------------------------- minimal model
def minimal_loss_by_hand(theta, x, y, convention):
    w1, w2, v1, v2 = theta
    r = v1 * np.tanh(w1 * x) + v2 * np.tanh(w2 * x) - y
    return np.mean(r**2) * (0.5 if convention == "half_mse" else 1.0)


def test_minimal_loss_by_hand(minimal_mse, minimal_half, published_data):
    x, y = published_data.x[:, 0], published_data.y[:, 0]
    for theta in [np.array([-0.13, 0.13, 0.16, -0.15]), np.array([1.0, -2.0, 0.5, 3.0])]:
        assert minimal_mse.loss(theta) == pytest.approx(minimal_loss_by_hand(theta, x, y, "mse"), rel=1e-13)
        assert minimal_half.loss(theta) == pytest.approx(minimal_loss_by_hand(theta, x, y, "half_mse"),
                                                         rel=1e-13)


def test_loss_conventions_differ_by_two(minimal_mse, minimal_half):
    theta = np.array([0.4, -1.1, 0.9, 0.2])
    assert minimal_mse.loss(theta) == pytest.approx(2 * minimal_half.loss(theta), rel=1e-14)
    np.testing.assert_allclose(minimal_mse.grad(theta), 2 * minimal_half.grad(theta), rtol=1e-13)
    np.testing.assert_allclose(minimal_mse.hessian(theta), 2 * minimal_half.hessian(theta), rtol=1e-12,
                               atol=1e-15)
    assert minimal_mse.loss_scale == pytest.approx(1 / 100)
    assert minimal_half.loss_scale == pytest.approx(1 / 200)
    assert minimal_half.with_loss("mse").loss(theta) == pytest.approx(minimal_mse.loss(theta), rel=1e-15)


def test_origin_is_an_index_two_saddle(minimal_half, published_data):
    # REFERENCES §1: at θ = 0 the gradient vanishes and the half-mean Hessian has eigenvalues
    # ±mean(x·y), each twice. (Derivation: ∂²L/∂w_i∂v_i = −mean(x y); all other entries vanish.)
    theta = np.zeros(4)
    np.testing.assert_array_equal(minimal_half.grad(theta), 0.0)
    c = float(np.mean(published_data.x[:, 0] * published_data.y[:, 0]))
    eig = np.sort(np.linalg.eigvalsh(minimal_half.hessian(theta)))
    np.testing.assert_allclose(eig, [-abs(c), -abs(c), abs(c), abs(c)], rtol=1e-12)
    assert abs(c) > 0.1


def test_gen_error_matches_quadrature(minimal_half):
    # R(θ) = ∫ (f(x; θ) − 2 tanh x)² φ(x) dx by adaptive quadrature, independent of Gauss–Hermite.
    assert minimal_half.population_method == "gauss_hermite"
    for theta in [np.array([-0.13, 0.13, 0.16, -0.15]), np.array([2.1, -0.5, 0.7, -1.6]), np.zeros(4)]:
        w1, w2, v1, v2 = theta

        def integrand(x):
            f = v1 * np.tanh(w1 * x) + v2 * np.tanh(w2 * x)
            return (f - 2 * np.tanh(x)) ** 2 * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)

        R_quad, err = scipy.integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13)
        assert minimal_half.gen_error(theta) == pytest.approx(R_quad, rel=1e-10, abs=1e-13)
        assert minimal_half.gen_error_stderr(theta) == 0.0
    # At θ = 0, f = 0 and R = E[4 tanh²(x)] > 0; the noiseless teacher itself has R = 0 at the
    # parameters of T: one neuron (w, v) = (1, 2), the other switched off.
    assert minimal_half.gen_error(np.array([1.0, 0.3, 2.0, 0.0])) == pytest.approx(0.0, abs=1e-15)


def test_gen_error_monte_carlo_against_independent_sample():
    # d_in = 3: the population is Monte Carlo; compare with an independent, larger sample.
    teacher_model = ft.MLP((3, 2, 1), "tanh", bias=False)
    t_theta = np.array([1.0, -0.5, 0.3, 0.2, 0.8, -1.0, 1.5, -0.7])
    data = ft.teacher_dataset((teacher_model, t_theta), 50, noise=0.1, seed=1)
    student = ft.MLP((3, 4, 1), "tanh", bias=True)
    problem = ft.Problem(student, data)
    assert problem.population_method == "monte_carlo"
    theta = 0.5 * np.random.default_rng(4).standard_normal(student.n_params)
    R, se = problem.gen_error(theta), problem.gen_error_stderr(theta)
    assert 0 < se < 0.05 * R

    rng = np.random.default_rng(2024)  # a different stream from the population's seed
    x = rng.standard_normal((500_000, 3))
    residual = jax.jit(lambda th, x: student.apply(th, x) - teacher_model.apply(t_theta, x))
    sq = np.asarray(residual(theta, x)) ** 2
    R_big, se_big = sq.mean(), sq.std(ddof=1) / np.sqrt(sq.size)
    assert abs(R - R_big) <= 4 * np.hypot(se, se_big)


def test_gen_error_needs_a_teacher():
    model = ft.MLP((1, 2, 1), "tanh", bias=False)
    problem = ft.Problem(model, ft.Dataset(np.linspace(-1, 1, 5), np.zeros(5)))
    assert not problem.has_population
    with pytest.raises(ValueError, match="teacher"):
        problem.gen_error(np.zeros(4))


def test_predict_shapes(minimal_half):
    theta = np.array([0.5, -0.2, 1.0, 2.0])
    xs = np.linspace(-3, 3, 7)
    out = minimal_half.predict(theta, xs)
    assert out.shape == (7, 1)
    np.testing.assert_allclose(out[:, 0], np.tanh(0.5 * xs) + 2 * np.tanh(-0.2 * xs), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(minimal_half.predict(theta, xs[:, None]), out)
