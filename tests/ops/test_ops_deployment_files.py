"""The sample deployment files in etc/ agree with each other, the defaults and systemd."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from asterisk_recorder.settings import AgiSettings, AriServerSettings

ETC = Path(__file__).resolve().parents[2] / "etc"
UNIT = ETC / "systemd" / "asterisk-recorder.service"


def _asterisk_conf(path: Path) -> dict[str, list[dict[str, str]]]:
    """Sections of an Asterisk .conf file (repeated names kept apart), comments dropped."""
    sections: dict[str, list[dict[str, str]]] = {}
    current: dict[str, str] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = {}
            sections.setdefault(line[1 : line.index("]")], []).append(current)
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: option outside a section: {line!r}"
        current[key.strip().lstrip(">").strip()] = value.strip()
    return sections


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


class TestSystemdUnit:
    """The unit runs serve with the documented hardening."""

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            (
                "ExecStart",
                "asterisk-recorder serve --config /etc/asterisk-recorder/asterisk-recorder.toml",
            ),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("PrivateTmp", "yes"),
            ("ReadWritePaths", "/var/lib/asterisk-recorder"),
            ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
            ("CapabilityBoundingSet", ""),
            ("SystemCallFilter", "@system-service"),
            ("User", "asterisk-recorder"),
            ("StateDirectory", "asterisk-recorder"),
        ],
    )
    def test_hardening_option_is_set(self, key: str, value: str) -> None:
        """Each hardening option the docs promise is in the unit with that value."""
        assert value in _unit_values(UNIT)[key]

    @pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
    def test_systemd_accepts_every_key(self, tmp_path: Path) -> None:
        """systemd-analyze verify reports nothing (ExecStart swapped for /bin/true here)."""
        unit = tmp_path / "asterisk-recorder.service"
        unit.write_text(
            UNIT.read_text(encoding="utf-8").replace(
                "ExecStart=asterisk-recorder", "ExecStart=/bin/true"
            ),
            encoding="utf-8",
        )
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

        assert (0, "") == (result.returncode, result.stderr.strip())

    def test_sysusers_creates_the_unit_user(self) -> None:
        """The sysusers file creates the user the unit runs as."""
        line = (ETC / "systemd" / "asterisk-recorder.sysusers.conf").read_text().splitlines()[-1]

        assert ["u", "asterisk-recorder"] == line.split()[:2]


class TestAsteriskSamples:
    """ari.conf, http.conf, pjsip.conf and the dialplan samples fit the controller's defaults."""

    def test_ari_user_matches_the_default_username(self) -> None:
        """ari.conf defines the user the controller logs in as, with a placeholder password."""
        user = _asterisk_conf(ETC / "ari.conf")[AriServerSettings().username][0]

        assert ("user", "no") == (user["type"], user["read_only"])
        assert user["password"].startswith("CHANGE-ME")

    def test_ari_channelvars_carry_the_overrides(self) -> None:
        """channelvars sits in [general] and names exactly the three override variables."""
        general = _asterisk_conf(ETC / "ari.conf")["general"][0]

        expected = (
            "RECORDER_POLICY,RECORDER_JURISDICTION,RECORDER_LANGUAGE,RECORDER_CALLED,CALLERID(dnid)"
        )
        assert expected == general["channelvars"]

    def test_http_binds_loopback_on_the_default_ari_port(self) -> None:
        """http.conf listens on 127.0.0.1 at the port of the default [ari] url."""
        general = _asterisk_conf(ETC / "http.conf")["general"][0]
        default = urlsplit(AriServerSettings().url)

        assert ("yes", default.hostname, str(default.port)) == (
            general["enabled"],
            general["bindaddr"],
            general["bindport"],
        )

    def test_fastagi_default_matches_the_dialplan_default(self) -> None:
        """recorder.conf falls back to the FastAGI host and port the server listens on."""
        text = (ETC.parent / "dialplan" / "recorder.conf").read_text(encoding="utf-8")
        agi = AgiSettings()

        assert f"Set(RECORDER_AGI_TARGET={agi.host})" in text
        assert f"Set(RECORDER_AGI_TARGET_PORT={agi.port})" in text

    def test_stasis_default_app_matches_the_controller_default(self) -> None:
        """recorder.conf falls back to the Stasis app name the controller registers."""
        text = (ETC.parent / "dialplan" / "recorder.conf").read_text(encoding="utf-8")

        assert f"Set(RECORDER_APP_NAME={AriServerSettings().app})" in text

    def test_softphone_endpoint_lands_in_the_demo_context(self) -> None:
        """The softphone endpoint, auth and aor exist; its context is in extensions.conf."""
        pjsip = _asterisk_conf(ETC / "pjsip.conf")
        types = sorted(section["type"] for section in pjsip["softphone"])
        endpoint = next(s for s in pjsip["softphone"] if s["type"] == "endpoint")
        extensions = _asterisk_conf(ETC / "extensions.conf")

        assert ["aor", "auth", "endpoint"] == types
        assert "rfc4733" == endpoint["dtmf_mode"]
        assert endpoint["context"] in extensions
