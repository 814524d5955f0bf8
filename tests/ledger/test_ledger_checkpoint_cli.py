"""The checkpoint commands as an operator and a third party run them, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_helpers import FIXED_KEY, make_decision

from asterisk_recorder.cli import main
from asterisk_recorder.ledger import Ledger
from asterisk_recorder.settings import LedgerSettings, Secret

NUMBER = "+12125550100"


def _config(workdir: Path, dsn: str, *extra: str) -> Path:
    path = workdir / "recorder.toml"
    (workdir / "recordings").mkdir(exist_ok=True)
    path.write_text(
        "[ari]\nenabled = false\n"
        f'[database]\ndsn = "{dsn}"\n'
        f'[ledger]\nspool_dir = "{workdir / "spool"}"\ndigest_key = "{FIXED_KEY}"\n'
        'checkpoint_origin = "recorder.test/ledger"\n'
        + "".join(line + "\n" for line in extra)
        + f'[recording]\ndirectory = "{workdir / "recordings"}"\n'
    )
    return path


def _store(dsn: str, workdir: Path, count: int) -> list[str]:
    settings = LedgerSettings(spool_dir=str(workdir / "spool"), digest_key=Secret(FIXED_KEY))
    ids = []

    async def run() -> None:
        async with Ledger.open(dsn, settings) as ledger:
            for _ in range(count):
                decision = make_decision()
                await ledger.store(decision)
                ids.append(decision.decision_id)

    with contextlib.redirect_stdout(io.StringIO()):
        asyncio.run(run())
    return ids


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_key_create_show_rotate(
    ledger_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """create makes a 0600 key and prints its verifier; rotate keeps the old one trusted."""
    config = str(_config(tmp_path, ledger_dsn))

    code, created, _ = _cli(capsys, "ledger", "checkpoint-key", "create", "--config", config)
    again = main(["ledger", "checkpoint-key", "create", "--config", config])
    shown = _cli(capsys, "ledger", "checkpoint-key", "show", "--config", config)[1]
    refused = main(["ledger", "checkpoint-key", "rotate", "--config", config])
    rotated = _cli(capsys, "ledger", "checkpoint-key", "rotate", "--yes", "--config", config)[1]
    key_file = tmp_path / "spool" / "checkpoint.key"

    verifier = created.split("verifier: ")[1].strip()
    assert (0, 1, 2) == (code, again, refused)
    assert verifier.startswith("recorder.test/ledger+")
    assert verifier in shown
    assert "PRIVATE" not in created + shown + rotated
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert verifier in (tmp_path / "spool" / "checkpoint.key.trusted").read_text()
    assert verifier not in rotated.split("verifier: ")[1]


def test_checkpoint_prove_and_check_receipt_with_no_database(
    ledger_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sign, push to a witness dir, prove a decision; a third party checks it with no config."""
    witness = tmp_path / "witness"
    config = str(_config(tmp_path, ledger_dsn, f'witnesses = ["{witness}"]'))
    ids = _store(ledger_dsn, tmp_path, 4)

    code, signed, _ = _cli(capsys, "ledger", "checkpoint", "--config", config)
    verifier = _cli(capsys, "ledger", "checkpoint-key", "show", "--config", config)[1]
    verifier = verifier.split("verifier: ")[1].strip()
    receipt = tmp_path / "receipt.json"
    proved = main(["ledger", "prove", ids[2], "--out", str(receipt), "--config", config])
    capsys.readouterr()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
    env["HOME"] = str(tmp_path / "nobody")
    third_party = subprocess.run(
        [sys.executable, "-m", "asterisk_recorder", "ledger", "check-receipt", str(receipt),
         "--key", verifier],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    forged = json.loads(receipt.read_text())
    forged["entry"]["body"] = forged["entry"]["body"].replace("recorded_consented", "x")
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(forged))
    refused = _cli(capsys, "ledger", "check-receipt", str(bad), "--key", verifier)

    assert (0, 0) == (code, proved)
    assert "checkpoint 4 root" in signed
    assert f"witness dir:{witness}: delivered" in signed
    assert (witness / f"checkpoint-{4:020d}.txt").exists()
    assert 0 == third_party.returncode, third_party.stderr
    assert f"decision {ids[2]} (outcome recorded_consented) is entry 3" in third_party.stdout
    assert (1, "receipt INVALID: entry.hash") == (refused[0], refused[2][:27])


def test_verify_json_names_the_missing_entries(
    ledger_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify --json --witness DIR reports the problems as a list, exit 1."""
    witness = tmp_path / "witness"
    config = str(_config(tmp_path, ledger_dsn, f'witnesses = ["{witness}"]'))
    _store(ledger_dsn, tmp_path, 3)
    assert 0 == main(["ledger", "checkpoint", "--config", config])
    _store(ledger_dsn, tmp_path, 2)
    assert 0 == main(["ledger", "checkpoint", "--config", config])
    capsys.readouterr()

    _drop_newest(ledger_dsn, 3)  # and every stored checkpoint: only the witness knows
    code, out, _ = _cli(
        capsys, "ledger", "verify", "--json", "--witness", str(witness), "--config", config
    )
    report = json.loads(out)

    assert (1, False, True, 3) == (code, report["ok"], report["problems"] != [], report["covered"])
    assert any("entries 4..5 are missing" in p for p in report["problems"])


def test_export_carries_a_receipt_per_decision(
    ledger_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data subject's export holds one checkable receipt per decision about them."""
    config = str(_config(tmp_path, ledger_dsn))
    _store(ledger_dsn, tmp_path, 2)
    assert 0 == main(["ledger", "checkpoint", "--config", config])
    _store(ledger_dsn, tmp_path, 1)  # not covered yet
    capsys.readouterr()

    code, out, _ = _cli(capsys, "ledger", "export", "--number", NUMBER, "--config", config)
    decisions = json.loads(out)["decisions"]

    assert 0 == code
    assert [("receipt" in d, "receipt_unavailable" in d) for d in decisions] == [
        (True, False), (True, False), (False, True)
    ]
    assert decisions[0]["receipt"]["entry"]["id"] == decisions[0]["decision_id"]


# -- verify against an HTTP and an S3 witness, end to end through the CLI ----------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def http_witness() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP witness in a thread: POST stores a note (409 on a different one), GET lists."""
    import threading

    from aiohttp import web

    held: dict[int, str] = {}
    auth: list[str] = []

    async def post(request: web.Request) -> web.Response:
        auth.append(request.headers.get("Authorization", ""))
        text = await request.text()
        size = int(request.headers["X-Checkpoint-Size"])
        if held.setdefault(size, text) != text:
            return web.Response(status=409)
        return web.Response(status=201)

    async def get(request: web.Request) -> web.Response:
        return web.Response(text="".join(held[s] + "---\n" for s in sorted(held)))

    app = web.Application()
    app.add_routes([web.post("/cp", post), web.get("/cp", get)])
    port = _free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/cp", auth
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def _drop_newest(dsn: str, keep: int) -> None:
    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                head = await conn.fetchval("SELECT hash FROM decisions WHERE seq = $1", keep)
                await conn.execute("DELETE FROM decision_personal WHERE decision_id IN "
                                   "(SELECT decision_id FROM decisions WHERE seq > $1)", keep)
                await conn.execute("DELETE FROM decisions WHERE seq > $1", keep)
                await conn.execute("UPDATE ledger_head SET seq = $1, hash = $2", keep, head)
                await conn.execute("DELETE FROM ledger_checkpoints")
        finally:
            await conn.close()

    asyncio.run(run())


def test_verify_against_an_http_witness(
    ledger_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    http_witness: tuple[str, list[str]],
) -> None:
    """checkpoint POSTs to the witness with the bearer token; verify --witness URL reads it back."""
    url, auth = http_witness
    config = str(_config(tmp_path, ledger_dsn, f'witnesses = ["{url}"]',
                         'witness_http_token = "token-for-the-witness-0042"'))
    _store(ledger_dsn, tmp_path, 4)
    signed = _cli(capsys, "ledger", "checkpoint", "--config", config)
    before = _cli(capsys, "ledger", "verify", "--witness", url, "--config", config)
    _drop_newest(ledger_dsn, 2)
    after = _cli(capsys, "ledger", "verify", "--witness", url, "--config", config)

    assert (0, 0, 1) == (signed[0], before[0], after[0])
    assert ["Bearer token-for-the-witness-0042"] == auth
    assert "token-for-the-witness" not in signed[1] + signed[2] + after[1] + after[2]
    assert "entries 3..4 are missing" in after[2]


def test_verify_against_an_s3_witness(
    ledger_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """checkpoint PUTs into a real (moto) Object Lock bucket; verify --witness s3://... reads it."""
    boto3 = pytest.importorskip("boto3", reason="boto3 and moto[server] are in the test extra")
    server_module = pytest.importorskip("moto.server")
    env = {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"), "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="ledger-witness", ObjectLockEnabledForBucket=True
        )
        config = str(_config(
            tmp_path, ledger_dsn, 'witnesses = ["s3://ledger-witness/ck"]',
            f'witness_s3_endpoint = "{endpoint}"', 'witness_s3_region = "us-east-1"',
            "witness_object_lock_days = 1",
        ))
        _store(ledger_dsn, tmp_path, 3)
        signed = _cli(capsys, "ledger", "checkpoint", "--config", config)
        before = _cli(capsys, "ledger", "verify", "--witness", "s3://ledger-witness/ck",
                      "--config", config)
        _drop_newest(ledger_dsn, 1)
        after = _cli(capsys, "ledger", "verify", "--witness", "s3://ledger-witness/ck",
                     "--config", config)
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    assert (0, 0, 1) == (signed[0], before[0], after[0]), signed[1] + signed[2] + before[2]
    assert "witness s3:ledger-witness/ck/: delivered" in signed[1]
    assert "entries 2..3 are missing" in after[2]
