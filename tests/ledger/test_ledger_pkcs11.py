"""The checkpoint signing key in a real PKCS#11 token (SoftHSM2), never in a file or the database.

Every test gets its own SoftHSM2 token directory (``SOFTHSM2_CONF`` names a softhsm2.conf in
tmp_path) with one token initialised by ``softhsm2-util``. The key pair is generated in the
token, signs checkpoints the ledger stores in a real PostgreSQL, and ``audit_ledger`` / ``ledger
verify`` accept them. The tests skip, saying why, when SoftHSM2 is not installed (scripts/test.sh
installs it where it may).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from ledger_helpers import FIXED_KEY, make_decision

from asterisk_recorder.cli import main
from asterisk_recorder.errors import LedgerError, Pkcs11Error
from asterisk_recorder.flow.decision import ConsentDecision
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.ledger.audit import audit_ledger
from asterisk_recorder.ledger.checkpoints import Checkpointer
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.keys import DigestKey
from asterisk_recorder.ledger.note import (
    Checkpoint,
    Signer,
    VerifierKey,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)
from asterisk_recorder.ledger.pkcs11_key import Pkcs11Signer, decode_ec_point
from asterisk_recorder.ledger.signing import load_signing_key, rotate_signing_key
from asterisk_recorder.settings import LedgerSettings, Secret

pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (extra 'pkcs11')")

ORIGIN = "recorder.test/ledger"
TOKEN = "recorder-test"
PIN = "7391-user-pin-kq"
SO_PIN = "5820-so-pin-zw"
LABEL = "asterisk-recorder-checkpoint"
MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class Hsm:
    """A fresh SoftHSM2 token of this test's own: the module, the token label and its PINs."""

    module: str
    token: str
    pin: str

    def settings(self, tmp_path: Path, **changes: object) -> LedgerSettings:
        """Ledger settings signing with this token's key (label ``LABEL``)."""
        values: dict[str, object] = {
            "spool_dir": str(tmp_path / "spool"),
            "digest_key": Secret(FIXED_KEY),
            "checkpoint_origin": ORIGIN,
            "checkpoint_pkcs11_module": self.module,
            "checkpoint_pkcs11_token": self.token,
            "checkpoint_pkcs11_key": LABEL,
            "checkpoint_pkcs11_pin": Secret(self.pin),
        }
        values.update(changes)
        return LedgerSettings(**values)  # type: ignore[arg-type]


def _softhsm() -> tuple[str, str] | None:
    util = shutil.which("softhsm2-util")
    module = next((m for m in MODULES if Path(m).is_file()), None)
    return (util, module) if util and module else None


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hsm]:
    """An initialised SoftHSM2 token in tmp_path, seen by a freshly initialised module."""
    found = _softhsm()
    if found is None:
        pytest.skip(
            "SoftHSM2 not found (softhsm2-util and libsofthsm2.so): install Debian's softhsm2 "
            "to run the PKCS#11 tests (scripts/test.sh does so as root)"
        )
    util, module = found
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
    )
    lib = pkcs11.lib(module)
    lib.reinitialize()  # SoftHSM2 reads SOFTHSM2_CONF and the token directory at C_Initialize
    yield Hsm(module, TOKEN, PIN)
    lib.reinitialize()  # ends every session a failed test left open (and with it the login)


@pytest.fixture
def signer(hsm: Hsm) -> Iterator[Pkcs11Signer]:
    """A key pair generated in the token, opened for signing."""
    with Pkcs11Signer.generate(hsm.module, hsm.token, LABEL, hsm.pin, name=ORIGIN) as opened:
        yield opened


def _refusal(call: Callable[[], object]) -> str:
    with pytest.raises(Pkcs11Error) as info:
        call()
    return str(info.value)


def test_generated_key_signs_checkpoints_its_verifier_accepts(signer: Pkcs11Signer) -> None:
    """A checkpoint signed in the token opens with the verifier key; raw signatures are Ed25519."""
    checkpoint = Checkpoint(ORIGIN, 7, bytes(range(32)))
    verifier = VerifierKey.from_text(signer.verifier().to_text())

    note = sign_checkpoint(checkpoint, signer)
    sig = signer.sign(b"any message")

    assert isinstance(signer, Signer)
    assert checkpoint == open_checkpoint(note, [verifier], origin=ORIGIN)
    assert (ORIGIN,) == open_note(sign_note("hello\n", signer), [verifier]).verified_by
    assert (64, signer.key_id) == (len(sig), verifier.key_id)
    Ed25519PublicKey.from_public_bytes(signer.public_key).verify(sig, b"any message")


async def test_checkpointer_signs_with_the_token_and_audit_accepts_it(
    hsm: Hsm,
    signer: Pkcs11Signer,
    ledger_dsn: str,
    ledger_settings: LedgerSettings,
    decision_factory: Callable[..., ConsentDecision],
    digest_key: DigestKey,
) -> None:
    """The Checkpointer signs with the HSM key on real PostgreSQL; the audit verifies it."""
    async with Ledger.open(ledger_dsn, ledger_settings) as ledger:
        for _ in range(5):
            await ledger.store(decision_factory())
    checkpointer = Checkpointer(ledger_dsn, signer, every=1000, interval=60.0)
    try:
        signed = await checkpointer.cycle(force=True)
    finally:
        await checkpointer.close()
    conn = await connect_app(ledger_dsn)
    try:
        report = await audit_ledger(conn, digest_key, [signer.verifier()], origin=ORIGIN)
        stored = await conn.fetchrow("SELECT key_name, key_id FROM ledger_checkpoints")
    finally:
        await conn.close()

    assert signed is not None
    assert signed.size == 5
    assert (True, 1, ()) == (report.ok, report.checkpoints, report.problems)
    assert stored is not None
    assert (ORIGIN, signer.key_id.hex()) == (stored["key_name"], stored["key_id"])


def test_load_signing_key_opens_the_token_and_never_creates_one(hsm: Hsm, tmp_path: Path) -> None:
    """With a module set, load_signing_key opens the token's key; an absent key is not made."""
    settings = hsm.settings(tmp_path)
    missing = _refusal(lambda: load_signing_key(settings))
    with Pkcs11Signer.generate(hsm.module, hsm.token, LABEL, hsm.pin, name=ORIGIN) as made:
        expected = made.verifier()
    key = load_signing_key(settings)
    try:
        loaded = key.verifier()
    finally:
        assert isinstance(key, Pkcs11Signer)
        key.close()

    assert "no private key labelled" in missing
    assert "checkpoint-key create" in missing
    assert expected == loaded
    assert not (tmp_path / "spool" / "checkpoint.key").exists()


def test_wrong_pin_is_refused_without_showing_it(hsm: Hsm) -> None:
    """A wrong PIN is a Pkcs11Error that says the PIN was refused and never contains it."""
    Pkcs11Signer.generate(hsm.module, hsm.token, LABEL, hsm.pin, name=ORIGIN).close()
    wrong = "4417-not-the-pin"

    message = _refusal(lambda: Pkcs11Signer(hsm.module, hsm.token, LABEL, wrong, name=ORIGIN))

    assert "PIN" in message
    assert "refused" in message
    assert wrong not in message
    assert hsm.pin not in message


def test_missing_key_label_and_token_are_named(signer: Pkcs11Signer, hsm: Hsm) -> None:
    """An absent key label or token label is refused naming it (and the tokens that exist)."""
    no_key = _refusal(lambda: Pkcs11Signer(hsm.module, hsm.token, "no-such-key", hsm.pin,
                                           name=ORIGIN))
    no_token = _refusal(lambda: Pkcs11Signer(hsm.module, "no-such-token", LABEL, hsm.pin,
                                             name=ORIGIN))

    assert "'no-such-key'" in no_key
    assert "checkpoint-key create" in no_key
    assert "'no-such-token'" in no_token
    assert f"'{TOKEN}'" in no_token
    assert hsm.pin not in no_key + no_token


def test_bad_module_paths_are_refused(hsm: Hsm, tmp_path: Path) -> None:
    """A missing module, a relative path and a file that is no PKCS#11 library are refused."""
    not_a_library = tmp_path / "not-a-module.so"
    not_a_library.write_text("not ELF\n", encoding="utf-8")

    def opening(module: str) -> str:
        return _refusal(lambda: Pkcs11Signer(module, hsm.token, LABEL, hsm.pin, name=ORIGIN))

    missing = opening(str(tmp_path / "missing.so"))
    relative = opening("libsofthsm2.so")
    broken = opening(str(not_a_library))

    assert "does not exist" in missing
    assert "must be absolute" in relative
    assert "cannot load the PKCS#11 module" in broken
    assert str(not_a_library) in broken
    assert hsm.pin not in missing + relative + broken


def test_private_key_is_sensitive_and_not_extractable(signer: Pkcs11Signer, hsm: Hsm) -> None:
    """The generated private key says CKA_EXTRACTABLE false, and its value cannot be read."""
    Attribute, ObjectClass = pkcs11.Attribute, pkcs11.ObjectClass
    token = pkcs11.lib(hsm.module).get_token(token_label=hsm.token)
    with token.open() as session:  # this process is logged in already (the signer's session)
        private = session.get_key(ObjectClass.PRIVATE_KEY, label=LABEL)
        flags = (private[Attribute.EXTRACTABLE], private[Attribute.SENSITIVE],
                 private[Attribute.NEVER_EXTRACTABLE], private[Attribute.TOKEN])
        with pytest.raises(pkcs11.PKCS11Error) as read:
            private[Attribute.VALUE]

    assert (False, True, True, True) == flags
    assert isinstance(read.value, pkcs11.AttributeSensitive)


def test_generate_refuses_a_label_that_exists(signer: Pkcs11Signer, hsm: Hsm) -> None:
    """Creating a key under a label the token holds already is refused; the old key stays."""
    before = signer.verifier()

    message = _refusal(lambda: Pkcs11Signer.generate(hsm.module, hsm.token, LABEL, hsm.pin,
                                                     name=ORIGIN))
    with Pkcs11Signer(hsm.module, hsm.token, LABEL, hsm.pin, name=ORIGIN) as again:
        after = again.verifier()

    assert "already holds an object labelled" in message
    assert before == after


def test_a_key_that_is_not_ed25519_is_refused(hsm: Hsm) -> None:
    """A P-256 key under the configured label is refused as not Ed25519."""
    token = pkcs11.lib(hsm.module).get_token(token_label=hsm.token)
    with token.open(rw=True, user_pin=hsm.pin) as session:
        session.generate_keypair(
            pkcs11.KeyType.EC, store=True, label=LABEL,
            public_template={pkcs11.Attribute.EC_PARAMS:
                             pkcs11.util.ec.encode_named_curve_parameters("secp256r1")},
        )

    message = _refusal(lambda: Pkcs11Signer(hsm.module, hsm.token, LABEL, hsm.pin, name=ORIGIN))

    assert "is not an Ed25519 key" in message
    assert "EC" in message


def test_rotate_with_a_token_explains_how(signer: Pkcs11Signer, hsm: Hsm, tmp_path: Path) -> None:
    """Rotating a token's key is refused, naming a new label and ledger.checkpoint_keys."""
    signer.close()  # rotate opens the token itself to name the old verifier key

    with pytest.raises(LedgerError) as info:
        rotate_signing_key(hsm.settings(tmp_path))
    message = str(info.value)

    assert "ledger.checkpoint_pkcs11_key" in message
    assert "ledger.checkpoint_keys" in message
    assert signer.verifier().to_text() in message
    assert hsm.pin not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x04\x20" + bytes(range(32)), bytes(range(32))),
        (bytes(range(32)), bytes(range(32))),
    ],
)
def test_ec_point_is_decoded_from_der_or_raw(value: bytes, expected: bytes) -> None:
    """CKA_EC_POINT as a DER OCTET STRING (PKCS#11 3.0) or bare 32 bytes gives the key."""
    assert expected == decode_ec_point(value)


@pytest.mark.parametrize(
    "value",
    [b"", b"\x04\x20" + bytes(31), b"\x04\x81\x20" + bytes(32), b"\x03\x20" + bytes(32),
     b"\x04\x21" + bytes(33), b"\x04\x20" + bytes(33)],
)
def test_malformed_ec_point_is_refused(value: bytes) -> None:
    """A short, long-form, mistyped or trailing-byte CKA_EC_POINT is not an Ed25519 key."""
    with pytest.raises(Pkcs11Error, match="not an Ed25519 public key"):
        decode_ec_point(value)


def _config(tmp_path: Path, dsn: str, hsm: Hsm) -> str:
    (tmp_path / "recordings").mkdir(exist_ok=True)
    path = tmp_path / "recorder.toml"
    path.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{dsn}"\n'
        f'[ledger]\nspool_dir = "{tmp_path / "spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        f'checkpoint_origin = "{ORIGIN}"\n'
        f'checkpoint_pkcs11_module = "{hsm.module}"\n'
        f'checkpoint_pkcs11_token = "{hsm.token}"\n'
        f'[recording]\ndirectory = "{tmp_path / "recordings"}"\n',
        encoding="utf-8",
    )
    return str(path)


def _store(dsn: str, tmp_path: Path, count: int) -> None:
    settings = LedgerSettings(spool_dir=str(tmp_path / "spool"), digest_key=Secret(FIXED_KEY))

    async def run() -> None:
        async with Ledger.open(dsn, settings) as ledger:
            for _ in range(count):
                await ledger.store(make_decision())

    with contextlib.redirect_stdout(io.StringIO()):
        asyncio.run(run())


def test_cli_creates_shows_signs_and_verifies_with_the_token(
    hsm: Hsm,
    ledger_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """checkpoint-key create/show, checkpoint and verify run on the token; the PIN never shows."""
    caplog.set_level(logging.DEBUG)
    config = _config(tmp_path, ledger_dsn, hsm)
    monkeypatch.setenv("ASTERISK_RECORDER_LEDGER_CHECKPOINT_PKCS11_PIN", hsm.pin)
    _store(ledger_dsn, tmp_path, 3)

    def run(*args: str) -> tuple[int, str]:
        code = main(["ledger", *args, "--config", config])
        out = capsys.readouterr()
        return code, out.out + out.err

    created = run("checkpoint-key", "create")
    again = run("checkpoint-key", "create")
    shown = run("checkpoint-key", "show")
    rotated = run("checkpoint-key", "rotate", "--yes")
    signed = run("checkpoint")
    verified = run("verify")
    monkeypatch.setenv("ASTERISK_RECORDER_LEDGER_CHECKPOINT_PKCS11_PIN", "3306-wrong-pin-qq")
    wrong = run("checkpoint-key", "show")

    verifier = created[1].split("verifier: ")[1].split()[0]
    assert (0, 1, 0, 1, 0, 0, 1) == (created[0], again[0], shown[0], rotated[0], signed[0],
                                     verified[0], wrong[0])
    assert verifier.startswith(ORIGIN + "+")
    assert verifier in shown[1]
    assert "not extractable" in created[1]
    assert "already holds" in again[1]
    assert "ledger.checkpoint_keys" in rotated[1]
    assert verifier in rotated[1]
    assert "checkpoint 3 root" in signed[1]
    assert "verify OK" in verified[1]
    assert "checkpoints: 1 in the database" in verified[1]
    assert "PIN" in wrong[1]
    assert "refused" in wrong[1]
    everything = "".join(text for _code, text in
                         (created, again, shown, rotated, signed, verified, wrong)) + caplog.text
    assert hsm.pin not in everything
    assert "3306-wrong-pin-qq" not in everything
    assert not (tmp_path / "spool" / "checkpoint.key").exists()
