"""Progress bars for long runs (tqdm), shown only where they help."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_bar(total: int, desc: str, enable: bool | None, *, threshold: int = 100_000):
    """A tqdm bar; `enable=None` shows it when `total` exceeds `threshold` and stderr is a terminal.

    Setting the environment variable FLOWTOOLS_PROGRESS=0 hides every bar (useful in batch jobs).
    """
    if os.environ.get("FLOWTOOLS_PROGRESS") == "0":
        enable = False
    elif enable is None:
        enable = total > threshold and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not enable, leave=False, unit="step",
                unit_scale=True, dynamic_ncols=True)


def disabled() -> bool:
    """Whether FLOWTOOLS_PROGRESS=0 hides progress bars (for scripts that make their own bars)."""
    return os.environ.get("FLOWTOOLS_PROGRESS") == "0"
