"""Neuron splitting: stationarity, embeddings, the inner Hessian, and the predicted Morse index.

The prediction (flowtools/splitting.py): splitting neuron r of a stationary point with coefficients λ
(Σ λ_j = 1) gives a stationary point of the wide net with n_neg = n_neg(narrow) + (p − 1)·h₋ + q·h₊, p and
q the numbers of positive and negative λ_j, h₊ and h₋ those of positive and negative eigenvalues of the
inner Hessian H_in. Every test compares with the full Hessian of the wide net (autodiff, dense).
"""

import itertools
import math

import numpy as np
import pytest

import flowtools as ft
from flowtools import splitting as sp
from flowtools.landscape import find_critical_point, reduce_network

RTOL_ZERO = 1e-7  # the toolkit's zero tolerance (landscape.DEFAULT_RTOL_ZERO)


def signature(H, rtol=RTOL_ZERO):
    ev = np.linalg.eigvalsh(0.5 * (H + H.T))
    tol = rtol * np.max(np.abs(ev))
    return int(np.sum(ev < -tol)), int(np.sum(np.abs(ev) <= tol)), int(np.sum(ev > tol)), ev, tol


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def minimal_narrow():
    """The 1-1-1 optimum on the published data set (Maleknia & Sato): f = v tanh(w x), half_mse."""
    problem = ft.problems.minimal_model(width=1, loss="half_mse")
    cp = find_critical_point(problem, np.array([1.0, 2.0]))
    assert cp.success and cp.kind == "minimum", cp
    return problem, cp


@pytest.fixture(scope="module")
def fa_narrow():
    """The 1-1-1 optimum for the Fukumizu–Amari target 2 tanh(x) − tanh(4x) on x ~ N(0, 4): H_in > 0."""
    problem = ft.problems.fukumizu_amari(n=100, input_std=2.0, seed=0, width=1)
    cp = find_critical_point(problem, np.array([0.46, 1.15]))
    assert cp.success and cp.kind == "minimum", cp
    return problem, cp


@pytest.fixture(scope="module")
def biased_narrow():
    """A 2-1-1 tanh net with biases on teacher data: a nondegenerate minimum with an indefinite H_in."""
    teacher = ft.MLP((2, 2, 1), "tanh", bias=True)
    data = ft.teacher_dataset((teacher, np.array([1.0, -0.5, -0.7, 1.2, 0.3, 0.8, 1.5, -1.0, 0.1])), 40,
                              seed=3)
    problem = ft.Problem(ft.MLP((2, 1, 1), "tanh", bias=True), data)
    cp = find_critical_point(problem, np.array([0.677, -0.5721, -0.0483, 2.5678, 0.0671]))
    assert cp.success and cp.kind == "minimum", cp
    return problem, cp


def wide_problem(problem, wide_model):
    return ft.Problem(wide_model, problem.data, problem.loss_convention)


# ------------------------------------------------------------------------------ split points
@pytest.mark.parametrize("coefficients", [[0.5, 0.5], [0.2, 0.8], [-1.0, 2.0], [1.7, -0.7],
                                          [0.2, 0.3, 0.5], [1.5, -0.8, 0.3]])
def test_split_points_are_stationary_and_compute_the_same_function(minimal_narrow, biased_narrow,
                                                                   coefficients):
    for problem, cp in (minimal_narrow, biased_narrow):
        wide, theta = sp.split_neuron(problem.model, cp.theta, 0, coefficients)
        assert wide.widths[1] == problem.model.widths[1] + len(coefficients) - 1
        pw = wide_problem(problem, wide)
        assert pw.grad_norm(theta) <= 1e-10
        probe = np.random.default_rng(1).normal(size=(50, problem.model.d_in)) * 2
        for x in (np.asarray(problem.x), probe):
            np.testing.assert_allclose(pw.predict(theta, x), problem.predict(cp.theta, x), atol=1e-13)
        assert pw.loss(theta) == pytest.approx(cp.loss, rel=1e-12)
        # The split point reduces back to the narrow widths (landscape.symmetry.reduce_network).
        red = reduce_network(wide, theta)
        assert red.widths == problem.model.widths


def test_split_line_rows_match_split_neuron(minimal_narrow):
    problem, cp = minimal_narrow
    lambdas = np.array([-1.0, 0.25, 2.0])
    wide, rows = sp.split_line(problem.model, cp.theta, 0, lambdas)
    assert wide.widths == (1, 2, 1) and rows.shape == (3, 4)
    w, v = cp.theta
    for lam, row in zip(lambdas, rows):
        np.testing.assert_allclose(row, [w, w, lam * v, (1 - lam) * v], rtol=1e-15)


# ------------------------------------------------------------------------------- embeddings
@pytest.mark.parametrize("r,m", [(1, 1), (1, 3), (2, 4), (3, 5)])
def test_embeddings_enumerate_all_splits_and_zero_neurons(r, m):
    model = ft.MLP((2, r, 1), "tanh", bias=True)
    theta = np.asarray(model.init(7))
    embs = sp.embeddings(model, theta, m)
    # Multisets of size m − r from r neurons plus "zero neuron": C(m, m − r) of them, all distinct.
    assert len(embs) == math.comb(m, m - r)
    keys = {(e.copies, e.zeros) for e in embs}
    assert len(keys) == len(embs)
    expected = {(tuple(1 + extra.count(i) for i in range(r)), extra.count(r))
                for extra in itertools.combinations_with_replacement(range(r + 1), m - r)}
    assert keys == expected
    x = np.random.default_rng(0).normal(size=(30, 2))
    data = ft.Dataset(x, np.zeros((30, 1)))
    f_narrow = ft.Problem(model, data).predict(theta, x)
    for e in embs:
        assert e.model.widths == (2, m, 1) and sum(e.copies) + e.zeros == m
        np.testing.assert_allclose(ft.Problem(e.model, data).predict(e.theta, x), f_narrow, atol=1e-13)
        assert reduce_network(e.model, e.theta).widths == model.widths


def test_embeddings_of_a_stationary_point_are_stationary(minimal_narrow):
    # tanh(0) = 0, so a zero neuron with zero input weights is stationary too.
    problem, cp = minimal_narrow
    embs = sp.embeddings(problem.model, cp.theta, 3)
    assert {(e.copies, e.zeros) for e in embs} == {((3,), 0), ((2,), 1), ((1,), 2)}
    for e in embs:
        pw = wide_problem(problem, e.model)
        assert pw.grad_norm(e.theta) <= 1e-10
        assert pw.loss(e.theta) == pytest.approx(cp.loss, rel=1e-12)


# ---------------------------------------------------------------------------- inner Hessian
def test_inner_hessian_matches_closed_form_for_tanh(minimal_narrow):
    problem, cp = minimal_narrow
    w, v = cp.theta
    x, y = np.asarray(problem.x)[:, 0], np.asarray(problem.y)[:, 0]
    e = v * np.tanh(w * x) - y
    t = np.tanh(w * x)
    d2 = -2.0 * t * (1.0 - t**2)  # tanh''
    expected = v * np.mean(e * d2 * x**2)  # half_mse: 2c = 1/n
    H_in = sp.inner_hessian(problem, cp.theta, 0)
    assert H_in.shape == (1, 1)
    assert H_in[0, 0] == pytest.approx(expected, rel=1e-12)
    # h < 0 on the published data set (docs/landscape.md).
    assert H_in[0, 0] < 0
    # The "mse" convention doubles the loss and so H_in.
    assert sp.inner_hessian(problem.with_loss("mse"), cp.theta, 0)[0, 0] == pytest.approx(2 * expected,
                                                                                          rel=1e-12)


@pytest.mark.parametrize("loss", ["half_mse", "mse"])
@pytest.mark.parametrize("lam0", [0.3, -0.6, 1.8])
def test_second_derivative_along_a_two_copy_split_perturbation(minimal_narrow, biased_narrow, loss, lam0):
    """L(θ_split + s·u) with u_0 = λ_1 b, u_1 = −λ_0 b on the copies' input weights (and biases).

    The function is unchanged to first order (λ_0 u_0 + λ_1 u_1 = 0) and changes at second order by
    ½ v σ''(w·x̃) Σ_j λ_j (u_j·x̃)² = ½ v σ'' λ_0 λ_1 (λ_1 + λ_0)(b·x̃)², so with L = c Σ ‖f − y‖² and
    H_in = 2c Σ e v σ'' x̃ x̃ᵀ: d²L/ds² = Σ_j λ_j u_jᵀ H_in u_j = λ_0 λ_1 bᵀ H_in b, exactly.
    """
    lam = np.array([lam0, 1.0 - lam0])
    for base, cp in (minimal_narrow, biased_narrow):
        problem = base.with_loss(loss)
        wide, theta = sp.split_neuron(problem.model, cp.theta, 0, lam)
        pw = wide_problem(problem, wide)
        fan_in = problem.model.d_in + problem.model.bias[0]
        b = np.random.default_rng(2).normal(size=fan_in)
        u = np.zeros(wide.n_params)
        in0, _ = wide.neuron_indices(1, 0)
        in1, _ = wide.neuron_indices(1, wide.widths[1] - 1)  # the appended copy
        u[in0], u[in1] = lam[1] * b, -lam[0] * b
        H_in = sp.inner_hessian(problem, cp.theta, 0)
        predicted = lam[0] * lam[1] * b @ H_in @ b
        autodiff = u @ pw.hvp(theta, u)
        assert autodiff == pytest.approx(predicted, rel=1e-9, abs=1e-14)
        s = 1e-4
        fd = (pw.loss(theta + s * u) + pw.loss(theta - s * u) - 2 * pw.loss(theta)) / s**2
        assert fd == pytest.approx(predicted, rel=1e-4, abs=1e-10)


def test_second_derivative_along_a_three_copy_split_perturbation(biased_narrow):
    problem, cp = biased_narrow
    lam = np.array([0.7, 0.6, -0.3])
    wide, theta = sp.split_neuron(problem.model, cp.theta, 0, lam)
    pw = wide_problem(problem, wide)
    rng = np.random.default_rng(3)
    U = rng.normal(size=(3, 3))
    U[2] = -(lam[0] * U[0] + lam[1] * U[1]) / lam[2]  # Σ λ_j u_j = 0
    idx = [wide.neuron_indices(1, j)[0] for j in (0, 1, 2)]
    u = np.zeros(wide.n_params)
    for j in range(3):
        u[idx[j]] = U[j]
    H_in = sp.inner_hessian(problem, cp.theta, 0)
    predicted = sum(lam[j] * U[j] @ H_in @ U[j] for j in range(3))
    assert u @ pw.hvp(theta, u) == pytest.approx(predicted, rel=1e-9)


# ------------------------------------------------------------------- prediction vs full Hessian
def check_prediction(problem, cp, neuron, lam):
    """The predicted n_neg and type against the signature of the wide net's full Hessian."""
    pred = sp.predict_split(problem, cp.theta, neuron, lam, rtol_zero=RTOL_ZERO,
                            narrow_eigenvalues=cp.eigenvalues)
    wide, theta = sp.split_neuron(problem.model, cp.theta, neuron, lam)
    n_neg, n_zero, _, ev, tol = signature(wide_problem(problem, wide).hessian(theta))
    # Away from the tolerance band: no eigenvalue near the zero threshold.
    assert not np.any((np.abs(ev) > 1e-2 * tol) & (np.abs(ev) < 1e2 * tol)), ev
    assert pred.n_neg == n_neg, (lam, pred, ev)
    assert pred.kind == ("minimum" if n_neg == 0 else "saddle")
    return pred, n_neg, n_zero, ev


@pytest.mark.parametrize("lam", [[0.3, 0.7], [-0.5, 1.5], [2.0, -1.0], [0.2, 0.3, 0.5], [0.7, 0.6, -0.3],
                                 [-0.5, -0.5, 2.0], [1.5, -1.0, 0.5]])
def test_predicted_index_matches_full_hessian(minimal_narrow, fa_narrow, biased_narrow, lam):
    for problem, cp in (minimal_narrow, fa_narrow, biased_narrow):
        pred, n_neg, n_zero, _ = check_prediction(problem, cp, 0, lam)
        # The plateau directions (m − 1 output-weight shifts) are flat.
        assert n_zero >= len(lam) - 1
    # The indefinite H_in of the biased example: every split is a saddle, with the exact count.
    problem, cp = biased_narrow
    pred = sp.predict_split(problem, cp.theta, 0, lam, rtol_zero=RTOL_ZERO)
    assert (pred.h_pos, pred.h_neg) == (2, 1)
    assert pred.kind == "saddle"


def test_minimal_model_split_line_sign_of_smallest_nonzero_eigenvalue(minimal_narrow):
    """MUST SHOW: on the 1-2-1 split line of the published data set's 1-1-1 optimum, the inner-Hessian
    rule predicts the sign of the smallest nonzero Hessian eigenvalue, inside and outside (0, 1)."""
    problem, cp = minimal_narrow
    assert cp.signature == (0, 0, 2)
    h = sp.inner_hessian(problem, cp.theta, 0)[0, 0]
    lambdas = np.array([-1.0, -0.5, -0.2, -0.05, 0.05, 0.2, 0.4, 0.5, 0.6, 0.8, 0.95, 1.05, 1.3, 2.0])
    wide, rows = sp.split_line(problem.model, cp.theta, 0, lambdas)
    pw = wide_problem(problem, wide)
    signs = []
    for lam, theta in zip(lambdas, rows):
        pred = sp.predict_split(problem, cp.theta, 0, [lam, 1 - lam], rtol_zero=RTOL_ZERO)
        n_neg, n_zero, n_pos, ev, tol = signature(pw.hessian(theta))
        assert n_zero == 1  # the line itself
        nonzero = ev[np.abs(ev) > tol]
        smallest = nonzero[np.argmin(np.abs(nonzero))]
        # The smallest nonzero eigenvalue is the split direction's; its sign is that of λ(1 − λ)·h.
        assert np.sign(smallest) == np.sign(lam * (1 - lam) * h)
        assert pred.kind == ("saddle" if smallest < 0 else "minimum")
        assert pred.n_neg == n_neg == (1 if 0 < lam < 1 else 0)
        signs.append(np.sign(smallest))
    # h < 0: the segment (0, 1) is saddles, the rest degenerate minima.
    assert signs == [1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 1]


def test_fa_split_line_has_a_minimum_segment_inside(fa_narrow):
    # H_in > 0 for the Fukumizu–Amari target: (0, 1) is the minimum segment, the rest saddles.
    problem, cp = fa_narrow
    assert sp.inner_hessian(problem, cp.theta, 0)[0, 0] > 0
    for lam in (-0.5, 0.5, 1.5):
        pred, n_neg, n_zero, _ = check_prediction(problem, cp, 0, [lam, 1 - lam])
        assert (pred.kind, n_zero) == (("minimum" if 0 < lam < 1 else "saddle"), 1)


def test_splitting_a_saddle_gives_only_saddles(minimal_narrow):
    """Two saddles of the 1-2-1 net: a point of the saddle segment of the split line (degenerate) and
    the optimum plus a zero neuron (nondegenerate, index 1). Splitting either gives saddles only."""
    problem, cp = minimal_narrow
    model2 = ft.MLP((1, 2, 1), "tanh", bias=False)
    p2 = wide_problem(problem, model2)
    _, on_line = sp.split_neuron(problem.model, cp.theta, 0, [0.5, 0.5])
    _, zero_neuron = sp.add_zero_neuron(problem.model, cp.theta)
    for theta in (on_line, zero_neuron):
        saddle = ft.landscape.critical_point_at(p2, theta)
        assert saddle.grad_norm <= 1e-10 and saddle.morse_index == 1
        for lam in ([0.3, 0.7], [-1.0, 2.0], [1.4, -0.4], [0.2, 0.3, 0.5], [-0.5, -0.5, 2.0]):
            pred, n_neg, _, _ = check_prediction(p2, saddle, 0, lam)
            assert n_neg >= 1 and pred.kind == "saddle"


def test_splitting_a_dead_neuron_adds_one_unstable_direction_per_copy(minimal_narrow):
    """The zero neuron (v = 0, w = 0) of the index-1 saddle: the coupling g = (1/n) Σ e_k x_k ≠ 0, so
    each extra copy adds an unstable direction whatever the coefficients (not the H_in rule)."""
    problem, cp = minimal_narrow
    model2, theta = sp.add_zero_neuron(problem.model, cp.theta)
    p2 = wide_problem(problem, model2)
    saddle = ft.landscape.critical_point_at(p2, theta)
    for lam in ([0.5, 0.5], [-1.0, 2.0], [0.2, 0.3, 0.5]):
        pred = sp.predict_split(p2, theta, 1, lam, rtol_zero=RTOL_ZERO, narrow_eigenvalues=saddle.eigenvalues)
        assert pred.dead and pred.coupling_rank == 1
        assert pred.n_neg == 1 + (len(lam) - 1)
        wide, th = sp.split_neuron(model2, theta, 1, lam)
        assert signature(wide_problem(problem, wide).hessian(th))[0] == pred.n_neg


def test_negligible_inner_hessian_counts_as_zero():
    """At a near-perfect fit H_in is ~1e-10 of the Hessian: its eigenvalues are zero on the Hessian's scale
    (as the wide Hessian's split-direction eigenvalues are), not signed curvature."""
    data = ft.datasets.maleknia_sato()
    x = np.asarray(data.x)
    y = 2.0 * np.tanh(x) + 1e-9 * np.random.default_rng(5).standard_normal(x.shape)
    problem = ft.Problem(ft.MLP((1, 1, 1), "tanh", bias=False), ft.Dataset(x, y))
    cp = find_critical_point(problem, np.array([1.0, 2.0]))
    assert cp.success and cp.kind == "minimum"
    H_in = sp.inner_hessian(problem, cp.theta, 0)[0, 0]
    assert 0 < abs(H_in) < 1e-8 * np.max(np.abs(cp.eigenvalues))
    for lam in ([-1.0, 2.0], [0.5, 0.5], [0.2, 0.3, 0.5], [1.5, -0.8, 0.3]):
        pred = sp.predict_split(problem, cp.theta, 0, lam, rtol_zero=RTOL_ZERO,
                                narrow_eigenvalues=cp.eigenvalues)
        assert (pred.h_pos, pred.h_neg, pred.n_neg) == (0, 0, 0)
        assert pred.margin_inner < 1e-8
        wide, th = sp.split_neuron(problem.model, cp.theta, 0, lam)
        assert signature(wide_problem(problem, wide).hessian(th))[0] == 0


def test_sure_saddle_region_with_three_copies(minimal_narrow, fa_narrow, biased_narrow):
    """p ≥ 2 positive and q ≥ 1 negative coefficients: a saddle for any nonzero H_in (either sign)."""
    rng = np.random.default_rng(4)
    samples = []
    while len(samples) < 6:
        a, b = rng.uniform(-2, 2, size=2)
        lam = np.array([a, b, 1 - a - b])
        if sp.in_sure_saddle_region(lam) and np.min(np.abs(lam)) > 0.05:
            samples.append(lam)
    assert sp.in_sure_saddle_region([0.7, 0.6, -0.3])
    assert not sp.in_sure_saddle_region([0.2, 0.3, 0.5])
    assert not sp.in_sure_saddle_region([-0.5, -0.5, 2.0])
    for problem, cp in (minimal_narrow, fa_narrow, biased_narrow):
        for lam in samples:
            pred, n_neg, _, _ = check_prediction(problem, cp, 0, lam)
            assert pred.kind == "saddle" and n_neg >= 1


# ------------------------------------------------------------------------------------ bad input
def test_bad_inputs_raise_clear_errors(minimal_narrow):
    problem, cp = minimal_narrow
    model = problem.model
    with pytest.raises(ValueError, match="sum to 1"):
        sp.split_neuron(model, cp.theta, 0, [0.5, 0.6])
    with pytest.raises(ValueError, match="sum to 1"):
        sp.predict_split(problem, cp.theta, 0, [0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match="at least 2"):
        sp.split_neuron(model, cp.theta, 0, [1.0])
    with pytest.raises(ValueError, match="NaN"):
        sp.split_neuron(model, cp.theta, 0, [np.nan, 1.0])
    with pytest.raises(ValueError, match=r"neuron must be in \[0, 1\)"):
        sp.split_neuron(model, cp.theta, 1, [0.5, 0.5])
    with pytest.raises(ValueError, match="neuron must be in"):
        sp.inner_hessian(problem, cp.theta, -1)
    with pytest.raises(ValueError, match="neuron must be in"):
        sp.predict_split(problem, cp.theta, 3, [0.5, 0.5])
    with pytest.raises(TypeError, match="neuron must be an integer"):
        sp.split_neuron(model, cp.theta, 0.0, [0.5, 0.5])
    deep = ft.MLP((1, 2, 2, 1), "tanh", bias=False)
    for call in (lambda: sp.split_neuron(deep, np.zeros(deep.n_params), 0, [0.5, 0.5]),
                 lambda: sp.add_zero_neuron(deep, np.zeros(deep.n_params)),
                 lambda: sp.embeddings(deep, np.zeros(deep.n_params), 3)):
        with pytest.raises(ValueError, match="two-layer"):
            call()
    relu = ft.Problem(ft.MLP((1, 1, 1), "relu", bias=False), problem.data)
    with pytest.raises(ValueError, match="smooth"):
        sp.inner_hessian(relu, cp.theta, 0)
    with pytest.raises(ValueError, match="flat vector of length 2"):
        sp.split_neuron(model, np.zeros(3), 0, [0.5, 0.5])
    with pytest.raises(ValueError, match="≥ 2"):
        sp.embeddings(ft.MLP((1, 2, 1), "tanh", bias=False), np.zeros(4), 1)
    with pytest.raises(ValueError, match="at least one"):
        sp.split_line(model, cp.theta, 0, [])
