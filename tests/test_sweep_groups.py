"""sweeps.point_groups: the finished points of a sweep Dataset grouped by configuration keys."""

import numpy as np
import pytest

from flowtools import sweeps
from flowtools.sweeps._results import _dataset


def _configs():
    # ragged, out of order, the second activation first seen after the first
    return [dict(activation=a, width=w, seed=s) for a, w, s in [
        ("tanh", 3, 0), ("tanh", 1, 0), ("relu", 2, 0), ("tanh", 3, 1), ("relu", 1, 0), ("tanh", 2, 0),
        ("relu", 2, 1), ("gelu", 4, 0)]]


def _ds(finished):
    records = {i: dict(outcomes=dict(final_loss=0.0), version="x") for i in finished}
    return _dataset(_configs(), records, {}, {})


def _by_hand(configs, finished, keys):
    """Independent: every combination in table order, by a plain loop over the configurations."""
    firsts = list(dict.fromkeys(c[keys[0]] for c in configs))
    combos = [(v,) for v in firsts]
    for k in keys[1:]:
        combos = [c + (v,) for c in combos
                  for v in sorted({cf[k] for cf in configs if tuple(cf[q] for q in keys[:len(c)]) == c})]
    out = []
    for combo in combos:
        pts = [i for i, c in enumerate(configs) if tuple(c[q] for q in keys) == combo and i in finished]
        if pts:
            out.append((dict(zip(keys, combo)), pts))
    return out


@pytest.mark.parametrize("keys", [("activation", "width"), ("activation",), ("width", "activation", "seed")])
def test_point_groups_matches_a_plain_loop(keys):
    finished = {0, 1, 3, 4, 5, 6}  # relu width 2 has point 6 only; gelu has none
    groups = sweeps.point_groups(_ds(finished), keys)
    expected = _by_hand(_configs(), finished, keys)
    assert [(g.where, g.points.tolist()) for g in groups] == expected
    assert all(type(v) in (str, int) for g in groups for v in g.where.values())


def test_point_groups_order_and_skipped_groups():
    groups = sweeps.point_groups(_ds({0, 1, 3, 4, 5, 6}), ("activation", "width"))
    assert [tuple(g.where.values()) for g in groups] == [
        ("tanh", 1), ("tanh", 2), ("tanh", 3), ("relu", 1), ("relu", 2)]  # gelu: no finished point
    assert groups[2].points.tolist() == [0, 3]
    assert sweeps.point_groups(_ds(set()), "activation") == []


def test_point_groups_one_key_as_a_string():
    ds = _ds(set(range(8)))
    assert [g.where for g in sweeps.point_groups(ds, "width")] == [dict(width=w) for w in (3, 1, 2, 4)]


def test_point_groups_bad_keys_are_named():
    ds = _ds({0})
    with pytest.raises(ValueError, match=r"\['depth'\].*by= takes some of"):
        sweeps.point_groups(ds, ("activation", "depth"))
    with pytest.raises(ValueError, match="names no key"):
        sweeps.point_groups(ds, ())
