"""Sweeps: one task over many configurations (flowtools/sweeps/_driver.py, moved here whole; the next
step splits it by concept)."""

from ._driver import *  # noqa: F403
from ._driver import (  # noqa: F401
    XLA_SINGLE_THREAD, __all__, _compile_groups, _consolidate, _Dispatcher, _start_forkserver, _Store,
    _teacher_student, _xla_started, run_point,
)
