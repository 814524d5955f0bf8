"""Fixes from a review of asterisk_recorder/recordings/: descriptors, directory fsync, names
that reach paths, links in the recording directory, key files written completely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
