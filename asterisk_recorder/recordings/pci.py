"""The PCI check of one recording's samples: paused spans are digital zero, no DTMF elsewhere.

This module owns the pure part of the post-close PCI check (issue 17, research section 4):

* ``find_dtmf``: a Goertzel detector over 16-bit linear samples (8 or 16 kHz). A tone pair is
  a *digit* when, in at least two consecutive half-overlapping blocks of 25.6 ms (>= 38 ms
  of tone, ITU-T Q.24 asks receivers to accept 40 ms), the strongest row and column tones
  hold most of the block's energy, each stands clear of its group, the twist is within
  +8/-4 dB, and neither tone has a strong second harmonic (voiced speech has one; a DTMF
  generator does not). Consecutive blocks of the same digit are one press.
* ``check_spans``: each paused span ``(start, end)`` (seconds from the recording's start by
  wall clock) must be covered by one run of exact digital zero that starts and ends within
  ``tolerance`` of the span (Asterisk's ``MixMonitorMute`` writes zeros with a constant
  +0.22 s offset, asterisk-behaviour-2.md section 2). MixMonitor writes only the frames that
  pass: while no media flows (before the far side answers, say) nothing is written, so the
  file can run up to ``drift`` seconds behind the wall clock (``drift`` = the recording's wall
  time minus its length, measured by the caller). The zero run may then start and end up to
  ``drift`` earlier, and be up to ``drift`` shorter, than the span; never later, never longer
  than ``tolerance`` allows. Measured on a real Asterisk 22: the far side answered 0.7 s after
  MixMonitor started, and a 5.0 s pause at 2.0 s was zero at 1.53-6.50 s of the file.
* ``check_samples``: both, with the *allowed windows*: the paused spans themselves, and the
  ``FEATURE_WINDOW`` seconds before each pause where the agent's feature code (``*81``) may
  be heard on an inband leg.

It must not read files, write facts or decide what a failure does (``pcicheck`` reads the
WAV, the sealer quarantines or attests). numpy is the only dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DETECTOR",
    "FEATURE_WINDOW",
    "DtmfHit",
    "PciResult",
    "SpanCheck",
    "check_samples",
    "check_spans",
    "find_dtmf",
]

DETECTOR = "goertzel-v1"
"""The name and version of this detector, written into the ledger with every result."""

FEATURE_WINDOW = 1.5
"""Seconds before a pause in which DTMF is allowed (the feature code that asked for it)."""

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")

_BLOCK_8K = 205  # the classic Goertzel block at 8 kHz: bins close to every DTMF tone
_MIN_RMS = 100.0  # about -50 dBFS: quieter blocks are not looked at
_SHARE = 0.60  # the two tones hold at least this share of the block's energy
_CLEAR = 4.0  # the strongest tone of a group is 6 dB above the next of that group
_TWIST_HIGH = 10 ** (8 / 10)  # column louder than row: at most +8 dB
_TWIST_LOW = 10 ** (-4 / 10)  # row louder than column: at most 4 dB
_HARMONIC = 0.25  # a tone's second harmonic stays 6 dB under it

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class DtmfHit:
    """One DTMF press found in the audio.

    Attributes:
        digit: ``0``-``9``, ``*``, ``#`` or ``A``-``D``.
        start_s: where the press starts, seconds into the file.
        end_s: where it ends.
    """

    digit: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class SpanCheck:
    """What the file holds where a pause was.

    Attributes:
        start_s / end_s: the paused span from the ledger (seconds from the recording's start).
        silent: one run of exact zero covers the span within the tolerance.
        zero_start_s / zero_end_s: the longest run of zero overlapping the span (None: none).
    """

    start_s: float
    end_s: float
    silent: bool
    zero_start_s: float | None
    zero_end_s: float | None

    def text(self) -> str:
        """``start-end:silent`` or ``start-end:NOT silent (zero a-b)``, for the ledger."""
        span = f"{self.start_s:.2f}-{self.end_s:.2f}"
        if self.silent:
            return f"{span}:silent"
        if self.zero_start_s is None or self.zero_end_s is None:
            return f"{span}:NOT silent (no zero run)"
        return f"{span}:NOT silent (zero {self.zero_start_s:.2f}-{self.zero_end_s:.2f})"


@dataclass(frozen=True, slots=True)
class PciResult:
    """The PCI check of one recording.

    Attributes:
        spans: one check per paused span, in order.
        hits: DTMF presses outside the allowed windows.
        allowed: DTMF presses inside them (reported, not a failure).
        duration_s: the audio looked at.
    """

    spans: tuple[SpanCheck, ...]
    hits: tuple[DtmfHit, ...]
    allowed: tuple[DtmfHit, ...]
    duration_s: float

    @property
    def passed(self) -> bool:
        """Every paused span is silent and no DTMF was found outside the allowed windows."""
        return not self.hits and all(span.silent for span in self.spans)

    def reason(self) -> str:
        """One line for a quarantine or an alert (empty when passed)."""
        parts = []
        loud = [span for span in self.spans if not span.silent]
        if loud:
            parts.append(f"{len(loud)} paused span(s) not digital silence: "
                         + ", ".join(span.text() for span in loud[:3]))
        if self.hits:
            first = self.hits[0]
            parts.append(f"{len(self.hits)} DTMF press(es) in unpaused audio, the first at "
                         f"{first.start_s:.2f} s")
        return "; ".join(parts)


def _goertzel(blocks: npt.NDArray[np.float64], freqs: npt.NDArray[np.float64],
              rate: int) -> npt.NDArray[np.float64]:
    """Power of every block (rows) at every frequency (columns): the Goertzel recurrence run
    over the block's samples, all blocks and frequencies at once."""
    n = blocks.shape[1]
    k = np.round(freqs * n / rate)
    coeff = 2.0 * np.cos(2.0 * np.pi * k / n)
    s1 = np.zeros((blocks.shape[0], freqs.size))
    s2 = np.zeros_like(s1)
    for i in range(n):
        s0 = blocks[:, i : i + 1] + coeff * s1 - s2
        s2 = s1
        s1 = s0
    power: npt.NDArray[np.float64] = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return power


def find_dtmf(samples: Samples, rate: int) -> list[DtmfHit]:
    """Every DTMF press in ``samples`` (mono, 16-bit) at ``rate`` Hz (8000 or 16000)."""
    if rate not in (8000, 16000):
        raise ValueError(f"the DTMF detector runs at 8 or 16 kHz, not {rate} Hz")
    n = _BLOCK_8K * rate // 8000
    hop = n // 2
    if samples.size < n:
        return []
    count = (samples.size - n) // hop + 1
    index = np.arange(n)[None, :] + hop * np.arange(count)[:, None]
    blocks = samples.astype(np.float64)[index]
    energy = np.einsum("ij,ij->i", blocks, blocks)
    loud = energy > (_MIN_RMS * _MIN_RMS) * n
    digits = np.full(count, -1)
    if loud.any():
        chosen = np.flatnonzero(loud)
        tones = np.array(ROWS + COLUMNS)
        power = _goertzel(blocks[chosen], np.concatenate([tones, 2 * tones]), rate)
        share = 2.0 * power / (n * energy[chosen][:, None])
        row_share, col_share = share[:, 0:4], share[:, 4:8]
        harmonic = share[:, 8:16]
        r = row_share.argmax(axis=1)
        c = col_share.argmax(axis=1)
        picked = np.arange(chosen.size)
        rp = row_share[picked, r]
        cp = col_share[picked, c]
        row_next = np.sort(row_share, axis=1)[:, -2]
        col_next = np.sort(col_share, axis=1)[:, -2]
        ok = (
            (rp + cp >= _SHARE)
            & (rp >= _CLEAR * row_next)
            & (cp >= _CLEAR * col_next)
            & (cp <= _TWIST_HIGH * rp)
            & (cp >= _TWIST_LOW * rp)
            & (harmonic[picked, r] <= _HARMONIC * rp)
            & (harmonic[picked, 4 + c] <= _HARMONIC * cp)
        )
        digits[chosen[ok]] = (r * 4 + c)[ok]
    return _presses(digits, hop, n, rate)


def _presses(digits: npt.NDArray[np.int64], hop: int, n: int, rate: int) -> list[DtmfHit]:
    """Runs of at least two blocks of the same digit, as presses."""
    hits: list[DtmfHit] = []
    i = 0
    while i < digits.size:
        value = int(digits[i])
        j = i
        while j + 1 < digits.size and digits[j + 1] == value:
            j += 1
        if value >= 0 and j > i:
            key = KEYS[value // 4][value % 4]
            hits.append(DtmfHit(key, round(i * hop / rate, 3), round((j * hop + n) / rate, 3)))
        i = j + 1
    return hits


def _zero_runs(samples: Samples, rate: int) -> list[tuple[float, float]]:
    """Runs of exact zero of at least 20 ms, as ``(start_s, end_s)``."""
    zero = samples == 0
    if not zero.any():
        return []
    edges = np.diff(np.concatenate(([0], zero.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    keep = (ends - starts) >= rate // 50
    return [(s / rate, e / rate) for s, e in zip(starts[keep], ends[keep], strict=True)]


def check_spans(samples: Samples, rate: int, spans: tuple[tuple[float, float | None], ...],
                tolerance: float, drift: float = 0.0) -> tuple[SpanCheck, ...]:
    """Each paused span against the file's runs of digital zero (see the module docstring);
    a span still open at the close (``end`` None) runs to the end of the file."""
    total = samples.size / rate
    runs = _zero_runs(samples, rate)
    drift = max(0.0, drift)
    checks = []
    for start, maybe_end in spans:
        open_end = maybe_end is None
        end = total if maybe_end is None else maybe_end
        best: tuple[float, float] | None = None
        for run in runs:
            overlap = min(run[1], end + tolerance) - max(run[0], start - drift - tolerance)
            if overlap > 0 and (best is None or run[1] - run[0] > best[1] - best[0]):
                best = run
        if open_end:  # paused at the close: zero from the pause to the end of the file
            silent = best is not None and (
                start - drift - tolerance <= best[0] <= start + tolerance
                and best[1] >= total - tolerance)
        else:
            silent = best is not None and (
                start - drift - tolerance <= best[0] <= start + tolerance
                and min(end, total) - drift - tolerance <= best[1] <= end + tolerance
                and best[1] - best[0] >= min(end, total) - start - drift - tolerance
            )
        checks.append(SpanCheck(round(start, 3), round(end, 3), silent,
                                None if best is None else round(best[0], 3),
                                None if best is None else round(best[1], 3)))
    return tuple(checks)


def check_samples(samples: Samples, rate: int,
                  spans: tuple[tuple[float, float | None], ...] = (),
                  *, tolerance: float = 0.5, drift: float = 0.0) -> PciResult:
    """The whole check of one recording's mono samples (see the module docstring)."""
    checks = check_spans(samples, rate, spans, tolerance, drift)
    windows = [(check.start_s - max(0.0, drift) - FEATURE_WINDOW, check.end_s + tolerance)
               for check in checks]
    hits: list[DtmfHit] = []
    allowed: list[DtmfHit] = []
    for hit in find_dtmf(samples, rate):
        inside = any(lo <= hit.start_s and hit.end_s <= hi + 0.1 for lo, hi in windows)
        (allowed if inside else hits).append(hit)
    return PciResult(checks, tuple(hits), tuple(allowed), round(samples.size / rate, 3))
