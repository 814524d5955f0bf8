"""The demo: eight consent calls through the real service against the shipped fake Asterisk.

This package owns ``scenarios`` (the calls, their expected outcomes and the printed ledger). It is
the only product code that imports ``asterisk_recorder.testing``; nothing imports it but the
``demo`` command.
"""

from __future__ import annotations

from asterisk_recorder.demo.scenarios import run_demo

__all__ = ["run_demo"]
