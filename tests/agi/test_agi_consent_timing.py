"""Opt-in consent timing over FastAGI: STREAM FILE escape digits and the accept point."""

from __future__ import annotations

from collections.abc import Callable

from agi_helpers import AgiRig, AgiRigStarter, consent_env

from asterisk_recorder.flow.decision import KeyEffect, KeyPhase, Outcome
from asterisk_recorder.flow.settings import FlowSettings, PromptSettings
from asterisk_recorder.settings import AgiSettings, Settings
from asterisk_recorder.testing.agi_peer import Finish, Press, ScriptedAsterisk

OPT_IN = consent_env("consent?policy=opt_in")


async def accept_after_rig(
    rig_factory: Callable[[Settings], AgiRigStarter], seconds: float
) -> AgiRig:
    """A consent server whose opt-in accept key counts from ``seconds`` into the prompt."""
    settings = Settings(
        instance_id="test-agi-timing",
        agi=AgiSettings(host="127.0.0.1", port=0, read_timeout=2.0),
        flow=FlowSettings(prompts=PromptSettings(opt_in_accept_after=seconds)),
    )
    return await rig_factory(settings).start()


def streams(peer: ScriptedAsterisk) -> list[list[str]]:
    """The STREAM FILE commands the session sent."""
    return [c for c in peer.commands if c[:2] == ["STREAM", "FILE"]]


async def test_accept_key_during_the_prompt_does_not_cut_it_short_by_default(
    rig: AgiRig,
) -> None:
    """Default: 1 is no escape digit, so Asterisk plays on; consent is the key after the end."""
    peer = ScriptedAsterisk(OPT_IN, prompts=[Press("1")], waits=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.RECORDED_CONSENTED == result.decision.outcome
    assert [["STREAM", "FILE", "en/recorder/consent-opt-in", "2"]] == streams(peer)
    assert [(KeyPhase.AFTER_PROMPT, KeyEffect.CONSENT)] == [
        (k.phase, k.effect) for k in result.decision.keys
    ]


async def test_early_accept_key_that_stopped_stream_file_replays_the_prompt(
    rig_factory: Callable[[Settings], AgiRigStarter],
) -> None:
    """With an accept point, 1 interrupts STREAM FILE; pressed before that point it replays."""
    rig = await accept_after_rig(rig_factory, 30.0)
    peer = ScriptedAsterisk(OPT_IN, prompts=[Press("1"), Finish()], waits=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.RECORDED_CONSENTED == result.decision.outcome
    assert 2 * [["STREAM", "FILE", "en/recorder/consent-opt-in", "12"]] == streams(peer)
    assert [KeyEffect.TOO_EARLY, KeyEffect.CONSENT] == [k.effect for k in result.decision.keys]
    assert "record" == peer.variables["RECORDER_DECISION"]


async def test_accept_key_after_the_accept_point_barges_in(
    rig_factory: Callable[[Settings], AgiRigStarter],
) -> None:
    """opt_in_accept_after=0: the accept key interrupting STREAM FILE is consent at once."""
    rig = await accept_after_rig(rig_factory, 0.0)
    peer = ScriptedAsterisk(OPT_IN, prompts=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.RECORDED_CONSENTED == result.decision.outcome
    assert 1 == len(streams(peer))
    assert [] == [c for c in peer.commands if c[:3] == ["WAIT", "FOR", "DIGIT"]]
    key = result.decision.keys[0]
    assert (KeyPhase.DURING_PROMPT, True) == (key.phase, key.counted)
    assert key.offset is not None
    assert key.offset >= 0
