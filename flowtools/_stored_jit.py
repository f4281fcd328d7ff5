"""`stored_jit`: `eqx.filter_jit` for the package's small kernels, compiled through the executable store.

A process that meets a new argument shape traces, lowers and looks up every kernel it calls; JAX's
persistent cache (`_cache.py`) skips only XLA's part. An itinerary calls a few dozen such kernels (L, ∇L,
Hv, the dense Hessian, the refinement solvers, the batched evaluations), so a worker that moves to a
shape compiled by another process spent about 1.4 s tracing them. A kernel decorated here is looked up
in `_aot`'s store under a key computed without tracing (the function's name and source digest, the
argument shapes and static values), loaded when present, and otherwise compiled and stored: the second
process that meets a shape only deserializes.

What stays on `eqx.filter_jit`'s path, unchanged: calls with traced arguments (inside another jitted
function, `vmap`, `grad`), calls under `jax.disable_jit` or JAX's NaN/Inf debugging, and static
arguments that cannot be hashed.
Calls whose static arguments cannot be keyed across processes (a user's own activation or model
function) are compiled once per process as before, without the store (`_aot.compiled` says why).

The kernel is compiled with XLA's default options, as `eqx.filter_jit` compiles it, so its results
are the same bits. (The older CPU emitters that the flow's solve uses, `_cache.compiler_options()`,
would halve the compile time, but they round differently in the last bits, and an itinerary near a
degenerate point classified a visit differently with them: a ReLU population problem's first visit
came out a "saddle" instead of a "degenerate_saddle".)
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax

from . import _aot

#: every stored_jit kernel, so tests and benchmarks can read where each compile came from
KERNELS: list["StoredJit"] = []


def _aval(x) -> tuple:
    return (x.shape, x.dtype, bool(getattr(x, "weak_type", False)))


class StoredJit:
    """A jitted `fn` whose executables go through the store, one per call signature and process.

    `origins` maps each signature met in this process to where its executable came from ("loaded",
    "compiled", "compiled, not stored: …", "compiled, not cached: …"); `compile_seconds` sums the time
    spent getting them."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.jitted = eqx.filter_jit(fn)  # the path for traced arguments and disable_jit
        self.memo: dict = {}
        self.origins: dict = {}
        self.compile_seconds = 0.0
        KERNELS.append(self)

    def _lookup(self, args, kw):
        """(executable, array leaves) of this call, compiled or loaded now if needed; (None, None) where
        the call takes `eqx.filter_jit`'s path."""
        dynamic, static = eqx.partition((args, kw), eqx.is_array)
        leaves, in_def = jax.tree_util.tree_flatten(dynamic)
        if (jax.config.jax_disable_jit or jax.config.jax_debug_nans or jax.config.jax_debug_infs
                or any(isinstance(x, jax.core.Tracer) for x in leaves)):
            return None, None
        static_leaves, static_def = jax.tree_util.tree_flatten(static)
        signature = (in_def, static_def, tuple(static_leaves), tuple(_aval(x) for x in leaves))
        try:
            exe = self.memo.get(signature)
        except TypeError:  # an unhashable static argument: eqx.filter_jit says what it needs
            return None, None
        if exe is None:
            exe, seconds = _aot.compiled_once(self.fn, args, kw, self.memo, self.origins,
                                              signature=signature, fast_compile=False)
            self.compile_seconds += seconds
        return exe, leaves

    def __call__(self, *args, **kw):
        exe, leaves = self._lookup(args, kw)
        if exe is None:
            return self.jitted(*args, **kw)
        return exe.call_leaves(leaves)

    def executable(self, *args, **kw):
        """`leaves ↦ output`: the executable of this call signature, to be called on the array leaves of
        arguments of the same signature (in `eqx.partition` order). For host loops that call one kernel
        many times: they skip the partition and lookup (≈ 0.1 ms) of each call. None where the call takes
        `eqx.filter_jit`'s path."""
        exe, _ = self._lookup(args, kw)
        return None if exe is None else exe.call_leaves

    def __get__(self, instance, owner):  # usable as a method, like eqx.filter_jit
        return self if instance is None else functools.partial(self, instance)


def stored_jit(fn):
    """Decorate a module-level function of flowtools, as `eqx.filter_jit` would: arrays are traced,
    everything else is static. Its name (module and qualified name) must determine it, since the
    store's key holds the name and not the code of closures."""
    return StoredJit(fn)


def origins() -> dict[str, list[str]]:
    """Where the executables of each stored_jit kernel came from in this process, by kernel name."""
    return {f"{k.fn.__module__}.{k.fn.__qualname__}": list(k.origins.values()) for k in KERNELS
            if k.origins}


def compile_seconds() -> float:
    """Seconds this process spent getting stored_jit executables (loading, or tracing and compiling)."""
    return sum(k.compile_seconds for k in KERNELS)
