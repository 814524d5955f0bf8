"""What a recording file says about itself: size, format, sample rate, duration, completeness.

This module owns ``probe`` (read a recording's header without trusting it) and ``write_wav``
(a PCM WAV writer the fake Asterisk and the tests use to put real audio where MixMonitor would).
Asterisk's ``wav`` format writes a 44-byte header whose RIFF and data lengths stay 0 while the
file is being recorded and are filled in when MixMonitor closes it
(``docs/recordings.md``), so a complete header is itself evidence that the file was closed.
Other formats (``sln``, ``gsm``, ...) carry no header: only their size and extension are known.
Blocking file I/O; callers run it in a thread. It must not move, change or delete files.
"""

from __future__ import annotations

import array
import math
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WAV_HEADER_BYTES", "RecordingProbe", "probe", "tone_pcm", "write_wav"]

WAV_HEADER_BYTES = 44
"""Size of the canonical PCM header Asterisk writes (RIFF, fmt of 16 bytes, data)."""

_HEAD_READ = 4096


@dataclass(frozen=True, slots=True)
class RecordingProbe:
    """What one recording file says about itself.

    Attributes:
        size: bytes on disk.
        format: ``wav`` when the file is a RIFF/WAVE file, else its extension (``sln``, ...).
        sample_rate / channels / bits: from the ``fmt`` chunk (``None`` when not a WAV).
        audio_bytes: bytes of audio (the data chunk as far as the file holds it).
        duration_s: audio length in seconds (``None`` when the rate is unknown).
        header_complete: the RIFF and data lengths match the file (MixMonitor closed it);
            ``None`` for formats without a header.
        empty: no audio at all (zero-length, or a header with no samples).
        data_offset: where the samples start in a WAV file (``None``: not a WAV, no data chunk).
    """

    size: int
    format: str
    sample_rate: int | None
    channels: int | None
    bits: int | None
    audio_bytes: int
    duration_s: float | None
    header_complete: bool | None
    empty: bool
    data_offset: int | None = None


def _extension(path: Path) -> str:
    return path.suffix.lstrip(".").lower() or "raw"


def probe(path: Path) -> RecordingProbe:
    """Read ``path``'s header (at most 4 KiB) and size.

    Raises:
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(_HEAD_READ)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return RecordingProbe(
            size=size,
            format=_extension(path),
            sample_rate=None,
            channels=None,
            bits=None,
            audio_bytes=size,
            duration_s=None,
            header_complete=None if size else False,
            empty=size == 0 or (_extension(path) == "wav" and size <= WAV_HEADER_BYTES),
        )
    riff_size = struct.unpack_from("<I", head, 4)[0]
    rate: int | None = None
    channels: int | None = None
    bits: int | None = None
    data_offset: int | None = None
    data_size = 0
    offset = 12
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        chunk_size = struct.unpack_from("<I", head, offset + 4)[0]
        body = offset + 8
        if chunk_id == b"fmt " and body + 16 <= len(head):
            _fmt, channels, rate, _byte_rate, _align, bits = struct.unpack_from(
                "<HHIIHH", head, body
            )
        elif chunk_id == b"data":
            data_offset, data_size = body, chunk_size
            break
        offset = body + chunk_size + (chunk_size & 1)
    if data_offset is None:
        audio = 0
        complete = False
    else:
        audio = max(0, size - data_offset)
        complete = data_size == audio and riff_size == size - 8
    duration: float | None = None
    if rate and channels and bits:
        duration = round(audio / (rate * channels * (bits // 8 or 1)), 3)
    return RecordingProbe(
        size=size,
        format="wav",
        sample_rate=rate,
        channels=channels,
        bits=bits,
        audio_bytes=audio,
        duration_s=duration,
        header_complete=complete,
        empty=audio == 0,
        data_offset=data_offset,
    )


def tone_pcm(seconds: float, *, rate: int = 8000, frequency: float = 440.0) -> bytes:
    """``seconds`` of a sine tone as 16-bit little-endian mono PCM at ``rate`` Hz."""
    count = int(seconds * rate)
    step = 2 * math.pi * frequency / rate
    samples = array.array("h", (int(12000 * math.sin(step * i)) for i in range(count)))
    if sys.byteorder != "little":  # pragma: no cover - WAV is little-endian
        samples.byteswap()
    return samples.tobytes()


def write_wav(path: Path, pcm: bytes, *, rate: int = 8000, complete: bool = True) -> None:
    """Write a 16-bit mono PCM WAV at ``path`` (parents created).

    ``complete=False`` writes what MixMonitor leaves while still recording: the samples with
    RIFF and data lengths 0.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    data_len = len(pcm) if complete else 0
    riff_len = 36 + len(pcm) if complete else 0
    header = (
        b"RIFF"
        + struct.pack("<I", riff_len)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_len)
    )
    with open(path, "wb") as handle:
        handle.write(header)
        handle.write(pcm)
