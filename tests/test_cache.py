"""The persistent compilation cache: where it lives, how it is switched off, and complete entries."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import flowtools as ft
from flowtools import _cache




def test_default_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("FLOWTOOLS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.default_cache_dir() == str(tmp_path / "xdg" / "flowtools" / "jax")
    monkeypatch.setenv("FLOWTOOLS_CACHE_DIR", str(tmp_path / "mine"))
    assert _cache.default_cache_dir() == str(tmp_path / "mine")


def test_enabled_cache_stores_small_kernels_as_complete_files(tmp_path, restore_cache):
    path = ft.enable_compilation_cache(tmp_path / "jax")
    assert ft.compilation_cache_dir() == path == str(tmp_path / "jax")
    # A kernel that compiles in milliseconds is stored too (no minimum compile time or size).
    jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) * 3.25 + 17.0)(jnp.arange(7.0)))
    names = os.listdir(path)
    entries = [n for n in names if n.endswith("-cache")]
    assert entries, names
    assert not [n for n in names if n.startswith(".tmp-")]  # written through a temporary file
    ft.disable_compilation_cache()
    assert ft.compilation_cache_dir() is None


def test_atomic_put_writes_once(tmp_path):
    class Cache:
        path = tmp_path

    _cache._atomic_put(Cache(), "k", b"first")
    _cache._atomic_put(Cache(), "k", b"second")  # an existing key is kept, as JAX does
    assert (tmp_path / "k-cache").read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["k-cache"]


def test_flowtools_cache_0_switches_it_off(tmp_path):
    env = dict(os.environ, FLOWTOOLS_CACHE="0", FLOWTOOLS_CACHE_DIR=str(tmp_path / "unused"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", "import flowtools; print(flowtools.compilation_cache_dir())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
    assert not (tmp_path / "unused").exists()


# ------------------------------------------------------------------------------------ size bound
def _entries(path):
    return {n: (path / n).stat().st_size for n in os.listdir(path) if n.endswith("-cache")}


def test_size_bound_evicts_least_recently_used_entries(tmp_path):
    """The bounded writer deletes the least recently used entries (by the access time JAX stamps, or
    the modification time of an entry written without one) until the new entry fits."""
    import filelock

    class Cache:
        path = tmp_path
        max_size = 1000
        lock = filelock.FileLock(tmp_path / ".lockfile")
        lock_timeout_secs = 10

    # An entry from an unbounded cache (no access-time file), last written long ago.
    (tmp_path / "old-cache").write_bytes(b"o" * 300)
    os.utime(tmp_path / "old-cache", ns=(10**9, 10**9))
    _cache._bounded_put(Cache(), "a", b"a" * 300)
    _cache._bounded_put(Cache(), "b", b"b" * 300)
    assert set(_entries(tmp_path)) == {"old-cache", "a-cache", "b-cache"}
    # "a" is used again (JAX's get stamps its access time): "old", then "b", are the ones to go.
    (tmp_path / "a-atime").write_bytes((2**62).to_bytes(8, "little"))
    _cache._bounded_put(Cache(), "c", b"c" * 300)
    assert set(_entries(tmp_path)) == {"a-cache", "b-cache", "c-cache"}
    _cache._bounded_put(Cache(), "d", b"d" * 600)
    assert set(_entries(tmp_path)) == {"a-cache", "d-cache"}
    assert sum(_entries(tmp_path).values()) <= 1000
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
    assert not (tmp_path / "b-atime").exists() and (tmp_path / "d-atime").exists()
    with pytest.warns(UserWarning, match="exceeds the compilation cache's bound"):
        _cache._bounded_put(Cache(), "e", b"e" * 1001)
    assert "e-cache" not in _entries(tmp_path)


def test_bounded_cache_stays_under_its_size_with_real_kernels(tmp_path, restore_cache):
    path = tmp_path / "jax"
    path.mkdir()
    (path / "stale-cache").write_bytes(b"x" * 50_000)  # left by an unbounded cache, no access time
    ft.enable_compilation_cache(path, max_size="60k")
    assert jax.config.jax_compilation_cache_max_size == 60 * 1024
    for k in range(6):
        jax.block_until_ready(jax.jit(lambda x, k=k: jnp.sin(x) * (k + 1.5) + jnp.cos(x) ** k)(jnp.ones(5)))
    sizes = _entries(path)
    assert "stale-cache" not in sizes and 0 < sum(sizes.values()) <= 60 * 1024
    assert len(sizes) >= 2  # the newest kernels are kept


def test_size_bound_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("FLOWTOOLS_CACHE_MAX_SIZE", raising=False)
    assert _cache.default_cache_max_size() == 1 << 30
    for value, size in (("500M", 500 << 20), ("2G", 2 << 30), ("123456", 123456), ("none", -1)):
        monkeypatch.setenv("FLOWTOOLS_CACHE_MAX_SIZE", value)
        assert _cache.default_cache_max_size() == size
    monkeypatch.setenv("FLOWTOOLS_CACHE_MAX_SIZE", "lots")
    with pytest.raises(ValueError, match="FLOWTOOLS_CACHE_MAX_SIZE must be a size such as 500M"):
        _cache.default_cache_max_size()
    with pytest.raises(ValueError, match="max_size must be positive"):
        ft.enable_compilation_cache(tmp_path, max_size=0)
    # A new process takes the bound from the environment.
    env = dict(os.environ, FLOWTOOLS_CACHE_DIR=str(tmp_path / "c"), FLOWTOOLS_CACHE_MAX_SIZE="5M")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", "import flowtools, jax; "
                          "print(jax.config.jax_compilation_cache_max_size)"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(5 << 20)


_PATCHES = ("import flowtools, json; from flowtools import _cache; "
            "print(json.dumps([_cache.jax_patches(), flowtools.compilation_cache_dir()]))")


def _patches_in_fresh_process(tmp_path, code, **env_vars):
    env = dict(os.environ, FLOWTOOLS_CACHE_DIR=str(tmp_path / "jax"), **env_vars)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_patches_jax_only_with_the_cache_on(tmp_path):
    """The documented opt-out: FLOWTOOLS_CACHE=0 leaves JAX's cache code untouched on import; the
    default (cache on) and an explicit enable_compilation_cache install both replacements."""
    both = ["jax._src.lru_cache.LRUCache.put", "jax._src.compilation_cache.get_executable_and_time"]
    patches, path = _patches_in_fresh_process(tmp_path, _PATCHES, FLOWTOOLS_CACHE="0")
    assert patches == [] and path is None
    patches, path = _patches_in_fresh_process(tmp_path, _PATCHES, FLOWTOOLS_CACHE="1")
    assert patches == both and path == str(tmp_path / "jax")
    explicit = _PATCHES.replace("import flowtools, json;", "import flowtools, json; "
                                f"flowtools.enable_compilation_cache({str(tmp_path / 'later')!r});")
    patches, path = _patches_in_fresh_process(tmp_path, explicit, FLOWTOOLS_CACHE="0")
    assert patches == both and path == str(tmp_path / "later")
