"""The engine applies the strictest law over caller, called and site, with channel overrides."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from asterisk_recorder.errors import PolicyError
from asterisk_recorder.flow.decision import PartyRecord
from asterisk_recorder.policy import Mode, PolicyEngine
from asterisk_recorder.settings import PolicySettings

NY = "+12125550100"
CA = "+14155550100"
MD = "+14105550100"
NH = "+16035550100"
CT = "+18605550100"
DE = "+4930123456"
FR = "+33142685300"
GB = "+442079460958"


def engine(**kwargs: object) -> PolicyEngine:
    """An engine over the shipped table with ``PolicySettings`` overridden by ``kwargs``."""
    return PolicyEngine.from_settings(replace(PolicySettings(), **kwargs))  # type: ignore[arg-type]


def test_one_party_state_call_announces() -> None:
    """A call between two one-party-state numbers from a US site is announce."""
    result = engine(site_jurisdiction="US-NY").evaluate(NY, "+17135550100")

    assert Mode.ANNOUNCE == result.mode


@pytest.mark.parametrize("number", [MD, NH, CA, CT])
def test_all_party_caller_makes_a_one_party_site_opt_out(number: str) -> None:
    """A caller from an all-party state (MD, NH included) makes the call opt_out."""
    result = engine(site_jurisdiction="US-NY").evaluate(number, NY)

    assert Mode.OPT_OUT == result.mode
    assert "caller" == result.deciding_party


@pytest.mark.parametrize("number", [MD, NH])
def test_all_party_called_party_makes_the_call_opt_out(number: str) -> None:
    """An all-party state on the called side also wins (strictest over all parties)."""
    assert Mode.OPT_OUT == engine(site_jurisdiction="US-TX").evaluate(NY, number).mode


def test_site_jurisdiction_counts_as_a_party() -> None:
    """A German site makes even a one-party US call opt_in."""
    result = engine(site_jurisdiction="DE").evaluate(NY, NY)

    assert Mode.OPT_IN == result.mode
    assert "site" == result.deciding_party
    assert PartyRecord("site", "", "DE", "DE", Mode.OPT_IN) == result.parties[2]


def test_strictest_wins_across_countries() -> None:
    """GB caller (opt_out) to a DE number (opt_in) from a US site: opt_in."""
    result = engine(site_jurisdiction="US").evaluate(GB, DE)

    assert Mode.OPT_IN == result.mode
    assert ("GB", "DE", "US") == result.rows
    assert ["caller", "called", "site"] == [p.party for p in result.parties]


def test_eu_member_uses_the_eu_row() -> None:
    """A French number resolves to FR and applies the EU group row."""
    party = engine().evaluate(FR, NY).parties[0]

    assert ("FR", "EU", Mode.OPT_OUT) == (party.jurisdiction, party.row_id, party.mode)


def test_connecticut_party_adds_its_beep_interval() -> None:
    """A Connecticut party brings the 15 s beep into the result."""
    assert 15 == engine().evaluate(CT, NY).beep_interval
    assert None is engine().evaluate(CA, NY).beep_interval


def test_number_without_state_gets_the_strictest_row_of_its_country() -> None:
    """A toll-free US number could be anywhere in the US, so the strictest US row applies."""
    party = engine().evaluate("+18005550100", NY).parties[0]

    assert ("US", Mode.OPT_OUT) == (party.jurisdiction, party.mode)


def test_australian_number_gets_opt_in_when_the_state_is_unknown() -> None:
    """An Australian number cannot tell its state: opt_in, as anchors.md advises when unsure."""
    assert Mode.OPT_IN == engine().evaluate("+61298765432", NY).parties[0].mode


def test_multi_province_area_code_uses_the_strictest_candidate() -> None:
    """867 (three territories) resolves to one of them with the strictest mode."""
    party = engine().evaluate("+18675550100", NY).parties[0]

    assert party.jurisdiction in ("CA-NT", "CA-NU", "CA-YT")
    assert Mode.OPT_OUT == party.mode


@pytest.mark.parametrize("number", ["", "anonymous", "Restricted", "101", "x" * 10_000, "\x00"])
def test_unknown_caller_gets_the_unknown_mode(number: str) -> None:
    """Withheld, empty, extension and junk callers get ``unknown_mode`` (opt_in by default)."""
    result = engine().evaluate(number, NY)

    assert PartyRecord("caller", number, "unknown", "unknown", Mode.OPT_IN) == result.parties[0]
    assert Mode.OPT_IN == result.mode


def test_unknown_mode_is_configurable() -> None:
    """An operator can set the unknown mode, e.g. to opt_out."""
    assert Mode.OPT_OUT == engine(unknown_mode=Mode.OPT_OUT).evaluate("anonymous", NY).mode


def test_country_without_a_row_is_treated_as_unknown() -> None:
    """A Japanese number has no row in the default table and gets ``unknown_mode``."""
    party = engine().evaluate("+81312345678", NY).parties[0]

    assert ("unknown", Mode.OPT_IN) == (party.row_id, party.mode)


def test_policy_override_forces_the_mode() -> None:
    """RECORDER_POLICY forces the mode even against stricter parties."""
    result = engine().evaluate(DE, NY, policy_override="announce")

    assert Mode.ANNOUNCE == result.mode
    assert result.forced
    assert "override" == result.deciding_party
    assert "forced" in result.explain()


@pytest.mark.parametrize("value", ["Opt-Out", " opt_out ", "OPT_OUT"])
def test_policy_override_tolerates_case_dashes_and_spaces(value: str) -> None:
    """Mode names in overrides are matched case-insensitively, ``-`` read as ``_``."""
    assert Mode.OPT_OUT == engine().evaluate(NY, NY, policy_override=value).mode


@pytest.mark.parametrize("value", ["always", "${EVIL}", "opt_out)\n", "x" * 5000])
def test_bad_policy_override_is_ignored_with_a_reason(value: str) -> None:
    """An unknown mode name is ignored (no exception) and the reason is recorded safely."""
    result = engine(site_jurisdiction="US-NY").evaluate(NY, NY, policy_override=value)

    assert Mode.ANNOUNCE == result.mode
    assert not result.forced
    assert 1 == len(result.notes)
    assert "RECORDER_POLICY" in result.notes[0]
    assert result.notes[0].isprintable()
    assert len(result.notes[0]) < 200


def test_jurisdiction_override_sets_the_callers_jurisdiction() -> None:
    """RECORDER_JURISDICTION replaces the caller's number-derived jurisdiction."""
    result = engine().evaluate(NY, NY, jurisdiction_override="us-ca")

    assert PartyRecord("caller", NY, "US-CA", "US-CA", Mode.OPT_OUT) == result.parties[0]
    assert Mode.OPT_OUT == result.mode


def test_jurisdiction_override_to_a_state_without_a_row_uses_the_country_row() -> None:
    """``US-NY`` has no own row: the US row applies."""
    party = engine().evaluate(CA, NY, jurisdiction_override="US-NY").parties[0]

    assert ("US-NY", "US", Mode.ANNOUNCE) == (party.jurisdiction, party.row_id, party.mode)


@pytest.mark.parametrize("value", ["XX", "US-ZZ", "California", "US-CA;DROP", "\x1b[2J", "u" * 300])
def test_bad_jurisdiction_override_is_ignored_with_a_reason(value: str) -> None:
    """An unknown jurisdiction code is ignored and the caller is placed by number."""
    result = engine().evaluate(NY, NY, jurisdiction_override=value)

    assert "US-NY" == result.parties[0].jurisdiction
    assert 1 == len(result.notes)
    assert "RECORDER_JURISDICTION" in result.notes[0]
    assert result.notes[0].isprintable()


@pytest.mark.parametrize("value", ["", "  ", "\n"])
def test_blank_overrides_count_as_absent(value: str) -> None:
    """An empty channel variable is no override and leaves no note."""
    result = engine().evaluate(CA, NY, policy_override=value, jurisdiction_override=value)

    assert ("US-CA", (), False) == (result.parties[0].jurisdiction, result.notes, result.forced)


def test_overrides_are_ignored_when_disabled() -> None:
    """With ``allow_channel_override`` off both overrides are ignored, with reasons."""
    result = engine(allow_channel_override=False, site_jurisdiction="US-NY").evaluate(
        NY, NY, policy_override="never", jurisdiction_override="DE"
    )

    assert Mode.ANNOUNCE == result.mode
    assert "US-NY" == result.parties[0].jurisdiction
    assert 2 == len(result.notes)
    assert all("disabled" in n for n in result.notes)


def test_operator_table_overrides_the_default_row(tmp_path: Path) -> None:
    """An operator table file changes the mode of the row it overrides."""
    table = tmp_path / "site.toml"
    table.write_text('version = "v2"\n[rows.US]\nmode = "opt_out"\n', encoding="utf-8")

    result = engine(table_file=str(table)).evaluate(NY, NY)

    assert Mode.OPT_OUT == result.mode
    assert result.version.endswith("+v2")


def test_bad_operator_table_fails_building_the_engine(tmp_path: Path) -> None:
    """A broken operator table stops the engine from being built (PolicyError)."""
    table = tmp_path / "site.toml"
    table.write_text('[rows.US]\nmode = "sometimes"\n', encoding="utf-8")

    with pytest.raises(PolicyError, match="field 'mode'"):
        engine(table_file=str(table))


@pytest.mark.parametrize("site", ["XX", "US-ZZ", "usa", ""])
def test_invalid_site_jurisdiction_is_a_policy_error(site: str) -> None:
    """The site jurisdiction must be a known code."""
    with pytest.raises(PolicyError, match="site_jurisdiction"):
        engine(site_jurisdiction=site)


def test_invalid_default_region_is_a_policy_error() -> None:
    """The default region must be one phonenumbers knows."""
    with pytest.raises(PolicyError, match="default_region"):
        engine(default_region="ZZ")


def test_results_are_cached_per_call_pair() -> None:
    """A second evaluation of the same pair is a cache hit returning the same result."""
    eng = engine()

    first = eng.evaluate(CA, NY)
    second = eng.evaluate(CA, NY)

    assert first is second
    assert (1, 1, 1) == eng.cache_info()


def test_very_long_numbers_bypass_the_cache() -> None:
    """10 kB caller ids are evaluated but never kept in the cache."""
    eng = engine()

    eng.evaluate("9" * 10_000, NY)

    assert (0, 0, 0) == eng.cache_info()


def test_explain_names_the_deciding_party_and_row() -> None:
    """The one-sentence explanation names the mode, the party and its row."""
    text = engine(site_jurisdiction="US-NY").evaluate(MD, NY).explain()

    assert "opt_out: the strictest mode over all parties; the caller (US-MD, row US-MD)" in text


def test_party_details_hold_the_row_with_law_and_source() -> None:
    """Each party detail carries the row applied, with its law and source."""
    detail = engine().evaluate(NH, NY).details[0]

    assert detail.row is not None
    assert "RSA 570-A" in detail.row.law
    assert detail.row.source
    assert "+16035550100" == detail.e164
