"""The sealer's file-system layer: durable renames, private directories, who has a file open.

This module owns the few blocking file operations whose order makes the sealer crash-safe
(``fsync_file``, ``fsync_dir``, ``durable_move``, ``durable_unlink``, ``write_json_durably``),
``private_dir`` (0700 whatever the umask) and ``open_for_writing`` (a ``/proc`` look for another
process writing a file). It also owns the sealer's test hooks: ``crash_point`` kills the process
with SIGKILL at a named step when ``ASTERISK_RECORDER_TEST_SEALER_CRASH`` names it, and
``injected_fault`` raises ``ENOSPC`` in the sealed file's ``os.write`` (``create_output``) while
``ASTERISK_RECORDER_TEST_SEALER_FAULT=enospc:<n>`` allows (the crash tests run the real sealer
and restart it). It must not decide anything.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "CRASH_ENV",
    "CRASH_POINTS",
    "FAULT_ENV",
    "crash_point",
    "create_output",
    "durable_dirs",
    "durable_move",
    "durable_unlink",
    "fsync_dir",
    "fsync_file",
    "injected_fault",
    "open_for_writing",
    "private_dir",
    "write_json_durably",
]

CRASH_ENV = "ASTERISK_RECORDER_TEST_SEALER_CRASH"
"""Test hook: SIGKILL the sealer at this step (one of ``CRASH_POINTS``)."""
FAULT_ENV = "ASTERISK_RECORDER_TEST_SEALER_FAULT"
"""Test hook: ``enospc:<n>`` makes the first n seal attempts fail with ENOSPC."""
CRASH_POINTS = (
    "closed", "midfile", "temp", "pending", "renamed", "unlinked", "sealed", "quarantine_fact",
    "uploaded", "stored",
)
"""The steps of sealing a file, in order (``docs/recordings.md``); ``uploaded`` (the object is
in the store, no ``recording.stored`` yet) and ``stored`` (the fact written, the local copy not
removed yet) are the steps of an upload to an S3 store."""

_faults_used: dict[str, int] = {}
_durable: set[Path] = set()  # directories whose entries this process made durable


def crash_point(name: str) -> None:
    """SIGKILL this process when the crash hook names ``name`` (no-op otherwise)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def injected_fault(kind: str) -> None:
    """Raise the fault the fault hook asks for, while its count lasts (no-op otherwise).

    Raises:
        OSError: ``ENOSPC`` for ``enospc``.
    """
    value = os.environ.get(FAULT_ENV, "")
    name, _, count = value.partition(":")
    if name != kind:
        return
    allowed = int(count or "1")
    used = _faults_used.get(kind, 0)
    if used >= allowed:
        return
    _faults_used[kind] = used + 1
    raise OSError(errno.ENOSPC, "No space left on device (injected by the test hook)")


class _Output(io.RawIOBase):
    """A new file written with ``os.write``; the disk-full test hook strikes here, mid-file."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._written = 0

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: ReadableBuffer, /) -> int:
        if self._written:  # after the first block: the file is half written when it strikes
            injected_fault("enospc")
            crash_point("midfile")
        count = os.write(self._fd, data)
        self._written += count
        return count

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()


def create_output(path: Path) -> io.BufferedWriter:
    """Create ``path`` (it must not exist; mode 0600) as a buffered binary file.

    Raises:
        FileExistsError: ``path`` exists.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    return io.BufferedWriter(_Output(fd), buffer_size=1 << 16)


def fsync_file(path: Path) -> None:
    """fsync ``path``'s data and metadata."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """fsync ``directory`` so entries created, renamed or removed in it survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(directory: Path) -> Path:
    """Create ``directory`` (and parents) and make ``directory`` itself mode 0700."""
    directory.mkdir(parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o777 != 0o700:
        directory.chmod(0o700)
    return directory


def durable_dirs(directory: Path, top: Path, *, private: bool = False) -> Path:
    """Create ``directory`` below the existing ``top`` level by level, fsyncing each level's
    parent, so a file renamed into a new ``YYYY/MM/DD`` survives a crash with its directories
    (fsyncing the file's own directory does not make that directory's entry durable). With
    ``private`` every level is mode 0700. Levels already made durable by this process are not
    fsynced again.

    Raises:
        ValueError: ``directory`` is not below ``top``.
        OSError: a level cannot be created.
    """
    relative = directory.relative_to(top)
    if ".." in relative.parts:
        raise ValueError(f"{directory} is not below {top}")
    current = top
    for part in relative.parts:
        parent, current = current, current / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(current, 0o700)
        if private and current.stat().st_mode & 0o777 != 0o700:
            current.chmod(0o700)
        if current not in _durable:
            fsync_dir(parent)
            _durable.add(current)
    return directory


def durable_move(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` (a new name) durably; across file systems (``EXDEV``) copy
    to a 0600 temporary name beside ``target``, fsync, rename, fsync, then unlink ``source``.

    The sealer itself moves no plaintext (quarantine seals, docs/recordings.md); this is the
    one cross-directory move it offers.

    Raises:
        FileExistsError: ``target`` exists.
        OSError: the move failed (``source`` is then still in place, no partial copy left).
    """
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "target exists", str(target))
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = target.with_name(f".{target.name}.tmp")
        try:
            _copy_private(source, partial)
            os.rename(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        fsync_dir(target.parent)
        os.unlink(source)
    fsync_dir(target.parent)
    fsync_dir(source.parent)


def _copy_private(source: Path, target: Path) -> None:
    """Copy ``source`` into the new file ``target`` (mode 0600, created exclusively), fsynced."""
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while block := src.read(1 << 20):
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)


def durable_unlink(path: Path) -> None:
    """Remove ``path`` (gone already is fine) and fsync its directory."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fsync_dir(path.parent)


def write_json_durably(path: Path, value: Mapping[str, object]) -> None:
    """Write ``value`` as JSON at ``path`` via a temporary name, fsync, rename, fsync dir."""
    temp = path.with_name(f".{path.name}.tmp")
    data = json.dumps(value, sort_keys=True, ensure_ascii=True).encode("ascii")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, path)
    fsync_dir(path.parent)


def open_for_writing(path: Path) -> bool:
    """True when a process this one may inspect has ``path`` open for writing.

    Reads ``/proc/<pid>/fd`` and ``fdinfo``; processes of other users are invisible without
    privileges, so run the sealer as the Asterisk user (or root) for this to see MixMonitor.
    """
    try:
        target = os.path.realpath(path)
        pids = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return False
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") != target:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                    for line in info:
                        if line.startswith("flags:"):
                            flags = int(line.split()[1], 8)
                            if flags & (os.O_WRONLY | os.O_RDWR):
                                return True
            except (OSError, ValueError):
                continue
    return False
