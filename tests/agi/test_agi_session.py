"""The consent flow over FastAGI, against a scripted Asterisk on a real TCP socket."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from agi_helpers import AgiRig, AgiRigStarter, consent_env
from structlog.testing import capture_logs

from asterisk_recorder.agi.server import FastAgiServer
from asterisk_recorder.agi.session import SessionResult, consent_handler
from asterisk_recorder.errors import DatabaseUnavailable
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.decision import ConsentDecision, Outcome
from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.ledger.sink import StoreReceipt
from asterisk_recorder.policy import Mode, PolicyEngine
from asterisk_recorder.settings import AgiSettings, Settings
from asterisk_recorder.testing.agi_peer import (
    Finish,
    HangUp,
    Missing,
    Press,
    ScriptedAsterisk,
    Silence,
)

OPT_OUT = consent_env("consent?policy=opt_out&lang=")
OPT_IN = consent_env("consent?policy=opt_in")

GATHER = [
    [
        "GET",
        "FULL",
        "VARIABLE",
        "${RECORDER_POLICY}|${RECORDER_JURISDICTION}|${RECORDER_LANGUAGE}"
        "|${RECORDER_CALLED}|${CALLERID(dnid)}|${RECORDER_LEG}|${CONNECTEDLINE(num)}"
        "|${CONNECTEDLINE(name)}|${CHANNEL(linkedid)}|${ENTITYID}",
    ]
]

FIXED_FORMS = [
    re.compile(
        r"GET FULL VARIABLE \$\{RECORDER_POLICY\}\|\$\{RECORDER_JURISDICTION\}"
        r"\|\$\{RECORDER_LANGUAGE\}\|\$\{RECORDER_CALLED\}\|\$\{CALLERID\(dnid\)\}"
        r"\|\$\{RECORDER_LEG\}\|\$\{CONNECTEDLINE\(num\)\}\|\$\{CONNECTEDLINE\(name\)\}"
        r"\|\$\{CHANNEL\(linkedid\)\}\|\$\{ENTITYID\}"
    ),
    re.compile(
        r"GET VARIABLE (RECORDER_(POLICY|JURISDICTION|LANGUAGE|CALLED|LEG)|CALLERID\(dnid\)"
        r"|CONNECTEDLINE\((num|name)\)|CHANNEL\(linkedid\)|ENTITYID)"
    ),
    re.compile(r"GET FULL VARIABLE \$\{UNIQUEID\}"),
    re.compile(r"ANSWER"),
    re.compile(r'STREAM FILE en/recorder/consent-(opt-in|opt-out|announce) "[0-9*#]*"'),
    re.compile(r"WAIT FOR DIGIT [0-9]+"),
    re.compile(r"CHANNEL STATUS"),
    re.compile(r'SET VARIABLE RECORDER_[A-Z_]+ (""|[A-Za-z0-9_./()-]+)'),
    re.compile(r"SET VARIABLE ARRAY\(RECORDER_[A-Z_]+(,RECORDER_[A-Z_]+)+\) [A-Za-z0-9_./(),-]+"),
]
"""Every command the session may write; anything else is a defect."""


def assert_fixed_forms(peer: ScriptedAsterisk) -> None:
    """Every command line written to the wire is one of ``FIXED_FORMS``."""
    odd = [line for line in peer.lines if not any(f.fullmatch(line) for f in FIXED_FORMS)]
    assert [] == odd


def commands_named(peer: ScriptedAsterisk, *words: str) -> list[list[str]]:
    """The commands whose first words are ``words``."""
    return [c for c in peer.commands if c[: len(words)] == list(words)]


async def test_opt_out_key_during_disclosure_skips_recording(rig: AgiRig) -> None:
    """Key 1 interrupts STREAM FILE (result=49): not recorded, RECORDER_DECISION=skip."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.NOT_RECORDED_OPTED_OUT == result.decision.outcome
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert "not_recorded_opted_out" == peer.variables["RECORDER_OUTCOME"]
    assert result.decision.decision_id == peer.variables["RECORDER_DECISION_ID"]
    assert GATHER == peer.commands[:1]
    assert ["ANSWER"] == peer.commands[1]
    assert ["STREAM", "FILE", "en/recorder/consent-opt-out", "1"] == peer.commands[2]
    assert [] == commands_named(peer, "WAIT", "FOR", "DIGIT")
    assert [result.decision] == rig.sink.decisions
    assert result.handed_back
    assert peer.closed_by_program
    assert_fixed_forms(peer)


async def test_silence_after_opt_out_disclosure_records(rig: AgiRig) -> None:
    """No key during or after the disclosure: recorded, with the flow's file and options."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Finish()], waits=[Silence()])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.RECORDED_NOTIFIED == result.decision.outcome
    assert "record" == peer.variables["RECORDER_DECISION"]
    assert result.decision.recording_path == peer.variables["RECORDER_FILE"]
    assert peer.variables["RECORDER_FILE"].startswith("/var/spool/asterisk/monitor/recorder/")
    assert "b" == peer.variables["RECORDER_MIXMON_OPTIONS"]
    assert [["WAIT", "FOR", "DIGIT", "5000"]] == commands_named(peer, "WAIT", "FOR", "DIGIT")
    assert dict(result.variables) == {
        k: v for k, v in peer.variables.items() if k.startswith("RECORDER_")
    }
    assert_fixed_forms(peer)


async def test_opt_in_accept_key_after_disclosure_records_with_consent(rig: AgiRig) -> None:
    """Opt-in: key 1 after the prompt records (recorded_consented)."""
    peer = ScriptedAsterisk(OPT_IN, prompts=[Finish()], waits=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Mode.OPT_IN == result.decision.mode
    assert Outcome.RECORDED_CONSENTED == result.decision.outcome
    assert "record" == peer.variables["RECORDER_DECISION"]
    # only the decline key interrupts: the accept key counts only after the prompt ended
    assert ["STREAM", "FILE", "en/recorder/consent-opt-in", "2"] == commands_named(
        peer, "STREAM", "FILE"
    )[0]
    assert_fixed_forms(peer)


async def test_opt_in_decline_key_during_disclosure_does_not_record(rig: AgiRig) -> None:
    """Opt-in: key 2 barges in (result=50): not recorded (declined)."""
    peer = ScriptedAsterisk(OPT_IN, prompts=[Press("2")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.NOT_RECORDED_DECLINED == result.decision.outcome
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert [("2", True)] == [(k.digit, k.at > 0) for k in result.decision.keys]
    assert_fixed_forms(peer)


async def test_opt_in_timeouts_replay_the_prompt_then_do_not_record(rig: AgiRig) -> None:
    """Opt-in with no key: the prompt plays 1 + max_retries times, then no consent."""
    peer = ScriptedAsterisk(OPT_IN)

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.NOT_RECORDED_NO_CONSENT == result.decision.outcome
    assert 3 == len(commands_named(peer, "STREAM", "FILE"))
    assert 3 == len(commands_named(peer, "WAIT", "FOR", "DIGIT"))
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert_fixed_forms(peer)


async def test_hang_up_during_the_prompt_stores_abandoned_and_sets_nothing(rig: AgiRig) -> None:
    """STREAM FILE result=-1 then HANGUP/511 on the probe: abandoned, no SET VARIABLE."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[HangUp()])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.ABANDONED == result.decision.outcome
    assert result.hung_up
    assert not result.handed_back
    assert [] == commands_named(peer, "SET", "VARIABLE")
    assert [["CHANNEL", "STATUS"]] == commands_named(peer, "CHANNEL", "STATUS")
    assert [result.decision] == rig.sink.decisions
    assert_fixed_forms(peer)


async def test_hang_up_while_waiting_for_a_key_stores_abandoned(rig: AgiRig) -> None:
    """WAIT FOR DIGIT result=-1: abandoned, nothing set."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Finish()], waits=[HangUp()])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.ABANDONED == result.decision.outcome
    assert [] == commands_named(peer, "SET", "VARIABLE")


async def test_channel_already_dead_answers_511_and_stores_abandoned(rig: AgiRig) -> None:
    """A dead channel without AGISIGHUP: GETs still work, ANSWER gets 511 -> abandoned."""
    peer = ScriptedAsterisk(OPT_OUT, dead=True, hangup_line=False)

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.ABANDONED == result.decision.outcome
    assert [["ANSWER"]] == commands_named(peer, "ANSWER")
    assert [] == commands_named(peer, "STREAM", "FILE")
    assert [] == commands_named(peer, "SET", "VARIABLE")


async def test_hangup_line_before_answer_stops_all_channel_commands(rig: AgiRig) -> None:
    """Asterisk's HANGUP line during the GETs: no ANSWER is even tried; abandoned."""
    peer = ScriptedAsterisk(OPT_OUT, dead=True)

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.ABANDONED == result.decision.outcome
    assert GATHER == peer.commands


async def test_missing_sound_fails_closed_after_probing_the_channel(rig: AgiRig) -> None:
    """result=-1 with a live channel (CHANNEL STATUS 200): PromptFailed -> failed, skip."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Missing()])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert "could not be played" in result.decision.reason
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert result.handed_back


async def test_prompt_that_played_zero_samples_fails_closed(rig: AgiRig) -> None:
    """``result=0 endpos=0``: the caller heard nothing, so the flow fails closed."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Finish(endpos=0)])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert "skip" == peer.variables["RECORDER_DECISION"]


async def test_520_usage_reply_to_stream_file_fails_closed(rig: AgiRig) -> None:
    """A 520 multi-line usage reply is an ActionFailed: not recorded, handed back."""
    peer = ScriptedAsterisk(OPT_OUT, refuse={"STREAM FILE": 520})

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert result.handed_back


async def test_garbage_instead_of_a_reply_stores_failed_and_closes(rig: AgiRig) -> None:
    """Garbage in answer to ANSWER: the session stores ``failed`` and sends nothing more."""
    peer = ScriptedAsterisk(OPT_OUT, garbage_at=1)

    with capture_logs() as logs:
        result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert 2 == len(peer.commands)
    assert not result.handed_back
    decided = [e for e in logs if e["event"] == "consent.decided"]
    assert 1 == len(decided)
    assert "failed" == decided[0]["outcome"]
    assert "agi_error" in decided[0]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert ["agi.session.connection_unusable"] == [e["event"] for e in warnings]
    assert "AgiProtocolError" == warnings[0]["error_type"]


async def test_one_canonical_consent_decided_line_per_call(rig: AgiRig) -> None:
    """Exactly one ``consent.decided`` line, with call id, decision id, mode, outcome, latency."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Press("1")])

    with capture_logs() as logs:
        result = await rig.call(peer)

    decided = [e for e in logs if e["event"] == "consent.decided"]
    assert 1 == len(decided)
    line = decided[0]
    assert result.decision is not None
    assert "1795449978.119" == line["call_id"]
    assert result.decision.decision_id == line["decision_id"]
    assert "opt_out" == line["mode"]
    assert "not_recorded_opted_out" == line["outcome"]
    assert "info" == line["log_level"]
    assert line["latency_ms"] >= 0


async def test_channel_variables_override_policy_and_jurisdiction(rig: AgiRig) -> None:
    """RECORDER_POLICY / RECORDER_JURISDICTION read with GET VARIABLE reach the decision."""
    peer = ScriptedAsterisk(
        consent_env(),
        variables={"RECORDER_POLICY": "never", "RECORDER_JURISDICTION": "DE"},
    )

    result = await rig.call(peer)

    assert result.decision is not None
    assert Mode.NEVER == result.decision.mode
    assert Outcome.NOT_RECORDED_POLICY == result.decision.outcome
    assert [] == commands_named(peer, "STREAM", "FILE")


async def test_override_holding_the_separator_is_read_on_its_own(rig: AgiRig) -> None:
    """A ``|`` in a value makes the combined read ambiguous: each variable is read alone."""
    peer = ScriptedAsterisk(
        consent_env(),
        variables={"RECORDER_POLICY": "never", "RECORDER_LANGUAGE": "en|x", "ENTITYID": "e1"},
    )

    result = await rig.call(peer)

    assert result.decision is not None
    assert Mode.NEVER == result.decision.mode
    assert "e1" == result.decision.asterisk_id
    assert [
        ["GET", "VARIABLE", "RECORDER_POLICY"],
        ["GET", "VARIABLE", "RECORDER_JURISDICTION"],
        ["GET", "VARIABLE", "RECORDER_LANGUAGE"],
        ["GET", "VARIABLE", "RECORDER_CALLED"],
        ["GET", "VARIABLE", "CALLERID(dnid)"],
        ["GET", "VARIABLE", "RECORDER_LEG"],
        ["GET", "VARIABLE", "CONNECTEDLINE(num)"],
        ["GET", "VARIABLE", "CONNECTEDLINE(name)"],
        ["GET", "VARIABLE", "CHANNEL(linkedid)"],
        ["GET", "VARIABLE", "ENTITYID"],
    ] == peer.commands[1:11]
    assert_fixed_forms(peer)


async def test_url_query_policy_wins_over_channel_variable(rig: AgiRig) -> None:
    """``?policy=opt_in`` beats ``RECORDER_POLICY=never``."""
    peer = ScriptedAsterisk(OPT_IN, variables={"RECORDER_POLICY": "never"}, prompts=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Mode.OPT_IN == result.decision.mode


async def test_positional_agi_args_give_policy_and_language(rig: AgiRig) -> None:
    """``AGI(agi://host/consent,opt_out,fr)``: arg 1 is the policy, arg 2 the language."""
    env = (*consent_env(), "agi_arg_1: opt_out", "agi_arg_2: fr")
    peer = ScriptedAsterisk(env, prompts=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert Mode.OPT_OUT == result.decision.mode
    # fr is not a configured prompt language: the flow falls back to en.
    assert "en" == result.decision.language


async def test_identity_comes_from_environment_and_full_variable(rig: AgiRig) -> None:
    """Channel, uniqueid, numbers from the env; linkedid and entity id from GET FULL VARIABLE."""
    peer = ScriptedAsterisk(
        OPT_OUT,
        variables={"CHANNEL(linkedid)": "1795449970.100", "ENTITYID": "02:42:ac:11:00:02"},
        prompts=[Press("1")],
    )

    result = await rig.call(peer)

    decision = result.decision
    assert decision is not None
    assert ("agi", "Local/s@consent-agi-00000035;2", "1795449978.119") == (
        decision.driver,
        decision.channel_name,
        decision.uniqueid,
    )
    assert "1795449970.100" == decision.linkedid
    assert "02:42:ac:11:00:02" == decision.asterisk_id
    assert "+14155551234" == decision.caller_number
    assert "+12125550000" == decision.called_number
    assert "test-agi" == decision.instance_id


async def test_unknown_script_path_is_refused_without_commands(rig: AgiRig) -> None:
    """``agi://host/other``: nothing is sent, no decision is made (dialplan fails closed)."""
    peer = ScriptedAsterisk(consent_env("other"))

    await peer.connect("127.0.0.1", rig.server.port)

    assert [] == peer.commands
    assert [] == rig.sink.decisions


HOSTILE = [
    "a,b,c",
    "x)|rm -rf /",
    "${SHELL(id)}",
    '"quoted" \\ back',
    "../../../etc/passwd",
    "caller\twith tab",
    "y" * 10_000,
]


@pytest.mark.parametrize("field", ["callerid", "calleridname", "dnid", "extension", "rdnis"])
@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: v[:12])
async def test_hostile_caller_text_never_reaches_a_command(
    rig: AgiRig, field: str, value: str
) -> None:
    """Caller-controlled env values appear in no command; every command is a fixed form."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Finish()], waits=[Silence()])
    peer.environment = consent_env("consent?policy=opt_out", **{field: value})

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.RECORDED_NOTIFIED == result.decision.outcome
    assert_fixed_forms(peer)
    assert not any(value in line for line in peer.lines)
    assert not any(value in v for v in peer.variables.values())
    if field == "calleridname":
        assert value == result.decision.caller_name


async def test_invalid_utf8_caller_name_is_kept_as_evidence_and_never_sent(rig: AgiRig) -> None:
    """A Latin-1 caller name becomes U+FFFD in the decision and is not sent anywhere."""
    env: list[str | bytes] = [line for line in OPT_OUT if not line.startswith("agi_calleridname")]
    env.append(b"agi_calleridname: Jos\xe9 \xff\xfe")
    peer = ScriptedAsterisk(env, prompts=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert "Jos\ufffd \ufffd\ufffd" == result.decision.caller_name
    assert_fixed_forms(peer)


@pytest.mark.parametrize(
    "value",
    [
        "x\nagi_callerid: 911",
        "x\n\n200 result=49",
        "x\ny",
        "x\r\nagi_arg_1: never",
        "nul\x00byte",
        "z" * 70_000,
    ],
    ids=["dup-callerid", "fake-reply", "junk-line", "crlf-arg", "nul", "70kB"],
)
async def test_newline_in_caller_name_is_rejected_before_any_command(
    rig: AgiRig, value: str
) -> None:
    """A caller name that injects lines, a fake reply, NUL or 70 kB closes the session unheard."""
    peer = ScriptedAsterisk(consent_env(calleridname=value))

    with capture_logs() as logs:
        await peer.connect("127.0.0.1", rig.server.port)

    assert [] == peer.commands
    assert [] == rig.sink.decisions
    assert ["warning"] == [e["log_level"] for e in logs]


async def fast_rig(rig_factory: Callable[[Settings], AgiRigStarter]) -> AgiRig:
    """A rig whose guard, input and read timeouts are tenths of a second."""
    settings = Settings(
        instance_id="fast",
        agi=AgiSettings(host="127.0.0.1", port=0, read_timeout=0.2),
        flow=FlowSettings(guard_timeout=0.3, input_timeout=0.2),
    )
    return await rig_factory(settings).start()


async def test_prompt_that_never_ends_fails_closed_at_the_guard_time(
    rig_factory: Callable[[Settings], AgiRigStarter],
) -> None:
    """STREAM FILE without a reply: the guard timer decides ``failed``; nothing more is sent."""
    rig = await fast_rig(rig_factory)
    peer = ScriptedAsterisk(OPT_OUT, stall_at=2)

    with capture_logs() as logs:
        result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert "prompt did not finish" in result.decision.reason
    assert 3 == len(peer.commands)
    assert not result.handed_back
    assert result.fail_closed
    assert [result.decision] == rig.sink.decisions
    decided = [e for e in logs if e["event"] == "consent.decided"]
    assert "failed" == decided[0]["outcome"]


async def test_asterisk_silent_during_wait_for_digit_fails_closed(
    rig_factory: Callable[[Settings], AgiRigStarter],
) -> None:
    """WAIT FOR DIGIT without a reply within its time + read_timeout: ``failed``, stored."""
    rig = await fast_rig(rig_factory)
    peer = ScriptedAsterisk(OPT_OUT, prompts=[Finish()], stall_at=3)

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.FAILED == result.decision.outcome
    assert ["WAIT", "FOR", "DIGIT"] == peer.commands[3][:3]
    assert result.error is not None
    assert [result.decision] == rig.sink.decisions


async def test_ledger_failure_hands_back_skip(settings: Settings, engine: PolicyEngine) -> None:
    """A sink that raises: DecisionStoreFailed -> RECORDER_DECISION=skip, outcome failed."""

    class BrokenSink:
        async def store(self, decision: ConsentDecision) -> StoreReceipt:
            raise DatabaseUnavailable("PostgreSQL is away and the spool is full")

    results: list[SessionResult] = []
    server = FastAgiServer(
        settings.agi,
        consent_handler(
            lambda: ConsentFlow(settings.flow, engine), BrokenSink(), on_result=results.append
        ),
    )
    await server.start()
    try:
        peer = ScriptedAsterisk(OPT_OUT, prompts=[Finish()], waits=[Silence()])
        await peer.connect("127.0.0.1", server.port)
    finally:
        await server.close()

    assert "skip" == peer.variables["RECORDER_DECISION"]
    assert "failed" == peer.variables["RECORDER_OUTCOME"]
    assert not results[0].stored
    assert results[0].fail_closed


async def test_hang_up_with_agiexitonhangup_closing_the_socket_is_abandoned(rig: AgiRig) -> None:
    """AGIEXITONHANGUP=yes: result=-1, HANGUP, then EOF is a hang-up, not a failure."""
    peer = ScriptedAsterisk(OPT_OUT, prompts=[HangUp()], exit_on_hangup=True)

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.ABANDONED == result.decision.outcome
    assert result.error is None
    assert [] == commands_named(peer, "SET", "VARIABLE")


CALLEE_LEG = consent_env(
    "consent?policy=opt_out&lang=en",
    channel="PJSIP/trunk-0000002a",
    context="recorder-consent-agi",
    extension="s",
    dnid="unknown",
    callerid="+33142685300",
)
"""What ``Dial(PJSIP/...@trunk,60,U(recorder-consent-callee^^en))`` runs on the called channel:
there the caller id is the called party's own number (Asterisk 22 ``app_dial.c``)."""

CALLEE_VARIABLES = {"RECORDER_LEG": "callee", "CONNECTEDLINE(num)": "+14155551234"}
"""Set on that channel: the subroutine's leg marker, and the calling party as connected line."""


async def test_callee_leg_of_u_records_the_caller_from_the_connected_line(
    rig: AgiRig,
) -> None:
    """Inside ``U()`` the caller is the connected line and the called party is this channel."""
    peer = ScriptedAsterisk(CALLEE_LEG, variables=CALLEE_VARIABLES, prompts=[Press("1")])

    result = await rig.call(peer)

    assert result.decision is not None
    assert "+33142685300" == result.decision.called_number
    assert "+14155551234" == result.decision.caller_number
    assert "EU" in result.decision.policy_rows  # the French party's rules applied
    assert_fixed_forms(peer)


async def test_callee_leg_called_number_can_be_set_by_the_dialplan(rig: AgiRig) -> None:
    """``Set(_RECORDER_CALLED=...)`` before ``Dial`` names the party asked, over the caller id."""
    peer = ScriptedAsterisk(
        CALLEE_LEG, variables={**CALLEE_VARIABLES, "RECORDER_CALLED": "+4930901820"}
    )

    result = await rig.call(peer)

    assert "+4930901820" == _called(result)


async def test_inbound_called_number_falls_back_to_the_dnid_and_never_to_s(rig: AgiRig) -> None:
    """Without ``RECORDER_CALLED`` the DNID read from the channel is used; ``s`` never is."""
    with_dnid = ScriptedAsterisk(CALLEE_LEG, variables={"CALLERID(dnid)": "2125550000"})
    without = ScriptedAsterisk(CALLEE_LEG)

    assert "2125550000" == _called(await rig.call(with_dnid))
    assert "" == _called(await rig.call(without))


def _called(result: SessionResult) -> str:
    """The called number of ``result``'s decision."""
    assert result.decision is not None
    return result.decision.called_number


async def test_hostile_recorder_called_is_evidence_only(rig: AgiRig) -> None:
    """A hostile ``RECORDER_CALLED`` is kept as text and never reaches a command."""
    hostile = '12"),${SHELL(id)}|../x;\\'
    peer = ScriptedAsterisk(
        CALLEE_LEG,
        variables={**CALLEE_VARIABLES, "RECORDER_CALLED": hostile + "\u00e9" * 50,
                   "CONNECTEDLINE(name)": hostile},
    )

    result = await rig.call(peer)

    assert result.decision is not None
    assert Outcome.FAILED != result.decision.outcome
    assert_fixed_forms(peer)
    assert all("SHELL" not in line for line in peer.lines[1:])
