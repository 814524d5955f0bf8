"""Fixes from a review of asterisk_recorder/recordings/: descriptors, directory fsync, names
that reach paths, links in the recording directory, key files written completely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asterisk_recorder.recordings import files
from asterisk_recorder.recordings.inotify import CloseWatcher


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_watcher_that_cannot_start_leaves_no_inotify_descriptor(tmp_path: Path) -> None:
    """start() outside a running event loop fails and closes its inotify descriptor."""
    watcher = CloseWatcher(tmp_path, lambda _path: None)
    before = open_fds()
    for _ in range(5):
        with pytest.raises(RuntimeError):
            watcher.start()
    assert open_fds() <= before
    assert watcher.watching == 0
    watcher.close()  # still safe


def test_durable_dirs_creates_each_level_private_and_refuses_a_path_outside_its_top(
    tmp_path: Path,
) -> None:
    """New YYYY/MM/DD levels are created (0700 when private), twice is fine, outside refused."""
    top = tmp_path / "quarantine"
    top.mkdir(mode=0o700)
    made = files.durable_dirs(top / "2026" / "12" / "04", top, private=True)
    assert made.is_dir()
    for level in (top / "2026", top / "2026" / "12", made):
        assert level.stat().st_mode & 0o777 == 0o700
    assert files.durable_dirs(made, top, private=True) == made
    with pytest.raises(ValueError, match=r"not below|is not in the subpath"):
        files.durable_dirs(tmp_path / "elsewhere", top)
    with pytest.raises(ValueError, match="not below"):
        files.durable_dirs(top / ".." / "escape", top)
    assert not (tmp_path / "escape").exists()
