"""One result code: every solver reports a `RESULTS` item, mapped once to `Status` with one message table."""

import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools import escape
from flowtools.dynamics import descent, flow, stiff
from flowtools.dynamics.results import MESSAGES, RESULTS, STATUS, Status, message, result_name, status_of
from flowtools.escape import _flow


def _quadratic():
    scales = jnp.asarray([1.0, 0.1])
    return ft.Problem.from_loss(lambda th: 0.5 * jnp.sum(scales * (th - 1.0) ** 2), n_params=2)


def test_mapping_covers_every_member_once():
    names = list(RESULTS._name_to_item)
    assert sorted(STATUS) == sorted(names)
    assert set(STATUS.values()) == set(Status)  # every public status is reachable
    for name in names:
        item = getattr(RESULTS, name)
        assert result_name(item) == name
        assert status_of(item) is STATUS[name]
        assert any(key[0] == name for key in MESSAGES), f"no message for {name}"
    assert {key[0] for key in MESSAGES} <= set(names)
    with pytest.raises(ValueError, match="not a flowtools RESULTS code"):
        result_name(len(names))


def test_messages_fill_their_fields():
    fields = dict(at="t=1", loss=0.5, grad_norm=1e-3, bad="L", t1=10.0, gtol=1e-8, max_norm=1e6,
                  max_steps=100, steps=5, event_step=3, k=2, wall=1.0, metric="function", radius=0.1,
                  note="")
    for name, kind in MESSAGES:
        assert message(name, kind, **fields)
    with pytest.raises(ValueError, match="no message"):
        message("escaped", "map")


def test_stiff_event_is_a_results_item():
    g = jnp.asarray([1.0, 2.0])
    assert isinstance(stiff.event_code(jnp.asarray(1e-12), g, 1e-10, 1e6), RESULTS)
    assert result_name(stiff.event_code(jnp.asarray(1e-12), g, 1e-10, 1e6)) == "converged"
    assert result_name(stiff.event_code(jnp.asarray(1.0), g * 1e7, 1e-10, 1e6)) == "diverged"
    assert result_name(stiff.event_code(jnp.asarray(jnp.nan), g, 1e-10, 1e6)) == "non_finite"
    assert result_name(stiff.event_code(jnp.asarray(1.0), g, 1e-10, 1e6)) == "successful"


@pytest.mark.parametrize("solver", ["bdf", "rkc", "ros34pw2", "tsit5"])
def test_every_flow_solver_reports_a_results_item(solver):
    problem = _quadratic()
    args, kw, _ = flow.prepare_flow(problem, np.zeros(2), 1e3, gtol=1e-6, solver=solver)
    out = flow._solve(*args, **kw)
    assert isinstance(out[2], RESULTS)
    assert result_name(out[2]) == "converged"
    run = ft.gradient_flow(problem, np.zeros(2), 1e3, gtol=1e-6, solver=solver)
    assert run.status == Status.CONVERGED and "gtol" in run.message
    short = ft.gradient_flow(problem, np.zeros(2), 1e-2, solver=solver)
    assert short.status == Status.T1_REACHED and short.message.startswith("reached t1=")


def test_descent_replay_and_escape_report_results_items():
    problem = _quadratic()
    f = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    _, _, result = descent._replay(problem, jnp.zeros(2), f(0.5), descent._i64(2000), descent._i64(0),
                                   f(1e-8), f(1e6), None, None)
    assert isinstance(result, RESULTS) and result_name(result) == "converged"
    _, _, result = descent._replay(problem, jnp.zeros(2), f(30.0), descent._i64(100), descent._i64(0),
                                   f(1e-8), f(1e3), None, None)
    assert result_name(result) == "diverged"
    gd = ft.gradient_descent(problem, np.zeros(2), 30.0, 100, max_norm=1e3)
    assert gd.status == Status.DIVERGED and gd.message.startswith("|theta| exceeded max_norm=1000 at step")
    out = _flow._solve_escape(problem, jnp.zeros(2), jnp.zeros(2), f(0.5), f(100.0), jnp.asarray([1.0, 10.0]),
                              f(1e-8), f(1e-12), f(0.3), f(0.4), f(1e6), solver=flow.SOLVERS["tsit5"](),
                              max_steps=10_000, metric="parameter")
    assert isinstance(out[4], RESULTS) and result_name(out[4]) == "escaped"
    run = escape.escape_flow(problem, np.zeros(2), np.zeros(2), 0.5, metric="parameter", t1=100.0)
    assert run.trajectory.status == Status.T1_REACHED and run.trajectory.meta["stopped_on_exit"]
    assert "leaving the ball" in run.trajectory.message
