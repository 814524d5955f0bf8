"""``asterisk-recorder demo``: the real ``serve`` code against a fake Asterisk, end to end.

This module owns the demo scenarios: it starts the ledger's database (embedded PostgreSQL unless
a DSN is configured), the shipped ``FakeAsterisk`` on loopback and the real ``Service``; places a
handful of calls that cover the consent outcomes; prints the ledger rows of this run as a table
and verifies the hash chain. It must not take shortcuts around the product: calls go through
ARI over real sockets, decisions through the real ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

from asterisk_recorder.controller.service import Service
from asterisk_recorder.ledger.admin import show_call
from asterisk_recorder.ledger.database import connect_app
from asterisk_recorder.ledger.verify import verify_chain
from asterisk_recorder.settings import AgiSettings, HttpSettings, Settings
from asterisk_recorder.testing import FakeAsterisk

__all__ = ["SCENARIOS", "DemoResult", "Scenario", "run_demo"]

APP = "consent-recorder"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One demo call.

    Attributes:
        name: what it shows.
        caller / called: caller id number and dialled number.
        keys: DTMF the caller presses during the disclosure (empty: silent).
        hangup: the caller hangs up during the disclosure.
        expect: the outcome the product should reach.
        app: the Stasis app dialled (a missing app shows the controller being unreachable).
    """

    name: str
    caller: str
    called: str
    keys: str = ""
    hangup: bool = False
    expect: str = ""
    app: str = APP


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("opt-out pressed (caller in California)", "+14155550101", "2125550100", keys="1",
             expect="not_recorded_opted_out"),
    Scenario("silent acceptance (opt-out offered)", "+14155550102", "2125550100",
             expect="recorded_notified"),
    Scenario("opt-in accepted (caller in Germany)", "+4930901820", "2125550100", keys="1",
             expect="recorded_consented"),
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


def demo_settings(base: Settings, fake: FakeAsterisk) -> Settings:
    """``base`` with ARI pointed at the fake and listeners on free loopback ports."""
    flow = dataclasses.replace(base.flow, input_timeout=min(base.flow.input_timeout, 1.5))
    policy = dataclasses.replace(base.policy, site_jurisdiction="US-NY")
    return dataclasses.replace(
        base,
        ari=(fake.settings(APP, name="demo"),),
        agi=AgiSettings(enabled=False),
        http=HttpSettings(enabled=True, host="127.0.0.1", port=0),
        flow=flow,
        policy=policy,
    )


async def _place(fake: FakeAsterisk, scenario: Scenario) -> tuple[str, str, dict[str, str]]:
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
    record = await fake.wait_for_continue(ch.id, within=30.0)
    return ch.id, record.variables.get("RECORDER_OUTCOME", ""), dict(record.variables)


async def run_demo(
    base: Settings,
    *,
    out: TextIO = sys.stdout,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    time_scale: float = 0.1,
) -> int:
    """Run the demo; return 0 when every scenario met its expectation and the chain verifies."""
    fake = FakeAsterisk(time_scale=time_scale)
    await fake.start()
    settings = demo_settings(base, fake)
    service = Service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await _wait_started(service, task)
        print(f"fake Asterisk on {fake.url}; controller instance {service.instance_id}", file=out)
        print(f"ledger: {'configured DSN' if base.database.dsn else 'embedded PostgreSQL'}",
              file=out)
        placed = await asyncio.gather(*(_place(fake, s) for s in scenarios))
        results = await _collect(service, scenarios, placed)
        _print_table(results, out)
        ok = all(r.as_expected for r in results)
        verified = await _verify(service, out)
        print("", file=out)
        print(
            f"{sum(r.as_expected for r in results)}/{len(results)} scenarios as expected; "
            f"ledger verify: {'OK' if verified else 'BROKEN'}",
            file=out,
        )
        return 0 if ok and verified else 1
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await fake.stop()


async def _wait_started(service: Service, task: asyncio.Task[None]) -> None:
    started = asyncio.ensure_future(service.started.wait())
    done, _ = await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        started.cancel()
        task.result()  # raises the start-up error
    ready: Callable[[], Awaitable[None]] = _ready_waiter(service)
    await asyncio.wait_for(ready(), 10)


def _ready_waiter(service: Service) -> Callable[[], Awaitable[None]]:
    async def wait() -> None:
        while not all(c.ready for c in service.controllers):  # noqa: ASYNC110 - no event for it
            await asyncio.sleep(0.01)

    return wait


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
                    if rows:
                        row = rows[-1]
                        break
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
            str(i), r.scenario.name[:44], r.scenario.caller, r.scenario.called,
            str(row.get("mode", "-")), rows, digits or "-", r.outcome,
            "yes" if r.as_expected else "NO",
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("", file=out)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)), file=out)
    print("", file=out)
    for i, r in enumerate(results, 1):
        if r.variables.get("RECORDER_DECISION") == "record":
            print(
                f"{i}: MixMonitor({r.variables['RECORDER_FILE']},"
                f"{r.variables['RECORDER_MIXMON_OPTIONS']})",
                file=out,
            )


async def _verify(service: Service, out: TextIO) -> bool:
    assert service.dsn is not None
    assert service.ledger is not None
    conn = await connect_app(service.dsn)
    try:
        report = await verify_chain(conn, service.ledger.key)
    finally:
        await conn.close()
    if report.ok:
        print(f"ledger verify: chain of {report.rows} entries intact, head {report.head_hash[:16]}",
              file=out)
    else:
        print(f"ledger verify: BROKEN at {report.position} ({report.entry_id}): {report.reason}",
              file=out)
    return report.ok
