"""One progress bar: `progress_bar` is the entry point and FLOWTOOLS_PROGRESS=0 is read in one place."""

import pathlib

import flowtools
from flowtools.dynamics import progress


def test_switch_hides_every_bar(monkeypatch):
    monkeypatch.setenv("FLOWTOOLS_PROGRESS", "0")
    assert progress.disabled() and not progress.wanted(True)
    assert progress_bar_disabled(progress.progress_bar(10, "x", True))
    monkeypatch.setenv("FLOWTOOLS_PROGRESS", "1")
    assert progress.wanted(True) and not progress.wanted(False)
    assert not progress_bar_disabled(progress.progress_bar(10, "x", True, unit="passage"))
    assert not progress.wanted(None, total=10, threshold=100)


def progress_bar_disabled(bar) -> bool:
    hidden = bar.disable  # tqdm's close() sets it
    bar.close()
    return hidden


def test_the_switch_and_tqdm_are_used_in_one_module():
    root = pathlib.Path(flowtools.__file__).parent
    readers = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
               if "FLOWTOOLS_PROGRESS\")" in p.read_text() or "from tqdm" in p.read_text()]
    assert readers == ["dynamics/progress.py"]
