"""The rules of the ``[pause]`` keys and of ``recordings.pci_*``.

This module owns ``PAUSE_CHECKS`` (dotted key -> rule returning a problem or None, merged into
``checks.CHECKS``), ``api_token`` and ``pause_required`` (what ``pause.enabled`` needs of the
other sections). It must not read files or the environment, and never puts a secret's value
into a problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from asterisk_recorder.settings.sections import PauseSettings, Secret
from asterisk_recorder.settings.values import show

__all__ = ["PAUSE_CHECKS", "PCI_CHECKS", "ami_required", "api_token", "pause_required"]

PCI_CHECKS = ("quarantine", "attest", "off")
"""What the sealer does with the PCI check (``recordings.pci_check``)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
MIN_TOKEN = 32


def _names(v: tuple[str, ...]) -> str | None:
    for name in v:
        if not _NAME.fullmatch(name):
            return (f"{show(name)} is not a context or queue name (letters, digits, `_`, `.`, "
                    "`-`; at most 80)")
    return None


def _seconds(low: float, high: float) -> Callable[[Any], str | None]:
    def check(v: float) -> str | None:
        if math.isfinite(v) and low <= v <= high:
            return None
        return f"{show(str(v))} is not between {low:g} and {high:g} seconds"
    return check


def api_token(v: Secret, placeholder: Callable[[str], bool]) -> str | None:
    """The API token: empty (API off), or at least 32 characters and no placeholder."""
    if not v.value:
        return None
    if len(v.value) < MIN_TOKEN:
        return (f"is too short (hidden; at least {MIN_TOKEN} characters, e.g. "
                "`openssl rand -hex 32`)")
    if placeholder(v.value):
        return "is a placeholder, not a real token (hidden)"
    return None


def _pci(v: str) -> str | None:
    return None if v in PCI_CHECKS else f"{show(v)} is not one of {', '.join(PCI_CHECKS)}"


def pause_required(pause: PauseSettings, mixmonitor_options: str,
                   ami_enabled: bool) -> list[tuple[str, str]]:
    """``(key, problem)`` for what ``pause.enabled`` needs of the other sections."""
    if not pause.enabled:
        return []
    problems = []
    if not ami_enabled:
        problems.append(("pause.enabled", "needs [ami] enabled (the pause is AMI MixMonitorMute)"))
    if "b" in re.sub(r"\([^)]*\)", "", mixmonitor_options):
        problems.append((
            "recording.mixmonitor_options",
            f"{show(mixmonitor_options)} has `b` (record only while bridged), which drops "
            "unbridged time from the file: with pause.enabled the file must keep the call's "
            "timeline so paused spans can be proven silent; remove `b`"))
    return problems


def _host(v: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9.:-]{1,253}", v):
        return None
    return f"{show(v)} is not a host name or address"


def _user(v: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9_.@-]{0,64}", v):
        return None
    return f"{show(v)} is not a manager.conf user name (letters, digits, `_.@-`; at most 64)"


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else f"{v} is not a valid port (1-65535)"


def ami_required(enabled: bool, username: str, secret: Secret) -> list[tuple[str, str]]:
    """``(key, problem)`` for what ``ami.enabled`` needs: a user and its secret."""
    if not enabled:
        return []
    problems = []
    if not username:
        problems.append(("ami.username", "missing; [ami] is enabled and needs the manager.conf "
                                         "user"))
    if not secret:
        problems.append(("ami.secret", "missing; [ami] is enabled and needs that user's secret "
                                       "(set ASTERISK_RECORDER_AMI_SECRET)"))
    return problems


PAUSE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "ami.host": _host,
    "ami.port": _port,
    "ami.username": _user,
    "ami.connect_timeout": _seconds(0.1, 300.0),
    "ami.action_timeout": _seconds(0.1, 300.0),
    "ami.reconnect_max": _seconds(0.5, 3600.0),
    "pause.max_pause": _seconds(1.0, 3600.0),
    "pause.payment_contexts": _names,
    "pause.payment_queues": _names,
    "pause.retry_every": _seconds(0.5, 300.0),
    "recordings.pci_check": _pci,
    "recordings.pci_tolerance": _seconds(0.05, 5.0),
}
"""Per-key rules of ``[pause]`` (``pause.api_token`` is in ``checks.CHECKS``: it needs the
placeholder rule)."""
