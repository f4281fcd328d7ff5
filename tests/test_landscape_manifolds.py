"""The unstable manifold of the origin of the minimal model, checked against random-start ensembles."""

import json

import numpy as np
import pytest

import flowtools as ft
from flowtools.landscape import find_critical_point, match_target, unstable_manifold


@pytest.fixture(scope="module")
def origin_manifold(minimal_half):
    cp = find_critical_point(minimal_half, np.array([0.02, -0.01, 0.015, 0.03]), radius=0.5)
    return unstable_manifold(minimal_half, cp, n_samples=8, seed=0)


def test_origin_unstable_manifold(minimal_half, origin_manifold):
    um = origin_manifold
    print(um.summary())
    assert len(um.branches) == 4 and len(um.samples) == 8
    assert abs(sum(um.fractions) - 1) < 1e-12
    for b in um.branches + um.samples:
        assert b.status == "converged" and um.targets[b.target].success
    for t in um.targets:
        assert np.linalg.norm(minimal_half.grad(t.theta)) <= 1e-12
    # Every sampled direction ends at an attractor (a minimum), never at a saddle.
    reached = {b.target for b in um.samples}
    assert all(um.targets[i].kind in ("minimum", "degenerate_minimum") for i in reached)
    json.dumps(um.to_dict())


def test_attractors_are_also_reached_from_random_starts(minimal_half, origin_manifold):
    um = origin_manifold
    rng = np.random.default_rng(1)
    starts = rng.normal(scale=0.5, size=(6, 4))
    runs = ft.run_ensemble("gradient_flow", minimal_half, starts, gtol=1e-8)
    ends = [find_critical_point(minimal_half, r.final_theta, radius=0.5) for r in runs]
    attractors = {i for i, t in enumerate(um.targets) if t.kind in ("minimum", "degenerate_minimum")}
    assert attractors
    for i in attractors:
        assert any(match_target(minimal_half, e, [um.targets[i]]) == 0 for e in ends), um.summary()


def test_minimum_has_no_unstable_manifold(minimal_half, origin_manifold):
    minimum = next(t for t in origin_manifold.targets if t.kind == "minimum")
    with pytest.raises(ValueError):
        unstable_manifold(minimal_half, minimum)
