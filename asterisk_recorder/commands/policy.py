"""``asterisk-recorder policy``: show which recording mode a call gets, and why.

This module owns the ``policy explain`` and ``policy table`` sub-commands: argument parsing and
printing only. The decision is ``PolicyEngine.evaluate``'s, the table's validation is
``policy.table``'s. Exit codes: 0 shown, 2 bad configuration or policy table (``ConfigError``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from asterisk_recorder import config
from asterisk_recorder.errors import ConfigError, PolicyError
from asterisk_recorder.policy.engine import PartyDetail, PolicyEngine, PolicyResult
from asterisk_recorder.policy.numbers import safe_text
from asterisk_recorder.settings import Settings

__all__ = ["register", "run_explain", "run_table"]

_DISCLAIMER = "This is not legal advice: check the law that applies to you (docs/policy.md)."


def register(subparsers: Any) -> None:
    """Add the ``policy`` sub-command with ``explain`` and ``table``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "policy",
        help="show which recording mode a call gets, and why",
        description="Inspect the recording policy: the jurisdiction of each party, the table "
        "row and its law and source, and the resulting mode. " + _DISCLAIMER,
    )
    sub = parser.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)

    explain = sub.add_parser(
        "explain",
        help="explain the mode of a call between two numbers",
        description="Print each party's number, jurisdiction, policy row with its law and "
        "source, and the call's mode with the reason. " + _DISCLAIMER,
    )
    explain.add_argument("caller", metavar="CALLER", help="caller number, e.g. +14155550100")
    explain.add_argument("called", metavar="CALLED", help="called number, e.g. +12125550100")
    _common(explain)
    explain.add_argument("--policy", metavar="MODE", default=None,
                         help="simulate a RECORDER_POLICY channel override")
    explain.add_argument("--jurisdiction", metavar="CODE", default=None,
                         help="simulate a RECORDER_JURISDICTION channel override")
    explain.set_defaults(func=run_explain)

    table = sub.add_parser(
        "table",
        help="list the policy table in force (default rows plus the operator's overrides)",
        description="Print every row of the policy table in force. " + _DISCLAIMER,
    )
    _common(table)
    table.set_defaults(func=run_table)


def _common(parser: argparse.ArgumentParser) -> None:
    config.add_config_arguments(parser, only=("--site",))
    parser.add_argument("--table", metavar="FILE", default=None,
                        help="operator policy table overriding the shipped one "
                        "(overrides policy.table_file)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _settings(args: argparse.Namespace) -> Settings:
    """The configuration, without demanding ARI passwords (explaining needs none)."""
    return config.settings_from_args(args, require_ari_password=False)


def _engine(args: argparse.Namespace) -> PolicyEngine:
    settings = _settings(args)
    policy = settings.policy
    if args.table is not None:
        policy = dataclasses.replace(policy, table_file=args.table)
    try:
        return PolicyEngine.from_settings(policy)
    except PolicyError as exc:
        raise ConfigError([str(exc)]) from exc


def _show(text: str) -> str:
    """Operator-typed text, printable (control characters never reach the terminal)."""
    return text if text.isprintable() and len(text) <= 64 else safe_text(text, 64)


def _party_json(detail: PartyDetail) -> dict[str, object]:
    record = detail.record
    row = detail.row
    return {
        "party": record.party,
        "number": _show(record.number) if record.number else "",
        "e164": detail.e164,
        "jurisdiction": record.jurisdiction,
        "row": record.row_id,
        "mode": record.mode.value,
        "how": detail.how,
        "name": row.name if row else None,
        "law": row.law if row else None,
        "source": row.source if row else None,
        "note": row.note if row else None,
        "beep_interval": row.beep_interval if row else None,
        "origin": row.origin if row else None,
    }


def _result_json(result: PolicyResult) -> dict[str, object]:
    return {
        "mode": result.mode.value,
        "why": result.explain(),
        "deciding_party": result.deciding_party,
        "forced": result.forced,
        "beep_interval": result.beep_interval,
        "rows": list(result.rows),
        "version": result.version,
        "notes": list(result.notes),
        "parties": [_party_json(d) for d in result.details],
        "disclaimer": _DISCLAIMER,
    }


def run_explain(args: argparse.Namespace) -> int:
    """Explain the mode of a call between ``args.caller`` and ``args.called``."""
    engine = _engine(args)
    result = engine.evaluate(
        args.caller, args.called,
        policy_override=args.policy, jurisdiction_override=args.jurisdiction,
    )
    out = sys.stdout
    if args.json:
        out.write(json.dumps(_result_json(result), indent=2, ensure_ascii=True) + "\n")
        return 0
    out.write(f"policy table {result.version}\n{_DISCLAIMER}\n")
    for detail in result.details:
        record = detail.record
        row = detail.row
        number = _show(record.number) if record.number else "(none)"
        out.write(f"\n{record.party}: {number}\n")
        if detail.e164:
            out.write(f"  E.164:        {detail.e164}\n")
        out.write(f"  jurisdiction: {record.jurisdiction}\n")
        out.write(f"  how:          {detail.how}\n")
        if row is None:
            out.write(f"  row:          {record.row_id} (policy.unknown_mode) -> "
                      f"{record.mode.value}\n")
            continue
        out.write(f"  row:          {row.id} ({row.name}) -> {row.mode.value}\n")
        out.write(f"  law:          {row.law}\n")
        out.write(f"  source:       {row.source}\n")
        if row.note:
            out.write(f"  note:         {row.note}\n")
        if row.beep_interval:
            out.write(f"  beep:         every {row.beep_interval} s\n")
        if row.origin != "default":
            out.write(f"  from:         {row.origin}\n")
    out.write(f"\nresult: {result.mode.value}\n  {result.explain()}\n")
    if result.beep_interval:
        out.write(f"  periodic beep every {result.beep_interval} s "
                  f"(MixMonitor B({result.beep_interval}))\n")
    for note in result.notes:
        out.write(f"  note: {note}\n")
    return 0


def run_table(args: argparse.Namespace) -> int:
    """List every row of the policy table in force."""
    engine = _engine(args)
    rows = sorted(engine.table.rows.values(), key=lambda r: r.id)
    out = sys.stdout
    if args.json:
        doc = {
            "version": engine.version,
            "disclaimer": _DISCLAIMER,
            "rows": [
                {
                    "id": r.id, "name": r.name, "mode": r.mode.value, "law": r.law,
                    "source": r.source, "note": r.note, "beep_interval": r.beep_interval,
                    "applies_to": list(r.applies_to), "origin": r.origin,
                }
                for r in rows
            ],
        }
        out.write(json.dumps(doc, indent=2, ensure_ascii=True) + "\n")
        return 0
    out.write(f"policy table {engine.version}\n{_DISCLAIMER}\n\n")
    width = max(len(r.id) for r in rows)
    for r in rows:
        beep = f"  beep {r.beep_interval}s" if r.beep_interval else ""
        origin = "" if r.origin == "default" else f"  [{r.origin}]"
        out.write(f"{r.id:<{width}}  {r.mode.value:<8}  {r.name}{beep}{origin}\n")
    return 0
