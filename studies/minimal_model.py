"""The minimal model of Maleknia & Sato: gradient descent and gradient flow on the published data set.

Writes results/minimal_model/learning_curves.png and summary.json. Run with --quick for a short version.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import flowtools as ft  # noqa: E402

THETA0 = np.array([-0.13, 0.13, 0.16, -0.15])  # published initial condition (w1, w2, v1, v2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="2e4 GD steps instead of 2e6")
    ap.add_argument("--out", default="results/minimal_model")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    steps = 20_000 if args.quick else 2_000_000
    lr = 0.01
    t0 = time.perf_counter()
    problem = ft.Problem(ft.MLP((1, 2, 1), "tanh", bias=False), ft.datasets.maleknia_sato(), "mse")
    gd = ft.gradient_descent(problem, THETA0, lr, steps)
    gf = ft.gradient_flow(problem, THETA0, steps * lr)
    fig, ax = plt.subplots(figsize=(6, 4))
    for tr, style in [(gd, "-"), (gf, "--")]:
        ax.loglog(tr.t[1:], tr.loss[1:], style, label=f"{tr.method}: train")
        ax.loglog(tr.t[1:], tr.gen_error[1:], style, label=f"{tr.method}: generalization")
    ax.set_xlabel("t = kη")
    ax.set_ylabel("error")
    ax.legend()
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".learning_curves.tmp.png"
    fig.savefig(tmp, dpi=120)
    tmp.replace(out / "learning_curves.png")
    ft.io.write_json(out / "summary.json", {
        "param_names": problem.model.param_names,
        "runs": [dict(name=tr.method, status=tr.status.value, final_theta=tr.final_theta,
                      loss=tr.final_loss, gen_error=float(tr.gen_error[-1])) for tr in (gd, gf)],
    })
    for tr in (gd, gf):
        print(tr.summary())
    print(f"wrote {out}/ in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
