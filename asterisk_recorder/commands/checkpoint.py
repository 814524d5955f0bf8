"""``asterisk-recorder ledger verify|checkpoint|checkpoint-key|prove|check-receipt``.

This module owns the arguments and output of the commands that prove the ledger outside the
database: ``verify`` (the chain, the stored checkpoints and, with ``--witness``, what the
witnesses hold), ``checkpoint`` (sign one now and push it), ``checkpoint-key create|show|
rotate``, ``prove`` (a consent receipt) and ``check-receipt`` (no database at all). The work is
done by ``asterisk_recorder.ledger`` (``audit``, ``checkpoints``, ``signing``, ``receipts``,
``witness``). It must not hold key material longer than a command needs it, and must never
print a private key.
Exit codes: 0 ok, 1 a broken chain / a failed check / runtime failure, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asterisk_recorder import config
from asterisk_recorder.errors import LedgerError
from asterisk_recorder.ledger.audit import AuditReport, Claim, audit_ledger
from asterisk_recorder.ledger.checkpoints import Checkpointer, SignedCheckpoint, witness_from_target
from asterisk_recorder.ledger.database import connect_app, database_dsn
from asterisk_recorder.ledger.keys import load_digest_key
from asterisk_recorder.ledger.receipts import MAX_RECEIPT_BYTES, check_receipt, prove_decision
from asterisk_recorder.ledger.signing import (
    checkpoint_key_path,
    checkpoint_origin,
    close_signing_key,
    create_signing_key,
    given_verifiers,
    load_signing_key,
    pkcs11_configured,
    rotate_signing_key,
    signing_key_location,
    trusted_path,
    trusted_verifiers,
)
from asterisk_recorder.ledger.timestamps import load_tsa_roots
from asterisk_recorder.ledger.witness import WitnessedCheckpoint
from asterisk_recorder.settings import Settings

__all__ = ["add_actions", "add_verify_arguments", "run_verify"]

Action = Callable[[str, Callable[[argparse.Namespace], int], str, str], argparse.ArgumentParser]


def add_actions(action: Action) -> None:
    """Add the checkpoint actions to ``ledger`` (``action`` is ``ledger.register``'s helper)."""
    cp = action(
        "checkpoint",
        run_checkpoint,
        "sign a checkpoint now and push it to the witnesses",
        "Grow the Merkle tree to the newest entry, sign a checkpoint covering it (when the "
        "tree grew since the last one), store it and push it to every configured witness, "
        "waiting for each. Exit 1 when a witness did not take it.",
    )
    cp.add_argument("--json", action="store_true", help="print JSON")

    key = action(
        "checkpoint-key",
        run_checkpoint_key,
        "create, show or rotate the checkpoint signing key",
        "create: make the Ed25519 signing key, in the key file or (with "
        "ledger.checkpoint_pkcs11_module) in the PKCS#11 token; refused when one exists. show: "
        "print the verifier key to publish. rotate: replace the key file; the old verifier key "
        "is kept in <key file>.trusted so earlier checkpoints still verify (a token's key is "
        "rotated by creating one under a new label). The private key is never printed.",
    )
    key.add_argument("what", choices=("create", "show", "rotate"))
    key.add_argument("--yes", action="store_true", help="rotate without asking")

    prove = action(
        "prove",
        run_prove,
        "print a consent receipt for one decision",
        "Print a self-contained receipt for DECISION_ID: the entry (personal data only as "
        "digests), its Merkle inclusion proof and the signed checkpoint it is in. Anyone can "
        "check it with 'ledger check-receipt FILE --key VERIFIER', with no database.",
    )
    prove.add_argument("decision_id", metavar="DECISION_ID")
    prove.add_argument("--out", metavar="FILE", help="write the receipt to FILE (default stdout)")

    check = action(
        "check-receipt",
        run_check_receipt,
        "check a consent receipt, without any database",
        "Check the receipt in FILE ('-' for stdin): the entry's hash, its inclusion proof and "
        "the checkpoint's signature by KEY (a verifier key as 'checkpoint-key show' prints "
        "it, or a file holding one). Exit 1 when it does not hold.",
    )
    check.add_argument("file", metavar="FILE")
    check.add_argument("--key", action="append", required=True, metavar="PUBKEY")
    check.add_argument(
        "--tsa-cert",
        metavar="FILE",
        help="also check the receipt's RFC 3161 timestamp against the TSA root(s) in this PEM file",
    )


def add_verify_arguments(verify: argparse.ArgumentParser) -> None:
    """``ledger verify``'s options beyond ``--json``."""
    verify.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="DIR|URL",
        help="also hold the database against the checkpoints this witness holds (a directory, "
        "an http(s) URL or s3://bucket/prefix); repeat for several",
    )
    verify.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PUBKEY",
        help="trust this verifier key (or a file of them) besides the configured ones",
    )


async def _witnessed(settings: Settings, targets: list[str]) -> tuple[list[Claim], list[str]]:
    claims: list[Claim] = []
    problems: list[str] = []
    for target in targets:
        try:
            sink = witness_from_target(target, settings.ledger)
            held = await sink.fetch()
        except LedgerError as exc:
            problems.append(f"witness {target} could not be read: {exc}")
            continue
        if not held:
            problems.append(f"witness {sink.name} holds no checkpoint")
        claims += [Claim(sink.name, cp.note) for cp in held]
    return claims, problems


def _report_json(report: AuditReport) -> dict[str, Any]:
    chain = report.chain
    return {
        "ok": report.ok,
        "rows": chain.rows,
        "head_seq": chain.head_seq,
        "head_hash": chain.head_hash,
        "position": chain.position,
        "entry_id": chain.entry_id,
        "reason": chain.reason,
        "unchecked_personal": chain.unchecked_personal,
        "at_head": chain.at_head,
        "last_entry_id": chain.last_entry_id,
        "root": chain.root.hex(),
        "checkpoints": report.checkpoints,
        "witnessed": report.witnessed,
        "covered": report.covered,
        "problems": list(report.problems),
        "timestamps": report.timestamps,
        "newest_timestamp": (
            None
            if report.newest_timestamp is None
            else {
                "size": report.newest_timestamp.size,
                "tsa": report.newest_timestamp.tsa,
                "gen_time": report.newest_timestamp.gen_time.isoformat(),
            }
        ),
    }


def _print_chain(report: AuditReport) -> None:
    chain = report.chain
    if chain.ok:
        print(f"chain OK: {chain.rows} rows verified; head {chain.head_seq} {chain.head_hash}")
        if chain.unchecked_personal:
            print(
                f"note: {chain.unchecked_personal} personal rows use another digest key "
                "and were not checked against their digests"
            )
    elif chain.at_head:
        last = (
            f"the last is position {chain.rows}, id {chain.last_entry_id}"
            if chain.last_entry_id
            else "there are none"
        )
        print(
            f"chain BROKEN at the head (the ledger_head row, which records {chain.head_seq} "
            f"rows): {chain.reason}; every row before it verifies ({chain.rows} rows, {last})",
            file=sys.stderr,
        )
    else:
        print(
            f"chain BROKEN at position {chain.position} (id {chain.entry_id}): "
            f"{chain.reason}; {chain.rows} rows verified before it",
            file=sys.stderr,
        )


def run_verify(args: argparse.Namespace) -> int:
    """``ledger verify [--witness T]... [--key K]...``."""
    settings = config.settings_from_args(args, require_ari_password=False)
    key = load_digest_key(settings.ledger)
    verifiers = trusted_verifiers(settings.ledger, tuple(args.key))
    ca_file = settings.ledger.timestamp_ca_file
    roots = load_tsa_roots(ca_file) if ca_file else None

    async def work() -> tuple[AuditReport, list[str]]:
        claims, unread = await _witnessed(settings, list(args.witness))
        async with database_dsn(settings) as dsn:
            conn = await connect_app(dsn, connect_timeout=settings.database.connect_timeout)
            try:
                report = await audit_ledger(
                    conn, key, verifiers, witnessed=claims, tsa_roots=roots
                )
            finally:
                await conn.close()
        return report, unread

    report, unread = asyncio.run(work())
    problems = [*unread, *report.problems]
    ok = report.chain.ok and not problems
    if args.json:
        out = _report_json(report)
        out["ok"], out["problems"] = ok, problems
        print(json.dumps(out))
        return 0 if ok else 1
    _print_chain(report)
    if not verifiers:
        print(
            "note: no trusted checkpoint key here (no key file, ledger.checkpoint_keys or --key): "
            "no checkpoint can be verified",
            file=sys.stderr,
        )
    if report.checkpoints or report.witnessed:
        print(
            f"checkpoints: {report.checkpoints} in the database, {report.witnessed} from "
            f"witnesses; the database matches them up to entry {report.covered}"
        )
    newest = report.newest_timestamp
    if newest is not None:
        print(
            f"timestamps: {report.timestamps} verified; checkpoint {newest.size} timestamped by "
            f"{newest.tsa} at {newest.gen_time.isoformat()}"
        )
    for problem in problems:
        print(f"CHECKPOINT PROBLEM: {problem}", file=sys.stderr)
    if report.chain.ok and not problems:
        print("verify OK")
    return 0 if ok else 1


def run_checkpoint(args: argparse.Namespace) -> int:
    """``ledger checkpoint``: sign one now and push it."""
    settings = config.settings_from_args(args, require_ari_password=False)
    signing = load_signing_key(settings.ledger)

    async def work() -> tuple[SignedCheckpoint | None, list[tuple[str, str | None]]]:
        async with database_dsn(settings) as dsn:
            checkpointer = Checkpointer(
                dsn,
                signing,
                every=settings.ledger.checkpoint_every,
                interval=settings.ledger.checkpoint_interval,
                connect_timeout=settings.database.connect_timeout,
                timestamp_url=settings.ledger.timestamp_url,
            )
            try:
                signed = await checkpointer.cycle(force=True)
                if signed is None:
                    signed = await checkpointer.latest()
                await checkpointer.timestamps_settled()
                if checkpointer.timestamp_error is not None:
                    print(f"timestamp FAILED: {checkpointer.timestamp_error}", file=sys.stderr)
            finally:
                await checkpointer.close()
                close_signing_key(signing)
        results: list[tuple[str, str | None]] = []
        if signed is not None:
            for target in settings.ledger.witnesses:
                sink = witness_from_target(target, settings.ledger)
                try:
                    await sink.push(WitnessedCheckpoint(signed.size, signed.note))
                    results.append((sink.name, None))
                except LedgerError as exc:
                    results.append((sink.name, str(exc)))
        return signed, results

    signed, results = asyncio.run(work())
    failed = [name for name, error in results if error is not None]
    if args.json:
        print(
            json.dumps(
                {
                    "size": signed.size if signed else 0,
                    "root": signed.root.hex() if signed else None,
                    "note": signed.note if signed else None,
                    "witnesses": {name: error or "delivered" for name, error in results},
                }
            )
        )
    elif signed is None:
        print("the ledger is empty: nothing to sign")
    else:
        print(f"checkpoint {signed.size} root {signed.root.hex()}")
        sys.stdout.write(signed.note)
        for name, error in results:
            print(f"witness {name}: {'delivered' if error is None else 'FAILED: ' + error}")
    return 1 if failed else 0


def run_checkpoint_key(args: argparse.Namespace) -> int:
    """``ledger checkpoint-key create|show|rotate``."""
    settings = config.settings_from_args(args, require_ari_password=False)
    path = checkpoint_key_path(settings.ledger)
    where = signing_key_location(settings.ledger)
    in_token = pkcs11_configured(settings.ledger)
    if args.what == "create":
        key = create_signing_key(settings.ledger)
        if in_token:
            print(f"created the checkpoint signing key {where} (Ed25519, sensitive, not "
                  "extractable: the private key never leaves the token)")
        else:
            print(f"created the checkpoint signing key {path} (mode 0600; keep it off the "
                  "database)")
    elif args.what == "show":
        key = load_signing_key(settings.ledger, create=False)
        print(f"key:      {where}")
    else:
        if in_token:
            rotate_signing_key(settings.ledger)  # refused, saying how to rotate a token's key
        if not args.yes:
            if not sys.stdin.isatty():
                print("rotate needs --yes when not run on a terminal", file=sys.stderr)
                return 2
            answer = input(f"replace the checkpoint signing key {path}? type 'rotate': ")
            if answer.strip() != "rotate":
                print("not rotated", file=sys.stderr)
                return 1
        old, key = rotate_signing_key(settings.ledger)
        print(
            f"rotated; the old verifier key {old.to_text()} stays trusted in "
            f"{trusted_path(path)} (publish both)"
        )
    try:
        print(f"origin:   {checkpoint_origin(settings.ledger)}")
        print(f"key id:   {key.key_id.hex()}")
        print(f"verifier: {key.verifier().to_text()}")
    finally:
        close_signing_key(key)
    return 0


def run_prove(args: argparse.Namespace) -> int:
    """``ledger prove DECISION_ID``."""
    settings = config.settings_from_args(args, require_ari_password=False)

    async def work() -> dict[str, Any]:
        async with database_dsn(settings) as dsn:
            conn = await connect_app(dsn, connect_timeout=settings.database.connect_timeout)
            try:
                return await prove_decision(conn, args.decision_id)
            finally:
                await conn.close()

    receipt = asyncio.run(work())
    text = json.dumps(receipt, indent=2, ensure_ascii=True) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="ascii")
        print(
            f"receipt of decision {args.decision_id} (entry {receipt['entry']['seq']}, "
            f"checkpoint {receipt['tree_size']}) written to {args.out}"
        )
    else:
        sys.stdout.write(text)
    return 0


def run_check_receipt(args: argparse.Namespace) -> int:
    """``ledger check-receipt FILE --key PUBKEY``: no database, no configuration."""
    verifiers = given_verifiers(tuple(args.key))
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read(MAX_RECEIPT_BYTES + 1)
        else:
            with Path(args.file).open("rb") as source:
                data = source.read(MAX_RECEIPT_BYTES + 1)
    except OSError as exc:
        raise LedgerError(f"cannot read the receipt {args.file}: {exc}") from exc
    roots = load_tsa_roots(args.tsa_cert) if args.tsa_cert else None
    try:
        checked = check_receipt(data, verifiers, tsa_roots=roots)
    except LedgerError as exc:
        print(f"receipt INVALID: {exc}", file=sys.stderr)
        return 1
    print(
        f"receipt OK: decision {checked.decision_id} (outcome {checked.outcome}) is entry "
        f"{checked.seq} of {checked.origin}, in checkpoint {checked.tree_size} signed by "
        f"{', '.join(checked.signed_by)}"
    )
    if checked.timestamped_at is not None:
        print(
            f"checkpoint {checked.tree_size} timestamped by {checked.timestamped_by} at "
            f"{checked.timestamped_at.isoformat()}"
        )
    return 0
