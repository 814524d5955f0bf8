"""The one exception tree of asterisk-recorder.

This module owns every exception the package raises on purpose. It must not import anything
from the rest of the package (every module imports it), and it must not grow a second root.
Library errors (aiohttp, asyncpg, OS errors) are translated at the edge that calls the
library and raised ``from`` the original, so callers catch ours and still see the cause.

::

    RecorderError
    ├── ConfigError                     bad TOML, unknown key, bad value, missing secret
    ├── PolicyError                     a policy table that does not load or validate
    ├── FlowError                       misuse of the consent state machine by a driver
    ├── LedgerError
    │   ├── DatabaseUnavailable         PostgreSQL did not answer in time (also ConnectionError)
    │   ├── DatabaseStartError          the embedded PostgreSQL could not be started
    │   ├── MigrationError              a migration failed or an applied one was edited
    │   ├── SpoolError                  the local spool could not be written or read
    │   ├── ChainError                  ``ledger verify`` found a break in the hash chain
    │   │   └── ProofError              a Merkle proof, root or tile does not check out
    │   ├── NoteError                   a signed note or checkpoint is malformed or unverified
    │   ├── Pkcs11Error                 the PKCS#11 signing key cannot be opened or used
    │   ├── TimestampError              no RFC 3161 timestamp from the TSA, or one that fails
    │   └── WitnessError                a checkpoint witness refused, failed or holds a conflict
    ├── AriError
    │   ├── AriConnectionError          refused, reset, DNS (also ConnectionError)
    │   ├── AriTimeout                  no answer within the request timeout (also TimeoutError)
    │   ├── AriProtocolError            a frame or body that is not what ARI promises
    │   └── AriHttpError                Asterisk answered with an error status
    │       ├── AriBadRequest           400, with Asterisk's message
    │       ├── AriNotFound             404; on a channel path this means the channel is gone
    │       ├── AriConflict             409, e.g. the channel is not in Stasis
    │       ├── AriPreconditionFailed   412
    │       └── AriServerError          5xx
    ├── RecordingError                  a recording could not be sealed, verified or opened
    │   ├── EnvelopeError               a sealed file is malformed or altered (``chunk`` says where)
    │   ├── KeyUnavailable              a key-encryption key is missing, destroyed or unreadable
    │   └── StoreError                  a sealed-recording store (directory, S3) failed or refused
    │       ├── StoreUnavailable        the store did not answer, or refused our credentials
    │       ├── StoreMissing            no object at that location
    │       └── StoreLocked             Object Lock keeps the object until ``retain_until``
    ├── AgiError
    │   ├── AgiProtocolError            malformed bytes from the AGI peer
    │   ├── AgiHangup                   the channel hung up (HANGUP line or result=-1)
    │   ├── AgiCommandError             510 / 511 / 520 replies
    │   ├── AgiArgumentError            an argument we must not send (NUL, CR/LF, too long)
    │   └── AgiTimeout                  the peer did not answer in time (also TimeoutError)
    ├── AmiError
    │   ├── AmiUnavailable              not connected to AMI (also ConnectionError)
    │   ├── AmiTimeout                  no answer to an action in time (also TimeoutError)
    │   ├── AmiActionFailed             ``Response: Error`` to an action
    │   └── AmiProtocolError            not the manager protocol
    └── DriverError                     a transport could not act on a channel (driver core)
        ├── ChannelGone                 the channel no longer exists (hung up, left the app)
        └── ChannelUnreachable          the transport failed; the channel may still be there

"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AgiArgumentError",
    "AgiCommandError",
    "AgiError",
    "AgiHangup",
    "AgiProtocolError",
    "AgiTimeout",
    "AmiActionFailed",
    "AmiError",
    "AmiProtocolError",
    "AmiTimeout",
    "AmiUnavailable",
    "AriBadRequest",
    "AriConflict",
    "AriConnectionError",
    "AriError",
    "AriHttpError",
    "AriNotFound",
    "AriPreconditionFailed",
    "AriProtocolError",
    "AriServerError",
    "AriTimeout",
    "ChainError",
    "ChannelGone",
    "ChannelUnreachable",
    "ConfigError",
    "DatabaseStartError",
    "DatabaseUnavailable",
    "DriverError",
    "EnvelopeError",
    "FlowError",
    "KeyUnavailable",
    "LedgerError",
    "MigrationError",
    "NoteError",
    "Pkcs11Error",
    "PolicyError",
    "ProofError",
    "RecorderError",
    "RecordingError",
    "SpoolError",
    "StoreError",
    "StoreLocked",
    "StoreMissing",
    "StoreUnavailable",
    "TimestampError",
    "WitnessError",
]


class RecorderError(Exception):
    """Root of every error asterisk-recorder raises on purpose."""


class ConfigError(RecorderError):
    """The configuration is invalid.

    ``problems`` holds one human-readable line per problem (each names the key, the bad
    value and what is allowed), so ``check-config`` can report them all at once.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class PolicyError(RecorderError):
    """A policy table is malformed: unknown mode, missing source, bad jurisdiction code."""


class FlowError(RecorderError):
    """A driver used the consent state machine wrongly (for example, two CallOffered)."""


class LedgerError(RecorderError):
    """Something went wrong while keeping consent decisions."""


class DatabaseUnavailable(LedgerError, ConnectionError):
    """PostgreSQL did not answer within the configured bound."""


class DatabaseStartError(LedgerError):
    """The embedded PostgreSQL could not be started or stopped."""


class MigrationError(LedgerError):
    """A schema migration failed, or an applied migration file was changed afterwards."""


class SpoolError(LedgerError):
    """The local spool file could not be written, synced or read."""


class ChainError(LedgerError):
    """The ledger's hash chain is broken; ``position`` and ``decision_id`` locate it."""

    def __init__(
        self, message: str, *, position: int | None = None, decision_id: str | None = None
    ) -> None:
        self.position = position
        self.decision_id = decision_id
        super().__init__(message)


class ProofError(ChainError):
    """A Merkle inclusion or consistency proof fails, or a tile it needs is missing or short.

    The message says which check failed (too many or too few hashes, which root is not
    reached) or names the tile (``tile L/N``).
    """


class NoteError(LedgerError):
    """A signed note or checkpoint is malformed, unsigned by a known key, or badly signed.

    Also raised for a key text that does not parse. The message says what is wrong (the line,
    the key name and id) and never contains private key material.
    """


class Pkcs11Error(LedgerError):
    """The checkpoint signing key in a PKCS#11 token cannot be opened, created or used.

    The module is missing or not a PKCS#11 library, the token or key label is absent, the PIN
    is refused, the key is not Ed25519, or a signature fails. The message names the module,
    token and key label; it never contains the PIN.
    """


class TimestampError(LedgerError):
    """An RFC 3161 timestamp could not be obtained from the TSA, or a token does not verify."""


class WitnessError(LedgerError):
    """A checkpoint witness (directory, HTTP, S3) could not take or return checkpoints.

    ``conflict`` is True when the sink already holds a *different* note for the same tree size:
    that is evidence of a fork (two histories signed at one size), never a transient failure.
    The message names the witness by its public label and never carries a secret.
    """

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        self.conflict = conflict
        super().__init__(message)


class AriError(RecorderError):
    """Something went wrong while talking to Asterisk's ARI."""


class AriConnectionError(AriError, ConnectionError):
    """ARI could not be reached (refused, reset, name resolution)."""


class AriTimeout(AriError, TimeoutError):
    """ARI did not answer within the request timeout."""


class AriProtocolError(AriError):
    """ARI sent something that is not what its API declares (bad JSON, wrong shape)."""


class AriHttpError(AriError):
    """Asterisk answered an ARI request with an error status.

    Attributes:
        status: the HTTP status code.
        method: the HTTP method of the request.
        path: the request path, relative to ``/ari``.
        message: Asterisk's ``message`` field when it sent one, else the reason phrase.
    """

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.message = message
        super().__init__(f"{method} {path} -> {status}: {message}")


class AriBadRequest(AriHttpError):
    """400: Asterisk rejected the request's parameters; ``message`` says why."""


class AriNotFound(AriHttpError):
    """404: the object is gone; for a channel path, the caller has hung up."""


class AriConflict(AriHttpError):
    """409: the channel is not in a state that allows this (e.g. not in Stasis)."""


class AriPreconditionFailed(AriHttpError):
    """412: a precondition failed (e.g. the channel is not answered or is in a bridge)."""


class AriServerError(AriHttpError):
    """5xx: Asterisk failed internally."""


class AmiError(RecorderError):
    """The Asterisk Manager Interface failed (``asterisk_recorder.ami``)."""


class AmiUnavailable(AmiError, ConnectionError):
    """Not connected (or logged in) to AMI, or the connection was lost during an action."""


class AmiTimeout(AmiError, TimeoutError):
    """Asterisk did not answer an action in time."""


class AmiActionFailed(AmiError):
    """Asterisk answered an action with ``Response: Error`` (its message is the text)."""


class AmiProtocolError(AmiError):
    """What came over the AMI socket is not the manager protocol."""


class RecordingError(RecorderError):
    """A recording could not be sealed, verified or opened (bad id, changed file, bad key)."""


class EnvelopeError(RecordingError):
    """A sealed recording is malformed or was altered.

    Attributes:
        chunk: the index of the first bad chunk (0-based), or ``None`` when the problem is in
            the header, the trailer or the file as a whole.
    """

    def __init__(self, message: str, *, chunk: int | None = None) -> None:
        self.chunk = chunk
        super().__init__(message)


class KeyUnavailable(RecordingError):
    """A key-encryption key is missing, destroyed, unreadable or not the one a file needs.

    ``kek_id`` names the key when it is known.
    """

    def __init__(self, message: str, *, kek_id: str | None = None) -> None:
        self.kek_id = kek_id
        super().__init__(message)


class StoreError(RecordingError):
    """A sealed-recording store (the local directory, an S3 bucket) failed or refused.

    ``location`` names the object when it is known (never a credential).
    """

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(message)


class StoreUnavailable(StoreError):
    """The store did not answer, answered 5xx, or refused the credentials: retry later."""


class StoreMissing(StoreError):
    """There is no object at the location."""


class StoreLocked(StoreError):
    """Object Lock (COMPLIANCE) keeps the object until ``retain_until`` (a UTC datetime).

    Nobody, not even the bucket's owner, can delete it before that date.
    """

    def __init__(self, message: str, *, location: str, retain_until: datetime) -> None:
        self.retain_until = retain_until
        super().__init__(message, location=location)


class AgiError(RecorderError):
    """Something went wrong in an AGI session."""


class AgiProtocolError(AgiError):
    """The AGI peer sent bytes that are not valid AGI (bad env line, bad reply)."""


class AgiHangup(AgiError):
    """The channel hung up during the AGI session."""


class AgiCommandError(AgiError):
    """Asterisk rejected an AGI command (510 invalid, 511 dead channel, 520 usage).

    Attributes:
        code: 510, 511 or 520.
        text: Asterisk's text, usage lines joined with newlines for 520.
    """

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"AGI {code}: {text}")


class AgiArgumentError(AgiError, ValueError):
    """An AGI command argument cannot be sent safely (NUL, CR/LF, too long); nothing was sent."""


class AgiTimeout(AgiError, TimeoutError):
    """The AGI peer did not answer within the read timeout."""


class DriverError(RecorderError):
    """A transport (ARI, AGI) could not carry out an action on one channel.

    Ports raise these ``from`` the transport's own error; the driver core turns them into flow
    events, so one call's transport trouble never escapes that call.
    """


class ChannelGone(DriverError):
    """The channel no longer exists: it hung up, or left the application (ARI 404, AGI 511)."""


class ChannelUnreachable(DriverError):
    """The transport failed (timeout, refused, garbage, a 5xx): the channel may still be there.

    ``retryable`` says whether trying again can help (ARI: yes; a broken AGI connection: no).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
