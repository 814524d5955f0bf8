"""What a masked secret looks like, and the masking of passwords inside URLs and DSNs.

This module owns ``MASK``, the accepted log level names (``LEVELS``) and ``mask_url_password``:
the pieces both the settings (``check-config`` output, error messages) and the logging set-up
need. It must import nothing from the rest of the package, so every layer may use it.
"""

from __future__ import annotations

import logging
import re

__all__ = ["LEVELS", "MASK", "mask_url_password"]

MASK = "********"
"""What a masked secret looks like in logs, errors and ``check-config`` output."""

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
"""Accepted ``logging.level`` names and the stdlib level each one stands for."""

# scheme://user:password@host -> keep scheme and user, mask the password. The password part is
# greedy up to the last "@" of the whitespace-delimited token: over-masking is safe.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)(?P<pw>[^\s]*)@")
# password=..., api_key=..., token: ... in query strings, libpq key/value DSNs and messages.
_PAIR_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|api_key|secret|token)\s*[=:]\s*)"
    r"(?P<quote>['\"]?)(?P<pw>[^\s&;'\",)]+)",
    re.IGNORECASE,
)


def mask_url_password(text: str) -> str:
    """Return ``text`` with the password of every ``scheme://user:pass@host`` masked.

    ``postgresql://app:s3cret@db/ledger`` becomes ``postgresql://app:********@db/ledger``;
    ``password=...`` pairs (query strings, key/value DSNs) are masked too.
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    return _PAIR_PASSWORD.sub(lambda m: f"{m.group('head')}{m.group('quote')}{MASK}", text)
