"""Opening a sealed recording as an accountable act, and the ledger facts about keys.

This module owns ``open_recording``: verify the whole file (every tag, the plaintext digest),
then have the caller record who opens it, why and when (``recording.accessed``), and only then
write the first plaintext byte. It also builds the ``recording.accessed``,
``recording.key_created`` and ``recording.key_destroyed`` facts. It must not open a database
itself: the caller's ``record_access`` writes the fact (the CLI hands in ``Ledger.record_fact``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from asterisk_recorder.errors import RecordingError
from asterisk_recorder.flow.facts import (
    MAX_TEXT_CHARS,
    RECORDING_KEY_CREATED,
    RECORDING_KEY_DESTROYED,
    RECORDING_KEY_RECOVERED,
    LedgerFact,
)
from asterisk_recorder.recordings.envelope import (
    SealInfo,
    VerifyResult,
    open_stream,
    verify,
)
from asterisk_recorder.recordings.keys import KekInfo, KekOpener

__all__ = [
    "RECORDING_ACCESSED",
    "Access",
    "access_fact",
    "key_fact",
    "open_recording",
]

RECORDING_ACCESSED = "recording.accessed"


@dataclass(frozen=True, slots=True)
class Access:
    """One opening of a recording, recorded before its first byte is released.

    Attributes:
        recording_id, sealed_sha256, kek_id: which recording (as verified).
        who: the person or process opening it (e.g. ``cli:alice@host``).
        why: the reason they gave (required, not empty).
        at: epoch seconds.
        decision_id: the decision the recording belongs to, when the caller knows it.
    """

    recording_id: str
    sealed_sha256: str
    kek_id: str
    who: str
    why: str
    at: float
    decision_id: str | None = None


def access_fact(access: Access) -> LedgerFact:
    """The ``recording.accessed`` fact for ``access``."""
    return LedgerFact(
        kind=RECORDING_ACCESSED,
        decision_id=access.decision_id,
        at=access.at,
        actor=access.who,
        payload={
            "recording_id": access.recording_id,
            "sealed_sha256": access.sealed_sha256,
            "kek_id": access.kek_id,
            "reason": access.why[:MAX_TEXT_CHARS],
        },
    )


def key_fact(
    info: KekInfo, *, actor: str, at: float, reason: str | None = None,
    escrow: str | None = None, recovered_by: str | None = None,
) -> LedgerFact:
    """``recording.key_created`` (no ``reason``; ``escrow``: ``M-of-N`` and custodians),
    ``recording.key_destroyed`` (with a ``reason``) or ``recording.key_recovered``
    (``recovered_by``: the custodians' fingerprints)."""
    payload: dict[str, str | None] = {
        "kek_id": info.kek_id,
        "retention_class": info.retention_class,
        "month": info.month,
        "fingerprint": info.fingerprint,
        "custody": info.custody,
    }
    kind = RECORDING_KEY_CREATED
    if reason is not None:
        kind = RECORDING_KEY_DESTROYED
        payload["reason"] = reason[:MAX_TEXT_CHARS]
    elif recovered_by is not None:
        kind = RECORDING_KEY_RECOVERED
        payload["custodians"] = recovered_by[:MAX_TEXT_CHARS]
    elif escrow is not None:
        payload["escrow"] = escrow[:MAX_TEXT_CHARS]
    return LedgerFact(kind=kind, decision_id=None, at=at, actor=actor, payload=payload)


async def open_recording(
    path: Path | Callable[[], contextlib.AbstractContextManager[BinaryIO]],
    opener: KekOpener,
    out: BinaryIO,
    *,
    who: str,
    why: str,
    record_access: Callable[[Access], Awaitable[object]],
    expected: SealInfo | None = None,
    decision_id: str | None = None,
    clock: Callable[[], float] = time.time,
) -> VerifyResult:
    """Verify ``path``, record the access, then write the plaintext to ``out``.

    ``path`` is a sealed file, or a callable opening one (``SealedStore.open`` of a location,
    e.g. an object in S3, read with ranged GETs).

    Nothing reaches ``out`` unless the file verified completely and ``record_access``
    returned: a verify failure or a ledger failure leaves ``out`` untouched.

    Raises:
        RecordingError: an empty ``why`` or ``who``; EnvelopeError / KeyUnavailable as
            ``verify``; whatever ``record_access`` raises (the ledger could not keep it).
    """
    if not why.strip():
        raise RecordingError("opening a recording needs a reason (who asked, which case)")
    if not who.strip():
        raise RecordingError("opening a recording needs the name of who opens it")
    source = open(path, "rb") if isinstance(path, Path) else path()  # noqa: ASYNC230, SIM115
    with source as src:  # every read below runs in a thread
        result = await asyncio.to_thread(verify, src, expected=expected, opener=opener)
        await record_access(
            Access(
                recording_id=result.recording_id,
                sealed_sha256=result.sealed_sha256,
                kek_id=result.kek_id,
                who=who,
                why=why,
                at=clock(),
                decision_id=decision_id,
            )
        )

        def copy() -> None:
            # open_stream verifies again before its first chunk: a file swapped after the
            # first pass is refused, not released.
            for piece in open_stream(src, opener, expected=result.seal_info()):
                out.write(piece)
            out.flush()

        await asyncio.to_thread(copy)
    return result
