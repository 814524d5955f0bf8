"""Numbers are placed by country and, for NANP, by state or province; junk is ``unknown``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asterisk_recorder.policy.nanp import AREA_CODES, SOURCE
from asterisk_recorder.policy.numbers import UNKNOWN, _resolve_general, resolve_number
from asterisk_recorder.policy.tools.gen_nanp import derive

KNOWN_AREA_CODES = {
    "212": "US-NY", "415": "US-CA", "305": "US-FL", "410": "US-MD", "603": "US-NH",
    "302": "US-DE", "206": "US-WA", "312": "US-IL", "617": "US-MA", "406": "US-MT",
    "702": "US-NV", "215": "US-PA", "860": "US-CT", "203": "US-CT", "202": "US-DC",
    "313": "US-MI", "503": "US-OR", "802": "US-VT", "808": "US-HI", "713": "US-TX",
    "628": "US-CA", "332": "US-NY", "416": "CA-ON", "514": "CA-QC", "604": "CA-BC",
    "403": "CA-AB", "204": "CA-MB", "306": "CA-SK", "506": "CA-NB", "709": "CA-NL",
}


@pytest.mark.parametrize(("area", "expected"), sorted(KNOWN_AREA_CODES.items()))
def test_known_area_codes_map_to_their_state_or_province(area: str, expected: str) -> None:
    """The committed table places well-known area codes in the right state or province."""
    assert (expected,) == AREA_CODES[area]


def test_multi_province_area_codes_list_every_province() -> None:
    """867 covers the three territories and 902 covers Nova Scotia and PEI."""
    assert ("CA-NT", "CA-NU", "CA-YT") == AREA_CODES["867"]
    assert ("CA-NS", "CA-PE") == AREA_CODES["902"]


@pytest.mark.parametrize("area", ["800", "888", "900", "500", "787", "671", "242", "340"])
def test_non_geographic_and_non_us_ca_area_codes_are_absent(area: str) -> None:
    """Toll-free, premium, personal and Caribbean/Pacific area codes are not in the table."""
    assert area not in AREA_CODES


def test_committed_table_is_what_the_generator_derives() -> None:
    """``nanp.py`` equals a fresh derivation from phonenumbers' geocoder data (stated source)."""
    assert derive() == AREA_CODES
    assert "phonenumbers" in SOURCE


@pytest.mark.parametrize(
    ("number", "country", "candidates", "e164"),
    [
        ("+14155550100", "US", ("US-CA",), "+14155550100"),
        ("4155550100", "US", ("US-CA",), "+14155550100"),
        ("1 (415) 555-0100", "US", ("US-CA",), "+14155550100"),
        ("011 44 20 7946 0958", "GB", (), "+442079460958"),
        ("+442079460958", "GB", (), "+442079460958"),
        ("+4930123456", "DE", (), "+4930123456"),
        ("+33142685300", "FR", (), "+33142685300"),
        ("+61298765432", "AU", (), "+61298765432"),
        ("+18005550100", "US", (), "+18005550100"),
        ("+15145550100", "CA", ("CA-QC",), "+15145550100"),
    ],
)
def test_numbers_resolve_to_country_and_candidates(
    number: str, country: str, candidates: tuple[str, ...], e164: str
) -> None:
    """E.164, country and NANP candidates come out of the digits (US default region)."""
    res = resolve_number(number, "US")

    assert (country, candidates, e164) == (res.country, res.candidates, res.e164)
    assert number == res.number


def test_national_number_uses_the_default_region() -> None:
    """A number without ``+`` is read as dialled in the configured default region."""
    assert "GB" == resolve_number("020 7946 0958", "GB").country
    assert "DE" == resolve_number("030 123456", "DE").country


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("anonymous", "withheld"),
        ("Anonymous", "withheld"),
        ("unknown", "withheld"),
        ("Restricted", "withheld"),
        ("<unknown>", "withheld"),
        ("101", "internal extension"),
        ("4455", "internal extension"),
        ("123456", "internal extension"),
        ("+999123456789", "not parseable"),
        ("5551234", "not a valid number"),
        ("+1 555 0100", "not a valid number"),
        ("1" * 40, "longer than"),
    ],
)
def test_unplaceable_numbers_are_unknown_with_a_reason(number: str, why: str) -> None:
    """Withheld, empty, extension and invalid numbers resolve to ``unknown`` and say why."""
    res = resolve_number(number, "US")

    assert UNKNOWN == res.country
    assert not res.known
    assert why in res.how


HOSTILE = [
    "+1415555,0100", "4155550100)", "${SHELL}", "415|555|0100", "'4155550100'", '"x"',
    "4155550100\n", "\n+14155550100\nEXEC", "415\x00550100", "../../etc/passwd",
    "x" * 10_000, "\udcff\udcfe4155550100", "+1 415 555 0100; rm -rf /", "sip:+14155550100@h",
]


@pytest.mark.parametrize("number", HOSTILE)
def test_hostile_caller_ids_never_raise_and_never_echo_raw(number: str) -> None:
    """Hostile text resolves without raising and the explanation holds no control characters."""
    res = resolve_number(number, "US")

    assert res.how.isprintable()
    assert len(res.how) < 200
    assert res.country in (UNKNOWN, "US")


@settings(max_examples=1500, deadline=None, database=None)
@given(
    prefix=st.sampled_from(["+1", "1", "", "+", "+44", "0"]),
    digits=st.text(alphabet="0123456789", min_size=9, max_size=11),
    region=st.sampled_from(["US", "CA", "GB", "DE", "JM"]),
)
def test_nanp_fast_path_agrees_with_phonenumbers(prefix: str, digits: str, region: str) -> None:
    """The shortcut for plain NANP numbers gives exactly what the phonenumbers path gives."""
    text = prefix + digits

    assert _resolve_general(text, text, region) == resolve_number(text, region)


def test_nanp_fast_path_is_taken_for_known_area_codes() -> None:
    """Known area codes in E.164 or national form resolve without the general path."""
    assert (("US-MD",), "+14105550100") == (
        resolve_number("14105550100", "US").candidates, resolve_number("4105550100", "CA").e164
    )


def reference_country(text: str, region: str) -> str:
    """The country by phonenumbers' public validity API (what ``resolve_number`` must match)."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return UNKNOWN
    if phonenumbers.is_valid_number(parsed):
        found = phonenumbers.region_code_for_number(parsed)
    elif phonenumbers.is_possible_number(parsed):
        regions = phonenumbers.region_codes_for_country_code(parsed.country_code)
        found = regions[0] if len(regions) == 1 else None
    else:
        found = None
    return found if found and found != "001" else UNKNOWN


@settings(max_examples=800, deadline=None, database=None)
@given(
    code=st.sampled_from(["44", "49", "33", "61", "7", "1", "800", "39", "352", "81"]),
    digits=st.text(alphabet="0123456789", min_size=4, max_size=12),
)
def test_international_numbers_match_phonenumbers_validity(code: str, digits: str) -> None:
    """For numbers outside the NANP table the country is phonenumbers' own answer."""
    text = f"+{code}{digits}"
    res = resolve_number(text, "US")

    if not res.candidates:
        assert reference_country(text, "US") == res.country
