"""Redaction's edit of a WAV in memory: the span becomes exact zero, nothing else changes."""

from __future__ import annotations

import struct

import pytest

from asterisk_recorder.errors import RecordingError
from asterisk_recorder.recordings.redact import silence_span
from asterisk_recorder.recordings.wav import tone_pcm


def wav(pcm: bytes, rate: int = 8000) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", len(pcm)) + pcm)


def test_the_span_is_zero_and_the_rest_is_untouched() -> None:
    """Samples 1.0-2.0 s of a 3 s tone are zero; before and after are byte-identical."""
    original = wav(tone_pcm(3.0))
    redacted, samples = silence_span(original, 1.0, 2.0)
    assert samples == 8000
    assert len(redacted) == len(original)
    assert redacted[44 + 16000:44 + 32000] == bytes(16000)
    assert redacted[:44 + 16000] == original[:44 + 16000]
    assert redacted[44 + 32000:] == original[44 + 32000:]


def test_a_span_past_the_end_is_clipped_and_one_outside_is_refused() -> None:
    """--to past the end stops at the end; --from past the end, or reversed, is an error."""
    original = wav(tone_pcm(1.0))
    redacted, samples = silence_span(original, 0.5, 9.0)
    assert samples == 4000
    assert redacted[44 + 8000:] == bytes(8000)
    with pytest.raises(RecordingError, match="past the end"):
        silence_span(original, 2.0, 3.0)
    with pytest.raises(RecordingError, match="before --to"):
        silence_span(original, 0.8, 0.2)


def test_a_file_that_is_not_wav_is_refused() -> None:
    """Only WAV recordings can be redacted."""
    with pytest.raises(RecordingError, match="only WAV"):
        silence_span(b"not a wav file at all", 0.0, 1.0)
