"""Input symmetries: canonical representatives up to the full group, the invariance check, fingerprints."""

import itertools

import numpy as np
import pytest

import flowtools as ft
from flowtools.landscape.input_symmetry import (
    InputSymmetry,
    apply_input_map,
    canonical_input,
    orbit_fingerprint,
)


def _image(model, theta, cols, rows, signs=None, flips=None):
    """θ after an input map (columns `cols`, signs) and a hidden permutation `rows` (and hidden flips)."""
    th = apply_input_map(model, theta, cols, signs)
    (W, _), (V, _) = model.unflatten(th)
    W, V = np.array(W)[rows], np.array(V)[:, rows]
    if flips is not None:
        W, V = W * flips[:, None], V * flips[None, :]
    return np.concatenate([W.ravel(), V.ravel()])


@pytest.mark.parametrize("activation, sign_flips", [("relu", False), ("relu", True), ("tanh", False)])
def test_canonical_input_is_constant_on_every_orbit_point(activation, sign_flips):
    # Brute force over the whole group (3! input permutations × 2³ input flips × 3! hidden permutations ×
    # hidden flips for odd σ): every image has the same representative.
    d, m = 3, 3
    model = ft.MLP((d, m, 1), activation, bias=False)
    sym = InputSymmetry(sign_flips=sign_flips)
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(model.n_params)
    ref = canonical_input(model, theta, sym)
    sign_sets = list(itertools.product([1.0, -1.0], repeat=d)) if sign_flips else [(1.0,) * d]
    flip_sets = list(itertools.product([1.0, -1.0], repeat=m)) if model.activation.odd else [(1.0,) * m]
    n = 0
    for cols in itertools.permutations(range(d)):
        for rows in itertools.permutations(range(m)):
            for s in sign_sets:
                for f in flip_sets[:4]:
                    img = _image(model, theta, np.array(cols), np.array(rows), np.array(s), np.array(f))
                    np.testing.assert_allclose(canonical_input(model, img, sym), ref, rtol=0, atol=1e-12)
                    n += 1
    assert n >= 36


def test_canonical_input_separates_points_of_different_orbits():
    model = ft.MLP((4, 4, 1), "relu", bias=False)
    sym = InputSymmetry()
    rng = np.random.default_rng(1)
    a = rng.standard_normal(model.n_params)
    b = a.copy()
    b[0] += 0.05  # one weight moved: a point of another orbit (its Gram matrix changes)
    assert np.max(np.abs(canonical_input(model, a, sym) - canonical_input(model, b, sym))) > 1e-3


def test_tied_columns_are_searched_and_equivalent_points_agree():
    # W = I + c·11ᵀ has all columns tied: every order is tried, and the result is the same for any image.
    model = ft.MLP((5, 5, 1), "relu", bias=False)
    W = np.eye(5) + 0.3
    theta = np.concatenate([W.ravel(), np.ones(5)])
    sym = InputSymmetry()
    ref, info = canonical_input(model, theta, sym, return_info=True)
    assert info["tie_classes"] == [5] and info["exhaustive"] and info["candidates"] == 120
    rng = np.random.default_rng(2)
    img = _image(model, theta, rng.permutation(5), rng.permutation(5))
    np.testing.assert_allclose(canonical_input(model, img, sym), ref, atol=1e-12)


def test_blocks_restrict_the_group():
    model = ft.MLP((4, 2, 1), "relu", bias=False)
    sym = InputSymmetry(permutations=[(0, 1)])
    assert sym.blocks(4) == [(0, 1), (2,), (3,)]
    assert sym.order(4) == 2
    rng = np.random.default_rng(3)
    theta = rng.standard_normal(model.n_params)
    swap01 = apply_input_map(model, theta, [1, 0, 2, 3])
    swap23 = apply_input_map(model, theta, [0, 1, 3, 2])
    ref = canonical_input(model, theta, sym)
    np.testing.assert_allclose(canonical_input(model, swap01, sym), ref, atol=1e-12)
    assert np.max(np.abs(canonical_input(model, swap23, sym) - ref)) > 1e-3


def test_safran_shamir_problem_declares_its_symmetry_and_fingerprints_agree_on_orbits():
    k = 4
    p = ft.problems.safran_shamir(k)
    assert isinstance(p.symmetry, InputSymmetry) and p.n_params == k * k
    rng = np.random.default_rng(4)
    W = rng.standard_normal((k, k)) / 2
    Wimg = W[rng.permutation(k)][:, rng.permutation(k)]
    # Same loss (the group is a symmetry), different functions, the same orbit fingerprint.
    assert abs(float(p.loss(W.ravel())) - float(p.loss(Wimg.ravel()))) < 1e-13
    assert np.max(np.abs(ft.function_fingerprint(p, W.ravel()) - ft.function_fingerprint(p, Wimg.ravel()))) > 1e-2
    np.testing.assert_allclose(orbit_fingerprint(p, W.ravel()), orbit_fingerprint(p, Wimg.ravel()), atol=1e-12)
    # Without the declaration the fingerprint is the plain one.
    q = p.with_symmetry(None)
    assert q.symmetry is None
    np.testing.assert_array_equal(orbit_fingerprint(q, W.ravel()), ft.function_fingerprint(q, W.ravel()))


def test_a_symmetry_the_problem_does_not_have_is_refused():
    rng = np.random.default_rng(5)
    teacher = ft.MLP((3, 3, 1), "relu", bias=False)
    theta_t = np.concatenate([(np.eye(3) + 0.2 * rng.standard_normal((3, 3))).ravel(), np.ones(3)])
    student = ft.MLP((3, 3, 1), "relu", bias=False)
    with pytest.raises(ValueError, match="symmetry: the loss is not invariant"):
        ft.Problem(student, ft.GaussianInputs((teacher, theta_t)), symmetry=InputSymmetry())
    # The orthonormal ReLU teacher is not even: sign flips of inputs are not symmetries.
    t2, th2 = ft.problems.orthonormal_teacher(3, 3)
    with pytest.raises(ValueError, match="sign flip"):
        ft.Problem(student, ft.GaussianInputs((t2, th2)), symmetry=InputSymmetry(sign_flips=True))


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(permutations="all"), TypeError, "permutations"),
    (dict(permutations=[(0, 1), (1, 2)]), ValueError, "distinct"),
    (dict(permutations=[(0, "a")]), TypeError, "permutations"),
    (dict(sign_flips=1), TypeError, "sign_flips"),
    (dict(atol=0.0), ValueError, "atol"),
    (dict(max_candidates=0), ValueError, "max_candidates"),
])
def test_bad_symmetry_declarations_name_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        InputSymmetry(**kwargs)


def test_symmetry_checks_against_the_model():
    with pytest.raises(ValueError, match="d_in=3"):
        InputSymmetry(permutations=[(0, 5)]).blocks(3)
    with pytest.raises(ValueError, match="odd activation"):
        InputSymmetry(sign_flips=True).check_model(ft.MLP((3, 2, 1), "tanh", bias=False))
    with pytest.raises(TypeError, match="flowtools.InputSymmetry"):
        ft.problems.safran_shamir(3).with_symmetry("permutations")
