"""The problem zoo (`flowtools.problems`) builds what the papers describe, checked independently (numpy on
the raw data file, closed-form Gaussian integrals, scipy quadrature), and rejects bad arguments clearly;
`saddle_graph` is the itinerary + `add_to_graph` loop."""

import numpy as np
import pytest
from scipy import integrate

import flowtools as ft
from flowtools import problems as P
from flowtools.datasets import MALEKNIA_SATO_PATH


def _raw_maleknia_sato():
    xy = np.loadtxt(MALEKNIA_SATO_PATH)
    return xy[:, 0], xy[:, 1]


def test_minimal_model_is_the_published_data_and_loss():
    x, y = _raw_maleknia_sato()
    assert x.size == 100
    p = P.minimal_model()
    assert p.n_params == 4
    w1, w2, v1, v2 = P.MINIMAL_MODEL_THETA0
    by_hand = np.mean((v1 * np.tanh(w1 * x) + v2 * np.tanh(w2 * x) - y) ** 2)  # the reference code's mean
    assert p.loss(P.MINIMAL_MODEL_THETA0) == pytest.approx(by_hand, rel=1e-13)
    half = P.minimal_model(loss="half_mse")
    assert half.loss(P.MINIMAL_MODEL_THETA0) == pytest.approx(by_hand / 2, rel=1e-13)


def test_minimal_model_origin_is_the_index_two_saddle():
    """At θ = 0 the gradient vanishes and the half-mean Hessian has eigenvalues ±mean(x·y), each twice."""
    x, y = _raw_maleknia_sato()
    p = P.minimal_model(loss="half_mse")
    assert np.max(np.abs(p.grad(np.zeros(4)))) < 1e-15
    m = np.mean(x * y)
    np.testing.assert_allclose(np.linalg.eigvalsh(p.hessian(np.zeros(4))), [-m, -m, m, m], rtol=1e-12)


def test_noiseless_minimal_model_has_the_split_teacher_as_a_zero_loss_critical_point():
    p = P.minimal_model(noiseless=True)
    split = np.array([1.0, 1.0, 0.7, 1.3])  # w1 = w2 = 1, v1 + v2 = 2: 2 tanh(x) split in two
    assert p.loss(split) < 1e-28
    assert np.max(np.abs(p.grad(split))) < 1e-14
    assert p.gen_error(split) < 1e-20


def test_fukumizu_amari_target_data_and_population_error():
    p = P.fukumizu_amari(n=50, input_std=1.5, seed=3)
    x = 1.5 * np.random.default_rng(3).standard_normal((50, 1))
    np.testing.assert_allclose(p.data.x, x, rtol=0, atol=0)
    np.testing.assert_allclose(p.data.y, 2 * np.tanh(x) - np.tanh(4 * x), rtol=1e-14, atol=1e-15)
    assert P.fukumizu_amari(width=1).n_params == 2
    # R(0) = E (T(x))² under x ~ N(0, 1.5²), by adaptive quadrature.
    s = 1.5
    r0, _ = integrate.quad(lambda u: (2 * np.tanh(u) - np.tanh(4 * u)) ** 2
                           * np.exp(-u * u / (2 * s * s)) / np.sqrt(2 * np.pi * s * s), -np.inf, np.inf,
                           epsabs=1e-13)
    # The default Gauss–Hermite rule is off by 1.2e-6 relative here (tanh(4x) has poles near the real
    # axis); R under N(0, 1²) instead of N(0, 1.5²) would be 41% smaller.
    assert p.gen_error(np.zeros(4)) == pytest.approx(r0, rel=5e-6)


def test_random_teacher_is_seeded_unit_norm_with_output_weights_one():
    model, theta = P.random_teacher(5, 3, seed=7)
    w = np.random.default_rng(7).standard_normal((3, 5))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    np.testing.assert_array_equal(theta, np.concatenate([w.ravel(), np.ones(3)]))
    assert model.d_in == 5 and model.n_params == 5 * 3 + 3


@pytest.mark.parametrize("teacher", ["random", "orthonormal"])
@pytest.mark.parametrize("data", ["finite", "population"])
def test_teacher_student_at_the_teacher_is_a_zero_loss_critical_point(teacher, data):
    p = P.teacher_student(4, 2, 2, teacher=teacher, data=data, activation="erf")
    assert p.n_params == 4 * 2 + 2
    t_model, theta_t = (P.orthonormal_teacher(4, 2, "erf") if teacher == "orthonormal"
                        else P.random_teacher(4, 2, "erf", seed=0))
    assert p.loss(theta_t) < 1e-24
    assert np.max(np.abs(p.grad(theta_t))) < 1e-12
    assert p.gen_error(theta_t) < 1e-20
    assert p.loss(np.zeros(p.n_params)) > 0.1


def test_teacher_student_frozen_second_layer_and_finite_data():
    p = P.teacher_student(6, 2, 3, data="finite", n=50, noise=0.1, data_seed=4, frozen_second_layer=True)
    assert p.n_params == 6 * 3
    np.testing.assert_array_equal(p.full_theta(np.zeros(18))[-3:], np.ones(3))
    t_model, theta_t = P.random_teacher(6, 2, "tanh", seed=0)
    d = ft.teacher_dataset((t_model, theta_t), 50, noise=0.1, seed=4)
    np.testing.assert_array_equal(p.data.y, d.y)


def test_teacher_student_checks_gaussian_method_also_for_finite_data():
    with pytest.raises(ValueError, match="gaussian_method='bogus' is not supported"):
        P.teacher_student(4, 2, 2, data="finite", gaussian_method="bogus")


def test_soft_committee_matches_the_saad_solla_closed_form():
    """For g(u) = erf(u/√2) and orthonormal teacher vectors, E g(w*_n·x) g(w*_m·x) = (2/π) arcsin(δ_nm/2),
    so at W = 0 the population loss is ½ K/3 (Saad & Solla 1995: the arcsine formula with Q = R = 0)."""
    K, d = 3, 8
    p = P.soft_committee(K, d, seed=5)
    assert p.n_params == K * d
    model, theta_t = P.soft_committee_teacher(K, d, seed=5)
    Wt = theta_t[:K * d].reshape(K, d)
    np.testing.assert_allclose(Wt @ Wt.T, np.eye(K), atol=1e-14)
    assert p.loss(np.zeros(K * d)) == pytest.approx(K / 6, rel=1e-12)
    assert p.loss(Wt.ravel()) < 1e-24
    finite = P.soft_committee(K, d, seed=5, n=300)
    assert finite.data.n == 300 and finite.n_params == K * d


def test_deep_linear_is_whitened_with_the_prescribed_modes():
    s = (3.0, 2.0, 1.0)
    p = P.deep_linear(3, s)
    assert p.n_params == 3 * 9
    x, y = np.asarray(p.data.x), np.asarray(p.data.y)
    n = x.shape[0]
    np.testing.assert_allclose(x.T @ x / n, np.eye(3), atol=1e-13)
    np.testing.assert_allclose(y.T @ x / n, np.diag(s), atol=1e-13)
    # At W = 0, L = ½ (1/n) Σ_k ‖y_k‖² = ½ tr Σ_yx Σ_xyᵀ = ½ Σ_α s_α² (Saxe et al. 2014, whitened inputs).
    assert p.loss(np.zeros(27)) == pytest.approx(0.5 * np.sum(y ** 2) / n, rel=1e-13)
    assert p.loss(np.zeros(27)) == pytest.approx(0.5 * sum(v * v for v in s), rel=1e-13)


def test_digits_problem_shapes():
    p = P.digits(4, n_train=120, n_test=60, seed=2)
    assert p.n_params == 64 * 4 + 4 + 4 * 10 + 10
    assert p.data.n == 120 and p.test_data.n == 60
    assert P.digits(4, n_train=120, n_test=60, loss="mse").data.y.shape == (120, 10)


@pytest.mark.parametrize("build, words", [
    (lambda: P.minimal_model(loss="l1"), "loss"),
    (lambda: P.minimal_model(width=0), "width"),
    (lambda: P.fukumizu_amari(input_std=-1.0), "input_std"),
    (lambda: P.fukumizu_amari(n=2.5), "n"),
    (lambda: P.random_teacher(3, 2, seed=-1), "seed"),
    (lambda: P.teacher_student(teacher="gaussian"), "teacher"),
    (lambda: P.teacher_student(data="online"), "data"),
    (lambda: P.teacher_student(2, 3, teacher="orthonormal"), "d ≥ k"),
    (lambda: P.teacher_student(bias=True, frozen_second_layer=True), "bias=False"),
    (lambda: P.soft_committee(5, 3), "d ≥ K"),
    (lambda: P.deep_linear(2, (1.0, -1.0)), "singular_values"),
    (lambda: P.deep_linear(0), "depth"),
    (lambda: P.digits(0), "hidden"),
])
def test_bad_arguments_name_themselves(build, words):
    with pytest.raises((ValueError, TypeError), match=words):
        build()


def test_saddle_graph_is_the_itinerary_and_add_to_graph_loop():
    p = P.minimal_model()
    runs = {f"r{i}": ft.gradient_flow(p, P.MINIMAL_MODEL_THETA0 * (1 + 0.1 * i), 2e3) for i in range(2)}
    graph, itins = ft.saddle_graph(p, runs)
    by_hand = ft.SaddleGraph()
    for name, tr in runs.items():
        it = ft.itinerary(p, tr)
        ft.add_to_graph(by_hand, it, run=name)
        assert it.kinds == itins[name].kinds
    assert list(itins) == ["r0", "r1"]
    assert sorted(graph.graph.nodes) == sorted(by_hand.graph.nodes)
    assert sorted(graph.graph.edges) == sorted(by_hand.graph.edges)
    assert [v.node for v in itins["r1"].visits] == itins["r1"].nodes
    g2, its2 = ft.saddle_graph(p, list(runs.values()), graph=ft.SaddleGraph())
    assert list(its2) == ["0", "1"] and sorted(g2.graph.nodes) == sorted(graph.graph.nodes)
    with pytest.raises(TypeError, match="runs"):
        ft.saddle_graph(p, runs["r0"])
    with pytest.raises(TypeError, match="Trajectory"):
        ft.saddle_graph(p, {"a": np.zeros(4)})


@pytest.mark.parametrize("data", ["finite", "population"])
def test_sweeps_build_the_zoo_teacher_student(data):
    cfg = dict(problem="teacher_student", data=data, d_in=3, teacher_width=2, width=3, n=30, noise=0.1,
               data_seed=2, teacher_seed=1, activation="erf")
    swept, _ = ft.sweeps.make_problem(cfg)
    zoo = P.teacher_student(3, 2, 3, data=data, n=30, noise=0.1, data_seed=2, teacher_seed=1, activation="erf")
    theta = np.random.default_rng(0).standard_normal(zoo.n_params)
    assert swept.n_params == zoo.n_params
    assert swept.loss(theta) == zoo.loss(theta)
    np.testing.assert_array_equal(swept.grad(theta), zoo.grad(theta))
