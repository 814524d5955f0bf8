"""parse_event against every frame Asterisk 22.10.1 sent in the traces, and against junk."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asterisk_recorder.ari import (
    ChannelHangupRequest,
    ChannelVarset,
    Connected,
    StasisStart,
    UnknownEvent,
    parse_event,
)
from asterisk_recorder.ari.events import EVENT_TYPES
from asterisk_recorder.ari.models import Channel, parse_channel
from asterisk_recorder.errors import AriProtocolError


def _trace_frames(traces_dir: Path) -> list[dict[str, Any]]:
    frames = []
    for path in sorted(traces_dir.glob("*.jsonl")):
        if path.name.endswith(".rest.jsonl"):
            continue
        frames += [json.loads(line) for line in path.read_text().splitlines() if line]
    return frames


def test_every_traced_frame_parses_into_its_model(traces_dir: Path) -> None:
    """All frames of all traces parse; modelled types give their class, others UnknownEvent."""
    frames = _trace_frames(traces_dir)
    parsed = [parse_event(raw) for raw in frames]
    kinds = {type(e).__name__ for e in parsed}
    unknown = {e.type for e in parsed if isinstance(e, UnknownEvent)}

    assert 1000 < len(frames)
    assert {"StasisStart", "StasisEnd", "ChannelDtmfReceived", "PlaybackFinished"} <= kinds
    assert unknown.isdisjoint(EVENT_TYPES)
    for raw, event in zip(frames, parsed, strict=True):
        if not isinstance(event, UnknownEvent):
            assert raw["type"] == event.type


def test_no_traced_field_of_a_modelled_event_is_dropped(traces_dir: Path) -> None:
    """Every key Asterisk sent in a modelled event (and in its channel) is a model field."""
    event_lost: set[str] = set()
    channel_lost: set[str] = set()
    channel_fields = {f.name for f in dataclasses.fields(Channel)}
    for raw in _trace_frames(traces_dir):
        cls = EVENT_TYPES.get(raw["type"])
        if cls is None:
            continue
        names = {f.name for f in dataclasses.fields(cls)} | {"type"}
        event_lost |= {f"{raw['type']}.{k}" for k in raw if k not in names}
        for key in ("channel", "peer", "caller", "replace_channel"):
            if isinstance(raw.get(key), dict):
                channel_lost |= set(raw[key]) - channel_fields

    assert set() == event_lost
    assert set() == channel_lost


def test_stasis_start_from_the_trace_is_fully_typed(traces_dir: Path) -> None:
    """The consent-recorder StasisStart of ``no-dtmf`` gives caller, dialplan and state."""
    line = (traces_dir / "no-dtmf.jsonl").read_text().splitlines()[0]
    event = parse_event(json.loads(line))

    assert isinstance(event, StasisStart)
    assert ("consent-recorder", (), "Ring") == (event.application, event.args, event.channel.state)
    assert ("Consent Probe", "5551234") == (event.channel.caller.name, event.channel.caller.number)
    assert ("consent-in", "s", 2, "Stasis") == (
        event.channel.dialplan.context,
        event.channel.dialplan.exten,
        event.channel.dialplan.priority,
        event.channel.dialplan.app_name,
    )


def test_hangup_request_without_soft_is_not_soft() -> None:
    """A caller hang-up (``{"cause": 16}``, no ``soft``) parses with ``soft`` False."""
    channel = {
        "id": "1",
        "name": "n",
        "state": "Up",
        "caller": {"name": "", "number": ""},
        "connected": {"name": "", "number": ""},
        "dialplan": {"context": "c", "exten": "s", "priority": 1},
        "creationtime": "t",
    }
    event = parse_event(
        {
            "type": "ChannelHangupRequest",
            "application": "a",
            "timestamp": "t",
            "cause": 16,
            "channel": channel,
        }
    )

    assert isinstance(event, ChannelHangupRequest)
    assert (16, False, "") == (event.cause, event.soft, event.channel.language)


def test_global_varset_has_no_channel() -> None:
    """A ``ChannelVarset`` without ``channel`` (a global variable) parses with channel None."""
    event = parse_event(
        {
            "type": "ChannelVarset",
            "application": "a",
            "timestamp": "t",
            "variable": "G",
            "value": "1",
        }
    )

    assert isinstance(event, ChannelVarset)
    assert event.channel is None


def test_channelvars_are_read_as_strings() -> None:
    """``channelvars`` values are strings; a null one reads as empty."""
    chan = parse_channel(
        {
            "id": "1",
            "name": "n",
            "state": "Ring",
            "caller": {"name": "", "number": ""},
            "connected": {"name": "", "number": ""},
            "dialplan": {"context": "c", "exten": "s", "priority": 1},
            "creationtime": "t",
            "channelvars": {"A": "x", "B": None},
        }
    )

    assert {"A": "x", "B": ""} == dict(chan.channelvars)


def test_models_are_frozen() -> None:
    """Events are immutable: assigning to a field raises."""
    event = Connected(apps=("a",), server="s", connection=1, at=0.0)

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.connection = 2  # type: ignore[misc]
    assert not event.reconnected


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from([*EVENT_TYPES, "Nope", ""]),
    body=st.dictionaries(
        st.sampled_from(
            [
                "application",
                "timestamp",
                "channel",
                "playback",
                "digit",
                "duration_ms",
                "args",
                "cause",
                "soft",
                "variable",
                "value",
                "peer",
            ]
        ),
        _json,
    ),
)
def test_arbitrary_json_never_raises_anything_but_a_protocol_error(
    kind: str, body: dict[str, Any]
) -> None:
    """Whatever the frame holds, parse_event returns an event or raises AriProtocolError."""
    outcome: object
    try:
        outcome = parse_event({"type": kind, **body})
    except AriProtocolError as exc:
        outcome = exc
    if isinstance(outcome, AriProtocolError):
        assert "" != str(outcome)
    else:
        assert kind == getattr(outcome, "type", None)


def test_every_traced_event_is_hashable(traces_dir: Path) -> None:
    """Frozen events can be put in sets and used as keys (mapping fields are left out of hash)."""
    parsed = [parse_event(raw) for raw in _trace_frames(traces_dir)]

    assert len({hash(e) for e in parsed}) > 1
    assert parsed[0] in set(parsed)


def test_public_names_are_exported_once() -> None:
    """``asterisk_recorder.ari`` and ``.testing`` export every public name once, importably."""
    import asterisk_recorder.ari as ari
    import asterisk_recorder.testing as testing

    for module in (ari, testing):
        public = {n for n in vars(module) if not n.startswith("_") and n[0].isupper()}
        assert len(set(module.__all__)) == len(module.__all__)
        assert public <= set(module.__all__)
        assert all(hasattr(module, name) for name in module.__all__)
