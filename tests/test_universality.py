"""φ_σ classes and the norm-imbalance identity ("A Theory of Saddle Escape in Deep Nonlinear
Networks", 2026, Theorem 1; derivation in universality.py)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools import universality as U

# Leading Taylor coefficient of φ_σ(z) = z σ'(z) − σ(z) at 0, by hand: φ = Σ (k−1) s_k z^k.
EXPECTED = {
    "linear": ("homogeneous", None, 0.0),
    "relu": ("homogeneous", None, 0.0),
    "gelu": ("quadratic", 2, 1 / math.sqrt(2 * math.pi)),  # σ''(0)/2 = φ_N(0)
    "silu": ("quadratic", 2, 0.25),  # σ''(0)/2 = 1/4
    "tanh": ("cubic", 3, -2 / 3),  # 2 s_3 = 2·(−1/3)
    "erf": ("cubic", 3, -4 / (3 * math.sqrt(math.pi))),  # 2·(−2/(3√π))
    "sigmoid": ("constant", 0, -0.5),  # −σ(0)
    "softplus": ("constant", 0, -math.log(2)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_activation_class_matches_hand_taylor(name):
    kind, order, coef = EXPECTED[name]
    c = U.activation_class(name)
    assert (c.kind, c.order) == (kind, order)
    assert c.coefficient == pytest.approx(coef, rel=1e-12, abs=1e-14)
    assert c.kind in U.ACTIVATION_CLASSES


def test_phi_sigma_matches_finite_differences():
    z = np.linspace(-3, 3, 13)
    for name in ["tanh", "gelu", "softplus"]:
        s = ft.get_activation(name).fn
        h = 1e-6
        ds = (np.asarray(s(jnp.asarray(z + h))) - np.asarray(s(jnp.asarray(z - h)))) / (2 * h)
        expect = z * ds - np.asarray(s(jnp.asarray(z)))
        np.testing.assert_allclose(np.asarray(U.phi_sigma(name)(z)), expect, atol=1e-8)


def test_higher_order_and_custom_callables():
    # σ(z) = z + z⁵: φ = 4 z⁵, leading order 5 -> "higher"
    c = U.activation_class(lambda z: z + z**5, max_order=5)
    assert (c.kind, c.order) == ("higher", 5) and c.coefficient == pytest.approx(4.0)
    # σ(z) = z + z²: φ = z², quadratic with coefficient 1
    c = U.activation_class(lambda z: z + z**2)
    assert (c.kind, c.order, c.coefficient) == ("quadratic", 2, pytest.approx(1.0))


def test_nonsmooth_nonhomogeneous_is_refused():
    act = ft.Activation("leaky_shifted", lambda z: jnp.maximum(z, 0.0) + 0.1, smooth=False)
    with pytest.raises(ValueError, match="no Taylor class"):
        U.activation_class(act)


def _problem(act, bias, widths=(2, 5, 4, 3, 2), loss="half_mse"):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, widths[0]))
    y = np.tanh(x @ rng.standard_normal((widths[0], widths[-1])))
    return ft.Problem(ft.MLP(widths, act, bias=bias), ft.Dataset(x, y), loss)


def _check_rates(act, bias, loss):
    pr = _problem(act, bias, loss=loss)
    for seed in range(3):
        theta = pr.model.init(seed, "normal", scale=0.8)
        rate = U.norm_imbalance_rate(pr, theta)
        assert rate.lhs.shape == (pr.model.n_layers - 1,)
        assert rate.max_rel_residual < 1e-12
        if act != "linear":
            assert np.all(np.abs(rate.rhs) > 1e-6)  # the identity is not trivially 0 = 0
        else:
            assert np.all(rate.rhs == 0.0)


# one representative per class, with and without biases, both loss conventions
@pytest.mark.parametrize("act, bias, loss", [("tanh", True, "half_mse"), ("gelu", False, "mse"),
                                             ("softplus", True, "mse"), ("linear", True, "half_mse")])
def test_rate_identity_holds_at_random_points(act, bias, loss):
    _check_rates(act, bias, loss)


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "erf", "gelu", "silu", "softplus", "sigmoid", "linear"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("loss", ["half_mse", "mse"])
def test_rate_identity_all_activations(act, bias, loss):
    _check_rates(act, bias, loss)


def test_identity_lhs_is_the_rate_of_the_imbalance():
    """LHS equals a finite difference of I along the flow direction −∇L (ties it to norm_imbalance)."""
    pr = _problem("gelu", True)
    theta = np.asarray(pr.model.init(1, "normal", scale=0.8))
    v = -pr.grad(theta)
    h = 1e-6
    fd = (U.norm_imbalance(pr.model, theta + h * v) - U.norm_imbalance(pr.model, theta - h * v)) / (2 * h)
    np.testing.assert_allclose(U.norm_imbalance_rate(pr, theta).lhs, fd, rtol=1e-7, atol=1e-9)


def test_plain_weight_imbalance_is_not_conserved_with_biases_but_ours_is():
    """Linear σ with biases: ‖W_l‖² + ‖b_l‖² − ‖W_{l+1}‖² is conserved, ‖W_l‖² − ‖W_{l+1}‖² is not."""
    pr = _problem("linear", True, widths=(2, 4, 3, 2))
    theta = np.asarray(pr.model.init(0, "normal", scale=0.8))
    tr = ft.gradient_flow(pr, theta, 20.0, n_save=60, rtol=1e-11, atol=1e-13, solver="tsit5")
    imb = U.norm_imbalance(pr.model, tr.theta)
    assert imb.shape == (tr.t.size, 2)
    assert np.max(np.abs(imb - imb[0])) < 1e-8

    def plain(th):
        sq = [np.sum(np.asarray(W) ** 2) for W, _ in pr.model.unflatten(th)]
        return np.array([sq[l] - sq[l + 1] for l in range(len(sq) - 1)])
    drift = np.max(np.abs(plain(tr.theta[-1]) - plain(tr.theta[0])))
    assert drift > 1e-3


def test_imbalance_residual_along_a_flow():
    pr = _problem("tanh", False)
    theta = pr.model.init(2, "normal", scale=0.7)
    tr = ft.gradient_flow(pr, theta, 30.0, n_save=300, rtol=1e-11, atol=1e-13, solver="tsit5")
    check = U.imbalance_residual(pr, tr)
    assert check.applies
    assert check.max_rel_residual <= 1e-8
    # the imbalance actually changes (tanh is not homogeneous), and the integral of the rhs tracks it
    assert np.max(np.abs(check.delta_imbalance)) > 1e-2
    assert check.integrated_rel_error < 1e-6
    assert check.to_dict()["n_layers"] == 3


def test_imbalance_residual_rejects_bad_input():
    pr = _problem("tanh", False)
    with pytest.raises(ValueError):
        U.imbalance_residual(pr, type("T", (), {"t": np.array([0.0, 1.0]),
                                                "theta": np.zeros((3, pr.n_params))})())
    with pytest.raises(TypeError):
        U.norm_imbalance_rate("not a problem", np.zeros(3))
