"""Itineraries of the minimal model (Maleknia & Sato) and the terminal-state rules."""

import numpy as np
import pytest

import flowtools as ft
from flowtools.graph import SaddleGraph
from flowtools.itineraries import add_to_graph, itinerary

THETA0 = np.array([-0.13, 0.13, 0.16, -0.15])
TEACHER_ON_M = np.array([1.0, 1.0, 1.0, 1.0])  # f = tanh(x) + tanh(x) = 2 tanh(x): a point of M


@pytest.fixture(scope="module")
def published():
    """The published runs (GD 2e6 steps at η = 0.01 on "mse", and the flow to t = 2e4), τ = 0.2 and 0."""
    out = {}
    for name, noiseless in [("noisy", False), ("clean", True)]:
        p = ft.problems.minimal_model(noiseless=noiseless, loss="mse")
        gd = ft.gradient_descent(p, THETA0, 0.01, 2_000_000)
        gf = ft.gradient_flow(p, THETA0, 2e4)
        out[name] = (p, gd, gf, itinerary(p, gd), itinerary(p, gf))
    return out


def test_published_gd_itinerary_is_saddle_saddle_attractor(published):
    p, gd, _, it, _ = published["noisy"]
    assert it.terminal == "attractor"
    first, *middle, last = it.visits
    # 1. the plateau: the origin, a nondegenerate saddle of index 2
    assert first.kind == "saddle" and first.signature == (2, 0, 2)
    assert np.linalg.norm(first.theta) < 1e-8
    # 2. a slow passage near the optimal region: small generalization error, one unstable direction
    assert len(middle) >= 1
    near_opt = min(middle, key=lambda v: v.gen_error)
    assert near_opt.signature[0] == 1
    assert near_opt.gen_error < 1e-3
    assert near_opt.t_in > first.t_out
    # 3. the attractor: training error below the teacher's, generalization error above it
    teacher_loss = p.loss(TEACHER_ON_M)
    assert last.kind in ("minimum", "degenerate_minimum") and last.signature[0] == 0
    assert last.loss < teacher_loss
    assert last.gen_error > p.gen_error(TEACHER_ON_M) + 1e-4
    assert last.gen_error > near_opt.gen_error
    # the windows are ordered and do not overlap
    for a, b in zip(it.visits, it.visits[1:]):
        assert a.t_out <= b.t_in


def test_noiseless_run_ends_at_the_teacher(published):
    p, gd, gf, it_gd, it_gf = published["clean"]
    for it in (it_gd, it_gf):
        assert it.terminal == "attractor"
        assert it.visits[0].signature == (2, 0, 2)
        end = it.visits[-1]
        assert end.signature[0] == 0
        assert end.gen_error < 1e-10 and end.loss < 1e-10
    # GD after 2e6 steps has not converged to 1e-7: the attractor is degenerate (algebraic approach).
    assert gd.final_grad_norm > 1e-7
    assert it_gd.degenerate


def test_gd_and_flow_give_the_same_node_sequence(published):
    for name in ("noisy", "clean"):
        _, _, _, it_gd, it_gf = published[name]
        g = SaddleGraph()
        nodes_gd = add_to_graph(g, it_gd, run="gd")
        nodes_gf = add_to_graph(g, it_gf, run="gf")
        assert nodes_gd == nodes_gf
        assert g.n_trajectories == 2
        for u, v in zip(nodes_gd, nodes_gd[1:]):
            assert g.graph.edges[u, v]["count"] == 2
            assert set(g.graph.edges[u, v]["methods"]) == {"gradient_descent", "gradient_flow"}


def test_converged_at_a_saddle_is_not_an_attractor(minimal_mse):
    # Started exactly at the origin the flow does not move: ‖∇L‖ = 0 ≤ gtol, status "converged" —
    # but the Hessian has two negative eigenvalues, so the itinerary must not call it an attractor.
    tr = ft.gradient_flow(minimal_mse, np.zeros(4), 10.0, gtol=1e-12)
    assert tr.status == ft.Status.CONVERGED
    it = itinerary(minimal_mse, tr)
    assert it.terminal == "unfinished"
    assert "unstable" in it.message


def test_stopped_on_the_plateau_is_unfinished(minimal_mse):
    tr = ft.gradient_descent(minimal_mse, THETA0, 0.01, 50)  # still near the origin
    it = itinerary(minimal_mse, tr)
    assert it.terminal == "unfinished"


def test_diverged_run_is_labelled_diverged(minimal_mse):
    tr = ft.gradient_descent(minimal_mse, np.array([3.0, -3.0, 3.0, 3.0]), 50.0, 1000)
    assert tr.status in (ft.Status.DIVERGED, ft.Status.NON_FINITE)
    it = itinerary(minimal_mse, tr)
    assert it.terminal == "diverged"


def test_ensemble_itineraries_end_in_allowed_states(minimal_mse):
    rng = np.random.default_rng(3)
    thetas = 0.5 * rng.standard_normal((6, 4))
    runs = ft.run_ensemble("gradient_flow", minimal_mse, thetas, t1=1e6, gtol=1e-10)
    for tr in runs:
        it = itinerary(minimal_mse, tr)
        assert it.terminal in ("attractor", "diverged", "unfinished")
        if it.terminal == "attractor":
            assert it.visits[-1].kind in ("minimum", "degenerate_minimum")
            assert it.visits[-1].signature[0] == 0
        for v in it.visits[:-1] if it.terminal == "attractor" else it.visits:
            assert v.kind != "minimum" or v.signature[0] == 0


def test_bad_arguments(minimal_mse):
    tr = ft.gradient_descent(minimal_mse, THETA0, 0.01, 10)
    with pytest.raises(TypeError, match="trajectory"):
        itinerary(minimal_mse, "not a trajectory")
    with pytest.raises(ValueError, match="visit_radius"):
        itinerary(minimal_mse, tr, visit_radius=-1.0)
    other = ft.problems.minimal_model(width=3, loss="mse")
    with pytest.raises(ValueError, match="parameters"):
        itinerary(other, tr)


# ------------------------------------------------------------------ deep linear 3-3-3 (Saxe et al. 2014)
from flowtools.deep_linear import balanced_init, whitened_dataset  # noqa: E402
from flowtools.itineraries import refinement_share  # noqa: E402
from flowtools.landscape import function_distances  # noqa: E402


@pytest.fixture(scope="module")
def deep_linear():
    data = whitened_dataset(np.diag([3.0, 2.0, 1.0]), n=3, seed=0)
    model = ft.MLP((3, 3, 3), "linear", bias=False)
    return ft.Problem(model, data), balanced_init(model, 1e-3, 0)


def _check_staircase(it):
    # origin (index 9) → rank 1 (index 4) → rank 2 (index 1) → global minimum ⇒ attractor
    assert [v.signature[0] for v in it.visits] == [9, 4, 1, 0], it
    assert it.terminal == "attractor", it.message
    assert it.visits[0].t_in == 0.0 and np.linalg.norm(it.visits[0].theta) < 1e-8  # the starting saddle
    assert it.visits[-1].loss < 1e-20
    losses = [v.loss for v in it.visits]
    assert np.allclose(losses[:3], [7.0, 2.5, 0.5], atol=1e-10)  # ½ Σ of the unlearned s_α²
    assert it.refined_share == 1.0
    for a, b in zip(it.visits, it.visits[1:]):
        assert a.t_out <= b.t_in


@pytest.mark.parametrize("n_save", [100])
def test_deep_linear_flow_staircase_does_not_depend_on_the_save_grid(deep_linear, n_save):
    p, theta0 = deep_linear
    tr = ft.gradient_flow(p, theta0, 50.0, n_save=n_save)
    _check_staircase(itinerary(p, tr))


@pytest.mark.slow
@pytest.mark.parametrize("n_save", [200, 400, 800, 1600])
def test_deep_linear_flow_staircase_all_grids(deep_linear, n_save):
    p, theta0 = deep_linear
    _check_staircase(itinerary(p, ft.gradient_flow(p, theta0, 50.0, n_save=n_save)))


@pytest.mark.parametrize("lr", [0.01, 0.2])
def test_deep_linear_gd_staircase(deep_linear, lr):
    p, theta0 = deep_linear
    tr = ft.gradient_descent(p, theta0, lr, int(round(50 / lr)))
    _check_staircase(itinerary(p, tr))


def test_attractor_window_starts_at_first_entry(deep_linear):
    p, theta0 = deep_linear
    tr = ft.gradient_descent(p, theta0, 0.2, 250)
    it = itinerary(p, tr)
    att = it.attractor
    rho = 0.1 * np.sqrt(np.mean(np.sum(np.asarray(p.y) ** 2, axis=1)))
    d = function_distances(p, tr.theta, att.theta)
    inside = d <= rho
    first = np.nonzero(~inside)[0][-1] + 1  # the run stays inside from here on
    assert att.t_in <= tr.t[first] and att.t_in > it.visits[-2].t_out - 1e-12


def test_refinement_options_and_budgets(deep_linear):
    p, theta0 = deep_linear
    tr = ft.gradient_descent(p, theta0, 0.2, 250)
    with pytest.raises(ValueError, match="unknown option"):
        itinerary(p, tr, refine_options=dict(maxiter=3))
    with pytest.raises(TypeError, match="refine_options"):
        itinerary(p, tr, refine_options=3)
    # The 0.1 spelling still reaches the same check, with a warning naming the new one.
    with pytest.warns(FutureWarning, match="refine_options="):
        with pytest.raises(ValueError, match="unknown option"):
            itinerary(p, tr, refine=dict(maxiter=3))
    starved = itinerary(p, tr, time_limit=1e-9)
    assert starved.stats["budget_exhausted"] and "time limit" in starved.message
    assert any(v.status == "skipped" for v in starved.visits)
    assert starved.refined_share < 1.0
    share = refinement_share([starved, itinerary(p, tr)])
    assert share["per_run"][1][0] == share["per_run"][1][1] == 3
    assert share["passages"] == share["per_run"][0][1] + 3


def test_time_limit_bounds_every_phase(deep_linear):
    """`time_limit` bounds the whole itinerary: passages after it are recorded without refinement or
    spectrum, the end is judged within what is left, and the result names what was cut off."""
    p, theta0 = deep_linear
    tr = ft.gradient_flow(p, theta0, 40.0, n_save=60)
    # A limit that does not bind compiles every kernel of the limited paths and cuts nothing off.
    # Compiling is not interrupted; resolving the run compiles flows of new segment lengths, so the
    # timing below is taken on the saved states (resolve=False).
    warm = itinerary(p, tr, time_limit=1e3, resolve=False)
    assert warm.stats["cut_off"] == [] and not warm.stats["budget_exhausted"] and warm.terminal == "attractor"
    limit = 1e-4  # spent before the first passage, however fast the machine
    it = itinerary(p, tr, time_limit=limit, resolve=False)
    # No phase runs on past the limit by more than one step (0.3 s measured at load ≈ 10 with 0.05 s).
    assert it.stats["wall_time"] <= limit + 1.0
    assert it.stats["budget_exhausted"] and "passages" in it.stats["cut_off"]
    assert "cut off: " in it.message and it.stats["time_limit"] == limit
    skipped = [v for v in it.visits if v.status == "skipped"]
    assert skipped and all(v.signature == (None, None, None) and "time limit" in v.reason for v in skipped)
    assert "spectra" in it.stats["cut_off"]
    assert "resolve" in itinerary(p, tr, time_limit=limit).stats["cut_off"]


def test_resolve_budget_reserves_the_final_evaluation():
    from flowtools.itineraries._itinerary import RESOLVE_EVAL_COST, RESOLVE_EVAL_SHARE, RESOLVE_INNER, \
        RESOLVE_MAX_STATES, resolve_budget
    for seconds, per_state in [(60.0, 0.01), (60.0, 1e-6), (1.0, 0.01), (0.5, 0.1)]:
        limit, cap = resolve_budget(seconds, per_state)
        one = RESOLVE_EVAL_COST * per_state
        assert 0 <= cap <= RESOLVE_MAX_STATES and limit >= 0
        if cap:  # segments, then the added states (and one saved state) evaluated, within the seconds given
            n_end = cap + RESOLVE_INNER + 1  # a segment's states can carry past the cap
            assert limit + one * n_end <= seconds * (1 + 1e-12)
            assert one * n_end <= RESOLVE_EVAL_SHARE * seconds * (1 + 1e-12)
    limit, cap = resolve_budget(60.0, 15.0 / 375 / RESOLVE_EVAL_COST)  # 375 states fit in 15 s
    assert abs(cap - (375 - RESOLVE_INNER - 1)) <= 1 and limit == pytest.approx(45.0, abs=0.05)
    assert resolve_budget(0.5, 0.1)[1] == 0  # not one segment's states fit: nothing is added
    assert resolve_budget(60.0, 1e-6)[1] == RESOLVE_MAX_STATES


def test_resolve_evaluates_only_the_added_states(deep_linear, monkeypatch):
    """Resolving evaluates L and ‖∇L‖ at the added states (and one saved state that checks the run's
    values) and keeps the run's values at the others: the result is bit for bit the evaluation of every
    state. A run of another problem is evaluated again at every state."""
    import flowtools.dynamics.trajectory as trajectory_module
    from flowtools.dynamics.trajectory import evaluate_states
    from flowtools.landscape import resolve_trajectory

    p, theta0 = deep_linear
    tr = ft.gradient_descent(p, theta0, 0.1, 400, n_records=10)
    rows = []

    def counting(problem, theta, chunk=None):
        rows.append(len(theta))
        return evaluate_states(problem, theta, chunk)

    monkeypatch.setattr(trajectory_module, "evaluate_states", counting)
    r = resolve_trajectory(p, tr, max_jump=0.05)
    added = r.stats["resolved_states"]
    assert added > 4 and len(r.t) == len(tr.t) + added
    assert rows[-1] == added + 1  # the end: the added states and one saved state
    loss, gnorm, _ = evaluate_states(p, r.theta)
    assert np.array_equal(r.loss, loss) and np.array_equal(r.grad_norm, gnorm)
    other = ft.Problem(p.model, type(p.data)(p.data.x, 2.0 * p.data.y))  # the same net on other targets
    rows.clear()
    r2 = resolve_trajectory(other, tr, max_jump=0.05)
    assert rows[-1] == len(r2.t)  # the check failed: every state evaluated again
    loss, gnorm, _ = evaluate_states(other, r2.theta)
    assert np.array_equal(r2.loss, loss) and np.array_equal(r2.grad_norm, gnorm)
    # The outputs passed in and handed back are those of every state.
    from flowtools.landscape.slow import resolve_with_outputs
    from flowtools.problem import training_outputs
    r3, out = resolve_with_outputs(p, tr, max_jump=0.05, outputs=training_outputs(p, tr.theta))
    assert np.array_equal(r3.theta, r.theta) and np.array_equal(out, training_outputs(p, r3.theta))
    with pytest.raises(ValueError, match="outputs has 3 rows"):
        resolve_with_outputs(p, tr, max_jump=0.05, outputs=np.zeros((3, 3, 3)))


def test_refinement_spectrum_gets_the_time_left_after_the_solve(deep_linear, monkeypatch):
    """Under a limit in seconds, the spectrum that classifies a refined passage gets the time left to the
    passages' deadline when it starts, not the time left when the refinement started (a slow solve
    used to hand its spectrum the whole of it); the end's stops `END_WRAPUP` of the limit early, for
    the end's record."""
    import time

    import flowtools.landscape._lm_chunks as _lm_chunks
    import flowtools.landscape.critical as critical

    p, theta0 = deep_linear
    tr = ft.gradient_flow(p, theta0, 40.0, n_save=60)
    itinerary(p, tr, time_limit=1e3, resolve=False)  # compiles
    slow_solve, spectra = _lm_chunks.solve_dense, []

    def solve(*args, **kwargs):
        time.sleep(0.5)
        return slow_solve(*args, **kwargs)

    def spectrum(problem, theta, **options):
        spectra.append((time.perf_counter(), options.get("time_limit")))
        return critical.hessian_spectrum(problem, theta, **options)

    monkeypatch.setattr(_lm_chunks, "solve_dense", solve)
    monkeypatch.setattr(critical, "spectrum_or_fallback", spectrum)
    limit = 30.0
    t0 = time.perf_counter()
    it = itinerary(p, tr, time_limit=limit, resolve=False)
    from flowtools.itineraries._itinerary import END_RESERVE, END_WRAPUP
    timed = [(t, s) for t, s in spectra if s is not None]
    assert timed and len(timed) == len(spectra)
    ends = [t + s for t, s in timed]
    # nothing past the limit less the end's record; the passages' within their deadline
    assert max(ends) <= t0 + (1 - END_WRAPUP) * limit + 0.2
    assert sum(e <= t0 + (1 - END_RESERVE) * limit + 0.2 for e in ends) >= len(ends) - 1
    assert it.terminal == "attractor" and it.stats["cut_off"] == []


def test_matrix_free_refinement_starts_no_iteration_that_cannot_fit(deep_linear):
    """A matrix-free Levenberg–Marquardt iteration cannot be interrupted (up to 2·cg_iter + 3
    Hessian-vector products: 18–21 s at 112 510 parameters): under a time limit the first one starts
    only when that many products, timed on one, fit in the time left."""
    p, theta0 = deep_linear
    guess = np.asarray(theta0) + 0.05
    kw = dict(method="matrix_free", newton=False, fallback=False, cg_iter=20_000)
    ft.find_critical_point(p, guess, max_iter=1, **kw)  # compiles
    cut = ft.find_critical_point(p, guess, time_limit=0.3, **kw)  # 40 003 products take longer
    assert cut.attempts[0]["iterations"] == 0 and cut.status == "time_limit" and not cut.success
    free = ft.find_critical_point(p, guess, time_limit=1e3, **kw)
    assert free.attempts[0]["iterations"] >= 1


def test_time_limit_keeps_resolve_within_its_half(deep_linear, monkeypatch):
    """Resolving under a time limit adds no more states than it can evaluate in its half; what it could
    not add is cut off, and a run that needs no limit is resolved as before."""
    import flowtools.itineraries._itinerary as itin_module

    p, theta0 = deep_linear
    tr = ft.gradient_descent(p, theta0, 0.1, 400, n_records=10)  # the GD map resolves without compiles
    free = itinerary(p, tr, time_limit=None)
    assert free.stats["resolved_states"] > 4 and "resolve_s" not in free.stats
    loose = itinerary(p, tr, time_limit=1e3)  # its cap does not bind: the same states and visits
    assert loose.stats["resolved_states"] == free.stats["resolved_states"] and loose.stats["cut_off"] == []
    assert [v.signature for v in loose.visits] == [v.signature for v in free.visits]
    assert loose.stats["resolve_s"] <= loose.stats["resolve_budget_s"]
    # A budget that lets 3 states be added: at most 3 are, and the message says resolving was cut.
    monkeypatch.setattr(itin_module, "resolve_budget", lambda seconds, per_state: (seconds, 3))
    capped = itinerary(p, tr, time_limit=1e3)
    assert capped.stats["resolve_max_states"] == 3
    assert 0 < capped.stats["resolved_states"] <= 3 + itin_module.RESOLVE_INNER < free.stats["resolved_states"]
    assert "resolve" in capped.stats["cut_off"] and "cut off: resolve" in capped.message
    monkeypatch.undo()
    monkeypatch.setattr(itin_module, "RESOLVE_EVAL_COST", 1e12)  # not one segment's states fit
    none = itinerary(p, tr, time_limit=1e3)
    assert none.stats["resolve_max_states"] == 0 and none.stats["resolved_states"] == 0
    assert "resolve" in none.stats["cut_off"] and none.stats["states"] == len(tr.t)


def test_unfinished_run_ends_in_an_unfinished_node(deep_linear):
    p, theta0 = deep_linear
    tr = ft.gradient_flow(p, theta0, 3.2, n_save=100)  # stopped while learning the first mode
    it = itinerary(p, tr)
    assert it.terminal == "unfinished"
    assert it.visits[-1].kind == "unfinished" and it.visits[-1].status == "terminal"
    g = SaddleGraph()
    nodes = add_to_graph(g, it, run="a")
    assert g.graph.nodes[nodes[-1]]["kind"] == "unfinished"
    assert g.graph.has_edge(nodes[-2], nodes[-1])


# -------------------------------------------- erf teacher–student, d = 10, n = 2000 (Saad & Solla 1995)
def _soft_committee(k_student, n=2000, d=10):
    return ft.problems.teacher_student(d, 2, k_student, teacher="orthonormal", activation="erf", n=n, data_seed=0)


def _ensemble(problem, seeds):
    runs = {f"seed {s}": ft.gradient_flow(problem, np.asarray(problem.model.init(s, scale=1e-3)), 1e5, gtol=1e-10)
            for s in seeds}
    g, its = ft.saddle_graph(problem, runs)
    return g, list(its.values())


def _check_two_hidden(problem, g, its):
    l0 = problem.loss(np.zeros(problem.n_params))  # the origin's function is f = 0
    for it in its:
        assert it.terminal == "attractor", it
        origin = it.visits[0]
        assert origin.t_in == 0.0 and abs(origin.loss - l0) < 1e-9, it  # the origin, in every run
    share = refinement_share(its)
    assert share["share"] >= 0.95, share
    # one physical scenario: origin → symmetric plateau → global minimum, one node each
    assert len(g) == 3, [(n, a["kind"], a["signature"]) for n, a in g.graph.nodes(data=True)]
    assert len(g.attractors()) == 1
    assert len({tuple(it.nodes) for it in its}) == 1


def test_teacher_student_two_hidden_few_runs():
    p = _soft_committee(2)
    _check_two_hidden(p, *_ensemble(p, range(2)))


@pytest.mark.slow
def test_teacher_student_two_hidden_32_runs():
    p = _soft_committee(2)
    _check_two_hidden(p, *_ensemble(p, range(32)))


@pytest.mark.slow
def test_teacher_student_three_hidden_one_attractor_node():
    p = _soft_committee(3)
    g, its = _ensemble(p, range(8))
    zero_loss = [n for n in g.attractors() if g.graph.nodes[n]["loss"] < 1e-12]
    assert len(zero_loss) == 1, [(n, g.graph.nodes[n]["signature"]) for n in g.attractors()]


def test_matrix_free_refinement_gives_the_dense_itinerary(deep_linear):
    """With the matrix-free threshold lowered below the problem's size, the itinerary (refined visits,
    their signatures and losses) is the one the dense refinement gives."""
    p, theta0 = deep_linear
    tr = ft.gradient_descent(p, theta0, 0.2, 250)
    dense = itinerary(p, tr)
    mf = itinerary(p, tr, refine_options=dict(dense_max=1, gtol=1e-11))
    assert mf.terminal == dense.terminal == "attractor"
    assert [v.signature[0] for v in mf.visits] == [v.signature[0] for v in dense.visits]
    assert mf.refined_share == dense.refined_share == 1.0
    np.testing.assert_allclose([v.loss for v in mf.visits], [v.loss for v in dense.visits], atol=1e-9)


def test_auto_time_limits_scale_with_size():
    from flowtools.itineraries import auto_time_limits
    from flowtools.landscape.critical import MATRIX_FREE_MIN

    assert auto_time_limits(MATRIX_FREE_MIN) == (None, None)
    a, b = auto_time_limits(1210), auto_time_limits(2410)
    assert a[0] < b[0] and a[1] < b[1] and a[1] < a[0]


def test_lanczos_spectra_label_the_same_itinerary(deep_linear):
    """Matrix-free spectra for the visits (as above the dense limit): the same Morse indices as dense,
    zero and positive counts unknown, the count flagged complete, and the graph accepts them."""
    p, theta0 = deep_linear
    tr = ft.gradient_descent(p, theta0, 0.2, 250)
    dense = itinerary(p, tr)
    lz = itinerary(p, tr, spectrum_options=dict(method="lanczos"))
    assert [v.signature[0] for v in lz.visits] == [v.signature[0] for v in dense.visits]
    assert lz.terminal == dense.terminal
    for v in lz.visits:
        assert v.morse_complete
        assert v.signature[1] is None or v.signature == tuple(dense.visits[lz.visits.index(v)].signature)
    g = SaddleGraph()
    assert len(add_to_graph(g, lz, run="lanczos")) == len(lz.visits)
    assert "signature" in g.summary().__str__()
    with pytest.raises(TypeError, match="spectrum_options"):
        itinerary(p, tr, spectrum_options=3)


def test_visit_and_graph_accept_a_partial_lanczos_signature():
    """Above 128 parameters a Lanczos signature is (n_neg, None, None): the visit record keeps the
    unknown counts as None and its completeness flag, and the saddle graph stores and prints it."""
    from flowtools.itineraries._refinement import visit_from_point
    from flowtools.landscape import hessian_spectrum
    from flowtools.landscape.symmetry import function_fingerprint

    teacher = ft.MLP((10, 2, 1), "tanh")
    data = ft.teacher_dataset((teacher, teacher.init(7)), 60, noise=0.1, seed=10)
    p = ft.Problem(ft.MLP((10, 13, 1), "tanh"), data)
    theta = np.asarray(p.model.init(1))
    spec = hessian_spectrum(p, theta, method="lanczos", warn=False)
    assert p.n_params > 128 and spec.signature[1] is None
    info = visit_from_point(p, theta, "slow_region", spec, function_fingerprint(p, theta), p.grad_norm(theta),
                             status="unrefined")
    assert info["signature"] == (spec.n_neg, None, None) and info["morse_complete"] == spec.complete
    g = SaddleGraph()
    node = g.add_node(fingerprint=info["fingerprint"], signature=info["signature"], kind="slow_region",
                      loss=info["loss"], theta=theta, gen_error=None, reduces_to="", grad_norm=info["grad_norm"],
                      eigenvalues=info["eigenvalues"], radius=0.1, d_out=1)
    assert g.graph.nodes[node]["signature"] == [spec.n_neg, None, None]
    assert f"({spec.n_neg}, ?, ?)" in str(g.summary())


# ------------------------------------------------------------- visits whose spectrum cannot be computed
def _hessian_nan_problem(psi):
    """Outputs (x·θ0, x·ψ(θ1)) against targets (x, 0): the minimum is θ = (1, 0), and GD from the origin
    keeps θ1 = 0 exactly, where JAX evaluates ψ'' as inf and so the Hessian as NaN (the implicit flow
    solvers, which use the Hessian, cannot run there)."""
    import jax.numpy as jnp

    x = np.linspace(-1, 1, 9)[:, None]
    model = ft.FunctionModel(lambda th, x: jnp.concatenate([x * th[0], x * psi(th[1])], axis=1), 2, 1, 2)
    return ft.Problem(model, ft.Dataset(x, np.concatenate([x, 0 * x], axis=1)))


def test_nan_hessian_end_is_kept_by_finite_differences():
    """ψ = |θ1|^{3/2}: L is C¹ but its Hessian is NaN at θ1 = 0; the end is classified from a
    central-difference Hessian of ∇L, says so, and is an attractor that enters basin_fractions."""
    import jax.numpy as jnp

    problem = _hessian_nan_problem(lambda t: jnp.abs(t) ** 1.5)
    assert not np.all(np.isfinite(problem.hessian(np.array([1.0, 0.0]))))
    run = ft.gradient_descent(problem, np.zeros(2), 1.0, 200)
    it = ft.itinerary(problem, run)
    assert it.terminal == "attractor", it.message
    end = it.visits[-1]
    assert "not finite" in end.reason and "central-difference" in end.reason
    assert end.signature[0] == 0
    # Independently: the end is θ = (1, 0), L ≈ 0 there, and L rises in every direction around it.
    np.testing.assert_allclose(end.theta, [1.0, 0.0], atol=1e-8)
    assert problem.loss(end.theta) < 1e-16
    for d in ([1e-3, 0], [-1e-3, 0], [0, 1e-2], [0, -1e-2]):
        assert problem.loss(end.theta + np.array(d)) > problem.loss(end.theta)
    fractions = ft.escape.basin_fractions([it], d_out=2)
    assert fractions.n_runs == 1 and fractions.n_unattracted == 0


def test_unknown_spectrum_end_is_kept_with_its_reason():
    """ψ = θ1^{3/2} is NaN for θ1 < 0, so neither the Hessian nor its central differences are finite at
    the end: nothing raises, the end is an "unclassified" visit with the reason, the run is unfinished
    and still counts in basin_fractions and the graph."""
    import jax.numpy as jnp

    problem = _hessian_nan_problem(lambda t: jnp.power(t, 1.5))
    run = ft.gradient_descent(problem, np.zeros(2), 1.0, 200)
    it = ft.itinerary(problem, run)
    assert it.terminal == "unfinished"
    assert "could not be computed" in it.message
    kinds = [v.kind for v in it.visits]
    assert "unclassified" in kinds
    end = it.visits[kinds.index("unclassified")]
    assert end.signature == (None, None, None) and "not finite either" in end.reason
    assert end.to_dict()["reason"] == end.reason
    fractions = ft.escape.basin_fractions([it], d_out=2)
    assert fractions.n_runs == 1 and fractions.n_unattracted == 1
    graph = ft.SaddleGraph()
    ft.itineraries.add_to_graph(graph, it, "r0")
    assert graph.n_trajectories == 1 and len(graph) == len(it.visits)


# ------------------------------------------------------------- non-isolated minima as attractors
def _erf_population_loss(W, V):
    """½ E_x (Σ_i erf(w_i·x) − Σ_j erf(v_j·x))², x ~ N(0, I), second layers 1, from the closed form
    E erf(a·x) erf(b·x) = (2/π) arcsin(2a·b / sqrt((1 + 2|a|²)(1 + 2|b|²))) — numpy, independent of
    flowtools.gaussian."""
    def k(A, B):
        na, nb = 1 + 2 * np.sum(A**2, 1), 1 + 2 * np.sum(B**2, 1)
        return 2 / np.pi * np.arcsin(2 * A @ B.T / np.sqrt(np.outer(na, nb)))
    return 0.5 * (k(W, W).sum() - 2 * k(W, V).sum() + k(V, V).sum())


@pytest.mark.slow  # about 40 s (2 min on a loaded 2-core machine): three population flows and itineraries
def test_overparameterized_student_ends_at_a_nonisolated_minimum():
    """A student with m = k + 2 erf neurons on the population loss of a k = 2 teacher approaches its
    zero-loss set sublinearly: at t1 = 300 ‖∇L‖ is still above attractor_gtol, yet the end refines to a
    minimum set with a kernel, and the run is an attractor. Checked with a numpy population loss:
    L ≈ 0, central-difference gradient ≈ 0, Hessian without negative and with zero eigenvalues."""
    k, d, m = 2, 2, 4
    problem = ft.problems.teacher_student(d, k, m, teacher="orthonormal", activation="erf", data="population",
                                          frozen_second_layer=True)
    V = np.eye(k, d)  # the orthonormal teacher's neurons, for the numpy check
    its, statuses = [], []
    for seed in range(3):
        theta0 = np.random.default_rng(seed).standard_normal(m * d) / np.sqrt(d)
        run = ft.gradient_flow(problem, theta0, 300.0, gtol=1e-9)
        it = itinerary(problem, run)
        assert it.terminal == "attractor", it.message
        its.append(it)
        statuses.append(run.status)
    assert ft.Status.T1_REACHED in statuses  # the approach is slow: gtol is not reached by t1
    assert any("non-isolated minimum set" in it.message for it in its)
    fractions = ft.escape.basin_fractions(its)
    assert fractions.n_unattracted == 0 and sum(b.count for b in fractions.basins) == 3
    for it in its:
        theta = it.attractor.theta
        loss = lambda th: _erf_population_loss(th.reshape(m, d), V)  # noqa: E731
        assert loss(theta) < 1e-12
        h = 1e-6
        grad = np.array([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h) for e in np.eye(m * d)])
        assert np.linalg.norm(grad) < 1e-7
        h = 1e-4
        E = np.eye(m * d)
        H = np.array([[(loss(theta + h * (a + b)) - loss(theta + h * (a - b)) - loss(theta - h * (a - b))
                        + loss(theta - h * (a + b))) / (4 * h * h) for b in E] for a in E])
        lam = np.linalg.eigvalsh(0.5 * (H + H.T))
        assert lam[0] > -1e-5 * lam[-1]  # no descending direction
        assert np.sum(np.abs(lam) < 1e-5 * lam[-1]) >= 1  # a kernel along the set
        assert it.attractor.signature[0] == 0 and it.attractor.signature[1] >= 1


@pytest.mark.parametrize("k, seed", [(3, 0), (3, 2)])
def test_end_at_the_loss_floor_with_a_near_zero_relu_neuron_is_an_attractor(k, seed):
    """Safran–Shamir at n = k + 1, ending at the teacher plus a ReLU neuron of norm 1e-15: F is 0 to
    round-off (its lower bound), so the end is a global minimum. The loss is not twice differentiable at
    w = 0 (the neuron's kernel terms are homogeneous of degree 1), and the refined point's numerical
    Hessian has a negative eigenvalue; the itinerary must not call the end a saddle or "unfinished"."""
    import flowtools as ft
    from flowtools.landscape import loss_floor_spectrum
    from flowtools.landscape.spectrum import hessian_spectrum

    p = ft.problems.safran_shamir(k, k + 1)
    assert p.loss_lower_bound == 0.0
    theta = np.concatenate([1e-15 * np.random.default_rng(seed).standard_normal(k), np.eye(k).ravel()])
    itin = ft.itinerary(p, ft.gradient_flow(p, theta, 10.0))
    assert itin.terminal == "attractor"
    end = itin.visits[-1]
    assert end.kind == "degenerate_minimum" and end.signature[0] == 0 and end.loss <= 1e-28
    assert "not twice differentiable" in end.reason  # the correction is reported, not silent
    assert all(v.signature[0] == 0 for v in itin.visits if v.loss <= 1e-28)
    # The rule touches only points at the floor: a point off it keeps its negative eigenvalues.
    off = np.concatenate([np.zeros(k), np.eye(k).ravel()]) + 0.05 * np.random.default_rng(1).standard_normal(k * k + k)
    spec = hessian_spectrum(p, off)
    assert loss_floor_spectrum(p, off, spec) is spec
    assert ft.landscape.classify_point(p, off, spec)[0] == "saddle"
    # An energy of one's own has no known lower bound: nothing is corrected.
    assert ft.Problem.from_loss(lambda th: -(th ** 2).sum(), 2).loss_lower_bound is None


def test_count_cut_short_at_zero_starts_no_continued_flow(deep_linear, monkeypatch):
    """A failed refinement whose Lanczos count stopped at a lower bound of 0 has not shown that the guess
    has no unstable direction: the passage does not continue the flow from it (a complete count does)."""
    from types import SimpleNamespace

    import flowtools.itineraries._refinement as refinement

    p, theta0 = deep_linear
    calls = []

    def flow(*args, **kwargs):
        calls.append(kwargs)
        return SimpleNamespace(status=ft.Status.MAX_STEPS)

    monkeypatch.setattr(refinement, "gradient_flow", flow)
    ctx = dict(problem=p, rho=0.1, spec_opts=dict(rtol_zero=1e-7), ts=np.array([0.0, 1.0]), near_gtol=1e-8,
               distances=lambda fp: np.zeros(2))
    sp = SimpleNamespace(at_start=True, t_start=0.0, t_end=1.0)
    for complete, flows in [(False, 0), (True, 1)]:
        cp = SimpleNamespace(signature=(0, None, None), grad_norm=1e-3, spectrum=SimpleNamespace(complete=complete),
                             success=False, guess=None)
        monkeypatch.setattr(refinement, "refine", lambda ctx, theta, cp=cp: (None, "unrefined", cp))
        info = refinement.refine_passage(ctx, np.asarray(theta0), sp)
        assert info["kind"] == "slow_region" and len(calls) == flows


def test_continued_flow_starts_only_when_its_first_segment_fits(deep_linear, monkeypatch):
    """Under a limit in seconds, a continued flow (whose first 64 steps cannot be interrupted: 29 s at
    112 510 parameters) starts only when `CONTINUED_FLOW_S_PER_PARAM`·n fits before the deadline; the
    passage is then "skipped". "auto" starts it as before."""
    import time
    from types import SimpleNamespace

    import flowtools.itineraries._refinement as refinement

    p, theta0 = deep_linear
    calls = []
    monkeypatch.setattr(refinement, "gradient_flow",
                        lambda *a, **k: calls.append(k) or SimpleNamespace(status=ft.Status.MAX_STEPS))
    cp = SimpleNamespace(signature=(0, 0, 9), grad_norm=1e-3, spectrum=SimpleNamespace(complete=True),
                         success=False, guess=None)
    monkeypatch.setattr(refinement, "refine", lambda ctx, theta: (None, "unrefined", cp))
    monkeypatch.setattr(refinement, "CONTINUED_FLOW_S_PER_PARAM", 10.0)  # 90 s for 9 parameters
    sp = SimpleNamespace(at_start=True, t_start=0.0, t_end=1.0)
    for priced, flows, status in [(True, 0, "skipped"), (False, 1, "unrefined")]:
        ctx = dict(problem=p, rho=0.1, ts=np.array([0.0, 1.0]), near_gtol=1e-8, priced=priced,
                   spec_opts=dict(rtol_zero=1e-7, deadline=time.perf_counter() + 60.0),
                   distances=lambda fp: np.zeros(2))
        info = refinement.refine_passage(ctx, np.asarray(theta0), sp)
        assert len(calls) == flows and info["status"] == status
