"""Where a warm second process spends the first flow's compile step, stage by stage.

    python benchmarks/second_process_breakdown.py [--repeats 3]

For the minimal model (4 parameters) and the deep linear net 1-3-3-2 (18), one process fills an empty
cache directory (JAX's cache through `flow._solve.lower().compile()`, flowtools' executable store
through `gradient_flow`, timing the store's serialization and write); then fresh processes measure,
with wall and CPU (process_time) timers:

- "before" — what a warm process paid without the executable store: tracing + lowering, then JAX's
  cache step (key hashing, read, deserialization);
- "now" — `flowtools._aot`: the key, the file read, the load (checksum, unpickle, LAPACK binding,
  deserialization);
- the first and second execution of the compiled solve.

Prints one JSON line per process and a table of min–max per stage, with the load averages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

NETS = {
    "4p": "problem = ft.problems.minimal_model(loss='mse');"
          "theta0 = np.array([-0.13, 0.13, 0.16, -0.15]); kw0 = dict(t1=2000.0)",
    "18p": "rng = np.random.default_rng(0); x = rng.standard_normal((50, 1));"
           "problem = ft.Problem(ft.MLP((1, 3, 3, 2), 'linear', bias=False), ft.Dataset(x, x @ [[1.0, -0.5]]));"
           "theta0 = 0.3 * rng.standard_normal(problem.n_params); kw0 = dict(t1=None, gtol=1e-8)",
}

SCRIPT = """
import json, os, sys, time
import numpy as np, jax, jax.numpy as jnp
import flowtools as ft
from flowtools import _aot, _cache
from flowtools.dynamics import flow as F
mode = {mode!r}
{setup}
args, kw, settings = F.prepare_flow(problem, theta0, **kw0)
if F._segmented(kw["solver"]):
    kw = dict(kw, return_state=True)
res = {{}}
def stage(name, f):
    w, c = time.perf_counter(), time.process_time()
    out = f()
    res[name] = (time.process_time() - c, time.perf_counter() - w)
    return out
if mode == "fill":
    full_key = _aot.key("flowtools.dynamics.flow._solve", args, kw, _cache.requested_compiler_options())
    F._solve.lower(*args, **kw).compile(compiler_options=_cache.compiler_options())  # JAX's cache
    exe = _aot.compile_function(F._solve.__wrapped__, args, kw, _cache.compiler_options(), for_store=True)
    path = _aot._path(_aot.directory(), "_solve", full_key)
    assert stage("store: serialize + write", lambda: _aot.store(path, full_key, exe))
    print(json.dumps(dict(mode=mode, stages=res, load=os.getloadavg()[0]))); sys.exit()
if mode == "before":
    lowered = stage("before: tracing + lowering", lambda: F._solve.lower(*args, **kw))
    compiled = stage("before: JAX cache step (key, read, deserialize)",
                     lambda: lowered.compile(compiler_options=_cache.compiler_options()))
else:
    full_key = stage("now: key", lambda: _aot.key("flowtools.dynamics.flow._solve", args, kw,
                                                  _cache.requested_compiler_options()))
    path = _aot._path(_aot.directory(), "_solve", full_key)
    stage("now: read the entry", lambda: open(path, "rb").read())
    compiled = stage("now: load (checksum, unpickle, LAPACK binding, deserialize)",
                     lambda: _aot.load(path, full_key))
    assert compiled is not None
def run():
    if F._segmented(kw["solver"]):
        return jax.block_until_ready(compiled(*args[:-3], args[-3], jnp.asarray(False), args[-1], **kw))
    return jax.block_until_ready(compiled(*args, **kw))
stage("first execution", run)
stage("second execution", run)
print(json.dumps(dict(mode=mode, stages=res, load=os.getloadavg()[0])))
"""


def _process(mode, setup, cache):
    env = dict(os.environ, FLOWTOOLS_CACHE_DIR=cache, FLOWTOOLS_PROGRESS="0")
    env.pop("FLOWTOOLS_CACHE", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(mode=mode, setup=setup)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per path and net")
    args = ap.parse_args(argv)
    table = {}
    for net, setup in NETS.items():
        with tempfile.TemporaryDirectory() as cache:
            runs = [_process("fill", setup, cache)]
            for _ in range(args.repeats):
                runs += [_process("before", setup, cache), _process("now", setup, cache)]
        for r in runs:
            print(json.dumps(dict(net=net, **r)))
            for name, (cpu, wall) in r["stages"].items():
                table.setdefault(name, {}).setdefault(net, []).append((cpu, wall, r["load"]))
    print(f"\n{'stage':<62s} " + " ".join(f"{n + ' CPU / wall (s)':>30s}" for n in NETS))
    for name, per_net in table.items():
        cells = []
        for net in NETS:
            v = per_net.get(net, [])
            c, w = [x[0] for x in v], [x[1] for x in v]
            cells.append(f"{min(c):.3f}–{max(c):.3f} / {min(w):.3f}–{max(w):.3f}" if v else "")
        print(f"{name:<62s} " + " ".join(f"{c:>30s}" for c in cells))
    loads = [x[2] for per_net in table.values() for v in per_net.values() for x in v]
    print(f"load average (1 min) during the runs: {min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
