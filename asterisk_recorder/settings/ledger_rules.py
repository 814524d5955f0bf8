"""The rules of the ledger's checkpoint and witness settings: origins, verifier keys, witnesses.

This module owns the checks of ``ledger.checkpoint_origin``, ``ledger.checkpoint_keys``,
``ledger.checkpoint_pkcs11_*`` (each key, and ``pkcs11_required``: a module needs a token and a
PIN; the same for ``recordings.kek_pkcs11_*``: ``kek_pkcs11_required``),
``recordings.kek_cryptoperiod``, ``ledger.witnesses``, ``ledger.witness_s3_endpoint`` and
``ledger.timestamp_url`` / ``ledger.timestamp_ca_file``
(``checks`` puts them in its table). A
verifier key is checked for its shape here; the ledger parses it fully when it loads. It
must not read files or the environment, and must never put a credential into a problem.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from asterisk_recorder.settings.sections import LedgerSettings, RecordingsSettings
from asterisk_recorder.settings.values import show

__all__ = [
    "cryptoperiod",
    "cryptoperiod_seconds",
    "endpoint",
    "kek_pkcs11_required",
    "origin",
    "pkcs11_key",
    "pkcs11_module",
    "pkcs11_required",
    "pkcs11_token",
    "timestamp_ca_file",
    "timestamp_url",
    "verifiers",
    "witnesses",
]


def _abs_path(v: str) -> str | None:
    if any(ord(c) < 32 or c == "\x7f" for c in v):
        return f"{show(v)} contains control characters"
    return None


_ORIGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}")
_VERIFIER = re.compile(r"[^+\s]{1,64}\+[0-9a-f]{8}\+[A-Za-z0-9+/]+={0,2}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9._/-]{0,512}")


def origin(v: str) -> str | None:
    if v == "" or _ORIGIN.fullmatch(v):
        return None
    return (f"{show(v)} is not a checkpoint origin (a letter or digit, then letters, digits, "
            "'.', '_', ':', '/', '@', '-'; at most 255; e.g. recorder.example.com/ledger)")


def verifiers(v: tuple[str, ...]) -> str | None:
    for key in v:
        if not _VERIFIER.fullmatch(key):
            return (f"{show(key)} is not a verifier key (name+8 hex digits+base64, as "
                    "'asterisk-recorder ledger checkpoint-key show' prints it)")
    return None


def _http_url(v: str, what: str) -> str | None:
    try:
        url = urlsplit(v)
        url.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{show(v)} is not a valid {what}"
    if url.scheme not in ("http", "https") or not url.hostname:
        return f"{show(v)} is not a valid {what} (http:// or https:// and a host)"
    if url.username is not None or url.password is not None:
        return f"{what} {show(url.hostname)} carries credentials; never put secrets in a URL"
    if any(ord(c) < 33 or c == "\x7f" for c in v):
        return f"{show(v)} contains spaces or control characters"
    return None


def _witness(v: str) -> str | None:
    if v.startswith("/"):
        return _abs_path(v)
    if v.startswith(("http://", "https://")):
        return _http_url(v, "witness URL")
    if v.startswith("s3://"):
        bucket, _, prefix = v[len("s3://"):].partition("/")
        if not _BUCKET.fullmatch(bucket):
            return f"{show(v)} does not name a valid S3 bucket (s3://bucket/prefix)"
        if not _PREFIX.fullmatch(prefix) or ".." in prefix.split("/"):
            return f"{show(v)} has an invalid prefix (letters, digits, '.', '_', '/', '-')"
        return None
    return (f"{show(v)} is not a witness: an absolute directory, an http(s):// URL or "
            "s3://bucket/prefix")


def witnesses(v: tuple[str, ...]) -> str | None:
    for target in v:
        problem = _witness(target)
        if problem is not None:
            return problem
    if len(set(v)) != len(v):
        return "lists the same witness twice"
    return None


def endpoint(v: str) -> str | None:
    return None if v == "" else _http_url(v, "S3 endpoint URL")


def timestamp_url(v: str) -> str | None:
    if v == "":
        return None
    return _http_url(v, "time-stamping authority URL")


def timestamp_ca_file(v: str) -> str | None:
    if v == "":
        return None
    if any(ord(c) < 32 or c == "\x7f" for c in v):
        return f"{show(v)} contains control characters"
    if not v.startswith("/"):
        return (f"{show(v)} must be the absolute path of a PEM file of the TSA's root "
                "certificate(s), or empty not to check timestamps")
    return None


def pkcs11_module(v: str) -> str | None:
    if v == "":
        return None
    if any(ord(c) < 32 or c == "\x7f" for c in v):
        return f"{show(v)} contains control characters"
    if not v.startswith("/"):
        return (f"{show(v)} must be the absolute path of the PKCS#11 module (e.g. "
                "/usr/lib/softhsm/libsofthsm2.so), or empty to use the key file")
    return None


def _label(v: str, what: str) -> str | None:
    if len(v.encode("utf-8")) > 32:
        return f"{show(v)} is too long for a PKCS#11 {what} label (at most 32 bytes)"
    if v != v.strip():
        return f"{show(v)} has leading or trailing spaces (PKCS#11 pads labels with spaces)"
    return None


def pkcs11_token(v: str) -> str | None:
    return _label(v, "token")


def pkcs11_key(v: str) -> str | None:
    if v == "":
        return "must not be empty: the label of the key pair in the token"
    if len(v) > 128:
        return f"{show(v)} is too long (at most 128 characters)"
    if v != v.strip():
        return f"{show(v)} has leading or trailing spaces"
    return None


def pkcs11_required(ledger: LedgerSettings) -> list[tuple[str, str]]:
    """``(key, problem)`` for what a PKCS#11 module needs besides its path: a token, a PIN."""
    if not ledger.checkpoint_pkcs11_module:
        return []
    problems = []
    if not ledger.checkpoint_pkcs11_token:
        problems.append(("ledger.checkpoint_pkcs11_token",
                         "missing; ledger.checkpoint_pkcs11_module is set and needs the label of "
                         "the token holding the signing key"))
    if not ledger.checkpoint_pkcs11_pin:
        problems.append(("ledger.checkpoint_pkcs11_pin",
                         "missing; ledger.checkpoint_pkcs11_module is set and needs the token's "
                         "user PIN (set ASTERISK_RECORDER_LEDGER_CHECKPOINT_PKCS11_PIN)"))
    return problems


def kek_pkcs11_required(recordings: RecordingsSettings) -> list[tuple[str, str]]:
    """``(key, problem)`` for what ``recordings.kek_pkcs11_module`` needs: a token, a PIN."""
    if not recordings.kek_pkcs11_module:
        return []
    problems = []
    if not recordings.kek_pkcs11_token:
        problems.append(("recordings.kek_pkcs11_token",
                         "missing; recordings.kek_pkcs11_module is set and needs the label of "
                         "the token holding the recording keys"))
    if not recordings.kek_pkcs11_pin:
        problems.append(("recordings.kek_pkcs11_pin",
                         "missing; recordings.kek_pkcs11_module is set and needs the token's "
                         "user PIN (set ASTERISK_RECORDER_RECORDINGS_KEK_PKCS11_PIN)"))
    return problems


_CRYPTOPERIOD = re.compile(r"([1-9][0-9]{0,2})([dw])|1m")
_MONTH_S = 31 * 86400.0


def cryptoperiod(v: str) -> str | None:
    if _CRYPTOPERIOD.fullmatch(v) and cryptoperiod_seconds(v) <= _MONTH_S:
        return None
    return (f"{show(v)} is not a cryptoperiod: 1-31d, 1-4w or 1m (a key bucket is one month, "
            "so a longer period would change nothing)")


def cryptoperiod_seconds(v: str) -> float:
    """``14d`` -> seconds; ``1m`` -> 31 days (the end of the month ends a key's use first)."""
    if v == "1m":
        return _MONTH_S
    count, unit = int(v[:-1]), v[-1]
    return count * 86400.0 * (7 if unit == "w" else 1)
