"""``asterisk-recorder check-config`` run as a real process with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "etc" / "asterisk-recorder.toml"
REAL = {"ASTERISK_RECORDER_ARI_PASSWORD": "a-real-ari-password"}
"""The environment an operator adds to the sample: the real ARI password."""


EMBEDDED = {"ASTERISK_RECORDER_DATABASE_EMBEDDED": "true"}
"""check-config checks for serve, which needs a DSN or this explicit test/demo choice."""


def check_config(*args: str, env: dict[str, str] | None = None,
                 database: dict[str, str] = EMBEDDED) -> subprocess.CompletedProcess[str]:
    """Run ``python -m asterisk_recorder check-config ARGS`` with only PATH, ``database``
    (default: the embedded database allowed) and ``env`` set."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **database, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "asterisk_recorder", "check-config", *args],
        capture_output=True, text=True, env=clean, check=False, timeout=60,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recorder.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_typo_key_alone_exits_2_with_a_suggestion(tmp_path: Path) -> None:
    """A typo'd key: one clear message on stderr, exit code 2."""
    path = write(tmp_path, '[ari]\npassword = "pw"\n[agi]\nprot = 4573\n')
    result = check_config("--config", str(path))

    assert (2, "") == (result.returncode, result.stdout)
    assert [f"configuration error: agi.prot: unknown key in {path}; did you mean agi.port?"] \
        == result.stderr.splitlines()


def test_bad_port_alone_exits_2(tmp_path: Path) -> None:
    """A bad port: one clear message on stderr, exit code 2."""
    path = write(tmp_path, '[ari]\npassword = "pw"\n[http]\nport = 70000\n')
    result = check_config("--config", str(path))

    assert 2 == result.returncode
    assert [f"configuration error: http.port: 70000 is not a valid port (1-65535) [from {path}]"] \
        == result.stderr.splitlines()


def test_missing_password_alone_exits_2(tmp_path: Path) -> None:
    """A missing ARI password: one message saying where to set it, exit code 2."""
    path = write(tmp_path, '[ari]\nurl = "http://pbx:8088"\n')
    result = check_config("--config", str(path))

    assert 2 == result.returncode
    assert [
        'configuration error: ari.password: missing; ARI server "default" is enabled and needs '
        'the password of ARI user "asterisk-recorder": set [ari] password in the config file '
        "or ASTERISK_RECORDER_ARI_PASSWORD (or set ari.enabled = false)"
    ] == result.stderr.splitlines()


def test_typo_bad_port_and_missing_password_give_three_messages(tmp_path: Path) -> None:
    """The issue's done-when case: three clear messages and exit code 2."""
    path = write(tmp_path, '[ari]\nurl = "http://pbx:8088"\n[agi]\nprot = 4573\n'
                           '[http]\nport = 70000\n')
    result = check_config("--config", str(path))

    assert 2 == result.returncode
    assert [
        f"configuration error: agi.prot: unknown key in {path}; did you mean agi.port?",
        f"configuration error: http.port: 70000 is not a valid port (1-65535) [from {path}]",
        'configuration error: ari.password: missing; ARI server "default" is enabled and needs '
        'the password of ARI user "asterisk-recorder": set [ari] password in the config file '
        "or ASTERISK_RECORDER_ARI_PASSWORD (or set ari.enabled = false)",
    ] == result.stderr.splitlines()


def test_valid_config_prints_effective_configuration_and_exits_0(tmp_path: Path) -> None:
    """A good file prints every key with secrets masked (DSN: password only) and exits 0."""
    path = write(tmp_path, '[ari]\npassword = "ari-pw-1234"\n'
                           '[database]\ndsn = "postgresql://rec:db-pw-5678@db/ledger"\n')
    result = check_config("--config", str(path),
                          env={"ASTERISK_RECORDER_LEDGER_DIGEST_KEY": "digest-9012"})

    assert (0, "") == (result.returncode, result.stderr)
    assert 'password = "********"' in result.stdout
    assert 'dsn = "postgresql://rec:********@db/ledger"' in result.stdout
    assert 'digest_key = "********"' in result.stdout
    for secret in ("ari-pw-1234", "db-pw-5678", "digest-9012"):
        assert secret not in result.stdout


def test_flags_override_file_and_environment(tmp_path: Path) -> None:
    """--agi-port, --log-level and --site win over the file and the environment."""
    path = write(tmp_path, '[ari]\npassword = "pw"\n[agi]\nport = 4600\n')
    result = check_config("--config", str(path), "--agi-port", "4700", "--log-level", "debug",
                          "--site", "gb", env={"ASTERISK_RECORDER_AGI_PORT": "4650"})

    assert 0 == result.returncode, result.stderr
    assert "port = 4700" in result.stdout
    assert 'level = "debug"' in result.stdout
    assert 'site_jurisdiction = "GB"' in result.stdout


def test_bad_flag_value_exits_2(tmp_path: Path) -> None:
    """A bad value given by flag is reported like any other, naming the flag's key."""
    path = write(tmp_path, '[ari]\npassword = "pw"\n')
    result = check_config("--config", str(path), "--http-port", "http")

    assert 2 == result.returncode
    assert ['configuration error: http.port: "http" is not an integer [from override '
            'http.port]'] == result.stderr.splitlines()


def test_config_file_from_environment_variable() -> None:
    """ASTERISK_RECORDER_CONFIG names the file; the sample checks clean with a real password."""
    result = check_config(env={"ASTERISK_RECORDER_CONFIG": str(SAMPLE), **REAL})

    assert (0, "") == (result.returncode, result.stderr)
    assert "a-real-ari-password" not in result.stdout


def test_sample_as_is_fails_on_its_placeholder_password_without_showing_it() -> None:
    """The sample's ari.password = "change-me" fails the check (exit 2), never printed."""
    result = check_config("--config", str(SAMPLE))

    assert (2, "") == (result.returncode, result.stdout)
    assert [
        'configuration error: ari.password: is a placeholder, not a real value (hidden; see '
        '"Secrets" in docs/configuration.md); set the password of ARI user "asterisk-recorder" '
        f"from ari.conf [from {SAMPLE}]"] == result.stderr.splitlines()


@pytest.mark.parametrize(
    ("var", "value", "key"),
    [
        ("ASTERISK_RECORDER_ARI_PASSWORD", "changeme", "ari.password"),
        ("ASTERISK_RECORDER_ARI_PASSWORD", "   ", "ari.password"),
        ("ASTERISK_RECORDER_DATABASE_DSN", "postgresql://rec:Password@db/ledger", "database.dsn"),
        ("ASTERISK_RECORDER_LEDGER_DIGEST_KEY", "passwd", "ledger.digest_key"),
    ],
)
def test_placeholder_secrets_fail_the_check_without_being_shown(
    var: str, value: str, key: str
) -> None:
    """Placeholder ARI password, DSN password or digest key: exit 2, the value never printed."""
    result = check_config(env={**REAL, var: value})
    [line] = result.stderr.splitlines()

    assert (2, "") == (result.returncode, result.stdout)
    assert line.startswith(f"configuration error: {key}: ")
    assert "placeholder" in line
    assert f"[from {var}]" in line
    assert value not in line


def test_unknown_environment_variable_exits_2() -> None:
    """An unknown ASTERISK_RECORDER_* variable fails the check with a suggestion."""
    result = check_config(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw",
                               "ASTERISK_RECORDER_AGI_PROT": "1"})

    assert 2 == result.returncode
    assert ["configuration error: ASTERISK_RECORDER_AGI_PROT: unknown environment variable; "
            "did you mean ASTERISK_RECORDER_AGI_PORT?"] == result.stderr.splitlines()


@pytest.mark.parametrize("flag", ["--ari-password", "--password"])
def test_passwords_are_not_flags(flag: str) -> None:
    """There is no flag for a password (it would show in the process list)."""
    result = check_config(flag, "pw")

    assert 2 == result.returncode
    assert "unrecognized arguments" in result.stderr


def test_sample_flag_prints_a_loadable_sample(tmp_path: Path) -> None:
    """check-config --sample prints the commented sample, which itself checks clean."""
    sample = check_config("--sample")
    path = write(tmp_path, sample.stdout)
    result = check_config("--config", str(path), env=REAL)

    assert (0, 0) == (sample.returncode, result.returncode)
    assert SAMPLE.read_text(encoding="utf-8") == sample.stdout


def test_broken_policy_table_fails_the_check(tmp_path: Path) -> None:
    """A policy.table_file that does not parse is a configuration problem (exit 2)."""
    table = tmp_path / "rules.toml"
    table.write_text("[[[", encoding="utf-8")
    path = write(tmp_path, '[ari]\npassword = "pw"\n[policy]\ntable_file = "rules.toml"\n')
    result = check_config("--config", str(path))

    assert 2 == result.returncode
    [line] = result.stderr.splitlines()
    assert line.startswith(f"configuration error: policy.table_file: policy table {table}")


def test_uppercase_wav_from_the_environment_is_refused() -> None:
    """RECORDING_FILE_FORMAT=WAV (which the flow refuses at the first call) fails the check."""
    result = check_config(env={"ASTERISK_RECORDER_ARI_PASSWORD": "pw",
                               "ASTERISK_RECORDER_RECORDING_FILE_FORMAT": "WAV"})

    assert (2, "") == (result.returncode, result.stdout)
    assert ['configuration error: recording.file_format: "WAV" is not allowed (one of: wav, '
            "wav49, gsm, sln, sln16, ulaw, alaw, g722) "
            "[from ASTERISK_RECORDER_RECORDING_FILE_FORMAT]"] == result.stderr.splitlines()


def test_every_problem_is_reported_at_once_under_its_own_key(tmp_path: Path) -> None:
    """A bad site jurisdiction shows with the other problems, under policy.site_jurisdiction."""
    (tmp_path / "rules.toml").write_text("[[[", encoding="utf-8")
    path = write(tmp_path, '[ari]\npassword = "pw"\n[http]\nport = 70000\n'
                           '[policy]\nsite_jurisdiction = "US-ZZ"\ntable_file = "rules.toml"\n'
                           '[flow.prompts]\nlanguages = ["engl"]\n')
    result = check_config("--config", str(path),
                          env={"ASTERISK_RECORDER_RECORDING_FILE_FORMAT": "WAV"})
    lines = result.stderr.splitlines()

    assert (2, "") == (result.returncode, result.stdout)
    assert ["http.port", "flow.prompts.languages", "recording.file_format", "policy.table_file",
            "policy.site_jurisdiction"] == [
        line.removeprefix("configuration error: ").split(":", 1)[0] for line in lines]
    assert lines[-1] == (
        'configuration error: policy.site_jurisdiction: "US-ZZ" is not a jurisdiction the '
        "policy table knows (a country such as US, GB, DE, a subdivision such as US-NY or "
        f"CA-ON, or a row of policy.table_file) [from {path}]")
    assert lines[3].endswith(f"[from {path}]")


def test_empty_dsn_without_embedded_is_refused_with_what_to_do() -> None:
    """No DSN and no database.embedded: exit 2, saying to set the DSN or opt in to embedded."""
    result = check_config(env=REAL, database={})

    assert (2, "") == (result.returncode, result.stdout)
    assert ["configuration error: database.dsn: is empty: set it ([database] dsn in the config "
            "file or ASTERISK_RECORDER_DATABASE_DSN), or set database.embedded = true for a "
            "test/demo install (an embedded PostgreSQL under the service user's data "
            "directory)"] == result.stderr.splitlines()


@pytest.mark.parametrize(
    "database",
    [EMBEDDED, {"ASTERISK_RECORDER_DATABASE_DSN": "postgresql://rec:db-pw-5678@db/ledger"}],
    ids=["embedded", "dsn"],
)
def test_a_dsn_or_the_explicit_embedded_choice_passes(database: dict[str, str]) -> None:
    """A real DSN, or database.embedded = true, satisfies the database requirement."""
    result = check_config(env=REAL, database=database)

    assert (0, "") == (result.returncode, result.stderr)
