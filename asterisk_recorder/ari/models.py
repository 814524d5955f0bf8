"""Typed, frozen models of the ARI resources the product uses, and their strict parsers.

This module owns the Python shape of ARI's ``Channel``, ``CallerID``, ``DialplanCEP``,
``Playback``, ``Application``, ``AsteriskInfo`` and ``AsteriskPing`` models (field names as in
Asterisk 22's api-docs) and the functions that build them from decoded JSON. It must not do
any I/O and must not import aiohttp: it is shared by the REST client, the event stream and the
fake Asterisk. A body that does not have the declared shape raises ``AriProtocolError`` whose
message names the offending field path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from asterisk_recorder.errors import AriProtocolError

__all__ = [
    "Application",
    "AsteriskInfo",
    "AsteriskPing",
    "CallerId",
    "Channel",
    "DialplanLocation",
    "Playback",
    "opt_str",
    "parse_application",
    "parse_asterisk_info",
    "parse_asterisk_ping",
    "parse_channel",
    "parse_playback",
    "req_int",
    "req_obj",
    "req_str",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


# --- strict field readers ------------------------------------------------------------------
# Each takes the object, the key and the dotted path used in the error message. ``bool`` is
# rejected where an int is declared (JSON ``true`` is not a number).


def req_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    """Return ``obj[key]`` as a string or raise ``AriProtocolError`` naming ``where.key``."""
    try:
        value = obj[key]
    except KeyError:
        raise AriProtocolError(f"{where}.{key}: missing") from None
    if type(value) is not str:
        raise AriProtocolError(f"{where}.{key}: expected string, got {type(value).__name__}")
    return value


def opt_str(obj: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    """Return ``obj[key]`` as a string, ``default`` when absent or null."""
    value = obj.get(key)
    if value is None:
        return default
    if type(value) is not str:
        raise AriProtocolError(f"{where}.{key}: expected string, got {type(value).__name__}")
    return value


def req_int(obj: Mapping[str, Any], key: str, where: str) -> int:
    """Return ``obj[key]`` as an int (not a bool) or raise ``AriProtocolError``."""
    try:
        value = obj[key]
    except KeyError:
        raise AriProtocolError(f"{where}.{key}: missing") from None
    if type(value) is not int:
        raise AriProtocolError(f"{where}.{key}: expected integer, got {type(value).__name__}")
    return value


def req_obj(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """Return ``obj[key]`` as a JSON object or raise ``AriProtocolError``."""
    try:
        value = obj[key]
    except KeyError:
        raise AriProtocolError(f"{where}.{key}: missing") from None
    if type(value) is not dict:
        raise AriProtocolError(f"{where}.{key}: expected object, got {type(value).__name__}")
    return value


def _str_list(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if type(value) is not list or any(type(item) is not str for item in value):
        raise AriProtocolError(f"{where}.{key}: expected a list of strings")
    return tuple(value)


def _obj_list(obj: Mapping[str, Any], key: str, where: str) -> tuple[Mapping[str, Any], ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if type(value) is not list or any(type(item) is not dict for item in value):
        raise AriProtocolError(f"{where}.{key}: expected a list of objects")
    return tuple(MappingProxyType(item) for item in value)


# --- models --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerId:
    """ARI ``CallerID``: a name and a number, both caller-controlled text."""

    name: str
    number: str


@dataclass(frozen=True, slots=True)
class DialplanLocation:
    """ARI ``DialplanCEP``: where in dialplan the channel is (or was when it entered Stasis)."""

    context: str
    exten: str
    priority: int
    app_name: str = ""
    app_data: str = ""


@dataclass(frozen=True, slots=True)
class Channel:
    """ARI ``Channel`` snapshot.

    ``channelvars`` holds the variables named in ``ari.conf`` ``channelvars`` (empty when none are
    configured); ``caller`` and ``connected`` are caller-controlled and must be treated as such.
    """

    id: str
    name: str
    state: str
    caller: CallerId
    connected: CallerId
    accountcode: str
    dialplan: DialplanLocation
    creationtime: str
    language: str
    protocol_id: str = ""
    channelvars: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    caller_rdnis: str = ""
    tenantid: str = ""


@dataclass(frozen=True, slots=True)
class Playback:
    """ARI ``Playback``; ``state`` is ``queued``, ``playing``, ``done``, ``failed``, ..."""

    id: str
    media_uri: str
    target_uri: str
    state: str
    language: str = ""
    next_media_uri: str = ""


@dataclass(frozen=True, slots=True)
class Application:
    """ARI ``Application``: a registered Stasis app and what it is subscribed to."""

    name: str
    channel_ids: tuple[str, ...]
    bridge_ids: tuple[str, ...]
    endpoint_ids: tuple[str, ...]
    device_names: tuple[str, ...]
    events_allowed: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    events_disallowed: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)


@dataclass(frozen=True, slots=True)
class AsteriskInfo:
    """The parts of ARI ``AsteriskInfo`` the product reads (``system``, ``config``, ``status``)."""

    version: str
    entity_id: str
    default_language: str
    startup_time: str
    last_reload_time: str


@dataclass(frozen=True, slots=True)
class AsteriskPing:
    """ARI ``AsteriskPing``: a cheap liveness answer."""

    asterisk_id: str
    ping: str
    timestamp: str


# --- parsers -------------------------------------------------------------------------------


def _caller(obj: Mapping[str, Any], key: str, where: str) -> CallerId:
    raw = req_obj(obj, key, where)
    path = f"{where}.{key}"
    return CallerId(name=req_str(raw, "name", path), number=req_str(raw, "number", path))


def parse_channel(obj: Mapping[str, Any], where: str = "channel") -> Channel:
    """Build a ``Channel`` from its JSON object; raise ``AriProtocolError`` on a bad shape."""
    if type(obj) is not dict:
        raise AriProtocolError(f"{where}: expected object, got {type(obj).__name__}")
    plan = req_obj(obj, "dialplan", where)
    plan_where = f"{where}.dialplan"
    raw_vars = obj.get("channelvars")
    channelvars: Mapping[str, str] = _EMPTY
    if raw_vars is not None:
        if type(raw_vars) is not dict:
            raise AriProtocolError(f"{where}.channelvars: expected object")
        # Asterisk renders every configured variable as a string (unset ones as "").
        channelvars = MappingProxyType(
            {str(k): "" if v is None else str(v) for k, v in raw_vars.items()}
        )
    return Channel(
        id=req_str(obj, "id", where),
        name=req_str(obj, "name", where),
        state=req_str(obj, "state", where),
        caller=_caller(obj, "caller", where),
        connected=_caller(obj, "connected", where),
        accountcode=opt_str(obj, "accountcode", where),
        dialplan=DialplanLocation(
            context=req_str(plan, "context", plan_where),
            exten=req_str(plan, "exten", plan_where),
            priority=req_int(plan, "priority", plan_where),
            app_name=opt_str(plan, "app_name", plan_where),
            app_data=opt_str(plan, "app_data", plan_where),
        ),
        creationtime=req_str(obj, "creationtime", where),
        language=opt_str(obj, "language", where),
        protocol_id=opt_str(obj, "protocol_id", where),
        channelvars=channelvars,
        caller_rdnis=opt_str(obj, "caller_rdnis", where),
        tenantid=opt_str(obj, "tenantid", where),
    )


def parse_playback(obj: Mapping[str, Any], where: str = "playback") -> Playback:
    """Build a ``Playback`` from its JSON object; raise ``AriProtocolError`` on a bad shape."""
    if type(obj) is not dict:
        raise AriProtocolError(f"{where}: expected object, got {type(obj).__name__}")
    return Playback(
        id=req_str(obj, "id", where),
        media_uri=req_str(obj, "media_uri", where),
        target_uri=req_str(obj, "target_uri", where),
        state=req_str(obj, "state", where),
        language=opt_str(obj, "language", where),
        next_media_uri=opt_str(obj, "next_media_uri", where),
    )


def parse_application(obj: Any, where: str = "application") -> Application:
    """Build an ``Application`` from its JSON object; raise ``AriProtocolError`` on a bad shape."""
    if type(obj) is not dict:
        raise AriProtocolError(f"{where}: expected object, got {type(obj).__name__}")
    return Application(
        name=req_str(obj, "name", where),
        channel_ids=_str_list(obj, "channel_ids", where),
        bridge_ids=_str_list(obj, "bridge_ids", where),
        endpoint_ids=_str_list(obj, "endpoint_ids", where),
        device_names=_str_list(obj, "device_names", where),
        events_allowed=_obj_list(obj, "events_allowed", where),
        events_disallowed=_obj_list(obj, "events_disallowed", where),
    )


def parse_asterisk_info(obj: Any, where: str = "info") -> AsteriskInfo:
    """Build ``AsteriskInfo`` from ``GET /asterisk/info``; absent sections give empty strings."""
    if type(obj) is not dict:
        raise AriProtocolError(f"{where}: expected object, got {type(obj).__name__}")
    empty: Mapping[str, Any] = {}
    system = obj.get("system") or empty
    config = obj.get("config") or empty
    status = obj.get("status") or empty
    for key, part in (("system", system), ("config", config), ("status", status)):
        if type(part) is not dict and part is not empty:
            raise AriProtocolError(f"{where}.{key}: expected object")
    return AsteriskInfo(
        version=opt_str(system, "version", f"{where}.system"),
        entity_id=opt_str(system, "entity_id", f"{where}.system"),
        default_language=opt_str(config, "default_language", f"{where}.config"),
        startup_time=opt_str(status, "startup_time", f"{where}.status"),
        last_reload_time=opt_str(status, "last_reload_time", f"{where}.status"),
    )


def parse_asterisk_ping(obj: Any, where: str = "ping") -> AsteriskPing:
    """Build ``AsteriskPing`` from ``GET /asterisk/ping``."""
    if type(obj) is not dict:
        raise AriProtocolError(f"{where}: expected object, got {type(obj).__name__}")
    return AsteriskPing(
        asterisk_id=req_str(obj, "asterisk_id", where),
        ping=req_str(obj, "ping", where),
        timestamp=req_str(obj, "timestamp", where),
    )
