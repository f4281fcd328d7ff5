"""Accuracy of the population loss's pair rule for steep units: E[σ(u)σ(v)] for tanh and softplus against
independent references, over norms σ1, σ2 ∈ {0.5, 1, 2, 3, 5, 10} and correlations ρ ∈ {0, 0.5, 0.9, 0.999, ±1}.

References: mpmath at 30 digits (`mp.quad` with breakpoints at the steep point) where the pair is 1-D
(ρ = ±1: E[σ(σ1 z)σ(±σ2 z)]; ρ = 0: E[σ(σ1 z)]·E[σ(σ2 z)]); nested adaptive Gauss–Kronrod (scipy's
QUADPACK, breakpoints at the steep points) otherwise. Errors are |value − reference| / √(E[σ(σ1z)²]E[σ(σ2z)²])
(the Cauchy–Schwarz bound on |E[σ(u)σ(v)]|), the largest over ρ and the smaller norm for each larger norm.

    python benchmarks/pair_rule_accuracy.py [--method quadrature|gauss_hermite] [--refs refs.json]

Computing the references takes about 10 minutes on one core; `--refs` stores them and reuses them.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import pathlib

import mpmath as mp
import numpy as np
from scipy import integrate

from flowtools import gaussian

NORMS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
CORRELATIONS = (0.0, 0.5, 0.9, 0.999, 1.0, -1.0)
L = 9.0  # |z| ≤ 9: the Gaussian mass beyond is 2e-19
def mp_act(name):
    if name == "tanh":
        return mp.tanh
    return lambda x: mp.log1p(mp.exp(x)) if x < 0 else x + mp.log1p(mp.exp(-x))


def np_act(name):
    if name == "tanh":
        return np.tanh
    return lambda x: np.logaddexp(0.0, x)


def _phi_mp(z):
    return mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi)


def _pts(p, s):
    h = 1 / s
    return sorted({min(max(x, -L), L) for x in (-L, p - 4 * h, p - h, p, p + h, p + 4 * h, L)})


def mp_mean(name, s):
    f = mp_act(name)
    s = mp.mpf(s)
    return mp.quad(lambda z: f(s * z) * _phi_mp(z), _pts(mp.mpf(0), s))


def mp_aligned(name, s1, s2, sign):
    f = mp_act(name)
    s1, s2 = mp.mpf(s1), mp.mpf(s2)
    return mp.quad(lambda z: f(s1 * z) * f(sign * s2 * z) * _phi_mp(z), _pts(mp.mpf(0), max(s1, s2)))


def _phi(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def np_mean(f, m, s):
    if s == 0:
        return f(m)
    p = -m / s
    pts = [x for x in _pts(p, s) if -L < x < L]
    return integrate.quad(lambda z: f(m + s * z) * _phi(z), -L, L, points=pts or None, limit=200,
                          epsabs=1e-17, epsrel=1e-15)[0]


def np_pair(name, s1, s2, rho):
    f = np_act(name)
    l21, l22 = s2 * rho, s2 * math.sqrt(1 - rho * rho)
    g = lambda z1: f(s1 * z1) * np_mean(f, l21 * z1, l22) * _phi(z1)  # noqa: E731
    pts = [x for x in _pts(0.0, max(s1, abs(l21))) if -L < x < L]
    return integrate.quad(g, -L, L, points=pts, limit=200, epsabs=1e-17, epsrel=1e-15)[0]


@functools.lru_cache(maxsize=None)
def reference(name, s1, s2, rho):
    if rho in (1.0, -1.0):
        return float(mp_aligned(name, s1, s2, int(rho)))
    if rho == 0.0:
        return float(mp_mean(name, s1) * mp_mean(name, s2))
    return np_pair(name, s1, s2, rho)


def errors(method: str, refs: dict) -> dict:
    out = {}
    for act in ("tanh", "softplus"):
        keys = [k for k in refs if k[0] == act]
        s1, s2, rho = (np.array([k[i] for k in keys]) for i in (1, 2, 3))
        val = np.asarray(gaussian.pair_expectation(act, act, 0.0, 0.0, s1 * s1, rho * s1 * s2, s2 * s2,
                                                   method=method))
        for k, v in zip(keys, val):
            scale = math.sqrt(refs[(act, k[1], k[1], 1.0)] * refs[(act, k[2], k[2], 1.0)])
            out[k] = abs(v - refs[k]) / scale
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="quadrature")
    parser.add_argument("--refs", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    mp.mp.dps = 30
    if args.refs is not None and args.refs.exists():
        refs = {tuple([k.split()[0]] + [float(x) for x in k.split()[1:]]): v
                for k, v in json.loads(args.refs.read_text()).items()}
    else:
        refs = {(act, s1, s2, rho): reference(act, s1, s2, rho) for act in ("tanh", "softplus")
                for s1, s2 in itertools.combinations_with_replacement(NORMS, 2) for rho in CORRELATIONS}
        if args.refs is not None:
            args.refs.write_text(json.dumps({" ".join(map(str, k)): v for k, v in refs.items()}))
    err = errors(args.method, refs)
    for act in ("tanh", "softplus"):
        print(f"{act}, method={args.method}: largest error / scale over ρ and the smaller norm")
        for s in NORMS:
            keys = [k for k in err if k[0] == act and max(k[1], k[2]) == s]
            worst = max(keys, key=err.get)
            where = f"σ1 = {worst[1]}, σ2 = {worst[2]}, ρ = {worst[3]}"
            print(f"  larger norm {s:>4}: {err[worst]:.1e}  ({where})")


if __name__ == "__main__":
    main()
