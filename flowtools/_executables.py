"""The executables a process holds, and the memory maps they cost.

Each compiled or loaded XLA:CPU executable keeps its kernels in memory maps of their own: the width
study's tanh and softplus groups hold about 6 000 maps each (an itinerary's few dozen kernels, the flow's
solve and the escape flows, at that group's shapes). Linux bounds the maps of a process
(`/proc/sys/vm/max_map_count`, 65 530 by default): a process that had run 14 groups held 61 600, and
the next load failed inside LLVM ("Cannot allocate memory", then "Unable to allocate section memory") and
aborted the process. The package's memos of executables (`_aot.compiled_once`'s `memo` and
`executable_memo()`) are therefore registered here, and before a new executable is compiled or loaded
(`make_room`) the map count is read now and then; above half the bound every memo is emptied and JAX's
own caches cleared, so the old executables are freed. A later call at an old shape loads its executable
again from the store (`_aot`), without compiling.
"""

from __future__ import annotations

import gc

import jax

#: Memos (dicts of executables) of this process, by id: emptied together by `release`.
_MEMOS: dict[int, dict] = {}
#: Fraction of the process's map bound above which `make_room` releases the executables.
FILL = 0.5
#: `make_room` reads the map count on every CHECK_EVERY-th call (an executable adds ≤ ~300 maps, a read
#: of 60 000 costs ~30 ms).
CHECK_EVERY = 8
_calls = 0
#: How often `release` ran in this process (tests and benchmarks read it).
releases = 0


def executable_memo() -> dict:
    """A new dict for executables of this process, registered so that `release` empties it."""
    memo: dict = {}
    register(memo)
    return memo


def register(memo: dict) -> None:
    _MEMOS.setdefault(id(memo), memo)


def map_count() -> int | None:
    """The number of memory maps of this process (None where /proc is not there)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return None


def map_limit() -> int | None:
    """The kernel's bound on the maps of a process (None where it cannot be read)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def release() -> None:
    """Drop every registered executable and JAX's caches of compiled functions."""
    global releases
    for memo in _MEMOS.values():
        memo.clear()
    jax.clear_caches()
    gc.collect()  # executables inside reference cycles unmap only when collected
    releases += 1


def make_room(force_check: bool = False) -> None:
    """Called before an executable is compiled or loaded: on every CHECK_EVERY-th call (or when
    `force_check`), `release` if the process holds more than FILL of its bound on memory maps."""
    global _calls
    _calls += 1
    if not force_check and _calls % CHECK_EVERY != 1:
        return
    limit, count = map_limit(), map_count()
    if limit is not None and count is not None and count > FILL * limit:
        release()
