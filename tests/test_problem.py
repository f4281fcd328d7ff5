"""Problem: L, ∇L, Hessian-vector products, Hessians and R(θ), checked against finite differences,
hand-written formulas and independent quadrature."""

import jax
import numpy as np
import pytest
import scipy.integrate

import flowtools as ft

H_FD = 1e-5  # central differences: truncation O(h²) ≈ 1e-10, rounding O(ε/h) ≈ 1e-11


def fd_problem(activation, bias, hidden):
    widths = (2, 3, 1) if hidden == 1 else (2, 3, 2, 1)
    model = ft.MLP(widths, activation, bias=bias)
    rng = np.random.default_rng([len(activation), int(bias), hidden])
    x = rng.standard_normal((16, 2))
    y = np.sin(x[:, :1]) + 0.3 * x[:, 1:] ** 2
    problem = ft.Problem(model, ft.Dataset(x, y), "half_mse")
    theta = 0.8 * rng.standard_normal(model.n_params)
    return problem, theta


def central_differences(fn, theta, h):
    """Row i: (fn(θ + h e_i) − fn(θ − h e_i)) / 2h."""
    eye = np.eye(theta.size)
    return np.array([(np.asarray(fn(theta + h * e)) - np.asarray(fn(theta - h * e))) / (2 * h) for e in eye])


# Four activations, one from each class of φ_σ(z) = z σ'(z) − σ(z) near 0 (odd: tanh; ~z²: gelu, silu;
# φ(0) ≠ 0: softplus), on every combination of bias and depth; erf and sigmoid on two of them.
FD_CASES = [(a, b, h) for a in ["tanh", "softplus", "gelu", "silu"] for b in (False, True) for h in (1, 2)]
FD_CASES += [("erf", False, 1), ("erf", True, 2), ("sigmoid", False, 2), ("sigmoid", True, 1)]


@pytest.mark.parametrize("activation, bias, hidden", FD_CASES)
def test_derivatives_match_finite_differences(activation, bias, hidden):
    problem, theta = fd_problem(activation, bias, hidden)

    g = problem.grad(theta)
    g_fd = central_differences(problem.loss, theta, H_FD)
    assert np.linalg.norm(g) > 1e-2  # a generic point, not a critical one
    assert np.linalg.norm(g_fd - g) <= 1e-7 * np.linalg.norm(g)

    H = problem.hessian(theta)
    H_fd = central_differences(problem.grad, theta, H_FD)  # row i = ∂∇L/∂θ_i
    assert np.linalg.norm(H_fd - H) <= 1e-7 * np.linalg.norm(H)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-13 * np.abs(H).max())

    v = np.random.default_rng(0).standard_normal(theta.size)
    Hv = H @ v
    np.testing.assert_allclose(problem.hvp(theta, v), Hv, rtol=0, atol=1e-12 * np.linalg.norm(Hv))


def test_value_and_grad_and_grad_norm(minimal_half):
    theta = np.array([0.3, -0.8, 1.2, 0.5])
    loss, g = minimal_half.value_and_grad(theta)
    assert loss == minimal_half.loss(theta)
    np.testing.assert_allclose(g, minimal_half.grad(theta), rtol=1e-15, atol=1e-17)
    assert minimal_half.grad_norm(theta) == pytest.approx(np.linalg.norm(g), rel=1e-15)


# ----------------------------------------------------------------------------- minimal model
def minimal_loss_by_hand(theta, x, y, convention):
    w1, w2, v1, v2 = theta
    r = v1 * np.tanh(w1 * x) + v2 * np.tanh(w2 * x) - y
    return np.mean(r**2) * (0.5 if convention == "half_mse" else 1.0)


def test_minimal_loss_by_hand(minimal_mse, minimal_half, published_data):
    x, y = published_data.x[:, 0], published_data.y[:, 0]
    for theta in [np.array([-0.13, 0.13, 0.16, -0.15]), np.array([1.0, -2.0, 0.5, 3.0])]:
        assert minimal_mse.loss(theta) == pytest.approx(minimal_loss_by_hand(theta, x, y, "mse"), rel=1e-13)
        assert minimal_half.loss(theta) == pytest.approx(minimal_loss_by_hand(theta, x, y, "half_mse"),
                                                         rel=1e-13)


def test_loss_conventions_differ_by_two(minimal_mse, minimal_half):
    theta = np.array([0.4, -1.1, 0.9, 0.2])
    assert minimal_mse.loss(theta) == pytest.approx(2 * minimal_half.loss(theta), rel=1e-14)
    np.testing.assert_allclose(minimal_mse.grad(theta), 2 * minimal_half.grad(theta), rtol=1e-13)
    np.testing.assert_allclose(minimal_mse.hessian(theta), 2 * minimal_half.hessian(theta), rtol=1e-12,
                               atol=1e-15)
    assert minimal_mse.loss_scale == pytest.approx(1 / 100)
    assert minimal_half.loss_scale == pytest.approx(1 / 200)
    assert minimal_half.with_loss("mse").loss(theta) == pytest.approx(minimal_mse.loss(theta), rel=1e-15)


def test_origin_is_an_index_two_saddle(minimal_half, published_data):
    # REFERENCES §1: at θ = 0 the gradient vanishes and the half-mean Hessian has eigenvalues
    # ±mean(x·y), each twice. (Derivation: ∂²L/∂w_i∂v_i = −mean(x y); all other entries vanish.)
    theta = np.zeros(4)
    np.testing.assert_array_equal(minimal_half.grad(theta), 0.0)
    c = float(np.mean(published_data.x[:, 0] * published_data.y[:, 0]))
    eig = np.sort(np.linalg.eigvalsh(minimal_half.hessian(theta)))
    np.testing.assert_allclose(eig, [-abs(c), -abs(c), abs(c), abs(c)], rtol=1e-12)
    assert abs(c) > 0.1


def test_gen_error_matches_quadrature(minimal_half):
    # R(θ) = ∫ (f(x; θ) − 2 tanh x)² φ(x) dx by adaptive quadrature, independent of Gauss–Hermite.
    assert minimal_half.population_method == "gauss_hermite"
    for theta in [np.array([-0.13, 0.13, 0.16, -0.15]), np.array([2.1, -0.5, 0.7, -1.6]), np.zeros(4)]:
        w1, w2, v1, v2 = theta

        def integrand(x):
            f = v1 * np.tanh(w1 * x) + v2 * np.tanh(w2 * x)
            return (f - 2 * np.tanh(x)) ** 2 * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)

        R_quad, err = scipy.integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13)
        assert minimal_half.gen_error(theta) == pytest.approx(R_quad, rel=1e-10, abs=1e-13)
        assert minimal_half.gen_error_stderr(theta) == 0.0
    # At θ = 0, f = 0 and R = E[4 tanh²(x)] > 0; the noiseless teacher itself has R = 0 at the
    # parameters of T: one neuron (w, v) = (1, 2), the other switched off.
    assert minimal_half.gen_error(np.array([1.0, 0.3, 2.0, 0.0])) == pytest.approx(0.0, abs=1e-15)


def test_gen_error_monte_carlo_against_independent_sample():
    # d_in = 3: the population is Monte Carlo; compare with an independent, larger sample.
    teacher_model = ft.MLP((3, 2, 1), "tanh", bias=False)
    t_theta = np.array([1.0, -0.5, 0.3, 0.2, 0.8, -1.0, 1.5, -0.7])
    data = ft.teacher_dataset((teacher_model, t_theta), 50, noise=0.1, seed=1)
    student = ft.MLP((3, 4, 1), "tanh", bias=True)
    problem = ft.Problem(student, data, population=ft.GaussianQuadrature.build(3, "monte_carlo"))
    assert problem.population_method == "monte_carlo"
    theta = 0.5 * np.random.default_rng(4).standard_normal(student.n_params)
    R, se = problem.gen_error(theta), problem.gen_error_stderr(theta)
    assert 0 < se < 0.05 * R

    rng = np.random.default_rng(2024)  # a different stream from the population's seed
    x = rng.standard_normal((500_000, 3))
    residual = jax.jit(lambda th, x: student.apply(th, x) - teacher_model.apply(t_theta, x))
    sq = np.asarray(residual(theta, x)) ** 2
    R_big, se_big = sq.mean(), sq.std(ddof=1) / np.sqrt(sq.size)
    assert abs(R - R_big) <= 4 * np.hypot(se, se_big)


def test_gen_error_needs_a_teacher():
    model = ft.MLP((1, 2, 1), "tanh", bias=False)
    problem = ft.Problem(model, ft.Dataset(np.linspace(-1, 1, 5), np.zeros(5)))
    assert not problem.has_population
    with pytest.raises(ValueError, match="teacher"):
        problem.gen_error(np.zeros(4))


def test_predict_shapes(minimal_half):
    theta = np.array([0.5, -0.2, 1.0, 2.0])
    xs = np.linspace(-3, 3, 7)
    out = minimal_half.predict(theta, xs)
    assert out.shape == (7, 1)
    np.testing.assert_allclose(out[:, 0], np.tanh(0.5 * xs) + 2 * np.tanh(-0.2 * xs), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(minimal_half.predict(theta, xs[:, None]), out)


# ------------------------------------------------------------------ losses beyond squared error
def mixture(n, seed, k=3):
    """A k-class Gaussian mixture in the plane: centres on a circle of radius 2, unit spread."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    angles = 2 * np.pi * np.arange(k) / k
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return ft.Dataset(centres[labels] + rng.standard_normal((n, 2)), labels.astype(float), name=f"mixture{k}")


def test_cross_entropy_by_hand_and_label_forms_agree():
    model = ft.MLP((2, 4, 3), "tanh")
    data = mixture(40, 0)
    theta = np.asarray(model.init(1, scale=0.7))
    p_int = ft.Problem(model, data, "cross_entropy")
    onehot = np.eye(3)[data.y[:, 0].astype(int)]
    p_hot = ft.Problem(model, ft.Dataset(data.x, onehot), "cross_entropy")
    f = p_int.predict(theta, data.x)
    logp = f - np.log(np.sum(np.exp(f), axis=1, keepdims=True))
    by_hand = -np.mean(logp[np.arange(40), data.y[:, 0].astype(int)])
    assert abs(p_int.loss(theta) - by_hand) <= 1e-14 * by_hand
    assert p_hot.loss(theta) == p_int.loss(theta)
    np.testing.assert_array_equal(p_int.y, onehot)  # integer labels are stored one-hot
    assert p_int.is_classification and p_int.with_loss("half_mse").is_classification


@pytest.mark.parametrize("loss, weight_decay, widths", [
    ("cross_entropy", 0.0, (2, 4, 3)),
    ("cross_entropy", 0.03, (2, 3, 3, 3)),  # a deep net under cross-entropy and weight decay
    ("half_mse", 0.1, (2, 3, 3)),
])
def test_cross_entropy_and_weight_decay_match_finite_differences(loss, weight_decay, widths):
    model = ft.MLP(widths, "tanh")
    problem = ft.Problem(model, mixture(30, 2), loss, weight_decay=weight_decay) if loss == "cross_entropy" \
        else ft.Problem(model, ft.Dataset(mixture(30, 2).x, np.eye(3)[mixture(30, 2).y[:, 0].astype(int)]),
                        loss, weight_decay=weight_decay)
    theta = np.asarray(model.init(3, scale=0.8))
    g = problem.grad(theta)
    g_fd = central_differences(problem.loss, theta, H_FD)
    assert np.linalg.norm(g) > 1e-2
    assert np.linalg.norm(g_fd - g) <= 1e-7 * np.linalg.norm(g)
    H = problem.hessian(theta)
    H_fd = central_differences(problem.grad, theta, H_FD)
    assert np.linalg.norm(H_fd - H) <= 1e-7 * np.linalg.norm(H)
    v = np.random.default_rng(0).standard_normal(theta.size)
    np.testing.assert_allclose(problem.hvp(theta, v), H @ v, rtol=0, atol=1e-12 * np.linalg.norm(H @ v))


def test_weight_decay_adds_half_lambda_norm_squared(minimal_half):
    lam = 0.37
    wd = minimal_half.with_weight_decay(lam)
    theta = np.array([0.3, -0.8, 1.2, 0.5])
    assert abs(wd.loss(theta) - minimal_half.loss(theta) - 0.5 * lam * theta @ theta) <= 1e-15
    np.testing.assert_allclose(wd.grad(theta) - minimal_half.grad(theta), lam * theta, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(wd.hessian(theta) - minimal_half.hessian(theta), lam * np.eye(4),
                               rtol=0, atol=1e-14)


def test_with_data_and_with_loss_keep_every_setting():
    """with_data / with_loss keep a user's population rule, weight decay, frozen set and test set."""
    teacher = ft.MLP((1, 2, 1), "tanh", bias=False)
    data = ft.teacher_dataset((teacher, np.array([1.0, -0.5, 0.7, 0.4])), 30, seed=1)
    pop = ft.GaussianQuadrature.build(1, n_nodes=60)
    theta_full = np.array([0.2, -0.3, 1.5, -2.0])
    p = ft.Problem(teacher, data, population=pop, weight_decay=0.01, frozen="W2", frozen_at=theta_full,
                   test_data=ft.teacher_dataset((teacher, np.array([1.0, -0.5, 0.7, 0.4])), 20, seed=2))
    for q in (p.with_data(ft.teacher_dataset((teacher, np.array([0.3, 0.1, 0.2, 0.9])), 30, seed=3)),
              p.with_loss("mse")):
        assert q.pop_x.shape == pop.x.shape != (1000, 1) and q.population_method == "gauss_hermite"
        assert float(q.weight_decay) == 0.01 and q.n_params == 2 and q.test is not None
        np.testing.assert_array_equal(q.full_theta([0.0, 0.0])[2:], theta_full[2:])
    assert p.with_loss("mse").loss([0.2, -0.3]) == pytest.approx(2 * p.loss([0.2, -0.3])
                                                                  - 0.01 * theta_full @ theta_full / 2)


def test_new_data_and_weight_decay_of_the_same_shape_do_not_recompile():
    from flowtools.problem._batch import jit_grad

    model = ft.MLP((2, 3, 3), "tanh")
    theta = np.asarray(model.init(0))
    a = ft.Problem(model, mixture(20, 0), "cross_entropy", weight_decay=0.1)
    a.grad(theta)
    before = dict(jit_grad.memo)  # one executable per call signature (flowtools._stored_jit)
    b = ft.Problem(model, mixture(20, 1), "cross_entropy", weight_decay=0.2)
    assert not np.allclose(b.grad(theta), a.grad(theta))
    assert jit_grad.memo.keys() == before.keys()
    assert all(jit_grad.memo[k] is before[k] for k in before)


# ------------------------------------------------------------------------------ frozen parameters
def test_frozen_hessian_and_signature_are_the_restricted_ones():
    """A deep net with its middle layer frozen: H on the state is H restricted by hand, and the Morse
    signature is counted there."""
    model = ft.MLP((2, 3, 3, 1), "tanh")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((25, 2))
    data = ft.Dataset(x, np.sin(x[:, :1]) * x[:, 1:])
    theta = np.asarray(model.init(2))
    full = ft.Problem(model, data)
    frozen = ft.Problem(model, data, frozen="layer2", frozen_at=theta)
    mask = frozen.frozen_mask
    assert mask.sum() == 12 and frozen.n_params == model.n_params - 12
    state = frozen.free_theta(theta)
    np.testing.assert_array_equal(frozen.full_theta(state), theta)
    H_by_hand = full.hessian(theta)[np.ix_(~mask, ~mask)]
    np.testing.assert_allclose(frozen.hessian(state), H_by_hand, rtol=0, atol=1e-13 * np.abs(H_by_hand).max())
    np.testing.assert_allclose(frozen.grad(state), full.grad(theta)[~mask], rtol=1e-14, atol=1e-16)
    ev = np.linalg.eigvalsh(H_by_hand)
    spec = ft.hessian_spectrum(frozen, state)
    tol = 1e-7 * np.abs(ev).max()  # the default rtol_zero of hessian_spectrum
    by_hand = (int(np.sum(ev < -tol)), int(np.sum(np.abs(ev) <= tol)), int(np.sum(ev > tol)))
    assert tuple(spec.signature) == by_hand
    assert sum(spec.signature) == frozen.n_params
    assert frozen.param_names == [n for n, m in zip(model.param_names, mask) if not m]


def test_flow_and_gd_keep_a_frozen_second_layer_fixed_exactly():
    """The soft committee machine's setting: erf units, second layer held at 1, d = 10."""
    model = ft.MLP((10, 2, 1), "erf", bias=False)
    teacher = np.concatenate([np.eye(2, 10).ravel(), [1.0, 1.0]])
    data = ft.teacher_dataset((model, teacher), 200, seed=5)
    theta0 = np.asarray(model.init(7, scale=0.1)).copy()
    theta0[20:] = 1.0
    p = ft.Problem(model, data, frozen="W2", frozen_at=theta0)
    flow = ft.gradient_flow(p, p.free_theta(theta0), 30.0, n_save=20)
    gd = ft.gradient_descent(p, p.free_theta(theta0), 0.3, 100, n_records=10)
    for tr in (flow, gd):
        assert tr.theta.shape[1] == 20
        assert tr.loss[-1] < 0.5 * tr.loss[0]
        ends = np.array([p.full_theta(th) for th in tr.theta])
        assert np.all(ends[:, 20:] == 1.0)  # exactly, not to a tolerance
    assert p.gen_error(flow.final_theta) < p.gen_error(flow.theta[0])


# ------------------------------------------------------------------------------------ own models
def _hand_mlp(theta, x):
    """The MLP((2, 4, 3), "tanh") forward pass written out by hand, in flowtools' flat order."""
    W1, b1 = theta[:8].reshape(4, 2), theta[8:12]
    W2, b2 = theta[12:24].reshape(3, 4), theta[24:27]
    return jax.numpy.tanh(x @ W1.T + b1) @ W2.T + b2


def test_function_model_equals_the_mlp_it_writes_out():
    model = ft.MLP((2, 4, 3), "tanh")
    data = mixture(30, 5)
    theta = np.asarray(model.init(0))
    ours = ft.Problem.from_function(_hand_mlp, theta, data, "cross_entropy", d_out=3, weight_decay=0.01)
    ref = ft.Problem(model, data, "cross_entropy", weight_decay=0.01)
    assert ours.n_params == 27 and not ours.is_mlp
    assert abs(ours.loss(theta) - ref.loss(theta)) <= 1e-14
    np.testing.assert_allclose(ours.grad(theta), ref.grad(theta), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours.hessian(theta), ref.hessian(theta), rtol=1e-12, atol=1e-14)


def test_equinox_module_through_ravel_pytree():
    import equinox as eqx

    net = eqx.nn.MLP(2, 3, 4, 1, activation=jax.numpy.tanh, key=jax.random.PRNGKey(0))
    net = jax.tree_util.tree_map(lambda a: a.astype(np.float64) if eqx.is_inexact_array(a) else a, net)
    model, theta0 = ft.FunctionModel.from_equinox(net, d_in=2, d_out=3)
    data = mixture(25, 6)
    p = ft.Problem(model, data, "cross_entropy")
    assert p.n_params == 2 * 4 + 4 + 4 * 3 + 3
    out = p.predict(theta0, data.x)
    np.testing.assert_allclose(out, np.asarray(jax.vmap(net)(data.x)), rtol=1e-14, atol=1e-15)
    g = p.grad(theta0)
    g_fd = central_differences(p.loss, np.asarray(theta0), H_FD)
    assert np.linalg.norm(g_fd - g) <= 1e-7 * np.linalg.norm(g)


def test_symmetry_tools_say_they_need_an_mlp():
    p = ft.Problem.from_function(_hand_mlp, 27, mixture(10, 0), "cross_entropy", d_out=3)
    with pytest.raises(TypeError, match="need an MLP"):
        ft.canonical_form(p, np.zeros(27))
    with pytest.raises(TypeError, match="need an MLP"):
        ft.reduce_network(p, np.zeros(27))
    with pytest.raises(TypeError, match="inner Hessian needs an MLP"):
        ft.inner_hessian(p, np.zeros(27), 0)
    with pytest.raises(TypeError, match="norm-imbalance identity needs an MLP"):
        ft.norm_imbalance_rate(p, np.zeros(27))
    frozen = ft.Problem(ft.MLP((1, 2, 1)), ft.Dataset([0.0, 1.0], [0.0, 1.0]), frozen="b2",
                        frozen_at=np.zeros(7))
    with pytest.raises(TypeError, match="full_theta"):
        ft.canonical_form(frozen, np.zeros(6))


# ------------------------------------------------------------------------------ held-out data
def test_held_out_loss_and_accuracy_recorded_along_runs(tmp_path):
    model = ft.MLP((2, 6, 3), "tanh")
    p = ft.Problem(model, mixture(60, 7), "cross_entropy", test_data=mixture(300, 8))
    theta0 = np.asarray(model.init(3, scale=0.3))
    flow = ft.gradient_flow(p, theta0, 40.0, n_save=20)
    gd = ft.gradient_descent(p, theta0, 0.2, 200, n_records=20)
    for tr in (flow, gd):
        assert tr.test_loss.shape == tr.loss.shape == tr.test_accuracy.shape
        rows = [0, len(tr) // 2, len(tr) - 1]
        np.testing.assert_allclose(tr.test_loss[rows], [p.test_loss(tr.theta[i]) for i in rows], rtol=1e-13)
        np.testing.assert_array_equal(tr.test_accuracy[rows], [p.test_accuracy(tr.theta[i]) for i in rows])
        assert tr.test_accuracy[-1] > 0.8 > tr.test_accuracy[0]  # the mixture is learnable
    # accuracy by hand at the end of the flow
    test = p.test_data
    hand = np.mean(np.argmax(p.predict(flow.final_theta, test.x), 1) == np.argmax(test.y, 1))
    assert flow.test_accuracy[-1] == hand
    flow.save(tmp_path / "run")
    back = ft.Trajectory.load(tmp_path / "run")
    np.testing.assert_array_equal(back.test_loss, flow.test_loss)
    np.testing.assert_array_equal(back.test_accuracy, flow.test_accuracy)
    # squared error on a scalar target: test loss, no accuracy
    reg = ft.Problem(ft.MLP((2, 3, 1)), ft.Dataset(p.x, np.asarray(p.x)[:, :1] ** 2),
                     test_data=ft.Dataset(test.x, test.x[:, :1] ** 2))
    tr = ft.gradient_descent(reg, ft.MLP((2, 3, 1)).init(0), 0.05, 20)
    assert tr.test_loss is not None and tr.test_accuracy is None
    plain = ft.Problem(model, mixture(60, 7), "cross_entropy")
    assert ft.gradient_descent(plain, theta0, 0.1, 5).test_loss is None


# ----------------------------------------------------------------------------- a population source
class _QuadratureSource(ft.DataSource):
    """A weighted sample (x_k, w_k) with teacher targets: the population loss of a d_in = 1 teacher by
    Gauss–Hermite quadrature, through the same seam a closed-form population source uses."""

    x: jax.Array
    y: jax.Array
    w: jax.Array
    has_gen_error = True

    def data_loss(self, model, theta, loss):
        r = model.apply(theta, self.x) - self.y
        return (0.5 if loss == "half_mse" else 1.0) * jax.numpy.sum(self.w * jax.numpy.sum(r * r, axis=-1))

    def gen_error(self, model, theta):
        return 2.0 * self.data_loss(model, theta, "half_mse")


def test_a_population_source_plugs_into_the_whole_problem(minimal_half):
    model = minimal_half.model
    teacher = np.array([1.0, -0.5, 0.7, 0.4])
    pop = ft.GaussianQuadrature.build(1, n_nodes=200)
    src = _QuadratureSource(pop.x, np.asarray(model.apply(teacher, pop.x)), pop.weights)
    p = ft.Problem(model, src)
    theta = np.array([0.3, -0.8, 1.2, 0.5])
    finite = ft.Problem(model, ft.teacher_dataset((model, teacher), 5))  # R by the package's own rule
    assert p.has_population and p.gen_error(theta) == pytest.approx(finite.gen_error(theta), rel=1e-12)
    assert p.loss(theta) == pytest.approx(0.5 * p.gen_error(theta), rel=1e-14)
    tr = ft.gradient_flow(p, theta, 200.0)
    assert tr.gen_error[-1] < 1e-3 * tr.gen_error[0]


def _minimal_by_hand(theta, x):
    """f(x) = v1 tanh(w1 x) + v2 tanh(w2 x) (Maleknia & Sato, Eq. 1), written without MLP."""
    return theta[2] * jax.numpy.tanh(theta[0] * x) + theta[3] * jax.numpy.tanh(theta[1] * x)


def test_own_model_gd_critical_point_and_spectrum_equal_the_mlp():
    mlp = ft.problems.minimal_model(loss="mse")
    own = ft.Problem.from_function(_minimal_by_hand, 4, mlp.data, "mse")
    theta0 = ft.problems.MINIMAL_MODEL_THETA0
    gd_own, gd_mlp = (ft.gradient_descent(p, theta0, 0.01, 300, n_records=10) for p in (own, mlp))
    np.testing.assert_allclose(gd_own.theta, gd_mlp.theta, rtol=1e-11, atol=1e-14)
    cp = ft.find_critical_point(own, 1e-3 * theta0)
    assert cp.success and np.linalg.norm(cp.theta) < 1e-10 and tuple(cp.signature) == (2, 0, 2)
    assert cp.reduces_to == ""
    np.testing.assert_allclose(ft.hessian_spectrum(own, cp.theta).eigenvalues,
                               ft.hessian_spectrum(mlp, cp.theta).eigenvalues, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_whole_pipeline_runs_on_an_own_model():
    """Flow, GD, critical points, spectra, itinerary, saddle graph and escape time on a hand-written
    model agree with the same network built as an MLP; only the symmetry reduction is left blank."""
    from flowtools.graph import SaddleGraph
    from flowtools.itineraries import add_to_graph, itinerary

    mlp = ft.problems.minimal_model(noiseless=True, loss="mse")
    data = mlp.data
    own = ft.Problem.from_function(_minimal_by_hand, 4, data, "mse")
    theta0 = ft.problems.MINIMAL_MODEL_THETA0
    gd_own, gd_mlp = (ft.gradient_descent(p, theta0, 0.01, 2000) for p in (own, mlp))
    np.testing.assert_allclose(gd_own.theta, gd_mlp.theta, rtol=1e-10, atol=1e-13)
    flow = ft.gradient_flow(own, theta0, 2e4)
    ref = ft.gradient_flow(mlp, theta0, 2e4)
    assert flow.status == ref.status
    it, it_ref = itinerary(own, flow), itinerary(mlp, ref)
    assert [(v.kind, v.signature) for v in it.visits] == [(v.kind, v.signature) for v in it_ref.visits]
    assert it.visits[0].signature == (2, 0, 2) and it.terminal == it_ref.terminal == "attractor"
    assert all(v.reduces_to == "" for v in it.visits)
    g = SaddleGraph()
    assert len(add_to_graph(g, it, run="own")) == len(it.visits)
    cp = ft.find_critical_point(own, 1e-3 * theta0)
    assert cp.success and np.linalg.norm(cp.theta) < 1e-10 and tuple(cp.signature) == (2, 0, 2)
    assert cp.reduces_to == ""
    np.testing.assert_allclose(ft.hessian_spectrum(own, cp.theta).eigenvalues,
                               ft.hessian_spectrum(mlp, cp.theta).eigenvalues, rtol=1e-12, atol=1e-14)
    esc = ft.escape_time(flow, np.zeros(4), 0.5, problem=own)
    esc_ref = ft.escape_time(ref, np.zeros(4), 0.5, problem=mlp)
    assert esc.time == pytest.approx(esc_ref.time, rel=1e-6)


def test_vmappable_over_states_weight_decay_and_frozen_values():
    import equinox as eqx

    model = ft.MLP((2, 3, 3), "tanh")
    theta = np.asarray(model.init(0))
    p = ft.Problem(model, mixture(20, 3), "cross_entropy", weight_decay=0.1, frozen="b2", frozen_at=theta)
    states = np.stack([p.free_theta(np.asarray(model.init(k))) for k in range(3)])
    np.testing.assert_allclose(np.asarray(jax.vmap(p.loss_fn)(states)), [p.loss(s) for s in states], rtol=1e-14)
    lams = np.array([0.0, 0.1, 0.5])
    by_vmap = jax.vmap(lambda lam: eqx.tree_at(lambda q: q.weight_decay, p, lam).loss_fn(states[0]))(lams)
    np.testing.assert_allclose(np.asarray(by_vmap), [p.with_weight_decay(lam).loss(states[0]) for lam in lams],
                               rtol=1e-14)
    bases = np.stack([theta, 2 * theta])
    by_vmap = jax.vmap(lambda b: eqx.tree_at(lambda q: q.frozen_base, p, b).loss_fn(states[0]))(bases)
    np.testing.assert_allclose(np.asarray(by_vmap), [p.freeze("b2", b).loss(states[0]) for b in bases], rtol=1e-14)


# ------------------------------------------------------------------- conventions share compiled code
def test_squared_error_conventions_share_one_compilation():
    """"half_mse" and "mse" differ only in the weight ½ / 1, which the problem carries as data: a flow
    compiled for one serves the other (no new compilation), the loss is still c·Σ‖f − y‖² bit for bit,
    and the flows are one flow on two clocks (L_mse = 2 L_half, so θ_mse(t) = θ_half(2t))."""
    import jax.numpy as jnp

    from flowtools.dynamics import flow

    data = ft.teacher_dataset(lambda x: jnp.tanh(x @ jnp.ones((10, 1))), 30, d_in=10, seed=3)
    data = ft.Dataset(data.x, data.y)
    model = ft.MLP([10, 2, 1], activation="tanh")  # a d = 10 teacher–student
    half = ft.Problem(model, data)
    mse = half.with_loss("mse")
    assert (half.loss_convention, mse.loss_convention) == ("half_mse", "mse")
    theta = np.random.default_rng(0).standard_normal(model.n_params) * 0.5
    n = data.x.shape[0]

    @jax.jit
    def direct(th, c):
        r = model.apply(th, jnp.asarray(data.x)) - jnp.asarray(data.y)
        return c * jnp.sum(r * r)

    assert half.loss(theta) == float(direct(theta, 1.0 / (2 * n)))
    assert mse.loss(theta) == float(direct(theta, 1.0 / n))
    np.testing.assert_array_equal(mse.grad(theta), 2 * half.grad(theta))  # a power of two: exact

    a = ft.gradient_flow(half, theta, 8.0, save_ts=[1.0, 2.0, 4.0, 8.0])
    compiled = len(flow._COMPILED)
    b = ft.gradient_flow(mse, theta, 4.0, save_ts=[0.5, 1.0, 2.0, 4.0])
    assert b.stats["compile_time"] == 0.0 and len(flow._COMPILED) == compiled  # the same executable
    assert b.meta["loss"] == "mse" and a.meta["loss"] == "half_mse"
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=1e-6)
    # Cross-entropy is another function: it compiles on its own, and its name is kept.
    assert ft.Problem(ft.MLP([2, 3, 2]), ft.Dataset(np.eye(2), np.array([[0.0], [1.0]])),
                      "cross_entropy").loss_convention == "cross_entropy"


def test_the_package_keeps_every_import_path_and_imports_no_private_name():
    import ast
    import importlib.util
    import pathlib

    import flowtools.problem as m
    from flowtools.problem import _batch, _losses, _problem, _sources

    names = {"Problem": _problem, "LOSSES": _losses, "LOSS_CONVENTIONS": _losses, "sample_losses": _losses,
             "DataSource": _sources, "FiniteData": _sources, "training_outputs": _batch,
             "held_out_metrics": _batch, "map_states": _batch, "state_chunk": _batch,
             "state_vmap_width": _batch, "dense_hessian_fn": _batch, "STATE_CHUNK_BYTES": _batch,
             "STATE_VMAP_BYTES": _batch}
    for name, module in names.items():
        assert getattr(m, name) is getattr(module, name), name
    assert set(m.__all__) <= set(names) and all(n in dir(m) for n in m.__all__)
    assert ft.Problem is m.Problem and ft.DataSource is m.DataSource and ft.FiniteData is m.FiniteData
    # `from .x import _y` between modules: a shared helper is public in the module of its concept.
    root = pathlib.Path(m.__file__).resolve().parents[1]
    def is_module(name):
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent is a module, not a package
            return False

    bad = []
    for path in sorted(root.rglob("*.py")):
        package = ["flowtools", *path.parent.relative_to(root).parts]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            if not module.startswith("flowtools.problem") and path.parent.name != "problem":
                continue
            bad += [f"{path.name}: {module}.{a.name}" for a in node.names if a.name.startswith("_")
                    and not is_module(f"{module}.{a.name}")]  # a private module is fine
    assert bad == []
