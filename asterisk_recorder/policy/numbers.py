"""Where a telephone number is: E.164 normalisation, country, and NANP state or province.

This module owns turning one party's number (caller-controlled text) into a jurisdiction
candidate. It uses phonenumbers (libphonenumber's metadata) and the generated area-code table
``nanp.py``. It must not do I/O, must not know the policy table, and must never raise on any
input string: anything it cannot place is ``unknown`` with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from asterisk_recorder.policy.nanp import AREA_CODES

__all__ = [
    "MAX_NUMBER_LENGTH",
    "MIN_NATIONAL_DIGITS",
    "UNKNOWN",
    "WITHHELD_MARKERS",
    "NumberResolution",
    "resolve_number",
    "safe_text",
]

UNKNOWN = "unknown"
"""The jurisdiction of a number that cannot be placed (withheld, extension, invalid)."""

MAX_NUMBER_LENGTH = 32
"""Longer strings are not telephone numbers (E.164 has at most 15 digits)."""

MIN_NATIONAL_DIGITS = 7
"""Numbers written without ``+`` and with fewer digits are internal extensions."""

WITHHELD_MARKERS = frozenset(
    {
        "anonymous", "unknown", "restricted", "private", "unavailable", "withheld",
        "blocked", "<unknown>", "unknown caller", "asterisk",
    }
)
"""Caller id values (case-insensitive) meaning the number is withheld."""

_NUMBER_RE = re.compile(r"^\+?[0-9][0-9 ().\-/]*$")
_NANP_E164_RE = re.compile(r"^\+1([0-9]{10})\Z")
_NANP_NATIONAL_RE = re.compile(r"^1?([0-9]{10})\Z")
_NANP_REGIONS = frozenset({"US", "CA"})
_SAFE_RE = re.compile(r"[^\x20-\x7e]")


def safe_text(value: str, limit: int = 40) -> str:
    """``value`` cut to ``limit`` characters with non-printable characters escaped, quoted.

    Used to mention caller-controlled text in explanations without passing it through raw.
    """
    cut = value[:limit]
    shown = _SAFE_RE.sub(lambda m: f"\\x{ord(m.group()) & 0xFF:02x}", cut)
    return repr(shown) + ("..." if len(value) > limit else "")


@dataclass(frozen=True, slots=True)
class NumberResolution:
    """Where one number is, as far as its digits tell.

    Attributes:
        number: the number as given.
        e164: the E.164 form, or None when it could not be parsed.
        country: ISO 3166-1 region code (``US``, ``GB``), or ``unknown``.
        candidates: for NANP numbers with a geographic area code, the states / provinces the
            area code covers (``("US-CA",)``; two or three for 867 / 902); empty otherwise.
        how: one sentence saying how it was resolved (or why not), for ``policy explain``.
    """

    number: str
    e164: str | None
    country: str
    candidates: tuple[str, ...]
    how: str

    @property
    def known(self) -> bool:
        """True when at least the country is known."""
        return self.country != UNKNOWN


def _unknown(number: str, how: str, e164: str | None = None) -> NumberResolution:
    return NumberResolution(number=number, e164=e164, country=UNKNOWN, candidates=(), how=how)


def resolve_number(number: str, default_region: str) -> NumberResolution:
    """Place ``number`` (caller-controlled text) in a country and, for NANP, a state/province.

    Numbers without a leading ``+`` are parsed as dialled in ``default_region``. Empty,
    withheld (``anonymous`` ...), short internal extensions, over-long or non-numeric text and
    numbers phonenumbers cannot place resolve to ``unknown``. Never raises.
    """
    text = number.strip()
    # Fast path (no phonenumbers call) for the commonest shape: a NANP number with a known
    # geographic area code. It gives exactly what the general path below gives for it.
    match = _NANP_E164_RE.match(text)
    if match is None and default_region in _NANP_REGIONS:
        match = _NANP_NATIONAL_RE.match(text)
    if match is not None:
        national = match.group(1)
        candidates = AREA_CODES.get(national[:3])
        if candidates:
            return _nanp(number, national, candidates)
    return _resolve_general(number, text, default_region)


def _nanp(number: str, national: str, candidates: tuple[str, ...]) -> NumberResolution:
    e164 = "+1" + national
    return NumberResolution(
        number=number, e164=e164, country=candidates[0].split("-", 1)[0], candidates=candidates,
        how=f"{e164}: NANP area code {national[:3]} -> {', '.join(candidates)}",
    )


def _resolve_general(number: str, text: str, default_region: str) -> NumberResolution:
    """``resolve_number`` through phonenumbers, for every shape of input."""
    if not text:
        return _unknown(number, "no number (empty)")
    if len(text) > MAX_NUMBER_LENGTH:
        return _unknown(number, f"longer than {MAX_NUMBER_LENGTH} characters: not a number")
    if text.lower() in WITHHELD_MARKERS or not any(c.isdigit() for c in text):
        return _unknown(number, "withheld or anonymous number")
    if not _NUMBER_RE.match(text):
        return _unknown(number, f"{safe_text(text)} is not a telephone number")
    digits = sum(1 for c in text if c.isdigit())
    if not text.startswith("+") and digits < MIN_NATIONAL_DIGITS:
        return _unknown(number, f"internal extension ({digits} digits)")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        return _unknown(number, f"not parseable as a number of region {default_region}: {exc}")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    national = str(parsed.national_number)
    if parsed.country_code == 1 and len(national) == 10:
        candidates = AREA_CODES.get(national[:3])
        if candidates:
            return _nanp(number, national, candidates)
    # is_valid_number(n) is is_valid_number_for_region(n, region_code_for_number(n)); calling
    # the two halves directly saves a second region lookup.
    found: str | None = phonenumbers.region_code_for_number(parsed)
    region: str | None = None
    if found and phonenumbers.is_valid_number_for_region(parsed, found):
        region = found
    elif phonenumbers.is_possible_number(parsed):
        regions = phonenumbers.region_codes_for_country_code(parsed.country_code or 0)
        if len(regions) == 1:
            region = regions[0]
    if not region or region == "001":
        return _unknown(number, f"{e164} is not a valid number of any country", e164)
    return NumberResolution(
        number=number, e164=e164, country=region, candidates=(),
        how=f"{e164}: country {region}",
    )
