"""Compiled executables kept on disk under flowtools' own key, so a later process skips tracing.

JAX's persistent compilation cache (`_cache.py`) saves XLA's work, but it is keyed on the lowered
module: a second process still traces and lowers the whole solver (about 0.5 s of CPU for the flow's
BDF loop) before it can look the executable up. Here the executable itself is serialized
(`jax.experimental.serialize_executable`) under a key computed from what determines the computation
without tracing it:

- the versions of flowtools (and a digest of its source files), Python, jax, jaxlib, equinox, diffrax;
- the backend, its devices and (on CPU) the host's instruction-set flags, the JAX settings that change
  the traced program (x64, matmul precision, …), `XLA_FLAGS`, and the compiler options;
- the arguments: the pytree structure, every array's shape, dtype and weak type, and the value of
  every static leaf (models, loss convention, solver settings).

Static leaves are described only when they are values (numbers, strings, arrays held as static data)
or functions and types of flowtools or of the libraries it builds on, whose code the versions pin. A
user's own function or class (a custom activation, a `FunctionModel`, a `DataSource` subclass) cannot
be keyed safely — its code may change between processes under the same name — so such calls take
the ordinary path (trace, lower, JAX's cache), as do all calls when the persistent cache is off.

Flowtools' functions are keyed by name and source digest, so a module-level setting of flowtools or a
library that is changed at run time and read while tracing is not part of the key.

Three pitfalls of serialized executables, each handled here:

- a program that calls back into Python (progress bars, `jax.debug`) cannot run in another process: it
  is not stored (JAX's cache skips it too). Equinox's runtime checks (`eqx.error_if`: diffrax's checks
  of `SaveAt.ts`, optimistix's bracket check in an event's root find) call back when they raise; a
  program meant for the store is traced with them returning NaN instead (`_checks_return_nan`), so
  the escape flows and the diffrax flows are stored too;
- on CPU, an executable that JAX loaded from its own cache serializes without its kernels ("Function
  …_kernel not found" in the next process): only an executable that XLA compiled is stored;
- jaxlib binds LAPACK when a program is first lowered; a process that only loads must bind it itself
  (as `jax.export` does), or the first LU factorization jumps to a null pointer.

A solve's entry also lists the entries a process asked for after it (`<entry>.next`), and the next
process that loads the solve reads those in a background thread while the solve runs (`_read_ahead`).

Entries live in the `aot/` folder of the compilation cache directory, one file per key, written to
a temporary file and renamed into place; a lock file keeps two processes from serializing the same
entry at once, and the folder keeps its most recently used `MAX_BYTES`. A file that fails any check on
reading (magic, checksum, key, deserialization) is ignored with a warning, removed, and rewritten
after the ordinary compile when XLA compiled the program.

Trust boundary. Loading an entry unpickles it and runs its machine code, and the checksum only guards
against damage, not against someone who writes a valid one: whoever can write the folder can run code
in every process that loads from it. The store is therefore used only when the `aot/` folder and the
cache directory above it belong to this user and cannot be written by group or others (the folder is
created with mode 0o700), and each entry file too; otherwise it is not read nor written, and one warning
per process names the directory and the fix (`chmod go-w DIR`, or another `FLOWTOOLS_CACHE_DIR`). JAX's
own cache holds compiled code as well and needs the same care (`_cache.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import hashlib
import os
import pickle
import platform
import sys
import threading
import time
import types
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _cache, _executables, _read_ahead, io

#: bumped whenever the file layout or the key's recipe changes
FORMAT = 1
_MAGIC = b"flowtools-aot\x00"
_LOCK_STALE_S = 600.0
#: the store keeps its most recently used entries up to this many bytes (an entry of the flow's BDF
#: solve is about 0.8 MB; each edit of flowtools' source or new problem shape adds entries)
MAX_BYTES = 256 * 2**20
#: modules whose functions and types may appear in a key by name: their code is pinned by the
#: versions (and flowtools' source digest) in the key
_TRUSTED = ("flowtools", "jax", "jaxlib", "numpy", "equinox", "diffrax", "lineax", "optimistix",
            "builtins", "math", "operator", "functools")


class Unkeyable(Exception):
    """A static argument that cannot be described across processes (e.g. a user's own function)."""


def directory() -> str | None:
    """Where entries live (`<compilation cache dir>/aot`), or None when the persistent cache is off."""
    base = _cache.compilation_cache_dir()
    return None if not base else os.path.join(base, "aot")


# ------------------------------------------------------------------------------------------- the key
def _trusted(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in _TRUSTED


def _name(obj) -> tuple:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not _trusted(module) or not qualname:
        raise Unkeyable(f"{obj!r} (module {module!r}) is not part of flowtools or its libraries")
    return (module, qualname)


def describe(obj, static: bool = True):
    """A nested tuple of plain values that determines `obj` as a jitted argument: shapes and dtypes
    for arrays in dynamic position, values for everything static. Raises `Unkeyable`."""
    if isinstance(obj, (jax.Array, np.ndarray, np.generic)):
        a = np.asarray(obj) if not isinstance(obj, jax.Array) else obj
        base = ("array", tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False)))
        if static:  # an array held as static data: its value is part of the program
            return base + (hashlib.sha256(np.ascontiguousarray(np.asarray(a)).tobytes()).hexdigest(),)
        return base
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj).__name__, repr(obj))
    if isinstance(obj, enum.Enum):
        return ("enum", _name(type(obj)), obj.name)
    if isinstance(obj, type):
        return ("type", _name(obj))
    if isinstance(obj, np.dtype):
        return ("dtype", str(obj))
    if isinstance(obj, (list, tuple)):
        kind = _name(type(obj)) if type(obj) not in (list, tuple) else type(obj).__name__
        return (kind, tuple(describe(v, static) for v in obj))
    if isinstance(obj, dict):
        items = sorted(((repr(k), describe(v, static)) for k, v in obj.items()), key=lambda kv: kv[0])
        return ("dict", tuple(items))
    if type(obj).__name__ == "_DataMeta" and _trusted(type(obj).__module__):
        return ("_DataMeta",)  # compares equal to every other: never enters the computation
    if isinstance(obj, eqx.Module):
        return ("module", _name(type(obj)), tuple(
            (f.name, describe(getattr(obj, f.name), static or f.metadata.get("static", False)))
            for f in dataclasses.fields(obj)))
    if dataclasses.is_dataclass(obj):
        return ("dataclass", _name(type(obj)),
                tuple((f.name, describe(getattr(obj, f.name), True)) for f in dataclasses.fields(obj)))
    if isinstance(obj, functools.partial):
        return ("partial", describe(obj.func), describe(obj.args), describe(obj.keywords))
    if isinstance(obj, types.MethodType):
        return ("method", describe(obj.__func__), describe(obj.__self__))
    if isinstance(obj, types.FunctionType):
        try:
            cells = tuple(describe(c.cell_contents) for c in (obj.__closure__ or ()))
        except ValueError:  # an empty cell: a closure still being built
            raise Unkeyable(f"{obj!r} closes over an unassigned variable") from None
        code = obj.__code__  # two lambdas of one line share a name and a line number
        return ("function", _name(obj), code.co_firstlineno, hashlib.sha256(code.co_code).hexdigest(),
                code.co_names, cells, describe(obj.__defaults__), describe(obj.__kwdefaults__))
    if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)):
        return ("builtin", _name(obj) if not isinstance(obj, np.ufunc) else ("numpy", obj.__name__))
    if callable(obj) and hasattr(obj, "__wrapped__"):  # jax.custom_jvp, jitted functions
        return ("wrapped", _name(type(obj)), describe(obj.__wrapped__))
    slots = getattr(type(obj), "__slots__", None)
    if slots is not None:  # small immutable holders (FunctionModel, _Index)
        slots = (slots,) if isinstance(slots, str) else tuple(slots)
        return ("slots", _name(type(obj)), tuple((s, describe(getattr(obj, s), True)) for s in slots
                                                   if hasattr(obj, s)))
    if hasattr(obj, "__dict__") and _trusted(type(obj).__module__):  # e.g. a library's sentinel
        return ("object", _name(type(obj)), describe(dict(vars(obj)), True))
    raise Unkeyable(f"no stable description for a {type(obj).__name__}")


@functools.cache
def _source_digest() -> str:
    """sha256 of flowtools' own source files: an edited package never loads an older executable."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                h.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()


@functools.cache
def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return hashlib.sha256(line.encode()).hexdigest()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> tuple:
    import diffrax
    import jaxlib

    from . import __version__
    return (FORMAT, __version__, _source_digest(), sys.version_info[:3], jax.__version__,
            jaxlib.__version__, eqx.__version__, diffrax.__version__, np.__version__)


def _environment() -> tuple:
    devices = jax.devices()
    client = devices[0].client
    config = tuple((name, repr(getattr(jax.config, name, None))) for name in (
        "jax_enable_x64", "jax_default_matmul_precision", "jax_numpy_rank_promotion",
        "jax_numpy_dtype_promotion", "jax_default_prng_impl", "jax_threefry_partitionable",
        "jax_enable_checks", "jax_use_shardy_partitioner"))
    return (jax.default_backend(), client.platform_version, len(devices), devices[0].device_kind,
            platform.machine(), _cpu_flags(), config, os.environ.get("XLA_FLAGS", ""))


def key(name: str, args: tuple, kw: dict, compiler_options: dict) -> str:
    """The full key text of a call (raises `Unkeyable`); its sha256 names the file."""
    return repr((name, _versions(), _environment(), sorted(compiler_options.items()),
                 describe(args, static=False), describe(kw, static=False)))


# ------------------------------------------------------------------------------- the executable
def _split(args, kw):
    dynamic, static = eqx.partition((args, kw), eqx.is_array)
    leaves, in_def = jax.tree_util.tree_flatten(dynamic)
    return leaves, in_def, static


class _Slot(int):
    """Marks where the i-th output array goes in an output skeleton."""


class Executable:
    """A compiled `fn(*args, **kw)`: called with arguments of the same structure, shapes and static
    values as at compile time, it runs the executable on their array leaves.

    The outputs are rebuilt from a skeleton, the output pytree with `_Slot(i)` in place of the i-th
    array: unlike a treedef of equinox modules, it survives pickling."""

    def __init__(self, compiled, skeleton):
        self.compiled, self.skeleton = compiled, skeleton
        self.key = None  # the store's key, for an executable loaded from it
        self.storable, self.why_not = False, None  # set by compile_function

    def __call__(self, *args, **kw):
        return self.call_leaves(_split(args, kw)[0])

    def call_leaves(self, leaves):
        """Run on the array leaves of the arguments (in `eqx.partition` order) and rebuild the output."""
        out = self.compiled(*leaves)
        return jax.tree_util.tree_map(lambda s: out[s] if type(s) is _Slot else s, self.skeleton)


def compile_function(fn, args: tuple, kw: dict, compiler_options: dict, for_store: bool = False) -> Executable:
    """Trace, lower and compile `fn(*args, **kw)` (arrays traced, everything else static, as
    `eqx.filter_jit` does) into an `Executable`. `for_store`: meant for this store; `exe.storable` is True
    when the program can run in another process and XLA compiled it (it did not come from JAX's
    persistent cache)."""
    leaves, in_def, static = _split(args, kw)
    box = []

    def flat(*leaves):
        a, k = eqx.combine(jax.tree_util.tree_unflatten(in_def, leaves), static)
        dynamic_out, static_out = eqx.partition(fn(*a, **k), eqx.is_array)
        out, out_def = jax.tree_util.tree_flatten(dynamic_out)
        slots = jax.tree_util.tree_unflatten(out_def, [_Slot(i) for i in range(len(out))])
        box.append(eqx.combine(slots, static_out))
        return out

    flat.__name__ = getattr(fn, "__name__", "fn")
    # keep_unused: the executable takes every leaf, so no pruned-argument bookkeeping is needed
    with _checks_return_nan(for_store):
        lowered = jax.jit(flat, keep_unused=True).lower(*leaves)
    hits = _jax_cache_hits()
    compiled = lowered.compile(compiler_options=compiler_options)
    exe = Executable(compiled, box[-1])
    # On CPU an executable that JAX loaded from its own cache serializes without its kernels (the next
    # process fails with "Function …_kernel not found"): only one that XLA compiled here is stored.
    # Such a hit happens when flowtools' source changed but the program did not; later processes
    # then take the ordinary path (about 0.65 s) until the program is compiled afresh.
    if not for_store:
        exe.why_not = "not meant for the store"
    elif not _self_contained(lowered):
        exe.why_not = "the program calls back into Python"
    elif hits is None or _jax_cache_hits() != hits:
        exe.why_not = "served by JAX's cache"
    exe.storable = exe.why_not is None
    return exe


#: Whether this thread is tracing a program for the store (a depth: compiles may nest), read by the
#: dispatcher `_install_nan_checks` puts in front of equinox's check.
_TRACING_FOR_STORE = threading.local()
_INSTALL_LOCK = threading.Lock()
_INSTALLED: list = []


def _install_nan_checks(errors) -> bool:
    """Put a dispatcher in front of equinox's jitted check (once per process): in a thread that traces a
    program for the store it runs a jitted copy of the check with on_error="nan"; everywhere else it
    calls equinox's own, unchanged. False where equinox's internals differ."""
    with _INSTALL_LOCK:
        if _INSTALLED:
            return True
        original = getattr(errors, "branched_error_if_impl_jit", None)
        impl = getattr(errors, "branched_error_if_impl", None)
        if original is None or impl is None:
            return False
        nan_jit = eqx.filter_jit(impl)

        def dispatch(x, pred, index, msgs, *, on_error="default"):
            if getattr(_TRACING_FOR_STORE, "depth", 0) and on_error == "default":
                return nan_jit(x, pred, index, msgs, on_error="nan")
            return original(x, pred, index, msgs, on_error=on_error)

        errors.branched_error_if_impl_jit = dispatch
        _INSTALLED.append(dispatch)
        return True


@contextlib.contextmanager
def _checks_return_nan(active: bool):
    """Trace with equinox's runtime checks (`eqx.error_if`) returning NaN instead of raising through a
    callback into Python, which no other process can run. The checks in flowtools' programs test inputs
    that flowtools validates before the call (diffrax's `SaveAt.ts` increasing and within [t0, t1];
    `escape_flow`'s start strictly inside its ball, so that an event's bisection has its bracket); should
    one fail, the run ends with a "failed" or "non_finite" status instead of an exception. Only this
    thread's trace is affected (`_install_nan_checks`): a user's `eqx.error_if`, traced elsewhere or in
    another thread, still raises. Left as it is where EQX_ON_ERROR is set or equinox's internals differ
    (such programs are then not stored)."""
    errors = sys.modules.get("equinox._errors")
    if not active or getattr(errors, "EQX_ON_ERROR", None) != "raise" or not _install_nan_checks(errors):
        yield
        return
    _TRACING_FOR_STORE.depth = getattr(_TRACING_FOR_STORE, "depth", 0) + 1
    try:
        yield
    finally:
        _TRACING_FOR_STORE.depth -= 1


_HITS: list[int] = []


def _count_hit(event, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
        _HITS[0] += 1


def _jax_cache_hits() -> int | None:
    """How many executables JAX's persistent cache has served in this process (None: unknown)."""
    if not _HITS:
        try:
            jax.monitoring.register_event_listener(_count_hit)
        except AttributeError:  # pragma: no cover - a JAX without monitoring listeners
            return None
        _HITS.append(0)
    return _HITS[0]


def _self_contained(lowered) -> bool:
    """False for programs that call back into this process (progress bars, `jax.debug` and
    error callbacks, effects) or keep Python objects alive: another process cannot run those."""
    args = getattr(getattr(lowered, "_lowering", None), "compile_args", None)
    if not isinstance(args, dict) or "host_callbacks" not in args:
        return False  # a JAX whose lowering looks different: do not guess
    return not any(args.get(name) for name in
                   ("host_callbacks", "ordered_effects", "unordered_effects", "keepalive"))


# ----------------------------------------------------------------------------------- the files
def untrusted(path: str) -> str | None:
    """Why `path` (a directory or an entry) must not be loaded from: owned by another user, or
    writable by group or others; None when it may (or does not exist yet)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"it cannot be inspected ({err})"
    return not_private(st)


def not_private(st) -> str | None:
    """Why a file with `os.stat` result `st` must not be trusted (another owner, writable by group or
    others), or None."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    if uid is not None and st.st_uid != uid:
        return f"it is owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & 0o022:
        return f"group or others can write it (mode {st.st_mode & 0o777:#o})"
    return None


_REFUSED: set[str] = set()


def _trusted_folder(folder: str) -> bool:
    """Whether the store may use `folder` and its parent (the cache directory); warns once per folder
    and process when it may not."""
    for path in (os.path.dirname(folder), folder):
        why = untrusted(path)
        if why is not None:
            if folder not in _REFUSED:
                _REFUSED.add(folder)
                warnings.warn(f"flowtools does not load or store compiled executables in {folder}: {path} "
                              f"is not private ({why}), and an entry there is code that would run in "
                              f"this process. Fix it with `chmod go-w {path}` (as its owner), or set "
                              "FLOWTOOLS_CACHE_DIR to a directory of your own.", RuntimeWarning,
                              stacklevel=4)
            return False
    return True


def _path(folder: str, name: str, full_key: str) -> str:
    return os.path.join(folder, f"{name}-{hashlib.sha256(full_key.encode()).hexdigest()[:40]}.exe")


def _initialize_kernels() -> None:
    """Load the libraries behind XLA's custom calls. Lowering a linear-algebra op does this (jaxlib
    binds LAPACK from scipy on first use); a process that only loads an executable must do it itself,
    or the first LU factorization jumps to a null pointer. `jax.export` does the same when it calls an
    exported module."""
    from jax._src.lax import linalg
    if jax.default_backend() == "cpu":
        linalg.initialize_lapack()
    else:
        from jax._src.lib import gpu_solver
        if hasattr(gpu_solver, "initialize_hybrid_kernels"):
            gpu_solver.initialize_hybrid_kernels()


def _read_entry(path: str, full_key: str | None) -> Executable | None:
    """The entry at `path` (None when there is no file), checked against `full_key` (any key when None;
    the entry's own is `exe.key`). Raises on anything wrong with it."""
    try:
        with open(path, "rb") as fh:
            why = not_private(os.fstat(fh.fileno()))  # of the file read, not of a name
            blob = fh.read()
    except OSError:
        return None
    if why is not None:
        raise ValueError(f"the entry is not private: {why}")
    head = len(_MAGIC)
    if blob[:head] != _MAGIC or hashlib.sha256(blob[head + 32:]).digest() != blob[head:head + 32]:
        raise ValueError("bad magic or checksum")
    entry = pickle.loads(blob[head + 32:])
    if full_key is not None and entry["key"] != full_key:
        raise ValueError("another key under the same file name")
    from jax.experimental import serialize_executable
    _initialize_kernels()  # an error here (a JAX that moved it) means: compile as usual
    compiled = serialize_executable.deserialize_and_load(entry["payload"], entry["in_tree"],
                                                         entry["out_tree"])
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    exe = Executable(compiled, entry["skeleton"])
    exe.key = entry["key"]
    return exe


def load(path: str, full_key: str) -> Executable | None:
    """The entry at `path` if it exists and passes every check; None otherwise (never raises)."""
    try:
        return _read_entry(path, full_key)
    except Exception as err:  # noqa: BLE001 - any damage means: compile as usual
        warnings.warn(f"ignoring the compiled-executable cache entry {path} ({type(err).__name__}: "
                      f"{err}); compiling instead", RuntimeWarning, stacklevel=3)
        try:
            os.unlink(path)  # warn once; the compile that follows writes a new entry if it can
        except OSError:
            pass
        return None


def peek(path: str) -> Executable | None:
    """The entry at `path` under whatever key it holds, or None; never raises, warns or deletes (for
    `_read_ahead`'s thread: the caller's `load` reports a damaged entry)."""
    try:
        return _read_entry(path, None)
    except Exception:  # noqa: BLE001
        return None


def store(path: str, full_key: str, exe: Executable) -> bool:
    """Serialize `exe` to `path` atomically; False (and no file) when another process holds the
    entry's lock or the executable cannot be stored (`exe.storable` is False)."""
    from jax.experimental import serialize_executable

    if not getattr(exe, "storable", False):
        return False
    folder = os.path.dirname(path)
    lock = path + ".lock"
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - os.path.getmtime(lock) < _LOCK_STALE_S:
                    return False  # another process is writing this entry
                os.unlink(lock)  # left behind by a process that died while writing
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError:
                return False
        os.close(fd)
    except OSError:
        return False
    try:
        payload, in_tree, out_tree = serialize_executable.serialize(exe.compiled)
        body = pickle.dumps(dict(key=full_key, payload=payload, in_tree=in_tree, out_tree=out_tree,
                                 skeleton=exe.skeleton),
                            protocol=pickle.HIGHEST_PROTOCOL)
        io.atomic_write_bytes(path, _MAGIC + hashlib.sha256(body).digest() + body, mode=0o600)
        _prune(folder, keep=path)
        return True
    except (OSError, ValueError, TypeError, NotImplementedError, RuntimeError, AttributeError,
            pickle.PicklingError):  # not serializable (e.g. constants in the program), disk full
        return False
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass


def _prune(folder: str, keep: str, limit: int | None = None) -> None:
    """Delete the least recently used entries (by modification time, which `load` refreshes) until
    the folder holds at most `limit` (default `MAX_BYTES`) bytes of entries; `keep` stays."""
    limit = MAX_BYTES if limit is None else limit
    entries = []
    for name in os.listdir(folder):
        if name.endswith(".exe"):
            try:
                st = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, os.path.join(folder, name)))
    total = sum(e[1] for e in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        if path != keep:
            try:
                os.unlink(path)
                total -= size
            except OSError:
                pass
            try:
                os.unlink(path + ".next")  # its read-ahead list (`_read_ahead`), if it led one
            except OSError:
                pass


def compiled(fn, args: tuple, kw: dict, fast_compile: bool = True) -> tuple[Executable, str]:
    """`fn(*args, **kw)` compiled with `_cache.compiler_options()` (with XLA's defaults when
    `fast_compile` is False): loaded from disk when an entry
    with this call's key exists, otherwise compiled (and stored when the persistent cache is on).
    `fn` is a function of flowtools. Returns the executable and where it came from: "loaded",
    "compiled" (and stored), "compiled, not stored" or "compiled, not cached: <why>". A solve's entry
    (`fast_compile`) leads the read-ahead of the kernels that follow it (`_read_ahead.lead`)."""
    folder = directory()
    full_key = path = None
    if folder is None:
        reason = "the persistent cache is off"
    elif not _trusted_folder(folder):
        reason = "the cache directory is not private (see the warning)"
    elif jax.config.jax_disable_jit or jax.config.jax_debug_nans or jax.config.jax_debug_infs:
        reason = "a JAX debugging mode is on"
    else:
        try:
            module, qualname = _name(fn)
            # the options as requested: whether this jaxlib accepts them is fixed by its version, so
            # a warm process need not probe them (a small compilation)
            full_key = key(f"{module}.{qualname}", args, kw,
                           _cache.requested_compiler_options() if fast_compile else {})
            path = _path(folder, qualname.replace(".", "_").replace("<", "").replace(">", ""),
                         full_key)
        except Unkeyable as err:
            reason = str(err)
        except (ValueError, TypeError, AttributeError, RecursionError) as err:  # a describe() gap
            reason = f"no key ({type(err).__name__}: {err})"
        else:
            exe = _read_ahead.claim(path, full_key)
            exe = load(path, full_key) if exe is None else exe
            if exe is not None:
                _obtained(path, fast_compile)
                return exe, "loaded"
    exe = compile_function(fn, args, kw, _cache.compiler_options() if fast_compile else {},
                           for_store=path is not None)
    if path is None:
        return exe, f"compiled, not cached: {reason}"
    if store(path, full_key, exe):
        _obtained(path, fast_compile)
        return exe, "compiled"
    return exe, f"compiled, not stored: {exe.why_not or 'another process is writing it, or it failed'}"


def _obtained(path: str, solve: bool) -> None:
    """A solve's entry leads a group of `_read_ahead`: what followed it last time is read ahead while it
    runs; any other entry joins the current group's list."""
    if solve:
        _read_ahead.lead(path, peek)
    else:
        _read_ahead.follow(path)


def compiled_once(fn, args: tuple, kw: dict, memo: dict, origins: dict | None = None,
                  signature=None, fast_compile: bool = True) -> tuple[Executable, float]:
    """The compile path of the package's kernels: `compiled(fn, args, kw)` at most once per process for each
    call signature (argument tree, shapes, dtypes and static keywords; or the caller's hashable
    `signature`), kept in the caller's `memo`; `fast_compile` as in `compiled`. Returns the executable
    and the seconds spent getting it
    (0.0 when `memo` already had it); where it came from ("loaded", "compiled", …) goes to `origins`
    under the same key. `_stored_jit.stored_jit` puts the small kernels on this path."""
    if signature is not None:
        key = signature
    else:
        leaves, treedef = jax.tree_util.tree_flatten(args)
        key = (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves),
               tuple(sorted(kw.items(), key=lambda kv: kv[0])))
    if key in memo:
        return memo[key], 0.0
    _executables.register(memo)
    _executables.make_room()
    t = time.perf_counter()
    memo[key], origin = compiled(fn, args, kw, fast_compile)
    if origins is not None:
        origins[key] = origin
    return memo[key], time.perf_counter() - t

