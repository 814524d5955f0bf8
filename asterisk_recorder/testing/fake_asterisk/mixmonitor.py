"""What MixMonitor leaves on disk, for the fake: a real 8 kHz WAV written like Asterisk does.

This module owns ``FakeRecording``: opened at ``RECORDER_FILE`` (parents created) when the fake
continues a channel whose ``RECORDER_DECISION`` is ``record``, it writes a 44-byte header whose
RIFF and data lengths stay 0 and a 440 Hz tone (16-bit mono, not a DTMF frequency), and keeps
the file open; ``close()`` (the fake's hang-up) fills in the lengths and closes it, as
MixMonitor does at ``StopMixMonitor``. So the sealer sees the same file states as on a real
Asterisk. Two lengths:

* ``seconds`` given: that many seconds of tone, written at once (the fake's historical mode);
* ``seconds`` None: the audio follows the wall clock from start to ``close()``, written as
  time passes (at every mute change and at close), as a real MixMonitor's file grows.

``mute(direction, on)`` is ``MixMonitorMute``: the tone is the sum of the two directions (half
each), so a ``both`` mute writes exact digital zero while the timeline keeps its length. As
measured on Asterisk 22 (``shared/research/asterisk-behaviour-2.md`` section 2), a mute at
wall time *t* after the start shows in the file at *t* + ``MUTE_LAG`` (0.22 s). Blocking file
I/O of a few kilobytes, done on the fake's loop. It must not validate the path beyond what
dialplan would (an absolute path): the tests choose it.
"""

from __future__ import annotations

import array
import itertools
import math
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["DIRECTIONS", "MUTE_LAG", "RATE", "TONE_HZ", "FakeRecording"]

RATE = 8000
"""Samples per second of the fake's recordings."""
TONE_HZ = 440.0
"""The recorded signal: far from every DTMF row (697-941 Hz) and column (1209-1633 Hz)."""
MUTE_LAG = 0.22
"""Seconds between a mute on the wall clock and the silence in the file (measured: +0.22 s)."""
DIRECTIONS = ("read", "write")
"""MixMonitor's two audio directions; ``both`` is the two of them."""
_AMPLITUDE = 9000


def _header() -> bytes:
    return (b"RIFF" + struct.pack("<I", 0) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
            + b"data" + struct.pack("<I", 0))


class FakeRecording:
    """One recording being written (see the module docstring).

    Args:
        path: where the WAV goes (parents are created).
        seconds: a fixed length of tone, or None for a length that follows ``clock``.
        clock: monotonic seconds (tests may pass their own to place mutes exactly).
    """

    def __init__(self, path: Path, seconds: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.seconds = seconds
        self._clock = clock
        self.started = clock()
        """The clock reading when the recording started."""
        self.closed_at: float | None = None
        self._spans: dict[str, list[list[float]]] = {d: [] for d in DIRECTIONS}
        """Per direction, [start, end] wall offsets of its mutes (end inf while muted)."""
        self._written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - open until hang-up
        self._file.write(_header())
        self._extend(RATE * seconds if seconds is not None else 0.0)

    @property
    def audio_bytes(self) -> int:
        """Bytes of PCM written so far."""
        return self._written * 2

    @property
    def is_open(self) -> bool:
        """True until ``close()``."""
        return self._file is not None

    def muted(self, direction: str) -> bool:
        """Whether ``direction`` (``read`` or ``write``) is muted now."""
        spans = self._spans[direction]
        return bool(spans) and spans[-1][1] == math.inf

    def mute(self, direction: str, on: bool) -> None:
        """``MixMonitorMute``: mute (``on``) or unmute ``read``, ``write`` or ``both``, now.

        Raises:
            ValueError: another direction.
        """
        names = DIRECTIONS if direction.lower() == "both" else (direction.lower(),)
        if any(name not in DIRECTIONS for name in names):
            raise ValueError(f"direction {direction!r} is not read, write or both")
        if self._file is None:
            return
        at = self._clock() - self.started
        for name in names:
            spans = self._spans[name]
            if on and not self.muted(name):
                spans.append([at, math.inf])
            elif not on and self.muted(name):
                spans[-1][1] = at
        if self.seconds is None:
            self._extend(RATE * at)

    def silent_spans(self) -> tuple[tuple[float, float], ...]:
        """Where the file is digital zero (both directions muted), in file seconds.

        A span still open ends at the end of the file (or infinity while recording).
        """
        out = [(_position(s) / RATE, math.inf if e == math.inf else _position(e) / RATE)
               for s, e in self._both_muted()]
        if self._file is None:
            length = self._written / RATE
            out = [(s, min(e, length)) for s, e in out if s < length]
        return tuple(out)

    def close(self) -> None:
        """Write the rest of the audio, fill in the header's lengths, close (safe twice)."""
        if self._file is None:
            return
        self.closed_at = self._clock()
        if self.seconds is None:
            self._extend(RATE * (self.closed_at - self.started))
        else:  # the tone was written at start: silence what mutes covered since
            self._rewrite_muted()
        handle, self._file = self._file, None
        try:
            handle.seek(4)
            handle.write(struct.pack("<I", 36 + self.audio_bytes))
            handle.seek(40)
            handle.write(struct.pack("<I", self.audio_bytes))
        finally:
            handle.close()

    # --- the signal ---------------------------------------------------------------------

    def _both_muted(self) -> list[tuple[float, float]]:
        """Wall offsets where read and write are both muted."""
        out: list[tuple[float, float]] = []
        for rs, re in self._spans["read"]:
            for ws, we in self._spans["write"]:
                start, end = max(rs, ws), min(re, we)
                if start < end:
                    out.append((start, end))
        return sorted(out)

    def _muted_samples(self, direction: str) -> list[tuple[int, int]]:
        """[first, last) file samples silenced in ``direction`` (a mute shows ``MUTE_LAG`` late)."""
        return [(_position(s), _position(e)) for s, e in self._spans[direction]]

    def _samples(self, first: int, last: int) -> bytes:
        """The PCM of file samples [first, last): the tone, halved or zeroed where muted."""
        muted = {d: self._muted_samples(d) for d in DIRECTIONS}
        cuts = {first, last}
        for spans in muted.values():
            for a, b in spans:
                cuts.update(c for c in (a, b) if first < c < last)
        out = array.array("h")
        edges = sorted(cuts)
        for a, b in itertools.pairwise(edges):
            live = sum(1 for d in DIRECTIONS if not any(s <= a < e for s, e in muted[d]))
            if live == 0:
                out.extend(array.array("h", bytes(2 * (b - a))))
                continue
            table = _TABLES[live]
            offset = a % len(table)
            reps = (b - a + offset) // len(table) + 1
            out.extend((table * reps)[offset:offset + b - a])
        if sys.byteorder != "little":  # pragma: no cover - WAV is little-endian
            out.byteswap()
        return out.tobytes()

    def _extend(self, to_sample: float) -> None:
        """Append the audio up to sample ``to_sample`` (file position)."""
        last = int(to_sample)
        if self._file is None or last <= self._written:
            return
        self._file.write(self._samples(self._written, last))
        self._file.flush()
        self._written = last

    def _rewrite_muted(self) -> None:
        """Overwrite the written audio where a mute applies (fixed-length recordings)."""
        assert self._file is not None
        for d in DIRECTIONS:
            for first, last in self._muted_samples(d):
                first, last = max(0, first), min(self._written, last)
                if first < last:
                    self._file.seek(44 + 2 * first)
                    self._file.write(self._samples(first, last))
        self._file.seek(0, 2)


def _position(wall: float) -> int:
    """The file sample where something at wall offset ``wall`` shows (inf: never)."""
    if wall == math.inf:
        return sys.maxsize
    return round((wall + MUTE_LAG) * RATE)


def _table(gain: float) -> array.array[int]:
    """One exact period of the tone at ``gain`` (440 Hz at 8 kHz repeats every 200 samples)."""
    period = 200
    step = 2 * math.pi * TONE_HZ / RATE
    return array.array("h", (int(_AMPLITUDE * gain * math.sin(step * i)) for i in range(period)))


_TABLES = {len(DIRECTIONS): _table(1.0), 1: _table(0.5)}
"""The tone with both directions live, and with one of them muted."""
