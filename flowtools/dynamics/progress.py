"""Progress bars for long runs (tqdm), shown only where they help: the one entry point, `progress_bar`,
and the one place where the switch FLOWTOOLS_PROGRESS=0 is read (`disabled`, `wanted`)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def disabled() -> bool:
    """Whether FLOWTOOLS_PROGRESS=0 hides progress bars (for scripts that make their own bars)."""
    return os.environ.get("FLOWTOOLS_PROGRESS") == "0"


def wanted(enable: bool | None, total: float = 0, threshold: float = 100_000) -> bool:
    """Whether to show a bar: never under FLOWTOOLS_PROGRESS=0; `enable=None` shows it when `total`
    exceeds `threshold` and stderr is a terminal. Solvers that draw their own bar (diffrax's meter in
    traced code) take this value."""
    if disabled():
        return False
    if enable is None:
        return total > threshold and sys.stderr.isatty()
    return bool(enable)


def progress_bar(total: int, desc: str, enable: bool | None, *, threshold: int = 100_000,
                 unit: str = "step", leave: bool = False):
    """A tqdm bar; `enable=None` shows it when `total` exceeds `threshold` and stderr is a terminal.

    Setting the environment variable FLOWTOOLS_PROGRESS=0 hides every bar (useful in batch jobs), diffrax's meter included.
    Counts of steps are shown with SI prefixes (12.3k); other units as plain counts.
    """
    return tqdm(total=total, desc=desc, disable=not wanted(enable, total, threshold), leave=leave, unit=unit,
                unit_scale=unit == "step", dynamic_ncols=True)
