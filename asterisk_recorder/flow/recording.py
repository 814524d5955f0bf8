"""The recording file path and MixMonitor options handed to dialplan.

This module owns the pure functions that build ``RECORDER_FILE`` and ``RECORDER_MIXMON_OPTIONS``
from configuration, the UTC date of the decision and the decision id only. Caller-controlled
text (caller id, dialled number) is never an input here, and every input that is one is
validated against a strict character set, so nothing can smuggle a comma, a parenthesis, a
``${...}`` or a ``..`` into a MixMonitor argument or a file path. Pure standard library; no I/O.
"""

from __future__ import annotations

import math
import re
import time

from asterisk_recorder.errors import FlowError
from asterisk_recorder.flow.settings import RecordingSettings

__all__ = [
    "DECISION_ID_RE",
    "RecordingPlan",
    "check_recording_settings",
    "mixmonitor_options",
    "recording_path",
    "validate_decision_id",
]

DECISION_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
"""A decision id: a UUID in canonical lowercase form (``str(uuid.uuid4())``)."""

_DIRECTORY_RE = re.compile(r"^/[A-Za-z0-9._/-]*\Z")
_FORMAT_RE = re.compile(r"^[a-z0-9]{1,16}\Z")
_OPTIONS_RE = re.compile(r"^(?:[A-Za-z](?:\([A-Za-z0-9_./-]*\))?)*\Z")
_OPTION_RE = re.compile(r"([A-Za-z])(?:\(([A-Za-z0-9_./-]*)\))?")
_LAST_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z


def validate_decision_id(decision_id: str) -> str:
    """Return ``decision_id`` if it is a canonical lowercase UUID string.

    Raises:
        FlowError: anything else (drivers generate ``str(uuid.uuid4())``).
    """
    value: object = decision_id
    if not isinstance(value, str) or not DECISION_ID_RE.match(value):
        shown = repr(decision_id)[:60]
        raise FlowError(f"decision id {shown} is not a canonical lowercase UUID")
    return value


def check_recording_settings(settings: RecordingSettings) -> list[str]:
    """Every problem with ``settings`` (one line each); empty when they are usable."""
    problems: list[str] = []
    directory = settings.directory
    if not _DIRECTORY_RE.match(directory):
        problems.append(
            f"recording.directory {directory[:80]!r} must be an absolute path of letters, "
            "digits and . _ - /"
        )
    elif ".." in directory.split("/"):
        problems.append(f"recording.directory {directory[:80]!r} must not contain '..'")
    if not _FORMAT_RE.match(settings.file_format):
        problems.append(
            f"recording.file_format {settings.file_format[:20]!r} must be lowercase letters "
            "and digits (wav, wav49, gsm, sln ...)"
        )
    if not _OPTIONS_RE.match(settings.mixmonitor_options):
        problems.append(
            f"recording.mixmonitor_options {settings.mixmonitor_options[:40]!r} must be "
            "option letters with optional (arguments) of letters, digits and . _ - /"
        )
    return problems


def _check(settings: RecordingSettings) -> None:
    problems = check_recording_settings(settings)
    if problems:
        raise FlowError("; ".join(problems))


class RecordingPlan:
    """Validated recording settings, ready to build many paths and option strings quickly.

    ``ConsentFlow`` builds one per ``RecordingSettings`` object; ``recording_path`` and
    ``mixmonitor_options`` are the one-shot forms.
    """

    __slots__ = ("_day", "_day_dir", "_directory", "_format", "_options", "settings")

    def __init__(self, settings: RecordingSettings) -> None:
        """Validate ``settings`` once.

        Raises:
            FlowError: the settings are not safe (see ``check_recording_settings``).
        """
        _check(settings)
        self.settings = settings
        self._directory = settings.directory.rstrip("/")
        self._format = settings.file_format
        self._options: dict[int | None, str] = {}
        self._day = -1
        self._day_dir = ""

    def path(self, decision_id: str, decided_at: float) -> str:
        """``{directory}/{YYYY}/{MM}/{DD}/{decision_id}.{file_format}``, UTC date of ``decided_at``.

        Raises:
            FlowError: the decision id is not a UUID, or ``decided_at`` is not a finite epoch
                time between 1970 and 9999.
        """
        return self.path_for_valid_id(validate_decision_id(decision_id), decided_at)

    def path_for_valid_id(self, decision_id: str, decided_at: float) -> str:
        """``path`` for a decision id the caller already passed through ``validate_decision_id``.

        ``ConsentFlow`` validates the id once, on ``CallOffered``, and calls this on the
        decision. The UTC day's directory is cached, so most calls format one string.

        Raises:
            FlowError: ``decided_at`` is not a finite epoch time between 1970 and 9999.
        """
        when: object = decided_at
        if (
            isinstance(when, bool)
            or not isinstance(when, (int, float))
            or not math.isfinite(when)
            or not 0.0 <= when <= _LAST_EPOCH
        ):
            raise FlowError(f"decided_at {decided_at!r} is not an epoch time between 1970 and 9999")
        day = int(decided_at // 86400)
        if day != self._day:
            t = time.gmtime(day * 86400)
            self._day_dir = f"{self._directory}/{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d}/"
            self._day = day
        return f"{self._day_dir}{decision_id}.{self._format}"

    def options(self, beep_interval: int | None) -> str:
        """``mixmonitor_options(settings, beep_interval)``, computed once per interval.

        Raises:
            FlowError: ``beep_interval`` is not 1..3600.
        """
        found = self._options.get(beep_interval)
        if found is None:
            found = mixmonitor_options(self.settings, beep_interval)
            if len(self._options) < 64:
                self._options[beep_interval] = found
        return found


def recording_path(settings: RecordingSettings, decision_id: str, decided_at: float) -> str:
    """``{directory}/{YYYY}/{MM}/{DD}/{decision_id}.{file_format}``, UTC date of ``decided_at``.

    Raises:
        FlowError: the decision id is not a UUID, ``decided_at`` is not a finite epoch time
            between 1970 and 9999, or the settings are not safe (see ``check_recording_settings``).
    """
    return RecordingPlan(settings).path(decision_id, decided_at)


def mixmonitor_options(settings: RecordingSettings, beep_interval: int | None) -> str:
    """MixMonitor options: the configured ones, ``p`` if ``start_beep``, ``B(n)`` for the policy.

    When the configured options already hold ``B(m)`` the shorter interval wins.

    Raises:
        FlowError: the configured options are not safe, or ``beep_interval`` is not 1..3600.
    """
    _check(settings)
    options = [(m.group(1), m.group(2)) for m in _OPTION_RE.finditer(settings.mixmonitor_options)]
    letters = {letter for letter, _ in options}
    if settings.start_beep and "p" not in letters:
        options.append(("p", None))
    if beep_interval is not None:
        beep: object = beep_interval
        if isinstance(beep, bool) or not isinstance(beep, int) or not 1 <= beep <= 3600:
            raise FlowError(f"beep interval {beep_interval!r} is not an integer 1..3600")
        interval = beep_interval
        kept: list[tuple[str, str | None]] = []
        for letter, arg in options:
            if letter == "B":
                if arg and arg.isdigit() and 0 < int(arg) < interval:
                    interval = int(arg)
                continue
            kept.append((letter, arg))
        options = [*kept, ("B", str(interval))]
    return "".join(letter if arg is None else f"{letter}({arg})" for letter, arg in options)
