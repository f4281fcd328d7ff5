"""SGD on a par with GD: wall-time budgets, checkpoints and resuming bit for bit, ensembles of seeded
members, and clear errors for bad input."""


import numpy as np
import pytest

import flowtools as ft
from conftest import record_saves
from conftest import PUBLISHED_THETA0

# Records every 2 000 steps: the budgeted run's first chunk (1 024 steps) ends between two records.
KW = dict(lr=0.05, steps=20_000, batch_size=10, seed=3, record_steps=np.arange(0, 20_001, 2000))
ARRAYS = ("t", "theta", "loss", "grad_norm", "gen_error", "step")


def assert_identical(a, b):
    """Same status and every recorded array equal bit for bit."""
    assert a.status == b.status and a.method == b.method == "sgd"
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.shape == y.shape and np.array_equal(x, y), name


@pytest.fixture(scope="module")
def full(minimal_half):
    return ft.sgd(minimal_half, PUBLISHED_THETA0, **KW)


@pytest.fixture(scope="module")
def part(minimal_half):
    # A budget used up before the first chunk (1 024 steps) ends: the run stops after it.
    return ft.sgd(minimal_half, PUBLISHED_THETA0, **KW, time_limit=1e-9)


def test_budget_stops_sgd_with_a_resumable_status(part):
    assert part.status == ft.Status.TIME_LIMIT and "resume" in part.message
    assert 0 < part.step[-1] < KW["steps"]
    assert part.meta["seed"] == KW["seed"] and part.meta["batch_size"] == KW["batch_size"]


def test_resumed_sgd_is_the_uninterrupted_run_bit_for_bit(minimal_half, full, part, tmp_path):
    """The batch of step k comes from (seed, k), so the resumed run draws the uninterrupted run's batches:
    θ, L, ‖∇L‖ and R equal bit for bit at every recorded step, through memory and through a file."""
    k_stop = int(part.step[-1])
    # The join also records the interruption step; a run recording there too is the exact reference.
    reference = ft.sgd(minimal_half, PUBLISHED_THETA0, **dict(KW, record_steps=np.union1d(full.step, [k_stop])))
    assert k_stop not in full.step and len(reference.step) == len(full.step) + 1
    part.save(tmp_path / "part")
    for resume in (part, tmp_path / "part.npz"):
        joined = ft.sgd(minimal_half, None, **KW, resume=resume)
        assert joined.meta["segments"] == 2 and joined.stats["steps"] == full.stats["steps"] == KW["steps"]
        assert_identical(joined, reference)
        rows = np.isin(joined.step, full.step)
        for name in ARRAYS:
            assert np.array_equal(getattr(joined, name)[rows], getattr(full, name)), name
    # A finished run is returned as it is.
    assert ft.sgd(minimal_half, None, **KW, resume=joined) is joined


def test_sgd_gtol_after_resume_is_that_of_the_uninterrupted_run(minimal_half, full, part):
    # A gtol that a record after the interruption meets first.
    later = full.step > part.step[-1]
    gtol = float(np.min(full.grad_norm[later])) * (1 + 1e-9)
    assert np.any(full.grad_norm[~later] > gtol)
    one = ft.sgd(minimal_half, PUBLISHED_THETA0, **KW, gtol=gtol)
    resumed = ft.sgd(minimal_half, None, **KW, gtol=gtol, resume=part)
    assert one.status == ft.Status.CONVERGED and one.meta["gtol"] == gtol
    rows = np.isin(resumed.step, one.step)
    assert resumed.status == one.status and rows.sum() == len(one.step)
    assert np.array_equal(resumed.theta[rows], one.theta)


def test_sgd_checkpoints_resume_into_the_final_result(minimal_half, tmp_path, monkeypatch):
    """Every checkpoint ("running") written during a run resumes into the run's exact result, and the
    file on disk holds the final result."""
    written = record_saves(monkeypatch)
    path = tmp_path / "ck.npz"
    kw = dict(KW, steps=5_000, record_steps=None, n_records=10)
    final = ft.sgd(minimal_half, PUBLISHED_THETA0, **kw, checkpoint=path, checkpoint_every=1e-9,
                   chunk_size=1000)
    running = [t for t in written if t.status == ft.Status.RUNNING]
    assert len(running) >= 2 and written[-1].status == final.status == ft.Status.T1_REACHED
    assert_identical(ft.Trajectory.load(path), final)
    for ck in (running[0], running[-1]):
        resumed = ft.sgd(minimal_half, None, **kw, resume=ck)
        rows = np.isin(resumed.step, final.step)
        assert np.array_equal(resumed.theta[rows], final.theta)
        assert np.array_equal(resumed.loss[rows], final.loss)


@pytest.mark.parametrize("batched", [False, True], ids=["one_by_one", "batched"])
def test_sgd_ensemble_members_are_single_runs(minimal_half, batched):
    """Member i is sgd(θ0_i, seed=s + i), bit for bit on this 4-parameter problem, batched too: with one
    hidden layer of width 2 the vmapped products sum in the same order as single ones."""
    thetas = np.vstack([PUBLISHED_THETA0, PUBLISHED_THETA0, [0.4, -0.9, 1.1, 0.3]])
    kw = dict(lr=0.05, steps=3000, batch_size=10, n_records=30)
    members = ft.run_ensemble("sgd", minimal_half, thetas, batched=batched, seed=7, **kw)
    singles = [ft.sgd(minimal_half, th, seed=7 + i, **kw) for i, th in enumerate(thetas)]
    for member, single in zip(members, singles):
        assert_identical(member, single)
        assert member.meta["seed"] == single.meta["seed"]
    # The first two share θ0 but not their seed, so not their batches.
    assert np.max(np.abs(members[0].final_theta - members[1].final_theta)) > 1e-4
    # A sequence gives each member its seed.
    again = ft.run_ensemble("sgd", minimal_half, thetas[:2], batched=batched, seed=[8, 7], **kw)
    assert_identical(again[0], singles[1])


def test_sgd_ensemble_on_a_wider_net_agrees_to_round_off():
    """On a 141-parameter net vmapped matrix products may sum in another order than single ones:
    batched members agree with single runs to round-off; one by one they are the single runs exactly."""
    teacher = ft.MLP((5, 4, 1), "erf", bias=True)
    data = ft.teacher_dataset((teacher, teacher.init(0)), n=200, noise=0.1, seed=1)
    student = ft.MLP((5, 20, 1), "erf")
    problem = ft.Problem(student, data)
    thetas = np.stack([student.init(s) for s in range(2)])
    kw = dict(lr=0.05, steps=1000, batch_size=16, n_records=10)
    singles = [ft.sgd(problem, th, seed=i, **kw) for i, th in enumerate(thetas)]
    for member, single in zip(ft.run_ensemble("sgd", problem, thetas, seed=0, **kw), singles):
        assert_identical(member, single)
    for member, single in zip(ft.run_ensemble("sgd", problem, thetas, batched=True, seed=0, **kw), singles):
        np.testing.assert_array_equal(member.step, single.step)
        np.testing.assert_allclose(member.theta, single.theta, rtol=0, atol=1e-12)
        np.testing.assert_allclose(member.loss, single.loss, rtol=1e-12)
        assert single.final_loss < 0.5 * single.loss[0]


def test_batched_sgd_ensemble_freezes_a_diverging_member(minimal_half):
    thetas = np.vstack([PUBLISHED_THETA0, [0.1, 0.1, 300.0, 300.0]])
    kw = dict(lr=1.0, steps=500, batch_size=5, seed=0, max_norm=1e3)
    members = ft.run_ensemble("sgd", minimal_half, thetas, batched=True, **kw)
    singles = [ft.sgd(minimal_half, th, **dict(kw, seed=i)) for i, th in enumerate(thetas)]
    assert {m.status for m in members} - {ft.Status.T1_REACHED}, [m.status for m in members]
    for member, single in zip(members, singles):
        assert_identical(member, single)
        assert member.stats["event_step"] == single.stats["event_step"]


@pytest.fixture(scope="module")
def other_size(published_data):
    return ft.Problem(ft.MLP((1, 3, 1), "tanh", bias=False), published_data, "half_mse")


BAD = [
    ("lr zero", dict(lr=0.0), r"lr must be a positive"),
    ("lr negative", dict(lr=-0.1), r"lr must be a positive"),
    ("batch_size zero", dict(batch_size=0), r"batch_size must be an integer ≥ 1"),
    ("batch_size above n", dict(batch_size=101), r"batch_size=101 exceeds the number of samples 100"),
    ("time_limit zero", dict(time_limit=0.0), r"time_limit"),
    ("checkpoint_every zero", dict(checkpoint_every=0.0), r"checkpoint_every"),
]


@pytest.mark.parametrize("label, change, match", BAD, ids=[b[0] for b in BAD])
def test_sgd_bad_input_names_the_argument(minimal_half, label, change, match):
    with pytest.raises(ValueError, match=match):
        ft.sgd(minimal_half, PUBLISHED_THETA0, **dict(KW, steps=10, record_steps=None, **change))


def test_sgd_resume_refuses_another_run(minimal_half, other_size, part):
    gd = ft.gradient_descent(minimal_half, PUBLISHED_THETA0, 0.05, 10)
    with pytest.raises(ValueError, match=r"resume must be a sgd Trajectory, got a gradient_descent run"):
        ft.sgd(minimal_half, None, **KW, resume=gd)
    with pytest.raises(ValueError, match=r"resume must be a gradient_descent Trajectory, got a sgd run"):
        ft.gradient_descent(minimal_half, None, 0.05, 10, resume=part)
    with pytest.raises(ValueError, match=r"resume is a run with 4 parameters; this problem has 6"):
        ft.sgd(other_size, None, **KW, resume=part)
    with pytest.raises(ValueError, match=r"seed=4 differs from the resumed run's seed=3; pass seed=3"):
        ft.sgd(minimal_half, None, **dict(KW, seed=4), resume=part)
    with pytest.raises(ValueError, match=r"batch_size=5 differs .* batch_size=10"):
        ft.sgd(minimal_half, None, **dict(KW, batch_size=5), resume=part)


def test_sgd_ensemble_bad_input(minimal_half):
    thetas = np.vstack([PUBLISHED_THETA0, PUBLISHED_THETA0])
    kw = dict(lr=0.05, steps=10)
    for batched in (False, True):
        with pytest.raises(ValueError, match=r"seed must be one integer or a sequence of one seed per member \(2\)"):
            ft.run_ensemble("sgd", minimal_half, thetas, batched=batched, seed=[1, 2, 3], **kw)
        with pytest.raises(ValueError, match=r"seed\[1\] must be an integer ≥ 0"):
            ft.run_ensemble("sgd", minimal_half, thetas, batched=batched, seed=[1, -2], **kw)
        with pytest.raises(ValueError, match=r"batch_size=101 exceeds"):
            ft.run_ensemble("sgd", minimal_half, thetas, batched=batched, batch_size=101, **kw)
    with pytest.raises(TypeError, match=r"run_ensemble\('sgd', …\) needs steps=…"):
        ft.run_ensemble("sgd", minimal_half, thetas, batched=True, lr=0.05)
