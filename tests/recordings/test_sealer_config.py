"""``[recordings]`` is validated when the configuration loads, like every other section."""

from __future__ import annotations

from pathlib import Path

import pytest

from asterisk_recorder import config
from asterisk_recorder.errors import ConfigError


def load(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(str(path), require_ari_password=False)


def test_the_recordings_section_loads_with_its_values(tmp_path: Path) -> None:
    """Every key of [recordings] reaches settings.recordings."""
    settings = load(tmp_path, """
[recording]
directory = "/var/spool/asterisk/monitor/recorder"
[recordings]
sealed_dir = "/srv/sealed"
quarantine_dir = "/var/spool/asterisk/monitor/quarantine"
key_dir = "/etc/asterisk-recorder/kek"
retention_class = "sales_7y"
retention = ["sales_7y=7y", "standard=90d"]
absent_after = 120
scan_interval = 30
max_lag = 600
http_port = 9100
asterisk_ids = ["08:00:27:aa:bb:cc", "pbx-b"]
""")
    rec = settings.recordings
    assert rec.asterisk_ids == ("08:00:27:aa:bb:cc", "pbx-b")
    assert (rec.sealed_dir, rec.retention_class) == ("/srv/sealed", "sales_7y")
    assert rec.retention == ("sales_7y=7y", "standard=90d")
    assert rec.absent_after == 120
    assert (rec.scan_interval, rec.max_lag, rec.http_port) == (30, 600, 9100)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[recordings]\nsealed_dir = "relative/dir"', "recordings.sealed_dir"),
        ('[recordings]\nquarantine_dir = ""', "recordings.quarantine_dir"),
        ('[recordings]\nretention_class = "Sales 7y"', "recordings.retention_class"),
        ("[recordings]\nabsent_after = 0", "recordings.absent_after"),
        ("[recordings]\nscan_interval = -1", "recordings.scan_interval"),
        ("[recordings]\nhttp_port = 8090", "is also http.port"),
        ('[recordings]\nasterisk_ids = ["pbx a"]', "recordings.asterisk_ids"),
        ('[recordings]\nasterisk_ids = ["pbx-a", "pbx-a"]', "lists an Asterisk id twice"),
        ("[recordings]\nasterisk_ids = [1]", "recordings.asterisk_ids"),
        ('[recording]\ndirectory = "/data/rec"\n[recordings]\nsealed_dir = "/data/rec/sealed"',
         "overlaps recording.directory"),
    ],
)
def test_bad_recordings_settings_are_refused_with_the_key_named(
    tmp_path: Path, text: str, problem: str
) -> None:
    """Relative or empty directories, bad classes, zero intervals, clashes: ConfigError."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert any(problem in line for line in info.value.problems), info.value.problems


def test_asterisk_ids_come_from_the_environment_and_check_config_shows_them(
    tmp_path: Path,
) -> None:
    """ASTERISK_RECORDER_RECORDINGS_ASTERISK_IDS is comma-separated; check-config prints it."""
    import os
    import subprocess
    import sys

    path = tmp_path / "c.toml"
    path.write_text("[ari]\nenabled = false\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "ASTERISK_RECORDER_DATABASE_EMBEDDED": "true",
           "ASTERISK_RECORDER_RECORDINGS_ASTERISK_IDS": "pbx-a,pbx-b"}
    result = subprocess.run(
        [sys.executable, "-m", "asterisk_recorder", "check-config", "--config", str(path)],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )
    assert "asterisk_ids" in result.stdout, result.stdout + result.stderr
    assert "pbx-a" in result.stdout
    assert "pbx-b" in result.stdout
