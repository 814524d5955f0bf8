"""The consent flow: a pure state machine both drivers (ARI, FastAGI) run once per call.

This package owns the flow's inputs (``events``), outputs (``actions``), its decision record
(``decision``), its settings (``settings``), the machine (``machine``) and the recording path /
MixMonitor options (``recording``). It must not do I/O: it imports only the standard library
and ``asterisk_recorder.policy`` (a test enforces it).
"""

from asterisk_recorder.flow.machine import (
    TRANSITIONS,
    ConsentFlow,
    State,
    check_flow_settings,
    language_chain,
)
from asterisk_recorder.flow.recording import (
    check_recording_settings,
    mixmonitor_options,
    recording_path,
    validate_decision_id,
)

__all__ = [
    "TRANSITIONS",
    "ConsentFlow",
    "State",
    "check_flow_settings",
    "check_recording_settings",
    "language_chain",
    "mixmonitor_options",
    "recording_path",
    "validate_decision_id",
]
