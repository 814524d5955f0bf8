"""Bench of the FastAGI driver: consent sessions per second and per-command latency.

The server (``FastAgiServer`` + ``ConsentSession`` + the real policy engine and consent flow,
decisions kept in a ``MemorySink``) runs in this process; the scripted Asterisk peers run in a
child process, so each side has a core of its own. Prompts and key waits are answered at once
(zero playback time), so what is measured is the driver: AGI parsing and formatting, the flow,
the policy engine and the socket round trips. The call mix rotates over three outcomes: opt-out
key during the disclosure (6 commands + 6 SET VARIABLE), silent opt-out acceptance
(+ WAIT FOR DIGIT) and opt-in accepted after the prompt.

Run: ``python bench/agi_bench.py [--sessions 3000] [--concurrency 50]`` (about 10 s). Prints one
JSON object, then a table. Targets (issue 7): >= 500 sessions/s; p99 per-command latency is
reported (measured in the server, from writing a command to its parsed reply), under load
(``--concurrency`` sessions at once) and unloaded (a second pass, one session at a time), and
so is the reaction time (``asterisk_recorder_reaction_seconds``: from a reply, or the
environment, received to the next command sent; a decision's ledger write is inside it).
``server_cpu_ms_per_session`` is the server process's own CPU time: on a shared machine it
says more than the wall-clock rate, which depends on what else runs.
Logging runs at ``warning`` (the per-call ``consent.decided`` info line is not written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asterisk_recorder import logs  # noqa: E402 - after the sys.path tweak
from asterisk_recorder.agi.server import FastAgiServer  # noqa: E402
from asterisk_recorder.agi.session import SessionResult, consent_handler  # noqa: E402
from asterisk_recorder.flow import ConsentFlow  # noqa: E402
from asterisk_recorder.ledger.sink import MemorySink  # noqa: E402
from asterisk_recorder.policy import PolicyEngine  # noqa: E402
from asterisk_recorder.settings import (  # noqa: E402
    AgiSettings,
    LoggingSettings,
    PolicySettings,
    Settings,
)
from asterisk_recorder.testing.agi_peer import (  # noqa: E402
    Finish,
    Press,
    ScriptedAsterisk,
    Silence,
    environment_lines,
    load_transcript,
)

TRACE = ROOT / "tests" / "data" / "asterisk-traces" / "agi-optout-ari-originate.agi.txt"


def _environment(policy: str, n: int) -> tuple[str, ...]:
    base = load_transcript(TRACE).environment
    return environment_lines(
        base,
        {
            "network_script": f"consent?policy={policy}",
            "request": f"agi://127.0.0.1/consent?policy={policy}",
            "uniqueid": f"1795449978.{n}",
            "callerid": "+14155551234",
            "extension": "+12125550000",
        },
    )


def _peer(n: int) -> ScriptedAsterisk:
    kind = n % 3
    if kind == 0:
        return ScriptedAsterisk(_environment("opt_out", n), prompts=[Press("1")])
    if kind == 1:
        return ScriptedAsterisk(_environment("opt_out", n), prompts=[Finish()], waits=[Silence()])
    return ScriptedAsterisk(_environment("opt_in", n), prompts=[Finish()], waits=[Press("1")])


def _peers_main(port: int, sessions: int, concurrency: int, conn: Connection) -> None:
    """Child process: play ``sessions`` calls against the server, ``concurrency`` at a time."""

    async def main() -> dict[str, object]:
        queue = list(range(sessions))
        durations: list[float] = []
        failures = 0

        async def worker() -> None:
            nonlocal failures
            while queue:
                n = queue.pop()
                peer = _peer(n)
                started = time.perf_counter()
                await peer.connect("127.0.0.1", port)
                durations.append(time.perf_counter() - started)
                if "RECORDER_DECISION" not in peer.variables:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {
            "wall_s": time.perf_counter() - started,
            "durations": durations,
            "without_decision": failures,
        }

    conn.send(asyncio.run(main()))
    conn.close()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(sessions: int, concurrency: int) -> dict[str, object]:
    """Run the bench; return the figures."""
    settings = Settings(agi=AgiSettings(host="127.0.0.1", port=0, max_sessions=1000))
    engine = PolicyEngine.from_settings(PolicySettings())
    sink = MemorySink()
    results: list[SessionResult] = []
    latencies: dict[str, list[float]] = defaultdict(list)

    reactions: list[float] = []

    def observe(command: str, seconds: float) -> None:
        latencies[command].append(seconds)

    server = FastAgiServer(
        settings.agi,
        consent_handler(lambda: ConsentFlow(settings.flow, engine), sink, on_result=results.append),
        observer=observe,
        on_reaction=reactions.append,
    )
    await server.start()
    parent, child = mp.Pipe(duplex=False)
    process = mp.get_context("fork").Process(
        target=_peers_main, args=(server.port, sessions, concurrency, child)
    )
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    process.start()
    peer_report: dict[str, object] = await asyncio.to_thread(parent.recv)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.to_thread(process.join)
    peer_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
        cpu_after.ru_stime - cpu_before.ru_stime
    )
    await server.close()

    every = [s for values in latencies.values() for s in values]
    durations = peer_report["durations"]
    assert isinstance(durations, list)
    outcomes: dict[str, int] = defaultdict(int)
    for d in sink.decisions:
        outcomes[d.outcome.value] += 1
    return {
        "sessions": sessions,
        "concurrency": concurrency,
        "sessions_per_s": round(len(results) / wall, 1),
        "sessions_completed": len(results),
        "sessions_without_decision": peer_report["without_decision"],
        "decisions_stored": len(sink.decisions),
        "outcomes": dict(outcomes),
        "commands": len(every),
        "commands_per_session": round(len(every) / max(1, len(results)), 2),
        "command_latency_ms_p50": round(statistics.median(every) * 1000, 3),
        "command_latency_ms_p99": round(_percentile(every, 0.99) * 1000, 3),
        "command_latency_ms_p99_by_command": {
            name: round(_percentile(values, 0.99) * 1000, 3)
            for name, values in sorted(latencies.items())
        },
        "reaction_ms_p50": round(statistics.median(reactions) * 1000, 3),
        "reaction_ms_p99": round(_percentile(reactions, 0.99) * 1000, 3),
        "session_ms_p50": round(statistics.median(durations) * 1000, 2),
        "session_ms_p99": round(_percentile(durations, 0.99) * 1000, 2),
        "server_cpu_ms_per_session": round(server_cpu * 1000 / max(1, len(results)), 3),
        "server_capacity_sessions_per_cpu_s": round(len(results) / max(server_cpu, 1e-9), 1),
        "peer_cpu_ms_per_session": round(
            (peer_cpu.ru_utime + peer_cpu.ru_stime) * 1000 / max(1, len(results)), 3
        ),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "server_failed": server.stats.failed,
        "target_sessions_per_s": 500,
    }


def main() -> None:
    """Parse arguments, run, print JSON and a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--latency-sessions", type=int, default=300, help="sessions of the one-at-a-time pass"
    )
    args = parser.parse_args()
    logs.configure(LoggingSettings(level="warning", format="json"), stream=sys.stderr)
    figures = asyncio.run(run(args.sessions, args.concurrency))
    idle = asyncio.run(run(args.latency_sessions, 1))
    figures["unloaded_command_latency_ms_p50"] = idle["command_latency_ms_p50"]
    figures["unloaded_command_latency_ms_p99"] = idle["command_latency_ms_p99"]
    figures["unloaded_session_ms_p50"] = idle["session_ms_p50"]
    figures["unloaded_reaction_ms_p99"] = idle["reaction_ms_p99"]
    print(json.dumps(figures))
    print()
    print(f"{'figure':<40} value")
    for key, value in figures.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                print(f"  {key[:24] + '.' + sub:<38} {sub_value}")
        else:
            print(f"{key:<40} {value}")


if __name__ == "__main__":
    main()
