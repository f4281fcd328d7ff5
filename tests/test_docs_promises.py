"""The prose of README.md and docs/ promises only options that exist.

Executed blocks (tests/test_docs_blocks.py) catch what they run; these checks catch what the prose and the
tables say without running it:

- an argument table (first header cell "argument") under a `::: flowtools.x.f` directive lists only
  parameters of f;
- an inline call written in backticks, `f(…, name=…)` or `ft.f(…, name=…)` with f a public flowtools
  function, uses only keywords f takes (unless f takes **kwargs);
- a capability table whose header names `time_limit`, `checkpoint` (and `resume=`) says "yes" only for
  functions that take those parameters;
- every method named as `run_ensemble("…"` is one `run_ensemble` accepts.

Each check is also run on a synthetic page, so it demonstrably fails on a false promise.
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import re

import pytest

import flowtools as ft

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_DIRECTIVE = re.compile(r"^:::\s+(flowtools(?:\.\w+)+)\s*$")
_ROW = re.compile(r"^\|(.+)\|\s*$")
_TICK = re.compile(r"`([A-Za-z_]\w*)=?`")
_INLINE_CALL = re.compile(r"`(?:ft\.|flowtools\.)?([A-Za-z_]\w*)\(([^`]*)\)`")
_ENSEMBLE = re.compile(r"run_ensemble\(\s*[\"'](\w+)[\"']")


def _resolve(path: str):
    obj = __import__("flowtools")
    for part in path.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def _params(obj) -> tuple[set[str], bool]:
    """(parameter names, whether it takes **kwargs) of a function, or of a class's constructor."""
    sig = inspect.signature(obj)
    names = {p.name for p in sig.parameters.values()}
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _ROW.match(line).group(1).split("|")]


def argument_table_errors(text: str, page: str = "<page>") -> list[str]:
    errors, target = [], None
    lines = text.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k]
        m = _DIRECTIVE.match(line.strip())
        if m:
            target = m.group(1)
        elif line.startswith("#"):
            target = None
        elif target and _ROW.match(line) and _cells(line)[0].lower() == "argument":
            obj = _resolve(target)
            if callable(obj):
                names, _ = _params(obj)
                k += 2  # header and separator
                while k < len(lines) and _ROW.match(lines[k]):
                    for name in _TICK.findall(_cells(lines[k])[0]):
                        if name not in names:
                            errors.append(f"{page}:{k + 1}: `{name}` is in the argument table of {target}, "
                                          f"which has no such parameter")
                    k += 1
                continue
        k += 1
    return errors


def _public_function(name: str):
    obj = getattr(ft, name, None)
    return obj if callable(obj) and name in getattr(ft, "__all__", ()) else None


def inline_call_errors(text: str, page: str = "<page>") -> list[str]:
    errors = []
    for m in _INLINE_CALL.finditer(text):
        fn = _public_function(m.group(1))
        if fn is None or inspect.isclass(fn) and not hasattr(fn, "__init__"):
            continue
        args = m.group(2).replace("…", "...")
        try:
            call = ast.parse(f"f({args})", mode="eval").body
        except SyntaxError:
            continue  # prose such as `f(x; θ)` is not a call
        try:
            names, var_kw = _params(fn)
        except (TypeError, ValueError):
            continue
        if var_kw:
            continue
        line = text.count("\n", 0, m.start()) + 1
        deprecated = getattr(fn, "__renamed_arguments__", {})  # an old spelling still taken, with a warning
        for kw in call.keywords:
            if kw.arg is not None and kw.arg not in names and kw.arg not in deprecated:
                errors.append(f"{page}:{line}: `{m.group(0)}` passes {kw.arg}=, which {m.group(1)} does not take")
    return errors


def capability_table_errors(text: str, page: str = "<page>") -> list[str]:
    """Tables whose header's second cell names `time_limit` and `checkpoint` (a "what each method
    supports" table): a row saying "yes" there needs those parameters in every function it names, and a
    row whose `resume=` cell does not start with "no" needs `resume`."""
    errors = []
    lines = text.splitlines()
    for k, line in enumerate(lines):
        if not _ROW.match(line):
            continue
        head = _cells(line)
        if len(head) < 3 or "`time_limit`" not in head[1] or "`checkpoint`" not in head[1]:
            continue
        resume_col = next((i for i, h in enumerate(head) if "`resume=`" in h), None)
        j = k + 2
        while j < len(lines) and _ROW.match(lines[j]):
            row = _cells(lines[j])
            functions = [n for n in re.findall(r"`(\w+)`", row[0]) if _public_function(n)]
            for name in functions:
                params, _ = _params(_public_function(name))
                if row[1].lower().startswith("yes"):
                    for need in ("time_limit", "checkpoint", "progress"):
                        if need not in params:
                            errors.append(f"{page}:{j + 1}: the table says {name} supports {need}; it has no "
                                          f"such parameter")
                if resume_col is not None and not row[resume_col].lower().startswith("no") \
                        and "resume" not in params:
                    errors.append(f"{page}:{j + 1}: the table says {name} can resume; it has no resume=")
            j += 1
    return errors


def ensemble_method_errors(text: str, page: str = "<page>") -> list[str]:
    errors = []
    for m in _ENSEMBLE.finditer(text):
        try:
            ft.run_ensemble(m.group(1), None, None)
        except ValueError:
            line = text.count("\n", 0, m.start()) + 1
            errors.append(f"{page}:{line}: run_ensemble does not take the method {m.group(1)!r}")
        except TypeError:
            pass  # the method passed; the (deliberately missing) problem was refused
    return errors


CHECKS = [argument_table_errors, inline_call_errors, capability_table_errors, ensemble_method_errors]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_docs_promise_only_what_exists(check):
    errors = []
    for path in PAGES:
        errors += check(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not errors, "\n".join(errors)


def test_checks_catch_false_promises():
    page = (
        "::: flowtools.escape_time\n\n| argument | meaning |\n| --- | --- |\n| `radius` | ball |\n"
        "| `time_limit` | budget |\n\n"
        "Run `ft.escape_time(traj, center, 0.1, checkpoint=path)` or `gradient_flow(p, t1=1.0)`.\n\n"
        "| method | `time_limit`, `checkpoint`, `progress` | `resume=` continues |\n| --- | --- | --- |\n"
        "| `gradient_descent`, `escape_time` | yes | at the step |\n| `gradient_flow` | yes | yes |\n\n"
        "```python\nft.run_ensemble(\"adam\", problem, thetas)\nft.run_ensemble(\"sgd\", p, t)\n```\n"
    )
    assert [e.split(": ", 1)[1] for e in argument_table_errors(page)] == [
        "`time_limit` is in the argument table of flowtools.escape_time, which has no such parameter"]
    assert len(inline_call_errors(page)) == 1 and "checkpoint=" in inline_call_errors(page)[0]
    cap = capability_table_errors(page)
    assert len(cap) == 4 and all("escape_time" in e for e in cap)   # time_limit, checkpoint, progress, resume
    assert len(ensemble_method_errors(page)) == 1 and "'adam'" in ensemble_method_errors(page)[0]
