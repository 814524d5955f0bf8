"""Replay each real Asterisk 22.10.1 trace against FakeAsterisk and compare what comes back.

For every scenario in ``tests/data/asterisk-traces`` the test drives the fake with the same REST
requests in the same order (ids mapped), and plays the caller's side (DTMF, hang-up) where the
trace did. It then compares, for the ``consent-recorder`` app, the REST status codes and body
field names, and the WebSocket event types (in order) and field names (recursively).

What the fake cannot reproduce is listed below with the reason, per scenario and per request or
event kind; nothing is skipped silently, and a trace that is neither replayed nor explained
fails ``test_every_trace_is_replayed_or_explained``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asterisk_recorder.testing import FakeAsterisk

APP = "consent-recorder"
TIME_SCALE = 0.2
"""Prompts play at a fifth of real time. Requests are not re-timed: each waits for the events the
trace had delivered before it was sent, which is what the recording app reacted to."""

REPLAYED = (
    "no-dtmf",
    "optout-pressed",
    "dtmf-then-record",
    "caller-hangs-up-during-disclosure",
    "sip-no-dtmf",
    "sip-optout-pressed",
    "sip-caller-hangs-up-during-disclosure",
)
"""Scenarios where ``consent-recorder`` drives the call over ARI: replayed in full."""

NOT_ARI = {
    "baseline-read-no-dtmf": "pure dialplan (Answer, Read, MixMonitor, Dial): "
    "consent-recorder gets no event and sends no request, so there is nothing ARI to replay",
    "baseline-read-optout": "pure dialplan (Read gets the DTMF): no consent-recorder traffic",
    "baseline-playback": "pure dialplan (Playback): no consent-recorder traffic",
    "agi-granted-ami-originate": "FastAGI + AMI Originate: the decision runs over AGI, not ARI; "
    "the AGI side is replayed by the AGI helper's fake peer, and AMI is not modelled",
    "agi-optout-ari-originate": "FastAGI decision (STREAM FILE result=49): no consent-recorder "
    "traffic; only caller-sim originates and presses DTMF",
}
"""Scenarios outside the fake's scope, with why (checked: they carry no consent-recorder ARI)."""

CALLER_SIDE = (
    "the caller's Local ;1 half (or SIP UAC) belongs to the trace's caller-sim app; the fake has "
    "no Local channel pairs, so its request is replayed as the caller action it caused"
)
ORIGINATE = (
    "POST /channels originates caller-sim's Local pair; the fake places the same call into "
    "consent-recorder with FakeAsterisk.originate() (caller id, exten, context, priority)"
)
CALLER_SIM = (
    "events for the caller-sim app (the Local ;1 half, Dial, ChannelDialplan, ChannelCallerId, "
    "ChannelConnectedLine, dialplan ChannelVarset after continue) describe the trace's own "
    "caller and dialplan, which the fake does not run; only consent-recorder's are compared"
)
IGNORED_EVENTS = {
    ("ChannelVarset", "RTPAUDIOQOS"): "chan_pjsip/res_rtp set RTPAUDIOQOS* on a SIP hang-up; "
    "the fake carries no RTP, so these variable events are not produced",
}
"""Trace events the fake does not produce, keyed by (type, variable prefix), with why."""


@dataclass
class Replay:
    """What one replay observed."""

    statuses: list[tuple[str, str, int, int]]
    """(method, path template, status in the trace, status from the fake)."""
    body_shapes: list[tuple[str, set[str], set[str]]]
    trace_events: list[dict[str, Any]]
    fake_events: list[dict[str, Any]]
    notes: list[str]


def _shape(value: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every key in a JSON value (lists as ``[]``)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            out.add(prefix + key)
            out |= _shape(inner, f"{prefix}{key}.")
    elif isinstance(value, list):
        for item in value:
            out |= _shape(item, f"{prefix}[].")
    return out


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _load(traces: Path, scenario: str, suffix: str) -> list[dict[str, Any]]:
    text = (traces / f"{scenario}{suffix}").read_text()
    return [json.loads(line) for line in text.splitlines() if line]


def _ignored(event: dict[str, Any]) -> bool:
    for kind, prefix in IGNORED_EVENTS:
        if event["type"] == kind and str(event.get("variable", "")).startswith(prefix):
            return True
    return False


def _values(events: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The values the fake is responsible for (ids and timestamps are not compared)."""
    out = []
    for e in events:
        chan = e.get("channel") or {}
        out.append(
            (
                e["type"],
                chan.get("state"),
                e.get("cause"),
                e.get("soft"),
                e.get("digit"),
                e.get("duration_ms"),
                (e.get("playback") or {}).get("state"),
                e.get("variable"),
                e.get("value"),
                tuple(e.get("args", ())),
            )
        )
    return out


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    """The fake at ``TIME_SCALE``."""
    async with FakeAsterisk(time_scale=TIME_SCALE) as server:
        yield server


class _Collector:
    """Frames received on the raw event socket, with a way to wait for a count."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self._grew = asyncio.Condition()

    async def run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                async with self._grew:
                    self.frames.append(json.loads(msg.data))
                    self._grew.notify_all()

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        async with asyncio.timeout(within), self._grew:
            await self._grew.wait_for(lambda: len(self.frames) >= count)


async def _replay(fake: FakeAsterisk, traces: Path, scenario: str) -> Replay:
    rest = sorted(_load(traces, scenario, ".rest.jsonl"), key=lambda r: _when(r["sent"]))
    trace_all = [e for e in _load(traces, scenario, ".jsonl") if e.get("application") == APP]
    trace_events = [e for e in trace_all if not _ignored(e)]
    notes = [f"{e['type']} {e.get('variable')}: ignored" for e in trace_all if _ignored(e)]
    start = next(e for e in trace_events if e["type"] == "StasisStart")
    ours = start["channel"]["id"]
    originate = next(r for r in rest if r["method"] == "POST" and r["path"] == "/ari/channels")
    caller = originate["body"]["id"]
    dtmf_durations = [e["duration_ms"] for e in trace_events if e["type"] == "ChannelDtmfReceived"]
    collector = _Collector()
    received = collector.frames
    headers = {"Authorization": aiohttp.encode_basic_auth(fake.username, fake.password)}
    result = Replay([], [], trace_events, received, notes)
    async with aiohttp.ClientSession(headers=headers) as http:
        ws = await http.ws_connect(f"{fake.url}/ari/events", params={"app": APP})
        reader = asyncio.create_task(collector.run(ws))
        try:
            await fake.wait_for_app(APP)
            chan = start["channel"]
            call = await fake.originate(
                APP,
                caller_name=chan["caller"]["name"],
                caller_number=chan["caller"]["number"],
                extension=chan["dialplan"]["exten"],
                context=chan["dialplan"]["context"],
                priority=chan["dialplan"]["priority"],
                language=chan["language"],
                name=chan["name"],
                args=tuple(start["args"]),
            )
            result.notes.append(f"POST /ari/channels: {ORIGINATE}")
            ids = {ours: call.id}
            caller_tasks: list[asyncio.Task[None]] = []
            for row in rest:
                if row is originate:
                    continue
                sent = _when(row["sent"])
                before = sum(1 for e in trace_events if _when(e["timestamp"]) < sent - 0.0005)
                await collector.wait_for(before)
                path: str = row["path"]
                template = path.replace(ours, "{ours}").replace(caller, "{caller}")
                if caller in path:
                    result.notes.append(f"{row['method']} {template}: {CALLER_SIDE}")
                    if path.endswith("/dtmf"):
                        duration = dtmf_durations.pop(0) if dtmf_durations else 100
                        caller_tasks.append(
                            asyncio.create_task(
                                fake.send_dtmf(call.id, row["query"]["dtmf"], duration_ms=duration)
                            )
                        )
                    elif row["method"] == "DELETE" and call.id in fake.channels:
                        await fake.hangup(call.id)
                    continue
                for trace_id, fake_id in ids.items():
                    path = path.replace(trace_id, fake_id)
                async with http.request(
                    row["method"], fake.url + path, params=row["query"]
                ) as resp:
                    raw = await resp.read()
                    body = json.loads(raw) if raw else None
                    status = resp.status
                result.statuses.append((row["method"], template, row["status"], status))
                result.body_shapes.append((template, _shape(row["body"]), _shape(body)))
                if template.endswith("/play") and isinstance(body, dict):
                    ids[row["body"]["id"]] = body["id"]
            for task in caller_tasks:
                await task
            await collector.wait_for(len(trace_events))
            await asyncio.sleep(0.05)  # anything extra would show up in the comparison
        finally:
            await ws.close()
            await reader
    return result


@pytest.mark.parametrize("scenario", REPLAYED)
async def test_replayed_trace_gives_the_same_statuses_and_events(
    fake: FakeAsterisk, traces_dir: Path, scenario: str
) -> None:
    """Same REST statuses, event types in the same order, field names and key values."""
    replay = await _replay(fake, traces_dir, scenario)

    expected = [(method, path, traced) for method, path, traced, _ in replay.statuses]
    actual = [(method, path, got) for method, path, _, got in replay.statuses]
    assert expected == actual
    assert [e["type"] for e in replay.trace_events] == [e["type"] for e in replay.fake_events]
    for theirs, mine in zip(replay.trace_events, replay.fake_events, strict=True):
        assert _shape(theirs) == _shape(mine), theirs["type"]
    for template, theirs_shape, mine_shape in replay.body_shapes:
        assert theirs_shape == mine_shape, template
    assert replay.statuses, "the replay sent no request"
    # States, causes, DTMF and playback outcomes carry Asterisk's values, not just its keys.
    assert _values(replay.trace_events) == _values(replay.fake_events)


@pytest.mark.parametrize("scenario", REPLAYED)
def test_events_not_compared_all_belong_to_caller_sim(traces_dir: Path, scenario: str) -> None:
    """Every traced event left out of the comparison is caller-sim's (see ``CALLER_SIM``)."""
    apps = {e.get("application") for e in _load(traces_dir, scenario, ".jsonl")}

    assert {APP, "caller-sim"} == apps
    assert CALLER_SIM


def test_every_trace_is_replayed_or_explained(traces_dir: Path) -> None:
    """Each scenario in the trace directory is either replayed or listed with its reason."""
    scenarios = {
        p.name.removesuffix(".rest.jsonl")
        for p in traces_dir.glob("*.rest.jsonl")
    } - {"startup"}

    assert scenarios == set(REPLAYED) | set(NOT_ARI)
    assert set() == set(REPLAYED) & set(NOT_ARI)


@pytest.mark.parametrize("scenario", sorted(NOT_ARI))
def test_unreplayed_trace_really_has_no_consent_recorder_traffic(
    traces_dir: Path, scenario: str
) -> None:
    """The stated reason holds: consent-recorder got no event and no request touched its calls."""
    events = _load(traces_dir, scenario, ".jsonl")
    rest = _load(traces_dir, scenario, ".rest.jsonl")
    caller_side = {"POST /channels", "POST /channels/*/dtmf", "DELETE /channels/*", "GET /channels"}
    kinds = set()
    for r in rest:
        parts = r["path"].removeprefix("/ari").split("/")
        if len(parts) > 2:
            parts[2] = "*"
        kinds.add(f"{r['method']} {'/'.join(parts)}")

    assert [] == [e["type"] for e in events if e.get("application") == APP]
    assert kinds <= caller_side
    assert NOT_ARI[scenario]


async def test_startup_trace_matches_the_fakes_info_and_applications_shape(
    traces_dir: Path,
) -> None:
    """``startup.rest.jsonl`` /asterisk/info and /applications keys are what the fake serves."""
    rows = {r["path"]: r for r in _load(traces_dir, "startup", ".rest.jsonl")}
    info_keys = _shape(rows["/ari/asterisk/info"]["body"])
    app_keys = _shape(rows["/ari/applications"]["body"][0])

    async def fetch() -> tuple[set[str], set[str]]:
        async with FakeAsterisk() as fake:
            headers = {"Authorization": aiohttp.encode_basic_auth(fake.username, fake.password)}
            async with aiohttp.ClientSession(headers=headers) as http:
                ws = await http.ws_connect(f"{fake.url}/ari/events", params={"app": APP})
                await fake.wait_for_app(APP)
                async with http.get(fake.url + "/ari/asterisk/info") as resp:
                    info = await resp.json()
                async with http.get(fake.url + "/ari/applications") as resp:
                    apps = await resp.json()
                await ws.close()
        return _shape(info), _shape(apps[0])

    ours_info, ours_app = await fetch()

    assert info_keys == ours_info
    assert app_keys == ours_app
