"""MLP: flat θ layout, forward pass, neuron indices, initialization; the activation registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sps

import flowtools as ft


# ----------------------------------------------------------------------------- activations
# Independent references written with numpy / scipy, not with the jax functions under test.
REFERENCE_ACTIVATIONS = {
    "tanh": np.tanh,
    "erf": sps.erf,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "gelu": lambda z: 0.5 * z * (1.0 + sps.erf(z / np.sqrt(2.0))),
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_ACTIVATIONS))
def test_activation_matches_reference(name):
    act = ft.get_activation(name)
    z = np.linspace(-6.0, 6.0, 241)
    np.testing.assert_allclose(np.asarray(act(z)), REFERENCE_ACTIVATIONS[name](z), rtol=1e-13, atol=1e-15)
    # The `odd` flag is a claim about σ(−z) = −σ(z); check it both ways.
    is_odd = np.allclose(np.asarray(act(-z)), -np.asarray(act(z)), rtol=0, atol=1e-15)
    assert act.odd == is_odd


def test_registry_covers_required_activations():
    assert {"tanh", "erf", "softplus", "gelu", "silu", "sigmoid"} <= set(ft.ACTIVATIONS)
    assert ft.get_activation("TANH") is ft.ACTIVATIONS["tanh"]
    assert not ft.ACTIVATIONS["relu"].smooth


def test_callable_activation_is_wrapped():
    def cube(z):
        return z**3

    model = ft.MLP((1, 2, 1), cube, bias=False)
    theta = np.array([0.5, -1.0, 2.0, 3.0])
    x = np.array([[0.3], [-1.2]])
    expected = 2.0 * (0.5 * x) ** 3 + 3.0 * (-1.0 * x) ** 3
    np.testing.assert_allclose(np.asarray(model.apply(theta, x)), expected, rtol=1e-14)


# ----------------------------------------------------------------------------- layout
def test_minimal_model_layout(minimal_model):
    assert minimal_model.param_names == ["w1", "w2", "v1", "v2"]
    assert minimal_model.n_params == 4
    assert minimal_model.n_layers == 2
    assert list(minimal_model.hidden_layers) == [1]


def test_minimal_model_is_the_published_function(minimal_model):
    # f(x) = v1 tanh(w1 x) + v2 tanh(w2 x) with θ = (w1, w2, v1, v2).
    w1, w2, v1, v2 = 0.7, -1.3, 2.1, 0.4
    x = np.linspace(-3, 3, 13)[:, None]
    f = np.asarray(minimal_model.apply(np.array([w1, w2, v1, v2]), x))
    np.testing.assert_allclose(f, v1 * np.tanh(w1 * x) + v2 * np.tanh(w2 * x), rtol=1e-14, atol=1e-15)


def numpy_forward(model, layers, x):
    """An independent forward pass on the structured (W, b) view."""
    sigma = REFERENCE_ACTIVATIONS[model.activation.name]
    a = x
    for l, (W, b) in enumerate(layers, start=1):
        h = a @ np.asarray(W).T + (0.0 if b is None else np.asarray(b))
        a = sigma(h) if l < model.n_layers else h
    return a


@pytest.mark.parametrize(
    "widths, bias",
    [((2, 3, 1), True), ((2, 3, 1), False), ((3, 4, 2, 2), (True, False, True)), ((1, 20, 20, 1), True)],
)
def test_flat_order_and_forward(widths, bias):
    model = ft.MLP(widths, "softplus", bias=bias)
    rng = np.random.default_rng(0)
    # Build θ from the structured view, then check the documented flat order entry by entry.
    layers = []
    for l in range(1, model.n_layers + 1):
        W = rng.standard_normal((widths[l], widths[l - 1]))
        b = rng.standard_normal(widths[l]) if model.bias[l - 1] else None
        layers.append((W, b))
    theta = np.asarray(model.flatten(layers))
    assert theta.shape == (model.n_params,)
    expected_n = sum(widths[l] * widths[l - 1] + (widths[l] if model.bias[l - 1] else 0)
                     for l in range(1, len(widths)))
    assert model.n_params == expected_n
    expected_flat = np.concatenate(
        [np.concatenate([W.ravel()] + ([] if b is None else [b])) for W, b in layers])
    np.testing.assert_array_equal(theta, expected_flat)
    # Names follow the same order.
    names = model.param_names
    assert len(names) == model.n_params == len(set(names))
    for l, (W, b) in enumerate(layers, start=1):
        i, j = W.shape[0] - 1, W.shape[1] - 1
        assert theta[names.index(f"W{l}[{i},{j}]")] == W[i, j]
        if b is not None:
            assert theta[names.index(f"b{l}[{i}]")] == b[i]
    # Round trip both ways.
    back = model.unflatten(theta)
    for (W, b), (W2, b2) in zip(layers, back):
        np.testing.assert_array_equal(np.asarray(W2), W)
        assert (b is None) == (b2 is None)
        if b is not None:
            np.testing.assert_array_equal(np.asarray(b2), b)
    np.testing.assert_array_equal(np.asarray(model.flatten(back)), theta)
    # Forward pass against numpy.
    x = rng.standard_normal((7, widths[0]))
    out = np.asarray(jax.jit(model.apply)(theta, x))
    assert out.shape == (7, widths[-1])
    np.testing.assert_allclose(out, numpy_forward(model, layers, x), rtol=1e-12, atol=1e-13)


def test_return_hidden_gives_pre_activations():
    model = ft.MLP((2, 3, 2, 1), "tanh", bias=True)
    rng = np.random.default_rng(1)
    theta = rng.standard_normal(model.n_params)
    x = rng.standard_normal((5, 2))
    out, hidden = jax.jit(lambda th, x: model.apply(th, x, return_hidden=True))(theta, x)
    assert len(hidden) == 2
    for h, a in hidden:
        np.testing.assert_allclose(np.asarray(a), np.tanh(np.asarray(h)), rtol=1e-14)
    (W3, b3) = model.unflatten(theta)[2]
    np.testing.assert_allclose(np.asarray(out), np.asarray(hidden[-1][1]) @ np.asarray(W3).T + np.asarray(b3),
                               rtol=1e-13)


def test_neuron_indices_follow_names():
    model = ft.MLP((2, 3, 2, 1), "tanh", bias=True)
    names = model.param_names
    inc, out = model.neuron_indices(1, 1)
    assert [names[i] for i in inc] == ["W1[1,0]", "W1[1,1]", "b1[1]"]
    assert [names[i] for i in out] == ["W2[0,1]", "W2[1,1]"]
    inc, out = model.neuron_indices(2, 0)
    assert [names[i] for i in inc] == ["W2[0,0]", "W2[0,1]", "W2[0,2]", "b2[0]"]
    assert [names[i] for i in out] == ["W3[0,0]"]
    minimal = ft.MLP((1, 2, 1), "tanh", bias=False)
    assert [minimal.param_names[i] for i in np.concatenate(minimal.neuron_indices(1, 1))] == ["w2", "v2"]
    with pytest.raises(ValueError, match="layer"):
        model.neuron_indices(3, 0)
    with pytest.raises(ValueError, match="neuron"):
        model.neuron_indices(1, 3)


def test_neuron_indices_isolate_a_neuron():
    # With its outgoing weights zeroed, a neuron's incoming weights cannot change the function; any
    # other parameter (here: another neuron's incoming weights) does.
    model = ft.MLP((2, 4, 3, 1), "gelu", bias=True)
    rng = np.random.default_rng(2)
    theta = rng.standard_normal(model.n_params)
    x = rng.standard_normal((9, 2))
    apply = jax.jit(model.apply)
    for layer, neuron in [(1, 2), (2, 1)]:
        inc, out = model.neuron_indices(layer, neuron)
        th = theta.copy()
        th[out] = 0.0
        moved = th.copy()
        moved[inc] += 0.37
        np.testing.assert_array_equal(np.asarray(apply(moved, x)), np.asarray(apply(th, x)))
        other_inc, _ = model.neuron_indices(layer, (neuron + 1) % model.widths[layer])
        moved = th.copy()
        moved[other_inc] += 0.37
        assert np.max(np.abs(np.asarray(apply(moved, x)) - np.asarray(apply(th, x)))) > 1e-8


# ----------------------------------------------------------------------------- init
def test_init_is_seeded():
    model = ft.MLP((3, 3, 3), "tanh")
    a, b, c = model.init(7), model.init(7), model.init(8)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(model.init(jax.random.PRNGKey(7))))
    assert np.asarray(a).dtype == np.float64


@pytest.mark.parametrize("scheme", ["he", "glorot", "normal"])
def test_init_variances(scheme):
    # A large layer: the sample variance of N entries has relative standard error sqrt(2/N).
    fan_in, fan_out = 500, 400
    model = ft.MLP((fan_in, fan_out, 1), "tanh", bias=True)
    scale = 1.0 if scheme != "normal" else 0.3
    layers = model.unflatten(np.asarray(model.init(11, scheme, scale=scale)))
    W1, b1 = np.asarray(layers[0][0]), np.asarray(layers[0][1])
    expected = {"he": 2.0 / fan_in, "glorot": 2.0 / (fan_in + fan_out), "normal": scale**2}[scheme]
    rel_se = np.sqrt(2.0 / W1.size)
    assert abs(np.mean(W1)) < 5 * np.sqrt(expected / W1.size)
    assert abs(np.var(W1) / expected - 1.0) < 5 * rel_se
    if scheme == "normal":
        assert abs(np.var(b1) / expected - 1.0) < 5 * np.sqrt(2.0 / b1.size)
    else:
        np.testing.assert_array_equal(b1, 0.0)


def _eager_init(model, seed, scheme, scale, layer_scales):
    """The draw op by op, as `MLP.init` wrote it before its stored kernel."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 2 * model.n_layers)
    parts = []
    for l, sl in enumerate(model.layout):
        fan_out, fan_in = sl.W_shape
        std = {"normal": scale, "he": scale * np.sqrt(2.0 / fan_in), "lecun": scale * np.sqrt(1.0 / fan_in),
               "glorot": scale * np.sqrt(2.0 / (fan_in + fan_out))}[scheme]
        parts.append(np.ravel(std * layer_scales[l] * jax.random.normal(keys[2 * l], sl.W_shape, dtype=jnp.float64)))
        if sl.b is not None:
            parts.append(np.asarray(std * layer_scales[l] * jax.random.normal(keys[2 * l + 1], (fan_out,), dtype=jnp.float64))
                         if scheme == "normal" else np.zeros(fan_out))
    return np.concatenate(parts)


@pytest.mark.parametrize("widths,bias", [((5, 2, 1), False), ((4, 3, 1), True), ((6, 7, 5, 2), (True, False, True))])
def test_init_kernel_gives_the_bits_of_the_op_by_op_draw(widths, bias):
    from flowtools import _stored_jit

    model = ft.MLP(widths, "tanh", bias=bias)
    for seed in (0, 1, 12345):
        for scheme in ("normal", "he", "lecun", "glorot"):
            ls = tuple(0.5 + 0.25 * l for l in range(model.n_layers))
            got = np.asarray(model.init(seed, scheme, scale=0.3, layer_scales=ls))
            np.testing.assert_array_equal(got.view(np.uint64), _eager_init(model, seed, scheme, 0.3, ls).view(np.uint64))
    # a typed key takes the op-by-op path and draws the same θ
    np.testing.assert_array_equal(np.asarray(model.init(jax.random.key(5))), np.asarray(model.init(5)))
    assert _stored_jit.origins()["flowtools.models._draw"]


def test_layer_scales_multiply_layers():
    model = ft.MLP((3, 3, 3, 3), "tanh", bias=True)
    base = model.unflatten(np.asarray(model.init(3, "normal")))
    scales = (1.0, 1e-3, 2.5)
    scaled = model.unflatten(np.asarray(model.init(3, "normal", layer_scales=scales)))
    for (W, b), (Ws, bs), s in zip(base, scaled, scales):
        np.testing.assert_allclose(np.asarray(Ws), s * np.asarray(W), rtol=1e-15)
        np.testing.assert_allclose(np.asarray(bs), s * np.asarray(b), rtol=1e-15)


def test_model_is_hashable_and_static():
    a = ft.MLP((1, 2, 1), "tanh", bias=False)
    b = ft.MLP([1, 2, 1], "tanh", bias=[False, False])
    assert a == b and hash(a) == hash(b)
    assert a != ft.MLP((1, 2, 1), "erf", bias=False)
    assert "tanh" in repr(a)


# ----------------------------------------------------------------------------- own models
def test_function_model_reshapes_checks_and_hashes():
    def linear(theta, x):
        return x @ theta  # shape (n,): read as one output column

    model = ft.FunctionModel(linear, 3, 3, 1)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(np.asarray(model.apply(np.array([1.0, 0.0, -1.0]), x)), [[-2.0], [-2.0]])
    twin = ft.FunctionModel(linear, 3, 3, 1)
    assert model == twin and hash(model) == hash(twin)
    assert model != ft.FunctionModel(lambda th, x: x @ th, 3, 3, 1)
    with pytest.raises(ValueError, match=r"shape \(n, d_out\) = \(3, 2\)"):
        ft.FunctionModel(linear, 3, 3, 2)
    with pytest.raises(AttributeError):
        model.n_params = 4


def test_function_model_from_equinox_round_trips_parameters():
    import equinox as eqx

    lin = eqx.nn.Linear(3, 2, key=jax.random.PRNGKey(1))
    lin = jax.tree_util.tree_map(lambda a: a.astype(np.float64) if eqx.is_inexact_array(a) else a, lin)
    model, theta0 = ft.FunctionModel.from_equinox(lin, d_in=3, d_out=2)
    assert model.n_params == 3 * 2 + 2 and theta0.dtype == np.float64
    x = np.random.default_rng(0).standard_normal((4, 3))
    by_hand = x @ np.asarray(lin.weight).T + np.asarray(lin.bias)
    np.testing.assert_allclose(np.asarray(model.apply(theta0, x)), by_hand, rtol=1e-14, atol=1e-15)
