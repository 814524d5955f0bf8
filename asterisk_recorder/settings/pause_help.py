"""The help texts of the ``[ami]`` and ``[pause]`` keys and of ``recordings.pci_*``.

This module owns ``PAUSE_HELP`` (dotted key -> one paragraph for the sample configuration and
docs/configuration.md), merged into the schema's help. It must not hold rules or defaults.
"""

from __future__ import annotations

__all__ = ["PAUSE_HELP"]

PAUSE_HELP: dict[str, str] = {
    "ami.enabled": "Connect to Asterisk's manager interface (AMI); needed by [pause].",
    "ami.host": "Address of Asterisk's AMI (manager.conf bindaddr).",
    "ami.port": "TCP port of Asterisk's AMI (manager.conf port, 1-65535).",
    "ami.username": "The manager.conf user (read: call,dialplan,user,agent; write: call).",
    "ami.secret": "That user's secret (required while [ami] is enabled; placeholders refused).",
    "ami.connect_timeout": "Seconds to connect and log in to AMI.",
    "ami.action_timeout": "Seconds Asterisk gets to answer one AMI action.",
    "ami.reconnect_max": "Cap in seconds of the AMI reconnect backoff.",
    "recordings.pci_check": "The PCI check of every recording before it is sealed (paused spans "
    "are digital silence, no DTMF tones in the unpaused audio): `quarantine` a recording that "
    "fails (and alert), `attest` (record the result and alert, seal it normally) or `off`.",
    "recordings.pci_tolerance": "Seconds a paused span's silence may be shifted against the "
    "ledger's wall-clock times (Asterisk's own offset is about 0.22 s); 0.05-5.",
    "pause.enabled": "Run the pause driver in `serve`: feature codes, payment contexts and the "
    "HTTP API pause the recording with AMI MixMonitorMute. Needs [ami] enabled and "
    "recording.mixmonitor_options without `b` (the file must keep the call's timeline).",
    "pause.max_pause": "Seconds after which a pause is resumed by the watchdog, with an alert; "
    "inside a payment context or queue it stays paused, alerts once, and resumes on leaving.",
    "pause.payment_contexts": "Dialplan contexts during which the recording is paused "
    "automatically (the payment IVR; list the subroutine contexts it calls too). In the "
    "environment, comma-separated.",
    "pause.payment_queues": "Queues during which the recording is paused automatically. In "
    "the environment, comma-separated.",
    "pause.retry_every": "Seconds between retries of a resume that failed (AMI away).",
    "pause.api_token": "Bearer token of POST /calls/{id}/pause and /resume on the ops HTTP "
    "server (secret, at least 32 characters; empty: the API answers 404).",
}
