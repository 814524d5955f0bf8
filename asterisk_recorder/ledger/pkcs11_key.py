"""The checkpoint signing key inside a PKCS#11 token: an HSM, a smart card, SoftHSM2.

This module owns ``Pkcs11Signer``: it loads a PKCS#11 module (the absolute path of its shared
library), finds a token by its label, logs in with the user PIN, finds the Ed25519 key pair
(``CKK_EC_EDWARDS``) by its label, and signs with ``CKM_EDDSA`` (pure Ed25519, a 64-byte
signature) so the private key never leaves the token. ``Pkcs11Signer.generate`` creates such a
key pair in the token, sensitive and not extractable. Each signer keeps one session, guarded
by a lock (a signature is a millisecond; callers may use it from any thread). Every library
error becomes a ``Pkcs11Error`` naming the module, token and key label.

It must not read settings, key files or the database (``signing`` maps ``[ledger]`` here), it
must not log, and it never puts the PIN into a message, a repr or an exception.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from asterisk_recorder.errors import NoteError, Pkcs11Error
from asterisk_recorder.ledger.note import VerifierKey, valid_key_name

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib
    from pkcs11.types import Session, SignMixin, Token

__all__ = [
    "DEFAULT_KEY_LABEL",
    "ED25519_PARAMS",
    "Pkcs11Signer",
    "close_session",
    "decode_ec_point",
    "find_token",
    "load_module",
    "login",
    "lost_session_errors",
    "masked",
    "python_pkcs11",
]

DEFAULT_KEY_LABEL = "asterisk-recorder-checkpoint"
"""Label of the key pair in the token when ``ledger.checkpoint_pkcs11_key`` is not set."""

_ED25519_OID = bytes.fromhex("06032b6570")  # OBJECT IDENTIFIER 1.3.101.112 (id-Ed25519)
_ED25519_NAME = b"\x13\x0cedwards25519"  # PrintableString, the curve name form of CKA_EC_PARAMS
ED25519_PARAMS = frozenset({_ED25519_OID, _ED25519_NAME})
"""The two DER encodings of ``CKA_EC_PARAMS`` that name Ed25519 (PKCS#11 3.0, 2.3.10)."""

_SELF_TEST = b"asterisk-recorder: PKCS#11 signing key self-test\n"


def decode_ec_point(value: bytes) -> bytes:
    """The 32-byte Ed25519 public key in a ``CKA_EC_POINT`` value.

    PKCS#11 3.0 makes it a DER OCTET STRING holding the key (``04 20`` and 32 bytes); some
    tokens return the bare 32 bytes, which are accepted too (the two cannot be confused: one
    is 34 bytes, the other 32). Anything else (another length, a long-form length, trailing
    bytes) is refused.

    Raises:
        Pkcs11Error: the value is not an Ed25519 public key.
    """
    if len(value) == 32:
        return bytes(value)
    if len(value) == 34 and value[0] == 0x04 and value[1] == 0x20:
        return bytes(value[2:])
    raise Pkcs11Error(
        f"the token's CKA_EC_POINT is not an Ed25519 public key ({len(value)} bytes, expected "
        "a DER OCTET STRING of 32 bytes)"
    )


def _pkcs11() -> Any:
    try:
        import pkcs11 as lib
    except ImportError as exc:
        raise Pkcs11Error(
            "PKCS#11 signing keys need python-pkcs11: pip install 'asterisk-recorder[pkcs11]'"
        ) from exc
    return lib


def _lost(lib: Any) -> tuple[type[BaseException], ...]:
    """The errors that mean the session is gone (and a new one may work)."""
    return (
        lib.SessionHandleInvalid,
        lib.SessionClosed,
        lib.DeviceRemoved,
        lib.TokenNotPresent,
        lib.UserNotLoggedIn,
        lib.ObjectHandleInvalid,
        lib.KeyHandleInvalid,
    )


def _detail(exc: BaseException, pin: str) -> str:
    """The exception's class and text, with the PIN (should a library echo it) masked."""
    text = str(exc)
    if pin:
        text = text.replace(pin, "***")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _load_module(module: str, pin: str) -> Pkcs11Lib:
    if not module.startswith("/"):
        raise Pkcs11Error(f"the PKCS#11 module path {module!r} must be absolute")
    if not Path(module).is_file():
        raise Pkcs11Error(f"the PKCS#11 module {module} does not exist or is not a file")
    lib = _pkcs11()
    try:
        loaded: Pkcs11Lib = lib.lib(module)
    except lib.PKCS11Error as exc:
        raise Pkcs11Error(
            f"cannot load the PKCS#11 module {module}: {_detail(exc, pin)}"
        ) from None
    return loaded


class Pkcs11Signer:
    """An Ed25519 note signer whose private key stays in a PKCS#11 token.

    Satisfies ``asterisk_recorder.ledger.note.Signer``. Opening it checks everything once: the
    module loads, the token is there, the PIN is accepted, the key pair is Ed25519 and the
    public key matches the private one (a test signature is verified). ``close()`` ends the
    session (it is also a context manager).

    Args:
        module: absolute path of the PKCS#11 shared library (e.g. SoftHSM2's
            ``/usr/lib/softhsm/libsofthsm2.so``).
        token: the token's label.
        key_label: the label of the key pair (``CKA_LABEL`` of its private and public keys).
        pin: the user PIN (empty: no login, for tokens that need none).
        name: the note key name (for checkpoints: the origin).

    Raises:
        Pkcs11Error: any of those checks fails; the message never contains the PIN.
        NoteError: ``name`` is not a valid key name.
    """

    def __init__(self, module: str, token: str, key_label: str, pin: str, *, name: str) -> None:
        if not valid_key_name(name):
            raise NoteError(f"key name {name!r} is not valid: it must be non-empty, without '+'")
        self._name = name
        self.module = module
        self.token = token
        self.key_label = key_label
        self._pin = pin
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._private: SignMixin | None = None
        self._public: Ed25519PublicKey | None = None
        self.public_key = b""
        with self._lock:
            self._open()
        self._verifier: VerifierKey = VerifierKey(name, self.public_key)

    # -- the Signer protocol

    @property
    def name(self) -> str:
        """The note key name (the checkpoint origin)."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The four-byte note key id of ``name`` and the token's public key."""
        return self._verifier.key_id

    def verifier(self) -> VerifierKey:
        """The matching public verifier key (to publish; ``ledger verify`` trusts it)."""
        return self._verifier

    def sign(self, msg: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``msg``, made by the token (``CKM_EDDSA``).

        A session the token dropped (restart, removal, timeout) is reopened once.

        Raises:
            Pkcs11Error: the token cannot sign, or its signature does not verify.
        """
        with self._lock:
            try:
                sig = self._sign_once(msg)
            except _lost(_pkcs11()):
                self._drop()
                self._open()
                sig = self._sign_once(msg)
        self._check(msg, sig)
        return sig

    # -- lifecycle

    def close(self) -> None:
        """End the session; the signer cannot sign afterwards."""
        with self._lock:
            self._drop()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Pkcs11Signer(name={self._name!r}, module={self.module!r}, token={self.token!r}, "
            f"key_label={self.key_label!r})"
        )

    @classmethod
    def generate(
        cls, module: str, token: str, key_label: str, pin: str, *, name: str
    ) -> Pkcs11Signer:
        """Create an Ed25519 key pair labelled ``key_label`` in the token and open it.

        The private key is a token object, private, sensitive, not extractable and for signing
        only; the public key is a token object holding ``CKA_EC_POINT``. Refused when any
        object in the token already has that label.

        Raises:
            Pkcs11Error: the label is taken, or the token cannot create the pair (or ignored
                the sensitive / non-extractable attributes: the pair is then destroyed).
        """
        if not valid_key_name(name):
            raise NoteError(f"key name {name!r} is not valid: it must be non-empty, without '+'")
        lib = _pkcs11()
        where = f"token {token!r} of {module}"
        session = _login(_find_token(_load_module(module, pin), token, module, pin), pin,
                         where, rw=True)
        try:
            try:
                taken = next(iter(session.get_objects({lib.Attribute.LABEL: key_label})), None)
            except lib.PKCS11Error as exc:
                raise Pkcs11Error(
                    f"cannot search {where} for {key_label!r}: {_detail(exc, pin)}"
                ) from None
            if taken is not None:
                raise Pkcs11Error(
                    f"{where} already holds an object labelled {key_label!r}; choose another "
                    "label (an existing key is never replaced)"
                )
            try:
                _public, private = session.generate_keypair(
                    lib.KeyType.EC_EDWARDS,
                    store=True,
                    label=key_label,
                    mechanism=lib.Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                    public_template={
                        lib.Attribute.EC_PARAMS: _ED25519_OID,
                        lib.Attribute.VERIFY: True,
                        lib.Attribute.TOKEN: True,
                    },
                    private_template={
                        lib.Attribute.SENSITIVE: True,
                        lib.Attribute.EXTRACTABLE: False,
                        lib.Attribute.PRIVATE: True,
                        lib.Attribute.SIGN: True,
                        lib.Attribute.TOKEN: True,
                    },
                )
            except lib.PKCS11Error as exc:
                raise Pkcs11Error(
                    f"{where} could not generate an Ed25519 key pair {key_label!r} "
                    f"({_detail(exc, pin)}); does it support CKM_EC_EDWARDS_KEY_PAIR_GEN?"
                ) from None
            try:
                safe = private[lib.Attribute.SENSITIVE] and not private[lib.Attribute.EXTRACTABLE]
            except lib.PKCS11Error:
                safe = False
            if not safe:
                _destroy(session, key_label, lib)
                raise Pkcs11Error(
                    f"{where} did not keep the new key {key_label!r} sensitive and "
                    "non-extractable; it was destroyed"
                )
        finally:
            _close(session, lib)
        return cls(module, token, key_label, pin, name=name)

    # -- internals (called with the lock held)

    def _where(self) -> str:
        return f"key {self.key_label!r} in token {self.token!r} of {self.module}"

    def _open(self) -> None:
        lib = _pkcs11()
        token = _find_token(_load_module(self.module, self._pin), self.token, self.module,
                            self._pin)
        session = _login(token, self._pin, f"token {self.token!r} of {self.module}", rw=False)
        try:
            private, public = self._find_pair(session, lib)
        except BaseException:
            _close(session, lib)
            raise
        self._session, self._private = session, private
        self.public_key = public
        self._public = Ed25519PublicKey.from_public_bytes(public)
        try:
            self._check(_SELF_TEST, self._sign_once(_SELF_TEST), self_test=True)
        except BaseException:
            self._drop()
            raise

    def _find_pair(self, session: Session, lib: Any) -> tuple[SignMixin, bytes]:
        where = self._where()
        label = self.key_label
        try:
            private = session.get_key(lib.ObjectClass.PRIVATE_KEY, label=label)
        except lib.NoSuchKey:
            raise Pkcs11Error(
                f"no private key labelled {label!r} in token {self.token!r} of {self.module}; "
                "create it with 'asterisk-recorder ledger checkpoint-key create'"
            ) from None
        except lib.MultipleObjectsReturned:
            raise Pkcs11Error(f"several private keys match {where}; labels must be unique") \
                from None
        except lib.PKCS11Error as exc:
            raise Pkcs11Error(f"cannot find {where}: {_detail(exc, self._pin)}") from None
        try:
            key_type = private[lib.Attribute.KEY_TYPE]
        except lib.PKCS11Error as exc:
            raise Pkcs11Error(f"cannot read the type of {where}: {_detail(exc, self._pin)}") \
                from None
        if key_type != lib.KeyType.EC_EDWARDS:
            try:
                shown = lib.KeyType(key_type).name
            except ValueError:
                shown = str(key_type)
            raise Pkcs11Error(f"{where} is not an Ed25519 key (its key type is {shown})")
        try:
            public = session.get_key(lib.ObjectClass.PUBLIC_KEY, label=label)
            params = bytes(public[lib.Attribute.EC_PARAMS])
            point = bytes(public[lib.Attribute.EC_POINT])
        except lib.NoSuchKey:
            raise Pkcs11Error(
                f"{where} has no public key object with the same label; the verifier key "
                "cannot be derived"
            ) from None
        except lib.MultipleObjectsReturned:
            raise Pkcs11Error(f"several public keys are labelled {label!r} in token "
                              f"{self.token!r}; labels must be unique") from None
        except lib.PKCS11Error as exc:
            raise Pkcs11Error(
                f"cannot read the public key of {where}: {_detail(exc, self._pin)}"
            ) from None
        if params not in ED25519_PARAMS:
            raise Pkcs11Error(
                f"{where} is an Edwards key but not Ed25519 (CKA_EC_PARAMS {params.hex()}; "
                "Ed448 is not supported)"
            )
        if not isinstance(private, lib.types.SignMixin):
            raise Pkcs11Error(f"{where} cannot sign (the token gave no signing key object)")
        try:
            return cast("SignMixin", private), decode_ec_point(point)
        except Pkcs11Error as exc:
            raise Pkcs11Error(f"{where}: {exc}") from None

    def _sign_once(self, msg: bytes) -> bytes:
        lib = _pkcs11()
        if self._private is None:
            raise Pkcs11Error(f"{self._where()}: the signer is closed")
        try:
            return bytes(self._private.sign(msg, mechanism=lib.Mechanism.EDDSA))
        except lib.PKCS11Error as exc:
            if isinstance(exc, _lost(lib)):
                raise
            raise Pkcs11Error(
                f"{self._where()} could not sign ({_detail(exc, self._pin)}); does the token "
                "support CKM_EDDSA?"
            ) from None

    def _check(self, msg: bytes, sig: bytes, *, self_test: bool = False) -> None:
        assert self._public is not None
        try:
            if len(sig) != 64:
                raise InvalidSignature
            self._public.verify(sig, msg)
        except InvalidSignature:
            what = ("the public key does not match the private key"
                    if self_test else "the token returned a signature that does not verify")
            raise Pkcs11Error(f"{self._where()}: {what}") from None

    def _drop(self) -> None:
        session, self._session, self._private = self._session, None, None
        if session is not None:
            _close(session, _pkcs11())


def _find_token(lib: Pkcs11Lib, label: str, module: str, pin: str) -> Token:
    p11 = _pkcs11()
    try:
        return lib.get_token(token_label=label)
    except p11.NoSuchToken:
        try:
            labels = sorted({t.label for t in lib.get_tokens()} - {""})
        except p11.PKCS11Error:
            labels = []
        there = ", ".join(repr(t) for t in labels) if labels else "none"
        raise Pkcs11Error(
            f"no token labelled {label!r} in the PKCS#11 module {module} (tokens there: {there})"
        ) from None
    except p11.MultipleTokensReturned:
        raise Pkcs11Error(
            f"several tokens are labelled {label!r} in the PKCS#11 module {module}"
        ) from None
    except p11.PKCS11Error as exc:
        raise Pkcs11Error(f"cannot list the tokens of {module}: {_detail(exc, pin)}") from None


def _login(token: Token, pin: str, where: str, *, rw: bool) -> Session:
    """A session on ``token``, logged in as the user with ``pin`` (when given)."""
    lib = _pkcs11()
    try:
        if not pin:
            return token.open(rw=rw)
        try:
            return token.open(rw=rw, user_pin=pin)
        except lib.UserAlreadyLoggedIn:  # another session of this process logged in already
            return token.open(rw=rw)
    except (lib.PinIncorrect, lib.PinInvalid, lib.PinLenRange):
        raise Pkcs11Error(f"the PIN for {where} was refused (the PIN is not shown)") from None
    except lib.PinLocked:
        raise Pkcs11Error(f"the user PIN of {where} is locked; the security officer must "
                          "unlock it") from None
    except lib.PKCS11Error as exc:
        raise Pkcs11Error(f"cannot open a session on {where}: {_detail(exc, pin)}") from None


def _close(session: Session, lib: Any) -> None:
    with contextlib.suppress(lib.PKCS11Error):  # the token is gone: nothing left to close
        session.close()


def _destroy(session: Session, label: str, lib: Any) -> None:
    try:
        for obj in list(session.get_objects({lib.Attribute.LABEL: label})):
            obj.destroy()
    except lib.PKCS11Error:
        pass  # best effort; the error raised next says the key is not safe


# Shared with ``recordings.pkcs11_kek`` (the recording KEKs in a token): the same module
# loading, token lookup, login (the PIN never in a message) and session handling.
python_pkcs11 = _pkcs11
lost_session_errors = _lost
masked = _detail
load_module = _load_module
find_token = _find_token
login = _login
close_session = _close
