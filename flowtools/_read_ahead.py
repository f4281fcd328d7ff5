"""Read-ahead of stored executables: what followed a solve last time is loaded while the solve runs.

A worker that moves to a shape another process compiled loads a dozen executables from the store
(`_aot`): the flow's solve, then the itinerary's kernels as it reaches them (L, ∇L, Hv, the dense
Hessian, the refinement's solver, the batched evaluations). Deserializing is most of that cost
(0.14 s of 0.22 s for a tanh teacher–student at width 3), and it happens one kernel at a time on the
critical path, although XLA does it without holding the GIL.

So the store remembers, for each solve's entry (the "leader"), the entries that this process obtained
after it, in the order it asked for them: the file `<leader>.next` beside the entry, one name per line.
When a later process loads a leader, a background thread loads the entries listed there while the
solve runs, and each kernel's first call takes its executable from the thread instead of from disk
(`claim`), after checking that the entry's key is the call's key. An entry the thread has not started
is loaded by the caller as before; one that fails to load in the thread is loaded, and reported, by the
caller's ordinary path. Nothing is computed differently: the executables are the same files.

At exit the loads not started are cancelled and the one in progress is waited for (`_stop`): a thread
killed inside XLA's deserialization would abort the process.

A process that runs only flows reads ahead the itinerary kernels of that shape too, when an earlier
process ran one: a few MB of executables and the other core's time while the flow runs. Set
`READ_AHEAD = False`, or `FLOWTOOLS_READ_AHEAD=0` in the environment (which sweep workers inherit), to
turn it off.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import os
import threading

from . import _cache, _executables, io

#: whether loading a solve's entry starts the read-ahead of what followed it last time
READ_AHEAD = True
#: how long a call waits for the thread's load of its entry before loading it itself
CLAIM_TIMEOUT_S = 60.0
#: the most names a leader's list keeps (an itinerary asks for 10–20 kernels per shape)
MAX_FOLLOWERS = 48
#: entries waiting for their first call, by path: futures of `Executable | None`
_PENDING: dict[str, concurrent.futures.Future] = {}
_executables.register(_PENDING)  # released with the other executables when memory maps run short
#: the current leader: [its path, the names listed for it]
_GROUP: list = []
#: how many calls took their executable from the read-ahead in this process (tests, benchmarks)
hits = 0
#: (thread, its futures) of the read-ahead threads still running
_THREADS: list = []


@atexit.register
def _stop() -> None:
    """At exit: cancel the loads not started and wait for the ones in progress. A daemon thread killed
    inside XLA's deserialization aborts the process ("FATAL: exception not rethrown"; 4 exits in 30
    right after a flow that had started a read-ahead)."""
    for _, futures in _THREADS:
        for fut in futures:
            fut.cancel()
    for thread, _ in _THREADS:
        thread.join(timeout=60.0)


def _on() -> bool:
    return READ_AHEAD and not _cache.switched_off("FLOWTOOLS_READ_AHEAD")


def _list_path(leader: str) -> str:
    return leader + ".next"


def _read_list(leader: str) -> list[str]:
    """The names listed for `leader`: plain file names of entries in its folder; [] when there is no
    list, it is not private to this user, or it cannot be read."""
    from ._aot import not_private

    try:
        with open(_list_path(leader), "rb") as fh:
            if not_private(os.fstat(fh.fileno())) is not None:
                return []
            lines = fh.read(64 * 1024).decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [n for n in lines if n.endswith(".exe") and n == os.path.basename(n) and not n.startswith(".")][
        :MAX_FOLLOWERS]


def _drop_pending() -> None:
    for fut in _PENDING.values():
        fut.cancel()  # one already loading finishes; nobody claims it
    _PENDING.clear()


def lead(path: str, peek) -> None:
    """This process obtained a solve's entry at `path` (loaded it, or compiled and stored it): it starts
    a new group, and the entries listed for it are loaded in a background thread with `peek(path)` (an
    `Executable` or None, never raising nor warning) while the solve runs."""
    _drop_pending()
    names = _read_list(path)
    _GROUP[:] = [path, names]
    if names and _on():
        folder = os.path.dirname(path)
        jobs = [(os.path.join(folder, n), concurrent.futures.Future()) for n in names
                if os.path.join(folder, n) != path]
        _PENDING.update(jobs)
        thread = threading.Thread(target=_load_all, args=(jobs, peek), name="flowtools-read-ahead",
                                  daemon=True)
        _THREADS[:] = [tf for tf in _THREADS if tf[0].is_alive()] + [(thread, [fut for _, fut in jobs])]
        thread.start()


def follow(path: str) -> None:
    """This process obtained the store's entry at `path` (loaded it, or compiled and stored it): it is
    added to the current leader's list if it is not there yet."""
    if not _GROUP or os.path.dirname(path) != os.path.dirname(_GROUP[0]):
        return
    leader, names = _GROUP
    name = os.path.basename(path)
    if path == leader or name in names or len(names) >= MAX_FOLLOWERS:
        return
    names.append(name)
    try:
        io.atomic_write_bytes(_list_path(leader), ("\n".join(names) + "\n").encode(), mode=0o600)
    except OSError:
        pass  # a list is an optimization: a full disk only loses it


def _load_all(jobs, peek) -> None:
    for path, fut in jobs:
        if fut.set_running_or_notify_cancel():
            try:
                fut.set_result(peek(path))
            except BaseException:  # noqa: BLE001 - the caller's ordinary path loads and reports
                fut.set_result(None)


def claim(path: str, full_key: str):
    """The executable read ahead for `path` under `full_key`, or None: the caller loads it itself
    (not listed, not started yet, failed, or stored under another key)."""
    global hits
    fut = _PENDING.pop(path, None)
    if fut is None or fut.cancel():
        return None
    try:
        exe = fut.result(timeout=CLAIM_TIMEOUT_S)
    except concurrent.futures.TimeoutError:  # a load that hangs: never wait longer than a compile
        return None
    if exe is None or getattr(exe, "key", None) != full_key:
        return None
    hits += 1
    return exe
