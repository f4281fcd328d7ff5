"""The persistent compilation cache: compiled kernels kept on disk, so a second process skips XLA.

A gradient flow on a small net compiles for seconds and then runs for milliseconds; JAX can keep the
compiled executables in a directory and load them in later processes. flowtools switches this on when it
is imported, in a user cache directory:

- `FLOWTOOLS_CACHE_DIR` (environment) names the directory; default `$XDG_CACHE_HOME/flowtools/jax`,
  i.e. `~/.cache/flowtools/jax`;
- `FLOWTOOLS_CACHE=0` leaves the cache off (as does `disable_compilation_cache()`);
- a directory the user already gave JAX (`JAX_COMPILATION_CACHE_DIR`) is kept;
- `FLOWTOOLS_CACHE_MAX_SIZE` bounds the directory's size (bytes, or with a suffix: "500M", "2G";
  default 1G; "none" for no bound). This is JAX's `jax_compilation_cache_max_size`: when a new entry
  would pass the bound, the least recently used entries are deleted first (JAX keeps an access time
  beside each entry; entries written without one count by their modification time).

JAX writes an entry with a plain `write_bytes`, and skips a key whose file exists: a process killed
mid-write, or two processes writing the same key (pytest-xdist workers, Dask workers), could leave a
truncated entry that every later process fails to read. Entries are therefore written to a temporary file
in the same directory and renamed into place (`os.replace`, atomic on POSIX and Windows).

The cache also heals and stays quiet:

- an entry that cannot be read back (truncated, damaged, from an incompatible jaxlib) is removed when it
  fails, so the compile that follows writes it afresh; JAX alone would keep it and warn in every process;
- a directory this process cannot write (a shared, pre-filled cache mounted read-only) is used read-only:
  entries are loaded, nothing is written, no lock file is taken, and one warning per process says so.

What this changes in JAX, and the opt-out: the atomic writes, the size bound's eviction and the
healing reads replace two functions of JAX's private cache modules (`jax._src.lru_cache.LRUCache.put`
and `jax._src.compilation_cache.get_executable_and_time`). Only `enable_compilation_cache` installs
them, and `import flowtools` calls it unless `FLOWTOOLS_CACHE=0` is set: with `FLOWTOOLS_CACHE=0` importing
flowtools leaves JAX's cache and its code untouched, and a later explicit
`enable_compilation_cache(path)` is what installs them. `jax_patches()` lists what is installed.

Trust: an entry is compiled machine code, loaded and run as is, so the directory must be as trusted as
the Python environment. `enable_compilation_cache` creates it private (mode 0o700); flowtools' own
executable store (`_aot.py`) refuses a folder that another user owns or that group or others can write.
"""

from __future__ import annotations

import errno
import os
import pathlib
import re
import tempfile
import time
import warnings

import jax

__all__ = ["enable_compilation_cache", "disable_compilation_cache", "compilation_cache_dir",
           "default_cache_dir", "default_cache_max_size", "jax_patches"]

#: The default bound on the cache directory: about a thousand flow kernels of 0.5–1 MB.
DEFAULT_MAX_SIZE = 1 << 30
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value, name: str = "max_size") -> int:
    """Bytes from an int or a string such as "500M", "2G", "1.5g" (binary units; a trailing "B" or
    "iB" is allowed); -1 for no bound ("none", "unlimited" or -1)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a size in bytes, got {value!r}.")
    if isinstance(value, int):
        size = value
    else:
        text = str(value).strip().lower()
        if text in ("none", "unlimited", "inf", "-1"):
            return -1
        m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", text)
        if not m:
            raise ValueError(f"{name} must be a size such as 500M or 2G (or 'none' for no bound), "
                             f"got {value!r}.")
        size = int(float(m.group(1)) * _UNITS[m.group(2)])
    if size == -1:
        return -1
    if size <= 0:
        raise ValueError(f"{name} must be positive (or 'none' for no bound), got {value!r}; to switch "
                         "the cache off use FLOWTOOLS_CACHE=0 or disable_compilation_cache().")
    return size


def default_cache_max_size() -> int:
    """`FLOWTOOLS_CACHE_MAX_SIZE` in bytes, else 1 GiB; -1 for no bound."""
    value = os.environ.get("FLOWTOOLS_CACHE_MAX_SIZE")
    return DEFAULT_MAX_SIZE if value is None or not value.strip() else \
        parse_size(value, "FLOWTOOLS_CACHE_MAX_SIZE")


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


def _entry_atime(directory: str, name: str, mtime_ns: int) -> int:
    try:
        with open(os.path.join(directory, name[:-len("-cache")] + "-atime"), "rb") as fh:
            return int.from_bytes(fh.read(), "little")
    except (FileNotFoundError, ValueError):
        return mtime_ns  # written while the cache had no bound: its last write is its last use


def _evict(directory: str, target: int) -> None:
    """Delete least recently used entries until the entries take at most `target` bytes. One directory
    scan when nothing needs to go; the access times are read only when something does."""
    entries, total = [], 0
    with os.scandir(directory) as it:
        for e in it:
            if e.name.endswith("-cache") and not e.name.startswith("."):
                try:
                    st = e.stat()
                except FileNotFoundError:
                    continue
                entries.append((e.name, st.st_size, st.st_mtime_ns))
                total += st.st_size
    if total <= target:
        return
    order = sorted((_entry_atime(directory, name, mtime), name, size) for name, size, mtime in entries)
    for _, name, size in order:
        if total <= target:
            break
        for victim in (name, name[:-len("-cache")] + "-atime"):
            try:
                os.unlink(os.path.join(directory, victim))
            except FileNotFoundError:
                pass
        total -= size


def _bounded_put(self, key: str, value: bytes) -> None:
    """`LRUCache.put` for a size-bounded cache: under JAX's file lock, evict least recently used
    entries to make room, then write through a temporary file and a rename, and stamp the access time.
    (JAX's own eviction fails on entries that have no access-time file.)"""
    if not key:
        raise ValueError("key cannot be empty")
    if len(value) > self.max_size:
        warnings.warn(f"a compiled kernel of {len(value)} bytes exceeds the compilation cache's bound of "
                      f"{self.max_size} bytes (FLOWTOOLS_CACHE_MAX_SIZE); it is not cached.", stacklevel=2)
        return
    directory = os.fspath(self.path)
    self.lock.acquire(timeout=self.lock_timeout_secs)
    try:
        if os.path.exists(os.path.join(directory, f"{key}-cache")):
            return
        _evict(directory, self.max_size - len(value))
        _atomic_put(self, key, value)
        pathlib.Path(directory, f"{key}-atime").write_bytes(time.time_ns().to_bytes(8, "little"))
    finally:
        self.lock.release()


#: directories this process uses read-only (cannot write to them); their puts are skipped
_READ_ONLY: set[str] = set()
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _writable(path: str) -> bool:
    """Whether this process can create files in the directory `path` (tried, not guessed from modes)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-probe-", dir=path)
    except OSError:
        return False
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass
    return True


def _go_read_only(path: str, why: str) -> None:
    _READ_ONLY.add(os.path.abspath(path))
    _warn_once("read-only:" + os.path.abspath(path),
               f"the compilation cache {path} is read-only for this process ({why}): compiled kernels "
               "are loaded from it but new ones are not stored. Point FLOWTOOLS_CACHE_DIR at a "
               "writable directory to keep them.")


def _is_read_only(cache) -> bool:
    return os.path.abspath(os.fspath(cache.path)) in _READ_ONLY


def _remove_entry(cache, key: str) -> bool:
    """Delete the entry `key` (and its access time) from the cache `cache`; False if it could not."""
    ok = True
    for suffix in ("-cache", "-atime"):
        try:
            os.unlink(os.path.join(os.fspath(cache.path), f"{key}{suffix}"))
        except FileNotFoundError:
            pass
        except OSError:
            ok = False
    return ok


def _install_healing_reads() -> bool:
    """Make a failed read of a cache entry remove that entry, so the compile that follows rewrites it
    (JAX keeps it and warns in every later process). False when this JAX's cache looks different."""
    try:
        from jax._src import compilation_cache
    except ImportError:  # pragma: no cover
        return False
    original = getattr(compilation_cache, "get_executable_and_time", None)
    if original is None or getattr(original, "_flowtools_healing", False):
        return original is not None

    def get_executable_and_time(cache_key, *args, **kwargs):
        try:
            return original(cache_key, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any damage: remove the entry and compile as usual
            if jax.config.jax_raise_persistent_cache_errors:
                raise
            cache = getattr(compilation_cache, "_cache", None)
            if cache is None or not hasattr(cache, "path"):
                raise
            removed = not _is_read_only(cache) and _remove_entry(cache, cache_key)
            _warn_once("damaged:" + os.fspath(cache.path),
                       f"an unreadable entry of the compilation cache {cache.path} "
                       f"({type(err).__name__}: {str(err)[:120]}) was "
                       + ("removed; it is compiled and stored afresh (further damaged entries in this "
                          "process are removed silently)." if removed else
                          "skipped (the cache is read-only); the kernel is compiled instead."))
            return None, None

    get_executable_and_time._flowtools_healing = True
    compilation_cache.get_executable_and_time = get_executable_and_time
    return True


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
        if _is_read_only(self):
            return
        try:
            return _put(self, key, value)
        except OSError as err:  # the directory became read-only (permissions, a read-only mount)
            if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            _go_read_only(os.fspath(self.path), f"{type(err).__name__}: {err}")

    def _put(self, key, value):
        if not getattr(self, "eviction_enabled", False):
            return _atomic_put(self, key, value)
        if hasattr(self, "lock") and hasattr(self, "max_size"):
            return _bounded_put(self, key, value)
        return original(self, key, value)  # pragma: no cover - an LRUCache of another layout

    cls.put = put
    cls._flowtools_atomic = True
    return True


def jax_patches() -> list[str]:
    """The JAX functions this process runs in flowtools' versions ([] until `enable_compilation_cache`
    runs, e.g. under `FLOWTOOLS_CACHE=0`)."""
    out = []
    try:
        from jax._src import compilation_cache, lru_cache
    except ImportError:  # pragma: no cover
        return out
    if getattr(getattr(lru_cache, "LRUCache", None), "_flowtools_atomic", False):
        out.append("jax._src.lru_cache.LRUCache.put")
    if getattr(getattr(compilation_cache, "get_executable_and_time", None), "_flowtools_healing", False):
        out.append("jax._src.compilation_cache.get_executable_and_time")
    return out


def _reset():
    try:
        from jax._src import compilation_cache
        compilation_cache.reset_cache()
    except (ImportError, AttributeError):  # pragma: no cover
        pass


def enable_compilation_cache(path: str | os.PathLike | None = None,
                             max_size: int | str | None = None) -> str:
    """Keep compiled kernels in `path` (default `default_cache_dir()`) for later processes.

    Sets JAX's persistent compilation cache to that directory with no minimum compile time or entry
    size (flowtools' kernels are small and each compiles in about a second), and makes its writes
    atomic. `max_size` bounds the directory (bytes, or "500M", "2G"; "none" or -1 for no bound; None:
    `default_cache_max_size()`, i.e. `FLOWTOOLS_CACHE_MAX_SIZE` or 1 GiB): least recently used
    entries are deleted to make room. Safe to call more than once and from several processes (e.g. at
    the start of each Dask worker). Returns the directory.
    """
    path = default_cache_dir() if path is None else os.path.abspath(os.fspath(path))
    size = default_cache_max_size() if max_size is None else parse_size(max_size)
    if size != -1:
        try:
            import filelock  # noqa: F401  JAX's size-bounded cache locks its directory with it
        except ImportError:  # pragma: no cover - filelock is a dependency
            warnings.warn("the compilation cache's size bound needs the filelock package; the cache "
                          "runs without a bound.", stacklevel=2)
            size = -1
    os.makedirs(path, mode=0o700, exist_ok=True)  # private: its entries are code that runs here
    _install_atomic_writes()
    _install_healing_reads()
    path_abs = os.path.abspath(path)
    if _writable(path):
        _READ_ONLY.discard(path_abs)
    else:
        # Read-only: no size bound, so JAX takes no lock file and writes no access times.
        _go_read_only(path, "no permission to create files in it")
        size = -1
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", size)
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


def switched_off(variable: str) -> bool:
    """Whether the environment variable `variable` turns a flowtools default off ("0", "false", "no" or
    "off", any case); unset means on. FLOWTOOLS_CACHE, FLOWTOOLS_READ_AHEAD."""
    return os.environ.get(variable, "1").strip().lower() in ("0", "false", "no", "off")


def _enable_on_import() -> None:
    """Called by `import flowtools`: the cache is on unless FLOWTOOLS_CACHE=0; a user's JAX setting
    wins. A directory that cannot be created leaves the cache off rather than failing the import."""
    if switched_off("FLOWTOOLS_CACHE"):
        return
    existing = jax.config.jax_compilation_cache_dir
    try:
        max_size = default_cache_max_size()
    except ValueError as err:
        warnings.warn(f"{err} Using the default bound of {DEFAULT_MAX_SIZE >> 20} MiB.", stacklevel=2)
        max_size = DEFAULT_MAX_SIZE
    try:
        enable_compilation_cache(existing if existing and "FLOWTOOLS_CACHE_DIR" not in os.environ
                                 else None, max_size=max_size)
    except OSError:
        pass


# XLA's CPU "fusion emitters" (the MLIR kernel generators) spend about half of the compile time of the
# flow solver's loop, which is made of many small kernels; the older emitters compile it in about half
# the time (measured: 3.4 → 1.8 s of CPU at 4 parameters, 5.3 → 3.2 s at 61) and the kernels ran as
# fast. The option is probed once, so a jaxlib that no longer knows it just compiles as before.
_FAST_COMPILE = {"xla_cpu_use_fusion_emitters": False}
_known_options: dict = {}


def options_supported(options: dict) -> bool:
    """Whether this jaxlib compiles with the XLA `options` (probed once per set of options), so that an
    option a later jaxlib drops is skipped instead of failing every compile."""
    key = tuple(sorted(options.items()))
    if key not in _known_options:
        try:
            jax.jit(lambda x: x + 1).lower(1.0).compile(compiler_options=dict(options))
            _known_options[key] = True
        except Exception:  # noqa: BLE001 - an unknown option is an XlaRuntimeError/ValueError
            _known_options[key] = False
    return _known_options[key]


def requested_compiler_options() -> dict:
    """The options `compiler_options()` asks for on this backend, before probing whether they work."""
    return dict(_FAST_COMPILE) if jax.default_backend() == "cpu" else {}


def compiler_options() -> dict:
    """XLA options that cut the compile time of flowtools' loop kernels on CPU ({} elsewhere)."""
    if jax.default_backend() != "cpu":
        return {}
    return dict(_FAST_COMPILE) if options_supported(_FAST_COMPILE) else {}
