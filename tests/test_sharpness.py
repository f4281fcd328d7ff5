"""Sharpness along GD runs and the edge of stability (flowtools.dynamics.sharpness).

The settled sharpness of GD at the edge of stability is checked against 2/η (Cohen et al. 2021) on the
minimal model and on a tanh 1-20-1 net fitting sin 2x; λ_max itself against numpy's dense eigvalsh."""

import numpy as np
import pytest

import flowtools as ft
from flowtools.dynamics.sharpness import SharpnessSeries, catapults, edge_of_stability, sharpness

from conftest import PUBLISHED_THETA0


@pytest.fixture(scope="module")
def sine_net():
    """tanh 1-20-1 (61 parameters, biases) on y = sin 2x at 40 points of [−2, 2]; Glorot init, seed 0."""
    x = np.linspace(-2, 2, 40)
    problem = ft.Problem(ft.MLP((1, 20, 1), "tanh", bias=True), ft.Dataset(x, np.sin(2 * x), name="sin 2x"),
                         "mse")
    return problem, np.asarray(problem.model.init(0, "glorot"))


def test_sharpness_matches_dense_eigenvalues(minimal_mse, sine_net):
    problem, theta0 = sine_net
    rng = np.random.default_rng(0)
    thetas = theta0 + 0.3 * rng.standard_normal((3, problem.n_params))
    dense = [np.linalg.eigvalsh(problem.hessian(th))[-1] for th in thetas]
    np.testing.assert_allclose(sharpness(problem, thetas), dense, rtol=1e-9)
    assert sharpness(minimal_mse, PUBLISHED_THETA0) == pytest.approx(
        np.linalg.eigvalsh(minimal_mse.hessian(PUBLISHED_THETA0))[-1], rel=1e-12)
    with pytest.raises(ValueError, match="theta must have 4 entries"):
        sharpness(minimal_mse, np.zeros(3))


@pytest.mark.parametrize("lr", [0.77, 1.12])
def test_minimal_model_settles_at_two_over_lr(minimal_mse, lr):
    gd = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr, 20_000, max_norm=1e4, sharpness_every=50)
    assert gd.status == ft.Status.T1_REACHED  # the status stays honest
    eos = gd.stats["edge_of_stability"]
    assert eos["settled"] and abs(eos["settled_ratio"] - 1) <= 0.02
    assert eos["two_over_lr"] == pytest.approx(2 / lr)
    assert "edge of stability" in gd.message and gd.message.startswith("ran all 20000 steps")
    series = gd.sharpness
    # pairs of consecutive iterates every 50 steps, t = kη
    assert list(series.step[:4]) == [0, 1, 50, 51] and np.allclose(series.t, series.step * lr)
    assert np.all(series.residual < 1e-8)
    # both phases of the period-2 oscillation are seen: one above 2/η, one below
    tail = series.lambda_max[-20:]
    assert tail.max() > 2 / lr > tail.min()
    # progressive sharpening: reached 2/η after a start below it (η = 0.77) or started above it
    start = series.lambda_max[0]
    if start < 0.97 * 2 / lr:
        assert eos["t_reaches_two_over_lr"] > 0
    else:
        assert eos["t_reaches_two_over_lr"] == 0


def test_stable_run_is_not_at_the_edge(minimal_mse):
    gd = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 0.5, 20_000, sharpness_every=100)
    eos = gd.stats["edge_of_stability"]
    lam_star = np.linalg.eigvalsh(minimal_mse.hessian(gd.final_theta))[-1]  # 3.44 < 2/η = 4
    assert not eos["settled"] and eos["settled_ratio"] < 0.9
    assert eos["sharpness_final"] == pytest.approx(lam_star, rel=1e-9)
    assert eos["t_reaches_two_over_lr"] is None and "edge of stability" not in gd.message


@pytest.mark.parametrize("lr", [0.19, 0.288])
def test_tanh_sine_net_settles_at_two_over_lr(sine_net, lr):
    problem, theta0 = sine_net
    gd = ft.gradient_descent(problem, theta0, lr, 20_000, max_norm=1e4, sharpness_every=100)
    eos = gd.stats["edge_of_stability"]
    assert gd.status == ft.Status.T1_REACHED
    assert eos["settled"] and abs(eos["settled_ratio"] - 1) <= 0.02, eos
    # the stored Ritz values are λ_max: dense eigenvalues at the last sampled state agree
    last = gd.theta[-1]
    assert gd.sharpness.step[-1] == gd.step[-1]
    assert gd.sharpness.lambda_max[-1] == pytest.approx(np.linalg.eigvalsh(problem.hessian(last))[-1], rel=1e-9)


def test_sharpness_series_survives_save_and_resume(minimal_mse, tmp_path):
    full = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 1.0, 3_000, sharpness_every=30)
    part = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 1.0, 3_000, sharpness_every=30, time_limit=1e-9)
    assert part.status == ft.Status.TIME_LIMIT and part.sharpness.step[-1] < 3_000
    part.save(tmp_path / "part")
    loaded = ft.Trajectory.load(tmp_path / "part")
    np.testing.assert_array_equal(loaded.sharpness.lambda_max, part.sharpness.lambda_max)
    assert loaded.sharpness.lr == 1.0
    done = ft.gradient_descent(minimal_mse, None, 1.0, 3_000, sharpness_every=30, resume=loaded)
    np.testing.assert_array_equal(done.sharpness.step, full.sharpness.step)
    np.testing.assert_allclose(done.sharpness.lambda_max, full.sharpness.lambda_max, rtol=1e-10)
    assert done.stats["edge_of_stability"]["settled"] == full.stats["edge_of_stability"]["settled"]


def test_ensembles_track_sharpness_member_by_member(minimal_mse):
    runs = ft.run_ensemble("gradient_descent", minimal_mse, np.stack([PUBLISHED_THETA0] * 2), lr=1.0,
                           steps=2_000, sharpness_every=50)
    np.testing.assert_array_equal(runs[0].sharpness.lambda_max, runs[1].sharpness.lambda_max)
    with pytest.raises(TypeError, match="batched=False"):
        ft.run_ensemble("gradient_descent", minimal_mse, np.stack([PUBLISHED_THETA0] * 2), batched=True,
                        lr=1.0, steps=2_000, sharpness_every=50)


def test_sharpness_every_is_checked(minimal_mse):
    with pytest.raises(ValueError, match="sharpness_every"):
        ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 0.1, 10, sharpness_every=0)
    with pytest.raises(ValueError, match="lanczos_steps"):
        ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 0.1, 10, sharpness_every=5, lanczos_steps=1)


def _series(loss, lam, lr=0.5):
    step = np.arange(len(loss))
    return SharpnessSeries(step=step, t=step * lr, lambda_max=np.asarray(lam, float),
                           residual=np.zeros(len(loss)), loss=np.asarray(loss, float), lr=lr)


def test_catapult_needs_a_loss_spike_and_a_sharpness_drop():
    # loss decreasing, sharpening past 2/η = 4, spike ×50, back down flatter: one catapult
    loss = [1.0, 0.5, 0.3, 0.2, 3.0, 10.0, 2.0, 0.15, 0.1, 0.08]
    lam = [2.0, 3.0, 4.0, 4.5, 4.6, 4.0, 3.0, 2.5, 2.5, 2.5]
    events = catapults(_series(loss, lam))
    assert len(events) == 1
    e = events[0]
    assert (e["t_start"], e["t_peak"], e["t_end"]) == (2.0, 2.5, 3.5)
    assert e["loss_before"] == 0.2 and e["loss_peak"] == 10.0
    assert e["sharpness_before"] == 4.6 and e["sharpness_after"] == 2.5
    # the same spike without a drop in sharpness is not a catapult
    assert catapults(_series(loss, [4.5] * len(loss))) == []
    # a wiggle below the spike factor is not one either
    assert catapults(_series([1.0, 0.5, 0.9, 0.4, 0.3], [4, 4, 2, 2, 2])) == []
    diag = edge_of_stability(_series(loss, lam))
    assert len(diag["catapults"]) == 1 and diag["t_reaches_two_over_lr"] == 1.0


def test_plot_sharpness(minimal_mse, tmp_path):
    from flowtools.plotting import plot_sharpness, save_figure

    runs = [ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr, 2_000, sharpness_every=20) for lr in (0.5, 1.0)]
    ax = plot_sharpness(runs)
    lines = [ln for ln in ax.get_lines()]
    assert sorted(ln.get_ydata()[0] for ln in lines if len(ln.get_ydata()) == 2) == [2.0, 4.0]  # the 2/η lines
    save_figure(ax.figure, tmp_path / "sharpness.png")
    assert (tmp_path / "sharpness.png").stat().st_size > 0
    with pytest.raises(ValueError, match="sharpness_every"):
        plot_sharpness([ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, 0.5, 10)])


def test_catapult_of_a_wide_linear_net():
    """Lewkowycz et al. (2020): a wide two-layer linear net with 2/λ0 < η < 4/λ0 catapults — the loss
    spikes, and the run lands where λ_max < 2/η; below 2/λ0 it does not."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4))
    y = x @ rng.standard_normal(4)[:, None] / 2
    problem = ft.Problem(ft.MLP((4, 200, 1), "linear", bias=False), ft.Dataset(x, y), "half_mse")
    theta0 = np.asarray(problem.model.init(0, "lecun"))
    lam0 = sharpness(problem, theta0)
    calm = ft.gradient_descent(problem, theta0, 1.5 / lam0, 400, sharpness_every=1)
    assert calm.stats["edge_of_stability"]["catapults"] == []
    lr = 3.0 / lam0
    gd = ft.gradient_descent(problem, theta0, lr, 400, sharpness_every=1)
    assert gd.status == ft.Status.T1_REACHED and gd.final_loss < 1e-20
    events = gd.stats["edge_of_stability"]["catapults"]
    assert len(events) == 1 and "1 catapult(s)" in gd.message
    e = events[0]
    assert e["loss_peak"] > 100 * e["loss_before"]
    assert e["sharpness_after"] < 2 / lr < lam0 <= e["sharpness_before"]


def test_sgd_tracks_the_full_batch_sharpness(sine_net):
    problem, theta0 = sine_net
    runs = [ft.sgd(problem, theta0, 0.1, 2_000, batch_size=8, seed=3, sharpness_every=100) for _ in range(2)]
    a = runs[0].sharpness
    np.testing.assert_array_equal(a.lambda_max, runs[1].sharpness.lambda_max)  # seeded: the same run
    # the recorded value is the full-batch λ_max at that iterate
    at = ft.sgd(problem, theta0, 0.1, 1_000, batch_size=8, seed=3).final_theta
    assert a.lambda_max[list(a.step).index(1000)] == pytest.approx(
        np.linalg.eigvalsh(problem.hessian(at))[-1], rel=1e-9)
    assert runs[0].stats["edge_of_stability"]["two_over_lr"] == pytest.approx(20.0)
