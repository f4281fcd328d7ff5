"""Landscape atlases: minima, the transition states between them, barriers and disconnectivity graphs.

Three landscapes, each explored with `flowtools.Atlas` (climbing-image bands between minima, the top image
refined to an index-1 saddle, descent from it on both sides; `Atlas.connect` as pele's DoubleEndedConnect):

1. Müller–Brown (`flowtools.objective.muller_brown`): the three minima and two saddles, a check of the
   machinery against the known tree.
2. The flagship net (`MLP((1, 2, 1), "tanh", bias=False)`, Maleknia & Sato's data, "mse"): its global
   minimum, its image with hidden neuron 1 sign-flipped, and the line of degenerate minima where the two
   neurons merge (reduces to 1-1-1).
3. The Safran–Shamir ReLU landscape (`flowtools.problems.safran_shamir`, population loss, k = n): gradient
   flows from seeded Xavier initialisations; their distinct minima up to symmetry; each spurious minimum
   connected to the global minimum, with its barrier.

Writes <out>/{summary.json, disconnectivity.png, atlas_<name>.json}. `--quick`: Müller–Brown and the
flagship only (the tests run it); the default adds Safran–Shamir k = n = 8 and 10 (40 and 20 seeds).
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
from flowtools.objective import muller_brown  # noqa: E402
from flowtools.plotting import save_figure  # noqa: E402

SCHEMA = "flowtools.landscape_atlas/1"
FULL = dict(ks=[8, 10], seeds={8: 40, 10: 20})
QUICK = dict(ks=[], seeds={})
GLOBAL_TOL = 1e-12  # an end point with F below this is at the global minimum (F = 0)


def _rows(atlas: ft.Atlas) -> dict:
    minima = [dict(id=m, loss=atlas.loss(m), kind=atlas.nx.nodes[m]["kind"],
                   signature=atlas.nx.nodes[m]["signature"]) for m in atlas.minima()]
    ts = [dict(id=t, loss=atlas.loss(t), signature=atlas.nx.nodes[t]["signature"], connects=atlas.connections(t),
               barriers=[atlas.nx.edges[t, m]["barrier"] for m in atlas.connections(t)])
          for t in atlas.transition_states()]
    return dict(minima=minima, transition_states=ts)


def muller_brown_atlas() -> tuple[ft.Atlas, dict]:
    atlas = ft.Atlas(ft.Problem.from_loss(muller_brown, 2))
    a, b = atlas.add_minimum([-0.56, 1.44]), atlas.add_minimum([0.62, 0.03])
    r = atlas.connect(a, b)
    return atlas, dict(name="muller_brown", connect=dict(a=a, b=b, status=r.status, barrier=r.barrier,
                                                         message=r.message), **_rows(atlas))


def flagship_atlas() -> tuple[ft.Atlas, dict]:
    problem = ft.problems.minimal_model(loss="mse")
    atlas = ft.Atlas(problem)
    glob = atlas.add_minimum([0.55, 2.15, 1.61, 0.67])
    line = atlas.add_minimum([1.004, 1.004, -0.62, 2.59])
    theta = atlas.theta(glob)
    # The sign flip of neuron 1 maps the minimum to itself up to symmetry: a degenerate rearrangement.
    flip = ft.transition_path(problem, theta, theta * np.array([-1.0, 1.0, -1.0, 1.0]), align=False)
    ts_flip = atlas.add_path(flip)
    r = atlas.connect(glob, line)
    return atlas, dict(name="flagship", connect=dict(a=glob, b=line, status=r.status, barrier=r.barrier,
                                                     message=r.message,
                                                     bands=[x["status"] for x in r.attempts]),
                       sign_flip=dict(status=flip.status, transition_state=ts_flip, barrier=flip.barriers[0],
                                      saddle_signature=None if flip.saddle is None else list(flip.saddle.signature),
                                      message=flip.message),
                       **_rows(atlas))


def relu_atlas(k: int, seeds: int, seed0: int = 0) -> tuple[ft.Atlas, dict]:
    problem = ft.problems.safran_shamir(k)
    atlas = ft.Atlas(problem)
    runs = []
    t0 = time.perf_counter()
    for s in range(seed0, seed0 + seeds):
        tr = ft.gradient_flow(problem, ft.problems.safran_shamir_init(problem, s), np.inf, gtol=1e-10)
        node = atlas.add_minimum(tr.final_theta)
        runs.append(dict(seed=s, status=str(tr.status), loss=float(tr.loss[-1]), minimum=node))
    flows_s = time.perf_counter() - t0
    minima = atlas.minima()
    best = minima[0]
    if atlas.loss(best) > GLOBAL_TOL:
        raise RuntimeError(f"k={k}: no run reached the global minimum (lowest F = {atlas.loss(best):.3g}); "
                           "raise the number of seeds.")
    spurious = []
    for m in minima[1:]:
        t1 = time.perf_counter()
        r = atlas.connect(m, best)
        spurious.append(dict(minimum=m, loss=atlas.loss(m), runs=sum(x["minimum"] == m for x in runs),
                             status=r.status, barrier=None if r.barrier is None else r.barrier[0],
                             pass_loss=None if r.pass_node is None else atlas.loss(r.pass_node),
                             pass_signature=None if r.pass_node is None else atlas.nx.nodes[r.pass_node]["signature"],
                             path=r.path, bands=[dict(ends=x["ends"], status=x["status"], steps=x["iterations"])
                                                 for x in r.attempts],
                             connect_s=time.perf_counter() - t1, message=r.message))
    return atlas, dict(name=f"relu_k{k}", k=k, seeds=seeds, flows_s=flows_s, global_minimum=best,
                       runs_at_global=sum(x["minimum"] == best for x in runs), spurious=spurious, runs=runs,
                       **_rows(atlas))


def draw(atlases: list[tuple[str, ft.Atlas]], out: pathlib.Path) -> None:
    fig, axs = plt.subplots(1, len(atlases), figsize=(4.2 * len(atlases), 4.2), squeeze=False)
    for ax, (title, atlas) in zip(axs[0], atlases):
        atlas.draw(ax, title=title)
    fig.tight_layout()
    save_figure(fig, out / "disconnectivity.png")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Müller–Brown and the flagship only (the tests)")
    ap.add_argument("--out", default="results/landscape_atlas")
    ap.add_argument("--ks", type=int, nargs="+", default=None, help="Safran–Shamir widths k = n (default 8 10)")
    ap.add_argument("--seeds", type=int, default=None, help="flows per k (default 40 for k = 8, 20 otherwise)")
    ap.add_argument("--seed", type=int, default=0, help="the first initialisation seed")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(QUICK if args.quick else FULL)
    if args.ks is not None:
        settings["ks"] = [ft._checks.positive_int("ks", k) for k in args.ks]
    seeds = {k: args.seeds or settings["seeds"].get(k, 20) for k in settings["ks"]}
    t0 = time.perf_counter()
    landscapes, drawn = [], []
    for make, title in [(muller_brown_atlas, "Müller–Brown"), (flagship_atlas, "flagship net")]:
        atlas, row = make()
        landscapes.append(row)
        drawn.append((title, atlas))
        atlas.to_json(out / f"atlas_{row['name']}.json")
    for k in settings["ks"]:
        atlas, row = relu_atlas(k, seeds[k], args.seed)
        landscapes.append(row)
        drawn.append((f"ReLU k = n = {k}", atlas))
        atlas.to_json(out / f"atlas_{row['name']}.json")
    draw(drawn, out)
    summary = dict(schema=SCHEMA, settings=dict(ks=settings["ks"], seeds=seeds), seed0=args.seed,
                   wall_s=time.perf_counter() - t0, landscapes=landscapes)
    ft.io.write_json(out / "summary.json", summary)
    for row in landscapes:
        if "connect" in row:
            print(f"{row['name']}: {row['connect']['message']}")
        if "sign_flip" in row:
            print(f"{row['name']} sign flip: {row['sign_flip']['message']}")
        for sp in row.get("spurious", []):
            print(f"{row['name']}: spurious F = {sp['loss']:.7g} ({sp['runs']} of {row['seeds']} runs): "
                  f"{sp['message']}")
    print(f"wall {summary['wall_s']:.1f} s")
    return summary


if __name__ == "__main__":
    main()
