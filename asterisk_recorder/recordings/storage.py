"""Where sealed recordings live: the local sealed directory, or an S3(-compatible) bucket.

This module owns the ``SealedStore`` protocol and its two backends. ``LocalStore`` is
``recordings.sealed_dir`` itself (a location is a path relative to it and can never escape
it); ``S3Store`` keeps each envelope as one object ``s3://bucket/prefix/YYYY/MM/DD/<name>.arrec``,
put once (``If-None-Match: *``) with its MD5 and SHA-256, optionally under Object Lock
COMPLIANCE until a date the caller hands in, read back with ranged GETs (``open`` returns a
seekable reader that fetches only what is read, so ``decrypt_range`` fetches only the chunks a
range covers), and deleted only when no lock holds it (``StoreLocked`` says until when).
Every method blocks (call it from a thread: ``asyncio.to_thread``). Credentials come only from
the standard AWS chain (environment, shared files, instance role), never from arguments,
settings or locations. The envelope is already encrypted: nothing is asked of the server
beyond storing bytes. This module must not decide when to upload or delete (the sealer and
disposal do) and must not write ledger facts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, runtime_checkable

from asterisk_recorder.errors import (
    StoreError,
    StoreLocked,
    StoreMissing,
    StoreUnavailable,
)
from asterisk_recorder.recordings import files
from asterisk_recorder.settings import RecordingsSettings

__all__ = [
    "MAX_SINGLE_PUT",
    "LocalStore",
    "RangeReader",
    "S3Store",
    "SealedStore",
    "StoredObject",
    "Stores",
    "parse_s3_location",
    "stores_from_settings",
]

MAX_SINGLE_PUT = 5 * 1024**3
"""S3's limit for one PUT (5 GiB); an hour of 8 kHz WAV is about 58 MB."""
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9._/-]{0,512}")
_REGION = re.compile(r"[a-z0-9-]{1,32}")
_MIN_FETCH = 4096
_READ_AHEAD_START = 256 * 1024
_READ_AHEAD_MAX = 8 * 1024 * 1024
_SEQUENTIAL_BEFORE_READ_AHEAD = 3


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a store holds at one location.

    Attributes:
        location: the location (``YYYY/MM/DD/<name>.arrec`` locally, ``s3://...`` in S3).
        size: bytes.
        sha256: hex SHA-256 of the whole object when the store keeps it (S3), else ``None``.
        retain_until: Object Lock retain-until date (UTC), ``None`` when not locked.
        lock_mode: ``COMPLIANCE`` (or ``GOVERNANCE``) when locked, else ``None``.
    """

    location: str
    size: int
    sha256: str | None = None
    retain_until: datetime | None = None
    lock_mode: str | None = None

    def locked(self, now: datetime) -> bool:
        """Object Lock still keeps it at ``now``."""
        return self.retain_until is not None and self.retain_until > now


@runtime_checkable
class SealedStore(Protocol):
    """Where sealed envelopes are kept. Every method blocks; locations are strings.

    ``name`` is for logs and metrics (no credential); ``remote`` is true when a file must be
    uploaded (and the local copy then removed) to be in this store.
    """

    name: str
    remote: bool

    def location_for(self, relative: str) -> str:
        """The location a sealed file ``YYYY/MM/DD/<name>.arrec`` gets in this store."""
        ...

    def put(
        self, local: Path, relative: str, *, retain_until: datetime | None = None
    ) -> StoredObject:
        """Store the finished sealed file ``local`` as ``relative``; verified (size and
        checksum read back) before it returns. Putting the same bytes again is fine; other
        bytes at that location are a ``StoreError``."""
        ...

    def open(self, location: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A seekable binary reader of ``location`` (``StoreMissing`` when absent)."""
        ...

    def stat(self, location: str) -> StoredObject | None:
        """What is at ``location``, or ``None``."""
        ...

    def exists(self, location: str) -> bool:
        """Something is at ``location``."""
        ...

    def delete(self, location: str, *, now: datetime | None = None) -> bool:
        """Delete ``location`` (every version of it). False when it was not there; raises
        ``StoreLocked`` (nothing deleted) while Object Lock keeps it."""
        ...


def _check_relative(relative: str) -> PurePosixPath:
    """A relative location below the store's root (no ``..``, not absolute, not empty)."""
    if not relative or relative in (".", "/"):
        raise StoreError(f"{relative!r} is no location of a sealed recording")
    if any(ord(c) < 32 or c == "\x7f" for c in relative) or "\\" in relative:
        raise StoreError(f"{relative!r} contains control characters or backslashes")
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or "." in relative.split("/"):
        raise StoreError(f"{relative!r} is not below the store (absolute, or '..')",
                         location=relative)
    return path


# -- the local directory --------------------------------------------------------------------


class LocalStore:
    """``recordings.sealed_dir``: a location is a path relative to it (never outside it)."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.name = f"local:{self.root}"

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path_of(self, location: str) -> Path:
        """The file of ``location``; ``StoreError`` when it would be outside the root."""
        if location.startswith("s3://"):
            raise StoreError(f"{location} is in S3, not in {self.root}", location=location)
        path = self.root / _check_relative(location)
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise StoreError(f"{location} leads outside {self.root} (a link?): refused",
                             location=location)
        return path

    def location_for(self, relative: str) -> str:
        return str(_check_relative(relative))

    def put(
        self, local: Path, relative: str, *, retain_until: datetime | None = None
    ) -> StoredObject:
        """A file already at ``relative`` is kept as it is; another is copied there durably
        (0600, never overwriting). ``retain_until`` is ignored: a directory has no lock."""
        target = self.path_of(relative)
        location = self.location_for(relative)
        if os.path.realpath(local) != os.path.realpath(target):
            if target.exists():
                raise StoreError(f"{location} exists in {self.root}: not overwritten",
                                 location=location)
            files.durable_dirs(target.parent, self.root, private=True)
            partial = target.with_name(f".{target.name}.tmp")
            try:
                with open(local, "rb") as src, files.create_output(partial) as dst:
                    while block := src.read(1 << 20):
                        dst.write(block)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.link(partial, target)  # fails if target appeared meanwhile
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)
            files.fsync_dir(target.parent)
        size = os.stat(target).st_size
        if size != os.stat(local).st_size:
            raise StoreError(f"{location}: {size} bytes stored, {os.stat(local).st_size} sent",
                             location=location)
        return StoredObject(location, size)

    @contextlib.contextmanager
    def open(self, location: str) -> Iterator[BinaryIO]:
        path = self.path_of(location)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise StoreMissing(f"no sealed recording at {path}", location=location) from exc
        with handle:
            yield handle

    def stat(self, location: str) -> StoredObject | None:
        try:
            return StoredObject(location, os.stat(self.path_of(location)).st_size)
        except FileNotFoundError:
            return None

    def exists(self, location: str) -> bool:
        return self.stat(location) is not None

    def delete(self, location: str, *, now: datetime | None = None) -> bool:
        path = self.path_of(location)
        if not path.exists():
            return False
        files.durable_unlink(path)
        return True


# -- S3 ---------------------------------------------------------------------------------------


def parse_s3_location(location: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; ``StoreError`` when it is not one."""
    if not location.startswith("s3://"):
        raise StoreError(f"{location!r} is not an s3:// location")
    bucket, _, key = location[len("s3://"):].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise StoreError(f"{location!r} does not name a valid S3 bucket", location=location)
    _check_relative(key)
    return bucket, key


class RangeReader(io.RawIOBase):
    """A seekable, read-only view of one S3 object version that fetches with ranged GETs.

    A read after a seek fetches exactly what is asked (at least 4 KiB, so a header is one
    GET); only after three reads in a row does it read ahead (256 KiB, doubling up to 8 MiB),
    so ``verify`` streams in a few large GETs while ``decrypt_range`` fetches only the chunks
    its range covers. Every GET carries ``If-Match`` with the ETag seen at open: an object
    replaced meanwhile is an error, never a mix. ``fetches`` lists the byte ranges fetched
    ``(start, end)`` and ``fetched_bytes`` their total (for tests and benchmarks).
    """

    def __init__(self, store: S3Store, bucket: str, key: str, size: int, etag: str,
                 version_id: str | None) -> None:
        super().__init__()
        self._store = store
        self._bucket = bucket
        self._key = key
        self._size = size
        self._etag = etag
        self._version = version_id
        self._pos = 0
        self._buffer = b""
        self._buffer_start = 0
        self._last_end = -1
        self._streak = 0
        self._ahead = 0
        self.fetches: list[tuple[int, int]] = []
        self.fetched_bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._pos + offset
        elif whence == os.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"bad whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = target
        return target

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self._size - self._pos))
        if want == 0:
            return 0
        sequential = self._pos == self._last_end
        self._streak = self._streak + 1 if sequential else 0
        done = 0
        start = self._pos
        offset = start - self._buffer_start
        if 0 <= offset < len(self._buffer):
            piece = self._buffer[offset:offset + want]
            view[:len(piece)] = piece
            done = len(piece)
        if done < want:
            begin = start + done
            length = want - done
            if self._streak >= _SEQUENTIAL_BEFORE_READ_AHEAD:
                self._ahead = min(_READ_AHEAD_MAX, max(self._ahead * 2, _READ_AHEAD_START))
            else:
                self._ahead = 0
            fetch = min(max(length, _MIN_FETCH, self._ahead), self._size - begin)
            data = self._store.get_range(self._bucket, self._key, begin, begin + fetch,
                                         etag=self._etag, version_id=self._version)
            self.fetches.append((begin, begin + len(data)))
            self.fetched_bytes += len(data)
            self._buffer, self._buffer_start = data, begin
            piece = data[:length]
            view[done:done + len(piece)] = piece
            done += len(piece)
        self._pos = start + done
        self._last_end = self._pos
        return done


class S3Store:
    """Sealed envelopes as objects ``<prefix>YYYY/MM/DD/<name>.arrec`` in one bucket.

    Args:
        bucket: the bucket (3-63 of a-z, 0-9, '.', '-').
        prefix: key prefix (``recordings/``; empty for none).
        endpoint_url: an S3-compatible server (``None``: AWS).
        region: the bucket's region (``None``: the AWS configuration's).
        object_lock_days: default Object Lock COMPLIANCE retention of a put that gets no
            ``retain_until`` (0: no lock unless the caller asks for one).
        clock: ``datetime`` now, UTC (tests pass a fixed one).
    """

    remote = True

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        object_lock_days: int = 0,
        clock: Any = None,
    ) -> None:
        if not _BUCKET.fullmatch(str(bucket)) or ".." in bucket:
            raise StoreError("S3 store: bucket must be 3-63 characters of a-z, 0-9, '.', '-'")
        if not _PREFIX.fullmatch(str(prefix)) or (
                ".." in prefix.split("/")) or prefix.startswith("/"):
            raise StoreError("S3 store: prefix must be letters, digits, '.', '_', '/', '-' "
                             "(not starting with '/', no '..')")
        if endpoint_url is not None and not re.fullmatch(r"https?://[^\s@/]+(/[^\s@]*)?",
                                                         endpoint_url):
            raise StoreError("S3 store: endpoint_url must be http(s)://host[:port] without "
                             "credentials")
        if region is not None and not _REGION.fullmatch(region):
            raise StoreError("S3 store: region must look like eu-west-1")
        if type(object_lock_days) is not int or not 0 <= object_lock_days <= 36500:
            raise StoreError("S3 store: object_lock_days must be an integer in 0..36500")
        self.bucket = bucket
        self.prefix = (prefix.rstrip("/") + "/") if prefix.strip("/") else ""
        self.object_lock_days = object_lock_days
        self.name = f"s3:{bucket}/{self.prefix}"
        self._endpoint_url = endpoint_url
        self._region = region
        self._clock = clock or (lambda: datetime.now(UTC))
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store({self.name!r})"

    def sibling(self, bucket: str) -> S3Store:
        """The same server and settings, another bucket (older locations in the ledger)."""
        return S3Store(bucket, endpoint_url=self._endpoint_url, region=self._region,
                       object_lock_days=self.object_lock_days, clock=self._clock)

    # -- locations --

    def location_for(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{_check_relative(relative)}"

    def _key(self, location: str) -> str:
        bucket, key = parse_s3_location(location)
        if bucket != self.bucket:
            raise StoreError(f"{location} is in bucket {bucket}, not {self.bucket}",
                             location=location)
        return key

    # -- the client --

    def _s3(self) -> Any:
        with self._client_lock:
            if self._client is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError as exc:
                    raise StoreError("the S3 store needs boto3: pip install "
                                     "'asterisk-recorder[s3]'") from exc
                config = Config(
                    connect_timeout=5,
                    read_timeout=30,
                    retries={"max_attempts": 2, "mode": "standard"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self._endpoint_url, region_name=self._region,
                    config=config,
                )
            return self._client

    def _failure(self, action: str, location: str, exc: Exception) -> StoreError:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = _safe(str(error.get("Code", "?")), 60)
            message = _safe(str(error.get("Message", "")), 160)
            text = f"{self.name}: {action} {location} failed: {code} (HTTP {status}) {message}"
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                return StoreMissing(text, location=location)
            if isinstance(status, int) and (status >= 500 or code in (
                    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "RequestTimeout", "SlowDown", "ServiceUnavailable")):
                return StoreUnavailable(text, location=location)
            return StoreError(text, location=location)
        text = f"{self.name}: {action} {location} failed: {type(exc).__name__}: {_safe(str(exc))}"
        return StoreUnavailable(text, location=location)

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    # -- the protocol --

    def put(
        self, local: Path, relative: str, *, retain_until: datetime | None = None
    ) -> StoredObject:
        """PUT with ``If-None-Match: *``, ``Content-MD5``, ``x-amz-checksum-sha256`` and the
        SHA-256 in the metadata; with a lock (``retain_until``, else ``object_lock_days``)
        in COMPLIANCE mode. A 412 (already there) is fine when size and SHA-256 match. Then
        HEAD: the size and the checksum must be what was sent.

        Raises:
            StoreUnavailable: the server did not answer (retry later).
            StoreError: refused (no such bucket, no Object Lock on it, access denied), other
                bytes already at the location, or the object read back differs.
        """
        location = self.location_for(relative)
        key = self._key(location)
        size, md5, sha256 = _digests(local)
        if size > MAX_SINGLE_PUT:
            raise StoreError(f"{local} is {size} bytes: more than one S3 PUT takes (5 GiB)",
                             location=location)
        if retain_until is None and self.object_lock_days:
            retain_until = self._clock() + timedelta(days=self.object_lock_days)
        arguments: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentLength": size,
            "ContentType": "application/octet-stream",
            "ContentMD5": base64.b64encode(md5).decode("ascii"),
            "ChecksumSHA256": base64.b64encode(sha256).decode("ascii"),
            "Metadata": {"sha256": sha256.hex()},
            "IfNoneMatch": "*",
        }
        if retain_until is not None:
            arguments["ObjectLockMode"] = "COMPLIANCE"
            arguments["ObjectLockRetainUntilDate"] = retain_until.astimezone(UTC)
        errors = self._errors()
        try:
            with open(local, "rb") as body:
                self._s3().put_object(Body=body, **arguments)
        except errors as exc:
            code, status = _status(exc)
            if code != "PreconditionFailed" and status != 412:
                raise self._failure("PUT", location, exc) from exc
        stored = self.stat(location)
        if stored is None:
            raise StoreError(f"{self.name}: {location} is not there after its PUT",
                             location=location)
        if stored.size != size or stored.sha256 != sha256.hex():
            raise StoreError(
                f"{self.name}: {location} holds {stored.size} bytes, SHA-256 "
                f"{(stored.sha256 or 'unknown')[:16]}..., not the {size} bytes, "
                f"{sha256.hex()[:16]}... of {local.name}: another object at this location",
                location=location)
        return stored

    def _head(
        self, key: str, location: str, version_id: str | None = None
    ) -> dict[str, Any] | None:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if version_id is not None:
            arguments["VersionId"] = version_id
        try:
            head: dict[str, Any] = self._s3().head_object(**arguments)
        except self._errors() as exc:
            failure = self._failure("HEAD", location, exc)
            if isinstance(failure, StoreMissing):
                return None
            raise failure from exc
        return head

    def _object(self, location: str, head: dict[str, Any]) -> StoredObject:
        sha = None
        checksum = head.get("ChecksumSHA256")
        if isinstance(checksum, str) and "-" not in checksum:
            with contextlib.suppress(ValueError):
                sha = base64.b64decode(checksum).hex()
        metadata = head.get("Metadata") or {}
        if sha is None and isinstance(metadata.get("sha256"), str):
            sha = metadata["sha256"]
        until = head.get("ObjectLockRetainUntilDate")
        return StoredObject(
            location=location,
            size=int(head.get("ContentLength", 0)),
            sha256=sha,
            retain_until=until.astimezone(UTC) if isinstance(until, datetime) else None,
            lock_mode=head.get("ObjectLockMode") if isinstance(until, datetime) else None,
        )

    def stat(self, location: str) -> StoredObject | None:
        key = self._key(location)
        head = self._head(key, location)
        return None if head is None else self._object(location, head)

    def exists(self, location: str) -> bool:
        return self.stat(location) is not None

    @contextlib.contextmanager
    def open(self, location: str) -> Iterator[BinaryIO]:
        key = self._key(location)
        head = self._head(key, location)
        if head is None:
            raise StoreMissing(f"{self.name}: no object at {location}", location=location)
        reader = RangeReader(self, self.bucket, key, int(head.get("ContentLength", 0)),
                             str(head.get("ETag", "")), head.get("VersionId"))
        try:
            yield reader  # type: ignore[misc]  # a RawIOBase is a binary reader
        finally:
            reader.close()

    def get_range(self, bucket: str, key: str, start: int, end: int, *, etag: str,
                  version_id: str | None) -> bytes:
        """Bytes ``[start, end)`` of the object (one ranged GET, ``If-Match`` its ETag)."""
        location = f"s3://{bucket}/{key}"
        arguments: dict[str, Any] = {"Bucket": bucket, "Key": key,
                                     "Range": f"bytes={start}-{end - 1}"}
        if etag:
            arguments["IfMatch"] = etag
        if version_id:
            arguments["VersionId"] = version_id
        try:
            answer = self._s3().get_object(**arguments)
            body = answer["Body"]
            try:
                data = bytes(body.read())
            finally:
                body.close()
        except self._errors() as exc:
            raise self._failure(f"GET bytes {start}-{end - 1} of", location, exc) from exc
        if len(data) != end - start:
            raise StoreError(f"{self.name}: GET {location} bytes {start}-{end - 1} returned "
                             f"{len(data)} bytes", location=location)
        return data

    def delete(self, location: str, *, now: datetime | None = None) -> bool:
        """Delete every version of ``location`` (and its delete markers), so the bytes are
        really gone (a plain DELETE in a versioned bucket, as Object Lock makes every bucket,
        only hides them). Every version is checked first: one under a lock (COMPLIANCE or
        GOVERNANCE retention not passed, or a legal hold) raises ``StoreLocked`` with its
        retain-until date and nothing is deleted.

        Raises:
            StoreLocked: Object Lock keeps a version (S3 refuses to delete it; so do we).
            StoreUnavailable / StoreError: as ``put``.
        """
        key = self._key(location)
        now = now or self._clock()
        versions: list[str | None] = []
        try:
            pages = self._s3().get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=key)
            for page in pages:
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if entry.get("Key") == key:
                        versions.append(entry.get("VersionId"))
        except self._errors() as exc:
            raise self._failure("LIST versions of", location, exc) from exc
        if not versions:
            return False
        for version in versions:
            head = self._head(key, location, version) if version not in (None, "null") else \
                self._head(key, location)
            if head is None:
                continue  # a delete marker has no HEAD
            stored = self._object(location, head)
            if stored.locked(now):
                raise StoreLocked(
                    f"{location} is under Object Lock {stored.lock_mode} until "
                    f"{stored.retain_until:%Y-%m-%d %H:%M:%S} UTC: nobody can delete it before "
                    "then; nothing was deleted", location=location,
                    retain_until=stored.retain_until or now)
            if head.get("ObjectLockLegalHoldStatus") == "ON":
                raise StoreLocked(f"{location} is under an S3 legal hold: nothing was deleted",
                                  location=location, retain_until=now)
        for version in versions:
            arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if version is not None:
                arguments["VersionId"] = version
            try:
                self._s3().delete_object(**arguments)
            except self._errors() as exc:
                code, _status_code = _status(exc)
                if code == "AccessDenied":
                    raise StoreLocked(f"{location}: S3 refused to delete a version (Object "
                                      "Lock)", location=location, retain_until=now) from exc
                raise self._failure("DELETE", location, exc) from exc
        return True


def _digests(path: Path) -> tuple[int, bytes, bytes]:
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while block := src.read(1 << 20):
            md5.update(block)
            sha.update(block)
            size += len(block)
    return size, md5.digest(), sha.digest()


def _status(exc: Exception) -> tuple[str, int]:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", 0
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code, status if isinstance(status, int) else 0


def _safe(text: str, limit: int = 200) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned[:limit]


# -- from the settings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stores:
    """The store new recordings go to (``primary``) and a way to reach any location the
    ledger names (older ones may be local, or in another bucket)."""

    primary: SealedStore
    local: LocalStore

    def for_location(self, location: str) -> SealedStore:
        """The store that holds ``location``."""
        if location.startswith("s3://"):
            bucket, _key = parse_s3_location(location)
            primary = self.primary
            if isinstance(primary, S3Store):
                return primary if primary.bucket == bucket else primary.sibling(bucket)
            return S3Store(bucket)
        return self.local


def stores_from_settings(settings: RecordingsSettings) -> Stores:
    """``recordings.store`` (``local`` or ``s3://bucket/prefix``) with its endpoint, region
    and Object Lock days; the local store is ``recordings.sealed_dir``."""
    local = LocalStore(Path(settings.sealed_dir))
    if settings.store == "local":
        return Stores(local, local)
    bucket, _, prefix = settings.store[len("s3://"):].partition("/")
    return Stores(
        S3Store(bucket, prefix=prefix, endpoint_url=settings.store_s3_endpoint or None,
                region=settings.store_s3_region or None,
                object_lock_days=settings.store_object_lock_days),
        local,
    )
