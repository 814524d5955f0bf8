"""The policy engine: which recording mode a call needs, and why.

This module owns ``PolicyEngine`` and ``PolicyResult``. For each party (caller, called, the
operator's site) it finds the jurisdiction (``numbers.py``), the row of the policy table
(``table.py``) and its mode; the call's mode is the strictest of them, unless a channel override
forces it. It must not do I/O beyond loading the tables in ``from_settings`` and must never raise
from ``evaluate``: bad overrides and unplaceable numbers are recorded in the result instead.

Row lookup for a jurisdiction code: the exact row, else the country's row, else a group row
(``EU``) listing the country; a code with no row at all is treated as unknown. A number whose
state or province cannot be told (toll-free, an Australian number) gets the strictest row of
its country, since the party could be anywhere in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import phonenumbers

from asterisk_recorder.errors import PolicyError
from asterisk_recorder.policy.modes import Mode
from asterisk_recorder.policy.nanp import AREA_CODES
from asterisk_recorder.policy.numbers import UNKNOWN, NumberResolution, resolve_number, safe_text
from asterisk_recorder.policy.parties import PartyRecord
from asterisk_recorder.policy.table import (
    JURISDICTION_RE,
    PolicyRow,
    PolicyTable,
    default_table,
    load_table_file,
    merge_tables,
)

if TYPE_CHECKING:
    from asterisk_recorder.settings import PolicySettings

__all__ = ["UNKNOWN_ROW_ID", "PartyDetail", "PolicyEngine", "PolicyResult"]

UNKNOWN_ROW_ID = "unknown"
"""Row id recorded for a party placed nowhere (``PolicySettings.unknown_mode`` applies)."""

_CACHEABLE = 64
_NANP_CODES = frozenset(code for codes in AREA_CODES.values() for code in codes)
_MODE_NAMES = {m.value: m for m in Mode}


@dataclass(frozen=True, slots=True)
class PartyDetail:
    """How one party was resolved, for ``policy explain`` and logs.

    Attributes:
        record: the ledger's ``PartyRecord`` (party, number, jurisdiction, row id, mode).
        row: the table row applied, or None when the party is unknown.
        e164: the number in E.164 form when it could be parsed.
        how: one sentence: how the jurisdiction and row were found.
    """

    record: PartyRecord
    row: PolicyRow | None
    e164: str | None
    how: str


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The policy for one call.

    Attributes:
        mode: the effective mode (strictest over parties, or the forced override).
        parties: one ``PartyRecord`` per party: caller, called, site (in that order).
        rows: the distinct row ids applied, in party order (``unknown`` for unplaced parties).
        version: the policy table version (``default+operator`` when overridden).
        beep_interval: the smallest ``beep_interval`` of the parties' rows, or None.
        deciding_party: the party whose row set the mode, or ``override``.
        forced: True when ``RECORDER_POLICY`` forced the mode.
        notes: ignored overrides and other remarks (never contains raw caller text).
        details: per-party resolution details (same order as ``parties``).
    """

    mode: Mode
    parties: tuple[PartyRecord, ...]
    rows: tuple[str, ...]
    version: str
    beep_interval: int | None
    deciding_party: str
    forced: bool
    notes: tuple[str, ...]
    details: tuple[PartyDetail, ...]

    def explain(self) -> str:
        """One sentence saying why the mode is what it is."""
        if self.forced:
            return f"{self.mode.value}: forced by the RECORDER_POLICY channel override."
        deciding = next(d for d in self.details if d.record.party == self.deciding_party)
        where = deciding.record.jurisdiction
        row = deciding.record.row_id
        return (
            f"{self.mode.value}: the strictest mode over all parties; the {self.deciding_party} "
            f"({where}, row {row}) requires {self.mode.value}."
        )


class PolicyEngine:
    """Evaluates the recording policy of calls against a validated policy table.

    Build it with ``PolicyEngine.from_settings``; ``evaluate`` is pure and cached per
    (caller, called, overrides) in an LRU of ``cache_size`` entries.
    """

    def __init__(
        self, table: PolicyTable, settings: PolicySettings, *, cache_size: int = 4096
    ) -> None:
        """Check ``settings`` against ``table`` and precompute the lookups.

        Raises:
            PolicyError: the site jurisdiction or default region is not valid.
        """
        self.table = table
        self.settings = settings
        region = settings.default_region.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise PolicyError(f"policy.default_region {settings.default_region!r} is not a region")
        self._region = region
        self._unknown_mode = settings.unknown_mode
        self._groups: dict[str, PolicyRow] = {}
        for row in sorted(table.rows.values(), key=lambda r: r.id):
            for country in row.applies_to:
                self._groups.setdefault(country, row)
        self._country_worst: dict[str, PolicyRow] = {}
        for row in sorted(table.rows.values(), key=lambda r: r.id):
            if "-" not in row.id:
                continue
            country = row.id.split("-", 1)[0]
            best = self._country_worst.get(country) or self._lookup(country)
            if best is None or _stricter(row, best):
                self._country_worst[country] = row
        site = settings.site_jurisdiction.strip().upper()
        if not self._valid_jurisdiction(site):
            raise PolicyError(
                f"policy.site_jurisdiction {settings.site_jurisdiction!r} is not a known "
                "jurisdiction code (e.g. US, US-NY, GB, DE, CA-ON)"
            )
        self._site = site
        self._site_detail = self._detail_for_code("site", "", site, "site jurisdiction (config)")
        self._cached = lru_cache(maxsize=cache_size)(self._evaluate)
        # Per party: the dialled DID repeats on almost every inbound call even when the caller
        # is new, so its placement is worth remembering on its own.
        self._party_cached = lru_cache(maxsize=cache_size)(self._detail_for_number)

    @classmethod
    def from_settings(cls, settings: PolicySettings) -> PolicyEngine:
        """The shipped default table, overridden row by row by ``settings.table_file``.

        Raises:
            PolicyError: the operator's table cannot be read or does not validate, or the
                settings name an invalid site jurisdiction or region.
        """
        table = default_table()
        if settings.table_file:
            table = merge_tables(table, load_table_file(settings.table_file))
        return cls(table, settings)

    @property
    def version(self) -> str:
        """The version string of the table in force."""
        return self.table.version

    def row(self, row_id: str) -> PolicyRow | None:
        """The table row with this id, or None."""
        return self.table.get(row_id)

    def cache_info(self) -> tuple[int, int, int]:
        """(hits, misses, current size) of the evaluation cache."""
        info = self._cached.cache_info()
        return info.hits, info.misses, info.currsize

    def evaluate(
        self,
        caller_number: str,
        called_number: str,
        *,
        policy_override: str | None = None,
        jurisdiction_override: str | None = None,
    ) -> PolicyResult:
        """The policy for a call between ``caller_number`` and ``called_number``.

        Args:
            caller_number / called_number: as Asterisk gave them (caller-controlled text).
            policy_override: ``RECORDER_POLICY``: a mode name that forces the mode.
            jurisdiction_override: ``RECORDER_JURISDICTION``: the caller party's jurisdiction.

        Overrides are honoured only with ``allow_channel_override``; a bad value is ignored
        and the reason recorded in ``notes``. Never raises.
        """
        if (
            len(caller_number) <= _CACHEABLE
            and len(called_number) <= _CACHEABLE
            and (policy_override is None or len(policy_override) <= _CACHEABLE)
            and (jurisdiction_override is None or len(jurisdiction_override) <= _CACHEABLE)
        ):
            return self._cached(
                caller_number, called_number, policy_override, jurisdiction_override
            )
        return self._evaluate(caller_number, called_number, policy_override, jurisdiction_override)

    # -- internals --------------------------------------------------------------------------

    def _evaluate(
        self,
        caller_number: str,
        called_number: str,
        policy_override: str | None,
        jurisdiction_override: str | None,
    ) -> PolicyResult:
        notes: list[str] = []
        allow = self.settings.allow_channel_override
        forced: Mode | None = None
        if policy_override is not None and policy_override.strip():
            name = policy_override.strip().lower().replace("-", "_")
            if not allow:
                notes.append("RECORDER_POLICY ignored: channel overrides are disabled")
            elif name in _MODE_NAMES:
                forced = _MODE_NAMES[name]
            else:
                notes.append(
                    f"RECORDER_POLICY {safe_text(policy_override)} ignored: not one of "
                    f"{', '.join(_MODE_NAMES)}"
                )
        caller: PartyDetail | None = None
        if jurisdiction_override is not None and jurisdiction_override.strip():
            code = jurisdiction_override.strip().upper()
            if not allow:
                notes.append("RECORDER_JURISDICTION ignored: channel overrides are disabled")
            elif self._valid_jurisdiction(code):
                caller = self._detail_for_code(
                    "caller", caller_number, code, "RECORDER_JURISDICTION channel override"
                )
            else:
                notes.append(
                    f"RECORDER_JURISDICTION {safe_text(jurisdiction_override)} ignored: "
                    "not a known jurisdiction code"
                )
        if caller is None:
            caller = self._party("caller", caller_number)
        called = self._party("called", called_number)
        details = (caller, called, self._site_detail)
        deciding = min(details, key=lambda d: d.record.mode.strictness)
        beeps = [d.row.beep_interval for d in details if d.row and d.row.beep_interval]
        rows: list[str] = []
        for d in details:
            if d.record.row_id not in rows:
                rows.append(d.record.row_id)
        return PolicyResult(
            mode=forced if forced is not None else deciding.record.mode,
            parties=tuple(d.record for d in details),
            rows=tuple(rows),
            version=self.table.version,
            beep_interval=min(beeps) if beeps else None,
            deciding_party="override" if forced is not None else deciding.record.party,
            forced=forced is not None,
            notes=tuple(notes),
            details=details,
        )

    def _party(self, party: str, number: str) -> PartyDetail:
        if len(number) <= _CACHEABLE:
            return self._party_cached(party, number)
        return self._detail_for_number(party, number)

    def _lookup(self, code: str) -> PolicyRow | None:
        """Exact row, else the country's row, else a group row listing the country."""
        row = self.table.rows.get(code)
        if row is not None:
            return row
        country = code.split("-", 1)[0]
        if country != code:
            row = self.table.rows.get(country)
            if row is not None:
                return row
        return self._groups.get(country)

    def _valid_jurisdiction(self, code: str) -> bool:
        if not JURISDICTION_RE.match(code):
            return False
        if code in self.table.rows:
            return True
        country = code.split("-", 1)[0]
        if country not in phonenumbers.SUPPORTED_REGIONS:
            return False
        return code == country or code in _NANP_CODES

    def _unknown_detail(self, party: str, number: str, how: str, e164: str | None) -> PartyDetail:
        record = PartyRecord(
            party=party, number=number, jurisdiction=UNKNOWN, row_id=UNKNOWN_ROW_ID,
            mode=self._unknown_mode,
        )
        return PartyDetail(
            record=record, row=None, e164=e164,
            how=f"{how}; unknown parties get policy.unknown_mode ({self._unknown_mode.value})",
        )

    def _detail_for_code(self, party: str, number: str, code: str, how: str) -> PartyDetail:
        row = self._lookup(code)
        if row is None:
            return self._unknown_detail(party, number, f"{how}: no row for {code}", None)
        record = PartyRecord(
            party=party, number=number, jurisdiction=code, row_id=row.id, mode=row.mode
        )
        return PartyDetail(record=record, row=row, e164=None, how=f"{how}: {code} -> row {row.id}")

    def _detail_for_number(self, party: str, number: str) -> PartyDetail:
        res: NumberResolution = resolve_number(number, self._region)
        if not res.known:
            return self._unknown_detail(party, number, res.how, res.e164)
        if res.candidates:
            found = [(code, self._lookup(code)) for code in res.candidates]
            placed = [(code, row) for code, row in found if row is not None]
            if not placed:
                return self._unknown_detail(party, number, f"{res.how}: no row", res.e164)
            code, row = placed[0]
            for other_code, other in placed[1:]:
                if _stricter(other, row):
                    code, row = other_code, other
            how = f"{res.how} -> row {row.id}"
            if len(res.candidates) > 1:
                how += " (the strictest row of the area code's jurisdictions)"
        else:
            code = res.country
            worst = self._country_worst.get(code)
            if worst is not None:
                row = worst
                how = (
                    f"{res.how}; the state/province cannot be told from the number, so the "
                    f"strictest {code} row applies: {row.id}"
                )
            else:
                found_row = self._lookup(code)
                if found_row is None:
                    return self._unknown_detail(
                        party, number, f"{res.how}: no policy row for {code}", res.e164
                    )
                row = found_row
                how = f"{res.how} -> row {row.id}"
        record = PartyRecord(
            party=party, number=number, jurisdiction=code, row_id=row.id, mode=row.mode
        )
        return PartyDetail(record=record, row=row, e164=res.e164, how=how)


def _stricter(a: PolicyRow, b: PolicyRow) -> bool:
    """True when row ``a`` is strictly stricter than ``b`` (ties keep ``b``)."""
    return a.mode.strictness < b.mode.strictness

