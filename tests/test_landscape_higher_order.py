"""Higher-order saddles: positive semidefinite singular Hessians decided by the reduced-descent test."""

import numpy as np
import pytest

import flowtools as ft
from flowtools.data import Dataset
from flowtools.landscape import (
    classify,
    classify_point,
    critical_point_at,
    higher_order_test,
    unstable_manifold,
)

SIGMA = np.diag([3.0, 2.0, 1.0])


def _deep_linear(depth):
    """3-3-…-3 linear net without bias on exactly whitened inputs with Σ_yx = diag(3, 2, 1)."""
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))
    x = np.sqrt(3.0) * q
    model = ft.MLP((3,) * (depth + 1), "linear", bias=False)
    return ft.Problem(model, Dataset(x, x @ SIGMA.T)), model


def _balanced(model, singular_values):
    """W_l = diag(s)^(1/L): the balanced critical point that has learned the modes s."""
    L = model.n_layers
    theta = np.zeros(model.n_params)
    for sl in model.layout:
        theta[sl.W[0]:sl.W[1]] = np.diag(np.asarray(singular_values, float) ** (1.0 / L)).ravel()
    return theta


@pytest.fixture(scope="module")
def depth3():
    return _deep_linear(3)


def test_depth3_origin_and_rank1_are_higher_order_saddles(depth3):
    problem, model = depth3
    for s in ([0, 0, 0], [3, 0, 0]):
        theta = _balanced(model, s)
        cp = critical_point_at(problem, theta)
        assert cp.grad_norm < 1e-12
        assert cp.signature[0] == 0 and cp.signature[1] > 0  # second order cannot tell
        assert cp.kind == "higher_order_saddle", cp.higher_order.message
        E = cp.escape_directions
        assert E.shape[0] == problem.n_params and E.shape[1] >= 1
        np.testing.assert_allclose(np.linalg.norm(E, axis=0), 1.0, rtol=1e-12)
        # the loss really drops along each escape direction, and at third order
        for r in (1e-3, 1e-2):
            assert all(problem.loss(theta + r * E[:, j]) < cp.loss - 1e-3 * r**3 for j in range(E.shape[1]))
        assert 2.5 < cp.higher_order.order < 3.5


def test_depth3_global_minimum_stays_degenerate_minimum(depth3):
    problem, model = depth3
    theta = _balanced(model, [3, 2, 1])
    cp = critical_point_at(problem, theta)
    assert cp.loss < 1e-25 and cp.signature[1] > 0  # the GL(3) symmetry gives a kernel
    assert cp.kind == "degenerate_minimum" and cp.escape_directions is None
    assert cp.higher_order is not None and cp.higher_order.applicable and not cp.higher_order.saddle


def test_depth2_origin_is_an_ordinary_saddle():
    problem, model = _deep_linear(2)
    cp = critical_point_at(problem, np.zeros(problem.n_params))
    assert cp.kind == "saddle" and cp.signature == (9, 0, 9)
    assert cp.higher_order is None


def test_classify_signature_only_and_with_point(depth3):
    problem, model = depth3
    assert classify((0, 27, 0)) == "degenerate_minimum"  # no point given: second order only
    assert classify((0, 27, 0), problem=problem, theta=np.zeros(problem.n_params)) == "higher_order_saddle"
    assert classify((2, 1, 3), problem=problem, theta=np.zeros(problem.n_params)) == "degenerate_saddle"
    assert classify((0, 1, 3), False) == "slow_region"
    kind, test = classify_point(problem, _balanced(model, [3, 2, 0]))
    assert kind == "higher_order_saddle" and test.saddle


@pytest.mark.slow  # flows to the minimum with a fresh compilation: ~50 s on the loaded test machine
def test_unstable_manifold_of_a_higher_order_saddle(depth3):
    problem, model = depth3
    cp = critical_point_at(problem, _balanced(model, [3, 2, 0]))
    assert cp.kind == "higher_order_saddle"
    um = unstable_manifold(problem, cp, delta=3e-2, t1=2e3, gtol=1e-9)
    assert [b.label[0] for b in um.branches] == ["e"] * cp.escape_directions.shape[1]
    # every escape direction leads down, to the global minimum L = 0
    assert all(b.loss < 1e-12 for b in um.branches)
    assert {um.targets[b.target].kind for b in um.branches} == {"degenerate_minimum"}


def test_higher_order_test_rejects_bad_options(depth3):
    problem, _ = depth3
    with pytest.raises(ValueError, match="radii"):
        higher_order_test(problem, np.zeros(problem.n_params), radii=(0.01, -1.0))
    with pytest.raises(ValueError, match="theta"):
        higher_order_test(problem, np.zeros(5))
