"""The sealer's PCI check against the real ledger: a recording with silent pauses and no DTMF
is sealed with its spans attested; DTMF in unpaused audio or a loud pause quarantines it (or is
attested as failed); the check can be turned off."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
from pci_audio import RATE, mix, pcm, speech
from sealer_helpers import SealerEnv, facts_of, sealer_for

from asterisk_recorder.flow.facts import LedgerFact
from asterisk_recorder.recordings.wav import write_wav


async def pause(env: SealerEnv, decision_id: str, start: float, end: float | None) -> None:
    """The ledger facts of one pause (and its resume when ``end`` is given)."""
    paused_id = str(uuid.uuid4())
    now = time.time()
    await env.fact(LedgerFact("recording.paused", decision_id, now, "ctl:test",
                              {"offset_s": start, "source": "api", "reason": "card payment"},
                              fact_id=paused_id))
    if end is not None:
        await env.fact(LedgerFact("recording.resumed", decision_id, now, "ctl:test",
                                  {"offset_s": end, "source": "api", "reason": "done",
                                   "pause_fact_id": paused_id, "paused_s": end - start},
                                  fact_id=str(uuid.uuid4())))


def recorded(path: Path, signal: np.ndarray, *, zero: tuple[float, float] | None = None) -> None:
    """A closed MixMonitor WAV of ``signal``, with exact zeros over ``zero`` (the mute)."""
    audio = signal.copy()
    if zero is not None:
        audio[int(zero[0] * RATE):int(zero[1] * RATE)] = 0.0
    write_wav(path, pcm(audio).astype("<i2").tobytes(), rate=RATE)


def plaintext(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".arrec"))


async def test_a_recording_with_a_silent_pause_is_sealed_with_its_span_attested(
    env: SealerEnv,
) -> None:
    """recording.sealed lists the pause and says the check passed: span silent, no DTMF."""
    env.create_key()
    decision, path = await env.decision()
    await pause(env, decision.decision_id, 3.0, 8.0)
    recorded(path, speech(12.0), zero=(3.22, 8.21))
    async with sealer_for(env) as sealer:
        await sealer.scan()
    kinds = [kind for kind, _ in await facts_of(env.dsn, decision.decision_id)]
    assert kinds[-1] == "recording.sealed"
    sealed = (await facts_of(env.dsn, decision.decision_id))[-1][1]
    assert sealed["pauses"] == 1
    assert sealed["pause_spans"] == "3.00-8.00"
    assert sealed["pci_passed"] is True
    assert sealed["pci_silent_spans"] == 1
    assert sealed["pci_dtmf_hits"] == 0
    assert sealed["pci_spans"] == "3.00-8.00:silent"
    assert sealed["pci_detector"] == "goertzel-v1"
    assert sealer.metrics.pci.value(result="passed") == 1


async def test_dtmf_in_unpaused_audio_quarantines_the_recording_and_alerts(
    env: SealerEnv,
) -> None:
    """A card number typed while recording: recording.quarantined reason pci with the first
    press's time, sealed into quarantine (no plaintext anywhere), counted as failed."""
    env.create_key()
    decision, path = await env.decision()
    recorded(path, mix(speech(10.0), "4000123412341234", at=4.0))
    async with sealer_for(env) as sealer:
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert [kind for kind, _ in facts] == ["recording.closed", "recording.quarantined"]
    quarantined = facts[-1][1]
    assert quarantined["reason"] == "pci"
    assert "16 DTMF press(es) in unpaused audio, the first at 4.0" in quarantined["detail"]
    assert quarantined["moved_to"].endswith(".arrec")
    assert plaintext(env.paths.quarantine) == []
    assert not path.exists()
    assert sealer.metrics.pci.value(result="failed") == 1
    assert sealer.metrics.quarantined.value(reason="pci") == 1


async def test_a_pause_that_did_not_silence_the_audio_quarantines_the_recording(
    env: SealerEnv,
) -> None:
    """The ledger says paused 2-6 s but the file holds voice there: quarantined, not sealed."""
    env.create_key()
    decision, path = await env.decision()
    await pause(env, decision.decision_id, 2.0, 6.0)
    recorded(path, speech(9.0))
    async with sealer_for(env) as sealer:
        await sealer.scan()
    facts = await facts_of(env.dsn, decision.decision_id)
    assert facts[-1][0] == "recording.quarantined"
    assert "paused span(s) not digital silence: 2.00-6.00:NOT silent" in facts[-1][1]["detail"]


async def test_attest_mode_seals_a_failed_recording_and_says_why(env: SealerEnv) -> None:
    """pci_check=attest: sealed as usual, pci_passed false with the reason in the ledger."""
    env.create_key()
    decision, path = await env.decision()
    recorded(path, mix(speech(6.0), "12", at=2.0))
    async with sealer_for(env, pci_check="attest") as sealer:
        await sealer.scan()
    kind, sealed = (await facts_of(env.dsn, decision.decision_id))[-1]
    assert kind == "recording.sealed"
    assert sealed["pci_passed"] is False
    assert sealed["pci_dtmf_hits"] == 2
    assert abs(sealed["pci_dtmf_first_s"] - 2.0) < 0.03
    assert sealed["pci_reason"].startswith("2 DTMF press(es)")
    assert sealer.metrics.pci.value(result="failed") == 1


async def test_with_the_check_off_nothing_is_claimed(env: SealerEnv) -> None:
    """pci_check=off: the seal carries no PCI field at all (nothing attested that was not
    checked), even for a recording with DTMF."""
    env.create_key()
    decision, path = await env.decision()
    recorded(path, mix(speech(4.0), "9", at=1.0))
    async with sealer_for(env, pci_check="off") as sealer:
        await sealer.scan()
    kind, sealed = (await facts_of(env.dsn, decision.decision_id))[-1]
    assert kind == "recording.sealed"
    assert not any(key.startswith("pci_") for key in sealed)
    assert sealer.metrics.pci.value(result="passed") == 0
