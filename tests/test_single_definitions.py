"""One definition of each kernel: the dense Hessian, the Morse-signature counter, float64, and the
node-link reader and writer. Each is checked against mathematics, and a search of the sources checks
that no second copy has come back."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools import graph as graph_module
from flowtools import problem as problem_module
from flowtools import splitting
from flowtools.dynamics import stiff
from flowtools.landscape import DEFAULT_RTOL_ZERO, signature, spectrum

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _sources(*folders):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, path.read_text(encoding="utf-8")


def _hits(pattern, *folders, allowed=()):
    rx = re.compile(pattern)
    return [f"{path.relative_to(ROOT)}:{i}" for path, text in _sources(*folders)
            for i, line in enumerate(text.splitlines(), 1)
            if rx.search(line) and str(path.relative_to(ROOT)) not in allowed]


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(3)
    data = ft.Dataset(rng.standard_normal((30, 2)), rng.standard_normal((30, 1)))
    return ft.Problem(ft.MLP((2, 4, 1), "tanh"), data)


# ------------------------------------------------------------------------------------ Hessian
def test_every_hessian_name_is_the_one_builder(problem, monkeypatch):
    assert spectrum.hessian_from_hvps is problem_module.dense_hessian_fn
    theta = jnp.asarray(problem.model.init(1))
    calls = []
    real = problem_module.dense_hessian_fn

    def counting(p, th, *, batch=None):
        calls.append(batch)
        return real(p, th, batch=batch)

    monkeypatch.setattr(problem_module._problem, "dense_hessian_fn", counting)  # hessian_fn looks it up here
    monkeypatch.setattr(stiff, "dense_hessian_fn", counting)
    problem.hessian_fn(theta)
    for method in ("auto", "vmap", "map"):
        stiff.hessian_fn(problem, theta, method)
    assert calls == [None, None, problem.n_params, 8]


def test_a_subclass_hessian_is_what_the_solvers_use():
    class Analytic(ft.Problem):
        def hessian_fn(self, theta):
            return jnp.full((theta.shape[0],) * 2, 7.0)

    rng = np.random.default_rng(0)
    p = Analytic(ft.MLP((1, 2, 1), "tanh"), ft.Dataset(rng.standard_normal((5, 1)), rng.standard_normal((5, 1))))
    theta = jnp.asarray(p.model.init(0))
    for method in ("auto", "vmap", "map"):
        assert np.all(np.asarray(stiff.hessian_fn(p, theta, method)) == 7.0)


def test_the_builder_matches_finite_differences_of_the_gradient(problem):
    theta = np.asarray(problem.model.init(1))
    H = problem.hessian(theta)
    n, h = problem.n_params, 1e-5
    fd = np.stack([(problem.grad(theta + h * e) - problem.grad(theta - h * e)) / (2 * h) for e in np.eye(n)])
    assert np.array_equal(H, H.T)
    assert np.max(np.abs(H - fd)) < 1e-7 * max(1.0, np.max(np.abs(H)))
    # Every batch width builds the same matrix, and the numpy views are the builder's.
    for batch in (1, 3, n, 64):
        Hb = np.asarray(problem_module.dense_hessian_fn(problem, jnp.asarray(theta), batch=batch))
        assert np.max(np.abs(Hb - H)) < 1e-13 * np.max(np.abs(H))
    assert np.array_equal(spectrum.dense_hessian(problem, theta), H)


def test_no_second_hessian_construction_in_the_package_or_studies():
    # soft_committee differentiates its closed-form overlap risk, an independent check of the
    # Problem's Hessian, not a Problem.
    hits = _hits(r"jax\.hessian\(|jacfwd\(jax\.grad|jacfwd\(jax\.jacrev|jacrev\(jax\.grad|"
                 r"jacfwd\([a-z_.]*grad_fn", "flowtools", "studies",
                 allowed=("studies/soft_committee.py",))
    assert hits == []


# ------------------------------------------------------------------------------------ signature
def test_signature_counts_with_one_zero_rule():
    lam = np.array([-2.0, -1e-9, 0.0, 3e-8, 1.0, 4.0])
    assert signature(lam) == (1, 3, 2)  # zero: |λ| ≤ 1e-7 · 4
    assert signature(lam, 1e-9) == (1, 2, 3)
    assert signature(lam, scale=1.0) == (1, 3, 2)
    assert signature(lam, 1e-7, scale=1e-3) == (2, 1, 3)  # tol 1e-10: a given scale, not max|λ|
    assert signature(np.array([])) == (0, 0, 0)
    # A stack is counted row by row, each on its own scale.
    stack = np.array([[-1.0, 1e-9, 2.0], [1e-6, 1e-2, 1e2]])
    counts = signature(stack)
    assert [tuple(int(c[i]) for c in counts) for i in range(2)] == [signature(r) for r in stack] == \
        [(1, 1, 1), (0, 1, 2)]  # 1e-6 is zero on the second row's scale (tol 1e-5)
    assert DEFAULT_RTOL_ZERO == 1e-7


def test_one_zero_tolerance_default_everywhere():
    """Every function of the package with an `rtol_zero` parameter defaults to DEFAULT_RTOL_ZERO, and
    no study declares its own constant."""
    import importlib
    import inspect
    import pkgutil

    defaults = {}
    for info in pkgutil.walk_packages(ft.__path__, "flowtools."):
        if info.name.endswith(("__main__", ".cli")):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isfunction(obj) and obj.__module__ == info.name:
                param = inspect.signature(obj).parameters.get("rtol_zero")
                if param is not None and param.default is not inspect.Parameter.empty:
                    defaults[f"{info.name}.{name}"] = param.default
    assert {"flowtools.landscape.spectrum.signature", "flowtools.landscape.spectrum.hessian_spectrum",
            "flowtools.splitting.predict_split"} <= set(defaults)
    assert {k: v for k, v in defaults.items() if v != DEFAULT_RTOL_ZERO} == {}
    assert _hits(r"^\s*RTOL_ZERO\s*=\s*[0-9]", "flowtools", "studies") == []


def test_no_hand_written_signature_count():
    assert _hits(r"sum\([a-z_]+\s*<\s*-\s*[a-z_]*tol", "studies") == []


# ------------------------------------------------------------------------------------ x64
def test_x64_is_set_in_one_place():
    assert jax.config.jax_enable_x64
    hits = _hits(r"config\.update\(\s*[\"']jax_enable_x64", "flowtools")
    assert hits == ["flowtools/__init__.py:15"], hits


# ------------------------------------------------------------------------------------ node-link
def _small_graph():
    g = ft.SaddleGraph()
    a = g.add_node(fingerprint=[0.0, 1.0], signature=(1, 0, 3), loss=0.5, theta=[0.1, 0.2],
                   kind="saddle", grad_norm=float("nan"))
    b = g.add_node(fingerprint=[2.0, 3.0], signature=(0, 0, 4), loss=0.1, theta=[1.0, 2.0], kind="minimum")
    g.add_itinerary([a, b], [(0.0, 1.0), (3.5, 4.0)], method="flow", run="r0")
    return g, a, b


def test_node_link_round_trip(tmp_path):
    g, a, b = _small_graph()
    data = graph_module.node_link_data(g)
    assert set(data) >= {"nodes", "links"} and {"from", "to", "source"} <= set(data["links"][0])
    assert graph_module.node_link_data(g.graph) == data
    back = graph_module.node_link_graph(data)
    g.to_json(tmp_path / "g.json")
    loaded = ft.SaddleGraph.from_json(tmp_path / "g.json")
    for h in (back, loaded):
        assert sorted(h.graph.nodes) == sorted(g.graph.nodes)
        assert list(h.graph.edges(data="source")) == list(g.graph.edges(data="source"))
        assert np.isnan(h.graph.nodes[a]["grad_norm"])
        assert h.graph.nodes[b]["theta"] == [1.0, 2.0]
        assert h.graph.edges[a, b]["transit_times"] == [2.5] and h.n_trajectories == 1
    with pytest.raises(ft.io.FileFormatError, match="record 7.*links"):
        graph_module.node_link_graph(dict(nodes=[]), "record 7")


def test_node_link_calls_are_only_in_the_reader_and_writer():
    hits = _hits(r"nx\.node_link_(data|graph)\(", "flowtools")
    assert len(hits) == 2 and all(h.startswith("flowtools/graph.py:") for h in hits), hits
