"""Bench of one call's path over ARI: REST requests per call and the time the product adds.

Against the shipped fake Asterisk on loopback (real sockets, real ARI JSON), calls run one at a
time through (a) the product's ARI path (controller + driver core + the real PostgreSQL ledger,
embedded, so the durable write is included) and (b) a minimal hand-written ARI app on the same
client (answer, play, on the key: stop the playback, set one variable, continue). Both in the
same run; ratios are product / minimal.

* ``key_to_continue_ms``: the caller's opt-out key sent -> the channel continued in dialplan
  (the caller's wait after pressing), p50 / p95.
* ``offer_overhead_ms``: StasisStart -> the disclosure playing (answer and play), p50 / p95.
* ``rest_requests_per_call``: REST requests the fake answered per call (by method and path).

Run: ``python bench/call_path_bench.py [--calls 40]``. Prints JSON, then a table. The issue's
target: the product within 2x of the minimal app on both times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asterisk_recorder.ari import (  # noqa: E402
    AriClient,
    ChannelDtmfReceived,
    EventStream,
    StasisStart,
)
from asterisk_recorder.controller.app import AriController  # noqa: E402
from asterisk_recorder.embedded_pg import EmbeddedPostgres  # noqa: E402
from asterisk_recorder.flow import ConsentFlow  # noqa: E402
from asterisk_recorder.flow.settings import FlowSettings  # noqa: E402
from asterisk_recorder.ledger import Ledger, migrate  # noqa: E402
from asterisk_recorder.policy import PolicyEngine  # noqa: E402
from asterisk_recorder.settings import LedgerSettings, PolicySettings, Secret  # noqa: E402
from asterisk_recorder.testing import FakeAsterisk  # noqa: E402

APP = "consent-recorder"
MINIMAL_APP = "minimal-app"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, int(len(ordered) * q + 0.5) - 1)], 3)


class _TimedSink:
    """The ledger, with the time each durable store took (the product path's DB share)."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self.ms: list[float] = []

    async def store(self, decision: Any) -> Any:
        started = time.monotonic()
        receipt = await self.inner.store(decision)
        self.ms.append((time.monotonic() - started) * 1000)
        return receipt


async def _minimal_app(fake: FakeAsterisk, stop: asyncio.Event) -> None:
    """The reference: a hand-written ARI app doing the least a consent step can do."""
    settings = fake.settings(MINIMAL_APP)
    async with AriClient(settings) as client:
        stream = EventStream(settings, session=client.session())
        playbacks: dict[str, str] = {}
        async with stream:
            async for event in stream:
                if stop.is_set():
                    break
                if isinstance(event, StasisStart):
                    ch = event.channel.id
                    await client.answer(ch)
                    pb = f"pb-{ch}"
                    playbacks[ch] = pb
                    await client.play(ch, "sound:recorder/consent-opt-out", playback_id=pb)
                elif isinstance(event, ChannelDtmfReceived) and event.channel.id in playbacks:
                    ch = event.channel.id
                    await client.stop_playback(playbacks.pop(ch))
                    await client.set_variable(ch, "RESULT", "optout")
                    await client.continue_in_dialplan(ch)


def _label(method: str, path: str) -> str:
    """``POST /channels/{id}/variable`` -> ``POST channels/variable``; playbacks likewise."""
    parts = path.split("/")
    return f"{method} {parts[2]}/{parts[4] if len(parts) > 4 else ''}"


async def _one_call(fake: FakeAsterisk, app: str, i: int) -> tuple[float, float, str]:
    ch = await fake.originate(app, caller_number=f"+1415555{i:04d}", extension="2125550100")
    started = time.monotonic()
    await fake.wait_for_event("PlaybackStarted", channel_id=ch.id, within=10)
    playing = time.monotonic()
    key = time.monotonic()
    await fake.send_dtmf(ch.id, "1")
    await fake.wait_for_continue(ch.id, within=10)
    done = time.monotonic()
    await fake.hangup(ch.id)
    return (done - key) * 1000, (playing - started) * 1000, ch.id


async def _measure(fake: FakeAsterisk, app: str, calls: int) -> dict[str, Any]:
    first = len(fake.requests)
    keys: list[float] = []
    offers: list[float] = []
    channels: list[str] = []
    for i in range(calls):
        key_ms, offer_ms, channel = await _one_call(fake, app, i)
        keys.append(key_ms)
        offers.append(offer_ms)
        channels.append(channel)
    wanted = set(channels)
    requests = Counter(
        _label(r.method, r.path) for r in fake.requests[first:]
        if r.path.startswith("/ari/playbacks/")
        or (r.path.startswith("/ari/channels/") and r.path.split("/")[3] in wanted)
    )
    return {
        "key_to_continue_ms_p50": _pct(keys, 0.5),
        "key_to_continue_ms_p95": _pct(keys, 0.95),
        "offer_overhead_ms_p50": _pct(offers, 0.5),
        "offer_overhead_ms_p95": _pct(offers, 0.95),
        "rest_requests_per_call": round(sum(requests.values()) / calls, 2),
        "rest_requests": {k: round(v / calls, 2) for k, v in sorted(requests.items())},
    }


async def run(calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        dsn = pg.start()
        try:
            await migrate(dsn)
            async with (
                FakeAsterisk(time_scale=0.05) as fake,
                Ledger.open(
                    dsn,
                    LedgerSettings(
                        spool_dir=str(Path(tmp) / "spool"), digest_key=Secret("k" * 32)
                    ),
                    instance_id="bench",
                ) as ledger,
            ):
                engine = PolicyEngine.from_settings(PolicySettings(site_jurisdiction="US-CA"))
                flow = FlowSettings(input_timeout=5.0)
                sink = _TimedSink(ledger)
                controller = AriController(
                    fake.settings(APP), flow_factory=lambda: ConsentFlow(flow, engine),
                    sink=sink, instance_id="bench",
                )
                stop = asyncio.Event()
                tasks = [
                    asyncio.create_task(controller.run()),
                    asyncio.create_task(_minimal_app(fake, stop)),
                ]
                await fake.wait_for_app(APP)
                await fake.wait_for_app(MINIMAL_APP)
                engine.evaluate("+14155550000", "2125550100")
                await _measure(fake, APP, 5)  # warm both paths
                await _measure(fake, MINIMAL_APP, 5)
                sink.ms.clear()
                product = await _measure(fake, APP, calls)
                product["ledger_store_ms_p50"] = _pct(sink.ms, 0.5)
                product["ledger_store_ms_p95"] = _pct(sink.ms, 0.95)
                minimal = await _measure(fake, MINIMAL_APP, calls)
                stop.set()
                controller.stop()
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        finally:
            pg.stop()
    ratios = {
        name: round(product[name] / minimal[name], 2) if minimal[name] else None
        for name in (
            "key_to_continue_ms_p50", "key_to_continue_ms_p95",
            "offer_overhead_ms_p50", "offer_overhead_ms_p95",
        )
    }
    return {"calls": calls, "product": product, "minimal_app": minimal, "ratio": ratios}


def main() -> None:
    """Parse arguments, run, print JSON and a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    result = asyncio.run(run(args.calls))
    print(json.dumps(result, indent=2))
    print()
    print(f"{'measure':<26} {'product':>10} {'minimal':>10} {'ratio':>7}")
    for name, ratio in result["ratio"].items():
        print(
            f"{name:<26} {result['product'][name]:>10} {result['minimal_app'][name]:>10} "
            f"{ratio!s:>7}"
        )
    print(
        f"{'ledger_store_ms_p50/p95':<26} {result['product']['ledger_store_ms_p50']:>10} "
        f"{result['product']['ledger_store_ms_p95']:>10}  (product only: the durable write)"
    )
    print(
        f"{'rest_requests_per_call':<26} {result['product']['rest_requests_per_call']:>10} "
        f"{result['minimal_app']['rest_requests_per_call']:>10}"
    )


if __name__ == "__main__":
    main()
