"""Helpers shared by the ledger tests (imported by conftest and by test modules)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from asterisk_recorder.flow.decision import ConsentDecision, KeyPress, Outcome, PartyRecord
from asterisk_recorder.ledger.spool import Spool
from asterisk_recorder.policy.modes import Mode

__all__ = ["FIXED_KEY", "make_decision", "pending_spool_ids"]

FIXED_KEY = "test-digest-key-0123456789abcdef"


def make_decision(**changes: Any) -> ConsentDecision:
    """A realistic recorded opt-out decision; ``changes`` override fields."""
    decision_id = changes.pop("decision_id", str(uuid.uuid4()))
    base = ConsentDecision(
        decision_id=decision_id,
        driver="ari",
        channel_id="1763900000.42",
        channel_name="PJSIP/alice-00000017",
        uniqueid="1763900000.42",
        linkedid="1763900000.42",
        asterisk_id="08:00:27:aa:bb:cc",
        instance_id="ctl-1",
        caller_number="+12125550100",
        caller_name="Alice O'Hara",
        called_number="+14155550199",
        parties=(
            PartyRecord("caller", "+12125550100", "US-NY", "US-NY", Mode.OPT_OUT),
            PartyRecord("called", "+14155550199", "US-CA", "US-CA", Mode.OPT_IN),
            PartyRecord("site", "", "US", "US", Mode.OPT_OUT),
        ),
        mode=Mode.OPT_IN,
        policy_rows=("US-NY", "US-CA", "US"),
        policy_version="2026.11-1",
        prompt_id="recorder/consent-opt-in",
        language="en",
        keys=(KeyPress("1", 1763900003.25),),
        outcome=Outcome.RECORDED_CONSENTED,
        reason="accept key pressed",
        offered_at=1763900000.000001,
        answered_at=1763900000.5,
        disclosure_started_at=1763900000.6,
        disclosure_finished_at=1763900003.1,
        decided_at=1763900003.25,
        recording_path=f"/var/spool/asterisk/monitor/recorder/2026/11/23/{decision_id}.wav",
    )
    return replace(base, **changes)


def pending_spool_ids(directory: Path) -> list[str]:
    """Decision (and fact) ids waiting in the spool directory, in replay order (blocking I/O)."""
    ids: list[str] = []
    for path in Spool(directory).pending_files():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            ids.append(record["d"]["decision_id"] if "d" in record else record["f"]["fact_id"])
    return ids
