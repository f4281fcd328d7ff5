"""Sweeps (flowtools.sweeps): serial and 2-worker runs agree point by point; a store survives kill -9 of a
worker and of the driver, and a rerun resumes without losing or duplicating a finished point; the CLI."""

import collections
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import flowtools as ft
import flowtools.sweeps as S
from flowtools.sweeps import _driver, _results, _store
from flowtools import cli

HERE = pathlib.Path(__file__).resolve().parent
DRIVER = HERE / "_sweep_driver.py"
SLOW_TASK = f"{DRIVER}:slow_task"
sys.path.insert(0, str(HERE))
import _sweep_driver  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ, FLOWTOOLS_PROGRESS="0",
             FLOWTOOLS_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")))
    e.pop("XLA_FLAGS", None)
    return e


def start(spec, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), json.dumps(spec)], env=env, cwd=str(HERE),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=1200) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def values_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f":
        return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def test_serial_and_two_workers_give_identical_points(tmp_path, env):
    """MUST SHOW: the same flow + itinerary sweep serially (no Dask) and on a 2-worker LocalCluster gives
    bit-identical per-point outcomes, itineraries and node sequences (timings aside)."""
    configs = S.grid(seed=range(4), width=2, activation="tanh", d_in=2, n=30, t1=1e5)
    serial, dask = tmp_path / "serial", tmp_path / "dask"
    finish(start(dict(task="flow_itinerary", configs=configs, store=str(serial), workers=0), env))
    out = finish(start(dict(task="flow_itinerary", configs=configs, store=str(dask), workers=2), env))
    assert out["n_run"] == 4 and not out["failed"]
    a, b = S.open_results(serial), S.open_results(dask)
    assert bool(a["finished"].all()) and bool(b["finished"].all())
    compared = [v for v in a.data_vars if v not in S.TIMING_OUTCOMES]
    assert {"status", "terminal", "final_loss", "final_grad_norm", "final_gen_error", "sequence", "nodes",
            "visit_t_in", "plateau"} <= set(compared)
    for v in compared:
        assert values_equal(a[v].values, b[v].values), v
    assert set(a["terminal"].values) == {"attractor"}
    for i in range(4):
        ra, rb = S.load_record(serial, i), S.load_record(dask, i)
        assert ra["itinerary"] == rb["itinerary"] and ra["seed"] == rb["seed"] == i
        assert ra["version"] == ft.__version__
    ga, gb = ft.SaddleGraph.from_json(serial / "graph.json"), ft.SaddleGraph.from_json(dask / "graph.json")
    assert ga.n_trajectories == gb.n_trajectories == 4 and len(ga) == len(gb) > 0
    assert sorted(ga.attractors()) == sorted(gb.attractors())


def _descendants(pid):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _wait_for_records(store, n, proc, timeout=900):
    t0 = time.time()
    while time.time() - t0 < timeout:
        k = len(list((store / "points").glob("[0-9]*.json"))) if (store / "points").is_dir() else 0
        if k >= n:
            return k
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} points finished within {timeout} s")


def test_kill_worker_and_driver_then_resume(tmp_path, env):
    """MUST SHOW: kill -9 a worker mid-sweep, then kill -9 the driver; the store opens with xarray, and a
    rerun finishes the sweep with every finished point kept byte for byte and none duplicated."""
    configs = S.grid(seed=range(16), sleep=0.4, scale=2.0)
    store = tmp_path / "store"
    spec = dict(task=SLOW_TASK, configs=configs, store=str(store), workers=2, write_every=0.2)
    proc = start(spec, env)
    children = []
    try:
        _wait_for_records(store, 2, proc)
        children = _descendants(proc.pid)
        # Local workers are forks of the fork server (spawned ones, where there is none, run spawn_main).
        servers = {c.pid for c in children if "forkserver import main" in " ".join(c.cmdline())}
        workers = [c for c in children if c.ppid() in servers or "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2, [c.cmdline() for c in children]
        os.kill(workers[0].pid, signal.SIGKILL)  # a worker with a point in flight (every point sleeps)
        k_before = _wait_for_records(store, 7, proc)
        children = list({c.pid: c for c in children + _descendants(proc.pid)}.values())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        for c in children:  # the worker processes this test's driver started
            try:
                c.kill()
            except Exception:  # noqa: BLE001 — already gone
                pass
    snapshot = {p.name: p.read_bytes() for p in (store / "points").glob("[0-9]*.json")}
    assert k_before <= len(snapshot) < len(configs)
    ds = S.open_results(store)  # the store as the killed driver left it
    assert ds.sizes["point"] == len(configs) and int(ds["finished"].sum()) <= len(snapshot)
    with pytest.raises(ValueError, match="resume=True"):
        S.sweep(SLOW_TASK, configs, store, workers=0)
    out = finish(start(dict(spec, workers=0, resume=True), env))
    assert out["n_skipped"] == len(snapshot) and out["n_run"] == len(configs) - len(snapshot)
    records = sorted((store / "points").glob("[0-9]*.json"))
    assert [int(p.stem) for p in records] == list(range(len(configs)))
    assert not list((store / "points").glob(".tmp-*"))
    for name, data in snapshot.items():
        assert (store / "points" / name).read_bytes() == data, name
    ds = S.open_results(store)
    assert bool(ds["finished"].all()) and ds.attrs["complete"]
    assert list(ds["seed"].values) == [c["seed"] for c in configs]
    for i, c in enumerate(configs):
        want = _sweep_driver.expected(c)
        assert float(ds["x"][i]) == want["x"] and float(ds["x2"][i]) == want["x2"]
        assert ds["label"].values[i] == want["label"]
    assert set(ds["version"].values) == {ft.__version__}


def test_resume_checks_and_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # restored after the test
    monkeypatch.setenv("FLOWTOOLS_CACHE", "0")
    configs = S.grid(seed=range(3), scale=[1.0, 3.0])
    assert len(configs) == 6 and configs[1] == dict(seed=0, scale=3.0)
    r = S.sweep(SLOW_TASK, configs[:4], tmp_path / "s", workers=0)
    assert (r.n_run, r.n_skipped, r.failed) == (4, 0, [])
    r = S.sweep(SLOW_TASK, configs[:4], tmp_path / "s", workers=0, resume=True)
    assert (r.n_run, r.n_skipped) == (0, 4)
    with pytest.raises(ValueError, match="holds another sweep"):
        S.sweep(SLOW_TASK, configs, tmp_path / "s", workers=0, resume=True)
    with _store.Store(tmp_path / "s").lock():
        with pytest.raises(RuntimeError, match="another sweep is writing"):
            S.sweep(SLOW_TASK, configs[:4], tmp_path / "s", workers=0, resume=True)
    grid = S.open_results(tmp_path / "s", grid=True)
    assert dict(grid.sizes)["seed"] == 2 and dict(grid.sizes)["scale"] == 2
    x = np.random.default_rng(1).standard_normal()
    assert float(grid["x2"].sel(seed=1, scale=3.0)) == x * x * 3.0


def test_open_results_reads_the_records_a_killed_driver_left(tmp_path, monkeypatch):
    """The records are the truth: a results.zarr older than the records (a driver killed between two
    rewrites), or none at all (killed before the first), is rebuilt from them in memory."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    monkeypatch.setenv("FLOWTOOLS_CACHE", "0")
    configs = S.grid(seed=range(3), scale=[1.0])
    store = tmp_path / "k"
    S.sweep(SLOW_TASK, configs, store, workers=0)
    st = _store.Store(store)
    records = {i: S.load_record(store, i) for i in range(3)}
    attrs = dict(schema=S.SCHEMA, task=SLOW_TASK, n_points=3)
    _results.consolidate(st, configs, {0: records[0]}, attrs)  # the zarr of an earlier moment
    ds = S.open_results(store)
    assert list(ds["finished"].values) == [True, True, True]
    assert list(ds["x2"].values) == [records[i]["outcomes"]["x2"] for i in range(3)]
    (store / "results.zarr").unlink()
    assert int(S.open_results(store)["finished"].sum()) == 3


def test_merge_stores_joins_a_part_of_the_grid_run_in_its_own_store(tmp_path, monkeypatch):
    """Part of a grid run elsewhere (its own store, its own indices) joins the main store by configuration:
    the main store then holds every point once, with the values the task gives, and a second merge copies
    nothing. A source with configurations the store lacks, or another task, is refused before any copy."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    monkeypatch.setenv("FLOWTOOLS_CACHE", "0")
    configs = S.grid(scale=[1.0, 3.0], seed=range(3))
    main, part = tmp_path / "main", tmp_path / "part"
    S.sweep(SLOW_TASK, configs, main, workers=0)
    for i in (1, 4, 5):  # points the main sweep has not run
        _store.Store(main).record_path(i).unlink()
    S.sweep(SLOW_TASK, [configs[5], configs[1], configs[4], configs[0]], part, workers=0)  # other indices
    assert S.merge_stores(part, main) == 3
    ds = S.open_results(main)
    assert bool(ds["finished"].all())
    for i, c in enumerate(configs):
        assert float(ds["x2"].values[i]) == _sweep_driver.expected(c)["x2"]
        assert S.load_record(main, i)["config"] == c
    assert S.merge_stores(part, main) == 0
    assert cli.main(["merge", str(part), str(main)]) == 0  # the command line
    other = tmp_path / "other"
    S.sweep(SLOW_TASK, S.grid(scale=[2.0], seed=range(2)), other, workers=0)
    before = sorted(p.name for p in (main / "points").iterdir())
    with pytest.raises(ValueError, match="does not hold"):
        S.merge_stores(other, main)
    assert sorted(p.name for p in (main / "points").iterdir()) == before
    with pytest.raises(FileNotFoundError, match="source="):
        S.merge_stores(tmp_path / "nothing", main)
    with pytest.raises(SystemExit, match="does not hold"):
        cli.main(["merge", str(other), str(main)])
    spec = json.loads((other / "sweep.json").read_text())
    (other / "sweep.json").write_text(json.dumps(dict(spec, task="flow_itinerary")))
    with pytest.raises(ValueError, match="merge stores of one task"):
        S.merge_stores(other, main)


def test_task_errors_are_recorded_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    monkeypatch.setenv("FLOWTOOLS_CACHE", "0")
    r = S.sweep(SLOW_TASK, [dict(seed=0), dict(seed=1, scale="x")], tmp_path / "e", workers=0)
    ds = r.dataset
    assert list(ds["status"].values) == ["ok", "error"]
    assert "TypeError" in str(ds["error"].values[1]) and str(ds["error"].values[0]) == ""


def test_cli_sweep_and_studies(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    monkeypatch.setenv("FLOWTOOLS_CACHE", "0")
    monkeypatch.setenv("FLOWTOOLS_PROGRESS", "0")
    toml = tmp_path / "s.toml"
    toml.write_text(f'task = "{SLOW_TASK}"\nstore = "{tmp_path / "store"}"\n[grid]\nseed = [0, 1, 2]\n'
                    '[fixed]\nscale = 0.5\n')
    assert cli.main(["sweep", str(toml), "--serial"]) == 0
    assert "3 run, 0 skipped" in capsys.readouterr().out
    assert cli.main(["sweep", str(toml), "--serial"]) == cli.EXIT_USAGE  # a finished store, no --resume
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["sweep", str(toml), "--serial", "--resume"]) == 0
    assert "0 run, 3 skipped" in capsys.readouterr().out
    ds = S.open_results(tmp_path / "store")
    assert list(ds["scale"].values) == [0.5] * 3
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "escape"\n[grid]\nseed = [0]\n[[points]]\nseed = 1\n')
    with pytest.raises(ValueError, match=r"exactly one of \[grid\] or \[\[points\]\]"):
        cli.read_config(bad)
    assert cli.main(["studies"]) == 0
    assert "width_sweep" in capsys.readouterr().out


def test_population_problem_loss_is_half_the_exact_risk():
    """data="population": L = ½ E‖f − T‖² is the exact risk that finite-data problems report as R."""
    cfg = dict(seed=0, width=2, activation="erf", d_in=4)
    pop, risk = S.make_problem(dict(cfg, data="population"))
    finite, risk_finite = S.make_problem(cfg)
    theta = S.initial_theta(pop, dict(seed=0, init_scale=0.5))
    assert pop.loss(theta) == pytest.approx(risk(theta) / 2, rel=1e-12)
    assert risk(theta) == pytest.approx(risk_finite(theta), rel=1e-12)
    assert abs(finite.loss(theta) - pop.loss(theta)) > 1e-3  # 200 samples are not the population
    with pytest.raises(ValueError, match="data='sample' is unknown"):
        S.make_problem(dict(cfg, data="sample"))
    # n_nodes sets the Gauss-Hermite rule of pairs without a closed form; erf pairs are closed forms.
    coarse, _ = S.make_problem(dict(cfg, data="population", n_nodes=20))
    assert coarse.source.n_nodes == 20 and pop.source.n_nodes == ft.gaussian.DEFAULT_NODES
    assert coarse.loss(theta) == pytest.approx(pop.loss(theta), rel=1e-13)


def test_dispatcher_compiles_each_group_once_where_it_can():
    """Points go out by compile group: two workers start on different groups, a worker stays on its group
    while it has points, then helps with the largest group left; every point goes out exactly once."""
    configs = S.grid(width=[2, 3, 4], seed=range(5))
    groups = _driver._compile_groups(configs, list(range(len(configs))), None)
    assert [sorted(configs[i]["width"] for i in q) for q in groups.values()] == [[2] * 5, [3] * 5, [4] * 5]
    assert len(_driver._compile_groups(configs, list(range(len(configs))), ("seed",))) == 5
    assert len(_driver._compile_groups(configs, list(range(len(configs))), lambda c: c["width"] > 2)) == 2
    d = _driver._Dispatcher(groups)
    width = lambda i: configs[i]["width"]  # noqa: E731
    a, b = d.next_for("A"), d.next_for("B")
    assert width(a) != width(b)  # two groups compile in parallel
    assert d.free_slots({"A": 1, "B": 1}) == []  # one point per worker thread is out
    handed = [a, b]
    # A works through its own group first.
    d.done(a, "A", "A")
    for _ in range(4):
        i = d.next_for("A")
        assert width(i) == width(a)
        handed.append(i)
        d.done(i, "A", "A")
    # Its group is empty: it takes the group nobody has started (width 4), then helps with B's.
    i = d.next_for("A")
    assert width(i) == 4
    handed.append(i)
    while (i := d.next_for("A" if len(handed) % 2 else "B")) is not None:
        handed.append(i)
    assert sorted(handed) == list(range(len(configs))) and d.remaining() == 0


def test_dispatcher_follows_the_worker_that_ran_a_point():
    """The scheduler gives a point to whichever worker is free, not the one it was sent out for: the worker
    that ran it gets the next point of its group, and a worker whose group is empty joins a group whose
    kernels are compiled (one with a finished point) before a larger one that is still compiling."""
    configs = S.grid(width=[2, 3, 4], seed=range(4))
    d = _driver._Dispatcher(_driver._compile_groups(configs, list(range(len(configs))), None))
    width = lambda i: configs[i]["width"]  # noqa: E731
    a, b = d.next_for("A"), d.next_for("B")
    d.done(a, "B", "A")  # A's point ran on B: B is free and holds a's kernels
    assert d.free_slots({"A": 1, "B": 1}) == [("B", 1)]
    i = d.next_for("B")
    assert width(i) == width(a)
    d.done(b, "A", "B")
    assert width(d.next_for("A")) == width(b)
    # A worker whose group is empty, with no group unstarted, joins a compiled group before a larger one.
    d = _driver._Dispatcher({"g1": collections.deque([0, 1, 2]), "g2": collections.deque([3]),
                             "g3": collections.deque([4, 5, 6, 7])})
    assert [d.next_for(w) for w in "ABC"] == [0, 3, 4]
    d.done(0, "A", "A")  # g1 is compiled; g3 is still compiling on C
    d.done(3, "B", "B")
    assert d.next_for("B") == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_pin_to_cpu_binds_every_thread_of_the_process():
    """A local worker's threads (those running before the call and those started after it) keep to one
    CPU. Run in a child process, so that this one stays unbound."""
    code = """
import os, threading
from flowtools.sweeps import pin_to_cpu
seen, go = {}, threading.Event()
def report(name):
    go.wait()
    seen[name] = sorted(os.sched_getaffinity(0))
before = threading.Thread(target=report, args=("before",))
before.start()
cpu = pin_to_cpu(1)
after = threading.Thread(target=report, args=("after",))
after.start()
go.set(); before.join(); after.join()
print(cpu, sorted(os.sched_getaffinity(0)), seen["before"], seen["after"])
"""
    cpus = sorted(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = cpus[1 % len(cpus)]
    assert out.stdout.split("\n")[0] == f"{expected} [{expected}] [{expected}] [{expected}]"
    with pytest.raises(ValueError, match="index must be an integer ≥ 0"):
        S.pin_to_cpu(-1)


def test_the_task_escape_is_escape_times_under_both_names():
    """The task "escape" is `escape_times`; `sweeps.escape` is the same function, and the module
    `flowtools.escape` is not hidden by it."""
    import flowtools.escape

    from flowtools.sweeps import _tasks

    assert S.TASKS["escape"] is S.escape_times is S.escape
    assert S.escape_times.parameters is S.EscapeParameters
    assert _tasks.resolve_task("escape") == (S.escape_times, "escape")
    assert ft.escape is flowtools.escape and hasattr(ft.escape, "escape_flow")
    with pytest.raises(S.ConfigError, match="did you mean 'radius_fraction'"):
        S.check_configurations("escape", [dict(seed=0, radius_fractoin=0.5)])


def test_escape_t_max_is_the_old_spelling_of_t1_and_old_stores_resume(tmp_path, monkeypatch):
    """The task "escape" reads its horizon as `t1`; `t_max` is accepted with a warning, and a store written
    with `t_max` (before the rename) resumes under either spelling without running its points again."""
    monkeypatch.setenv("FLOWTOOLS_CACHE", "0")
    with pytest.warns(FutureWarning, match=r"'t_max' of task 'escape' is deprecated .* use 't1' instead"):
        assert S.check_configurations("escape", [dict(seed=0, t_max=5.0)]) == [dict(seed=0, t1=5.0)]
    with pytest.raises(S.ConfigError, match="both 't_max' and 't1'"), pytest.warns(FutureWarning):
        S.check_configurations("escape", [dict(seed=0, t_max=5.0, t1=5.0)])
    configs = [dict(seed=0, n=20, t1=50.0)]
    r = S.sweep("escape", configs, tmp_path / "s", workers=0)
    assert (r.n_run, r.n_skipped, r.failed) == (1, 0, [])
    rec = _store.load_record(tmp_path / "s", 0)
    assert rec["config"] == configs[0] and rec["outcomes"]["final_time"] <= 50.0
    old = [dict(seed=0, n=20, t_max=50.0)]
    for path in [tmp_path / "s" / "sweep.json", _store.Store(tmp_path / "s").record_path(0)]:
        text = path.read_text()
        assert text.count('"t1"') == 1
        path.write_text(text.replace('"t1"', '"t_max"'))
    assert _store.load_record(tmp_path / "s", 0)["config"] == old[0]
    r = S.sweep("escape", configs, tmp_path / "s", workers=0, resume=True)
    assert (r.n_run, r.n_skipped) == (0, 1)
    with pytest.warns(FutureWarning, match="'t_max'"):
        r = S.sweep("escape", old, tmp_path / "s", workers=0, resume=True)
    assert (r.n_run, r.n_skipped) == (0, 1)
    with pytest.raises(ValueError, match="holds another sweep"):
        S.sweep("escape", [dict(seed=0, n=20, t1=60.0)], tmp_path / "s", workers=0, resume=True)
    # A point written with t_max merges into a store of the same sweep written with t1.
    merged = tmp_path / "m"
    shutil.copytree(tmp_path / "s", merged, symlinks=True)
    _store.Store(merged).record_path(0).unlink()
    assert json.loads((merged / "sweep.json").read_text())["configurations"] == configs
    assert S.merge_stores(tmp_path / "s", merged) == 1
    assert _store.load_record(merged, 0)["outcomes"] == rec["outcomes"]


def test_the_sweeps_package_keeps_one_concept_per_module():
    """Each private module of flowtools.sweeps says its concept in a docstring, stays under 500 lines and
    imports no private name from another module (a shared helper has a public name); `__init__.py`
    only re-exports."""
    import ast

    folder = pathlib.Path(S.__file__).parent
    modules = sorted(folder.glob("_*.py"))
    assert {m.stem for m in modules} >= {"__init__", "_grid", "_worker", "_tasks", "_parameters", "_store",
                                         "_results", "_driver"}
    for path in modules:
        text = path.read_text()
        tree = ast.parse(text)
        assert ast.get_docstring(tree), f"{path.name} has no docstring"
        assert text.count("\n") < 500, f"{path.name} has {text.count(chr(10))} lines"
        private = [(node.module, a.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.level and node.module for a in node.names if a.name.startswith("_")]
        assert not private, f"{path.name} imports private names {private}"
        if path.name == "__init__.py":
            assert all(isinstance(node, (ast.ImportFrom, ast.Assign)) or (isinstance(node, ast.Expr)
                       and isinstance(node.value, ast.Constant)) for node in tree.body)
            exported = {a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom)
                        for a in node.names}
            assert set(S.__all__) == exported


def test_a_built_in_task_is_recorded_by_its_name_however_it_is_passed(tmp_path, monkeypatch):
    """A built-in task passed as a function is recorded under its `TASKS` name, so that a store made with
    the function resumes with the name; a store that names the task as earlier releases did
    ("flowtools.sweeps:<task>") resumes too, and another task is still refused."""
    monkeypatch.setenv("FLOWTOOLS_CACHE", "0")
    task = _sweep_driver.slow_task
    monkeypatch.setitem(S.TASKS, "critical_points", task)  # a fast stand-in for the built-in function
    configs = S.grid(scale=[1.0], seed=range(2))
    S.sweep(task, configs, tmp_path / "s", workers=0)
    spec = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert spec["task"] == "critical_points"
    S.sweep("critical_points", configs, tmp_path / "s", workers=0, resume=True)
    spec["task"] = "flowtools.sweeps:critical_points"
    (tmp_path / "s" / "sweep.json").write_text(json.dumps(spec))
    S.sweep(task, configs, tmp_path / "s", workers=0, resume=True)
    with pytest.raises(ValueError, match="holds another sweep"):
        S.sweep(SLOW_TASK, configs, tmp_path / "s", workers=0, resume=True)
