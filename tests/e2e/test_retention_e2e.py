"""End to end against a real Asterisk 22: a recording's whole life, into object storage and out.

A real call is recorded by MixMonitor, sealed by the real ``asterisk-recorder sealer`` and
uploaded into an S3-compatible store (moto in server mode, on loopback); it is put on legal
hold, retention passes (a test clock: ``recordings.disposal._clock``, the only thing faked),
disposal keeps it while held, the hold is released, disposal deletes it from the bucket and
destroys its key bucket, and ``recording open`` then says when and by whom - for the
recording by its id, and for a backup copy of the object taken before.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from conftest import SealerSetup, controller_config
from e2e_harness import (
    AriTarget,
    CallerSim,
    RecorderProcess,
    free_port,
    recording_facts,
    run_cli,
)

from asterisk_recorder.cli import main
from asterisk_recorder.recordings import disposal

pytestmark = pytest.mark.e2e

boto3 = pytest.importorskip("boto3", reason="boto3 and moto[server] are in the test extra")
moto_server = pytest.importorskip("moto.server")

DAY = 86400.0


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A moto S3 server on loopback and the AWS environment (credentials) that reaches it."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"), "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", env
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
async def s3_sealer(
    ari_target: AriTarget,
    pg_dsn: str,
    recordings_dir: Path,
    tmp_path: Path,
    recorder: RecorderProcess,
    s3: tuple[str, dict[str, str]],
) -> AsyncIterator[tuple[SealerSetup, str]]:
    """The real sealer, storing into bucket ``recordings`` of the moto server; 1-day retention."""
    endpoint, aws = s3
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="recordings"
    )
    public, private = tmp_path / "kek-public", tmp_path / "kek-private"
    sealed, quarantine = tmp_path / "sealed", tmp_path / "quarantine"
    http_port = free_port()
    extra = f"""
[recordings]
sealed_dir = "{sealed}"
quarantine_dir = "{quarantine}"
key_dir = "{public}"
retention_class = "standard"
retention = ["standard=1d"]
store = "s3://recordings/calls"
store_s3_endpoint = "{endpoint}"
store_s3_region = "us-east-1"
scan_interval = 1.0
settle_after = 2.0
orphan_after = 30.0
max_lag = 60.0
http_port = {http_port}
"""
    config = tmp_path / "sealer.toml"
    config.write_text(controller_config(
        ari_target, dsn=pg_dsn, recordings=recordings_dir, spool=tmp_path / "spool",
        http_port=free_port(), agi=False, extra=extra,
    ))
    month = datetime.now(UTC).strftime("%Y-%m")
    code, out, err = await run_cli(
        "recording", "keys", "create", "--public-keys", str(public), "--private-keys",
        str(private), "--class", "standard", "--month", month, "--config", str(config),
    )
    assert 0 == code, err
    [kek_id] = re.findall(r"key (\S+) for standard", out)
    process = RecorderProcess(config_file=config, log_file=tmp_path / "sealer.log",
                              http_port=http_port, command="sealer", env=aws)
    await process.start()
    try:
        yield SealerSetup(process, sealed, quarantine, public, private, kek_id), endpoint
    finally:
        code = await process.stop()
        assert 0 == code, f"sealer exited with {code}:\n{process.log_tail()}"


def _at(when: float) -> mock._patch[object]:
    """The disposal's clock at ``when`` (epoch seconds): retention passes, nothing else."""
    return mock.patch.object(disposal, "_clock", return_value=when)


def _cli_in_process(*args: str) -> tuple[int, str]:
    """``asterisk-recorder ARGS`` in this process (so the test clock applies), its output."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue() + err.getvalue()


async def test_recorded_stored_held_released_disposed_and_its_key_destroyed(
    recorder: RecorderProcess,
    s3_sealer: tuple[SealerSetup, str],
    caller: CallerSim,
    pg_dsn: str,
    tmp_path: Path,
) -> None:
    """A real call's recording goes into the bucket, survives disposal while on hold, is
    disposed of once released and past retention, and its key bucket is destroyed: opening it
    (or a backup copy) then fails naming the date and the actor, from the ledger."""
    sealer, endpoint = s3_sealer
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    config = str(sealer.process.config_file)
    call = await caller.originate("Local/announce@e2e-in")
    consent = await call.wait_user_event("E2EConsent", within=20)
    assert "record" == consent["Decision"], consent
    await asyncio.sleep(2.0)
    await call.hang_up()
    await call.wait_destroyed()
    decision_id = consent["DecisionId"]

    facts = await recording_facts(pg_dsn, decision_id, until="recording.stored", within=40)
    kinds = [kind for kind, _ in facts]
    assert ["recording.closed", "recording.sealed", "recording.stored"] == kinds
    stored = facts[2][1]
    key = stored["location"].removeprefix("s3://recordings/")
    backup = tmp_path / "backup.arrec"
    backup.write_bytes(client.get_object(Bucket="recordings", Key=key)["Body"].read())
    assert [] == [p for p in sealer.sealed.rglob("*") if p.is_file()]  # only in the bucket now
    retain_until = facts[1][1]["retain_until"]
    later = max(retain_until, time.time()) + 62 * DAY  # past retention, the month over

    code, out, err = await sealer.process.cli(
        "recording", "hold", "set", "--decision", decision_id, "--reason", "litigation 42"
    )
    assert 0 == code, err
    [hold_id] = re.findall(r"hold (\S+) placed", out)
    with _at(later):
        held_run = await asyncio.to_thread(
            _cli_in_process, "recording", "dispose", "--config", config,
            "--private-keys", str(sealer.private_keys),
        )
    assert 0 == held_run[0], held_run[1]
    assert "Contents" in client.list_objects_v2(Bucket="recordings")  # the hold kept it

    code, out, err = await sealer.process.cli(
        "recording", "hold", "release", hold_id, "--reason", "case closed"
    )
    assert 0 == code, err
    with _at(later):
        disposed_run = await asyncio.to_thread(
            _cli_in_process, "recording", "dispose", "--config", config,
            "--private-keys", str(sealer.private_keys),
        )
    assert 0 == disposed_run[0], disposed_run[1]
    assert f"key destroyed: {sealer.kek_id}" in disposed_run[1]
    versions = client.list_object_versions(Bucket="recordings")
    assert ([], []) == (versions.get("Versions", []), versions.get("DeleteMarkers", []))

    kinds = [kind for kind, _ in await recording_facts(pg_dsn, decision_id)]
    assert kinds[:3] == ["recording.closed", "recording.sealed", "recording.stored"]
    assert "recording.hold_placed" in kinds
    assert kinds[-2:] == ["recording.disposing", "recording.disposed"]

    code, _out, err = await sealer.process.cli(
        "recording", "open", decision_id, "--out", str(tmp_path / "x.wav"),
        "--private-keys", str(sealer.private_keys), "--reason", "after disposal",
    )
    assert 1 == code
    assert f"recording {decision_id} was disposed on " in err
    code, _out, err = await sealer.process.cli(
        "recording", "open", str(backup), "--out", str(tmp_path / "y.wav"),
        "--private-keys", str(sealer.private_keys), "--reason", "a restored backup",
    )
    assert 1 == code
    assert f"key {sealer.kek_id} destroyed on " in err
    assert "(retention)" in err

    code, out, err = await recorder.ledger("verify", "--json")
    assert 0 == code, err
    assert json.loads(out)["ok"] is True
