"""Bench of the real path: what the consent step costs on a real Asterisk, against the floor.

Four paths play the same opt-out prompt (``recorder/consent-opt-out``, 5.0 s) with the same
input wait, one call at a time, interleaved round by round so load drift hits every path alike:

- ``ari``: the product over ARI (``asterisk_recorder.service.Service`` with its real
  PostgreSQL ledger, in a child process): ``Gosub(recorder-consent,...)`` of
  ``dialplan/recorder.conf``;
- ``agi``: the same service's FastAGI server (``Gosub(recorder-consent-agi,...)``);
- ``mini``: a minimal hand-written ARI app (this file, aiohttp, its own child process):
  play, wait for the key or the end of the prompt plus the input wait, set one
  variable, continue;
- ``dialplan``: pure dialplan, ``Read()`` with the prompt and the input wait.

The calls are ``Local/<path>@bench-real-path`` (tests/e2e/asterisk/extensions.conf) placed by
the e2e suite's caller simulator (``tests/e2e/e2e_harness.py``: raw ARI app ``caller-sim``,
which sees every event of the ``;2`` half). Two figures per path, from the simulator's event
stream (receive times; both ends of each figure travel the same WebSocket):

- ``no_key_overhead_ms``: from the consent step's ``ChannelDialplan`` (Stasis/AGI/Read) to the
  next dialplan step's (``Set(RECORDER_STATUS=...)`` / ``Set(BENCH_STATUS=...)``), minus the
  prompt's length and the input wait: what the path adds beyond them;
- ``key_ms``: from the caller's opt-out key (``ChannelDtmfReceived`` on ``;2``; the key is
  sent with ``POST /channels/{;1}/dtmf`` ``--key-after`` seconds into the prompt) to the next
  dialplan step.

Each figure gets p50/p95 and a ratio against ``mini`` measured in the same run. For the ARI
path the bench also counts the REST requests per call (by method and path) and breaks the key
path down from timestamps taken in the service's process (same monotonic clock): event
received, each REST request, the ledger commit.

Run (a real Asterisk with the e2e configuration; nothing here builds or starts one)::

    E2E_DETACH=1 ASTERISK_BIN=/opt/asterisk22/sbin/asterisk \\
        bash tests/e2e/run_local_asterisk.sh /tmp/ast-e2e
    . /tmp/ast-e2e/e2e.env
    .venv/bin/python bench/real_path_bench.py [--calls 20] [--input-wait 1.0]

About ``calls x 4 x (prompt + wait + 2 s)``: 12 minutes with the defaults. Prints one JSON
object, then a table. PostgreSQL is an embedded server of its own (``embedded`` extra), unless
``--dsn`` names one. Issue 12 target: the ARI path within 2x of the minimal app on both figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
import wave
from collections import Counter, defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2e_harness import AriTarget, CallerSim, free_port  # noqa: E402 - after the sys.path tweak

__all__ = ["main"]

CONTEXT = "bench-real-path"
PATHS = ("ari", "agi", "mini", "dialplan")
MINI_APP = "bench-mini"
PROMPT = "recorder/consent-opt-out"
PROMPT_FILE = ROOT / "asterisk_recorder" / "sounds" / "en" / "recorder" / "consent-opt-out.wav"
STEP_APPS = {"ari": "Stasis", "agi": "AGI", "mini": "Stasis", "dialplan": "Read"}
NEXT_STEP = ("RECORDER_STATUS=", "BENCH_STATUS=")

Event = dict[str, Any]


def prompt_seconds() -> float:
    """The prompt's length, from its samples."""
    with wave.open(str(PROMPT_FILE)) as w:
        return w.getnframes() / w.getframerate()


def _channel_id(event: Event) -> str:
    channel = event.get("channel")
    return str(channel.get("id", "")) if isinstance(channel, dict) else ""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- the caller's side (this process) --------------------------------------------------------


class TimedCallerSim(CallerSim):
    """The e2e caller simulator, with each event's receive time (``_rx``, monotonic)."""

    async def _read(self, ws: Any) -> None:
        import aiohttp

        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            event["_rx"] = time.monotonic()
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()


async def one_call(
    sim: TimedCallerSim, path: str, *, key_after: float | None, within: float
) -> dict[str, Any]:
    """Place one call down ``path``; return its timestamps and what it left behind."""
    call = await sim.originate(f"Local/{path}@{CONTEXT}")
    cid = call.dialplan_id
    step = await sim.wait_for(
        lambda e: (
            e.get("type") == "ChannelDialplan"
            and _channel_id(e) == cid
            and e.get("dialplan_app") == STEP_APPS[path]
        ),
        15,
        f"{STEP_APPS[path]} on {cid}",
    )
    key_rx: float | None = None
    if key_after is not None:
        await asyncio.sleep(max(0.0, step["_rx"] + key_after - time.monotonic()))
        await call.dtmf("1")
        key = await sim.wait_for(
            lambda e: e.get("type") == "ChannelDtmfReceived" and _channel_id(e) == cid,
            10,
            f"ChannelDtmfReceived on {cid}",
        )
        key_rx = key["_rx"]
    nxt = await sim.wait_for(
        lambda e: (
            e.get("type") == "ChannelDialplan"
            and e["_rx"] > step["_rx"]
            and _channel_id(e) == cid
            and e.get("dialplan_app") == "Set"
            and str(e.get("dialplan_app_data", "")).startswith(NEXT_STEP)
        ),
        within,
        f"the step after {STEP_APPS[path]} on {cid}",
    )
    await call.wait_destroyed(within=15)
    playbacks = {
        str(e["playback"]["id"])
        for e in sim.events
        if e.get("type") == "PlaybackStarted"
        and e.get("playback", {}).get("target_uri") == f"channel:{cid}"
    }
    result = {
        "path": path,
        "channel": cid,
        "step_rx": step["_rx"],
        "key_rx": key_rx,
        "next_rx": nxt["_rx"],
        "next_step": nxt.get("dialplan_app_data", ""),
        "variables": call.variables(),
        "playbacks": sorted(playbacks),
    }
    # Keep the simulator's memory flat over hundreds of calls.
    ids = {call.caller_id, cid}
    sim.events[:] = [e for e in sim.events if _channel_id(e) not in ids]
    return result


def check_outcome(result: dict[str, Any], keyed: bool) -> str | None:
    """Why this call did not end as the path should have (None when it did)."""
    path, v = result["path"], result["variables"]
    if path in ("ari", "agi"):
        want = "skip" if keyed else "record"
        got = v.get("RECORDER_DECISION", "")
        # recorder-consent-apply may turn "record" into "skip" only if MixMonitor failed.
        return (
            None
            if got == want or (not keyed and v.get("RECORDER_RECORDING") == "yes")
            else (f"RECORDER_DECISION={got!r}, expected {want!r}")
        )
    if path == "mini":
        want = "opted_out" if keyed else "no_key"
        got = v.get("BENCH_RESULT", "")
        return None if got == want else f"BENCH_RESULT={got!r}, expected {want!r}"
    want = "1" if keyed else ""
    got = v.get("BENCH_KEY", "")
    return None if got == want else f"BENCH_KEY={got!r}, expected {want!r}"


# --- the product (child process) -------------------------------------------------------------


def product_config(target: AriTarget, *, dsn: str, run_dir: Path, input_wait: float) -> str:
    """The TOML the product runs with (as the e2e suite's, with FastAGI on)."""

    def q(value: str) -> str:
        return json.dumps(value)

    return f"""\
instance_id = "bench"

[ari]
url = {q(target.url)}
username = {q(target.user)}
password = {q(target.password)}
app = {q(target.app)}

[agi]
enabled = true
host = "127.0.0.1"
port = {target.agi_port}

[database]
dsn = {q(dsn)}

[ledger]
spool_dir = {q(str(run_dir / "spool"))}

[flow]
input_timeout = {input_wait}
max_retries = 0

[recording]
directory = {q(str(run_dir / "recordings"))}

[http]
host = "127.0.0.1"
port = {free_port()}

[logging]
level = "info"
format = "json"

[controller]
shutdown_grace = 1.0
"""


def _product(conn: Connection, config: str, log_path: str) -> None:
    from asterisk_recorder import config as config_module
    from asterisk_recorder import logs

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(config)
    settings = config_module.load(handle.name, env={})
    with open(log_path, "a") as log_stream:
        logs.configure(settings.logging, stream=log_stream)
        asyncio.run(_product_main(conn, settings))


async def _product_main(conn: Connection, settings: Any) -> None:
    from asterisk_recorder.agi.channel import AgiChannel
    from asterisk_recorder.ari.client import AriClient
    from asterisk_recorder.controller.app import AriController
    from asterisk_recorder.ledger.store import Ledger
    from asterisk_recorder.service import build

    # Everything the service does on its side, on the clock the caller's side uses.
    rest: list[tuple[float, float, str, str, str]] = []
    stores: list[tuple[float, float, str]] = []
    events: list[tuple[float, str, str]] = []
    agi: list[tuple[float, float, str]] = []

    original_request = AriClient.request

    async def request(self: AriClient, method: str, path: str, **kw: Any) -> Any:
        t0 = time.monotonic()
        outcome = "ok"
        try:
            return await original_request(self, method, path, **kw)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            rest.append((t0, time.monotonic(), method, path, outcome))

    original_store = Ledger.store

    async def store(self: Ledger, decision: Any) -> Any:
        t0 = time.monotonic()
        try:
            return await original_store(self, decision)
        finally:
            stores.append((t0, time.monotonic(), str(decision.channel_id)))

    original_dispatch = AriController._dispatch

    def dispatch(self: AriController, event: Any) -> None:
        channel = getattr(event, "channel", None)
        playback = getattr(event, "playback", None)
        target = getattr(channel, "id", None) or getattr(playback, "target_uri", "")
        events.append((time.monotonic(), type(event).__name__, str(target)))
        original_dispatch(self, event)

    original_command = AgiChannel.command

    async def command(self: AgiChannel, *words: Any, **kw: Any) -> Any:
        t0 = time.monotonic()
        try:
            return await original_command(self, *words, **kw)
        finally:
            agi.append((t0, time.monotonic(), " ".join(str(w) for w in words[:2])))

    AriClient.request = request  # type: ignore[method-assign]
    Ledger.store = store  # type: ignore[method-assign]
    AriController._dispatch = dispatch  # type: ignore[method-assign]
    AgiChannel.command = command  # type: ignore[method-assign]

    service = build(settings)
    stop = asyncio.Event()
    runner = asyncio.create_task(service.run(stop))
    started = asyncio.create_task(service.started.wait())
    await asyncio.wait({runner, started}, return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        conn.send({"error": repr(runner.exception())})
        return
    for _ in range(200):
        if all(c.ready for c in service.controllers):
            break
        await asyncio.sleep(0.05)
    conn.send({"ready": True})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)
    cpu = os.times()
    stop.set()
    await runner
    conn.send(
        {
            "rest": rest,
            "stores": stores,
            "events": events,
            "agi": agi,
            "cpu_s": cpu.user + cpu.system,
        }
    )


# --- the minimal ARI app (child process) -----------------------------------------------------


def _mini(conn: Connection, target: AriTarget, input_wait: float) -> None:
    asyncio.run(_mini_main(conn, target, input_wait))


async def _mini_main(conn: Connection, target: AriTarget, input_wait: float) -> None:
    """Answer, play, wait for a key (or the prompt's end plus ``input_wait``), set, continue."""
    import aiohttp

    rest: list[tuple[float, float, str, str, str]] = []
    base = target.url + "/ari"
    auth = aiohttp.BasicAuth(target.user, target.password)
    async with aiohttp.ClientSession(auth=auth) as session:

        async def ari(method: str, path: str, **params: str) -> None:
            t0 = time.monotonic()
            async with session.request(method, base + path, params=params) as response:
                await response.read()
                status = response.status
            rest.append((t0, time.monotonic(), method, path, str(status)))

        calls: dict[str, dict[str, Any]] = {}

        async def finish(cid: str, result: str) -> None:
            state = calls.get(cid)
            if state is None or state["done"]:
                return
            state["done"] = True
            if state["playing"]:
                await ari("DELETE", f"/playbacks/{state['playback']}")
            await ari("POST", f"/channels/{cid}/variable", variable="BENCH_RESULT", value=result)
            await ari("POST", f"/channels/{cid}/continue")

        async def handle(event: Event) -> None:
            kind = event.get("type")
            if kind == "StasisStart":
                channel = event["channel"]
                cid = channel["id"]
                playback = str(uuid.uuid4())
                calls[cid] = {"playback": playback, "playing": True, "done": False}
                if channel.get("state") != "Up":
                    await ari("POST", f"/channels/{cid}/answer")
                await ari(
                    "POST",
                    f"/channels/{cid}/play",
                    media=f"sound:{PROMPT}",
                    lang="en",
                    playbackId=playback,
                )
            elif kind == "ChannelDtmfReceived" and event.get("digit") == "1":
                await finish(_channel_id(event), "opted_out")
            elif kind == "PlaybackFinished":
                cid = str(event["playback"]["target_uri"]).removeprefix("channel:")
                state = calls.get(cid)
                if state is not None and state["playback"] == event["playback"]["id"]:
                    state["playing"] = False
                    loop = asyncio.get_running_loop()
                    loop.call_later(
                        input_wait, lambda: tasks.add(asyncio.create_task(finish(cid, "no_key")))
                    )
            elif kind in ("StasisEnd", "ChannelDestroyed"):
                calls.pop(_channel_id(event), None)

        tasks: set[asyncio.Task[None]] = set()
        ws = await session.ws_connect(
            base.replace("http", "ws", 1) + "/events", params={"app": MINI_APP}
        )
        conn.send({"ready": True})
        stop = asyncio.get_running_loop().run_in_executor(None, conn.recv)
        reader = asyncio.ensure_future(ws.receive())
        while True:
            done, _ = await asyncio.wait({reader, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stop in done:
                break
            message = reader.result()
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            await handle(json.loads(message.data))  # inline: one call at a time, in order
            reader = asyncio.ensure_future(ws.receive())
        reader.cancel()
        await ws.close()
    conn.send({"rest": rest})


# --- figures ---------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values), 2),
        "p95": round(_percentile(values, 0.95), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def _requests_of(call: dict[str, Any], rest: list[Any]) -> list[Any]:
    """The REST requests about this call's channel or its playbacks."""
    cid, playbacks = call["channel"], call["playbacks"]
    return [r for r in rest if cid in r[3] or any(p in r[3] for p in playbacks)]


def _template(path: str, channel: str, playbacks: list[str]) -> str:
    out = path.replace(channel, "{channelId}")
    for playback in playbacks:
        out = out.replace(playback, "{playbackId}")
    return out


def product_breakdown(calls: list[dict[str, Any]], service: dict[str, Any]) -> dict[str, Any]:
    """REST requests per ARI call, and where the key path's time goes in the service."""
    per_call: dict[str, list[str]] = {}
    timelines: list[dict[str, float]] = []
    for call in calls:
        cid, playbacks = call["channel"], call["playbacks"]
        mine = _requests_of(call, service["rest"])
        per_call[cid] = [f"{r[2]} {_template(r[3], cid, playbacks)}" for r in mine]
        if call["key_rx"] is None:
            continue
        key_rx = call["key_rx"]
        dtmf_in = [
            t
            for t, kind, target in service["events"]
            if kind == "ChannelDtmfReceived" and target == cid
        ]
        after = [r for r in mine if r[0] >= key_rx - 0.05]
        store = [s for s in service["stores"] if s[2] == cid]
        line: dict[str, float] = {
            "key_to_service_ms": (dtmf_in[0] - key_rx) * 1000 if dtmf_in else float("nan"),
            "rest_requests": float(len(after)),
            "rest_ms": sum(r[1] - r[0] for r in after) * 1000,
            "store_ms": (store[0][1] - store[0][0]) * 1000 if store else 0.0,
            "last_request_to_next_step_ms": (call["next_rx"] - after[-1][1]) * 1000
            if after
            else float("nan"),
        }
        if dtmf_in and after:
            line["service_event_to_first_request_ms"] = (after[0][0] - dtmf_in[0]) * 1000
        by_kind: dict[str, float] = defaultdict(float)
        for r in after:
            by_kind[f"{r[2]} {_template(r[3], cid, playbacks)}"] += (r[1] - r[0]) * 1000
        for kind, ms in by_kind.items():
            line[f"rest_ms[{kind}]"] = ms
        timelines.append(line)
    counts = [len(v) for v in per_call.values()]
    kinds: Counter[str] = Counter()
    for names in per_call.values():
        kinds.update(names)
    steps: dict[str, list[float]] = defaultdict(list)
    for line in timelines:
        for key, value in line.items():
            if value == value:  # not NaN
                steps[key].append(value)
    return {
        "rest_requests_per_call": _stats([float(c) for c in counts]),
        "rest_requests_by_kind_per_call": {
            k: round(n / max(1, len(per_call)), 2) for k, n in sorted(kinds.items())
        },
        "key_path_breakdown_ms_p50": {
            k: round(statistics.median(v), 2) for k, v in sorted(steps.items())
        },
    }


def mini_breakdown(calls: list[dict[str, Any]], rest: list[Any]) -> dict[str, Any]:
    """The minimal app's REST requests per call and their time on the key path."""
    counts, key_rest = [], []
    for call in calls:
        mine = _requests_of(call, rest)
        counts.append(float(len(mine)))
        if call["key_rx"] is not None:
            after = [r for r in mine if r[0] >= call["key_rx"] - 0.05]
            key_rest.append(sum(r[1] - r[0] for r in after) * 1000)
    return {"rest_requests_per_call": _stats(counts), "key_path_rest_ms": _stats(key_rest)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the product and the minimal app, place the calls, compute the figures."""
    target = AriTarget.from_env(os.environ)
    if target is None:
        raise SystemExit(
            "ASTERISK_RECORDER_E2E_ARI_URL is not set: start Asterisk with "
            "tests/e2e/run_local_asterisk.sh and load its e2e.env"
        )
    from asterisk_recorder.ledger import migrate

    prompt = prompt_seconds()
    run_dir = Path(tempfile.mkdtemp(prefix="real-path-bench-"))
    (run_dir / "recordings").mkdir()
    (run_dir / "recordings").chmod(0o777)
    async with contextlib.AsyncExitStack() as stack:
        dsn = args.dsn
        if not dsn:
            from asterisk_recorder.embedded_pg import EmbeddedPostgres

            server = EmbeddedPostgres(run_dir / "pgdata", delete_on_stop=True)
            dsn = await asyncio.to_thread(server.start)
            stack.callback(server.stop)
        await migrate(dsn)
        ctx = mp.get_context("spawn")
        product_conn, child_conn = ctx.Pipe()
        product = ctx.Process(
            target=_product,
            args=(
                child_conn,
                product_config(target, dsn=dsn, run_dir=run_dir, input_wait=args.input_wait),
                str(run_dir / "service.log"),
            ),
            daemon=True,
        )
        product.start()
        mini_conn, mini_child = ctx.Pipe()
        mini = ctx.Process(target=_mini, args=(mini_child, target, args.input_wait), daemon=True)
        mini.start()
        for conn, process, name in (
            (product_conn, product, "product"),
            (mini_conn, mini, "mini app"),
        ):
            while not await asyncio.to_thread(conn.poll, 0.2):
                if not process.is_alive():
                    raise SystemExit(f"{name} exited ({process.exitcode}); see {run_dir}")
            reply = conn.recv()
            if "error" in reply:
                raise SystemExit(f"{name} did not start: {reply['error']}")

        sim = TimedCallerSim(target)
        results: dict[str, dict[str, list[dict[str, Any]]]] = {
            "key": defaultdict(list),
            "no_key": defaultdict(list),
        }
        errors: list[str] = []
        async with sim.running():
            await sim.post(
                "/asterisk/variable",
                params={"variable": "BENCH_INPUT_WAIT", "value": str(args.input_wait)},
            )
            for kind in ("key", "no_key"):
                key_after = args.key_after if kind == "key" else None
                within = prompt + args.input_wait + 15
                for warm in PATHS:  # one unmeasured call each: connections, caches, files
                    await one_call(sim, warm, key_after=key_after, within=within)
                for i in range(args.calls):
                    order = PATHS[i % len(PATHS) :] + PATHS[: i % len(PATHS)]
                    for path in order:
                        try:
                            result = await one_call(sim, path, key_after=key_after, within=within)
                        except AssertionError as exc:
                            errors.append(f"{kind} {path}: {exc}"[:300])
                            continue
                        problem = check_outcome(result, kind == "key")
                        if problem:
                            errors.append(f"{kind} {path} {result['channel']}: {problem}")
                        results[kind][path].append(result)
                    print(f"{kind} round {i + 1}/{args.calls} done", file=sys.stderr)

        product_conn.send("stop")
        mini_conn.send("stop")
        service = await asyncio.to_thread(product_conn.recv)
        mini_report = await asyncio.to_thread(mini_conn.recv)
        product.join(10)
        mini.join(10)

    figures: dict[str, Any] = {
        "asterisk": target.url,
        "calls_per_path": args.calls,
        "prompt_s": round(prompt, 3),
        "input_wait_s": args.input_wait,
        "key_after_s": args.key_after,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "errors": errors,
    }
    for path in PATHS:
        no_key = [
            (r["next_rx"] - r["step_rx"] - prompt - args.input_wait) * 1000
            for r in results["no_key"][path]
        ]
        key = [(r["next_rx"] - r["key_rx"]) * 1000 for r in results["key"][path]]
        figures[path] = {"no_key_overhead_ms": _stats(no_key), "key_ms": _stats(key)}
    for path in PATHS:
        for figure in ("no_key_overhead_ms", "key_ms"):
            mine, floor = figures[path][figure], figures["mini"][figure]
            if mine and floor:
                figures[path][figure]["ratio_p50_vs_mini"] = round(
                    mine["p50"] / max(floor["p50"], 0.01), 2
                )
                figures[path][figure]["ratio_p95_vs_mini"] = round(
                    mine["p95"] / max(floor["p95"], 0.01), 2
                )
    ari_calls = results["key"]["ari"] + results["no_key"]["ari"]
    figures["ari_service"] = product_breakdown(ari_calls, service)
    figures["ari_service"]["rest_requests_per_call_key"] = _stats(
        [float(len(_requests_of(c, service["rest"]))) for c in results["key"]["ari"]]
    )
    figures["ari_service"]["rest_requests_per_call_no_key"] = _stats(
        [float(len(_requests_of(c, service["rest"]))) for c in results["no_key"]["ari"]]
    )
    figures["ari_service"]["ledger_store_ms"] = _stats(
        [(s[1] - s[0]) * 1000 for s in service["stores"]]
    )
    figures["ari_service"]["service_cpu_s"] = round(service["cpu_s"], 2)
    agi_key = [
        sum(1 for a in service["agi"] if a[0] >= r["key_rx"] - 0.05 and a[1] <= r["next_rx"])
        for r in results["key"]["agi"]
    ]
    figures["agi_service"] = {"agi_commands_after_key": _stats([float(n) for n in agi_key])}
    figures["mini_app"] = mini_breakdown(
        results["key"]["mini"] + results["no_key"]["mini"], mini_report["rest"]
    )
    figures["target"] = "ari within 2x of mini on p50 and p95 of both figures"
    return figures


def print_table(figures: dict[str, Any]) -> None:
    """The headline figures as a table."""
    print(
        f"{'path':<10} {'beyond prompt+wait p50/p95 ms':>30} {'x mini':>12} "
        f"{'key -> next step p50/p95 ms':>28} {'x mini':>12}"
    )
    for path in PATHS:
        a, b = figures[path]["no_key_overhead_ms"], figures[path]["key_ms"]
        if not a or not b:
            print(f"{path:<10} (no data)")
            continue
        print(
            f"{path:<10} {a['p50']:>14.2f} / {a['p95']:<13.2f} "
            f"{a.get('ratio_p50_vs_mini', 0):>5.2f}/{a.get('ratio_p95_vs_mini', 0):<5.2f} "
            f"{b['p50']:>13.2f} / {b['p95']:<12.2f} "
            f"{b.get('ratio_p50_vs_mini', 0):>5.2f}/{b.get('ratio_p95_vs_mini', 0):<5.2f}"
        )
    service = figures["ari_service"]
    print()
    print(f"ARI path REST requests per call: {service['rest_requests_per_call']}")
    for kind, n in service["rest_requests_by_kind_per_call"].items():
        print(f"  {n:>5} x {kind}")
    print(f"ARI path ledger store ms: {service['ledger_store_ms']}")
    print("ARI path, key -> next step, p50 in the service:")
    for key, value in service["key_path_breakdown_ms_p50"].items():
        print(f"  {key:<60} {value}")
    print(f"minimal app: {figures['mini_app']}")
    if figures["errors"]:
        print(f"errors ({len(figures['errors'])}): {figures['errors'][:5]}")


def main() -> None:
    """Parse arguments, run, print JSON and a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="measured calls per path and figure")
    parser.add_argument("--input-wait", type=float, default=1.0, help="seconds after the prompt")
    parser.add_argument("--key-after", type=float, default=1.0, help="key this far into the prompt")
    parser.add_argument("--dsn", default="", help="PostgreSQL (default: an embedded one)")
    args = parser.parse_args()
    if args.calls < 1 or args.input_wait <= 0 or not 0 < args.key_after < prompt_seconds():
        parser.error("--calls >= 1, --input-wait > 0, 0 < --key-after < the prompt's length")
    figures = asyncio.run(run(args))
    print(json.dumps(figures))
    print()
    print_table(figures)


if __name__ == "__main__":
    main()
