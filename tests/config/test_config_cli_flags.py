"""Each command offers only the configuration flags it uses."""

from __future__ import annotations

import argparse

import pytest

from asterisk_recorder.cli import build_parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The sub-command parser called ``name`` under ``parser``."""
    for action in parser._actions:  # argparse keeps sub-parsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise KeyError(name)


def _flags(*argv: str) -> set[str]:
    """The long options the parser for ``argv`` (a sub-command path) accepts."""
    parser = build_parser()
    for name in argv:
        parser = _subparser(parser, name)
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


@pytest.mark.parametrize(
    ("command", "absent"),
    [
        (("ledger", "verify"), {"--ari-url", "--http-port", "--agi-port"}),
        (("db", "migrate"), {"--ari-url", "--http-port", "--agi-port"}),
        (("policy", "explain"), {"--ari-url", "--http-port", "--agi-port", "--dsn"}),
        (("agi",), {"--ari-url", "--http-port", "--agi-port"}),
    ],
)
def test_commands_offer_only_the_flags_they_use(command: tuple[str, ...], absent: set[str]) -> None:
    """Flags a command would ignore are not offered (ARI flags on ledger commands, ...)."""
    assert set() == _flags(*command) & absent


def test_serve_offers_every_override_flag() -> None:
    """``serve`` uses the whole configuration, so every override flag is there."""
    expected = {"--config", "--dsn", "--ari-url", "--log-level", "--log-format", "--http-port",
                "--agi-port", "--site"}

    assert expected <= _flags("serve")
