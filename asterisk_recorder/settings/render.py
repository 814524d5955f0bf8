"""Rendering the configuration as text: the effective configuration, the sample file and the
reference tables.

This module owns ``render_effective`` (every key as TOML, secrets masked; a DSN shows only its
password masked), ``render_sample`` (``etc/asterisk-recorder.toml``) and ``render_reference``
(the generated tables of ``docs/configuration.md``). It must never print a secret, and must not
read files or the environment.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import typing

from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.redaction import MASK, mask_url_password
from asterisk_recorder.settings.schema import SAMPLE_VALUES, SCHEMA, SECTIONS, KeyInfo
from asterisk_recorder.settings.sections import (
    AriServerSettings,
    Secret,
    Settings,
)

__all__ = [
    "render_effective",
    "render_reference",
    "render_sample",
]


def _toml(value: object) -> str:
    if value is None:  # the one optional key, flow.prompts.opt_in_accept_after: "end"
        return '"end"'
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return _toml(str(value))
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
    return [(info, getattr(obj, info.name)) for info in SCHEMA if info.section == section]


def _tables(settings: Settings) -> list[tuple[str, list[tuple[KeyInfo, object]]]]:
    tables: list[tuple[str, list[tuple[KeyInfo, object]]]] = [
        ("", [(info, getattr(settings, info.name)) for info in SCHEMA if info.section == ""]),
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
    for section, *_rest in SECTIONS:
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
            lines.append(f"{info.name} = {_toml(shown)}")
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
    sections = {s: doc for s, _c, _e, doc in SECTIONS}
    current = None
    for info in SCHEMA:
        if info.section != current:
            current = info.section
            if current:
                out += ["", *_wrap_comment(sections[current]), f"[{current}]"]
        value = SAMPLE_VALUES.get(info.key, info.default)
        if isinstance(value, Secret):
            value = value.value
        out += ["", *_wrap_comment(f"{info.help} Environment: {info.env}."),
                f"{info.name} = {_toml(value)}"]
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
    if info.type == float | None:
        return 'number or "end"'
    if typing.get_origin(info.type) is tuple:
        if typing.get_args(info.type)[0] is not str:
            return "list of IP addresses/networks"
        return "list of strings"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}[info.type]


def render_reference() -> str:
    """The Markdown reference tables of every key (kept in docs/configuration.md)."""
    sections = {s: doc for s, _c, _e, doc in SECTIONS}
    out: list[str] = []
    current = None
    for info in SCHEMA:
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
        cells = [f"`{info.name}`", _type_label(info), f"`{_toml(default)}`", f"`{info.env}`",
                 info.help.replace("|", "\\|")]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
