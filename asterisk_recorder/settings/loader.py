"""Building the validated ``Settings``: ``load`` and ``secret_values``.

This module owns converting and checking every gathered value (with ``values`` and ``checks``),
the checks across keys (passwords of enabled ARI servers, placeholder passwords, the token and
PIN a PKCS#11 module needs, distinct accept/decline keys and ports, the real database ``serve``
needs) and running the owners' own
validators (the flow's ``check_flow_settings``; the policy engine, with the table
``policy.table_file`` names) so that what loads is what a call accepts. Every problem names the
key, the bad value (never a secret's), what is allowed and where it came from, and all are
raised together as one ``ConfigError``. It must not start anything, open network connections
or log; it reads only the configuration file and the policy table it names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from asterisk_recorder.errors import ConfigError, PolicyError
from asterisk_recorder.flow.machine import check_flow_settings
from asterisk_recorder.flow.settings import FlowSettings, PromptSettings, RecordingSettings
from asterisk_recorder.policy.engine import PolicyEngine
from asterisk_recorder.policy.table import default_table, load_table_file, merge_tables
from asterisk_recorder.settings.checks import (
    CHECKS,
    NORMALIZE,
    PLACEHOLDER_RULE,
    is_placeholder_secret,
)
from asterisk_recorder.settings.ledger_rules import kek_pkcs11_required, pkcs11_required
from asterisk_recorder.settings.pause_rules import ami_required, pause_required
from asterisk_recorder.settings.retention import parse_retention, parse_rule
from asterisk_recorder.settings.schema import CONFIG_ENV, SCHEMA, SECTIONS, KeyInfo, env_name
from asterisk_recorder.settings.sections import (
    AgiSettings,
    AriServerSettings,
    DatabaseSettings,
    HttpSettings,
    RecordingsSettings,
    Settings,
)
from asterisk_recorder.settings.sources import Gather, read_env, read_file, read_overrides
from asterisk_recorder.settings.values import Bad, Raw, convert, show, text_problem

__all__ = [
    "load",
    "secret_values",
]


def _origin(raw: Raw) -> str:
    return f" [from {raw.source}]" if raw.source else ""


def _value_for(key: str, info: KeyInfo, gather: Gather) -> tuple[object, bool]:
    """The converted, checked value of ``key`` (or the default); False when it is bad."""
    raw = gather.values.get(key)
    if raw is None:
        return info.default, True
    try:
        value = convert(info, raw)
    except Bad as exc:
        gather.problems.append(f"{key}: {exc}{_origin(raw)}")
        return info.default, False
    if isinstance(value, str) and info.key in NORMALIZE:
        value = NORMALIZE[info.key](value.strip())
    problem = text_problem(value, info)
    if problem is None and info.key == "policy.table_file" and isinstance(value, str) and value:
        value, problem = _table_file(value, raw)
    check = CHECKS.get(info.key)
    if problem is None and check is not None:
        problem = check(value)
    if problem:
        gather.problems.append(f"{key}: {problem}{_origin(raw)}")
        return info.default, False
    return value, True


def _table_file(value: str, raw: Raw) -> tuple[str, str | None]:
    path = Path(value)
    if not path.is_absolute():
        path = (raw.base or Path.cwd()) / path
    try:
        is_file = path.is_file()
    except OSError as exc:
        return value, f"{show(str(path), 300)} cannot be read ({exc.strerror})"
    if not is_file:
        return value, f"{show(str(path), 300)} does not exist or is not a file"
    return str(path), None


def _build_section(section: str, cls: type[Any], prefix: str, gather: Gather,
                   **extra: object) -> tuple[Any, dict[str, bool]]:
    kwargs: dict[str, object] = dict(extra)
    ok: dict[str, bool] = {}
    for info in SCHEMA:
        if info.section != section:
            continue
        key = f"{prefix}.{info.name}"
        kwargs[info.name], ok[info.name] = _value_for(key, info, gather)
    return cls(**kwargs), ok


def _build(gather: Gather) -> Settings:
    top: dict[str, object] = {}
    for info in SCHEMA:
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
    for section, cls, _exclude, _doc in SECTIONS:
        if section in ("ari", "flow", "flow.prompts", "recording"):
            continue
        sections[section], _ = _build_section(section, cls, section, gather)
    prompts, _ = _build_section("flow.prompts", PromptSettings, "flow.prompts", gather)
    recording, _ = _build_section("recording", RecordingSettings, "recording", gather)
    flow, flow_ok = _build_section("flow", FlowSettings, "flow", gather,
                                   prompts=prompts, recording=recording)

    _cross_checks(gather, servers, sections, flow, flow_ok)
    settings = Settings(
        ari=tuple(server for _p, server, _ok in servers),
        flow=flow,
        **top,  # type: ignore[arg-type]
        **sections,
    )
    _owner_checks(gather, settings)
    return settings


def _origin_of(gather: Gather, key: str) -> str:
    """`` [from SOURCE]`` of the value given for ``key``, or empty for a default."""
    raw = gather.values.get(key)
    return _origin(raw) if raw is not None else ""


_FLOW_KEY = re.compile(r"flow\.[a-z_.]+")


def _flow_problem_key(message: str) -> str:
    """The configuration key a ``check_flow_settings`` message is about."""
    if "flow.opt_in_decline_key must differ" in message:
        return "flow.opt_in_decline_key"  # where the config's own check reports it
    match = _FLOW_KEY.match(message)
    key = match.group(0).rstrip(".") if match else "flow"
    if key.startswith("flow.recording."):
        key = key.removeprefix("flow.")
    if key == "flow.prompts":
        key = "flow.prompts.languages"
    return key


def _owner_checks(gather: Gather, settings: Settings) -> None:
    """Run the validators of the parts that use the settings, so load refuses what they would.

    Bad values were replaced by defaults already, so these report only what the per-key
    checks above let through (a test walks the schema to keep that empty). The policy engine
    is built too, because only it knows which jurisdictions its table covers.
    """
    problems = gather.problems
    reported = {problem.split(":", 1)[0] for problem in problems}
    for message in check_flow_settings(settings.flow):
        key = _flow_problem_key(message)
        if key in reported or ("must differ" in message and "flow.opt_in_accept_key" in reported):
            continue
        problems.append(f"{key}: refused by the consent flow: {message}"
                        f"{_origin_of(gather, key)}")
    policy = settings.policy
    table = default_table()
    if policy.table_file:
        try:
            table = merge_tables(table, load_table_file(policy.table_file))
        except PolicyError as exc:
            problems.append(f"policy.table_file: {exc}{_origin_of(gather, 'policy.table_file')}")
    try:
        PolicyEngine(table, policy, cache_size=1)
    except PolicyError as exc:
        key, _sep, text = str(exc).partition(" ")
        if key == "policy.site_jurisdiction":
            text = (f"{show(policy.site_jurisdiction)} is not a jurisdiction the policy table "
                    "knows (a country such as US, GB, DE, a subdivision such as US-NY or CA-ON, "
                    "or a row of policy.table_file)")
        elif key != "policy.default_region":
            key, text = "policy", str(exc)
        problems.append(f"{key}: {text}{_origin_of(gather, key)}")


def _cross_checks(gather: Gather, servers: list[tuple[str, AriServerSettings, dict[str, bool]]],
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
                where = f"[ari] password in the config file or {env_name('ari.password')}"
            else:
                name = server.name
                env = f"{env_name('ari.servers')}_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}" \
                      "_PASSWORD"
                where = f"[ari.servers.{name}] password in the config file or {env}"
            problems.append(
                f"{prefix}.password: missing; ARI server \"{server.name}\" is enabled and needs "
                f"the password of ARI user {show(server.username)}: set {where} "
                f"(or set {prefix}.enabled = false)")
        if (server.password and gather.require_ari_password and ok.get("password", True)
                and is_placeholder_secret(server.password.value)):
            problems.append(
                f"{prefix}.password: {PLACEHOLDER_RULE}; set the password of ARI user "
                f"{show(server.username)} from ari.conf{_origin_of(gather, prefix + '.password')}")
        if ok.get("url", True) and ok.get("app", True):
            ident = (server.url.rstrip("/"), server.app)
            if ident in seen:
                problems.append(
                    f"{prefix}: same url and app as {seen[ident]}; one Stasis app per Asterisk "
                    "takes one connection (the second would replace the first)")
            else:
                seen[ident] = prefix
    database: DatabaseSettings = sections["database"]
    if gather.require_database and not database.dsn and not database.embedded \
            and not gather.file_failed:
        problems.append(
            "database.dsn: is empty: set it ([database] dsn in the config file or "
            f"{env_name('database.dsn')}), or set database.embedded = true for a test/demo "
            "install (an embedded PostgreSQL under the service user's data directory)")
    reported = {problem.split(":", 1)[0] for problem in problems}
    if not gather.file_failed:
        for key, problem in pkcs11_required(sections["ledger"]):
            if key not in reported:  # a refused value (a placeholder PIN) is reported already
                where = _origin_of(gather, "ledger.checkpoint_pkcs11_module")
                problems.append(f"{key}: {problem}{where}")
        for key, problem in kek_pkcs11_required(sections["recordings"]):
            if key not in reported:
                where = _origin_of(gather, "recordings.kek_pkcs11_module")
                problems.append(f"{key}: {problem}{where}")
    if (flow_ok.get("opt_in_accept_key", True) and flow_ok.get("opt_in_decline_key", True)
            and flow.opt_in_accept_key == flow.opt_in_decline_key):
        # Name the key that was set (the decline key when both or neither were).
        bad, other = "flow.opt_in_decline_key", "flow.opt_in_accept_key"
        if bad not in gather.values and other in gather.values:
            bad, other = other, bad
        problems.append(
            f"{bad}: {show(flow.opt_in_decline_key)} is also {other}; accept and decline "
            f"must be different keys{_origin_of(gather, bad)}")
    agi: AgiSettings = sections["agi"]
    http: HttpSettings = sections["http"]
    _recordings_checks(problems, sections["recordings"], flow.recording.directory, http, agi)
    _retention_checks(gather, sections["recordings"])
    recordings: RecordingsSettings = sections["recordings"]
    if recordings.store == "local" and recordings.store_object_lock_days:
        problems.append(
            f"recordings.store_object_lock_days: {recordings.store_object_lock_days} needs an "
            "s3:// store (recordings.store); a local directory has no Object Lock"
            f"{_origin_of(gather, 'recordings.store_object_lock_days')}")
    ami = sections["ami"]
    ami_enabled = bool(ami.enabled)
    for key, problem in ami_required(ami.enabled, ami.username, ami.secret):
        if key not in reported:
            problems.append(f"{key}: {problem}{_origin_of(gather, 'ami.enabled')}")
    for key, problem in pause_required(sections["pause"], flow.recording.mixmonitor_options,
                                       ami_enabled):
        problems.append(f"{key}: {problem}{_origin_of(gather, 'pause.enabled')}")
    if agi.enabled and http.enabled and agi.port == http.port and agi.host == http.host:
        problems.append(
            f"http.port: {http.port} is also agi.port on {agi.host}; the two servers need "
            f"different ports{_origin_of(gather, 'http.port')}")


def _retention_checks(gather: Gather, recordings: RecordingsSettings) -> None:
    """Every class a call can get (the default, each rule's) has a period."""
    try:
        periods = parse_retention(recordings.retention)
    except ValueError:
        return  # reported by the per-key check (and replaced by the default)
    if recordings.retention_class not in periods:
        key = "recordings.retention"
        if "recordings.retention_class" in gather.values and key not in gather.values:
            key = "recordings.retention_class"
        gather.problems.append(
            f"{key}: the default class {show(recordings.retention_class)} has no period in "
            f"recordings.retention (add {recordings.retention_class}=PERIOD)"
            f"{_origin_of(gather, key)}")
    for text in recordings.retention_rules:
        try:
            rule = parse_rule(text)
        except ValueError:
            return
        if rule.retention_class not in periods:
            gather.problems.append(
                f"recordings.retention_rules: rule {show(text)} names class "
                f"{show(rule.retention_class)}, which has no period in recordings.retention"
                f"{_origin_of(gather, 'recordings.retention_rules')}")
            return


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
                    f"{second}: {show(str(b))} overlaps {first} ({show(str(a))}); the sealer "
                    "needs four separate directories (recordings, sealed, quarantine, keys)")
    if http.enabled and recordings.http_port == http.port:
        problems.append(
            f"recordings.http_port: {recordings.http_port} is also http.port; the sealer and "
            "serve may run on one host and need different ports")
    elif agi.enabled and recordings.http_port == agi.port:
        problems.append(
            f"recordings.http_port: {recordings.http_port} is also agi.port; choose another")


def load(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    require_ari_password: bool = True,
    require_database: bool = False,
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
        require_database: demand a real database: an empty ``database.dsn`` is a problem
            unless ``database.embedded`` is true (for ``serve`` and ``check-config``; the
            demo leaves it False and keeps the embedded default).

    Raises:
        ConfigError: listing every problem found, one line each.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    gather = Gather(problems=[], require_ari_password=require_ari_password,
                     require_database=require_database)
    if path is None or str(path) == "":
        path = environ.get(CONFIG_ENV) or None
    if path is not None:
        read_file(Path(path), gather)
    read_env(environ, gather)
    if overrides:
        read_overrides(overrides, gather)
    settings = _build(gather)
    if gather.problems:
        raise ConfigError(gather.problems)
    return settings


def secret_values(settings: Settings) -> tuple[str, ...]:
    """Every secret in ``settings`` (and a DSN's password), for ``logs.configure(secrets=)``."""
    values: list[str] = [s.password.value for s in settings.ari]
    dsn = settings.database.dsn.value
    ledger = settings.ledger
    values += [dsn, ledger.digest_key.value, ledger.checkpoint_pkcs11_pin.value,
               ledger.witness_http_token.value, settings.recordings.kek_pkcs11_pin.value]
    if dsn:
        try:
            password = urlsplit(dsn).password
        except ValueError:
            password = None
        if password:
            values.append(password)
    return tuple(v for v in values if v)
