"""The running product: the ARI driver of the consent flow and the ``serve`` composition root.

This package owns ``call`` (one channel's flow over ARI), ``app`` (one Asterisk server's event
stream dispatched to per-channel sessions, resync, drain), ``service`` (wiring ledger, policy,
ARI, FastAGI and the ops endpoint; the canonical ``consent.decided`` line) and ``demo``. It must
not hold consent logic (``flow``/``policy``) nor protocol code (``ari``/``agi``).
"""

from __future__ import annotations

from asterisk_recorder.controller.app import AriController, ControllerHooks
from asterisk_recorder.controller.call import CallSession, call_info_from_channel
from asterisk_recorder.controller.service import Service

__all__ = ["AriController", "CallSession", "ControllerHooks", "Service", "call_info_from_channel"]
