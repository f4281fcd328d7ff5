"""The documentation runs as written.

Every ```python block of README.md and docs/**/*.md is executed, page by page and in order, in one
namespace per page and in a fresh working directory, with Sybil. The conventions (docs/index.md,
"Examples in these pages"):

- A block that starts with `>>>` is a doctest: its quoted outputs are compared with what the code
  prints, under ELLIPSIS (`...` stands for anything: wall times, long messages), NORMALIZE_WHITESPACE
  (column padding does not matter) and Sybil's NUMBER: a number written with a decimal point or an
  exponent matches within one unit of its last digit (`1.70` claims 1.70 ± 0.01, `5e-13` claims
  5e-13 ± 1e-13). NUMBER applies only where the expected and the printed output hold as many such
  numbers; otherwise (e.g. a `...` hides some) the comparison is exact.
  Quoted output belongs in such blocks; a plain block quotes nothing it does not check.
- A plain block is executed. It may not end a statement with a bare value (`x.shape  # (4,)`): in a
  session that shows an output, which only a doctest checks.
- `<!-- docs: slow -->` before a block: it runs only under the `slow` marker (`make test-all`, which runs
  every page whole); `make test` skips it and goes on with the page, so later blocks must not need
  what it defines (they fail with a NameError if they do).
- `<!-- docs: fragment uses NAME, NAME -->` before a block: a fragment, not executed, but compiled, and
  every free name it reads must be defined earlier on its page, be a builtin or be listed after `uses`.

A second test runs this machinery on synthetic pages, so it demonstrably fails on a wrong quoted
output, an undefined name in a fragment and a block that raises.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import doctest
import pathlib
import re
import symtable

import pytest
from sybil import Document
from sybil.evaluators.doctest import NUMBER
from sybil.parsers.markdown import PythonCodeBlockParser

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_PARSER = PythonCodeBlockParser(doctest_optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | NUMBER)
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})python[ \t]*$", re.M)
_DIRECTIVE = re.compile(r"<!--\s*docs:\s*(slow|fragment)\b([^>]*?)-->\s*\n\s*\Z")
_USES = re.compile(r"^\s*uses\s+(.*)$")


@dataclasses.dataclass
class Block:
    start: int                 # offset of the fence in the page
    line: int
    kind: str                  # "run", "slow" or "fragment"
    uses: tuple[str, ...] = ()


def blocks(text: str) -> list[Block]:
    """The ```python blocks of a page with the directive (if any) on the line before each."""
    out = []
    for m in _FENCE.finditer(text):
        before = text[max(0, m.start() - 300):m.start()]
        d = _DIRECTIVE.search(before)
        kind, uses = "run", ()
        if d:
            kind = d.group(1)
            u = _USES.match(d.group(2))
            if kind == "fragment" and u:
                uses = tuple(n.strip() for n in u.group(1).split(",") if n.strip())
        out.append(Block(m.start(), text.count("\n", 0, m.start()) + 1, kind, uses))
    return out


def free_names(source: str, filename: str = "<fragment>") -> set[str]:
    """Names a piece of module-level code reads without binding them (compiles it first)."""
    compile(source, filename, "exec")
    top = symtable.symtable(source, filename, "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    free: set[str] = set()

    def walk(table, module_level):
        for s in table.get_symbols():
            name = s.get_name()
            if not s.is_referenced():
                continue
            if module_level and not (s.is_assigned() or s.is_imported()):
                free.add(name)
            elif not module_level and s.is_global() and name not in bound:
                free.add(name)
        for child in table.get_children():
            walk(child, False)

    walk(top, True)
    return free - set(dir(builtins))


def bare_values(source: str) -> list[int]:
    """Lines of top-level expression statements that are not calls: values a session would print."""
    return [node.lineno for node in ast.parse(source).body
            if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Await))]


def _name(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_page(path: pathlib.Path, *, slow: bool) -> tuple[int, int, int]:
    """Evaluate a page's blocks in order. Returns (blocks run, fragments checked, doctest examples).
    Without `slow`, skips the blocks marked slow."""
    document = Document.parse(str(path), _PARSER)
    text = document.text
    page_blocks = blocks(text)
    examples = list(document)
    n_run = n_fragments = n_doctest = 0
    skipped = 0
    for k, block in enumerate(page_blocks):
        end = page_blocks[k + 1].start if k + 1 < len(page_blocks) else len(text)
        mine = [e for e in examples if block.start <= e.start < end]
        if block.kind == "slow" and not slow:
            skipped += 1
            continue
        if block.kind == "fragment":
            for e in mine:
                source = str(e.parsed)
                if source.lstrip().startswith(">>>"):
                    pytest.fail(f"{_name(path)}:{block.line}: a fragment cannot be a doctest")
                undefined = free_names(source, f"{path}:{block.line}") - set(document.namespace) - set(
                    block.uses)
                if undefined:
                    pytest.fail(f"{_name(path)}:{block.line}: fragment reads undefined names "
                                f"{sorted(undefined)}; define them earlier on the page or list them in "
                                f"<!-- docs: fragment uses ... -->")
            n_fragments += 1
            continue
        for e in mine:
            if not isinstance(e.parsed, doctest.Example):
                shown = bare_values(str(e.parsed))
                if shown:
                    pytest.fail(f"{_name(path)}:{block.line}: line(s) {shown} of the block show a value that is "
                                f"not checked; quote it in a doctest (>>>) or drop it")
            e.evaluate()
            n_doctest += isinstance(e.parsed, doctest.Example)
        n_run += 1
    assert n_run + n_fragments + skipped == len(page_blocks)
    return n_run, n_fragments, n_doctest


def _has_python(path):
    return bool(_FENCE.search(path.read_text(encoding="utf-8")))


def _has_slow(path):
    return any(b.kind == "slow" for b in blocks(path.read_text(encoding="utf-8")))


_RUNNABLE = [p for p in PAGES if _has_python(p)]


@pytest.fixture
def page_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWTOOLS_PROGRESS", "0")


@pytest.mark.parametrize("path", _RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_page(path, page_env):
    run_page(path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in _RUNNABLE if _has_slow(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_page_whole(path, page_env):
    run_page(path, slow=True)


# --- the machinery fails where it should ------------------------------------------------------------

def _page(tmp_path, body: str) -> pathlib.Path:
    p = tmp_path / "page.md"
    p.write_text(body, encoding="utf-8")
    return p


def test_runner_checks_quoted_output(tmp_path, page_env):
    good = "```python\n>>> 2 / 3\n0.667\n>>> print('took 1.2 s')\ntook ... s\n```\n"
    assert run_page(_page(tmp_path, good), slow=False) == (1, 0, 2)
    with pytest.raises(Exception, match="0.65"):
        run_page(_page(tmp_path, "```python\n>>> 2 / 3\n0.65\n```\n"), slow=False)


def test_runner_fails_on_errors_and_undefined_names(tmp_path, page_env):
    with pytest.raises(KeyError):
        run_page(_page(tmp_path, "```python\nx = {}['segments']\n```\n"), slow=False)
    fragment = "<!-- docs: fragment uses problem -->\n```python\nx = problem.loss(theta)\n```\n"
    with pytest.raises(pytest.fail.Exception, match="theta"):
        run_page(_page(tmp_path, fragment), slow=False)
    ok = ("```python\ntheta = 1\n```\n\n" + fragment)
    assert run_page(_page(tmp_path, ok), slow=False) == (1, 1, 0)


def test_runner_skips_slow_block(tmp_path, page_env):
    page = ("```python\na = 1\n```\n<!-- docs: slow -->\n```python\nraise RuntimeError\n```\n"
            "```python\nb = a\n```\n")
    assert run_page(_page(tmp_path, page), slow=False) == (2, 0, 0)
    with pytest.raises(RuntimeError):
        run_page(_page(tmp_path, page), slow=True)


def test_runner_rejects_unchecked_values(tmp_path, page_env):
    with pytest.raises(pytest.fail.Exception, match=r"line\(s\) \[2\]"):
        run_page(_page(tmp_path, "```python\nx = (1, 2)\nx[0]   # 1\n```\n"), slow=False)


def test_free_names():
    src = "import numpy as np\ndef f(x):\n    return np.sum(x) + y\nz = f(w)\n[q for q in range(3)]\n"
    assert free_names(src) == {"y", "w"}
