"""The local spool: decisions fsynced to disk while PostgreSQL does not answer.

This module owns the spool files in the spool directory. ``decisions.jsonl`` receives appends
(one JSON line per decision: ``{"v":1,"sha256":<hex of the canonical "d" text>,"d":{...}}``,
written with one ``write`` and ``fsync``ed before the caller is acknowledged). To replay, the
file is renamed to ``decisions.<ns>.replay.jsonl`` under an ``flock``; lines that do not parse
or whose checksum does not match (a crash mid-write) are moved to ``quarantine.jsonl`` with the
reason, never dropped. Every create, rename, replace and removal in the directory is followed by
an ``fsync`` of the directory itself, so a crash cannot undo it. The directory is created 0700 and
every file 0600 whatever the umask (``ledger.private``). Blocking file I/O: call it from a
thread. It must not talk to PostgreSQL.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asterisk_recorder.errors import SpoolError
from asterisk_recorder.flow.decision import ConsentDecision, KeyPress, Outcome, PartyRecord
from asterisk_recorder.ledger.private import ensure_private_dir, open_private, shared_mode
from asterisk_recorder.policy.modes import Mode

__all__ = [
    "QUARANTINE_NAME",
    "SPOOL_NAME",
    "Spool",
    "SpoolBatch",
    "SpoolStatus",
    "decision_from_dict",
    "decision_to_dict",
]

SPOOL_NAME = "decisions.jsonl"
"""The file appends go to."""
QUARANTINE_NAME = "quarantine.jsonl"
"""Where torn or garbled lines are kept (with the reason) for an operator to inspect."""
_REPLAY_GLOB = "decisions.*.replay.jsonl"


def decision_to_dict(decision: ConsentDecision) -> dict[str, Any]:
    """A JSON-ready dict of every field of ``decision`` (lone surrogates survive as escapes)."""
    return {
        "decision_id": decision.decision_id,
        "driver": decision.driver,
        "channel_id": decision.channel_id,
        "channel_name": decision.channel_name,
        "uniqueid": decision.uniqueid,
        "linkedid": decision.linkedid,
        "asterisk_id": decision.asterisk_id,
        "instance_id": decision.instance_id,
        "caller_number": decision.caller_number,
        "caller_name": decision.caller_name,
        "called_number": decision.called_number,
        "parties": [
            {
                "party": p.party,
                "number": p.number,
                "jurisdiction": p.jurisdiction,
                "row_id": p.row_id,
                "mode": p.mode.value,
            }
            for p in decision.parties
        ],
        "mode": decision.mode.value,
        "policy_rows": list(decision.policy_rows),
        "policy_version": decision.policy_version,
        "prompt_id": decision.prompt_id,
        "language": decision.language,
        "keys": [{"digit": k.digit, "at": k.at} for k in decision.keys],
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "offered_at": decision.offered_at,
        "answered_at": decision.answered_at,
        "disclosure_started_at": decision.disclosure_started_at,
        "disclosure_finished_at": decision.disclosure_finished_at,
        "decided_at": decision.decided_at,
        "recording_path": decision.recording_path,
    }


def decision_from_dict(data: dict[str, Any]) -> ConsentDecision:
    """Rebuild a ``ConsentDecision`` from ``decision_to_dict`` output.

    Raises:
        KeyError, TypeError, ValueError: the dict is not a decision.
    """
    return ConsentDecision(
        decision_id=str(data["decision_id"]),
        driver=data["driver"],
        channel_id=data["channel_id"],
        channel_name=data["channel_name"],
        uniqueid=data["uniqueid"],
        linkedid=data["linkedid"],
        asterisk_id=data["asterisk_id"],
        instance_id=data["instance_id"],
        caller_number=data["caller_number"],
        caller_name=data["caller_name"],
        called_number=data["called_number"],
        parties=tuple(
            PartyRecord(p["party"], p["number"], p["jurisdiction"], p["row_id"], Mode(p["mode"]))
            for p in data["parties"]
        ),
        mode=Mode(data["mode"]),
        policy_rows=tuple(data["policy_rows"]),
        policy_version=data["policy_version"],
        prompt_id=data["prompt_id"],
        language=data["language"],
        keys=tuple(KeyPress(k["digit"], float(k["at"])) for k in data["keys"]),
        outcome=Outcome(data["outcome"]),
        reason=data["reason"],
        offered_at=float(data["offered_at"]),
        answered_at=None if data["answered_at"] is None else float(data["answered_at"]),
        disclosure_started_at=None
        if data["disclosure_started_at"] is None
        else float(data["disclosure_started_at"]),
        disclosure_finished_at=None
        if data["disclosure_finished_at"] is None
        else float(data["disclosure_finished_at"]),
        decided_at=float(data["decided_at"]),
        recording_path=data["recording_path"],
    )


def _encode_line(decision: ConsentDecision, spooled_at: float) -> bytes:
    payload = json.dumps(
        decision_to_dict(decision), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    digest = hashlib.sha256(payload.encode("ascii")).hexdigest()
    # "d" is written verbatim as the last member so the checksum covers exactly its text.
    return (f'{{"v":1,"spooled_at":{spooled_at!r},"sha256":"{digest}","d":{payload}}}\n').encode(
        "ascii"
    )


def _decode_line(line: bytes) -> tuple[ConsentDecision, float]:
    """Parse one spool line; raise ``ValueError`` with the reason when it is torn or garbled."""
    if not line.endswith(b"\n"):
        raise ValueError("torn line (no newline: the writer stopped mid-line)")
    try:
        text = line.decode("ascii").rstrip("\n")
        marker = text.index(',"d":')
        payload = text[marker + 5 : -1]
        outer = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a spool record: {exc}") from exc
    if not isinstance(outer, dict) or outer.get("v") != 1:
        raise ValueError("unknown spool record version")
    if hashlib.sha256(payload.encode("ascii")).hexdigest() != outer.get("sha256"):
        raise ValueError("checksum mismatch")
    try:
        return decision_from_dict(outer["d"]), float(outer.get("spooled_at", 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a decision: {exc!r}") from exc


def _fsync_directory(directory: Path) -> None:
    """fsync ``directory`` so the entries created, renamed or removed in it are durable."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """The decisions read from one replay file, in spool order, and what was quarantined."""

    path: Path
    decisions: list[ConsentDecision]
    quarantined: int


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

    def append(self, decisions: list[ConsentDecision]) -> None:
        """Append ``decisions`` and fsync; return only once they are on disk.

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
        decisions: list[ConsentDecision] = []
        good: list[bytes] = []
        bad: list[bytes] = []
        for number, line in enumerate(data.splitlines(keepends=True), start=1):
            try:
                decision, _ = _decode_line(line)
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
            decisions.append(decision)
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
        return SpoolBatch(path, decisions, len(bad))

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

    def quarantine(self, decisions: list[ConsentDecision], reason: str) -> None:
        """Keep decisions PostgreSQL refuses (for their content) in the quarantine file.

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
        """Remove a replay file once every decision in it is committed."""
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
        if self.path.exists() and self.path.stat().st_size > 0:
            files.append(self.path)
        return files

    def status(self) -> SpoolStatus:
        """Count what is waiting and what was quarantined (reads the files; no lock taken)."""
        pending = 0
        size = 0
        oldest: float | None = None
        files = self.pending_files()
        for path in files:
            data = path.read_bytes()
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
