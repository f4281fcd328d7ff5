"""The API pages and the package cannot drift apart.

Every `::: flowtools.x.y` block of docs/api/*.md, every backticked dotted path `flowtools.x.y` on those
pages and every name in a `<!-- names: MODULE -->` … `<!-- /names -->` block must import from the place
the page gives. Every name in `flowtools.__all__` must be listed in a names block of the index page. A
signature written out under a `:::` block (`name(a, b, *, c=1)`, without an ellipsis) must name every
parameter of the real signature. The checker is tested on a synthetic page, so it demonstrably fails
when a documented name disappears.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pathlib
import re

import pytest

import flowtools

ROOT = pathlib.Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"

_DIRECTIVE = re.compile(r"^:::\s+(flowtools(?:\.\w+)*)\s*$")
_PATH = re.compile(r"`(flowtools(?:\.\w+)+)`")
_BLOCK = re.compile(r"<!--\s*names:\s*([\w.]+)\s*-->(.*?)<!--\s*/names\s*-->", re.S)
_NAME = re.compile(r"`([A-Za-z_]\w*)`")


@dataclasses.dataclass(frozen=True)
class Reference:
    page: str
    line: int
    path: str    # fully qualified, e.g. "flowtools.escape.escape_flow"
    how: str     # "directive", "path" or "names"


def resolve(path: str):
    """The object a dotted path names, the way mkdocstrings reads it: the longest importable module
    prefix, then attributes. Raises ImportError or AttributeError."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as err:
            if err.name is None or not ".".join(parts[:i]).startswith(err.name):
                raise  # a module that exists but fails to import is a real error
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"no module in {path!r}")


def references(text: str, page: str = "<page>") -> list[Reference]:
    refs = []
    lines = text.splitlines()
    for k, line in enumerate(lines, 1):
        m = _DIRECTIVE.match(line.strip())
        if m:
            refs.append(Reference(page, k, m.group(1), "directive"))
            continue
        refs += [Reference(page, k, p, "path") for p in _PATH.findall(line)]
    for block in _BLOCK.finditer(text):
        module, body = block.group(1), block.group(2)
        first = text.count("\n", 0, block.start()) + 1
        for m in _NAME.finditer(body):
            line = first + body.count("\n", 0, m.start())
            refs.append(Reference(page, line, f"{module}.{m.group(1)}", "names"))
    return refs


def broken(refs) -> list[str]:
    """A line per reference that does not resolve."""
    out = []
    for r in refs:
        try:
            resolve(r.path)
        except (ImportError, AttributeError) as err:
            out.append(f"{r.page}:{r.line}: {r.path} ({r.how}) does not import: {err}")
    return out


def signature_mismatches(text: str, page: str = "<page>") -> list[str]:
    """Parameters missing from a written-out signature right under a `:::` block."""
    out = []
    lines = text.splitlines()
    for k, line in enumerate(lines):
        m = _DIRECTIVE.match(line.strip())
        if not m:
            continue
        try:
            obj = resolve(m.group(1))
            params = list(inspect.signature(obj).parameters)
        except (ImportError, AttributeError, TypeError, ValueError):
            continue
        name = m.group(1).rsplit(".", 1)[-1]
        # The prose up to the next directive; the first backticked `name(…)` is the written signature.
        following = []
        for nxt in lines[k + 1:]:
            if _DIRECTIVE.match(nxt.strip()):
                break
            following.append(nxt)
        sig = re.search(r"`" + re.escape(name) + r"\(([^`]*)\)", "\n".join(following), re.S)
        if sig is None or "..." in sig.group(1) or "…" in sig.group(1):
            continue
        missing = [p for p in params if p != "self" and not re.search(rf"\b{p}\b", sig.group(1))]
        if missing:
            out.append(f"{page}:{k + 1}: the signature of {m.group(1)} leaves out {missing}")
    return out


def _pages():
    pages = sorted(API.glob("*.md"))
    assert pages, f"no API pages under {API}"
    return pages


def _all_refs():
    return [r for p in _pages() for r in references(p.read_text(), p.name)]


# --------------------------------------------------------------------------------------- the real docs
def test_every_documented_name_imports_from_where_the_docs_say():
    refs = _all_refs()
    assert sum(r.how == "directive" for r in refs) >= 20  # the parser found the ::: blocks
    assert sum(r.how == "names" for r in refs) >= 40
    problems = broken(refs)
    assert not problems, "\n".join(problems)


def test_written_signatures_name_every_parameter():
    problems = [m for p in _pages() for m in signature_mismatches(p.read_text(), p.name)]
    assert not problems, "\n".join(problems)


def test_every_top_level_export_is_in_the_index():
    index = API / "index.md"
    listed = {r.path.split(".", 1)[1] for r in references(index.read_text(), "index.md")
              if r.how == "names" and r.path.count(".") == 1 and r.path.startswith("flowtools.")}
    missing = sorted(set(flowtools.__all__) - listed)
    assert not missing, (f"flowtools.__all__ has {missing}, which docs/api/index.md does not list: add "
                         "them to the top-level table (between the <!-- names: flowtools --> markers)")
    assert all(hasattr(flowtools, n) for n in flowtools.__all__)


def test_every_api_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in _pages() if f"api/{p.name}" not in nav]
    assert not missing, f"API pages missing from mkdocs.yml nav: {missing}"


def test_user_facing_names_are_at_the_top_level():
    # The names a new user looked for at the top level (quickstart style) and did not find.
    for name in ("escape_flow", "ScalingFit", "bottleneck_init", "EscapeRun", "EscapeTime", "Plateau",
                 "bottleneck_saddle", "bottleneck_layers", "ActivationClass", "norm_imbalance",
                 "imbalance_residual"):
        assert getattr(flowtools, name) is getattr(importlib.import_module(
            "flowtools.universality" if name in ("ActivationClass", "norm_imbalance", "imbalance_residual")
            else "flowtools.escape"), name)


# --------------------------------------------------------------------------------- the checker itself
SYNTHETIC = """# A page

::: flowtools.escape.escape_flow

`escape_flow(problem, theta0, center, radius, *, metric="function")`

::: flowtools.escape.no_such_function

Prose naming `flowtools.landscape.hessian_spectrum` and `flowtools.landscape.not_there`, and a module
`flowtools.no_such_module`.

<!-- names: flowtools -->
`MLP`, `Problem`, `NotExported`
<!-- /names -->
"""


def test_checker_reports_names_that_do_not_exist():
    refs = references(SYNTHETIC, "synthetic.md")
    assert {r.how for r in refs} == {"directive", "path", "names"}
    problems = broken(refs)
    bad = {line.split(" ")[1] for line in problems}
    assert bad == {"flowtools.escape.no_such_function", "flowtools.landscape.not_there",
                   "flowtools.no_such_module", "flowtools.NotExported"}
    assert any(line.startswith("synthetic.md:7:") for line in problems)  # the line is reported
    assert any(line.startswith("synthetic.md:13:") for line in problems)


def test_checker_fails_when_a_documented_name_is_removed(monkeypatch):
    assert not broken(_all_refs())
    monkeypatch.delattr(flowtools, "escape_flow")   # documented at the top level by the index
    monkeypatch.delattr(flowtools.escape, "plateau_length")  # documented by a ::: block
    problems = broken(_all_refs())
    assert any("flowtools.escape_flow (names)" in p for p in problems)
    assert any("flowtools.escape.plateau_length (directive)" in p for p in problems)
    monkeypatch.undo()
    assert not broken(_all_refs())


def test_checker_reports_a_parameter_left_out_of_a_written_signature():
    problems = signature_mismatches(SYNTHETIC, "synthetic.md")
    assert len(problems) == 1 and "escape_flow" in problems[0]
    for param in ("t1", "solver", "n_save"):
        assert param in problems[0]
    elided = SYNTHETIC.replace('metric="function")', 'metric="function", ...)')
    assert signature_mismatches(elided) == []


@pytest.mark.parametrize("path", ["flowtools.escape.escape_flow", "flowtools.landscape.critical.KINDS",
                                  "flowtools.dynamics.bdf.BDF"])
def test_resolve_reads_module_paths_like_mkdocstrings(path):
    assert resolve(path) is not None
