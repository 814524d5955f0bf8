"""Loading and validating asterisk-recorder's configuration.

This module owns turning one TOML file, the ``ASTERISK_RECORDER_*`` environment and command-line
overrides (in that order of precedence, last wins) into the frozen dataclasses of
``settings.py`` and ``flow/settings.py``, validated once. The accepted keys are derived from
those dataclasses' fields, so the schema, the sample file and the reference cannot drift.
Every problem is collected and raised together as one ``ConfigError``; each names the key, the
bad value (never a secret's) and what is allowed. It also renders the effective configuration
(secrets masked), the sample file and the reference tables. It must not start anything, open
network connections or log: it only reads the one file it is given.

Layout: top-level ``instance_id``; ``[ari]`` is the ARI server named ``default`` and
``[ari.servers.<name>]`` adds more; ``[agi]``, ``[database]``, ``[ledger]``, ``[policy]``,
``[flow]``, ``[flow.prompts]``, ``[recording]`` (``FlowSettings.recording``), ``[http]``,
``[logging]``, ``[controller]``, ``[recordings]``. Environment:
``ASTERISK_RECORDER_<SECTION>_<KEY>`` (``ASTERISK_RECORDER_ARI_SERVERS_<NAME>_<KEY>`` for named
servers; lists comma-separated),
``ASTERISK_RECORDER_CONFIG`` names the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from asterisk_recorder.errors import ConfigError
from asterisk_recorder.flow.settings import FlowSettings, PromptSettings, RecordingSettings
from asterisk_recorder.logs import LEVELS, MASK, mask_url_password
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.settings import (
    AgiSettings,
    AriServerSettings,
    ControllerSettings,
    DatabaseSettings,
    HttpSettings,
    LedgerSettings,
    LoggingSettings,
    PolicySettings,
    RecordingsSettings,
    Secret,
    Settings,
)

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "FILE_FORMATS",
    "KeyInfo",
    "add_config_arguments",
    "load",
    "render_effective",
    "render_reference",
    "render_sample",
    "schema",
    "secret_values",
    "settings_from_args",
]

ENV_PREFIX = "ASTERISK_RECORDER_"
"""Prefix of every environment variable the configuration reads."""

CONFIG_ENV = "ASTERISK_RECORDER_CONFIG"
"""Environment variable naming the TOML file when no path is given."""

_RESERVED_ENV = re.compile(r"ASTERISK_RECORDER_(TEST_DSN|TEST_SEALER_.*|E2E_.*)\Z")
"""Variables of the test suite, ignored by the configuration."""

FILE_FORMATS: tuple[str, ...] = (
    "wav", "wav49", "WAV", "gsm", "sln", "sln16", "ulaw", "alaw", "g722",
)
"""Recording file formats ``recording.file_format`` accepts."""

_LOG_FORMATS: tuple[str, ...] = ("auto", "json", "console")
_RESYNC_ACTIONS: tuple[str, ...] = ("handback", "resume")
_DTMF_KEYS = "0123456789*#"
_SERVERS = "servers"

# ---------------------------------------------------------------------------------------------
# Schema: sections, keys and their help text
# ---------------------------------------------------------------------------------------------

_SECTIONS: tuple[tuple[str, type[Any], frozenset[str], str], ...] = (
    ("ari", AriServerSettings, frozenset({"name"}),
     "The Asterisk server reached over ARI (named `default`); add more with "
     "`[ari.servers.<name>]` tables, which take the same keys and start from the defaults."),
    ("agi", AgiSettings, frozenset(), "The FastAGI server."),
    ("database", DatabaseSettings, frozenset(), "Where the consent ledger lives (PostgreSQL)."),
    ("ledger", LedgerSettings, frozenset(), "How consent decisions are kept."),
    ("policy", PolicySettings, frozenset(), "Which law applies to a call."),
    ("flow", FlowSettings, frozenset({"prompts", "recording"}),
     "Keys, timeouts and retries of the consent flow."),
    ("flow.prompts", PromptSettings, frozenset(), "The disclosure prompts played per mode."),
    ("recording", RecordingSettings, frozenset(),
     "The recording file and MixMonitor options handed to dialplan."),
    ("http", HttpSettings, frozenset(), "Operations HTTP endpoint: /healthz, /readyz, /metrics."),
    ("logging", LoggingSettings, frozenset(), "Log level and format."),
    ("controller", ControllerSettings, frozenset(),
     "Behaviour of the ARI controller around failures and shutdown."),
    ("recordings", RecordingsSettings, frozenset(),
     "The recording lifecycle run by `asterisk-recorder sealer` on the Asterisk host: "
     "closure, sealing at rest, quarantine."),
)

_HELP: dict[str, str] = {
    "instance_id": "Name of this process in the ledger and logs (letters, digits, `.`, `_`, `-`; "
    "at most 64); empty means the host name.",
    "ari.url": "Base URL of Asterisk's HTTP server (http:// or https://; `/ari` is added); "
    "no credentials in it.",
    "ari.username": "ARI user from ari.conf.",
    "ari.password": "Password of that ARI user (secret; required while the server is enabled).",
    "ari.app": "Stasis application name dialplan hands calls to.",
    "ari.request_timeout": "Seconds any single ARI REST request may take.",
    "ari.heartbeat": "WebSocket ping interval in seconds.",
    "ari.reconnect_max": "Cap in seconds of the jittered exponential reconnect backoff.",
    "ari.enabled": "Connect to this server at all; false for an AGI-only deployment.",
    "ari.max_connections": "Most HTTP connections open to this Asterisk at once, the event "
    "WebSocket included; keep the sum over all controllers, plus other HTTP clients, below "
    "Asterisk's http.conf sessionlimit (default 100).",
    "agi.enabled": "Run the FastAGI server.",
    "agi.host": "Address the FastAGI server listens on.",
    "agi.port": "TCP port of the FastAGI server (1-65535).",
    "agi.max_sessions": "Most AGI sessions served at once; more are refused.",
    "agi.read_timeout": "Seconds to wait for Asterisk's answer to an AGI command.",
    "database.dsn": "PostgreSQL DSN (postgresql://user:password@host/db, secret); empty starts "
    "the embedded PostgreSQL.",
    "database.embedded_data_dir": "Absolute data directory of the embedded PostgreSQL; empty "
    "means the user data directory.",
    "database.pool_min": "Fewest pooled connections kept open.",
    "database.pool_max": "Most pooled connections (at least pool_min).",
    "database.connect_timeout": "Seconds to wait for a database connection.",
    "ledger.spool_dir": "Absolute directory of the local spool used while PostgreSQL is away; "
    "empty means the user data directory.",
    "ledger.ack_timeout": "Seconds PostgreSQL has to commit a decision before it is spooled.",
    "ledger.batch_interval": "Group-commit window in seconds (0 commits at once).",
    "ledger.batch_max": "Most decisions per group commit.",
    "ledger.digest_key": "Key of the keyed digests of personal fields (secret); empty creates "
    "a key file beside the spool.",
    "policy.site_jurisdiction": "Your own jurisdiction, counted as a party: a country code "
    "(`US`, `GB`, `DE`) or country-subdivision (`US-CA`).",
    "policy.unknown_mode": "Mode for unknown or withheld numbers: never, opt_in, opt_out, "
    "announce or none.",
    "policy.table_file": "TOML policy table whose rows override the shipped table (relative "
    "paths are relative to this file); empty for none.",
    "policy.allow_channel_override": "Honour the RECORDER_POLICY and RECORDER_JURISDICTION "
    "channel variables.",
    "policy.default_region": "Region used to parse numbers written without `+` (e.g. `US`).",
    "flow.opt_out_key": "DTMF key that refuses recording in opt_out mode (one of 0-9 * #).",
    "flow.opt_in_accept_key": "DTMF key that allows recording in opt_in mode.",
    "flow.opt_in_decline_key": "DTMF key that refuses recording in opt_in mode (not the "
    "accept key).",
    "flow.input_timeout": "Seconds to wait for a key after the disclosure ends.",
    "flow.max_retries": "How often an invalid key (or no key, in opt_in) replays the prompt "
    "(0-10).",
    "flow.play_prompt_for_never": "Play the `never` prompt (when set) before handing back.",
    "flow.play_prompt_for_none": "Play the `none` prompt (when set) before handing back.",
    "flow.answer_channel": "Answer the channel before the disclosure.",
    "flow.guard_timeout": "Longest wait in seconds for the answer or for a prompt to finish "
    "before the flow fails closed (not recorded).",
    "flow.prompts.opt_in": "Sound played in opt_in mode (Asterisk sound id, no extension).",
    "flow.prompts.opt_out": "Sound played in opt_out mode.",
    "flow.prompts.announce": "Sound played in announce mode.",
    "flow.prompts.never": "Sound played in never mode; empty plays nothing.",
    "flow.prompts.none": "Sound played in none mode; empty plays nothing.",
    "flow.prompts.languages": "Languages the sounds exist in (e.g. `en`, `fr_CA`); in the "
    "environment, comma-separated.",
    "flow.prompts.fallback_language": "Language used when the caller's is not available.",
    "flow.prompts.opt_in_accept_after": "Seconds after the opt-in prompt starts from which the "
    "accept key counts as consent (where the prompt names the key); unset: only after the "
    "prompt ended.",
    "recording.directory": "Absolute directory Asterisk writes recordings into (letters, "
    "digits, `/`, `.`, `_`, `-`).",
    "recording.file_format": "Recording format: " + ", ".join(FILE_FORMATS) + ".",
    "recording.mixmonitor_options": "Base MixMonitor options, e.g. `b` (letters, digits and "
    "parentheses only).",
    "recording.start_beep": "Beep when recording starts (adds MixMonitor option `p`).",
    "http.enabled": "Serve the operations HTTP endpoint.",
    "http.host": "Address the operations endpoint listens on.",
    "http.port": "TCP port of the operations endpoint (1-65535).",
    "logging.level": "debug, info, warning, error or critical.",
    "logging.format": "auto (JSON unless stdout is a terminal), json or console.",
    "controller.shutdown_grace": "Seconds in-flight calls get to finish on SIGTERM/SIGINT.",
    "controller.hand_back_retry": "Seconds a failed hand-back is retried while the channel "
    "lives (then the sweep hands the caller back, not recorded).",
    "controller.resync_action": "What to do with channels found in Stasis after a reconnect: "
    "handback (not recorded) or resume.",
    "recordings.sealed_dir": "Absolute directory the sealer writes sealed envelopes into "
    "(not inside recording.directory).",
    "recordings.quarantine_dir": "Absolute directory orphan, declined, replaced and empty "
    "files are moved to (created 0700; same file system as recording.directory).",
    "recordings.key_dir": "Absolute directory of the key-encryption PUBLIC keys the sealer "
    "seals to (never the private keys).",
    "recordings.retention_class": "Retention class whose current key seals new recordings "
    "(lowercase letters, digits, `_`).",
    "recordings.absent_after": "Seconds after a call ended recorded without any file before "
    "its decision gets recording.absent.",
    "recordings.scan_interval": "Seconds between full scans of recording.directory (inotify "
    "covers the time between).",
    "recordings.settle_after": "Seconds without a write after which a scan treats a file "
    "nobody has open as closed.",
    "recordings.orphan_after": "Seconds a file whose decision is not in the ledger yet waits "
    "before it is quarantined as an orphan.",
    "recordings.max_lag": "The sealer's /readyz fails when a closed file has waited this many "
    "seconds to be sealed.",
    "recordings.http_port": "TCP port of the sealer's /healthz, /readyz, /metrics (host and "
    "enabled from [http]).",
}

_SAMPLE_VALUES: dict[str, object] = {"ari.password": "change-me"}
"""Values the sample file shows instead of the default (placeholders for secrets)."""


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    """One configuration key.

    Attributes:
        key: dotted name, ``agi.port`` (``instance_id`` at the top level).
        section: the TOML table, ``agi`` (empty for the top level).
        name: the key inside its table, ``port``.
        type: the field's type (``int``, ``float``, ``bool``, ``str``, ``Secret``, ``Mode``,
            ``tuple[str, ...]``).
        default: the shipped default.
        env: the environment variable that sets it.
        help: what it does.
    """

    key: str
    section: str
    name: str
    type: Any
    default: Any
    env: str
    help: str

    @property
    def secret(self) -> bool:
        """Whether the value is a secret that must never be shown."""
        return self.type is Secret


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace(".", "_")


def _section_keys(section: str, cls: type[Any], exclude: frozenset[str]) -> list[KeyInfo]:
    hints = typing.get_type_hints(cls)
    default = cls()
    out = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        key = f"{section}.{f.name}" if section else f.name
        out.append(KeyInfo(key, section, f.name, hints[f.name], getattr(default, f.name),
                           _env_name(key), _HELP.get(key, "")))
    return out


def _build_schema() -> tuple[KeyInfo, ...]:
    keys: list[KeyInfo] = []
    top_hints = typing.get_type_hints(Settings)
    top_default = Settings()
    for f in dataclasses.fields(Settings):
        if top_hints[f.name] in (str, int, float, bool):
            keys.append(KeyInfo(f.name, "", f.name, top_hints[f.name],
                                getattr(top_default, f.name), _env_name(f.name),
                                _HELP.get(f.name, "")))
    for section, cls, exclude, _doc in _SECTIONS:
        keys.extend(_section_keys(section, cls, exclude))
    envs = [k.env for k in keys]
    if len(set(envs)) != len(envs):  # pragma: no cover - a schema bug, caught by the tests
        raise RuntimeError("two configuration keys map to the same environment variable")
    return tuple(keys)


_SCHEMA = _build_schema()
_BY_KEY = {k.key: k for k in _SCHEMA}
_BY_ENV = {k.env: k for k in _SCHEMA}
_SECTION_NAMES = tuple(s for s, *_ in _SECTIONS)
_ARI_KEYS = {k.name: k for k in _SCHEMA if k.section == "ari"}


def schema() -> tuple[KeyInfo, ...]:
    """Every configuration key, in file order (named ARI servers reuse the ``ari.*`` keys)."""
    return _SCHEMA


# ---------------------------------------------------------------------------------------------
# Gathering raw values from file, environment and overrides
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Raw:
    value: object
    source: str  # "" for the file, else the env var name or the override name
    text: bool  # the value is text to parse (environment, CLI)
    base: Path | None = None  # directory of the config file, for relative paths


@dataclasses.dataclass(slots=True)
class _Gather:
    problems: list[str]
    values: dict[str, _Raw] = dataclasses.field(default_factory=dict)
    servers: list[str] = dataclasses.field(default_factory=list)  # named ARI servers, in order
    file_failed: bool = False  # the file could not be read: checks of absent keys are moot
    require_ari_password: bool = True  # False for commands that never talk to ARI


def _show(value: object, limit: int = 80) -> str:
    """A one-line, quoted rendering of a (non-secret) bad value."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=True)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list | tuple | dict):
        text = json.dumps(value, ensure_ascii=True, default=str)
    else:
        text = str(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _suggest(word: str, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _all_key_names() -> list[str]:
    return [*(k.key for k in _SCHEMA), *_SECTION_NAMES, "ari.servers"]


_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")


def _read_file(path: Path, gather: _Gather) -> None:
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

    def unknown(key: str) -> None:
        gather.problems.append(f"{key}: unknown key {where}{_suggest(key, _all_key_names())}")

    def take_table(prefix: str, table: Mapping[str, Any], allowed: Mapping[str, KeyInfo],
                   subtables: Mapping[str, Callable[[str, object], None]]) -> None:
        for name, value in table.items():
            key = f"{prefix}.{name}" if prefix else name
            if name in subtables:
                subtables[name](key, value)
            elif name in allowed:
                gather.values[allowed[name].key] = _Raw(value, "", False, base)
            else:
                unknown(key)

    def section_keys(section: str) -> dict[str, KeyInfo]:
        return {k.name: k for k in _SCHEMA if k.section == section}

    def need_table(key: str, value: object) -> bool:
        if isinstance(value, dict):
            return True
        gather.problems.append(f"{key}: expected a table [{key}], got {_type_name(value)}")
        return False

    def servers(key: str, value: object) -> None:
        if not need_table(key, value):
            return
        assert isinstance(value, dict)
        for name, table in value.items():
            skey = f"{key}.{name}"
            if not _SERVER_NAME.match(name):
                gather.problems.append(
                    f"{skey}: {_show(name)} is not a valid server name (1-32 letters, digits, "
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
                if kname in _ARI_KEYS:
                    gather.values[f"{skey}.{kname}"] = _Raw(kvalue, "", False, base)
                else:
                    unknown(f"{skey}.{kname}")

    def section(name: str) -> Callable[[str, object], None]:
        subs: dict[str, Callable[[str, object], None]] = {}
        if name == "ari":
            subs[_SERVERS] = servers
        for sub in _SECTION_NAMES:
            if sub.startswith(name + "."):
                subs[sub.split(".", 1)[1]] = section(sub)

        def take(key: str, value: object) -> None:
            if need_table(key, value):
                assert isinstance(value, dict)
                take_table(name, value, section_keys(name), subs)

        return take

    top_subs = {s: section(s) for s in _SECTION_NAMES if "." not in s}
    take_table("", doc, section_keys(""), top_subs)


def _server_env(rest: str, gather: _Gather) -> str | None:
    """Map ``<NAME>_<KEY>`` of ``ASTERISK_RECORDER_ARI_SERVERS_<NAME>_<KEY>`` to a dotted key."""
    for kname in sorted(_ARI_KEYS, key=len, reverse=True):
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


def _read_env(env: Mapping[str, str], gather: _Gather) -> None:
    server_prefix = _env_name("ari.servers") + "_"
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV or _RESERVED_ENV.match(var):
            continue
        value = env[var]
        if var in _BY_ENV:
            gather.values[_BY_ENV[var].key] = _Raw(value, var, True)
            continue
        if var.startswith(server_prefix):
            key = _server_env(var[len(server_prefix):], gather)
            if key is not None:
                gather.values[key] = _Raw(value, var, True)
                continue
        hint = _suggest(var, [*_BY_ENV, CONFIG_ENV]) or (
            "; see docs/configuration.md for the variables asterisk-recorder reads")
        gather.problems.append(f"{var}: unknown environment variable{hint}")


def _read_overrides(overrides: Mapping[str, object], gather: _Gather) -> None:
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) == 4 and parts[:2] == ["ari", _SERVERS] and parts[3] in _ARI_KEYS:
            if not _SERVER_NAME.match(parts[2]) or parts[2] == "default":
                gather.problems.append(f"{key}: {_show(parts[2])} is not a valid server name")
                continue
            if parts[2] not in gather.servers:
                gather.servers.append(parts[2])
        elif key not in _BY_KEY:
            gather.problems.append(
                f"{key}: unknown configuration key{_suggest(key, _all_key_names())}")
            continue
        gather.values[key] = _Raw(value, f"override {key}", isinstance(value, str))


# ---------------------------------------------------------------------------------------------
# Converting and validating values
# ---------------------------------------------------------------------------------------------


class _Bad(Exception):
    """A value problem; the text follows ``<key>: `` in the final message."""


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


_OPTIONAL_NUMBER: Any = float | None
"""An optional number of seconds (``flow.prompts.opt_in_accept_after``); TOML has no null."""


def _convert(info: KeyInfo, raw: _Raw) -> object:
    """Turn a raw value into the field's type or raise ``_Bad`` (never showing a secret)."""
    kind = info.type
    value = raw.value
    if kind == _OPTIONAL_NUMBER:
        if raw.text and isinstance(value, str) and not value.strip():
            return None  # an empty environment variable: unset
        kind = float
    shown = "(value hidden)" if info.secret else _show(value)
    if kind is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise _Bad(f"expected a string, got {_type_name(value)}")
        return Secret(value)
    if kind is str:
        if not isinstance(value, str):
            raise _Bad(f"expected a string, got {_type_name(value)} {shown}")
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if raw.text and isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise _Bad(f"{shown} is not a boolean (true/false, 1/0, yes/no, on/off)")
        raise _Bad(f"expected a boolean (true or false), got {_type_name(value)} {shown}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if raw.text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise _Bad(f"{shown} is not an integer") from None
        raise _Bad(f"expected an integer, got {_type_name(value)} {shown}")
    if kind is float:
        number: float
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif raw.text and isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _Bad(f"{shown} is not a number") from None
        else:
            raise _Bad(f"expected a number, got {_type_name(value)} {shown}")
        if not math.isfinite(number):
            raise _Bad(f"{shown} is not a finite number")
        return number
    if kind is Mode:
        allowed = ", ".join(m.value for m in Mode)
        if not isinstance(value, str):
            raise _Bad(f"expected a mode name ({allowed}), got {_type_name(value)} {shown}")
        try:
            return Mode(value.strip().lower().replace("-", "_"))
        except ValueError:
            raise _Bad(f"{shown} is not a mode (allowed: {allowed})") from None
    if typing.get_origin(kind) is tuple:
        items: list[object]
        if raw.text and isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise _Bad(f"expected an array of strings, got {_type_name(value)} {shown}")
        bad = [item for item in items if not isinstance(item, str)]
        if bad:
            raise _Bad(f"expected an array of strings, got {_type_name(bad[0])} "
                       f"{_show(bad[0])} in it")
        return tuple(typing.cast(list[str], items))
    raise _Bad(f"unsupported setting type {kind!r}")  # pragma: no cover - schema bug


_Check = Callable[[Any], "str | None"]


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else f"{v} is not a valid port (1-65535)"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"{v:g} must be a positive number of seconds (> 0)"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else f"{v:g} must be zero or a positive number of seconds (>= 0)"


def _at_least(low: int, high: int | None = None) -> _Check:
    def check(v: int) -> str | None:
        if v < low or (high is not None and v > high):
            allowed = f"{low}-{high}" if high is not None else f">= {low}"
            return f"{v} is out of range ({allowed})"
        return None

    return check


def _one_of(allowed: Iterable[str]) -> _Check:
    choices = tuple(allowed)

    def check(v: str) -> str | None:
        return None if v in choices else f"{_show(v)} is not allowed (one of: {', '.join(choices)})"

    return check


def _pattern(regex: str, what: str, *, allow_empty: bool = False) -> _Check:
    compiled = re.compile(regex)

    def check(v: str) -> str | None:
        if allow_empty and v == "":
            return None
        return None if compiled.fullmatch(v) else f"{_show(v)} is not {what}"

    return check


def _dtmf(v: str) -> str | None:
    if len(v) == 1 and v in _DTMF_KEYS:
        return None
    return f"{_show(v)} is not a DTMF key (one character of 0-9, * or #)"


_HOST = _pattern(r"[A-Za-z0-9.:_\[\]-]{1,253}", "a host name or IP address")
_SOUND = re.compile(r"[A-Za-z0-9_./-]{1,200}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}([_-][A-Za-z0-9]{2,8}){0,2}")


def _sound(required: bool) -> _Check:
    def check(v: str) -> str | None:
        if v == "":
            return "must name a sound (an Asterisk sound id such as recorder/consent)" \
                if required else None
        if not _SOUND.fullmatch(v) or ".." in PurePosixPath(v).parts:
            return (f"{_show(v)} is not a sound id (letters, digits, '_', '.', '/', '-'; "
                    "no '..')")
        return None

    return check


def _languages(v: tuple[str, ...]) -> str | None:
    if not v:
        return "must list at least one language (e.g. [\"en\"])"
    for lang in v:
        if not _LANGUAGE.fullmatch(lang):
            return f"{_show(lang)} is not a language code (such as en, fr_CA, pt_BR)"
    return None


def _language(v: str) -> str | None:
    return None if _LANGUAGE.fullmatch(v) else \
        f"{_show(v)} is not a language code (such as en, fr_CA, pt_BR)"


def _abs_dir(v: str) -> str | None:
    if v == "":
        return None
    if any(ord(c) < 32 or c == "\x7f" for c in v):
        return f"{_show(v)} contains control characters"
    if not v.startswith("/"):
        return f"{_show(v)} must be an absolute path (or empty for the default)"
    return None


def _required_abs_dir(v: str) -> str | None:
    if v == "":
        return "must be an absolute directory (it has no default location when empty)"
    return _abs_dir(v)


def _recording_dir(v: str) -> str | None:
    if len(v) > 255:
        return f"{_show(v)} is too long (at most 255 characters)"
    if not v.startswith("/"):
        return f"{_show(v)} must be an absolute directory"
    if not re.fullmatch(r"/[A-Za-z0-9._/-]*", v):
        return f"{_show(v)} may only contain letters, digits, '/', '.', '_' and '-'"
    if ".." in PurePosixPath(v).parts:
        return f"{_show(v)} must not contain '..'"
    return None


_MIXMONITOR = re.compile(r"(?:[A-Za-z](?:\([A-Za-z0-9]*\))?){0,32}")


def _mixmonitor(v: str) -> str | None:
    if _MIXMONITOR.fullmatch(v):
        return None
    return (f"{_show(v)} may only contain letters, digits and parentheses, as option letters "
            "with an optional argument such as bW(2) (no commas, pipes, '$', quotes, spaces or "
            "newlines; at most 32 options)")


def _ari_url(v: str) -> str | None:
    if any(ord(c) <= 32 or c == "\x7f" for c in v):
        return f"{_show(mask_url_password(v))} must not contain spaces or control characters"
    parts = urlsplit(v)
    shown = _show(mask_url_password(v))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shown} is not an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return f"{shown} must not carry credentials; set username and password instead"
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"{shown} has an invalid port (1-65535)"
    if parts.query or parts.fragment:
        return f"{shown} must not have a query or fragment"
    if parts.path.rstrip("/").endswith("/ari"):
        return f"{shown} should be the server's base URL without /ari (it is added)"
    return None


def _username(v: str) -> str | None:
    if v == "" or ":" in v or any(ord(c) < 32 or c == "\x7f" for c in v):
        return f"{_show(v)} is not a valid ARI user name (non-empty, no ':' or control characters)"
    return None


def _dsn(v: Secret) -> str | None:
    text = v.value
    if text == "":
        return None
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        return "contains control characters (value hidden)"
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme not in ("postgresql", "postgres"):
        return ("must be a postgresql:// or postgres:// URL, or empty for the embedded "
                "PostgreSQL (value hidden)")
    return None


def _jurisdiction(v: str) -> str | None:
    if re.fullmatch(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", v):
        return None
    return f"{_show(v)} is not a jurisdiction code (a country such as US, GB, DE, or US-CA)"


def _region(v: str) -> str | None:
    import phonenumbers  # imported here: only this check needs its region list

    if v in phonenumbers.SUPPORTED_REGIONS:
        return None
    return f"{_show(v)} is not a region phonenumbers knows (two letters, such as US, GB, DE)"


def _log_level(v: str) -> str | None:
    return _one_of(LEVELS)(v)


_CHECKS: dict[str, _Check] = {
    "instance_id": _pattern(r"[A-Za-z0-9._-]{0,64}",
                            "a valid instance id (letters, digits, '.', '_', '-'; at most 64)"),
    "ari.url": _ari_url,
    "ari.username": _username,
    "ari.app": _pattern(r"[A-Za-z0-9._-]{1,64}",
                        "a valid Stasis application name (letters, digits, '.', '_', '-')"),
    "ari.request_timeout": _positive,
    "ari.heartbeat": _positive,
    "ari.reconnect_max": _positive,
    "ari.max_connections": _at_least(1, 1000),
    "agi.host": _HOST,
    "agi.port": _port,
    "agi.max_sessions": _at_least(1),
    "agi.read_timeout": _positive,
    "database.dsn": _dsn,
    "database.embedded_data_dir": _abs_dir,
    "database.pool_min": _at_least(0),
    "database.pool_max": _at_least(1),
    "database.connect_timeout": _positive,
    "ledger.spool_dir": _abs_dir,
    "ledger.ack_timeout": _positive,
    "ledger.batch_interval": _non_negative,
    "ledger.batch_max": _at_least(1),
    "policy.site_jurisdiction": _jurisdiction,
    "policy.default_region": _region,
    "flow.opt_out_key": _dtmf,
    "flow.opt_in_accept_key": _dtmf,
    "flow.opt_in_decline_key": _dtmf,
    "flow.input_timeout": _positive,
    "flow.max_retries": _at_least(0, 10),
    "flow.guard_timeout": _positive,
    "flow.prompts.opt_in": _sound(True),
    "flow.prompts.opt_out": _sound(True),
    "flow.prompts.announce": _sound(True),
    "flow.prompts.never": _sound(False),
    "flow.prompts.none": _sound(False),
    "flow.prompts.languages": _languages,
    "flow.prompts.fallback_language": _language,
    "recording.directory": _recording_dir,
    "recording.file_format": _one_of(FILE_FORMATS),
    "recording.mixmonitor_options": _mixmonitor,
    "http.host": _HOST,
    "http.port": _port,
    "logging.level": _log_level,
    "logging.format": _one_of(_LOG_FORMATS),
    "controller.shutdown_grace": _non_negative,
    "controller.hand_back_retry": _non_negative,
    "controller.resync_action": _one_of(_RESYNC_ACTIONS),
    "recordings.sealed_dir": _required_abs_dir,
    "recordings.quarantine_dir": _required_abs_dir,
    "recordings.key_dir": _required_abs_dir,
    "recordings.retention_class": _pattern(r"[a-z][a-z0-9_]{0,31}",
                                           "a retention class (a lowercase letter, then "
                                           "lowercase letters, digits, '_'; at most 32)"),
    "recordings.absent_after": _positive,
    "recordings.scan_interval": _positive,
    "recordings.settle_after": _positive,
    "recordings.orphan_after": _non_negative,
    "recordings.max_lag": _positive,
    "recordings.http_port": _port,
}

_NORMALIZE: dict[str, Callable[[str], str]] = {
    "policy.site_jurisdiction": str.upper,
    "policy.default_region": str.upper,
    "logging.level": str.lower,
    "logging.format": str.lower,
}


def _origin(raw: _Raw) -> str:
    return f" [from {raw.source}]" if raw.source else ""


def _value_for(key: str, info: KeyInfo, gather: _Gather) -> tuple[object, bool]:
    """The converted, checked value of ``key`` (or the default); False when it is bad."""
    raw = gather.values.get(key)
    if raw is None:
        return info.default, True
    try:
        value = _convert(info, raw)
    except _Bad as exc:
        gather.problems.append(f"{key}: {exc}{_origin(raw)}")
        return info.default, False
    if isinstance(value, str) and info.key in _NORMALIZE:
        value = _NORMALIZE[info.key](value.strip())
    problem = _text_problem(value, info)
    if problem is None and info.key == "policy.table_file" and isinstance(value, str) and value:
        value, problem = _table_file(value, raw)
    check = _CHECKS.get(info.key)
    if problem is None and check is not None:
        problem = check(value)
    if problem:
        gather.problems.append(f"{key}: {problem}{_origin(raw)}")
        return info.default, False
    return value, True


_MAX_TEXT = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text_problem(value: object, info: KeyInfo) -> str | None:
    """Rules for every text value: no control characters, at most 4096 characters."""
    texts = [value.value] if isinstance(value, Secret) else (
        [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
        if isinstance(value, tuple) else [])
    for text in texts:
        shown = "(value hidden)" if info.secret else _show(text)
        if len(text) > _MAX_TEXT:
            return f"{shown} is too long (at most {_MAX_TEXT} characters)"
        if _CONTROL.search(text):
            return f"{shown} contains control characters (newline, tab, NUL ...)"
    return None


def _table_file(value: str, raw: _Raw) -> tuple[str, str | None]:
    path = Path(value)
    if not path.is_absolute():
        path = (raw.base or Path.cwd()) / path
    try:
        is_file = path.is_file()
    except OSError as exc:
        return value, f"{_show(str(path), 300)} cannot be read ({exc.strerror})"
    if not is_file:
        return value, f"{_show(str(path), 300)} does not exist or is not a file"
    return str(path), None


def _build_section(section: str, cls: type[Any], prefix: str, gather: _Gather,
                   **extra: object) -> tuple[Any, dict[str, bool]]:
    kwargs: dict[str, object] = dict(extra)
    ok: dict[str, bool] = {}
    for info in _SCHEMA:
        if info.section != section:
            continue
        key = f"{prefix}.{info.name}"
        kwargs[info.name], ok[info.name] = _value_for(key, info, gather)
    return cls(**kwargs), ok


def _build(gather: _Gather) -> Settings:
    top: dict[str, object] = {}
    for info in _SCHEMA:
        if info.section == "":
            top[info.name], _ = _value_for(info.key, info, gather)

    servers: list[tuple[str, AriServerSettings, dict[str, bool]]] = []
    default_ari, ok = _build_section("ari", AriServerSettings, "ari", gather, name="default")
    servers.append(("ari", default_ari, ok))
    for name in gather.servers:
        prefix = f"ari.servers.{name}"
        server, ok = _build_section("ari", AriServerSettings, prefix, gather, name=name)
        servers.append((prefix, server, ok))

    sections: dict[str, Any] = {}
    for section, cls, _exclude, _doc in _SECTIONS:
        if section in ("ari", "flow", "flow.prompts", "recording"):
            continue
        sections[section], _ = _build_section(section, cls, section, gather)
    prompts, _ = _build_section("flow.prompts", PromptSettings, "flow.prompts", gather)
    recording, _ = _build_section("recording", RecordingSettings, "recording", gather)
    flow, flow_ok = _build_section("flow", FlowSettings, "flow", gather,
                                   prompts=prompts, recording=recording)

    _cross_checks(gather, servers, sections, flow, flow_ok)
    return Settings(
        ari=tuple(server for _p, server, _ok in servers),
        flow=flow,
        **top,  # type: ignore[arg-type]
        **sections,
    )


def _cross_checks(gather: _Gather, servers: list[tuple[str, AriServerSettings, dict[str, bool]]],
                  sections: Mapping[str, Any], flow: FlowSettings,
                  flow_ok: Mapping[str, bool]) -> None:
    problems = gather.problems
    seen: dict[tuple[str, str], str] = {}
    for prefix, server, ok in servers:
        if not server.enabled:
            continue
        if (not server.password and gather.require_ari_password and not gather.file_failed
                and ok.get("password", True)):
            if prefix == "ari":
                where = f"[ari] password in the config file or {_env_name('ari.password')}"
            else:
                name = server.name
                env = f"{_env_name('ari.servers')}_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}" \
                      "_PASSWORD"
                where = f"[ari.servers.{name}] password in the config file or {env}"
            problems.append(
                f"{prefix}.password: missing; ARI server \"{server.name}\" is enabled and needs "
                f"the password of ARI user {_show(server.username)}: set {where} "
                f"(or set {prefix}.enabled = false)")
        if ok.get("url", True) and ok.get("app", True):
            ident = (server.url.rstrip("/"), server.app)
            if ident in seen:
                problems.append(
                    f"{prefix}: same url and app as {seen[ident]}; one Stasis app per Asterisk "
                    "takes one connection (the second would replace the first)")
            else:
                seen[ident] = prefix
    database: DatabaseSettings = sections["database"]
    if database.pool_min > database.pool_max:
        problems.append(
            f"database.pool_min: {database.pool_min} is greater than database.pool_max "
            f"({database.pool_max}); pool_min must be <= pool_max")
    if (flow_ok.get("opt_in_accept_key", True) and flow_ok.get("opt_in_decline_key", True)
            and flow.opt_in_accept_key == flow.opt_in_decline_key):
        problems.append(
            f"flow.opt_in_decline_key: {_show(flow.opt_in_decline_key)} is also "
            "flow.opt_in_accept_key; accept and decline must be different keys")
    agi: AgiSettings = sections["agi"]
    http: HttpSettings = sections["http"]
    _recordings_checks(problems, sections["recordings"], flow.recording.directory, http, agi)
    if agi.enabled and http.enabled and agi.port == http.port and agi.host == http.host:
        problems.append(
            f"http.port: {http.port} is also agi.port on {agi.host}; the two servers need "
            "different ports")


def _recordings_checks(problems: list[str], recordings: RecordingsSettings, directory: str,
                       http: HttpSettings, agi: AgiSettings) -> None:
    """The sealer's directories must be apart from each other and from the recordings."""
    named = {
        "recording.directory": directory,
        "recordings.sealed_dir": recordings.sealed_dir,
        "recordings.quarantine_dir": recordings.quarantine_dir,
        "recordings.key_dir": recordings.key_dir,
    }
    paths = {key: PurePosixPath(value) for key, value in named.items() if value.startswith("/")}
    keys = list(paths)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            a, b = paths[first], paths[second]
            if a == b or a in b.parents or b in a.parents:
                problems.append(
                    f"{second}: {_show(str(b))} overlaps {first} ({_show(str(a))}); the sealer "
                    "needs four separate directories (recordings, sealed, quarantine, keys)")
    if http.enabled and recordings.http_port == http.port:
        problems.append(
            f"recordings.http_port: {recordings.http_port} is also http.port; the sealer and "
            "serve may run on one host and need different ports")
    elif agi.enabled and recordings.http_port == agi.port:
        problems.append(
            f"recordings.http_port: {recordings.http_port} is also agi.port; choose another")


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def load(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    require_ari_password: bool = True,
) -> Settings:
    """Load, merge and validate the configuration.

    Args:
        path: the TOML file; ``None`` means ``$ASTERISK_RECORDER_CONFIG``, and without it no
            file (shipped defaults).
        env: the environment to read ``ASTERISK_RECORDER_*`` from; ``None`` means
            ``os.environ``.
        overrides: dotted keys (``"database.dsn"``, ``"ari.servers.pbx2.url"``) to values,
            applied last; strings are parsed like environment values.
        require_ari_password: demand a password for every enabled ARI server (False for
            commands that never talk to ARI: ``ledger``, ``db``, ``policy``, ``agi``).

    Raises:
        ConfigError: listing every problem found, one line each.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    gather = _Gather(problems=[], require_ari_password=require_ari_password)
    if path is None or str(path) == "":
        path = environ.get(CONFIG_ENV) or None
    if path is not None:
        _read_file(Path(path), gather)
    _read_env(environ, gather)
    if overrides:
        _read_overrides(overrides, gather)
    settings = _build(gather)
    if gather.problems:
        raise ConfigError(gather.problems)
    return settings


_FLAGS: tuple[tuple[str, str, str, str], ...] = (
    ("--dsn", "database.dsn", "DSN",
     "PostgreSQL DSN (visible in the process list: prefer ASTERISK_RECORDER_DATABASE_DSN)"),
    ("--ari-url", "ari.url", "URL", "base URL of Asterisk's HTTP server"),
    ("--log-level", "logging.level", "LEVEL", "debug, info, warning, error or critical"),
    ("--log-format", "logging.format", "FORMAT", "auto, json or console"),
    ("--http-port", "http.port", "PORT", "port of the operations HTTP endpoint"),
    ("--agi-port", "agi.port", "PORT", "port of the FastAGI server"),
    ("--site", "policy.site_jurisdiction", "CODE", "your own jurisdiction, e.g. US-CA"),
)


def add_config_arguments(
    parser: argparse.ArgumentParser, *, only: Iterable[str] | None = None
) -> None:
    """Add ``--config FILE`` and the common override flags to ``parser``.

    Passwords are deliberately not flags (they would show in the process list): set them in
    the file or the environment.

    Args:
        only: the override flags this command uses (e.g. ``("--dsn", "--log-level")``);
            ``None`` adds them all.
    """
    wanted = None if only is None else set(only)
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", metavar="FILE", default=None,
                       help=f"TOML configuration file (default: ${CONFIG_ENV}, else built-in "
                       "defaults)")
    for flag, key, metavar, text in _FLAGS:
        if wanted is not None and flag not in wanted:
            continue
        group.add_argument(flag, dest=_dest(key), metavar=metavar, default=None,
                           help=f"{text} (overrides {key})")


def _dest(key: str) -> str:
    return "config_override_" + key.replace(".", "_")


def settings_from_args(
    args: argparse.Namespace, *, require_ari_password: bool = True
) -> Settings:
    """Load the configuration named by ``args.config`` with the flags' overrides applied."""
    overrides: dict[str, object] = {}
    for _flag, key, _metavar, _text in _FLAGS:
        value = getattr(args, _dest(key), None)
        if value is not None:
            overrides[key] = value
    return load(
        getattr(args, "config", None),
        overrides=overrides,
        require_ari_password=require_ari_password,
    )


def secret_values(settings: Settings) -> tuple[str, ...]:
    """Every secret in ``settings`` (and a DSN's password), for ``logs.configure(secrets=)``."""
    values: list[str] = [s.password.value for s in settings.ari]
    dsn = settings.database.dsn.value
    values += [dsn, settings.ledger.digest_key.value]
    if dsn:
        try:
            password = urlsplit(dsn).password
        except ValueError:
            password = None
        if password:
            values.append(password)
    return tuple(v for v in values if v)


# ---------------------------------------------------------------------------------------------
# Rendering: effective configuration, sample file, reference tables
# ---------------------------------------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _toml(value.value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")  # pragma: no cover


def _masked(info: KeyInfo, value: Secret) -> str:
    if not value.value:
        return ""
    if info.key == "database.dsn":
        return mask_url_password(value.value)
    return MASK


def _section_values(obj: object, section: str) -> list[tuple[KeyInfo, object]]:
    return [(info, getattr(obj, info.name)) for info in _SCHEMA if info.section == section]


def _tables(settings: Settings) -> list[tuple[str, list[tuple[KeyInfo, object]]]]:
    tables: list[tuple[str, list[tuple[KeyInfo, object]]]] = [
        ("", [(info, getattr(settings, info.name)) for info in _SCHEMA if info.section == ""]),
    ]
    default_ari = next((s for s in settings.ari if s.name == "default"), AriServerSettings())
    tables.append(("ari", _section_values(default_ari, "ari")))
    for server in settings.ari:
        if server.name != "default":
            tables.append((f"ari.servers.{server.name}", _section_values(server, "ari")))
    owners: dict[str, object] = {
        "flow": settings.flow, "flow.prompts": settings.flow.prompts,
        "recording": settings.flow.recording,
    }
    for section, *_rest in _SECTIONS:
        if section == "ari":
            continue
        owner = owners.get(section) or getattr(settings, section)
        tables.append((section, _section_values(owner, section)))
    return tables


def render_effective(settings: Settings) -> str:
    """The configuration as TOML, every key shown, secrets masked (DSN: password only)."""
    lines = ["# asterisk-recorder effective configuration (secrets masked)"]
    for table, items in _tables(settings):
        if table:
            lines += ["", f"[{table}]"]
        for info, value in items:
            shown = _masked(info, value) if isinstance(value, Secret) else value
            lines.append(
                f"# {info.name} = (unset)" if shown is None else f"{info.name} = {_toml(shown)}"
            )
    return "\n".join(lines) + "\n"


def _wrap_comment(text: str, width: int = 98) -> list[str]:
    words = text.replace("`", "").split()
    lines: list[str] = []
    current = "#"
    for word in words:
        if len(current) + 1 + len(word) > width and current != "#":
            lines.append(current)
            current = "#"
        current += " " + word
    lines.append(current)
    return lines


def render_sample() -> str:
    """The sample configuration file: every key at its default, each explained."""
    out = [
        "# asterisk-recorder configuration (sample: every key, at its default).",
        "#",
        "# Precedence: this file < ASTERISK_RECORDER_* environment variables < command-line flags.",
        "# Unknown keys are errors. Check a file: asterisk-recorder check-config --config FILE",
        "# Reference: docs/configuration.md",
    ]
    sections = {s: doc for s, _c, _e, doc in _SECTIONS}
    current = None
    for info in _SCHEMA:
        if info.section != current:
            current = info.section
            if current:
                out += ["", *_wrap_comment(sections[current]), f"[{current}]"]
        value = _SAMPLE_VALUES.get(info.key, info.default)
        if isinstance(value, Secret):
            value = value.value
        out += ["", *_wrap_comment(f"{info.help} Environment: {info.env}."),
                f"# {info.name} =" if value is None else f"{info.name} = {_toml(value)}"]
        if info.key == "ari.enabled":
            out += [
                "",
                "# More Asterisk servers: one table per server, same keys as [ari], each starting",
                "# from the defaults (not from [ari]). Environment: ASTERISK_RECORDER_ARI_SERVERS_"
                "<NAME>_<KEY>.",
                "# [ari.servers.pbx2]",
                "# url = \"http://10.0.0.2:8088\"",
                "# password = \"change-me\"",
            ]
    return "\n".join(out) + "\n"


def _type_label(info: KeyInfo) -> str:
    if info.type is Secret:
        return "string (secret)"
    if info.type is Mode:
        return "mode"
    if typing.get_origin(info.type) is tuple:
        return "list of strings"
    if info.type == _OPTIONAL_NUMBER:
        return "number or unset"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}[info.type]


def render_reference() -> str:
    """The Markdown reference tables of every key (kept in docs/configuration.md)."""
    sections = {s: doc for s, _c, _e, doc in _SECTIONS}
    out: list[str] = []
    current = None
    for info in _SCHEMA:
        if info.section != current or not out:
            current = info.section
            title = f"`[{current}]`" if current else "Top level"
            if out:
                out.append("")
            out += [f"### {title}", ""]
            if current:
                out += [sections[current], ""]
            out += ["| key | type | default | environment variable | meaning |",
                    "|---|---|---|---|---|"]
        default = info.default.value if isinstance(info.default, Secret) else info.default
        shown = "(unset)" if default is None else f"`{_toml(default)}`"
        cells = [f"`{info.name}`", _type_label(info), shown, f"`{info.env}`",
                 info.help.replace("|", "\\|")]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
