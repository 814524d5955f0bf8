"""``asterisk-recorder demo``: the real ``serve`` code against a fake Asterisk, end to end.

This module owns the demo scenarios: it starts the ledger's database (embedded PostgreSQL unless
a DSN is configured), the shipped ``FakeAsterisk`` on loopback and the real ``Service``; places a
handful of calls that cover the consent outcomes; prints what it changed in the configuration
and why, a table of the calls, then the ledger row of every decision of this run with its full
decision id (so ``asterisk-recorder ledger show --call ID`` follows each one), and verifies the
hash chain. With the fake Asterisk, each recorded call leaves a real WAV where MixMonitor would;
the real sealer (in-process, throwaway key) seals it, the demo prints ``sealed <sha256>`` per
recording, verifies each, and shows a tampered copy failing. It must not take shortcuts around
the product: calls go through ARI over real sockets, decisions and facts through the real
ledger. It must not change a setting silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from asterisk_recorder.ari.client import AriClient
from asterisk_recorder.ari.events import (
    ChannelVarset,
    PlaybackFinished,
    PlaybackStarted,
    StreamEvent,
)
from asterisk_recorder.ari.stream import EventStream
from asterisk_recorder.errors import LedgerError, RecorderError
from asterisk_recorder.ledger.admin import show_call
from asterisk_recorder.ledger.audit import Claim, audit_ledger
from asterisk_recorder.ledger.checkpoints import witness_from_target
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.signing import trusted_verifiers
from asterisk_recorder.ledger.witness import WitnessedCheckpoint
from asterisk_recorder.recordings import KekOpener, KeyStore, SealInfo, VerifyResult, verify
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.disposal import Disposer, place_hold
from asterisk_recorder.recordings.runner import sealer_actor, sealer_paths
from asterisk_recorder.recordings.sealer import Sealer
from asterisk_recorder.service import Service, build
from asterisk_recorder.settings import (
    AgiSettings,
    AmiSettings,
    AriServerSettings,
    HttpSettings,
    Secret,
    Settings,
)
from asterisk_recorder.settings.pause_rules import pause_required
from asterisk_recorder.settings.retention import parse_retention
from asterisk_recorder.testing import FakeAsterisk

__all__ = ["SCENARIOS", "DemoResult", "RealAsteriskCaller", "Scenario", "run_demo"]

APP = "consent-recorder"
CALLER_APP = "recorder-demo-caller"
"""The ARI app the real-Asterisk demo originates its simulated callers into."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One demo call.

    Attributes:
        name: what it shows.
        caller / called: caller id number and dialled number.
        keys: DTMF the caller presses during the disclosure (empty: silent).
        keys_after: DTMF the caller presses once the disclosure ended (opt-in consent counts
            only then).
        hangup: the caller hangs up during the disclosure.
        expect: the outcome the product should reach.
        app: the Stasis app dialled (a missing app shows the controller being unreachable).
        pause: once recording, the agent pauses it for a card payment and resumes it, over
            the controller's HTTP API (the fake Asterisk only: it needs the fake's AMI).
    """

    name: str
    caller: str
    called: str
    keys: str = ""
    keys_after: str = ""
    hangup: bool = False
    expect: str = ""
    app: str = APP
    pause: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("opt-out pressed (caller in California)", "+14155550101", "2125550100", keys="1",
             expect="not_recorded_opted_out"),
    Scenario("silent acceptance (opt-out offered)", "+14155550102", "2125550100",
             expect="recorded_notified"),
    Scenario("opt-in accepted (caller in Germany)", "+4930901820", "2125550100",
             keys_after="1", expect="recorded_consented"),
    Scenario("opt-in declined (caller in Germany)", "+4930901821", "2125550100", keys="2",
             expect="not_recorded_declined"),
    Scenario("opt-in timeout (no key)", "+4930901822", "2125550100",
             expect="not_recorded_no_consent"),
    Scenario("hang-up during the disclosure", "+14155550103", "2125550100", hangup=True,
             expect="abandoned"),
    Scenario("interstate NY -> Connecticut (strictest wins, beep every 15 s)", "+12125550104",
             "+18605550100", expect="recorded_notified"),
    Scenario("controller unreachable (Stasis app not registered)", "+12125550105",
             "2125550100", app="consent-recorder-down",
             expect="no decision: fail-closed (STASISSTATUS=FAILED)"),
    Scenario("card payment: recording paused and resumed (HTTP API, AMI MixMonitorMute)",
             "+12125550106", "2125550100", pause=True, expect="recorded_notified"),
)
"""The calls the demo places, site jurisdiction US-NY (one-party: announce)."""


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What one demo call produced."""

    scenario: Scenario
    channel_id: str
    outcome: str
    variables: dict[str, str]
    row: dict[str, Any] | None

    @property
    def as_expected(self) -> bool:
        """The product reached the outcome the scenario expects."""
        return self.outcome == self.scenario.expect


DEMO_SITE = "US-NY"
"""The site jurisdiction the scenarios' expected outcomes are written for."""
DEMO_INPUT_TIMEOUT = 1.5
"""The longest wait for a key the demo uses, so the opt-in timeout call ends quickly."""
DEMO_RECORDING_SECONDS = 5.0
"""Seconds of tone the fake MixMonitor writes per recorded call."""


@dataclass(frozen=True, slots=True)
class DemoChange:
    """One setting the demo runs with instead of the configured one, and why."""

    key: str
    demo: str
    configured: str
    why: str


def demo_settings(
    base: Settings, server: AriServerSettings, *, recording_dir: Path | None = None,
    ami: AmiSettings | None = None,
) -> Settings:
    """``base`` with ARI pointed at ``server``, listeners on free loopback ports, and the demo's
    site and input timeout (each difference is listed by ``demo_changes``); with
    ``recording_dir``, recordings go there (the fake Asterisk writes them, the sealer seals
    them into its siblings ``sealed``, ``quarantine`` and ``kek-public``); with ``ami`` (the
    fake's), pausing is on with a throwaway API token, unless the configured MixMonitor
    options forbid it (``b``)."""
    flow = dataclasses.replace(
        base.flow, input_timeout=min(base.flow.input_timeout, DEMO_INPUT_TIMEOUT)
    )
    recordings = base.recordings
    if recording_dir is not None:
        flow = dataclasses.replace(
            flow, recording=dataclasses.replace(flow.recording, directory=str(recording_dir))
        )
        top = recording_dir.parent
        recordings = dataclasses.replace(
            recordings, sealed_dir=str(top / "sealed"), quarantine_dir=str(top / "quarantine"),
            key_dir=str(top / "kek-public"), scan_interval=0.5, orphan_after=0.0,
        )
    policy = dataclasses.replace(base.policy, site_jurisdiction=DEMO_SITE)
    pause = base.pause
    if ami is not None:
        pause = dataclasses.replace(base.pause, enabled=True,
                                    api_token=Secret(secrets.token_urlsafe(24)))
        options = _without_b(flow.recording.mixmonitor_options)
        flow = dataclasses.replace(flow, recording=dataclasses.replace(
            flow.recording, mixmonitor_options=options))
        assert not pause_required(pause, options, True)
    return dataclasses.replace(
        base,
        ami=ami if ami is not None else base.ami,
        pause=pause,
        ari=(server,),
        agi=AgiSettings(enabled=False),
        http=HttpSettings(enabled=True, host="127.0.0.1", port=0),
        flow=flow,
        policy=policy,
        recordings=recordings,
    )


def _without_b(options: str) -> str:
    """MixMonitor ``options`` without ``b`` (outside an option's parentheses): pausing needs
    the file to keep the call's timeline."""
    out, depth = [], 0
    for char in options:
        depth += char == "("
        depth -= char == ")"
        if char != "b" or depth:
            out.append(char)
    return "".join(out)


def demo_changes(base: Settings, demo: Settings) -> list[DemoChange]:
    """Every setting ``demo`` (from ``demo_settings``) runs with that differs from ``base``."""
    changes: list[DemoChange] = []
    if base.policy.site_jurisdiction != demo.policy.site_jurisdiction:
        changes.append(DemoChange(
            "policy.site_jurisdiction", demo.policy.site_jurisdiction,
            base.policy.site_jurisdiction,
            "the scenarios' expected outcomes are written for a New York site "
            "(`asterisk-recorder policy explain` shows your own site's modes)",
        ))
    if base.flow.input_timeout != demo.flow.input_timeout:
        changes.append(DemoChange(
            "flow.input_timeout", f"{demo.flow.input_timeout:g} s",
            f"{base.flow.input_timeout:g} s", "so the opt-in timeout call ends quickly",
        ))
    if base.flow.recording.directory != demo.flow.recording.directory:
        changes.append(DemoChange(
            "recording.directory", demo.flow.recording.directory,
            base.flow.recording.directory,
            "the fake Asterisk writes the demo's recordings into a temporary directory; the "
            "sealer seals them there with a throwaway key (removed at the end)",
        ))
    if base.flow.recording.mixmonitor_options != demo.flow.recording.mixmonitor_options:
        changes.append(DemoChange(
            "recording.mixmonitor_options", repr(demo.flow.recording.mixmonitor_options),
            repr(base.flow.recording.mixmonitor_options),
            "pausing needs the file to keep the call's timeline (`b` drops unbridged time)",
        ))
    if demo.pause.enabled and base.ami != demo.ami:
        changes.append(DemoChange(
            "ami / pause", f"the fake's AMI at {demo.ami.host}:{demo.ami.port}, pause on",
            "pause on" if base.pause.enabled else "off",
            "the card-payment call is paused and resumed over the HTTP API with a throwaway "
            "token (AMI MixMonitorMute on the fake's recording)",
        ))
    if base.agi.enabled != demo.agi.enabled:
        changes.append(DemoChange(
            "agi.enabled", str(demo.agi.enabled).lower(), str(base.agi.enabled).lower(),
            "the demo calls go over ARI; no FastAGI port is opened",
        ))
    if (base.http.enabled, base.http.host, base.http.port) != (
        demo.http.enabled, demo.http.host, demo.http.port
    ):
        configured = f"{base.http.host}:{base.http.port}" if base.http.enabled else "off"
        changes.append(DemoChange(
            "http", f"{demo.http.host}:(a free port)", configured,
            "never collides with a running `asterisk-recorder serve`",
        ))
    return changes


def _print_changes(changes: list[DemoChange], out: TextIO) -> None:
    if not changes:
        return
    print("demo settings (instead of your configuration's, for this run only):", file=out)
    width = max(len(c.key) for c in changes)
    for c in changes:
        print(f"  {c.key:<{width}}  {c.demo} (configured: {c.configured}): {c.why}", file=out)


async def _place(fake: FakeAsterisk, scenario: Scenario,
                 pauser: DemoPauser | None = None) -> tuple[str, str, dict[str, str]]:
    ch = await fake.originate(
        scenario.app,
        caller_number=scenario.caller,
        caller_name="Demo Caller",
        extension=scenario.called,
        wait_for_app=0.2 if scenario.app != APP else 5.0,
    )
    if scenario.app != APP:
        status = fake.channel(ch.id).variables.get("STASISSTATUS", "")
        return ch.id, f"no decision: fail-closed (STASISSTATUS={status})", {}
    await fake.wait_for_event("PlaybackStarted", channel_id=ch.id)
    if scenario.hangup:
        await asyncio.sleep(0.05)
        await fake.hangup(ch.id)
        await fake.wait_for_hangup(ch.id)
        return ch.id, "", {}
    if scenario.keys:
        await fake.send_dtmf(ch.id, scenario.keys)
    if scenario.keys_after:
        await fake.wait_for_event("PlaybackFinished", channel_id=ch.id)
        await fake.send_dtmf(ch.id, scenario.keys_after)
    record = await fake.wait_for_continue(ch.id, within=30.0)
    if record.variables.get("RECORDER_DECISION") == "record":
        if scenario.pause and pauser is not None:
            await pauser.pause_and_resume(record.variables.get("RECORDER_DECISION_ID", ""))
        await asyncio.sleep(0.05)
        await fake.hangup(ch.id)  # the hangup handler's StopMixMonitor closes the file
    return ch.id, record.variables.get("RECORDER_OUTCOME", ""), dict(record.variables)


async def run_demo(
    base: Settings,
    *,
    out: TextIO = sys.stdout,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    time_scale: float = 0.1,
    real_asterisk: AriServerSettings | None = None,
) -> int:
    """Run the demo; return 0 when every scenario met its expectation and the chain verifies.

    Args:
        base: the configuration (database, ledger, flow and policy sections apply).
        real_asterisk: drive this real Asterisk instead of the fake; it must include
            ``dialplan/recorder.conf`` and ``dialplan/recorder-demo.conf``.
    """
    fake: FakeAsterisk | None = None
    workdir: Path | None = None
    if real_asterisk is None:
        fake = FakeAsterisk(time_scale=time_scale, mixmonitor_seconds=DEMO_RECORDING_SECONDS,
                            ami=True)
        await fake.start()
        server = fake.settings(APP, name="demo")
        workdir = Path(tempfile.mkdtemp(prefix="asterisk-recorder-demo-"))
    else:
        server = real_asterisk
        scenarios = tuple(s for s in scenarios if not s.pause)  # needs the fake's AMI
    settings = demo_settings(
        base, server, recording_dir=workdir / "rec" if workdir is not None else None,
        ami=fake.ami_settings() if fake is not None else None,
    )
    if not settings.pause.enabled:
        scenarios = tuple(s for s in scenarios if not s.pause)
    service = build(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    caller: RealAsteriskCaller | None = None
    sealing: DemoSealer | None = None
    try:
        await _wait_started(service, task)
        if workdir is not None:
            sealing = await DemoSealer.start(settings, service, workdir)
        where = fake.url if fake is not None else f"real Asterisk at {server.url}"
        print(f"Asterisk: {where}; controller instance {service.instance_id}", file=out)
        print(f"ledger: {'configured DSN' if base.database.dsn else 'embedded PostgreSQL'}",
              file=out)
        _print_changes(demo_changes(base, settings), out)
        pauser = DemoPauser(service, settings, out) if settings.pause.enabled else None
        if fake is not None:
            placed = await asyncio.gather(*(_place(fake, s, pauser) for s in scenarios))
        else:
            caller = RealAsteriskCaller(server)
            await caller.start()
            placed = await asyncio.gather(*(caller.place(s) for s in scenarios))
        results = await _collect(service, scenarios, placed)
        _print_table(results, out)
        _print_rows(
            results, out,
            configured_db=bool(base.database.dsn or base.database.embedded_data_dir),
        )
        ok = all(r.as_expected for r in results)
        if pauser is not None:
            ok = pauser.print_report(out) and ok
        recordings = "not sealed here (run asterisk-recorder sealer on the Asterisk host)"
        sealed_ok = True
        if sealing is not None:
            recorded = [r for r in results if r.variables.get("RECORDER_DECISION") == "record"]
            sealed_ok = await sealing.report(service, recorded, out)
            recordings = f"{len(recorded)} sealed, verify {'OK' if sealed_ok else 'FAILED'}"
        verified = await _verify(service, out, base)
        print("", file=out)
        print(
            f"{sum(r.as_expected for r in results)}/{len(results)} scenarios as expected; "
            f"ledger verify: {'OK' if verified else 'BROKEN'}; recordings: {recordings}",
            file=out,
        )
        return 0 if ok and verified and sealed_ok else 1
    finally:
        if caller is not None:
            await caller.close()
        if sealing is not None:
            await sealing.close()
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        if fake is not None:
            await fake.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


DEMO_PAUSE_AT = 0.4
"""Seconds into the recording the demo's agent pauses it (the card payment starts)."""
DEMO_PAUSE_FOR = 1.2
"""Seconds the demo's card payment lasts."""


class DemoPauser:
    """The demo's agent: pauses and resumes a recording over the controller's HTTP API."""

    def __init__(self, service: Service, settings: Settings, out: TextIO) -> None:
        assert service.ops is not None
        self._base = f"http://127.0.0.1:{service.ops.port}"
        self._headers = {"Authorization": f"Bearer {settings.pause.api_token.value}",
                         "X-Recorder-Actor": "demo-agent-7"}
        self._out = out
        self.lines: list[str] = []
        self.ok = True

    async def _post(self, session: aiohttp.ClientSession, decision_id: str, what: str,
                    reason: str) -> None:
        async with session.post(f"{self._base}/calls/{decision_id}/{what}",
                                headers=self._headers, json={"reason": reason}) as reply:
            body = await reply.json(content_type=None)
        self.ok = self.ok and reply.status == 200
        done = ("paused" if what == "pause" else "resumed") if reply.status == 200 \
            else f"{what} REFUSED ({body.get('message')})"
        self.lines.append(f"  {done} by demo-agent-7 ({reason}): POST /calls/{decision_id}/"
                          f"{what} -> {reply.status}")

    async def pause_and_resume(self, decision_id: str) -> None:
        """Wait until the controller knows the recording (AMI), pause, wait, resume."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with asyncio.timeout(10):
                while True:
                    async with session.get(f"{self._base}/calls/{decision_id}/recording",
                                           headers=self._headers) as reply:
                        if reply.status == 200:
                            break
                    await asyncio.sleep(0.02)
            await asyncio.sleep(DEMO_PAUSE_AT)
            await self._post(session, decision_id, "pause", "card payment")
            await asyncio.sleep(DEMO_PAUSE_FOR)
            await self._post(session, decision_id, "resume", "payment finished")
            await asyncio.sleep(0.3)

    def print_report(self, out: TextIO) -> bool:
        """Print what the agent did; whether both requests were answered 200."""
        print("", file=out)
        print("card payment (the agent's tool pauses the recording; curl -X POST -H "
              "'Authorization: Bearer ...' http://HOST:PORT/calls/ID/pause does the same):",
              file=out)
        for line in self.lines:
            print(line, file=out)
        return self.ok and bool(self.lines)  # every request answered 200, and one made


class DemoSealer:
    """The sealer of the demo, in-process on the service's ledger, with a throwaway key."""

    def __init__(self, sealer: Sealer, keys: KeyStore, task: asyncio.Task[None],
                 stop: asyncio.Event, catalog: Catalog, workdir: Path) -> None:
        self.sealer = sealer
        self.keys = keys
        self._task = task
        self._stop = stop
        self._catalog = catalog
        self.workdir = workdir

    @classmethod
    async def start(cls, settings: Settings, service: Service, workdir: Path) -> DemoSealer:
        """Create this month's key and run the sealer on ``settings``' directories."""
        assert service.dsn is not None
        assert service.ledger is not None
        paths = sealer_paths(settings)
        paths.recordings.mkdir(parents=True, exist_ok=True)
        keys = KeyStore(paths.keys, workdir / "kek-private")
        month = time.strftime("%Y-%m", time.gmtime())
        await asyncio.to_thread(keys.create, settings.recordings.retention_class, month)
        catalog = Catalog(service.dsn)
        sealer = Sealer(settings.recordings, paths, service.ledger, catalog,
                        actor=sealer_actor(settings))
        stop = asyncio.Event()
        task = asyncio.create_task(sealer.run(stop), name="demo-sealer")
        return cls(sealer, keys, task, stop, catalog, workdir)

    async def close(self) -> None:
        """Stop the sealer."""
        self._stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 30)
        await self._catalog.close()

    async def report(self, service: Service, recorded: list[DemoResult], out: TextIO) -> bool:
        """Wait for every recorded call's seal; print and verify each, and one tampered copy."""
        ids = [str((r.row or {}).get("decision_id", "")) for r in recorded]
        async with asyncio.timeout(60):
            while self.sealer.metrics.sealed.value() < len(ids):
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.05)
        assert service.dsn is not None
        conn = await connect_app(service.dsn)
        try:
            rows = await conn.fetch(
                "SELECT decision_id::text AS id, payload FROM ledger_facts "
                "WHERE kind = 'recording.sealed' AND decision_id::text = ANY($1::text[]) "
                "ORDER BY seq", ids)
        finally:
            await conn.close()
        print("", file=out)
        print("recordings (written by the fake MixMonitor, sealed by the sealer, plaintext "
              "removed):", file=out)
        ok = len(rows) == len(ids)
        opener = self.keys.opener()
        first: tuple[Path, SealInfo] | None = None
        for row in rows:
            payload = json.loads(row["payload"])
            info = SealInfo(**{name: payload[name] for name in SealInfo.__slots__})
            path = self.sealer.paths.sealed / payload["file"]
            try:
                result = await asyncio.to_thread(_verify_file, path, info, opener)
                verdict = (f"verify OK ({result.chunks} chunk{'s' if result.chunks != 1 else ''}"
                           ", every tag and the SHA-256 checked)")
            except RecorderError as exc:
                ok, verdict = False, f"verify FAILED: {exc}"
            print(f"  sealed {payload['sealed_sha256']}  decision {row['id']}  {verdict}",
                  file=out)
            until = payload.get("retain_until")
            when = time.strftime("%Y-%m-%d", time.gmtime(until)) if until else "?"
            print(f"         retention {payload.get('retention_class')} "
                  f"({payload.get('retention_period')}, rule {payload.get('retention_rule')}): "
                  f"kept until {when}", file=out)
            if payload.get("pauses"):
                print(f"         paused spans {payload.get('pause_spans')} s "
                      "(recording.paused / recording.resumed); PCI check "
                      f"{'passed' if payload.get('pci_passed') else 'FAILED'}: "
                      f"{payload.get('pci_spans')}, {payload.get('pci_dtmf_hits', 0)} DTMF "
                      f"presses in the rest ({payload.get('pci_detector')})", file=out)
                ok = ok and bool(payload.get("pci_passed"))
            first = first or (path, info)
        if first is not None:
            tampered = self.workdir / f"tampered-{first[0].name}"
            data = bytearray(first[0].read_bytes())
            data[len(data) // 2] ^= 0x01
            tampered.write_bytes(bytes(data))
            try:
                await asyncio.to_thread(_verify_file, tampered, first[1], opener)
            except RecorderError as exc:
                print(f"  tampered copy {tampered.name} (one bit flipped): verify FAILED, as it "
                      f"must: {exc}", file=out)
            else:
                ok = False
                print(f"  tampered copy {tampered.name}: verify PASSED - this is a bug",
                      file=out)
        if rows:
            ok = await self._hold_and_plan(service, [r["id"] for r in rows], out) and ok
        return ok

    async def _hold_and_plan(self, service: Service, ids: list[str], out: TextIO) -> bool:
        """Place a legal hold on one recording and print what disposal would do once the
        retention of every recording has passed: the held one is kept back (a dry run)."""
        assert service.dsn is not None
        assert service.ledger is not None
        held_id = ids[0]
        conn = await connect_app(service.dsn)
        try:
            hold_id, _hold = await place_hold(
                conn, service.ledger, scope="decision", decision_id=held_id,
                reason="demo: a complaint about this call", actor="demo")
            periods = parse_retention(self.sealer.settings.retention)
            disposer = Disposer(conn, service.ledger, sealed_dir=self.sealer.paths.sealed,
                                periods=periods, actor="demo", keys=self.keys)
            later = time.time() + 400 * 86400.0
            plans, _holds = await disposer.plan(later)
        finally:
            await conn.close()
        mine = set(ids)  # this run's recordings (a configured database may hold older ones)
        due = sum(1 for p in plans for r in p.due if r.decision_id in mine)
        held = sorted({d for p in plans for d in p.held if d in mine})
        print(f"  legal hold {hold_id} on decision {held_id} (recording.hold_placed in the "
              "ledger)", file=out)
        print(f"  disposal dry run, once retention has passed: {due} of this run's recordings "
              f"would be disposed of, {len(held)} kept back by the hold (their key bucket "
              "stays until it is released); 'asterisk-recorder recording retention show' prints "
              "the same", file=out)
        return held == [held_id]


def _verify_file(path: Path, info: SealInfo, opener: KekOpener) -> VerifyResult:
    with open(path, "rb") as handle:
        return verify(handle, expected=info, opener=opener)


class RealAsteriskCaller:
    """Simulated callers on a real Asterisk, over ARI, as in the recorded traces.

    Each call is ``POST /channels endpoint=Local/<called>@recorder-demo-in app=<caller app>``
    with the scenario's caller id: the ``;2`` half runs the dialplan (and the consent
    subroutine), the ``;1`` half is the caller; keys are ARI DTMF sent to ``;1``.
    """

    def __init__(self, server: AriServerSettings) -> None:
        self._server = server
        self._client = AriClient(server)
        self._stream: EventStream | None = None
        self._events: list[StreamEvent] = []
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register the caller app and start reading its events."""
        self._stream = EventStream(self._server, apps=(CALLER_APP,),
                                   session=self._client.session())
        await self._stream.__aenter__()
        await asyncio.wait_for(self._stream.wait_connected(), 10)
        self._reader = asyncio.create_task(self._read(self._stream))

    async def close(self) -> None:
        """Stop reading and close the connection."""
        if self._stream is not None:
            await self._stream.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._client.close()

    async def _read(self, stream: EventStream) -> None:
        async for event in stream:
            async with self._changed:
                self._events.append(event)
                self._changed.notify_all()

    async def _wait(self, predicate: Callable[[StreamEvent], bool], within: float) -> StreamEvent:
        async with asyncio.timeout(within), self._changed:
            while True:
                for event in self._events:
                    if predicate(event):
                        return event
                await self._changed.wait()

    async def place(self, scenario: Scenario) -> tuple[str, str, dict[str, str]]:
        """Place one scenario's call; return (dialplan channel id, outcome, RECORDER_* vars)."""
        called = scenario.called if scenario.called.startswith("+") else "+1" + scenario.called
        context = "recorder-demo-in" if scenario.app == APP else "recorder-demo-down"
        caller = await self._client.originate(
            f"Local/{called}@{context}", app=CALLER_APP,
            caller_id=f'"Demo Caller" <{scenario.caller}>', dial_timeout=30,
        )
        twin = caller.name[:-2] + ";2"
        first = await self._wait(
            lambda e: getattr(getattr(e, "channel", None), "name", "") == twin, 15
        )
        channel_id = str(getattr(first, "channel").id)  # noqa: B009 - checked by the predicate

        def varset(name: str) -> Callable[[StreamEvent], bool]:
            return lambda e: (
                isinstance(e, ChannelVarset) and e.variable == name
                and e.channel is not None and e.channel.id == channel_id and e.value != ""
            )

        if scenario.app == APP:
            await self._wait(
                lambda e: isinstance(e, PlaybackStarted)
                and e.playback.target_uri == f"channel:{channel_id}", 20,
            )
            if scenario.hangup:
                await asyncio.sleep(0.4)
                await self._client.hangup(caller.id)
                return channel_id, "", {}
            if scenario.keys:
                await asyncio.sleep(0.5)
                await self._client.send_dtmf(caller.id, scenario.keys)
            if scenario.keys_after:
                await self._wait(
                    lambda e: isinstance(e, PlaybackFinished)
                    and e.playback.target_uri == f"channel:{channel_id}", 30,
                )
                await self._client.send_dtmf(caller.id, scenario.keys_after)
        # RECORDER_STATUS is set by the subroutine once Stasis() returned: every RECORDER_*
        # variable the controller set is in the events by then. The fail-closed branch sets
        # RECORDER_OUTCOME after RECORDER_STATUS (dialplan/recorder.conf): wait for it too.
        await self._wait(varset("RECORDER_STATUS"), 60)
        await self._wait(varset("RECORDER_OUTCOME"), 15)
        variables: dict[str, str] = {}
        for event in self._events:
            if (isinstance(event, ChannelVarset) and event.channel is not None
                    and event.channel.id == channel_id and event.variable.startswith("RECORDER_")):
                variables[event.variable] = event.value
        await asyncio.sleep(2.0)  # let the far side talk so a recording has sound in it
        with contextlib.suppress(Exception):
            await self._client.hangup(caller.id)
        value = variables.get("RECORDER_OUTCOME", "")
        if value == "controller_unavailable":
            status = variables.get("RECORDER_STATUS", "")
            value = f"no decision: fail-closed (STASISSTATUS={status})"
        return channel_id, value, variables


async def _wait_started(service: Service, task: asyncio.Task[None]) -> None:
    started = asyncio.ensure_future(service.started.wait())
    done, _ = await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        started.cancel()
        task.result()  # raises the start-up error
    async with asyncio.timeout(10):
        while not all(c.ready for c in service.controllers):  # noqa: ASYNC110 - no event for it
            await asyncio.sleep(0.01)


async def _collect(
    service: Service,
    scenarios: tuple[Scenario, ...],
    placed: list[tuple[str, str, dict[str, str]]],
) -> list[DemoResult]:
    results: list[DemoResult] = []
    assert service.dsn is not None
    conn = await connect_app(service.dsn)
    try:
        for scenario, (channel_id, outcome, variables) in zip(scenarios, placed, strict=True):
            row: dict[str, Any] | None = None
            if scenario.app == APP:
                for _ in range(300):  # the abandoned call's decision lands after the hang-up
                    rows = await show_call(conn, channel_id)
                    if rows and rows[-1].get("facts"):  # the fate follows the hand-back
                        row = rows[-1]
                        break
                    if rows:
                        row = rows[-1]
                    await asyncio.sleep(0.02)
                if row is not None and not outcome:
                    outcome = str(row["outcome"])
            results.append(DemoResult(scenario, channel_id, outcome, variables, row))
    finally:
        await conn.close()
    return results


def _print_table(results: list[DemoResult], out: TextIO) -> None:
    header = ("#", "scenario", "caller", "called", "mode", "rows", "keys", "outcome", "ok")
    lines: list[tuple[str, ...]] = []
    for i, r in enumerate(results, 1):
        row: dict[str, Any] = dict(r.row or {})
        digits = "".join(str(k.get("digit", "")) for k in row.get("keys") or [])
        rows = ",".join(str(x) for x in row.get("policy_rows") or []) or "-"
        lines.append((
            str(i), r.scenario.name, r.scenario.caller, r.scenario.called,
            str(row.get("mode", "-")), rows, digits or "-", r.outcome,
            "yes" if r.as_expected else "NO",
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("", file=out)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)), file=out)


def _print_rows(results: list[DemoResult], out: TextIO, *, configured_db: bool) -> None:
    """The ledger row of each call, as stored, with the full decision id."""
    print("", file=out)
    print("ledger rows of this run (one per decision):", file=out)
    for i, r in enumerate(results, 1):
        print("", file=out)
        row = r.row
        if row is None:
            why = (
                "the controller never saw this call"
                if r.scenario.app != APP
                else "no decision was stored for this call"
            )
            print(f"#{i} no ledger row: {why}", file=out)
            continue
        keys = " ".join(_key_text(k) for k in row["keys"]) or "-"
        facts = row.get("facts") or []
        fates = "; ".join(
            f"{f['kind']}: {f['payload'].get('fate', '')} told {f['payload'].get('told', '-')}"
            .replace(":  told", ": told")
            for f in facts
        ) or "-"
        effective = row.get("effective") or {}
        fields = (
            ("decision", row["decision_id"]),
            ("seq", row["seq"]),
            ("decided_at", row["decided_at"]),
            ("outcome", f"{row['outcome']} ({row['reason']})"),
            ("mode", row["mode"]),
            ("policy_rows", ",".join(row["policy_rows"]) or "-"),
            ("keys", keys),
            ("caller", f"{row['caller_number']} -> called {row['called_number']}"),
            ("channel", f"{row['channel_name']} (uniqueid {row['uniqueid']})"),
            ("recording", row["recording_path"] or "-"),
            ("fate", fates),
            ("effective", effective.get("summary") or effective.get("status") or "-"),
        )
        print(f"#{i} {fields[0][0]} {fields[0][1]}", file=out)
        for name, value in fields[1:]:
            print(f"   {name:<12} {value}", file=out)
        if r.variables.get("RECORDER_DECISION") == "record":
            print(
                f"   {'dialplan':<12} MixMonitor({r.variables['RECORDER_FILE']},"
                f"{r.variables['RECORDER_MIXMON_OPTIONS']})",
                file=out,
            )
    same = " (with the same --config/--dsn as this demo)" if configured_db else ""
    print("", file=out)
    print(f"follow any decision: asterisk-recorder ledger show --call DECISION_ID{same}", file=out)


def _key_text(key: dict[str, Any]) -> str:
    """``1 at +0.412 s (during prompt: opt_out)`` from a ledger key."""
    text = str(key.get("digit", ""))
    offset = key.get("offset_ms")
    if isinstance(offset, int | float):
        text += f" at +{offset / 1000:.3f} s"
    phase, effect = key.get("phase"), key.get("effect")
    if phase or effect:
        where = str(phase or "?").replace("_", " ")
        text += f" ({where}: {effect or '?'})"
    return text


async def _final_checkpoint(service: Service, base: Settings, out: TextIO) -> list[Claim]:
    """Sign a checkpoint covering the last entry, push it to the witnesses and wait for each."""
    checkpointer = service.checkpointer
    if checkpointer is None:
        return []
    signed = await checkpointer.cycle(force=True) or await checkpointer.latest()
    if signed is None:
        return []
    print(f"checkpoint: {signed.size} entries, root {signed.root.hex()[:16]}..., signed by "
          f"{checkpointer.key.verifier().to_text()}", file=out)
    claims: list[Claim] = []
    for target in base.ledger.witnesses:
        witness = witness_from_target(target, base.ledger)
        try:
            await witness.push(WitnessedCheckpoint(signed.size, signed.note))
            claims += [Claim(witness.name, c.note) for c in await witness.fetch()]
            print(f"witness {witness.name}: holds checkpoint {signed.size}", file=out)
        except LedgerError as exc:
            print(f"witness {witness.name}: FAILED {exc}", file=out)
    return claims


async def _verify(service: Service, out: TextIO, base: Settings) -> bool:
    assert service.dsn is not None
    assert service.ledger is not None
    claims = await _final_checkpoint(service, base, out)
    verifiers = trusted_verifiers(base.ledger)
    conn = await connect_app(service.dsn)
    try:
        report = await audit_ledger(conn, service.ledger.key, verifiers, witnessed=claims)
    finally:
        await conn.close()
    chain = report.chain
    if chain.ok:
        print(f"ledger verify: chain of {chain.rows} entries intact, head {chain.head_hash[:16]}",
              file=out)
    else:
        print(f"ledger verify: BROKEN at {chain.position} ({chain.entry_id}): {chain.reason}",
              file=out)
    if report.checkpoints or report.witnessed:
        print(f"ledger verify: {report.checkpoints} signed checkpoints in the database, "
              f"{report.witnessed} at the witnesses; they cover entries 1..{report.covered}",
              file=out)
    for problem in report.problems:
        print(f"ledger verify: CHECKPOINT PROBLEM {problem}", file=out)
    for target in base.ledger.witnesses:
        print(f"check it later from outside the database: asterisk-recorder ledger verify "
              f"--witness {target} (with the same --config/--dsn)", file=out)
    return report.ok
