"""Accepted at load implies accepted at call: every documented setting, good and bad values.

The walk covers every key of ``config.schema()`` (a test fails when a key has no cases). For
each good value, ``config.load`` accepts it and the settings build a ``ConsentFlow`` that runs a
whole call; for each bad value, ``config.load`` refuses it naming the key and where it came
from. For the flow's own keys, every candidate value is also given to the flow's validator
directly: whatever the flow refuses, loading must refuse too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from asterisk_recorder import config
from asterisk_recorder.errors import ConfigError
from asterisk_recorder.flow import ConsentFlow, State, check_flow_settings
from asterisk_recorder.flow.actions import Answer, PlayPrompt, StartTimer, StoreDecision
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
from asterisk_recorder.settings import Settings

BASE_ENV = {"ASTERISK_RECORDER_ARI_PASSWORD": "ari-pw-1234"}
DECISION_ID = "3f2b8c1e-6a4d-4e0f-9b7a-1c2d3e4f5a6b"
T0 = 1_795_000_000.0
KEYS = {info.key: info for info in config.schema()}
GOOD_TABLE = 'version = "site-1"\n\n[rows.GB]\nmode = "opt_in"\nlaw = "site rule"\n'

# key -> (good values, bad values), as environment text; "TABLE" / "BROKEN" name table files.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "instance_id": (["rec-1", ""], ["a b", "x" * 65]),
    "ari.url": (["https://pbx.example:8089"], ["ftp://x", "http://h:8088/ari"]),
    "ari.username": (["rec"], ["", "a:b"]),
    "ari.password": (["s3cret-pw", "pw"], ["change-me", "CHANGE-ME-to-a-long-random-secret",
                                           "password", "Secret", "  ", "********", "xxxxxxxx"]),
    "ari.app": (["consent.app"], ["my app"]),
    "ari.request_timeout": (["2.5"], ["0", "x"]),
    "ari.heartbeat": (["1"], ["-1"]),
    "ari.reconnect_max": (["30"], ["0"]),
    "ari.max_connections": (["50"], ["0"]),
    "ari.enabled": (["false"], ["maybe"]),
    "agi.enabled": (["false"], ["2"]),
    "agi.host": (["0.0.0.0"], ["a b"]),
    "agi.port": (["4600"], ["0", "70000"]),
    "agi.max_sessions": (["1"], ["0"]),
    "agi.read_timeout": (["1"], ["0"]),
    "agi.allowed_peers": (["10.0.0.5", "10.0.0.0/24, ::1", "0.0.0.0/0", "fd00::/8"],
                          ["10.0.0.1/8", "not-an-ip", "", "10.0.0.256", "127.0.0.1/33"]),
    "database.dsn": (["postgresql://rec:db-pw-5678@db/ledger", "postgresql://rec@db/ledger",
                      "postgresql://postgres:@/postgres?host=/run/pg"],
                     ["mysql://x", "postgresql://rec:change-me@db/ledger",
                      "postgresql://rec@db/ledger?password=changeme",
                      "postgresql://rec:%20%20@db/ledger"]),
    "database.embedded": (["true", "false"], ["maybe"]),
    "database.embedded_data_dir": (["/srv/pg"], ["relative"]),
    "database.connect_timeout": (["0.5"], ["0"]),
    "ledger.spool_dir": (["/srv/spool"], ["spool"]),
    "ledger.ack_timeout": (["2"], ["0"]),
    "ledger.batch_interval": (["0", "0.05"], ["-1"]),
    "ledger.batch_max": (["1"], ["0"]),
    "ledger.checkpoints": (["false", "true"], ["sometimes"]),
    "ledger.checkpoint_every": (["1", "1000"], ["0", "10000001"]),
    "ledger.checkpoint_interval": (["0.5", "86400"], ["0", "86401", "x"]),
    "ledger.checkpoint_origin": (["recorder.example.com/ledger", ""],
                                 ["two words", "a\nb", "/leading"]),
    "ledger.checkpoint_key_file": (["/etc/asterisk-recorder/checkpoint.key", ""],
                                   ["checkpoint.key"]),
    "ledger.checkpoint_keys": (["old+0123abcd+AbCd/+==", ""],
                               ["old+xyz+AAAA", "a b+0123abcd+AAAA"]),
    "ledger.checkpoint_pkcs11_module": (["/usr/lib/softhsm/libsofthsm2.so", ""],
                                        ["libsofthsm2.so", "usr/lib/x.so"]),
    "ledger.checkpoint_pkcs11_token": (["recorder-hsm", ""], ["t" * 33, " padded"]),
    "ledger.checkpoint_pkcs11_key": (["asterisk-recorder-checkpoint", "cp-2026"], ["", " k"]),
    "ledger.checkpoint_pkcs11_pin": (["7391-user-pin", ""], ["change-me", "123456", "  "]),
    "ledger.witnesses": (["/srv/witness, https://witness.example/add, s3://cp-bucket/ledger/"],
                         ["witness", "ftp://x", "https://u:p@w.example/", "s3://A_B/x",
                          "s3://bucket/../x", "/a, /a"]),
    "ledger.witness_max_lag": (["60"], ["0"]),
    "ledger.witness_http_token": (["a-long-bearer-token", ""], []),
    "ledger.witness_s3_endpoint": (["http://127.0.0.1:9000", ""],
                                   ["127.0.0.1:9000", "http://k:s@s3.local"]),
    "ledger.witness_s3_region": (["eu-west-1", ""], ["EU WEST"]),
    "ledger.witness_object_lock_days": (["0", "365"], ["-1", "36501"]),
    "ledger.timestamp_url": (["https://tsa.example/tsr", "http://127.0.0.1:8318", ""],
                             ["tsa.example", "ftp://tsa.example", "https://u:p@tsa.example/"]),
    "ledger.timestamp_ca_file": (["/etc/asterisk-recorder/tsa-root.pem", ""],
                                 ["tsa-root.pem", "/etc/x\x01.pem"]),
    "ledger.digest_key": (["0123456789abcdef0123456789abcdef", ""],
                          ["change-me", "secret", " ", "k" * 32]),
    "policy.site_jurisdiction": (["GB", "us-ca", "DE"], ["XX", "USA-California", "US-ZZ"]),
    "policy.unknown_mode": (["opt_out", "announce", "never", "none"], ["maybe"]),
    "policy.table_file": (["TABLE"], ["/nonexistent/table.toml", "BROKEN"]),
    "policy.allow_channel_override": (["false"], ["perhaps"]),
    "policy.default_region": (["GB"], ["ZZ"]),
    "flow.opt_out_key": (["#", "*", "0"], ["12", "x", ""]),
    "flow.opt_in_accept_key": (["5"], ["", "2"]),
    "flow.opt_in_decline_key": (["9"], ["1", "*1"]),
    "flow.input_timeout": (["0.5", "3600"], ["0", "3601", "7200", "nan"]),
    "flow.max_retries": (["0", "10"], ["11", "-1"]),
    "flow.play_prompt_for_never": (["true"], ["sometimes"]),
    "flow.play_prompt_for_none": (["true"], ["sometimes"]),
    "flow.answer_channel": (["false"], ["sometimes"]),
    "flow.guard_timeout": (["1", "3600"], ["0", "7200"]),
    "flow.prompts.opt_in": (["custom/consent_v2", "_x"], ["/var/lib/x", "-x", ".x", "a/../b", ""]),
    "flow.prompts.opt_out": (["optout"], ["/abs"]),
    "flow.prompts.announce": (["ann.v2"], ["../x"]),
    "flow.prompts.never": (["", "recorder/never"], ["/abs"]),
    "flow.prompts.none": (["", "recorder/none"], ["-n"]),
    "flow.prompts.languages": (["en,fr_CA", "pt-BR"], ["engl", "", "e"]),
    "flow.prompts.fallback_language": (["de"], ["engl", "e"]),
    "flow.prompts.opt_in_accept_after": (["end", "END", "0", "2.5", "3600"],
                                         ["-1", "3601", "soon", "nan"]),
    "recording.directory": (["/srv/rec"], ["rec", "/a/../b", "/a b"]),
    "recording.file_format": (list(config.FILE_FORMATS), ["WAV", "mp3", "Wav"]),
    "recording.mixmonitor_options": (["", "bW(2)"], ["b,r", "b)"]),
    "recording.start_beep": (["true"], ["loud"]),
    "http.enabled": (["false"], ["nope"]),
    "http.host": (["::1"], ["a b"]),
    "http.port": (["9000"], ["0"]),
    "logging.level": (["debug", "ERROR"], ["loud"]),
    "logging.format": (["json", "console"], ["xml"]),
    "controller.shutdown_grace": (["0"], ["-1"]),
    "controller.hand_back_retry": (["0"], ["-1"]),
    "controller.resync_action": (["resume"], ["retry"]),
    "recordings.sealed_dir": (["/srv/sealed"], ["sealed", ""]),
    "recordings.quarantine_dir": (["/srv/quarantine"], ["q", ""]),
    "recordings.key_dir": (["/srv/kek"], ["kek", ""]),
    # a default class needs a period in recordings.retention (only standard has one by default)
    "recordings.retention_class": (["standard"], ["Gold", "1x", "", "gold"]),
    "recordings.retention": (["standard=90d,financial=7y", "standard=6m"],
                             ["financial=7y", "standard=90", "standard=0d", "standard",
                              "Standard=1y", "standard=1d,standard=2d", ""]),
    "recordings.retention_rules": (["", "jurisdiction:US-CA=standard,called:+44207=standard"],
                                   ["jurisdiction:US-CA=financial", "jurisdiction:usa=standard",
                                    "called:44x=standard", "queue:sales=standard",
                                    "called:+44=standard,called:+44=standard"]),
    "recordings.absent_after": (["60"], ["0"]),
    "recordings.scan_interval": (["10"], ["0"]),
    "recordings.settle_after": (["5"], ["0"]),
    "recordings.orphan_after": (["0"], ["-1"]),
    "recordings.max_lag": (["60"], ["0"]),
    "recordings.http_port": (["9000"], ["0"]),
    "recordings.asterisk_ids": (["pbx-a,08:00:27:aa:bb:cc", ""], ["pbx a", "x,x"]),
    "recordings.store": (["local", "s3://rec-bucket/pbx-a/", "s3://rec-bucket"],
                         ["s3", "S3://x", "s3://A_B/x", "s3://ok-bucket/../x", "/srv/sealed"]),
    "recordings.store_s3_endpoint": (["http://127.0.0.1:9000", ""],
                                     ["minio:9000", "https://key:secret@s3.example/"]),
    "recordings.store_s3_region": (["eu-west-1", ""], ["EU WEST"]),
    "recordings.store_object_lock_days": (["0"], ["-1", "36501", "30"]),
    "recordings.kek_pkcs11_module": (["/usr/lib/softhsm/libsofthsm2.so", ""],
                                     ["libsofthsm2.so", "usr/lib/x.so"]),
    "recordings.kek_pkcs11_token": (["recorder-kek", ""], ["t" * 33, " padded"]),
    "recordings.kek_pkcs11_pin": (["7391-user-pin", ""], ["change-me", "123456", "  "]),
    "recordings.kek_cryptoperiod": (["1m", "14d", "4w", "31d"],
                                    ["2m", "0d", "32d", "5w", "1y", "30", ""]),
    "recordings.pci_check": (["quarantine", "attest", "off"], ["QUARANTINE", "warn", ""]),
    "recordings.pci_tolerance": (["0.5", "0.05", "5"], ["0", "0.01", "6", "nan"]),
    # pause.enabled = true needs [ami] and no MixMonitor b: tests/config/test_pause_settings.py
    "pause.enabled": (["false"], ["maybe"]),
    "ami.enabled": (["false"], ["maybe"]),
    "ami.host": (["127.0.0.1", "pbx.example.net", "::1"], ["a b", "", "x;y"]),
    "ami.port": (["5038", "1"], ["0", "65536"]),
    "ami.username": (["recorder", ""], ["a b", "x" * 65]),
    "ami.secret": (["a-long-manager-secret-7Hq", ""], ["change-me"]),
    "ami.connect_timeout": (["5", "0.1"], ["0", "301"]),
    "ami.action_timeout": (["5"], ["0", "-1"]),
    "ami.reconnect_max": (["30"], ["0.1", "3601"]),
    "pause.max_pause": (["180", "1", "3600"], ["0", "0.5", "3601", "-1"]),
    "pause.payment_contexts": (["payment-ivr", "pay-ivr,pay-sub", ""],
                               ["pay ivr", "pay;ivr", "-pay", "x" * 81]),
    "pause.payment_queues": (["payments", ""], ["pay\\nments", "a b"]),
    "pause.retry_every": (["5", "0.5", "300"], ["0", "0.1", "301"]),
    "pause.api_token": (["0123456789abcdef0123456789abcdef", ""],
                        ["short-token", "change-me-change-me-change-me-change-me"]),
}


# Keys whose values need others set too (a PKCS#11 module needs its token and PIN).
COMPANIONS: dict[str, dict[str, str]] = {
    "ledger.checkpoint_pkcs11_module": {
        "ASTERISK_RECORDER_LEDGER_CHECKPOINT_PKCS11_TOKEN": "recorder-hsm",
        "ASTERISK_RECORDER_LEDGER_CHECKPOINT_PKCS11_PIN": "7391-user-pin",
    },
    "recordings.kek_pkcs11_module": {
        "ASTERISK_RECORDER_RECORDINGS_KEK_PKCS11_TOKEN": "recorder-kek",
        "ASTERISK_RECORDER_RECORDINGS_KEK_PKCS11_PIN": "7391-user-pin",
    },
}


def env_for(key: str, value: str, tmp_path: Path) -> dict[str, str]:
    """BASE_ENV plus ``key``'s variable set to ``value`` (table-file names resolved)."""
    if value in ("TABLE", "BROKEN"):
        table = tmp_path / f"{value.lower()}.toml"
        table.write_text(GOOD_TABLE if value == "TABLE" else "[[[", encoding="utf-8")
        value = str(table)
    return {**BASE_ENV, **COMPANIONS.get(key, {}), KEYS[key].env: value}


def call_info() -> CallInfo:
    """An ordinary inbound call between two New York numbers (no channel overrides)."""
    return CallInfo(
        decision_id=DECISION_ID, driver="ari", channel_id="1.1", channel_name="PJSIP/a-1",
        uniqueid="1.1", linkedid="1.1", asterisk_id="pbx1", instance_id="test",
        caller_number="+12125550100", caller_name="Alice", called_number="+12125550199",
        language="fr_CA",
    )


def run_call(settings: Settings) -> ConsentFlow:
    """Build the call's flow from ``settings`` and answer every action until it is done."""
    flow = ConsentFlow(settings.flow, PolicyEngine.from_settings(settings.policy))
    at = T0
    pending: list[Event] = [CallOffered(at, call_info())]
    for _step in range(200):
        if not pending:
            break
        event = pending.pop(0)
        for action in flow.handle(event):
            at += 0.1
            if isinstance(action, Answer):
                pending.append(Answered(at))
            elif isinstance(action, PlayPrompt):
                pending += [PromptStarted(at), PromptFinished(at + 1)]
            elif isinstance(action, StartTimer) and action.name == "input":
                pending.append(TimerExpired(at + action.seconds, action.name))
            elif isinstance(action, StoreDecision):
                pending.append(DecisionStored(at, action.decision.decision_id))
    return flow


def assert_runs(settings: Settings) -> None:
    """The flow built from ``settings`` completes a call without an internal error."""
    flow = run_call(settings)

    assert (State.HANDED_BACK, ()) == (flow.state, flow.errors)
    assert flow.decision is not None
    variables = dict(flow.variables)
    if variables.get("RECORDER_FILE"):
        assert variables["RECORDER_FILE"].endswith("." + settings.flow.recording.file_format)


def test_every_schema_key_has_cases() -> None:
    """The walk below covers every documented key, so a new key cannot skip it."""
    assert sorted(info.key for info in config.schema()) == sorted(CASES)


GOOD = [(key, value) for key, (good, _bad) in CASES.items() for value in good]
BAD = [(key, value) for key, (_good, bad) in CASES.items() for value in bad]


@pytest.mark.parametrize(("key", "value"), GOOD)
def test_good_value_loads_and_a_call_runs_with_it(key: str, value: str, tmp_path: Path) -> None:
    """A value load accepts builds a flow that takes a whole call to its hand-back."""
    settings = config.load(env=env_for(key, value, tmp_path))

    assert_runs(settings)


@pytest.mark.parametrize(("key", "value"), BAD)
def test_bad_value_is_refused_at_load_naming_key_and_source(
    key: str, value: str, tmp_path: Path
) -> None:
    """A bad value fails loading with one message that names the key and the variable."""
    env = env_for(key, value, tmp_path)
    with pytest.raises(ConfigError) as info:
        config.load(env=env)
    var = KEYS[key].env

    assert [key] == [p.split(":", 1)[0] for p in info.value.problems]
    assert f"[from {var}]" in info.value.problems[0]


# Typed candidates for the flow's keys, given as file-like values (not parsed from text).
FLOW_CANDIDATES: dict[str, list[object]] = {
    "flow.opt_out_key": ["1", "#", "A", "D", "", "11", "x"],
    "flow.opt_in_accept_key": ["3", "B", "2", ""],
    "flow.opt_in_decline_key": ["4", "1", "C"],
    "flow.input_timeout": [0.001, 1, 3600, 3600.5, 7200, 0, -1],
    "flow.guard_timeout": [0.5, 3600, 3601, 0],
    "flow.max_retries": [0, 10, 11, -1],
    "flow.prompts.opt_in": ["a", "a/b.c-d_e", "/abs", "-x", ".x", "a/../b", "a/..", "", "é"],
    "flow.prompts.never": ["", "x", "/x", ".x"],
    "flow.prompts.languages": [["en"], ["fr_CA", "en"], ["engl"], ["e"], ["zh-Hant-TW"],
                               ["zh_Hant_TW_x"], []],
    "flow.prompts.fallback_language": ["en", "pt_BR", "engl", "1a", "en_"],
    "flow.prompts.opt_in_accept_after": (["end", "END", "0", "2.5", "3600"],
                                         ["-1", "3601", "soon", "nan"]),
    "recording.directory": ["/a", "/", "a", "/a/../b", "/a b", "/a$x"],
    "recording.file_format": ["wav", "WAV", "wav49", "mp3", "", "sln16", "a" * 17],
    "recording.mixmonitor_options": ["", "b", "bW(2)", "b(x/y)", "b,r", "B(10)p", "1"],
}
FLOW_FIELDS = {"flow": None, "flow.prompts": "prompts", "recording": "recording"}


def flow_with(key: str, value: object) -> FlowSettings:
    """Default ``FlowSettings`` with ``key`` set to ``value`` (unchecked)."""
    section, name = key.rsplit(".", 1)
    flow = FlowSettings()
    if isinstance(value, list):
        value = tuple(value)
    nested = FLOW_FIELDS[section]
    if nested is None:
        return dataclasses.replace(flow, **{name: value})  # type: ignore[arg-type]
    inner = dataclasses.replace(getattr(flow, nested), **{name: value})
    return dataclasses.replace(flow, **{nested: inner})  # type: ignore[arg-type]


FLOW_CASES = [(key, value) for key, values in FLOW_CANDIDATES.items() for value in values]


def load_or_problems(**kwargs: object) -> tuple[Settings | None, list[str]]:
    """``config.load(**kwargs)`` and no problems, or None and the problems it reported."""
    try:
        return config.load(**kwargs), []  # type: ignore[arg-type]
    except ConfigError as exc:
        return None, exc.problems


@pytest.mark.parametrize(("key", "value"), FLOW_CASES)
def test_what_the_flow_refuses_loading_refuses(key: str, value: object) -> None:
    """For each candidate: the flow refuses it => load refuses it; load accepts => a call runs."""
    flow_refuses = bool(check_flow_settings(flow_with(key, value)))
    settings, problems = load_or_problems(env=BASE_ENV, overrides={key: value})

    if settings is None:
        keys = [p.split(":", 1)[0] for p in problems]
        # Named, or (a directory like "/") refused because it overlaps the sealer's directories.
        assert all(k == key or f"overlaps {key}" in p for p, k in zip(problems, keys, strict=True))
        assert [] != problems
    else:
        assert not flow_refuses
        assert_runs(settings)


@pytest.mark.parametrize("site", ["US", "US-NY", "GB", "DE", "CA-ON", "FR", "US-ZZ", "XX", "ZZ"])
def test_what_the_policy_refuses_loading_refuses(site: str) -> None:
    """A site jurisdiction load accepts builds the policy engine; one it refuses is named."""
    var = "ASTERISK_RECORDER_POLICY_SITE_JURISDICTION"
    settings, problems = load_or_problems(env={**BASE_ENV, var: site})

    if settings is None:
        assert [("policy.site_jurisdiction", True)] == [
            (p.split(":", 1)[0], p.endswith(f"[from {var}]")) for p in problems]
    else:
        assert_runs(settings)


def test_file_format_wav_from_the_file_names_the_file(tmp_path: Path) -> None:
    """``[recording] file_format = "WAV"`` in the file is refused, naming the file."""
    path = tmp_path / "c.toml"
    path.write_text('[recording]\nfile_format = "WAV"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(path, env=BASE_ENV)

    assert [f'recording.file_format: "WAV" is not allowed (one of: '
            f'{", ".join(config.FILE_FORMATS)}) [from {path}]'] == info.value.problems


def test_pkcs11_module_without_token_and_pin_is_refused_naming_both() -> None:
    """A PKCS#11 module alone fails loading: the token label and the PIN are both required."""
    var = KEYS["ledger.checkpoint_pkcs11_module"].env
    env = {**BASE_ENV, var: "/usr/lib/softhsm/libsofthsm2.so"}

    settings, problems = load_or_problems(env=env)

    assert settings is None
    assert ["ledger.checkpoint_pkcs11_token", "ledger.checkpoint_pkcs11_pin"] == [
        p.split(":", 1)[0] for p in problems]
    assert all("missing" in p and f"[from {var}]" in p for p in problems)


def test_kek_pkcs11_module_without_token_and_pin_is_refused_naming_both() -> None:
    """recordings.kek_pkcs11_module alone fails loading: its token and PIN are required."""
    var = KEYS["recordings.kek_pkcs11_module"].env
    env = {**BASE_ENV, var: "/usr/lib/softhsm/libsofthsm2.so"}

    settings, problems = load_or_problems(env=env)

    assert settings is None
    assert ["recordings.kek_pkcs11_token", "recordings.kek_pkcs11_pin"] == [
        p.split(":", 1)[0] for p in problems]
    assert all("missing" in p and f"[from {var}]" in p for p in problems)


def test_kek_pkcs11_pin_is_a_secret_never_shown() -> None:
    """The recordings' token PIN is masked in the settings' repr and listed as a secret."""
    env = {**BASE_ENV, **COMPANIONS["recordings.kek_pkcs11_module"],
           KEYS["recordings.kek_pkcs11_module"].env: "/usr/lib/softhsm/libsofthsm2.so"}

    settings, problems = load_or_problems(env=env)

    assert problems == []
    assert settings is not None
    assert "7391-user-pin" not in repr(settings)
    assert "7391-user-pin" in config.secret_values(settings)


def test_placeholder_pkcs11_pin_is_reported_once_and_hidden() -> None:
    """A placeholder PIN with a module set is one problem, not also "missing", and not shown."""
    env = {**BASE_ENV, **COMPANIONS["ledger.checkpoint_pkcs11_module"],
           KEYS["ledger.checkpoint_pkcs11_module"].env: "/usr/lib/softhsm/libsofthsm2.so",
           "ASTERISK_RECORDER_LEDGER_CHECKPOINT_PKCS11_PIN": "changeme-pin"}

    _settings, problems = load_or_problems(env=env)

    assert ["ledger.checkpoint_pkcs11_pin"] == [p.split(":", 1)[0] for p in problems]
    assert "changeme-pin" not in problems[0]
