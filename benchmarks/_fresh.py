"""A benchmark script run in a fresh Python process: the cold-compile entries measure a process that has
compiled nothing, with its compilation cache in a directory of their choosing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def fresh_process(script: str, cache_dir, *argv: str) -> tuple[dict, float]:
    """Run `script` (with `argv`) in a fresh Python whose compilation cache is `cache_dir`; (the last JSON
    line it printed, wall seconds)."""
    env = dict(os.environ, FLOWTOOLS_CACHE_DIR=str(cache_dir), FLOWTOOLS_PROGRESS="0")
    env.pop("FLOWTOOLS_CACHE", None)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, *argv], env=env, capture_output=True, text=True,
                         check=True)
    wall = time.perf_counter() - t
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"no result line from the fresh process; stdout: {out.stdout[-2000:]}; "
                           f"stderr: {out.stderr[-2000:]}")
    return json.loads(lines[-1]), wall
