"""Atomic writes: a result file is either the old one or the complete new one, never half-written.

Each writer writes to a temporary file in the target's directory, flushes and fsyncs it, then renames it
over the target with `os.replace` (atomic on POSIX and Windows). The file gets the permissions an
ordinary `open(path, "w")` would give it (0o666 minus the umask: `-rw-r--r--` under the usual umask 022),
not the private 0o600 of `tempfile.mkstemp`.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "write_json", "read_json", "write_npz",
           "read_npz", "to_jsonable", "FileFormatError", "require_fields"]


class FileFormatError(ValueError):
    """A file that exists but cannot be read as what it should be (truncated, garbage, a field missing
    or of the wrong shape). The message names the path and, where one is at fault, the field."""


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else by setting and
    restoring it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode() -> int:
    return 0o666 & ~_umask()


@contextlib.contextmanager
def _atomic_target(path, mode=None):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        # mkstemp creates the file 0o600; give it the mode a plain open() would have.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _new_file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` atomically; `mode`: the file's permissions (default: as `open` gives)."""
    with _atomic_target(path, mode) as fh:
        fh.write(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj):
    """Convert numpy and jax values to plain Python; non-finite floats become None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        if arr.ndim == 0:
            return to_jsonable(arr.item())
        return [to_jsonable(v) for v in arr.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def write_json(path, obj, *, indent: int = 2) -> None:
    """Write `obj` as JSON atomically (numpy values converted, NaN/Inf written as null)."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n")


def read_json(path, *, required=()):
    """The JSON value in `path`; `required`: keys the top-level object must have.

    Raises `FileNotFoundError` for a missing file and `FileFormatError` (naming the path) for a file
    that is not complete JSON, not an object when keys are required, or lacks a required key."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FileFormatError(f"{path} is not valid JSON ({err}); the file is truncated or not a "
                              "flowtools result: write it again.") from None
    if required:
        require_fields(path, value, required)
    return value


def require_fields(path, value, required, where: str = "") -> dict:
    """Check that `value` is a JSON object with the keys `required`; the error names `path` and the key."""
    label = f"{path}{': ' + where if where else ''}"
    if not isinstance(value, dict):
        raise FileFormatError(f"{label} must hold a JSON object, got {type(value).__name__}.")
    missing = [k for k in required if k not in value]
    if missing:
        raise FileFormatError(f"{label} lacks the field(s) {missing}; the file is incomplete or was not "
                              "written by flowtools.")
    return value


def read_npz(path, *, required=()) -> dict:
    """All arrays of the .npz file `path`, read fully, as a dict; `required`: names that must be there.

    Raises `FileNotFoundError` for a missing file and `FileFormatError` (naming the path, and the
    array where one is at fault) for a truncated or garbage file or a missing array. Object arrays are
    refused (they would need pickle)."""
    import zipfile
    import zlib

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {}
            for name in z.files:
                try:
                    arrays[name] = z[name]
                except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                    raise FileFormatError(f"{path}: array {name!r} cannot be read ({err}); the file is "
                                          "truncated or damaged: write it again.") from None
    except FileFormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise FileFormatError(f"{path} is not a readable .npz file ({type(err).__name__}: {err}); the "
                              "file is truncated or not a flowtools result: write it again.") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise FileFormatError(f"{path} lacks the array(s) {missing}; the file is incomplete or was not "
                              "written by flowtools.")
    return arrays


def write_npz(path, **arrays) -> None:
    """`numpy.savez_compressed` made atomic."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
