"""The PCI check of one closed recording file, before it is sealed.

This module owns ``check_file``: it maps the plaintext file (16-bit linear WAV, or raw ``sln``
/ ``sln16``) read-only, hands its samples and the ledger's paused spans to ``pci`` and turns
the result into the fields the seal note and ``recording.sealed`` carry (``pci_fields``).
A stereo file is checked per channel (a span is silent only when both channels are zero).
A format it cannot read (gsm, ulaw, 8-bit, other rates) is *not checked*, and says so: the
result carries the reason and the sealer counts it, it never passes silently.

It must not write the samples anywhere (the file is mapped read-only; what the detector
computes stays in memory), nor decide what a failure does (the sealer does).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asterisk_recorder.flow.facts import Scalar
from asterisk_recorder.recordings.pci import (
    DETECTOR,
    DtmfHit,
    PciResult,
    SpanCheck,
    check_samples,
)
from asterisk_recorder.recordings.wav import RecordingProbe

__all__ = ["PciOutcome", "check_file"]

_RAW_RATES = {"sln": 8000, "sln16": 16000}


@dataclass(frozen=True, slots=True)
class PciOutcome:
    """The check of one file.

    Attributes:
        result: the detector's findings (None: the file could not be checked).
        unchecked: why not, when ``result`` is None.
        spans: the paused spans looked for, ``(start, end)`` seconds (end None: still open).
    """

    result: PciResult | None
    unchecked: str | None
    spans: tuple[tuple[float, float | None], ...]

    @property
    def failed(self) -> bool:
        """The check ran and found a loud pause or DTMF."""
        return self.result is not None and not self.result.passed

    def fields(self) -> dict[str, Scalar]:
        """What ``recording.sealed`` carries about the pauses and the check."""
        out: dict[str, Scalar] = {"pauses": len(self.spans), "pci_detector": DETECTOR}
        if self.spans:
            out["pause_spans"] = ",".join(
                f"{start:.2f}-{'open' if end is None else f'{end:.2f}'}"
                for start, end in self.spans)[:1000]
        if self.result is None:
            out["pci_reason"] = f"not checked: {self.unchecked}"[:500]
            return out
        result = self.result
        out["pci_passed"] = result.passed
        out["pci_silent_spans"] = sum(1 for span in result.spans if span.silent)
        out["pci_dtmf_hits"] = len(result.hits)
        if result.spans:
            out["pci_spans"] = ",".join(span.text() for span in result.spans)[:1000]
        if result.hits:
            out["pci_dtmf_first_s"] = result.hits[0].start_s
        if not result.passed:
            out["pci_reason"] = result.reason()[:500]
        return out


def _merge(results: list[PciResult]) -> PciResult:
    if len(results) == 1:
        return results[0]
    spans = tuple(
        SpanCheck(parts[0].start_s, parts[0].end_s, all(p.silent for p in parts),
                  parts[0].zero_start_s, parts[0].zero_end_s)
        for parts in zip(*(r.spans for r in results), strict=True)
    )
    hits: list[DtmfHit] = sorted({h for r in results for h in r.hits}, key=lambda h: h.start_s)
    allowed = sorted({h for r in results for h in r.allowed}, key=lambda h: h.start_s)
    return PciResult(spans, tuple(hits), tuple(allowed), results[0].duration_s)


def _check_mapped(view: mmap.mmap, offset: int, usable: int, rate: int, channels: int,
                  spans: tuple[tuple[float, float | None], ...],
                  tolerance: float, drift: float) -> list[PciResult]:
    """The check per channel of the mapped samples (no reference to the map outlives it)."""
    frames = np.frombuffer(view, dtype="<i2", count=usable // 2, offset=offset).reshape(
        -1, channels)
    return [check_samples(np.ascontiguousarray(frames[:, ch]), rate, spans,
                          tolerance=tolerance, drift=drift)
            for ch in range(channels)]


def check_file(path: Path, head: RecordingProbe,
               spans: tuple[tuple[float, float | None], ...], *,
               tolerance: float, wall_s: float | None = None) -> PciOutcome:
    """Check ``path`` (probed as ``head``) against the paused ``spans``.

    ``wall_s``: seconds of wall clock the recording ran (from MixMonitor's start, as the
    pauses' ``recording_started_at`` says, to the file's last write); what the file is shorter
    than that is time without media, by which its zeros may lie earlier than the spans.
    """
    if head.format == "wav":
        if head.bits != 16 or head.data_offset is None or head.sample_rate not in (8000, 16000):
            return PciOutcome(None, f"WAV of {head.bits} bits at {head.sample_rate} Hz", spans)
        offset, rate, channels = head.data_offset, head.sample_rate, head.channels or 1
    elif head.format in _RAW_RATES:
        offset, rate, channels = 0, _RAW_RATES[head.format], 1
    else:
        return PciOutcome(None, f"format {head.format}", spans)
    if channels not in (1, 2):
        return PciOutcome(None, f"{channels} channels", spans)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        size = os.fstat(fd).st_size
        usable = (max(0, size - offset) // (2 * channels)) * 2 * channels
        if usable == 0:
            return PciOutcome(check_samples(np.zeros(0, np.int16), rate, spans,
                                            tolerance=tolerance), None, spans)
        length = usable / (2 * channels) / rate
        drift = 0.0 if wall_s is None else max(0.0, wall_s - length)
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as view:
            results = _check_mapped(view, offset, usable, rate, channels, spans, tolerance,
                                    drift)
    finally:
        os.close(fd)
    return PciOutcome(_merge(results), None, spans)
