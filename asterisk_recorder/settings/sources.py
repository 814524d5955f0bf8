"""Gathering raw configuration values from the TOML file, the environment and overrides.

This module owns ``Gather`` (the problems found so far, the raw values by dotted key with their
source, the named ARI servers in order) and the three readers: ``read_file`` (one TOML file),
``read_env`` (``ASTERISK_RECORDER_*``, later wins over the file) and ``read_overrides`` (flags,
last). Unknown keys and variables are problems that suggest the closest valid name; removed keys
say why they went. It reads only the one file it is given; it must not convert or check values
(``loader`` does), and must not log.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from asterisk_recorder.settings.schema import (
    ARI_KEYS,
    BY_ENV,
    BY_KEY,
    CONFIG_ENV,
    ENV_PREFIX,
    REMOVED,
    RESERVED_ENV,
    SCHEMA,
    SECTION_NAMES,
    SERVERS,
    KeyInfo,
    env_name,
)
from asterisk_recorder.settings.values import Raw, show, type_name

__all__ = [
    "Gather",
    "read_env",
    "read_file",
    "read_overrides",
]


@dataclasses.dataclass(slots=True)
class Gather:
    """What loading has found so far: problems, raw values by dotted key, named servers."""

    problems: list[str]
    values: dict[str, Raw] = dataclasses.field(default_factory=dict)
    servers: list[str] = dataclasses.field(default_factory=list)  # named ARI servers, in order
    file_failed: bool = False  # the file could not be read: checks of absent keys are moot
    require_ari_password: bool = True  # False for commands that never talk to ARI
    require_database: bool = False  # True for production commands (serve): no silent embedded


def _suggest(word: str, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _all_key_names() -> list[str]:
    return [*(k.key for k in SCHEMA), *SECTION_NAMES, "ari.servers"]


_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")


def read_file(path: Path, gather: Gather) -> None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        gather.problems.append(f"{path}: configuration file not found")
        gather.file_failed = True
        return
    except OSError as exc:
        gather.problems.append(f"{path}: cannot read configuration file ({exc.strerror})")
        gather.file_failed = True
        return
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        gather.problems.append(f"{path}: not UTF-8 text (byte {exc.start})")
        gather.file_failed = True
        return
    except tomllib.TOMLDecodeError as exc:
        gather.problems.append(f"{path}: invalid TOML: {exc}")
        gather.file_failed = True
        return
    base = path.resolve().parent
    where = f"in {path}"
    source = str(path)

    def unknown(key: str) -> None:
        if key in REMOVED:
            gather.problems.append(f"{key}: no longer a setting ({REMOVED[key]}); remove it "
                                   f"{where}")
            return
        gather.problems.append(f"{key}: unknown key {where}{_suggest(key, _all_key_names())}")

    def take_table(prefix: str, table: Mapping[str, Any], allowed: Mapping[str, KeyInfo],
                   subtables: Mapping[str, Callable[[str, object], None]]) -> None:
        for name, value in table.items():
            key = f"{prefix}.{name}" if prefix else name
            if name in subtables:
                subtables[name](key, value)
            elif name in allowed:
                gather.values[allowed[name].key] = Raw(value, source, False, base)
            else:
                unknown(key)

    def section_keys(section: str) -> dict[str, KeyInfo]:
        return {k.name: k for k in SCHEMA if k.section == section}

    def need_table(key: str, value: object) -> bool:
        if isinstance(value, dict):
            return True
        gather.problems.append(f"{key}: expected a table [{key}], got {type_name(value)}")
        return False

    def servers(key: str, value: object) -> None:
        if not need_table(key, value):
            return
        assert isinstance(value, dict)
        for name, table in value.items():
            skey = f"{key}.{name}"
            if not _SERVER_NAME.match(name):
                gather.problems.append(
                    f"{skey}: {show(name)} is not a valid server name (1-32 letters, digits, "
                    "'_' or '-')")
                continue
            if name == "default":
                gather.problems.append(
                    f"{skey}: the name \"default\" is taken by the [ari] table itself")
                continue
            if not need_table(skey, table):
                continue
            assert isinstance(table, dict)
            if name not in gather.servers:
                gather.servers.append(name)
            for kname, kvalue in table.items():
                if kname in ARI_KEYS:
                    gather.values[f"{skey}.{kname}"] = Raw(kvalue, source, False, base)
                else:
                    unknown(f"{skey}.{kname}")

    def section(name: str) -> Callable[[str, object], None]:
        subs: dict[str, Callable[[str, object], None]] = {}
        if name == "ari":
            subs[SERVERS] = servers
        for sub in SECTION_NAMES:
            if sub.startswith(name + "."):
                subs[sub.split(".", 1)[1]] = section(sub)

        def take(key: str, value: object) -> None:
            if need_table(key, value):
                assert isinstance(value, dict)
                take_table(name, value, section_keys(name), subs)

        return take

    top_subs = {s: section(s) for s in SECTION_NAMES if "." not in s}
    take_table("", doc, section_keys(""), top_subs)


def _server_env(rest: str, gather: Gather) -> str | None:
    """Map ``<NAME>_<KEY>`` of ``ASTERISK_RECORDER_ARI_SERVERS_<NAME>_<KEY>`` to a dotted key."""
    for kname in sorted(ARI_KEYS, key=len, reverse=True):
        suffix = "_" + kname.upper()
        if rest.endswith(suffix) and len(rest) > len(suffix):
            env_name = rest[: -len(suffix)]
            for existing in gather.servers:
                if re.sub(r"[^A-Za-z0-9]", "_", existing).upper() == env_name:
                    return f"ari.servers.{existing}.{kname}"
            name = env_name.lower()
            if not _SERVER_NAME.match(name) or name == "default":
                return None
            gather.servers.append(name)
            return f"ari.servers.{name}.{kname}"
    return None


def read_env(env: Mapping[str, str], gather: Gather) -> None:
    server_prefix = env_name("ari.servers") + "_"
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV or RESERVED_ENV.match(var):
            continue
        value = env[var]
        if var in BY_ENV:
            gather.values[BY_ENV[var].key] = Raw(value, var, True)
            continue
        if var.startswith(server_prefix):
            key = _server_env(var[len(server_prefix):], gather)
            if key is not None:
                gather.values[key] = Raw(value, var, True)
                continue
        removed = next((k for k in REMOVED if env_name(k) == var), None)
        if removed is not None:
            gather.problems.append(f"{var}: no longer a setting ({REMOVED[removed]}); unset it")
            continue
        hint = _suggest(var, [*BY_ENV, CONFIG_ENV]) or (
            "; see docs/configuration.md for the variables asterisk-recorder reads")
        gather.problems.append(f"{var}: unknown environment variable{hint}")


def read_overrides(overrides: Mapping[str, object], gather: Gather) -> None:
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) == 4 and parts[:2] == ["ari", SERVERS] and parts[3] in ARI_KEYS:
            if not _SERVER_NAME.match(parts[2]) or parts[2] == "default":
                gather.problems.append(f"{key}: {show(parts[2])} is not a valid server name")
                continue
            if parts[2] not in gather.servers:
                gather.servers.append(parts[2])
        elif key in REMOVED:
            gather.problems.append(f"{key}: no longer a setting ({REMOVED[key]})")
            continue
        elif key not in BY_KEY:
            gather.problems.append(
                f"{key}: unknown configuration key{_suggest(key, _all_key_names())}")
            continue
        gather.values[key] = Raw(value, f"override {key}", isinstance(value, str))
