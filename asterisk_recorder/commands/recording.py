"""``asterisk-recorder recording ...``: keys list|create|rotate|destroy|recover, verify, open,
hold, dispose, retention (``_retention``), redact (``_redact``).

This module owns the commands' arguments, confirmations and output only; the work is done by
``asterisk_recorder.recordings`` (``keys``, ``pkcs11_kek``, ``escrow``, ``envelope``, ``access``).
With ``recordings.kek_pkcs11_module`` set, the private keys are in that token instead of
``--private-keys``. Facts
(``recording.key_created``, ``recording.key_destroyed``, ``recording.accessed``) go to the
ledger through ``Ledger.record_fact`` when a DSN is configured; without one, destroying a key
or opening a recording needs ``--no-ledger`` (said loudly). No key material is ever printed.
Exit codes: 0 ok, 1 a bad file / missing key / runtime failure, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import asyncpg

from asterisk_recorder import config
from asterisk_recorder.commands._redact import add_redact_action
from asterisk_recorder.commands._retention import add_actions as add_retention_actions
from asterisk_recorder.commands._retention import key_store
from asterisk_recorder.errors import KeyUnavailable, RecordingError
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.flow.recording import DECISION_ID_RE
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import load_digest_key
from asterisk_recorder.recordings import FileKekOpener, KeyStore, verify
from asterisk_recorder.recordings.access import Access, access_fact, key_fact, open_recording
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.escrow import (
    Custodian,
    Escrow,
    load_custodian,
    load_custodian_key,
    recover,
)
from asterisk_recorder.recordings.keys import KekInfo, KekOpener, rotation_due
from asterisk_recorder.recordings.ledgered import LedgerCheck, check_sealed, sealed_fact
from asterisk_recorder.recordings.pkcs11_kek import Pkcs11PrivateKeys
from asterisk_recorder.recordings.retention import (
    destroyed_key,
    disposal_notice,
    key_notice,
    load_inventory,
)
from asterisk_recorder.recordings.storage import Stores, stores_from_settings
from asterisk_recorder.settings import Settings
from asterisk_recorder.settings.ledger_rules import cryptoperiod_seconds
from asterisk_recorder.settings.retention import parse_retention

__all__ = ["register"]

_T = TypeVar("_T")


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def register(subparsers: Any) -> None:
    """Add the ``recording`` sub-command and its actions."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "recording", help="recording keys, verify and open sealed recordings"
    )
    actions = parser.add_subparsers(dest="recording_command", metavar="ACTION", required=True)

    keys: argparse.ArgumentParser = actions.add_parser(
        "keys",
        help="list, create, rotate or destroy key-encryption keys",
        description="Key-encryption key pairs, one per {retention class, month}. Public keys "
        "go to --public-keys (the sealing host reads it); private keys to --private-keys "
        "(another host or volume; 0700/0600).",
    )
    key_actions = keys.add_subparsers(dest="keys_command", metavar="KEYS_ACTION", required=True)

    def key_action(name: str, text: str, func: Callable[[argparse.Namespace], int]) -> Any:
        sub: argparse.ArgumentParser = key_actions.add_parser(name, help=text, description=text)
        config.add_config_arguments(sub, only=("--dsn", "--log-level", "--log-format"))
        sub.add_argument("--public-keys", required=True, type=Path, metavar="DIR")
        sub.add_argument("--private-keys", type=Path, metavar="DIR")
        sub.set_defaults(func=func)
        return sub

    key_list = key_action("list", "list the keys, their buckets and states", run_keys_list)
    key_list.add_argument("--json", action="store_true", help="print the keys as JSON")
    for name, text, func in (
        ("create", "create the key pair of a {class, month} bucket", run_keys_create),
        ("rotate", "retire a bucket's active key (it still opens) and create a new one",
         run_keys_rotate),
    ):
        sub = key_action(name, text, func)
        sub.add_argument("--class", dest="retention_class", required=True, metavar="CLASS")
        sub.add_argument("--month", required=True, metavar="YYYY-MM")
        sub.add_argument("--escrow", type=int, metavar="M",
                         help="escrow the new private key M-of-N to the --custodian keys")
        sub.add_argument("--custodian", action="append", type=Path, default=[],
                         metavar="FILE", help="a custodian's P-384 public key (PEM); once each")
        sub.add_argument("--escrow-dir", type=Path, metavar="DIR",
                         help="where the share files and manifest go (DIR/KEK_ID/)")
    recovering = key_action(
        "recover",
        "rebuild a private key from M escrow shares and store it (a new token or directory)",
        run_keys_recover,
    )
    recovering.add_argument("kek_id", metavar="KEK_ID")
    recovering.add_argument("--share", action="append", type=Path, default=[], required=True,
                            metavar="FILE", help="a share file (M of them)")
    recovering.add_argument("--custodian-key", action="append", type=Path, default=[],
                            required=True, metavar="FILE",
                            help="a custodian's P-384 private key (PEM), one per share")
    destroy = key_action(
        "destroy",
        "destroy a private key: every recording sealed to it becomes unreadable for ever",
        run_keys_destroy,
    )
    destroy.add_argument("kek_id", metavar="KEK_ID")
    destroy.add_argument(
        "--confirm", required=True, metavar="KEK_ID", help="repeat the key id exactly"
    )
    destroy.add_argument("--reason", required=True, help="why (retention expired, ticket ...)")
    destroy.add_argument("--no-ledger", action="store_true", help="allow it with no DSN set")

    check: argparse.ArgumentParser = actions.add_parser(
        "verify",
        help="check a sealed recording (a file, or a decision id) and name the first bad chunk",
        description="Check the header, the length and every chunk's digest; with "
        "--private-keys also every authentication tag and the plaintext SHA-256. Given a "
        "decision id (or a file, when a DSN is configured) also check the file against its "
        "recording.sealed fact (header fields, chunk root, sealed digest) and the ledger's "
        "hash chain; the file is then where the ledger says it is (recording.stored: the "
        "object store, read with ranged GETs; else below recordings.sealed_dir). An s3:// "
        "location is read from the store.",
    )
    config.add_config_arguments(check, only=("--dsn", "--log-level", "--log-format"))
    check.add_argument("path", metavar="ID|PATH")
    check.add_argument(
        "--no-ledger", action="store_true",
        help="check the file alone even when a DSN is configured",
    )
    check.add_argument("--private-keys", type=Path, metavar="DIR")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=run_verify)

    opening: argparse.ArgumentParser = actions.add_parser(
        "open",
        help="decrypt a sealed recording (verified first; the access is recorded first)",
        description="Verify the whole file, record who opens it and why in the ledger "
        "(recording.accessed), then write the plaintext to --out (a file, or - for stdout).",
    )
    config.add_config_arguments(opening, only=("--dsn", "--log-level", "--log-format"))
    opening.add_argument("path", metavar="ID|PATH",
                         help="a sealed file, an s3:// location, or a decision id (the "
                         "ledger says where its recording is)")
    opening.add_argument("--out", required=True, metavar="FILE|-")
    opening.add_argument("--private-keys", type=Path, metavar="DIR",
                         help="the private keys (not with recordings.kek_pkcs11_module: the "
                         "token then unwraps)")
    opening.add_argument("--reason", required=True, help="why you open it (case, request id)")
    opening.add_argument("--no-ledger", action="store_true", help="allow it with no DSN set")
    opening.set_defaults(func=run_open)
    add_retention_actions(actions)
    add_redact_action(actions)


def _store(args: argparse.Namespace, settings: Settings) -> KeyStore:
    return key_store(settings, args.public_keys, args.private_keys)


def _opener(settings: Settings, private_keys: Path | None) -> KekOpener:
    """The token's opener (``recordings.kek_pkcs11_module``) or the directory's."""
    rec = settings.recordings
    if rec.kek_pkcs11_module:
        if private_keys is not None:
            raise RecordingError("recordings.kek_pkcs11_module is set: the private keys are "
                                 "in its token; drop --private-keys")
        return Pkcs11PrivateKeys(rec.kek_pkcs11_module, rec.kek_pkcs11_token,
                                 rec.kek_pkcs11_pin.value).opener()
    if private_keys is None:
        raise RecordingError("opening needs --private-keys DIR, or recordings.kek_pkcs11_module")
    return FileKekOpener(private_keys)


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def _due(settings: Settings, info: KekInfo) -> float | None:
    if info.state != "active":
        return None
    return rotation_due(info, cryptoperiod_seconds(settings.recordings.kek_cryptoperiod))


def _settings(args: argparse.Namespace) -> Settings:
    return config.settings_from_args(args, require_ari_password=False)


def _recorder(
    settings: Settings, no_ledger: bool, what: str
) -> Callable[[LedgerFact], Coroutine[Any, Any, None]] | None:
    """A coroutine that keeps a fact, or ``None`` with ``--no-ledger`` (refused otherwise)."""
    if not settings.database.dsn:
        if not no_ledger:
            raise RecordingError(
                f"{what} is recorded in the ledger, and no DSN is configured (--dsn, "
                "[database] dsn): configure one, or pass --no-ledger to do it unrecorded"
            )
        print(f"warning: {what} is NOT recorded in any ledger (--no-ledger)", file=sys.stderr)
        return None

    async def keep(fact: LedgerFact) -> None:
        async with Ledger.open(
            settings.database.dsn.value, settings.ledger, instance_id=_actor()
        ) as ledger:
            await ledger.record_fact(fact)

    return keep


def run_keys_list(args: argparse.Namespace) -> int:
    """``recording keys list``: exit 1 when the token cannot be reached (keys still listed)."""
    settings = _settings(args)
    store = _store(args, settings)
    fault: KeyUnavailable | None = None
    try:
        infos = store.list()
    except KeyUnavailable as exc:
        if store.private is None:
            raise
        fault = exc
        infos = KeyStore(args.public_keys).list()
    now = time.time()
    if args.json:
        print(json.dumps([
            {
                "kek_id": i.kek_id, "retention_class": i.retention_class, "month": i.month,
                "state": i.state, "created_at": i.created_at, "destroyed_at": i.destroyed_at,
                "fingerprint": i.fingerprint,
                "private_present": None if fault is not None else i.private_present,
                "custody": i.custody, "escrow": i.escrow, "rotation_due": _due(settings, i),
            }
            for i in infos
        ]))
    elif not infos:
        print(f"no keys in {args.public_keys}")
    else:
        print(f"{'KEK_ID':<34} {'CLASS':<12} {'MONTH':<8} {'STATE':<10} PRIVATE  "
              f"{'FINGERPRINT':<16}  ROTATION")
        for i in infos:
            private = ("-" if store.private is None else "?" if fault is not None
                       else "here" if i.private_present else "absent")
            due = _due(settings, i)
            rotation = "-" if due is None else (
                f"DUE since {_day(due)}" if due <= now else f"due {_day(due)}")
            print(
                f"{i.kek_id:<34} {i.retention_class:<12} {i.month:<8} {i.state:<10} "
                f"{private:<8} {i.fingerprint[:16]}  {rotation}"
            )
    if fault is not None:
        print(f"error: private keys unknown: {fault}", file=sys.stderr)
        return 1
    return 0


def _escrow(args: argparse.Namespace) -> Escrow | None:
    if args.escrow is None:
        if args.custodian or args.escrow_dir is not None:
            raise RecordingError("--custodian and --escrow-dir go with --escrow M")
        return None
    if args.escrow_dir is None:
        raise RecordingError("--escrow needs --escrow-dir DIR (where the share files go)")
    custodians = tuple(load_custodian(path) for path in args.custodian)
    return Escrow(args.escrow_dir, args.escrow, custodians)


def _created(args: argparse.Namespace, rotate: bool) -> int:
    settings = _settings(args)
    store = _store(args, settings)
    if store.private is None:
        raise RecordingError("creating a key needs --private-keys DIR (for the private half), "
                             "or recordings.kek_pkcs11_module (a token)")
    escrow = _escrow(args)
    info = (store.rotate if rotate else store.create)(
        args.retention_class, args.month, escrow=None if escrow is None else escrow.write)
    print(
        f"{'rotated: new' if rotate else 'created'} key {info.kek_id} for "
        f"{info.retention_class} {info.month}; fingerprint {info.fingerprint}"
    )
    print(f"  public:  {store.public_dir / (info.kek_id + '.pub.pem')} (copy to the sealing host)")
    if args.private_keys is not None:
        print(f"  private: {args.private_keys / (info.kek_id + '.key.pem')} (keep it off that "
              "host)")
    else:
        print(f"  private: in {store.private.where}, labelled {info.kek_id}: sensitive, not "
              "extractable; unwraps on the token")
    described = None
    if escrow is not None:
        described = (f"{escrow.threshold}-of-{len(escrow.custodians)} "
                     + ",".join(c.fingerprint[:16] for c in escrow.custodians))
        print(f"  escrow:  {escrow.threshold}-of-{len(escrow.custodians)} shares in "
              f"{info.escrow} (manifest.json); hand share-N-*.json to its custodian, then "
              "delete it here")
    due = _due(settings, info)
    if due is not None:
        print(f"  rotation due {_day(due)} (recordings.kek_cryptoperiod = "
              f"{settings.recordings.kek_cryptoperiod}), or at the end of {info.month}")
    if settings.database.dsn:
        keep = _recorder(settings, False, "key creation")
        assert keep is not None
        asyncio.run(keep(key_fact(info, actor=_actor(), at=time.time(), escrow=described)))
        print("  ledger: recording.key_created")
    return 0


def run_keys_recover(args: argparse.Namespace) -> int:
    """``recording keys recover KEK_ID --share FILE ... --custodian-key FILE ...``."""
    settings = _settings(args)
    store = _store(args, settings)
    if store.private is None:
        raise RecordingError("recovering a key needs where to put it: --private-keys DIR, or "
                             "recordings.kek_pkcs11_module (a token)")
    store.private.check()
    key = recover(args.kek_id, args.share, args.custodian_key)
    info = store.recover(args.kek_id, key)
    del key
    named = {str(json.loads(path.read_text(encoding="utf-8"))["custodian_fingerprint"])
             for path in args.share}
    given = {Custodian(path.name, load_custodian_key(path).public_key()).fingerprint
             for path in args.custodian_key}
    used = ",".join(sorted(fp[:16] for fp in named & given))  # whose shares rebuilt it
    print(f"recovered key {info.kek_id} ({info.retention_class} {info.month}) into "
          f"{store.private.where}; fingerprint {info.fingerprint}")
    if settings.database.dsn:
        keep = _recorder(settings, False, "key recovery")
        assert keep is not None
        asyncio.run(keep(key_fact(info, actor=_actor(), at=time.time(), recovered_by=used)))
        print("  ledger: recording.key_recovered")
    return 0


def run_keys_create(args: argparse.Namespace) -> int:
    """``recording keys create``."""
    return _created(args, rotate=False)


def run_keys_rotate(args: argparse.Namespace) -> int:
    """``recording keys rotate``."""
    return _created(args, rotate=True)


def run_keys_destroy(args: argparse.Namespace) -> int:
    """``recording keys destroy``: confirmation, ledger fact first, then the destruction."""
    settings = _settings(args)
    store = _store(args, settings)
    if args.confirm != args.kek_id:
        raise RecordingError(
            f"--confirm {args.confirm!r} does not repeat {args.kek_id!r}; nothing was destroyed"
        )
    if not args.reason.strip():
        raise RecordingError("--reason must say why the key is destroyed")
    info = next((i for i in store.list() if i.kek_id == args.kek_id), None)
    if info is None:
        raise RecordingError(f"key {args.kek_id} is not in {args.public_keys}")
    if store.private is None:
        raise RecordingError("destroying a key needs --private-keys DIR, or "
                             "recordings.kek_pkcs11_module (a token)")
    if not info.private_present:
        raise RecordingError(
            f"private key {args.kek_id} is not in {store.private.where}; nothing was destroyed"
        )
    keep = _recorder(settings, args.no_ledger, f"destroying key {args.kek_id}")
    if keep is not None:  # the intent is in the ledger before the key is gone
        asyncio.run(keep(key_fact(info, actor=_actor(), at=time.time(), reason=args.reason)))
    done = store.destroy(args.kek_id, confirm=args.confirm)
    print(
        f"destroyed private key {done.kek_id} ({done.retention_class} {done.month}): every "
        "recording sealed to it is now unreadable, in every copy and backup"
    )
    if info.escrow is not None:
        print(f"  escrow: share files and manifest in {info.escrow} deleted; custodians must "
              "destroy the copies they were handed")
    return 0


def _verify_with_ledger(
    settings: Settings, target: str, path: Path | None, opener: FileKekOpener | None
) -> LedgerCheck:
    async def run() -> LedgerCheck:
        conn = await connect_app(
            settings.database.dsn.value, connect_timeout=settings.database.connect_timeout
        )
        try:
            return await check_sealed(
                conn, sealed_dir=Path(settings.recordings.sealed_dir),
                recording_id=None if path is not None else target, path=path, opener=opener,
                key=load_digest_key(settings.ledger),
                stores=stores_from_settings(settings.recordings),
            )
        finally:
            await conn.close()

    return asyncio.run(run())


def run_verify(args: argparse.Namespace) -> int:
    """``recording verify ID|PATH``."""
    settings = _settings(args)
    opener = None if args.private_keys is None else FileKekOpener(args.private_keys)
    path: Path | None = Path(args.path)
    assert path is not None
    if args.path.startswith("s3://"):
        return _verify_location(settings, args, opener)
    if not path.exists() and DECISION_ID_RE.match(args.path):
        path = None  # a decision id: the ledger says which file
    use_ledger = path is None or (bool(settings.database.dsn) and not args.no_ledger)
    if path is None and not settings.database.dsn:
        raise RecordingError(
            f"{args.path} is a decision id: looking it up needs the ledger (--dsn, --config)"
        )
    check: LedgerCheck | None = None
    try:
        if use_ledger:
            check = _verify_with_ledger(settings, args.path, path, opener)
            result, shown = check.result, check.location or str(check.path)
        else:
            assert path is not None
            with open(path, "rb") as src:
                result = verify(src, opener=opener)
            shown = str(path)
    except OSError as exc:
        raise RecordingError(f"cannot read {path or args.path}: {exc.strerror}") from exc
    if args.json:
        print(json.dumps({
            "ok": True, "path": str(shown), "recording_id": result.recording_id,
            "kek_id": result.kek_id, "chunks": result.chunks, "plain_bytes": result.plain_bytes,
            "plain_sha256": result.plain_sha256, "sealed_bytes": result.sealed_bytes,
            "sealed_sha256": result.sealed_sha256, "chunk_root": result.chunk_root,
            "tags_checked": result.tags_checked, "ledger_checked": result.ledger_checked,
            "fact_id": check.fact.fact_id if check is not None else None,
            "fact_seq": check.fact.seq if check is not None else None,
            "chain_rows": check.chain.rows if check is not None else None,
        }))
    else:
        what = "every tag and the plaintext digest" if result.tags_checked else (
            "structure and chunk digests (no key: tags not checked)"
        )
        print(
            f"OK {shown}: recording {result.recording_id}, {result.chunks} chunks, "
            f"{result.plain_bytes} bytes, key {result.kek_id}; {what}; "
            f"sealed sha256 {result.sealed_sha256}"
        )
        if check is not None:
            print(
                f"  ledger: matches recording.sealed {check.fact.fact_id} (position "
                f"{check.fact.seq}); hash chain intact ({check.chain.rows} rows)"
            )
    return 0


def _verify_location(
    settings: Settings, args: argparse.Namespace, opener: FileKekOpener | None
) -> int:
    """``recording verify s3://...``: the object alone (structure, digests; tags with a key)."""
    location = args.path
    stores = stores_from_settings(settings.recordings)
    with stores.for_location(location).open(location) as src:
        result = verify(src, opener=opener)
    if args.json:
        print(json.dumps({
            "ok": True, "path": location, "recording_id": result.recording_id,
            "kek_id": result.kek_id, "chunks": result.chunks, "plain_bytes": result.plain_bytes,
            "sealed_bytes": result.sealed_bytes, "sealed_sha256": result.sealed_sha256,
            "tags_checked": result.tags_checked, "ledger_checked": False,
        }))
    else:
        print(f"OK {location}: recording {result.recording_id}, {result.chunks} chunks, "
              f"{result.plain_bytes} bytes, key {result.kek_id}; sealed sha256 "
              f"{result.sealed_sha256} (give the decision id to check it against the ledger)")
    return 0


@contextlib.contextmanager
def _output(target: str) -> Iterator[BinaryIO]:
    if target == "-":
        yield sys.stdout.buffer
        return
    path = Path(target)
    if path.exists():
        raise RecordingError(f"{path} exists; refusing to overwrite it")
    partial = path.with_name(f".{path.name}.partial")
    try:
        # plaintext audio: 0600 whatever the umask, created exclusively
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as handle:
            yield handle
        partial.rename(path)  # a refused or failed open leaves no file behind
    finally:
        partial.unlink(missing_ok=True)


async def _known_decision(settings: Settings, recording_id: str) -> bool:
    """``recording_id`` is a decision id this ledger holds (so a fact may name it)."""
    if not DECISION_ID_RE.match(recording_id):
        return False
    catalog = Catalog(settings.database.dsn.value,
                      connect_timeout=settings.database.connect_timeout)
    try:
        return await catalog.lookup(recording_id) is not None
    finally:
        await catalog.close()


async def _source(
    settings: Settings, target: str, exists: bool
) -> tuple[Any, Any, str | None]:
    """What ``recording open`` reads: a file, an ``s3://`` location, or the recording of a
    decision id where the ledger says it is (with the fact's ``SealInfo`` to check against)."""
    stores: Stores = stores_from_settings(settings.recordings)
    path = Path(target)
    if target.startswith("s3://"):
        store = stores.for_location(target)
        return (lambda: store.open(target)), None, None
    if exists or not DECISION_ID_RE.match(target):
        return path, None, None
    if not settings.database.dsn:
        raise RecordingError(
            f"{target} is a decision id: looking it up needs the ledger (--dsn, --config)")
    conn = await connect_app(settings.database.dsn.value,
                             connect_timeout=settings.database.connect_timeout)
    try:
        inventory = await load_inventory(
            conn, Path(settings.recordings.sealed_dir),
            parse_retention(settings.recordings.retention), decision_ids=[target])
        notice = disposal_notice(inventory, target)
        if notice is not None:  # disposed of, or its key destroyed: say when and by whom
            raise RecordingError(f"cannot open: {notice}")
        fact = await sealed_fact(conn, target)
    finally:
        await conn.close()
    if fact.stored_fact_id is not None:
        store = stores.for_location(fact.location)
        return (lambda: store.open(fact.location)), fact.info, fact.decision_id
    local = stores.local.path_of(fact.file)
    return local, fact.info, fact.decision_id


def run_open(args: argparse.Namespace) -> int:
    """``recording open PATH --out FILE|-``."""
    settings = _settings(args)
    if not args.reason.strip():
        raise RecordingError("--reason must say why the recording is opened")
    keep = _recorder(settings, args.no_ledger, "opening a recording")
    opener = _opener(settings, args.private_keys)
    exists = Path(args.path).exists()

    async def record(access: Access) -> None:
        if keep is None:
            return
        if access.decision_id is None and await _known_decision(settings, access.recording_id):
            # the sealer names a recording by its decision: link the access to that decision
            access = dataclasses.replace(access, decision_id=access.recording_id)
        await keep(access_fact(access))

    async def run() -> None:
        source, expected, decision_id = await _source(settings, args.path, exists)
        with _output(args.out) as out:
            result = await open_recording(
                source, opener, out, who=_actor(), why=args.reason, record_access=record,
                expected=expected, decision_id=decision_id,
            )
        if args.out != "-":
            print(
                f"opened {result.recording_id}: {result.plain_bytes} bytes to {args.out}"
                + ("; access recorded in the ledger" if keep is not None else ""),
                file=sys.stderr,
            )

    try:
        asyncio.run(run())
    except OSError as exc:
        raise RecordingError(f"cannot open {args.path}: {exc.strerror}") from exc
    except KeyUnavailable as exc:
        event = None
        kek_id = exc.kek_id
        if settings.database.dsn and kek_id:
            event = asyncio.run(_with_conn(settings, lambda c: destroyed_key(c, kek_id)))
        if event is None:
            raise
        raise RecordingError(key_notice(event)) from exc
    finally:
        close = getattr(opener, "close", None)
        if close is not None:
            close()  # the token's session
    return 0


async def _with_conn(
    settings: Settings, work: Callable[[asyncpg.Connection], Awaitable[_T]]
) -> _T:
    conn = await connect_app(
        settings.database.dsn.value, connect_timeout=settings.database.connect_timeout
    )
    try:
        return await work(conn)
    finally:
        await conn.close()
