"""A sweep driver run as its own process by tests/test_sweeps.py (spawned Dask workers re-import the
main module, hence the __main__ guard), and a cheap task whose outcome is known in closed form."""

import json
import sys
import time

import numpy as np


def slow_task(config):
    """Sleeps `sleep` seconds (to keep points in flight), then returns outcomes that are a known function
    of the configuration: a seeded draw, its square and a label."""
    time.sleep(float(config.get("sleep", 0.0)))
    x = float(np.random.default_rng(config["seed"]).standard_normal())
    return dict(status="ok", x=x, x2=x * x * config.get("scale", 1.0), label=f"s{config['seed']}")


def expected(config):
    x = float(np.random.default_rng(config["seed"]).standard_normal())
    return dict(x=x, x2=x * x * config.get("scale", 1.0), label=f"s{config['seed']}")


def main(argv):
    spec = json.loads(argv[0])
    import flowtools.sweeps as S

    r = S.sweep(spec["task"], spec["configs"], spec["store"], workers=spec["workers"],
                resume=spec.get("resume", False), write_every=spec.get("write_every", 1.0), progress=False)
    print(json.dumps(dict(n_run=r.n_run, n_skipped=r.n_skipped, failed=r.failed)))


if __name__ == "__main__":
    main(sys.argv[1:])
