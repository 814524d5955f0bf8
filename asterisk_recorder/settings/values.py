"""Turning raw configuration values into the fields' types.

This module owns the raw value record (``Raw``: the value, where it came from, whether it is
text to parse, as from the environment and flags), the conversion to ``int``, ``float``,
``bool``, ``Mode``, lists, IP networks and seconds-or-``"end"``, the rules every text obeys
(no control characters, at most 4096 characters) and the one-line rendering of a bad value
(``show``). It must never show a secret's value, must not read files or the environment, and
must not know individual keys' rules (that is ``checks``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import re
import typing
from pathlib import Path

from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.settings.schema import KeyInfo
from asterisk_recorder.settings.sections import (
    Secret,
)

__all__ = [
    "Bad",
    "Raw",
    "convert",
    "show",
    "text_problem",
    "type_name",
]


@dataclasses.dataclass(slots=True)
class Raw:
    """One value as given, before conversion, and where it came from."""

    value: object
    source: str  # the file's path, the environment variable's name or "override KEY"
    text: bool  # the value is text to parse (environment, CLI)
    base: Path | None = None  # directory of the config file, for relative paths


def show(value: object, limit: int = 80) -> str:
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


class Bad(Exception):  # internal: caught by the loader, never raised to callers
    """A value problem; the text follows ``<key>: `` in the final message."""


def type_name(value: object) -> str:
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


def _finite(value: object, raw: Raw, shown: str, what: str) -> float:
    """``value`` as a finite float (a TOML number, or text from the environment or a flag)."""
    number: float
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif raw.text and isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise Bad(f"{shown} is not {what}") from None
    else:
        raise Bad(f"expected {what}, got {type_name(value)} {shown}")
    if not math.isfinite(number):
        raise Bad(f"{shown} is not a finite number")
    return number


def convert(info: KeyInfo, raw: Raw) -> object:
    """Turn a raw value into the field's type or raise ``Bad`` (never showing a secret)."""
    kind = info.type
    value = raw.value
    shown = "(value hidden)" if info.secret else show(value)
    if kind is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise Bad(f"expected a string, got {type_name(value)}")
        return Secret(value)
    if kind is str:
        if not isinstance(value, str):
            raise Bad(f"expected a string, got {type_name(value)} {shown}")
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
            raise Bad(f"{shown} is not a boolean (true/false, 1/0, yes/no, on/off)")
        raise Bad(f"expected a boolean (true or false), got {type_name(value)} {shown}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if raw.text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise Bad(f"{shown} is not an integer") from None
        raise Bad(f"expected an integer, got {type_name(value)} {shown}")
    if kind is float:
        return _finite(value, raw, shown, "a number")
    if kind is Mode:
        allowed = ", ".join(m.value for m in Mode)
        if not isinstance(value, str):
            raise Bad(f"expected a mode name ({allowed}), got {type_name(value)} {shown}")
        try:
            return Mode(value.strip().lower().replace("-", "_"))
        except ValueError:
            raise Bad(f"{shown} is not a mode (allowed: {allowed})") from None
    if kind == float | None:
        if isinstance(value, str) and value.strip().lower() == "end":
            return None
        return _finite(value, raw, shown, 'a number of seconds or "end"')
    if typing.get_origin(kind) is tuple:
        items: list[object]
        if raw.text and isinstance(value, str):
            items = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise Bad(f"expected an array of strings, got {type_name(value)} {shown}")
        bad = [item for item in items if not isinstance(item, str)]
        if bad:
            raise Bad(f"expected an array of strings, got {type_name(bad[0])} "
                       f"{show(bad[0])} in it")
        strings = tuple(typing.cast(list[str], items))
        if typing.get_args(kind)[0] is str:
            return strings
        return tuple(_network(item) for item in strings)
    raise Bad(f"unsupported setting type {kind!r}")  # pragma: no cover - schema bug


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address (``10.0.0.5``: one host) or network (``10.0.0.0/24``), strictly."""
    rule = "an IP address or network such as 127.0.0.1, 10.0.0.0/24 or ::1"
    if len(text) > 64 or _CONTROL.search(text):
        raise Bad(f"{show(text)} is not {rule}")
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise Bad(f"{show(text)} is not {rule}") from None
    raise Bad(f"{show(text)} has host bits set; the network is {loose} (or give the single "
               f"address {text.split('/', 1)[0]})")


_MAX_TEXT = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text_problem(value: object, info: KeyInfo) -> str | None:
    """Rules for every text value: no control characters, at most 4096 characters."""
    texts = [value.value] if isinstance(value, Secret) else (
        [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
        if isinstance(value, tuple) else [])
    for text in texts:
        shown = "(value hidden)" if info.secret else show(text)
        if len(text) > _MAX_TEXT:
            return f"{shown} is too long (at most {_MAX_TEXT} characters)"
        if _CONTROL.search(text):
            return f"{shown} contains control characters (newline, tab, NUL ...)"
    return None
