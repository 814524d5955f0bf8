"""The real ``asterisk-recorder sealer`` process, SIGKILLed at every step and restarted.

Each test runs the console command against the suite's PostgreSQL, lets the crash hook
(``ASTERISK_RECORDER_TEST_SEALER_CRASH``) SIGKILL it at one step, starts it again and checks
that nothing is lost and nothing is left half-done: one sealed file that verifies, no temporary
file, no note, no plaintext, each fact exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sealer_helpers import FIXED_KEY, SealerEnv, facts_of

from asterisk_recorder.recordings.envelope import SealInfo, open_stream, verify
from asterisk_recorder.recordings.files import CRASH_ENV
from asterisk_recorder.recordings.sealer import sealed_path_for
from asterisk_recorder.recordings.wav import tone_pcm, write_wav

SEAL_STEPS = ("closed", "midfile", "temp", "pending", "renamed", "unlinked", "sealed")


def write_config(env: SealerEnv) -> Path:
    paths = env.paths
    config = env.root / "sealer.toml"
    config.write_text(f"""
instance_id = "sealer-test"
[database]
dsn = "{env.dsn}"
[ledger]
spool_dir = "{env.root / 'spool'}"
digest_key = "{FIXED_KEY}"
[recording]
directory = "{paths.recordings}"
[ari]
enabled = false
[agi]
enabled = false
[http]
enabled = false
[logging]
format = "json"
[recordings]
sealed_dir = "{paths.sealed}"
quarantine_dir = "{paths.quarantine}"
key_dir = "{paths.keys}"
retention_class = "standard"
scan_interval = 0.2
orphan_after = 0
""")
    return config


async def start(config: Path, crash: str | None = None) -> asyncio.subprocess.Process:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
    if crash is not None:
        environment[CRASH_ENV] = crash
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asterisk_recorder", "sealer", "--config", str(config),
        env=environment, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )


async def wait_for(check: Any, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]


async def killed(process: asyncio.subprocess.Process) -> None:
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == -signal.SIGKILL, err.decode(errors="replace")[-2000:]


def leftovers(env: SealerEnv) -> list[str]:
    """Temporary files and seal notes anywhere in the sealed directory."""
    return sorted(p.name for p in env.paths.sealed.rglob("*")
                  if p.name.endswith((".tmp", ".pending.json")))


@pytest.mark.parametrize("step", SEAL_STEPS)
async def test_a_sealer_killed_at_any_step_loses_nothing_after_restart(
    env: SealerEnv, step: str
) -> None:
    """SIGKILL at each step, restart: one verifiable envelope, facts once, no half file."""
    env.create_key()
    decision, path = await env.decision()
    write_wav(path, tone_pcm(6.0))  # 96 kB: two chunks, several writes
    config = write_config(env)
    await killed(await start(config, crash=step))
    process = await start(config)
    try:
        async def sealed() -> bool:
            kinds = [k for k, _p in await facts_of(env.dsn, decision.decision_id)]
            return "recording.sealed" in kinds and not leftovers(env) and not path.exists()
        await wait_for(sealed, f"the seal after a kill at {step}")
    finally:
        await stop(process)
    facts = await facts_of(env.dsn, decision.decision_id)
    assert [k for k, _p in facts] == ["recording.closed", "recording.sealed"]
    target = sealed_path_for(env.paths, path)
    assert [p.name for p in env.paths.sealed.rglob("*") if p.is_file()] == [target.name]
    payload = facts[1][1]
    with open(target, "rb") as handle:
        verify(handle, expected=SealInfo(**{n: payload[n] for n in SealInfo.__slots__}),
               opener=env.key_store().opener())
    assert payload["plain_sha256"] == facts[0][1]["sha256"]


QUARANTINE_STEPS = ("midfile", "temp", "pending", "renamed", "unlinked", "quarantine_fact")


@pytest.mark.parametrize("step", QUARANTINE_STEPS)
async def test_a_sealer_killed_while_sealing_an_orphan_into_quarantine_loses_nothing(
    env: SealerEnv, step: str
) -> None:
    """SIGKILL at each step of a quarantine seal, restart: one envelope in quarantine that opens
    to the orphan's bytes, one fact, no plaintext, no temporary file or note."""
    env.create_key()
    orphan = env.paths.recordings / "2026" / "orphan-call.wav"
    write_wav(orphan, tone_pcm(6.0))  # 96 kB: two chunks, several writes
    plain = orphan.read_bytes()
    config = write_config(env)
    await killed(await start(config, crash=step))
    process = await start(config)
    try:
        async def done() -> bool:
            return (not orphan.exists() and not quarantine_leftovers(env)
                    and bool(await facts_of(env.dsn, None)))
        await wait_for(done, f"the quarantine after a kill at {step}")
    finally:
        await stop(process)
    facts = await facts_of(env.dsn, None)
    assert [(k, p["reason"]) for k, p in facts] == [("recording.quarantined", "orphan")]
    target = env.paths.quarantine / "2026" / "orphan-call.wav.arrec"
    assert [p for p in env.paths.quarantine.rglob("*") if p.is_file()] == [target]
    assert facts[0][1]["moved_to"] == "2026/orphan-call.wav.arrec"
    with open(target, "rb") as handle:
        assert verify(handle).sealed_sha256 == facts[0][1]["sealed_sha256"]
        handle.seek(0)
        assert b"".join(open_stream(handle, env.key_store().opener())) == plain


def quarantine_leftovers(env: SealerEnv) -> list[str]:
    """Temporary files and seal notes anywhere in the quarantine directory."""
    return sorted(p.name for p in env.paths.quarantine.rglob("*")
                  if p.name.endswith((".tmp", ".pending.json")))


async def test_a_file_edited_while_the_sealer_was_down_is_quarantined(env: SealerEnv) -> None:
    """Killed after recording.closed, the file grows, restart: the digest differs, quarantined
    as edited (same file), sealed into quarantine."""
    env.create_key()
    decision, path = await env.decision()
    write_wav(path, tone_pcm(2.0))
    config = write_config(env)
    await killed(await start(config, crash="closed"))
    with open(path, "ab") as handle:
        handle.write(b"\x00" * 320)
    process = await start(config)
    try:
        async def gone() -> bool:
            return not path.exists()
        await wait_for(gone, "the quarantine")
    finally:
        await stop(process)
    facts = await facts_of(env.dsn, decision.decision_id)
    assert [k for k, _p in facts] == ["recording.closed", "recording.quarantined"]
    assert facts[1][1]["reason"] == "edited"
    assert leftovers(env) == []
    assert [p for p in env.paths.sealed.rglob("*") if p.is_file()] == []


async def test_under_systemd_the_sealer_says_ready_pings_the_watchdog_and_says_stopping(
    env: SealerEnv,
) -> None:
    """``Type=notify``: READY=1 once it runs, WATCHDOG=1 pings, STOPPING=1 on SIGTERM, exit 0."""
    env.create_key()
    address = env.root / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(address))
    listener.setblocking(False)
    got: list[str] = []

    async def received(*wanted: str) -> bool:
        while True:
            try:
                got.append(listener.recv(1024).decode())
            except BlockingIOError:
                return all(w in got for w in wanted)

    environment = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
    environment.update(NOTIFY_SOCKET=str(address), WATCHDOG_USEC="200000")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asterisk_recorder", "sealer", "--config", str(write_config(env)),
        env=environment, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: received("READY=1", "WATCHDOG=1"), "READY=1 and WATCHDOG=1")
        assert got.index("READY=1") < got.index("WATCHDOG=1")
        await stop(process)
        await wait_for(lambda: received("STOPPING=1"), "STOPPING=1", limit=5)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        listener.close()
