"""The persistent compilation cache: compiled kernels kept on disk, so a second process skips XLA.

A gradient flow on a small net compiles for seconds and then runs for milliseconds; JAX can keep the
compiled executables in a directory and load them in later processes. flowtools switches this on when it
is imported, in a user cache directory:

- `FLOWTOOLS_CACHE_DIR` (environment) names the directory; default `$XDG_CACHE_HOME/flowtools/jax`,
  i.e. `~/.cache/flowtools/jax`;
- `FLOWTOOLS_CACHE=0` leaves the cache off (as does `disable_compilation_cache()`);
- a directory the user already gave JAX (`JAX_COMPILATION_CACHE_DIR`) is kept.

JAX writes an entry with a plain `write_bytes`, and skips a key whose file exists: a process killed
mid-write, or two processes writing the same key (pytest-xdist workers, Dask workers), could leave a
truncated entry that every later process fails to read. Entries are therefore written to a temporary file
in the same directory and renamed into place (`os.replace`, atomic on POSIX and Windows).
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import jax

__all__ = ["enable_compilation_cache", "disable_compilation_cache", "compilation_cache_dir",
           "default_cache_dir"]


def default_cache_dir() -> str:
    """`FLOWTOOLS_CACHE_DIR`, else `$XDG_CACHE_HOME/flowtools/jax` (default `~/.cache/flowtools/jax`)."""
    explicit = os.environ.get("FLOWTOOLS_CACHE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flowtools", "jax")


def _atomic_put(self, key: str, value: bytes) -> None:
    """`LRUCache.put` without size-based eviction, writing through a temporary file and a rename."""
    if not key:
        raise ValueError("key cannot be empty")
    path = pathlib.Path(self.path) / f"{key}-cache"
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(value)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _install_atomic_writes() -> bool:
    """Make JAX's file cache write atomically; False when this JAX's cache is not the one expected."""
    try:
        from jax._src import lru_cache
    except ImportError:  # pragma: no cover - a JAX without the file cache module
        return False
    cls = getattr(lru_cache, "LRUCache", None)
    if cls is None or getattr(lru_cache, "_CACHE_SUFFIX", None) != "-cache":
        return False
    if getattr(cls, "_flowtools_atomic", False):
        return True
    original = cls.put

    def put(self, key, value):
        if getattr(self, "eviction_enabled", True):
            return original(self, key, value)  # size-bounded caches write under JAX's file lock
        return _atomic_put(self, key, value)

    cls.put = put
    cls._flowtools_atomic = True
    return True


def _reset():
    try:
        from jax._src import compilation_cache
        compilation_cache.reset_cache()
    except (ImportError, AttributeError):  # pragma: no cover
        pass


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str:
    """Keep compiled kernels in `path` (default `default_cache_dir()`) for later processes.

    Sets JAX's persistent compilation cache to that directory with no minimum compile time or entry
    size (flowtools' kernels are small and each compiles in about a second), and makes its writes
    atomic. Safe to call more than once and from several processes (e.g. at the start of each Dask
    worker). Returns the directory.
    """
    path = default_cache_dir() if path is None else os.path.abspath(os.fspath(path))
    os.makedirs(path, exist_ok=True)
    _install_atomic_writes()
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _reset()  # a cache JAX already opened (at another path) is reopened here
    return path


def disable_compilation_cache() -> None:
    """Stop reading and writing the persistent compilation cache in this process."""
    jax.config.update("jax_enable_compilation_cache", False)
    _reset()


def compilation_cache_dir() -> str | None:
    """The directory in use, or None when the persistent cache is off."""
    if not jax.config.jax_enable_compilation_cache:
        return None
    return jax.config.jax_compilation_cache_dir


def _enable_on_import() -> None:
    """Called by `import flowtools`: the cache is on unless FLOWTOOLS_CACHE=0; a user's JAX setting
    wins. A directory that cannot be created leaves the cache off rather than failing the import."""
    if os.environ.get("FLOWTOOLS_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    existing = jax.config.jax_compilation_cache_dir
    try:
        enable_compilation_cache(existing if existing and "FLOWTOOLS_CACHE_DIR" not in os.environ
                                 else None)
    except OSError:
        pass


# XLA's CPU "fusion emitters" (the MLIR kernel generators) spend about half of the compile time of the
# flow solver's loop, which is made of many small kernels; the older emitters compile it in about half
# the time (measured: 3.4 → 1.8 s of CPU at 4 parameters, 5.3 → 3.2 s at 61) and the kernels ran as
# fast. The option is probed once, so a jaxlib that no longer knows it just compiles as before.
_FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}
_fast_compile_ok: bool | None = None


def requested_compiler_options() -> dict:
    """The options `compiler_options()` asks for on this backend, before probing whether they work."""
    return dict(_FAST_COMPILE) if jax.default_backend() == "cpu" else {}


def compiler_options() -> dict:
    """XLA options that cut the compile time of flowtools' loop kernels on CPU ({} elsewhere)."""
    global _fast_compile_ok
    if jax.default_backend() != "cpu":
        return {}
    if _fast_compile_ok is None:
        try:
            jax.jit(lambda x: x + 1).lower(1.0).compile(compiler_options=_FAST_COMPILE)
            _fast_compile_ok = True
        except Exception:  # noqa: BLE001 - an unknown option is an XlaRuntimeError/ValueError
            _fast_compile_ok = False
    return dict(_FAST_COMPILE) if _fast_compile_ok else {}
