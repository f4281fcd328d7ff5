"""Compiled executables on disk (flowtools._aot): the key, the round trip through a second process,
and the fallback to an ordinary compile when an entry is damaged or cannot be keyed."""

import json
import os
import subprocess
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowtools as ft
from flowtools import _aot, _cache
from flowtools.dynamics import flow

THETA = np.array([-0.13, 0.13, 0.16, -0.15])


def _key(problem, theta=THETA):
    return _aot.key("k", (0.0, jnp.asarray(theta), problem), {}, {})


def test_key_follows_shapes_and_static_fields_but_not_data_values(published_data):
    mlp = ft.MLP((1, 2, 1), "tanh", bias=False)
    base = _key(ft.Problem(mlp, published_data, "mse"))
    assert _key(ft.Problem(ft.MLP((1, 2, 1), "tanh", bias=False), published_data, "mse")) == base
    # new data of the same shape: the same executable
    moved = ft.Dataset(np.asarray(published_data.x) + 1.0, np.asarray(published_data.y),
                       published_data.teacher, 0.0, "moved")
    assert _key(ft.Problem(mlp, moved, "mse")) == base
    assert _key(ft.Problem(mlp, published_data, "mse"), THETA + 1.0) == base
    # anything that changes the program changes the key
    assert _key(ft.Problem(mlp, published_data, "half_mse")) != base
    assert _key(ft.Problem(ft.MLP((1, 2, 1), "relu", bias=False), published_data, "mse")) != base
    assert _key(ft.Problem(ft.MLP((1, 3, 1), "tanh", bias=False), published_data, "mse"),
                np.zeros(6)) != base
    assert _key(ft.Problem(mlp, published_data, "mse"), THETA.astype(np.float32)) != base
    assert _aot.key("k", (1.0, jnp.asarray(THETA)), {}, {}) != _aot.key("k", (2.0, jnp.asarray(THETA)), {}, {})
    assert _aot.key("k", (), {}, {"xla_opt": False}) != _aot.key("k", (), {}, {})


def test_a_users_own_function_cannot_be_keyed(published_data):
    act = ft.Activation("mine", lambda z: jnp.tanh(z) + 0.0 * z)
    problem = ft.Problem(ft.MLP((1, 2, 1), act, bias=False), published_data, "mse")
    with pytest.raises(_aot.Unkeyable):
        _key(problem)


def test_functions_are_told_apart_by_their_code_and_closures():
    f, g = (lambda z: z + 1.0), (lambda z: z * 2.0)  # one line: the same name and line number
    h = (lambda c: (lambda z: z * c))
    for fn in (f, g):
        fn.__module__ = "flowtools.example"
    a, b, a2 = h(2.0), h(3.0), h(2.0)
    a.__module__ = b.__module__ = a2.__module__ = "flowtools.example"
    assert _aot.describe(f) != _aot.describe(g)
    assert _aot.describe(a) != _aot.describe(b)  # the closed-over value is part of the program
    assert _aot.describe(a) == _aot.describe(a2)


def _vector_field_call(problem):
    return flow._vector_field, (0.0, jnp.asarray(THETA), problem), {}


def test_damaged_entries_fall_back_to_a_compile_and_are_rewritten(cache_dir, minimal_mse):
    fn, args, kw = _vector_field_call(minimal_mse)
    exe, source = _aot.compiled(fn, args, kw)
    assert source == "compiled"
    (entry,) = [p for p in (cache_dir / "aot").iterdir() if p.suffix == ".exe"]
    expected = np.asarray(exe(*args, **kw))
    np.testing.assert_allclose(expected, np.asarray(fn(*args, **kw)), rtol=1e-14, atol=1e-16)
    exe, source = _aot.compiled(fn, args, kw)
    assert source == "loaded"
    np.testing.assert_array_equal(np.asarray(exe(*args, **kw)), expected)

    good = entry.read_bytes()
    head = len(_aot._MAGIC) + 32
    flipped = bytearray(good)
    flipped[head + len(good[head:]) // 2] ^= 0xFF
    import hashlib
    import pickle
    body = pickle.loads(good[head:])
    body["payload"] = b"not an executable"
    garbage = pickle.dumps(body)
    damages = {
        "truncated": good[: len(good) // 2],
        "flipped byte": bytes(flipped),
        "empty": b"",
        "valid checksum, broken executable": _aot._MAGIC + hashlib.sha256(garbage).digest() + garbage,
    }
    for what, data in damages.items():
        entry.write_bytes(data)
        for name in os.listdir(cache_dir):  # JAX's own entries: XLA compiles again, so it is stored
            if name.endswith("-cache"):
                os.unlink(cache_dir / name)
        with pytest.warns(RuntimeWarning, match="ignoring the compiled-executable cache entry"):
            exe, source = _aot.compiled(fn, args, kw)
        assert source == "compiled", what
        np.testing.assert_array_equal(np.asarray(exe(*args, **kw)), expected)
        assert entry.read_bytes() != data, what  # rewritten
        assert _aot.compiled(fn, args, kw)[1] == "loaded", what
    # With JAX's entry present, the fallback is served by JAX's cache: not stored, but the damaged
    # file is removed, so that later processes do not warn again.
    entry.write_bytes(b"damaged")
    with pytest.warns(RuntimeWarning, match="ignoring"):
        exe, source = _aot.compiled(fn, args, kw)
    assert source == "compiled, not stored: served by JAX's cache" and not entry.exists()
    np.testing.assert_array_equal(np.asarray(exe(*args, **kw)), expected)


def test_an_entry_under_another_key_is_not_used(cache_dir, minimal_mse):
    fn, args, kw = _vector_field_call(minimal_mse)
    _aot.compiled(fn, args, kw)
    (entry,) = (cache_dir / "aot").glob("*.exe")
    full_key = _aot.key("flowtools.dynamics.flow._vector_field", args, kw,
                        _cache.requested_compiler_options())
    assert _aot.load(str(entry), full_key) is not None
    with pytest.warns(RuntimeWarning, match="another key"):
        assert _aot.load(str(entry), full_key + " ") is None


def test_a_writer_holding_the_lock_is_left_alone(cache_dir, minimal_mse):
    fn, args, kw = _vector_field_call(minimal_mse)
    exe = _aot.compile_function(fn, args, kw, {}, for_store=True)
    assert exe.storable
    path = str(cache_dir / "aot" / "x.exe")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path + ".lock", "w").close()
    assert not _aot.store(path, "key", exe) and not os.path.exists(path)
    old = time.time() - 2 * _aot._LOCK_STALE_S  # a writer that died long ago
    os.utime(path + ".lock", (old, old))
    assert _aot.store(path, "key", exe) and os.path.exists(path)
    assert not os.path.exists(path + ".lock")
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".tmp-")]


def test_user_functions_and_a_disabled_cache_take_the_ordinary_path(cache_dir, published_data):
    act = ft.Activation("mine", lambda z: jnp.tanh(z))
    fn, args, kw = _vector_field_call(ft.Problem(ft.MLP((1, 2, 1), act, bias=False), published_data))
    exe, source = _aot.compiled(fn, args, kw)
    assert source.startswith("compiled, not cached") and "not part of flowtools" in source
    assert not (cache_dir / "aot").exists()
    ft.disable_compilation_cache()
    assert _aot.compiled(fn, args, kw)[1] == "compiled, not cached: the persistent cache is off"


_SCRIPT = """
import json, numpy as np, flowtools as ft
from flowtools.dynamics import flow
problem = ft.problems.minimal_model(loss="mse")
tr = ft.gradient_flow(problem, ft.problems.MINIMAL_MODEL_THETA0, t1=20.0)
print(json.dumps(dict(source=list(flow._COMPILED_FROM.values()), status=str(tr.status),
                      theta=[float(v).hex() for v in tr.final_theta], steps=tr.stats["steps"])))
"""


def _fresh_process(script: str, tmp_path) -> dict:
    """Run `script` in a new Python process with the persistent cache in tmp_path; its last line's JSON."""
    env = dict(os.environ, FLOWTOOLS_CACHE_DIR=str(tmp_path / "jax"), FLOWTOOLS_PROGRESS="0")
    env.pop("FLOWTOOLS_CACHE", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_flow_and_gets_the_same_result(tmp_path):
    """The real thing: a fresh process loads the first one's executable (no LAPACK set up by a
    lowering) and runs the BDF solve to the same bits. Without the store's entry, JAX's cache serves
    the program, and that executable is not stored: on CPU it would serialize without its kernels and
    crash the process after."""
    runs = [_fresh_process(_SCRIPT, tmp_path), _fresh_process(_SCRIPT, tmp_path)]
    assert runs[0]["source"] == ["compiled"] and runs[1]["source"] == ["loaded"]
    for entry in (tmp_path / "jax" / "aot").glob("*.exe"):
        entry.unlink()
    runs += [_fresh_process(_SCRIPT, tmp_path), _fresh_process(_SCRIPT, tmp_path)]
    assert runs[2]["source"] == runs[3]["source"] == ["compiled, not stored: served by JAX's cache"]
    for r in runs:
        assert r["status"] == "t1_reached"
        assert r["theta"] == runs[0]["theta"] and r["steps"] == runs[0]["steps"]


def test_the_store_keeps_its_most_recently_used_entries(tmp_path):
    for i, name in enumerate(["old.exe", "mid.exe", "new.exe", "kept.exe"]):
        (tmp_path / name).write_bytes(b"x" * 100)
        t = 1_000_000 + (0 if name == "kept.exe" else 10 * (i + 1))  # kept.exe: oldest, but just written
        os.utime(tmp_path / name, (t, t))
    (tmp_path / "other.txt").write_bytes(b"x" * 1000)  # not an entry: never counted or deleted
    _aot._prune(str(tmp_path), keep=str(tmp_path / "kept.exe"), limit=250)
    assert sorted(os.listdir(tmp_path)) == ["kept.exe", "new.exe", "other.txt"]


_ESCAPE_SCRIPT = """
import json, numpy as np, flowtools as ft
from flowtools.escape import _flow
problem = ft.problems.minimal_model(loss="mse")
theta0 = np.asarray(ft.problems.MINIMAL_MODEL_THETA0)
run = ft.escape.escape_flow(problem, theta0, theta0, 0.05, t1=50.0, metric="parameter")
print(json.dumps(dict(source=list(_flow._COMPILED_FROM.values()), status=str(run.trajectory.status),
                      theta=[float(v).hex() for v in run.trajectory.final_theta])))
"""


def test_a_second_process_loads_the_escape_flow_and_gets_the_same_result(tmp_path):
    """escape_flow's solve (an event located by bisection inside diffeqsolve) goes through the store: its
    equinox checks (diffrax's of SaveAt.ts, optimistix's bracket) are traced to return NaN instead of
    calling back into Python, so a second process loads it and reaches the same bits."""
    first, second = _fresh_process(_ESCAPE_SCRIPT, tmp_path), _fresh_process(_ESCAPE_SCRIPT, tmp_path)
    assert first["source"] == ["compiled"] and second["source"] == ["loaded"]
    assert first["status"] == second["status"] and first["theta"] == second["theta"]


def _checked(x):
    return eqx.error_if(x, x < 0, "x must be non-negative") + 1.0


def test_checks_in_a_stored_program_return_nan_and_raise_elsewhere(cache_dir):
    """A program meant for the store is traced with equinox's checks returning NaN (storable: no
    callback), also after the same check was traced to raise; the same function compiled otherwise, and
    a user's own jitted check afterwards, still raise."""
    import equinox._errors as eqx_errors

    assert float(jax.jit(_checked)(jnp.asarray(1.0))) == 2.0  # the same check traced to raise, first
    stored = _aot.compile_function(_checked, (jnp.asarray(1.0),), {}, {}, for_store=True)
    assert stored.storable and eqx_errors.EQX_ON_ERROR == "raise"
    assert float(stored(jnp.asarray(2.0))) == 3.0 and np.isnan(float(stored(jnp.asarray(-2.0))))
    plain = _aot.compile_function(_checked, (jnp.asarray(1.0),), {}, {}, for_store=False)
    assert not plain.storable and float(plain(jnp.asarray(2.0))) == 3.0
    with pytest.raises(Exception, match="x must be non-negative"):
        jax.block_until_ready(plain(jnp.asarray(-2.0)))
    with pytest.raises(Exception, match="x must be non-negative"):
        jax.block_until_ready(jax.jit(_checked)(jnp.asarray(-3.0)))


def test_a_trace_for_the_store_leaves_other_threads_checks_alone():
    """While one thread traces for the store, a user's check traced in another thread still raises, and
    it does afterwards too (the NaN mode follows the thread, not a swapped global)."""
    import threading

    inside, done, errors = threading.Event(), threading.Event(), []

    def store_thread():
        with _aot._checks_return_nan(True):
            inside.set()
            done.wait(60)

    def user(x):
        return eqx.error_if(x, x < 0, "user check") * 3.0

    t = threading.Thread(target=store_thread)
    t.start()
    assert inside.wait(60)
    try:
        with pytest.raises(Exception, match="user check"):
            jax.block_until_ready(jax.jit(user)(jnp.asarray(-1.0)))
    except BaseException as err:  # noqa: BLE001 - report after the other thread is released
        errors.append(err)
    done.set()
    t.join()
    assert not errors, errors
    with pytest.raises(Exception, match="user check"):
        jax.block_until_ready(jax.jit(user)(jnp.asarray(-2.0)))
