"""`minewatch <any command> --help` answers with its usage and exit status 0, for every
command and sub-command of the tree (plugins' too), and the simulators' commands behind
`minewatch simulate`."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from launcher.cli import build_parser, main
from simulators.cli import build_parser as simulate_parser

ROOT = Path(__file__).resolve().parents[2]

# Commands that hand their words on to a parser of their own instead of parsing them.
FORWARDED: dict[tuple[str, ...], Callable[[], argparse.ArgumentParser]] = {("simulate",): simulate_parser}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if path in FORWARDED:
        for sub in _commands(FORWARDED[path]()):
            if sub:
                yield path + sub
        return
    for action in parser._actions:  # argparse has no public walk of its tree
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


COMMANDS = sorted(_commands(build_parser()))


def test_the_tree_is_walked() -> None:
    # The walk reaches plugins, nested commands, forwarded ones and the hidden spelling.
    for expected in [("registry", "load"), ("rules", "worker"), ("alerting", "deliver"), ("tokens", "create"),
                     ("simulate", "history"), ("simulate", "live"), ("ingest-files",), ("import",),
                     ("ingest", "files")]:
        assert expected in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "minewatch")
def test_help_exits_0_with_a_usage(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert stopped.value.code == 0
    assert out.startswith("usage: minewatch " + " ".join(command)), out[:200]


def test_simulate_help_as_a_process() -> None:
    # The command as the operator typed it when it failed with "unrecognized arguments: --help".
    done = subprocess.run([sys.executable, "-m", "launcher", "simulate", "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: minewatch simulate") and "history" in done.stdout


# `minewatch ingest files` is accepted (scripts use it) but the help and the docs say
# `minewatch ingest-files`: one spelling for a person to learn.
HIDDEN = {("ingest", "files")}
_DOC_COMMAND = re.compile(r"(?:`|^)minewatch((?: [a-z][a-z-]*)+)", re.MULTILINE)


def test_file_ingest_has_one_spelling_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["ingest", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "ingest-files" in out
        assert "{files}" not in out and "    files " not in out


def test_the_docs_name_only_commands_the_cli_accepts() -> None:
    commands = set(COMMANDS)
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text(encoding="utf-8").splitlines():
            for match in _DOC_COMMAND.finditer(line):
                words = tuple(match.group(1).split())
                # the longest prefix that is a command; what follows is arguments
                path = max((words[:n] for n in range(len(words) + 1) if words[:n] in commands), key=len)
                assert path, f"{doc.name}: {line.strip()}"
                if path in HIDDEN:
                    assert "older spelling" in line, f"{doc.name} uses the hidden spelling: {line.strip()}"


def test_simulate_without_a_mode_says_the_mode_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["simulate"])
    assert stopped.value.code == 2
    assert "required: mode" in capsys.readouterr().err
