"""[pause] is checked at load: what it needs of [ami] and MixMonitor, and its token."""

from __future__ import annotations

import pytest

from asterisk_recorder import config
from asterisk_recorder.errors import ConfigError

TOKEN = "0123456789abcdef0123456789abcdef"


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.load(env=env, require_ari_password=False)
    return list(info.value.problems)


def test_pause_with_bridged_only_mixmonitor_is_refused() -> None:
    """MixMonitor `b` drops unbridged time, so paused spans could not be proven: refused."""
    found = problems({"ASTERISK_RECORDER_PAUSE_ENABLED": "true",
                      "ASTERISK_RECORDER_RECORDING_MIXMONITOR_OPTIONS": "bW(2)"})
    assert any(p.startswith("recording.mixmonitor_options:") and "remove `b`" in p
               for p in found)


def test_pause_without_ami_is_refused() -> None:
    """The pause is AMI MixMonitorMute: pause.enabled without [ami] is refused."""
    found = problems({"ASTERISK_RECORDER_PAUSE_ENABLED": "true",
                      "ASTERISK_RECORDER_RECORDING_MIXMONITOR_OPTIONS": ""})
    assert [p.split(":", 1)[0] for p in found] == ["pause.enabled"]
    assert "[ami]" in found[0]


def test_the_token_never_appears_in_the_problem() -> None:
    """A short token is refused without printing it."""
    found = problems({"ASTERISK_RECORDER_PAUSE_API_TOKEN": "hunter2-secret"})
    assert found
    assert "hunter2" not in " ".join(found)


def test_a_good_pause_section_loads() -> None:
    """Contexts, queues, a max pause and a token load as typed values."""
    settings = config.load(env={
        "ASTERISK_RECORDER_PAUSE_PAYMENT_CONTEXTS": "pay-ivr,pay-sub",
        "ASTERISK_RECORDER_PAUSE_PAYMENT_QUEUES": "payments",
        "ASTERISK_RECORDER_PAUSE_MAX_PAUSE": "90",
        "ASTERISK_RECORDER_PAUSE_API_TOKEN": TOKEN,
    }, require_ari_password=False)
    assert settings.pause.payment_contexts == ("pay-ivr", "pay-sub")
    assert settings.pause.payment_queues == ("payments",)
    assert settings.pause.max_pause == 90.0
    assert settings.pause.api_token.value == TOKEN
    assert TOKEN not in repr(settings.pause)
