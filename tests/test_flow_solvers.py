"""flowtools' own gradient-flow integrators: the ROS34PW2 tableau and its convergence order (with exact,
frozen and wrong Jacobians: a W-method keeps its order), the BDF port against scipy's BDF step for step,
agreement with scipy's solve_ivp on a net, and exact counts of gradient and Hessian evaluations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

import flowtools as ft
from flowtools.dynamics import bdf, rosenbrock
from flowtools.dynamics.gcr import gcr
from flowtools.dynamics.stiff import eigh_sym

from conftest import PUBLISHED_THETA0

TAB = rosenbrock.ROS34PW2


# ----------------------------------------------------------------------------- the tableau
def test_ros34pw2_order_conditions():
    """Classical order-3 conditions of the Rosenbrock method, order 2 of the embedded one, and the
    W-method conditions of order 2 (γ-independent: hold for any W)."""
    b, bh, al, G, g = TAB.b, TAB.bhat, TAB.alpha, TAB.Gamma, TAB.gamma
    beta = al + np.tril(G, -1)
    bp, a = beta.sum(1), al.sum(1)
    assert b.sum() == pytest.approx(1, abs=1e-14)
    assert b @ bp == pytest.approx(0.5 - g, abs=1e-14)
    assert b @ a**2 == pytest.approx(1 / 3, abs=1e-14)
    assert b @ beta @ bp == pytest.approx(1 / 6 - g + g * g, abs=1e-14)
    assert bh.sum() == pytest.approx(1, abs=1e-14) and bh @ bp == pytest.approx(0.5 - g, abs=1e-14)
    assert b @ a == pytest.approx(0.5, abs=1e-14)  # W-condition: Σ b_i α_i = 1/2
    assert b @ np.tril(G, -1).sum(1) == pytest.approx(-g, abs=1e-14)
    # Stiffly accurate: the last stage's point is y1 (b = last row of α + Γ).
    np.testing.assert_allclose(b, (al + G)[-1], atol=1e-15)


def _slope(f, y0, t1, jac, ref, ns=(20, 40, 80)):
    """Observed order: the slope of log(error at t1) against log(number of fixed ROS34PW2 steps),
    with the W matrix from `jac(y)` at every step. One compilation for all step counts."""

    @jax.jit
    def run(n):
        h = t1 / n

        def step(_, y):
            Q, lam = jac(y)
            return rosenbrock.rosenbrock_step(TAB, f, y, f(y), h, Q, lam)[0]

        return jax.lax.fori_loop(0, n, step, y0)

    errs = [float(jnp.max(jnp.abs(run(jnp.asarray(n)) - ref))) for n in ns]
    return -np.polyfit(np.log(ns), np.log(errs), 1)[0], errs


def test_ros34pw2_converges_with_order_3_linear():
    # y' = −A y with a stiff SPD A (eigenvalues 0.5 … 50): exact solution known.
    rng = np.random.default_rng(0)
    Qr, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    A = jnp.asarray(Qr @ np.diag([0.5, 2.0, 10.0, 50.0]) @ Qr.T)
    f = lambda y: -A @ y  # noqa: E731
    y0 = jnp.asarray([1.0, -0.5, 0.25, 2.0])
    t1 = 2.0
    lam, V = np.linalg.eigh(np.asarray(A))
    ref = jnp.asarray(V @ (np.exp(-lam * t1) * (V.T @ np.asarray(y0))))
    exact = lambda y: (jnp.asarray(V), jnp.asarray(lam))  # noqa: E731
    # A W-method keeps its order with any W: a frozen, 30 % wrong Jacobian.
    wrong = lambda y: (jnp.asarray(V), jnp.asarray(0.7 * lam))  # noqa: E731
    for jac in (exact, wrong):
        p, errs = _slope(f, y0, t1, jac, ref)
        assert 2.7 <= p <= 3.4, (p, errs)


def test_ros34pw2_converges_with_order_3_nonlinear(minimal_mse):
    # The published gradient flow itself, over t ∈ [0, 2] (nonlinear, Hessian indefinite at the start).
    f = lambda y: -minimal_mse.grad_fn(y)  # noqa: E731
    y0 = jnp.asarray(PUBLISHED_THETA0 * 5)
    t1 = 2.0
    sol = scipy.integrate.solve_ivp(lambda t, y: -minimal_mse.grad(y), (0, t1), np.asarray(y0),
                                    method="DOP853", rtol=1e-13, atol=1e-14)
    ref = jnp.asarray(sol.y[:, -1])

    # Frozen at the start (where the Hessian is indefinite; negative eigenvalues clipped, as the
    # solver does): a W-method keeps order 3 on a nonlinear problem with any fixed W.
    Q, lam = eigh_sym(minimal_mse.hessian_fn(y0))
    frozen = lambda y: (Q, jnp.maximum(lam, 0.0))  # noqa: E731
    p, errs = _slope(f, y0, t1, frozen, ref, ns=(8, 16, 32))
    assert 2.6 <= p <= 3.5, (p, errs)


# ------------------------------------------------------------------- exact evaluation counts
COUNTS = {"grad": 0, "hess": 0}


def _count(kind):
    COUNTS[kind] += 1


class CountingProblem(ft.Problem):
    """A Problem whose gradient and Hessian report each evaluation to the host."""

    def grad_fn(self, theta):
        jax.debug.callback(_count, "grad")
        return super().grad_fn(theta)

    def hessian_fn(self, theta):
        jax.debug.callback(_count, "hess")
        return jax.hessian(ft.Problem.loss_fn, argnums=1)(self, theta)


def _counted_run(problem, theta0, t1, solver, **kw):
    COUNTS.update(grad=0, hess=0)
    run = ft.gradient_flow(problem, theta0, t1, solver=solver, **kw)
    # Compiling evaluates nothing; the traced run does.
    return run, dict(COUNTS)


@pytest.fixture(scope="module")
def counting_minimal(published_data, minimal_model):
    return CountingProblem(minimal_model, published_data, "mse")


def test_bdf_is_scipys_bdf(counting_minimal, minimal_mse):
    """Without Newton–Krylov the port is scipy's BDF with a jitted loop: the same steps, the same
    Hessian evaluations (up to rounding), the same trajectory; and it counts its evaluations exactly."""
    save_ts = np.geomspace(1e-2, 2e4, 60)
    solver = bdf.BDF(krylov=False, hessian="vmap")
    run, counts = _counted_run(counting_minimal, PUBLISHED_THETA0, 2e4, solver, save_ts=save_ts)
    assert run.status == ft.Status.T1_REACHED
    assert run.stats["gradient_evaluations"] == counts["grad"]
    assert run.stats["jacobian_evaluations"] == counts["hess"]
    ref = scipy.integrate.solve_ivp(
        lambda t, y: -minimal_mse.grad(y), (0.0, 2e4), PUBLISHED_THETA0, method="BDF", rtol=1e-8,
        atol=1e-10, jac=lambda t, y: -minimal_mse.hessian(y), dense_output=True)
    scipy_steps = ref.t.size - 1
    assert abs(run.stats["accepted_steps"] - scipy_steps) <= 0.05 * scipy_steps
    assert abs(run.stats["jacobian_evaluations"] - ref.njev) <= max(3, 0.15 * ref.njev)
    assert np.max(np.abs(run.theta[1:] - ref.sol(save_ts).T)) <= 1e-6


def test_ros34pw2_counts_and_matches_lsoda(counting_minimal, minimal_mse):
    save_ts = np.geomspace(1e-2, 2e4, 60)
    solver = rosenbrock.RosenbrockW(hessian="vmap")
    run, counts = _counted_run(counting_minimal, PUBLISHED_THETA0, 2e4, solver, save_ts=save_ts)
    assert run.status == ft.Status.T1_REACHED
    assert run.stats["gradient_evaluations"] == counts["grad"]
    assert run.stats["jacobian_evaluations"] == counts["hess"]
    ref = scipy.integrate.solve_ivp(
        lambda t, y: -minimal_mse.grad(y), (0.0, 2e4), PUBLISHED_THETA0, method="LSODA",
        t_eval=save_ts, rtol=1e-8, atol=1e-10, jac=lambda t, y: -minimal_mse.hessian(y))
    assert np.max(np.abs(run.theta[1:] - ref.y.T)) <= 1e-6


def test_default_flow_on_a_net_matches_lsoda_and_counts():
    """The default solver (BDF with Newton–Krylov) on a teacher–student net, to ‖∇L‖ ≤ 1e-10."""
    teacher = ft.MLP((1, 3, 1), "tanh", bias=True)
    data = ft.teacher_dataset((teacher, np.random.default_rng(5).standard_normal(teacher.n_params)), 60,
                              seed=2)
    student = ft.MLP((1, 6, 1), "tanh", bias=True)
    problem = CountingProblem(student, data, "half_mse")
    theta0 = 0.8 * np.random.default_rng(7).standard_normal(student.n_params)
    save_ts = np.geomspace(1e-2, 1e3, 50)
    # hessian="vmap": the counting problem's Hessian reports itself (the "map" Hessian is made of
    # Hessian-vector products of grad_fn, which would report as gradients).
    run, counts = _counted_run(problem, theta0, 1e3, bdf.BDF(hessian="vmap"), save_ts=save_ts)
    assert run.status == ft.Status.T1_REACHED
    assert run.stats["gradient_evaluations"] == counts["grad"]
    assert run.stats["jacobian_evaluations"] == counts["hess"]
    assert run.stats["hvp_evaluations"] > 0  # Newton–Krylov was used
    plain = ft.Problem(student, data, "half_mse")
    ref = scipy.integrate.solve_ivp(
        lambda t, y: -plain.grad(y), (0.0, 1e3), theta0, method="LSODA", t_eval=save_ts, rtol=1e-8,
        atol=1e-10, jac=lambda t, y: -plain.hessian(y))
    assert np.max(np.abs(run.theta[1:] - ref.y.T)) <= 1e-6


def test_solver_settings_are_checked():
    with pytest.raises(ValueError, match="krylov_m"):
        bdf.BDF(krylov_m=0)
    with pytest.raises(ValueError, match="tableau"):
        rosenbrock.RosenbrockW(tableau="rodas9")
    assert "bdf" in ft.SOLVERS and "ros34pw2" in ft.SOLVERS


# ----------------------------------------------------------------------------- the solver bases
def test_solver_bases_decide_how_a_flow_runs(minimal_mse):
    """The flow driver tells one-call solvers from segment-capable ones by their abstract base, not by
    probing attributes; a solver that leaves a declared method out cannot be made."""
    from flowtools.dynamics import flow, rkc
    from flowtools.dynamics.stiff import AbstractFlowSolver, AbstractSegmentedSolver

    assert issubclass(bdf.BDF, AbstractSegmentedSolver) and issubclass(rkc.RKC, AbstractSegmentedSolver)
    assert issubclass(rosenbrock.RosenbrockW, AbstractFlowSolver)
    assert not issubclass(rosenbrock.RosenbrockW, AbstractSegmentedSolver)
    assert flow._segmented(bdf.BDF()) and not flow._segmented(rosenbrock.RosenbrockW())

    class NoRestore(AbstractSegmentedSolver):
        def blank_state(self, n, n_slots):
            return None

        def carry(self, state):
            return {}

        def solve(self, *args, **kw):
            return None

    with pytest.raises(TypeError, match="restore"):
        NoRestore()

    class OneCall(AbstractFlowSolver):
        """RKC driven in one call, as a one-call solver is."""

        inner: rkc.RKC = rkc.RKC()

        def solve(self, problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol, max_norm, *,
                  max_steps, progress):
            return self.inner.solve(problem, theta0, t0, t1, dt0, ts, rtol, atol, pcoeff, icoeff, gtol,
                                    max_norm, max_steps=max_steps, progress=progress)

    assert not flow._segmented(OneCall())
    save_ts = np.geomspace(1e-2, 50.0, 20)
    one = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, 50.0, solver=OneCall(), save_ts=save_ts)
    seg = ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, 50.0, solver=rkc.RKC(), save_ts=save_ts)
    assert one.status == seg.status == ft.Status.T1_REACHED
    assert one.stats["accepted_steps"] == seg.stats["accepted_steps"] > 0
    np.testing.assert_allclose(one.theta, seg.theta, rtol=0, atol=1e-12)


def test_one_blas_thread_limits_and_restores_blas_threads(minimal_mse, monkeypatch):
    """The flow's LAPACK runs on one BLAS thread up to ONE_BLAS_THREAD_MAX_PARAMS parameters, and the
    process's setting comes back afterwards; above the bound nothing changes. The run says which."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from flowtools.dynamics.stiff import ONE_BLAS_THREAD_MAX_PARAMS, one_blas_thread

    def blas_threads():
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    jax.scipy.linalg.lu_factor(jnp.eye(3) + 1.0)  # JAX's LAPACK is loaded
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        assert before and all(n == 2 for n in before)
        with one_blas_thread(ONE_BLAS_THREAD_MAX_PARAMS):
            assert all(n == 1 for n in blas_threads())
        assert blas_threads() == before
        with one_blas_thread(ONE_BLAS_THREAD_MAX_PARAMS + 1):
            assert blas_threads() == before
    assert ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, 1.0).stats["blas_threads"] == 1
    monkeypatch.setattr("flowtools.dynamics.stiff.ONE_BLAS_THREAD_MAX_PARAMS", 2)
    assert ft.gradient_flow(minimal_mse, PUBLISHED_THETA0, 1.0).stats["blas_threads"] == 0


# ------------------------------------------------------------------- Newton–Krylov with recycling
def test_gcr_solves_and_recycles_its_directions():
    """GCR from x0 = 0 solves A x = b like a dense solve; for a second right-hand side with the same A
    (the identity plus a rank-5 term, as a preconditioned BDF iteration matrix) the kept directions
    leave it at most two new products, where the first solve needed at least five."""
    rng = np.random.default_rng(3)
    n, k = 40, 5
    W = rng.standard_normal((n, k))
    A = np.eye(n) + W @ np.diag([3.0, -0.5, 8.0, 0.7, 20.0]) @ np.linalg.pinv(W)
    b1, b2 = rng.standard_normal(n), rng.standard_normal(n)
    U = C = jnp.zeros((30, n))
    apply = lambda v: jnp.asarray(A) @ v  # noqa: E731
    x1, mv1, ok1, U, C, kept = gcr(apply, jnp.asarray(b1), U, C, 0, 1e-10, 15)
    assert ok1 and mv1 >= 5 and kept == mv1
    np.testing.assert_allclose(x1, np.linalg.solve(A, b1), rtol=1e-8, atol=1e-9)
    x2, mv2, ok2, U, C, kept2 = gcr(apply, jnp.asarray(b2), U, C, kept, 1e-10, 15)
    assert ok2 and mv2 <= 2 and kept2 == kept + mv2
    np.testing.assert_allclose(x2, np.linalg.solve(A, b2), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(C[:kept2] @ C[:kept2].T, np.eye(int(kept2)), atol=1e-12)
    # The forcing test (`small`) ends a solve only once a direction is in use: a right-hand side it
    # already calls small still gets one product and a non-zero correction, not x = 0.
    empty = jnp.zeros((30, n))
    x3, mv3, ok3, *_ = gcr(apply, jnp.asarray(1e-12 * b1), empty, empty, 0, 1e-10, 15, lambda r: jnp.asarray(True))
    assert ok3 and mv3 == 1 and np.linalg.norm(x3) > 0


def test_recycled_newton_krylov_keeps_the_flow_and_saves_products():
    """The default BDF (one linearisation and one GCR space per attempt, forcing term 0.1) against the
    earlier solver (a fresh linearisation and GMRES at every Newton iterate) on a 61-parameter
    teacher–student net to ‖∇L‖ ≤ 1e-10: the same saved states within 1e-6 (the tolerance both are
    checked against LSODA with), the same network function at the end, and fewer Jacobian-vector
    products."""
    teacher = ft.MLP((1, 4, 1), "tanh", bias=True)
    data = ft.teacher_dataset((teacher, np.random.default_rng(1234).standard_normal(teacher.n_params)), 200,
                              seed=0)
    student = ft.MLP((1, 20, 1), "tanh", bias=True)
    problem = ft.Problem(student, data, "half_mse")
    theta0 = 0.8 * np.random.default_rng(1).standard_normal(student.n_params)
    save_ts = np.geomspace(1e-2, 1e4, 40)
    runs = [ft.gradient_flow(problem, theta0, 1e4, solver=solver, save_ts=save_ts)
            for solver in (bdf.BDF(), bdf.BDF(recycle=False, forcing=0.0))]
    assert all(r.status == ft.Status.T1_REACHED for r in runs)
    assert np.max(np.abs(runs[0].theta - runs[1].theta)) <= 1e-6
    x = np.asarray(problem.x)
    f_end = [problem.predict(r.final_theta, x) for r in runs]
    assert np.max(np.abs(f_end[0] - f_end[1])) <= 1e-7
    mv = [r.stats["hvp_evaluations"] for r in runs]
    assert 0 < mv[0] < mv[1], mv


def test_recycling_settings_are_checked():
    with pytest.raises(ValueError, match="forcing"):
        bdf.BDF(forcing=1.5)
    with pytest.raises(ValueError, match="recycle"):
        bdf.BDF(recycle="yes")
