"""Signed notes and checkpoints: Go and C2SP vectors, and every way a note can be refused."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asterisk_recorder.errors import LedgerError, NoteError
from asterisk_recorder.ledger.merkle import leaf_hash
from asterisk_recorder.ledger.note import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Checkpoint,
    OpenedNote,
    SigningKey,
    VerifierKey,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
    sign_note,
    valid_key_name,
)

# golang.org/x/mod sumdb/note/note_test.go (commit fe2ec04f7c3c3aa6fad97631aafcff6e49e2d1db):
# TestNewSigner, TestNewVerifier, TestSign, TestOpen.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)

# c2sp.org/signed-note (C2SP/C2SP signed-note.md, commit 5ba5ee830903e91240fc6f9f3a7a9293d49e69c9),
# section "Verifier keys", Example.
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXpp"
    "zi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# c2sp.org/tlog-checkpoint (tlog-checkpoint.md, same commit): the example note text.
C2SP_CHECKPOINT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)

# Go sumdb/tlog/note_test.go TestFormatTree: "go.sum database tree", 123456789012 leaves and
# RecordHash("hello world") as the root.
GO_TREE = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"

ORIGIN = "asterisk-recorder/test"


@pytest.fixture(scope="module")
def peter() -> SigningKey:
    """Go's PeterNeumann test signing key."""
    return SigningKey.from_text(PETER_SKEY)


def test_go_signing_key_parses_to_its_published_verifier(peter: SigningKey) -> None:
    """PeterNeumann's private key gives key id c74f20a3 and the published verifier key."""
    assert peter.name == "PeterNeumann"
    assert peter.key_id == bytes.fromhex("c74f20a3")
    assert peter.verifier().to_text() == PETER_VKEY
    assert peter.to_text() == PETER_SKEY
    assert VerifierKey.from_text(PETER_VKEY) == peter.verifier()
    assert VerifierKey.from_text(PETER_VKEY).to_text() == PETER_VKEY


def test_go_sign_vector_is_reproduced_byte_for_byte(peter: SigningKey) -> None:
    """Signing Go's text gives exactly Go's note (Ed25519 is deterministic)."""
    assert sign_note(GO_TEXT, peter) == GO_TEXT + "\n" + PETER_SIG


def test_go_note_with_two_signatures_opens_with_either_key() -> None:
    """Go TestOpen: Peter's and Enoch's signatures both verify; unknown ones are ignored."""
    note = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    peter_v = VerifierKey.from_text(PETER_VKEY)
    enoch_v = VerifierKey.from_text(ENOCH_VKEY)

    assert open_note(note, [peter_v]) == OpenedNote(GO_TEXT, ("PeterNeumann",))
    assert open_note(note, [enoch_v]).verified_by == ("EnochRoot",)
    assert open_note(note, [enoch_v, peter_v]).verified_by == ("PeterNeumann", "EnochRoot")
    assert open_note(note.encode(), [peter_v]).text == GO_TEXT


def test_c2sp_example_note_verifies() -> None:
    """The signed-note spec's example verifier key opens its example note."""
    opened = open_note(C2SP_NOTE, [VerifierKey.from_text(C2SP_VKEY)])

    assert opened == OpenedNote("This is an example message.\n", ("example.com/foo",))


def test_generated_key_round_trips_through_text() -> None:
    """A generated key survives to_text/from_text and signs what its verifier accepts."""
    key = SigningKey.generate(ORIGIN)
    again = SigningKey.from_text(key.to_text() + "\n")

    assert again == key
    assert again.verifier() == VerifierKey.from_text(key.verifier().to_text() + "\n")
    sig = key.sign(b"hi")
    assert key.verifier().verify(b"hi", sig)
    assert not key.verifier().verify(b"ho", sig)
    assert not key.verifier().verify(b"hi", sig[:-1])


def test_repr_never_shows_the_seed(peter: SigningKey) -> None:
    """The private seed stays out of repr (logs, tracebacks)."""
    seed_b64 = PETER_SKEY.rsplit("+", 1)[1]

    assert seed_b64 not in repr(peter)
    assert repr(peter.seed) not in repr(peter)


def test_key_names_follow_the_spec() -> None:
    """Names are non-empty with no '+', no Unicode space and no control character."""
    assert valid_key_name("example.com/log42")
    assert valid_key_name("\u00e9t\u00e9")
    for bad in ("", "a+b", "a b", "a\tb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\x01b"):
        assert not valid_key_name(bad), bad
        with pytest.raises(NoteError, match="not valid"):
            SigningKey.generate(bad)


def test_mangled_go_verifier_keys_are_refused() -> None:
    """Go TestNewVerifier: every substring and every one-byte change of the key is refused."""
    b = PETER_VKEY.encode()
    bad: list[bytes] = []
    for i in range(len(b) + 1):
        bad.extend(b[i:j] for j in range(i + 1, len(b) + 1) if (i, j) != (0, len(b)))
    for i in range(len(b)):
        bad.append(b[:i] + bytes([b[i] + 1]) + b[i + 1 :])
    for text in bad:
        with pytest.raises(NoteError):
            VerifierKey.from_text(text.decode())


def test_mangled_go_signing_keys_are_refused() -> None:
    """Go TestNewSigner: every one-byte change and every proper prefix/suffix is refused."""
    b = PETER_SKEY.encode()
    bad = [b[:i] for i in range(1, len(b))] + [b[i:] for i in range(1, len(b))]
    bad += [b[:i] + bytes([b[i] + 1]) + b[i + 1 :] for i in range(len(b))]
    for text in bad:
        with pytest.raises(NoteError):
            SigningKey.from_text(text.decode())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "not canonical base64",
        ),  # Go: wrong length key, with adjusted key hash
        (
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "unknown signature type",
        ),  # Go: unknown algorithm, with adjusted key hash
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX", "does not match"),
        ("PeterNeumann+c74f20a3+" + base64.b64encode(bytes([1] + [0] * 31)).decode(), "32 bytes"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwx!zhKqiBfsVkmqq/LDE4izWy10TW", "not valid base64"),
        ("PeterNeumann+c74f20a3+", "unknown signature type"),
    ],
)
def test_bad_verifier_keys_say_why(text: str, reason: str) -> None:
    """Each kind of bad verifier key gets its own reason."""
    with pytest.raises(NoteError, match=reason):
        VerifierKey.from_text(text)


def test_signing_key_errors_never_repeat_the_secret() -> None:
    """A bad private key text is refused without echoing its key material."""
    secret = PETER_SKEY.rsplit("+", 1)[1]
    for text in (PETER_SKEY[:-1] + "A", PETER_SKEY.replace("c74f20a3", "c74f20a4"), "x" + secret):
        with pytest.raises(NoteError) as info:
            SigningKey.from_text(text)
        assert secret[:20] not in str(info.value)


def test_sign_note_refuses_bad_text(peter: SigningKey) -> None:
    """No trailing newline, control characters, no keys, or an oversized note are refused."""
    with pytest.raises(NoteError, match="end with a newline"):
        sign_note("abc", peter)
    with pytest.raises(NoteError, match="control character"):
        sign_note("a\x01b\n", peter)
    with pytest.raises(NoteError, match="at least one signing key"):
        sign_note("abc\n")
    with pytest.raises(NoteError, match="over 65536 bytes"):
        sign_note("a" * MAX_NOTE_SIZE + "\n", peter)


def _peter_note() -> str:
    return GO_TEXT + "\n" + PETER_SIG


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (GO_TEXT, "no blank line"),  # Go badMsgs: text
        (GO_TEXT + "\n", "no signature lines"),  # text + "\n"
        (GO_TEXT + "\n" + PETER_SIG[:-1], "does not end with a newline"),
        ("\x01" + GO_TEXT + "\n" + PETER_SIG, "control character"),
        (GO_TEXT + "\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFu\n", "not valid base64"),
        (GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "line 5 is not a signature line"),
        (GO_TEXT + "\n" + "- PeterNeumann x08g\n", "not a signature line"),
        (GO_TEXT + "\n" + "\u2014 a+b x08go/ZJ\n", "key name 'a\\+b' is not valid"),
        (GO_TEXT + "\n" + "\u2014 PeterNeumann \n", "signature is missing"),
        (GO_TEXT + "\n" + "\u2014 PeterNeumann\n", "signature is missing"),
        (GO_TEXT + "\n" + "\u2014 PeterNeumann AAAA\n", "too short"),
        (GO_TEXT + "\n" + "\u2014 PeterNeumann x08go/ZJ=\n", "not canonical base64"),
        (GO_TEXT + "\r\n" + PETER_SIG, "control character"),
        (GO_TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), "more than 100"),
        ("\ud800" + _peter_note(), "not valid UTF-8"),
    ],
)
def test_malformed_notes_say_why(note: str, reason: str) -> None:
    """Every malformed note is a NoteError naming the problem (Go's badMsgs and more)."""
    with pytest.raises(NoteError, match=reason):
        open_note(note, [VerifierKey.from_text(PETER_VKEY)])


def test_note_bytes_must_be_utf8_and_small() -> None:
    """Bytes input must be UTF-8 and at most 64 KiB; so must a str once encoded."""
    verifiers = [VerifierKey.from_text(PETER_VKEY)]
    with pytest.raises(NoteError, match=r"not valid UTF-8 \(byte 0\)"):
        open_note(b"\xff" + _peter_note().encode(), verifiers)
    with pytest.raises(NoteError, match="over the 65536-byte limit"):
        open_note(b"a" * (MAX_NOTE_SIZE + 1), verifiers)
    with pytest.raises(NoteError, match="over the 65536-byte limit"):
        open_note("\u00e9" * (MAX_NOTE_SIZE // 2) + _peter_note(), verifiers)


def test_note_signed_only_by_unknown_keys_is_refused() -> None:
    """No verifiable signature is an error that names the keys that did sign."""
    with pytest.raises(NoteError, match=r"no signature from a known key.*PeterNeumann\+c74f20a3"):
        open_note(_peter_note(), [VerifierKey.from_text(ENOCH_VKEY)])
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(_peter_note(), [])


def test_same_name_other_key_counts_as_unknown(peter: SigningKey) -> None:
    """A key with the same name but another id is ignored, not failed (spec: name AND id)."""
    other = SigningKey.generate("PeterNeumann")
    note = sign_note(GO_TEXT, other, peter)

    assert open_note(note, [peter.verifier()]).verified_by == ("PeterNeumann",)


def test_known_key_with_a_bad_signature_rejects_the_note() -> None:
    """Go TestOpen: a signature by a known key that does not verify fails the whole note."""
    bad = GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match=r"invalid signature for key PeterNeumann\+c74f20a3"):
        open_note(bad, [VerifierKey.from_text(PETER_VKEY)])
    altered = _peter_note().replace("answer", "Answer")
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(altered, [VerifierKey.from_text(PETER_VKEY)])


def test_known_bad_signature_fails_even_beside_a_good_one() -> None:
    """One good and one bad known signature: the note is still refused."""
    bad_enoch = ENOCH_SIG[:40] + "ABCD" + ENOCH_SIG[44:]
    with pytest.raises(NoteError, match="invalid signature for key EnochRoot"):
        open_note(
            GO_TEXT + "\n" + PETER_SIG + bad_enoch,
            [VerifierKey.from_text(PETER_VKEY), VerifierKey.from_text(ENOCH_VKEY)],
        )


def test_repeated_signatures_are_counted_once() -> None:
    """Go TestOpen: duplicate lines of one key verify once."""
    note = GO_TEXT + "\n" + PETER_SIG + PETER_SIG

    assert open_note(note, [VerifierKey.from_text(PETER_VKEY)]).verified_by == ("PeterNeumann",)


def test_two_different_keys_with_one_name_and_id_are_ambiguous() -> None:
    """Two different verifier keys claiming one (name, id) make that signature an error."""
    real = VerifierKey.from_text(PETER_VKEY)
    fake = VerifierKey("PeterNeumann", bytes(range(32)))
    object.__setattr__(fake, "key_id", real.key_id)  # a forged collision

    with pytest.raises(NoteError, match="two different verifier keys"):
        open_note(_peter_note(), [real, fake])
    assert open_note(_peter_note(), [real, real]).verified_by == ("PeterNeumann",)


def test_checkpoint_body_and_round_trip(peter: SigningKey) -> None:
    """A checkpoint signs as origin/size/root lines and opens back to the same value."""
    root = leaf_hash(b"hello world")
    cp = Checkpoint(ORIGIN, 42, root, ("ext one",))
    note = sign_checkpoint(cp, peter)

    assert cp.body() == f"{ORIGIN}\n42\n{base64.b64encode(root).decode()}\next one\n"
    assert open_checkpoint(note, [peter.verifier()], origin=ORIGIN) == cp
    assert open_checkpoint(note, [peter.verifier()]) == cp


def test_published_checkpoint_texts_parse() -> None:
    """The C2SP tlog-checkpoint example and Go's tree note parse to their values."""
    cp = parse_checkpoint(C2SP_CHECKPOINT)
    go = parse_checkpoint(GO_TREE)

    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.body() == C2SP_CHECKPOINT
    assert go == Checkpoint("go.sum database tree", 123456789012, leaf_hash(b"hello world"))


def test_checkpoint_with_another_origin_is_refused(peter: SigningKey) -> None:
    """open_checkpoint with an expected origin refuses a checkpoint from another log."""
    note = sign_checkpoint(Checkpoint("other/log", 1, bytes(32)), peter)

    with pytest.raises(NoteError, match="origin is 'other/log', expected"):
        open_checkpoint(note, [peter.verifier()], origin=ORIGIN)


def test_signed_note_that_is_not_a_checkpoint_is_refused(peter: SigningKey) -> None:
    """A validly signed note whose text is not a checkpoint fails in parse."""
    with pytest.raises(NoteError, match="at least three lines"):
        open_checkpoint(sign_note("hello\n", peter), [peter.verifier()])


_ROOT64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"o\n1\n{_ROOT64}", "end with a newline"),
        ("o\n1\n", "at least three lines"),
        (f"\n1\n{_ROOT64}\n", "origin line is empty"),
        (f"o\n01\n{_ROOT64}\n", "without leading zeros"),
        (f"o\n+1\n{_ROOT64}\n", "without leading zeros"),
        (f"o\n-1\n{_ROOT64}\n", "without leading zeros"),
        (f"o\n1_0\n{_ROOT64}\n", "without leading zeros"),
        (f"o\n\u0661\n{_ROOT64}\n", "without leading zeros"),  # Arabic-Indic digit one
        (f"o\n0xabcdef\n{_ROOT64}\n", "without leading zeros"),  # Go TestParseTree
        (f"o\n{1 << 63}\n{_ROOT64}\n", "too large"),
        ("o\n1\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n", "base64"),  # Go
        ("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n", "not canonical base64"),
        ("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", "not valid base64"),
        (f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n", "31 bytes, not 32"),
        (f"o\n1\n{_ROOT64}\n\n", "line 4 is empty"),
        (f"o\n1\n{_ROOT64}\next\n\n", "line 5 is empty"),
    ],
)
def test_bad_checkpoints_say_why(text: str, reason: str) -> None:
    """Checkpoint text is parsed strictly, each problem with its own message."""
    with pytest.raises(NoteError, match=reason):
        parse_checkpoint(text)


def test_checkpoint_values_are_checked() -> None:
    """A Checkpoint cannot be built with an empty origin, bad size, short root or bad extension."""
    with pytest.raises(NoteError, match="origin"):
        Checkpoint("", 1, bytes(32))
    with pytest.raises(NoteError, match="origin"):
        Checkpoint("a\nb", 1, bytes(32))
    with pytest.raises(NoteError, match="out of range"):
        Checkpoint("o", -1, bytes(32))
    with pytest.raises(NoteError, match="32 bytes"):
        Checkpoint("o", 1, bytes(31))
    with pytest.raises(NoteError, match="extension"):
        Checkpoint("o", 1, bytes(32), ("",))
    with pytest.raises(NoteError, match="control character"):
        Checkpoint("o\x7f\x00", 1, bytes(32))


def test_note_error_is_a_ledger_error() -> None:
    """NoteError sits under LedgerError in the one exception tree."""
    assert issubclass(NoteError, LedgerError)


@settings(max_examples=50, deadline=None, database=None)
@given(
    origin=st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\n"), min_size=1
    ),
    size=st.integers(min_value=0, max_value=(1 << 63) - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_any_checkpoint_round_trips(origin: str, size: int, root: bytes) -> None:
    """Any valid checkpoint signs and opens back to itself; any changed byte breaks it."""
    key = SigningKey.from_text(PETER_SKEY)
    cp = Checkpoint(origin, size, root)
    note = sign_checkpoint(cp, key)

    assert open_checkpoint(note, [key.verifier()], origin=origin) == cp
    tampered = Checkpoint(origin, size ^ 1, root)
    forged = tampered.body() + note[len(cp.body()) :]
    with pytest.raises(NoteError):
        open_checkpoint(forged, [key.verifier()])
