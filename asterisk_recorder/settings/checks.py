"""The per-key rules of the configuration: ports, timeouts, DTMF keys, sound ids, languages,
paths, URLs, the DSN, placeholder secrets.

This module owns ``CHECKS`` (dotted key -> rule returning a problem or None), ``NORMALIZE`` (case
folding before the check) and ``is_placeholder_secret``. The rules accept only what the parts
that use the values accept (the consent flow, the policy engine); a test walks the schema to
keep them aligned. It must not read files or the environment, and must never put a secret's
value into a problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from asterisk_recorder.redaction import LEVELS, mask_url_password
from asterisk_recorder.settings.ledger_rules import (
    cryptoperiod,
    endpoint,
    origin,
    pkcs11_key,
    pkcs11_module,
    pkcs11_token,
    timestamp_ca_file,
    timestamp_url,
    verifiers,
    witnesses,
)
from asterisk_recorder.settings.pause_rules import PAUSE_CHECKS, api_token
from asterisk_recorder.settings.recording_rules import (
    asterisk_ids,
    mixmonitor,
    recording_dir,
    s3_region,
    sealed_store,
)
from asterisk_recorder.settings.retention import check_retention, check_rules
from asterisk_recorder.settings.schema import DTMF_KEYS, FILE_FORMATS, LOG_FORMATS, RESYNC_ACTIONS
from asterisk_recorder.settings.sections import Secret
from asterisk_recorder.settings.values import show

__all__ = [
    "CHECKS",
    "NORMALIZE",
    "PLACEHOLDER_RULE",
    "is_placeholder_secret",
]


_Check = Callable[[Any], "str | None"]


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else f"{v} is not a valid port (1-65535)"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"{v:g} must be a positive number of seconds (> 0)"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else f"{v:g} must be zero or a positive number of seconds (>= 0)"


def _seconds_up_to(high: float) -> _Check:
    def check(v: float) -> str | None:
        if 0 < v <= high:
            return None
        return f"{v:g} must be a number of seconds above 0 and at most {high:g}"

    return check


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
        return None if v in choices else f"{show(v)} is not allowed (one of: {', '.join(choices)})"

    return check


def _pattern(regex: str, what: str, *, allow_empty: bool = False) -> _Check:
    compiled = re.compile(regex)

    def check(v: str) -> str | None:
        if allow_empty and v == "":
            return None
        return None if compiled.fullmatch(v) else f"{show(v)} is not {what}"

    return check


def _dtmf(v: str) -> str | None:
    if len(v) == 1 and v in DTMF_KEYS:
        return None
    return f"{show(v)} is not a DTMF key (one character of 0-9, * or #)"


_HOST = _pattern(r"[A-Za-z0-9.:_\[\]-]{1,253}", "a host name or IP address")
_SOUND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
"""A sound id as the flow accepts it: relative, not starting with '.', '-' or '/'."""
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,2}")
"""A language code as the flow accepts it: 2-3 letters, then up to two ``_``/``-`` parts."""


def _sound(required: bool) -> _Check:
    def check(v: str) -> str | None:
        if v == "":
            return "must name a sound (an Asterisk sound id such as recorder/consent)" \
                if required else None
        if not _SOUND.fullmatch(v) or ".." in PurePosixPath(v).parts:
            return (f"{show(v)} is not a sound id (letters, digits, '_', '.', '/', '-', "
                    "starting with a letter, digit or '_'; relative, no '..', no extension; "
                    "at most 200 characters)")
        return None

    return check


_LANGUAGE_RULE = ("2-3 letters, then up to two '_' or '-' parts of 2-8 letters or digits, such "
                  "as en, fr_CA, pt_BR")


def _languages(v: tuple[str, ...]) -> str | None:
    if not v:
        return "must list at least one language (e.g. [\"en\"])"
    for lang in v:
        if not _LANGUAGE.fullmatch(lang):
            return f"{show(lang)} is not a language code ({_LANGUAGE_RULE})"
    return None


def _language(v: str) -> str | None:
    if _LANGUAGE.fullmatch(v):
        return None
    return f"{show(v)} is not a language code ({_LANGUAGE_RULE})"


def _peers(v: tuple[object, ...]) -> str | None:
    if not v:
        return ("must list at least one address or network (to run no FastAGI server, set "
                "agi.enabled = false)")
    return None


def _accept_after(v: float | None) -> str | None:
    if v is None or 0 <= v <= 3600:
        return None
    return f'{v:g} must be a number of seconds from 0 to 3600, or "end"'


def _required_abs_dir(v: str) -> str | None:
    if v == "":
        return "must be an absolute directory (it has no default location when empty)"
    return _abs_dir(v)


def _abs_dir(v: str) -> str | None:
    if v == "":
        return None
    if any(ord(c) < 32 or c == "\x7f" for c in v):
        return f"{show(v)} contains control characters"
    if not v.startswith("/"):
        return f"{show(v)} must be an absolute path (or empty for the default)"
    return None


def _ari_url(v: str) -> str | None:
    if any(ord(c) <= 32 or c == "\x7f" for c in v):
        return f"{show(mask_url_password(v))} must not contain spaces or control characters"
    parts = urlsplit(v)
    shown = show(mask_url_password(v))
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
        return f"{show(v)} is not a valid ARI user name (non-empty, no ':' or control characters)"
    return None


_PLACEHOLDERS = frozenset({
    "changeme", "change", "changeit", "changethis", "replaceme", "replace", "password",
    "passwd", "passw0rd", "pass", "pwd", "secret", "placeholder", "example", "sample", "todo",
    "fixme", "tbd", "default", "none", "null", "empty", "xxx", "yourpassword", "mypassword",
    "yoursecret", "mysecret", "secretkey", "digestkey", "key", "dsn", "admin", "letmein",
    "123456", "12345678", "qwerty",
})
_PLACEHOLDER_PREFIXES = ("changeme", "replaceme", "changethis", "yourpassword", "yoursecret",
                         "insert", "putyour", "setme", "fillme")


def is_placeholder_secret(text: str) -> bool:
    """Whether ``text`` is an obvious stand-in rather than a real secret.

    The sample's ``change-me`` and its spellings (``CHANGE_ME``, ``<changeme>``,
    ``change-me-to-a-long-random-secret``), words such as ``password`` or ``secret``, a value
    with no letter or digit (blank, ``********``) and one character repeated (``xxxxxxxx``).
    """
    normalized = re.sub(r"[^a-z0-9]", "", text.lower())
    return (
        normalized == ""
        or normalized in _PLACEHOLDERS
        or normalized.startswith(_PLACEHOLDER_PREFIXES)
        or (len(normalized) >= 3 and len(set(normalized)) == 1)
    )


PLACEHOLDER_RULE = ("is a placeholder, not a real value (hidden; see \"Secrets\" in "
                     "docs/configuration.md)")


def _dsn_password(text: str) -> str | None:
    """The password a DSN carries, in its authority or as ``?password=``."""
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return None
    if password is not None:
        return unquote(password)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return query.get("password")


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
    password = _dsn_password(text)
    if password and is_placeholder_secret(password):  # "user:@": no password (trust, .pgpass)
        return "the DSN's password " + PLACEHOLDER_RULE + "; set the database user's password"
    return None


def _digest_key(v: Secret) -> str | None:
    if v.value and is_placeholder_secret(v.value):
        return (PLACEHOLDER_RULE + "; set a long random key (e.g. openssl rand -hex 32), or "
                "leave it empty to create a key file beside the spool")
    return None


def _pkcs11_pin(v: Secret) -> str | None:
    if v.value and is_placeholder_secret(v.value):
        return PLACEHOLDER_RULE + "; set the user PIN of the PKCS#11 token"
    return None


def _jurisdiction(v: str) -> str | None:
    if re.fullmatch(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", v):
        return None
    return f"{show(v)} is not a jurisdiction code (a country such as US, GB, DE, or US-CA)"


def _region(v: str) -> str | None:
    import phonenumbers  # imported here: only this check needs its region list

    if v in phonenumbers.SUPPORTED_REGIONS:
        return None
    return f"{show(v)} is not a region phonenumbers knows (two letters, such as US, GB, DE)"


def _log_level(v: str) -> str | None:
    return _one_of(LEVELS)(v)


CHECKS: dict[str, _Check] = {
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
    "agi.allowed_peers": _peers,
    "database.dsn": _dsn,
    "ledger.digest_key": _digest_key,
    "database.embedded_data_dir": _abs_dir,
    "database.connect_timeout": _positive,
    "ledger.spool_dir": _abs_dir,
    "ledger.ack_timeout": _positive,
    "ledger.batch_interval": _non_negative,
    "ledger.batch_max": _at_least(1),
    "ledger.checkpoint_every": _at_least(1, 10_000_000),
    "ledger.checkpoint_interval": _seconds_up_to(86400),
    "ledger.checkpoint_origin": origin,
    "ledger.checkpoint_key_file": _abs_dir,
    "ledger.checkpoint_keys": verifiers,
    "ledger.checkpoint_pkcs11_module": pkcs11_module,
    "ledger.checkpoint_pkcs11_token": pkcs11_token,
    "ledger.checkpoint_pkcs11_key": pkcs11_key,
    "ledger.checkpoint_pkcs11_pin": _pkcs11_pin,
    "ledger.witnesses": witnesses,
    "ledger.witness_max_lag": _positive,
    "ledger.witness_s3_endpoint": endpoint,
    "ledger.witness_s3_region": _pattern(r"[a-z0-9-]{1,32}", "an S3 region (e.g. eu-west-1)",
                                         allow_empty=True),
    "ledger.witness_object_lock_days": _at_least(0, 36500),
    "ledger.timestamp_url": timestamp_url,
    "ledger.timestamp_ca_file": timestamp_ca_file,
    "policy.site_jurisdiction": _jurisdiction,
    "policy.default_region": _region,
    "flow.opt_out_key": _dtmf,
    "flow.opt_in_accept_key": _dtmf,
    "flow.opt_in_decline_key": _dtmf,
    "flow.input_timeout": _seconds_up_to(3600),
    "flow.max_retries": _at_least(0, 10),
    "flow.guard_timeout": _seconds_up_to(3600),
    "flow.prompts.opt_in": _sound(True),
    "flow.prompts.opt_out": _sound(True),
    "flow.prompts.announce": _sound(True),
    "flow.prompts.never": _sound(False),
    "flow.prompts.none": _sound(False),
    "flow.prompts.languages": _languages,
    "flow.prompts.fallback_language": _language,
    "flow.prompts.opt_in_accept_after": _accept_after,
    "recording.directory": recording_dir,
    "recording.file_format": _one_of(FILE_FORMATS),
    "recording.mixmonitor_options": mixmonitor,
    "http.host": _HOST,
    "http.port": _port,
    "logging.level": _log_level,
    "logging.format": _one_of(LOG_FORMATS),
    "controller.shutdown_grace": _non_negative,
    "controller.hand_back_retry": _non_negative,
    "recordings.sealed_dir": _required_abs_dir,
    "recordings.quarantine_dir": _required_abs_dir,
    "recordings.key_dir": _required_abs_dir,
    "recordings.retention_class": _pattern(r"[a-z][a-z0-9_]{0,31}",
                                           "a retention class (a lowercase letter, then "
                                           "lowercase letters, digits, '_'; at most 32)"),
    "recordings.retention": check_retention,
    "recordings.retention_rules": check_rules,
    "recordings.absent_after": _positive,
    "recordings.scan_interval": _positive,
    "recordings.settle_after": _positive,
    "recordings.orphan_after": _non_negative,
    "recordings.max_lag": _positive,
    "recordings.http_port": _port,
    "recordings.asterisk_ids": asterisk_ids,
    "recordings.store": sealed_store,
    "recordings.store_s3_endpoint": endpoint,
    "recordings.store_s3_region": s3_region,
    "recordings.store_object_lock_days": _at_least(0, 36500),
    "recordings.kek_pkcs11_module": pkcs11_module,
    "recordings.kek_pkcs11_token": pkcs11_token,
    "recordings.kek_pkcs11_pin": _pkcs11_pin,
    "recordings.kek_cryptoperiod": cryptoperiod,
    "controller.resync_action": _one_of(RESYNC_ACTIONS),
    "pause.api_token": lambda v: api_token(v, is_placeholder_secret),
    "ami.secret": lambda v: PLACEHOLDER_RULE if is_placeholder_secret(v.value or "x") else None,
    **PAUSE_CHECKS,
}

NORMALIZE: dict[str, Callable[[str], str]] = {
    "policy.site_jurisdiction": str.upper,
    "policy.default_region": str.upper,
    "logging.level": str.lower,
    "logging.format": str.lower,
}
