"""Data: reading files, teacher–student data, the shipped data set, the Gaussian population."""

import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft


# ----------------------------------------------------------------------------- load_xy
def test_load_xy_whitespace_and_comma(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.standard_normal((6, 3))
    ws = tmp_path / "ws.dat"
    ws.write_text("# x1 x2 y\n\n" + "\n".join("  ".join(f"{v:.17g}" for v in row) for row in arr) + "\n")
    cs = tmp_path / "cs.csv"
    cs.write_text("\n".join(",".join(f"{v:.17g}" for v in row) for row in arr) + "\n")
    for path in (ws, cs):
        data = ft.load_xy(path)
        np.testing.assert_array_equal(data.x, arr[:, :2])  # default: all but the last column are x
        np.testing.assert_array_equal(data.y, arr[:, 2:])
        assert (data.n, data.d_in, data.d_out) == (6, 2, 1)
        assert data.name == path.name
    one_in = ft.load_xy(cs, d_in=1)
    np.testing.assert_array_equal(one_in.x, arr[:, :1])
    np.testing.assert_array_equal(one_in.y, arr[:, 1:])


def test_load_xy_rejects_ragged_and_non_numeric(tmp_path):
    ragged = tmp_path / "ragged.dat"
    ragged.write_text("1 2\n3 4 5\n")
    with pytest.raises(ValueError, match="path=.*columns"):
        ft.load_xy(ragged)
    text = tmp_path / "text.dat"
    text.write_text("1 2\n3 abc\n")
    with pytest.raises(ValueError, match="path=.*non-numeric"):
        ft.load_xy(text)


def test_dataset_accepts_1d_arrays():
    data = ft.Dataset(np.arange(4.0), np.arange(4.0) ** 2)
    assert data.x.shape == (4, 1) and data.y.shape == (4, 1) and data.x.dtype == np.float64


# ----------------------------------------------------------------------------- shipped data
def test_maleknia_sato_data_set(published_data):
    assert (published_data.n, published_data.d_in, published_data.d_out) == (100, 1, 1)
    assert published_data.noise == 0.2
    x, y = published_data.x[:, 0], published_data.y[:, 0]
    # The teacher is T(x) = 2 tanh(x) and the noise has standard deviation ≈ τ = 0.2: with 100
    # samples the sample standard deviation lies within ±0.05 of τ with overwhelming probability.
    teacher_values = np.asarray(published_data.teacher(x[:, None]))[:, 0]
    np.testing.assert_allclose(teacher_values, 2 * np.tanh(x), rtol=1e-15)
    assert abs(np.std(y - 2 * np.tanh(x)) - 0.2) < 0.05
    # x ~ N(0, 1): mean within 4 standard errors, variance within ±40 %.
    assert abs(np.mean(x)) < 0.4 and 0.6 < np.var(x) < 1.4
    clean = ft.datasets.maleknia_sato(noiseless=True)
    np.testing.assert_array_equal(clean.x, published_data.x)
    np.testing.assert_allclose(clean.y[:, 0], 2 * np.tanh(x), rtol=1e-15)
    assert clean.noise == 0.0
    # The file reads the same through load_xy.
    np.testing.assert_array_equal(ft.load_xy(ft.datasets.MALEKNIA_SATO_PATH).y, published_data.y)


# ----------------------------------------------------------------------------- teachers
TEACHER = ft.MLP((2, 3, 1), "tanh", bias=True)
TEACHER_THETA = np.linspace(-1.0, 1.0, TEACHER.n_params)


def test_teacher_dataset_is_seeded():
    a = ft.teacher_dataset((TEACHER, TEACHER_THETA), 30, noise=0.1, seed=5)
    b = ft.teacher_dataset((TEACHER, TEACHER_THETA), 30, noise=0.1, seed=5)
    c = ft.teacher_dataset((TEACHER, TEACHER_THETA), 30, noise=0.1, seed=6)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.allclose(a.x, c.x)
    assert (a.n, a.d_in, a.d_out, a.noise) == (30, 2, 1, 0.1)


def test_teacher_dataset_targets_and_noise():
    n, noise = 4000, 0.3
    data = ft.teacher_dataset((TEACHER, TEACHER_THETA), n, noise=noise, seed=1)
    clean = np.asarray(TEACHER.apply(TEACHER_THETA, data.x))
    xi = data.y - clean
    # Noise: mean 0 and standard deviation `noise`, each within 5 standard errors.
    assert abs(xi.mean()) < 5 * noise / np.sqrt(n)
    assert abs(xi.std() / noise - 1) < 5 * np.sqrt(0.5 / n)
    # The noiseless set has y = T(x) exactly, and x is standard normal.
    np.testing.assert_allclose(data.noiseless().y, clean, rtol=1e-14, atol=1e-15)
    assert np.all(np.abs(data.x.mean(axis=0)) < 5 / np.sqrt(n))


def test_callable_teacher_needs_d_in():
    data = ft.teacher_dataset(lambda x: jnp.sin(x[:, 0]), 10, d_in=1, seed=0)
    np.testing.assert_allclose(data.y[:, 0], np.sin(data.x[:, 0]), rtol=1e-15)
    with pytest.raises(ValueError, match="d_in"):
        ft.teacher_dataset(lambda x: jnp.sin(x[:, 0]), 10)


# ----------------------------------------------------------------------------- population
def test_gauss_hermite_moments_1d():
    pop = ft.GaussianQuadrature.build(1)
    assert pop.method == "gauss_hermite"
    x, w = pop.x[:, 0], pop.weights
    # E[x^(2m)] = (2m − 1)!!, odd moments vanish: a Gauss rule integrates these polynomials exactly.
    for power, exact in [(0, 1.0), (1, 0.0), (2, 1.0), (3, 0.0), (4, 3.0), (6, 15.0), (8, 105.0)]:
        assert np.sum(w * x**power) == pytest.approx(exact, rel=1e-12, abs=1e-13)
    # A small rule is exact up to degree 2k − 1 and no further: with k = 3, E[x⁴] = 3 but E[x⁶] ≠ 15.
    small = ft.GaussianQuadrature.build(1, "gauss_hermite", n_nodes=3)
    assert np.sum(small.weights * small.x[:, 0] ** 4) == pytest.approx(3.0, rel=1e-14)
    assert np.sum(small.weights * small.x[:, 0] ** 6) != pytest.approx(15.0, rel=1e-3)


def test_gauss_hermite_moments_2d():
    pop = ft.GaussianQuadrature.build(2)
    assert pop.method == "gauss_hermite"
    x1, x2, w = pop.x[:, 0], pop.x[:, 1], pop.weights
    assert np.sum(w) == pytest.approx(1.0, rel=1e-14)
    assert np.sum(w * x1 * x2) == pytest.approx(0.0, abs=1e-14)
    assert np.sum(w * x1**2 * x2**2) == pytest.approx(1.0, rel=1e-12)
    assert np.sum(w * x1**4) == pytest.approx(3.0, rel=1e-12)
    assert np.sum(w * (x1 + x2) ** 4) == pytest.approx(12.0, rel=1e-12)  # x1 + x2 ~ N(0, 2): 3·2²


def test_population_method_choice():
    assert ft.GaussianQuadrature.build(3).method == "monte_carlo"
    mc = ft.GaussianQuadrature.build(3, n_samples=1000, seed=4)
    assert mc.x.shape == (1000, 3) and np.allclose(mc.weights, 1e-3)
    np.testing.assert_array_equal(mc.x, ft.GaussianQuadrature.build(3, n_samples=1000, seed=4).x)
    gh3 = ft.GaussianQuadrature.build(3, "gauss_hermite", n_nodes=5)
    assert gh3.x.shape == (125, 3)
    assert np.sum(gh3.weights * gh3.x[:, 2] ** 2) == pytest.approx(1.0, rel=1e-13)
