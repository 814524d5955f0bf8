"""asterisk-recorder: lawful-by-construction call recording for Asterisk.

Plays a recording disclosure, takes the caller's consent by DTMF, hands the channel back to
dialplan which starts MixMonitor or skips it, and keeps every decision in a tamper-evident
PostgreSQL ledger.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
