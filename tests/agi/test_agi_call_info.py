"""``call_info_from_environment``: what the flow is offered for one AGI call."""

from __future__ import annotations

from asterisk_recorder.agi.protocol import parse_environment
from asterisk_recorder.agi.session import call_info_from_environment
from asterisk_recorder.flow.events import CallInfo

BASE = [
    "agi_request: agi://127.0.0.1:4573/consent",
    "agi_channel: PJSIP/alice-00000001",
    "agi_language: fr_CA",
    "agi_uniqueid: 1795449972.115",
    "agi_callerid: unknown",
    "agi_calleridname: unknown",
    "agi_dnid: 2125550000",
    "agi_extension: s",
    "agi_threadid: 1",
]


def info(lines: list[str], variables: dict[str, str] | None = None) -> CallInfo:
    """CallInfo for ``lines`` with a fixed decision id."""
    return call_info_from_environment(
        parse_environment(lines),
        variables or {},
        decision_id="8d0f5a52-2b8f-4b55-9d3a-7a8c1f3f0c11",
        instance_id="i1",
    )


def test_extension_s_inside_a_gosub_falls_back_to_the_dnid() -> None:
    """In ``Gosub(recorder-consent-agi,s,1)`` EXTEN is ``s``: the dialled number is the DNID."""
    call = info(BASE)

    assert "2125550000" == call.called_number
    assert "" == call.caller_number
    assert "" == call.caller_name
    assert "fr_CA" == call.language
    assert call.policy_override is None
    assert "1795449972.115" == call.linkedid


def test_numeric_extension_is_the_called_number_when_there_is_no_dnid() -> None:
    """A dialled extension with digits is the called number when the DNID is unknown."""
    lines = [*BASE[:6], "agi_dnid: unknown", "agi_extension: 100", "agi_threadid: 1"]

    assert "100" == info(lines).called_number


def test_dnid_wins_over_the_extension_as_in_the_ari_controller() -> None:
    """``CALLERID(dnid)`` beats a rewritten extension (the ARI controller's order)."""
    lines = [*BASE[:7], "agi_extension: 100", "agi_threadid: 1"]

    assert "2125550000" == info(lines).called_number
    assert "2125550111" == info(lines, {"CALLERID(dnid)": "2125550111"}).called_number


def test_recorder_called_overrides_dnid_and_extension() -> None:
    """The operator's ``RECORDER_CALLED`` is the called number; blank counts as absent."""
    lines = [*BASE[:7], "agi_extension: 100", "agi_threadid: 1"]
    variables = {"RECORDER_CALLED": "+33142685300", "CALLERID(dnid)": "2125550111"}

    assert "+33142685300" == info(lines, variables).called_number
    assert "2125550111" == info(lines, {**variables, "RECORDER_CALLED": " "}).called_number


def test_callee_leg_of_u_without_dnid_or_override_has_no_called_number() -> None:
    """Inside ``U()`` (extension ``s``, no DNID) nothing is guessed: the called number is empty."""
    lines = [*BASE[:6], "agi_dnid: unknown", "agi_threadid: 1"]

    assert "" == info(lines).called_number


def test_query_beats_positional_args_beats_channel_variables() -> None:
    """``?policy=`` first, then ``agi_arg_1``, then ``RECORDER_POLICY``; empty counts as absent."""
    with_query = [
        "agi_network_script: consent?policy=opt_in&lang=de",
        *BASE,
        "agi_arg_1: never",
        "agi_arg_2: en",
    ]
    with_args = [*BASE, "agi_arg_1: never", "agi_arg_2: en"]
    empty_query = ["agi_network_script: consent?policy=&lang=", *BASE]
    variables = {"RECORDER_POLICY": "announce", "RECORDER_LANGUAGE": "es"}

    assert ("opt_in", "de") == _override(info(with_query, variables))
    assert ("never", "en") == _override(info(with_args, variables))
    assert ("announce", "es") == _override(info(empty_query, variables))
    assert (None, "fr_CA") == _override(info(empty_query))


def _override(call: CallInfo) -> tuple[str | None, str]:
    """The policy override and language of ``call``."""
    return (call.policy_override, call.language)


def test_jurisdiction_comes_only_from_the_channel_variable() -> None:
    """``RECORDER_JURISDICTION`` is the only jurisdiction override; blank is ignored."""
    assert "DE" == info(BASE, {"RECORDER_JURISDICTION": " DE "}).jurisdiction_override
    assert info(BASE, {"RECORDER_JURISDICTION": "  "}).jurisdiction_override is None
