"""Sealed recordings in an S3-compatible store: a real moto server, real files, real PostgreSQL.

The ``S3Store`` puts each envelope once (``If-None-Match``), verifies it by HEAD, reads it back
with ranged GETs (a byte range fetches only its chunks), keeps Object Lock COMPLIANCE dates and
refuses to delete a locked object. The sealer seals locally, uploads, writes
``recording.stored`` and only then removes its local copy; with the server stopped the sealed
file stays local, is retried with backoff and shows on /metrics and /readyz. ``recording
verify ID`` and ``recording open ID`` read a stored recording as they read a local one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sealer_helpers import FIXED_KEY, SealerEnv, facts_of, month_now
from store_helpers import MotoS3, free_port

from asterisk_recorder.cli import main
from asterisk_recorder.errors import StoreError, StoreLocked, StoreMissing, StoreUnavailable
from asterisk_recorder.ledger.store import Ledger
from asterisk_recorder.recordings.catalog import Catalog
from asterisk_recorder.recordings.envelope import (
    CHUNK_SIZE,
    TAG_BYTES,
    decrypt_range,
    read_header,
    seal,
    verify,
)
from asterisk_recorder.recordings.sealer import Sealer, sealed_path_for
from asterisk_recorder.recordings.storage import (
    LocalStore,
    RangeReader,
    S3Store,
    SealedStore,
    stores_from_settings,
)
from asterisk_recorder.recordings.wav import tone_pcm, write_wav
from asterisk_recorder.settings import RecordingsSettings


class Clock:
    """A settable epoch clock (starts now)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def sealed_file(
    env: SealerEnv, seconds: float = 10.0, name: str | None = None
) -> tuple[Path, bytes]:
    """A sealed envelope of ``seconds`` of tone in ``<root>/loose``, and its plaintext."""
    if not list(env.paths.keys.glob("*.json")):
        env.key_store().create("standard", month_now())
    kek = env.key_store().current("standard", month_now())
    plain = env.root / "plain.wav"
    write_wav(plain, tone_pcm(seconds))
    target = env.root / "loose" / (name or f"{uuid.uuid4()}.wav.arrec")
    target.parent.mkdir(exist_ok=True)
    with open(plain, "rb") as src, open(target, "wb") as dst:
        seal(src, dst, recording_id=target.name.split(".")[0], kek=kek)
    return target, plain.read_bytes()


@contextlib.asynccontextmanager
async def sealer_with(
    env: SealerEnv, store: SealedStore, clock: Callable[[], float], **settings: Any
) -> AsyncIterator[Sealer]:
    """A sealer on ``env`` that puts its sealed files into ``store``."""
    catalog = Catalog(env.dsn)
    async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="sealer:test") as ledger:
        sealer = Sealer(env.settings(**settings), env.paths, ledger, catalog,
                        actor="sealer:test", store=store, clock=clock)
        sealer.prepare()
        try:
            yield sealer
        finally:
            await catalog.close()


def versions(moto: MotoS3, bucket: str) -> list[dict[str, Any]]:
    return list(moto.client().list_object_versions(Bucket=bucket).get("Versions", []))


# -- the store itself ------------------------------------------------------------------------


def test_s3_store_puts_once_under_its_prefix_and_verifies_by_head(
    env: SealerEnv, moto: MotoS3
) -> None:
    """Location s3://bucket/prefix/YYYY/MM/DD/<name>; the same bytes again are fine (one
    version); other bytes at that location are refused and the first object is kept."""
    bucket = moto.bucket("rec-once")
    store = S3Store(bucket, prefix="pbx-a", endpoint_url=moto.endpoint, region="us-east-1")
    local, _plain = sealed_file(env)
    relative = f"2026/12/04/{local.name}"

    stored = store.put(local, relative)
    again = store.put(local, relative)
    other, _ = sealed_file(env, 2.0, name="other.wav.arrec")
    with pytest.raises(StoreError, match="another object at this location"):
        store.put(other, relative)

    data = local.read_bytes()
    assert stored.location == f"s3://{bucket}/pbx-a/{relative}" == again.location
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert len(versions(moto, bucket)) == 1
    body = moto.client().get_object(Bucket=bucket, Key=f"pbx-a/{relative}")["Body"].read()
    assert body == data
    assert store.exists(stored.location)
    assert not store.exists(stored.location + ".x")


def test_a_byte_range_fetches_only_the_header_and_the_chunks_it_covers(
    env: SealerEnv, moto: MotoS3
) -> None:
    """decrypt_range on an S3 object: one GET for the header, then exactly the covered chunks
    (counted by the reader that makes the ranged GETs); the bytes match the plaintext."""
    bucket = moto.bucket("rec-range", lock=False)
    store = S3Store(bucket, endpoint_url=moto.endpoint)
    local, plain = sealed_file(env, 60.0)  # 960 kB of PCM: 15 chunks
    location = store.put(local, "2026/12/04/" + local.name).location
    boundary = 13 * CHUNK_SIZE  # one audio second near the end, across chunks 12 and 13
    start, end = boundary - 8_000, boundary + 8_000

    with store.open(location) as src, open(local, "rb") as mine:
        got = decrypt_range(src, env.key_store().opener(), start, end)
        header = read_header(mine)
        assert isinstance(src, RangeReader)
        fetches = list(src.fetches)
    first, last = start // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
    chunk_bytes = (last - first + 1) * (CHUNK_SIZE + TAG_BYTES)
    assert (first, last) == (12, 13)

    assert got == plain[start:end]
    assert fetches[0] == (0, 4096)
    assert fetches[1:] == [
        (header.chunk_offset(i), header.chunk_offset(i) + CHUNK_SIZE + TAG_BYTES)
        for i in range(first, last + 1)
    ]
    assert sum(b - a for a, b in fetches) == 4096 + chunk_bytes < local.stat().st_size // 5


def test_verify_of_an_s3_object_streams_it_in_few_large_gets(env: SealerEnv, moto: MotoS3) -> None:
    """A whole-file verify with the key reads ahead: far fewer GETs than chunks."""
    bucket = moto.bucket("rec-verify", lock=False)
    store = S3Store(bucket, endpoint_url=moto.endpoint)
    local, _plain = sealed_file(env, 120.0)  # 30 chunks
    location = store.put(local, local.name).location

    with store.open(location) as src, open(local, "rb") as mine:
        result = verify(src, opener=env.key_store().opener())
        expected = verify(mine)
        assert isinstance(src, RangeReader)
        gets = len(src.fetches)

    assert result.sealed_sha256 == expected.sealed_sha256
    assert result.tags_checked
    assert result.chunks == 30
    assert gets < 15


def test_object_lock_compliance_keeps_an_object_until_its_date(
    env: SealerEnv, moto: MotoS3
) -> None:
    """retain_until from the caller: COMPLIANCE mode with that date; delete refuses with the
    date and leaves it in place; after the date (a later clock) it deletes every version."""
    bucket = moto.bucket("rec-locked")
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    store = S3Store(bucket, endpoint_url=moto.endpoint)
    local, _plain = sealed_file(env)

    stored = store.put(local, local.name, retain_until=until)
    with pytest.raises(StoreLocked, match=f"until {until:%Y-%m-%d %H:%M:%S} UTC") as refused:
        store.delete(stored.location)

    assert stored.lock_mode == "COMPLIANCE"
    assert stored.retain_until == until
    assert refused.value.retain_until == until
    assert store.exists(stored.location)
    assert len(versions(moto, bucket)) == 1


def test_lock_days_default_and_an_unlocked_delete_removes_every_version(
    env: SealerEnv, moto: MotoS3
) -> None:
    """object_lock_days gives a put without a date its lock; an unlocked object in a
    versioned (Object Lock) bucket is deleted with all its versions, not just hidden."""
    bucket = moto.bucket("rec-days")
    locked = S3Store(bucket, endpoint_url=moto.endpoint, object_lock_days=30)
    plain_store = S3Store(bucket, endpoint_url=moto.endpoint)
    first, _ = sealed_file(env, name="first.wav.arrec")
    second, _ = sealed_file(env, name="second.wav.arrec")

    kept = locked.put(first, "a/" + first.name)
    gone = plain_store.put(second, "b/" + second.name)
    deleted = plain_store.delete(gone.location)
    again = plain_store.delete(gone.location)

    assert kept.retain_until is not None
    assert kept.retain_until > datetime.now(UTC) + timedelta(days=29)
    assert deleted
    assert not again
    keys = [v["Key"] for v in versions(moto, bucket)]
    assert keys == ["a/first.wav.arrec"]
    with pytest.raises(StoreMissing), plain_store.open(gone.location):
        pass


def test_an_unreachable_store_is_store_unavailable(env: SealerEnv, aws_env: dict[str, str]) -> None:
    """Nothing listening: StoreUnavailable naming the store, no credential in the message."""
    store = S3Store("rec-nowhere", endpoint_url=f"http://127.0.0.1:{free_port()}")
    local, _ = sealed_file(env)

    with pytest.raises(StoreUnavailable, match="s3:rec-nowhere/: PUT") as raised:
        store.put(local, local.name)

    assert "testing" not in str(raised.value)


@pytest.mark.parametrize("location", ["../escape.arrec", "/etc/passwd", "a/../../b", "",
                                      "s3://bucket/x.arrec"])
def test_the_local_store_never_leaves_the_sealed_directory(tmp_path: Path, location: str) -> None:
    """Locations are relative to sealed_dir: '..', absolute paths and s3:// are refused."""
    store = LocalStore(tmp_path / "sealed")

    with pytest.raises(StoreError):
        store.path_of(location)


def test_the_local_store_refuses_a_link_out_of_the_sealed_directory(tmp_path: Path) -> None:
    """A symlink below sealed_dir that points outside is refused, not followed."""
    (tmp_path / "sealed").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "sealed" / "2026").symlink_to(tmp_path / "outside")

    with pytest.raises(StoreError, match="leads outside"):
        LocalStore(tmp_path / "sealed").path_of("2026/x.arrec")


def test_stores_from_settings_reach_older_local_locations_and_other_buckets(tmp_path: Path) -> None:
    """recordings.store picks the primary; a local location still reads from sealed_dir."""
    settings = RecordingsSettings(sealed_dir=str(tmp_path), store="s3://rec-main/pbx/",
                                  store_s3_endpoint="http://127.0.0.1:9", store_object_lock_days=7)
    stores = stores_from_settings(settings)

    assert isinstance(stores.primary, S3Store)
    assert stores.primary.name == "s3:rec-main/pbx/"
    assert stores.primary.object_lock_days == 7
    assert stores.for_location("2026/12/04/x.arrec") is stores.local
    other = stores.for_location("s3://rec-old/x/y.arrec")
    assert isinstance(other, S3Store)
    assert other.bucket == "rec-old"


# -- the sealer with an S3 store ---------------------------------------------------------------


async def test_the_sealer_uploads_records_where_and_then_removes_the_local_copy(
    env: SealerEnv, moto: MotoS3
) -> None:
    """closed, sealed, stored (location, digests) in that order; the object is the envelope
    the ledger describes; the sealed directory is empty; the metrics count one upload."""
    env.create_key()
    bucket = moto.bucket("rec-sealer")
    store = S3Store(bucket, prefix="pbx-a/", endpoint_url=moto.endpoint)
    decision, path = await env.decision()
    write_wav(path, tone_pcm(6.0))
    local = sealed_path_for(env.paths, path)

    async with sealer_with(env, store, Clock()) as sealer:
        await sealer.scan()
        exposition = sealer.metrics.exposition()
        ready = sealer.readiness()

    facts = await facts_of(env.dsn, decision.decision_id)
    kinds = [k for k, _p in facts]
    sealed, stored = facts[1][1], facts[2][1]
    relative = local.relative_to(env.paths.sealed).as_posix()
    assert kinds == ["recording.closed", "recording.sealed", "recording.stored"]
    assert stored["location"] == f"s3://{bucket}/pbx-a/{relative}"
    assert stored["sealed_sha256"] == sealed["sealed_sha256"]
    assert stored["file"] == sealed["file"] == relative
    assert not local.exists()
    assert not path.exists()
    assert [p for p in env.paths.sealed.rglob("*") if p.is_file()] == []
    with store.open(stored["location"]) as src:
        assert verify(src, opener=env.key_store().opener()).sealed_sha256 == sealed[
            "sealed_sha256"]
    assert "asterisk_recorder_recordings_uploaded_total 1" in exposition
    assert "asterisk_recorder_recordings_upload_pending 0" in exposition
    assert ready.ready


async def test_with_the_store_down_nothing_is_lost_and_it_is_uploaded_once_when_back(
    env: SealerEnv, moto: MotoS3
) -> None:
    """Server stopped: the sealed file stays local, failures counted, /readyz fails after
    max_lag, retried with backoff; server started again: uploaded once, each fact once."""
    env.create_key()
    bucket = moto.bucket("rec-down")
    store = S3Store(bucket, endpoint_url=moto.endpoint)
    decision, path = await env.decision()
    write_wav(path, tone_pcm(6.0))
    local = sealed_path_for(env.paths, path)
    clock = Clock()
    moto.stop()

    async with sealer_with(env, store, clock, max_lag=60.0) as sealer:
        await sealer.scan()
        early = sealer.readiness()
        clock.now += 0.5
        await sealer.upload_due()  # backoff: not due yet, no attempt
        down = sealer.metrics.exposition()
        clock.now += 120.0
        await sealer.upload_due()
        late = sealer.readiness()
        kinds_while_down = [k for k, _p in await facts_of(env.dsn, decision.decision_id)]
        kept = local.exists()
        moto.start()
        clock.now += 600.0
        await sealer.upload_due()
        await sealer.scan()  # a later scan finds nothing more to do
        back = sealer.metrics.exposition()
        ready = sealer.readiness()

    assert kept
    assert kinds_while_down == ["recording.closed", "recording.sealed"]
    assert early.ready
    assert 'asterisk_recorder_recordings_upload_failures_total{cause="unavailable"} 1' in down
    assert "asterisk_recorder_recordings_upload_pending 1" in down
    assert not late.ready
    store_check = next(c for c in late.checks if c.name == "store")
    assert "1 sealed file(s) waiting for s3:rec-down/" in store_check.detail
    assert "object store unavailable" in store_check.detail
    assert 'asterisk_recorder_recordings_upload_failures_total{cause="unavailable"} 2' in back
    assert "asterisk_recorder_recordings_uploaded_total 1" in back
    assert "asterisk_recorder_recordings_upload_pending 0" in back
    assert ready.ready
    kinds = [k for k, _p in await facts_of(env.dsn, decision.decision_id)]
    assert kinds == ["recording.closed", "recording.sealed", "recording.stored"]
    assert len(versions(moto, bucket)) == 1
    assert not local.exists()


async def test_a_sealer_given_a_retention_date_locks_the_object_until_then(
    env: SealerEnv, moto: MotoS3
) -> None:
    """The retain_until hook (the retention policy's) sets the COMPLIANCE date, recorded in
    recording.stored."""
    env.create_key()
    bucket = moto.bucket("rec-retain")
    until = (datetime.now(UTC) + timedelta(days=400)).replace(microsecond=0)
    asked: list[str] = []

    def retain(decision_id: str, sealed_at: float) -> datetime:
        asked.append(decision_id)
        return until

    decision, path = await env.decision()
    write_wav(path, tone_pcm(2.0))
    catalog = Catalog(env.dsn)
    async with Ledger.open(env.dsn, env.ledger_settings(), instance_id="sealer:test") as ledger:
        sealer = Sealer(env.settings(), env.paths, ledger, catalog, actor="sealer:test",
                        store=S3Store(bucket, endpoint_url=moto.endpoint), retain_until=retain)
        sealer.prepare()
        await sealer.scan()
        await catalog.close()

    stored = dict(await facts_of(env.dsn, decision.decision_id))["recording.stored"]
    assert asked == [decision.decision_id]
    assert stored["retain_until"] == until.isoformat()
    assert stored["lock_mode"] == "COMPLIANCE"
    with pytest.raises(StoreLocked):
        S3Store(bucket, endpoint_url=moto.endpoint).delete(stored["location"])


# -- verify and open a stored recording ------------------------------------------------------------


def _config(env: SealerEnv, moto: MotoS3, bucket: str) -> Path:
    path = env.root / "recorder.toml"
    path.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{env.dsn}"\n'
        f'[ledger]\nspool_dir = "{env.root / "spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        f'[recording]\ndirectory = "{env.paths.recordings}"\n'
        f'[recordings]\nsealed_dir = "{env.paths.sealed}"\n'
        f'quarantine_dir = "{env.paths.quarantine}"\nkey_dir = "{env.paths.keys}"\n'
        f'store = "s3://{bucket}/rec"\nstore_s3_endpoint = "{moto.endpoint}"\n'
        'store_s3_region = "us-east-1"\n'
    )
    return path


async def test_recording_verify_and_open_by_id_read_the_recording_from_s3(
    env: SealerEnv, moto: MotoS3, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify ID checks the S3 object against the ledger and the chain; open ID writes the
    plaintext and records the access; the local sealed directory holds nothing."""
    env.create_key()
    bucket = moto.bucket("rec-cli")
    decision, path = await env.decision()
    write_wav(path, tone_pcm(10.0))
    plain = path.read_bytes()
    async with sealer_with(env, S3Store(bucket, prefix="rec", endpoint_url=moto.endpoint),
                           Clock()) as sealer:
        await sealer.scan()
    config = str(_config(env, moto, bucket))
    out = env.root / "opened.wav"

    verified = await asyncio.to_thread(main, [
        "recording", "verify", decision.decision_id, "--config", config,
        "--private-keys", str(env.private_dir)])
    printed = capsys.readouterr().out
    opened = await asyncio.to_thread(main, [
        "recording", "open", decision.decision_id, "--config", config, "--out", str(out),
        "--private-keys", str(env.private_dir), "--reason", "complaint 4711"])

    assert verified == 0
    assert opened == 0
    assert f"OK s3://{bucket}/rec/" in printed
    assert "hash chain intact" in printed
    assert out.read_bytes() == plain
    kinds = [k for k, _p in await facts_of(env.dsn, decision.decision_id)]
    assert kinds[-1] == "recording.accessed"
    assert "recording.stored" in kinds
    assert [p for p in env.paths.sealed.rglob("*") if p.is_file()] == []


async def test_verify_by_id_names_a_flipped_byte_in_the_s3_object(
    env: SealerEnv, moto: MotoS3, capsys: pytest.CaptureFixture[str]
) -> None:
    """An object altered in the bucket fails verify ID with its chunk named (exit 1)."""
    env.create_key()
    bucket = moto.bucket("rec-tamper", lock=False)
    decision, path = await env.decision()
    write_wav(path, tone_pcm(10.0))
    async with sealer_with(env, S3Store(bucket, prefix="rec", endpoint_url=moto.endpoint),
                           Clock()) as sealer:
        await sealer.scan()
    stored = dict(await facts_of(env.dsn, decision.decision_id))["recording.stored"]
    key = stored["location"].split("/", 3)[3]
    client = moto.client()
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 1
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))

    code = await asyncio.to_thread(main, [
        "recording", "verify", decision.decision_id, "--config",
        str(_config(env, moto, bucket))])

    assert code == 1
    assert "chunk 1 does not match its digest" in capsys.readouterr().err


# -- SIGKILL between the upload, its fact and the local delete ---------------------------------


@pytest.mark.parametrize("step", ["uploaded", "stored"])
async def test_a_sealer_killed_between_upload_fact_and_local_delete_completes_on_restart(
    env: SealerEnv, moto: MotoS3, step: str
) -> None:
    """The real sealer process SIGKILLed after the PUT (no fact yet) or after
    recording.stored (local copy still there): the restart finishes it; one object version,
    each fact once, no local copy, and the object matches the ledger."""
    from test_sealer_crash import killed, start, stop, wait_for, write_config

    env.create_key()
    bucket = moto.bucket(f"rec-crash-{step}")
    decision, path = await env.decision()
    write_wav(path, tone_pcm(6.0))
    config = write_config(env)
    with open(config, "a", encoding="ascii") as extra:
        extra.write(f'store = "s3://{bucket}/rec"\nstore_s3_endpoint = "{moto.endpoint}"\n'
                    'store_s3_region = "us-east-1"\n')
    local = sealed_path_for(env.paths, path)

    await killed(await start(config, crash=step))
    left_local = local.exists()
    process = await start(config)
    try:
        async def stored() -> bool:
            kinds = [k for k, _p in await facts_of(env.dsn, decision.decision_id)]
            return "recording.stored" in kinds and not local.exists()
        await wait_for(stored, f"the upload after a kill at {step}")
    finally:
        await stop(process)

    facts = await facts_of(env.dsn, decision.decision_id)
    assert left_local
    assert [k for k, _p in facts] == ["recording.closed", "recording.sealed", "recording.stored"]
    assert len(versions(moto, bucket)) == 1
    assert [p for p in env.paths.sealed.rglob("*") if p.is_file()] == []
    sealed, where = facts[1][1], facts[2][1]
    with S3Store(bucket, endpoint_url=moto.endpoint).open(where["location"]) as src:
        assert verify(src, opener=env.key_store().opener()).sealed_sha256 == sealed[
            "sealed_sha256"]


# -- settings ----------------------------------------------------------------------------------


def test_an_s3_store_with_object_lock_days_loads_and_a_local_one_refuses_lock_days(
    tmp_path: Path,
) -> None:
    """store = s3://... with store_object_lock_days loads; the same days on a local store is
    refused naming the key (a directory has no Object Lock)."""
    from asterisk_recorder import config
    from asterisk_recorder.errors import ConfigError

    good = tmp_path / "good.toml"
    good.write_text('[ari]\nenabled = false\n[recordings]\nstore = "s3://rec-bucket/pbx-a"\n'
                    'store_s3_endpoint = "https://s3.eu-west-1.amazonaws.com"\n'
                    'store_s3_region = "eu-west-1"\nstore_object_lock_days = 2555\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[ari]\nenabled = false\n[recordings]\nstore_object_lock_days = 30\n')

    settings = config.load(good, env={}, require_ari_password=False)
    with pytest.raises(ConfigError) as refused:
        config.load(bad, env={}, require_ari_password=False)

    assert settings.recordings.store == "s3://rec-bucket/pbx-a"
    assert settings.recordings.store_object_lock_days == 2555
    assert [p.split(":", 1)[0] for p in refused.value.problems] == [
        "recordings.store_object_lock_days"]
    assert "needs an s3:// store" in refused.value.problems[0]


def test_delete_in_a_bucket_without_versioning_removes_the_object(
    env: SealerEnv, moto: MotoS3
) -> None:
    """A plain bucket (no Object Lock, no versioning): delete removes the object; a second
    delete says it was not there."""
    bucket = moto.bucket("rec-plain", lock=False)
    store = S3Store(bucket, endpoint_url=moto.endpoint)
    local, _ = sealed_file(env)
    location = store.put(local, local.name).location

    assert store.delete(location) is True
    assert store.delete(location) is False
    assert moto.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0
