"""Recording keys in a real PKCS#11 token (SoftHSM2): unwrap on the token, escrow, faults.

Every test gets its own SoftHSM2 token directory (``SOFTHSM2_CONF`` names a softhsm2.conf in
tmp_path) with tokens initialised by ``softhsm2-util``. Recordings are sealed by the real
sealer into the suite's PostgreSQL, and every command runs through ``cli.main``. The tests
skip, saying why, when SoftHSM2 is not installed (scripts/test.sh installs it where it may).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from recording_vectors import VECTOR, regenerate
from retention_helpers import DAY, all_facts, cli, config_file, month_of, old_recordings
from sealer_helpers import SealerEnv, month_now

from asterisk_recorder.errors import KeyUnavailable, RecordingError
from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.recordings import FileKekOpener, KeyStore, open_stream, seal, verify
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.escrow import combine, split
from asterisk_recorder.recordings.pkcs11_kek import Pkcs11KekOpener, Pkcs11PrivateKeys
from asterisk_recorder.recordings.sealer import Sealer
from asterisk_recorder.recordings.wav import tone_pcm, write_wav
from asterisk_recorder.settings import Secret

pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (extra 'pkcs11')")

TOKEN = "recorder-kek"
TOKEN_2 = "recorder-kek-2"
PIN = "5162-kek-user-pin"
WRONG = "8841-not-the-pin"
SO_PIN = "7730-kek-so-pin"
PIN_ENV = "ASTERISK_RECORDER_RECORDINGS_KEK_PKCS11_PIN"
MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class Hsm:
    """This test's SoftHSM2: the module, two token labels, the conf and token directory."""

    module: str
    conf: Path
    tokens: Path

    def keys(self, token: str = TOKEN, pin: str = PIN) -> Pkcs11PrivateKeys:
        return Pkcs11PrivateKeys(self.module, token, pin)

    def reinitialize(self) -> None:
        pkcs11.lib(self.module).reinitialize()  # SoftHSM2 rereads its tokens at C_Initialize


@pytest.fixture
def hsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hsm]:
    """Two initialised SoftHSM2 tokens in tmp_path, seen by a freshly initialised module."""
    util = shutil.which("softhsm2-util")
    module = next((m for m in MODULES if Path(m).is_file()), None)
    if util is None or module is None:
        pytest.skip("SoftHSM2 not found (softhsm2-util and libsofthsm2.so): install Debian's "
                    "softhsm2 to run the PKCS#11 tests (scripts/test.sh does so as root)")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n", encoding="utf-8")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    for label in (TOKEN, TOKEN_2):
        subprocess.run([util, "--init-token", "--free", "--label", label, "--pin", PIN,
                        "--so-pin", SO_PIN], check=True, capture_output=True)
    made = Hsm(module, conf, tokens)
    made.reinitialize()
    yield made
    made.reinitialize()


def _sealed(tmp_path: Path, store: KeyStore, kek_id: str, data: bytes) -> Path:
    out = tmp_path / f"{kek_id}.arrec"
    with open(out, "wb") as dst:
        seal(io.BytesIO(data), dst, recording_id="r-" + kek_id, kek=store.public(kek_id))
    return out


def _open(path: Path, opener: object) -> bytes:
    with open(path, "rb") as src:
        return b"".join(open_stream(src, opener))  # type: ignore[arg-type]


def _custodians(root: Path, count: int) -> list[tuple[Path, Path]]:
    """``count`` custodian key pairs as PEM files: (public, private)."""
    out = []
    for n in range(count):
        key = ec.generate_private_key(ec.SECP384R1())
        public, private = root / f"custodian-{n}.pub.pem", root / f"custodian-{n}.key.pem"
        public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        private.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        out.append((public, private))
    return out


def _hsm_config(env: SealerEnv, hsm: Hsm, extra: str = "") -> Path:
    path = config_file(env)
    path.write_text(path.read_text(encoding="utf-8")
                    + f'kek_pkcs11_module = "{hsm.module}"\nkek_pkcs11_token = "{TOKEN}"\n'
                    + extra, encoding="utf-8")
    return path


# -- the token backend --------------------------------------------------------------------------


def test_a_key_in_the_token_opens_what_the_file_backend_opens_byte_for_byte(
    hsm: Hsm, tmp_path: Path,
) -> None:
    """One P-384 key in a file and imported into the token: both open the same envelope to
    the same plaintext and unwrap the same DEK (only the ECDH runs elsewhere)."""
    files = KeyStore(tmp_path / "pub", tmp_path / "priv")
    info = files.create("standard", "2026-12")
    key = FileKekOpener(tmp_path / "priv").private_key(info.kek_id)
    hsm.keys().store(info.kek_id, key)
    data = b"RIFF" + bytes(range(256)) * 700
    path = _sealed(tmp_path, files, info.kek_id, data)
    wrapped = files.public(info.kek_id).wrap(bytes(range(32)))

    with Pkcs11KekOpener(hsm.keys()) as token:
        from_token = _open(path, token)
        dek_token = token.unwrap(info.kek_id, wrapped)
        with open(path, "rb") as src:
            checked = verify(src, opener=token)
    from_file = _open(path, files.opener())

    assert from_token == from_file == data
    assert dek_token == files.opener().unwrap(info.kek_id, wrapped) == bytes(range(32))
    assert checked.tags_checked


def test_the_documented_test_vector_opens_on_the_token(hsm: Hsm) -> None:
    """docs/recording-format.md's vector, its KEK scalar imported into the token, opens there."""
    envelope, info = regenerate()
    scalar = ec.derive_private_key(int(VECTOR["kek_private_scalar"], 16), ec.SECP384R1())
    hsm.keys().store(VECTOR["kek_id"], scalar)

    with Pkcs11KekOpener(hsm.keys()) as token:
        plain = b"".join(open_stream(io.BytesIO(envelope), token))

    assert plain == bytes.fromhex(VECTOR["plaintext"])
    assert info.kek_id == VECTOR["kek_id"]


def test_a_created_key_lives_only_in_the_token_sensitive_and_never_extractable(
    hsm: Hsm, tmp_path: Path,
) -> None:
    """create puts the private key in the token under its key id (sensitive, never
    extractable, its value unreadable); only the public key and metadata are files."""
    store = KeyStore(tmp_path / "pub", private=hsm.keys())
    info = store.create("standard", "2026-12")
    token = pkcs11.lib(hsm.module).get_token(token_label=TOKEN)
    with token.open(user_pin=PIN) as session:
        private = session.get_key(pkcs11.ObjectClass.PRIVATE_KEY, label=info.kek_id)
        flags = tuple(private[a] for a in (
            pkcs11.Attribute.SENSITIVE, pkcs11.Attribute.EXTRACTABLE,
            pkcs11.Attribute.NEVER_EXTRACTABLE, pkcs11.Attribute.DERIVE))
        with pytest.raises(pkcs11.AttributeSensitive):
            private[pkcs11.Attribute.VALUE]
    path = _sealed(tmp_path, store, info.kek_id, b"call audio")

    assert flags == (True, False, True, True)
    assert (info.custody, info.private_present) == ("pkcs11", True)
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == [
        f"{info.kek_id}.json", f"{info.kek_id}.pub.pem"]
    assert _open(path, store.opener()) == b"call audio"


def test_a_wrong_pin_or_a_missing_token_is_a_clear_error_without_the_pin(
    hsm: Hsm, tmp_path: Path,
) -> None:
    """Opening with a wrong PIN, an absent token label or module says which, never the PIN."""
    store = KeyStore(tmp_path / "pub", private=hsm.keys())
    info = store.create("standard", "2026-12")
    path = _sealed(tmp_path, store, info.kek_id, b"x")
    messages = []
    for keys in (hsm.keys(pin=WRONG), hsm.keys(token="no-such-token"),
                 Pkcs11PrivateKeys(str(tmp_path / "missing.so"), TOKEN, PIN)):
        with pytest.raises(KeyUnavailable) as failed:
            _open(path, keys.opener())
        messages.append(str(failed.value))

    assert "PIN" in messages[0]
    assert "refused" in messages[0]
    assert "'no-such-token'" in messages[1]
    assert f"'{TOKEN}'" in messages[1]
    assert "does not exist" in messages[2]
    assert all(PIN not in m and WRONG not in m for m in messages)
    assert _open(path, store.opener()) == b"x"  # the right PIN still opens


# -- escrow -------------------------------------------------------------------------------------


def test_shamir_any_m_shares_rebuild_the_secret_fewer_do_not() -> None:
    """Every 3 of 5 shares rebuild a 48-byte secret; 2 give something else; bad input fails."""
    secret = bytes(range(1, 49))
    shares = split(secret, 3, 5)
    from itertools import combinations

    rebuilt = {combine(list(c)) for c in combinations(shares, 3)}

    assert rebuilt == {secret}
    assert combine(shares[:2]) != secret
    assert combine(split(secret, 1, 1)) == secret
    with pytest.raises(RecordingError, match="distinct"):
        combine([shares[0], shares[0]])
    with pytest.raises(RecordingError, match="M <= N"):
        split(secret, 4, 3)


def test_gf256_multiplication_matches_fips_197() -> None:
    """The field is AES's: {57} x {83} = {c1} and {57} x {13} = {fe} (FIPS 197, 4.2)."""
    from asterisk_recorder.recordings.escrow import _mul

    assert (_mul(0x57, 0x83), _mul(0x57, 0x13), _mul(0, 0x13), _mul(1, 0xAB)) == (
        0xC1, 0xFE, 0, 0xAB)


async def test_escrowed_key_is_split_to_custodians_and_recovered_into_a_new_token(
    env: SealerEnv, hsm: Hsm, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """keys create --escrow 2 with 3 custodians writes 3 sealed shares and a manifest, puts
    the key in the token; recover with 2 shares and their custodians' keys rebuilds it into
    another token, which opens a recording; one share is refused; destroy deletes the shares."""
    monkeypatch.setenv(PIN_ENV, PIN)
    config = _hsm_config(env, hsm)
    people = _custodians(env.root, 3)
    escrow_dir = env.root / "escrow"
    base = ("--config", str(config), "--public-keys", str(env.paths.keys))

    created = await cli("recording", "keys", "create", *base, "--class", "standard",
                        "--month", "2026-12", "--escrow", "2", "--escrow-dir", str(escrow_dir),
                        *(x for p, _ in people for x in ("--custodian", str(p))))
    out = capsys.readouterr().out
    [kek_dir] = list(escrow_dir.iterdir())
    kek_id = kek_dir.name
    manifest = json.loads((kek_dir / "manifest.json").read_text(encoding="utf-8"))
    shares = sorted(kek_dir.glob("share-*.json"))
    share_text = b"".join(s.read_bytes() for s in shares)
    store = KeyStore(env.paths.keys, private=hsm.keys())
    path = _sealed(env.root, store, kek_id, b"escrowed call")
    second = KeyStore(env.paths.keys, private=hsm.keys(TOKEN_2))
    config_2 = _hsm_config(env, hsm).read_text(encoding="utf-8").replace(
        f'kek_pkcs11_token = "{TOKEN}"', f'kek_pkcs11_token = "{TOKEN_2}"')
    (env.root / "second.toml").write_text(config_2, encoding="utf-8")
    base_2 = ("--config", str(env.root / "second.toml"), "--public-keys", str(env.paths.keys))

    too_few = await cli("recording", "keys", "recover", kek_id, *base_2,
                        "--share", str(shares[0]), "--custodian-key", str(people[0][1]))
    few_err = capsys.readouterr().err
    wrong_keys = await cli("recording", "keys", "recover", kek_id, *base_2,
                           "--share", str(shares[0]), "--share", str(shares[1]),
                           "--custodian-key", str(people[2][1]))
    wrong_err = capsys.readouterr().err
    recovered = await cli("recording", "keys", "recover", kek_id, *base_2,
                          "--share", str(shares[0]), "--share", str(shares[2]),
                          "--custodian-key", str(people[0][1]),
                          "--custodian-key", str(people[2][1]))
    recovered_out = capsys.readouterr().out
    opened = _open(path, second.opener())
    destroyed = await cli("recording", "keys", "destroy", kek_id, "--confirm", kek_id,
                          "--reason", "test", *base)
    facts = [f["kind"] for f in await all_facts(env.dsn, "recording.key")]
    [again] = await all_facts(env.dsn, "recording.key_recovered")

    assert (created, too_few, wrong_keys, recovered, destroyed) == (0, 1, 1, 0, 0)
    assert "escrow:  2-of-3 shares" in out
    assert (manifest["threshold"], manifest["shares"], len(shares)) == (2, 3, 3)
    assert sorted(c["fingerprint"][:16] for c in manifest["custodians"]) == sorted(
        s.name.split("-")[2].removesuffix(".json") for s in shares)
    assert b"BEGIN" not in share_text
    assert b"PRIVATE" not in share_text
    assert "needs 2 shares" in few_err
    assert "1 given" in few_err
    assert "needs 2 shares" in wrong_err
    assert "0 given" in wrong_err
    assert f"recovered key {kek_id}" in recovered_out
    assert opened == b"escrowed call"
    assert not kek_dir.exists()
    assert facts == ["recording.key_created", "recording.key_recovered",
                     "recording.key_destroyed"]
    assert not store.has_private(kek_id)
    assert sorted(again["payload"]["custodians"].split(",")) == sorted(
        shares[i].name.split("-")[2].removesuffix(".json") for i in (0, 2))


# -- the CLI, the ledger and the faults ---------------------------------------------------------


async def test_open_and_dispose_with_the_token_absent_or_the_pin_wrong_do_nothing_then_work(
    env: SealerEnv, hsm: Hsm, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With a wrong PIN, open and dispose fail clearly (no PIN shown), write no fact, delete
    nothing; with the token gone likewise; with the right PIN open, dispose and the key's
    C_DestroyObject all happen, and open then names the destruction."""
    closed = time.time() - 100 * DAY
    store = KeyStore(env.paths.keys, private=hsm.keys())
    kek_id = store.create("standard", month_of(closed)).kek_id
    [decision] = await old_recordings(env, ["+12125550111"])
    config = _hsm_config(env, hsm)
    sealed = [f for f in await all_facts(env.dsn) if f["kind"] == "recording.sealed"]
    sealed_file = env.paths.sealed / str(sealed[0]["payload"]["file"])
    out_file = env.root / "out.wav"

    monkeypatch.setenv(PIN_ENV, WRONG)
    open_wrong = await cli("recording", "open", decision, "--config", str(config),
                           "--out", str(out_file), "--reason", "case 1")
    wrong_open_err = capsys.readouterr().err
    dispose_wrong = await cli("recording", "dispose", "--config", str(config))
    wrong_dispose = capsys.readouterr()
    facts_wrong = await all_facts(env.dsn)
    monkeypatch.setenv(PIN_ENV, PIN)
    hsm.conf.write_text(hsm.conf.read_text().replace(str(hsm.tokens), str(env.root)))
    hsm.reinitialize()  # the token is gone (its directory is not there)
    dispose_gone = await cli("recording", "dispose", "--config", str(config))
    gone_err = capsys.readouterr().err
    present_after_faults = sealed_file.exists()
    hsm.conf.write_text(hsm.conf.read_text().replace(str(env.root), str(hsm.tokens)))
    hsm.reinitialize()  # it is back
    open_ok = await cli("recording", "open", decision, "--config", str(config),
                        "--out", str(out_file), "--reason", "case 1")
    capsys.readouterr()
    dispose_ok = await cli("recording", "dispose", "--config", str(config))
    dispose_out = capsys.readouterr().out
    reopen = await cli("recording", "open", decision, "--config", str(config),
                       "--out", str(env.root / "again.wav"), "--reason", "case 2")
    reopen_err = capsys.readouterr().err
    facts = [f["kind"] for f in await all_facts(env.dsn)]

    assert (open_wrong, dispose_wrong, dispose_gone) == (1, 1, 1)
    assert "PIN" in wrong_open_err
    assert "refused" in wrong_open_err
    assert "PIN" in wrong_dispose.err
    assert "refused" in wrong_dispose.err
    assert f"no token labelled '{TOKEN}'" in gone_err
    assert all(WRONG not in t and PIN not in t
               for t in (wrong_open_err, wrong_dispose.out, wrong_dispose.err, gone_err))
    assert [f["kind"] for f in facts_wrong if f["kind"] in (
        "recording.accessed", "recording.disposing", "recording.key_destroyed")] == []
    assert present_after_faults
    assert (open_ok, dispose_ok, reopen) == (0, 0, 1)
    assert out_file.read_bytes()[:4] == b"RIFF"
    assert f"key destroyed: {kek_id}" in dispose_out
    assert not sealed_file.exists()
    assert not store.has_private(kek_id)
    assert "disposed" in reopen_err
    assert facts.count("recording.accessed") == 1
    assert facts[-1] == "recording.key_destroyed"


async def test_keys_create_list_destroy_on_the_token_say_when_rotation_is_due(
    env: SealerEnv, hsm: Hsm, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """keys create names the token and the rotation date; keys list shows a key older than
    recordings.kek_cryptoperiod as due; keys destroy removes the token object; a wrong PIN
    makes keys list fail (the public keys still listed) without the PIN."""
    monkeypatch.setenv(PIN_ENV, PIN)
    config = _hsm_config(env, hsm, 'kek_cryptoperiod = "7d"\n')
    base = ("--config", str(config), "--public-keys", str(env.paths.keys))
    store = KeyStore(env.paths.keys, private=hsm.keys())
    old = store.create("standard", "2026-01", now=time.time() - 10 * DAY)

    created = await cli("recording", "keys", "create", *base, "--class", "standard",
                        "--month", month_now())
    created_out = capsys.readouterr().out
    listed = await cli("recording", "keys", "list", *base)
    listed_out = capsys.readouterr().out
    monkeypatch.setenv(PIN_ENV, WRONG)
    listed_wrong = await cli("recording", "keys", "list", *base)
    wrong = capsys.readouterr()
    monkeypatch.setenv(PIN_ENV, PIN)
    destroyed = await cli("recording", "keys", "destroy", old.kek_id, "--confirm", old.kek_id,
                          "--reason", "retention expired", *base)
    capsys.readouterr()
    [fact] = list(await all_facts(env.dsn, "recording.key_destroyed"))

    assert (created, listed, listed_wrong, destroyed) == (0, 0, 1, 0)
    assert f"in PKCS#11 token '{TOKEN}'" in created_out
    assert "rotation due" in created_out
    assert "kek_cryptoperiod = 7d" in created_out
    old_line = next(line for line in listed_out.splitlines() if old.kek_id in line)
    assert "here" in old_line
    assert "DUE since" in old_line
    assert old.kek_id in wrong.out
    assert "refused" in wrong.err
    assert WRONG not in wrong.err
    assert not store.has_private(old.kek_id)
    assert fact["payload"]["custody"] == "pkcs11"
    assert store.info(old.kek_id).state == "destroyed"


async def test_the_sealer_seals_with_the_token_absent_and_a_wrong_pin_set(
    env: SealerEnv, hsm: Hsm,
) -> None:
    """The sealer reads public keys only: configured with the token's module, a wrong PIN
    and the token gone, it seals; with the token back, the recording opens."""
    store = KeyStore(env.paths.keys, private=hsm.keys())
    kek_id = store.create("standard", month_now()).kek_id
    hsm.conf.write_text(hsm.conf.read_text().replace(str(hsm.tokens), str(env.root)))
    hsm.reinitialize()  # no token any more
    made, wav = await env.decision()
    write_wav(wav, tone_pcm(0.5))
    settings = env.settings(kek_pkcs11_module=hsm.module, kek_pkcs11_token=TOKEN,
                            kek_pkcs11_pin=Secret(WRONG))
    async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="sealer:test") as ledger:
        catalog = Catalog(env.dsn)
        sealer = Sealer(settings, env.paths, ledger, catalog, actor="sealer:test")
        sealer.prepare()
        try:
            await sealer.scan()
            sealer.count_keys()
        finally:
            await catalog.close()
    sealed = [f for f in await all_facts(env.dsn) if f["kind"] == "recording.sealed"]
    hsm.conf.write_text(hsm.conf.read_text().replace(str(env.root), str(hsm.tokens)))
    hsm.reinitialize()

    assert [f["decision_id"] for f in sealed] == [made.decision_id]
    assert sealed[0]["payload"]["kek_id"] == kek_id
    plain = _open(env.paths.sealed / str(sealed[0]["payload"]["file"]), store.opener())
    assert plain[:4] == b"RIFF"
