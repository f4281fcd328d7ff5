"""The persistent compilation cache: where it lives, how it is switched off, and complete entries."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import flowtools as ft
from flowtools import _cache


@pytest.fixture
def restore_cache():
    before = (jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir)
    yield
    jax.config.update("jax_enable_compilation_cache", before[0])
    jax.config.update("jax_compilation_cache_dir", before[1])
    _cache._reset()


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
