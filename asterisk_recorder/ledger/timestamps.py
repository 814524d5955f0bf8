"""RFC 3161 timestamps on checkpoints: a third party's signed time for each checkpoint note.

This module owns asking a time-stamping authority (TSA) the operator names for a token over a
checkpoint note (``request_token``: SHA-256 of the note's bytes, a nonce, the TSA's
certificate requested), checking a token against the note and the TSA root(s) the operator
trusts (``verify_token``), reading the TSA roots from a PEM file (``load_tsa_roots``) and the
``ledger_checkpoint_timestamps`` rows (``store_timestamp``, ``stored_timestamps``). A token is
kept as the DER ``TimeStampResp`` the TSA returned (status and ``TimeStampToken``), which is
what ``rfc3161-client`` (the ``tsa`` extra) verifies. It must not sign checkpoints nor decide
when to ask (``checkpoints`` does).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from cryptography import x509

from asterisk_recorder.errors import TimestampError

if TYPE_CHECKING:
    from rfc3161_client import TimeStampResponse

__all__ = [
    "MAX_TOKEN_BYTES",
    "StoredTimestamp",
    "load_tsa_roots",
    "request_token",
    "store_timestamp",
    "stored_timestamps",
    "token_gen_time",
    "tsa_name",
    "verify_token",
]

MAX_TOKEN_BYTES = 65536
"""A TSA's answer is a few kilobytes; anything larger is refused."""

_STORE = """
INSERT INTO ledger_checkpoint_timestamps (tree_size, tsa, token, gen_time)
VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size, tsa) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class StoredTimestamp:
    """One stored token: the checkpoint it stamps, the TSA's name, the token and its time."""

    size: int
    tsa: str
    token: bytes
    gen_time: dt.datetime


def _client() -> object:
    try:
        import rfc3161_client
    except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
        raise TimestampError(
            "RFC 3161 timestamps need the rfc3161-client package: install "
            "asterisk-recorder[tsa]"
        ) from exc
    return rfc3161_client


def tsa_name(url: str) -> str:
    """The name a TSA's tokens are stored under: its URL's host (and port, when given)."""
    parts = urlsplit(url)
    return parts.netloc or url


def _decode(token: bytes) -> TimeStampResponse:
    _client()
    from rfc3161_client import PKIStatus, decode_timestamp_response

    if not token or len(token) > MAX_TOKEN_BYTES:
        raise TimestampError(f"a timestamp token must be 1 to {MAX_TOKEN_BYTES} bytes")
    try:
        response = decode_timestamp_response(token)
    except ValueError as exc:
        raise TimestampError(f"not an RFC 3161 timestamp response: {exc}") from exc
    if PKIStatus(response.status) not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        detail = "; ".join(response.status_string) or "no reason given"
        raise TimestampError(f"the TSA refused the timestamp (status {response.status}: {detail})")
    return response


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def token_gen_time(token: bytes) -> dt.datetime:
    """The time a token says the TSA signed it (not checked: see ``verify_token``).

    Raises:
        TimestampError: not a granted RFC 3161 timestamp response.
    """
    return _aware(_decode(token).tst_info.gen_time)


async def request_token(note: str, url: str, *, timeout: float = 10.0) -> bytes:  # noqa: ASYNC109
    """Ask the TSA at ``url`` for a token over ``note``; returns the DER response.

    Raises:
        TimestampError: the TSA is unreachable, answered with an HTTP error or a refusal, or
            its token is not over this note or does not carry this request's nonce.
    """
    _client()
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    data = note.encode("utf-8")
    request = (
        TimestampRequestBuilder()
        .data(data)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    name = tsa_name(url)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(
                url,
                data=request.as_bytes(),
                headers={"Content-Type": "application/timestamp-query"},
            ) as reply,
        ):
            if reply.status != 200:
                raise TimestampError(f"the TSA {name} answered HTTP {reply.status}")
            token = await reply.content.read(MAX_TOKEN_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise TimestampError(
            f"the TSA {name} could not be reached: {type(exc).__name__}: {exc}"
        ) from exc
    response = _decode(token)
    info = response.tst_info
    if info.message_imprint.message != hashlib.sha256(data).digest():
        raise TimestampError(f"the TSA {name} stamped another message than this checkpoint")
    if info.nonce != request.nonce:
        raise TimestampError(f"the TSA {name} answered with another request's nonce")
    return token


def load_tsa_roots(path: str) -> list[x509.Certificate]:
    """The certificates in the PEM file ``path`` (the TSA roots ``verify_token`` trusts).

    Raises:
        TimestampError: unreadable, not PEM, or holds no certificate.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TimestampError(f"cannot read the TSA certificate file {path}: {exc}") from exc
    try:
        roots = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TimestampError(f"{path} holds no PEM certificate: {exc}") from exc
    return roots


def verify_token(token: bytes, note: str, roots: list[x509.Certificate]) -> dt.datetime:
    """Check ``token`` is a TSA's signature over ``note``, chained to one of ``roots``.

    Returns the time the TSA vouches for (``genTime``).

    Raises:
        TimestampError: malformed, refused, signed by a TSA not chained to ``roots``, not a
            time-stamping certificate, or over another note (the message says which).
    """
    if not roots:
        raise TimestampError("no TSA root certificate to check the timestamp against")
    response = _decode(token)
    from rfc3161_client import VerificationError, VerifierBuilder

    builder = VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify(response, hashlib.sha256(note.encode("utf-8")).digest())
    except VerificationError as exc:
        reason = str(exc)
        if reason == "Mismatch between messages":
            reason = "the token is over another note (the checkpoint was changed or swapped)"
        raise TimestampError(f"the timestamp does not verify: {reason}") from exc
    except ValueError as exc:
        raise TimestampError(f"the timestamp does not verify: {exc}") from exc
    return _aware(response.tst_info.gen_time)


async def store_timestamp(conn: asyncpg.Connection, size: int, tsa: str, token: bytes) -> None:
    """Keep ``token`` for checkpoint ``size`` (a second token from the same TSA is ignored)."""
    await conn.execute(_STORE, size, tsa, token, token_gen_time(token))


async def stored_timestamps(conn: asyncpg.Connection) -> list[StoredTimestamp]:
    """Every stored token, by checkpoint size then TSA."""
    rows = await conn.fetch(
        "SELECT tree_size, tsa, token, gen_time FROM ledger_checkpoint_timestamps ORDER BY 1, 2"
    )
    return [
        StoredTimestamp(int(r["tree_size"]), r["tsa"], bytes(r["token"]), r["gen_time"])
        for r in rows
    ]
