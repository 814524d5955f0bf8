"""Decisions per second through the pure consent machine, for a typical opt-out call.

Each call is a fresh ``ConsentFlow`` fed the six events of an ordinary opt-out call (offered,
answered, prompt started, prompt finished, input timer expired, decision stored), which yields
the ``StoreDecision`` and then ``SetVariables`` + ``HandBack``. Events and call data are built
before timing; the timed loop is flow construction + ``handle`` only, on one core.

Scenarios:
  * ``cached_policy``: 1,000 distinct (caller, called) pairs cycled, so the engine's LRU cache
    answers after the first round (the realistic steady state: callers repeat).
  * ``uncached_policy``: every call has NANP numbers never seen before (the engine's NANP
    shortcut places them without phonenumbers' parser).
  * ``new_caller_few_dids``: every caller is new, the dialled number is one of five DIDs (the
    typical inbound call centre: the engine remembers each party's placement on its own).
  * ``uncached_international``: every call has a London caller never seen before, so each call
    pays for phonenumbers' full parser (the worst case).
  * ``policy_only_uncached``: ``PolicyEngine.evaluate`` alone on unseen numbers, to show where
    the time of the uncached scenario goes.

Usage: ``python bench/flow_bench.py [--calls N] [--repeat R]``. Prints a JSON object, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asterisk_recorder.flow import ConsentFlow
from asterisk_recorder.flow.actions import HandBack, StoreDecision
from asterisk_recorder.flow.events import (
    Answered,
    CallInfo,
    CallOffered,
    DecisionStored,
    Event,
    PromptFinished,
    PromptStarted,
    TimerExpired,
)
from asterisk_recorder.flow.settings import FlowSettings
from asterisk_recorder.policy import PolicyEngine
from asterisk_recorder.settings import PolicySettings

TARGET = 100_000
T0 = 1_795_000_000.0


def pin_one_core() -> int | None:
    """Pin this process to one CPU (Linux); return it, or None when not possible."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return None
    return cpu


def calls(
    n: int, distinct_pairs: int | None, *, international: bool = False, dids: int = 0
) -> list[list[Event]]:
    """Event lists of ``n`` opt-out calls.

    California caller -> New York number; with ``international``, a London caller (+44 20 ...)
    -> a New York number, so the caller goes through phonenumbers' full parser. With ``dids``,
    the New York number is one of that many DIDs.
    """
    out: list[list[Event]] = []
    for i in range(n):
        k = i % distinct_pairs if distinct_pairs else i
        if international:
            caller = f"+4420{70000000 + k % 9_000_000:08d}"
        else:
            caller = f"+1415{2000000 + k % 7_000_000:07d}"
        called = (
            f"+1212555{k % dids:04d}" if dids else f"+1212{2000000 + (k * 7) % 7_000_000:07d}"
        )
        decision_id = str(uuid.uuid4())
        info = CallInfo(
            decision_id=decision_id,
            driver="ari",
            channel_id=f"1700000000.{i}",
            channel_name=f"PJSIP/trunk-{i:08x}",
            uniqueid=f"1700000000.{i}",
            linkedid=f"1700000000.{i}",
            asterisk_id="pbx1",
            instance_id="bench",
            caller_number=caller,
            caller_name="Bench Caller",
            called_number=called,
            language="en",
        )
        t = T0 + i
        out.append(
            [
                CallOffered(t, info),
                Answered(t + 0.05),
                PromptStarted(t + 0.1),
                PromptFinished(t + 6.0),
                TimerExpired(t + 11.0, "input"),
                DecisionStored(t + 11.01, decision_id),
            ]
        )
    return out


def run_calls(
    settings: FlowSettings, engine: PolicyEngine, batch: list[list[Event]]
) -> tuple[float, int]:
    """Seconds to run every call of ``batch`` through a fresh flow; decisions made."""
    decided = 0
    start = time.perf_counter()
    for events in batch:
        flow = ConsentFlow(settings, engine)
        for event in events:
            flow.handle(event)
        decided += flow.decision is not None
    return time.perf_counter() - start, decided


def measure(
    name: str,
    repeat: int,
    prepare: Callable[[], tuple[PolicyEngine, list[list[Event]]]],
    settings: FlowSettings,
) -> dict[str, object]:
    """Best and median decisions per second of ``repeat`` runs."""
    rates: list[float] = []
    n = 0
    for _ in range(repeat):
        engine, batch = prepare()
        seconds, decided = run_calls(settings, engine, batch)
        assert decided == len(batch), "every call must reach a decision"
        rates.append(decided / seconds)
        n = decided
    return {
        "scenario": name,
        "calls_per_run": n,
        "runs": repeat,
        "decisions_per_s_best": round(max(rates)),
        "decisions_per_s_median": round(statistics.median(rates)),
        "us_per_call_best": round(1e6 / max(rates), 2),
        "meets_target": max(rates) >= TARGET,
    }


def policy_only(repeat: int, n: int) -> dict[str, object]:
    """``PolicyEngine.evaluate`` alone, on numbers never seen before."""
    rates: list[float] = []
    for r in range(repeat):
        engine = PolicyEngine.from_settings(PolicySettings(site_jurisdiction="US-NY"))
        pairs = [(f"+1415{3000000 + r * n + i:07d}", f"+1212{4000000 + i:07d}") for i in range(n)]
        start = time.perf_counter()
        for caller, called in pairs:
            engine.evaluate(caller, called)
        rates.append(n / (time.perf_counter() - start))
    return {
        "scenario": "policy_only_uncached",
        "calls_per_run": n,
        "runs": repeat,
        "decisions_per_s_best": round(max(rates)),
        "decisions_per_s_median": round(statistics.median(rates)),
        "us_per_call_best": round(1e6 / max(rates), 2),
        "meets_target": None,
    }


def main() -> int:
    """Run the scenarios; print JSON and a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="calls per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per scenario")
    args = parser.parse_args()
    cpu = pin_one_core()
    settings = FlowSettings()
    policy = PolicySettings(site_jurisdiction="US-NY")

    # Sanity: a typical call produces StoreDecision, then SetVariables + HandBack.
    engine = PolicyEngine.from_settings(policy)
    flow = ConsentFlow(settings, engine)
    actions = [a for e in calls(1, 1)[0] for a in flow.handle(e)]
    assert isinstance(actions[-1], HandBack)
    assert any(isinstance(a, StoreDecision) for a in actions)
    assert flow.decision is not None
    assert flow.decision.outcome.value == "recorded_notified"

    def cached() -> tuple[PolicyEngine, list[list[Event]]]:
        eng = PolicyEngine.from_settings(policy)
        batch = calls(args.calls, 1000)
        run_calls(settings, eng, batch[:1000])  # warm the LRU with every pair once
        return eng, batch

    def uncached() -> tuple[PolicyEngine, list[list[Event]]]:
        return PolicyEngine.from_settings(policy), calls(args.calls // 5, None)

    def new_caller_few_dids() -> tuple[PolicyEngine, list[list[Event]]]:
        eng = PolicyEngine.from_settings(policy)
        for d in range(5):
            eng.evaluate("+14150000000", f"+1212555{d:04d}")  # the DIDs are known by then
        return eng, calls(args.calls // 5, None, dids=5)

    def uncached_international() -> tuple[PolicyEngine, list[list[Event]]]:
        return PolicyEngine.from_settings(policy), calls(args.calls // 5, None, international=True)

    results = [
        measure("cached_policy", args.repeat, cached, settings),
        measure("uncached_policy", args.repeat, uncached, settings),
        measure("new_caller_few_dids", args.repeat, new_caller_few_dids, settings),
        measure("uncached_international", args.repeat, uncached_international, settings),
        policy_only(args.repeat, args.calls // 5),
    ]
    doc = {
        "bench": "flow_bench",
        "target_decisions_per_s": TARGET,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "pinned_cpu": cpu,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "results": results,
    }
    print(json.dumps(doc, indent=2))
    print()
    print(
        f"{'scenario':<24}{'calls/run':>10}{'best/s':>12}{'median/s':>12}{'us/call':>10}"
        f"{'>=100k/s':>10}"
    )
    for r in results:
        meets = r["meets_target"]
        mark = "-" if meets is None else ("yes" if meets else "NO")
        print(
            f"{r['scenario']:<24}{r['calls_per_run']:>10}{r['decisions_per_s_best']:>12}"
            f"{r['decisions_per_s_median']:>12}{r['us_per_call_best']:>10}{mark:>10}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
