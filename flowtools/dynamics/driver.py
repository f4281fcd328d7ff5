"""The chunked driver: runs that go in jitted chunks of steps, with Python between them.

Between chunks Python checks the wall-time budget (`time_limit`), writes checkpoints every
`checkpoint_every` seconds and sizes the next chunk from the rate of the last one, so that a budget is
honoured soon after it runs out. `gradient_flow` (segment-capable solvers) and `gradient_descent` /
`sgd` drive their chunks through one `ChunkedDriver`.
"""

from __future__ import annotations

import time
from typing import Callable

from .results import Status

__all__ = ["ChunkedDriver"]


class ChunkedDriver:
    """Wall-time budget, periodic checkpoints and adaptive chunk sizes of one chunked run.

    **Arguments:**

    - `time_limit`: the wall-time budget in seconds (None: none), counted from `started`.
    - `checkpoint`, `checkpoint_every`: where and how often (seconds) to write the run so far.
    - `chunked`: whether the run goes in short chunks at all (else one chunk of `largest` steps).
    - `first`, `smallest`, `largest`: the first chunk's size and the bounds of later ones.
    - `seconds`: what later chunks aim at; with a budget and `share`, at most that share of what is
      left of it (None: no cap; GD keeps its chunks long, as each chunk costs a Python round trip).
    - `started`: the `time.perf_counter()` the budget counts from (default: now).
    """

    def __init__(self, *, time_limit: float | None, checkpoint, checkpoint_every: float, chunked: bool,
                 first: int, smallest: int, largest: int, seconds: float = 1.0, share: float | None = 0.5,
                 started: float | None = None):
        self.time_limit, self.checkpoint, self.checkpoint_every = time_limit, checkpoint, checkpoint_every
        self.smallest, self.largest, self.seconds, self.share = smallest, largest, seconds, share
        self.started = time.perf_counter() if started is None else started
        self.last_checkpoint = time.perf_counter()
        self.size = min(first, largest) if chunked else largest

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def between(self, steps: int, chunk_started: float, running: Callable[[float], object]) -> Status | None:
        """After a chunk of `steps` steps that began at `chunk_started` (perf_counter), when the run is
        not finished: `Status.TIME_LIMIT` when the budget is used up; else None, after writing a
        checkpoint when one is due (`running(elapsed)` returns the `Trajectory` so far, which is saved
        atomically) and sizing the next chunk (`size`)."""
        now = time.perf_counter()
        elapsed = now - self.started
        if self.time_limit is not None and elapsed >= self.time_limit:
            return Status.TIME_LIMIT
        rate = steps / max(now - chunk_started, 1e-6)
        if self.checkpoint is not None and now - self.last_checkpoint >= self.checkpoint_every:
            running(elapsed).save(self.checkpoint)
            self.last_checkpoint = time.perf_counter()
        aim = self.seconds
        if self.time_limit is not None and self.share is not None:
            aim = min(aim, self.share * (self.time_limit - elapsed))
        self.size = int(min(max(rate * aim, self.smallest), self.largest))
        return None
