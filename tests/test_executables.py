"""The process's executables: above half the kernel's bound on memory maps they are released, and later
calls load them again with the same results (flowtools._executables)."""

import numpy as np
import pytest

import flowtools as ft
from flowtools import _executables
from flowtools.dynamics import flow


def test_map_count_reads_this_process():
    count, limit = _executables.map_count(), _executables.map_limit()
    if count is None or limit is None:
        pytest.skip("no /proc on this platform")
    assert 10 < count < limit


def test_make_room_releases_every_memo_above_the_fill(monkeypatch):
    memo, other = _executables.executable_memo(), {}
    _executables.register(other)
    memo["a"], other["b"] = object(), object()
    monkeypatch.setattr(_executables, "map_limit", lambda: 1000)
    monkeypatch.setattr(_executables, "map_count", lambda: 400)
    before = _executables.releases
    _executables.make_room(force_check=True)
    assert memo and other and _executables.releases == before  # under half the bound: kept
    monkeypatch.setattr(_executables, "map_count", lambda: 600)
    _executables.make_room(force_check=True)
    assert memo == {} and other == {} and _executables.releases == before + 1
    # Only every CHECK_EVERY-th call reads the count.
    memo["a"] = object()
    checks = []
    monkeypatch.setattr(_executables, "map_count", lambda: checks.append(1) or 0)
    for _ in range(2 * _executables.CHECK_EVERY):
        _executables.make_room()
    assert len(checks) == 2 and memo


def test_a_flow_after_a_release_loads_its_solve_and_gives_the_same_bits(monkeypatch):
    """The flow's memo of compiled solves is registered: a release empties it, and the same flow runs
    again (the executable loaded from the store or compiled) to the same bits."""
    problem = ft.problems.teacher_student(d=3, k=2, width=2, activation="tanh", n=40)
    theta0 = problem.model.init(1, "normal", scale=0.3)
    first = ft.gradient_flow(problem, theta0, 5.0, n_save=8)
    assert flow._COMPILED and id(flow._COMPILED) in _executables._MEMOS
    monkeypatch.setattr(_executables, "map_limit", lambda: 2)
    _executables.make_room(force_check=True)
    assert flow._COMPILED == {}
    monkeypatch.undo()
    again = ft.gradient_flow(problem, theta0, 5.0, n_save=8)
    assert flow._COMPILED
    np.testing.assert_array_equal(np.asarray(again.theta), np.asarray(first.theta))
    assert again.status == first.status
