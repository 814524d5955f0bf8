"""Read docker/compose.yaml and docker/Dockerfile for verify-native.sh (stdlib only, no PyYAML).

Prints shell-quoted assignments the script evaluates: per service its volumes, its environment
(with compose's ``${VAR:-default}`` interpolation from this process's environment) and its
health-check command; from the Dockerfile its ENV, USER, WORKDIR, ENTRYPOINT, CMD and
HEALTHCHECK. Understands exactly the subset of YAML those two files use; anything else in the
places it reads is an error, so the re-enactment can never silently drift from the files.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from pathlib import Path

__all__ = ["compose_services", "dockerfile_facts", "interpolate", "main"]

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution."""
    return INTERPOLATION.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def compose_services(text: str, env: dict[str, str]) -> dict[str, dict[str, object]]:
    """Services with ``volumes`` (list of str), ``environment`` (dict) and ``healthcheck`` (list)."""
    services: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    key: str | None = None
    in_services = False
    test_inline: list[str] | None = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if re.match(r"^\S", line):
            in_services = line.startswith("services:")
            current = None
            continue
        if not in_services:
            continue
        if m := re.match(r"^  ([A-Za-z0-9_-]+):$", line):
            current = services.setdefault(
                m.group(1), {"volumes": [], "environment": {}, "healthcheck": []}
            )
            key = None
            continue
        if current is None:
            continue
        if m := re.match(r"^    ([a-z_]+):(.*)$", line):
            key = m.group(1)
            rest = m.group(2).strip()
            continue
        if key == "volumes" and (m := re.match(r"^      - (.+)$", line)):
            volumes = current["volumes"]
            assert isinstance(volumes, list)
            volumes.append(_unquote(m.group(1)))
        elif key == "environment" and (m := re.match(r"^      ([A-Z0-9_]+): (.*)$", line)):
            environment = current["environment"]
            assert isinstance(environment, dict)
            environment[m.group(1)] = interpolate(_unquote(m.group(2)), env)
        elif key == "healthcheck":
            if m := re.match(r"^      test: \[(.*)\]$", line):
                current["healthcheck"] = json.loads(f"[{m.group(1)}]")
            elif re.match(r"^      test:$", line):
                test_inline = []
                current["healthcheck"] = test_inline
            elif test_inline is not None and (m := re.match(r"^        - (.+)$", line)):
                test_inline.append(_unquote(m.group(1)))
            else:
                test_inline = None
    return services


def dockerfile_facts(text: str) -> dict[str, object]:
    """ENV (of the final stage), USER, WORKDIR, ENTRYPOINT, CMD and the HEALTHCHECK command."""
    joined = re.sub(r"\\\n", " ", text)
    stages = re.split(r"^FROM .*$", joined, flags=re.M)
    final = stages[-1]
    env: dict[str, str] = {}
    facts: dict[str, object] = {"env": env}
    for line in final.splitlines():
        line = line.strip()
        if line.startswith("ENV "):
            for token in shlex.split(line[4:]):
                name, _, value = token.partition("=")
                env[name] = value
        elif line.startswith("USER "):
            facts["user"] = line[5:].strip()
        elif line.startswith("WORKDIR "):
            facts["workdir"] = line[8:].strip()
        elif line.startswith("ENTRYPOINT "):
            facts["entrypoint"] = json.loads(line[11:])
        elif line.startswith("CMD "):
            facts["cmd"] = json.loads(line[4:])
        elif line.startswith("HEALTHCHECK "):
            facts["healthcheck"] = json.loads(line.split(" CMD ", 1)[1])
    return facts


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
        volumes = service["volumes"]
        environment = service["environment"]
        healthcheck = service["healthcheck"]
        assert isinstance(volumes, list) and isinstance(environment, dict)
        assert isinstance(healthcheck, list)
        out.append(f"{var}_VOLUMES=({' '.join(shlex.quote(v) for v in volumes)})")
        out.append(
            f"{var}_ENV=({' '.join(shlex.quote(f'{k}={v}') for k, v in environment.items())})"
        )
        if healthcheck[:1] != ["CMD"]:
            print(f"compose_facts: {name}: healthcheck test must start with CMD", file=sys.stderr)
            return 2
        out.append(f"{var}_HEALTH=({' '.join(shlex.quote(v) for v in healthcheck[1:])})")
    facts = dockerfile_facts(dockerfile.read_text())
    env_facts = facts["env"]
    assert isinstance(env_facts, dict)
    out.append(f"IMAGE_ENV=({' '.join(shlex.quote(f'{k}={v}') for k, v in env_facts.items())})")
    for key in ("entrypoint", "cmd", "healthcheck"):
        value = facts[key]
        assert isinstance(value, list)
        out.append(f"IMAGE_{key.upper()}=({' '.join(shlex.quote(v) for v in value)})")
    out.append(f"IMAGE_USER={shlex.quote(str(facts['user']))}")
    out.append(f"IMAGE_WORKDIR={shlex.quote(str(facts['workdir']))}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
