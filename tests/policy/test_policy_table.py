"""The shipped policy table loads, cites its sources, and operator tables override it row by row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asterisk_recorder.errors import PolicyError
from asterisk_recorder.policy import Mode
from asterisk_recorder.policy.table import (
    JURISDICTION_RE,
    default_table,
    load_table_file,
    merge_tables,
    parse_table,
)

ALL_PARTY_STATES = ("CA", "CT", "FL", "IL", "MD", "MA", "MT", "NV", "NH", "PA", "WA")
EU_MEMBERS = {
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
}
CA_PROVINCES = ("AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT")
AU_STATES = ("NSW", "VIC", "QLD", "WA", "SA", "TAS", "ACT", "NT")


def test_every_default_row_loads_with_a_law_and_a_source() -> None:
    """Each shipped row has a valid code, a mode, a non-empty law and a source citation."""
    table = default_table()

    assert table.rows
    for row_id, row in table.rows.items():
        assert row_id == row.id
        assert JURISDICTION_RE.match(row_id), row_id
        assert isinstance(row.mode, Mode), row_id
        assert len(row.law) > 10, row_id
        assert len(row.source) > 5, row_id
        assert "default" == row.origin


def test_default_table_has_a_version() -> None:
    """The shipped table carries a version string, recorded in every decision."""
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", default_table().version)


@pytest.mark.parametrize("state", ALL_PARTY_STATES)
def test_all_party_states_are_opt_out(state: str) -> None:
    """Every US all-party (telephone) state maps to opt_out (disclosure plus a refuse key)."""
    assert Mode.OPT_OUT == default_table().rows[f"US-{state}"].mode


def test_delaware_is_all_party_with_the_conflict_noted() -> None:
    """Delaware is treated as all-party and the row says the statutes conflict."""
    row = default_table().rows["US-DE"]

    assert Mode.OPT_OUT == row.mode
    assert "onflict" in row.law or "ontested" in row.note


@pytest.mark.parametrize("state", ["MD", "NH"])
def test_maryland_and_new_hampshire_rows_say_all_party(state: str) -> None:
    """MD and NH are all-party rows, and their notes correct the one-party error."""
    row = default_table().rows[f"US-{state}"]

    assert Mode.OPT_OUT == row.mode
    assert "All-party" in row.note


def test_connecticut_row_beeps_every_15_seconds() -> None:
    """Connecticut's automatic-tone alternative is a 15 s beep interval."""
    assert 15 == default_table().rows["US-CT"].beep_interval


@pytest.mark.parametrize("state", ["MI", "OR", "VT", "HI"])
def test_nuance_states_announce_and_carry_a_note(state: str) -> None:
    """MI, OR, VT and HI are announce rows with a note on the nuance."""
    row = default_table().rows[f"US-{state}"]

    assert Mode.ANNOUNCE == row.mode
    assert row.note


def test_country_rows_follow_the_proposed_defaults() -> None:
    """US announce, GB/EU/CA opt_out, DE opt_in, AU announce (anchors.md proposed rows)."""
    rows = default_table().rows
    actual = {code: rows[code].mode for code in ("US", "GB", "EU", "CA", "DE", "AU")}

    assert {
        "US": Mode.ANNOUNCE, "GB": Mode.OPT_OUT, "EU": Mode.OPT_OUT, "CA": Mode.OPT_OUT,
        "DE": Mode.OPT_IN, "AU": Mode.ANNOUNCE,
    } == actual


def test_eu_row_applies_to_all_27_member_states() -> None:
    """The EU group row lists exactly the 27 member states."""
    assert EU_MEMBERS == set(default_table().rows["EU"].applies_to)


def test_every_canadian_province_and_australian_state_has_a_row() -> None:
    """Canada's 13 provinces/territories and Australia's 8 states/territories have rows."""
    rows = default_table().rows
    missing = [f"CA-{p}" for p in CA_PROVINCES if f"CA-{p}" not in rows]
    missing += [f"AU-{s}" for s in AU_STATES if f"AU-{s}" not in rows]

    assert [] == missing


def test_operator_table_replaces_a_row_and_adds_one(tmp_path: Path) -> None:
    """An operator row replaces the default row of the same id; new ids are added."""
    path = tmp_path / "site.toml"
    path.write_text(
        'version = "acme-1"\n'
        '[rows.US]\nmode = "opt_out"\nlaw = "company policy"\nsource = "legal dept memo 7"\n'
        '[rows.JP]\nmode = "opt_in"\n',
        encoding="utf-8",
    )

    merged = merge_tables(default_table(), load_table_file(path))

    assert Mode.OPT_OUT == merged.rows["US"].mode
    assert "legal dept memo 7" == merged.rows["US"].source
    assert str(path) == merged.rows["US"].origin
    assert Mode.OPT_IN == merged.rows["JP"].mode
    assert str(path) == merged.rows["JP"].source
    assert default_table().rows["US-CA"] == merged.rows["US-CA"]
    assert f"{default_table().version}+acme-1" == merged.version


def test_operator_table_without_version_is_identified_by_digest(tmp_path: Path) -> None:
    """An operator table without ``version`` gets a content digest as its version."""
    path = tmp_path / "site.toml"
    path.write_text('[rows.GB]\nmode = "opt_in"\n', encoding="utf-8")

    assert re.fullmatch(r"sha256:[0-9a-f]{12}", load_table_file(path).version)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('version = "1"\n[rows.US]\nmode = "opt-out"\nlaw = "x"\nsource = "y"\n',
         "row 'US': field 'mode': 'opt-out' is not one of"),
        ('version = "1"\n[rows.US]\nlaw = "x"\nsource = "y"\n',
         "row 'US': field 'mode': is required"),
        ('version = "1"\n[rows.US]\nmode = "announce"\nsource = "y"\n',
         "row 'US': field 'law': is required"),
        ('version = "1"\n[rows.US]\nmode = "announce"\nlaw = "x"\n',
         "row 'US': field 'source': is required"),
        ('version = "1"\n[rows.US]\nmode = "announce"\nlaw = "x"\nsource = " "\n',
         "row 'US': field 'source': must not be empty"),
        ('version = "1"\n[rows.US]\nmode = "announce"\nlaw = "x"\nsource = "y"\ncolour = 1\n',
         "row 'US': field 'colour': is not a row field"),
        ('version = "1"\n[rows.usa]\nmode = "announce"\nlaw = "x"\nsource = "y"\n',
         "row 'usa': is not a jurisdiction code"),
        ('version = "1"\n[rows.US-CT]\nmode = "announce"\nlaw = "x"\nsource = "y"\n'
         'beep_interval = 0\n',
         "row 'US-CT': field 'beep_interval': 0 is not an integer 1..3600"),
        ('version = "1"\n[rows.US-CT]\nmode = "announce"\nlaw = "x"\nsource = "y"\n'
         'beep_interval = true\n',
         "row 'US-CT': field 'beep_interval': True is not an integer 1..3600"),
        ('version = "1"\n[rows.EU]\nmode = "announce"\nlaw = "x"\nsource = "y"\n'
         'applies_to = ["France"]\n',
         "row 'EU': field 'applies_to': 'France' is not a 2-letter country code"),
        ('version = "1"\n[rows.US]\nmode = 3\nlaw = "x"\nsource = "y"\n',
         "row 'US': field 'mode': 3 is not one of"),
        ('version = "1"\n[rows.US]\nmode = "announce"\nlaw = 5\nsource = "y"\n',
         "row 'US': field 'law': must be a string, not int"),
        ('[rows.US]\nmode = "announce"\nlaw = "x"\nsource = "y"\n',
         "field 'version': is required"),
        ('version = "1"\nextra = 1\n', "field 'extra': is not a top-level key"),
        ('version = "1"\nrows = 3\n', "field 'rows': must be a table of rows"),
        ('version = "1"\n', "field 'rows': the default table has no rows"),
        ("version = \n", "is not valid TOML"),
    ],
)
def test_bad_default_table_names_file_row_and_field(text: str, expected: str) -> None:
    """Each kind of bad data raises PolicyError naming the file, the row and the field."""
    with pytest.raises(PolicyError) as info:
        parse_table(text, "bad.toml")

    assert str(info.value).startswith("policy table bad.toml")
    assert expected in str(info.value)


def test_missing_operator_table_file_is_a_policy_error(tmp_path: Path) -> None:
    """A table file that does not exist raises PolicyError naming the path."""
    path = tmp_path / "nope.toml"

    with pytest.raises(PolicyError) as info:
        load_table_file(path)

    assert f"policy table {path}: cannot be read" in str(info.value)


def test_operator_table_that_is_not_utf8_is_a_policy_error(tmp_path: Path) -> None:
    """Invalid UTF-8 in a table file raises PolicyError, not UnicodeDecodeError."""
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[rows.US]\nmode = "\xff\xfe"\n')

    with pytest.raises(PolicyError) as info:
        load_table_file(path)

    assert "is not UTF-8" in str(info.value)


def test_operator_row_with_bad_mode_names_the_operator_file(tmp_path: Path) -> None:
    """Operator rows are validated like default rows and the message names their file."""
    path = tmp_path / "site.toml"
    path.write_text('[rows.GB]\nmode = "always"\n', encoding="utf-8")

    with pytest.raises(PolicyError) as info:
        load_table_file(path)

    assert f"policy table {path}: row 'GB': field 'mode': 'always' is not one of" in str(
        info.value
    )
