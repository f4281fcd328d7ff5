"""`flowtools --help` and every subcommand's help are complete sentences.

The parser is taken from `flowtools.cli.main` itself (its `parse_args` is intercepted), so a subcommand
or an option added later is checked without editing this file.
"""

from __future__ import annotations

import argparse
import re

import pytest

from flowtools import cli

_SENTENCE = re.compile(r"^[A-Z].*[.!?]$", re.S)


class _Parsed(Exception):
    pass


def _parser(monkeypatch) -> argparse.ArgumentParser:
    seen = {}

    def capture(self, *args, **kwargs):
        seen["parser"] = self
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed):
        cli.main([])
    return seen["parser"]


def _help_texts(parser: argparse.ArgumentParser, where="flowtools"):
    if where == "flowtools" or parser.description is not None:   # a subcommand may rely on its summary
        yield where, parser.description
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield f"{where} {choice.dest} (summary)", choice.help
            for name, sub in action.choices.items():
                yield from _help_texts(sub, f"{where} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield f"{where} {'/'.join(action.option_strings) or action.dest}", action.help


def test_help_texts_are_sentences(monkeypatch):
    texts = list(_help_texts(_parser(monkeypatch)))
    assert len(texts) >= 12
    bad = [f"{where}: {text!r}" for where, text in texts
           if not text or not _SENTENCE.match(" ".join(text.split()))]
    assert not bad, "help texts missing or not complete sentences:\n" + "\n".join(bad)


def test_flowtools_help_prints_whole_description(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: flowtools")
    assert "Run a sweep described by a TOML file, check a sweep store for damaged records, merge the " \
           "finished points of one sweep store into another, or list and run the studies." in out
    for command in ("sweep", "check", "merge", "studies"):
        assert command in out


def test_checker_rejects_a_fragment():
    assert not _SENTENCE.match("`flowtools merge SOURCE STORE` and")
    assert not _SENTENCE.match("run a sweep")
    assert _SENTENCE.match("Run a sweep.")
