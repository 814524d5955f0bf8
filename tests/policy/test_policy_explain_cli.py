"""``asterisk-recorder policy explain`` shows each party's row, law and source, and the mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console entry point with a clean configuration environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ASTERISK_RECORDER_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "asterisk_recorder", *args],
        capture_output=True, text=True, env=clean, timeout=60, check=False,
    )


def test_explain_prints_parties_rows_law_source_and_mode() -> None:
    """A Maryland caller to a New York number from a NY site: each party, then opt_out."""
    proc = run("policy", "explain", "+14105550100", "+12125550100", "--site", "US-NY")

    assert 0 == proc.returncode, proc.stderr
    out = proc.stdout
    assert "not legal advice" in out
    assert "caller: +14105550100" in out
    assert "jurisdiction: US-MD" in out
    assert "row:          US-MD (Maryland) -> opt_out" in out
    assert "law:          Md. Code, Cts. & Jud. Proc. 10-402(c)(3)" in out
    assert "source:       msa.maryland.gov" in out
    assert "called: +12125550100" in out
    assert "site: (none)" in out
    assert "jurisdiction: US-NY" in out
    assert "result: opt_out" in out
    assert "the caller (US-MD, row US-MD) requires opt_out" in out


def test_explain_json_lists_three_parties_and_the_result() -> None:
    """``--json`` gives a machine-readable explanation."""
    proc = run("policy", "explain", "+4930123456", "anonymous", "--site", "GB", "--json")

    assert 0 == proc.returncode, proc.stderr
    doc = json.loads(proc.stdout)
    assert "opt_in" == doc["mode"]
    assert ["DE", "unknown", "GB"] == [p["jurisdiction"] for p in doc["parties"]]
    assert ["DE", "unknown", "GB"] == doc["rows"]
    assert doc["parties"][0]["source"]
    assert None is doc["parties"][1]["law"]


def test_explain_simulates_channel_overrides_and_reports_bad_ones() -> None:
    """``--policy`` forces a mode; a bad ``--jurisdiction`` is reported, not fatal."""
    proc = run(
        "policy", "explain", "+12125550100", "+12125550100", "--site", "US",
        "--policy", "opt_out", "--jurisdiction", "Narnia",
    )

    assert 0 == proc.returncode, proc.stderr
    assert "result: opt_out" in proc.stdout
    assert "forced by the RECORDER_POLICY channel override" in proc.stdout
    assert "note: RECORDER_JURISDICTION 'Narnia' ignored" in proc.stdout


def test_explain_uses_the_operator_table(tmp_path: Path) -> None:
    """``--table`` overrides rows and the output says where the row came from."""
    table = tmp_path / "ours.toml"
    table.write_text(
        'version = "ours-1"\n[rows.US]\nmode = "opt_in"\nlaw = "house rule"\n'
        'source = "board minutes"\n',
        encoding="utf-8",
    )

    proc = run("policy", "explain", "+12125550100", "+12125550100", "--table", str(table))

    assert 0 == proc.returncode, proc.stderr
    assert "result: opt_in" in proc.stdout
    assert "law:          house rule" in proc.stdout
    assert f"from:         {table}" in proc.stdout
    assert "policy table 2026.11.23+ours-1" in proc.stdout


def test_explain_with_a_broken_table_exits_2_naming_the_field(tmp_path: Path) -> None:
    """A bad table file is a configuration error: exit 2 with file, row and field."""
    table = tmp_path / "bad.toml"
    table.write_text('[rows.US]\nmode = "loud"\n', encoding="utf-8")

    proc = run("policy", "explain", "+12125550100", "+12125550100", "--table", str(table))

    assert 2 == proc.returncode
    assert f"policy table {table}: row 'US': field 'mode': 'loud' is not one of" in proc.stderr


def test_explain_with_an_invalid_site_exits_2() -> None:
    """A site that is not a jurisdiction code is a configuration error (exit 2)."""
    proc = run("policy", "explain", "+12125550100", "+12125550100", "--site", "Mars")

    assert 2 == proc.returncode
    assert "site_jurisdiction" in proc.stderr


def test_explain_reads_the_site_from_the_config_file(tmp_path: Path) -> None:
    """``--config`` supplies the site jurisdiction (and needs no ARI password here)."""
    conf = tmp_path / "recorder.toml"
    conf.write_text('[policy]\nsite_jurisdiction = "DE"\n', encoding="utf-8")

    proc = run("policy", "explain", "+12125550100", "+12125550100", "--config", str(conf))

    assert 0 == proc.returncode, proc.stderr
    assert "result: opt_in" in proc.stdout
    assert "the site (DE, row DE) requires opt_in" in proc.stdout


def test_explain_never_echoes_control_characters() -> None:
    """A caller id with escape sequences is printed escaped, never raw."""
    proc = run("policy", "explain", "\x1b[2J+1415\n5550100", "+12125550100")

    assert 0 == proc.returncode, proc.stderr
    assert "\x1b" not in proc.stdout
    assert "\\x1b" in proc.stdout


def test_table_lists_every_row_with_its_mode() -> None:
    """``policy table`` lists the rows in force."""
    proc = run("policy", "table", "--json")

    assert 0 == proc.returncode, proc.stderr
    doc = json.loads(proc.stdout)
    modes = {r["id"]: r["mode"] for r in doc["rows"]}
    assert "opt_out" == modes["US-MD"]
    assert "opt_in" == modes["DE"]
    assert all(r["source"] for r in doc["rows"])
