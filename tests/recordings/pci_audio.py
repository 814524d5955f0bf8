"""Test audio for the PCI check: speech-like voiced sound, DTMF presses, digital silence."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from asterisk_recorder.recordings.pci import COLUMNS, KEYS, ROWS

__all__ = ["RATE", "dtmf", "mix", "pcm", "speech"]

RATE = 8000


def speech(seconds: float, *, rate: int = RATE, seed: int = 1,
           f0: float = 120.0) -> npt.NDArray[np.float64]:
    """Voiced, syllable-like sound: a harmonic-rich glottal source with a wandering pitch,
    four syllables a second, and breath noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pitch = f0 * (1 + 0.25 * np.sin(2 * np.pi * 0.3 * t + seed))
    phase = np.cumsum(2 * np.pi * pitch / rate)
    source = sum(np.sin(h * phase) / h for h in range(1, 30))
    envelope = (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    return 3000.0 * source * envelope + rng.normal(0.0, 200.0, n)


def dtmf(digit: str, seconds: float = 0.08, *, amplitude: float = 6000.0,
         rate: int = RATE) -> npt.NDArray[np.float64]:
    """One DTMF tone pair (ITU-T Q.23 frequencies)."""
    row = next(i for i, keys in enumerate(KEYS) if digit in keys)
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * (np.sin(2 * np.pi * ROWS[row] * t)
                        + np.sin(2 * np.pi * COLUMNS[KEYS[row].index(digit)] * t))


def mix(base: npt.NDArray[np.float64], digits: str, at: float, *, gap: float = 0.15,
        rate: int = RATE, amplitude: float = 6000.0) -> npt.NDArray[np.float64]:
    """``base`` with ``digits`` pressed from ``at`` seconds, one every ``gap`` seconds."""
    out = base.copy()
    for i, digit in enumerate(digits):
        tone = dtmf(digit, amplitude=amplitude, rate=rate)
        start = int((at + i * gap) * rate)
        out[start:start + tone.size] += tone
    return out


def pcm(signal: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    """Clipped 16-bit samples."""
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)
