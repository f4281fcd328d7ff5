import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

import flowtools as ft  # noqa: E402


@pytest.fixture(scope="session")
def published_data():
    return ft.datasets.maleknia_sato()


@pytest.fixture(scope="session")
def minimal_model():
    return ft.MLP((1, 2, 1), "tanh", bias=False)


@pytest.fixture(scope="session")
def minimal_mse():
    return ft.problems.minimal_model(loss="mse")


@pytest.fixture(scope="session")
def minimal_half():
    return ft.problems.minimal_model(loss="half_mse")


#: The published initial condition (w1, w2, v1, v2) of Maleknia & Sato's reference run.
PUBLISHED_THETA0 = ft.problems.MINIMAL_MODEL_THETA0.copy()


def run_study(path, argv, tmp_path_factory, name: str):
    """Import a study script as a module and run its `main(argv + ["--out", DIR])` with the progress bars
    off and XLA_FLAGS restored afterwards (a serial sweep configures this process). Returns
    (DIR, summary, module)."""
    import importlib.util
    import os

    mp = pytest.MonkeyPatch()
    mp.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    mp.setenv("FLOWTOOLS_PROGRESS", "0")
    spec = importlib.util.spec_from_file_location(f"{name}_study", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp(name)
    try:
        summary = module.main([*argv, "--out", str(out)])
    finally:
        mp.undo()
    return out, summary, module


@pytest.fixture
def cache_dir(tmp_path):
    """A fresh compilation cache (and executable store) under tmp_path, the settings restored after."""
    from flowtools import _cache

    before = (jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir)
    ft.enable_compilation_cache(tmp_path / "jax")
    yield tmp_path / "jax"
    jax.config.update("jax_enable_compilation_cache", before[0])
    jax.config.update("jax_compilation_cache_dir", before[1])
    _cache._reset()


@pytest.fixture
def restore_cache():
    """JAX's compilation-cache settings and flowtools' cache state, restored after the test."""
    from flowtools import _cache

    before = (jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir,
              jax.config.jax_compilation_cache_max_size)
    yield
    jax.config.update("jax_enable_compilation_cache", before[0])
    jax.config.update("jax_compilation_cache_dir", before[1])
    jax.config.update("jax_compilation_cache_max_size", before[2])
    _cache._READ_ONLY.clear()
    _cache._reset()


def record_saves(monkeypatch) -> list:
    """A list that receives a copy of every Trajectory saved from now on (checkpoints included)."""
    import copy

    written = []
    save = ft.Trajectory.save

    def record(self, path):
        written.append(copy.deepcopy(self))
        save(self, path)

    monkeypatch.setattr(ft.Trajectory, "save", record)
    return written
