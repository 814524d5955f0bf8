"""Private local files of the ledger: modes that do not depend on the process's umask.

This module owns creating the spool directory (mode 0700) and the files in it (spool, quarantine,
digest key: mode 0600) with exactly those modes whatever the umask (a shell's 022 as well as the
systemd unit's 0077), and telling whether an existing directory is open to other users. It only
ever tightens what it creates or the files it owns by name: it never changes the mode of a
directory it did not create (an operator's ``spool_dir`` may be a shared directory). Blocking
file I/O. It must not know what the files contain.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "ensure_private_dir",
    "make_private",
    "open_private",
    "shared_mode",
]

DIR_MODE = 0o700
"""Mode of the spool directory when this package creates it."""
FILE_MODE = 0o600
"""Mode of every file this package creates in it."""


def ensure_private_dir(directory: Path) -> bool:
    """Create ``directory`` (missing parents with the default mode) as 0700; True if created now.

    An existing directory is left as it is (see ``shared_mode``).

    Raises:
        OSError: it cannot be created.
    """
    if directory.is_dir():
        return False
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory, DIR_MODE)  # never wider than 0700, whatever the umask
    except FileExistsError:
        return False
    os.chmod(directory, DIR_MODE)  # exactly 0700, whatever the umask
    return True


def make_private(fd: int) -> None:
    """Give the open file ``fd`` mode 0600 unless it already has it."""
    if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
        os.fchmod(fd, FILE_MODE)


def open_private(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)`` and make the file 0600; return the descriptor.

    Raises:
        OSError: the file cannot be opened or its mode set.
    """
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        make_private(fd)
    except OSError:
        os.close(fd)
        raise
    return fd


def shared_mode(directory: Path) -> int | None:
    """The mode of ``directory`` when group or others may enter or read it, else ``None``.

    ``None`` too when it cannot be examined (absent, or a path through a file): the spool itself
    reports that when it is first written.
    """
    try:
        mode = stat.S_IMODE(directory.stat().st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None
