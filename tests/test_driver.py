"""The chunked driver: wall-time budget, checkpoints and chunk sizes shared by flows and GD/SGD."""

import time

from flowtools.dynamics import descent, flow
from flowtools.dynamics.driver import ChunkedDriver
from flowtools.dynamics.results import Status


class _Saved:
    def __init__(self):
        self.paths, self.walls = [], []

    def running(self, wall):
        self.walls.append(wall)
        return self

    def save(self, path):
        self.paths.append(path)


def test_time_limit_checkpoints_and_chunk_sizes():
    start = time.perf_counter()
    d = ChunkedDriver(time_limit=None, checkpoint="cp", checkpoint_every=0.0, chunked=True, first=100,
                      smallest=16, largest=10_000, seconds=1.0, started=start)
    assert d.size == 100
    saved = _Saved()
    # 50 steps in 0.1 s: 500 steps/s, aiming at 1 s → 500 steps; a checkpoint is due every time.
    assert d.between(50, time.perf_counter() - 0.1, saved.running) is None
    assert saved.paths == ["cp"] and saved.walls[0] >= 0
    assert 400 <= d.size <= 500
    d.between(10**9, time.perf_counter() - 0.1, saved.running)
    assert d.size == 10_000  # bounded above
    d.between(0, time.perf_counter() - 0.1, saved.running)
    assert d.size == 16  # and below
    assert len(saved.paths) == 3

    # With a budget, a chunk aims at no more than half of what is left, and the budget ends the run.
    d = ChunkedDriver(time_limit=0.4, checkpoint=None, checkpoint_every=60.0, chunked=True, first=8,
                      smallest=1, largest=10**9, seconds=1.0, started=time.perf_counter())
    assert d.between(1000, time.perf_counter() - 1.0, saved.running) is None
    assert d.size <= 1000 * 0.2 + 1 and len(saved.paths) == 3
    d.started -= 1.0
    assert d.between(1000, time.perf_counter() - 1.0, saved.running) == Status.TIME_LIMIT

    uncapped = ChunkedDriver(time_limit=0.4, checkpoint=None, checkpoint_every=60.0, chunked=True, first=8,
                             smallest=1, largest=10**9, seconds=1.0, share=None, started=time.perf_counter())
    assert uncapped.between(1000, time.perf_counter() - 1.0, saved.running) is None
    assert 900 <= uncapped.size <= 1000

    unchunked = ChunkedDriver(time_limit=None, checkpoint=None, checkpoint_every=60.0, chunked=False,
                              first=64, smallest=16, largest=123, seconds=1.0)
    assert unchunked.size == 123


def test_flow_and_descent_drive_their_chunks_through_it():
    import inspect

    for source in (inspect.getsource(flow._segmented_flow), inspect.getsource(descent._run)):
        assert "ChunkedDriver(" in source and "checkpoint_every" in source
        assert "last_checkpoint" not in source and "rate" not in source
