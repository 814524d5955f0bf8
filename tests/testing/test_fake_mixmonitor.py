"""The fake's MixMonitor: a ``record`` hand-back leaves a real WAV, completed at hang-up."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

from asterisk_recorder.ari.client import AriClient
from asterisk_recorder.ari.stream import EventStream
from asterisk_recorder.testing import FakeAsterisk


async def _handed_back(fake: FakeAsterisk, ari: AriClient, decision: str, path: Path) -> str:
    fake.mixmonitor_seconds = 2.0  # FakeAsterisk(mixmonitor_seconds=2.0)
    call = await fake.originate()
    await ari.set_variable(call.id, "RECORDER_DECISION", decision)
    await ari.set_variable(call.id, "RECORDER_FILE", str(path))
    await ari.continue_in_dialplan(call.id)
    await fake.wait_for_continue(call.id)
    return call.id


async def test_a_record_hand_back_writes_the_file_and_hang_up_completes_it(
    fake: FakeAsterisk, ari: AriClient, events: EventStream, tmp_path: Path,
) -> None:
    """While the call lives the header's lengths are 0 (like MixMonitor); after hang-up the
    WAV is complete: 8 kHz, 16-bit mono, the configured seconds of audio."""
    path = tmp_path / "rec" / "2026" / "12" / "04" / "call.wav"
    channel_id = await _handed_back(fake, ari, "record", path)
    head = path.read_bytes()[:44]
    assert struct.unpack_from("<I", head, 40)[0] == 0
    await fake.hangup(channel_id)
    with wave.open(str(path), "rb") as audio:
        assert (audio.getframerate(), audio.getsampwidth(), audio.getnchannels()) == (8000, 2, 1)
        assert audio.getnframes() == 16000


async def test_a_skip_hand_back_writes_nothing(
    fake: FakeAsterisk, ari: AriClient, events: EventStream, tmp_path: Path,
) -> None:
    """RECORDER_DECISION=skip: no file, as dialplan starts no MixMonitor."""
    path = tmp_path / "rec" / "skip.wav"
    channel_id = await _handed_back(fake, ari, "skip", path)
    await fake.hangup(channel_id)
    assert not path.exists()
