"""Escape times, the linearized prediction, plateau lengths, scaling fits and bottleneck inits."""

import math
import types

import numpy as np
import pytest

import flowtools as ft
from flowtools import escape as E


def _traj(t, theta, loss=None, method="gradient_flow"):
    t = np.asarray(t, float)
    theta = np.asarray(theta, float)
    loss = np.zeros(t.size) if loss is None else np.asarray(loss, float)
    return types.SimpleNamespace(t=t, theta=theta, loss=loss, method=method)


# ------------------------------------------------------------------ escape_time on synthetic paths
def test_escape_time_exponential_growth_is_exact_with_linear_interpolation():
    lam, d0, R = 0.7, 1e-4, 0.3
    t = np.linspace(0, 20, 41)  # coarse: 0.5 apart
    theta = np.stack([d0 * np.exp(lam * t), np.zeros_like(t)], axis=1)
    e = E.escape_time(_traj(t, theta), np.zeros(2), R, interpolation="linear")
    assert e.status == "escaped" and e.started_inside and e.t_in == 0.0
    assert e.time == pytest.approx(E.linearized_escape_time(d0, R, lam), rel=1e-12)


def test_escape_time_power_law_is_exact_with_log_interpolation():
    t = np.geomspace(1e-3, 1e4, 30)
    theta = np.stack([1e-3 * t**1.5, 0 * t], axis=1)
    e = E.escape_time(_traj(t, theta), np.zeros(2), 1.0, interpolation="log")
    # 1e-3 t^1.5 = 1 at t = 1e2; starts inside at t0 = 1e-3
    assert e.t_out == pytest.approx(100.0, rel=1e-12)
    assert e.time == pytest.approx(100.0 - 1e-3, rel=1e-12)


def test_escape_time_enter_then_leave_and_statuses():
    t = np.linspace(0, 10, 11)
    x = np.abs(t - 5.0)  # distance to 0: 5 → 0 → 5
    theta = np.stack([x, 0 * x], axis=1)
    e = E.escape_time(_traj(t, theta), np.zeros(2), 2.5, interpolation="linear")
    assert e.status == "escaped" and not e.started_inside
    # log-d interpolation between d=3 (t=2) and d=2 (t=3): crossing of 2.5 at t = 2 + log(3/2.5)/log(3/2)
    assert e.t_in == pytest.approx(2 + math.log(3 / 2.5) / math.log(1.5), rel=1e-12)
    assert e.t_out == pytest.approx(7 + math.log(2.5 / 2) / math.log(1.5), rel=1e-12)

    never_left = E.escape_time(_traj(t, np.zeros((11, 2))), np.zeros(2), 1.0)
    assert never_left.status == "never_left" and math.isnan(never_left.time)
    assert never_left.lower_bound == 10.0 and "Run longer" in never_left.message

    never_in = E.escape_time(_traj(t, np.full((11, 2), 5.0)), np.zeros(2), 1.0)
    assert never_in.status == "never_entered" and math.isnan(never_in.time)


def test_escape_time_ignores_a_non_finite_tail():
    t = np.linspace(0, 4, 5)
    theta = np.array([[0.0, 0], [0.1, 0], [0.2, 0], [np.nan, 0], [np.inf, 0]])
    e = E.escape_time(_traj(t, theta), np.zeros(2), 1.0)
    assert e.status == "never_left" and "non-finite" in e.message and e.lower_bound == 2.0


def test_escape_time_accepts_center_objects_and_checks_input():
    t = np.linspace(0, 1, 5)
    theta = np.stack([t, t], axis=1)
    center = types.SimpleNamespace(theta=np.zeros(2))
    assert E.escape_time(_traj(t, theta), center, 0.5).status == "escaped"
    with pytest.raises(ValueError):
        E.escape_time(_traj(t, theta), np.zeros(2), -1.0)
    with pytest.raises(ValueError, match="problem"):
        E.escape_time(_traj(t, theta), np.zeros(2), 0.5, metric="function")


def test_function_metric_is_rms_output_difference(minimal_half):
    th = np.array([0.3, -0.2, 0.5, 0.1])
    f = minimal_half.predict(th, minimal_half.x)
    d = E.distances(th[None], np.zeros(4), metric="function", problem=minimal_half)
    assert d[0] == pytest.approx(np.sqrt(np.mean(f[:, 0] ** 2)), rel=1e-12)


# ------------------------------------------ linearized escape from the minimal model's index-2 saddle
def test_escape_time_matches_linearized_prediction_at_the_minimal_saddle(minimal_half):
    """Origin of v1 tanh(w1 x) + v2 tanh(w2 x), half_mse: H = [[0, −c], [−c, 0]] per neuron, c = mean(xy),
    so −H has λ_u = c (twice). Starting at δ·u (u the unit eigenvector of H's eigenvalue −c), the escape
    time T(δ) from the ball of radius R = 0.1 around 0 satisfies T(δ) = log(R/δ)/λ_u + κ(R) + o(1) with
    κ(R) = O(R²) from the cubic terms of ∇L. We assert, for δ = 1e-3 … 1e-6:
      (1) T − log(R/δ)/λ_u is bounded (|·| < 0.01) and varies by < 1e-4 over the four δ (it converges),
      (2) T / (log(R/δ)/λ_u) − 1 decreases monotonically and is < 1e-3 at δ = 1e-6,
      (3) the offset shrinks like R²: at R = 0.01 it is below 1/50 of the offset at R = 0.1.
    """
    pr = minimal_half
    x, y = np.asarray(pr.x)[:, 0], np.asarray(pr.y)[:, 0]
    c = float(np.mean(x * y))
    evals, evecs = np.linalg.eigh(pr.hessian(np.zeros(4)))
    np.testing.assert_allclose(evals, [-c, -c, c, c], rtol=1e-12)
    lam, u = -evals[0], evecs[:, 0]

    def offset(delta, R):
        t_lin = E.linearized_escape_time(delta, R, lam)
        t1 = t_lin + 3.0
        tr = ft.gradient_flow(pr, delta * u, t1, save_ts=np.linspace(0, t1, 1501)[1:], rtol=1e-10,
                              atol=1e-14, solver="tsit5")
        e = E.escape_time(tr, np.zeros(4), R, interpolation="linear")
        assert e.status == "escaped" and e.started_inside
        return e.time, t_lin

    deltas = [1e-3, 1e-4, 1e-5, 1e-6]
    res = [offset(d, 0.1) for d in deltas]
    offs = np.array([T - tl for T, tl in res])
    ratios = np.array([T / tl for T, tl in res])
    assert np.all(np.abs(offs) < 0.01)
    assert np.ptp(offs) < 1e-4
    assert np.all(np.diff(np.abs(ratios - 1)) < 0) and abs(ratios[-1] - 1) < 1e-3
    T_small, tl_small = offset(1e-6, 0.01)
    assert abs(T_small - tl_small) < abs(offs[-1]) / 50


def test_escape_flow_stops_at_exit_and_agrees_with_a_full_flow(minimal_half):
    pr = minimal_half
    evals, evecs = np.linalg.eigh(pr.hessian(np.zeros(4)))
    theta0 = 1e-4 * evecs[:, 0]
    run = E.escape_flow(pr, theta0, np.zeros(4), 0.1, metric="parameter", t1=1e3, n_save=300,
                        t_first=1e-2)
    assert run.escape.status == "escaped" and run.trajectory.meta["stopped_on_exit"]
    assert "leaving the ball" in run.trajectory.message
    assert run.trajectory.final_time < 10  # it did not run on to t1
    t_lin = E.linearized_escape_time(1e-4, 0.1, -evals[0])
    assert abs(run.escape.time - t_lin) < 0.01
    with pytest.raises(ValueError, match="not strictly inside the ball"):
        E.escape_flow(pr, np.ones(4), np.zeros(4), 0.1, metric="parameter")
    # on the sphere the exit event is 0 at t0 and its bisection has no bracket
    with pytest.raises(ValueError, match="not strictly inside the ball"):
        E.escape_flow(pr, np.array([0.1, 0.0, 0.0, 0.0]), np.zeros(4), 0.1, metric="parameter")
    with pytest.warns(FutureWarning, match=r"escape_flow\(t_max=\.\.\.\) is deprecated .* use t1="):
        short = E.escape_flow(pr, theta0, np.zeros(4), 0.1, metric="parameter", t_max=0.1, n_save=300,
                              t_first=1e-2)
    assert short.escape.status == "never_left" and short.trajectory.final_time == pytest.approx(0.1)
    assert short.trajectory.message.startswith("reached t1=0.1 without leaving the ball")


# --------------------------------------------------------------------------------- plateau
def test_plateau_length_drop_and_slope():
    t = np.concatenate([[0.0], np.geomspace(1e-2, 1e4, 400)])
    with np.errstate(divide="ignore", over="ignore"):
        loss = 1.0 - 0.9 / (1 + (100.0 / t) ** 4)  # sigmoid in log t, midpoint t = 100
    p = E.plateau_length(_traj(t, np.zeros((t.size, 1)), loss), fraction=0.5)
    assert p.status == "ended" and p.t_start == 0.0
    assert p.length == pytest.approx(100.0, rel=2e-3)
    s = E.plateau_length(_traj(t, np.zeros((t.size, 1)), loss), method="slope", threshold=0.05)
    assert s.status == "ended" and s.t_start == pytest.approx(1e-2) and 20 < s.t_end < 100
    flat = E.plateau_length(_traj(t, np.zeros((t.size, 1)), np.ones(t.size)))
    assert flat.status == "flat" and math.isnan(flat.length)
    short = E.plateau_length(_traj(t[:100], np.zeros((100, 1)), loss[:100]), loss_final=0.1)
    assert short.status == "no_drop" and short.lower_bound == pytest.approx(t[99])


# ----------------------------------------------------------------------------- scaling fits
def test_fit_power_law_recovers_exponent_with_ci():
    rng = np.random.default_rng(0)
    x = np.repeat(np.geomspace(10, 1000, 7), 3)
    y = 2.0 * x**1.5 * np.exp(0.02 * rng.standard_normal(x.size))
    fit = E.fit_power_law(x, y, n_boot=1000, seed=1)
    assert fit.law == "power" and fit.n == 21 and fit.resampled == "points"
    assert fit.ci[0] < 1.5 < fit.ci[1] and fit.ci[1] - fit.ci[0] < 0.05
    assert fit.exponent == pytest.approx(1.5, abs=0.02) and fit.r2 > 0.99
    assert np.exp(fit.intercept) == pytest.approx(2.0, rel=0.1)
    again = E.fit_power_law(x, y, n_boot=1000, seed=1)
    assert again.ci == fit.ci  # seeded
    grouped = E.fit_power_law(x, y, n_boot=500, seed=1, groups=np.tile([0, 1, 2], 7), resample="groups")
    assert grouped.resampled == "groups" and grouped.ci[0] < 1.5 < grouped.ci[1]


def test_fit_power_law_per_group_prefactors():
    """Groups (seeds) that differ by a constant factor: the within-group fit recovers the shared
    exponent exactly, the pooled fit only roughly."""
    rng = np.random.default_rng(2)
    x = np.tile(np.geomspace(10, 1000, 5), 3)
    g = np.repeat([0, 1, 2], 5)
    y = np.array([1.0, 7.0, 0.2])[g] * x**2.0 * np.exp(0.01 * rng.standard_normal(x.size))
    per = E.fit_power_law(x, y, 1000, 0, groups=g, intercepts="per_group")
    pooled = E.fit_power_law(x, y, 1000, 0)
    assert per.intercepts == "per_group" and per.ci[0] < 2.0 < per.ci[1]
    assert per.ci[1] - per.ci[0] < 0.05 < pooled.ci[1] - pooled.ci[0]
    assert per.r2 > 0.999 > pooled.r2
    assert per.intercept == pytest.approx(np.mean(np.log([1.0, 7.0, 0.2])), abs=0.05)
    with pytest.raises(ValueError, match="groups"):
        E.fit_power_law(x, y, intercepts="per_group")


def test_fit_log_law_and_errors():
    x = np.geomspace(10, 1e3, 6)
    y = 3.0 + 0.8 * np.log(x)
    fit = E.fit_log_law(x, y, n_boot=200, seed=0)
    assert fit.slope == pytest.approx(0.8, rel=1e-12) and fit.intercept == pytest.approx(3.0, rel=1e-12)
    assert fit.ci[0] == pytest.approx(0.8, rel=1e-9) and fit.r2 == pytest.approx(1.0)
    np.testing.assert_allclose(fit.predict(x), y, rtol=1e-12)
    with pytest.raises(ValueError):
        E.fit_power_law([1, 2], [1, 2])
    with pytest.raises(ValueError):
        E.fit_power_law([1, 2, 3], [1, -2, 3])
    with pytest.raises(ValueError):
        E.fit_log_law([2, 2, 2], [1, 2, 3])


# ------------------------------------------------------------------------ bottleneck init
def test_bottleneck_init_scales_only_the_chosen_layers():
    model = ft.MLP((3, 5, 5, 5, 3), "tanh", bias=False)
    assert E.bottleneck_layers(model, 2) == (3, 4)
    a = np.asarray(E.bottleneck_init(model, 7, 1.0, 2))
    b = np.asarray(E.bottleneck_init(model, 7, 1e-3, 2))
    for l, sl in enumerate(model.layout, start=1):
        ratio = b[sl.W[0]:sl.W[1]] / a[sl.W[0]:sl.W[1]]
        np.testing.assert_allclose(ratio, 1e-3 if l in (3, 4) else 1.0, rtol=1e-12)
    c = E.bottleneck_saddle(model, b, 2)
    k = model.layout[2].W[0]
    assert np.all(c[k:] == 0) and np.all(c[:k] == b[:k])
    assert E.bottleneck_layers(model, 2, layers=[1, 3]) == (1, 3)
    with pytest.warns(FutureWarning, match=r"bottleneck_init\(key=\.\.\.\) is deprecated .* use seed="):
        with pytest.warns(FutureWarning, match=r"bottleneck_init\(eps=\.\.\.\) is deprecated .* use scale="):
            old = np.asarray(E.bottleneck_init(model, key=7, eps=1e-3, r=2))
    np.testing.assert_array_equal(old, b)
    np.testing.assert_array_equal(np.asarray(E.bottleneck_init(model, seed=7, scale=1e-3, r=2)), b)
    with pytest.raises(ValueError, match="scale"):
        E.bottleneck_init(model, 7, 0.0, 2)
    with pytest.raises(ValueError):
        E.bottleneck_layers(model, 5)
    with pytest.raises(ValueError):
        E.bottleneck_layers(model, 2, layers=[1, 1])


def test_bottleneck_saddle_is_critical():
    model = ft.MLP((2, 4, 4, 2), "tanh", bias=False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 2))
    pr = ft.Problem(model, ft.Dataset(x, x @ rng.standard_normal((2, 2))))
    theta = E.bottleneck_init(model, 0, 0.1, 2)
    assert np.max(np.abs(pr.grad(E.bottleneck_saddle(model, theta, 2)))) < 1e-14


# ------------------------------------------------------------- defects: CI, coarse saves, plateaus, basins
def test_bootstrap_ci_drops_resamples_with_one_distinct_x():
    """A resample (x_i, x_i, x_i) has a centred sum of squares of 2e-30 (round-off), not 0; it used to be
    kept and gave the CI (0.0, 1.0) for an exact exponent 1."""
    x = 1 / np.array([0.03, 0.01, 0.003])
    fp = E.fit_power_law(x, 2.5 * x, n_boot=2000, seed=0)
    assert fp.slope == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(fp.ci, (1.0, 1.0), atol=1e-9)
    fl = E.fit_log_law(x, 2.0 + 3.0 * np.log(x), n_boot=2000, seed=0)
    np.testing.assert_allclose(fl.ci, (3.0, 3.0), atol=1e-9)
    fg = E.fit_power_law(x, 2.5 * x, groups=[0, 0, 1], resample="groups")
    np.testing.assert_allclose(fg.ci, (1.0, 1.0), atol=1e-9)


def test_escape_time_warns_between_coarse_saves():
    t = np.concatenate([[0.0], np.geomspace(1e-3, 100.0, 40)])  # brackets of ~40 % of t
    theta = np.stack([1e-6 * np.exp(0.8 * t), np.zeros_like(t)], axis=1)
    with pytest.warns(UserWarning, match="between saved states"):
        e = E.escape_time(_traj(t, theta), np.zeros(2), 0.3, interpolation="log")
    assert e.status == "escaped"
    tf = np.linspace(0.0, 20.0, 20001)
    thf = np.stack([1e-6 * np.exp(0.8 * tf), np.zeros_like(tf)], axis=1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        E.escape_time(_traj(tf, thf), np.zeros(2), 0.3, interpolation="linear")  # fine grid: silent


@pytest.mark.slow
def test_escape_time_resolves_between_coarse_saves(minimal_half):
    pr = minimal_half
    evals, evecs = np.linalg.eigh(pr.hessian(np.zeros(4)))
    theta0 = 1e-6 * evecs[:, 0]
    tr = ft.gradient_flow(pr, theta0, 100.0, n_save=40)  # a coarse log grid: brackets of ~40 % of t
    event = E.escape_flow(pr, theta0, np.zeros(4), 0.3, metric="parameter", t1=1e3).escape
    assert event.interpolation == "event"
    with pytest.warns(UserWarning, match="between saved states"):
        coarse = E.escape_time(tr, np.zeros(4), 0.3, refine="none")
    assert abs(coarse.time / event.time - 1) > 1e-3  # interpolation alone is visibly off
    fine = E.escape_time(tr, np.zeros(4), 0.3, problem=pr)  # re-solves the bracket
    assert fine.interpolation == "resolved"
    assert fine.time == pytest.approx(event.time, rel=2e-4)
    with pytest.raises(ValueError, match="refine='solve'"):
        E.escape_time(tr, np.zeros(4), 0.3, refine="solve")


def _staircase(levels=(1.0, 0.5, 0.2, 1e-3), drops=(10.0, 40.0, 90.0), width=1.0):
    t = np.concatenate([[0.0], np.geomspace(1e-3, 300, 800)])
    loss = np.full_like(t, levels[0])
    for (hi, lo), tc in zip(zip(levels, levels[1:]), drops):
        loss = loss - (hi - lo) / (1 + np.exp(-(t - tc) / width))
    return _traj(t, np.zeros((t.size, 1)), loss)


def test_plateaus_returns_every_plateau_of_a_staircase():
    tr = _staircase()
    ps = E.plateaus(tr)
    assert [p.status for p in ps] == ["ended"] * 3
    np.testing.assert_allclose([p.loss_plateau for p in ps], [1.0, 0.5, 0.2], rtol=1e-2)
    np.testing.assert_allclose([p.loss_exit for p in ps], [1.0, 0.5, 0.2], rtol=0.1)
    # each plateau ends a few widths before its drop and the next begins a few widths after
    for p, tc in zip(ps, (10.0, 40.0, 90.0)):
        assert tc - 8 < p.t_end < tc
    for p, tc in zip(ps[1:], (10.0, 40.0)):
        assert tc < p.t_start < tc + 8
    assert all(p.length == pytest.approx(p.t_end - p.t_start) for p in ps)
    tail = E.plateaus(tr, include_unfinished=True)
    assert len(tail) == 4 and tail[-1].status == "no_drop" and math.isnan(tail[-1].t_end)
    with pytest.raises(ValueError, match="threshold"):
        E.plateaus(tr, threshold=0)


def _run(fp, sig, node=None, terminal="attractor", loss=0.0):
    v = types.SimpleNamespace(fingerprint=np.asarray(fp, float), signature=sig, kind="degenerate_minimum",
                              loss=loss, node=node)
    return types.SimpleNamespace(visits=[v], terminal=terminal)


def test_basin_fractions_merges_one_function_and_gives_wilson_intervals():
    a = np.array([0.3, -1.0, 2.0, 0.5])
    b = np.array([1.3, 0.0, 2.0, 0.5])
    runs = [_run(a, (0, 10, 3)), _run(a + 1e-9, (0, 11, 2)), _run(a, (0, 10, 3)), _run(b, (0, 2, 11)),
            _run(b, (0, 2, 11), terminal="unfinished")]
    bf = E.basin_fractions(runs)
    assert bf.n_runs == 5 and bf.n_unattracted == 1 and len(bf.basins) == 2
    top = bf.basins[0]
    assert top.count == 3 and top.fraction == pytest.approx(0.6)
    np.testing.assert_allclose(top.ci, (0.2307, 0.8824), atol=1e-4)  # Wilson 3/5, 95 %
    assert bf.basins[1].count == 1
    assert E.wilson_interval(0, 10)[0] == 0.0 and E.wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="k <= n"):
        E.wilson_interval(3, 2)
    with pytest.raises(TypeError, match="SaddleGraph"):
        E.basin_fractions([1, 2])


def test_basin_fractions_from_a_graph_merges_nodes_of_one_function():
    g = ft.SaddleGraph()
    a = np.array([0.3, -1.0, 2.0, 0.5])
    o = g.add_node(fingerprint=np.zeros(4), signature=(2, 0, 2), kind="saddle", loss=1.0, theta=[0.0])
    m1 = g.add_node(fingerprint=a, signature=(0, 10, 3), kind="degenerate_minimum", loss=0.0, theta=[1.0])
    m2 = g.add_node(fingerprint=a * (1 + 1e-8), signature=(0, 11, 2), kind="degenerate_minimum", loss=0.0,
                    theta=[2.0])
    for i, m in enumerate([m1, m1, m2, m1]):
        g.add_itinerary([o, m], [(0.0, 1.0), (2.0, 3.0)], method="gradient_flow", run=f"r{i}")
    bf = E.basin_fractions(g)
    assert bf.n_runs == 4 and len(bf.basins) == 1 and bf.basins[0].count == 4
    assert set(bf.basins[0].members) == {m1, m2} and bf.n_unattracted == 0


def _itin(nodes_kinds, terminal="attractor"):
    """An Itinerary of hand-made visits (fingerprint, signature, kind, loss) for add_to_graph."""
    from flowtools.itineraries import Itinerary, Visit

    visits = [Visit(kind=kind, t_in=float(i), t_out=i + 0.5, loss=loss, gen_error=None, signature=sig,
                    theta=np.zeros(1), grad_norm=0.0, reduces_to="", fingerprint=np.asarray(fp, float),
                    eigenvalues=np.zeros(1)) for i, (fp, sig, kind, loss) in enumerate(nodes_kinds)]
    return Itinerary(visits, terminal, "gradient_flow", "", stats=dict(d_out=1, n_train=0))


def test_basin_fractions_from_a_graph_counts_runs_that_end_not_runs_that_pass(tmp_path):
    # Run 0 passes through a (degenerate) minimum on its way to the global one; runs 1 and 2 end at that
    # minimum. Its node is visited by 3 runs, but only 2 end there; run 3 passes through a minimum where
    # no run ends. The graph keeps `ends`, also across `merge` and a JSON round trip.
    saddle = (np.zeros(3), (1, 0, 2), "saddle", 1.0)
    local = (np.array([1.0, 2.0, 3.0]), (0, 1, 2), "degenerate_minimum", 0.5)
    best = (np.array([2.0, 2.0, 2.0]), (0, 0, 3), "minimum", 0.0)
    passed = (np.array([5.0, 5.0, 5.0]), (0, 0, 3), "minimum", 0.25)  # passed through, never an end
    g1, g2 = ft.SaddleGraph(), ft.SaddleGraph()
    ft.add_to_graph(g1, _itin([saddle, passed, best]), "r3")
    ft.add_to_graph(g1, _itin([saddle, local, best]), "r0")
    ft.add_to_graph(g1, _itin([saddle, local]), "r1")
    ft.add_to_graph(g2, _itin([saddle, local]), "r2")
    merged = g1.merge(g2)
    merged.to_json(tmp_path / "g.json")
    for g in (merged, ft.SaddleGraph.from_json(tmp_path / "g.json")):
        bf = E.basin_fractions(g)
        assert bf.n_runs == 4 and bf.n_unattracted == 0
        assert sorted((b.loss, b.count) for b in bf.basins) == [(0.0, 2), (0.5, 2)]
    assert sum(a.get("visits", 0) for _, a in merged.graph.nodes(data=True) if a["loss"] == 0.5) == 3


def test_function_metric_is_the_package_function_distance():
    """One definition: sqrt(mean_k ‖f(x_k; a) − f(x_k; b)‖²), the squared error summed over outputs."""
    from flowtools.landscape import function_distance

    x = np.random.default_rng(0).standard_normal((20, 2))
    model = ft.MLP((2, 4, 3), "tanh")
    problem = ft.Problem(model, ft.Dataset(x, np.zeros((20, 3))))
    a, b = np.asarray(model.init(0)), np.asarray(model.init(1))
    fa, fb = problem.predict(a, x), problem.predict(b, x)
    by_hand = np.sqrt(np.mean(np.sum((fa - fb) ** 2, axis=1)))
    assert E.distances(a, b, metric="function", problem=problem)[0] == pytest.approx(by_hand, rel=1e-12)
    assert function_distance(problem, a, b) == pytest.approx(by_hand, rel=1e-12)
