"""Witnesses: signed ledger checkpoints pushed to sinks outside the database.

This module owns delivering checkpoints (C2SP ``tlog-checkpoint`` signed notes, treated here
as opaque UTF-8 text of at most 64 KiB) to three kinds of sink and reading them back:

* ``DirectoryWitness``: one file ``checkpoint-<size, 20 digits>.txt`` per checkpoint in a
  directory (another host's mount, a WORM mount), written to a temporary name, fsynced, then
  hard-linked into place (never overwriting) and the directory fsynced.
* ``HttpWitness``: ``POST`` of the note to a URL (``X-Checkpoint-Size`` header); ``GET`` of the
  same URL returns the notes it holds, separated by lines holding only ``---``.
* ``S3Witness``: one object ``<prefix><size, 20 digits>.txt`` per checkpoint in a bucket, put
  with ``If-None-Match: *`` and, when asked, Object Lock in COMPLIANCE mode.

Every sink is idempotent (the same note for the same size again is fine) and never overwrites:
a *different* note for a size it already holds raises ``WitnessError`` with ``conflict=True``,
the evidence of a fork. ``WitnessPusher`` delivers in the background, one task per sink, in
offer order, with jittered exponential backoff; ``offer`` never blocks and never raises, so a
dead sink can never hold up a call.

It must not parse or verify signatures (``ledger verify`` does that; the only thing read out of
a note is its second line, the tree size, and only for a sink that does not name its
checkpoints by size), must not import ``ops`` (metrics come in through ``WitnessMetrics``,
which ``ops.metrics.RecorderMetrics`` satisfies), and must never put a secret (an HTTP header
value, credentials) in a name, an error message, a status or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import errno
import hashlib
import importlib.util
import math
import os
import random
import re
import secrets
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
import structlog

from asterisk_recorder.errors import WitnessError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "MAX_BACKLOG",
    "MAX_NOTE_BYTES",
    "MAX_SIZE",
    "NOTE_SEPARATOR",
    "DirectoryWitness",
    "HttpWitness",
    "S3Witness",
    "Witness",
    "WitnessMetrics",
    "WitnessPusher",
    "WitnessStatus",
    "WitnessedCheckpoint",
    "checkpoint_name",
    "format_notes",
    "parse_notes",
]

_log = structlog.get_logger("asterisk_recorder.ledger.witness")

MAX_NOTE_BYTES = 64 * 1024
"""The largest note a witness takes (UTF-8 bytes), as C2SP signed notes allow."""
MAX_SIZE = 10**20 - 1
"""The largest tree size: it must fit the 20 zero-padded digits of a file or object name."""
MAX_BACKLOG = 100
"""Undelivered checkpoints kept per sink; beyond it the oldest are superseded by newer ones."""
NOTE_SEPARATOR = "---"
"""The line between two notes in an HTTP witness's ``GET`` answer."""
DIR_MODE = 0o755
"""Mode of a witness directory this module creates (checkpoints are public)."""
FILE_MODE = 0o644
"""Mode of every checkpoint file (checkpoints are public)."""

_MAX_FETCH_BYTES = 64 * 1024 * 1024
"""The largest ``GET`` answer an HTTP witness reads (about a thousand full-size notes)."""
_MAX_MESSAGE = 200
"""The most characters of foreign text (a response body, a library's message) in an error."""
_LAG_TICK = 5.0
"""While backing off, the lag gauge is refreshed at least this often (seconds)."""
_FILE_PATTERN = re.compile(r"checkpoint-([0-9]{20})\.txt")
_OBJECT_PATTERN = re.compile(r"([0-9]{20})\.txt")
_SIZE_LINE = re.compile(r"0|[1-9][0-9]{0,19}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"(?!/)[^\x00-\x1f\x7f]{0,512}")
_REGION = re.compile(r"[a-z0-9-]{1,32}")
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "x-checkpoint-size"})
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _safe(text: str, limit: int = _MAX_MESSAGE) -> str:
    """``text`` with control characters (newlines too) shown as ``?`` and cut to ``limit``."""
    flat = re.sub(r"[\x00-\x1f\x7f]", "?", text)
    flat = flat.encode("utf-8", "backslashreplace").decode("utf-8")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _note_problem(note: object) -> str | None:
    """Why ``note`` is not a note a witness takes, or None when it is."""
    if not isinstance(note, str):
        return f"note must be text (str), got {type(note).__name__}"
    if not note:
        return "note is empty"
    try:
        size = len(note.encode("utf-8"))
    except UnicodeEncodeError:
        return "note is not valid Unicode text (lone surrogate)"
    if size > MAX_NOTE_BYTES:
        return f"note is {size} bytes, more than the {MAX_NOTE_BYTES} a witness takes"
    found = _CONTROL.search(note)
    if found:
        return f"note holds control character U+{ord(found.group()):04X} (only newline is allowed)"
    if not note.endswith("\n"):
        return "note does not end with a newline"
    if NOTE_SEPARATOR in note[:-1].split("\n"):
        return f"note holds a line {NOTE_SEPARATOR!r} (the separator between notes)"
    return None


def _positive_number(value: object) -> bool:
    """A finite number > 0 (not a bool): what a timeout or a delay must be."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _int_in(value: object, low: int, high: int) -> bool:
    """An integer (not a bool) in ``low..high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _text_matching(value: object, pattern: re.Pattern[str]) -> bool:
    """A string that ``pattern`` matches whole."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _size_problem(size: object) -> str | None:
    if isinstance(size, bool) or not isinstance(size, int):
        return f"size must be an integer, got {type(size).__name__}"
    if not 0 <= size <= MAX_SIZE:
        return f"size {size} is outside 0..{MAX_SIZE}"
    return None


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    """A signed checkpoint as a witness holds it: the tree size it claims and the note's text.

    The note is opaque here (its signature is not checked); it must be UTF-8 text of at most
    64 KiB without control characters other than newline, end with a newline and not hold a
    line ``---``.

    Raises:
        WitnessError: a size outside 0..10**20-1, or a note that is not such text.
    """

    size: int
    note: str

    def __post_init__(self) -> None:
        problem = _size_problem(self.size) or _note_problem(self.note)
        if problem is not None:
            raise WitnessError(f"checkpoint refused: {problem}")

    @property
    def data(self) -> bytes:
        """The note as UTF-8 bytes (what a sink stores)."""
        return self.note.encode("utf-8")


def checkpoint_name(size: int) -> str:
    """The file name of the checkpoint of tree size ``size``: ``checkpoint-<20 digits>.txt``."""
    return f"checkpoint-{size:020d}.txt"


def _decode_note(data: bytes, where: str) -> str:
    if len(data) > MAX_NOTE_BYTES:
        raise WitnessError(f"{where}: more than {MAX_NOTE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessError(f"{where}: not UTF-8 text") from None


def _claimed_size(note: str) -> int:
    """The tree size a checkpoint note claims: its second line (origin, size, root hash)."""
    lines = note.split("\n")
    if len(lines) < 2 or not _SIZE_LINE.fullmatch(lines[1]):
        raise WitnessError("second line is not a tree size (a decimal number)")
    return int(lines[1])


def parse_notes(text: str) -> list[WitnessedCheckpoint]:
    """The notes of an HTTP witness's answer: notes separated by lines holding only ``---``.

    Empty parts (leading, trailing or doubled separators) are skipped. Each note's size is its
    second line. The result is ordered by size (notes of one size keep their order).

    Raises:
        WitnessError: naming every note (1-based) that is malformed.
    """
    if text and not text.endswith("\n"):
        raise WitnessError("answer does not end with a newline")
    chunks: list[list[str]] = [[]]
    for line in text.split("\n")[:-1]:
        if line == NOTE_SEPARATOR:
            chunks.append([])
        else:
            chunks[-1].append(line)
    found: list[WitnessedCheckpoint] = []
    problems: list[str] = []
    for number, lines in enumerate((c for c in chunks if c), start=1):
        note = "\n".join(lines) + "\n"
        try:
            found.append(WitnessedCheckpoint(_claimed_size(note), note))
        except WitnessError as exc:
            problems.append(f"note {number}: {exc}")
    if problems:
        raise WitnessError(_problems_text(problems))
    return sorted(found, key=lambda cp: cp.size)


def format_notes(checkpoints: Iterable[WitnessedCheckpoint]) -> str:
    """Notes joined by ``---`` lines, as an HTTP witness answers ``GET`` (``parse_notes``)."""
    return f"{NOTE_SEPARATOR}\n".join(cp.note for cp in checkpoints)


def _problems_text(problems: Sequence[str], limit: int = 10) -> str:
    text = "; ".join(problems[:limit])
    if len(problems) > limit:
        text += f"; and {len(problems) - limit} more"
    return text


@runtime_checkable
class Witness(Protocol):
    """A sink outside the database that keeps every checkpoint it is given, never overwriting.

    ``name`` is a stable public label (metrics, logs, ``ledger verify``): never a secret.
    ``push`` is idempotent for the same note and raises ``WitnessError`` (``conflict=True``) for
    a different note of a size the sink already holds; any other failure raises
    ``WitnessError`` too. ``fetch`` returns what the sink holds, ordered by size.
    """

    name: str

    async def push(self, cp: WitnessedCheckpoint) -> None:
        """Store ``cp``; raises ``WitnessError`` on failure or conflict."""
        ...

    async def fetch(self) -> list[WitnessedCheckpoint]:
        """Every checkpoint the sink holds, ordered by size; raises ``WitnessError``."""
        ...


def _conflict(name: str, where: str, size: int) -> WitnessError:
    return WitnessError(
        f"{name}: conflict: {where} already holds a different checkpoint for tree size {size} "
        "(evidence of a fork; not overwritten)",
        conflict=True,
    )


# -- directory ---------------------------------------------------------------------------------


class DirectoryWitness:
    """Checkpoints as files ``checkpoint-<size, 20 digits>.txt`` in one directory.

    The directory (and missing parents) is created on the first push, the directory itself
    0755; files are 0644 whatever the umask. A push writes a hidden temporary file, fsyncs it,
    hard-links it to its final name (``os.link`` fails rather than replace an existing file),
    removes the temporary name and fsyncs the directory. The file system must support hard
    links (ext4, xfs, btrfs, NFS do). ``fetch`` ignores files not named ``checkpoint-*.txt``
    (temporary files of an interrupted push among them) and raises ``WitnessError`` naming
    every malformed ``checkpoint-*.txt`` (bad name, not a regular file, not UTF-8, too large,
    not a note), so ``ledger verify --witness`` reports them instead of skipping them.
    """

    def __init__(self, path: Path | str) -> None:
        given: object = path
        if not isinstance(given, (str, Path)) or not str(given):
            raise WitnessError("directory witness: path must be a non-empty path")
        self.path = Path(path)
        self.name = f"dir:{self.path}"

    def __repr__(self) -> str:
        return f"DirectoryWitness({str(self.path)!r})"

    async def push(self, cp: WitnessedCheckpoint) -> None:
        """Write ``cp`` unless the same note is there already; raises ``WitnessError``."""
        await asyncio.to_thread(self._push, cp)

    async def fetch(self) -> list[WitnessedCheckpoint]:
        """Every checkpoint file, ordered by size; raises ``WitnessError``."""
        return await asyncio.to_thread(self._fetch)

    def _ensure_dir(self) -> None:
        if self.path.is_dir():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(self.path, DIR_MODE)
        except FileExistsError:
            return
        os.chmod(self.path, DIR_MODE)  # exactly 0755, whatever the umask
        _fsync_dir(self.path.parent)

    def _read(self, path: Path) -> bytes | None:
        """The bytes of checkpoint file ``path`` (None if absent); refuses links and oddities."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise WitnessError(f"{path.name}: is a symbolic link") from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise WitnessError(f"{path.name}: not a regular file")
            chunks: list[bytes] = []
            total = 0
            while total <= MAX_NOTE_BYTES:
                chunk = os.read(fd, MAX_NOTE_BYTES + 1 - total)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _compare(self, cp: WitnessedCheckpoint, final: Path, existing: bytes) -> None:
        if existing != cp.data:
            raise _conflict(self.name, final.name, cp.size)

    def _push(self, cp: WitnessedCheckpoint) -> None:
        final = self.path / checkpoint_name(cp.size)
        try:
            self._ensure_dir()
            existing = self._existing(final)
            if existing is not None:
                self._compare(cp, final, existing)
                return
            temporary = self.path / f".{final.name}.{secrets.token_hex(8)}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(temporary, flags, FILE_MODE)
            try:
                try:
                    os.fchmod(fd, FILE_MODE)  # exactly 0644, whatever the umask
                    _write_all(fd, cp.data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(temporary, final, follow_symlinks=False)
                except FileExistsError:
                    existing = self._existing(final)
                    if existing is None:  # removed again between the two calls: say so
                        raise WitnessError(
                            f"{self.name}: {final.name} appeared and vanished while writing"
                        ) from None
                    self._compare(cp, final, existing)
                    return
                except OSError as exc:
                    if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS):
                        raise WitnessError(
                            f"{self.name}: cannot link {final.name} into place "
                            f"({exc.strerror}): the directory must support hard links"
                        ) from exc
                    raise
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            _fsync_dir(self.path)
        except OSError as exc:
            raise WitnessError(
                f"{self.name}: cannot write {final.name}: {exc.strerror or type(exc).__name__}"
            ) from exc

    def _existing(self, final: Path) -> bytes | None:
        try:
            return self._read(final)
        except WitnessError as exc:
            raise WitnessError(f"{self.name}: {exc}") from None

    def _fetch(self) -> list[WitnessedCheckpoint]:
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            raise WitnessError(f"{self.name}: the directory does not exist") from None
        except OSError as exc:
            raise WitnessError(f"{self.name}: cannot list: {exc.strerror}") from exc
        found: list[WitnessedCheckpoint] = []
        problems: list[str] = []
        for name in names:
            if not (name.startswith("checkpoint-") and name.endswith(".txt")):
                continue
            shown = _safe(name, 80)
            match = _FILE_PATTERN.fullmatch(name)
            if match is None:
                problems.append(f"{shown}: name is not checkpoint-<20 digits>.txt")
                continue
            try:
                data = self._read(self.path / name)
                if data is None:  # removed while listing
                    continue
                found.append(WitnessedCheckpoint(int(match.group(1)), _decode_note(data, shown)))
            except WitnessError as exc:
                problems.append(str(exc) if str(exc).startswith(shown) else f"{shown}: {exc}")
            except OSError as exc:
                problems.append(f"{shown}: cannot read: {exc.strerror}")
        if problems:
            raise WitnessError(
                f"{self.name}: malformed checkpoint files: {_problems_text(problems)}"
            )
        return sorted(found, key=lambda cp: cp.size)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- HTTP --------------------------------------------------------------------------------------


def _checked_url(url: object, what: str) -> tuple[str, str]:
    """``(url, public label)`` of an http(s) URL without credentials, or ``WitnessError``.

    The label drops the query and fragment (they may carry tokens). Messages never echo the URL.
    """
    if not isinstance(url, str) or not url:
        raise WitnessError(f"{what}: URL must be a non-empty string")
    if _CONTROL.search(url) or any(c.isspace() for c in url):
        raise WitnessError(f"{what}: URL holds whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise WitnessError(f"{what}: URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise WitnessError(
            f"{what}: URL must not carry credentials (user:password@host): secrets never go "
            "in a URL; give a token as a header instead"
        )
    try:
        port = parts.port
    except ValueError:
        raise WitnessError(f"{what}: URL has an invalid port") from None
    if not parts.hostname:
        raise WitnessError(f"{what}: URL has no host")
    del port  # only checked
    return url, f"{parts.scheme}://{parts.netloc}{parts.path}"


def _checked_headers(headers: object) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        raise WitnessError("HTTP witness: headers must be a mapping of names to values")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise WitnessError(f"HTTP witness: invalid header name {_safe(repr(name), 60)}")
        if name.lower() in _RESERVED_HEADERS:
            raise WitnessError(f"HTTP witness: header {name} is set by the witness itself")
        if not isinstance(value, str) or re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
            # the value may be a bearer token: name the header, never show the value
            raise WitnessError(
                f"HTTP witness: header {name} must be a string without control characters"
            )
        checked[name] = value
    return checked


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        buffer += chunk
        if len(buffer) > limit:
            break
    return bytes(buffer)


class HttpWitness:
    """Checkpoints POSTed to an HTTP endpoint that keeps them.

    ``push`` sends ``POST <url>`` with the note as body (``Content-Type: text/plain;
    charset=utf-8``, ``X-Checkpoint-Size: <size>``, plus the configured ``headers``, e.g.
    ``Authorization``); any 2xx means delivered. The endpoint must answer 2xx again for the same
    note and 409 for a different note of a size it holds (raised as a conflict); any other
    status, a redirect included (redirects are not followed), is a failure. ``fetch`` sends
    ``GET <url>`` (same headers) and reads one note, or several separated by a line holding
    only ``---`` (``parse_notes``); each note's size is its second line.

    A URL with credentials in it (``user:pass@``) is refused: give tokens as headers. Header
    values never appear in ``name``, errors or logs (a response body echoing one is masked).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] = _NO_HEADERS,
        timeout: float = 10.0,
    ) -> None:
        self._url, label = _checked_url(url, "HTTP witness")
        self._headers = _checked_headers(headers)
        if not _positive_number(timeout):
            raise WitnessError("HTTP witness: timeout must be a positive number of seconds")
        self._timeout = aiohttp.ClientTimeout(total=float(timeout))
        self.name = f"http:{label}"
        self._secrets = sorted(
            {
                part
                for value in self._headers.values()
                for part in (value, *value.split())
                if len(part) >= 6
            },
            key=len,
            reverse=True,
        )

    def __repr__(self) -> str:
        return f"HttpWitness({self.name!r})"

    def _masked(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _safe(text)

    def _failure(self, action: str, exc: BaseException) -> WitnessError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return WitnessError(f"{self.name}: {action} failed: {self._masked(detail)}")

    async def push(self, cp: WitnessedCheckpoint) -> None:
        """POST ``cp``; raises ``WitnessError`` on a non-2xx answer or a transport failure."""
        headers = {
            **self._headers,
            "Content-Type": "text/plain; charset=utf-8",
            "X-Checkpoint-Size": str(cp.size),
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(
                    self._url, data=cp.data, headers=headers, allow_redirects=False
                ) as response,
            ):
                if 200 <= response.status < 300:
                    return
                status = response.status
                body = await _read_capped(response, 4 * _MAX_MESSAGE)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure("POST", exc) from exc
        text = self._masked(body.decode("utf-8", "replace").strip())
        if status == 409:
            raise WitnessError(
                f"{self.name}: conflict: HTTP 409 for tree size {cp.size} (the endpoint holds a "
                f"different checkpoint of that size: evidence of a fork): {text}",
                conflict=True,
            )
        raise WitnessError(f"{self.name}: POST answered HTTP {status}: {text}")

    async def fetch(self) -> list[WitnessedCheckpoint]:
        """GET the notes the endpoint holds, ordered by size; raises ``WitnessError``."""
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self._url, headers=self._headers, allow_redirects=False) as response,
            ):
                status = response.status
                body = await _read_capped(
                    response, _MAX_FETCH_BYTES if 200 <= status < 300 else 4 * _MAX_MESSAGE
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure("GET", exc) from exc
        if not 200 <= status < 300:
            text = self._masked(body.decode("utf-8", "replace").strip())
            raise WitnessError(f"{self.name}: GET answered HTTP {status}: {text}")
        if len(body) > _MAX_FETCH_BYTES:
            raise WitnessError(f"{self.name}: GET answer is larger than {_MAX_FETCH_BYTES} bytes")
        try:
            return parse_notes(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise WitnessError(f"{self.name}: GET answer is not UTF-8 text") from None
        except WitnessError as exc:
            raise WitnessError(f"{self.name}: malformed GET answer: {exc}") from None


# -- S3 ----------------------------------------------------------------------------------------


class S3Witness:
    """Checkpoints as objects ``<prefix><size, 20 digits>.txt`` in an S3(-compatible) bucket.

    Credentials come only from the standard AWS chain (environment, shared config and
    credentials files, instance or container role), never from arguments. ``push`` puts with
    ``If-None-Match: *`` so an existing object is never replaced; when the bucket answers 412
    the stored object is read and compared (same note: delivered; different: conflict). With
    ``object_lock_days > 0`` the object is put in Object Lock COMPLIANCE mode, retained that
    many days (the bucket must have Object Lock enabled, which also turns on versioning: a
    store that ignored ``If-None-Match`` could then only add a version, never destroy one).
    ``fetch`` lists the prefix (one level), ignores keys not ending in ``.txt`` and raises
    ``WitnessError`` naming malformed ``<prefix>*.txt`` objects. Needs ``boto3``
    (``pip install 'asterisk-recorder[s3]'``); calls run in a thread.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "checkpoints/",
        endpoint_url: str | None = None,
        region: str | None = None,
        object_lock_days: int = 0,
    ) -> None:
        if not _text_matching(bucket, _BUCKET) or ".." in bucket:
            raise WitnessError(
                "S3 witness: bucket must be 3-63 characters of a-z, 0-9, '.' and '-'"
            )
        if not _text_matching(prefix, _PREFIX):
            raise WitnessError(
                "S3 witness: prefix must be at most 512 characters, no control characters, "
                "not starting with '/'"
            )
        if endpoint_url is not None:
            endpoint_url, _ = _checked_url(endpoint_url, "S3 witness endpoint_url")
        if region is not None and not _text_matching(region, _REGION):
            raise WitnessError("S3 witness: region must look like eu-west-1")
        if not _int_in(object_lock_days, 0, 36500):
            raise WitnessError("S3 witness: object_lock_days must be an integer in 0..36500")
        if importlib.util.find_spec("boto3") is None:
            raise WitnessError(
                "S3 witness needs boto3: pip install 'asterisk-recorder[s3]'"
            )
        self.bucket = bucket
        self.prefix = prefix
        self.object_lock_days = object_lock_days
        self._endpoint_url = endpoint_url
        self._region = region
        self.name = f"s3:{bucket}/{prefix}"
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Witness({self.name!r})"

    def key(self, size: int) -> str:
        """The object key of the checkpoint of tree size ``size``."""
        return f"{self.prefix}{size:020d}.txt"

    async def push(self, cp: WitnessedCheckpoint) -> None:
        """Put ``cp`` unless the same note is there already; raises ``WitnessError``."""
        await asyncio.to_thread(self._push, cp)

    async def fetch(self) -> list[WitnessedCheckpoint]:
        """Every checkpoint object under the prefix, ordered by size; raises ``WitnessError``."""
        return await asyncio.to_thread(self._fetch)

    def _s3(self) -> Any:
        with self._client_lock:
            if self._client is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError as exc:
                    raise WitnessError(
                        f"{self.name}: an S3 witness needs boto3: pip install "
                        "'asterisk-recorder[s3]'"
                    ) from exc
                config = Config(
                    connect_timeout=10,
                    read_timeout=10,
                    retries={"max_attempts": 2, "mode": "standard"},
                )
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self._endpoint_url,
                    region_name=self._region,
                    config=config,
                )
            return self._client

    def _failure(self, action: str, exc: Exception) -> WitnessError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            code = _safe(str(error.get("Code", "?")), 60)
            message = _safe(str(error.get("Message", "")), 120)
            return WitnessError(f"{self.name}: {action} failed: {code} (HTTP {status}) {message}")
        detail = f"{type(exc).__name__}: {_safe(str(exc))}"
        return WitnessError(f"{self.name}: {action} failed: {detail}")

    def _status(self, exc: Exception) -> tuple[str, int]:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return "", 0
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code, int(status) if isinstance(status, int) else 0

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._s3().get_object(Bucket=self.bucket, Key=key)
            body = answer["Body"]
            try:
                data = body.read(MAX_NOTE_BYTES + 1)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            code, status = self._status(exc)
            if code in ("NoSuchKey", "404") or status == 404:
                return None
            raise self._failure(f"GET {key}", exc) from exc
        return bytes(data)

    def _push(self, cp: WitnessedCheckpoint) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.key(cp.size)
        data = cp.data
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        arguments: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "Body": data,
            "ContentType": "text/plain; charset=utf-8",
            "ContentMD5": md5,
            "IfNoneMatch": "*",
        }
        if self.object_lock_days:
            arguments["ObjectLockMode"] = "COMPLIANCE"
            arguments["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=self.object_lock_days
            )
        try:
            self._s3().put_object(**arguments)
            return
        except (ClientError, BotoCoreError) as exc:
            code, status = self._status(exc)
            if code != "PreconditionFailed" and status != 412:
                raise self._failure(f"PUT {key}", exc) from exc
        existing = self._get(key)
        if existing is None:
            raise WitnessError(f"{self.name}: PUT {key} answered 412 but the object is not there")
        if existing != data:
            raise _conflict(self.name, key, cp.size)

    def _fetch(self) -> list[WitnessedCheckpoint]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            pages = self._s3().get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            )
            for page in pages:
                keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._failure(f"LIST {self.prefix}", exc) from exc
        found: list[WitnessedCheckpoint] = []
        problems: list[str] = []
        for key in sorted(keys):
            rest = key[len(self.prefix):]
            if not rest.endswith(".txt"):
                continue
            shown = _safe(key, 120)
            match = _OBJECT_PATTERN.fullmatch(rest)
            if match is None:
                problems.append(f"{shown}: key is not {self.prefix}<20 digits>.txt")
                continue
            data = self._get(key)
            if data is None:  # deleted (or hidden by a delete marker) while listing
                continue
            try:
                found.append(WitnessedCheckpoint(int(match.group(1)), _decode_note(data, shown)))
            except WitnessError as exc:
                problems.append(str(exc) if str(exc).startswith(shown) else f"{shown}: {exc}")
        if problems:
            raise WitnessError(
                f"{self.name}: malformed checkpoint objects: {_problems_text(problems)}"
            )
        return sorted(found, key=lambda cp: cp.size)


# -- the pusher --------------------------------------------------------------------------------


class WitnessMetrics(Protocol):
    """Where the pusher reports; ``ops.metrics.RecorderMetrics`` implements it."""

    def witness_delivered(self, witness: str, size: int) -> None:
        """A checkpoint of tree size ``size`` reached ``witness``."""
        ...

    def witness_failed(self, witness: str) -> None:
        """One delivery attempt to ``witness`` failed."""
        ...

    def witness_superseded(self, witness: str, count: int) -> None:
        """``count`` undelivered checkpoints were dropped for newer ones (backlog full)."""
        ...

    def witness_lag(self, witness: str, seconds: float) -> None:
        """Seconds since the oldest checkpoint not yet delivered to ``witness`` was offered."""
        ...


class _NoMetrics:
    def witness_delivered(self, witness: str, size: int) -> None:
        pass

    def witness_failed(self, witness: str) -> None:
        pass

    def witness_superseded(self, witness: str, count: int) -> None:
        pass

    def witness_lag(self, witness: str, seconds: float) -> None:
        pass


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    """Where one sink stands.

    Attributes:
        name: the witness's public label.
        delivered_size: tree size of the newest checkpoint it holds from us (None: none yet).
        pending: checkpoints waiting to be delivered.
        last_error: the last failure (short, safe to show), None after a success.
        lag_seconds: seconds since the oldest checkpoint not yet delivered (nor covered by a
            newer delivered one) was offered; 0 when it is up to date.
        failures: failed attempts so far.
        superseded: undelivered checkpoints dropped for newer ones (backlog over the limit).
        conflicts: checkpoints the sink refused because it holds a different note of that size
            (evidence of a fork; they are not retried).
    """

    name: str
    delivered_size: int | None
    pending: int
    last_error: str | None
    lag_seconds: float
    failures: int = 0
    superseded: int = 0
    conflicts: int = 0


@dataclass(slots=True, eq=False)
class _Item:
    checkpoint: WitnessedCheckpoint
    offered_at: float


@dataclass(slots=True, eq=False)
class _Sink:
    witness: Witness
    name: str
    queue: deque[_Item] = dataclasses.field(default_factory=deque)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    in_flight: _Item | None = None
    behind_since: float | None = None
    """Offer time of the oldest checkpoint not covered by a delivered one."""
    dropped_behind_in_flight: float | None = None
    delivered_size: int | None = None
    last_error: str | None = None
    failures: int = 0
    superseded: int = 0
    conflicts: int = 0
    task: asyncio.Task[None] | None = None

    def lag(self, now: float) -> float:
        return 0.0 if self.behind_since is None else max(0.0, now - self.behind_since)


def _backoff(attempt: int, initial: float, maximum: float, rng: Callable[[], float]) -> float:
    """Delay before retry ``attempt`` (0-based): ``min(max, initial*2**n)`` x U(0.5, 1)."""
    ceiling = min(maximum, initial * (2.0 ** min(attempt, 40)))
    return ceiling * (0.5 + 0.5 * rng())


class WitnessPusher:
    """Delivers every offered checkpoint to every witness, in the background, in order.

    One task per witness pushes its backlog oldest first, retrying a failure with jittered
    exponential backoff (``retry_initial`` doubling up to ``retry_max`` seconds, times
    U(0.5, 1)). A backlog over ``max_backlog`` (100) drops its oldest undelivered checkpoints
    (never the one being pushed): the newest checkpoint commits to every earlier entry, so
    nothing is lost but granularity; each drop is counted as superseded. A conflict (the sink
    holds a different note of that size) is logged as an error, counted and not retried.
    ``offer`` never blocks and never raises. ``close`` lets the tasks deliver what they can
    for ``close_timeout`` seconds (a failure ends a task's run at once), then cancels them.
    """

    def __init__(
        self,
        witnesses: Sequence[Witness],
        *,
        metrics: WitnessMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_initial: float = 1.0,
        retry_max: float = 300.0,
        max_backlog: int = MAX_BACKLOG,
        close_timeout: float = 5.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        names = [w.name for w in witnesses]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise WitnessError(f"witnesses configured twice: {', '.join(duplicates)}")
        for label, value in (("retry_initial", retry_initial), ("retry_max", retry_max)):
            if not _positive_number(value):
                raise WitnessError(f"witness pusher: {label} must be a positive number")
        if not _positive_number(close_timeout):
            raise WitnessError("witness pusher: close_timeout must be a positive number")
        if retry_max < retry_initial:
            raise WitnessError("witness pusher: retry_max must be >= retry_initial")
        if not _int_in(max_backlog, 1, 10**6):
            raise WitnessError("witness pusher: max_backlog must be a positive integer")
        self._sinks = [_Sink(witness=w, name=w.name) for w in witnesses]
        self._metrics: WitnessMetrics = metrics if metrics is not None else _NoMetrics()
        self._clock = clock
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._max_backlog = max_backlog
        self._close_timeout = close_timeout
        self._rng = rng
        self._closing = asyncio.Event()
        self._started = False
        self._closed = False
        for sink in self._sinks:
            self._metrics.witness_lag(sink.name, 0.0)

    async def __aenter__(self) -> WitnessPusher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def names(self) -> list[str]:
        """The witnesses' labels, in configuration order."""
        return [sink.name for sink in self._sinks]

    async def start(self) -> None:
        """Start one delivery task per witness (again: no-op; after close: ``WitnessError``)."""
        if self._closed:
            raise WitnessError("witness pusher: start after close")
        if self._started:
            return
        self._started = True
        for sink in self._sinks:
            sink.task = asyncio.create_task(self._run(sink), name=f"witness {sink.name}")

    def offer(self, cp: WitnessedCheckpoint) -> None:
        """Queue ``cp`` for every witness; returns at once, never raises."""
        try:
            given: object = cp
            if not isinstance(given, WitnessedCheckpoint):
                _log.error("ledger.witness.offer_refused", type=type(given).__name__)
                return
            if self._closed or self._closing.is_set():
                _log.warning("ledger.witness.offer_after_close", size=cp.size)
                return
            now = self._clock()
            for sink in self._sinks:
                self._enqueue(sink, cp, now)
        except Exception as exc:  # offer is called from the checkpointer: it must never fail
            _log.error("ledger.witness.offer_failed", error=type(exc).__name__)

    def _enqueue(self, sink: _Sink, cp: WitnessedCheckpoint, now: float) -> None:
        newest = sink.queue[-1].checkpoint if sink.queue else None
        if newest == cp:
            return
        sink.queue.append(_Item(cp, now))
        if sink.behind_since is None:
            sink.behind_since = now
        dropped = 0
        while len(sink.queue) > self._max_backlog:
            if sink.queue[0] is sink.in_flight:
                victim = sink.queue[1]
                del sink.queue[1]
                if sink.dropped_behind_in_flight is None:
                    sink.dropped_behind_in_flight = victim.offered_at
            else:
                sink.queue.popleft()
            dropped += 1
        if dropped:
            sink.superseded += dropped
            self._metrics.witness_superseded(sink.name, dropped)
            _log.warning(
                "ledger.witness.superseded", witness=sink.name, dropped=dropped, newest=cp.size
            )
        sink.wake.set()
        self._metrics.witness_lag(sink.name, sink.lag(now))

    def status(self) -> list[WitnessStatus]:
        """Where every witness stands (also refreshes the lag gauges)."""
        now = self._clock()
        report = []
        for sink in self._sinks:
            lag = sink.lag(now)
            self._metrics.witness_lag(sink.name, lag)
            report.append(
                WitnessStatus(
                    name=sink.name,
                    delivered_size=sink.delivered_size,
                    pending=len(sink.queue),
                    last_error=sink.last_error,
                    lag_seconds=lag,
                    failures=sink.failures,
                    superseded=sink.superseded,
                    conflicts=sink.conflicts,
                )
            )
        return report

    def lagging(self, max_lag: float) -> list[str]:
        """Names of the witnesses whose lag exceeds ``max_lag`` seconds (for ``/readyz``)."""
        return [s.name for s in self.status() if s.lag_seconds > max_lag]

    async def close(self) -> None:
        """Deliver what can be delivered within ``close_timeout``, then cancel the tasks."""
        self._closed = True
        self._closing.set()
        tasks = [s.task for s in self._sinks if s.task is not None]
        for sink in self._sinks:
            sink.wake.set()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self._close_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sink in self._sinks:
            if sink.queue:
                _log.warning(
                    "ledger.witness.undelivered", witness=sink.name, pending=len(sink.queue)
                )

    async def _run(self, sink: _Sink) -> None:
        attempt = 0
        while True:
            if not sink.queue:
                if self._closing.is_set():
                    return
                sink.wake.clear()
                await sink.wake.wait()
                continue
            item = sink.queue[0]
            sink.in_flight = item
            sink.dropped_behind_in_flight = None
            try:
                await sink.witness.push(item.checkpoint)
            except asyncio.CancelledError:
                raise
            except WitnessError as exc:
                error, conflict = _safe(str(exc)), exc.conflict
            except Exception as exc:  # a third-party witness: report the type only
                error, conflict = f"{sink.name}: unexpected {type(exc).__name__}", False
            else:
                self._delivered(sink, item)
                if attempt:
                    _log.info(
                        "ledger.witness.recovered", witness=sink.name, size=item.checkpoint.size
                    )
                attempt = 0
                continue
            finally:
                sink.in_flight = None
            sink.failures += 1
            sink.last_error = error
            self._metrics.witness_failed(sink.name)
            if conflict:
                sink.conflicts += 1
                with contextlib.suppress(ValueError):
                    sink.queue.remove(item)
                _log.error(
                    "ledger.witness.conflict",
                    witness=sink.name,
                    size=item.checkpoint.size,
                    error=error,
                )
                continue
            _log.warning(
                "ledger.witness.failed",
                witness=sink.name,
                size=item.checkpoint.size,
                attempt=attempt + 1,
                error=error,
            )
            if self._closing.is_set():
                return
            delay = _backoff(attempt, self._retry_initial, self._retry_max, self._rng)
            await self._back_off(sink, delay)
            attempt += 1

    def _delivered(self, sink: _Sink, item: _Item) -> None:
        size = item.checkpoint.size
        if sink.delivered_size is None or size > sink.delivered_size:
            sink.delivered_size = size
        sink.last_error = None
        with contextlib.suppress(ValueError):
            sink.queue.remove(item)
        if sink.dropped_behind_in_flight is not None:
            sink.behind_since = sink.dropped_behind_in_flight
        elif sink.queue:
            sink.behind_since = sink.queue[0].offered_at
        else:
            sink.behind_since = None
        sink.dropped_behind_in_flight = None
        self._metrics.witness_delivered(sink.name, size)
        self._metrics.witness_lag(sink.name, sink.lag(self._clock()))

    async def _back_off(self, sink: _Sink, delay: float) -> None:
        """Sleep ``delay`` seconds (less when closing), refreshing the lag gauge meanwhile."""
        remaining = delay
        while remaining > 0:
            step = min(remaining, _LAG_TICK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), step)
                return
            remaining -= step
            self._metrics.witness_lag(sink.name, sink.lag(self._clock()))
