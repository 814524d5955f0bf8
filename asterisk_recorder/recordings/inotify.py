"""Linux inotify over ``ctypes``: learn the moment a recording file is closed after writing.

This module owns ``CloseWatcher``: a recursive watch of one directory tree that reports every
regular file closed after writing (``IN_CLOSE_WRITE``) or moved in (``IN_MOVED_TO``), and adds a
watch to every directory created below it (MixMonitor creates ``YYYY/MM/DD`` as it goes). It
uses libc's ``inotify_init1``/``inotify_add_watch`` directly (no third-party package) and reads
the descriptor from the asyncio loop. It must not decide anything about the files: a file
created in a new directory before its watch existed is not reported here, which is why the
sealer also scans (``docs/recordings.md``). Events can also be lost when the kernel queue
overflows (``IN_Q_OVERFLOW``): ``overflowed`` tells, and the sealer scans again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Callable
from pathlib import Path

from asterisk_recorder.errors import RecorderError

__all__ = ["CloseWatcher", "InotifyUnavailable"]

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
_EVENT = struct.Struct("iIII")


class InotifyUnavailable(RecorderError):
    """inotify cannot be used here (not Linux, no libc symbol, or the watch limit is reached)."""


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError) as exc:
        raise InotifyUnavailable(f"inotify is not available: {exc}") from exc
    return libc


class CloseWatcher:
    """Report files closed after writing anywhere below ``root``.

    ``on_closed(path)`` is called from the event loop for each ``IN_CLOSE_WRITE`` or
    ``IN_MOVED_TO`` of a regular file; ``on_directory(path)`` for each new directory (after its
    watch is added, so the caller can scan it for files that arrived before). Use
    ``start()`` inside a running loop and ``close()`` after.

    Raises:
        InotifyUnavailable: from ``start`` when inotify cannot be initialised.
    """

    def __init__(
        self,
        root: Path,
        on_closed: Callable[[Path], None],
        on_directory: Callable[[Path], None] | None = None,
    ) -> None:
        self.root = root
        self._on_closed = on_closed
        self._on_directory = on_directory
        self._fd = -1
        self._libc: ctypes.CDLL | None = None
        self._watches: dict[int, Path] = {}
        self._buffer = b""
        self.overflowed = False

    @property
    def watching(self) -> int:
        """How many directories are watched."""
        return len(self._watches)

    def start(self) -> None:
        """Open the inotify descriptor and watch ``root`` and every directory below it."""
        self._libc = _libc()
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise InotifyUnavailable(f"inotify_init1 failed: {os.strerror(code)}")
        self._fd = fd
        try:
            self._add_tree(self.root)
            asyncio.get_running_loop().add_reader(fd, self._readable)
        except BaseException:  # no descriptor left behind when the watch cannot start
            self._fd = -1
            self._watches.clear()
            os.close(fd)
            raise

    def close(self) -> None:
        """Stop watching; safe to call twice."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        with contextlib.suppress(RuntimeError):  # no running loop any more
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        self._watches.clear()

    def _add(self, directory: Path) -> bool:
        assert self._libc is not None
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(directory), _MASK)
        if wd < 0:
            code = ctypes.get_errno()
            if code == errno.ENOSPC:
                raise InotifyUnavailable(
                    f"cannot watch {directory}: the inotify watch limit is reached "
                    "(raise fs.inotify.max_user_watches)"
                )
            return False  # gone already, or not a directory: the scan covers it
        self._watches[wd] = directory
        return True

    def _add_tree(self, top: Path) -> None:
        if not self._add(top):
            return
        for dirpath, dirnames, _files in os.walk(top):
            for name in dirnames:
                self._add(Path(dirpath) / name)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            return
        self._buffer += data
        while len(self._buffer) >= _EVENT.size:
            wd, mask, _cookie, length = _EVENT.unpack_from(self._buffer)
            end = _EVENT.size + length
            if len(self._buffer) < end:
                break
            raw_name = self._buffer[_EVENT.size : end].rstrip(b"\0")
            self._buffer = self._buffer[end:]
            self._event(wd, mask, os.fsdecode(raw_name))

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            self.overflowed = True
            return
        if mask & IN_IGNORED:
            self._watches.pop(wd, None)
            return
        directory = self._watches.get(wd)
        if directory is None or not name:
            return
        path = directory / name
        if mask & IN_ISDIR:
            if mask & (IN_CREATE | IN_MOVED_TO):
                try:
                    self._add_tree(path)
                except InotifyUnavailable:  # watch limit: the caller's full scans find it
                    self.overflowed = True
                if self._on_directory is not None:
                    self._on_directory(path)
            return
        if mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
            self._on_closed(path)
