"""docs/architecture.md and the package cannot drift apart.

Every module path the page names exists; every name it gives as a concept's one definition is defined in
the module it names; every library module over 500 lines is either justified on the page or a module
whose split into a package the page announces. Paths of the announced split packages may be missing only
while that split has not landed (the old module file is still there), and must all exist once it has.
The checker is run on a synthetic page too, so it demonstrably fails when a named path is missing.
"""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"

_PATH = re.compile(r"`((?:flowtools|studies|tests|docs)/[\w/.]*)`")
_ROW = re.compile(r"^\|\s*`(flowtools/(?:[\w/]+/)?)`\s*\|(.*)\|\s*$")
_PRIVATE = re.compile(r"`(_?\w+\.py)`")
_IDENT = re.compile(r"`([A-Za-z_]\w*)`")


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _pending(package: str, paths: list[str]) -> bool:
    """Whether the announced split of `package` (e.g. "flowtools/escape/") has not landed yet: its old
    module is still a file (escape.py, …), or, for a package that already existed (landscape/), none of
    its new private modules is there."""
    if (ROOT / (package.rstrip("/") + ".py")).exists():
        return True
    return not any((ROOT / p).exists() for p in paths if p.rsplit("/", 1)[-1].startswith("_"))


def _split_paths(text: str) -> dict[str, list[str]]:
    """{package: the module paths the split table names for it}."""
    out = {}
    for line in _section(text, "Packages split by concept").splitlines():
        m = _ROW.match(line)
        if m:
            out[m.group(1)] = [m.group(1) + name for name in _PRIVATE.findall(m.group(2))]
    return out


def _exists(path: str) -> bool:
    """A path exists, or names a module that became a package (its import path still resolves)."""
    p = ROOT / path
    if p.exists():
        return True
    return path.endswith(".py") and (ROOT / path[:-3] / "__init__.py").exists()


def missing_paths(text: str) -> list[str]:
    """The paths named in `text` that do not exist and are not waiting for a split to land."""
    split = _split_paths(text)
    waiting = {q for package, paths in split.items() if _pending(package, paths) for q in (package, *paths)}
    # "NAME" is the placeholder of the how-to templates (studies/NAME.py).
    named = [p for p in sorted(set(_PATH.findall(text))) if "NAME" not in p]
    missing = [p for p in named if not _exists(p) and p not in waiting]
    for package, paths in split.items():
        if package not in waiting:
            missing += [p for p in paths if not (ROOT / p).exists() and p not in missing]
    return missing


def test_every_path_on_the_page_exists():
    text = PAGE.read_text(encoding="utf-8")
    assert len(_PATH.findall(text)) > 40  # the page names its modules; the pattern finds them
    assert missing_paths(text) == []


def test_the_checker_fails_on_a_missing_path():
    page = ("`flowtools/graph.py` and `flowtools/no_such_module.py`\n\n## Packages split by concept\n\n"
            "| `flowtools/` | `_checks.py`, `_no_such_helper.py` |\n"
            "| `flowtools/landscape/` | `spectrum.py`, `_not_yet_there.py` |\n")
    # The landscape row waits for its split (none of its private modules exists); the flowtools/ row
    # has landed (_checks.py exists), so its missing module counts.
    assert missing_paths(page) == ["flowtools/no_such_module.py", "flowtools/_no_such_helper.py"]


def test_one_definitions_are_where_the_page_says():
    table = _section(PAGE.read_text(encoding="utf-8"), "Where each concept lives")
    checked = 0
    rows = [line for line in table.splitlines() if line.startswith("|")]
    for line in rows[2:]:  # after the header and its rule
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            continue
        path = re.fullmatch(r"`(flowtools/[\w/]+)\.py`", cells[1])
        assert path, f"no module path in the row {line!r}"
        if path.group(1) == "flowtools/__init__":
            continue  # the x64 row names a statement, not a definition
        module = path.group(1).replace("/", ".")
        mod = importlib.import_module(module)
        for name in _IDENT.findall(cells[2]):
            assert hasattr(mod, name), f"{module} has no {name} (docs/architecture.md)"
            checked += 1
    assert checked >= 30


def test_long_modules_are_justified_or_being_split():
    text = PAGE.read_text(encoding="utf-8")
    justified = set(_PATH.findall(_section(text, "Modules over 500 lines that stay whole")))
    splitting = {package.rstrip("/") + ".py" for package in _split_paths(text)}
    split = _split_paths(text)
    long = []
    for path in sorted((ROOT / "flowtools").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in justified or sum(1 for _ in path.open(encoding="utf-8")) <= 500:
            continue
        # Allowed for now: a module whose split has not landed (escape.py, …), and the public modules of
        # a package split in place (landscape's spectrum.py and critical.py) until their parts move out.
        if rel in splitting or any(rel in paths and _pending(package, paths) for package, paths in split.items()):
            continue
        long.append(rel)
    assert long == [], f"modules over 500 lines, neither justified on docs/architecture.md nor being split: {long}"


def _private_imports(root: pathlib.Path) -> list[str]:
    """Every `from <flowtools module> import _name` in the package where `_name` is not itself a module:
    a private name crossing a module boundary."""
    import ast

    found = []
    for path in sorted((root / "flowtools").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        package = parts if parts[-1] == "__init__" else parts[:-1]
        package = [p for p in package if p != "__init__"]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[: len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "flowtools":
                base = node.module.split(".")
            else:
                continue
            for alias in node.names:
                target = root.joinpath(*base, alias.name)
                if alias.name.startswith("_") and not alias.name.startswith("__") and not (target.with_suffix(".py").exists() or target.is_dir()):
                    found.append(f"{path.relative_to(root)}:{node.lineno} imports {alias.name} from "
                                 f"{'.'.join(base)}")
    return found


def test_no_private_name_crosses_a_module_boundary(tmp_path):
    """No library module imports a private name from another (`from .a import _b`); importing a private
    module (`from . import _checks`) is how the package shares its internals. The check finds a planted
    private import, so it can fail."""
    assert _private_imports(ROOT) == []
    pkg = tmp_path / "flowtools" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "flowtools" / "_helpers.py").write_text("def _hidden():\n    pass\n")
    (pkg / "__init__.py").write_text("")
    (pkg / "user.py").write_text("from .. import _helpers\nfrom .._helpers import _hidden\n")
    assert _private_imports(tmp_path) == ["flowtools/sub/user.py:2 imports _hidden from flowtools._helpers"]
