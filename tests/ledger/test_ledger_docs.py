"""The ledger and db commands shown in docs/ledger.md and docs/operations.md exist exactly:
every usage written there parses with the real command-line parser."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from asterisk_recorder.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "ledger.md", ROOT / "docs" / "operations.md"]
ACTIONS = (
    "verify", "spool-status", "export", "erase", "purge", "show", "tail",
    "checkpoint", "checkpoint-key", "prove", "check-receipt",
)

PLACEHOLDERS = {
    "--number": "+12125550100",
    "-n": "5",
    "--lines": "5",
    "--call": "1763900000.42",
    "--config": "recorder.toml",
    "--dsn": "postgresql://recorder@db/recorder",
    "--older-than": "90d",
    "--witness": "/srv/witness",
    "--key": "recorder.example.com/ledger+01234567+" + "AQEB" * 11,
    "--out": "receipt.json",
}
"""A concrete value for the placeholder that follows each flag in the docs."""


def _documented_usages(path: Path) -> list[str]:
    """Every inline-code span or code-block line of ``path`` showing a ledger or db command."""
    text = path.read_text()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    commands = [
        line.strip().removeprefix("$ ")
        for block in blocks
        for line in block.splitlines()
        if line.strip().removeprefix("$ ").startswith("asterisk-recorder ")
    ]
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    spans += commands
    usages = []
    for span in spans:
        text = span.replace("\\|", "|").strip()
        text = text.removeprefix("asterisk-recorder ")
        words = text.split()
        if not words or "ACTION" in words or "--help" in words:
            continue
        if words[0] in {"ledger", "db"} and len(words) > 1:
            usages.append(text)
        elif words[0] in ACTIONS and len(words) > 1 and words[1].startswith("-"):
            usages.append("ledger " + text)  # prose such as `purge --older-than AGE`
    return usages


def _argv_variants(usage: str) -> list[list[str]]:
    """Concrete argv lists for a usage: without the [optional] parts, and with each choice."""
    optional = re.findall(r"\[([^\]]+)\]", usage)
    bare = re.sub(r"\s*\[[^\]]+\]", "", usage)
    choices = max([len(part.split("|")) for part in re.findall(r"\S*\|\S*", usage)] or [1])
    variants = [bare]
    for index in range(choices):
        full = usage
        for part in optional:
            full = full.replace(f"[{part}]", part)
        alternatives = re.findall(r"\S+\|\S+", full)
        for group in alternatives:
            options = group.split("|")
            full = full.replace(group, options[min(index, len(options) - 1)], 1)
        variants.append(full)
    return [_concrete(v.split()) for v in variants]


def _concrete(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if out and out[-1] in PLACEHOLDERS and word.isupper():
            out.append(PLACEHOLDERS[out[-1]])
        elif out and out[-1] == "--config" and word in {"F", "FILE"}:
            out.append(PLACEHOLDERS["--config"])
        else:
            out.append(word)
    return out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _ledger_actions() -> set[str]:
    return set(_subparsers(_subparsers(build_parser())["ledger"]))


def _problem(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str | None:
    """Why ``argv`` is not a valid command line (flags must match exactly, no abbreviation)."""
    parser = build_parser()
    try:
        command = _subparsers(_subparsers(parser)[argv[0]])[argv[1]]
    except (KeyError, IndexError):
        return f"{' '.join(argv)}: no such command"
    if len(argv) == 2:  # a command named in prose (`ledger purge`): it exists, that is all
        return None
    flags = {flag for flag in argv if flag.startswith("-") and not flag[1:2].isdigit()}
    unknown = sorted(flags - set(command._option_string_actions))
    if unknown:
        return f"{' '.join(argv)}: no option {', '.join(unknown)}"
    try:
        parser.parse_args(argv)
    except SystemExit:
        return f"{' '.join(argv)}: {capsys.readouterr().err.strip()}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_every_documented_ledger_command_line_parses(
    doc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ``ledger``/``db`` usage in the doc is accepted by the real parser, flag by flag."""
    usages = _documented_usages(doc)
    problems = [
        problem
        for usage in usages
        for argv in _argv_variants(usage)
        if (problem := _problem(argv, capsys)) is not None
    ]

    assert [] == problems
    assert len(usages) >= 7


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_every_ledger_action_is_documented(doc: Path) -> None:
    """The doc shows a usage for every ``ledger`` action the parser has."""
    shown = {usage.split()[1] for usage in _documented_usages(doc) if usage.startswith("ledger ")}

    assert set(ACTIONS) == _ledger_actions()
    assert set(ACTIONS) <= shown


@pytest.mark.parametrize(
    "usage",
    [
        "ledger purge --older 90d",  # argparse would accept the abbreviation
        "ledger export --format csv",  # --number is required
        "ledger tail --count N",
        "ledger spool-stats",
    ],
)
def test_a_wrong_usage_is_reported(usage: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The check itself bites: a misspelled flag, a missing required one, a wrong action."""
    problems = [_problem(argv, capsys) for argv in _argv_variants(usage)]

    assert len(_argv_variants(usage)) == sum(problem is not None for problem in problems)
