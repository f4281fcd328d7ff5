"""A Dask worker preload (`distributed.worker.preload`) for tests/test_sweeps_reliability.py. Each
worker process imports it as it starts: it numbers the worker processes in the file
$FLOWTOOLS_TEST_STARTS (their process ids, one a line) and makes the starts listed in
$FLOWTOOLS_TEST_FAIL_AT fail ("2,3"; "2-" for the second start and every later one). By default the
import raises, the worker cannot be built, and its nanny gives up on it (closes); with
$FLOWTOOLS_TEST_FAIL_HOW=exit the process ends at once (os._exit, as a crash would)."""

import fcntl
import os


def _failing(n: int, spec: str) -> bool:
    for part in filter(None, spec.split(",")):
        if (part.endswith("-") and n >= int(part[:-1])) or (not part.endswith("-") and n == int(part)):
            return True
    return False


with open(os.environ["FLOWTOOLS_TEST_STARTS"], "a+") as _f:  # one line per worker process
    fcntl.flock(_f, fcntl.LOCK_EX)
    _f.seek(0)
    _pids = _f.read().split()
    if str(os.getpid()) not in _pids:  # a worker process imports its preloads twice
        _pids.append(str(os.getpid()))
        _f.write(f"{os.getpid()}\n")
    START = _pids.index(str(os.getpid())) + 1

if _failing(START, os.environ.get("FLOWTOOLS_TEST_FAIL_AT", "")):
    if os.environ.get("FLOWTOOLS_TEST_FAIL_HOW") == "exit":
        os._exit(4)
    raise RuntimeError(f"worker start {START} fails on purpose")


def dask_setup(worker):
    pass
