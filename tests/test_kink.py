"""Kinks of the loss: a ReLU neuron that dies (w → 0 with a negative output weight).

With trainable output weights, gradient flow on the ReLU population loss can carry a neuron to w = 0 in
finite time; L rises linearly in w from there (its terms are homogeneous of degree 1 in w), so the
flow stops with a one-sided ‖∇L‖ > 0. The flow and the itinerary must say so, and call the point what
it is: a (non-smooth) minimum when no direction descends. The checks use an independent numpy form of
the arc-cosine kernel (Cho & Saul 2009).
"""

import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools import sweeps
from flowtools.dynamics.floor import kink_test, sampled_minimum_test

CFG = dict(problem="teacher_student", data="population", activation="relu", teacher="orthonormal",
           teacher_width=2, width=1, d_in=3, loss="half_mse", teacher_seed=0, data_seed=0)


def _kernel(u, v):
    """E[relu(u·x) relu(v·x)], x ~ N(0, I) (Cho & Saul 2009), in plain numpy."""
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return 0.0
    t = np.arccos(np.clip(u @ v / (nu * nv), -1, 1))
    return nu * nv * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi)


def _dead_start(problem):
    theta = np.zeros(problem.n_params)
    theta[:3] = [0.05, -0.02, 0.03]  # a small neuron …
    theta[3] = -0.5                  # … with a negative output weight: a² − ‖w‖² > 0 is conserved
    return theta


@pytest.fixture(scope="module")
def dead_run():
    problem, _ = sweeps.make_problem(CFG)
    traj = ft.gradient_flow(problem, _dead_start(problem), 1e4, gtol=1e-9)
    return problem, traj


def test_the_layout_is_w_then_a(dead_run):
    problem, _ = dead_run
    theta = np.zeros(problem.n_params)
    theta[:3] = [1.0, 0.0, 0.0]
    theta[3] = 1.0  # the student equals the first teacher neuron
    want = 0.5 * (_kernel(np.eye(3)[1], np.eye(3)[1]))
    assert problem.loss(theta) == pytest.approx(want, rel=1e-12)


def test_the_flow_stops_at_a_dead_neuron_and_says_why(dead_run):
    problem, traj = dead_run
    w, a = traj.final_theta[:3], traj.final_theta[3]
    assert np.linalg.norm(w) < 1e-8 and a < -0.4  # a² − ‖w‖² is conserved: a → −√(0.25 − 0.0038)
    assert a == pytest.approx(-np.sqrt(0.25 - 0.0038), rel=1e-6)
    assert traj.status == ft.Status.CONVERGED
    assert "not differentiable" in traj.message and traj.stats["kink"]
    assert traj.final_grad_norm > 1e-3  # one-sided: no refinement can bring it to 0


def test_independent_directional_derivatives_say_minimum(dead_run):
    """d/dε L(a, εu) at 0⁺ = −a·Σ_j κ(u, v_j) > 0 for every unit u (a < 0), and L does not depend on a
    at w = 0: a minimum, not a saddle, whatever the Hessian of the kink says."""
    problem, traj = dead_run
    a = traj.final_theta[3]
    rng = np.random.default_rng(0)
    teacher = np.eye(3)[:2]
    eps = 1e-7
    for u in rng.standard_normal((50, 3)):
        u /= np.linalg.norm(u)
        slope = -a * sum(_kernel(u, v) for v in teacher)
        assert slope > 0
        theta = traj.final_theta.copy()
        theta[:3] = eps * u
        assert (problem.loss(theta) - problem.loss(traj.final_theta)) / eps == pytest.approx(slope, rel=1e-5)


def test_the_itinerary_calls_the_dead_neuron_a_non_smooth_minimum(dead_run):
    problem, traj = dead_run
    itin = ft.itinerary(problem, traj)
    assert itin.terminal == "attractor"
    end = itin.visits[-1]
    assert end.kind == "degenerate_minimum" and end.status == "kink"
    assert "not differentiable" in end.reason and "sampled directions" in end.reason
    half_y2 = 0.5 * sum(_kernel(u, v) for u in np.eye(3)[:2] for v in np.eye(3)[:2])
    assert end.loss == pytest.approx(half_y2, rel=1e-12)  # the dead student computes 0


def test_kink_test_tells_smooth_points_from_kinks(dead_run):
    problem, traj = dead_run
    assert kink_test(problem, traj.final_theta)["kink"]
    generic = np.array([0.3, -0.7, 0.2, 0.9])
    assert not kink_test(problem, generic)["kink"]
    smooth = ft.Problem.from_loss(lambda th: jnp.sum(th ** 2) + jnp.sin(th[0]), 2)
    assert not kink_test(smooth, np.zeros(2))["kink"]
    with pytest.raises(ValueError, match="deltas"):
        kink_test(smooth, np.zeros(2), deltas=(1e-8,))
    with pytest.raises(ValueError, match="directions"):
        kink_test(smooth, np.zeros(2), directions=0)
    with pytest.raises(ValueError, match="radii"):
        sampled_minimum_test(smooth, np.zeros(2), radii=(1e-6, -1e-4))
    with pytest.raises(ValueError, match="directions"):
        sampled_minimum_test(smooth, np.zeros(2), directions=0)


def test_a_kink_with_a_descent_direction_is_not_a_minimum():
    """L = |x₀| − x₁²/2 + x₁⁴: the flow from (1, 0) reaches the kink x₀ = 0 in finite time along x₁ = 0,
    but x₁ descends from there (by r²/2 at radius r, along the x₁ axis)."""
    problem = ft.Problem.from_loss(lambda th: jnp.abs(th[0]) - 0.5 * th[1] ** 2 + th[1] ** 4, 2)
    traj = ft.gradient_flow(problem, np.array([1.0, 0.0]), 10.0, gtol=1e-9)
    assert abs(traj.final_theta[0]) < 1e-8
    test = sampled_minimum_test(problem, traj.final_theta)
    assert not test["minimum"] and test["worst"] < 0
    assert test["worst"] == pytest.approx(-0.5 * (1e-4 * (1 + abs(traj.final_theta[0]))) ** 2, rel=1e-3)
    assert traj.status != ft.Status.CONVERGED


def test_a_dead_neuron_is_pinned_and_the_others_flow_on():
    """Two students, one dying: when the first neuron reaches w = 0 the second is still far from any
    critical point. The solver stalls at the kink; the flow goes on with the dead neuron pinned (a
    sliding motion) and converges. Checked independently: the free coordinates' central differences
    of L vanish, and L rises from the dead neuron in every sampled direction (numpy kernel)."""
    problem, _ = sweeps.make_problem(dict(CFG, width=2))
    assert problem.param_names[:3] == ["W1[0,0]", "W1[0,1]", "W1[0,2]"]
    theta = np.zeros(problem.n_params)
    theta[:3] = [0.05, -0.02, 0.03]     # neuron 0: small, negative output weight: it dies at once
    theta[3:6] = [0.4, 0.3, -0.2]       # neuron 1: far from where it ends
    theta[6:] = [-0.5, 0.6]
    traj = ft.gradient_flow(problem, theta, 1e4, gtol=1e-9)
    assert traj.status == ft.Status.CONVERGED
    assert traj.stats["pinned"] == ["W1[0,0]", "W1[0,1]", "W1[0,2]"] and 0.5 < traj.stats["pinned_at"] < 2
    assert "pinned at a kink" in traj.message
    end = traj.final_theta
    assert np.linalg.norm(end[:3]) < 1e-8
    h = 1e-6
    fd = [(problem.loss(end + e) - problem.loss(end - e)) / (2 * h) for e in h * np.eye(8)[3:]]
    assert np.linalg.norm(fd) < 1e-6
    a0, w1, a1 = end[6], end[3:6], end[7]
    rng = np.random.default_rng(1)
    for u in rng.standard_normal((200, 3)):
        u /= np.linalg.norm(u)
        # d/dε L(w0 = εu) at 0⁺ = a0·E[relu(u·x) r(x)], r = a1·relu(w1·x) − Σ_j relu(e_j·x)
        slope = a0 * (a1 * _kernel(u, w1) - sum(_kernel(u, v) for v in np.eye(3)[:2]))
        assert slope > 0
    itin = ft.itinerary(problem, traj)
    assert itin.terminal == "attractor"


def test_sliding_along_a_kink_of_an_energy():
    """L = |x₀| + (x₁ − 1)²: from (1, 0) the flow reaches x₀ = 0 at t = 1 exactly (dx₀/dt = −1), stays
    there, and x₁ → 1 (x₁(t) = 1 − e^{−2t})."""
    problem = ft.Problem.from_loss(lambda th: jnp.abs(th[0]) + (th[1] - 1.0) ** 2, 2)
    traj = ft.gradient_flow(problem, np.array([1.0, 0.0]), 50.0, gtol=1e-10)
    assert traj.status == ft.Status.CONVERGED and traj.stats["pinned"] == ["θ[0]"]
    assert traj.stats["pinned_at"] == pytest.approx(1.0, abs=1e-6)
    assert abs(traj.final_theta[0]) < 1e-6 and traj.final_theta[1] == pytest.approx(1.0, abs=1e-9)
    i = np.searchsorted(traj.t, 3.0)
    assert traj.theta[i, 1] == pytest.approx(1 - np.exp(-2 * traj.t[i]), abs=1e-6)


def test_a_relu_unit_crossing_a_data_point_is_not_pinned():
    """On finite data a ReLU unit's hyperplane crossing a sample is a kink the flow goes through, not one
    that holds it: L descends along the jumping parameters, so the flow must not pin them (it would
    change the dynamics); the run ends `failed` at the kink and says so."""
    cfg = dict(problem="teacher_student", activation="relu", teacher_width=2, width=3, d_in=4, n=200,
               noise=0.0, teacher_seed=0, data_seed=0, loss="half_mse", init_scheme="lecun", init_scale=1.0)
    problem, _ = sweeps.make_problem(cfg)
    traj = ft.gradient_flow(problem, sweeps.initial_theta(problem, dict(cfg, seed=5)), 1e5, gtol=1e-9)
    assert "pinned" not in traj.stats and traj.status == ft.Status.FAILED
    kink = kink_test(problem, traj.final_theta)
    assert kink["kink"]
    along = sampled_minimum_test(problem, traj.final_theta, coordinates=kink["coordinates"])
    assert not along["minimum"] and along["worst"] < 0
