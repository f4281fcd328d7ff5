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
    pop = ft.GaussianQuadrature.build(10, "monte_carlo")
    assert not np.allclose(pop.x[:5], data.x[:5])
    p = ft.Problem(ft.MLP((10, 2, 2, 1), "erf", bias=False), data)
    assert p.population_method == "monte_carlo"
    th = p.model.init(1)
    assert 2 * p.loss(th) != pytest.approx(p.gen_error(th), rel=1e-6)
    assert abs(2 * p.loss(th) - p.gen_error(th)) < 5 * np.hypot(p.gen_error_stderr(th), p.gen_error_stderr(th))


def _teacher(act="erf", d=10, k=2, bias=False, seed=0):
    T = ft.MLP((d, k, 1), act, bias=bias)
    return T, np.asarray(T.init(seed, scale=1.0 / np.sqrt(d)))


def test_finite_data_gets_the_exact_risk():
    T, tt = _teacher("tanh", d=10, bias=True)
    data = ft.teacher_dataset((T, tt), 200, noise=0.1, seed=3)
    S = ft.MLP((10, 3, 1), "tanh", bias=True)
    p = ft.Problem(S, data)
    assert p.population_method == "exact" and p.gen_error_stderr(np.zeros(p.n_params)) == 0.0
    th = np.asarray(S.init(4, scale=0.4))
    R = p.gen_error(th)
    assert R == pytest.approx(float(gaussian.population_risk(S, th, T, tt)), rel=1e-14)
    x = np.random.default_rng(99).standard_normal((400_000, 10))
    sq = np.sum((np.asarray(S.apply(th, x)) - np.asarray(T.apply(tt, x))) ** 2, axis=-1)
    assert abs(R - sq.mean()) < 3 * sq.std() / np.sqrt(sq.size)
    # Low dimensions keep the Gauss–Hermite rule; a deeper student keeps Monte Carlo.
    T1 = ft.MLP((1, 2, 1), "tanh", bias=False)
    assert ft.Problem(T1, ft.teacher_dataset((T1, T1.init(0)), 20)).population_method == "gauss_hermite"
    deep = ft.MLP((10, 3, 2, 1), "tanh")
    assert ft.Problem(deep, data).population_method == "monte_carlo"


def test_population_problem_loss_grad_hessian():
    T, tt = _teacher("scaled_erf", d=6)
    src = ft.GaussianInputs((T, tt))
    S = ft.MLP((6, 2, 1), "scaled_erf", bias=False)
    p = ft.Problem(S, src)
    th = np.asarray(S.init(1, scale=0.4))
    R = float(gaussian.population_risk(S, th, T, tt))
    assert p.loss(th) == pytest.approx(0.5 * R, rel=1e-14) and p.gen_error(th) == pytest.approx(R, rel=1e-14)
    assert p.with_loss("mse").loss(th) == pytest.approx(R, rel=1e-14)
    assert isinstance(p.with_loss("mse").source, ft.GaussianInputs)
    h = 1e-6
    fd = np.array([(p.loss(th + h * e) - p.loss(th - h * e)) / (2 * h) for e in np.eye(th.size)])
    np.testing.assert_allclose(p.grad(th), fd, rtol=1e-6, atol=1e-9)
    H = p.hessian(th)
    fdH = np.stack([(p.grad(th + h * e) - p.grad(th - h * e)) / (2 * h) for e in np.eye(th.size)])
    np.testing.assert_allclose(H, fdH, rtol=1e-5, atol=1e-8)
    v = np.random.default_rng(0).normal(size=th.size)
    np.testing.assert_allclose(p.hvp(th, v), H @ v, rtol=1e-10, atol=1e-12)
    # The teacher itself is a global minimum: R = 0, ∇L = 0, H ⪰ 0.
    pt = ft.Problem(T, src)
    assert pt.gen_error(tt) < 1e-14 and pt.grad_norm(tt) < 1e-12
    assert np.linalg.eigvalsh(pt.hessian(tt)).min() > -1e-12


def test_population_flow_reaches_the_teacher_and_frozen_layers_work():
    # The soft committee machine, K = M = 2, d = 10, second layer frozen at 1: the flow from small init
    # ends at the teacher (R → 0) up to permutation.
    d = 10
    T = ft.MLP((d, 2, 1), "scaled_erf", bias=False)
    W = np.random.default_rng(0).standard_normal((2, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)  # unit teacher vectors: overlaps T_nm = w_n·w_m
    tt = np.asarray(T.flatten([(W, None), (np.ones((1, 2)), None)]))
    S = ft.MLP((d, 2, 1), "scaled_erf", bias=False)
    th0 = np.array(S.init(3, scale=1e-2 / np.sqrt(d)))
    th0[-2:] = 1.0
    p = ft.Problem(S, ft.GaussianInputs((T, tt)), frozen="W2", frozen_at=th0)
    assert p.n_params == 2 * d
    tr = ft.gradient_flow(p, p.free_theta(th0), 2e3)
    assert tr.gen_error[-1] < 1e-8 * tr.gen_error[0]
    gd = ft.gradient_descent(p, p.free_theta(th0), 0.5, 200)
    assert gd.loss[-1] < gd.loss[0]
