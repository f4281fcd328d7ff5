"""Batch kernels: jitted evaluations of a `Problem`, and the same kernel mapped over many states.

`map_states` applies one compiled per-batch kernel to fixed-size chunks of states (`state_chunk`), so
memory is bounded by the chunk; `dense_hessian_fn` builds ∇²L(θ) from Hessian-vector products. The
`jit_*` kernels are the compiled calls behind `Problem`'s numpy-facing methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._stored_jit import stored_jit

if TYPE_CHECKING:
    from ._problem import Problem


#: Memory budget (bytes) of one call of a per-state kernel. vmapping the loss and gradient over states
#: keeps about 8·(samples)·(parameters) bytes of intermediates per state (on the 64-16-10 digits net,
#: 1 497 images: ≈ 6 MiB per state; all 256 padded states of one flow at once took 1.5 GiB).
STATE_CHUNK_BYTES = 2**27


#: Memory budget (bytes) of the states whose gradients one kernel vmaps at once (the rest of a chunk
#: goes through `lax.map`). On the digits net, a vmap over 8 states was 2× slower than a sequential
#: map, and 16 states 4× slower (the batched gradient forms per-state outer products).
STATE_VMAP_BYTES = 2**24


def _per_state_bytes(problem) -> float:
    try:
        n_samples = int(problem.x.shape[0])
    except (AttributeError, TypeError, IndexError):
        n_samples = 1024
    return 8.0 * max(n_samples, 1) * max(int(problem.n_params), 1)


def _pow2_at_most(budget, per_state) -> int:
    k = int(max(1, min(64, budget // per_state)))
    return 1 << (k.bit_length() - 1)


def state_chunk(problem: "Problem") -> int:
    """Rows per call of the per-state kernels: a power of two in [1, 64] whose intermediates fit in
    `STATE_CHUNK_BYTES`. Fixed per problem shape, so every batch of states reuses one compiled kernel
    and memory is O(chunk · samples · parameters), not O(states · samples · parameters)."""
    return _pow2_at_most(STATE_CHUNK_BYTES, _per_state_bytes(problem))


def dense_hessian_fn(problem: "Problem", theta, *, batch: int | None = None):
    """The dense, symmetrized Hessian ∇²L(θ) (traceable): the package's one Hessian builder.

    Column j is the Hessian-vector product H e_j (`Problem.hvp_fn`, forward-over-reverse), computed
    `batch` columns at a time with `lax.map` (default `state_vmap_width(problem)`: a power of two that
    bounds the memory of the vmapped intermediates; the Hessian itself is O(n²) on top). Measured on the
    loaded 2-core CPU, jitted, median of 5, one run of benchmarks/bench_problem.py (tanh nets, n
    parameters), against `jax.jacfwd(grad)`: n = 13: 0.36 against 0.22 ms; n = 25: 1.2 against 2.7 ms;
    n = 202: 32 against 50 ms; n = 241 (2 000 samples): 0.27 against 0.77 s; n = 1 210: 0.34 against
    1.99 s. One vmap over all n unit vectors took 0.25 ms, 0.91 ms, 44 ms, 0.52 s and 2.45 s, and its
    memory grows as n copies of the network's intermediates (`jax.hessian` took 5.3 GiB on the
    1 210-parameter digits net with 1 497 images, where the width is small: one product at a time built
    the Hessian in 11 s, batches of 16 in 32 s and of 64 in 29 s, at load ≈ 14).
    """
    n = theta.shape[0]
    width = state_vmap_width(problem) if batch is None else batch
    H = jax.lax.map(lambda v: problem.hvp_fn(theta, v), jnp.eye(n, dtype=theta.dtype),
                    batch_size=max(1, min(int(width), n)))
    return 0.5 * (H + H.T)


def state_vmap_width(problem: "Problem") -> int:
    """How many states a gradient kernel vmaps at once (`lax.map(..., batch_size=…)`), a power of two
    in [1, 64] within `STATE_VMAP_BYTES`."""
    return _pow2_at_most(STATE_VMAP_BYTES, _per_state_bytes(problem))


def map_states(kernel, problem: "Problem", thetas, chunk: int | None = None):
    """Apply a jitted per-batch `kernel(problem, thetas)` to the rows of `thetas` in chunks of `chunk`
    rows (default `state_chunk`; the last chunk is padded with its last row) and concatenate the
    pytree of outputs along the first axis, trimmed to the number of rows."""
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    m = thetas.shape[0]
    k = state_chunk(problem) if chunk is None else _checks.positive_int("chunk", chunk)
    parts = []
    for lo in range(0, m, k):
        block = thetas[lo: lo + k]
        if block.shape[0] < k:
            block = np.concatenate([block, np.repeat(block[-1:], k - block.shape[0], axis=0)])
        parts.append(jax.tree_util.tree_map(np.asarray, kernel(problem, jax.device_put(block))))
    if not parts:
        raise ValueError("map_states needs at least one state (thetas has no rows).")
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[:m], *parts)


def training_outputs(problem: "Problem", thetas) -> np.ndarray:
    """The network function on the problem's inputs `x` for each row (state) of `thetas`, shape
    (m, n, d_out): f(x_k; θ), as class probabilities for cross-entropy (`Problem.function_space`).

    Evaluated in fixed-size chunks of states (`map_states`): one compiled kernel, bounded memory.
    """
    return map_states(jit_batch_outputs, problem, thetas)


def held_out_metrics(problem: "Problem", thetas) -> dict:
    """{"test_loss": (m,), "test_accuracy": (m,) or None} on the held-out set for each row of `thetas`
    (in fixed-size chunks, `map_states`); both None when the problem has no `test_data`. Accuracy is
    recorded for classification problems (`is_classification`)."""
    if problem.test is None:
        return dict(test_loss=None, test_accuracy=None)
    loss, acc = map_states(jit_held_out, problem, thetas)
    return dict(test_loss=loss, test_accuracy=acc if problem.is_classification else None)


@stored_jit
def jit_batch_outputs(problem, thetas):
    return jax.vmap(lambda th: problem.function_space(problem.apply_fn(th, problem.x)))(thetas)


@stored_jit
def jit_held_out(problem, thetas):
    return jax.vmap(lambda th: (problem.test_loss_fn(th), problem.test_accuracy_fn(th)))(thetas)


@stored_jit
def jit_value_and_grad(problem, theta):
    return jax.value_and_grad(problem.loss_fn)(theta)


def _jit_method(method: str):
    """`jit_<name>(problem, *args)`: `problem.<name>_fn(*args)` compiled, with its own cache."""
    name = "jit_" + method.removesuffix("_fn")

    def call(problem, *args):
        return getattr(problem, method)(*args)

    call.__name__ = call.__qualname__ = name
    return stored_jit(call)


jit_loss = _jit_method("loss_fn")
jit_grad = _jit_method("grad_fn")
jit_hvp = _jit_method("hvp_fn")
jit_hessian = _jit_method("hessian_fn")
jit_gen_error = _jit_method("gen_error_fn")
jit_test_loss = _jit_method("test_loss_fn")
jit_test_accuracy = _jit_method("test_accuracy_fn")
jit_apply = _jit_method("apply_fn")
