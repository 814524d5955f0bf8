"""The driver core: one implementation of a call's life for every transport.

This package owns ``core`` (``CallCore``: flow in, actions out through a port; store, hand back,
fail closed, shutdown, the fate fact and the ``consent.decided`` line) and ``ports`` (the
``ChannelPort`` protocol each transport implements, ``CallReport``, ``CallFate``,
``CoreHooks``). It must not import a transport (``ari``, ``agi``, ``controller``) or asyncpg.
"""

from __future__ import annotations

from asterisk_recorder.drivers.core import CallCore, FlowLike
from asterisk_recorder.drivers.ports import (
    FAIL_CLOSED_VARIABLES,
    CallFate,
    CallReport,
    ChannelPort,
    CoreHooks,
    Fate,
)

__all__ = [
    "FAIL_CLOSED_VARIABLES",
    "CallCore",
    "CallFate",
    "CallReport",
    "ChannelPort",
    "CoreHooks",
    "Fate",
    "FlowLike",
]
