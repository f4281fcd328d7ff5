"""Sweeps that end whatever their workers do, configurations checked before any point runs, exit codes
and retries of failed points, and stores that survive a damaged record (flowtools.sweeps, flowtools.cli).

Dask runs happen in a driver process of their own (tests/_sweep_driver.py): spawned workers re-import
the main module."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

import flowtools.sweeps as S
from flowtools.sweeps import _store
from flowtools import cli

HERE = pathlib.Path(__file__).resolve().parent
DRIVER = HERE / "_sweep_driver.py"
SLOW_TASK = f"{DRIVER}:slow_task"
FATAL_TASK = f"{DRIVER}:fatal_task"
sys.path.insert(0, str(HERE))
import _sweep_driver  # noqa: E402

#: Seconds any sweep here may take before the test calls it a hang (the points need well under one).
HANG = 240


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ, FLOWTOOLS_PROGRESS="0",
             FLOWTOOLS_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")))
    e.pop("XLA_FLAGS", None)
    e["PYTHONPATH"] = os.pathsep.join([str(HERE.parent)] + [p for p in [e.get("PYTHONPATH")] if p])
    return e


@pytest.fixture
def serial_env(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # restored after the test
    monkeypatch.setenv("FLOWTOOLS_CACHE", "0")
    monkeypatch.setenv("FLOWTOOLS_PROGRESS", "0")


def drive(spec, env, timeout=HANG) -> dict:
    """Run one sweep in a driver process; its summary, with the wall time of the whole process."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(DRIVER), json.dumps(spec)], env=env, cwd=str(HERE),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]), process=time.perf_counter() - t0,
                stderr=proc.stderr)


def assert_values(store, configs, skip=()):
    """Every point but `skip` has its record, with status ok and the values the task gives."""
    for i, c in enumerate(configs):
        if i in skip:
            continue
        rec = S.load_record(store, i)
        assert rec["config"] == c and rec["outcomes"]["status"] == "ok", rec
        want = _sweep_driver.expected(c)
        assert {k: rec["outcomes"][k] for k in want} == want


# --------------------------------------------------------------------------- workers that die
KILLED = 3
POINTS = S.grid(seed=range(8), sleep=0.2, kill=KILLED)


@pytest.fixture(scope="module")
def killed_sweeps(tmp_path_factory, env):
    """For 1 and 2 local workers: a sweep in which point KILLED ends its worker process, run lazily."""
    runs = {}

    def get(workers):
        if workers not in runs:
            store = tmp_path_factory.mktemp(f"kill{workers}") / "faulty"
            spec = dict(task=FATAL_TASK, configs=POINTS, store=str(store), workers=workers)
            runs[workers] = drive(spec, env), store
        return runs[workers]

    return get


@pytest.mark.parametrize("workers", [1, 2])
def test_a_point_that_kills_its_worker_fails_and_the_sweep_ends(killed_sweeps, workers):
    """MUST SHOW: the point whose task ends its worker (os._exit) is run again once (retries=1) on a
    live worker, then recorded as failed with the cause; every other point is recorded with its values;
    the sweep ends (before the fix: no record in 300 s with one worker, a ValueError with two)."""
    faulty, store = killed_sweeps(workers)
    assert [i for i, _ in faulty["failed"]] == [KILLED] and faulty["n_run"] == len(POINTS) - 1
    assert "KilledWorker" in faulty["failed"][0][1] and "2 run(s)" in faulty["failed"][0][1]
    rec = S.load_record(store, KILLED)
    assert rec["outcomes"]["status"] == S.FAILED and "KilledWorker" in rec["error"]
    assert_values(store, POINTS, skip={KILLED})
    ds = S.open_results(store)
    assert bool(ds["finished"].all()) and list(ds["status"].values).count("failed") == 1


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_worker_deaths_cost_their_restarts_and_no_more(killed_sweeps, env, tmp_path, workers):
    """MUST SHOW: the sweep with a worker-killing point ends within twice the time of the same sweep
    without it. Each death costs a worker restart; a restarted local worker is a fork of a process that
    has already imported flowtools and JAX (`sweeps._worker.start_forkserver`), so the restart no longer
    imports them again while the points wait (before: 1 worker 2.19×, 2 workers 1.40×)."""
    faulty, _ = killed_sweeps(workers)
    healthy = drive(dict(task=FATAL_TASK, configs=[dict(c, kill=-1) for c in POINTS],
                         store=str(tmp_path / "healthy"), workers=workers), env)
    assert healthy["failed"] == [] and healthy["n_run"] == len(POINTS)
    start = healthy["timings"]["cluster"] + healthy["timings"]["workers"]
    print(f"workers={workers}: healthy sweep {healthy['wall']:.1f} s (cluster and worker start "
          f"{start:.1f} s), with a worker-killing point {faulty['wall']:.1f} s: "
          f"ratio {faulty['wall'] / healthy['wall']:.2f}")
    assert faulty["wall"] <= 2 * healthy["wall"]


def test_local_workers_start_as_forks_of_a_preloaded_process(env):
    """The local cluster's workers are forked from a server that has imported JAX and flowtools but not
    started XLA (so each worker still reads its own one-thread XLA flags), and starting that server
    leaves the driver's environment as it was."""
    code = ("import concurrent.futures as cf, json, multiprocessing as mp, os\n"
            "import flowtools.sweeps._worker as W, _sweep_driver as D\n"
            "before = dict(os.environ)\n"
            "assert W.start_forkserver()\n"
            "with cf.ProcessPoolExecutor(1, mp_context=mp.get_context('forkserver')) as ex:\n"
            "    facts = ex.submit(D.worker_facts).result()\n"
            "print(json.dumps(dict(facts, env_kept=dict(os.environ) == before)))\n")
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=os.pathsep.join(
        [str(HERE.parent), str(HERE)])), cwd=str(HERE), capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["jax_imported"] and not facts["xla_started"] and facts["env_kept"], facts
    assert S.XLA_SINGLE_THREAD in facts["xla_flags"]


def failing_starts(env, tmp_path, fail_at):
    """`env` with a worker preload that makes the worker starts `fail_at` fail (tests/_die_on_start.py)."""
    return dict(env, DASK_DISTRIBUTED__WORKER__PRELOAD=json.dumps([str(HERE / "_die_on_start.py")]),
                FLOWTOOLS_TEST_STARTS=str(tmp_path / "starts"), FLOWTOOLS_TEST_FAIL_AT=fail_at)


def test_a_local_worker_dask_gives_up_on_is_replaced(env, tmp_path):
    """MUST SHOW: with one local worker, the point KILLED ends it and its new process fails while it
    starts, so Dask's nanny gives up on it (closes). The sweep starts another worker, with a warning
    naming the cause, and finishes: KILLED failed after its two runs, every other point recorded. Before,
    the cluster stayed without a worker and the sweep ended after worker_timeout with points unfinished
    (3 run, 5 listed as not finished)."""
    store = tmp_path / "store"
    out = drive(dict(task=FATAL_TASK, configs=POINTS, store=str(store), workers=1, worker_timeout=60),
                failing_starts(env, tmp_path, "2"))
    assert "local worker 0 is gone and Dask will not start it again: its nanny gave up" in out["stderr"]
    assert "starts worker 1 instead (1 of at most 2 replacements)" in out["stderr"]
    assert [i for i, _ in out["failed"]] == [KILLED] and "KilledWorker" in out["failed"][0][1]
    assert out["n_run"] == len(POINTS) - 1
    assert_values(store, POINTS, skip={KILLED})
    assert len((tmp_path / "starts").read_text().split()) >= 3  # the first, the failed one, its replacement


def test_a_sweep_ends_when_replaced_workers_keep_failing(env, tmp_path):
    """Every worker start after the first fails: the sweep replaces the lost worker a bounded number of
    times (retries + 1 per worker), says so, and ends after worker_timeout with the points not run
    listed as unfinished (a resume runs them). Before, this sweep never ended (stopped after 150 s with
    worker_timeout=5): the driver waited for the result of a point that had died with its worker."""
    store = tmp_path / "store"
    out = drive(dict(task=FATAL_TASK, configs=POINTS, store=str(store), workers=1, worker_timeout=5),
                failing_starts(env, tmp_path, "2-"), timeout=HANG)
    assert "lost and not replaced: the sweep has replaced 2 already (at most 2)" in out["stderr"]
    assert out["n_run"] + len(out["failed"]) == len(POINTS) and out["n_run"] < len(POINTS)
    unfinished = [i for i, why in out["failed"] if "no live worker for 5 s" in why]
    assert unfinished and all(not _store.Store(store).record_path(i).exists() for i in unfinished)


def test_resume_and_retry_of_a_store_with_a_failed_point(killed_sweeps, env, tmp_path, serial_env):
    """A resume of that store ends at once (the failed point has its record); --retry-failed runs that
    point alone again, on a worker (here with retries=0: one run), and it fails again with its cause
    while the others stay untouched."""
    import shutil

    _, source = killed_sweeps(1)
    store = tmp_path / "copy"
    shutil.copytree(source, store, symlinks=True)
    before = {p.name: p.read_bytes() for p in (store / "points").glob("[0-9]*.json")}
    r = S.sweep(FATAL_TASK, POINTS, store, workers=1, resume=True)  # nothing to run: no cluster starts
    assert (r.n_run, r.n_skipped, r.failed) == (0, len(POINTS), [])
    out = drive(dict(task=FATAL_TASK, configs=POINTS, store=str(store), workers=1, retry_failed=True,
                     retries=0), env)
    assert (out["n_run"], out["n_skipped"]) == (0, len(POINTS) - 1)
    assert [i for i, _ in out["failed"]] == [KILLED] and "1 run(s)" in out["failed"][0][1]
    after = {p.name: p.read_bytes() for p in (store / "points").glob("[0-9]*.json")}
    assert {k: v for k, v in after.items() if k != f"{KILLED:07d}.json"} == \
        {k: v for k, v in before.items() if k != f"{KILLED:07d}.json"}


def _start(args, env, log):
    return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc):
    """SIGKILL a dask process and its children (the nanny's worker), as a lost node would vanish."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _n_records(store) -> int:
    return len(list((store / "points").glob("[0-9]*.json"))) if (store / "points").is_dir() else 0


def _wait(condition, what, proc, timeout=HANG):
    t0 = time.time()
    while not condition():
        assert proc.poll() is None or condition(), f"the driver ended before {what}"
        assert time.time() - t0 < timeout, f"no {what} within {timeout} s"
        time.sleep(0.05)


def test_cluster_started_apart_workers_leave_and_join(tmp_path, env, serial_env):
    """MUST SHOW: on a scheduler and workers started apart from the sweep (127.0.0.1), worker A is killed
    mid-sweep, C joins, then B (the last of the first two) is killed: no point is lost, and the records
    equal those of a serial run (timings aside). Before the fix, points bound to a dead worker's address
    waited forever."""
    configs = S.grid(seed=range(16), sleep=0.3, scale=1.5)
    assert S.sweep(SLOW_TASK, configs, tmp_path / "serial", workers=0).n_run == len(configs)
    worker_env = dict(env, **S.worker_environment())
    sched_file = tmp_path / "scheduler.json"
    store = tmp_path / "cluster"
    procs = {}
    log = open(tmp_path / "dask.log", "w")
    try:
        procs["scheduler"] = _start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                     "--scheduler-file", str(sched_file)], env, log)
        _wait(lambda: sched_file.exists() and sched_file.stat().st_size, "scheduler file", procs["scheduler"])
        worker = ["worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--no-dashboard",
                  "--host", "127.0.0.1"]
        for name in ("A", "B"):
            procs[name] = _start(worker + ["--name", name], worker_env, log)
        address = json.loads(sched_file.read_text())["address"]
        driver = subprocess.Popen([sys.executable, str(DRIVER), json.dumps(dict(
            task=SLOW_TASK, configs=configs, store=str(store), scheduler=address))], env=env, cwd=str(HERE),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs["driver"] = driver
        _wait(lambda: _n_records(store) >= 3, "3 records", driver)
        _stop(procs["A"])
        procs["C"] = _start(worker + ["--name", "C"], worker_env, log)
        k = _n_records(store)
        _wait(lambda: _n_records(store) >= k + 3, "3 more records after A left", driver)
        _stop(procs["B"])
        left = len(configs) - _n_records(store)  # points only C can run
        out, err = driver.communicate(timeout=HANG)
        assert driver.returncode == 0, err[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL) if proc is not procs.get("driver") else proc.kill()
                proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "dask.log").read_text()
    for name in ("A", "B"):
        assert f"name: {name} (stimulus_id" in text, text[-3000:]  # the scheduler saw each leave
    assert "name: C" in text and left > 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["failed"] == [] and summary["n_run"] == len(configs)
    assert sorted(int(p.stem) for p in (store / "points").glob("[0-9]*.json")) == list(range(len(configs)))
    for i in range(len(configs)):
        a, b = S.load_record(tmp_path / "serial", i), S.load_record(store, i)
        for rec in (a, b):
            rec["outcomes"].pop("wall_time")
        assert a == b, i


def test_a_scheduler_without_workers_ends_the_sweep_after_worker_timeout(tmp_path, env, serial_env):
    """With no worker at all, the sweep waits `worker_timeout` seconds for one to join, then ends: every
    point is listed as failed with the cause and none has a record, so a resume runs them."""
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "w")
    scheduler = _start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                        "--scheduler-file", str(sched_file)], env, log)
    try:
        _wait(lambda: sched_file.exists() and sched_file.stat().st_size, "scheduler file", scheduler)
        address = json.loads(sched_file.read_text())["address"]
        t0 = time.perf_counter()
        r = S.sweep(SLOW_TASK, S.grid(seed=range(3)), tmp_path / "s", scheduler=address, worker_timeout=2.0)
        waited = time.perf_counter() - t0
    finally:
        _stop(scheduler)
        log.close()
    assert sorted(i for i, _ in r.failed) == [0, 1, 2] and r.n_run == 0
    assert all("no live worker for 2 s" in why for _, why in r.failed)
    assert not list((tmp_path / "s" / "points").glob("[0-9]*.json")) and waited < 60


# ------------------------------------------------------------------------------ strict configs
def _toml(path, body, store):
    path.write_text(f'task = "flow_itinerary"\nstore = "{store}"\n' + body)
    return path


@pytest.mark.parametrize("body, says", [
    ("[grid]\nseed = [0, 1]\n[fixed]\nwidht = 3\n", "unknown key 'widht' (did you mean 'width'?)"),
    ("[grid]\nseed = [0, 1]\n[fixed]\nseed = 4\n", "'seed' in both [fixed] and [grid]"),
    ("[[points]]\nseed = 0\nwidth = 2\n[fixed]\nwidth = 3\n", "'width' in both [fixed] and [[points]]"),
    ('[grid]\nseed = [0, 1]\n[fixed]\nt1 = "soon"\n', "t1 = 'soon': input should be a valid number"),
    ("[grid]\nseed = [0, 1]\n[fixed]\nt1 = -5\n", "t1 = -5: input should be greater than 0"),
    ('[grid]\nseed = [0, 1]\n[fixed]\nactivation = "tahn"\n', "did you mean 'tanh'?"),
    ("[grid]\nseed = [0, 1]\nwidth = [2, 0]\n", "width = 0: input should be greater than or equal to 1"),
    ("[grid]\nseed = [0]\n[fixed]\nbias = 1\n", "bias = 1: input should be a valid boolean"),
    ('[grid]\nseed = [0]\n[fixed]\nsolver = "bfd"\n', "did you mean 'bdf'?"),
])
def test_cli_refuses_a_bad_configuration_before_any_point_runs(tmp_path, capsys, serial_env, body, says):
    """MUST SHOW: a misspelt or mistyped key, a value out of range or not among the names, and a key
    both fixed and varied: exit code 2, one paragraph naming the key (no traceback), and nothing run."""
    store = tmp_path / "store"
    code = cli.main(["sweep", str(_toml(tmp_path / "s.toml", body, store)), "--serial"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and says in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not store.exists()


def test_python_api_checks_configurations_against_the_task(tmp_path, serial_env):
    configs = S.grid(seed=range(3), widht=3, t1=1e3)
    with pytest.raises(S.ConfigError, match=r"unknown key 'widht' \(did you mean 'width'\?\) \[3 points"):
        S.sweep("flow_itinerary", configs, tmp_path / "s", workers=0)
    assert not (tmp_path / "s").exists()
    with pytest.raises(S.ConfigError, match="radius_fraction = 0.0: input should be greater than 0"):
        S.check_configurations("escape", [dict(seed=0, radius_fraction=0.0)])
    with pytest.raises(S.ConfigError, match=r"unknown key 'gtol' \(the task reads \["):
        S.check_configurations("escape", [dict(seed=0, gtol=1e-9)])  # escape stops at the exit, not at gtol
    with pytest.raises(S.ConfigError, match="n = True: input should be a valid integer"):
        S.check_configurations("critical_points", [dict(seed=0, n=True)])
    # Accepted configurations keep only what was given (the store is labelled by it); ints pass as floats.
    ok = S.check_configurations("flow_itinerary", [dict(seed=1, width=3, t1=100, activation="erf")])
    assert ok == [dict(seed=1, width=3, t1=100, activation="erf")]
    for name, fn in S.TASKS.items():
        assert issubclass(fn.parameters, S.ProblemParameters), name

    # A task of one's own declares its parameters the same way; one without a declaration is not checked.
    import pydantic

    def task(config):
        return dict(status="ok")

    class Declared(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid", strict=True)
        seed: int
        depth: int = pydantic.Field(1, ge=1)

    task.parameters = Declared
    with pytest.raises(S.ConfigError, match="depth = 0"):
        S.sweep(task, [dict(seed=0, depth=0)], tmp_path / "own", workers=0)
    loose = [dict(seed=0, anything="goes")]
    assert S.check_configurations(SLOW_TASK, loose) == loose


# ------------------------------------------------------------------------- exit codes, retries
def test_exit_code_counts_and_retry_failed(tmp_path, capsys, serial_env, monkeypatch):
    """MUST SHOW: when a point errors, `flowtools sweep` exits 1 and says how many failed and errored and
    where the records are; --retry-failed then runs that point alone (the others' records unchanged)."""
    store = tmp_path / "store"
    toml = tmp_path / "s.toml"
    toml.write_text(f'task = "{DRIVER}:flaky_task"\nstore = "{store}"\n[grid]\nseed = [0, 1, 2]\n')
    monkeypatch.setenv("FLOWTOOLS_TEST_BROKEN_SEED", "1")
    assert cli.main(["sweep", str(toml), "--serial"]) == cli.EXIT_POINTS_FAILED
    err = capsys.readouterr().err
    assert "0 failed" in err and "1 errors" in err and f"{store / 'points'}/" in err
    assert "point 1: RuntimeError: seed 1 is broken" in err
    before = {i: _store.Store(store).record_path(i).read_bytes() for i in (0, 2)}
    monkeypatch.delenv("FLOWTOOLS_TEST_BROKEN_SEED")
    assert cli.main(["sweep", str(toml), "--serial"]) == cli.EXIT_USAGE  # finished points, no --resume
    assert cli.main(["sweep", str(toml), "--serial", "--resume"]) == cli.EXIT_POINTS_FAILED  # still errored
    capsys.readouterr()
    assert cli.main(["sweep", str(toml), "--serial", "--retry-failed"]) == cli.EXIT_OK
    assert "1 run, 2 skipped, 0 failed, 0 errors" in capsys.readouterr().out
    assert {i: _store.Store(store).record_path(i).read_bytes() for i in (0, 2)} == before
    assert list(S.open_results(store)["status"].values) == ["ok"] * 3
    # The Python API: the same option.
    monkeypatch.setenv("FLOWTOOLS_TEST_BROKEN_SEED", "2")
    r = S.sweep(f"{DRIVER}:flaky_task", S.grid(seed=[0, 1, 2]), tmp_path / "api", workers=0)
    assert [i for i, _ in r.errors] == [2] and r.failed == []
    monkeypatch.delenv("FLOWTOOLS_TEST_BROKEN_SEED")
    r = S.sweep(f"{DRIVER}:flaky_task", S.grid(seed=[0, 1, 2]), tmp_path / "api", workers=0,
                retry_failed=True)
    assert (r.n_run, r.n_skipped, r.errors) == (1, 2, [])


# -------------------------------------------------------------------------- damaged records
def _damage(store):
    """Three kinds of damage: a truncated file, an empty object, a record without its status."""
    st = _store.Store(store)
    text = st.record_path(1).read_text()
    st.record_path(1).write_text(text[: len(text) // 2])
    st.record_path(2).write_text("{}")
    rec = json.loads(st.record_path(3).read_text())
    del rec["outcomes"]["status"]
    st.record_path(3).write_text(json.dumps(rec))
    return {1: "not valid JSON", 2: "no 'config' field", 3: "no 'status'"}


def test_every_reader_skips_a_damaged_record_and_resume_reruns_it(tmp_path, serial_env, capsys):
    """MUST SHOW: with damaged records (truncated JSON, `{}`, no status), open_results, merged_graph,
    merge_stores and load_record name the file; the points count as not finished; --resume reruns
    exactly them, and the store is whole again with the task's values."""
    configs = S.grid(seed=range(5), scale=2.0)
    store = tmp_path / "store"
    S.sweep(SLOW_TASK, configs, store, workers=0)
    damage = _damage(store)
    names = "|".join(f"{i:07d}.json" for i in damage)
    with pytest.warns(S.DamagedRecordWarning, match=names) as seen:
        ds = S.open_results(store)  # results.zarr still says finished: the records decide
    assert len(seen) == 3
    for w in seen:
        i = int(pathlib.Path(str(w.message).split(":")[0]).stem)
        assert damage[i] in str(w.message)
    assert list(ds["finished"].values) == [True, False, False, False, True]
    with pytest.warns(S.DamagedRecordWarning):
        assert S.merged_graph(store).n_trajectories == 0
    with pytest.raises(ValueError, match=f"{store / 'points' / '0000002.json'}.*no 'config' field"):
        S.load_record(store, 2)
    # merge_stores: damaged records of the source are skipped, damaged ones of the target replaced.
    other = tmp_path / "other"
    S.sweep(SLOW_TASK, configs, other, workers=0)
    with pytest.warns(S.DamagedRecordWarning, match=names):
        assert S.merge_stores(store, other) == 0
    # flowtools check lists them; the resume runs exactly them.
    assert cli.main(["check", str(store)]) == cli.EXIT_POINTS_FAILED
    out = capsys.readouterr().out
    assert "3 damaged" in out and all(f"{i:07d}.json: {why}" in out for i, why in damage.items())
    with pytest.warns(S.DamagedRecordWarning):
        r = S.sweep(SLOW_TASK, configs, store, workers=0, resume=True)
    assert (r.n_run, r.n_skipped) == (3, 2)
    assert cli.main(["check", str(store)]) == cli.EXIT_OK
    assert_values(store, configs)
    assert bool(S.open_results(store)["finished"].all())
    # A damaged store merges into a whole one: the whole copies of its damaged points win.
    fresh = tmp_path / "fresh"
    S.sweep(SLOW_TASK, configs, fresh, workers=0)
    _damage(fresh)
    with pytest.warns(S.DamagedRecordWarning):
        assert S.merge_stores(store, fresh) == 3
    assert_values(fresh, configs)


def test_check_quarantine_moves_damaged_records_aside(tmp_path, serial_env, capsys):
    configs = S.grid(seed=range(5))
    store = tmp_path / "store"
    S.sweep(SLOW_TASK, configs, store, workers=0)
    _damage(store)
    assert cli.main(["check", str(store), "--quarantine"]) == cli.EXIT_OK
    assert "moved into" in capsys.readouterr().out
    assert sorted(p.name for p in (store / "quarantine").iterdir()) == [f"{i:07d}.json" for i in (1, 2, 3)]
    assert S.check_store(store) == []
    assert list(S.open_results(store)["finished"].values) == [True, False, False, False, True]
    assert cli.main(["check", str(tmp_path / "nowhere")]) == cli.EXIT_USAGE
    assert "not a sweep store" in capsys.readouterr().err


def test_importing_flowtools_does_not_start_xla():
    """A worker sets XLA's thread flags after importing flowtools (`configure_worker`); anything that runs
    a JAX computation at import (a probe of a built-in teacher, say) would start XLA with the defaults and
    break bit-identical results between a serial and a distributed sweep."""
    code = ("import flowtools, flowtools.sweeps._worker as W, flowtools.datasets, flowtools.problems; "
            "print(W._xla_started())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[1])))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
