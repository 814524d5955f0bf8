"""The sealer's own /metrics and /readyz, served by ``run_sealer`` over real HTTP."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

import aiohttp
import pytest
from sealer_helpers import SealerEnv, month_now

from asterisk_recorder.flow.settings import FlowSettings, RecordingSettings
from asterisk_recorder.ops.http import OpsServer
from asterisk_recorder.recordings.runner import run_sealer
from asterisk_recorder.recordings.sealer import Sealer
from asterisk_recorder.recordings.wav import tone_pcm, write_wav
from asterisk_recorder.settings import HttpSettings, Settings


def settings_for(env: SealerEnv, **recordings: object) -> Settings:
    return Settings(
        instance_id="sealer-ops",
        ledger=env.ledger_settings(),
        flow=FlowSettings(recording=RecordingSettings(directory=str(env.paths.recordings))),
        http=HttpSettings(enabled=True, host="127.0.0.1", port=8090),
        recordings=replace(env.settings(scan_interval=0.1, **recordings), http_port=0),
    )


async def serve_until(env: SealerEnv, settings: Settings, done: object) -> tuple[str, str, int]:
    """Run the sealer until ``done(sealer)`` holds; return /metrics, /readyz body and status."""
    stop = asyncio.Event()
    started: list[tuple[Sealer, OpsServer]] = []
    task = asyncio.create_task(
        run_sealer(settings, env.dsn, stop, on_ready=lambda s, o: started.append((s, o))))
    try:
        for _ in range(2000):
            if started and done(started[0][0]):  # type: ignore[operator]
                break
            if task.done():
                await task
            await asyncio.sleep(0.01)
        url = started[0][1].url
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/metrics") as response:
                metrics = await response.text()
            async with http.get(f"{url}/readyz") as response:
                ready, status = await response.text(), response.status
    finally:
        stop.set()
        await task
    return metrics, ready, status


async def test_metrics_count_what_the_sealer_did_and_readyz_passes(env: SealerEnv) -> None:
    """One sealed recording shows in the counters, the bytes and the lag; /readyz is 200."""
    env.create_key()
    _decision, path = await env.decision()
    write_wav(path, tone_pcm(2.0))
    metrics, ready, status = await serve_until(
        env, settings_for(env), lambda s: s.metrics.sealed.value() == 1)
    assert "asterisk_recorder_recordings_closed_total 1" in metrics
    assert "asterisk_recorder_recordings_sealed_total 1" in metrics
    assert f"asterisk_recorder_recordings_sealed_bytes_total {44 + 32000}" in metrics
    assert "asterisk_recorder_recordings_seal_lag_seconds_count 1" in metrics
    assert status == 200, ready


async def test_readyz_fails_when_the_sealer_is_far_behind(env: SealerEnv) -> None:
    """No key for an hour-old closed file: 503, the seal_lag check failing with the cause."""
    _decision, path = await env.decision()
    write_wav(path, tone_pcm(1.0))
    old = time.time() - 3600
    os.utime(path, (old, old))
    metrics, ready, status = await serve_until(
        env, settings_for(env, max_lag=60.0),
        lambda s: s.metrics.failures.value(cause="key") >= 1)
    assert status == 503
    assert '"seal_lag"' in ready
    assert "no key" in ready
    assert 'asterisk_recorder_recordings_seal_failures_total{cause="key"}' in metrics
    assert path.exists()


def _next_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:])
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


async def test_metrics_count_the_key_buckets_and_say_whether_next_month_can_be_sealed(
    env: SealerEnv,
) -> None:
    """Keys per {class, month, state}; key_ready is 1 for this month, 0 for next month until
    its key is created, then 1 at the next scan."""
    month = month_now()
    store = env.key_store()
    store.create("standard", month)
    store.rotate("standard", month)  # one retired, one active
    store.create("legal_hold", "2031-01")
    metrics, _ready, _status = await serve_until(env, settings_for(env), lambda s: s.scans >= 1)
    labels = f'retention_class="standard",month="{month}"'
    assert f'asterisk_recorder_recordings_keys{{{labels},state="active"}} 1' in metrics
    assert f'asterisk_recorder_recordings_keys{{{labels},state="retired"}} 1' in metrics
    assert ('asterisk_recorder_recordings_keys{retention_class="legal_hold",month="2031-01",'
            'state="active"} 1') in metrics
    assert f"asterisk_recorder_recordings_key_ready{{{labels}}} 1" in metrics
    following = f'retention_class="standard",month="{_next_month(month)}"'
    assert f"asterisk_recorder_recordings_key_ready{{{following}}} 0" in metrics

    store.create("standard", _next_month(month))
    metrics, _ready, _status = await serve_until(env, settings_for(env), lambda s: s.scans >= 1)
    assert f"asterisk_recorder_recordings_key_ready{{{following}}} 1" in metrics


async def test_metrics_say_when_the_active_keys_rotation_is_due_per_cryptoperiod(
    env: SealerEnv,
) -> None:
    """With recordings.kek_cryptoperiod = 7d, a key created 10 days ago is shown due 3 days
    ago (its creation plus 7 days); with the default 1m it is due 21 days ahead."""
    created = time.time() - 10 * 86400
    info = env.key_store().create("standard", month_now(), now=created)
    labels = (f'retention_class="standard",month="{month_now()}",kek_id="{info.kek_id}"')

    def due(metrics: str) -> float:
        prefix = f"asterisk_recorder_recordings_key_rotation_due{{{labels}}} "
        [line] = [x for x in metrics.splitlines() if x.startswith(prefix)]
        return float(line.removeprefix(prefix))

    weekly, _ready, _status = await serve_until(
        env, settings_for(env, kek_cryptoperiod="7d"), lambda s: s.scans >= 1)
    monthly, _ready, _status = await serve_until(env, settings_for(env), lambda s: s.scans >= 1)

    assert due(weekly) == pytest.approx(created + 7 * 86400)
    assert due(monthly) == pytest.approx(created + 31 * 86400)
