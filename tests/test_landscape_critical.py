"""Critical points: the origin and the duplicated-neuron line of the minimal model (docs/landscape.md),
teacher–student sweeps (never a non-critical point reported as critical), records."""

import json
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools.landscape import (
    KINDS,
    CriticalPoint,
    classify,
    classify_point,
    critical_point_at,
    find_critical_point,
    find_critical_points,
)


def _xy(problem):
    return np.asarray(problem.x).ravel(), np.asarray(problem.y).ravel()


def test_origin_is_index_two_saddle_with_eigenvalues_pm_mean_xy(minimal_half):
    x, y = _xy(minimal_half)
    m = np.mean(x * y)
    cp = find_critical_point(minimal_half, np.array([0.02, -0.01, 0.015, 0.03]), radius=0.5)
    assert cp.success and cp.status == "converged"
    assert np.max(np.abs(cp.theta)) < 1e-10
    assert np.linalg.norm(minimal_half.grad(cp.theta)) <= 1e-12
    assert cp.signature == (2, 0, 2) and cp.kind == "saddle"
    np.testing.assert_allclose(np.sort(cp.eigenvalues), [-m, -m, m, m], rtol=1e-10, atol=1e-12)
    assert cp.reduces_to == "1-0-1"  # the zero network: both neurons dead


@pytest.fixture(scope="module")
def one_neuron_optimum(published_data):
    p1 = ft.Problem(ft.MLP((1, 1, 1), "tanh", bias=False), published_data, "half_mse")
    cp = find_critical_point(p1, np.array([1.0, 1.5]), radius=5.0)
    assert cp.success and cp.kind == "minimum"
    return p1, cp


def test_duplicated_line_sign_rule(minimal_half, one_neuron_optimum):
    """w1 = w2 = w*, v1 = λv*, v2 = (1 − λ)v*: one zero eigenvalue; saddle iff λ(1 − λ)h < 0."""
    p1, cp1 = one_neuron_optimum
    w_star, v_star = cp1.theta
    x, y = _xy(minimal_half)
    sigma = minimal_half.model.activation.fn
    d2sigma = jax.vmap(jax.grad(jax.grad(sigma)))
    e = p1.predict(cp1.theta, x).ravel() - y
    h = v_star * np.mean(e * np.asarray(d2sigma(jnp.asarray(w_star * x))) * x**2)
    assert h < 0  # docs/landscape.md: on the published data set the segment (0, 1) is saddles
    for lam in [-1.0, -0.3, 0.1, 0.3, 0.5, 0.7, 0.9, 1.3, 2.0]:
        theta = np.array([w_star, w_star, lam * v_star, (1 - lam) * v_star])
        assert np.linalg.norm(minimal_half.grad(theta)) < 1e-12
        cp = critical_point_at(minimal_half, theta)
        predicted_saddle = lam * (1 - lam) * h < 0
        assert cp.signature[1] == 1, (lam, cp.eigenvalues)
        assert cp.signature[0] == (1 if predicted_saddle else 0), (lam, cp.eigenvalues)
        assert cp.kind == ("degenerate_saddle" if predicted_saddle else "degenerate_minimum")
        assert cp.reduces_to == "1-1-1"
        # The zero eigenvector points along the line (v1 − v2 direction).
        z = cp.spectrum.zero_vectors[:, 0]
        assert abs(abs(z @ np.array([0, 0, 1, -1]) / np.sqrt(2)) - 1) < 1e-6
        # Newton refinement from a nearby point lands back on the line, with the same type.
        kick = 1e-3 * np.array([1.0, -0.7, 0.4, 0.2])
        ref = find_critical_point(minimal_half, theta + kick, radius=0.05)
        assert ref.success and ref.grad_norm <= 1e-12 and ref.kind == cp.kind, (lam, ref)


def _teacher_student(d, k, act, n=40, noise=0.1):
    teacher = ft.MLP((d, 2, 1), "tanh")
    data = ft.teacher_dataset((teacher, teacher.init(7)), n, noise=noise, seed=d)
    return ft.Problem(ft.MLP((d, k, 1), act), data)


def _sweep(configs, n_guesses):
    counts = Counter()
    for d, k, act in configs:
                p = _teacher_student(d, k, act)
                guesses = np.stack([np.asarray(p.model.init(s)) for s in range(n_guesses)])
                for cp in find_critical_points(p, guesses):
                    g = np.linalg.norm(p.grad(cp.theta))
                    if cp.success:
                        assert g <= 1e-10, (d, k, act, cp)
                        assert cp.kind in KINDS[:5]  # every kind but "slow_region"
                        counts["found"] += 1
                    else:
                        # A failure describes the guess, which is not critical; never a success.
                        assert cp.kind == "slow_region" and np.array_equal(cp.theta, cp.guess)
                        counts["failed"] += 1
                    counts[cp.kind] += 1
    return counts


def test_teacher_student_reported_points_are_critical():
    counts = _sweep([(1, 3, "tanh"), (2, 2, "softplus"), (2, 4, "gelu")], 10)
    assert counts["found"] > 0
    print(dict(counts))


@pytest.mark.slow
def test_teacher_student_full_sweep():
    configs = [(d, k, act) for d in (1, 2) for act in ("tanh", "softplus", "gelu") for k in range(1, 9)]
    counts = _sweep(configs, 50)
    print(dict(counts))
    assert counts["found"] + counts["failed"] == 2 * 8 * 3 * 50


def test_failure_reports_the_guess_not_the_iterate(minimal_half):
    guess = np.array([0.7, -1.1, 0.4, 2.0])
    cp = find_critical_point(minimal_half, guess, radius=1e-3, max_iter=5)
    assert not cp.success and cp.kind == "slow_region"
    assert np.array_equal(cp.theta, guess)
    assert cp.grad_norm == pytest.approx(np.linalg.norm(minimal_half.grad(guess)))
    assert cp.status in ("left_radius", "max_iter", "stalled")


def test_batched_equals_single(minimal_half):
    guesses = np.array([[0.02, -0.01, 0.015, 0.03], [1.0, 1.0, 1.0, 1.0], [-1.2, 0.8, -0.5, 1.5]])
    batch = find_critical_points(minimal_half, guesses, radius=3.0)
    for g, b in zip(guesses, batch):
        s = find_critical_point(minimal_half, g, radius=3.0)
        assert s.success == b.success and s.kind == b.kind
        if s.success:
            np.testing.assert_allclose(s.theta, b.theta, atol=1e-8)


def test_matrix_free_agrees_with_dense():
    p = _teacher_student(2, 3, "tanh")
    dense = find_critical_point(p, np.asarray(p.model.init(3)), method="dense", max_iter=300)
    assert dense.success
    mf = find_critical_point(p, dense.theta + 1e-4 * np.ones(p.n_params), method="matrix_free",
                             gtol=1e-10, radius=0.1)
    assert mf.success and np.linalg.norm(p.grad(mf.theta)) <= 1e-10
    assert mf.signature == dense.signature and abs(mf.loss - dense.loss) < 1e-10


def test_record_is_json_ready(minimal_half):
    cp = find_critical_point(minimal_half, np.array([0.02, -0.01, 0.015, 0.03]), radius=0.5)
    d = json.loads(json.dumps(cp.to_dict()))
    assert d["kind"] == "saddle" and d["signature"] == [2, 0, 2] and len(d["theta"]) == 4
    assert isinstance(cp, CriticalPoint) and "saddle" in repr(cp)


def test_classify():
    assert classify((0, 0, 4)) == "minimum"
    assert classify((0, 1, 3)) == "degenerate_minimum"
    assert classify((2, 0, 2)) == "saddle"
    assert classify((1, 1, 2)) == "degenerate_saddle"
    assert classify((1, None, None)) == "saddle"
    assert classify((1, 0, 3), success=False) == "slow_region"


def test_classify_passes_higher_order_options_on(minimal_half):
    # An option higher_order_test does not take reaches it (and is refused there) under both spellings.
    point = dict(problem=minimal_half, theta=np.zeros(4))
    with pytest.raises(TypeError, match="not_an_option"):
        classify((0, 1, 3), **point, higher_order_options=dict(not_an_option=1))
    with pytest.warns(FutureWarning, match=r"classify\(options=\.\.\.\) .* use higher_order_options="):
        with pytest.raises(TypeError, match="not_an_option"):
            classify((0, 1, 3), **point, options=dict(not_an_option=1))
    new = classify_point(minimal_half, np.zeros(4), higher_order_options={})
    with pytest.warns(FutureWarning, match=r"classify_point\(options=\.\.\.\) .* use higher_order_options="):
        assert classify_point(minimal_half, np.zeros(4), options={}) == new


def test_best_iterate_is_kept_and_fallbacks_finish_the_solve(minimal_half):
    # A short budget stops the solve near, not at, the origin saddle (‖∇L‖ ≫ gtol): the best iterate
    # is reported, not discarded; with fallbacks (restarts from it) the same budget converges.
    guess = np.array([0.05, -0.04, 0.03, 0.06])
    short = find_critical_point(minimal_half, guess, max_iter=2, fallback=False, gtol=1e-14)
    assert not short.success and np.array_equal(short.theta, guess)
    assert short.best_grad_norm < 1e-3 * np.linalg.norm(minimal_half.grad(guess))
    g_best = np.linalg.norm(minimal_half.grad(short.best_theta))
    assert g_best == pytest.approx(short.best_grad_norm, rel=1e-6)
    full = find_critical_point(minimal_half, guess, max_iter=2, gtol=1e-14)
    assert full.success and len(full.attempts) >= 2 and np.linalg.norm(full.theta) < 1e-10


def test_time_limit_reports_the_best_iterate(minimal_half):
    cp = find_critical_point(minimal_half, np.array([0.7, -1.1, 0.4, 2.0]), time_limit=1e-9, max_iter=200,
                             gtol=1e-300)
    assert cp.status == "time_limit" and not cp.success
    assert cp.best_grad_norm <= np.linalg.norm(minimal_half.grad(np.array([0.7, -1.1, 0.4, 2.0])))
    with pytest.raises(ValueError, match="time_limit"):
        find_critical_point(minimal_half, np.zeros(4), time_limit=0.0)


def test_symmetrize_neurons_moves_onto_the_symmetric_subspace():
    from flowtools.landscape import symmetrize_neurons

    model = ft.MLP((3, 3, 1), "erf", bias=False)
    W = np.array([[1.0, 0.5, 0.0], [1.02, 0.49, 0.01], [0.0, 0.0, 1.0]])
    v = np.array([0.3, 0.5, 1.0])
    sym = symmetrize_neurons(model, np.concatenate([W.ravel(), v]))
    Ws, vs = sym[:9].reshape(3, 3), sym[9:]
    assert np.array_equal(Ws[0], Ws[1]) and vs[0] == vs[1] == 0.4
    assert np.array_equal(Ws[2], W[2]) and vs[2] == 1.0
    # odd σ: an opposite neuron joins with its sign
    Wf = W.copy(); Wf[1] *= -1; vf = v.copy(); vf[1] *= -1  # noqa: E702
    symf = symmetrize_neurons(model, np.concatenate([Wf.ravel(), vf]))
    assert np.allclose(symf[3:6], -sym[3:6]) and np.isclose(symf[10], -0.4)
    assert symmetrize_neurons(model, np.concatenate([np.eye(3).ravel(), v])) is None


def test_matrix_free_above_a_lowered_threshold_finds_the_dense_point(monkeypatch):
    """Teacher–student with d = 10 inputs: above `dense_max` the automatic method refines matrix-free
    (no Hessian is formed) and lands on the same critical point as the dense solve."""
    import flowtools.landscape._lm_dense as lm_dense

    p = _teacher_student(10, 3, "tanh", n=80)
    dense = find_critical_point(p, np.asarray(p.model.init(3)), method="dense", max_iter=300)
    assert dense.success
    guess = dense.theta + 1e-3 * np.random.default_rng(0).standard_normal(p.n_params)

    def no_hessian(*args, **kwargs):
        raise AssertionError("a dense Hessian was formed in the matrix-free refinement")

    monkeypatch.setattr(lm_dense, "hessian_from_hvps", no_hessian)
    mf = find_critical_point(p, guess, dense_max=p.n_params - 1, gtol=1e-10, radius=0.5)
    assert mf.success and np.linalg.norm(p.grad(mf.theta)) <= 1e-10
    assert mf.signature == dense.signature and abs(mf.loss - dense.loss) < 1e-9
    f_mf = p.predict(mf.theta, np.asarray(p.x))
    f_dense = p.predict(dense.theta, np.asarray(p.x))
    assert np.sqrt(np.mean((f_mf - f_dense) ** 2)) < 1e-6
    # A budget: the solve stops and says so instead of running on.
    cut = find_critical_point(p, np.asarray(p.model.init(5)), dense_max=1, gtol=1e-300, time_limit=1e-6,
                              fallback=False)
    assert not cut.success and cut.status in ("time_limit", "max_iter", "stalled")


# End points of the gradient flow in `test_end_at_the_loss_floor_with_a_near_zero_relu_neuron_is_an_attractor`
# (tests/test_itinerary.py, k = 3, seeds 0 and 2): W = [w_0; I], row-major, with a neuron w_0 of norm
# ≈ 3e-16 and the teacher rows perturbed by ≈ 1e-16. Their numerical Hessians have one negative eigenvalue
# (−0.067 and −0.116 when recorded).
_FLOOR_POINTS = [
    [1.31356667e-16, -5.47886050e-17, 3.04307055e-16, 1.0, 7.18020944e-18, -6.43809284e-17,
     1.09902217e-17, 1.0, -1.52148354e-17, -3.58141368e-17, 5.34442521e-17, 1.0],
    [9.80558770e-17, -1.34455985e-16, -5.36241001e-17, 1.0, 1.30249078e-16, 1.06729594e-16,
     1.30802600e-17, 1.0, -2.23994986e-17, 6.52291646e-18, 2.69912809e-19, 1.0],
]


def test_a_point_at_the_loss_floor_is_a_minimum_for_every_entry_point():
    """Safran–Shamir at n = k + 1 = 4 (ReLU, population loss, second layer frozen): the teacher plus a
    neuron of norm ≈ 1e-16 has F ≈ 1e-32, its lower bound 0 to round-off, so it is a global minimum.
    F is not twice differentiable there (the small neuron's kernel terms are homogeneous of degree 1 in
    w) and the numerical Hessian has a negative eigenvalue. `find_critical_point`, `find_critical_points`
    and `critical_point_at` (the sweep task `critical_points` calls `find_critical_points`) must all
    call the point a degenerate minimum, not a saddle, and say why."""
    from flowtools.landscape import classify_point, hessian_spectrum, loss_floor_spectrum
    from flowtools.landscape.critical import LOSS_FLOOR_NOTE

    k = 3
    p = ft.problems.safran_shamir(k, k + 1)
    teacher = np.concatenate([np.zeros(k), np.eye(k).ravel()])
    guesses = np.array(_FLOOR_POINTS)
    raw = [hessian_spectrum(p, g) for g in guesses]
    assert all(s.signature[0] == 1 for s in raw)  # what the Hessian alone says: a saddle
    cps = [find_critical_point(p, g) for g in guesses] + find_critical_points(p, guesses)
    cps += [critical_point_at(p, g) for g in guesses]
    for cp in cps:
        assert cp.success and cp.kind == "degenerate_minimum", cp
        assert cp.signature[0] == 0 and sum(cp.signature) == p.n_params
        assert cp.loss <= 1e-28 and np.linalg.norm(cp.theta - teacher) < 1e-15  # the teacher, to round-off
        assert cp.spectrum.unstable_vectors.shape == (p.n_params, 0)
        assert LOSS_FLOOR_NOTE in cp.message and "not twice differentiable" in cp.message
        assert LOSS_FLOOR_NOTE in cp.spectrum.message
        assert np.min(cp.eigenvalues) < -1e-3  # the eigenvalues stay as computed
        d = json.loads(json.dumps(cp.to_dict()))
        assert d["kind"] == "degenerate_minimum" and d["signature"][0] == 0
        assert LOSS_FLOOR_NOTE in d["message"]
        # The "unstable" eigenvector of the raw Hessian does not descend: F rises along it both ways,
        # quadratically with different one-sided curvatures (0.3 and 0.0065 at the first point), the kink.
        v = hessian_spectrum(p, cp.theta).unstable_vectors[:, 0]
        assert all(p.loss(cp.theta + r * v) > 1e-3 * r * r for r in (-1e-3, 1e-3))
    # classify / classify_point with the point agree; the rule is idempotent.
    assert classify(raw[0].signature, problem=p, theta=guesses[0]) == "degenerate_minimum"
    assert classify(raw[0].signature) == "saddle"  # a signature alone knows nothing of the floor
    fixed = loss_floor_spectrum(p, guesses[0], raw[0])
    assert fixed.signature == (0, raw[0].signature[1] + 1, raw[0].signature[2])
    assert loss_floor_spectrum(p, guesses[0], fixed) is fixed
    assert classify_point(p, guesses[0], fixed) == ("degenerate_minimum", None)
    # Off the floor (F > 0) negative eigenvalues stay.
    off = teacher + 0.05 * np.random.default_rng(1).standard_normal(p.n_params)
    spec = hessian_spectrum(p, off)
    assert spec.signature[0] > 0 and p.loss(off) > 1e-6
    assert loss_floor_spectrum(p, off, spec) is spec
    assert classify_point(p, off, spec)[0] in ("saddle", "degenerate_saddle")


def test_an_energy_without_a_lower_bound_is_never_corrected():
    """`from_loss` energies have no known lower bound: L = −‖θ‖² at its maximum θ = 0 has L = L(0) and
    stays a saddle (2, 0, 0) with its negative eigenvalues."""
    p = ft.Problem.from_loss(lambda th: -(th ** 2).sum(), 2)
    assert p.loss_lower_bound is None
    cp = find_critical_point(p, np.array([1e-3, -2e-3]))
    assert cp.success and cp.kind == "saddle" and cp.signature == (2, 0, 0)
    np.testing.assert_allclose(cp.eigenvalues, [-2.0, -2.0], rtol=1e-12)
    assert "lower bound" not in cp.message


def _curved_valley(stiffness=100.0):
    """L = x⁴ + K(y − x²)² + z²: a quartic minimum at 0 reached along the curved valley y = x²."""
    return ft.Problem.from_loss(
        lambda th: th[0] ** 4 + stiffness * (th[1] - th[0] ** 2) ** 2 + th[2] ** 2, 3)


def test_corrector_follows_a_curved_degenerate_valley():
    """Along y = x² the Hessian's soft eigenvalue is 12x² and a straight step leaves the valley by K·s²:
    the plain trust region stays far below the Newton step and creeps (‖∇L‖ ≈ 8e-6 after 200 iterations),
    while the corrected step reaches gtol at the minimum, checked independently."""
    p = _curved_valley()
    guess = np.array([0.5, 0.26, 0.3])
    plain = find_critical_point(p, guess, fallback=False)
    assert not plain.success and plain.status == "max_iter" and plain.best_grad_norm > 1e-8
    assert "corrected" not in plain.attempts[0]
    cp = find_critical_point(p, guess, fallback=False, corrector=True)
    assert cp.success and cp.iterations <= 60 and cp.attempts[0]["corrected"] > 0
    x, y, z = cp.theta
    exact = [4 * x ** 3 - 400 * x * (y - x ** 2), 200 * (y - x ** 2), 2 * z]  # ∇L by hand
    assert np.linalg.norm(exact) <= 1.01e-12
    # ‖∇L‖ ≤ 1e-12 at a quartic minimum: |x| ≲ (1e-12 / 4)^(1/3) ≈ 6e-5.
    assert np.max(np.abs(cp.theta)) < 1e-4 and cp.signature[0] == 0


def test_corrector_keeps_a_nondegenerate_point(minimal_half):
    """At a nondegenerate saddle the corrected solve converges to the same point as the plain one."""
    guess = np.array([0.02, -0.01, 0.015, 0.03])
    plain = find_critical_point(minimal_half, guess, radius=0.5)
    cp = find_critical_point(minimal_half, guess, radius=0.5, corrector=True)
    assert cp.success and cp.signature == plain.signature == (2, 0, 2)
    assert np.max(np.abs(cp.theta - plain.theta)) < 1e-10 and cp.iterations <= plain.iterations
    with pytest.raises(TypeError, match="corrector must be True or False"):
        find_critical_point(minimal_half, guess, corrector="yes")


def test_deadline_stops_minres_inside_a_solve_and_paces_lm_chunks(monkeypatch):
    """Under a deadline neither solver runs on for a whole uninterruptible piece of work: MINRES checks
    it before each Hessian-vector product (a solve may take 500), and the matrix-free
    Levenberg–Marquardt loop starts no chunk that would not fit in the time left at its pace so far."""
    import time

    import flowtools.landscape._lm_chunks as _lm_chunks
    import flowtools.problem._batch as batch
    from flowtools.landscape._newton_minres import newton_minres
    from flowtools.landscape._stop_codes import MAX_ITER

    p = _teacher_student(10, 3, "tanh", n=80)
    guess = np.asarray(p.model.init(5))
    newton_minres(p, guess, guess, 10.0, 1e-300, 1, 1.0, None)  # compiles the gradient and the product
    real_hvp, calls = batch.jit_hvp, []

    def slow_hvp(*args):
        calls.append(1)
        time.sleep(0.01)
        return real_hvp(*args)

    monkeypatch.setattr(batch, "jit_hvp", slow_hvp)
    t0 = time.perf_counter()
    *_, timed_out = newton_minres(p, guess, guess, 10.0, 1e-300, 50, 1.0, t0 + 0.3)
    assert timed_out and 0 < len(calls) < 100 and time.perf_counter() - t0 < 0.3 + 0.5

    def slow_chunk(problem, theta, center, radius, gtol, n, cg_iter, cg_rtol, ctl):
        time.sleep(0.2 * int(n))  # 0.2 s per iteration, never converging
        return theta, 1.0, n, MAX_ITER, ctl

    monkeypatch.setattr(_lm_chunks, "solve_matrix_free", slow_chunk)
    t0 = time.perf_counter()
    out = _lm_chunks.lm_in_chunks(p, guess, guess, 10.0, 1e-12, 100, 0.0, 1e-12, 1.0, "matrix_free", 10, t0 + 0.5, 1)
    # Chunks start while one more fits (two, when nothing else takes time); the one that would end past
    # the deadline does not start, where checking only the deadline itself ran on to 0.6 s.
    assert out[4] and 1 <= out[2] <= 2 and time.perf_counter() - t0 < 0.5
