"""GD's modified equation: GD is a second-order approximation of the modified flow."""

import numpy as np
import pytest
from scipy.stats import linregress

import flowtools as ft
from flowtools.dynamics.modified import modified_equation_problem


def test_modified_loss_is_l_plus_quarter_eta_grad_squared(minimal_half):
    th = np.array([0.3, -0.2, 0.5, 0.1])
    mp = modified_equation_problem(minimal_half, 0.1)
    g = minimal_half.grad(th)
    assert mp.loss(th) == pytest.approx(minimal_half.loss(th) + 0.025 * g @ g, rel=1e-13)
    # its gradient is ∇L + (η/2) H ∇L
    assert np.allclose(mp.grad(th), g + 0.05 * minimal_half.hessian(th) @ g, rtol=1e-11, atol=1e-14)


def test_gd_tracks_the_modified_flow_at_second_order(minimal_mse):
    th0 = np.array([-0.13, 0.13, 0.16, -0.15])
    T = 10.0
    etas = [0.04, 0.02, 0.01, 0.005]
    err_plain, err_mod = [], []
    for eta in etas:
        steps = int(round(T / eta))
        gd = ft.gradient_descent(minimal_mse, th0, eta, steps, record_steps=np.linspace(0, steps, 21).astype(int))
        ts = gd.t[1:]
        gf = ft.gradient_flow(minimal_mse, th0, T, save_ts=ts, rtol=1e-11, atol=1e-13)
        mf = ft.gradient_flow(modified_equation_problem(minimal_mse, eta), th0, T, save_ts=ts, rtol=1e-11, atol=1e-13)
        err_plain.append(np.max(np.linalg.norm(gd.theta - gf.theta, axis=1)))
        err_mod.append(np.max(np.linalg.norm(gd.theta - mf.theta, axis=1)))
    assert 0.9 <= linregress(np.log(etas), np.log(err_plain)).slope <= 1.1
    assert 1.8 <= linregress(np.log(etas), np.log(err_mod)).slope <= 2.2
    assert all(m < p for m, p in zip(err_mod, err_plain))


def test_bad_lr(minimal_mse):
    with pytest.raises(ValueError, match="lr"):
        modified_equation_problem(minimal_mse, 0.0)
    with pytest.raises(TypeError, match="problem"):
        modified_equation_problem("x", 0.1)
