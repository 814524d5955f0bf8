"""Logs are structured, carry per-call context and never show a password or a DSN password."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from asterisk_recorder import config, logs
from asterisk_recorder.errors import ConfigError
from asterisk_recorder.settings import LoggingSettings

ARI_PW = "ari-Pa55-word"
DB_PW = "db-Pa55-word"
DSN = f"postgresql://recorder:{DB_PW}@db.example:5432/ledger"
CONFIG = f"""
[ari]
password = "{ARI_PW}"
[database]
dsn = "{DSN}"
[ledger]
digest_key = "digest-Key-0001"
"""
SECRETS = (ARI_PW, DB_PW, "digest-Key-0001")


class TtyStream(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Each test configures logging itself; leave the process as it was."""
    yield
    logs.reset()
    structlog.contextvars.clear_contextvars()


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_json_lines_when_stream_is_not_a_tty() -> None:
    """format=auto on a non-TTY stream writes one JSON object per line."""
    stream = io.StringIO()
    logs.configure(LoggingSettings(), stream=stream)
    logs.get_logger("asterisk_recorder.test").info("consent.decided", outcome="accepted")

    [line] = json_lines(stream)
    assert ("consent.decided", "info", "asterisk_recorder.test", "accepted") == (
        line["event"], line["level"], line["logger"], line["outcome"])
    assert str(line["timestamp"]).endswith("Z")


def test_console_output_when_stream_is_a_tty() -> None:
    """format=auto on a TTY writes readable key=value lines, not JSON."""
    stream = TtyStream()
    logs.configure(LoggingSettings(), stream=stream)
    logs.get_logger("t").info("call.started", channel="PJSIP/1-0001")
    text = stream.getvalue()

    assert "call.started" in text
    assert "channel=PJSIP/1-0001" in text
    assert not text.lstrip().startswith("{")


def test_level_filters_lower_levels() -> None:
    """At level warning, info lines are dropped and warnings kept."""
    stream = io.StringIO()
    logs.configure(LoggingSettings(level="warning", format="json"), stream=stream)
    log = logs.get_logger("t")
    log.info("dropped")
    log.warning("kept")

    assert ["kept"] == [line["event"] for line in json_lines(stream)]


async def test_context_is_bound_per_call_task() -> None:
    """bind_contextvars in one call's task does not leak into another's lines."""
    stream = io.StringIO()
    logs.configure(LoggingSettings(format="json"), stream=stream)
    log = logs.get_logger("t")

    async def call(call_id: str) -> None:
        structlog.contextvars.bind_contextvars(call_id=call_id)
        await asyncio.sleep(0)
        log.info("step")

    await asyncio.gather(call("a"), call("b"), call("c"))

    assert ["a", "b", "c"] == sorted(str(line["call_id"]) for line in json_lines(stream))


def test_known_secrets_never_appear_in_any_field() -> None:
    """Secret values given to configure are masked in the message, fields and nested data."""
    stream = io.StringIO()
    logs.configure(LoggingSettings(format="json"), stream=stream, secrets=SECRETS)
    logs.get_logger("t").info(
        f"connecting with {ARI_PW}", note=f"pw is {DB_PW}",
        nested={"list": [ARI_PW, ("x", DB_PW)], "k": "digest-Key-0001"},
    )
    text = stream.getvalue()

    assert_no_secret(text)
    assert 4 <= text.count(logs.MASK)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_dsn_password_is_masked_anywhere(fmt: str) -> None:
    """Any scheme://user:pass@host in any field keeps user and host but masks the password."""
    stream = io.StringIO()
    logs.configure(LoggingSettings(format=fmt), stream=stream)  # no known secrets at all
    logs.get_logger("t").info("db.connect", target=DSN, url="http://u:hunter22@pbx:8088/x")
    text = stream.getvalue()

    assert DB_PW not in text
    assert "hunter22" not in text
    assert "postgresql://recorder:********@db.example:5432/ledger" in text


def test_secret_named_keys_are_masked_whatever_their_value() -> None:
    """Values of keys named like password/dsn/secret/token/digest_key are masked."""
    stream = io.StringIO()
    logs.configure(LoggingSettings(format="json"), stream=stream)
    logs.get_logger("t").info("x", password="p1-value", ari_password="p2-value",
                              dsn="host=db password=p3", api_token="p4-value",
                              digest_key="p5-value", user="alice")
    [line] = json_lines(stream)

    assert {"password": "********", "ari_password": "********", "dsn": "********",
            "api_token": "********", "digest_key": "********", "user": "alice"} == {
        k: line[k] for k in ("password", "ari_password", "dsn", "api_token", "digest_key", "user")}


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_logged_exception_with_dsn_in_its_message_is_masked(fmt: str) -> None:
    """A logged exception (and its cause) whose text contains the DSN shows no password."""
    stream = io.StringIO()
    logs.configure(LoggingSettings(format=fmt), stream=stream)
    log = logs.get_logger("t")
    try:
        try:
            raise OSError(f"connect to {DSN} refused")
        except OSError as exc:
            raise RuntimeError(f"database down: password={DB_PW!r}") from exc
    except RuntimeError:
        log.exception("ledger.unavailable")
    text = stream.getvalue()

    assert "Traceback" in text
    assert "connect to postgresql://recorder:********@db.example" in text
    assert DB_PW not in text


def test_stdlib_records_of_other_libraries_are_redacted_and_structured() -> None:
    """A stdlib logging record (aiohttp, asyncpg ...) goes through the same redaction, as JSON."""
    stream = io.StringIO()
    logs.configure(LoggingSettings(format="json"), stream=stream, secrets=SECRETS)
    logging.getLogger("asyncpg.pool").error("cannot connect to %s with %s", DSN, ARI_PW)
    [line] = json_lines(stream)

    assert ("error", "asyncpg.pool") == (line["level"], line["logger"])
    assert_no_secret(json.dumps(line))
    assert "postgresql://recorder:********@db.example:5432/ledger" in str(line["event"])


def test_loaded_settings_and_config_errors_never_leak_secrets(tmp_path: Path) -> None:
    """Logging the loaded settings, and a ConfigError over them, shows no secret."""
    path = tmp_path / "c.toml"
    path.write_text(CONFIG + '\n[agi]\nport = 0\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    path.write_text(CONFIG, encoding="utf-8")
    settings = config.load(path, env={})
    stream = io.StringIO()
    logs.configure(settings.logging, stream=stream, secrets=config.secret_values(settings))
    log = logs.get_logger("t")
    log.info("config.loaded", settings=settings, text=repr(settings), errors=str(info.value))
    log.info("config.effective", rendered=config.render_effective(settings))

    assert_no_secret(stream.getvalue())
    assert_no_secret(str(info.value))
    assert_no_secret(repr(settings))


def test_redact_text_masks_url_and_pair_passwords() -> None:
    """The redaction helpers mask URL passwords and password=... pairs, nothing else."""
    assert "postgres://u:********@h/db?sslmode=require&password=********" == \
        logs.redact_text("postgres://u:abc@h/db?sslmode=require&password=xyz")
    assert "plain text with user@example.org" == \
        logs.redact_text("plain text with user@example.org")


def test_logger_before_configure_is_already_redacting() -> None:
    """get_logger before configure installs the defaults: JSON on a pipe, passwords masked."""
    code = ("from asterisk_recorder import logs\n"
            f"logs.get_logger('early').info('hello', target={DSN!r})\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": os.environ.get("PATH", "")}).stdout
    [line] = [json.loads(x) for x in out.splitlines()]

    assert ("hello", "early") == (line["event"], line["logger"])
    assert DB_PW not in out


def test_get_logger_at_import_time_leaves_stdlib_logging_alone() -> None:
    """Module-level get_logger does not install handlers: only configure() does."""
    code = ("import logging\nfrom asterisk_recorder import logs\n"
            "from asterisk_recorder.settings import LoggingSettings\n"
            "logs.get_logger('m')\nprint(len(logging.getLogger().handlers))\n"
            "logs.configure(LoggingSettings())\nprint(len(logging.getLogger().handlers))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": os.environ.get("PATH", "")}).stdout

    assert ["0", "1"] == out.split()
