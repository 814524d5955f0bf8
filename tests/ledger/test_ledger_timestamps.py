"""RFC 3161 timestamps on checkpoints, against a local TSA (``openssl ts -reply``) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from asterisk_recorder.cli import main
from asterisk_recorder.errors import TimestampError
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.audit import audit_ledger
from asterisk_recorder.ledger.checkpoints import Checkpointer
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.note import SigningKey
from asterisk_recorder.ledger.receipts import prove_decision
from asterisk_recorder.ledger.timestamps import (
    request_token,
    stored_timestamps,
    verify_token,
)
from asterisk_recorder.settings import LedgerSettings

pytest.importorskip("rfc3161_client", reason="the tsa extra (rfc3161-client) is not installed")

ORIGIN = "recorder.test/ledger"
ServerFactory = Callable[[web.Application], Awaitable[Any]]
Factory = Callable[..., ConsentDecision]


def _openssl_ts_available() -> bool:
    if shutil.which("openssl") is None:
        return False
    done = subprocess.run(["openssl", "ts", "-help"], capture_output=True, check=False)
    return b"-reply" in done.stdout + done.stderr


pytestmark = pytest.mark.skipif(
    not _openssl_ts_available(), reason="'openssl ts' is not available to act as the local TSA"
)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _root(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


@dataclass(frozen=True)
class LocalTsa:
    """A TSA on 127.0.0.1: its URL, its root certificate and that root's PEM file."""

    url: str
    root: x509.Certificate
    root_pem: Path


def _write_tsa_files(directory: Path) -> tuple[x509.Certificate, Path]:
    root, root_key = _root("Test TSA Root")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Test TSA"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    (directory / "tsa.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tsa.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    root_pem = directory / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (directory / "serial").write_text("01\n")
    (directory / "openssl.cnf").write_text(
        f"""[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {directory}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.55555.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
    )
    return root, root_pem


def _tsa_app(directory: Path) -> web.Application:
    lock = asyncio.Lock()

    async def reply(request: web.Request) -> web.Response:
        async with lock:  # one serial file, one request at a time
            query = directory / "request.tsq"
            answer = directory / "reply.tsr"
            query.write_bytes(await request.read())
            process = await asyncio.create_subprocess_exec(
                "openssl", "ts", "-reply", "-config", str(directory / "openssl.cnf"),
                "-queryfile", str(query), "-out", str(answer),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, errors = await process.communicate()
            if process.returncode != 0:
                return web.Response(status=500, text=errors.decode(errors="replace"))
            reply_type = "application/timestamp-reply"
            return web.Response(body=answer.read_bytes(), content_type=reply_type)

    app = web.Application()
    app.router.add_post("/tsr", reply)
    return app


@pytest.fixture
async def tsa(tmp_path: Path, aiohttp_server: ServerFactory) -> LocalTsa:
    """A root CA, a TSA certificate it issued (EKU timeStamping, critical) and the TSA served."""
    directory = tmp_path / "tsa"
    directory.mkdir()
    root, root_pem = _write_tsa_files(directory)
    running = await aiohttp_server(_tsa_app(directory))
    return LocalTsa(str(running.make_url("/tsr")), root, root_pem)


@pytest.fixture
def signing_key() -> SigningKey:
    """A fresh checkpoint signing key."""
    return SigningKey.generate(ORIGIN)


async def _store(ledger_dsn: str, settings: LedgerSettings, make: Factory, n: int) -> list[str]:
    ids = []
    async with Ledger.open(ledger_dsn, settings) as ledger:
        for _ in range(n):
            decision = make()
            await ledger.store(decision)
            ids.append(decision.decision_id)
    return ids


async def _checkpoint(dsn: str, key: SigningKey, url: str) -> Checkpointer:
    checkpointer = Checkpointer(dsn, key, every=1000, interval=60.0, timestamp_url=url)
    try:
        assert await checkpointer.cycle(force=True) is not None
        await checkpointer.timestamps_settled()
    finally:
        await checkpointer.close()
    return checkpointer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_checkpoint_gets_a_token_that_is_stored_and_verified_by_the_audit(
    tsa: LocalTsa,
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    signing_key: SigningKey,
    digest_key: DigestKey,
) -> None:
    """The Checkpointer stores the TSA's token; audit_ledger verifies it and reports its time."""
    await _store(ledger_dsn, ledger_settings, decision_factory, 3)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)

    checkpointer = await _checkpoint(ledger_dsn, signing_key, tsa.url)

    conn = await connect_app(ledger_dsn)
    try:
        stamps = await stored_timestamps(conn)
        report = await audit_ledger(
            conn, digest_key, [signing_key.verifier()], origin=ORIGIN, tsa_roots=[tsa.root]
        )
    finally:
        await conn.close()
    assert (checkpointer.timestamp_failures, checkpointer.timestamped_size) == (0, 3)
    assert [(s.size, s.tsa) for s in stamps] == [(3, tsa.url.split("/")[2])]
    assert report.ok, report.problems
    assert report.timestamps == 1
    assert report.newest_timestamp is not None
    assert report.newest_timestamp.size == 3
    assert report.newest_timestamp.gen_time >= before


async def test_a_token_for_another_note_does_not_verify(tsa: LocalTsa) -> None:
    """A genuine token checked against a different checkpoint note is refused, saying so."""
    token = await request_token("checkpoint A\n", tsa.url, timeout=10)

    assert verify_token(token, "checkpoint A\n", [tsa.root]) <= dt.datetime.now(dt.UTC)
    with pytest.raises(TimestampError, match="another note"):
        verify_token(token, "checkpoint B\n", [tsa.root])


async def test_a_token_from_a_tsa_under_another_root_does_not_verify(tsa: LocalTsa) -> None:
    """A token is refused when the trusted root is not the one the TSA chains to."""
    token = await request_token("checkpoint A\n", tsa.url, timeout=10)
    stranger, _ = _root("Some Other Root")

    with pytest.raises(TimestampError, match="does not verify: Error while verifying cert"):
        verify_token(token, "checkpoint A\n", [stranger])


async def test_the_audit_names_a_token_that_does_not_chain_to_the_trusted_root(
    tsa: LocalTsa,
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    signing_key: SigningKey,
    digest_key: DigestKey,
) -> None:
    """With another root trusted, ledger verify's audit reports the stored token as a problem."""
    await _store(ledger_dsn, ledger_settings, decision_factory, 2)
    await _checkpoint(ledger_dsn, signing_key, tsa.url)
    stranger, _ = _root("Some Other Root")

    conn = await connect_app(ledger_dsn)
    try:
        report = await audit_ledger(
            conn, digest_key, [signing_key.verifier()], origin=ORIGIN, tsa_roots=[stranger]
        )
    finally:
        await conn.close()
    assert not report.ok
    assert report.timestamps == 0
    assert len(report.problems) == 1
    assert report.problems[0].startswith("the timestamp of checkpoint 2 by ")


async def test_the_tsa_down_does_not_stop_checkpoints(
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    signing_key: SigningKey,
    digest_key: DigestKey,
) -> None:
    """With nothing listening at the TSA's address the checkpoint is signed and stored anyway."""
    await _store(ledger_dsn, ledger_settings, decision_factory, 4)
    url = f"http://127.0.0.1:{_free_port()}/tsr"

    checkpointer = await _checkpoint(ledger_dsn, signing_key, url)

    conn = await connect_app(ledger_dsn)
    try:
        stamps = await stored_timestamps(conn)
        report = await audit_ledger(conn, digest_key, [signing_key.verifier()], origin=ORIGIN)
    finally:
        await conn.close()
    assert (checkpointer.checkpoint_size, checkpointer.healthy) == (4, True)
    assert checkpointer.timestamp_failures == 1
    assert checkpointer.timestamp_error is not None
    assert "could not be reached" in checkpointer.timestamp_error
    assert stamps == []
    assert (report.ok, report.checkpoints, report.covered) == (True, 1, 4)


async def test_a_receipt_carries_the_token_and_check_receipt_verifies_it_with_tsa_cert(
    tsa: LocalTsa,
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    signing_key: SigningKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ledger prove adds the token; check-receipt --tsa-cert prints the TSA's time, and a
    receipt whose token was swapped for another checkpoint's is INVALID."""
    ids = await _store(ledger_dsn, ledger_settings, decision_factory, 2)
    await _checkpoint(ledger_dsn, signing_key, tsa.url)
    conn = await connect_app(ledger_dsn)
    try:
        receipt = await prove_decision(conn, ids[1])
    finally:
        await conn.close()
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    verifier = signing_key.verifier().to_text()
    other = await request_token("another checkpoint\n", tsa.url, timeout=10)
    swapped = json.loads(json.dumps(receipt))
    swapped["timestamp"]["token"] = base64.b64encode(other).decode()
    bad = tmp_path / "swapped.json"
    bad.write_text(json.dumps(swapped))

    ok = main(["ledger", "check-receipt", str(path), "--key", verifier,
               "--tsa-cert", str(tsa.root_pem)])  # fmt: skip
    good = capsys.readouterr()
    refused = main(["ledger", "check-receipt", str(bad), "--key", verifier,
                    "--tsa-cert", str(tsa.root_pem)])  # fmt: skip
    wrong = capsys.readouterr()

    assert set(receipt["timestamp"]) == {"tsa", "token"}
    assert ok == 0, good.err
    assert "checkpoint 2 timestamped by " in good.out
    assert refused == 1
    assert "receipt INVALID: the timestamp does not verify" in wrong.err


async def test_ledger_checkpoint_and_verify_commands_timestamp_and_print_the_tsa_time(
    tsa: LocalTsa,
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Factory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With timestamp_url and timestamp_ca_file set, 'ledger checkpoint' stores a token and
    'ledger verify' prints the checkpoint's TSA time."""
    await _store(ledger_dsn, ledger_settings, decision_factory, 3)
    (tmp_path / "recordings").mkdir()
    config = tmp_path / "recorder.toml"
    config.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{ledger_dsn}"\n'
        f'[ledger]\nspool_dir = "{ledger_settings.spool_dir}"\n'
        f'digest_key = "{ledger_settings.digest_key.value}"\n'
        f'checkpoint_origin = "{ORIGIN}"\n'
        f'timestamp_url = "{tsa.url}"\ntimestamp_ca_file = "{tsa.root_pem}"\n'
        f'[recording]\ndirectory = "{tmp_path / "recordings"}"\n'
    )

    signed = await asyncio.to_thread(main, ["ledger", "checkpoint", "--config", str(config)])
    first = capsys.readouterr()
    verified = await asyncio.to_thread(main, ["ledger", "verify", "--config", str(config)])
    second = capsys.readouterr()

    assert signed == 0, first.err
    assert "timestamp FAILED" not in first.err
    assert verified == 0, second.err
    assert f"checkpoint 3 timestamped by {tsa.url.split('/')[2]} at " in second.out
    assert "verify OK" in second.out
