"""A sweep driver run as its own process by tests/test_sweeps.py and tests/test_sweeps_reliability.py
(spawned Dask workers re-import the main module, hence the __main__ guard), and cheap tasks whose
outcomes are known in closed form."""

import json
import os
import sys
import time

import numpy as np


def slow_task(config):
    """Sleeps `sleep` seconds (to keep points in flight), then returns outcomes that are a known function
    of the configuration: a seeded draw, its square and a label."""
    time.sleep(float(config.get("sleep", 0.0)))
    x = float(np.random.default_rng(config["seed"]).standard_normal())
    return dict(status="ok", x=x, x2=x * x * config.get("scale", 1.0), label=f"s{config['seed']}")


def fatal_task(config):
    """`slow_task`, except that the point with seed `kill` ends its worker process at once (os._exit: no
    exception, no cleanup), as a segfaulting solver or the out-of-memory killer would."""
    if config["seed"] == config.get("kill", -1):
        os._exit(3)
    return slow_task(config)


def flaky_task(config):
    """`slow_task`, except that it raises for the seed named by $FLOWTOOLS_TEST_BROKEN_SEED."""
    if str(config["seed"]) == os.environ.get("FLOWTOOLS_TEST_BROKEN_SEED"):
        raise RuntimeError(f"seed {config['seed']} is broken")
    return slow_task(config)


def worker_facts():
    """What a freshly started worker process holds before it runs anything: whether JAX is already
    imported, whether XLA has started, and its XLA flags."""
    jax_imported = "jax" in sys.modules
    from flowtools.sweeps import _worker

    return dict(jax_imported=jax_imported, xla_started=_worker._xla_started(),
                xla_flags=os.environ.get("XLA_FLAGS", ""))


def expected(config):
    x = float(np.random.default_rng(config["seed"]).standard_normal())
    return dict(x=x, x2=x * x * config.get("scale", 1.0), label=f"s{config['seed']}")


def main(argv):
    spec = json.loads(argv[0])
    import flowtools.sweeps as S

    t0 = time.perf_counter()
    r = S.sweep(spec["task"], spec["configs"], spec["store"], workers=spec.get("workers"),
                scheduler=spec.get("scheduler"), resume=spec.get("resume", False),
                retry_failed=spec.get("retry_failed", False), retries=spec.get("retries", 1),
                worker_timeout=spec.get("worker_timeout", 120.0),
                write_every=spec.get("write_every", 1.0), progress=False)
    print(json.dumps(dict(n_run=r.n_run, n_skipped=r.n_skipped, failed=r.failed, errors=r.errors,
                          wall=time.perf_counter() - t0, timings=r.timings)))


if __name__ == "__main__":
    main(sys.argv[1:])
