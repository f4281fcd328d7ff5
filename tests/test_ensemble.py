"""Ensembles: every member of run_ensemble, batched or not, is the run a single call returns."""

import numpy as np
import pytest

import flowtools as ft
from conftest import PUBLISHED_THETA0

RNG_THETAS = np.random.default_rng(0).standard_normal((2, 4))

# Two settings of GD on the minimal model (mean-squared error). At η = 1 the members started with
# large output weights blow up within a few steps (diverged); at η = 0.5 with gtol some converge.
GD_CASES = {
    "diverging members": (
        dict(lr=1.0, steps=3000),
        np.vstack([PUBLISHED_THETA0, [3.0, -3.0, 20.0, 20.0], RNG_THETAS, [0.1, 0.1, 300.0, 300.0]]),
        {ft.Status.T1_REACHED, ft.Status.DIVERGED},
    ),
    "converging members": (
        dict(lr=0.5, steps=3000, gtol=1e-6),
        np.vstack([PUBLISHED_THETA0, [1.0, -1.0, 30.0, 30.0], RNG_THETAS, [0.3, -0.3, 60.0, 60.0]]),
        {ft.Status.T1_REACHED, ft.Status.CONVERGED},
    ),
}


def assert_same_run(a, b, *, atol):
    assert a.status == b.status
    assert a.method == b.method
    assert a.stats.get("event_step") == b.stats.get("event_step")
    if a.step is not None:
        np.testing.assert_array_equal(a.step, b.step)
    np.testing.assert_allclose(a.t, b.t, rtol=1e-14)
    assert a.theta.shape == b.theta.shape
    np.testing.assert_allclose(a.theta, b.theta, rtol=0, atol=atol)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-9)
    for traj in (a, b):
        assert np.all(np.isfinite(traj.theta)) and np.all(np.isfinite(traj.loss))
        assert np.all(np.isfinite(traj.grad_norm))


# (run_ensemble keywords, the path it must report, block size): blocks of 2 make the members that stop
# early leave their block, so the later chunks run on re-packed (and padded) blocks.
GD_PATHS = {
    "one_by_one": (dict(batched=False), "one_by_one", None),
    "batched": (dict(batched=True), "batched", 5),
    "auto": (dict(), "batched", 5),
    "blocks of 2": (dict(batched=True, block_size=2), "batched", 2),
}


@pytest.fixture(scope="module")
def gd_singles(minimal_mse):
    return {case: [ft.gradient_descent(minimal_mse, th, **options) for th in thetas]
            for case, (options, thetas, _) in GD_CASES.items()}


@pytest.mark.parametrize("path", sorted(GD_PATHS))
@pytest.mark.parametrize("case", sorted(GD_CASES))
def test_gd_ensemble_equals_single_runs(minimal_mse, gd_singles, case, path):
    options, thetas, statuses = GD_CASES[case]
    singles = gd_singles[case]
    assert {s.status for s in singles} == statuses  # the batch really mixes outcomes
    how, expected_path, block = GD_PATHS[path]
    members = ft.run_ensemble("gradient_descent", minimal_mse, thetas, **how, **options)
    assert len(members) == len(thetas)
    for single, member in zip(singles, members):
        # The GD map is the same arithmetic in both paths.
        assert_same_run(single, member, atol=1e-12 * max(1.0, np.abs(single.theta).max()))
        assert member.stats["ensemble"]["path"] == expected_path
        assert member.stats["ensemble"].get("block_size") == block


def test_sgd_ensemble_in_blocks_equals_single_runs(minimal_mse):
    """Seeded SGD in blocks of 2 (3 members: the second block is padded): member i is sgd(seed=3 + i),
    bit for bit; a member that diverges leaves its block and keeps its own status."""
    thetas = np.vstack([PUBLISHED_THETA0, [0.1, 0.1, 300.0, 300.0], RNG_THETAS[0]])
    kw = dict(lr=0.5, steps=400, batch_size=5, n_records=20, max_norm=1e3)
    singles = [ft.sgd(minimal_mse, th, seed=3 + i, **kw) for i, th in enumerate(thetas)]
    assert {s.status for s in singles} == {ft.Status.T1_REACHED, ft.Status.DIVERGED}
    members = ft.run_ensemble("sgd", minimal_mse, thetas, seed=3, block_size=2, **kw)
    for single, member in zip(singles, members):
        assert member.status == single.status
        np.testing.assert_array_equal(member.step, single.step)
        np.testing.assert_array_equal(member.theta, single.theta)
        assert member.stats["ensemble"] == dict(path="batched", block_size=2, blocks=2)


def test_auto_policy_says_which_path_ran(minimal_mse):
    two = np.stack([PUBLISHED_THETA0] * 2)
    gd = dict(lr=0.01, steps=20)
    (one,) = ft.run_ensemble("gradient_descent", minimal_mse, PUBLISHED_THETA0, **gd)
    assert one.stats["ensemble"] == dict(path="one_by_one", reason="auto: a single member")
    tracked = ft.run_ensemble("gradient_descent", minimal_mse, two, sharpness_every=10, **gd)
    assert tracked[0].stats["ensemble"]["path"] == "one_by_one"
    assert "sharpness_every" in tracked[0].stats["ensemble"]["reason"]
    assert tracked[0].sharpness is not None
    flows = ft.run_ensemble("gradient_flow", minimal_mse, two, t1=1.0, n_save=5)
    assert flows[0].stats["ensemble"]["path"] == "one_by_one"
    with pytest.raises(ValueError, match="batched="):
        ft.run_ensemble("gradient_descent", minimal_mse, two, batched="yes", **gd)
    with pytest.raises(ValueError, match="block_size"):
        ft.run_ensemble("gradient_descent", minimal_mse, two, block_size=0, **gd)


def test_default_block_size_is_even_and_bounded(minimal_mse):
    from flowtools.dynamics.ensemble import default_block_size

    # 4 parameters × 100 samples: up to 256 members a block, evened out over the blocks.
    assert default_block_size(minimal_mse, 3) == 3
    assert default_block_size(minimal_mse, 256) == 256
    assert default_block_size(minimal_mse, 300) == 150
    assert default_block_size(minimal_mse, 1024) == 256
    # 5-20-1 (141 parameters): 8 · 500 · 141 bytes a member on 500 samples, so at most 14 in 8 MiB and
    # 64 members in 5 blocks of 13; on 8 000 samples one member exceeds the bound: blocks of 1.
    student = ft.MLP((5, 20, 1), "erf")
    for n, block in ((500, 13), (8000, 1)):
        data = ft.teacher_dataset((student, student.init(1)), n=n, noise=0.0, seed=0)
        assert default_block_size(ft.Problem(student, data), 64) == block


def test_batched_path_off_the_cpu(minimal_mse, gd_singles, monkeypatch):
    """The GPU path, tested on the CPU: the CPU-only option is asked for on the CPU only; where JAX
    reports another backend the batched kernels compile with that backend's options (none), and the
    members are still the single runs."""
    import jax

    from flowtools.dynamics import ensemble

    assert ensemble.batched_compiler_options().get("xla_cpu_experimental_ynn_fusion_type") == ""
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert ensemble.batched_compiler_options() == {}
    options, thetas, _ = GD_CASES["converging members"]
    members = ft.run_ensemble("gradient_descent", minimal_mse, thetas[:3], **options)
    for single, member in zip(gd_singles["converging members"], members):
        assert_same_run(single, member, atol=1e-12 * max(1.0, np.abs(single.theta).max()))
        assert member.stats["ensemble"]["path"] == "batched"


FLOW_OPTIONS = dict(t1=50.0, save_ts=np.geomspace(1e-2, 50.0, 200), rtol=1e-8, atol=1e-10)


@pytest.fixture(scope="module")
def flow_singles(minimal_mse):
    thetas = np.vstack([PUBLISHED_THETA0, RNG_THETAS])
    return thetas, [ft.gradient_flow(minimal_mse, th, **FLOW_OPTIONS) for th in thetas]


@pytest.mark.parametrize("batched", [False, True], ids=["one_by_one", "batched"])
def test_flow_ensemble_equals_single_runs(minimal_mse, flow_singles, batched):
    thetas, singles = flow_singles
    members = ft.run_ensemble("gradient_flow", minimal_mse, thetas, batched=batched, **FLOW_OPTIONS)
    assert members[0].stats["ensemble"]["path"] == ("batched" if batched else "one_by_one")
    assert len(members) == len(thetas)
    for single, member in zip(singles, members):
        # Batched arithmetic may reassociate sums; that can at most move an accept/reject decision of
        # the step-size controller, so members agree to well within the solver tolerance.
        assert_same_run(single, member, atol=FLOW_OPTIONS["rtol"])
        assert member.status == ft.Status.T1_REACHED


def test_ensemble_accepts_one_theta(minimal_mse):
    (member,) = ft.run_ensemble("gradient_descent", minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=10)
    single = ft.gradient_descent(minimal_mse, PUBLISHED_THETA0, lr=0.01, steps=10)
    np.testing.assert_array_equal(member.final_theta, single.final_theta)
