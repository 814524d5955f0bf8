"""The sealer: every closed recording accounted for in the ledger, sealed at rest, plaintext gone.

This module owns ``Sealer``, the loop of ``asterisk-recorder sealer`` on the Asterisk host. It
learns that MixMonitor closed a file from inotify (``IN_CLOSE_WRITE``) and from full scans (at
start and every ``scan_interval``: a complete WAV header, or no write for ``settle_after`` and no
writer in ``/proc``), then per file, in this order (each step survives SIGKILL, see
docs/recordings.md):

1. the decision named by the file is looked up; no decision (after ``orphan_after``), a decision
   that said skip, a second file, or a file whose digest differs from the one recorded at close
   is quarantined (``recording.quarantined`` first, then the move: idempotent fact ids);
2. ``recording.closed`` (name, bytes, duration, format, rate, SHA-256 at close);
3. empty (header-only) files get ``recording.absent`` and go to quarantine, never sealed;
4. ``seal()`` into ``.<name>.tmp`` in the sealed directory, fsync, a ``.pending.json`` note of
   the seal, rename, fsync the directory; unlink the plaintext, fsync; ``recording.sealed``;
   remove the note. A restart deletes ``*.tmp`` and finishes every note it finds.

With an S3 store (``recordings.store = "s3://..."``) each sealed file is then uploaded
(``storage.S3Store.put``: put once, read back, verified), ``recording.stored`` names its
location, and only then is the local copy removed; a store that does not answer leaves the file
in the sealed directory (never lost), retried with backoff, counted on ``/metrics`` and failing
``/readyz`` after ``max_lag``. A restart finds every sealed file not uploaded yet.

Decisions whose call ended ``recorded`` and that have no file after ``absent_after`` get
``recording.absent``. A missing key, a full disk or PostgreSQL away keep the plaintext, alert
(ERROR log, metrics, ``/readyz``) and retry. It must not hold a private key, open a sealed file,
or write SQL (``catalog.py`` reads, the ``Ledger`` writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace as _replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import structlog

from asterisk_recorder.errors import (
    DatabaseUnavailable,
    EnvelopeError,
    KeyUnavailable,
    LedgerError,
    RecorderError,
    StoreError,
    StoreUnavailable,
)
from asterisk_recorder.flow.facts import LedgerFact, Scalar
from asterisk_recorder.flow.recording import DECISION_ID_RE
from asterisk_recorder.ledger.sink import StoreReceipt
from asterisk_recorder.ops.http import ReadinessCheck, ReadinessReport
from asterisk_recorder.ops.metrics import Registry
from asterisk_recorder.recordings import files
from asterisk_recorder.recordings.catalog import Catalog, DecisionFacts
from asterisk_recorder.recordings.envelope import (
    FileIdentity,
    SealInfo,
    VerifyResult,
    seal,
    verify,
)
from asterisk_recorder.recordings.inotify import CloseWatcher, InotifyUnavailable
from asterisk_recorder.recordings.keys import KekPublicKey, KeyStore, rotation_due
from asterisk_recorder.recordings.pcicheck import PciOutcome, check_file
from asterisk_recorder.recordings.storage import LocalStore, SealedStore
from asterisk_recorder.recordings.wav import RecordingProbe, probe
from asterisk_recorder.settings import RecordingsSettings
from asterisk_recorder.settings.ledger_rules import cryptoperiod_seconds
from asterisk_recorder.settings.retention import (
    choose_class,
    parse_retention,
    parse_rule,
    retain_until,
)

__all__ = [
    "FACT_NAMESPACE",
    "PENDING_SUFFIX",
    "SEALED_SUFFIX",
    "FactWriter",
    "RetainUntil",
    "Sealer",
    "SealerMetrics",
    "SealerPaths",
    "sealed_path_for",
]

_log = structlog.get_logger("asterisk_recorder.recordings.sealer")

SEALED_SUFFIX = ".arrec"
"""Appended to a recording's file name once sealed: ``<decision id>.wav.arrec``."""
PENDING_SUFFIX = ".pending.json"
"""The note beside a sealed file between its rename and its ``recording.sealed`` fact."""
FACT_NAMESPACE = uuid.UUID("5f0f3c9e-6f7e-4a39-9a43-2f5b8c1d7e01")
"""uuid5 namespace of the sealer's fact ids: a repeated step after a crash is idempotent."""
LAG_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
_ABSENT_LOOKBACK = 7 * 86400.0
_UPLOAD_BACKOFF_BASE = 1.0
_UPLOAD_BACKOFF_MAX = 300.0
_NOTE_FIELDS = ("plain_sha256", "sealed_sha256", "kek_id")
"""What a seal note must hold to finish its seal (``SealInfo.payload`` writes them)."""


RetainUntil = Callable[[str, float], "datetime | None"]
"""The Object Lock retain-until date of a recording about to be uploaded: called with its
decision id and the epoch second it was sealed (the retention policy hands one in; ``None``
falls back to ``recordings.store_object_lock_days``)."""


@dataclass(frozen=True, slots=True)
class _Upload:
    """A sealed file waiting in the sealed directory for the store."""

    sealed_at: float
    attempts: int = 0
    next_at: float = 0.0


class FactWriter(Protocol):
    """Where the sealer's facts go (the ``Ledger``)."""

    async def record_fact(self, fact: LedgerFact) -> StoreReceipt: ...  # pragma: no cover


@dataclass(frozen=True, slots=True)
class SealerPaths:
    """The four directories of the sealer."""

    recordings: Path
    sealed: Path
    quarantine: Path
    keys: Path


def sealed_path_for(paths: SealerPaths, plain: Path) -> Path:
    """Where the sealed envelope of recording ``plain`` goes (same ``YYYY/MM/DD`` below)."""
    relative = plain.relative_to(paths.recordings)
    return paths.sealed / relative.parent / (relative.name + SEALED_SUFFIX)


class SealerMetrics:
    """The sealer's ``/metrics``."""

    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.closed = r.counter(
            "asterisk_recorder_recordings_closed_total",
            "Recordings closed by MixMonitor and entered in the ledger (recording.closed).",
        )
        self.sealed = r.counter(
            "asterisk_recorder_recordings_sealed_total",
            "Recordings sealed at rest, plaintext removed (recording.sealed).",
        )
        self.sealed_bytes = r.counter(
            "asterisk_recorder_recordings_sealed_bytes_total",
            "Plaintext bytes of the recordings sealed.",
        )
        self.quarantined = r.counter(
            "asterisk_recorder_recordings_quarantined_total",
            "Files moved to quarantine instead of sealed, by reason.",
            ("reason",),
        )
        self.pci = r.counter(
            "asterisk_recorder_recordings_pci_checked_total",
            "Recordings the PCI check looked at before their seal, by result (passed, failed: a "
            "paused span not silent or DTMF in unpaused audio, unchecked: a format it cannot "
            "read).",
            ("result",),
        )
        self.absent = r.counter(
            "asterisk_recorder_recordings_absent_total",
            "Decisions that said record without a usable file (recording.absent).",
        )
        self.failures = r.counter(
            "asterisk_recorder_recordings_seal_failures_total",
            "Seal attempts that failed and will be retried (plaintext kept), by cause.",
            ("cause",),
        )
        self.lag = r.histogram(
            "asterisk_recorder_recordings_seal_lag_seconds",
            "Seconds from MixMonitor closing a file to its recording.sealed fact.",
            buckets=LAG_BUCKETS,
        )
        self.waiting = r.gauge(
            "asterisk_recorder_recordings_waiting",
            "Closed recordings not sealed yet (retrying or waiting for their decision).",
        )
        self.oldest = r.gauge(
            "asterisk_recorder_recordings_oldest_waiting_seconds",
            "Age of the oldest closed recording not sealed yet (0 when none).",
        )
        self.recording_now = r.gauge(
            "asterisk_recorder_recordings_open",
            "Files MixMonitor is still writing (seen at the last scan).",
        )
        self.keys = r.gauge(
            "asterisk_recorder_recordings_keys",
            "Key-encryption keys in the sealer's public key directory, by bucket and state "
            "(active, retired, destroyed), as of the last scan.",
            ("retention_class", "month", "state"),
        )
        self.key_ready = r.gauge(
            "asterisk_recorder_recordings_key_ready",
            "1 when the bucket of recordings.retention_class for this month or the next has an "
            "active, readable public key; 0 means recordings of that month cannot be sealed.",
            ("retention_class", "month"),
        )
        self.key_rotation_due = r.gauge(
            "asterisk_recorder_recordings_key_rotation_due",
            "Epoch seconds at which this month's active key of recordings.retention_class has "
            "sealed for recordings.kek_cryptoperiod and 'recording keys rotate' is due (a "
            "time in the past: overdue; the month's end ends its use anyway).",
            ("retention_class", "month", "kek_id"),
        )
        self.upload_pending = r.gauge(
            "asterisk_recorder_recordings_upload_pending",
            "Sealed recordings kept in the local sealed directory until the object store takes "
            "them (0 with a local store).",
        )
        self.upload_oldest = r.gauge(
            "asterisk_recorder_recordings_upload_oldest_pending_seconds",
            "Age of the oldest sealed recording not in the object store yet (0 when none).",
        )
        self.uploaded = r.counter(
            "asterisk_recorder_recordings_uploaded_total",
            "Sealed recordings uploaded, verified and recorded (recording.stored).",
        )
        self.uploaded_bytes = r.counter(
            "asterisk_recorder_recordings_uploaded_bytes_total",
            "Bytes of the sealed recordings uploaded.",
        )
        self.upload_failures = r.counter(
            "asterisk_recorder_recordings_upload_failures_total",
            "Upload attempts that failed and will be retried (the sealed file stays local), by "
            "cause (unavailable, refused, envelope, ledger, disk).",
            ("cause",),
        )

    def exposition(self) -> str:
        """Prometheus text."""
        return self.registry.exposition()


def _fact_id(*parts: str) -> str:
    return str(uuid.uuid5(FACT_NAMESPACE, "/".join(parts)))


def _digest(path: Path) -> tuple[str, FileIdentity | None]:
    """SHA-256 of ``path`` and the file's identity, or ``None`` when it changed while read."""
    digest = hashlib.sha256()
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0, opener=_no_follow) as handle:
        before = FileIdentity.of(os.fstat(handle.fileno()))
        while count := handle.readinto(buffer):
            digest.update(view[:count])
        after = FileIdentity.of(os.fstat(handle.fileno()))
    return digest.hexdigest(), before if before == after else None


def _no_follow(name: str, flags: int) -> int:
    """``open()`` opener that refuses a symbolic link (``ELOOP``): the sealer reads only the
    regular files MixMonitor wrote, never what a link in the recording directory points to."""
    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def _regular(path: Path) -> bool:
    """``path`` is a regular file itself (not a link, directory, FIFO, socket or device)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _sealed_digest(path: Path) -> str | None:
    """The sealed digest of an envelope (what ``recording.sealed`` records), or ``None`` when
    the file is no intact envelope."""
    try:
        with open(path, "rb") as handle:
            return verify(handle).sealed_sha256
    except EnvelopeError:
        return None


def _month(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m")


class _Retry(Exception):
    """This file cannot be finished now; keep it and try again later (reason in args)."""


@dataclass(frozen=True, slots=True)
class _KeySnapshot:
    """What the key-bucket gauges show, computed off the loop and shown in one go."""

    counts: dict[tuple[str, str, str], int]
    ready: dict[str, float]
    rotation: tuple[str, str, str, float] | None
    """(class, month, kek id, rotation due at) of this month's active key."""
    now: float


class Sealer:
    """Account for, seal and clean up every recording below ``paths.recordings``.

    Args:
        settings: the ``[recordings]`` settings.
        paths: the recording, sealed, quarantine and key directories.
        ledger: where facts go (``Ledger.record_fact``).
        catalog: the ledger's read side.
        actor: who states the facts (the sealer's instance id).
        keys: the key store (default: a ``KeyStore`` on ``paths.keys``).
        store: where sealed files end up (default: the sealed directory itself); a remote
            store gets every sealed file uploaded, then removed locally.
        retain_until: the Object Lock date of each upload (default: the store's default).
        clock: epoch seconds (tests pass a fake one).
    """

    def __init__(
        self,
        settings: RecordingsSettings,
        paths: SealerPaths,
        ledger: FactWriter,
        catalog: Catalog,
        *,
        actor: str,
        keys: KeyStore | None = None,
        store: SealedStore | None = None,
        retain_until: RetainUntil | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self._ledger = ledger
        self._catalog = catalog
        self._actor = actor
        self._keys = keys if keys is not None else KeyStore(paths.keys)
        self.store: SealedStore = store if store is not None else LocalStore(paths.sealed)
        self._retain_until = retain_until
        self._uploads: dict[Path, _Upload] = {}
        self.upload_problem = ""
        self._clock = clock
        self._periods = parse_retention(settings.retention)
        self._rules = [parse_rule(rule) for rule in settings.retention_rules]
        self.metrics = SealerMetrics()
        self._waiting: dict[Path, float] = {}  # closed, not finished: path -> closed at
        self._ready: dict[Path, str] = {}  # reported closed, not processed yet: path -> source
        self._wake = asyncio.Event()
        self._new_dirs: set[Path] = set()
        self._refused: set[Path] = set()
        self._watcher: CloseWatcher | None = None
        self.last_problem = ""
        self.database_ok = True
        self.scans = 0

    # -- public loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Recover, watch and scan until ``stop`` is set."""
        self.prepare()
        self._start_watcher()
        next_scan = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_scan or self._overflowed():
                    await self.scan()
                    next_scan = time.monotonic() + self.settings.scan_interval
                while self._new_dirs:
                    found, _open = await asyncio.to_thread(
                        self._closed_files, self._new_dirs.pop())
                    for path in found:
                        self._ready.setdefault(path, "scan")
                await self.process_ready()
                await self.upload_due()
                self._wake.clear()
                if self._ready or self._new_dirs:
                    continue
                delay = min(next_scan - time.monotonic(), self._next_upload_in())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        _first(stop.wait(), self._wake.wait()), max(0.05, delay))
        finally:
            if self._watcher is not None:
                self._watcher.close()

    def prepare(self) -> None:
        """Create the sealed and quarantine directories (0700); count the keys."""
        files.private_dir(self.paths.sealed)
        files.private_dir(self.paths.quarantine)
        self.count_keys()

    def count_keys(self) -> None:
        """Set the key-bucket gauges from the public key directory (no key material read
        beyond the public keys of this month's and next month's buckets)."""
        self._show_keys(self._key_snapshot())

    def _key_snapshot(self) -> _KeySnapshot:
        """Blocking: the key counts per {class, month, state}, which months can be sealed, and
        when this month's active key is due for rotation (public metadata only: the sealer
        never opens the token)."""
        try:
            infos = self._keys.list()
        except (OSError, ValueError, KeyUnavailable) as exc:
            _log.error("recordings.keys.unreadable", directory=str(self.paths.keys),
                       error=str(exc))
            infos = []
        counts: dict[tuple[str, str, str], int] = {}
        for info in infos:
            bucket = (info.retention_class, info.month, info.state)
            counts[bucket] = counts.get(bucket, 0) + 1
        now = self._clock()
        this_month = _month(now)
        year, number = int(this_month[:4]), int(this_month[5:])
        next_month = f"{year + number // 12:04d}-{number % 12 + 1:02d}"
        ready: dict[str, float] = {}
        for bucket_month in (this_month, next_month):
            try:
                self._keys.current(self.settings.retention_class, bucket_month)
                ready[bucket_month] = 1.0
            except KeyUnavailable:
                ready[bucket_month] = 0.0
        rotation: tuple[str, str, str, float] | None = None
        try:
            active = self._keys.current_info(self.settings.retention_class, this_month)
        except KeyUnavailable:
            pass
        else:
            due = rotation_due(active, cryptoperiod_seconds(self.settings.kek_cryptoperiod))
            rotation = (active.retention_class, this_month, active.kek_id, due)
        return _KeySnapshot(counts, ready, rotation, now)

    def _show_keys(self, snapshot: _KeySnapshot) -> None:
        """Swap the gauges in one go on the loop (a scrape never sees them half set)."""
        self.metrics.keys.clear()
        for (retention_class, month, state), count in sorted(snapshot.counts.items()):
            self.metrics.keys.set(count, retention_class=retention_class, month=month,
                                  state=state)
        self.metrics.key_ready.clear()
        for bucket_month, value in snapshot.ready.items():
            self.metrics.key_ready.set(value, retention_class=self.settings.retention_class,
                                       month=bucket_month)
        self.metrics.key_rotation_due.clear()
        if snapshot.rotation is None:
            return
        retention_class, month, kek_id, due = snapshot.rotation
        self.metrics.key_rotation_due.set(due, retention_class=retention_class, month=month,
                                          kek_id=kek_id)
        if due <= snapshot.now:
            _log.warning("recordings.key.rotation_due", kek_id=kek_id,
                         due=due, cryptoperiod=self.settings.kek_cryptoperiod,
                         hint="run 'asterisk-recorder recording keys rotate' on the key host")

    def _start_watcher(self) -> None:
        if not self.paths.recordings.is_dir():
            _log.error("recordings.directory.missing", directory=str(self.paths.recordings))
            return
        watcher = CloseWatcher(self.paths.recordings, self._closed_event, self._new_directory)
        try:
            watcher.start()
        except InotifyUnavailable as exc:
            _log.error("recordings.inotify.unavailable", error=str(exc),
                       hint="closes are found by the periodic scan only")
            return
        self._watcher = watcher

    def _overflowed(self) -> bool:
        if self._watcher is not None and self._watcher.overflowed:
            self._watcher.overflowed = False
            _log.warning("recordings.inotify.overflow", hint="scanning the whole directory")
            return True
        return False

    def _closed_event(self, path: Path) -> None:
        if self._ours(path):
            self._ready[path] = "inotify"
            self._wake.set()

    def _new_directory(self, path: Path) -> None:
        self._new_dirs.add(path)  # files may have landed before its watch: look at them
        self._wake.set()

    def _ours(self, path: Path) -> bool:
        return not path.name.startswith(".")

    # -- scanning ------------------------------------------------------------------------

    async def scan(self) -> None:
        """One full pass: finish interrupted seals, find closed files, sweep for absent ones."""
        self.scans += 1
        await asyncio.to_thread(self._remove_temporaries)
        for note in await asyncio.to_thread(self._pending_notes):
            await self._guarded(note, self._finish_note(note))
        found, still_open = await asyncio.to_thread(self._closed_files)
        self.metrics.recording_now.set(still_open)
        for path in found:
            self._ready.setdefault(path, "scan")
        await self.process_ready()
        await self._sweep_absent()
        self._show_keys(await asyncio.to_thread(self._key_snapshot))
        if self.store.remote:
            for path, sealed_at in await asyncio.to_thread(self._local_sealed):
                self._uploads.setdefault(path, _Upload(sealed_at))
            await self.upload_due()
        self._update_waiting()

    def _remove_temporaries(self) -> None:
        for dirpath, _dirs, names in _walk(self.paths.sealed, self.paths.quarantine):
            for name in names:
                if name.startswith(".") and name.endswith(".tmp"):
                    path = Path(dirpath) / name
                    _log.warning("recordings.seal.partial_removed", file=str(path),
                                 hint="a seal was interrupted; the plaintext is still there")
                    files.durable_unlink(path)

    def _local_sealed(self) -> list[tuple[Path, float]]:
        """Sealed files in the sealed directory whose ``recording.sealed`` is written (no
        note beside them), with their mtime: with a remote store each waits for its upload."""
        found: list[tuple[Path, float]] = []
        for dirpath, _dirs, names in os.walk(self.paths.sealed):
            for name in sorted(names):
                if name.startswith(".") or not name.endswith(SEALED_SUFFIX):
                    continue
                path = Path(dirpath) / name
                if os.path.lexists(path.with_name(name + PENDING_SUFFIX)):
                    continue
                with contextlib.suppress(OSError):
                    found.append((path, os.lstat(path).st_mtime))
        return found

    def _pending_notes(self) -> list[Path]:
        notes: list[Path] = []
        for dirpath, _dirs, names in _walk(self.paths.sealed, self.paths.quarantine):
            notes.extend(Path(dirpath) / n for n in names if n.endswith(PENDING_SUFFIX))
        return sorted(notes)

    def _closed_files(self, top: Path | None = None) -> tuple[list[Path], int]:
        now = self._clock()
        found: list[Path] = []
        still_open = 0
        for dirpath, _dirs, names in os.walk(top or self.paths.recordings):
            for name in sorted(names):
                path = Path(dirpath) / name
                if not self._ours(path):
                    continue
                if not _regular(path):
                    self._refuse(path)
                    continue
                try:
                    head = probe(path)
                    age = now - path.stat().st_mtime
                except OSError:
                    continue
                settled = age >= self.settings.settle_after
                if head.header_complete is True or (
                    settled and not files.open_for_writing(path)
                ):
                    found.append(path)
                else:
                    still_open += 1
        return found, still_open

    async def process_ready(self) -> None:
        """Handle every file reported closed so far."""
        while self._ready:
            path, source = next(iter(self._ready.items()))
            del self._ready[path]
            await self._guarded(path, self._process(path, source))

    async def _guarded(self, path: Path, work: object) -> None:
        assert asyncio.iscoroutine(work)
        try:
            await work
        except _Retry as exc:
            self._note_problem(path, str(exc))
        except DatabaseUnavailable as exc:
            self.database_ok = False
            self.metrics.failures.inc(cause="database")
            self._note_problem(path, f"ledger unavailable: {exc}")
        except KeyUnavailable as exc:
            self.metrics.failures.inc(cause="key")
            self._note_problem(path, f"no key to seal with: {exc}", error=True)
        except LedgerError as exc:
            self.metrics.failures.inc(cause="ledger")
            self._note_problem(path, f"ledger refused a fact: {exc}", error=True)
        except OSError as exc:
            self.metrics.failures.inc(cause="disk")
            self._note_problem(path, f"file system: {exc}", error=True)
        except RecorderError as exc:
            self.metrics.failures.inc(cause="envelope")
            self._note_problem(path, f"{type(exc).__name__}: {exc}", error=True)
        except Exception as exc:  # a bug must not stop every other recording being sealed
            self.metrics.failures.inc(cause="internal")
            _log.exception("recordings.seal.internal_error", file=str(path))
            self._note_problem(path, f"internal error {type(exc).__name__}: {exc}", error=True)
        self._update_waiting()

    def _note_problem(self, path: Path, problem: str, *, error: bool = False) -> None:
        self.last_problem = problem
        log = _log.error if error else _log.warning
        log("recordings.seal.retry", file=str(path), problem=problem,
            hint="the plaintext is kept; the sealer retries at the next scan")

    def _update_waiting(self) -> None:
        for path in list(self._waiting):
            if not path.exists():
                del self._waiting[path]
        self.metrics.waiting.set(len(self._waiting))
        now = self._clock()
        oldest = max((now - at for at in self._waiting.values()), default=0.0)
        self.metrics.oldest.set(max(0.0, oldest))
        self.metrics.upload_pending.set(len(self._uploads))
        oldest_upload = max((now - u.sealed_at for u in self._uploads.values()), default=0.0)
        self.metrics.upload_oldest.set(max(0.0, oldest_upload))

    # -- uploads -----------------------------------------------------------------------------

    def _next_upload_in(self) -> float:
        """Seconds until the next upload attempt is due (a large number when none waits)."""
        if not self._uploads:
            return 3600.0
        return min(u.next_at for u in self._uploads.values()) - self._clock()

    async def upload_due(self) -> None:
        """Try every sealed file whose upload is due (new ones at once, failed ones after
        their backoff: 1 s, doubling, at most 300 s)."""
        if not self.store.remote:
            return
        now = self._clock()
        for path, upload in sorted(self._uploads.items()):
            if upload.next_at > now:
                continue
            cause = await self._guarded_upload(path)
            if cause is None:
                self._uploads.pop(path, None)
                self.upload_problem = ""
            else:
                attempts = upload.attempts + 1
                backoff = min(_UPLOAD_BACKOFF_MAX, _UPLOAD_BACKOFF_BASE * 2 ** (attempts - 1))
                self._uploads[path] = _replace(upload, attempts=attempts,
                                               next_at=self._clock() + backoff)
                self.metrics.upload_failures.inc(cause=cause)
        self._update_waiting()

    async def _guarded_upload(self, path: Path) -> str | None:
        """Upload one file; the failure's cause label, or ``None`` when it is stored."""
        try:
            await self._upload(path)
            return None
        except FileNotFoundError:  # stored and removed meanwhile (another pass)
            return None
        except StoreUnavailable as exc:
            cause, problem = "unavailable", f"object store unavailable: {exc}"
        except _Retry as exc:
            cause, problem = "envelope", str(exc)
        except StoreError as exc:
            cause, problem = "refused", f"object store refused: {exc}"
        except DatabaseUnavailable as exc:
            cause, problem = "ledger", f"ledger unavailable: {exc}"
        except LedgerError as exc:
            cause, problem = "ledger", f"ledger refused recording.stored: {exc}"
        except OSError as exc:
            cause, problem = "disk", f"file system: {exc}"
        except Exception as exc:  # a bug must not stop the other uploads
            _log.exception("recordings.upload.internal_error", file=str(path))
            cause, problem = "internal", f"internal error {type(exc).__name__}: {exc}"
        self.upload_problem = problem
        _log.error("recordings.upload.retry", file=str(path), store=self.store.name,
                   cause=cause, problem=problem[:500],
                   hint="the sealed file stays in the sealed directory; retried with backoff")
        return cause

    async def _upload(self, path: Path) -> None:
        """Upload, verify, ``recording.stored``, then remove the local copy (each step
        repeatable after a crash: the put is idempotent, the fact id derived)."""
        relative = path.relative_to(self.paths.sealed).as_posix()
        sealed_at = (await asyncio.to_thread(os.lstat, path)).st_mtime
        try:
            result = await asyncio.to_thread(_verify_sealed, path)
        except EnvelopeError as exc:
            raise _Retry(f"{path} is no intact envelope ({exc}): not uploaded, kept for an "
                         "operator") from exc
        decision_id = result.recording_id
        if not DECISION_ID_RE.match(decision_id):
            raise _Retry(f"{path} holds recording {decision_id!r}, no decision id: not uploaded")
        retain = None
        if self._retain_until is not None:
            retain = await asyncio.to_thread(self._retain_until, decision_id, sealed_at)
        elif getattr(self.store, "object_lock_days", 0):
            # a locking store: the lock ends when the ledger's retention does (so disposal can
            # delete then), or after object_lock_days for a recording sealed without a period
            until = await self._catalog.retain_until(decision_id)
            if until is not None:  # a date already past (a long backlog): a lock of a minute
                retain = datetime.fromtimestamp(max(until, self._clock() + 60.0), UTC)
        stored = await asyncio.to_thread(self.store.put, path, relative, retain_until=retain)
        files.crash_point("uploaded")
        payload: dict[str, Scalar] = {
            "location": stored.location,
            "store": self.store.name,
            "file": relative,
            "recording_id": decision_id,
            "sealed_sha256": result.sealed_sha256,
            "sealed_bytes": result.sealed_bytes,
            "object_sha256": stored.sha256 or "",
            "retain_until": stored.retain_until.isoformat() if stored.retain_until else None,
            "lock_mode": stored.lock_mode,
        }
        await self._fact("recording.stored", decision_id,
                         _fact_id("stored", decision_id, result.sealed_sha256, stored.location),
                         payload)
        files.crash_point("stored")
        await asyncio.to_thread(files.durable_unlink, path)
        self.metrics.uploaded.inc()
        self.metrics.uploaded_bytes.inc(float(stored.size))
        _log.info("recordings.stored", decision_id=decision_id, location=stored.location,
                  bytes=stored.size, retain_until=payload["retain_until"])

    # -- one file ------------------------------------------------------------------------

    async def _process(self, path: Path, source: str) -> None:
        try:
            info = await asyncio.to_thread(os.lstat, path)
        except FileNotFoundError:
            self._waiting.pop(path, None)
            return
        if not stat.S_ISREG(info.st_mode):
            self._refuse(path)
            return
        closed_at = info.st_mtime
        self._waiting.setdefault(path, closed_at)
        note = sealed_path_for(self.paths, path).with_name(
            sealed_path_for(self.paths, path).name + PENDING_SUFFIX
        )
        if note.exists():  # sealed before a crash: finish that seal, do not seal twice
            await self._finish_note(note)
            return
        head = await asyncio.to_thread(probe, path)
        stem = path.name.split(".", 1)[0]
        decision_id = stem if DECISION_ID_RE.match(stem) else None
        decision = await self._catalog.lookup(decision_id) if decision_id else None
        self.database_ok = True
        if decision is None:
            if decision_id and self._clock() - closed_at < self.settings.orphan_after:
                raise _Retry(f"decision {decision_id} is not in the ledger yet")
            detail = (f"decision {decision_id} is not in the ledger" if decision_id
                      else "the file name is no decision id")
            await self._quarantine(path, None, "orphan", detail, head)
            return
        if not decision.recorded:
            await self._quarantine(path, decision, "declined",
                                   f"the decision said {decision.outcome}: not to record", head)
            return
        if decision.sealed or decision.absent:
            await self._quarantine(path, decision, "duplicate",
                                   "the decision is already accounted for", head)
            return
        if decision.recording_path and Path(decision.recording_path) != path:
            await self._quarantine(path, decision, "misplaced",
                                   f"the decision's file is {decision.recording_path}", head)
            return
        digest, identity = await asyncio.to_thread(_digest, path)
        if decision.closed_sha256 is None:
            closed = self._closed_payload(path, head, digest, source)
            if identity is not None:
                closed["inode"] = identity.inode
            await self._fact("recording.closed", decision.decision_id,
                             _fact_id("closed", decision.decision_id, digest), closed)
            self.metrics.closed.inc()
            _log.info("recordings.closed", decision_id=decision.decision_id, file=path.name,
                      bytes=head.size, duration_s=head.duration_s, empty=head.empty)
            files.crash_point("closed")
        elif decision.closed_sha256 != digest:
            edited = identity is not None and identity.inode == decision.closed_inode
            await self._quarantine(
                path, decision, "edited" if edited else "replaced",
                f"SHA-256 {digest[:16]}... differs from {decision.closed_sha256[:16]}... "
                "recorded when the file was closed"
                + (" (same file, written to since)" if edited else " (another file now)"),
                head, digest=digest, identity=identity)
            return
        if head.empty:
            await self._fact("recording.absent", decision.decision_id,
                             _fact_id("absent", decision.decision_id),
                             {"reason": "the file holds no audio (empty or header only)",
                              "file": self._relative(path)})
            self.metrics.absent.inc()
            await self._quarantine(path, decision, "empty", "no audio samples", head,
                                   digest=digest, identity=identity)
            return
        pci = await self._pci_check(path, head, decision, closed_at)
        if pci is not None and pci.failed and self.settings.pci_check == "quarantine":
            assert pci.result is not None
            await self._quarantine(path, decision, "pci", pci.result.reason(), head,
                                   digest=digest, identity=identity)
            return
        await self._seal(path, decision, digest, identity, closed_at, pci)

    async def _pci_check(self, path: Path, head: RecordingProbe,
                         decision: DecisionFacts, closed_at: float) -> PciOutcome | None:
        """The PCI check (``recordings.pci_check``) of a file about to be sealed: counted, and
        an ERROR ``recordings.pci_failed`` (the alert) when it finds something. The wall time
        the recording ran is the pauses' ``recording_started_at`` to the file's mtime (its last
        write, MixMonitor's close)."""
        if self.settings.pci_check == "off":
            return None
        started = decision.recording_started_at
        wall = None if started is None else max(0.0, closed_at - started)
        outcome = await asyncio.to_thread(check_file, path, head, decision.pauses,
                                          tolerance=self.settings.pci_tolerance, wall_s=wall)
        result = ("unchecked" if outcome.result is None
                  else "failed" if outcome.failed else "passed")
        self.metrics.pci.inc(result=result)
        if outcome.failed:
            assert outcome.result is not None
            _log.error("recordings.pci_failed", decision_id=decision.decision_id,
                       file=self._relative(path), reason=outcome.result.reason(),
                       action=self.settings.pci_check)
        elif outcome.result is None:
            _log.warning("recordings.pci_unchecked", decision_id=decision.decision_id,
                         file=self._relative(path), reason=outcome.unchecked)
        return outcome

    def _refuse(self, path: Path) -> None:
        """A link or other non-regular file in the recording directory: never read, never
        sealed, never removed; an ERROR once per path (MixMonitor writes regular files only)."""
        if path in self._refused:
            return
        self._refused.add(path)
        self.last_problem = f"{path} is not a regular file (a link?): left alone"
        _log.error("recordings.not_a_file", file=str(path),
                   hint="a symbolic link or special file in the recording directory is never "
                        "followed or sealed; remove it")

    def _relative(self, path: Path) -> str:
        return str(path.relative_to(self.paths.recordings))

    def _closed_payload(
        self, path: Path, head: RecordingProbe, digest: str, source: str
    ) -> dict[str, Scalar]:
        return {
            "file": self._relative(path),
            "bytes": head.size,
            "sha256": digest,
            "format": head.format,
            "duration_s": head.duration_s,
            "sample_rate": head.sample_rate,
            "channels": head.channels,
            "empty": head.empty,
            "header_complete": head.header_complete,
            "source": source,
        }

    async def _fact(
        self, kind: str, decision_id: str | None, fact_id: str, payload: dict[str, Scalar]
    ) -> None:
        await self._ledger.record_fact(
            LedgerFact(kind, decision_id, self._clock(), self._actor, payload, fact_id=fact_id)
        )

    async def _quarantine(
        self,
        path: Path,
        decision: DecisionFacts | None,
        reason: str,
        detail: str,
        head: RecordingProbe,
        *,
        digest: str | None = None,
        identity: FileIdentity | None = None,
    ) -> None:
        """Take ``path`` out of the normal path: sealed into the quarantine directory (audio),
        or deleted once the fact is written (no audio: zero-length or header only)."""
        if digest is None:
            taken, identity = await asyncio.to_thread(_digest, path)
            digest = taken
        decision_id = decision.decision_id if decision is not None else None
        base: dict[str, Scalar] = {
            "file": self._relative(path), "reason": reason, "detail": detail[:500],
            "bytes": head.size, "sha256": digest,
        }
        fact_id = _fact_id("quarantined", self._relative(path), digest)
        if head.empty:  # nothing to keep: no audio sample in the file
            await self._fact("recording.quarantined", decision_id, fact_id,
                             {**base, "deleted": True})
            files.crash_point("quarantine_fact")
            await asyncio.to_thread(files.durable_unlink, path)
            self._done_quarantine(path, reason, detail, "deleted (no audio)")
            return
        closed_at = self._waiting.get(path)
        if closed_at is None:
            closed_at = (await asyncio.to_thread(path.stat)).st_mtime
        kek = await asyncio.to_thread(
            self._keys.current, self.settings.retention_class, _month(closed_at)
        )
        recording_id = decision_id or f"quarantine-{fact_id}"
        target = await asyncio.to_thread(self._quarantine_target, path)
        note_extra: dict[str, object] = {
            "decision_id": decision_id, "plain": self._relative(path), "closed_at": closed_at,
            "quarantine": {**base, "fact_id": fact_id},
        }
        try:
            await asyncio.to_thread(
                self._seal_blocking, path, target, recording_id, kek, digest, identity, note_extra)
        except EnvelopeError as exc:  # changed again while sealed into quarantine: next pass
            raise _Retry(f"{path} changed while it was sealed into quarantine: {exc}") from exc
        await self._after_quarantine_rename(path, target, None)

    async def _after_quarantine_rename(
        self, path: Path, target: Path, fields: dict[str, object] | None
    ) -> None:
        """The quarantine envelope is in place (its note beside it): unlink the plaintext, write
        ``recording.quarantined`` with both digests and the key id, remove the note."""
        note = target.with_name(target.name + PENDING_SUFFIX)
        if fields is None:
            fields = json.loads(await asyncio.to_thread(note.read_text, encoding="ascii"))
        quarantine = fields["quarantine"]
        assert isinstance(quarantine, dict)
        await asyncio.to_thread(files.durable_unlink, path)
        files.crash_point("unlinked")
        payload: dict[str, Scalar] = {
            key: quarantine[key] for key in ("file", "reason", "detail", "bytes", "sha256")
        }
        payload.update({
            "moved_to": str(target.relative_to(self.paths.quarantine)),
            "recording_id": _text(fields.get("recording_id")),
            "plain_sha256": str(fields["plain_sha256"]),
            "sealed_sha256": str(fields["sealed_sha256"]),
            "kek_id": str(fields["kek_id"]),
            "sealed_bytes": _int(fields.get("sealed_bytes")),
        })
        decision_id = fields.get("decision_id")
        await self._fact("recording.quarantined",
                         decision_id if isinstance(decision_id, str) else None,
                         str(quarantine["fact_id"]), payload)
        files.crash_point("quarantine_fact")
        await asyncio.to_thread(files.durable_unlink, note)
        self._done_quarantine(path, str(payload["reason"]), str(payload["detail"]),
                              f"sealed to {target}")

    def _done_quarantine(self, path: Path, reason: str, detail: str, outcome: str) -> None:
        self._waiting.pop(path, None)
        self.metrics.quarantined.inc(reason=reason)
        _log.error("recordings.quarantined", file=self._relative(path), reason=reason,
                   detail=detail, outcome=outcome)

    def _quarantine_target(self, path: Path) -> Path:
        """A new name ``<quarantine>/<same YYYY/MM/DD>/<name>[.n].arrec`` (never overwrites)."""
        relative = path.relative_to(self.paths.recordings)
        directory = files.durable_dirs(self.paths.quarantine / relative.parent,
                                       self.paths.quarantine, private=True)
        n = 0
        while True:
            name = relative.name + (f".{n}" if n else "") + SEALED_SUFFIX
            target = directory / name
            taken = (target, target.with_name(target.name + PENDING_SUFFIX),
                     target.with_name(f".{target.name}.tmp"))
            if not any(os.path.lexists(one) for one in taken):
                return target
            n += 1

    # -- sealing ---------------------------------------------------------------------------

    async def _seal(
        self,
        path: Path,
        decision: DecisionFacts,
        digest: str,
        identity: FileIdentity | None,
        closed_at: float,
        pci: PciOutcome | None = None,
    ) -> None:
        retention = self._retention_for(decision, closed_at)
        kek = await asyncio.to_thread(
            self._keys.current, str(retention["retention_class"]), _month(closed_at)
        )
        sealed = sealed_path_for(self.paths, path)
        extra: dict[str, object] = {"decision_id": decision.decision_id,
                                    "plain": self._relative(path), "closed_at": closed_at,
                                    **retention}
        if pci is not None:
            extra["pci"] = pci.fields()
        try:
            info = await asyncio.to_thread(
                self._seal_blocking, path, sealed, decision.decision_id, kek, digest, identity,
                extra,
            )
        except EnvelopeError as exc:
            now_digest, now_identity = await asyncio.to_thread(_digest, path)
            if now_digest != digest:
                same_file = identity is not None and now_identity is not None and (
                    (identity.device, identity.inode) == (now_identity.device, now_identity.inode))
                await self._quarantine(
                    path, decision, "edited" if same_file else "replaced",
                    f"the file changed between its close and its seal: {exc}",
                    await asyncio.to_thread(probe, path), digest=now_digest,
                    identity=now_identity)
                return
            # same bytes, but touched (chmod, utime) while sealed: take its identity again
            raise _Retry(f"{path} changed its identity while it was sealed: {exc}") from exc
        await self._after_rename(path, sealed, {**info.payload(), **extra},
                                 decision.decision_id, closed_at)

    def _retention_for(self, decision: DecisionFacts, closed_at: float) -> dict[str, object]:
        """The class the rules give this call, its period and the date its recording may go
        (kept in the seal note, so a seal finished after a restart records the same)."""
        choice = choose_class(self._rules, self.settings.retention_class,
                              jurisdictions=decision.jurisdictions,
                              called_number=decision.called_number)
        period = self._periods.get(choice.retention_class)
        return {
            "retention_class": choice.retention_class,
            "retention_rule": choice.rule,
            "retention_period": None if period is None else period.text,
            "retain_until": None if period is None else retain_until(closed_at, period),
        }

    def _seal_blocking(
        self,
        path: Path,
        sealed: Path,
        recording_id: str,
        kek: KekPublicKey,
        digest: str,
        identity: FileIdentity | None,
        note_extra: dict[str, object],
    ) -> SealInfo:
        """Seal ``path`` to ``sealed`` (a normal seal or a quarantine): temporary name, fsync,
        the note (``info`` and ``note_extra``), rename, fsync the directory."""
        quarantine = sealed.is_relative_to(self.paths.quarantine)
        files.durable_dirs(sealed.parent,
                           self.paths.quarantine if quarantine else self.paths.sealed,
                           private=quarantine)
        temp = sealed.with_name(f".{sealed.name}.tmp")
        try:
            with open(path, "rb", opener=_no_follow) as src, files.create_output(temp) as dst:
                # the file unchanged since its digest was taken: one pass, no re-hash
                info = seal(src, dst, recording_id=recording_id, kek=kek, plain_sha256=digest,
                            unchanged=identity)
                dst.flush()
                os.fsync(dst.fileno())
            if info.plain_sha256 != digest:
                raise EnvelopeError(
                    f"sealed plaintext SHA-256 {info.plain_sha256} is not {digest}")
            files.crash_point("temp")
            note = sealed.with_name(sealed.name + PENDING_SUFFIX)
            files.write_json_durably(note, {**info.payload(), **note_extra})
            files.crash_point("pending")
            os.rename(temp, sealed)
            files.fsync_dir(sealed.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        files.crash_point("renamed")
        return info

    async def _after_rename(
        self, path: Path, sealed: Path, info: SealInfo | dict[str, object], decision_id: str,
        closed_at: float,
    ) -> None:
        fields = info if isinstance(info, dict) else dict(info.payload())
        await asyncio.to_thread(files.durable_unlink, path)
        files.crash_point("unlinked")
        lag = max(0.0, self._clock() - closed_at)
        payload: dict[str, Scalar] = {
            "file": str(sealed.relative_to(self.paths.sealed)),
            "recording_id": _text(fields.get("recording_id")),
            "plain_sha256": str(fields["plain_sha256"]),
            "sealed_sha256": str(fields["sealed_sha256"]),
            "kek_id": str(fields["kek_id"]),
            "plain_bytes": _int(fields.get("plain_bytes")),
            "sealed_bytes": _int(fields.get("sealed_bytes")),
            "chunk_size": _int(fields.get("chunk_size")),
            "chunks": _int(fields.get("chunks")),
            "chunk_root": _text(fields.get("chunk_root")),
            "retention_class": _text(fields.get("retention_class"))
            or self.settings.retention_class,
            "retention_period": _text(fields.get("retention_period")),
            "retention_rule": _text(fields.get("retention_rule")),
            "retain_until": _number(fields.get("retain_until")),
            "lag_s": round(lag, 3),
        }
        checked = fields.get("pci")
        if isinstance(checked, dict):  # the PCI check's fields, kept in the seal note
            payload.update({str(k): v for k, v in checked.items()
                            if isinstance(v, str | int | float | bool)})
        await self._fact("recording.sealed", decision_id,
                         _fact_id("sealed", decision_id, str(fields["sealed_sha256"])), payload)
        files.crash_point("sealed")
        note = sealed.with_name(sealed.name + PENDING_SUFFIX)
        await asyncio.to_thread(files.durable_unlink, note)
        self._waiting.pop(path, None)
        if self.store.remote:
            self._uploads.setdefault(sealed, _Upload(self._clock()))
        self.metrics.sealed.inc()
        self.metrics.sealed_bytes.inc(float(_int(fields.get("plain_bytes")) or 0))
        self.metrics.lag.observe(lag)
        _log.info("recordings.sealed", decision_id=decision_id, file=payload["file"],
                  sealed_sha256=payload["sealed_sha256"], kek_id=payload["kek_id"],
                  lag_s=payload["lag_s"])

    async def _finish_note(self, note: Path) -> None:
        """Finish a seal interrupted after its note was written (see the module docstring)."""
        sealed = note.with_name(note.name[: -len(PENDING_SUFFIX)])
        try:
            fields = json.loads(await asyncio.to_thread(note.read_text, encoding="ascii"))
            decision_id = str(fields["decision_id"])
            if not isinstance(fields.get("plain"), str) or not _safe_relative(fields["plain"]):
                raise ValueError(f"plain {fields.get('plain')!r} is no path below the recordings")
            missing = [key for key in _NOTE_FIELDS if not isinstance(fields.get(key), str)]
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
            plain = self.paths.recordings / str(fields["plain"])
            closed_at = float(fields["closed_at"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _Retry(f"unreadable seal note {note}: {exc}") from exc
        if not sealed.exists():  # killed before the rename: the seal never happened
            await asyncio.to_thread(files.durable_unlink, note)
            return
        actual = await asyncio.to_thread(_sealed_digest, sealed)
        if actual != fields.get("sealed_sha256"):
            if plain.exists():  # a bad envelope and the plaintext is still here: seal again
                await asyncio.to_thread(files.durable_unlink, sealed)
                await asyncio.to_thread(files.durable_unlink, note)
                return
            raise _Retry(f"sealed file {sealed} does not match its note and the plaintext is "
                         "gone: keep both for an operator")
        self._waiting.setdefault(plain, closed_at)
        if "quarantine" in fields:
            await self._after_quarantine_rename(plain, sealed, fields)
            return
        await self._after_rename(plain, sealed, fields, decision_id, closed_at)

    # -- absent recordings -------------------------------------------------------------------

    async def _sweep_absent(self) -> None:
        now = self._clock()
        try:
            candidates = await self._catalog.absent_candidates(
                ended_before=now - self.settings.absent_after,
                ended_after=now - _ABSENT_LOOKBACK,
                asterisk_ids=self.settings.asterisk_ids,
            )
        except DatabaseUnavailable as exc:
            self.database_ok = False
            self.last_problem = f"ledger unavailable: {exc}"
            return
        self.database_ok = True
        for candidate in candidates:
            path = Path(candidate.recording_path) if candidate.recording_path else None
            if path is not None and path.exists():
                continue  # still recording, or waiting here: not absent
            if path is not None and path.is_relative_to(self.paths.recordings):
                sealed = sealed_path_for(self.paths, path)
                if sealed.exists():
                    continue
            waited = round(now - candidate.fate_at, 1)
            reason = (f"no file appeared within {self.settings.absent_after:g} s of the call "
                      "ending recorded")
            try:
                await self._fact(
                    "recording.absent", candidate.decision_id,
                    _fact_id("absent", candidate.decision_id),
                    {"reason": reason, "waited_s": waited,
                     "file": str(path) if path is not None else None})
            except LedgerError as exc:
                self.last_problem = f"ledger refused recording.absent: {exc}"
                continue
            self.metrics.absent.inc()
            _log.error("recordings.absent", decision_id=candidate.decision_id, reason=reason,
                       file=str(path) if path is not None else None)

    # -- health -------------------------------------------------------------------------------

    def readiness(self) -> ReadinessReport:
        """``/readyz``: the ledger answers and no closed file waits longer than ``max_lag``."""
        self._update_waiting()
        oldest = self.metrics.oldest.value()
        behind = oldest > self.settings.max_lag
        checks = (
            ReadinessCheck("ledger", self.database_ok,
                           "reachable" if self.database_ok else "unreachable"),
            ReadinessCheck(
                "seal_lag", not behind,
                f"{len(self._waiting)} waiting, oldest {oldest:.0f} s "
                f"(max {self.settings.max_lag:g} s)"
                + (f"; last problem: {self.last_problem[:200]}" if behind and self.last_problem
                   else ""),
            ),
            self._store_check(),
            ReadinessCheck("watch", True,
                           "inotify and scans" if self._watcher is not None else "scans only"),
        )
        return ReadinessReport(checks)


    def _store_check(self) -> ReadinessCheck:
        if not self.store.remote:
            return ReadinessCheck("store", True, self.store.name)
        oldest = self.metrics.upload_oldest.value()
        behind = oldest > self.settings.max_lag
        return ReadinessCheck(
            "store", not behind,
            f"{len(self._uploads)} sealed file(s) waiting for {self.store.name}, oldest "
            f"{oldest:.0f} s (max {self.settings.max_lag:g} s)"
            + (f"; last problem: {self.upload_problem[:200]}" if behind and self.upload_problem
               else ""),
        )


def _verify_sealed(path: Path) -> VerifyResult:
    with open(path, "rb") as handle:
        return verify(handle)


def _walk(*tops: Path) -> list[tuple[str, list[str], list[str]]]:
    return [entry for top in tops for entry in os.walk(top)]


def _safe_relative(value: str) -> bool:
    """``value`` is a relative path that stays below its base (no ``..``, not absolute)."""
    relative = Path(value)
    return not relative.is_absolute() and ".." not in relative.parts and value not in ("", ".")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def _first(*waits: object) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()

