"""Harness of the end-to-end suite: a real Asterisk 22, the real controller, a simulated caller.

This module owns the pieces the e2e tests share: where the Asterisk under test is
(``AriTarget``, from ``ASTERISK_RECORDER_E2E_*``), the caller simulator (``CallerSim``, an ARI
application of its own that originates Local channels and sends DTMF exactly as in
tests/data/asterisk-traces), the controller process (``RecorderProcess``, ``asterisk-recorder
serve`` started as a subprocess) and ledger look-ups over plain SQL. It must not import the code
under test for the caller side: the simulator speaks raw ARI so that a bug in
``asterisk_recorder.ari`` cannot hide itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

__all__ = [
    "CALLER_APP",
    "DTMF_PCAP",
    "SPEECH_PCAP",
    "AriTarget",
    "Call",
    "CallerSim",
    "LedgerRow",
    "RecorderProcess",
    "SipCall",
    "asterisk_errors",
    "file_size",
    "free_port",
    "ledger_row",
    "recording_facts",
    "run_cli",
    "wav_files",
]

CALLER_APP = "caller-sim"
"""The ARI application the simulated caller (the ``;1`` half of a Local channel) enters."""

Event = dict[str, Any]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class AriTarget:
    """The Asterisk under test, as ``run_local_asterisk.sh`` (or the operator) describes it."""

    url: str
    user: str
    password: str
    app: str = "consent-recorder"
    agi_port: int = 4573
    sip_port: int = 5160
    uas_port: int = 5170
    ami_port: int = 5038
    ami_user: str = "e2e-recorder"
    ami_secret: str = "e2e-ami-secret"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AriTarget | None:
        """Read ``ASTERISK_RECORDER_E2E_*``; None when no ARI URL is configured."""
        url = env.get("ASTERISK_RECORDER_E2E_ARI_URL", "").rstrip("/")
        if not url:
            return None
        return cls(
            url=url,
            user=env.get("ASTERISK_RECORDER_E2E_ARI_USER", "e2e"),
            password=env.get("ASTERISK_RECORDER_E2E_ARI_PASSWORD", "e2e-secret"),
            app=env.get("ASTERISK_RECORDER_E2E_APP", "consent-recorder"),
            agi_port=int(env.get("ASTERISK_RECORDER_E2E_AGI_PORT", "4573")),
            sip_port=int(env.get("ASTERISK_RECORDER_E2E_SIP_PORT", "5160")),
            uas_port=int(env.get("ASTERISK_RECORDER_E2E_UAS_PORT", "5170")),
            ami_port=int(env.get("ASTERISK_RECORDER_E2E_AMI_PORT", "5038")),
            ami_user=env.get("ASTERISK_RECORDER_E2E_AMI_USER", "e2e-recorder"),
            ami_secret=env.get("ASTERISK_RECORDER_E2E_AMI_SECRET", "e2e-ami-secret"),
        )


@dataclass(slots=True)
class Call:
    """One simulated call: the caller half (``;1``) and the half running dialplan (``;2``)."""

    sim: CallerSim
    caller_id: str
    caller_name: str
    dialplan_id: str = ""

    def events(self, kind: str | None = None) -> list[Event]:
        """Events seen so far on either half of this call (optionally of one type)."""
        ids = {self.caller_id, self.dialplan_id} - {""}
        return [
            e
            for e in self.sim.events
            if _channel_id(e) in ids and (kind is None or e.get("type") == kind)
        ]

    def playbacks(self, kind: str) -> list[dict[str, Any]]:
        """``playback`` objects of ``kind`` events (PlaybackFinished...) on the dialplan half."""
        target = f"channel:{self.dialplan_id}"
        return [
            e["playback"]
            for e in self.sim.events
            if e.get("type") == kind and e.get("playback", {}).get("target_uri") == target
        ]

    def caller_seen(self) -> dict[str, str]:
        """Caller name and number of the dialplan half, as Asterisk's snapshots report them."""
        for event in reversed(self.events()):
            channel = event["channel"]
            if channel.get("id") == self.dialplan_id and "caller" in channel:
                return {
                    "name": str(channel["caller"]["name"]),
                    "number": str(channel["caller"]["number"]),
                }
        raise AssertionError(f"no snapshot of {self.dialplan_id} seen")

    def variables(self) -> dict[str, str]:
        """Last value of every channel variable set on the dialplan half."""
        values: dict[str, str] = {}
        for e in self.events("ChannelVarset"):
            if _channel_id(e) == self.dialplan_id:
                values[str(e["variable"])] = str(e.get("value", ""))
        return values

    def dialplan_apps(self) -> list[str]:
        """Dialplan applications the dialplan half ran, in order (``MixMonitor``, ``Dial``...)."""
        return [
            str(e.get("dialplan_app", ""))
            for e in self.events("ChannelDialplan")
            if _channel_id(e) == self.dialplan_id
        ]

    def user_events(self, name: str) -> list[dict[str, str]]:
        """Bodies of ``UserEvent(name,...)`` raised on the dialplan half."""
        return [
            {str(k): str(v) for k, v in e.get("userevent", {}).items()}
            for e in self.events("ChannelUserevent")
            if e.get("eventname") == name
        ]

    async def wait_user_event(self, name: str, within: float = 30.0) -> dict[str, str]:
        """The first ``UserEvent(name,...)`` of this call, waiting for it if needed."""
        event = await self.sim.wait_for(
            lambda e: (
                e.get("type") == "ChannelUserevent"
                and e.get("eventname") == name
                and _channel_id(e) == self.dialplan_id
            ),
            within,
            f"UserEvent {name} on {self.dialplan_id}",
        )
        return {str(k): str(v) for k, v in event.get("userevent", {}).items()}

    async def wait_playback_started(self, within: float = 15.0) -> Event:
        """The disclosure (any playback on the dialplan half) has started."""
        return await self.sim.wait_for(
            lambda e: (
                e.get("type") == "PlaybackStarted"
                and str(e.get("playback", {}).get("target_uri", ""))
                == f"channel:{self.dialplan_id}"
            ),
            within,
            f"PlaybackStarted on {self.dialplan_id}",
        )

    async def wait_answered(self, within: float = 15.0) -> None:
        """The caller half entered ``caller-sim``: the dialplan half was answered."""
        await self.sim.wait_for(
            lambda e: e.get("type") == "StasisStart" and _channel_id(e) == self.caller_id,
            within,
            f"StasisStart of {self.caller_id} in {CALLER_APP}",
        )

    async def wait_destroyed(self, within: float = 15.0) -> None:
        """Both halves are gone."""
        for cid in (self.caller_id, self.dialplan_id):
            await self.sim.wait_for(
                lambda e, cid=cid: e.get("type") == "ChannelDestroyed" and _channel_id(e) == cid,
                within,
                f"ChannelDestroyed of {cid}",
            )

    async def dtmf(self, digits: str) -> None:
        """The caller presses keys (sent on ``;1``, received on ``;2`` about 200 ms later)."""
        await self.sim.post(f"/channels/{self.caller_id}/dtmf", params={"dtmf": digits})

    async def hang_up(self) -> None:
        """The caller hangs up (404 when the call is already gone is fine)."""
        await self.sim.delete(f"/channels/{self.caller_id}", allow=(404,))


class CallerSim:
    """A raw ARI client that plays the caller: originate, DTMF, hang up, and watch events."""

    def __init__(self, target: AriTarget) -> None:
        self.target = target
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._session: aiohttp.ClientSession | None = None
        self._reader: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CallerSim]:
        """Connect the ``caller-sim`` event WebSocket; hang up leftover calls on exit."""
        headers = {
            "Authorization": aiohttp.encode_basic_auth(self.target.user, self.target.password)
        }
        async with aiohttp.ClientSession(headers=headers) as session:
            self._session = session
            ws_url = self.target.url.replace("http", "ws", 1) + "/ari/events"
            ws = await session.ws_connect(ws_url, params={"app": CALLER_APP}, heartbeat=20)
            self._reader = asyncio.create_task(self._read(ws))
            try:
                yield self
            finally:
                await self._hang_up_leftovers()
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader
                await ws.close()
                self._session = None

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def _hang_up_leftovers(self) -> None:
        ids = {_channel_id(e) for e in self.events} - {""}
        gone = {_channel_id(e) for e in self.events if e.get("type") == "ChannelDestroyed"}
        for cid in sorted(ids - gone):
            with contextlib.suppress(aiohttp.ClientError, AssertionError):
                await self.delete(f"/channels/{cid}", allow=(404,))

    async def wait_for(self, predicate: Callable[[Event], bool], within: float, what: str) -> Event:
        """The first event (already seen or still to come) that matches ``predicate``."""
        deadline = time.monotonic() + within
        async with self._changed:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(e.get("type"), _channel_id(e)) for e in self.events[-15:]]
                    raise AssertionError(f"timed out after {within}s waiting for {what}; {seen}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        allow: tuple[int, ...] = (),
    ) -> Any:
        """One ARI REST request; asserts a 2xx (or an ``allow``-ed) status; returns the JSON."""
        assert self._session is not None, "CallerSim is not running"
        url = f"{self.target.url}/ari{path}"
        async with self._session.request(method, url, params=params, json=body) as response:
            text = await response.text()
            ok = 200 <= response.status < 300 or response.status in allow
            assert ok, f"{method} {path} -> {response.status} {text}"
            return json.loads(text) if text and response.status < 300 else None

    async def post(self, path: str, **kwargs: Any) -> Any:
        """POST ``/ari{path}``."""
        return await self.request("POST", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        """DELETE ``/ari{path}``."""
        return await self.request("DELETE", path, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> Any:
        """GET ``/ari{path}``."""
        return await self.request("GET", path, **kwargs)

    async def watch_sip_caller(self, endpoint: str = "PJSIP/e2e-caller") -> None:
        """Subscribe caller-sim to a SIP endpoint, so it sees that phone's channels."""
        await self.post(
            f"/applications/{CALLER_APP}/subscription",
            params={"eventSource": f"endpoint:{endpoint}"},
        )

    async def sip_call(self, endpoint: str = "PJSIP/e2e-caller", within: float = 15.0) -> Call:
        """The next call of a watched SIP endpoint (its channel runs the dialplan)."""
        known = {_channel_id(e) for e in self.events}
        prefix = endpoint + "-"
        event = await self.wait_for(
            lambda e: (
                e.get("type") == "ChannelCreated"
                and str((e.get("channel") or {}).get("name", "")).startswith(prefix)
                and _channel_id(e) not in known
            ),
            within,
            f"a new channel of {endpoint}",
        )
        return Call(sim=self, caller_id="", caller_name="", dialplan_id=_channel_id(event))

    async def originate(
        self, endpoint: str, *, caller_id: str = '"E2E Caller" <+12125550100>'
    ) -> Call:
        """Place a call into ``endpoint`` (``Local/<policy>@e2e-in``); ``;1`` enters caller-sim.

        The caller id travels in the JSON body, so hostile values (commas, quotes, newlines,
        10 kB) reach Asterisk unmangled by URL encoding limits.
        """
        channel = await self.post(
            "/channels",
            body={"endpoint": endpoint, "app": CALLER_APP, "callerId": caller_id, "timeout": 30},
        )
        call = Call(sim=self, caller_id=str(channel["id"]), caller_name=str(channel["name"]))
        if channel["name"].endswith(";1"):
            twin = channel["name"][:-2] + ";2"
            event = await self.wait_for(
                lambda e: (e.get("channel") or {}).get("name") == twin,
                10,
                f"first event of {twin}",
            )
            call.dialplan_id = _channel_id(event)
        return call


def _channel_id(event: Event) -> str:
    channel = event.get("channel")
    if isinstance(channel, dict):
        return str(channel.get("id", ""))
    return ""


@dataclass(slots=True)
class RecorderProcess:
    """``asterisk-recorder serve`` (or ``command``) as a child process, configured by TOML."""

    config_file: Path
    log_file: Path
    http_port: int
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    command: str = "serve"

    async def start(self, ready_timeout: float = 30.0) -> None:
        """Start ``serve`` and wait until ``/readyz`` answers 200."""
        log = self.log_file.open("ab")
        env = {**os.environ, **self.env}
        env.pop("ASTERISK_RECORDER_CONFIG", None)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "asterisk_recorder",
            self.command,
            "--config",
            str(self.config_file),
            stdout=log,
            stderr=log,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + ready_timeout
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise AssertionError(
                        f"serve exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        await self.stop()
        raise AssertionError(f"serve not ready after {ready_timeout}s:\n{self.log_tail()}")

    async def stop(self, within: float = 20.0) -> int:
        """SIGTERM, wait, and return the exit code (SIGKILL if it does not exit in time)."""
        if self.process is None:
            return 0
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), within)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        code = self.process.returncode
        assert code is not None
        return code

    async def ledger(self, *args: str) -> tuple[int, str, str]:
        """Run ``asterisk-recorder ledger ARGS`` with this controller's configuration."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "asterisk_recorder",
            "ledger",
            *args,
            "--config",
            str(self.config_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **self.env},
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """Run ``asterisk-recorder ARGS --config <this process's file>``."""
        return await run_cli(*args, "--config", str(self.config_file), env=self.env)

    async def kill(self) -> None:
        """SIGKILL: the controller dies without any chance to hand calls back."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines the controller wrote (for assertion messages)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        """The controller's JSON log lines, parsed (non-JSON lines are skipped)."""
        records = []
        for line in self.log_file.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """The ledger columns the e2e scenarios assert on."""

    decision_id: str
    channel_id: str
    driver: str
    mode: str
    outcome: str
    recording_path: str | None
    keys: object


_BY_DECISION_ID = (
    "SELECT decision_id::text, channel_id, driver, mode, outcome, recording_path, keys "
    "FROM decisions WHERE decision_id::text = $1"
)
_BY_CHANNEL_ID = (
    "SELECT decision_id::text, channel_id, driver, mode, outcome, recording_path, keys "
    "FROM decisions WHERE channel_id = $1"
)


async def ledger_row(
    dsn: str, *, decision_id: str = "", channel_id: str = "", within: float = 10.0
) -> LedgerRow:
    """The ledger row of one decision (by decision id or channel id), waiting for the commit."""
    assert decision_id or channel_id
    column, value = ("decision_id", decision_id) if decision_id else ("channel_id", channel_id)
    query = _BY_DECISION_ID if decision_id else _BY_CHANNEL_ID
    deadline = time.monotonic() + within
    connection = await asyncpg.connect(dsn)
    try:
        while True:
            with contextlib.suppress(asyncpg.UndefinedTableError):
                rows = await connection.fetch(query, value)
                if rows:
                    assert 1 == len(rows), f"more than one ledger row for {column}={value}"
                    row = rows[0]
                    return LedgerRow(
                        decision_id=row[0],
                        channel_id=row[1],
                        driver=row[2],
                        mode=row[3],
                        outcome=row[4],
                        recording_path=row[5],
                        keys=json.loads(row[6]) if isinstance(row[6], str) else row[6],
                    )
            if time.monotonic() > deadline:
                raise AssertionError(f"no ledger row with {column}={value} after {within}s")
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def run_cli(*args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``asterisk-recorder ARGS`` as a subprocess: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asterisk_recorder",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def recording_facts(
    dsn: str,
    decision_id: str,
    *,
    until: str | None = None,
    within: float = 20.0,
) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, payload)`` of the ``recording.*`` facts of one decision, in ledger order.

    With ``until``, waits (up to ``within`` seconds) until a fact of that kind is there.
    """
    deadline = time.monotonic() + within
    connection = await asyncpg.connect(dsn)
    try:
        while True:
            rows = await connection.fetch(
                "SELECT kind, payload FROM ledger_facts WHERE decision_id::text = $1 "
                "AND kind LIKE 'recording.%' ORDER BY seq",
                decision_id,
            )
            facts = [
                (row[0], json.loads(row[1]) if isinstance(row[1], str) else dict(row[1]))
                for row in rows
            ]
            if until is None or any(kind == until for kind, _ in facts):
                return facts
            if time.monotonic() > deadline:
                raise AssertionError(f"no {until} for {decision_id} after {within}s: {facts}")
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


def asterisk_errors(log: Path, since: int) -> list[str]:
    """The ERROR lines Asterisk wrote to ``log`` after byte offset ``since``."""
    with log.open("rb") as handle:
        handle.seek(since)
        text = handle.read().decode(errors="replace")
    return [line for line in text.splitlines() if " ERROR[" in line]


SAFE_RECORDING = re.compile(r"^/[A-Za-z0-9_./-]+$")
"""What a controller-built recording path may look like (the dialplan enforces the same)."""


def file_size(path: Path) -> int | None:
    """Size of a regular file, or None when there is none at ``path``."""
    return path.stat().st_size if path.is_file() else None


def wav_files(directory: Path) -> list[Path]:
    """Every recording under ``directory`` (recursively), sorted."""
    return sorted(p for p in directory.rglob("*") if p.is_file())


SIPP_DIR = Path(__file__).resolve().parent / "sipp"
DTMF_PCAP = "/usr/share/sip-tester/dtmf_2833_{digit}.pcap"
SPEECH_PCAP = "/usr/share/sip-tester/g711a.pcap"


@dataclass(slots=True)
class SipCall:
    """A SIP call placed by SIPp (the phone) through Asterisk to a SIPp UAS (the far side)."""

    target: AriTarget
    workdir: Path
    service: str
    before_ms: int
    pcap: str
    after_ms: int
    caller_name: bytes = b"E2E SIP Caller"
    uac_exit: int | None = None
    uas_exit: int | None = None

    async def run(self, within: float = 60.0) -> None:
        """Start the far side, place the call, wait for both SIPp processes to finish."""
        scenario = (SIPP_DIR / "caller.xml").read_bytes()
        scenario = (
            scenario.replace(b"@BEFORE_MS@", str(self.before_ms).encode())
            .replace(b"@PCAP@", self.pcap.encode())
            .replace(b"@AFTER_MS@", str(self.after_ms).encode())
            .replace(b"@CALLER_NAME@", self.caller_name)
        )
        caller_xml = self.workdir / "caller.xml"
        caller_xml.write_bytes(scenario)
        common = ["-m", "1", "-i", "127.0.0.1", "-nostdin", "-trace_err"]
        uas = await asyncio.create_subprocess_exec(
            "sipp", "-sn", "uas", "-p", str(self.target.uas_port),
            "-mp", str(free_port()), *common,
            "-error_file", str(self.workdir / "uas.err"),
            "127.0.0.1:" + str(self.target.sip_port),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        uac = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(caller_xml), "-s", self.service, "-p", str(free_port()),
            "-mp", str(free_port()), *common,
            "-error_file", str(self.workdir / "uac.err"),
            "127.0.0.1:" + str(self.target.sip_port),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            self.uac_exit = await asyncio.wait_for(uac.wait(), within)
            self.uas_exit = await asyncio.wait_for(uas.wait(), 10)
        finally:
            for process in (uac, uas):
                if process.returncode is None:
                    process.kill()
                    await process.wait()

    def errors(self) -> str:
        """What SIPp logged as unexpected (for assertion messages)."""
        return "".join(
            path.read_text(errors="replace")
            for path in (self.workdir / "uac.err", self.workdir / "uas.err")
            if path.is_file()
        )
