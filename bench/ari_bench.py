"""Bench of the ARI layer: event parse-and-dispatch, REST round trips, reconnect time.

Run: ``python bench/ari_bench.py`` (about 20 s). Prints one JSON object, then a table.

* ``events_parse_dispatch_per_s``: real frames from the Asterisk traces (the consent-recorder
  mix: StasisStart, ChannelStateChange, PlaybackStarted/Finished, ChannelDtmfReceived,
  ChannelVarset, StasisEnd) through ``EventStream.handle_frame`` (JSON decode, typed parse,
  queue) and out of the queue to a ``match`` dispatcher. Target >= 50,000 events/s.
* ``events_over_websocket_per_s``: the same frames sent by FakeAsterisk over loopback and
  consumed from ``async for event in stream``.
* ``rest_sequential_per_s`` / ``rest_concurrent_per_s``: ``GET /asterisk/ping`` and
  ``POST /channels/{id}/variable`` round trips against FakeAsterisk on 127.0.0.1.
* ``reconnect_ms``: from ``FakeAsterisk.drop_websockets()`` to the stream's ``Connected`` event,
  with the shipped backoff (first delay 0.1-0.2 s). Target < 1 s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asterisk_recorder.ari import (  # noqa: E402 - after the sys.path tweak
    AriClient,
    ChannelDtmfReceived,
    Connected,
    EventStream,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
    StreamEvent,
)
from asterisk_recorder.testing import FakeAsterisk  # noqa: E402

TRACES = ROOT / "tests" / "data" / "asterisk-traces"
SCENARIOS = ("no-dtmf", "optout-pressed", "dtmf-then-record", "caller-hangs-up-during-disclosure")


def _frames() -> list[str]:
    frames: list[str] = []
    for name in SCENARIOS:
        for line in (TRACES / f"{name}.jsonl").read_text().splitlines():
            if line and json.loads(line).get("application") == "consent-recorder":
                frames.append(line)
    return frames


def _dispatch(event: StreamEvent, counts: dict[str, int]) -> None:
    match event:
        case StasisStart():
            counts["start"] += 1
        case ChannelDtmfReceived():
            counts["dtmf"] += 1
        case PlaybackFinished():
            counts["played"] += 1
        case StasisEnd():
            counts["end"] += 1
        case _:
            counts["other"] += 1


async def bench_parse(frames: list[str], total: int) -> float:
    """Events per second through handle_frame -> queue -> match dispatch."""
    fake = FakeAsterisk()
    stream = EventStream(fake.settings())  # never started: no socket, just the frame path
    counts = {"start": 0, "dtmf": 0, "played": 0, "end": 0, "other": 0}
    batch = frames * (total // len(frames))
    queue = stream._queue  # the consumer side of ``async for``, without awaiting per item
    begin = time.perf_counter()
    for frame in batch:
        stream.handle_frame(frame)
        _dispatch(queue.get_nowait(), counts)  # type: ignore[arg-type]
    took = time.perf_counter() - begin
    assert sum(counts.values()) == len(batch), counts
    return len(batch) / took


async def bench_websocket(frames: list[str], total: int) -> float:
    """Events per second from FakeAsterisk over loopback to ``async for``."""
    async with FakeAsterisk() as fake, EventStream(fake.settings()) as stream:
        first = await stream.get()
        assert isinstance(first, Connected)
        await fake.wait_for_app("consent-recorder")
        batch = frames * (total // len(frames))
        counts = {"start": 0, "dtmf": 0, "played": 0, "end": 0, "other": 0}
        begin = time.perf_counter()
        for frame in batch:
            await fake.send_raw(frame)
        for _ in batch:
            _dispatch(await stream.get(), counts)
        took = time.perf_counter() - begin
    return len(batch) / took


async def bench_rest(rounds: int) -> dict[str, float]:
    """Round trips per second, sequential and 10-way concurrent."""
    async with (
        FakeAsterisk() as fake,
        AriClient(fake.settings()) as ari,
        EventStream(fake.settings()) as stream,
    ):
        await stream.get()
        await fake.wait_for_app("consent-recorder")
        call = await fake.originate()
        begin = time.perf_counter()
        for _ in range(rounds):
            await ari.ping()
        sequential = rounds / (time.perf_counter() - begin)

        begin = time.perf_counter()
        for i in range(rounds):
            await ari.set_variable(call.id, "N", str(i))
        variable = rounds / (time.perf_counter() - begin)

        async def worker(n: int) -> None:
            for _ in range(n):
                await ari.ping()

        begin = time.perf_counter()
        await asyncio.gather(*(worker(rounds // 10) for _ in range(10)))
        concurrent = rounds / (time.perf_counter() - begin)
    return {
        "rest_sequential_per_s": sequential,
        "rest_set_variable_per_s": variable,
        "rest_concurrent_per_s": concurrent,
    }


async def bench_reconnect(times: int, *, abort: bool) -> list[float]:
    """Milliseconds from a server-side drop to the next ``Connected``."""
    out: list[float] = []
    async with FakeAsterisk() as fake:
        settings = fake.settings(reconnect_max=10.0)
        async with EventStream(settings) as stream:
            await stream.get()
            for _ in range(times):
                await fake.wait_for_app("consent-recorder")
                begin = time.perf_counter()
                await fake.drop_websockets(abort=abort)
                while True:
                    event = await asyncio.wait_for(stream.get(), 5)
                    if isinstance(event, Connected):
                        break
                out.append((time.perf_counter() - begin) * 1000)
    return out


async def main() -> dict[str, Any]:
    """Run every measurement and return the figures."""
    frames = _frames()
    parse = max([await bench_parse(frames, 60_000) for _ in range(3)])
    over_ws = await bench_websocket(frames, 20_000)
    rest = await bench_rest(1_000)
    closes = await bench_reconnect(15, abort=False)
    resets = await bench_reconnect(15, abort=True)
    both = closes + resets
    return {
        "events_parse_dispatch_per_s": round(parse),
        "events_parse_dispatch_target_per_s": 50_000,
        "events_over_websocket_per_s": round(over_ws),
        **{k: round(v) for k, v in rest.items()},
        "reconnect_ms_median": round(statistics.median(both), 1),
        "reconnect_ms_max": round(max(both), 1),
        "reconnect_ms_median_close_frame": round(statistics.median(closes), 1),
        "reconnect_ms_median_tcp_reset": round(statistics.median(resets), 1),
        "reconnect_target_ms": 1000,
        "frames_in_mix": len(frames),
        "python": sys.version.split()[0],
    }


def _table(figures: dict[str, Any]) -> str:
    rows = [
        (
            "event parse+dispatch",
            f"{figures['events_parse_dispatch_per_s']:,} events/s",
            ">= 50,000 /s",
        ),
        ("events over loopback WS", f"{figures['events_over_websocket_per_s']:,} events/s", ""),
        ("REST ping, sequential", f"{figures['rest_sequential_per_s']:,} req/s", ""),
        ("REST set variable, sequential", f"{figures['rest_set_variable_per_s']:,} req/s", ""),
        ("REST ping, 10 concurrent", f"{figures['rest_concurrent_per_s']:,} req/s", ""),
        ("reconnect after drop (median)", f"{figures['reconnect_ms_median']} ms", "< 1000 ms"),
        ("reconnect after drop (max)", f"{figures['reconnect_ms_max']} ms", "< 1000 ms"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure':<{width}}  {'result':>22}  target", "-" * (width + 36)]
    lines += [f"{name:<{width}}  {value:>22}  {target}" for name, value, target in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    # Quiet the stream's own logging so the bench measures parsing, not console output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    result = asyncio.run(main())
    print(json.dumps(result, indent=2))
    print()
    print(_table(result))
