"""Recording KEK private keys inside a PKCS#11 token (an HSM, a smart card, SoftHSM2).

This module owns ``Pkcs11PrivateKeys`` (the ``keys.PrivateKeys`` backend for a token) and
``Pkcs11KekOpener`` (its ``KekOpener``). Each bucket's EC P-384 private key is a token object
labelled (``CKA_LABEL``) and identified (``CKA_ID``) by its key id, private, sensitive, not
extractable and for ``CKM_ECDH1_DERIVE`` only; its public key is a token object with the same
label. Opening a recording derives the ECDH shared secret on the token from the envelope's
ephemeral point (a session object, extractable so its 48 bytes can be read, destroyed right
after); HKDF-SHA384 and the AES-256-GCM unwrap then run in Python (``keys.unwrap_with``), so
the results are byte-identical to the file backend. The private key value never leaves the
token. Module loading, token lookup and login are the ledger's (``ledger.pkcs11_key``).

It must not read settings, public key files or the database, must not log, and never puts
the PIN into a message, a repr or an exception. Every failure is a ``KeyUnavailable``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from asterisk_recorder.errors import KeyUnavailable, Pkcs11Error, RecordingError
from asterisk_recorder.ledger import pkcs11_key as p11
from asterisk_recorder.recordings.keys import check_kek_id, public_point, unwrap_with

if TYPE_CHECKING:
    from pkcs11.types import Session

__all__ = ["Pkcs11KekOpener", "Pkcs11PrivateKeys", "p384_params"]

_T = TypeVar("_T")
_SECRET_BYTES = 48  # the P-384 ECDH shared secret (x coordinate)


def p384_params() -> bytes:
    """``CKA_EC_PARAMS`` of P-384: the DER OBJECT IDENTIFIER 1.3.132.0.34 (secp384r1)."""
    return bytes.fromhex("06052b81040022")


def _point_of(value: bytes) -> bytes:
    """The uncompressed point in a ``CKA_EC_POINT`` (a DER OCTET STRING, or bare)."""
    raw = bytes(value)
    if len(raw) == 97 and raw[0] == 0x04:
        return raw
    if len(raw) == 99 and raw[:2] == b"\x04\x61" and raw[2] == 0x04:
        return raw[2:]
    raise KeyUnavailable(f"the token's CKA_EC_POINT is not a P-384 point ({len(raw)} bytes)")


class Pkcs11PrivateKeys:
    """Recording private keys in one PKCS#11 token.

    Args:
        module: absolute path of the PKCS#11 library (``recordings.kek_pkcs11_module``).
        token: the token's label (``recordings.kek_pkcs11_token``).
        pin: the user PIN (``recordings.kek_pkcs11_pin``; empty: no login).

    Nothing is opened until a method needs the token; each call opens and closes its own
    session (the opener keeps one). ``KeyUnavailable`` names the module and token, never the
    PIN.
    """

    custody = "pkcs11"

    def __init__(self, module: str, token: str, pin: str) -> None:
        self.module = module
        self.token = token
        self._pin = pin
        self.where = f"PKCS#11 token {token!r} of {module}"

    def __repr__(self) -> str:
        return f"Pkcs11PrivateKeys(module={self.module!r}, token={self.token!r})"

    # -- sessions

    def open_session(self, *, rw: bool) -> Session:
        """A logged-in session on the token; ``KeyUnavailable`` when that fails."""
        try:
            lib = p11.load_module(self.module, self._pin)
            token = p11.find_token(lib, self.token, self.module, self._pin)
            return p11.login(token, self._pin, self.where, rw=rw)
        except Pkcs11Error as exc:
            raise KeyUnavailable(f"the recording keys' token cannot be used: {exc}") from None

    @contextlib.contextmanager
    def _session(self, *, rw: bool) -> Iterator[Session]:
        session = self.open_session(rw=rw)
        try:
            yield session
        finally:
            p11.close_session(session, p11.python_pkcs11())

    def _call(self, what: str, work: Callable[[], _T]) -> _T:
        lib = p11.python_pkcs11()
        try:
            return work()
        except lib.PKCS11Error as exc:
            raise KeyUnavailable(
                f"{self.where} could not {what}: {p11.masked(exc, self._pin)}"
            ) from None

    # -- the PrivateKeys backend

    def check(self) -> None:
        """Open (and close) a logged-in session: the token is there and takes the PIN."""
        with self._session(rw=False):
            pass

    def ids(self) -> frozenset[str]:
        """The labels of the token's EC private keys that are valid key ids."""
        lib = p11.python_pkcs11()
        with self._session(rw=False) as session:
            objects = self._call("list its private keys", lambda: list(session.get_objects({
                lib.Attribute.CLASS: lib.ObjectClass.PRIVATE_KEY,
                lib.Attribute.KEY_TYPE: lib.KeyType.EC,
            })))
            labels = self._call("read the key labels",
                                lambda: {str(o[lib.Attribute.LABEL]) for o in objects})
        out = set()
        for label in labels:
            try:
                out.add(check_kek_id(label))
            except RecordingError:
                continue  # another application's key in the same token
        return frozenset(out)

    def _taken(self, session: Session, kek_id: str) -> bool:
        lib = p11.python_pkcs11()
        found = self._call("search its objects", lambda: next(
            iter(session.get_objects({lib.Attribute.LABEL: kek_id})), None))
        return found is not None

    def generate(self, kek_id: str) -> ec.EllipticCurvePublicKey:
        """Generate a P-384 pair in the token (the private key never exists outside it)."""
        lib = p11.python_pkcs11()
        check_kek_id(kek_id)
        with self._session(rw=True) as session:
            if self._taken(session, kek_id):
                raise RecordingError(f"{self.where} already holds an object labelled "
                                     f"{kek_id!r}: not replaced")
            public, private = self._call(
                "generate a P-384 key pair (does it support CKM_EC_KEY_PAIR_GEN?)",
                lambda: session.generate_keypair(
                    lib.KeyType.EC, store=True, label=kek_id, id=kek_id.encode("ascii"),
                    public_template={
                        lib.Attribute.EC_PARAMS: p384_params(),
                        lib.Attribute.TOKEN: True,
                        lib.Attribute.DERIVE: False,
                        lib.Attribute.VERIFY: False,
                        lib.Attribute.ENCRYPT: False,
                        lib.Attribute.WRAP: False,
                    },
                    private_template=self._private_template(lib),
                ))
            self._ensure_safe(session, private, kek_id, lib)
            point = _point_of(self._call("read the public point",
                                         lambda: public[lib.Attribute.EC_POINT]))
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point)

    @staticmethod
    def _private_template(lib: Any) -> dict[Any, Any]:
        return {
            lib.Attribute.TOKEN: True,
            lib.Attribute.PRIVATE: True,
            lib.Attribute.SENSITIVE: True,
            lib.Attribute.EXTRACTABLE: False,
            lib.Attribute.DERIVE: True,
            lib.Attribute.SIGN: False,
            lib.Attribute.DECRYPT: False,
            lib.Attribute.UNWRAP: False,
        }

    def _ensure_safe(self, session: Session, private: Any, kek_id: str, lib: Any) -> None:
        try:
            safe = bool(private[lib.Attribute.SENSITIVE]) and not private[
                lib.Attribute.EXTRACTABLE]
        except lib.PKCS11Error:
            safe = False
        if not safe:
            self._destroy_label(session, kek_id, lib)
            raise KeyUnavailable(f"{self.where} did not keep key {kek_id} sensitive and not "
                                 "extractable; it was destroyed")

    def _destroy_label(self, session: Session, kek_id: str, lib: Any) -> int:
        objects = self._call("search its objects", lambda: list(
            session.get_objects({lib.Attribute.LABEL: kek_id})))
        for obj in objects:
            self._call(f"destroy key {kek_id}", obj.destroy)
        return len(objects)

    def store(self, kek_id: str, private: ec.EllipticCurvePrivateKey) -> None:
        """Import ``private`` (escrowed or recovered) as a sensitive, non-extractable key.

        The token records ``CKA_NEVER_EXTRACTABLE`` false and ``CKA_LOCAL`` false for it: it
        existed outside the token once (the escrow split), which is what escrow means.
        """
        lib = p11.python_pkcs11()
        check_kek_id(kek_id)
        if not isinstance(private.curve, ec.SECP384R1):
            raise KeyUnavailable(f"key {kek_id} is not a P-384 key", kek_id=kek_id)
        point = public_point(private.public_key())
        value = private.private_numbers().private_value.to_bytes(_SECRET_BYTES, "big")
        with self._session(rw=True) as session:
            if self._taken(session, kek_id):
                raise RecordingError(f"{self.where} already holds an object labelled "
                                     f"{kek_id!r}: not replaced")
            common = {lib.Attribute.LABEL: kek_id, lib.Attribute.ID: kek_id.encode("ascii"),
                      lib.Attribute.KEY_TYPE: lib.KeyType.EC,
                      lib.Attribute.EC_PARAMS: p384_params(), lib.Attribute.TOKEN: True}
            made = self._call("import the private key", lambda: session.create_object({
                **common, lib.Attribute.CLASS: lib.ObjectClass.PRIVATE_KEY,
                lib.Attribute.VALUE: value, **self._private_template(lib)}))
            self._ensure_safe(session, made, kek_id, lib)
            try:
                self._call("store the public key", lambda: session.create_object({
                    **common, lib.Attribute.CLASS: lib.ObjectClass.PUBLIC_KEY,
                    lib.Attribute.EC_POINT: b"\x04\x61" + point}))
            except KeyUnavailable:
                self._destroy_label(session, kek_id, lib)
                raise

    def destroy(self, kek_id: str, stamp: float) -> None:
        """``C_DestroyObject`` of the private key and its public object."""
        del stamp  # a token keeps no tombstone: the ledger's recording.key_destroyed says it
        lib = p11.python_pkcs11()
        check_kek_id(kek_id)
        with self._session(rw=True) as session:
            if self._destroy_label(session, kek_id, lib) == 0:
                raise KeyUnavailable(f"private key {kek_id} is not in {self.where}",
                                     kek_id=kek_id)

    def opener(self) -> Pkcs11KekOpener:
        """An opener unwrapping on this token (one session, opened at the first unwrap)."""
        return Pkcs11KekOpener(self)


class Pkcs11KekOpener:
    """``KekOpener`` whose ECDH runs in the token: only the shared secret reaches Python.

    Keeps one session (guarded by a lock; reopened once if the token dropped it); ``close()``
    ends it (also a context manager).
    """

    def __init__(self, keys: Pkcs11PrivateKeys) -> None:
        self._keys = keys
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._points: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"Pkcs11KekOpener({self._keys!r})"

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        """Return the DEK ``wrapped`` holds (see ``KekOpener``)."""
        check_kek_id(kek_id)
        lib = p11.python_pkcs11()
        with self._lock:
            try:
                return self._unwrap(kek_id, wrapped)
            except p11.lost_session_errors(lib):
                self._drop()
                try:
                    return self._unwrap(kek_id, wrapped)
                except lib.PKCS11Error as exc:
                    raise KeyUnavailable(
                        f"{self._keys.where} could not unwrap with key {kek_id}: "
                        f"{p11.masked(exc, self._keys._pin)}", kek_id=kek_id) from None

    def _unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        lib = p11.python_pkcs11()
        if self._session is None:
            self._session = self._keys.open_session(rw=False)
        session = self._session
        where = self._keys.where
        try:
            private: Any = session.get_key(lib.ObjectClass.PRIVATE_KEY, lib.KeyType.EC,
                                           label=kek_id)
        except lib.NoSuchKey:
            raise KeyUnavailable(
                f"private key {kek_id} is not in {where} (destroyed, or another token)",
                kek_id=kek_id) from None
        except lib.MultipleObjectsReturned:
            raise KeyUnavailable(f"several private keys are labelled {kek_id!r} in {where}",
                                 kek_id=kek_id) from None
        point = self._points.get(kek_id)
        if point is None:
            try:
                public = session.get_key(lib.ObjectClass.PUBLIC_KEY, lib.KeyType.EC,
                                         label=kek_id)
            except lib.NoSuchKey:
                raise KeyUnavailable(f"{where} has no public key object {kek_id!r} beside the "
                                     "private key", kek_id=kek_id) from None
            point = _point_of(public[lib.Attribute.EC_POINT])
            self._points[kek_id] = point

        def exchange(eph_point: bytes) -> bytes:
            try:
                secret = private.derive_key(
                    lib.KeyType.GENERIC_SECRET, _SECRET_BYTES * 8,
                    mechanism=lib.Mechanism.ECDH1_DERIVE,
                    mechanism_param=(lib.KDF.NULL, None, eph_point),
                    template={lib.Attribute.TOKEN: False, lib.Attribute.SENSITIVE: False,
                              lib.Attribute.EXTRACTABLE: True},
                )
            except lib.PKCS11Error as exc:
                if isinstance(exc, p11.lost_session_errors(lib)):
                    raise
                raise KeyUnavailable(
                    f"{where} could not derive with key {kek_id} (CKM_ECDH1_DERIVE): "
                    f"{p11.masked(exc, self._keys._pin)}", kek_id=kek_id) from None
            try:
                return bytes(secret[lib.Attribute.VALUE])
            finally:
                with contextlib.suppress(lib.PKCS11Error):
                    secret.destroy()  # a session object: gone with the session anyway

        return unwrap_with(wrapped, point, kek_id, exchange)

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            p11.close_session(session, p11.python_pkcs11())

    def close(self) -> None:
        """End the session."""
        with self._lock:
            self._drop()

    def __enter__(self) -> Pkcs11KekOpener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
