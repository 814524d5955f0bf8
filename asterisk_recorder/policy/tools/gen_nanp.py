"""Generate ``asterisk_recorder/policy/nanp.py``: NANP area code -> US state / Canadian province.

This script owns the derivation of the area-code table from phonenumbers' geocoder data, which
is libphonenumber's ``resources/geocoding/en/1.txt`` compiled into Python. It is run by hand by a
developer when phonenumbers is upgraded, and its output is committed; the engine never runs it.

Rules of the derivation:

* only prefixes of country code 1 with at least one digit after the area code are read, in
  English; a description is either a state/province name (``California``) or ends with a postal
  abbreviation (``Jersey City, NJ``);
* when the 4-digit key ``1NPA`` exists, its description decides the area code alone (it may name
  several provinces, e.g. ``Nova Scotia/Prince Edward Island``); otherwise every description
  under that area code counts and all the jurisdictions they name are kept;
* descriptions outside the US (50 states and DC) and Canada (Bahamas, Guam, US Virgin Islands ...)
  are left out: those area codes are their own phonenumbers regions and resolve to that region.

Usage::

    python -m asterisk_recorder.policy.tools.gen_nanp > asterisk_recorder/policy/nanp.py
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

import phonenumbers
from phonenumbers.geodata import GEOCODE_DATA

__all__ = ["derive", "main", "render"]

US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN",
    "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA",
    "Washington State": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Washington D.C.": "DC", "District of Columbia": "DC",
}
CA_PROVINCES = {
    "Alberta": "AB", "British Columbia": "BC", "British Colombia": "BC", "Manitoba": "MB",
    "New Brunswick": "NB", "Newfoundland and Labrador": "NL", "Northwest Territories": "NT",
    "Nova Scotia": "NS", "Nunavut": "NU", "Ontario": "ON", "Prince Edward Island": "PE",
    "Quebec": "QC", "Saskatchewan": "SK", "Yukon": "YT",
}
_US_CODES = frozenset(US_STATES.values())
_CA_CODES = frozenset(CA_PROVINCES.values())
_ABBREV = re.compile(r", ([A-Z]{2})$")


def _codes(description: str) -> set[str]:
    """Jurisdiction codes (``US-CA``, ``CA-ON``) one geocoder description names; empty if none."""
    match = _ABBREV.search(description)
    if match:
        abbr = match.group(1)
        if abbr in _US_CODES:
            return {f"US-{abbr}"}
        if abbr in _CA_CODES:
            return {f"CA-{abbr}"}
        return set()
    found: set[str] = set()
    for part in description.split("/"):
        name = part.strip()
        if name in US_STATES:
            found.add(f"US-{US_STATES[name]}")
        elif name in CA_PROVINCES:
            found.add(f"CA-{CA_PROVINCES[name]}")
    return found


def derive() -> dict[str, tuple[str, ...]]:
    """Area code (3 digits) -> sorted jurisdiction codes, from phonenumbers' geocoder data."""
    top: dict[str, set[str]] = {}
    deeper: dict[str, set[str]] = defaultdict(set)
    for prefix, names in GEOCODE_DATA.items():
        if not prefix.startswith("1") or len(prefix) < 4 or "en" not in names:
            continue
        npa = prefix[1:4]
        codes = _codes(names["en"])
        if len(prefix) == 4:
            top[npa] = codes
        else:
            deeper[npa] |= codes
    table: dict[str, tuple[str, ...]] = {}
    for npa in sorted(set(top) | set(deeper)):
        codes = top[npa] if top.get(npa) else deeper.get(npa, set())
        if codes:
            table[npa] = tuple(sorted(codes))
    return table


def render(table: dict[str, tuple[str, ...]]) -> str:
    """The Python source of ``nanp.py`` for ``table``."""
    lines = [
        '"""NANP area code -> US state or Canadian province (generated data; do not edit by hand).',
        "",
        "This module owns the area-code table the policy engine uses to place a +1 number in a US",
        "state or Canadian province. It is pure data: no imports beyond typing, no I/O.",
        "",
        "Source: libphonenumber's geocoding data for country code 1",
        "(``resources/geocoding/en/1.txt``) as shipped in the Python ``phonenumbers`` package,",
        f"version {phonenumbers.__version__}",
        "(``phonenumbers.geodata``). Generated by ``asterisk_recorder/policy/tools/gen_nanp.py``;",
        "regenerate with",
        "``python -m asterisk_recorder.policy.tools.gen_nanp > asterisk_recorder/policy/nanp.py``.",
        "An area code that names several jurisdictions (867, 902) lists them all; the engine then",
        "applies the strictest of their rows. Non-geographic area codes (toll-free 8XX, 5XX, 900)",
        "and the Caribbean / Pacific NANP members are absent on purpose.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Final",
        "",
        '__all__ = ["AREA_CODES", "SOURCE"]',
        "",
        f'SOURCE: Final = "libphonenumber geocoding en/1.txt via phonenumbers '
        f'{phonenumbers.__version__}"',
        '"""Where the table comes from, for ``policy explain`` and the docs."""',
        "",
        "AREA_CODES: Final[dict[str, tuple[str, ...]]] = {",
    ]
    for npa, codes in table.items():
        inner = ", ".join(f'"{c}"' for c in codes)
        if len(codes) == 1:
            inner += ","
        lines.append(f'    "{npa}": ({inner}),')
    lines += [
        "}",
        '"""Three-digit area code -> jurisdiction codes such as ``US-CA`` or ``CA-ON``."""',
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    """Print the generated module to stdout."""
    sys.stdout.write(render(derive()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
