"""Test helpers shipped with asterisk-recorder, so integrators can test their own flows.

This package owns fakes of the systems the product talks to (``FakeAsterisk`` for ARI,
``FakeAmi`` for AMI). It must not be imported by production code paths.
"""

from __future__ import annotations

from asterisk_recorder.testing.fake_asterisk import (
    DEFAULT_SOUNDS,
    AmiChannel,
    ContinueRecord,
    FakeAmi,
    FakeAsterisk,
    FakeChannel,
    RecordedRequest,
    SentEvent,
)

__all__ = [
    "DEFAULT_SOUNDS",
    "AmiChannel",
    "ContinueRecord",
    "FakeAmi",
    "FakeAsterisk",
    "FakeChannel",
    "RecordedRequest",
    "SentEvent",
]
