"""The PCI check's detector: DTMF in speech-like audio is found, clean speech and the shipped
prompts give no hit, paused spans are proven digital zero (with Asterisk's offset)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from pci_audio import RATE, dtmf, mix, pcm, speech

import asterisk_recorder
from asterisk_recorder.recordings.pci import (
    FEATURE_WINDOW,
    check_samples,
    check_spans,
    find_dtmf,
)
from asterisk_recorder.recordings.pcicheck import check_file
from asterisk_recorder.recordings.wav import probe, write_wav

PROMPTS = sorted(Path(asterisk_recorder.__file__).parent.glob("sounds/*/*/*.wav"))


def muted(signal: np.ndarray, start: float, end: float, rate: int = RATE) -> np.ndarray:
    """``signal`` with exact zeros from ``start`` to ``end`` seconds (what MixMonitorMute
    writes)."""
    out = signal.copy()
    out[int(start * rate):int(end * rate)] = 0.0
    return out


def test_a_card_number_typed_into_speech_is_found_digit_by_digit() -> None:
    """Sixteen presses 150 ms apart over voiced sound: all sixteen found, in order, in time."""
    audio = pcm(mix(speech(8.0), "4111111111111111", at=2.0))
    hits = find_dtmf(audio, RATE)
    assert "".join(hit.digit for hit in hits) == "4111111111111111"
    assert hits[0].start_s == pytest.approx(2.0, abs=0.05)
    assert hits[-1].start_s == pytest.approx(2.0 + 15 * 0.15, abs=0.05)


def test_every_key_of_the_keypad_is_told_apart() -> None:
    """All sixteen keys, 0.6 s apart, at the level of a telephone keypad."""
    keys = "123A456B789C*0#D"
    audio = pcm(mix(speech(11.0), keys, at=0.5, gap=0.6))
    assert "".join(hit.digit for hit in find_dtmf(audio, RATE)) == keys


def test_the_detector_runs_at_16_khz_too() -> None:
    """A wideband recording (wav16) is checked with the same block length in time."""
    audio = pcm(mix(speech(3.0, rate=16000), "59", at=1.0, rate=16000))
    assert [hit.digit for hit in find_dtmf(audio, 16000)] == ["5", "9"]


def test_an_unsupported_rate_is_a_clear_error() -> None:
    """44.1 kHz is not a telephone rate: ValueError naming it, not a silent pass."""
    with pytest.raises(ValueError, match="44100"):
        find_dtmf(np.zeros(44100, np.int16), 44100)


def test_a_blip_shorter_than_a_press_is_not_a_digit() -> None:
    """A 20 ms tone pair (below ITU-T Q.24's 40 ms) is not counted."""
    audio = np.zeros(RATE, np.float64)
    tone = dtmf("5", 0.02)
    audio[4000:4000 + tone.size] = tone
    assert find_dtmf(pcm(audio), RATE) == []


@pytest.mark.parametrize("f0", [80.0, 110.0, 140.0, 175.0, 210.0, 260.0, 310.0])
def test_voiced_speech_at_any_pitch_gives_no_false_hit(f0: float) -> None:
    """Twenty seconds of harmonic-rich voice, men's to children's pitch: no DTMF."""
    assert find_dtmf(pcm(speech(20.0, f0=f0, seed=int(f0))), RATE) == []


@pytest.mark.parametrize("prompt", PROMPTS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_the_shipped_prompts_give_no_false_hit(prompt: Path) -> None:
    """Every disclosure prompt the package ships (played into recorded calls) is clean."""
    with wave.open(str(prompt)) as handle:
        rate = handle.getframerate()
        audio = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    assert audio.size > rate
    assert find_dtmf(audio, rate) == []


def test_a_muted_span_with_asterisks_offset_is_silent() -> None:
    """Zeros at 3.24-6.22 s for a pause of 3.00-6.01 s by wall clock (the measured +0.22 s)."""
    audio = pcm(muted(speech(12.0), 3.24, 6.22))
    [span] = check_spans(audio, RATE, ((3.0, 6.01),), 0.5)
    assert span.silent
    assert (span.zero_start_s, span.zero_end_s) == (3.24, 6.22)
    assert span.text() == "3.00-6.01:silent"


def test_a_pause_that_left_audio_in_the_span_is_not_silent() -> None:
    """Audio during the pause (the mute came late or not at all): not silent, said so."""
    audio = pcm(muted(speech(12.0), 3.2, 4.0))
    [span] = check_spans(audio, RATE, ((3.0, 6.0),), 0.5)
    assert not span.silent
    assert "NOT silent" in span.text()
    [none] = check_spans(pcm(speech(12.0)), RATE, ((3.0, 6.0),), 0.5)
    assert not none.silent
    assert none.zero_start_s is None


def test_zeros_earlier_than_the_wall_clock_pass_only_within_the_files_measured_drift() -> None:
    """Real Asterisk 22: the far side answered 0.7 s after MixMonitor started, so a 5.02 s
    pause at 2.00 s is zero at 1.53-6.50 s of an 8.5 s file that ran 9.3 s: silent with that
    drift (0.8 s), not silent without it."""
    audio = pcm(muted(speech(8.5), 1.53, 6.50))
    assert not check_spans(audio, RATE, ((2.0, 7.02),), 0.5)[0].silent
    [span] = check_spans(audio, RATE, ((2.0, 7.02),), 0.5, drift=0.8)
    assert span.silent
    assert (span.zero_start_s, span.zero_end_s) == (1.53, 6.5)


def test_drift_never_excuses_zeros_that_come_late_or_a_run_too_short_for_the_pause() -> None:
    """The file can only lag the wall clock: a mute 1 s late fails whatever the drift, and so
    does a zero run 2 s shorter than the pause when the file lost only 0.8 s."""
    late = pcm(muted(speech(12.0), 4.0, 9.0))
    assert not check_spans(late, RATE, ((3.0, 8.0),), 0.5, drift=3.0)[0].silent
    short = pcm(muted(speech(12.0), 2.6, 5.6))
    assert not check_spans(short, RATE, ((3.0, 8.0),), 0.5, drift=0.8)[0].silent


def test_check_file_measures_the_drift_from_the_wall_time_it_is_given(tmp_path: Path) -> None:
    """An 8.5 s WAV that ran 9.3 s by wall clock: the earlier zeros pass; told it ran 8.5 s
    (no drift), they fail."""
    path = tmp_path / "drift.wav"
    write_wav(path, pcm(muted(speech(8.5), 1.53, 6.50)).tobytes())
    spans = ((2.0, 7.02),)
    assert check_file(path, probe(path), spans, tolerance=0.5, wall_s=9.3).result.passed
    assert not check_file(path, probe(path), spans, tolerance=0.5, wall_s=8.5).result.passed


def test_a_pause_still_open_at_the_close_must_be_silent_to_the_end() -> None:
    """A pause never resumed (the call ended paused) runs to the end of the file."""
    assert check_spans(pcm(muted(speech(8.0), 5.2, 8.0)), RATE, ((5.0, None),), 0.5)[0].silent
    assert not check_spans(pcm(muted(speech(8.0), 5.2, 7.0)), RATE, ((5.0, None),), 0.5)[0].silent


def test_the_feature_code_before_a_pause_is_allowed_but_digits_after_the_resume_are_not() -> None:
    """``*81`` just before the pause is reported as allowed; a card number after it is a hit."""
    base = muted(speech(14.0), 4.22, 8.22)
    audio = mix(mix(base, "*81", at=4.0 - FEATURE_WINDOW + 0.4), "4242", at=10.0)
    result = check_samples(pcm(audio), RATE, ((4.0, 8.0),), tolerance=0.5)
    assert "".join(hit.digit for hit in result.allowed) == "*81"
    assert "".join(hit.digit for hit in result.hits) == "4242"
    assert not result.passed
    assert "4 DTMF press(es) in unpaused audio, the first at 10.0" in result.reason()


def test_clean_audio_with_a_silent_pause_passes() -> None:
    """No DTMF outside the pause, the pause zero: passed, no reason."""
    result = check_samples(pcm(muted(speech(10.0), 2.22, 5.2)), RATE, ((2.0, 5.0),))
    assert result.passed
    assert result.reason() == ""


def test_check_file_reads_a_stereo_wav_channel_by_channel(tmp_path: Path) -> None:
    """DTMF on the second channel only is found; a span zero on one channel only is not
    silent."""
    left = pcm(muted(speech(6.0), 1.22, 3.0))
    right = pcm(mix(speech(6.0, seed=7), "7", at=4.5))
    frames = np.stack([left, right], axis=1).astype("<i2").tobytes()
    path = tmp_path / "stereo.wav"
    write_wav(path, frames, rate=RATE)
    header = bytearray(path.read_bytes())
    header[22:24] = (2).to_bytes(2, "little")  # channels
    header[28:32] = (RATE * 4).to_bytes(4, "little")  # byte rate
    header[32:34] = (4).to_bytes(2, "little")  # block align
    path.write_bytes(bytes(header))
    outcome = check_file(path, probe(path), ((1.0, 3.0),), tolerance=0.5)
    assert outcome.result is not None
    assert [hit.digit for hit in outcome.result.hits] == ["7"]
    assert not outcome.result.spans[0].silent
    fields = outcome.fields()
    assert fields["pci_passed"] is False
    assert fields["pci_dtmf_hits"] == 1
    assert fields["pause_spans"] == "1.00-3.00"


def test_a_format_the_check_cannot_read_is_reported_unchecked(tmp_path: Path) -> None:
    """A gsm file is not passed silently: the fields say ``not checked``, no pci_passed."""
    path = tmp_path / "call.gsm"
    path.write_bytes(b"\xd8" * 3300)
    outcome = check_file(path, probe(path), ((1.0, None),), tolerance=0.5)
    assert outcome.result is None
    assert not outcome.failed
    fields = outcome.fields()
    assert fields["pci_reason"] == "not checked: format gsm"
    assert "pci_passed" not in fields
    assert fields["pause_spans"] == "1.00-open"
