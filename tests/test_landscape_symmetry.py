"""Symmetry: canonical forms are invariant under neuron permutations and sign flips; reductions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowtools as ft
from flowtools.landscape import (
    canonical_form,
    function_distance,
    function_fingerprint,
    neuron_symmetries,
    reduce_network,
)

_MODELS = {
    "1-3-1 tanh": ft.MLP((1, 3, 1), "tanh"),
    "2-4-3-1 tanh": ft.MLP((2, 4, 3, 1), "tanh"),
    "2-3-2-2 gelu": ft.MLP((2, 3, 2, 2), "gelu"),
    "1-4-1 erf no bias": ft.MLP((1, 4, 1), "erf", bias=False),
}
_PROBLEMS = {}


def _problem(name):
    if name not in _PROBLEMS:
        model = _MODELS[name]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((20, model.d_in))
        y = rng.standard_normal((20, model.d_out))
        _PROBLEMS[name] = ft.Problem(model, ft.Dataset(x, y))
    return _PROBLEMS[name]


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(_MODELS)), theta_seed=st.integers(0, 10**6),
       sym_seed=st.integers(0, 10**6))
def test_canonical_form_is_invariant(name, theta_seed, sym_seed):
    p = _problem(name)
    theta = np.asarray(p.model.init(theta_seed))
    image = neuron_symmetries(p.model, theta, seed=sym_seed)
    assert np.array_equal(canonical_form(p.model, theta), canonical_form(p.model, image))
    assert function_distance(p, theta, image) < 1e-13
    # The canonical form is itself a symmetry image: same function.
    assert function_distance(p, theta, canonical_form(p.model, theta)) < 1e-13


def test_sign_flips_only_for_odd_activations():
    p = _problem("2-3-2-2 gelu")
    theta = np.asarray(p.model.init(1))
    flipped = neuron_symmetries(p.model, theta, seed=3, sign_flips=True)
    assert function_distance(p, theta, flipped) > 1e-3  # gelu is not odd: a flip changes the function
    assert not np.array_equal(canonical_form(p.model, theta), canonical_form(p.model, flipped))


def test_reduction_of_duplicated_and_dead_neurons():
    model = ft.MLP((1, 4, 1), "tanh")
    # neurons: a; a duplicated; −a (opposite, odd σ); dead (zero outgoing)
    W1 = np.array([[1.3], [1.3], [-1.3], [0.7]])
    b1 = np.array([0.2, 0.2, -0.2, -0.5])
    W2 = np.array([[0.5, -0.2, 0.4, 0.0]])
    b2 = np.array([0.1])
    theta = np.asarray(model.flatten([(W1, b1), (W2, b2)]))
    p = ft.Problem(model, ft.Dataset(np.linspace(-2, 2, 15), np.zeros(15)))
    red = reduce_network(model, theta)
    assert red.reducible and red.reduces_to == "1-1-1"
    p1 = ft.Problem(red.model, p.data)
    np.testing.assert_allclose(p1.predict(red.theta, np.asarray(p.x)), p.predict(theta, np.asarray(p.x)),
                               atol=1e-14)
    # The merged output weight is 0.5 − 0.2 − 0.4 and the embedding gives θ back.
    np.testing.assert_allclose(red.model.unflatten(red.theta)[1][0], [[0.5 - 0.2 - 0.4]])
    np.testing.assert_allclose(red.embed(red.theta), theta, atol=1e-14)
    # Any reduced θ' embeds to a θ with the same function.
    other = red.theta + 0.3
    np.testing.assert_allclose(p.predict(red.embed(other), np.asarray(p.x)),
                               p1.predict(other, np.asarray(p.x)), atol=1e-14)
    assert {op["op"] for op in red.operations} == {"duplicate", "zero_output"}


def test_constant_neuron_is_folded_into_the_bias():
    model = ft.MLP((2, 3, 1), "sigmoid")
    W1 = np.array([[0.5, -1.0], [0.0, 0.0], [2.0, 0.3]])
    b1 = np.array([0.1, 0.8, -0.4])
    W2 = np.array([[1.0, 2.0, -1.5]])
    theta = np.asarray(model.flatten([(W1, b1), (W2, np.array([0.3]))]))
    p = ft.Problem(model, ft.Dataset(np.random.default_rng(1).standard_normal((10, 2)), np.zeros(10)))
    red = reduce_network(model, theta)
    assert red.reduces_to == "2-2-1" and red.operations[0]["op"] == "constant"
    x = np.asarray(p.x)
    np.testing.assert_allclose(ft.Problem(red.model, p.data).predict(red.theta, x), p.predict(theta, x),
                               atol=1e-14)
    np.testing.assert_allclose(red.embed(red.theta), theta, atol=1e-14)


def test_constant_neuron_without_next_bias_acts_as_bias():
    model = ft.MLP((1, 2, 1), "sigmoid", bias=(True, False))
    theta = np.asarray(model.flatten([(np.array([[0.0], [1.0]]), np.array([0.5, 0.0])),
                                      (np.array([[1.0, 1.0]]), None)]))
    assert reduce_network(model, theta).reduces_to == "1-2-1"


def test_minimal_model_points(minimal_half):
    assert reduce_network(minimal_half.model, np.zeros(4)).reduces_to == "1-0-1"
    line = np.array([1.0, 1.0, 0.3, 1.2])
    red = reduce_network(minimal_half.model, line)
    assert red.reduces_to == "1-1-1"
    np.testing.assert_allclose(red.theta, [1.0, 1.5])
    assert reduce_network(minimal_half.model, np.array([1.0, -0.5, 0.3, 1.2])).reduces_to == "1-2-1"


def test_fingerprint_and_distance(minimal_half):
    a = np.array([1.0, -0.5, 0.3, 1.2])
    b = np.array([-0.5, 1.0, 1.2, 0.3])  # swapped neurons
    fa = function_fingerprint(minimal_half, a)
    assert fa.shape == (minimal_half.x.shape[0] + 256,)
    assert function_distance(minimal_half, a, b) < 1e-15
    assert function_distance(minimal_half, a, a + 0.1) > 1e-3
    with pytest.raises(TypeError):
        function_fingerprint(minimal_half.model, a)


def test_function_distance_is_rms_of_residual_norm():
    # d(a, b) = sqrt(mean_k ‖f(x_k; a) − f(x_k; b)‖²): summed over outputs, averaged over inputs.
    from flowtools import MLP, Problem
    from flowtools.data import Dataset
    from flowtools.landscape import fingerprint_distance, function_distances, function_fingerprint

    rng = np.random.default_rng(0)
    data = Dataset(rng.standard_normal((7, 3)), rng.standard_normal((7, 2)))
    p = Problem(MLP((3, 4, 2), "tanh"), data)
    a, b = rng.standard_normal((2, p.n_params))
    fa, fb = np.asarray(p.predict(a, data.x)), np.asarray(p.predict(b, data.x))
    expect = np.sqrt(np.sum((fa - fb) ** 2) / 7)
    assert abs(function_distance(p, a, b) - expect) < 1e-14
    assert np.sqrt(np.mean((fa - fb) ** 2)) < expect  # not the mean over outputs
    many = rng.standard_normal((5, p.n_params))
    d = function_distances(p, many, b)
    assert np.allclose(d, [function_distance(p, th, b) for th in many], rtol=1e-13, atol=0)
    fpa, fpb = function_fingerprint(p, a), function_fingerprint(p, b)
    assert abs(fingerprint_distance(fpa, fpb, 2) - function_distance(p, a, b, n_probe=256)) < 1e-13
