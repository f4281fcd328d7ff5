"""Deprecation shims: an old spelling keeps working for one release and says what replaced it.

Three kinds of rename, one warning each (a `FutureWarning`, shown by default, since the callers are
researchers' scripts rather than libraries):

- `renamed_arguments(old="new")` decorates a function whose keyword argument was renamed;
- `renamed_function(new, "old")` builds the old function or method name as a forwarding wrapper;
- `renamed_attributes(__name__, {"Old": "New"})` returns a module `__getattr__` for renamed module
  attributes (classes, functions). Look-ups from inside flowtools stay silent so that an internal import
  not yet moved to the new name does not warn on `import flowtools`.

Every old spelling is removed in `REMOVED_IN`; docs/changelog.md lists them.
"""

from __future__ import annotations

import functools
import sys
import warnings

__all__ = ["REMOVED_IN", "renamed_arguments", "renamed_attributes", "renamed_function", "warn_renamed"]

REMOVED_IN = "0.3.0"


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that `old` is deprecated in favour of `new` (both written as the user would write them)."""
    warnings.warn(f"{old} is deprecated and will be removed in flowtools {REMOVED_IN}; use {new} instead.",
                  FutureWarning, stacklevel=stacklevel)


def renamed_arguments(**old_to_new: str):
    """Decorator: keyword `old=` is accepted as `new=` with a warning; passing both is a TypeError."""

    def decorate(fn):
        name = getattr(fn, "__qualname__", fn.__name__)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{name}() got both {old}= and {new}=; {old} is the deprecated "
                                        f"spelling of {new}, pass only {new}=.")
                    warn_renamed(f"{name}({old}=...)", f"{new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        wrapper.__renamed_arguments__ = dict(old_to_new)  # old → new, for tools that read signatures
        return wrapper

    return decorate


def renamed_function(new_fn, old_name: str):
    """The function (or method, when assigned in a class body) `old_name`, forwarding to `new_fn`."""

    @functools.wraps(new_fn)
    def wrapper(*args, **kwargs):
        warn_renamed(f"{old_name}()", f"{new_fn.__name__}()")
        return new_fn(*args, **kwargs)

    wrapper.__name__ = old_name
    wrapper.__qualname__ = new_fn.__qualname__.rsplit(".", 1)[0] + "." + old_name \
        if "." in new_fn.__qualname__ else old_name
    wrapper.__doc__ = f"Deprecated spelling of `{new_fn.__name__}`; removed in flowtools {REMOVED_IN}."
    return wrapper


def renamed_attributes(module_name: str, old_to_new: dict[str, str]):
    """A module-level `__getattr__` serving each old attribute name as the module's new one, with a warning
    unless the look-up comes from inside flowtools (internal imports move in their own step)."""

    def __getattr__(name: str):
        if name not in old_to_new:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        new = old_to_new[name]
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller != "flowtools" and not caller.startswith("flowtools."):
            warn_renamed(f"{module_name}.{name}", f"{module_name}.{new}")
        return getattr(sys.modules[module_name], new)

    return __getattr__
