"""Benchmark: the ARI controller under 1,000 concurrent calls arriving at 200 calls/s.

The fake Asterisk (and the simulated callers) run in a child process so that the controller's
process measures only itself: reaction time from an ARI event received to the REST request it
causes (p50/p99), CPU time per call, peak RSS, and that every call got exactly one decision.

Run: ``python bench/controller_bench.py [--calls 1000] [--rate 200]``. Prints a JSON object and
a table. Targets (issue 6): reaction p99 <= 5 ms, peak RSS <= 200 MB, zero lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asterisk_recorder.controller.app import AriController, ControllerHooks
from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.ledger.sink import MemorySink
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.service import settle_heap
from asterisk_recorder.settings import PolicySettings
from asterisk_recorder.testing import FakeAsterisk

APP = "consent-recorder"


def _callers(conn: Connection, calls: int, rate: float) -> None:
    asyncio.run(_callers_main(conn, calls, rate))


async def _callers_main(conn: Connection, calls: int, rate: float) -> None:
    fake = FakeAsterisk(time_scale=1.0)
    await fake.start()
    conn.send(fake.port)
    await fake.wait_for_app(APP, within=30)
    started = time.monotonic()

    async def one(i: int) -> bool:
        ch = await fake.originate(
            APP, caller_number=f"+1415555{i:04d}", extension="2125550100", wait_for_app=5
        )
        if i % 4 == 0:  # a quarter of the callers opt out, in the window after the disclosure
            await fake.wait_for_event("PlaybackStarted", channel_id=ch.id, within=60)
            await asyncio.sleep(5.5)  # so that every call is still up when the last one arrives
            await fake.send_dtmf(ch.id, "1")
        await fake.wait_for_continue(ch.id, within=120)
        await fake.hangup(ch.id)
        return True

    tasks = []
    for i in range(calls):
        tasks.append(asyncio.create_task(one(i)))
        delay = started + (i + 1) / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    continued = sum(1 for r in results if r is True)
    errors = [repr(r) for r in results if r is not True][:5]
    peak = max(len(fake.channels), 0)
    conn.send(
        {
            "continued": continued,
            "errors": errors,
            "elapsed": time.monotonic() - started,
            "channels_left": peak,
        }
    )
    await fake.stop()


async def run(calls: int, rate: float) -> dict[str, object]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_callers, args=(child, calls, rate))
    proc.start()
    port = parent.recv()
    reactions: list[float] = []
    active_peak = 0
    sink = MemorySink()
    engine = PolicyEngine.from_settings(PolicySettings(site_jurisdiction="US-NY"))
    flow = FlowSettings(input_timeout=3.0)  # calls last 5.5-8 s: all 1,000 are up at once
    probe = FakeAsterisk()  # only for its settings() helper, never started
    probe.port = port
    settings = probe.settings(APP, request_timeout=30.0)
    controller = AriController(
        settings,
        flow_factory=lambda: ConsentFlow(flow, engine),
        sink=sink,
        instance_id="bench",
        hooks=ControllerHooks(on_reaction=reactions.append),
    )
    task = asyncio.create_task(controller.run())
    while not controller.ready:
        await asyncio.sleep(0.01)
    engine.evaluate("+14155550000", "2125550100")  # warm the number metadata, like serve does
    settle_heap()  # what Service.run does once started
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    loop = asyncio.get_running_loop()
    while not parent.poll():
        active_peak = max(active_peak, controller.active_calls)
        await asyncio.sleep(0.05)
    summary = await loop.run_in_executor(None, parent.recv)
    controller.stop()
    await task
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    proc.join(10)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ids = [d.decision_id for d in sink.decisions]
    channels = [d.channel_id for d in sink.decisions]
    reactions.sort()
    ms = [r * 1000 for r in reactions]
    return {
        "calls": calls,
        "rate_per_s": rate,
        "peak_concurrent_calls": active_peak,
        "continued": summary["continued"],
        "decisions": len(ids),
        "lost": calls - len(set(channels)),
        "duplicated": len(ids) - len(set(channels)),
        "reaction_p50_ms": round(statistics.median(ms), 3) if ms else None,
        "reaction_p99_ms": round(ms[int(len(ms) * 0.99) - 1], 3) if ms else None,
        "reaction_max_ms": round(ms[-1], 3) if ms else None,
        "reactions_measured": len(ms),
        "cpu_ms_per_call": round(cpu / calls * 1000, 3),
        "peak_rss_mb": round(cpu1.ru_maxrss / 1024, 1),
        "elapsed_s": round(float(summary["elapsed"]), 2),
        "caller_errors": summary["errors"],
    }


def main() -> None:
    """Parse arguments, run, print JSON and a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.calls, args.rate))
    print(json.dumps(result, indent=2))
    print()
    print(f"{'metric':<26} value")
    for key, value in result.items():
        print(f"{key:<26} {value}")


if __name__ == "__main__":
    main()
