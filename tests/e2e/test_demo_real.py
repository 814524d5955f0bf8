"""``asterisk-recorder demo --ari-url`` drives a real Asterisk 22 end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_harness import AriTarget

pytestmark = pytest.mark.e2e


def test_demo_against_a_real_asterisk_meets_every_scenario_and_verifies(
    ari_target: AriTarget, pg_dsn: str, tmp_path: Path
) -> None:
    """The eight demo calls run through real dialplan and the ledger chain verifies."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ASTERISK_RECORDER_ARI_USERNAME": ari_target.user,
        "ASTERISK_RECORDER_ARI_PASSWORD": ari_target.password,
        "ASTERISK_RECORDER_LEDGER_SPOOL_DIR": str(tmp_path / "spool"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "asterisk_recorder", "demo", "--ari-url", ari_target.url,
         "--dsn", pg_dsn],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )

    assert 0 == done.returncode, done.stdout + done.stderr
    assert "8/8 scenarios as expected; ledger verify: OK" in done.stdout
    assert "real Asterisk at" in done.stdout
