"""Read-ahead of stored executables (flowtools._read_ahead): a loaded solve's entry starts loading the
kernels that followed it last time, and each kernel's first call takes the executable read ahead only
when its key is the call's."""

import concurrent.futures
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from flowtools import _aot, _read_ahead
from flowtools.dynamics import flow
from flowtools.problem._batch import jit_grad, jit_hessian

THETA = np.array([-0.13, 0.13, 0.16, -0.15])


def _solve_call(problem):  # stands for the flow's solve: compiled with the fast options, it leads
    return flow._vector_field, (0.0, jnp.asarray(THETA), problem), {}


def _kernels(problem):
    return np.asarray(jit_grad(problem, THETA)), np.asarray(jit_hessian(problem, THETA))


def _wait_for_the_thread():
    concurrent.futures.wait(list(_read_ahead._PENDING.values()))


@pytest.fixture
def fresh_kernels():
    """jit_grad and jit_hessian as in a process that has not met them (their memos emptied)."""
    for k in (jit_grad, jit_hessian):
        k.memo.clear()
    yield
    _read_ahead._drop_pending()
    _read_ahead._GROUP.clear()


def test_a_loaded_solve_reads_ahead_what_followed_it(cache_dir, minimal_mse, fresh_kernels):
    fn, args, kw = _solve_call(minimal_mse)
    assert _aot.compiled(fn, args, kw)[1] == "compiled"
    g, H = _kernels(minimal_mse)
    (leader,) = (cache_dir / "aot").glob("_vector_field-*.exe")
    listed = (cache_dir / "aot" / (leader.name + ".next")).read_text().split()
    assert [n.split("-")[0] for n in listed] == ["jit_grad", "jit_hessian"]  # in the order asked for

    for k in (jit_grad, jit_hessian):  # a later process
        k.memo.clear()
        k.origins.clear()
    hits = _read_ahead.hits
    assert _aot.compiled(fn, args, kw)[1] == "loaded"
    assert sorted(os.path.basename(p) for p in _read_ahead._PENDING) == sorted(listed)
    _wait_for_the_thread()
    g2, H2 = _kernels(minimal_mse)
    assert _read_ahead.hits == hits + 2 and not _read_ahead._PENDING
    assert list(jit_grad.origins.values()) == ["loaded"] == list(jit_hessian.origins.values())
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(H2, H)
    assert (cache_dir / "aot" / (leader.name + ".next")).read_text().split() == listed  # not rewritten


def test_a_damaged_entry_read_ahead_is_reported_by_the_call_and_compiled(cache_dir, minimal_mse,
                                                                         fresh_kernels):
    fn, args, kw = _solve_call(minimal_mse)
    _aot.compiled(fn, args, kw)
    g, _ = _kernels(minimal_mse)
    (entry,) = (cache_dir / "aot").glob("jit_grad-*.exe")
    entry.write_bytes(b"damaged")
    jit_grad.memo.clear()
    jit_hessian.memo.clear()
    hits = _read_ahead.hits
    assert _aot.compiled(fn, args, kw)[1] == "loaded"
    _wait_for_the_thread()  # the thread found the damage without a word
    for name in os.listdir(cache_dir):  # JAX's own entries: XLA compiles again, so it is stored
        if name.endswith("-cache"):
            os.unlink(cache_dir / name)
    with pytest.warns(RuntimeWarning, match="ignoring the compiled-executable cache entry"):
        g2 = np.asarray(jit_grad(minimal_mse, THETA))
    np.testing.assert_array_equal(g2, g)
    assert _read_ahead.hits == hits
    assert entry.read_bytes() != b"damaged"  # compiled and stored again


def test_claim_takes_only_a_finished_executable_under_the_calls_key():
    class Exe:
        key = "the key"

    done, waiting = concurrent.futures.Future(), concurrent.futures.Future()
    done.set_result(Exe())
    try:
        _read_ahead._PENDING.update({"/a.exe": done, "/b.exe": waiting})
        assert _read_ahead.claim("/a.exe", "another key") is None  # and it is dropped
        assert "/a.exe" not in _read_ahead._PENDING
        assert _read_ahead.claim("/b.exe", "the key") is None and waiting.cancelled()  # the caller loads it
        _read_ahead._PENDING["/a.exe"] = done
        assert isinstance(_read_ahead.claim("/a.exe", "the key"), Exe)
        assert _read_ahead.claim("/c.exe", "the key") is None
        stuck = concurrent.futures.Future()
        stuck.set_running_or_notify_cancel()  # a load in progress that never ends
        _read_ahead._PENDING["/d.exe"] = stuck
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_read_ahead, "CLAIM_TIMEOUT_S", 0.05)
            assert _read_ahead.claim("/d.exe", "the key") is None  # the caller loads it itself
    finally:
        _read_ahead._PENDING.clear()


def test_a_list_names_only_private_entries_of_its_own_folder(tmp_path):
    leader = str(tmp_path / "_solve-1.exe")
    with open(leader + ".next", "w") as fh:
        fh.write("jit_grad-2.exe\n../elsewhere.exe\n/abs/x.exe\nnotes.txt\n.hidden.exe\njit_loss-3.exe\n")
    os.chmod(leader + ".next", 0o600)
    assert _read_ahead._read_list(leader) == ["jit_grad-2.exe", "jit_loss-3.exe"]
    os.chmod(leader + ".next", 0o666)  # another user could write it: not read
    assert _read_ahead._read_list(leader) == []
    assert _read_ahead._read_list(str(tmp_path / "none.exe")) == []


def test_read_ahead_can_be_turned_off(cache_dir, minimal_mse, fresh_kernels, monkeypatch):
    fn, args, kw = _solve_call(minimal_mse)
    _aot.compiled(fn, args, kw)
    _kernels(minimal_mse)
    monkeypatch.setattr(_read_ahead, "READ_AHEAD", False)
    assert _aot.compiled(fn, args, kw)[1] == "loaded" and not _read_ahead._PENDING
    monkeypatch.setattr(_read_ahead, "READ_AHEAD", True)
    monkeypatch.setenv("FLOWTOOLS_READ_AHEAD", "0")  # the switch that sweep workers inherit
    assert _aot.compiled(fn, args, kw)[1] == "loaded" and not _read_ahead._PENDING
    monkeypatch.delenv("FLOWTOOLS_READ_AHEAD")
    assert _aot.compiled(fn, args, kw)[1] == "loaded" and _read_ahead._PENDING


def test_pruning_an_entry_removes_its_list(tmp_path):
    for i, name in enumerate(["old.exe", "new.exe"]):
        (tmp_path / name).write_bytes(b"x" * 100)
        (tmp_path / (name + ".next")).write_text("new.exe\n")
        os.utime(tmp_path / name, (1_000_000 + i, 1_000_000 + i))
    _aot._prune(str(tmp_path), keep=str(tmp_path / "new.exe"), limit=150)
    assert sorted(os.listdir(tmp_path)) == ["new.exe", "new.exe.next"]


_EXIT_SCRIPT = """
import os, sys, threading, time
from flowtools import _read_ahead
folder = sys.argv[1]
leader = os.path.join(folder, "_solve-1.exe")
with open(leader + ".next", "w") as fh:
    fh.write("a-1.exe\\nb-2.exe\\nc-3.exe\\n")
os.chmod(leader + ".next", 0o600)
started = threading.Event()

def peek(path):  # a slow load: the process exits while it runs
    started.set()
    time.sleep(0.3)
    open(path + ".done", "w").close()
    return None

_read_ahead.lead(leader, peek)
started.wait()
"""


def test_exit_waits_for_the_load_in_progress_and_cancels_the_rest(tmp_path):
    """A daemon thread killed inside XLA's deserialization aborts the process (4 of 30 exits right after a
    flow that had started a read-ahead, before this): at exit the load in progress finishes and the
    others never start."""
    out = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("*.done")) == ["a-1.exe.done"]


def test_sweep_workers_turn_it_off_unless_told(monkeypatch):
    """Sweep workers keep every core busy, so their read-ahead would only compete with the points."""
    from flowtools.sweeps import _worker

    monkeypatch.setattr(_worker, "configure_worker", dict)  # its cache and XLA settings are not tested here
    monkeypatch.delenv("FLOWTOOLS_READ_AHEAD", raising=False)
    assert _read_ahead._on()
    _worker.WorkerSetup().setup(worker=None)
    assert os.environ["FLOWTOOLS_READ_AHEAD"] == "0" and not _read_ahead._on()
    monkeypatch.setenv("FLOWTOOLS_READ_AHEAD", "1")  # asked for: kept
    _worker.WorkerSetup().setup(worker=None)
    assert _read_ahead._on()
