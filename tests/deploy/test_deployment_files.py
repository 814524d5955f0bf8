"""Checks of the deployment files that need no Docker engine and no Asterisk.

This module owns the static checks of ``docker/`` (compose file, controller Dockerfile, the
verify-native.sh re-enactment and its compose reader, the demo extensions it documents), of the
sample disclosure prompts (``asterisk_recorder/sounds``) and of the e2e suite's Asterisk runtime
configuration (``tests/e2e/asterisk`` + ``run_local_asterisk.sh``): paths they reference exist,
secrets and names agree with the ``etc/`` samples, nothing builds Asterisk. It must not start
containers or Asterisk.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import subprocess
import sys
import wave
from pathlib import Path
from types import ModuleType

import pytest

from asterisk_recorder import config
from asterisk_recorder.flow.settings import FlowSettings, PromptSettings

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
SOUNDS = REPO / "asterisk_recorder" / "sounds"
E2E = REPO / "tests" / "e2e"


def compose_services() -> dict[str, str]:
    """The text of each service block of compose.yaml (two-space indented keys of services:)."""
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    in_services = False
    for line in COMPOSE.read_text().splitlines():
        if re.match(r"^\S", line):
            in_services = line.startswith("services:")
            current = None
            continue
        match = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if in_services and match:
            current = match.group(1)
            blocks[current] = []
        elif in_services and current is not None:
            blocks[current].append(line)
    return {name: "\n".join(lines) for name, lines in blocks.items()}


def ari_conf(path: Path) -> configparser.ConfigParser:
    """An Asterisk ``.conf`` file read as INI (``;`` comments, repeated sections merged)."""
    parser = configparser.ConfigParser(
        strict=False, inline_comment_prefixes=(";",), comment_prefixes=(";",), interpolation=None
    )
    parser.read_string(path.read_text())
    return parser


def test_compose_has_asterisk_postgres_and_the_controller() -> None:
    """The compose file defines exactly the three services of the demo stack."""
    assert ["asterisk", "postgres", "asterisk-recorder"] == list(compose_services())


def test_compose_uses_a_published_asterisk_22_image_and_builds_only_the_controller() -> None:
    """Asterisk comes from a published 22.x image; the only build is the controller's."""
    services = compose_services()
    assert re.search(
        r"^\s+image: andrius/asterisk:22\.\d+\.\d+_debian-\w+$", services["asterisk"], re.M
    )
    assert "build:" not in services["asterisk"]
    assert re.search(r"^\s+image: postgres:15$", services["postgres"], re.M)
    assert "dockerfile: docker/Dockerfile" in services["asterisk-recorder"]
    assert 1 == COMPOSE.read_text().count("build:")


def test_compose_bind_mounts_point_at_files_in_the_repository() -> None:
    """Every host path compose mounts (etc/ samples, dialplan, prompts) exists."""
    mounts = re.findall(r"^\s+- (\.\.?/[^:]+):", COMPOSE.read_text(), re.M)
    assert 10 <= len(mounts)
    missing = [m for m in mounts if not (DOCKER / m).exists()]
    assert [] == missing
    assert "../dialplan/recorder.conf" in mounts
    assert "../etc/ari.conf" in mounts


DOTENV_ARI = {"ASTERISK_RECORDER_ARI_PASSWORD": "a-real-ari-password"}
"""The real ARI password an operator puts in docker/.env (the samples' placeholder is refused)."""


def test_compose_controller_password_matches_the_sample_ari_conf() -> None:
    """The default ARI password and user of the controller are those of etc/ari.conf."""
    controller = compose_services()["asterisk-recorder"]
    match = re.search(r"ASTERISK_RECORDER_ARI_PASSWORD: \$\{ARI_PASSWORD:-([^}]+)\}", controller)
    assert match is not None
    settings = config.load(REPO / "etc" / "asterisk-recorder.toml", env=DOTENV_ARI)
    user = settings.ari[0].username
    ari = ari_conf(REPO / "etc" / "ari.conf")
    assert "user" == ari.get(user, "type")
    assert ari.get(user, "password") == match.group(1)


def test_compose_controller_shares_asterisk_network_and_checks_readyz() -> None:
    """ARI stays on loopback (shared namespace) and health checks hit /readyz."""
    controller = compose_services()["asterisk-recorder"]
    assert "network_mode: service:asterisk" in controller
    assert "http://127.0.0.1:8090/readyz" in controller
    assert "condition: service_healthy" in controller
    assert '"127.0.0.1:8090:8090"' in compose_services()["asterisk"]


def test_compose_environment_is_accepted_by_the_configuration_loader() -> None:
    """The ASTERISK_RECORDER_* variables compose sets (with docker/.env's secrets) load clean."""
    controller = compose_services()["asterisk-recorder"]
    env = dict(re.findall(r"^\s+(ASTERISK_RECORDER_[A-Z_]+): (.+)$", controller, re.M))
    dotenv = {"ARI_PASSWORD": "a-real-ari-password", "POSTGRES_PASSWORD": "0123456789abcdef"}
    env = {k: re.sub(r"\$\{([A-Z_]+):-([^}]*)\}", lambda m: dotenv.get(m[1], m[2]), v)
           for k, v in env.items()}
    env.pop("ASTERISK_RECORDER_CONFIG")
    settings = config.load(REPO / "etc" / "asterisk-recorder.toml", env=env)
    assert "0.0.0.0" == settings.http.host
    assert "compose" == settings.instance_id
    assert settings.database.dsn.value.startswith("postgresql://asterisk_recorder:")


def test_dockerfile_runs_unprivileged_serve_with_a_readyz_healthcheck() -> None:
    """The controller image: non-root user, HEALTHCHECK on /readyz, runs serve."""
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert ["10001:10001"] == users
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/readyz", text, re.M)
    assert 'ENTRYPOINT ["asterisk-recorder"]' in text
    assert 'CMD ["serve"]' in text


def test_nothing_in_docker_builds_asterisk() -> None:
    """No configure/make/module-selection recipe, no Asterisk source download under docker/."""
    # The pattern is assembled so that this test is not itself mistaken for such a recipe.
    selector = "menu" + "select"
    forbidden = re.compile(
        rf"{selector}|\./configure|make install|asterisk-\d+.*\.tar|downloads\.asterisk"
    )
    offenders = [
        str(p.relative_to(REPO))
        for p in DOCKER.rglob("*")
        if p.is_file() and forbidden.search(p.read_text(errors="replace"))
    ]
    assert [] == offenders


def test_dockerignore_sends_only_the_package() -> None:
    """The build context of the controller image is the package, pyproject and README."""
    lines = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in lines
    assert {"!pyproject.toml", "!README.md", "!asterisk_recorder/"} <= set(lines)


DEFAULT_PROMPTS = [
    PromptSettings().opt_out,
    PromptSettings().opt_in,
    PromptSettings().announce,
]


@pytest.mark.parametrize("sound_id", DEFAULT_PROMPTS)
def test_default_prompt_is_an_8khz_16bit_mono_wav_with_its_text(sound_id: str) -> None:
    """Each default sound id has a short 8 kHz 16-bit mono wav and the text beside it."""
    path = SOUNDS / "en" / f"{sound_id}.wav"
    with wave.open(str(path)) as wav:
        assert (1, 2, 8000) == (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        seconds = wav.getnframes() / wav.getframerate()
    assert 1.0 < seconds < 10.0
    assert path.with_suffix(".txt").read_text().strip()


def test_prompt_texts_name_the_default_keys() -> None:
    """The words spoken name the keys the flow actually listens for."""
    flow = FlowSettings()
    opt_out = (SOUNDS / "en" / "recorder" / "consent-opt-out.txt").read_text()
    opt_in = (SOUNDS / "en" / "recorder" / "consent-opt-in.txt").read_text()
    assert f"press {flow.opt_out_key}" in opt_out
    assert f"allow recording, press {flow.opt_in_accept_key}" in opt_in
    assert f"refuse, press {flow.opt_in_decline_key}" in opt_in


def test_sample_prompts_stay_small() -> None:
    """All shipped sound files together stay under 300 kB."""
    total = sum(p.stat().st_size for p in SOUNDS.rglob("*") if p.is_file())
    assert total < 300_000


def test_e2e_placeholders_are_all_filled_by_the_runner() -> None:
    """Every @NAME@ in tests/e2e/asterisk/*.conf is substituted by run_local_asterisk.sh."""
    used = {
        token
        for conf in (E2E / "asterisk").glob("*.conf")
        for token in re.findall(r"@([A-Z_]+)@", conf.read_text())
    }
    script = (E2E / "run_local_asterisk.sh").read_text()
    substituted = set(re.findall(r'-e "s\|@([A-Z_]+)@\|', script))
    assert {"RUN", "MODDIR", "HTTP_PORT", "ARI_PASSWORD"} <= used
    assert set() == used - substituted


def test_e2e_dialplan_includes_the_project_dialplan() -> None:
    """The e2e Asterisk runs the shipped dialplan/recorder.conf, not a copy."""
    extensions = (E2E / "asterisk" / "extensions.conf").read_text()
    assert '#include "recorder.conf"' in extensions
    assert 'ln -sf "$repo/dialplan/recorder.conf"' in (E2E / "run_local_asterisk.sh").read_text()


def test_e2e_ari_channelvars_match_the_sample() -> None:
    """The e2e Asterisk exposes the same override variables to ARI as the etc/ sample."""
    sample = ari_conf(REPO / "etc" / "ari.conf").get("general", "channelvars")
    e2e = ari_conf(E2E / "asterisk" / "ari.conf").get("general", "channelvars")
    assert sample == e2e


def test_run_local_asterisk_refuses_a_missing_binary(tmp_path: Path) -> None:
    """Without an installed Asterisk the runner exits 2 with a clear message, builds nothing."""
    result = subprocess.run(
        ["bash", str(E2E / "run_local_asterisk.sh"), str(tmp_path / "run")],
        env={"PATH": "/usr/bin:/bin", "ASTERISK_BIN": str(tmp_path / "no-asterisk")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert 2 == result.returncode
    assert "no Asterisk binary at" in result.stderr
    assert not (tmp_path / "run").exists()


def test_run_local_asterisk_refuses_unsafe_credentials(tmp_path: Path) -> None:
    """An ARI password that would break the generated config is refused before anything runs."""
    fake = tmp_path / "sbin" / "asterisk"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    (tmp_path / "lib" / "asterisk" / "modules").mkdir(parents=True)
    result = subprocess.run(
        ["bash", str(E2E / "run_local_asterisk.sh"), str(tmp_path / "run")],
        env={"PATH": "/usr/bin:/bin", "ASTERISK_BIN": str(fake), "E2E_ARI_PASSWORD": "a|b\nc"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert 2 == result.returncode
    assert "must match" in result.stderr
    assert not (tmp_path / "run").exists()


VERIFY = DOCKER / "verify-native.sh"


def compose_facts_module() -> ModuleType:
    """docker/verify-native/compose_facts.py, imported from its path (it is not a package)."""
    path = DOCKER / "verify-native" / "compose_facts.py"
    spec = importlib.util.spec_from_file_location("compose_facts", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compose_facts"] = module
    spec.loader.exec_module(module)
    return module


def test_verify_native_reads_every_mount_and_health_check_of_compose() -> None:
    """The re-enactment mounts what compose mounts and runs compose's health checks."""
    facts = compose_facts_module()
    services = facts.compose_services(COMPOSE.read_text(), {})
    mounts = re.findall(r"^\s+- (\.\.?/[^:]+):", compose_services()["asterisk"], re.M)
    assert ["asterisk", "postgres", "asterisk-recorder"] == list(services)
    assert mounts == [v.split(":")[0] for v in services["asterisk"].volumes if v.startswith(".")]
    assert ["CMD", "asterisk", "-rx", "core waitfullybooted"] == services["asterisk"].healthcheck
    assert ["CMD", "pg_isready"] == services["postgres"].healthcheck[:2]
    assert "/readyz" in services["asterisk-recorder"].healthcheck[-1]
    assert "change-me" == services["postgres"].environment["POSTGRES_PASSWORD"]


def test_verify_native_interpolates_like_compose() -> None:
    """${VAR:-default} takes the environment's non-empty value, else the default."""
    facts = compose_facts_module()
    assert "v" == facts.interpolate("${X:-d}", {"X": "v"})
    assert "d" == facts.interpolate("${X:-d}", {"X": ""})
    assert "a-d-b" == facts.interpolate("a-${X:-d}-b", {})


def test_verify_native_runs_the_dockerfile_user_env_and_commands() -> None:
    """USER, ENV, ENTRYPOINT, CMD and HEALTHCHECK are read from the Dockerfile as written."""
    image = compose_facts_module().dockerfile_facts(DOCKERFILE.read_text())
    assert "10001:10001" == image.user
    assert (["asterisk-recorder"], ["serve"]) == (image.entrypoint, image.cmd)
    assert "python" == image.healthcheck[0]
    assert "/readyz" in image.healthcheck[-1]
    assert "/var/lib/asterisk-recorder/spool" == image.env["ASTERISK_RECORDER_LEDGER_SPOOL_DIR"]
    assert "/var/lib/asterisk-recorder" == image.workdir


def test_compose_facts_refuses_a_shell_form_health_check(tmp_path: Path) -> None:
    """A health check the script could not run as written is a usage error, not a guess."""
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n  one:\n    image: x\n    healthcheck:\n      test: curl -f http://x\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            str(DOCKER / "verify-native" / "compose_facts.py"),
            str(compose),
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert 2 == result.returncode
    assert "healthcheck test must start with CMD" in result.stderr


def test_verify_native_fills_every_sipp_placeholder() -> None:
    """Every @NAME@ of the SIPp templates in docker/verify-native/ is substituted by the script."""
    used = {
        token
        for scenario in (DOCKER / "verify-native").glob("*.xml")
        for token in re.findall(r"@([A-Z_]+)@", scenario.read_text())
    }
    substituted = set(re.findall(r'-e "s\|@([A-Z_]+)@\|', VERIFY.read_text()))
    assert {"BEFORE_MS", "PCAP", "SPEECH", "AFTER_MS"} <= used
    assert set() == used - substituted


def test_verify_native_refuses_a_missing_asterisk_and_creates_nothing(tmp_path: Path) -> None:
    """Without root or an installed Asterisk it exits 2 with a clear message, builds nothing."""
    result = subprocess.run(
        ["bash", str(VERIFY), str(tmp_path / "work")],
        env={"PATH": "/usr/bin:/bin", "ASTERISK_BIN": str(tmp_path / "no-asterisk")},
        capture_output=True,
        text=True,
        check=False,
    )
    expected = "no Asterisk binary at" if os.geteuid() == 0 else "run as root"
    assert 2 == result.returncode
    assert expected in result.stderr
    assert not (tmp_path / "work").exists()


def demo_extensions() -> list[str]:
    """The extensions of [recorder-demo] in etc/extensions.conf, in order."""
    text = (REPO / "etc" / "extensions.conf").read_text()
    section = text.split("[recorder-demo]", 1)[1].split("\n[", 1)[0]
    return re.findall(r"^exten => (\w+),1,", section, re.M)


def test_docker_docs_list_exactly_the_demo_extensions() -> None:
    """install-docker.md's dial table names every extension of [recorder-demo], no other."""
    doc = (REPO / "docs" / "install-docker.md").read_text()
    table = re.findall(r"^\| `(\d+)` \|", doc, re.M)
    assert ["100", "101", "102", "103", "200"] == demo_extensions()
    assert demo_extensions() == table


def test_demo_extensions_force_the_modes_they_are_documented_with() -> None:
    """102 forces opt_in (channel variable), 103 forces opt_out (Gosub argument)."""
    text = (REPO / "etc" / "extensions.conf").read_text()
    assert re.search(r"^exten => 102,1,.*\n same => n,Set\(RECORDER_POLICY=opt_in\)", text, re.M)
    assert re.search(
        r"^exten => 103,1,.*\n same => n,Gosub\(recorder-consent,s,1\(opt_out,en\)\)", text, re.M
    )


def test_docker_docs_explain_verifying_without_docker() -> None:
    """The re-enactment is documented where the compose file is, with its script's name."""
    doc = (REPO / "docs" / "install-docker.md").read_text()
    section = doc.split("## Verifying without Docker", 1)[1].split("\n## ", 1)[0]
    assert "docker/verify-native.sh" in section
    assert "ASTERISK_SAMPLES" in section
