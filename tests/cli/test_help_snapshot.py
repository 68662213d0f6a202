"""``consentgate --help`` and every command's ``--help``, byte for byte.

The help is what an operator reads first and what docs quote; a change to the
command line's code must not change it by accident. ``data/help.txt`` holds what
``consentgate [COMMAND [ACTION]] --help`` printed (80 columns) for every command the
parser has; regenerate it on purpose with ``python -m tests.cli.test_help_snapshot``.
argparse's layout changes between Python versions (3.13 writes ``-c, --config FILE``),
so the file names the version it was rendered with.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from consentgate.cli import build_parser, main

SNAPSHOT = Path(__file__).parent / "data" / "help.txt"
RULE = "=" * 20


def command_paths(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command path of the parser, depth first in the order of its help."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_paths(sub, (*path, name))


def version_line() -> str:
    return f"python {sys.version_info[0]}.{sys.version_info[1]}"


def render() -> str:
    """Each command's ``--help`` as the script prints it, under a header naming it."""
    parts = [version_line() + "\n"]
    for path in command_paths(build_parser()):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([*path, "--help"])
        command = " ".join(("consentgate", *path, "--help"))
        parts.append(f"{RULE} {command} {RULE}\n{out.getvalue()}")
    return "".join(parts)


def test_the_help_of_every_command_is_the_same_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("CONSENTGATE_CONFIG", raising=False)
    expected = SNAPSHOT.read_text(encoding="utf-8")
    if expected.splitlines()[0] != version_line():
        pytest.skip(f"the snapshot is argparse's layout on {expected.splitlines()[0]}")
    assert render() == expected


if __name__ == "__main__":
    os.environ["COLUMNS"] = "80"
    os.environ.pop("CONSENTGATE_CONFIG", None)
    SNAPSHOT.write_text(render(), encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
