"""Benchmark of the PCI check: what it adds to the seal of one recording.

Prints one JSON object, then a table.

    python bench/pci_bench.py [--minutes 3] [--runs 5]

A ``--minutes`` long 8 kHz 16-bit mono WAV of speech-like audio with one muted span is written
to /dev/shm (RAM, like MixMonitor's tmpfs). Measured in the same run, best of ``--runs``:
``check_file`` (map, silence of the span, Goertzel DTMF over all of it) and, as the reference,
one SHA-256 pass over the same file (what the sealer already pays for the closure digest).
Reported: seconds per file, seconds of CPU per hour of audio, the ratio check / SHA-256, and
how many times faster than real time the check runs on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from asterisk_recorder.recordings.pcicheck import check_file
from asterisk_recorder.recordings.wav import probe, write_wav

RATE = 8000


def _audio(minutes: float) -> bytes:
    n = int(minutes * 60 * RATE)
    t = np.arange(n) / RATE
    phase = np.cumsum(2 * np.pi * 120 * (1 + 0.25 * np.sin(2 * np.pi * 0.3 * t)) / RATE)
    voice = sum(np.sin(h * phase) / h for h in range(1, 30))
    signal = 3000 * voice * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    signal[int(30.22 * RATE):int(60.2 * RATE)] = 0.0
    return np.clip(signal, -32768, 32767).astype("<i2").tobytes()


def _best(runs: int, work: object) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    shm = Path("/dev/shm")  # noqa: S108 - a TemporaryDirectory inside
    where = shm if shm.is_dir() else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        path = Path(tmp) / "call.wav"
        write_wav(path, _audio(args.minutes), rate=RATE)
        head = probe(path)
        spans = ((30.0, 60.0),)
        outcome = check_file(path, head, spans, tolerance=0.5)
        if outcome.result is None or not outcome.result.passed:
            raise SystemExit(f"the bench's clean audio did not pass: {outcome}")
        check_s = _best(args.runs, lambda: check_file(path, head, spans, tolerance=0.5))
        sha_s = _best(args.runs, lambda: hashlib.sha256(path.read_bytes()).hexdigest())
    audio_s = args.minutes * 60
    report = {
        "minutes": args.minutes,
        "check_s": round(check_s, 4),
        "sha256_s": round(sha_s, 5),
        "check_vs_sha256_ratio": round(check_s / sha_s, 1),
        "cpu_s_per_audio_hour": round(check_s * 3600 / audio_s, 2),
        "times_real_time": round(audio_s / check_s),
    }
    json.dump(report, sys.stdout)
    print()
    print(f"{'measure':<24}{'value':>12}")
    for key, value in report.items():
        print(f"{key:<24}{value:>12}")


if __name__ == "__main__":
    main()
