"""Atomic writes give result files the permissions an ordinary open() would (0o666 minus the umask)."""

import os
import stat

import numpy as np
import pytest

import flowtools as ft

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda m: os.umask(m)
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
def test_atomic_files_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open(path, "w") gives
    ft.io.atomic_write_text(tmp_path / "a.txt", "hello")
    ft.io.write_json(tmp_path / "b.json", {"a": 1})
    ft.io.write_npz(tmp_path / "c.npz", x=np.arange(3.0))
    for name in ("a.txt", "b.json", "c.npz"):
        assert _mode(tmp_path / name) == 0o666 & ~mask == _mode(plain), name


def test_default_umask_gives_readable_results(tmp_path, umask):
    umask(0o022)
    ft.io.write_json(tmp_path / "sub" / "summary.json", {"ok": True})
    mode = _mode(tmp_path / "sub" / "summary.json")
    assert mode == 0o644
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH  # others can read (was 0o600 from mkstemp)


def test_replacing_a_private_file_gives_the_umask_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "r.json"
    path.write_text("{}")
    os.chmod(path, 0o600)  # a result written by an older version
    ft.io.write_json(path, {"new": 1})
    assert _mode(path) == 0o644 and ft.io.read_json(path) == {"new": 1}


def test_umask_read_does_not_change_it(umask):
    umask(0o027)
    assert ft.io._umask() == 0o027
    assert ft.io._umask() == 0o027
    current = os.umask(0o027)
    assert current == 0o027


def test_umask_fallback_without_proc(monkeypatch, umask):
    umask(0o007)

    def no_proc(*args, **kwargs):
        raise OSError("no /proc (simulated)")

    monkeypatch.setattr("builtins.open", no_proc)
    assert ft.io._umask() == 0o007
    monkeypatch.undo()
    assert ft.io._umask() == 0o007
