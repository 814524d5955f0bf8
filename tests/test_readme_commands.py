"""The README's command table names every command and sub-command the CLI offers.

This module owns comparing the parser ``cli.build_parser`` builds (so a new command cannot be
forgotten) with the back-quoted commands of the README's "Commands" table, and checking that
every command the table names exists. It must not run any command.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from asterisk_recorder.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
_SNIPPET_RE = re.compile(r"`([^`]+)`")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_commands() -> set[str]:
    """``serve``, ``ledger verify``, ``policy table``, ...: every leaf command of the CLI."""
    found: set[str] = set()
    for name, sub in _subparsers(build_parser()).items():
        actions = _subparsers(sub)
        found |= {f"{name} {action}" for action in actions} if actions else {name}
    return found


def readme_commands() -> set[str]:
    """The commands named in the first column of the README's "Commands" table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    tops = _subparsers(build_parser())
    named: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for snippet in _SNIPPET_RE.findall(first_cell):
            words = snippet.removeprefix("asterisk-recorder ").split()
            if not words or words[0] not in tops:
                continue
            if _subparsers(tops[words[0]]) and len(words) > 1:
                named.add(f"{words[0]} {words[1]}")  # ledger verify, policy table, ...
            else:
                named.add(words[0])  # serve [--config F]: the rest are arguments
    return named


def test_every_cli_command_is_in_the_readme_table() -> None:
    """Each command and sub-command the parser offers is named in the table's first column."""
    assert set() == cli_commands() - readme_commands()


def test_every_command_in_the_readme_table_exists() -> None:
    """Nothing in the table is a command or sub-command the CLI does not have."""
    named = readme_commands()

    assert set() == named - cli_commands()
    assert {"policy explain", "policy table", "db migrate"} <= named
