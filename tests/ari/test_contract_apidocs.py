"""Contract: our models and requests match Asterisk 22's own api-docs (swagger 1.2 JSON).

Field names and JSON types of every model and event are checked against ``events.json`` and the
resource models; every request the client can send (path, method, query and body parameters) is
checked against ``channels.json``, ``playbacks.json``, ``applications.json`` and ``asterisk.json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from asterisk_recorder.ari import AriClient, EventStream, StasisStart
from asterisk_recorder.ari import models as m
from asterisk_recorder.ari.events import EVENT_TYPES, Event
from asterisk_recorder.testing import FakeAsterisk

RESOURCE_FILES = ("channels.json", "playbacks.json", "applications.json", "asterisk.json")


def _load(ari_api_docs: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ari_api_docs / name).read_text())
    return data


@pytest.fixture
def swagger_models(ari_api_docs: Path) -> dict[str, dict[str, Any]]:
    """Every model of the api-docs, by name."""
    out: dict[str, dict[str, Any]] = {}
    for name in (*RESOURCE_FILES, "events.json"):
        out.update(_load(ari_api_docs, name)["models"])
    return out


_SCALARS: dict[Any, set[str]] = {
    str: {"string", "Date"},
    int: {"int", "long"},
    bool: {"boolean"},
    float: {"double"},
}
_MODEL_NAMES: dict[Any, str] = {
    m.Channel: "Channel",
    m.Playback: "Playback",
    m.CallerId: "CallerID",
    m.DialplanLocation: "DialplanCEP",
}


def _swagger_types(hint: Any) -> tuple[set[str], bool]:
    """The swagger type names a Python hint may stand for, and whether it is optional."""
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        assert 1 == len(args), hint
        hint = args[0]
    if hint in _SCALARS:
        return _SCALARS[hint], optional
    if hint in _MODEL_NAMES:
        return {_MODEL_NAMES[hint]}, optional
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple and args[1:] == (...,):
        inner = args[0]
        if inner is str:
            return {"List[string]"}, optional
        if typing.get_origin(inner) in (Mapping, typing.Mapping):
            return {"List[object]"}, optional
    if origin in (Mapping, typing.Mapping):
        return {"object"}, optional
    raise AssertionError(f"no swagger mapping for {hint!r}")


def _check_model(cls: type, model: dict[str, Any], *, skip: frozenset[str] = frozenset()) -> None:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = model["properties"]
    ours = {f.name for f in dataclasses.fields(cls)} - skip
    unknown = ours - set(props)
    assert set() == unknown, f"{cls.__name__}: fields not in the api-docs: {unknown}"
    for name in ours:
        allowed, optional = _swagger_types(hints[name])
        declared = props[name]["type"]
        assert declared in allowed, f"{cls.__name__}.{name}: ours {allowed}, docs {declared}"
        if props[name].get("required") is True:
            assert not optional, f"{cls.__name__}.{name} is required by the api-docs"
    required = {n for n, p in props.items() if p.get("required") is True}
    missing = required - ours - skip
    assert set() == missing, f"{cls.__name__}: required fields not modelled: {missing}"


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (m.Channel, "Channel"),
        (m.CallerId, "CallerID"),
        (m.DialplanLocation, "DialplanCEP"),
        (m.Playback, "Playback"),
        (m.Application, "Application"),
        (m.AsteriskPing, "AsteriskPing"),
    ],
)
def test_resource_model_fields_match_the_api_docs(
    swagger_models: dict[str, dict[str, Any]], cls: type, name: str
) -> None:
    """Each resource model has exactly the api-docs' field names and JSON types."""
    _check_model(cls, swagger_models[name])


def test_asterisk_info_fields_come_from_the_documented_sections(
    swagger_models: dict[str, dict[str, Any]],
) -> None:
    """``AsteriskInfo`` flattens documented string fields of SystemInfo/ConfigInfo/StatusInfo."""
    sources = {
        "version": ("SystemInfo", "version"),
        "entity_id": ("SystemInfo", "entity_id"),
        "default_language": ("ConfigInfo", "default_language"),
        "startup_time": ("StatusInfo", "startup_time"),
        "last_reload_time": ("StatusInfo", "last_reload_time"),
    }
    info = swagger_models["AsteriskInfo"]["properties"]

    assert {f.name for f in dataclasses.fields(m.AsteriskInfo)} == set(sources)
    for model, prop in sources.values():
        assert model in {p["type"] for p in info.values()}
        assert swagger_models[model]["properties"][prop]["type"] in {"string", "Date"}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_model_fields_match_events_json(
    swagger_models: dict[str, dict[str, Any]], event_type: str
) -> None:
    """Each event model has the api-docs' field names and types (plus Message/Event's own)."""
    base = frozenset(f.name for f in dataclasses.fields(Event))
    _check_model(EVENT_TYPES[event_type], swagger_models[event_type], skip=base)
    message = swagger_models["Message"]["properties"]
    event = swagger_models["Event"]["properties"]

    assert {"asterisk_id"} <= set(message)
    assert {"application", "timestamp"} <= set(event)


# --- REST --------------------------------------------------------------------------------


def _operations(ari_api_docs: Path) -> list[tuple[str, re.Pattern[str], dict[str, Any]]]:
    ops = []
    for name in RESOURCE_FILES:
        for api in _load(ari_api_docs, name)["apis"]:
            regex = re.compile("/ari" + re.sub(r"\{[^}]+\}", "[^/]+", api["path"]))
            for op in api["operations"]:
                ops.append((op["httpMethod"], regex, op))
    return ops


async def _drive_every_client_method(ari: AriClient, fake: FakeAsterisk) -> set[str]:
    """Call each public REST method of the client once; return the names called."""
    async with EventStream(fake.settings()) as events:
        await events.get()
        await fake.wait_for_app("consent-recorder")
        call = await fake.originate(caller_number="555")
        assert isinstance(await asyncio.wait_for(events.get(), 2), StasisStart)
        cid = call.id
        fake.sounds["test/endless"] = 1000.0  # still playing when fetched and stopped
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "asterisk_info": ari.asterisk_info,
            "ping": ari.ping,
            "list_channels": ari.list_channels,
            "get_channel": lambda: ari.get_channel(cid),
            "answer": lambda: ari.answer(cid),
            "ring": lambda: ari.ring(cid),
            "send_dtmf": lambda: ari.send_dtmf(
                cid, "1", duration=100, between=50, before=0, after=0
            ),
            "play": lambda: ari.play(cid, "sound:test/endless", lang="en", playback_id="pb-1"),
            "get_playback": lambda: ari.get_playback("pb-1"),
            "stop_playback": lambda: ari.stop_playback("pb-1"),
            "set_variable": lambda: ari.set_variable(cid, "X", "1"),
            "get_variable": lambda: ari.get_variable(cid, "X"),
            "list_applications": ari.list_applications,
            "get_application": lambda: ari.get_application("consent-recorder"),
            "subscribe": lambda: ari.subscribe("consent-recorder", f"channel:{cid}"),
            "unsubscribe": lambda: ari.unsubscribe("consent-recorder", f"channel:{cid}"),
            "continue_in_dialplan": lambda: ari.continue_in_dialplan(
                cid, context="c", extension="s", priority=1, label="l"
            ),
            "hangup": lambda: ari.hangup(cid, reason="normal"),
            "originate": lambda: ari.originate(
                "PJSIP/1",
                app="consent-recorder",
                app_args="a",
                context="c",
                extension="s",
                priority=1,
                caller_id="x <1>",
                dial_timeout=30,
                channel_id="orig-1",
                variables={"A": "1"},
            ),
        }
        for name, invoke in calls.items():
            await invoke()
            if name == "continue_in_dialplan":
                await fake.wait_for_continue(cid)
    return set(calls)


async def test_every_client_request_exists_in_the_api_docs(
    ari: AriClient, fake: FakeAsterisk, ari_api_docs: Path
) -> None:
    """Every path, method, query and body parameter the client sends is declared by Asterisk."""
    called = await _drive_every_client_method(ari, fake)
    public = {
        name
        for name, fn in inspect.getmembers(AriClient, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in {"close", "request"}
    }
    ops = _operations(ari_api_docs)
    problems: list[str] = []
    for req in fake.requests:
        matches = [
            (regex.pattern.count("[^/]+"), op)
            for method, regex, op in ops
            if method == req.method and regex.fullmatch(req.path)
        ]
        if not matches:
            problems.append(f"{req.method} {req.path}: no such operation")
            continue
        # The most literal template wins (``/channels/create`` over ``/channels/{channelId}``).
        _, op = min(matches, key=lambda pair: pair[0])
        params = {p["name"]: p for p in op.get("parameters", [])}
        query_names = {n for n, p in params.items() if p["paramType"] == "query"}
        body_names = {n for n, p in params.items() if p["paramType"] == "body"}
        sent = set(req.query)
        problems += [
            f"{req.method} {req.path}: query {k!r} undeclared"
            for k in req.query
            if k not in query_names
        ]
        if req.body:
            body = json.loads(req.body)
            assert isinstance(body, dict)
            # ARI reads query parameters from a JSON body too; ``variables`` is a body param.
            problems += [
                f"{req.method} {req.path}: body {k!r} undeclared"
                for k in body
                if k not in query_names | body_names
            ]
            sent |= set(body)
        problems += [
            f"{req.method} {req.path}: required {n!r} not sent"
            for n in query_names
            if params[n].get("required") and n not in sent
        ]
        if req.status >= 400:
            problems.append(f"{req.method} {req.path}: the fake answered {req.status}")

    assert public == called
    assert [] == problems
