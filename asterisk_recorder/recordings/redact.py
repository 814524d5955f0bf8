"""Redaction: a new sealed version of a recording with a span replaced by silence, the old gone.

This module owns ``redact_recording`` (``recording redact ID --from T1 --to T2 --reason``) and
``silence_span`` (the pure edit of a WAV in memory). In this order, each step a ledger fact:

1. refuse a recording that is disposed of, held (a legal hold keeps the original as it is) or
   unknown; refuse a span outside the audio;
2. open it as an accountable act (``recording.accessed`` before the first byte) into memory:
   the plaintext never touches a disk;
3. zero the samples of the span, seal the result to the same key-encryption key (same bucket,
   same retention) as ``<name>.r<N>.arrec`` beside the original (temporary name, fsync, rename);
   with an object store, upload it and write ``recording.stored``;
4. ``recording.redacted`` (who, why, the span, both digests), then ``recording.sealed`` for the
   new version (``redacted_from``: the old sealed digest): from here every reader finds the new
   version;
5. dispose of the old version (``recording.disposing``, delete every copy the product holds,
   ``recording.disposed`` with reason ``redaction``).

A crash between 4 and 5 leaves the old version present and named by ``recording.redacted``;
the next redaction of that recording (or ``finish_redactions``) disposes of it first. It must
not write SQL (facts go through the caller's ``FactWriter``) or keep plaintext anywhere but in
memory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import asyncpg

from asterisk_recorder.errors import RecordingError
from asterisk_recorder.flow.facts import RECORDING_DISPOSED, RECORDING_DISPOSING, LedgerFact
from asterisk_recorder.recordings import files
from asterisk_recorder.recordings.access import Access, access_fact, open_recording
from asterisk_recorder.recordings.disposal import delete_sealed
from asterisk_recorder.recordings.envelope import seal
from asterisk_recorder.recordings.keys import KekOpener, KekPublicKey
from asterisk_recorder.recordings.ledgered import sealed_fact
from asterisk_recorder.recordings.retention import (
    active_holds,
    held_by,
    load_inventory,
    sealed_location,
)
from asterisk_recorder.recordings.storage import Stores

__all__ = ["Redaction", "finish_redactions", "redact_recording", "silence_span"]

_SEALED_KEEP = ("retention_class", "retention_period", "retention_rule", "retain_until",
                "pauses", "pause_spans")


@dataclass(frozen=True, slots=True)
class Redaction:
    """What a redaction did."""

    decision_id: str
    old_file: str
    new_file: str
    old_sealed_sha256: str
    new_sealed_sha256: str
    samples: int
    version: int


def silence_span(wav: bytes, from_s: float, to_s: float) -> tuple[bytes, int]:
    """``wav`` with the samples of ``[from_s, to_s)`` set to exact zero; and how many.

    Raises:
        RecordingError: not a PCM WAV, or the span is empty or outside the audio.
    """
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise RecordingError("only WAV recordings can be redacted")
    offset, rate, channels, bits, data_at, data_len = 12, 0, 0, 0, None, 0
    while offset + 8 <= len(wav):
        chunk, size = wav[offset:offset + 4], struct.unpack_from("<I", wav, offset + 4)[0]
        if chunk == b"fmt " and offset + 24 <= len(wav):
            _f, channels, rate, _b, _a, bits = struct.unpack_from("<HHIIHH", wav, offset + 8)
        elif chunk == b"data":
            data_at, data_len = offset + 8, min(size, len(wav) - offset - 8)
            break
        offset += 8 + size + (size & 1)
    if data_at is None or not rate or bits not in (8, 16) or not channels:
        raise RecordingError("the WAV has no PCM data chunk")
    frame = channels * bits // 8
    frames = data_len // frame
    duration = frames / rate
    if not (0 <= from_s < to_s):
        raise RecordingError(f"--from {from_s:g} must be at least 0 and before --to {to_s:g}")
    if from_s >= duration:
        raise RecordingError(f"--from {from_s:g} s is past the end of the audio "
                             f"({duration:.3f} s)")
    first, last = int(from_s * rate), min(frames, int(-(-to_s * rate // 1)))
    start, end = data_at + first * frame, data_at + last * frame
    silent = b"\x80" if bits == 8 else b"\x00"
    out = bytearray(wav)
    out[start:end] = silent * (end - start)
    return bytes(out), last - first


async def redact_recording(
    conn: asyncpg.Connection,
    *,
    decision_id: str,
    from_s: float,
    to_s: float,
    reason: str,
    who: str,
    opener: KekOpener,
    public_key: Callable[[str], KekPublicKey],
    sealed_dir: Path,
    stores: Stores,
    record: Callable[[LedgerFact], Awaitable[object]],
    clock: Callable[[], float] = time.time,
) -> Redaction:
    """Redact ``[from_s, to_s)`` of ``decision_id``'s recording (see the module docstring).

    Raises:
        RecordingError: refused (disposed, held, unknown, a bad span), or a step failed.
    """
    if not reason.strip():
        raise RecordingError("--reason must say why the span is redacted")
    await finish_redactions(conn, decision_id=decision_id, sealed_dir=sealed_dir,
                            stores=stores, record=record, who=who, clock=clock)
    inventory = await load_inventory(conn, sealed_dir, {}, decision_ids=[decision_id])
    current = [r for r in inventory.recordings if r.decision_id == decision_id]
    if not current or current[0].state == "disposed":
        raise RecordingError(f"recording {decision_id} is not present (never sealed, or "
                             "disposed of): nothing to redact")
    holds = held_by(await active_holds(conn)).get(decision_id)
    if holds:
        raise RecordingError(f"recording {decision_id} is under legal hold ({', '.join(holds)}):"
                             " a held recording is kept as it is; release the hold first")
    fact = await sealed_fact(conn, decision_id)
    location = current[0].location
    old_payload = await _sealed_payload(conn, fact.fact_id)
    plain = io.BytesIO()

    async def record_access(access: Access) -> None:
        await record(access_fact(access))

    store = stores.for_location(location)

    def source() -> Any:  # a local location is an absolute path below sealed_dir
        return store.open(location) if "://" in location else open(location, "rb")

    await open_recording(source, opener, plain, who=who,
                         why=f"redaction: {reason}", record_access=record_access,
                         expected=fact.info, decision_id=decision_id, clock=clock)
    redacted, samples = silence_span(plain.getvalue(), from_s, to_s)
    plain = io.BytesIO()  # drop the unredacted copy as early as possible
    version = _version(fact.file) + 1
    new_file = _versioned(fact.file, version)
    kek = public_key(fact.info.kek_id)
    target = sealed_dir / new_file
    info = _seal_to(target, redacted, decision_id, kek)
    now = clock()
    await record(LedgerFact("recording.redacted", decision_id, now, who, {
        "from_s": float(from_s), "to_s": float(to_s), "reason": reason.strip(),
        "old_file": fact.file, "old_sealed_sha256": fact.info.sealed_sha256,
        "new_file": new_file, "new_sealed_sha256": info.sealed_sha256,
        "new_plain_sha256": info.plain_sha256, "kek_id": info.kek_id, "version": version,
    }, fact_id=_id("redacted", decision_id, info.sealed_sha256)))
    sealed: dict[str, Any] = {key: value for key, value in dict(info.payload()).items()
                              if key in ("recording_id", "plain_sha256", "sealed_sha256",
                                         "kek_id", "plain_bytes", "sealed_bytes", "chunk_size",
                                         "chunks", "chunk_root")}
    sealed.update({k: old_payload[k] for k in _SEALED_KEEP if old_payload.get(k) is not None})
    sealed.update({"file": new_file, "redacted_from": fact.info.sealed_sha256})
    await record(LedgerFact("recording.sealed", decision_id, clock(), who, sealed,
                            fact_id=_id("sealed", decision_id, info.sealed_sha256)))
    if store is not stores.local:  # the old one lives in the object store: so does the new
        relative = PurePosixPath(new_file).as_posix()
        stored = store.put(target, relative)
        await record(LedgerFact("recording.stored", decision_id, clock(), who, {
            "location": stored.location, "sealed_sha256": info.sealed_sha256,
            "sealed_bytes": int(info.sealed_bytes),
            "object_sha256": stored.sha256 or info.sealed_sha256,
            "recording_id": decision_id, "file": new_file,
        }, fact_id=_id("stored", decision_id, info.sealed_sha256)))
        files.durable_unlink(target)
    await _dispose_old(record, decision_id, fact.file, location, fact.info.sealed_sha256,
                       fact.info.kek_id, str(old_payload.get("retention_class") or ""), who,
                       stores, clock)
    return Redaction(decision_id, fact.file, new_file, fact.info.sealed_sha256,
                     info.sealed_sha256, samples, version)


_UNFINISHED = """
SELECT r.payload FROM ledger_facts r
WHERE r.kind = 'recording.redacted' AND r.decision_id = $1::uuid
AND NOT EXISTS (
    SELECT 1 FROM ledger_facts d WHERE d.kind = 'recording.disposed'
    AND d.decision_id = r.decision_id
    AND d.payload::jsonb ->> 'sealed_sha256' = r.payload::jsonb ->> 'old_sealed_sha256')
ORDER BY r.seq
"""
_STORED_AT = """
SELECT payload::jsonb ->> 'location' FROM ledger_facts
WHERE kind = 'recording.stored' AND decision_id = $1::uuid
AND payload::jsonb ->> 'sealed_sha256' = $2 ORDER BY seq DESC LIMIT 1
"""


async def finish_redactions(
    conn: asyncpg.Connection,
    *,
    decision_id: str,
    sealed_dir: Path,
    stores: Stores,
    record: Callable[[LedgerFact], Awaitable[object]],
    who: str,
    clock: Callable[[], float] = time.time,
) -> list[str]:
    """Dispose of every old version that a ``recording.redacted`` fact of ``decision_id``
    replaced and no ``recording.disposed`` fact covers yet (a redaction interrupted between
    its steps 4 and 5); return their sealed digests."""
    done: list[str] = []
    for row in await conn.fetch(_UNFINISHED, decision_id):
        payload = json.loads(row["payload"])
        old_sha, old_file = str(payload["old_sealed_sha256"]), str(payload["old_file"])
        location = await conn.fetchval(_STORED_AT, decision_id, old_sha) \
            or sealed_location(sealed_dir, old_file)
        await _dispose_old(record, decision_id, old_file, location, old_sha,
                           str(payload.get("kek_id", "")), "", who, stores, clock)
        done.append(old_sha)
    return done


async def _dispose_old(record: Callable[[LedgerFact], Awaitable[object]], decision_id: str,
                       file: str, location: str, sealed_sha256: str, kek_id: str,
                       retention_class: str, who: str, stores: Stores,
                       clock: Callable[[], float]) -> None:
    run_id = str(uuid.uuid4())
    base: dict[str, Any] = {"file": file, "location": location, "sealed_sha256": sealed_sha256,
                            "kek_id": kek_id, "reason": "redaction", "run_id": run_id}
    if retention_class:
        base["retention_class"] = retention_class
    await record(LedgerFact(RECORDING_DISPOSING, decision_id, clock(), who, base))
    outcome = delete_sealed(location, stores)
    await record(LedgerFact(RECORDING_DISPOSED, decision_id, clock(), who,
                            {**base, "outcome": outcome}))


def _seal_to(target: Path, plain: bytes, recording_id: str, kek: KekPublicKey) -> Any:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    temp = target.with_name(f".{target.name}.tmp")
    if target.exists():
        raise RecordingError(f"{target} exists already; refusing to overwrite it")
    try:
        with files.create_output(temp) as dst:
            info = seal(io.BytesIO(plain), dst, recording_id=recording_id, kek=kek)
            dst.flush()
            os.fsync(dst.fileno())
        os.rename(temp, target)
        files.fsync_dir(target.parent)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    return info


def _version(file: str) -> int:
    name = PurePosixPath(file).name
    parts = name.split(".")
    if len(parts) >= 3 and parts[-2].startswith("r") and parts[-2][1:].isdigit():
        return int(parts[-2][1:])
    return 0


def _versioned(file: str, version: int) -> str:
    path = PurePosixPath(file)
    stem = path.name.split(".", 1)[0]
    return str(path.with_name(f"{stem}.r{version}.arrec"))


def _id(kind: str, decision_id: str, digest: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"asterisk-recorder:{kind}:{decision_id}:{digest}"))


async def _sealed_payload(conn: asyncpg.Connection, fact_id: str) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT payload FROM ledger_facts WHERE fact_id = $1::uuid",
                              fact_id)
    payload = json.loads(row["payload"]) if row is not None else {}
    return payload if isinstance(payload, dict) else {}

