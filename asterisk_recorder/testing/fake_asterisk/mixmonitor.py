"""What MixMonitor leaves on disk, for the fake: a real 8 kHz WAV written like Asterisk does.

This module owns ``FakeRecording``: opened at ``RECORDER_FILE`` (parents created) when the fake
continues a channel whose ``RECORDER_DECISION`` is ``record``, it writes a 44-byte header whose
RIFF and data lengths stay 0 and some seconds of a 440 Hz tone (16-bit mono), and keeps the
file open; ``close()`` (the fake's hang-up) fills in the lengths and closes it, as MixMonitor
does at ``StopMixMonitor``. So the sealer sees the same file states as on a real Asterisk.
Blocking file I/O of a few kilobytes, done on the fake's loop. It must not validate the path
beyond what dialplan would (an absolute path): the tests choose it.
"""

from __future__ import annotations

import array
import math
import struct
import sys
from pathlib import Path
from typing import BinaryIO

__all__ = ["RATE", "FakeRecording"]

RATE = 8000
"""Samples per second of the fake's recordings."""


def _tone(seconds: float) -> bytes:
    step = 2 * math.pi * 440.0 / RATE
    samples = array.array("h", (int(9000 * math.sin(step * i)) for i in range(int(seconds * RATE))))
    if sys.byteorder != "little":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    return samples.tobytes()


class FakeRecording:
    """One recording being written (see the module docstring)."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - open until hang-up
        header = (b"RIFF" + struct.pack("<I", 0) + b"WAVEfmt "
                  + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
                  + b"data" + struct.pack("<I", 0))
        self._file.write(header)
        pcm = _tone(seconds)
        self._file.write(pcm)
        self._file.flush()
        self.audio_bytes = len(pcm)

    def close(self) -> None:
        """Fill in the header's lengths and close the file (safe to call twice)."""
        handle, self._file = self._file, None
        if handle is None:
            return
        try:
            handle.seek(4)
            handle.write(struct.pack("<I", 36 + self.audio_bytes))
            handle.seek(40)
            handle.write(struct.pack("<I", self.audio_bytes))
        finally:
            handle.close()
