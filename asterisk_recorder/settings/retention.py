"""Retention classes, their periods and the rules that choose a class per call.

This module owns the text forms of ``recordings.retention`` (``"standard=90d"``: a class and
how long its recordings are kept) and ``recordings.retention_rules``
(``"jurisdiction:US-CA=financial"``, ``"called:+44207=financial"``: which class a call gets),
their checks, the choice of a class for one call (``choose_class``) and the date a recording
becomes disposable (``retain_until``, calendar arithmetic: ``7y`` is seven calendar years, never
a day short). Pure standard library: no I/O, no clock. It must not read files or the ledger.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asterisk_recorder.settings.values import show

__all__ = [
    "CLASS_RE",
    "RULE_KINDS",
    "ClassChoice",
    "Period",
    "RetentionRule",
    "check_retention",
    "check_rules",
    "choose_class",
    "parse_period",
    "parse_retention",
    "parse_rule",
    "retain_until",
]

CLASS_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""A retention class (the key store's rule): lowercase letter, then ``a-z 0-9 _``; at most 32."""
_PERIOD_RE = re.compile(r"([1-9][0-9]{0,4})([dwmy])")
RULE_KINDS = ("jurisdiction", "called")
"""What a rule matches: a party's jurisdiction code, or the called number's prefix."""
_JURISDICTION_RE = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")
_PREFIX_RE = re.compile(r"\+?[0-9]{1,15}")
_UNITS = {"d": "days", "w": "weeks", "m": "months", "y": "years"}


@dataclass(frozen=True, slots=True)
class Period:
    """How long a class keeps its recordings: ``count`` days, weeks, months or years."""

    count: int
    unit: str

    @property
    def text(self) -> str:
        """The period as written in the settings, e.g. ``90d``."""
        return f"{self.count}{self.unit}"


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """One rule: calls matching ``kind``/``value`` get ``retention_class``.

    Attributes:
        kind: ``jurisdiction`` (a party's code: ``US`` matches ``US`` and every ``US-xx``;
            ``US-CA`` only California) or ``called`` (the called number starts with ``value``).
        value: the code or the number prefix.
        retention_class: the class chosen.
        text: the rule as written (recorded in the ledger with the recording).
    """

    kind: str
    value: str
    retention_class: str
    text: str


@dataclass(frozen=True, slots=True)
class ClassChoice:
    """The class a call's recording gets, and why (``rule``: the rule's text, or ``default``)."""

    retention_class: str
    rule: str


def parse_period(text: str) -> Period:
    """``90d``, ``12w``, ``6m``, ``7y`` -> ``Period``; ``ValueError`` otherwise."""
    match = _PERIOD_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{show(text)} is not a retention period (1-99999 followed by d, w, m or y: "
            "90d, 12w, 6m, 7y)"
        )
    return Period(int(match.group(1)), match.group(2))


def parse_retention(entries: Iterable[str]) -> dict[str, Period]:
    """``["standard=90d", "financial=7y"]`` -> ``{class: Period}``; ``ValueError`` naming the
    first bad entry (no ``=``, a bad class or period, a class given twice)."""
    out: dict[str, Period] = {}
    for entry in entries:
        name, sep, period = entry.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"{show(entry)} is not CLASS=PERIOD (e.g. standard=90d)")
        if not CLASS_RE.fullmatch(name):
            raise ValueError(
                f"{show(name)} is not a retention class (a lowercase letter, then lowercase "
                "letters, digits, '_'; at most 32)"
            )
        if name in out:
            raise ValueError(f"class {name} is given twice")
        out[name] = parse_period(period)
    return out


def parse_rule(text: str) -> RetentionRule:
    """``jurisdiction:US-CA=financial`` / ``called:+44207=financial`` -> ``RetentionRule``."""
    match, sep, retention_class = text.partition("=")
    kind, colon, value = match.partition(":")
    kind, value, retention_class = kind.strip(), value.strip(), retention_class.strip()
    if not sep or not colon or kind not in RULE_KINDS:
        raise ValueError(
            f"{show(text)} is not a rule KIND:VALUE=CLASS with KIND one of "
            f"{', '.join(RULE_KINDS)} (e.g. jurisdiction:US-CA=financial, called:+44207=financial)"
        )
    if kind == "jurisdiction" and not _JURISDICTION_RE.fullmatch(value):
        raise ValueError(f"{show(value)} is not a jurisdiction code (US, GB, US-CA, CA-ON)")
    if kind == "called" and not _PREFIX_RE.fullmatch(value):
        raise ValueError(f"{show(value)} is not a number prefix (digits, optionally after +)")
    if not CLASS_RE.fullmatch(retention_class):
        raise ValueError(f"{show(retention_class)} is not a retention class")
    return RetentionRule(kind, value, retention_class, f"{kind}:{value}={retention_class}")


def check_retention(entries: tuple[str, ...]) -> str | None:
    """The per-key check of ``recordings.retention``."""
    if not entries:
        return "must give at least one CLASS=PERIOD (the default class's period)"
    try:
        parse_retention(entries)
    except ValueError as exc:
        return str(exc)
    return None


def check_rules(entries: tuple[str, ...]) -> str | None:
    """The per-key check of ``recordings.retention_rules``."""
    for entry in entries:
        try:
            parse_rule(entry)
        except ValueError as exc:
            return str(exc)
    if len(set(entries)) != len(entries):
        return "lists a rule twice"
    return None


def _jurisdiction_matches(rule: str, code: str) -> bool:
    return code == rule or ("-" not in rule and code.startswith(rule + "-"))


def choose_class(
    rules: Sequence[RetentionRule],
    default: str,
    *,
    jurisdictions: Iterable[str] = (),
    called_number: str | None = None,
) -> ClassChoice:
    """The first rule matching the call, else ``default``.

    ``jurisdictions`` are the codes of the call's parties (as the decision recorded them);
    ``called_number`` the called number as stored (``None`` when unknown or erased: no
    ``called`` rule matches then).
    """
    codes = [c.upper() for c in jurisdictions if c]
    called = None if called_number is None else re.sub(r"[\s().-]", "", called_number)
    for rule in rules:
        if rule.kind == "jurisdiction" and any(_jurisdiction_matches(rule.value, c) for c in codes):
            return ClassChoice(rule.retention_class, rule.text)
        if rule.kind == "called" and called is not None and called.startswith(rule.value):
            return ClassChoice(rule.retention_class, rule.text)
    return ClassChoice(default, "default")


def retain_until(start: float, period: Period) -> float:
    """Epoch seconds at which a recording that started its retention at ``start`` may go.

    Months and years are calendar steps in UTC (31 January + 1m is 1 March, 29 February + 1y
    is 1 March: never a day early).
    """
    at = datetime.fromtimestamp(start, UTC)
    if period.unit in ("d", "w"):
        return (at + timedelta(**{_UNITS[period.unit]: period.count})).timestamp()
    months = period.count * (12 if period.unit == "y" else 1)
    year, month = divmod(at.month - 1 + months, 12)
    year += at.year
    month += 1
    day = at.day
    while True:
        try:
            return at.replace(year=year, month=month, day=day).timestamp()
        except ValueError:  # no such day in that month: the first day of the next one
            if day > 28:
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                day = 1
                continue
            raise
