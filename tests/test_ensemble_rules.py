"""The vmap rules batched flows are traced with (`ensemble.batched_flow_rules`): each member computes what
its own unbatched call computes, bit for bit, and the batched program branches instead of selecting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.interpreters import batching

import flowtools as ft
from conftest import PUBLISHED_THETA0
from flowtools.dynamics import ensemble


def _primitives(jaxpr, out=None):
    """Every equation of `jaxpr` and of the jaxprs nested in it, as (primitive name, equation)."""
    out = [] if out is None else out
    for eqn in jaxpr.eqns:
        out.append((eqn.primitive.name, eqn))
        for value in eqn.params.values():
            for v in value if isinstance(value, (tuple, list)) else [value]:
                inner = getattr(v, "jaxpr", v)
                if hasattr(inner, "eqns"):
                    _primitives(inner, out)
    return out


def _branchy(x, k):
    """An expensive branch (a Hessian-like matrix power) for k > 0, a cheap one otherwise."""
    def costly(x):
        return jnp.linalg.matrix_power(jnp.outer(x, x) + jnp.eye(x.shape[0]), 3) @ x

    return lax.cond(k > 0, costly, lambda x: 2.0 * x, x)


def test_cond_rule_branches_on_any_member_and_keeps_each_members_value():
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((5, 3)))
    with ensemble.batched_flow_rules():
        jaxpr = jax.make_jaxpr(jax.vmap(_branchy))(xs, jnp.zeros(5, jnp.int32))
    conds = [e for name, e in _primitives(jaxpr.jaxpr) if name == "cond"]
    # One unbatched cond per branch (run it when some member takes it); JAX's rule leaves no cond.
    assert len(conds) == 2 and all(e.invars[0].aval.shape == () for e in conds)
    assert not [n for n, _ in _primitives(jax.make_jaxpr(jax.vmap(_branchy))(xs, jnp.zeros(5, jnp.int32))
                                          .jaxpr) if n == "cond"]
    batched = jax.jit(lambda x, k: jax.vmap(_branchy)(x, k))
    for ks in ([0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [0, 1, 0, 1, 1]):
        ks = jnp.asarray(ks, jnp.int32)
        with ensemble.batched_flow_rules():
            ours = batched.lower(xs, ks).compile()(xs, ks)
        jax.clear_caches()
        single = np.stack([np.asarray(jax.jit(_branchy)(x, k)) for x, k in zip(xs, ks)])
        np.testing.assert_array_equal(np.asarray(ours), single)


@pytest.mark.parametrize("mode", [None, "clip"])
def test_point_scatter_rule_is_a_masked_select_equal_to_each_members_scatter(mode):
    rng = np.random.default_rng(1)
    rows = jnp.asarray(rng.standard_normal((6, 7, 3)))
    cols = jnp.asarray(rng.standard_normal((6, 4, 5)))
    i = jnp.asarray([0, 3, 6, -1, 9, 2], jnp.int32)  # 9: out of bounds (dropped, or clipped to 6)
    j = jnp.asarray([1, 4, 0, 2, 3, -7], jnp.int32)  # −7: out of bounds

    def set_row(x, i):
        return x.at[i].set(jnp.arange(3.0) + 10.0, mode=mode)

    def set_col(x, j):
        return x.at[:, j].set(jnp.arange(4.0) - 5.0, mode=mode)

    for fn, x, idx in ((set_row, rows, i), (set_col, cols, j)):
        with ensemble.batched_flow_rules():
            jaxpr = jax.make_jaxpr(jax.vmap(fn))(x, idx)
            ours = jax.jit(jax.vmap(fn)).lower(x, idx).compile()(x, idx)
        assert "scatter" not in [n for n, _ in _primitives(jaxpr.jaxpr)]
        jax.clear_caches()
        single = np.stack([np.asarray(jax.jit(fn)(a, k)) for a, k in zip(x, idx)])
        np.testing.assert_array_equal(np.asarray(ours), single)


def test_rules_are_restored_after_the_context():
    before = {p: batching.fancy_primitive_batchers[p] for p in (lax.cond_p, lax.scatter_p)}
    with ensemble.batched_flow_rules():
        with ensemble.batched_flow_rules():  # nested: a no-op
            pass
        assert batching.fancy_primitive_batchers[lax.cond_p] is not before[lax.cond_p]
    assert {p: batching.fancy_primitive_batchers[p] for p in before} == before
    with pytest.raises(RuntimeError):
        with ensemble.batched_flow_rules():
            raise RuntimeError
    assert {p: batching.fancy_primitive_batchers[p] for p in before} == before


def test_batched_flow_members_are_their_single_runs_bit_for_bit(minimal_mse):
    """Members that end differently (converged early, diverged at once, reached t1) in one batch: each
    is its single run exactly, counts of steps, gradients, Hessians and factorisations included."""
    thetas = np.vstack([PUBLISHED_THETA0, [0.3, -0.2, 0.5, 0.1], [0.1, 0.1, 300.0, 300.0],
                        np.random.default_rng(0).standard_normal(4)])
    kw = dict(t1=400.0, n_save=40, gtol=1e-7, max_norm=100.0)
    singles = [ft.gradient_flow(minimal_mse, th, **kw) for th in thetas]
    assert len({s.status for s in singles}) >= 2  # the batch really mixes outcomes
    members = ft.run_ensemble("gradient_flow", minimal_mse, thetas, batched=True, **kw)
    counts = ("steps", "accepted_steps", "gradient_evaluations", "hvp_evaluations", "jacobian_evaluations",
              "factorizations", "newton_failures", "error_test_failures")
    for single, member in zip(singles, members):
        assert member.stats["ensemble"] == dict(path="batched", block_size=len(thetas), blocks=1)
        assert member.status == single.status
        np.testing.assert_array_equal(member.t, single.t)
        np.testing.assert_array_equal(member.theta, single.theta)
        assert {k: member.stats[k] for k in counts} == {k: single.stats[k] for k in counts}
