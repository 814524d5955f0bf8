"""The local spool: decisions and facts fsynced to disk while PostgreSQL does not answer.

This module owns the spool files in the spool directory. ``decisions.jsonl`` receives appends
(one JSON line per entry: ``{"v":1,"sha256":<hex of the canonical "d" text>,"d":{...}}`` for a
decision, the same with ``"f"`` for a fact, written with one ``write`` and ``fsync``ed before
the caller is acknowledged; decisions and facts share the file, so replay keeps their order).
To replay, the file is renamed to ``decisions.<ns>.replay.jsonl`` under an ``flock``; lines
that do not parse or whose checksum does not match (a crash mid-write) are moved to
``quarantine.jsonl`` with the reason, never dropped. Every create, rename, replace and removal
in the directory is followed by an ``fsync`` of the directory itself, so a crash cannot undo it.
The directory is created 0700 and every file 0600 whatever the umask (``ledger.private``).
Blocking file I/O: call it from a thread. It must not talk to PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asterisk_recorder.errors import LedgerError, SpoolError
from asterisk_recorder.flow.decision import (
    ConsentDecision,
    KeyEffect,
    KeyPhase,
    KeyPress,
    Outcome,
    PartyRecord,
)
from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.ledger.private import ensure_private_dir, open_private, shared_mode
from asterisk_recorder.policy.modes import Mode

__all__ = [
    "QUARANTINE_NAME",
    "SPOOL_NAME",
    "Spool",
    "SpoolBatch",
    "SpoolEntry",
    "SpoolStatus",
    "decision_from_dict",
    "decision_to_dict",
    "fact_from_dict",
    "fact_to_dict",
]

SpoolEntry = ConsentDecision | LedgerFact
"""What the spool keeps: decisions and facts, in one order."""

SPOOL_NAME = "decisions.jsonl"
"""The file appends go to."""
QUARANTINE_NAME = "quarantine.jsonl"
"""Where torn or garbled lines are kept (with the reason) for an operator to inspect."""
_REPLAY_GLOB = "decisions.*.replay.jsonl"


def _key_to_dict(key: KeyPress) -> dict[str, Any]:
    """A key as spooled; the timing members only when known (older lines have none)."""
    out: dict[str, Any] = {"digit": key.digit, "at": key.at}
    if key.prompt_started_at is not None:
        out["prompt_started_at"] = key.prompt_started_at
    if key.phase is not None:
        out["phase"] = key.phase.value
    if key.effect is not None:
        out["effect"] = key.effect.value
    return out


def _key_from_dict(data: dict[str, Any]) -> KeyPress:
    """Rebuild a spooled key, with or without the timing members."""
    started = data.get("prompt_started_at")
    phase = data.get("phase")
    effect = data.get("effect")
    return KeyPress(
        data["digit"],
        float(data["at"]),
        None if started is None else float(started),
        None if phase is None else KeyPhase(phase),
        None if effect is None else KeyEffect(effect),
    )


def _party_to_dict(p: PartyRecord) -> dict[str, Any]:
    return {
        "party": p.party, "number": p.number, "jurisdiction": p.jurisdiction,
        "row_id": p.row_id, "mode": p.mode.value,
    }


def _party_from_dict(p: dict[str, Any]) -> PartyRecord:
    return PartyRecord(p["party"], p["number"], p["jurisdiction"], p["row_id"], Mode(p["mode"]))


_ENCODE: dict[str, Callable[[Any], Any]] = {
    "parties": lambda parties: [_party_to_dict(p) for p in parties],
    "keys": lambda keys: [_key_to_dict(k) for k in keys],
    "mode": lambda mode: mode.value,
    "outcome": lambda outcome: outcome.value,
    "policy_rows": list,
}
_DECODE: dict[str, Callable[[Any], Any]] = {
    "decision_id": str,
    "parties": lambda parties: tuple(_party_from_dict(p) for p in parties),
    "keys": lambda keys: tuple(_key_from_dict(k) for k in keys),
    "mode": Mode,
    "outcome": Outcome,
    "policy_rows": tuple,
}
_DECISION_FIELDS = tuple(f.name for f in dataclasses.fields(ConsentDecision))
"""The decision's fields, read from its dataclass: the spool never spells them out."""


def decision_to_dict(decision: ConsentDecision) -> dict[str, Any]:
    """A JSON-ready dict of every field of ``decision`` (lone surrogates survive as escapes)."""
    out: dict[str, Any] = {}
    for name in _DECISION_FIELDS:
        value = getattr(decision, name)
        encode = _ENCODE.get(name)
        out[name] = encode(value) if encode is not None else value
    return out


def decision_from_dict(data: dict[str, Any]) -> ConsentDecision:
    """Rebuild a ``ConsentDecision`` from ``decision_to_dict`` output.

    Raises:
        KeyError, TypeError, ValueError: the dict is not a decision.
    """
    values: dict[str, Any] = {}
    for name in _DECISION_FIELDS:
        value = data[name]
        decode = _DECODE.get(name)
        if decode is not None:
            value = decode(value)
        elif name.endswith("_at") and value is not None:
            value = float(value)  # times: epoch seconds, exact as written
        values[name] = value
    return ConsentDecision(**values)


def fact_to_dict(fact: LedgerFact) -> dict[str, Any]:
    """A JSON-ready dict of every field of ``fact`` (lone surrogates survive as escapes)."""
    return {
        "fact_id": fact.fact_id,
        "kind": fact.kind,
        "decision_id": fact.decision_id,
        "at": fact.at,
        "actor": fact.actor,
        "payload": dict(fact.payload),
    }


def fact_from_dict(data: dict[str, Any]) -> LedgerFact:
    """Rebuild a ``LedgerFact`` from ``fact_to_dict`` output.

    Raises:
        KeyError, TypeError, ValueError: the dict is not a fact.
        LedgerError: it is a fact this release refuses (e.g. an unknown kind).
    """
    return LedgerFact(
        kind=data["kind"],
        decision_id=data["decision_id"],
        at=float(data["at"]),
        actor=data["actor"],
        payload=data["payload"],
        fact_id=data["fact_id"],
    )


def _encode_line(entry: SpoolEntry, spooled_at: float) -> bytes:
    if isinstance(entry, LedgerFact):
        member, data = "f", fact_to_dict(entry)
    else:
        member, data = "d", decision_to_dict(entry)
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(payload.encode("ascii")).hexdigest()
    # the entry is written verbatim as the last member so the checksum covers exactly its text.
    return (
        f'{{"v":1,"spooled_at":{spooled_at!r},"sha256":"{digest}","{member}":{payload}}}\n'
    ).encode("ascii")


def _decode_line(line: bytes) -> tuple[SpoolEntry, float]:
    """Parse one spool line; raise ``ValueError`` with the reason when it is torn or garbled."""
    if not line.endswith(b"\n"):
        raise ValueError("torn line (no newline: the writer stopped mid-line)")
    try:
        text = line.decode("ascii").rstrip("\n")
        marker = text.find(',"d":')
        member = "d"
        if marker < 0:
            marker, member = text.index(',"f":'), "f"
        payload = text[marker + 5 : -1]
        outer = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a spool record: {exc}") from exc
    if not isinstance(outer, dict) or outer.get("v") != 1:
        raise ValueError("unknown spool record version")
    if hashlib.sha256(payload.encode("ascii")).hexdigest() != outer.get("sha256"):
        raise ValueError("checksum mismatch")
    spooled_at = float(outer.get("spooled_at", 0.0))
    try:
        if member == "f":
            return fact_from_dict(outer["f"]), spooled_at
        return decision_from_dict(outer["d"]), spooled_at
    except (KeyError, TypeError, ValueError, LedgerError) as exc:
        what = "fact" if member == "f" else "decision"
        raise ValueError(f"not a {what}: {exc!r}") from exc


def _fsync_directory(directory: Path) -> None:
    """fsync ``directory`` so the entries created, renamed or removed in it are durable."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """The entries read from one replay file, in spool order, and what was quarantined."""

    path: Path
    entries: list[SpoolEntry]
    quarantined: int

    @property
    def decisions(self) -> list[ConsentDecision]:
        """The decisions among ``entries``, in spool order."""
        return [e for e in self.entries if isinstance(e, ConsentDecision)]

    @property
    def facts(self) -> list[LedgerFact]:
        """The facts among ``entries``, in spool order."""
        return [e for e in self.entries if isinstance(e, LedgerFact)]


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """What is waiting in the spool (``ledger spool-status``)."""

    directory: str
    pending: int
    bytes: int
    oldest_spooled_at: float | None
    files: list[str]
    quarantined: int
    quarantine_file: str | None


class Spool:
    """The spool directory of one ledger (see the module docstring for the file layout)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / SPOOL_NAME
        self.quarantine_path = self.directory / QUARANTINE_NAME

    def _ensure_dir(self) -> None:
        if ensure_private_dir(self.directory):
            _fsync_directory(self.directory.parent)  # the new directory's own entry

    def shared_mode(self) -> int | None:
        """The spool directory's mode when other users may enter or read it, else ``None``."""
        return shared_mode(self.directory)

    @contextmanager
    def _locked_append_fd(self) -> Iterator[int]:
        """An fd of ``decisions.jsonl`` locked exclusively, reopened if a replay renamed it."""
        self._ensure_dir()
        while True:
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield fd
                    return
            finally:
                os.close(fd)

    def append(self, decisions: list[SpoolEntry]) -> None:
        """Append ``decisions`` (and facts) in order and fsync; return once they are on disk.

        Raises:
            SpoolError: the spool could not be written or synced.
        """
        now = time.time()
        data = b"".join(_encode_line(d, now) for d in decisions)
        try:
            with self._locked_append_fd() as fd:
                fresh = os.fstat(fd).st_size == 0
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
                if fresh:  # a new file: make its directory entry durable too
                    self._fsync_dir()
        except OSError as exc:
            raise SpoolError(f"cannot write the ledger spool {self.path}: {exc}") from exc

    def take(self) -> list[Path]:
        """Rename pending appends to a replay file; return every replay file, oldest first."""
        try:
            if self.path.exists() and self.path.stat().st_size > 0:
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    if os.fstat(fd).st_size > 0:
                        target = self.directory / f"decisions.{time.time_ns():020d}.replay.jsonl"
                        os.rename(self.path, target)
                        self._fsync_dir()  # the rename must survive a crash
                finally:
                    os.close(fd)
            return sorted(self.directory.glob(_REPLAY_GLOB)) if self.directory.is_dir() else []
        except OSError as exc:
            raise SpoolError(f"cannot take the ledger spool {self.path}: {exc}") from exc

    def read(self, path: Path) -> SpoolBatch:
        """Read one replay file; torn or garbled lines go to the quarantine file.

        Raises:
            SpoolError: the file or the quarantine could not be read or written.
        """
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SpoolError(f"cannot read the ledger spool {path}: {exc}") from exc
        entries: list[SpoolEntry] = []
        good: list[bytes] = []
        bad: list[bytes] = []
        for number, line in enumerate(data.splitlines(keepends=True), start=1):
            try:
                entry, _ = _decode_line(line)
            except ValueError as exc:
                record = {
                    "file": path.name,
                    "line": number,
                    "reason": str(exc),
                    "quarantined_at": time.time(),
                    "raw": line.decode("utf-8", "backslashreplace"),
                }
                bad.append((json.dumps(record, ensure_ascii=True) + "\n").encode("ascii"))
                continue
            entries.append(entry)
            good.append(line)
        if bad:
            try:
                self._write_quarantine(bad)
                # The replay file now holds only lines that parsed: a retry must not
                # quarantine the same torn lines twice.
                tmp = path.with_suffix(".tmp")
                fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
                try:
                    kept = memoryview(b"".join(good))
                    while kept:
                        kept = kept[os.write(fd, kept) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
                self._fsync_dir()  # the new quarantine file and the replaced replay file
            except OSError as exc:
                raise SpoolError(f"cannot write the spool quarantine: {exc}") from exc
        return SpoolBatch(path, entries, len(bad))

    def _fsync_dir(self) -> None:
        _fsync_directory(self.directory)

    def _write_quarantine(self, lines: list[bytes]) -> None:
        self._ensure_dir()
        fd = open_private(self.quarantine_path, os.O_WRONLY | os.O_APPEND)
        try:
            fresh = os.fstat(fd).st_size == 0
            data = memoryview(b"".join(lines))
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
            if fresh:  # a new file: make its directory entry durable too
                self._fsync_dir()
        finally:
            os.close(fd)

    def quarantine(self, decisions: list[SpoolEntry], reason: str) -> None:
        """Keep decisions (or facts) PostgreSQL refuses in the quarantine file.

        Raises:
            SpoolError: the quarantine could not be written.
        """
        now = time.time()
        lines = [
            (
                json.dumps(
                    {
                        "file": None,
                        "line": None,
                        "reason": reason,
                        "quarantined_at": now,
                        "raw": _encode_line(d, now).decode("ascii"),
                    },
                    ensure_ascii=True,
                )
                + "\n"
            ).encode("ascii")
            for d in decisions
        ]
        try:
            self._write_quarantine(lines)
        except OSError as exc:
            raise SpoolError(f"cannot write the spool quarantine: {exc}") from exc

    def claim(self, path: Path) -> int | None:
        """Lock a replay file for this process; ``None`` if another process holds it or it is gone.

        Pass the returned descriptor to ``release``.
        """
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SpoolError(f"cannot open the ledger spool {path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if not path.exists():  # replayed and removed by the previous holder
            os.close(fd)
            return None
        return fd

    def release(self, fd: int) -> None:
        """Unlock a file taken with ``claim``."""
        os.close(fd)

    def done(self, path: Path) -> None:
        """Remove a replay file once every entry in it is committed."""
        try:
            path.unlink(missing_ok=True)
            self._fsync_dir()  # else a crash could bring the file back (replayed again: harmless)
        except OSError as exc:
            raise SpoolError(f"cannot remove the replayed spool {path}: {exc}") from exc

    def pending_files(self) -> list[Path]:
        """Spool files that still hold decisions (replay files first, then the append file)."""
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob(_REPLAY_GLOB))
        try:  # another process replaying the same spool may rename it away at any moment
            if self.path.stat().st_size > 0:
                files.append(self.path)
        except FileNotFoundError:
            pass
        return files

    def status(self) -> SpoolStatus:
        """Count what is waiting and what was quarantined (reads the files; no lock taken)."""
        pending = 0
        size = 0
        oldest: float | None = None
        files = self.pending_files()
        for path in files:
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # replayed and removed by another process meanwhile
                continue
            size += len(data)
            for line in data.splitlines(keepends=True):
                pending += 1
                try:
                    _, spooled_at = _decode_line(line)
                except ValueError:
                    continue
                if oldest is None or spooled_at < oldest:
                    oldest = spooled_at
        quarantined = 0
        if self.quarantine_path.exists():
            quarantined = len(self.quarantine_path.read_bytes().splitlines())
        return SpoolStatus(
            directory=str(self.directory),
            pending=pending,
            bytes=size,
            oldest_spooled_at=oldest,
            files=[str(p) for p in files],
            quarantined=quarantined,
            quarantine_file=str(self.quarantine_path) if quarantined else None,
        )
