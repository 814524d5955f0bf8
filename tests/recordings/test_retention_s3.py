"""Retention and the S3 store together: disposal deletes uploaded recordings from the bucket,
and a locking store locks each object exactly until the ledger's ``retain_until``.

A real moto S3 server, the real sealer uploading, real PostgreSQL, the CLI through ``main``.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest
from retention_helpers import DAY, all_facts, cli, config_file
from sealer_helpers import SealerEnv
from store_helpers import MotoS3

from asterisk_recorder.flow.decision import PartyRecord
from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.sealer import Sealer
from asterisk_recorder.recordings.storage import S3Store
from asterisk_recorder.recordings.wav import tone_pcm, write_wav


def _month(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m")


async def _sealed_into(
    env: SealerEnv, store: S3Store, numbers: list[str], age_days: float
) -> list[str]:
    """One decision per number, closed ``age_days`` ago, sealed and uploaded by the real sealer."""
    closed = time.time() - age_days * DAY
    keys = env.key_store()
    if ("standard", _month(closed)) not in {(i.retention_class, i.month) for i in keys.list()}:
        keys.create("standard", _month(closed))
    ids = []
    for number in numbers:
        parties = (PartyRecord("caller", number, "US-NY", "US-NY", Mode.OPT_IN),)
        made, path = await env.decision(caller_number=number, parties=parties)
        write_wav(path, tone_pcm(0.5))
        os.utime(path, (closed, closed))
        ids.append(made.decision_id)
    async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="sealer:test") as ledger:
        catalog = Catalog(env.dsn)
        sealer = Sealer(env.settings(retention=("standard=30d",)), env.paths, ledger, catalog,
                        actor="sealer:test", store=store)
        sealer.prepare()
        try:
            await sealer.scan()
        finally:
            await catalog.close()
    return ids


async def test_dispose_deletes_every_version_from_the_bucket_and_destroys_the_key(
    env: SealerEnv, moto: MotoS3, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two uploaded recordings past retention: gone from the bucket (all versions), each between
    recording.disposing and recording.disposed naming its s3:// location; the key destroyed."""
    bucket = moto.bucket("rec-dispose", lock=False)
    store = S3Store(bucket, prefix="rec", endpoint_url=moto.endpoint, region="us-east-1")
    ids = await _sealed_into(env, store, ["+12125550101", "+12125550102"], age_days=100)
    config = config_file(env)
    with config.open("a") as text:
        text.write(f'store = "s3://{bucket}/rec"\nstore_s3_endpoint = "{moto.endpoint}"\n'
                   'store_s3_region = "us-east-1"\n')
    before = moto.client().list_object_versions(Bucket=bucket).get("Versions", [])

    code = await cli("recording", "dispose", "--config", str(config),
                     "--private-keys", str(env.private_dir))
    out = capsys.readouterr().out
    after = moto.client().list_object_versions(Bucket=bucket)
    facts = await all_facts(env.dsn)
    opened = await cli("recording", "open", ids[0], "--config", str(config), "--out",
                       str(env.root / "x.wav"), "--private-keys", str(env.private_dir),
                       "--reason", "after disposal")
    err = capsys.readouterr().err

    assert 2 == len(before)
    assert 0 == code, out
    assert ([], []) == (after.get("Versions", []), after.get("DeleteMarkers", []))
    disposed = [f for f in facts if f["kind"] == "recording.disposed"]
    assert sorted(ids) == sorted(f["decision_id"] for f in disposed)
    assert all(f["payload"]["location"].startswith(f"s3://{bucket}/rec/") for f in disposed)
    assert any(f["kind"] == "recording.key_destroyed" for f in facts)
    assert 1 == opened
    assert f"recording {ids[0]} was disposed on " in err


async def test_a_locking_store_locks_each_object_until_the_ledgers_retain_until(
    env: SealerEnv, moto: MotoS3
) -> None:
    """With Object Lock days set, the COMPLIANCE lock ends exactly at the recording's
    retain_until in recording.sealed (30 days after its close), not after the fixed days."""
    bucket = moto.bucket("rec-locked")
    store = S3Store(bucket, prefix="rec", endpoint_url=moto.endpoint, region="us-east-1",
                    object_lock_days=3650)
    [decision_id] = await _sealed_into(env, store, ["+12125550103"], age_days=1)
    facts = await all_facts(env.dsn)
    sealed = next(f for f in facts if f["kind"] == "recording.sealed")
    stored = next(f for f in facts if f["kind"] == "recording.stored")
    key = stored["payload"]["location"].split("/", 3)[3]

    head = moto.client().head_object(Bucket=bucket, Key=key)

    assert decision_id == stored["decision_id"]
    assert "COMPLIANCE" == head["ObjectLockMode"]
    locked_until = head["ObjectLockRetainUntilDate"].timestamp()
    assert abs(locked_until - sealed["payload"]["retain_until"]) < 1.0
    assert locked_until < time.time() + 31 * DAY  # not the store's 3650 days


async def test_redacting_an_uploaded_recording_uploads_the_new_version_and_deletes_the_old(
    env: SealerEnv, moto: MotoS3, capsys: pytest.CaptureFixture[str]
) -> None:
    """The redacted version goes to the same bucket (recording.stored naming its digest), the
    old object loses every version, and ``recording open`` reads the new one from the bucket."""
    bucket = moto.bucket("rec-redact", lock=False)
    store = S3Store(bucket, prefix="rec", endpoint_url=moto.endpoint, region="us-east-1")
    [decision_id] = await _sealed_into(env, store, ["+12125550101"], age_days=1)
    config = config_file(env)
    with config.open("a") as text:
        text.write(f'store = "s3://{bucket}/rec"\nstore_s3_endpoint = "{moto.endpoint}"\n'
                   'store_s3_region = "us-east-1"\n')
    before = {v["Key"] for v in moto.client().list_object_versions(Bucket=bucket)["Versions"]}

    code = await cli("recording", "redact", decision_id, "--config", str(config),
                     "--private-keys", str(env.private_dir), "--confirm", decision_id,
                     "--from", "0.1", "--to", "0.3", "--reason", "card number")
    err = capsys.readouterr().err
    assert code == 0, err
    versions = moto.client().list_object_versions(Bucket=bucket).get("Versions", [])
    after = {v["Key"] for v in versions}
    facts = [f for f in await all_facts(env.dsn) if f["decision_id"] == decision_id]
    stored = [f["payload"] for f in facts if f["kind"] == "recording.stored"]
    sealed = [f["payload"] for f in facts if f["kind"] == "recording.sealed"]
    assert len(stored) == 2
    assert len(sealed) == 2
    assert stored[-1]["sealed_sha256"] == sealed[-1]["sealed_sha256"]  # type: ignore[index]
    assert not before & after  # the old object is gone, every version of it
    assert len(after) == 1
    assert next(iter(after)).endswith(".r1.arrec")
    assert not list(env.paths.sealed.rglob("*.arrec"))  # nothing left on the local disk
    out = env.root / "after.wav"
    assert await cli("recording", "open", decision_id, "--config", str(config), "--out",
                     str(out), "--private-keys", str(env.private_dir), "--reason", "check") == 0
    pcm = out.read_bytes()[44:]
    assert pcm[int(0.1 * 8000) * 2:int(0.3 * 8000) * 2] == bytes(int(0.2 * 8000) * 2)
    assert any(pcm[:int(0.1 * 8000) * 2])
