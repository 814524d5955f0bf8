"""Read docker/compose.yaml and docker/Dockerfile for verify-native.sh (stdlib only, no PyYAML).

Prints shell-quoted assignments the script evaluates: per service its volumes, its environment
(with compose's ``${VAR:-default}`` interpolation from this process's environment) and its
health-check command; from the Dockerfile its ENV, USER, WORKDIR, ENTRYPOINT, CMD and
HEALTHCHECK. Understands the subset of YAML compose.yaml uses (block mappings, short volume
syntax, ``test:`` as a flow or block list); a health check that is not ``CMD`` form, or a
Dockerfile without USER, ENTRYPOINT or HEALTHCHECK, is an error (exit 2). It must not start,
build or write anything.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Image", "Service", "compose_services", "dockerfile_facts", "interpolate", "main"]


@dataclass(slots=True)
class Service:
    """What verify-native.sh needs of one compose service."""

    volumes: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    healthcheck: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Image:
    """What verify-native.sh needs of the Dockerfile's final stage."""

    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution."""
    return INTERPOLATION.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def compose_services(text: str, env: dict[str, str]) -> dict[str, Service]:
    """The services of compose.yaml: volumes, environment (interpolated) and health check."""
    services: dict[str, Service] = {}
    current: Service | None = None
    key: str | None = None
    in_services = False
    test_block = False
    for raw in text.splitlines():
        line = "" if raw.lstrip().startswith("#") else raw.rstrip()
        if not line.strip():
            continue
        if re.match(r"^\S", line):
            in_services = line.startswith("services:")
            current = None
            continue
        if not in_services:
            continue
        if m := re.match(r"^  ([A-Za-z0-9_-]+):$", line):
            current = services.setdefault(m.group(1), Service())
            key = None
            continue
        if current is None:
            continue
        if m := re.match(r"^    ([a-z_]+):", line):
            key = m.group(1)
            continue
        if key == "volumes" and (m := re.match(r"^      - (.+)$", line)):
            current.volumes.append(_unquote(m.group(1)))
        elif key == "environment" and (m := re.match(r"^      ([A-Z0-9_]+): (.*)$", line)):
            current.environment[m.group(1)] = interpolate(_unquote(m.group(2)), env)
        elif key == "healthcheck":
            if m := re.match(r"^      test: \[(.*)\]$", line):
                current.healthcheck = json.loads(f"[{m.group(1)}]")
                test_block = False
            elif re.match(r"^      test:$", line):
                test_block = True
            elif test_block and (m := re.match(r"^        - (.+)$", line)):
                current.healthcheck.append(_unquote(m.group(1)))
            else:
                test_block = False
    return services


def dockerfile_facts(text: str) -> Image:
    """ENV (of the final stage), USER, WORKDIR, ENTRYPOINT, CMD and the HEALTHCHECK command."""
    joined = re.sub(r"\\\n", " ", text)
    final = re.split(r"^FROM .*$", joined, flags=re.M)[-1]
    image = Image()
    for raw in final.splitlines():
        line = raw.strip()
        if line.startswith("ENV "):
            for token in shlex.split(line[4:]):
                name, _, value = token.partition("=")
                image.env[name] = value
        elif line.startswith("USER "):
            image.user = line[5:].strip()
        elif line.startswith("WORKDIR "):
            image.workdir = line[8:].strip()
        elif line.startswith("ENTRYPOINT "):
            image.entrypoint = json.loads(line[11:])
        elif line.startswith("CMD "):
            image.cmd = json.loads(line[4:])
        elif line.startswith("HEALTHCHECK "):
            image.healthcheck = json.loads(line.split(" CMD ", 1)[1])
    return image


def _array(name: str, values: list[str]) -> str:
    return f"{name}=({' '.join(shlex.quote(v) for v in values)})"


def main(argv: list[str]) -> int:
    """``compose_facts.py COMPOSE DOCKERFILE``: print the facts as shell assignments."""
    compose, dockerfile = (Path(a) for a in argv[1:3])
    env = dict(os.environ)
    dotenv = compose.parent / ".env"
    if dotenv.is_file():
        for line in dotenv.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                name, _, value = line.partition("=")
                env.setdefault(name.strip(), _unquote(value))
    services = compose_services(compose.read_text(), env)
    out: list[str] = []
    for name, service in services.items():
        var = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
        if service.healthcheck[:1] != ["CMD"]:
            print(f"compose_facts: {name}: healthcheck test must start with CMD", file=sys.stderr)
            return 2
        out.append(_array(f"{var}_VOLUMES", service.volumes))
        out.append(_array(f"{var}_ENV", [f"{k}={v}" for k, v in service.environment.items()]))
        out.append(_array(f"{var}_HEALTH", service.healthcheck[1:]))
    image = dockerfile_facts(dockerfile.read_text())
    if not (image.user and image.entrypoint and image.healthcheck):
        print("compose_facts: Dockerfile without USER, ENTRYPOINT or HEALTHCHECK", file=sys.stderr)
        return 2
    out.append(_array("IMAGE_ENV", [f"{k}={v}" for k, v in image.env.items()]))
    out.append(_array("IMAGE_ENTRYPOINT", image.entrypoint))
    out.append(_array("IMAGE_CMD", image.cmd))
    out.append(_array("IMAGE_HEALTHCHECK", image.healthcheck))
    out.append(f"IMAGE_USER={shlex.quote(image.user)}")
    out.append(f"IMAGE_WORKDIR={shlex.quote(image.workdir)}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
