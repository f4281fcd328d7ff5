"""Deep linear builders: exact whitening, exact correlation, exact balancedness."""

import jax
import numpy as np
import pytest

from flowtools import MLP, Problem
from flowtools.deep_linear import balanced_init, orthogonal_init, whitened_dataset

SIGMA = np.diag([3.0, 2.0, 1.0])


@pytest.mark.parametrize("n", [None, 3, 50])
def test_whitened_dataset_is_exact(n):
    data = whitened_dataset(SIGMA, n=n, seed=1)
    m = data.n
    assert m == (3 if n is None else n)
    assert np.max(np.abs(data.x.T @ data.x / m - np.eye(3))) < 1e-13
    assert np.max(np.abs(data.y.T @ data.x / m - SIGMA)) < 1e-13


def test_whitened_dataset_rectangular_and_teacher():
    s = np.array([[2.0, 0.5, 0.0, 1.0], [0.0, 1.0, -1.0, 0.0]])
    data = whitened_dataset(s, n=7, seed=3)
    assert data.x.shape == (7, 4) and data.y.shape == (7, 2)
    assert np.max(np.abs(data.y.T @ data.x / 7 - s)) < 1e-13
    assert np.max(np.abs(np.asarray(data.teacher(data.x)) - data.y)) < 1e-13
    assert not np.allclose(whitened_dataset(s, n=7, seed=4).x, data.x)  # the seed matters


def test_whitened_dataset_errors():
    with pytest.raises(ValueError, match="n must be at least d_in"):
        whitened_dataset(SIGMA, n=2)
    with pytest.raises(ValueError, match="sigma_yx"):
        whitened_dataset(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="sigma_yx"):
        whitened_dataset(np.array([[np.nan, 1.0]]))


def _weights(model, theta):
    return [np.asarray(W) for W, _ in model.unflatten(np.asarray(theta))]


@pytest.mark.parametrize("widths", [(3, 3, 3), (3, 3, 3, 3), (4, 2, 5, 3)])
def test_balanced_init_is_balanced(widths):
    model = MLP(widths, "linear", bias=False)
    theta = balanced_init(model, 1e-2, jax.random.PRNGKey(0))
    Ws = _weights(model, theta)
    for W, W_next in zip(Ws, Ws[1:]):
        assert np.max(np.abs(W_next.T @ W_next - W @ W.T)) < 1e-12 * 1e-4 + 1e-18
    # every nonzero singular value of every layer is `scale`
    for W in Ws:
        sv = np.linalg.svd(W, compute_uv=False)
        assert np.allclose(sv[: min(widths)], 1e-2, rtol=1e-12)
    assert np.allclose(balanced_init(model, 1e-2, 0), balanced_init(model, 1e-2, 0))
    assert not np.allclose(balanced_init(model, 1e-2, 0), balanced_init(model, 1e-2, 1))


def test_balanced_init_relative_balance_at_unit_scale():
    model = MLP((3, 3, 3), "linear", bias=False)
    W1, W2 = _weights(model, balanced_init(model, 1.0, 5))
    assert np.max(np.abs(W2.T @ W2 - W1 @ W1.T)) < 1e-12


def test_orthogonal_init():
    model = MLP((3, 3, 3), "linear", bias=True)
    theta = orthogonal_init(model, 0.1, 2)
    Ws = _weights(model, theta)
    for W in Ws:
        assert np.max(np.abs(W @ W.T - 0.01 * np.eye(3))) < 1e-15
    for _, b in model.unflatten(np.asarray(theta)):
        assert np.all(np.asarray(b) == 0)
    rect = MLP((4, 2, 5), "linear", bias=False)
    for W in _weights(rect, orthogonal_init(rect, 0.5, 0)):
        assert np.allclose(np.linalg.svd(W, compute_uv=False), 0.5, rtol=1e-12)


def test_init_errors():
    model = MLP((3, 3, 3), "linear", bias=False)
    with pytest.raises(ValueError, match="scale"):
        balanced_init(model, -1.0, 0)
    with pytest.raises(TypeError, match="model"):
        orthogonal_init("3-3-3", 0.1, 0)
    with pytest.raises(TypeError, match="key"):
        balanced_init(model, 0.1, "seed")


def test_loss_depends_on_correlation_only():
    # With whitened inputs, half-MSE L = ½ tr(Σ_yy) − tr(Σ_yx W) + ½ ‖W‖_F² (W the end-to-end map).
    data = whitened_dataset(SIGMA, n=20, seed=0)
    model = MLP((3, 3, 3), "linear", bias=False)
    p = Problem(model, data)
    theta = balanced_init(model, 0.7, 1)
    W1, W2 = _weights(model, theta)
    W = W2 @ W1
    sigma_yy = data.y.T @ data.y / data.n
    expect = 0.5 * np.trace(sigma_yy) - np.trace(SIGMA.T @ W) + 0.5 * np.sum(W * W)
    assert abs(p.loss(theta) - expect) < 1e-12
