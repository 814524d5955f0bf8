"""The sealer's systemd unit: the documented hardening, Type=notify as the command speaks it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from asterisk_recorder.flow.settings import RecordingSettings

ETC = Path(__file__).resolve().parents[2] / "etc"
UNIT = ETC / "systemd" / "asterisk-recorder-sealer.service"
SERVE_UNIT = ETC / "systemd" / "asterisk-recorder.service"


def _unit_values(path: Path) -> dict[str, list[str]]:
    """Every key=value of a systemd unit (keys may repeat)."""
    values: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (
            "ExecStart",
            "asterisk-recorder sealer --config /etc/asterisk-recorder/asterisk-recorder.toml",
        ),
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("Restart", "always"),
        ("User", "asterisk"),
        ("StateDirectory", "asterisk-recorder-sealer"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallFilter", "~@privileged"),
        ("Before", "asterisk.service"),
    ],
)
def test_sealer_unit_sets_the_documented_option(key: str, value: str) -> None:
    """Each option the docs promise is in the sealer's unit with that value."""
    assert value in _unit_values(UNIT)[key]


def test_sealer_unit_shares_every_sandbox_option_of_the_serve_unit_but_the_proc_and_ipc_ones(
) -> None:
    """Same hardening as asterisk-recorder.service, except what reading Asterisk's /proc needs."""
    serve, sealer = _unit_values(SERVE_UNIT), _unit_values(UNIT)
    sandbox = [k for k in serve if k.startswith(("Protect", "Restrict", "Private", "System"))]
    allowed_to_differ = {"ProtectProc", "ReadWritePaths"}
    for key in sandbox:
        if key not in allowed_to_differ:
            assert serve[key] == sealer.get(key), key
    assert "ProtectProc" not in sealer  # /proc/<pid>/fd of Asterisk tells an open file


def test_sealer_unit_may_write_the_default_recording_directory() -> None:
    """ProtectSystem=strict would make recording.directory read-only: it is in ReadWritePaths."""
    directory = Path(RecordingSettings().directory)
    writable = [Path(p) for line in _unit_values(UNIT)["ReadWritePaths"] for p in line.split()]
    assert any(directory.is_relative_to(p) for p in writable)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_every_key_of_the_sealer_unit(tmp_path: Path) -> None:
    """systemd-analyze verify reports nothing (ExecStart swapped for /bin/true here)."""
    unit = tmp_path / "asterisk-recorder-sealer.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            "ExecStart=asterisk-recorder", "ExecStart=/bin/true"
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert (0, "") == (result.returncode, result.stderr.strip())
